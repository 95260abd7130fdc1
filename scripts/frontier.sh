#!/usr/bin/env bash
# The RCA-PSNR frontier of DMV-JND models across loss weights (issue 4):
# trains one model per (alpha, beta) pair with the fast preset (resumable:
# each run keeps a checkpoint), evaluates each on stored 8-bit images (and
# the unclipped float x + e, for comparison), and writes a Markdown table of
# the results with the paper's point (92.18% test RCA at 9.56 dB; training
# 100% at 9.56 dB) for reference.
#
#   bash scripts/frontier.sh [OUT=runs/frontier]
#   PAIRS="0.1,0.7 0.1,2 0.3,1 1,1" EPOCHS=8 TRAIN_LIMIT=50000 EVAL_TRAIN=10000 EVAL_TEST=10000 \
#   CLASSIFIERS=a.safetensors,b,... bash scripts/frontier.sh
# (CLASSIFIERS: default the preset's four shipped ones.)
#
# Every run is a separate `dmvjnd train` + `dmvjnd eval`; rerunning the
# script skips finished runs and resumes unfinished ones. The table goes to
# OUT/frontier.md and is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-runs/frontier}
pairs=${PAIRS:-"0.1,0.7 0.1,2 0.3,1 1,1"}
epochs=${EPOCHS:-8}
train_limit=${TRAIN_LIMIT:-50000}
eval_train=${EVAL_TRAIN:-10000}
eval_test=${EVAL_TEST:-10000}
cls=()
[ -n "${CLASSIFIERS:-}" ] && cls=(--classifiers "$CLASSIFIERS")
bin=build/dmvjnd
py=${PYTHON:-python3}
mkdir -p "$out"
for p in $pairs; do
    a=${p%,*} b=${p#*,}
    d="$out/a${a}_b${b}"
    mkdir -p "$d"
    if [ ! -f "$d/jnd.safetensors" ]; then
        echo "== train alpha $a beta $b ($epochs epochs, $train_limit images)"
        "$bin" train --preset fast "${cls[@]}" --alpha "$a" --beta "$b" --epochs "$epochs" --train-limit "$train_limit" \
            --out "$d/jnd.safetensors" --checkpoint "$d/ckpt.safetensors" --resume --log "$d/train.csv" \
            --plots "$d" --cache "$out/jnd-cache.safetensors" 2>&1 | tee -a "$d/train.log"
    fi
    if [ ! -f "$d/train_eval.json" ]; then
        "$bin" eval --model "$d/jnd.safetensors" --split train --limit "$eval_train" --no-homogeneity --montage 0 \
            --quiet --json > "$d/train_eval.json"
    fi
    if [ ! -f "$d/eval/report.json" ]; then
        "$bin" eval --model "$d/jnd.safetensors" --split test --limit "$eval_test" --out "$d/eval" --quiet > /dev/null
    fi
done
$py - "$out" $pairs <<'PY' | tee "$out/frontier.md"
import json, os, sys
out, pairs = sys.argv[1], sys.argv[2:]
print("| alpha, beta | train RCA, PSNR (stored) | test RCA all / 0-999, PSNR (stored) | test RCA, PSNR (float) "
      "| WGN RCA | k/9 RCA, min over k = 1..8 |")
print("|---|---|---|---|---|---|")
for p in pairs:
    a, b = p.split(",")
    d = os.path.join(out, "a%s_b%s" % (a, b))
    tr = json.load(open(os.path.join(d, "train_eval.json")))["train"]
    r = json.load(open(os.path.join(d, "eval", "report.json")))
    t, s = r["test"], r["test_subset"]
    print("| %s, %s | %.2f%% at %.2f dB | %.2f / %.2f%% at %.2f dB | %.2f%% at %.2f dB | %.2f%% | %.2f%% |" % (
        a, b, 100 * tr["rca_mean"], tr["psnr_db"], 100 * t["rca_mean"], 100 * s["rca_mean"], t["psnr_db"],
        100 * t["float_rca_mean"], t["float_psnr_db"], 100 * t["wgn_rca_mean"], 100 * min(t["homogeneity_rca"])))
print("| paper (Jin et al.) | 100% at 9.56 dB | 92.18% at 9.56 dB | | 15.5% | |")
PY
