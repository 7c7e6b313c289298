"""The report's figures as PNG bytes (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

import io

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

DPI = 110
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def accuracy(models: dict[str, dict], order: list[str]) -> bytes:
    """pass@1 per benchmark, one bar per model (distilled beside its baseline), with 95% CI whiskers."""
    benches = sorted({b for m in models.values() for b in m["scores"]["benchmarks"]})
    fig, ax = plt.subplots(figsize=(max(5.0, 1.8 * len(benches) * max(1, len(order)) / 2), 3.6))
    width = 0.8 / max(1, len(order))
    for j, name in enumerate(order):
        b = models[name]["scores"]["benchmarks"]
        xs, ys, lo, hi = [], [], [], []
        for i, bench in enumerate(benches):
            if bench in b:
                s = b[bench]
                xs.append(i + (j - (len(order) - 1) / 2) * width)
                ys.append(100 * s["pass@1"])
                lo.append(100 * (s["pass@1"] - s["pass@1_ci95"][0]))
                hi.append(100 * (s["pass@1_ci95"][1] - s["pass@1"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=name, color=COLORS[j % len(COLORS)])
    ax.set_xticks(range(len(benches)), benches)
    ax.set_ylabel("pass@1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Accuracy: distilled vs baseline (95% CI over problems)")
    ax.legend(fontsize=8)
    return _png(fig)


def lengths(samples: dict[str, list[dict]]) -> bytes:
    """Distribution of response lengths (completion tokens) per model and benchmark."""
    keys = sorted({(r["benchmark"], m) for m, rows in samples.items() for r in rows})
    every = [r["completion_tokens"] or 0 for rows in samples.values() for r in rows]
    bins = np.linspace(0, max(every, default=1), 31)  # shared bins, so the models' bars line up
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for j, (bench, model) in enumerate(keys):
        toks = [r["completion_tokens"] for r in samples[model] if r["benchmark"] == bench and r["completion_tokens"] is not None]
        if toks:
            ax.hist(toks, bins=bins, alpha=0.5, label=f"{model} / {bench}", color=COLORS[j % len(COLORS)])
    ax.set_xlabel("completion tokens")
    ax.set_ylabel("samples")
    ax.set_title("Response length")
    ax.legend(fontsize=8)
    return _png(fig)


def funnel(f: dict) -> bytes:
    """Curation funnel: traces in, rejections per reason, traces kept."""
    labels = ["traces in"] + [f"- {r}" for r in f["rejected"]] + ["kept"]
    values = [f["rows_in"]] + list(f["rejected"].values()) + [f["rows_out"]]
    colors = ["#7f7f7f"] + ["#d62728"] * len(f["rejected"]) + ["#2ca02c"]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.2))
    ax.barh(range(len(labels)), values, color=colors)
    for i, v in enumerate(values):
        ax.text(v, i, f" {v}", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("traces")
    ax.set_title("Curation funnel (rejections per reason)")
    return _png(fig)


def loss(curves: dict[str, list[dict]]) -> bytes:
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for j, (student, points) in enumerate(sorted(curves.items())):
        ax.plot([p["step"] for p in points], [p["loss"] for p in points], label=student, color=COLORS[j % len(COLORS)])
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("SFT loss")
    ax.legend(fontsize=8)
    return _png(fig)
