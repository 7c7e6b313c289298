"""The report's figures (matplotlib, Agg backend: no display needed), each rendered twice: inline SVG
for the HTML page (its legend and data areas carry ids, so a browser test can check that no legend
covers data) and PNG for the Markdown report.

Conventions: a distilled model and its baseline share a hue (baseline lighter); legends sit outside
the axes; error bars are 95% Wilson CIs over problems.
"""

from __future__ import annotations

import io
import re

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.ticker import MaxNLocator  # noqa: E402

DPI = 110
# (distilled, baseline) colour per pair: tab20's dark/light pairs.
PAIR_COLORS = [("#1f77b4", "#aec7e8"), ("#ff7f0e", "#ffbb78"), ("#2ca02c", "#98df8a"), ("#d62728", "#ff9896"),
               ("#9467bd", "#c5b0d5"), ("#8c564b", "#c49c94"), ("#e377c2", "#f7b6d2"), ("#17becf", "#9edae5")]
SOLO = "#7f7f7f"
plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})  # SVG text stays text: small and searchable


def render(fig, name: str) -> tuple[bytes, str]:
    """(PNG bytes, SVG markup without the XML prolog) of a finished figure; closes it."""
    fig.set_layout_engine("constrained")
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=DPI)
    svg = io.StringIO()
    with plt.rc_context({"svg.hashsalt": name}):  # stable clip-path ids, distinct per figure on one page
        fig.savefig(svg, format="svg")
    plt.close(fig)
    text = svg.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.S)  # RDF boilerplate with URLs
    return png.getvalue(), text


def _mark(ax, legend, name: str, i: int = 0) -> None:
    """ids the browser test looks up: `<name>-data-<i>` (the axes area) and `<name>-legend-<i>`."""
    ax.patch.set_gid(f"{name}-data-{i}")
    if legend is not None:
        legend.set_gid(f"{name}-legend-{i}")


def groups(models: dict[str, dict], pairs: list[tuple[str, str]]) -> list[tuple[str, str | None]]:
    """(distilled, baseline) for each pair, then (model, None) for each model in no pair, in a stable order."""
    out, seen = [], set()
    for d, b in pairs:
        if d in models and b in models:
            out.append((d, b))
            seen |= {d, b}
    out += [(m, None) for m in models if m not in seen]
    return out


def score_axis_top(highs: list[float]) -> float:
    """Top of a pass@1 axis (in %), which always starts at 0: room above the highest CI whisker for its label,
    so scores of a few percent are not flattened against a 0-100 scale, and never above 100 plus that room."""
    top = max(highs, default=0.0)
    return min(112.0, max(5.0, top * 1.15 + 2))


def accuracy(models: dict[str, dict], pairs: list[tuple[str, str]]) -> tuple[bytes, str]:
    """pass@1 with 95% CI whiskers: one panel per benchmark, each distilled model beside its baseline. Each
    panel's y-axis starts at 0 and ends just above its highest whisker."""
    benches = sorted({b for m in models.values() for b in m["scores"]["benchmarks"]})
    grouped = groups(models, pairs)
    # two panels a row at most, legend below: the figure stays narrow enough to read on a phone
    cols = min(2, len(benches))
    rows_n = -(-len(benches) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(3.4, 0.9 * len(grouped) + 1.4) * cols, 3.0 * rows_n + 0.9), squeeze=False)
    for ax in axes.flat[len(benches):]:
        ax.set_visible(False)
    handles = {}
    for ax, bench in zip(axes.flat, benches):
        highs = []
        for g, (dist, base) in enumerate(grouped):
            colors = PAIR_COLORS[g % len(PAIR_COLORS)] if base else (SOLO, SOLO)
            for j, (name, color) in enumerate(((dist, colors[0]), (base, colors[1]))):
                if name is None or bench not in models[name]["scores"]["benchmarks"]:
                    continue
                s = models[name]["scores"]["benchmarks"][bench]
                y, (lo, hi) = 100 * s["pass@1"], s["pass@1_ci95"]
                x = g + (j - 0.5) * 0.38 if base else g
                bar = ax.bar(x, y, 0.36, color=color, edgecolor="#333", linewidth=0.5,
                             yerr=[[y - 100 * lo], [100 * hi - y]], capsize=3, error_kw={"linewidth": 0.8})
                highs.append(100 * hi)
                handles[name] = bar
        top = score_axis_top(highs)
        for bar, hi in zip(ax.patches, highs):  # the value above its whisker, at a fixed share of the axis
            ax.text(bar.get_x() + bar.get_width() / 2, hi + 0.015 * top, f"{bar.get_height():.1f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(grouped)), [d for d, _ in grouped], rotation=20 if len(grouped) > 2 else 0, ha="right" if len(grouped) > 2 else "center")
        ax.set_ylim(0, top)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        if top > 100:
            ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 100])
        ax.set_ylabel("pass@1 (%)")
        ax.set_title(bench)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    legend = fig.legend(list(handles.values()), [_role(n, pairs) for n in handles], loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    for i, ax in enumerate(axes.flat[: len(benches)]):
        _mark(ax, legend if i == 0 else None, "accuracy", i)
    return render(fig, "accuracy")


def _role(name: str, pairs: list[tuple[str, str]]) -> str:
    for d, b in pairs:
        if name == d:
            return f"{name} (distilled)"
        if name == b:
            return f"{name} (baseline of {d})"
    return name


def lengths(samples: dict[str, list[dict]], models: dict[str, dict], pairs: list[tuple[str, str]]) -> tuple[bytes, str]:
    """Completion length as step histograms, one small panel per (pair, benchmark): the distilled model
    and its baseline on shared bins, so neither hides the other."""
    grouped = groups(models, pairs)
    benches = sorted({r["benchmark"] for rows in samples.values() for r in rows})
    panels = [(g, d, b, bench) for g, (d, b) in enumerate(grouped) for bench in benches]
    cols = min(2, max(1, len(panels)))  # two a row at most: readable on a phone
    rows_n = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.3 * cols + 0.4, 2.5 * rows_n + 0.3), squeeze=False)
    every = [r["completion_tokens"] or 0 for rows in samples.values() for r in rows]
    bins = np.linspace(0, max(every, default=1), 31)
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.set_visible(False)
            continue
        g, dist, base, bench = panels[k]
        colors = PAIR_COLORS[g % len(PAIR_COLORS)] if base else (SOLO, SOLO)
        for name, color, style in ((dist, colors[0], "-"), (base, colors[1], "--")):
            if name is None:
                continue
            toks = [r["completion_tokens"] for r in samples.get(name, []) if r["benchmark"] == bench and r["completion_tokens"] is not None]
            if toks:
                ax.hist(toks, bins=bins, histtype="step", linewidth=1.6, linestyle=style, color=color,
                        label=f"{name} (median {int(np.median(toks))})")
        ax.set_title(f"{dist} / {bench}" if len(benches) > 1 else dist, fontsize=9)
        ax.set_xlabel("completion tokens")
        ax.set_ylabel("samples")
        ax.set_ylim(0, ax.get_ylim()[1] * 1.05)
        legend = ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.32), ncol=1)
        _mark(ax, legend, "lengths", k)
    return render(fig, "lengths")


def funnel(f: dict) -> tuple[bytes, str]:
    """Curation funnel: traces in, rejections per reason, traces kept."""
    apart = [("passed, not selected", f["not_selected"])] if f.get("not_selected") else []  # not a failure
    labels = ["traces in"] + [f"- {r}" for r in f["rejected"]] + [label for label, _ in apart] + ["kept"]
    values = [f["rows_in"]] + list(f["rejected"].values()) + [n for _, n in apart] + [f["rows_out"]]
    colors = ["#7f7f7f"] + ["#d62728"] * len(f["rejected"]) + ["#bcbd22"] * len(apart) + ["#2ca02c"]
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(labels) + 1.0))
    ax.barh(range(len(labels)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v:,}", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max(values) * 1.15)
    ax.set_xlabel("traces")
    ax.set_title("Curation funnel (rejections per reason)")
    _mark(ax, None, "funnel")
    return render(fig, "funnel")


def loss(curves: dict[str, list[dict]]) -> tuple[bytes, str]:
    fig, ax = plt.subplots(figsize=(6.8, 3.0))
    for j, (student, points) in enumerate(sorted(curves.items())):
        color = PAIR_COLORS[(j // 2) % len(PAIR_COLORS)][j % 2]
        ax.plot([p["step"] for p in points], [p["loss"] for p in points], label=student, color=color, linewidth=1.4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title("SFT loss")
    ax.grid(alpha=0.3)
    legend = fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    _mark(ax, legend, "loss")
    return render(fig, "loss")


def budget(models: dict[str, dict], pairs: list[tuple[str, str]], bench: str) -> tuple[bytes, str]:
    """pass@1 against thinking budget on one benchmark (log x, 95% CI bands): each distilled model with its
    baseline in one hue (baseline dashed and lighter); "estimate" in the legend where the curve is one."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for g, (dist, base) in enumerate(groups(models, pairs)):
        colors = PAIR_COLORS[g % len(PAIR_COLORS)] if base else (SOLO, SOLO)
        for name, color, style in ((dist, colors[0], "-"), (base, colors[1], "--")):
            curve = models[name]["scores"]["benchmarks"].get(bench, {}).get("budget", {}) if name else {}
            if not curve.get("points"):
                continue
            x = [p["budget"] for p in curve["points"]]
            ax.plot(x, [100 * p["pass@1"] for p in curve["points"]], style, marker="o", markersize=3, color=color,
                    label=_role(name, pairs) + ("" if curve["exact"] else " (estimate)"))
            ax.fill_between(x, [100 * p["pass@1_ci95"][0] for p in curve["points"]], [100 * p["pass@1_ci95"][1] for p in curve["points"]],
                            color=color, alpha=0.18, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("thinking budget (max tokens)")
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 102)
    ax.set_title(bench)
    ax.grid(alpha=0.3)
    legend = fig.legend(loc="outside right upper", fontsize=8, frameon=False)
    _mark(ax, legend, f"budget-{bench}")
    return render(fig, f"budget-{bench}")
