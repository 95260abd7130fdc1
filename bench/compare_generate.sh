#!/usr/bin/env bash
# JND generation (CAM of the classifiers, E-D, labels after: what a codec
# calls per image) in dmvjnd (`dmvjnd bench --jnd generate`) and in its
# PyTorch twin (tools/torch/bench_jnd_generate.py), on the same CIFAR-10 test
# images, the same model files, batch and thread count, in this one script.
# The two alternate for ROUNDS rounds (default 2) and each side reports the
# median of its rounds, so that a load that changes during the script (a
# shared machine) biases neither side; every round's ratio is printed too.
# Usage: bench/compare_generate.sh [images=500] [batch=100] [runs=2]
# (MODEL=file picks another model; both sides read the classifiers it names.)
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-500}
batch=${2:-100}
runs=${3:-2}
rounds=${ROUNDS:-2}
py=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
model=${MODEL:-models/jnd_v1.0.safetensors}
export DMVJND_DATA=${DMVJND_DATA:-data/cifar-10-batches-bin}
load0=$(cut -d' ' -f1 /proc/loadavg)
cs=() ts=()
for ((r = 0; r < rounds; r++)); do
    cs+=("$(build/dmvjnd bench --jnd generate --jnd-model "$model" --images "$images" --batch "$batch" \
        --runs "$runs" --threads "$threads" --json)")
    ts+=("$($py tools/torch/bench_jnd_generate.py --model "$model" --images "$images" --batch "$batch" \
        --runs "$runs" --threads "$threads")")
done
load1=$(cut -d' ' -f1 /proc/loadavg)
$py - "$load0" "$load1" "${OMP_WAIT_POLICY:-}" "${cs[@]}" "${ts[@]}" <<'PY'
import json, statistics, sys
load0, load1, wait = sys.argv[1], sys.argv[2], sys.argv[3] or "default"
rest = [json.loads(a) for a in sys.argv[4:]]
n = len(rest) // 2
cs, ts = rest[:n], rest[n:]
c_rates = [c["jnd_generate_img_per_s"] for c in cs]
t_rates = [t["jnd_generate_img_per_s"] for t in ts]
c_med, t_med = statistics.median(c_rates), statistics.median(t_rates)
c, t = cs[0], ts[0]
print("JND generation: %s, %d classifiers, %d %s images, batch %d, %d threads; PyTorch %s; %d alternating rounds; "
      "OMP_WAIT_POLICY %s; load average %s -> %s" % (c["jnd_model"], c["classifiers"], c["images"], c["data"],
                                                     c["batch"], c["threads"], t["torch"], n, wait, load0, load1))
print("%-8s %12s %12s %8s" % ("", "dmvjnd", "pytorch", "ratio"))
for i in range(n):
    print("%-8s %10.1f/s %10.1f/s %7.2fx" % ("round %d" % (i + 1), c_rates[i], t_rates[i], c_rates[i] / t_rates[i]))
print("%-8s %10.1f/s %10.1f/s %7.2fx" % ("median", c_med, t_med, c_med / t_med))
print(json.dumps({"dmvjnd": c, "pytorch": t, "dmvjnd_img_per_s": c_rates, "pytorch_img_per_s": t_rates,
                  "generate_ratio": round(c_med / t_med, 2), "omp_wait_policy": wait,
                  "load_average": [float(load0), float(load1)]}))
PY
