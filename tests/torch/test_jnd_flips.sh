#!/bin/sh
# tools/jnd_flips.py on a made-up generate results.csv and CIFAR-10 test file
# (standard library only; it runs with the Python checks): the split of
# changed labels by right / wrong and the --keep-labels summary.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
# Four test records with true labels 1, 1, 2, 2 (label byte + 3072 pixels).
/usr/bin/python3 -c "
import sys
open(sys.argv[1] + '/test_batch.bin', 'wb').write(b''.join(bytes([l]) + bytes(3072) for l in (1, 1, 2, 2)))
" "$t"
# Classifier a: right on records 0-1 (one changed), wrong on 2-3 (one changed);
# scale: one image whole, two scaled (1/9 and 3/9), one dropped (100 dB).
cat > "$t/results.csv" <<'CSV'
image,source,height,width,a_before,a_after,a_kept,kept,psnr_db,mean_abs_e,mean_abs_diff,scale
test-00000,cifar10:test:0,32,32,1,1,1,1,20.0,1,1,1.000000
test-00001,cifar10:test:1,32,32,1,3,0,0,30.0,1,1,0.111111
test-00002,cifar10:test:2,32,32,5,5,1,1,40.0,1,1,0.333333
test-00003,cifar10:test:3,32,32,5,7,0,0,100.0,0,0,0.000000
CSV
out=$(/usr/bin/python3 tools/jnd_flips.py "$t/results.csv" "$t")
bad=0
for want in "| a | 2 | 1 (50.00%) | 2 | 1 (50.00%) | 50% |" \
            "e scaled down on 2 images (1/9: 1, 3/9: 1), dropped on 1, whole on 1" \
            "PSNR: mean 47.50 dB (images without e at the 100 dB cap), 30.00 dB over the 3 with some e; median 35.00 dB"; do
    printf '%s\n' "$out" | grep -qxF "$want" || { echo "missing: $want"; bad=1; }
done
# A truncated CIFAR file is named, not a traceback.
head -c 100 "$t/test_batch.bin" > "$t/x" && mv "$t/x" "$t/test_batch.bin"
err=$(/usr/bin/python3 tools/jnd_flips.py "$t/results.csv" "$t" 2>&1) && bad=1
printf '%s\n' "$err" | grep -q "test_batch.bin: 100 bytes is not a whole number" || { echo "bad error: $err"; bad=1; }
if [ $bad -eq 0 ]; then echo "test_jnd_flips: 1 passed, 0 failed"; else printf '%s\n' "$out"; echo "test_jnd_flips: 0 passed, 1 failed"; exit 1; fi
