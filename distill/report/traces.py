"""A sample of what the teacher and the students actually wrote, and saw, for the report's trace browser.

Curation: a few kept traces per domain and a few rejected ones per reason. SFT: per student, a few
curated rows per domain rendered as the student trained on them, loss mask included. Eval: per model and
benchmark, up to `per_model` samples, correct and incorrect alike, each with the prompt as the model saw it
(chat template applied), the extracted answer, the verdict and why. Rows are picked by a hash of their id
(stable across rebuilds, independent of shard order), and long completions keep their start and end (the
answer is at the end), so the page stays a few MB even for 32k-token R1 traces. `files` names the Parquet
files that hold every sample, which the browser links to.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

from distill.layout import CURATED, EVAL, SFT, trained_in_run
from distill.report import rendered
from distill.stage import StageDir

MAX_CHARS = 6000
KEPT_PER_DOMAIN, PER_REASON, PER_MODEL, SFT_PER_DOMAIN = 3, 3, 48, 2
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


def _per_domain(rows: list[dict], n: int) -> list[dict]:
    """The first `n` rows of each domain by id hash, domains in name order: every domain shows up."""
    ranked = sorted(rows, key=lambda r: _rank(r["id"], r["sample_idx"]))
    return [r for d in sorted({r.get("domain") or "" for r in rows}) for r in [r for r in ranked if (r.get("domain") or "") == d][:n]]


def curation(run_dir: Path) -> list[dict]:
    """A few kept traces per domain, and a few rejected per reason."""
    stage = StageDir(run_dir / CURATED)
    if not stage.path.exists():
        return []
    kept = _per_domain(_read(trusted_parts(stage), CURATED_COLUMNS), KEPT_PER_DOMAIN)
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


def sft(run_dir: Path) -> list[dict]:
    """Per trained student: a few curated rows per domain as it trained on them (its template, its data
    format), as [text, in the loss] segments."""
    stage = StageDir(run_dir / CURATED)
    students = sorted(d for d in (run_dir / SFT).glob("*") if (d / "model").is_dir() and (d / "config.json").is_file()) if (run_dir / SFT).is_dir() else []
    if not students or not stage.path.exists():
        return []
    picked = _per_domain(_read(trusted_parts(stage), ["id", "sample_idx", "domain", "prompt", "messages"]), SFT_PER_DOMAIN)
    out = []
    for d in students:
        tokenizer = rendered.load_tokenizer(d / "model")
        if tokenizer is None:
            continue
        data_format = StageDir(d).config().get("data_format", "reasoning")
        for r in picked:
            segments = rendered.sft_segments(tokenizer, r["messages"], data_format)
            out.append({
                "group": f"sft: {d.name}", "benchmark": r.get("domain") or "", "verdict": "trained",
                "reason": f"{data_format}: {sum(len(t) for t, on in segments if on):,} of {sum(len(t) for t, _ in segments):,} characters in the loss",
                "prompt": clip(r.get("prompt"), 1500), "segments": [[clip(t), on] for t, on in segments],
                "id": f"{r['id']}/{r['sample_idx']}",
            })
    return out


def _eval_tokenizer(run_dir: Path, spec: dict):
    """The tokenizer an eval model rendered its prompts with, or None where the backend received messages."""
    if spec.get("backend", "transformers") not in rendered.TEMPLATED_BACKENDS:
        return None
    from distill.models import PREFIX, converted_dir

    model = str(spec.get("model") or "")
    trained = trained_in_run(model)
    if trained:
        path = run_dir.joinpath(*trained, "model")
    elif model.startswith(PREFIX):  # converted when the eval ran; the report never downloads
        path = converted_dir(model.removeprefix(PREFIX))
    else:
        path = Path(model)
    return rendered.load_tokenizer(path if path.exists() else model)


def evals(run_dir: Path, models: dict[str, dict], per_model: int = PER_MODEL) -> list[dict]:
    """Per model and benchmark: up to per_model samples, half correct and half not where both exist, each
    with its prompt as the model saw it and the command that replays it. `models`: name -> the model's spec (backend, model)."""
    from distill.eval.replay import command

    out = []
    for model, spec in models.items():
        d = run_dir / EVAL / model
        rows = _read(trusted_parts(StageDir(d)), EVAL_COLUMNS)
        problems = {}
        for f in sorted((d / "problems").glob("*.parquet")):
            problems.update({p["id"]: p for p in pq.read_table(f).to_pylist()})
        protocols = _protocols(d)
        tokenizer = _eval_tokenizer(run_dir, spec) if rows else None
        for bench in sorted({r["benchmark"] for r in rows}):
            picked = []
            for verdict in (True, False):
                pool = [r for r in rows if r["benchmark"] == bench and bool(r["correct"]) is verdict]
                picked += sorted(pool, key=lambda r: _rank(r["problem_id"], r["sample_idx"]))[: per_model // 2]
            for r in picked:
                problem = problems.get(r["problem_id"])
                seen = rendered.eval_prompt(tokenizer, problem, protocols[bench]) if problem and bench in protocols else None
                out.append({
                    "group": model, "benchmark": bench, "verdict": "correct" if r["correct"] else "incorrect",
                    "reason": eval_reason(r), "prompt": clip((problem or {}).get("prompt", ""), 1500), "rendered": None if seen is None else clip(seen),
                    "templated": tokenizer is not None, "answer": r.get("answer"), "extracted": r.get("extracted"),
                    "completion": clip(r["completion"]), "tokens": r.get("completion_tokens"),
                    "finish": r.get("finish_reason"), "id": f"{r['problem_id']}/{r['sample_idx']}",
                    "replay": command(d, spec.get("model") or "MODEL_PATH", r["problem_id"], r["sample_idx"]),
                })
    return out


def _protocols(eval_dir: Path) -> dict[str, dict]:
    """benchmark -> the protocol the eval ran under (template, system prompt, prefix), from its config.json."""
    try:
        return {b: v["protocol"] for b, v in StageDir(eval_dir).config()["benchmarks"].items()}
    except (OSError, KeyError, TypeError, json.JSONDecodeError):
        return {}


def files(run_dir: Path, models: list[str]) -> dict[str, list[Path]]:
    """Browser group -> the Parquet files holding all its rows (the browser shows a sample of them)."""
    curated = StageDir(run_dir / CURATED)
    out = {}
    if curated.path.exists():
        out["curation"] = trusted_parts(curated) + curated.rejected_parts()
        out.update({f"sft: {d.name}": trusted_parts(curated) for d in sorted((run_dir / SFT).glob("*")) if (d / "model").is_dir()})
    out.update({m: trusted_parts(StageDir(run_dir / EVAL / m)) for m in models})
    return out


def sample(run_dir: Path, models: dict[str, dict]) -> list[dict]:
    return curation(run_dir) + sft(run_dir) + evals(run_dir, models)



