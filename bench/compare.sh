#!/usr/bin/env bash
# Runs `dmvjnd bench` and its PyTorch peer (bench/bench_torch.py) on the same
# model and batch, alternating in this one script, and prints both figures
# (medians of ROUNDS rounds, default 3) and the ratio.
# Usage: [ROUNDS=3] [RUNS=5 STEPS=5 WARMUP=3] [DMVJND_CONV=path] bench/compare.sh [model|all] [batch]
# (RUNS/STEPS/WARMUP: timed runs, steps per run and untimed steps, the same on both sides)
# ("all": the four JND classifiers, one after the other; DMVJND_CONV forces
# dmvjnd's convolution path, e.g. winograd-avx2 on an AVX-512 machine).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet20}
batch=${2:-128}
if [ "$model" = all ]; then
    for m in alexnet vgg11bn resnet20 densenet40bc; do bash "$0" "$m" "$batch"; done
    exit 0
fi
py=${PYTHON:-/usr/bin/python3}
rounds=${ROUNDS:-3}
reps=(--runs "${RUNS:-5}" --steps "${STEPS:-5}" --warmup "${WARMUP:-3}" --threads "${THREADS:-$(nproc)}")
reps=(--runs "${RUNS:-5}" --steps "${STEPS:-5}" --warmup "${WARMUP:-3}")
# dmvjnd and PyTorch alternate for ROUNDS rounds and each side reports the
# median of its rounds: on a shared machine one slow moment would otherwise
# decide a single-shot ratio (single runs of resnet20 inference gave 1.85x to
# 2.70x within an hour).
cs=() ts=()
for ((r = 0; r < rounds; r++)); do
    cs+=("$(build/dmvjnd bench --model "$model" --batch "$batch" "${reps[@]}" --json)")
    ts+=("$($py bench/bench_torch.py --model "$model" --batch "$batch" "${reps[@]}")")
done
$py - "${cs[@]}" "${ts[@]}" <<'PY'
import json, statistics, sys
rest = [json.loads(a) for a in sys.argv[1:]]
n = len(rest) // 2
cs, ts = rest[:n], rest[n:]
c, t = cs[0], ts[0]
print("model %s, batch %d, %d threads, dmvjnd conv path %s; PyTorch %s; %d alternating rounds, medians"
      % (c["model"], c["batch"], c["threads"], c.get("conv_path", "?"), t["torch"], n))
print("%-6s %12s %12s %8s   %s" % ("", "dmvjnd", "pytorch", "ratio", "ratio of each round"))
out = {"conv_path": c.get("conv_path"), "dmvjnd": cs, "pytorch": ts}
for k, name in (("train_img_per_s", "train"), ("infer_img_per_s", "infer")):
    cr, tr = [x[k] for x in cs], [x[k] for x in ts]
    cm, tm = statistics.median(cr), statistics.median(tr)
    each = " ".join("%.2fx" % (a / b) for a, b in zip(cr, tr))
    print("%-6s %10.1f/s %10.1f/s %7.2fx   %s" % (name, cm, tm, cm / tm, each))
    out[name + "_ratio"] = round(cm / tm, 2)
    out[name + "_img_per_s"] = {"dmvjnd": cm, "pytorch": tm}
print(json.dumps(out))
PY
