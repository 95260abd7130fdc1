"""PyTorch twins of dmvjnd's models.

Same architectures and the same state_dict keys as the C builders in
src/models/, so a .safetensors file written by dmvjnd loads here unchanged
(see load_safetensors) and the other way round. Used for parity tests and as
the benchmark peer. Tensors here are NCHW (PyTorch's layout); dmvjnd's are
NHWC, so inputs are permuted at the boundary.
"""
import json
import os
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


class PlainCnn(nn.Module):
    """Conv-BN-ReLU blocks and max pools, GAP, linear (as src/models/plain.c).

    `layers` lists ("conv", cout, k) (k x k, stride 1, pad k/2, no bias,
    then BN + ReLU) and ("pool", k, stride, pad) entries; the last must be a
    conv, so the global average pooling follows its BN + ReLU directly.
    `features(x)` gives the last feature maps (what CAM weighs), as for
    every model here.
    """

    def __init__(self, layers, classes=10):
        super().__init__()
        mods, cin = [], 3
        for layer in layers:
            if layer[0] == "conv":
                _, cout, k = layer
                mods += [nn.Conv2d(cin, cout, k, 1, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
                cin = cout
            else:
                _, k, stride, pad = layer
                mods.append(nn.MaxPool2d(k, stride, pad))
        self.features = nn.Sequential(*mods)
        self.classifier = nn.Linear(cin, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


# dj_model_alexnet_cifar: AlexNet-style with BN, third pool moved before conv5.
ALEXNET = [("conv", 64, 5), ("pool", 3, 2, 1), ("conv", 128, 3), ("pool", 3, 2, 1), ("conv", 192, 3),
           ("conv", 128, 3), ("pool", 3, 2, 1), ("conv", 128, 3)]
# dj_model_vgg11bn_cifar: VGG-11-BN, widths 48-96-192-256, pools 4 and 5 removed.
VGG11BN = [("conv", 48, 3), ("pool", 2, 2, 0), ("conv", 96, 3), ("pool", 2, 2, 0), ("conv", 192, 3),
           ("conv", 192, 3), ("pool", 2, 2, 0), ("conv", 256, 3), ("conv", 256, 3), ("conv", 256, 3),
           ("conv", 256, 3)]


class DenseLayer(nn.Module):
    """Bottleneck layer: BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) on the concatenation so far."""

    def __init__(self, cin, growth):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, 4 * growth, 1, 1, 0, bias=False)
        self.norm2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

    def forward(self, x):
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """Layers denselayer1..n; each sees the block input and every earlier layer's output."""

    def __init__(self, n, cin, growth):
        super().__init__()
        for i in range(n):
            self["denselayer%d" % (i + 1)] = DenseLayer(cin + i * growth, growth)

    def forward(self, x):
        pieces = [x]
        for layer in self.values():
            pieces.append(layer(torch.cat(pieces, 1)))
        return torch.cat(pieces, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (compression) - avg pool 2."""

    def __init__(self, cin, cout):
        super().__init__()
        self.add_module("norm", nn.BatchNorm2d(cin))
        self.add_module("relu", nn.ReLU(inplace=True))
        self.add_module("conv", nn.Conv2d(cin, cout, 1, 1, 0, bias=False))
        self.add_module("pool", nn.AvgPool2d(2, 2))


class DenseNetBC(nn.Module):
    """DenseNet-BC for CIFAR, depth 6n+4, growth k (as dj_model_densenet_bc_cifar; torchvision names).

    `features(x)` ends with norm5 + ReLU: the last feature maps (what CAM weighs).
    """

    def __init__(self, depth=40, growth=12, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        c = 2 * growth
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(3, c, 3, 1, 1, bias=False))
        for b in range(1, 4):
            self.features.add_module("denseblock%d" % b, DenseBlock(n, c, growth))
            c += n * growth
            if b < 3:
                self.features.add_module("transition%d" % b, Transition(c, c // 2))
                c //= 2
        self.features.add_module("norm5", nn.BatchNorm2d(c))
        self.features.add_module("relu5", nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def build(name, classes=10):
    if name == "alexnet":
        return PlainCnn(ALEXNET, classes)
    if name == "vgg11bn":
        return PlainCnn(VGG11BN, classes)
    if name.startswith("resnet"):
        return ResNetCifar(int(name[len("resnet"):]), 16, classes)
    if name.startswith("densenet") and name.endswith("bc"):
        return DenseNetBC(int(name[len("densenet"):-2]), 12, classes)
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


def write_safetensors(path, tensors, meta):
    """Write {name: np.ndarray} (float32 or int64) and string metadata as .safetensors, atomically
    (a temporary file renamed over path), in the layout dmvjnd reads: header padded with spaces to
    a multiple of 8 bytes, tensors in the given order."""
    names = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}
    header, blobs, at = {"__metadata__": {str(k): str(v) for k, v in meta.items()}}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype not in names:
            raise TypeError("%s: dtype %s cannot be written" % (name, arr.dtype))
        b = arr.tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape), "data_offsets": [at, at + len(b)]}
        blobs.append(b)
        at += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)


def load_safetensors(model, path):
    """Load dmvjnd weights into a twin; every float tensor of the model must be there."""
    tensors, meta = read_safetensors(path)
    state = model.state_dict()
    missing = [k for k in state if k not in tensors and not k.endswith("num_batches_tracked")]
    if missing:
        raise KeyError("%s: missing tensors %s" % (path, missing))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items() if k in state}, strict=False)
    return meta
