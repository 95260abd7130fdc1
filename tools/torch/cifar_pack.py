#!/usr/bin/env python3
"""Pack CIFAR-10 binary records small enough to carry to a GPU machine, and unpack them bit-exactly.

    python3 tools/torch/cifar_pack.py pack DATA_DIR --split train --first A --count N OUT.pack
    python3 tools/torch/cifar_pack.py unpack OUT_DIR PART.pack [PART.pack ...]

A GPU call carries at most 64 MiB with the repository, and the 50,000 training records are 154 MB
raw (xz alone: 116 MB). This format gets them to ~85 MB, so the training set travels in two calls:
per image, colour as G, R - G, B - G (mod 256), then each plane's 2-D difference
x[i][j] - x[i-1][j] - x[i][j-1] + x[i-1][j-1] (mod 256, zero outside the image), stored plane-major
(all images' first plane, then the second, then the third) and compressed with xz (LZMA preset 6).
Both steps are exact in modular arithmetic, and unpacking is two cumulative sums: no per-pixel loop.

A part holds the records [first, first + count) of the split's concatenated files (train:
data_batch_1..5.bin, 10,000 records each; test: test_batch.bin). `unpack` rebuilds the official
files from the parts, which must cover whole files; it refuses a part that does not decode to its
stored SHA-256, gaps and overlaps. `pack` unpacks what it wrote and compares before it returns.
"""
import argparse
import hashlib
import json
import lzma
import os
import struct
import sys

import numpy as np

SIDE = 32
RECORD = 1 + 3 * SIDE * SIDE
PER_FILE = 10000
MAGIC = b"DJPACK1\n"


def split_files(split):
    return ["data_batch_%d.bin" % i for i in range(1, 6)] if split == "train" else ["test_batch.bin"]


def read_range(data_dir, split, first, count):
    out = []
    for k, name in enumerate(split_files(split)):
        lo, hi = k * PER_FILE, (k + 1) * PER_FILE
        a, b = max(first, lo), min(first + count, hi)
        if a >= b:
            continue
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            sys.exit("cifar_pack: %s: no such file" % path)
        with open(path, "rb") as f:
            f.seek((a - lo) * RECORD)
            raw = f.read((b - a) * RECORD)
        if len(raw) != (b - a) * RECORD:
            sys.exit("cifar_pack: %s: truncated (wanted records %d-%d)" % (path, a - lo, b - lo - 1))
        out.append(raw)
    raw = b"".join(out)
    if len(raw) != count * RECORD:
        sys.exit("cifar_pack: records %d-%d are not all in the %s split" % (first, first + count - 1, split))
    return raw


def encode(raw):
    rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD)
    px = rec[:, 1:].reshape(-1, 3, SIDE, SIDE).astype(np.int16)
    col = np.stack([px[:, 1], px[:, 0] - px[:, 1], px[:, 2] - px[:, 1]], 1)
    d = col.copy()
    d[..., 1:] -= col[..., :-1]
    d2 = d.copy()
    d2[..., 1:, :] -= d[..., :-1, :]
    planes = np.ascontiguousarray((d2 % 256).astype(np.uint8).transpose(1, 0, 2, 3))
    return rec[:, 0].tobytes(), lzma.compress(planes.tobytes(), preset=6)


def decode(labels, blob, n):
    planes = np.frombuffer(lzma.decompress(blob), dtype=np.uint8)
    if planes.size != n * 3 * SIDE * SIDE:
        raise ValueError("pixel data of %d bytes for %d records" % (planes.size, n))
    d = planes.reshape(3, n, SIDE, SIDE).transpose(1, 0, 2, 3).astype(np.int64)
    col = np.cumsum(np.cumsum(d, -1), -2) % 256
    px = np.stack([(col[:, 1] + col[:, 0]) % 256, col[:, 0], (col[:, 2] + col[:, 0]) % 256], 1)
    rec = np.empty((n, RECORD), dtype=np.uint8)
    rec[:, 0] = np.frombuffer(labels, dtype=np.uint8)
    rec[:, 1:] = px.astype(np.uint8).reshape(n, -1)
    return rec.tobytes()


def write_part(path, split, first, count, raw):
    labels, blob = encode(raw)
    head = json.dumps({"split": split, "first": first, "count": count,
                       "sha256": hashlib.sha256(raw).hexdigest(), "pixels": len(blob)}).encode()
    with open(path + ".tmp", "wb") as f:
        f.write(MAGIC + struct.pack("<I", len(head)) + head + labels + blob)
    os.replace(path + ".tmp", path)


def read_part(path):
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 4:
        raise ValueError("%s: not a cifar_pack file" % path)
    try:
        return parse_part(path, data)
    except (KeyError, TypeError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError("%s: bad header (%s)" % (path, e))


def parse_part(path, data):
    (hlen,) = struct.unpack("<I", data[len(MAGIC):len(MAGIC) + 4])
    o = len(MAGIC) + 4
    head = json.loads(data[o:o + hlen])
    o += hlen
    n = head["count"]
    if len(data) < o + n:
        raise ValueError("%s: truncated (%d bytes)" % (path, len(data)))
    labels, blob = data[o:o + n], data[o + n:]
    if len(blob) != head["pixels"]:
        raise ValueError("%s: truncated (%d of %d pixel bytes)" % (path, len(blob), head["pixels"]))
    try:
        raw = decode(labels, blob, n)
    except (lzma.LZMAError, ValueError) as e:
        raise ValueError("%s: corrupt pixel data (%s)" % (path, e))
    if hashlib.sha256(raw).hexdigest() != head["sha256"]:
        raise ValueError("%s: records do not match their SHA-256" % path)
    return head, raw


def cmd_pack(a):
    raw = read_range(a.data_dir, a.split, a.first, a.count)
    write_part(a.out, a.split, a.first, a.count, raw)
    try:
        read_part(a.out)  # decodes and checks the SHA-256 of the records it was given
    except ValueError as e:
        sys.exit("cifar_pack: %s" % e)
    print("cifar_pack: %s: %s records %d-%d, %d bytes (%.1f%% of raw)" % (
        a.out, a.split, a.first, a.first + a.count - 1, os.path.getsize(a.out),
        100.0 * os.path.getsize(a.out) / len(raw)))


def cmd_unpack(a):
    os.makedirs(a.out_dir, exist_ok=True)
    by_split = {}
    for p in a.parts:
        try:
            head, raw = read_part(p)
        except (OSError, ValueError, KeyError) as e:
            sys.exit("cifar_pack: %s" % e)
        by_split.setdefault(head["split"], []).append((head["first"], raw, p))
    for split, parts in by_split.items():
        parts.sort()
        at, chunks = 0, []
        for first, raw, p in parts:
            if first != at:
                sys.exit("cifar_pack: %s starts at %s record %d, expected %d (gap or overlap)" % (p, split, first, at))
            chunks.append(raw)
            at += len(raw) // RECORD
        raw = b"".join(chunks)
        if at % PER_FILE and split == "train":
            sys.exit("cifar_pack: the train parts end at record %d, not at a file boundary" % at)
        for k, name in enumerate(split_files(split)):
            piece = raw[k * PER_FILE * RECORD:(k + 1) * PER_FILE * RECORD]
            if not piece:
                break
            with open(os.path.join(a.out_dir, name), "wb") as f:
                f.write(piece)
            print("cifar_pack: wrote %s (%d records)" % (os.path.join(a.out_dir, name), len(piece) // RECORD))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("data_dir")
    p.add_argument("out")
    p.add_argument("--split", choices=("train", "test"), default="train")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    u = sub.add_parser("unpack")
    u.add_argument("out_dir")
    u.add_argument("parts", nargs="+")
    a = ap.parse_args()
    cmd_pack(a) if a.cmd == "pack" else cmd_unpack(a)


if __name__ == "__main__":
    main()
