#!/usr/bin/env python3
# The figure of jobs/fashion_mnist_figure.sh: its CSV (one row per finished run) -> PNGs of test accuracy and
# gap closed against parameters and of one pair's validation curves, and a markdown table on stdout.
#
# Usage: plot_figure.py CSV [--out-dir DIR] [--pair POINT:SEED] [--kd-loss kd:4]
#   CSV columns (by header name): point, loss, seed, kind, epochs, params, val_acc, test_acc, log, arch; rows
#   point=ensemble, loss=teachers / best-member hold the ensemble (mean of logits) and its best member.
# Writes DIR/figure_accuracy.png, DIR/figure_gap.png and DIR/figure_curves.png (the --pair's per-epoch logs).
# A point "beats labels by more than the spread" when its mean KD accuracy exceeds its mean labels accuracy
# by more than the sum of the two standard deviations over seeds (the error bars do not overlap).
import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NEED = ["point", "loss", "seed", "kind", "epochs", "params", "val_acc", "test_acc", "log", "arch"]
KINDS = {  # kind: (marker, line style or None for markers only, legend name)
    "shallow": ("o", "-", "fully connected"),
    "conv-shallow": ("^", "--", "conv-shallow"),
    "deep": ("s", None, "deep"),
}
COLOURS = {"labels": "tab:blue", "kd": "tab:red"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    sys.exit(f"plot_figure.py: {msg}")


def shown(path):
    """A path as the table records it: relative to the repository when it lies inside (the table is
    committed, and the machine that wrote it is no reader's), else as given."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel == ".." or rel.startswith(".." + os.sep) else rel


def load(path, kd_loss):
    """The ensemble's two rows and the students {point: {"kind", "params", "epochs", "labels"/"kd": {seed: row}}}."""
    if not os.path.isfile(path):
        fail(f"{path}: no such file")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in NEED if c not in (reader.fieldnames or [])]
        if missing:
            fail(f"{path}: missing columns {missing}")
        rows = list(reader)
    ens = {r["loss"]: r for r in rows if r["point"] == "ensemble"}
    if "teachers" not in ens or "best-member" not in ens:
        fail(f"{path}: no ensemble rows (point=ensemble, loss=teachers and best-member)")
    points = {}
    for r in rows:
        if r["point"] == "ensemble":
            continue
        side = "labels" if r["loss"] == "labels" else "kd" if r["loss"] == kd_loss else None
        if side is None:
            fail(f"{path}: point {r['point']}: loss '{r['loss']}' is neither labels nor {kd_loss}")
        if r["kind"] not in KINDS:
            fail(f"{path}: point {r['point']}: unknown kind '{r['kind']}'")
        p = points.setdefault(r["point"], {"kind": r["kind"], "params": int(r["params"]),
                                           "epochs": r["epochs"], "labels": {}, "kd": {}})
        p[side][r["seed"]] = r
    if not points:
        fail(f"{path}: no student rows yet")
    return ens, points


def mean_sd(values):
    """(mean, standard deviation over seeds or None with fewer than 2, n)."""
    if not values:
        return None, None, 0
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, len(values)


def summarise(points, ens_test):
    """Per point: mean/sd/n of labels and KD test and val accuracy, and of the gap closed over paired seeds."""
    out = {}
    for name, p in points.items():
        s = {"kind": p["kind"], "params": p["params"], "epochs": p["epochs"]}
        for side in ("labels", "kd"):
            s[side] = mean_sd([float(r["test_acc"]) for r in p[side].values()])
            s[side + "_val"] = mean_sd([float(r["val_acc"]) for r in p[side].values()])
        gaps = []
        for seed, lab in p["labels"].items():
            if seed in p["kd"]:
                b, k = float(lab["test_acc"]), float(p["kd"][seed]["test_acc"])
                if ens_test != b:
                    gaps.append(100 * (k - b) / (ens_test - b))
        s["gap"] = mean_sd(gaps)
        out[name] = s
    return out


def errorbar_series(ax, summary, side, kind, label):
    names = sorted((n for n, s in summary.items() if s["kind"] == kind and s[side][0] is not None),
                   key=lambda n: summary[n]["params"])
    if not names:
        return
    marker, style, _ = KINDS[kind]
    xs = [summary[n]["params"] for n in names]
    ys = [summary[n][side][0] for n in names]
    es = [summary[n][side][1] or 0 for n in names]
    ax.errorbar(xs, ys, yerr=es, marker=marker, linestyle=style or "none", color=COLOURS[side], capsize=3,
                label=label, markerfacecolor="white" if side == "labels" else COLOURS[side])


def plot_accuracy(summary, ens, out):
    fig, ax = plt.subplots(figsize=(8, 5.5))
    for kind, (_, _, kname) in KINDS.items():
        errorbar_series(ax, summary, "labels", kind, f"{kname}, on labels")
        errorbar_series(ax, summary, "kd", kind, f"{kname}, mimic (KD)")
    t, b = ens["teachers"], ens["best-member"]
    ax.axhline(float(t["test_acc"]), color="black", linewidth=1.2,
               label=f"teacher ensemble ({int(t['params']):,} parameters)")
    ax.axhline(float(b["test_acc"]), color="grey", linestyle=":", linewidth=1.2,
               label=f"its best member ({int(b['params']):,} parameters)")
    for name, s in summary.items():
        if s["kd"][0] is not None:
            ax.annotate(name, (s["params"], s["kd"][0]), textcoords="offset points", xytext=(4, 6), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters of the student")
    ax.set_ylabel("test accuracy (%), mean ± std over seeds")
    ax.set_title("Fashion-MNIST: students on labels and mimicking the ensemble")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def plot_gap(summary, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind, (marker, style, kname) in KINDS.items():
        names = sorted((n for n, s in summary.items() if s["kind"] == kind and s["gap"][0] is not None),
                       key=lambda n: summary[n]["params"])
        if names:
            ax.errorbar([summary[n]["params"] for n in names], [summary[n]["gap"][0] for n in names],
                        yerr=[summary[n]["gap"][1] or 0 for n in names], marker=marker,
                        linestyle=style or "none", capsize=3, label=kname)
            for n in names:
                ax.annotate(n, (summary[n]["params"], summary[n]["gap"][0]), textcoords="offset points",
                            xytext=(4, 6), fontsize=7)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.axhline(100, color="black", linewidth=0.8, linestyle=":")
    ax.set_xscale("log")
    ax.set_xlabel("parameters of the student")
    ax.set_ylabel("gap closed (%): (KD − labels) / (ensemble − labels)")
    ax.set_title("Share of the gap to the ensemble closed by mimic learning (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def read_log(path):
    """Per-epoch columns of a --log-csv file: {column: [values]}."""
    if not os.path.isfile(path):
        fail(f"{path}: no such per-epoch log")
    cols = defaultdict(list)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            for k, v in r.items():
                cols[k].append(float(v))
    if "val_acc" not in cols:
        fail(f"{path}: no val_acc column")
    return cols


def plot_curves(points, pair, csv_dir, ens, out):
    name, seed = pair
    if name not in points:
        print(f"plot_figure.py: no runs of point '{name}' yet: {os.path.basename(out)} not drawn", file=sys.stderr)
        return False
    p = points[name]
    if seed not in p["labels"] or seed not in p["kd"]:
        print(f"plot_figure.py: point {name} has no labels and KD pair for seed {seed} yet: "
              f"{os.path.basename(out)} not drawn", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for side, what in (("labels", "on labels"), ("kd", "mimic (KD)")):
        cols = read_log(os.path.join(csv_dir, p[side][seed]["log"]))
        ax.plot(cols["epoch"], [100 * v for v in cols["val_acc"]], marker="o", color=COLOURS[side],
                label=f"{what}: validation")
        if side == "labels" and min(cols.get("train_acc", [-1])) >= 0:
            ax.plot(cols["epoch"], [100 * v for v in cols["train_acc"]], linestyle=":", color=COLOURS[side],
                    label=f"{what}: training rows (dropout on)")
    ax.axhline(float(ens["teachers"]["val_acc"]), color="black", linewidth=1, label="teacher ensemble: validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{name} ({p['params']:,} parameters), seed {seed}: accuracy per epoch")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return True


def fmt(ms, digits=2, unit="%"):
    m, s, n = ms
    if m is None:
        return "–"
    return f"{m:.{digits}f}{unit}" if s is None else f"{m:.{digits}f} ± {s:.{digits}f}{unit}"


def verdict(s):
    (lm, lsd, ln), (km, ksd, kn) = s["labels"], s["kd"]
    if lm is None or km is None:
        return "–"
    if ln < 2 or kn < 2:
        return "n/a (needs 2+ seeds)"
    diff, spread = km - lm, lsd + ksd
    if diff > spread:
        return f"**yes** ({diff:+.2f} > {spread:.2f})"
    if -diff > spread:
        return f"no: labels better ({diff:+.2f}, spread {spread:.2f})"
    return f"no: within the spread ({diff:+.2f} ≤ {spread:.2f})"


def table(summary, ens, kd_loss):
    t, b = ens["teachers"], ens["best-member"]
    ens_params = int(t["params"])
    lines = [
        f"Teacher ensemble (mean of logits): test {float(t['test_acc']):.2f}%, validation "
        f"{float(t['val_acc']):.2f}%, {ens_params:,} parameters; its best member ({b['arch']}): test "
        f"{float(b['test_acc']):.2f}%.",
        "",
        f"| student | kind | parameters (share of the ensemble) | epochs | labels: test | {kd_loss}: test | "
        f"labels: val | {kd_loss}: val | seeds (labels / {kd_loss}) | gap closed | {kd_loss} beats labels by more "
        "than the spread? |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    order = sorted(summary, key=lambda n: (list(KINDS).index(summary[n]["kind"]), summary[n]["params"]))
    for n in order:
        s = summary[n]
        lines.append(
            f"| {n} | {s['kind']} | {s['params']:,} ({100 * s['params'] / ens_params:.1f}%) | {s['epochs']} | "
            f"{fmt(s['labels'])} | {fmt(s['kd'])} | {fmt(s['labels_val'])} | {fmt(s['kd_val'])} | "
            f"{s['labels'][2]} / {s['kd'][2]} | {fmt(s['gap'], 0)} | {verdict(s)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("csv")
    ap.add_argument("--out-dir", default=".")
    ap.add_argument("--pair", default="", help="POINT:SEED whose per-epoch validation curves are drawn")
    ap.add_argument("--kd-loss", default="kd:4", help="the loss column value of the mimic runs")
    a = ap.parse_args()
    ens, points = load(a.csv, a.kd_loss)
    summary = summarise(points, float(ens["teachers"]["test_acc"]))
    os.makedirs(a.out_dir, exist_ok=True)
    made = []
    for fname, draw in (("figure_accuracy.png", lambda o: plot_accuracy(summary, ens, o)),
                        ("figure_gap.png", lambda o: plot_gap(summary, o))):
        draw(os.path.join(a.out_dir, fname))
        made.append(fname)
    if a.pair:
        if ":" not in a.pair:
            fail(f"--pair: '{a.pair}' is not POINT:SEED")
        pair = tuple(a.pair.rsplit(":", 1))
        if plot_curves(points, pair, os.path.dirname(os.path.abspath(a.csv)), ens,
                       os.path.join(a.out_dir, "figure_curves.png")):
            made.append("figure_curves.png")
    print(table(summary, ens, a.kd_loss))
    print()
    print(f"figures: {', '.join(shown(os.path.join(a.out_dir, m)) for m in made)}")


if __name__ == "__main__":
    main()
