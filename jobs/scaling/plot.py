#!/usr/bin/env python3
# Plots and report of a scaling study (jobs/scaling/study.sh): speedup, efficiency and per-phase breakdown
# PNGs per stage, and report.md with the tables, the environment and the exact command.
#
# Usage: plot.py OUT_DIR   reads OUT_DIR/{label,distill}.csv (columns keyed by header name: mode, repeat,
# cores, the stage's fields, phase, min_s, avg_s, max_s) and OUT_DIR/environment.txt; includes
# OUT_DIR/notes.md (a person's reading of the results) in the report when present.
import csv
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The grid of each stage: (outer column, inner column, short names). Series share the inner size.
GRIDS = {
    "label": ("shards", "groups", "S", "G", "member groups"),
    "distill": ("replicas", "model_shards", "R", "M", "model shards"),
}


def load(path):
    """Rows of one stage CSV, grouped per run configuration and repeat: {config: {repeat: {phase: row}}}."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    need = {"mode", "repeat", "cores", "stage", "ranks", "phase", "min_s", "avg_s", "max_s"}
    missing = need - set(rows[0].keys()) if rows else need
    if missing:
        sys.exit(f"{path}: missing columns {sorted(missing)}")
    runs = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        stage = r["stage"]
        outer, inner = GRIDS[stage][0], GRIDS[stage][1]
        key = (r["mode"], int(r["ranks"]), int(r[outer]), int(r[inner]), int(r["cores"]))
        runs[key][r["repeat"]][r["phase"]] = r
    return runs


def median_phase(reps, phase, col):
    vals = [float(ph[phase][col]) for ph in reps.values() if phase in ph]
    return statistics.median(vals) if vals else None


def summarise(runs):
    """Per configuration: median total (max over ranks), spread over repeats, median phase averages."""
    out = {}
    for key, reps in runs.items():
        totals = [float(ph["total"]["max_s"]) for ph in reps.values() if "total" in ph]
        phases = []
        for ph in reps.values():
            for p in ph:
                if p != "total" and p not in phases:
                    phases.append(p)
        any_rep = next(iter(reps.values()))
        extra = {k: v for k, v in any_rep["total"].items()} if "total" in any_rep else {}
        shares = [float(ph["total"]["cpu_share"]) for ph in reps.values()
                  if "total" in ph and ph["total"].get("cpu_share")]
        out[key] = {
            "cpu_share": statistics.median(shares) if shares else None,
            "total": statistics.median(totals),
            "lo": min(totals),
            "hi": max(totals),
            "n": len(totals),
            "phases": {p: median_phase(reps, p, "avg_s") for p in phases},
            "total_avg": median_phase(reps, "total", "avg_s"),
            "fields": extra,
        }
    return out


def metrics(summary, mode):
    """(speedup, efficiency, CPU-time efficiency) against the 1-rank run of the same mode. Strong: T1/TP and
    T1/(P TP); weak (work per rank fixed): P T1/TP and T1/TP. The CPU-time efficiency compares CPU seconds
    (wall x cpu share, summed over ranks) instead of wall seconds: what the ranks consumed, spinning
    included, whatever share of the cores other processes left them (None without cpu shares)."""
    base = [v for (m, p, o, i, c), v in summary.items() if m == mode and p == 1]
    if not base:
        return {}
    t1, s1 = base[0]["total"], base[0]["cpu_share"]
    res = {}
    for (m, p, o, i, c), v in summary.items():
        if m != mode:
            continue
        cpu_eff = None
        if s1 and v["cpu_share"]:
            cpu_eff = (t1 * s1) / (v["total"] * v["cpu_share"] * (p if mode == "strong" else 1))
        if mode == "strong":
            sp = t1 / v["total"]
            res[(m, p, o, i, c)] = (sp, sp / p, cpu_eff)
        else:
            eff = t1 / v["total"]
            res[(m, p, o, i, c)] = (eff * p, eff, cpu_eff)
    return res


def series(summary, mode):
    """{inner size: [(ranks, key), ...]} sorted by ranks."""
    s = defaultdict(list)
    for key in summary:
        if key[0] == mode:
            s[key[3]].append((key[1], key))
    return {k: sorted(v) for k, v in sorted(s.items())}


def plot_speedup(stage, summary, path):
    _, _, on, inn, inner_name = GRIDS[stage]
    fig, ax = plt.subplots(figsize=(6, 4.5))
    met = metrics(summary, "strong")
    allp = sorted({k[1] for k in summary if k[0] == "strong"})
    ax.plot(allp, allp, "k--", lw=1, label="ideal")
    for inner, pts in series(summary, "strong").items():
        xs = [p for p, k in pts]
        ys = [met[k][0] for p, k in pts]
        line, = ax.plot(xs, ys, "-", marker="o", label=f"{inn}={inner} ({inner_name})")
        for p, k in pts:
            if p > k[4]:
                ax.plot([p], [met[k][0]], "o", mfc="white", mec=line.get_color(), mew=2, ms=8, zorder=5)
    over = any(k[1] > k[4] for k in summary)
    ax.set_xscale("log", base=2)
    ax.set_xticks(allp)
    ax.set_xticklabels([str(p) for p in allp])
    ax.set_xlabel("ranks")
    ax.set_ylabel("speedup over 1 rank (median total time)")
    ax.set_title(f"mimic {stage}: strong scaling" + ("\n(hollow markers: more ranks than cores)" if over else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_efficiency(stage, summary, path):
    _, _, on, inn, inner_name = GRIDS[stage]
    modes = [m for m in ("strong", "weak") if any(k[0] == m for k in summary)]
    cpu = any(v["cpu_share"] for v in summary.values())
    nrow = 2 if cpu else 1
    fig, axes = plt.subplots(nrow, len(modes), figsize=(5.5 * len(modes), 4.2 * nrow), squeeze=False)
    for idx, (ax, mode) in enumerate([(a, m) for row in range(nrow) for a, m in zip(axes[row], modes)]):
        which = 1 if idx < len(modes) else 2
        met = {k: (v[0], v[which]) for k, v in metrics(summary, mode).items() if v[which] is not None}
        allp = sorted({k[1] for k in summary if k[0] == mode})
        ax.axhline(1.0, color="k", ls="--", lw=1, label="ideal")
        for inner, pts in series(summary, mode).items():
            pts = [(p, k) for p, k in pts if k in met]
            line, = ax.plot([p for p, k in pts], [met[k][1] for p, k in pts], "-", marker="o",
                            label=f"{inn}={inner} ({inner_name})")
            for p, k in pts:
                if p > k[4]:
                    ax.plot([p], [met[k][1]], "o", mfc="white", mec=line.get_color(), mew=2, ms=8, zorder=5)
        ax.set_xscale("log", base=2)
        ax.set_xticks(allp)
        ax.set_xticklabels([str(p) for p in allp])
        ax.set_ylim(0, max(1.2, max((v[1] for v in met.values()), default=1) * 1.1))
        ax.set_xlabel("ranks")
        if which == 1:
            ax.set_ylabel("parallel efficiency (wall clock)")
            what = "T1 / (P x TP)" if mode == "strong" else "T1 / TP, work per rank fixed"
        else:
            ax.set_ylabel("parallel efficiency (CPU seconds)")
            what = "CPU-s at 1 rank / CPU-s summed over ranks" if mode == "strong" else \
                "CPU-s at 1 rank / CPU-s per rank"
        ax.set_title(f"{stage}, {mode} scaling: {what}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def config_name(stage, key):
    mode, p, outer, inner, cores = key
    _, _, on, inn, _ = GRIDS[stage]
    star = "*" if p > cores else ""
    return f"P={p}{star} {inn}{inner}x{on}{outer}" if stage == "label" else f"P={p}{star} {on}{outer}x{inn}{inner}"


def plot_phases(stage, summary, path):
    modes = [m for m in ("strong", "weak") if any(k[0] == m for k in summary)]
    phases = []
    for v in summary.values():
        for p in v["phases"]:
            if p not in phases:
                phases.append(p)
    rows = max(sum(1 for k in summary if k[0] == m) for m in modes)
    fig, axes = plt.subplots(1, len(modes), figsize=(7.5 * len(modes), 1.2 + 0.45 * rows), squeeze=False)
    colors = plt.get_cmap("tab10")
    for ax, mode in zip(axes[0], modes):
        keys = sorted([k for k in summary if k[0] == mode], key=lambda k: (k[1], k[3]))
        names = [config_name(stage, k) for k in keys]
        left = [0.0] * len(keys)
        for j, ph in enumerate(phases + ["other"]):
            vals = []
            for k in keys:
                v = summary[k]
                if ph == "other":
                    known = sum(x for x in v["phases"].values() if x)
                    vals.append(max(0.0, (v["total_avg"] or 0) - known))
                else:
                    vals.append(v["phases"].get(ph) or 0.0)
            ax.barh(names, vals, left=left, color=colors(j % 10), label=ph)
            left = [a + b for a, b in zip(left, vals)]
        ax.invert_yaxis()
        ax.set_xlabel("seconds (median over repeats of the average over ranks)")
        ax.set_title(f"mimic {stage}, {mode} scaling: time per phase", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(stage, summary, mode):
    met = metrics(summary, mode)
    keys = sorted([k for k in summary if k[0] == mode], key=lambda k: (k[1], k[3]))
    if not keys:
        return []
    phases = []
    for k in keys:
        for p in summary[k]["phases"]:
            if p not in phases:
                phases.append(p)
    _, _, on, inn, _ = GRIDS[stage]
    f0 = summary[keys[0]]["fields"]
    extra_cols = [c for c in ("rows", "batch") if c in f0]
    head = ["ranks", "grid"] + extra_cols + ["total s (median)", "min-max s", "speedup" if mode == "strong"
                                             else "scaled speedup", "efficiency", "cpu share",
                                             "CPU-time efficiency"]
    head += [f"{p} s" for p in phases]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in keys:
        v = summary[k]
        sp, eff, cpu_eff = met.get(k, (float("nan"), float("nan"), None))
        grid = config_name(stage, k).split(" ", 1)[1]
        row = [f"{k[1]}{'*' if k[1] > k[4] else ''}", grid] + [v["fields"].get(c, "") for c in extra_cols]
        share = f"{v['cpu_share']:.2f}" if v["cpu_share"] is not None else ""
        row += [f"{v['total']:.2f}", f"{v['lo']:.2f}-{v['hi']:.2f}", f"{sp:.2f}", f"{eff:.2f}", share,
                f"{cpu_eff:.2f}" if cpu_eff is not None else ""]
        row += [f"{v['phases'][p]:.2f}" if v["phases"].get(p) is not None else "" for p in phases]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: plot.py OUT_DIR")
    out = sys.argv[1]
    env = open(os.path.join(out, "environment.txt")).read().splitlines()
    envd = {}
    for line in env:
        k, _, v = line.partition(": ")
        envd.setdefault(k, v)
    rep = [f"# Scaling study: {os.path.basename(os.path.abspath(out))}", ""]
    rep += ["Strong and weak scaling of `mimic label` and `mimic distill` over rank counts and grid shapes, "
            "made with `jobs/scaling/study.sh` and drawn by `jobs/scaling/plot.py` (both re-runnable).", ""]
    rep += ["## Where and how", "", "```"] + env + ["```", ""]
    rep += ["Times are wall-clock seconds of the stage's `total` phase (the maximum over ranks), the median "
            "over the repeats; phase columns are medians of the average over ranks. Speedup and efficiency "
            "are against the 1-rank run of the same mode. Strong scaling: the same work on every rank count. "
            "Weak scaling: the work grows with the ranks (rows, and for distill the global batch), so ideal "
            "is a flat time and efficiency 1. Rank counts marked * ran with more ranks than cores "
            "(oversubscribed): they measure overheads, not speedup. *cpu share* is each rank's CPU time over "
            "its wall time, averaged over ranks (median over repeats): MPI ranks spin while they wait for "
            "each other, so with cores of their own it stays near 1, less time blocked on the disk (fsync) and "
            "start-up; far below 1, other processes held the cores and the times measure that contention "
            "more than Mimic. *CPU-time efficiency* compares CPU seconds (wall x cpu share, summed over ranks) "
            "with the 1-rank run's: the parallel overhead in resources consumed (waiting ranks spin, so "
            "waits count), less sensitive to how much of the cores other processes left.", ""]
    notes = os.path.join(out, "notes.md")
    if os.path.exists(notes):
        rep += ["## Reading", "", open(notes).read().strip(), ""]
    for stage in ("label", "distill"):
        path = os.path.join(out, f"{stage}.csv")
        if not os.path.exists(path):
            continue
        summary = summarise(load(path))
        plot_speedup(stage, summary, os.path.join(out, f"{stage}_speedup.png"))
        plot_efficiency(stage, summary, os.path.join(out, f"{stage}_efficiency.png"))
        plot_phases(stage, summary, os.path.join(out, f"{stage}_phases.png"))
        grid_doc = ("G member groups x S data shards" if stage == "label"
                    else "R data replicas x M model shards")
        rep += [f"## mimic {stage} ({grid_doc})", ""]
        for mode in ("strong", "weak"):
            t = table(stage, summary, mode)
            if t:
                rep += [f"### {mode} scaling", ""] + t + [""]
        rep += [f"![{stage} speedup]({stage}_speedup.png)", "", f"![{stage} efficiency]({stage}_efficiency.png)",
                "", f"![{stage} phases]({stage}_phases.png)", "",
                f"Raw per-phase timings (min/avg/max over ranks, every repeat): [{stage}.csv]({stage}.csv).", ""]
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("\n".join(rep))
    print(f"plot.py: wrote {out}/report.md and the plots")


if __name__ == "__main__":
    main()
