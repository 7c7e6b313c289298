"""Where a run's numbers come from: teacher and backend versions, each stage's config hash, the
package versions and git commit of the code, wall time and tokens per stage, and each command that ran
the pipeline with the machine it ran on (CPU, the vector instructions that change float results, Python,
torch and its threads)."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from importlib import metadata
from pathlib import Path

import pyarrow.parquet as pq

from distill.layout import CURATED, EVAL, PROMPTS, SFT, TRACES
from distill.errors import DistillError
from distill.machine import invocations
from distill.report.traces import trusted_parts
from distill.stage import StageDir

PACKAGES = ("distill", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm", "math-verify", "pyarrow", "tokenizers")
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def package_versions() -> dict[str, str]:
    """Versions in the environment that built the report (the stages normally share it)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """HEAD of the checkout the code runs from, with "+dirty" when tracked files differ from it."""
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip()[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (git not available)"


def _stats_total(stage: StageDir, key: str) -> float:
    total = 0.0
    for i in stage.done_shards() if stage.path.is_dir() else []:
        try:
            total += float(stage.shard_stats(i).get(key, 0) or 0)
        except DistillError:
            continue  # damaged: `distill status` names it
    return total


def teachers(run_dir: Path) -> list[dict]:
    """Distinct (teacher, backend, backend_version, prompt_template) of the traces, with row counts."""
    stage = StageDir(run_dir / TRACES)
    counts: Counter = Counter()
    cols = ["teacher", "backend", "backend_version", "prompt_template"]
    for p in trusted_parts(stage) if stage.path.is_dir() else []:
        have = [c for c in cols if c in pq.read_schema(p).names]
        for r in pq.read_table(p, columns=have).to_pylist():
            counts[tuple(r.get(c) for c in cols)] += 1
    return [dict(zip(cols, k), rows=n) for k, n in counts.most_common()]


def stages(run_dir: Path) -> list[dict]:
    """One row per stage (per student, per evaluated model): config hash, wall time, rows and tokens."""
    times = {}
    tf = run_dir / "logs" / "times.json"
    if tf.exists():
        times = json.loads(tf.read_text())
    rows = []
    for name, sub, tokens_key in (("prompts", PROMPTS, None), ("generate", TRACES, "completion_tokens"), ("filter", CURATED, "completion_tokens_out")):
        stage = StageDir(run_dir / sub)
        if not stage.path.exists():
            continue
        seconds = times.get(name, {}).get("seconds")
        rows.append({"stage": name, "unit": sub, "config_hash": stage.config_hash(),
                     "wall_s": seconds if seconds is not None else round(_stats_total(stage, "seconds"), 1),
                     "rows": int(_stats_total(stage, "rows_out")), "tokens": int(_stats_total(stage, tokens_key)) if tokens_key else None})
    for d in sorted((run_dir / SFT).glob("*/summary.json")) if (run_dir / SFT).exists() else []:
        s = json.loads(d.read_text())
        rows.append({"stage": "sft", "unit": d.parent.name, "config_hash": StageDir(d.parent).config_hash(),
                     "wall_s": s.get("train_seconds"), "rows": s.get("rows_train"), "tokens": s.get("tokens_seen")})
    for d in sorted((run_dir / EVAL).glob("*/scores.json")) if (run_dir / EVAL).exists() else []:
        stage = StageDir(d.parent)
        rows.append({"stage": "eval", "unit": d.parent.name, "config_hash": stage.config_hash(),
                     "wall_s": round(_stats_total(stage, "seconds"), 1), "rows": int(_stats_total(stage, "rows_out")),
                     "tokens": int(_stats_total(stage, "completion_tokens"))})
    for name in ("sft", "eval", "report"):
        if name in times:
            rows.append({"stage": name, "unit": "(whole stage)", "config_hash": None, "wall_s": times[name]["seconds"], "rows": None, "tokens": None})
    return rows


def lineage(run_dir: Path) -> dict:
    return {"teachers": teachers(run_dir), "stages": stages(run_dir), "packages": package_versions(), "git_commit": git_commit(),
            "invocations": invocations(run_dir)}
