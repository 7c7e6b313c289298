"""The report's KD table: per student, its KD teacher (where evaluated), baseline -> SFT -> SFT+KD (and the SFT
control at the same extra time), each step's paired difference with its CI, and each stage's compute, so
gains per unit of compute show.

Everything comes from the run directory: eval models are matched by their `model` reference (`sft:<student>`,
`kd:<run>`, `kd:<run>-sft-control`, the KD run's teacher and the SFT model's `baseline`), compute from the stages'
summaries.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.eval.compare import compare
from distill.layout import KD, SFT, TRACES
from distill.stage import StageDir

HEAD = ["student", "benchmark", "stage", "model", "pass@1 (%)", "compared with", "Δ pass@1 (pts)", "95% CI",
        "tokens generated", "tokens trained", "train time (s)"]


def _summary(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def teacher_tokens(run_dir: Path) -> int | None:
    """Completion tokens the teacher generated for the SFT data (02_traces, finished shards)."""
    stage = StageDir(run_dir / TRACES)
    stats = stage.stats() if stage.path.exists() else []
    return sum(int(s.get("completion_tokens", 0)) for s in stats) if stats else None


def kd_table(run_dir: Path, models: dict[str, dict], resamples: int = 10_000) -> tuple[list[str], list[list[str]]] | None:
    """(head, rows) for every finished kd run whose SFT student and KD model were evaluated; None when there is none."""
    run_dir = Path(run_dir)
    by_ref = {str(m["spec"].get("model")): name for name, m in models.items()}
    rows = []
    for f in sorted((run_dir / KD).glob("*/summary.json")) if (run_dir / KD).exists() else []:
        kd = json.loads(f.read_text())
        if "tokens_generated" not in kd:  # an sft control's directory
            continue
        name, student = kd["name"], kd["student"]
        sft_name, kd_name = by_ref.get(student), by_ref.get(f"kd:{name}")
        if sft_name is None or kd_name is None:
            continue
        control_name = by_ref.get(f"kd:{name}-sft-control")
        baseline = models[sft_name]["spec"].get("baseline")
        sft = _summary(run_dir / SFT / student.removeprefix("sft:") / "summary.json") or {}
        control = _summary(run_dir / KD / f"{name}-sft-control" / "summary.json") or {}
        # stage label, eval model, compared with, (generated, trained, seconds)
        teacher = by_ref.get(kd["teacher"])
        stages = [("teacher", teacher, None, None)] if teacher else []
        stages += [("baseline", baseline, None, None)] if baseline in models else []
        stages.append(("SFT", sft_name, baseline if baseline in models else None, (teacher_tokens(run_dir), sft.get("tokens_seen"), sft.get("train_seconds"))))
        stages.append(("SFT + on-policy KD", kd_name, sft_name, (kd["tokens_generated"], kd["tokens_trained"], kd["train_seconds"])))
        if control_name:
            stages.append(("SFT + more SFT (same time)", control_name, sft_name, (0, control.get("tokens_seen"), control.get("train_seconds"))))
            stages.append(("SFT + on-policy KD", kd_name, control_name, None))
        for bench in sorted(models[kd_name]["scores"]["benchmarks"]):
            for label, model, other, compute in stages:
                s = models[model]["scores"]["benchmarks"].get(bench)
                if s is None:
                    continue
                diff = ["", ""]
                if other is not None:
                    c = compare(models[model]["dir"], models[other]["dir"], resamples=resamples)["benchmarks"].get(bench)
                    if c:
                        p = c["pass@1"]
                        diff = [f"{100 * p['diff']:+.1f}", f"[{100 * p['ci_low']:.1f}, {100 * p['ci_high']:.1f}]"]
                cells = ["", "", ""] if compute is None else ["" if v is None else f"{v:,}" for v in compute]
                rows.append([student.removeprefix("sft:"), bench, label, model, f"{100 * s['pass@1']:.1f}", other or "", *diff, *cells])
    return (HEAD, rows) if rows else None
