#!/usr/bin/env python3
"""Plots of a training CSV log written by `dmvjnd train` or `dmvjnd train-classifier`.

    python3 tools/plot_training.py LOG.csv OUTDIR

JND logs (dj_jnd_train; the paper's Fig. 5-7):
    rca.png   (a) mean RCA of the classifiers, training and test; (b) RCA per classifier
    loss.png  Loss, Loss1, Loss2, Loss3 (training solid, test dashed)
    psnr.png  PSNR of the 8-bit x_hat against x, and mean |e| in 8-bit levels
Classifier logs (dj_train_classifier):
    loss.png      training loss
    accuracy.png  training and test accuracy
    lr.png        learning rate of each epoch's first and last step

Next to the PNGs, plots.json records every series as plotted: the CSV column,
the values, and for each point its pixel in the PNG (x right, y down from the
top-left corner), so a test can check that the curve is drawn where the CSV
says. Exit status: 0 done, 2 bad command line, 3 unreadable or malformed CSV,
4 matplotlib missing.
"""
import csv
import json
import math
import os
import sys

DPI = 100
PANEL_W, PANEL_H = 5.6, 4.0  # inches per panel: 560 x 400 pixels at DPI
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def read_csv(path):
    """Columns of the log as lists of floats (None for an empty cell)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or not rows[0] or rows[0][0] != "epoch":
        raise ValueError("%s: not a training log (the first column must be 'epoch')" % path)
    header = rows[0]
    cols = {name: [] for name in header}
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError("%s: line %d has %d fields, the header %d" % (path, lineno, len(row), len(header)))
        for name, cell in zip(header, row):
            try:
                cols[name].append(float(cell) if cell != "" else None)
            except ValueError:
                raise ValueError("%s: line %d: column %s is '%s', not a number" % (path, lineno, name, cell))
    return header, cols


def series(cols, column, label, color, dashed=False, scale=1.0):
    """A series for a column, or None when the column is absent or empty."""
    if column not in cols or not any(v is not None for v in cols[column]):
        return None
    pts = [(x, y * scale) for x, y in zip(cols["epoch"], cols[column]) if x is not None and y is not None]
    return {"column": column, "label": label, "color": color, "dashed": dashed, "scale": scale,
            "x": [p[0] for p in pts], "y": [p[1] for p in pts]}


def jnd_figures(header, cols):
    tags = [c[len("train_rca_"):] for c in header if c.startswith("train_rca_") and c != "train_rca_mean"]
    per_class = []
    for k, tag in enumerate(tags):
        color = COLORS[k % len(COLORS)]
        per_class.append(series(cols, "train_rca_" + tag, tag + " train", color, False, 100))
        per_class.append(series(cols, "test_rca_" + tag, tag + " test", color, True, 100))
    losses = []
    names = [("loss", "(a) Loss (Eq. 7)"), ("loss1", "(b) Loss1, cross-entropy (Eq. 9)"),
             ("loss2", "(c) Loss2, magnitude (Eq. 13)"), ("loss3", "(d) Loss3, spatial distribution (Eq. 15)")]
    for col, title in names:
        losses.append({"title": title, "xlabel": "epoch", "ylabel": "loss (dimensionless)",
                       "series": [series(cols, "train_" + col, "train", COLORS[0]),
                                  series(cols, "test_" + col, "test (8-bit x_hat)", COLORS[1], True)]})
    return {
        "rca.png": [
            {"title": "(a) RCA, mean of the classifiers", "xlabel": "epoch", "ylabel": "RCA (%)",
             "series": [series(cols, "train_rca_mean", "train", COLORS[0], False, 100),
                        series(cols, "test_rca_mean", "test (8-bit x_hat)", COLORS[1], True, 100),
                        series(cols, "test_float_rca_mean", "test (float x_hat)", COLORS[2], True, 100)]},
            {"title": "(b) RCA per classifier", "xlabel": "epoch", "ylabel": "RCA (%)", "series": per_class},
        ],
        "loss.png": losses,
        "psnr.png": [
            {"title": "PSNR of the 8-bit x_hat against x", "xlabel": "epoch", "ylabel": "PSNR (dB)",
             "series": [series(cols, "train_psnr", "train", COLORS[0]),
                        series(cols, "test_psnr", "test", COLORS[1], True)]},
            {"title": "mean |e|", "xlabel": "epoch", "ylabel": "mean |e| (8-bit levels)",
             "series": [series(cols, "train_mean_abs_e", "train", COLORS[0]),
                        series(cols, "test_mean_abs_e", "test", COLORS[1], True)]},
        ],
    }


def classifier_figures(header, cols):
    return {
        "loss.png": [{"title": "training loss (cross-entropy)", "xlabel": "epoch", "ylabel": "loss (nats)",
                      "series": [series(cols, "train_loss", "train", COLORS[0])]}],
        "accuracy.png": [{"title": "accuracy", "xlabel": "epoch", "ylabel": "accuracy (%)",
                          "series": [series(cols, "train_acc", "train (augmented)", COLORS[0], False, 100),
                                     series(cols, "test_acc", "test", COLORS[1], True, 100)]}],
        "lr.png": [{"title": "learning rate", "xlabel": "epoch", "ylabel": "learning rate (per step)",
                    "series": [series(cols, "lr_first", "first step of the epoch", COLORS[0]),
                               series(cols, "lr_last", "last step of the epoch", COLORS[1], True)]}],
    }


def draw(path, panels, plt, MaxNLocator):
    """One PNG of panels (two per row); returns the panels with pixel positions."""
    ncols = 2 if len(panels) > 1 else 1
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(PANEL_W * ncols, PANEL_H * nrows), dpi=DPI, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    out = []
    for ax, panel in zip(axes.flat, panels):
        drawn = [s for s in panel["series"] if s is not None]
        for s in drawn:
            ax.plot(s["x"], s["y"], color=s["color"], linestyle="--" if s["dashed"] else "-",
                    marker="o", markersize=4, linewidth=1.5, label=s["label"])
        ax.set_title(panel["title"], fontsize=10)
        ax.set_xlabel(panel["xlabel"])
        ax.set_ylabel(panel["ylabel"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=8)
        out.append({"title": panel["title"], "xlabel": panel["xlabel"], "ylabel": panel["ylabel"], "series": drawn})
    fig.tight_layout()
    fig.canvas.draw()
    height = fig.canvas.get_width_height()[1]
    for ax, panel in zip(axes.flat, out):
        for s in panel["series"]:
            xy = ax.transData.transform(list(zip(s["x"], s["y"]))) if s["x"] else []
            s["pixels"] = [[float(px), float(height - py)] for px, py in xy]
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return out


def main(argv):
    if len(argv) != 3 or argv[1] in ("-h", "--help"):
        sys.stderr.write("usage: plot_training.py LOG.csv OUTDIR\n")
        return 2
    csv_path, out_dir = argv[1], argv[2]
    try:
        header, cols = read_csv(csv_path)
    except (OSError, ValueError) as e:
        sys.stderr.write("plot_training.py: %s\n" % e)
        return 3
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        sys.stderr.write("plot_training.py: matplotlib is not installed (python3-matplotlib); no plots\n")
        return 4
    figures = jnd_figures(header, cols) if "train_rca_mean" in cols else classifier_figures(header, cols)
    os.makedirs(out_dir, exist_ok=True)
    record = {"csv": os.path.abspath(csv_path), "dpi": DPI, "figures": {}}
    for name, panels in figures.items():
        record["figures"][name] = draw(os.path.join(out_dir, name), panels, plt, MaxNLocator)
    tmp = os.path.join(out_dir, "plots.json.tmp")
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1, allow_nan=False)
    os.replace(tmp, os.path.join(out_dir, "plots.json"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
