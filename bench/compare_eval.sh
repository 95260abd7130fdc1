#!/usr/bin/env bash
# JND evaluation (`dmvjnd eval`: generation, then x + e in float, WGN and
# shaped noise of the same energy, x + (k/9) e for k = 1..8, every one
# classified by the four classifiers) in dmvjnd and in its PyTorch twin
# (tools/torch/bench_jnd_eval.py), on the same first N CIFAR-10 test images,
# same model files, batch and thread count, in this one script. The two
# alternate for ROUNDS rounds (default 2); each side reports the median of its
# rounds (a changing load on a shared machine biases neither side), and every
# round's ratio is printed. Both time one pass over the images after loading
# the models, warm-up included (dmvjnd eval's "seconds").
# Usage: bench/compare_eval.sh [images=1000] [batch=200]
set -euo pipefail
cd "$(dirname "$0")/.."
images=${1:-1000}
batch=${2:-200}
rounds=${ROUNDS:-2}
py=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-$(nproc)}
model=${MODEL:-models/jnd_v1.0.safetensors}
export DMVJND_DATA=${DMVJND_DATA:-data/cifar-10-batches-bin}
load0=$(cut -d' ' -f1 /proc/loadavg)
cs=() ts=()
for ((r = 0; r < rounds; r++)); do
    cs+=("$(build/dmvjnd eval --model "$model" --split test --limit "$images" --subset 0 --montage 0 \
        --batch "$batch" --threads "$threads" --quiet --json)")
    ts+=("$($py tools/torch/bench_jnd_eval.py --model "$model" --images "$images" --batch "$batch" \
        --threads "$threads")")
done
load1=$(cut -d' ' -f1 /proc/loadavg)
$py - "$load0" "$load1" "${OMP_WAIT_POLICY:-}" "${cs[@]}" "${ts[@]}" <<'PY'
import json, statistics, sys
load0, load1, wait = sys.argv[1], sys.argv[2], sys.argv[3] or "default"
rest = [json.loads(a) for a in sys.argv[4:]]
n = len(rest) // 2
cs, ts = rest[:n], rest[n:]
c_rates = [c["test"]["images"] / c["seconds"] for c in cs]
t_rates = [t["eval_img_per_s"] for t in ts]
c_med, t_med = statistics.median(c_rates), statistics.median(t_rates)
c, t = cs[0], ts[0]
print("JND evaluation: %s, %d test images, batch %s, %s threads; PyTorch %s; %d alternating rounds; "
      "OMP_WAIT_POLICY %s; load average %s -> %s" % (c["model"], c["test"]["images"], t["batch"], t["threads"],
                                                     t["torch"], n, wait, load0, load1))
print("%-8s %12s %12s %8s" % ("", "dmvjnd", "pytorch", "ratio"))
for i in range(n):
    print("%-8s %10.2f/s %10.2f/s %7.2fx" % ("round %d" % (i + 1), c_rates[i], t_rates[i], c_rates[i] / t_rates[i]))
print("%-8s %10.2f/s %10.2f/s %7.2fx" % ("median", c_med, t_med, c_med / t_med))
s = c["test"]
print("same figures? RCA x+e %.4f / %.4f; float %.4f / %.4f; WGN %.4f / %.4f; CAM-shaped %.4f / %.4f; "
      "homogeneity 4/9 %.4f / %.4f (dmvjnd / twin)" % (
          s["rca_mean"], t["x_plus_e_rca_mean"], s["float_rca_mean"], t["float_rca_mean"], s["wgn_rca_mean"],
          t["wgn_rca_mean"], s.get("cam_noise_rca_mean", float("nan")), t["cam_noise_rca_mean"],
          s["homogeneity_rca"][3], t["homogeneity_4_rca_mean"]))
print(json.dumps({"dmvjnd_img_per_s": c_rates, "pytorch_img_per_s": t_rates, "eval_ratio": round(c_med / t_med, 2),
                  "dmvjnd_peak_rss_bytes": c.get("peak_rss_bytes"), "omp_wait_policy": wait,
                  "load_average": [float(load0), float(load1)]}))
PY
