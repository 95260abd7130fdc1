"""PyTorch twins of dmvjnd's models.

Same architectures and the same state_dict keys as the C builders in
src/models/, so a .safetensors file written by dmvjnd loads here unchanged
(see load_safetensors) and the other way round. Used for parity tests and as
the benchmark peer. Tensors here are NCHW (PyTorch's layout); dmvjnd's are
NHWC, so inputs are permuted at the boundary.
"""
import json
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """He et al.'s 3x3 basic block; 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """CIFAR ResNet, depth 6n+2, widths w/2w/4w, GAP + linear (as dj_model_resnet_cifar)."""

    def __init__(self, depth=20, width=16, classes=10):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for stage in range(3):
            cout = width << stage
            blocks = []
            for b in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if stage > 0 and b == 0 else 1))
                cin = cout
            setattr(self, "layer%d" % (stage + 1), nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, classes)

    def features(self, x):
        """Last convolutional feature maps (what CAM weighs)."""
        x = F.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def build(name, classes=10):
    if name.startswith("resnet"):
        return ResNetCifar(int(name[len("resnet"):]), 16, classes)
    raise ValueError("unknown model %r" % name)


def read_safetensors(path):
    """Parse a .safetensors file with json + numpy: {name: np.ndarray}, metadata."""
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[base + b:base + e], dtype=dtypes[info["dtype"]])
        out[name] = arr.reshape(info["shape"]).copy()
    return out, meta


def load_safetensors(model, path):
    """Load dmvjnd weights into a twin; every float tensor of the model must be there."""
    tensors, meta = read_safetensors(path)
    state = model.state_dict()
    missing = [k for k in state if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError("%s: missing tensors %s" % (path, missing))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if k in state}, strict=False)
    return meta
