#!/bin/sh
# The PyTorch twin's fine-tuning output is a dmvjnd model: tools/torch/jnd_sweep.py
# --init models/jnd_v1.0.safetensors --save-dir trains one epoch on 100 training
# images against resnet20, and `dmvjnd eval` of the file it wrote gives the
# twin's own final figures on test records 0-59 (RCA to one label, PSNR to
# 0.05 dB), with weights moved from the --init file and metadata naming this run.
data=${DMVJND_DATA:-data/cifar-10-batches-bin}
if [ ! -f "$data/test_batch.bin" ]; then
    echo "SKIP test_jnd_sweep_save: no CIFAR-10 in $data"
    echo "test_jnd_sweep_save: 0 passed, 0 failed, 1 skipped"; exit 0
fi
make -s "${BUILD:-build}/dmvjnd" >/dev/null || exit 1
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
if ! /usr/bin/python3 tools/torch/jnd_sweep.py --data "$data" --classifiers models/resnet20_v1.0.safetensors \
        --train-limit 100 --test-limit 60 --train-eval 50 --init models/jnd_v1.0.safetensors --flip 0 \
        --configs "0.1,0.7,1,1e-3" --threads 2 --log-every 0 --save-dir "$t" --out "$t/sweep.json" > "$t/log" 2>&1; then
    cat "$t/log"; echo "test_jnd_sweep_save: 0 passed, 1 failed"; exit 1
fi
model="$t/a0.1_b0.7_e1_lr0.001.safetensors"
if ! "${BUILD:-build}/dmvjnd" eval --model "$model" --split test --limit 60 --out "$t/eval" --json > "$t/eval.json" 2> "$t/eval.log"; then
    cat "$t/eval.log"; echo "test_jnd_sweep_save: 0 passed, 1 failed"; exit 1
fi
/usr/bin/python3 - "$t" "$model" <<'PY'
import json, sys
sys.path.insert(0, "tools/torch")
import numpy as np
import models
t, model = sys.argv[1], sys.argv[2]
twin = json.load(open(t + "/sweep.json"))["configs"][0]["final"]["test"]["all"]
text = open(t + "/eval.json").read()
c = json.loads(text[text.index("{"):])["test"]
fails = []
if abs(c["rca_mean"] - twin["rca_mean"]) > 1.0 / 60 + 1e-9:
    fails.append("RCA: dmvjnd %.4f, twin %.4f" % (c["rca_mean"], twin["rca_mean"]))
if abs(c["psnr_db"] - twin["psnr"]) > 0.05:
    fails.append("PSNR: dmvjnd %.3f, twin %.3f" % (c["psnr_db"], twin["psnr"]))
new, meta = models.read_safetensors(model)
old, _ = models.read_safetensors("models/jnd_v1.0.safetensors")
if np.array_equal(new["enc.0.weight"], old["enc.0.weight"]):
    fails.append("weights did not move from the --init file")
want = {"jnd.classifiers": "models/resnet20_v1.0.safetensors", "jnd.train.init": "models/jnd_v1.0.safetensors",
        "jnd.train.epochs": "1", "jnd.train.flip": "0", "jnd.beta": "0.7"}
fails += ["%s = %r, want %r" % (k, meta.get(k), v) for k, v in want.items() if meta.get(k) != v]
if not meta.get("jnd.train.trainer", "").startswith("tools/torch/jnd_sweep.py"):
    fails.append("jnd.train.trainer = %r" % meta.get("jnd.train.trainer"))
for f in fails:
    print("test_jnd_sweep_save: " + f)
print("test_jnd_sweep_save: %d passed, %d failed" % (0 if fails else 1, 1 if fails else 0))
sys.exit(1 if fails else 0)
PY
