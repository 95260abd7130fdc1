#!/usr/bin/env bash
# The README's main command: the DMV-JND of CIFAR-10 test images with the
# shipped models. Generates e and the stored x + e of the first N test images
# (PNG + results.csv), evaluates the model on the test set (Markdown + JSON
# report, montage), and prints where everything is.
#
#   bash scripts/demo.sh [N=100] [OUT=demo] [EVAL_LIMIT=10000]
#
# Needs `make` and CIFAR-10 (scripts/get-cifar10.sh); the model and its four
# classifiers are read from models/.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
out=${2:-demo}
limit=${EVAL_LIMIT:-10000}
model=models/jnd_v1.0.safetensors
bin=build/dmvjnd
[ -x "$bin" ] || { echo "demo: $bin is missing: run make first" >&2; exit 2; }
if [ ! -f "$model" ]; then
    echo "demo: $model is not shipped yet (models/README.md says which models are); train one with" >&2
    echo "  $bin train --preset fast --out $model" >&2
    exit 3
fi
mkdir -p "$out"
echo "== generate: the first $n CIFAR-10 test images"
"$bin" generate --model "$model" --split test --limit "$n" --out "$out/generate"
echo "== eval: the first $limit test records (figures over all of them and over the bit-exact 0-999)"
"$bin" eval --model "$model" --split test --limit "$limit" --out "$out/eval"
echo
echo "e images (mid-gray = no change) and stored x + e:  $out/generate/*_e.png, *_jnd.png"
echo "per-image labels before/after, PSNR:               $out/generate/results.csv"
echo "report (RCA, PSNR, WGN, homogeneity):              $out/eval/report.md ($out/eval/report.json)"
echo "montage (CAM | e | x | x + e):                     $out/eval/montage.png"
