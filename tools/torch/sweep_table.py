#!/usr/bin/env python3
"""The RCA-PSNR frontier of one or more jnd_sweep.py runs as a Markdown table.

    python3 tools/torch/sweep_table.py sweep1.json [sweep2.json ...]

One row per trained configuration, sorted by test PSNR (stored images):
training and test RCA and PSNR on the stored 8-bit x + e, the same on the
unclipped float x + e (what the paper probably measured), the WGN test, and
the homogeneity test (RCA at k/9 = 1/9 ... 8/9). The paper's point (test RCA
92.18% at 9.56 dB, training RCA 100%) is the last row, for reference.
Standard library only: it runs wherever the JSON is.
"""
import json
import sys


def pct(v):
    return "%.2f%%" % (100.0 * v)


def rows_of(path):
    with open(path) as f:
        doc = json.load(f)
    for c in doc["configs"]:
        if c.get("status") != "done" or "final" not in c:
            continue
        cfg, fin = c["config"], c["final"]
        tr, te = fin["train"]["all"], fin["test"]["all"]
        name = "%g, %g, %d" % (cfg["alpha"], cfg["beta"], cfg["epochs"])
        if abs(cfg["lr"] - 1e-3) > 1e-12:
            name += " (lr %g)" % cfg["lr"]
        yield te["psnr"], [
            name,
            "%s at %.2f dB" % (pct(tr["rca_mean"]), tr["psnr"]),
            "%s at %.2f dB" % (pct(te["rca_mean"]), te["psnr"]),
            "%s at %.2f dB" % (pct(te["float_rca_mean"]), te["float_psnr"]),
            pct(te["wgn_rca_mean"]),
            " / ".join("%.1f" % (100.0 * h["rca_mean"]) for h in te["homogeneity"]),
        ]


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    rows = []
    for p in argv[1:]:
        try:
            rows.extend(rows_of(p))
        except (OSError, ValueError, KeyError) as e:
            sys.stderr.write("sweep_table: %s: %s\n" % (p, e))
            return 3
    rows.sort(key=lambda r: r[0])
    print("| alpha, beta, epochs | train RCA (stored) | test RCA (stored) | test RCA (unclipped float) "
          "| WGN RCA | test RCA at k/9, k = 1..8 |")
    print("|---|---|---|---|---|---|")
    for _, r in rows:
        print("| " + " | ".join(r) + " |")
    print("| the paper (Sec. V-B to V-D) | 100% at 9.56 dB | 92.18% (PSNR not stated) | (not stated which) "
          "| 15.5% (training) | 100% at every k (training) |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
