#!/usr/bin/env python3
"""Rate-accuracy plot of a `dmvjnd compress` run.

usage: plot_compress.py RESULTS_CSV OUT_PNG

Reads results.csv (one row per method x quality) and draws the mean RCA of
the four classifiers against the header-free rate (bits per pixel), one
curve per method, guard as a single marker. Needs matplotlib.
"""
import csv
import sys


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("plot_compress.py: matplotlib is not installed\n")
        return 1
    curves = {}
    codec = ""
    with open(argv[1], newline="") as f:
        for row in csv.DictReader(f):
            codec = row["codec"]
            curves.setdefault(row["method"], []).append(
                (float(row["bpp"]), float(row["rca_mean"]), int(row["quality"])))
    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    styles = {"prefilter": ":", "quant": "--", "rate": "-.", "alloc": "-"}
    colors = {"plain": "black", "jnd": "tab:red", "hvs": "tab:blue", "flat": "tab:green", "alloc": "tab:orange"}
    for method, pts in curves.items():
        pts.sort()
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        if method == "guard":
            ax.plot(xs, ys, marker="*", markersize=14, linestyle="none", color="tab:purple",
                    label="guard (classifiers check each image)")
            continue
        family = "alloc" if method == "jnd-alloc" else method.split("-")[0]
        kind = method.split("-")[1] if "-" in method else ""
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=2.2 if method in ("plain", "jnd-alloc") else 1.4,
                linestyle=styles.get(kind, "-"), color=colors.get(family, None), label=method)
    ax.set_xscale("log")
    ax.set_xlabel("rate (bits per pixel, entropy-coded bytes without headers; log scale)")
    ax.set_ylabel("RCA (mean of the four classifiers)")
    ax.set_title("%s: relative classification accuracy vs rate" % codec.upper())
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncol=2)
    fig.tight_layout()
    fig.savefig(argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
