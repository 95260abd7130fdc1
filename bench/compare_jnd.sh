#!/usr/bin/env bash
# The DMV-JND training step (E-D + Adam through four frozen classifiers) in
# dmvjnd (`dmvjnd bench --jnd`) and in its PyTorch twin
# (tools/torch/jnd_step.py), same networks, batch and thread count, one after
# the other in this one script; prints both and the ratio. The two alternate
# for ROUNDS rounds (default 2) and each side reports the median of its
# rounds, so that a load that changes during the script (a shared machine)
# biases neither side; the ratio of every round is printed too.
# Usage: bench/compare_jnd.sh [batch] [width] [runs] [steps]
# (JND_CLASSIFIERS=a.safetensors,b,c,d times trained classifiers instead of
# freshly initialised ones; the PyTorch side loads the same files.)
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${1:-50}
width=${2:-1}
runs=${3:-3}
steps=${4:-1}
rounds=${ROUNDS:-2}
py=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
cargs=(--jnd --batch "$batch" --jnd-width "$width" --runs "$runs" --steps "$steps" --warmup 1 --threads "$threads" --json)
targs=(--batch "$batch" --width "$width" --runs "$runs" --steps "$steps" --warmup 1 --threads "$threads")
if [ -n "${JND_CLASSIFIERS:-}" ]; then
    cargs+=(--jnd-classifiers "$JND_CLASSIFIERS")
    archs=$($py - "$JND_CLASSIFIERS" <<'PY'
import json, struct, sys
out = []
for p in sys.argv[1].split(","):
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        out.append(json.loads(f.read(n))["__metadata__"]["arch"])
print(",".join(out))
PY
)
    targs+=(--classifiers "$archs" --weights "$JND_CLASSIFIERS")
fi
load0=$(cut -d' ' -f1 /proc/loadavg)
cs=() ts=()
for ((r = 0; r < rounds; r++)); do
    cs+=("$(build/dmvjnd bench "${cargs[@]}")")
    ts+=("$($py tools/torch/jnd_step.py "${targs[@]}")")
done
load1=$(cut -d' ' -f1 /proc/loadavg)
$py - "$load0" "$load1" "${cs[@]}" "${ts[@]}" <<'PY'
import json, statistics, sys
load0, load1 = sys.argv[1], sys.argv[2]
rest = [json.loads(a) for a in sys.argv[3:]]
n = len(rest) // 2
cs, ts = rest[:n], rest[n:]
c_rates = [c["jnd_train_img_per_s"] for c in cs]
t_rates = [t["jnd_train_img_per_s"] for t in ts]
c_med, t_med = statistics.median(c_rates), statistics.median(t_rates)
r = c_med / t_med
c, t = cs[0], ts[0]
print("JND training step: E-D width %g, %d classifiers, batch %d, %d threads; PyTorch %s; %d alternating rounds; "
      "load average %s -> %s" % (c["jnd_width"], c["classifiers"], c["batch"], c["threads"], t["torch"], n, load0,
                                 load1))
print("%-8s %12s %12s %8s" % ("", "dmvjnd", "pytorch", "ratio"))
for i in range(n):
    print("%-8s %10.1f/s %10.1f/s %7.2fx" % ("round %d" % (i + 1), c_rates[i], t_rates[i], c_rates[i] / t_rates[i]))
print("%-8s %10.1f/s %10.1f/s %7.2fx" % ("median", c_med, t_med, r))
print(json.dumps({"dmvjnd": c, "pytorch": t, "dmvjnd_img_per_s": c_rates, "pytorch_img_per_s": t_rates,
                  "jnd_ratio": round(r, 2), "load_average": [float(load0), float(load1)]}))
PY
