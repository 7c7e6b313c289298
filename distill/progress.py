"""How far each stage of a run directory is, read from what the stages wrote (never from memory).

One reader serves `distill status` (a table, any time, from any machine that sees the directory) and
the live display of `distill run` (polled twice a second). Data stages count shards and rows, SFT
counts optimizer steps from `metrics.jsonl`, eval counts samples in finished parts and checkpointed
chunks. Rates come from the finished shards' own `seconds` times the claims held now (the workers
at work), SFT's from its last two logging steps; so a resumed stage's ETA is as good as a fresh one's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from distill.config import load_yaml
from distill.console import count
from distill.errors import DistillError
from distill.layout import CURATED, EVAL, KD, PROMPTS, REPORT, SFT, TRACES
from distill.stage import StageDir


@dataclass
class Line:
    """One row of progress: a data stage, a student or an evaluated model."""

    name: str
    unit: str  # what `done` and `total` count: shards, steps, samples
    done: int = 0
    total: int | None = None
    rows: int | None = None
    tokens: int | None = None
    state: str = "not started"  # not started | running | stopped | done
    rate: float | None = None  # units per second in the current attempt
    eta_s: float | None = None
    info: str = ""  # e.g. "loss 0.231" or "pass@1 so far 74%"
    path: Path | None = None  # the stage (or student, model) directory

    @property
    def finished(self) -> bool:
        return self.state == "done"


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return None


def _finished_stats(stage: StageDir) -> list[dict]:
    """Stats of the done shards; a file being written or damaged is skipped (`status` names damage)."""
    out = []
    for i in stage.done_shards():
        try:
            out.append(stage.shard_stats(i))
        except (DistillError, OSError):
            continue
    return out


def _eta(line: Line, stats: list[dict], workers: int, units_per_shard=None) -> None:
    """Rate and ETA from the finished shards' mean time, with `workers` shards at work at once."""
    timed = [s for s in stats if s.get("seconds")]
    if not timed or line.total is None:
        return
    per_unit = sum(float(s["seconds"]) for s in timed) / sum((units_per_shard(s) if units_per_shard else 1) for s in timed)
    if per_unit <= 0:
        return
    line.rate = max(1, workers) / per_unit
    line.eta_s = max(0, line.total - line.done) / line.rate


def shard_stage(path: Path, tokens_key: str | None = None) -> Line:
    """A sharded Parquet stage (prompts, traces, curated): shards done of planned, rows and tokens out."""
    stage = StageDir(path)
    line = Line(name=Path(path).name, unit="shards", path=Path(path))
    if not stage.path.is_dir():
        return line
    try:
        line.total = stage.planned()
    except DistillError:
        line.total = None
    line.done = len(stage.done_shards())
    stats = _finished_stats(stage)
    line.rows = sum(int(s.get("rows_out", 0)) for s in stats)
    if tokens_key:
        line.tokens = sum(int(s.get(tokens_key, 0)) for s in stats)
    spent = sum(float(s.get("cost_usd") or 0.0) for s in stats)  # a priced endpoint's traces
    if spent:
        unfinished = line.total and line.done < line.total
        line.info = f"${spent:,.2f} spent" + (f", ~${spent * line.total / line.done:,.2f} projected" if unfinished else "")
    if line.total is not None and line.done >= line.total:
        line.state = "done"
        return line
    held = len(stage.held_claims())
    line.state = "running" if held else ("stopped" if line.done else "not started")
    _eta(line, stats, held)
    return line


def _metrics(path: Path) -> list[dict]:
    rows = []
    if path.exists():
        for text in path.read_text().splitlines():
            try:
                rows.append(json.loads(text))
            except json.JSONDecodeError:
                continue  # a line being appended
    return rows


def student(path: Path) -> Line:
    """One trained model (an SFT student, a kd run or its SFT control): optimizer steps from metrics.jsonl,
    tokens through the model, last loss (a kd run's: its divergence to the teacher)."""
    path = Path(path)
    line = Line(name=path.name, unit="steps", path=path)
    if (path / "done").exists():
        summary = json.loads((path / "summary.json").read_text())
        line.done = line.total = int(summary.get("steps", 0))
        line.tokens, line.state = summary.get("tokens_seen", summary.get("tokens_trained")), "done"
        line.info = _done_info(summary)
        line.rows = summary.get("rows_train")
        return line
    rows = [r for r in _metrics(path / "metrics.jsonl") if r.get("split", "train") == "train"]
    if not rows:
        line.state = "running" if path.exists() else "not started"
        return line
    last = rows[-1]
    line.done, line.total, line.tokens = int(last["step"]), last.get("max_steps"), last.get("tokens_seen")
    loss = last.get("loss", last.get("divergence"))
    line.info = " · ".join(
        part for part in (f"loss {loss:.3f}" if loss is not None else "",
                          f"{count(int(last['tokens_per_s']))} tok/s" if "tokens_per_s" in last else "",
                          f"sampled {last['sampled_length']:.0f} tok" if "sampled_length" in last else "") if part
    )
    fresh = time.time() - (_mtime(path / "metrics.jsonl") or 0) < 120
    line.state = "running" if fresh else "stopped"
    if len(rows) >= 2 and "time" in last and "time" in rows[-2] and last["step"] > rows[-2]["step"]:
        line.rate = (last["step"] - rows[-2]["step"]) / max(last["time"] - rows[-2]["time"], 1e-6)
        if line.total:
            line.eta_s = (line.total - line.done) / line.rate
    return line


def _done_info(summary: dict) -> str:
    """SFT: the final loss; kd: held-out KL to the teacher and accuracy, where the SFT student started -> now."""
    if "heldout_end" not in summary:
        loss = summary.get("final_loss")
        return f"loss {loss:.3f}" if loss is not None else ""
    start, end = summary.get("heldout_start") or {}, summary.get("heldout_end") or {}
    parts = [f"{label} {start[key]:{fmt}} -> {end[key]:{fmt}}" for key, label, fmt in
             (("kl_to_teacher", "held-out KL", ".3f"), ("heldout_accuracy", "accuracy", ".1%")) if key in start and key in end]
    return " · ".join(parts)


def eval_model(path: Path) -> Line:
    """One evaluated model: samples written (finished parts plus checkpointed chunks) of n_problems x k."""
    path = Path(path)
    stage = StageDir(path)
    line = Line(name=path.name, unit="samples", path=path)
    if not (path / "config.json").exists():
        return line
    config = stage.config()
    ks = {b: v["protocol"]["k"] for b, v in config["benchmarks"].items()}
    line.total = sum((end - start) * ks[b] for b, start, end in config["shards"])
    done = set(stage.done_shards())
    for i in range(len(config["shards"])):
        for f in [stage.part(i)] if i in done else sorted(stage.chunks(i).glob("*.parquet")):
            try:
                line.done += pq.read_metadata(f).num_rows
            except (FileNotFoundError, OSError):
                continue
    stats = _finished_stats(stage)
    line.tokens = sum(int(s.get("completion_tokens", 0)) for s in stats) or None
    scores = path / "scores.json"
    if scores.exists():
        line.state = "done"
        s = json.loads(scores.read_text())["benchmarks"]
        line.info = " · ".join(f"pass@1 {100 * v['pass@1']:.1f}%" + (f" {b}" if len(s) > 1 else "") for b, v in sorted(s.items()))
        return line
    scored = sum(int(s.get("rows_out", 0)) for s in stats)
    if scored:
        line.info = f"{100 * sum(int(s.get('correct', 0)) for s in stats) / scored:.0f}% correct so far"
    held = len(stage.held_claims())
    line.state = "running" if held else ("stopped" if line.done else "not started")
    _eta(line, stats, held, units_per_shard=lambda s: max(1, int(s.get("rows_out", 0))))
    return line


def _pipeline(run_dir: Path) -> dict:
    f = run_dir / "pipeline.yaml"
    return (load_yaml(f) or {}) if f.exists() else {}


def run_lines(run_dir: Path) -> list[tuple[str, list[Line]]]:
    """Every stage of a run directory, in pipeline order: (stage, its lines). Students and models
    listed in pipeline.yaml appear before they start."""
    run_dir = Path(run_dir)
    cfg = _pipeline(run_dir)
    out = [
        ("prompts", [shard_stage(run_dir / PROMPTS)]),
        ("generate", [shard_stage(run_dir / TRACES, "completion_tokens")]),
        ("filter", [shard_stage(run_dir / CURATED, "completion_tokens_out")]),
    ]
    students = [s["name"] for s in (cfg.get("sft") or {}).get("students", []) if isinstance(s, dict) and "name" in s]
    found = sorted(p.name for p in (run_dir / SFT).iterdir() if p.is_dir()) if (run_dir / SFT).is_dir() else []
    out.append(("sft", [student(run_dir / SFT / s) for s in students + [f for f in found if f not in students]]))
    kd = kd_runs(run_dir, (cfg.get("kd") or {}).get("runs", []))
    if kd:
        out.append(("kd", kd))
    models = [m["name"] for m in (cfg.get("eval") or {}).get("models", []) if isinstance(m, dict) and "name" in m]
    found = sorted(p.name for p in (run_dir / EVAL).iterdir() if p.is_dir()) if (run_dir / EVAL).is_dir() else []
    out.append(("eval", [eval_model(run_dir / EVAL / m) for m in models + [f for f in found if f not in models]]))
    report = Line(name=REPORT, unit="pages", total=1)
    if (run_dir / REPORT / "index.html").exists():
        report.done, report.state = 1, "done"
    out.append(("report", [report]))
    return out


def kd_runs(run_dir: Path, runs: list[dict]) -> list[Line]:
    """The kd stage: each run, then its matched-compute SFT control (listed before they start), then any
    other directory found in 04_kd."""
    run_dir = Path(run_dir)
    runs = [r for r in runs if isinstance(r, dict) and "name" in r]
    named = [d for r in runs for d in [r["name"]] + ([f"{r['name']}-sft-control"] if r.get("sft_control") is not None else [])]
    found = sorted(p.name for p in (run_dir / KD).iterdir() if p.is_dir()) if (run_dir / KD).is_dir() else []
    return [student(run_dir / KD / d) for d in named + [f for f in found if f not in named]]
