#!/bin/sh
# tools/torch/cifar_pack.py (how the training set travels to a GPU machine):
# made-up CIFAR-10 records (noise, flat and smooth images, every label) pack
# in two parts and unpack to the same bytes; a missing part, a corrupt or
# truncated one and a train set cut inside a file are refused, naming the file.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
/usr/bin/python3 - "$t" <<'PY' || exit 1
import sys, numpy as np
rng = np.random.default_rng(7)
def records(n):
    px = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    px[1] = 0; px[2] = 255                                   # flat extremes (wrap-around of the differences)
    px[3] = (np.arange(32)[None, :, None] * 8 + np.arange(32)[None, None, :] * 3) % 256
    lab = (np.arange(n) % 10).astype(np.uint8)[:, None]
    return np.concatenate([lab, px.reshape(n, -1)], 1).tobytes()
open(sys.argv[1] + "/test_batch.bin", "wb").write(records(250))
open(sys.argv[1] + "/data_batch_1.bin", "wb").write(records(100))
PY
pack="/usr/bin/python3 tools/torch/cifar_pack.py"
bad=0
expect_fail() {  # expect_fail TEXT CMD...: the command fails and says TEXT
    want=$1; shift
    err=$("$@" 2>&1) && { echo "should have failed: $*"; bad=1; return; }
    printf '%s\n' "$err" | grep -qF "$want" || { echo "wanted '$want', got: $err"; bad=1; }
}
$pack pack "$t" "$t/a.pack" --split test --first 0 --count 150 >/dev/null || bad=1
$pack pack "$t" "$t/b.pack" --split test --first 150 --count 100 >/dev/null || bad=1
$pack unpack "$t/out" "$t/b.pack" "$t/a.pack" >/dev/null || bad=1
cmp -s "$t/out/test_batch.bin" "$t/test_batch.bin" || { echo "unpacked test_batch.bin differs"; bad=1; }
expect_fail "b.pack starts at test record 150, expected 0" $pack unpack "$t/o2" "$t/b.pack"
expect_fail "test_batch.bin: truncated (wanted records 200-299)" $pack pack "$t" "$t/c.pack" --split test --first 200 --count 100
size=$(wc -c < "$t/a.pack")
head -c $((size - 10)) "$t/a.pack" > "$t/short.pack"
expect_fail "short.pack: truncated" $pack unpack "$t/o3" "$t/short.pack"
cp "$t/a.pack" "$t/flip.pack"
printf '\377\377\377\377' | dd of="$t/flip.pack" bs=1 seek=$((size - 400)) conv=notrunc 2>/dev/null
expect_fail "flip.pack: " $pack unpack "$t/o4" "$t/flip.pack"
$pack pack "$t" "$t/tr.pack" --split train --first 0 --count 100 >/dev/null || bad=1
expect_fail "not at a file boundary" $pack unpack "$t/o5" "$t/tr.pack"
expect_fail "not a cifar_pack file" $pack unpack "$t/o6" "$t/test_batch.bin"
if [ $bad -eq 0 ]; then echo "test_cifar_pack: 1 passed, 0 failed"; else echo "test_cifar_pack: 0 passed, 1 failed"; exit 1; fi
