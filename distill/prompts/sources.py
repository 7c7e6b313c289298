"""Read problems from the toy world, a local JSONL/Parquet file or a Hugging Face dataset, as PROBLEM rows.

Rows are streamed: a file or dataset of any size is read batch by batch.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Iterator

from distill.errors import DistillError, where
from distill.io import iter_jsonl, iter_parquet_rows
from distill.prompts.config import PromptsConfig
from distill.records import DOMAINS, content_id, to_json


def normalise_text(text: str) -> str:
    """Unicode NFC, Unix newlines, no trailing spaces on lines, no outer blank lines."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def _answer_str(value) -> str | None:
    """References as strings; 27.0 (AMC files store floats) becomes "27"."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip() if not isinstance(value, (list, dict)) else to_json(value)


def source_name(cfg: PromptsConfig) -> str:
    if cfg.name:
        return cfg.name
    if cfg.source.startswith("hf:"):
        return cfg.source[3:]
    return "toy" if cfg.source == "toy" else Path(cfg.source).stem


def to_problem(raw: dict, cfg: PromptsConfig, name: str, loc: tuple) -> dict:
    """One source record as a PROBLEM row; `loc` = (file, row) for error messages."""
    col = cfg.columns.get("prompt", "prompt")
    prompt = raw.get(col)
    if not isinstance(prompt, str) or not prompt.strip():
        raise DistillError(f"{where(loc[0], loc[1], col)}: missing or empty problem text (columns.prompt = {col!r})")
    domain = raw.get(cfg.columns["domain"]) if "domain" in cfg.columns else cfg.domain
    if domain not in DOMAINS:
        raise DistillError(f"{where(loc[0], loc[1], cfg.columns.get('domain', 'domain'))}: domain {domain!r} not in {DOMAINS}")
    tests = raw.get(cfg.columns["tests"]) if "tests" in cfg.columns else None
    metadata = raw.get(cfg.columns["metadata"]) if "metadata" in cfg.columns else None
    prompt = normalise_text(prompt)
    meta = dict(metadata) if isinstance(metadata, dict) else {}
    meta["source_row"] = loc[1]
    if "id" in cfg.columns and raw.get(cfg.columns["id"]) is not None:
        meta["source_id"] = str(raw[cfg.columns["id"]])  # the content id is ours; the source's is kept
    return {
        "id": content_id(name, prompt),
        "source": name,
        "domain": domain,
        "prompt": prompt,
        "answer": _answer_str(raw.get(cfg.columns["answer"])) if "answer" in cfg.columns else None,
        "tests": tests if tests is None or isinstance(tests, str) else to_json(tests),
        "metadata": to_json(meta),
    }


def _records(cfg: PromptsConfig) -> Iterator[tuple[tuple, dict]]:
    """(location, raw record) in source order."""
    src = cfg.source
    if src == "toy":
        for i, p in enumerate(cfg.toy.make("train"), start=1):
            yield ("toy", i), p
    elif src.startswith("hf:"):
        from datasets import load_dataset

        ds = load_dataset(src[3:], cfg.subset, split=cfg.split, streaming=True)
        for i, rec in enumerate(ds, start=1):
            yield (src, i), rec
    elif src.endswith(".jsonl") or src.endswith(".json"):
        for lineno, rec in iter_jsonl(Path(src)):
            yield (src, lineno), rec
    elif src.endswith(".parquet"):
        for row, rec in iter_parquet_rows(Path(src)):
            yield (src, row), rec
    else:
        raise DistillError(f"source {src!r}: expected 'toy', a .jsonl/.parquet path or 'hf:<dataset>'")


def iter_problems(cfg: PromptsConfig) -> Iterator[dict]:
    """PROBLEM rows of the configured source, normalised, at most `cfg.limit` of them."""
    name = source_name(cfg)
    for n, (loc, raw) in enumerate(_records(cfg)):
        if cfg.limit is not None and n >= cfg.limit:
            return
        if cfg.source == "toy":
            yield raw
        else:
            yield to_problem(raw, cfg, name, loc)


def problem_text(rec: dict) -> str:
    """The problem statement of a benchmark record, whichever column holds it."""
    for key in ("prompt", "problem", "question"):
        if isinstance(rec.get(key), str):
            return rec[key]
    raise DistillError(f"benchmark record has no 'prompt', 'problem' or 'question' text: keys {sorted(rec)}")
