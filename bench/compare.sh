#!/usr/bin/env bash
# Runs `dmvjnd bench` and its PyTorch peer (bench/bench_torch.py) on the same
# model and batch, one after the other in this one script, and prints both
# figures and the ratio. Usage: bench/compare.sh [model|all] [batch]
# ("all": the four JND classifiers, one after the other).
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-resnet20}
batch=${2:-128}
if [ "$model" = all ]; then
    for m in alexnet vgg11bn resnet20 densenet40bc; do bash "$0" "$m" "$batch"; done
    exit 0
fi
py=/usr/bin/python3
c=$(build/dmvjnd bench --model "$model" --batch "$batch" --json)
t=$($py bench/bench_torch.py --model "$model" --batch "$batch")
$py - "$c" "$t" <<'PY'
import json, sys
c, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("model %s, batch %d, %d threads; PyTorch %s" % (c["model"], c["batch"], c["threads"], t["torch"]))
print("%-6s %12s %12s %8s" % ("", "dmvjnd", "pytorch", "ratio"))
for k, name in (("train_img_per_s", "train"), ("infer_img_per_s", "infer")):
    print("%-6s %10.1f/s %10.1f/s %7.2fx" % (name, c[k], t[k], c[k] / t[k]))
print(json.dumps({"dmvjnd": c, "pytorch": t,
                  "train_ratio": round(c["train_img_per_s"] / t["train_img_per_s"], 2),
                  "infer_ratio": round(c["infer_img_per_s"] / t["infer_img_per_s"], 2)}))
PY
