"""A sample of what the teacher and the students actually wrote, for the report's trace browser.

Curation: a few kept traces and a few rejected ones per reason. Eval: per model and benchmark, up to
`per_model` samples, correct and incorrect alike, each with the extracted answer, the verdict and why.
Rows are picked by a hash of their id (stable across rebuilds, independent of shard order), and long
completions keep their start and end (the answer is at the end), so the page stays a few MB even
for 32k-token R1 traces.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq

from distill.layout import CURATED, EVAL
from distill.stage import StageDir

MAX_CHARS = 6000
KEPT, PER_REASON, PER_MODEL = 6, 3, 48
CURATED_COLUMNS = ["id", "sample_idx", "prompt", "answer", "completion", "verdict", "extracted", "reject_reason", "finish_reason", "completion_tokens", "domain"]
EVAL_COLUMNS = ["benchmark", "problem_id", "sample_idx", "answer", "completion", "extracted", "correct", "finish_reason", "completion_tokens"]


def clip(text: str | None, limit: int = MAX_CHARS) -> str:
    if text is None or len(text) <= limit:
        return text or ""
    half = limit // 2
    return f"{text[:half]}\n\n[… {len(text) - limit:,} characters left out of the report …]\n\n{text[-half:]}"


def _rank(*key) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()


def trusted_parts(stage: StageDir) -> list[Path]:
    """Parts of the whole, finished shards: the report shows what it can and leaves damaged shards to `status`."""
    return [stage.part(i) for i in stage.done_shards() if stage.trusted(i)]


def _read(paths: list[Path], columns: list[str]) -> list[dict]:
    rows = []
    for p in paths:
        have = set(pq.read_schema(p).names)
        rows += pq.read_table(p, columns=[c for c in columns if c in have]).to_pylist()
    return rows


def curation(run_dir: Path) -> list[dict]:
    """A few kept traces, and a few rejected per reason."""
    stage = StageDir(run_dir / CURATED)
    if not stage.path.exists():
        return []
    kept = sorted(_read(trusted_parts(stage), CURATED_COLUMNS), key=lambda r: _rank(r["id"], r["sample_idx"]))[:KEPT]
    by_reason: dict[str, list[dict]] = {}
    for r in _read(stage.rejected_parts(), CURATED_COLUMNS):
        by_reason.setdefault(r.get("reject_reason") or "?", []).append(r)
    rejected = [r for reason in sorted(by_reason) for r in sorted(by_reason[reason], key=lambda r: _rank(r["id"], r["sample_idx"]))[:PER_REASON]]
    out = []
    for r in kept + rejected:
        reason = r.get("reject_reason")
        out.append({
            "group": "curation", "benchmark": r.get("domain") or "", "verdict": "kept" if reason is None else "rejected",
            "reason": reason or f"verified {r.get('verdict')}", "prompt": clip(r.get("prompt"), 1500), "answer": r.get("answer"),
            "extracted": r.get("extracted"), "completion": clip(r.get("completion")), "tokens": r.get("completion_tokens"),
            "finish": r.get("finish_reason"), "id": f"{r['id']}/{r['sample_idx']}",
        })
    return out


def eval_reason(r: dict) -> str:
    """Why a sample was scored as it was, in words."""
    if r["correct"]:
        return "matches the reference"
    if r.get("finish_reason") == "length":
        return "cut at the token limit before an answer"
    if r.get("finish_reason") == "error":
        return "backend error"
    if r.get("extracted") in (None, ""):
        return "no final answer found"
    return "wrong answer"


def evals(run_dir: Path, models: list[str], per_model: int = PER_MODEL) -> list[dict]:
    """Per model and benchmark: up to per_model samples, half correct and half not where both exist."""
    from distill.eval.replay import command
    from distill.report.collect import pipeline_models

    paths = {name: m.get("model") for name, m in pipeline_models(run_dir).items()}
    out = []
    for model in models:
        d = run_dir / EVAL / model
        rows = _read(trusted_parts(StageDir(d)), EVAL_COLUMNS)
        prompts = {}
        for f in sorted((d / "problems").glob("*.parquet")):
            prompts.update({p["id"]: p["prompt"] for p in pq.read_table(f, columns=["id", "prompt"]).to_pylist()})
        for bench in sorted({r["benchmark"] for r in rows}):
            picked = []
            for verdict in (True, False):
                pool = [r for r in rows if r["benchmark"] == bench and bool(r["correct"]) is verdict]
                picked += sorted(pool, key=lambda r: _rank(r["problem_id"], r["sample_idx"]))[: per_model // 2]
            for r in picked:
                out.append({
                    "group": model, "benchmark": bench, "verdict": "correct" if r["correct"] else "incorrect",
                    "reason": eval_reason(r), "prompt": clip(prompts.get(r["problem_id"], ""), 1500), "answer": r.get("answer"),
                    "extracted": r.get("extracted"), "completion": clip(r["completion"]), "tokens": r.get("completion_tokens"),
                    "finish": r.get("finish_reason"), "id": f"{r['problem_id']}/{r['sample_idx']}",
                    "replay": command(d, paths.get(model) or "MODEL_PATH", r["problem_id"], r["sample_idx"]),
                })
    return out


def sample(run_dir: Path, models: list[str]) -> list[dict]:
    return curation(run_dir) + evals(run_dir, models)



