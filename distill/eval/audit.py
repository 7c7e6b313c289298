"""`distill eval --audit RUN_DIR --benchmark X`: check a finished run's curated training problems against a
benchmark added after it ran (AIME 2026, say) with the prompts stage's own decontamination rule (a shared
word n-gram, the run's `decontaminate.ngram`, 8 by default), and list every overlap with its benchmark item
and the shared n-gram."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from distill.errors import DistillError
from distill.pipeline import CURATED, PROMPTS
from distill.prompts.decontam import Decontaminator
from distill.prompts.stage import benchmark_problems
from distill.stage import StageDir

DEFAULT_NGRAM = 8


def run_ngram(run_dir: Path) -> int:
    """The n-gram length the run's prompts stage decontaminated with (its config), else the default."""
    f = run_dir / PROMPTS / "config.json"
    if not f.exists():
        return DEFAULT_NGRAM
    config = json.loads(f.read_text()).get("config") or {}
    return int((config.get("decontaminate") or {}).get("ngram") or DEFAULT_NGRAM)


def curated_problems(run_dir: Path) -> dict[str, str]:
    """id -> prompt of every problem kept in the run's curated data (any of its samples kept)."""
    stage = StageDir(run_dir / CURATED)
    parts = [stage.part(i) for i in stage.done_shards() if stage.trusted(i)]
    if not parts:
        raise DistillError(f"{run_dir}: no finished {CURATED} shards to audit (run the filter stage first)")
    out: dict[str, str] = {}
    for part in parts:
        for r in pq.read_table(part, columns=["id", "prompt", "reject_reason"]).to_pylist():
            if r["reject_reason"] is None:
                out.setdefault(r["id"], r["prompt"])
    return out


def audit(run_dir: Path, benchmarks: list[str], ngram: int | None = None) -> dict:
    """{"problems" (audited), "ngram", "matches": [{"id", "benchmark_item", "ngram", "prompt"}]}."""
    run_dir = Path(run_dir)
    n = ngram or run_ngram(run_dir)
    index = Decontaminator(benchmark_problems(benchmarks, []), n)
    problems = curated_problems(run_dir)
    matches = []
    for pid, prompt in problems.items():
        if (found := index.evidence(prompt)) is not None:
            matches.append({"id": pid, "benchmark_item": found[0], "ngram": found[1], "prompt": prompt[:200]})
    return {"problems": len(problems), "ngram": n, "matches": matches}
