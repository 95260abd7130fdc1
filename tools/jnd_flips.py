#!/usr/bin/env python3
"""Where does a JND model lose labels? Splits each classifier's changed labels by whether the
classifier had the image right (its label on x equals CIFAR-10's true label) or wrong.

    build/dmvjnd generate --model models/jnd_v1.0.safetensors --split train --limit 10000 --out runs/gen-train
    python3 tools/jnd_flips.py runs/gen-train/results.csv data/cifar-10-batches-bin

The question it answers: are the labels the JND changes spread over all images, or concentrated on
the images a classifier already gets wrong (low-margin images that any distortion tips over)? The
second caps the training RCA a model can reach without knowing each classifier's margins.
On the results of `generate --keep-labels` no label changes; the script then summarises how e was
scaled (images scaled down to k/9, dropped, PSNR statistics).
Standard library only; reads the CIFAR-10 binary files for the true labels.
"""
import collections
import csv
import os
import statistics
import sys

RECORD = 3073  # 1 label byte + 32*32*3 pixels


def true_labels(cifar_dir, split):
    files = ["data_batch_%d.bin" % i for i in range(1, 6)] if split == "train" else ["test_batch.bin"]
    labels = []
    for name in files:
        path = os.path.join(cifar_dir, name)
        try:
            data = open(path, "rb").read()
        except OSError as err:
            sys.exit("jnd_flips: %s: %s" % (path, err.strerror))
        if len(data) % RECORD:
            sys.exit("jnd_flips: %s: %d bytes is not a whole number of %d-byte records" % (path, len(data), RECORD))
        labels.extend(data[i] for i in range(0, len(data), RECORD))
    return labels


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: jnd_flips.py RESULTS.csv CIFAR_DIR")
    try:
        with open(sys.argv[1], newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        sys.exit("jnd_flips: %s: %s" % (sys.argv[1], err.strerror))
    if not rows or "source" not in rows[0]:
        sys.exit("jnd_flips: %s: no rows with a 'source' column (a dmvjnd generate results.csv)" % sys.argv[1])
    if any(not r["source"].startswith("cifar10:") for r in rows):
        sys.exit("jnd_flips: %s: every image must come from CIFAR-10 (source cifar10:SPLIT:INDEX); "
                 "PNG inputs have no true label" % sys.argv[1])
    split = rows[0]["source"].split(":")[1]
    truth = true_labels(sys.argv[2], split)
    names = [k[:-len("_before")] for k in rows[0] if k.endswith("_before")]
    print("%d %s images; labels changed by the JND, split by whether the classifier had the image right" %
          (len(rows), split))
    print("| classifier | right on x | changed among those | wrong on x | changed among those | "
          "share of all changes on images it had wrong |")
    print("|---|---|---|---|---|---|")
    for n in names:
        right = wrong = changed_right = changed_wrong = 0
        for r in rows:
            t = truth[int(r["source"].split(":")[2])]
            changed = r[n + "_kept"] != "1"
            if int(r[n + "_before"]) == t:
                right += 1
                changed_right += changed
            else:
                wrong += 1
                changed_wrong += changed
        total = changed_right + changed_wrong
        print("| %s | %d | %d (%.2f%%) | %d | %d (%.2f%%) | %.0f%% |" % (
            n, right, changed_right, 100.0 * changed_right / max(right, 1), wrong, changed_wrong,
            100.0 * changed_wrong / max(wrong, 1), 100.0 * changed_wrong / max(total, 1)))
    if "scale" in rows[0]:
        keep_labels_summary(rows)


def keep_labels_summary(rows):
    """What --keep-labels did: the scale column is the fraction k/9 of e that was kept."""
    scale = [float(r["scale"]) for r in rows]
    psnr = [float(r["psnr_db"]) for r in rows]
    scaled = [s for s in scale if 0 < s < 1]
    dropped = sum(1 for s in scale if s == 0)
    with_e = [p for p, s in zip(psnr, scale) if s > 0]
    counts = sorted(collections.Counter(round(9 * s) for s in scaled).items())
    print("e scaled down on %d images (%s), dropped on %d, whole on %d" % (
        len(scaled), ", ".join("%d/9: %d" % kc for kc in counts) or "none", dropped,
        len(rows) - len(scaled) - dropped))
    print("PSNR: mean %.2f dB%s, %.2f dB over the %d with some e; median %.2f dB" % (
        statistics.mean(psnr), " (images without e at the %.0f dB cap)" % max(psnr) if dropped else "",
        statistics.mean(with_e) if with_e else float("nan"), len(with_e), statistics.median(psnr)))


if __name__ == "__main__":
    main()
