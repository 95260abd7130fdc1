#!/usr/bin/env bash
# Trains the four shipped CIFAR-10 classifiers (models/README.md) one after
# the other, with the recipes the shipped files were made with. Each run
# checkpoints every epoch into runs/ and resumes from there, so the script can
# be stopped and rerun at any time; a finished run is skipped.
#
#   bash scripts/train-classifiers.sh [alexnet vgg11bn resnet20 densenet40bc]
#
# Logs: runs/<arch>.log (progress), runs/<arch>.csv (one row per epoch).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DMVJND:-build/dmvjnd}
mkdir -p runs models

recipe() {
    case $1 in
    alexnet) echo "--epochs 30 --batch 128 --optim sgd --lr 0.05 --momentum 0.9 --nesterov --wd 5e-4 --schedule cosine" ;;
    vgg11bn) echo "--epochs 27 --batch 128 --optim sgd --lr 0.05 --momentum 0.9 --nesterov --wd 5e-4 --schedule cosine" ;;
    resnet20) echo "--epochs 30 --batch 128 --optim sgd --lr 0.1 --momentum 0.9 --nesterov --wd 5e-4 --schedule cosine" ;;
    densenet40bc) echo "--epochs 20 --batch 128 --optim sgd --lr 0.1 --momentum 0.9 --nesterov --wd 5e-4 --schedule cosine" ;;
    *) echo "train-classifiers: unknown model '$1'" >&2; return 2 ;;
    esac
}

for arch in "${@:-alexnet vgg11bn resnet20 densenet40bc}"; do
    for a in $arch; do
        r=$(recipe "$a")
        if [ -f "models/${a}_v1.0.safetensors" ]; then
            echo "== $a: models/${a}_v1.0.safetensors exists, skipped"
            continue
        fi
        echo "== $a: $bin train-classifier --arch $a $r --seed 1 (log: runs/$a.log)"
        start=$(date +%s)
        # shellcheck disable=SC2086
        "$bin" train-classifier --arch "$a" $r --seed 1 --out "models/${a}_v1.0.safetensors" \
            --checkpoint "runs/$a.ckpt" --log "runs/$a.csv" --resume >> "runs/$a.log" 2>&1
        echo "== $a: done in $(($(date +%s) - start)) s (this run; runs/$a.csv has every epoch's time)"
    done
done
