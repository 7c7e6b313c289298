"""`distill eval --import`: completions saved by other evaluation tools, as an eval stage directory that
`--rescore` and `report` read like one of ours, with the other tool's verdicts kept beside our own.

Formats (what each tool writes; checked against their public sources):
- `lighteval`: a details Parquet (`details_<task>_<time>.parquet`). Current lighteval writes each row as
  its `Detail` dataclass: `doc` (with `query`), `model_response` (with `text`, one string per sample) and
  `metric`; older releases wrote flat `example`, `predictions` and `metrics`. A per-sample verdict exists only with one sample per row (a
  0/1 metric); with several samples lighteval keeps only their mean, so the labels stay empty.
- `qwen-math`: the Qwen2.5-Math evaluation jsonl, also what SkyThought's math harness writes: one line
  per problem with `question`, `gt`, `code` (the samples; `response` in its reward-model examples),
  `pred` (their parsed answers), `score` (their verdicts).
- `skythought`: SkyThought's per-problem results JSON: {problem text: {..., "responses": {temperature:
  [{"content", "correctness"}, ...]}, "token_usages": {...}}} (a single response may be a bare object).

Problems are matched to the shipped benchmark files by normalised text (or, for a templated query, the
benchmark problem it contains); a dump of several benchmarks is imported in one call (`--benchmark`
repeated: one shard per benchmark, each problem to the first benchmark that has it); unmatched ones
are listed in `unmatched.jsonl` and left out. Our verdicts use `--grading` (strict by default); a
model whose thought markers are not `<think>` and not one of `distill.think.THOUGHT_MARKERS` names
them with `--thought-markers OPEN,CLOSE` (stored as `<think>`/`</think>`).
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pyarrow.parquet as pq

from distill.errors import DistillError, where
from distill.eval.benchmarks import load_benchmark, load_spec
from distill.eval.positions import token_positions, tokenizer_counter
from distill.eval.scoring import score
from distill.io import iter_jsonl, sha256_file, write_parquet, write_text
from distill.records import EVAL_SAMPLE, PROBLEM, content_id, to_table
from distill.stage import StageDir

log = logging.getLogger(__name__)

UNKNOWN = "unknown"  # a sampling setting the other tool did not save


@dataclass
class Foreign:
    """One problem as another tool saved it."""

    at: str  # file:row, for messages
    question: str
    completions: list[str]
    labels: list[bool | None]
    extracted: list[str | None]
    tokens: list[int | None]
    system_prompt: str | None = None


def _field(obj: dict, key: str, at: str, kind: type | tuple):
    if key not in obj:
        raise DistillError(f"{at}: field '{key}': missing (fields: {', '.join(list(obj)[:12])})")
    if not isinstance(obj[key], kind):
        raise DistillError(f"{at}: field '{key}': expected {getattr(kind, '__name__', kind)}, got {type(obj[key]).__name__}")
    return obj[key]


def _label(value) -> bool | None:
    """A verdict as the other tool wrote it (True, 1, 1.0, "True"); anything else is no verdict."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return None


def read_qwen_math(path: Path) -> Iterator[Foreign]:
    for lineno, obj in iter_jsonl(path):
        at = where(path, lineno)
        question = _field(obj, "question", at, str)
        code = _field(obj, "code" if "code" in obj or "response" not in obj else "response", at, list)
        n = len(code)
        score_ = obj.get("score") or [None] * n
        pred = obj.get("pred") or [None] * n
        if len(score_) != n or len(pred) != n:
            raise DistillError(f"{at}: field 'score': {len(score_)} verdicts and {len(pred)} predictions for {n} samples in 'code'")
        yield Foreign(at, question, [str(c) for c in code], [_label(s) for s in score_],
                      [None if p is None else str(p) for p in pred], [None] * n, obj.get("system"))


def _only_temperature(value, at: str, what: str):
    """SkyThought keys samples by temperature; one import is one protocol, so one temperature."""
    if isinstance(value, dict) and value and all(re.fullmatch(r"\d+(\.\d+)?", str(k)) for k in value):
        if len(value) > 1:
            raise DistillError(f"{at}: field '{what}': samples at several temperatures ({', '.join(value)}); import one run at a time")
        value = next(iter(value.values()))
    return value if isinstance(value, list) else [value]


def read_skythought(path: Path) -> Iterator[Foreign]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise DistillError(f"{where(path, e.lineno)}: malformed JSON ({e.msg})") from None
    if not isinstance(data, dict):
        raise DistillError(f"{path}: expected a JSON object keyed by problem, got {type(data).__name__}")
    for i, (key, item) in enumerate(data.items(), start=1):
        at = f"{path}: problem {i}"
        if not isinstance(item, dict):
            raise DistillError(f"{at}: expected an object, got {type(item).__name__}")
        responses = _only_temperature(_field(item, "responses", at, (dict, list)), at, "responses")
        usages = _only_temperature(item.get("token_usages") or {}, at, "token_usages")
        if len(usages) != len(responses):
            usages = [{}] * len(responses)
        question = item.get("problem") or item.get("question") or key
        texts = []
        for j, r in enumerate(responses):
            if not isinstance(r, dict) or not isinstance(r.get("content"), str):
                raise DistillError(f"{at}: field 'responses[{j}].content': missing or not text")
            texts.append(r["content"])
        yield Foreign(at, str(question), texts, [_label(r.get("correctness")) for r in responses], [None] * len(texts),
                      [(u or {}).get("completion_tokens") if isinstance(u, dict) else None for u in usages])


def _lighteval_metric(metrics: dict) -> str | None:
    """The metric that is a per-sample verdict: the only one, else one named like an exact match."""
    if len(metrics) == 1:
        return next(iter(metrics))
    return next((m for m in metrics if "match" in m or "pass@1" in m), None)


def read_lighteval(path: Path) -> Iterator[Foreign]:
    try:
        rows = pq.read_table(path).to_pylist()
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except Exception as e:  # pyarrow raises several types for a file that is not Parquet
        raise DistillError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    for i, row in enumerate(rows, start=1):
        at = where(path, i)
        if "doc" in row:  # current lighteval
            question = _field(_field(row, "doc", at, dict), "query", at, str)
            texts = _field(_field(row, "model_response", at, dict), "text", at, list)
            metrics = row.get("metric") or {}
        else:
            question = _field(row, "example", at, str)
            texts = _field(row, "predictions", at, list)
            metrics = row.get("metrics") or {}
        if isinstance(metrics, str):
            metrics = json.loads(metrics)
        metric = _lighteval_metric(metrics)
        label = _label(metrics.get(metric)) if metric and len(texts) == 1 else None
        yield Foreign(at, question, [str(t) for t in texts], [label] * len(texts), [None] * len(texts), [None] * len(texts))


READERS: dict[str, Callable[[Path], Iterator[Foreign]]] = {
    "lighteval": read_lighteval,
    "qwen-math": read_qwen_math,
    "skythought": read_skythought,
}


def normalise(text: str) -> str:
    """Problem text compared across tools: Unicode-normalised, lower case, whitespace collapsed."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def matcher(problems: list[dict]) -> Callable[[str], dict | None]:
    """question -> the benchmark problem with the same normalised text, else the longest one contained
    in it (a query wrapped in the tool's own instructions), else None."""
    exact = {normalise(p["prompt"]): p for p in problems}
    by_length = sorted(exact.items(), key=lambda kv: -len(kv[0]))

    def match(question: str) -> dict | None:
        q = normalise(question)
        if q in exact:
            return exact[q]
        return next((p for text, p in by_length if len(text) >= 16 and text in q), None)

    return match


FORMAT_HINT = "lighteval (a details Parquet), qwen-math (a jsonl, one problem a line), skythought (a results JSON keyed by problem)"


def _read(fmt: str, path: Path) -> list[Foreign]:
    """Every problem of the file; a file that is not `fmt` says which formats there are."""
    try:
        return list(READERS[fmt](path))
    except DistillError as e:
        raise DistillError(f"{e} (read as --import {fmt}; the formats are {FORMAT_HINT})") from None


def _with_think_markers(text: str, markers: tuple[str, str] | None) -> str:
    """The model's own thought markers (`--thought-markers OPEN,CLOSE`) stored as `<think>`/`</think>`."""
    if markers is None:
        return text
    return text.replace(markers[0], "<think>").replace(markers[1], "</think>")


def _match_all(items: list[Foreign], specs: list, problems: dict[str, list[dict]]) -> tuple[dict, list[dict]]:
    """{benchmark: [(problem, item)] in benchmark order} and the unmatched items; each item goes to the
    first benchmark that has its problem."""
    matchers = {spec.name: matcher(problems[spec.name]) for spec in specs}
    found: dict[str, dict[str, tuple[dict, Foreign]]] = {spec.name: {} for spec in specs}
    unmatched = []
    for item in items:
        hit = next(((name, p) for name, match in matchers.items() if (p := match(item.question)) is not None), None)
        if hit is None:
            unmatched.append({"at": item.at, "question": item.question[:200]})
            continue
        name, p = hit
        if p["id"] in found[name]:
            raise DistillError(f"{item.at}: the same {name} problem as {found[name][p['id']][1].at}")
        found[name][p["id"]] = (p, item)
    ordered = {name: [found[name][p["id"]] for p in problems[name] if p["id"] in found[name]] for name in found}
    return {name: pairs for name, pairs in ordered.items() if pairs}, unmatched


def _protocol(spec, pairs: list[tuple[dict, Foreign]]) -> dict:
    k = len(pairs[0][1].completions)
    for _, item in pairs:
        if len(item.completions) != k:
            raise DistillError(f"{item.at}: {len(item.completions)} samples, but {pairs[0][1].at} has {k}; every {spec.name} problem needs the same k")
    system = {item.system_prompt for _, item in pairs}
    ids = [p["id"] for p, _ in pairs]
    return {
        key: UNKNOWN for key in ("temperature", "top_p", "max_tokens", "seed", "problems_per_chunk", "template", "prefix")
    } | {
        "k": k, "scorer": spec.scorer, "n_problems": len(ids), "problems_hash": content_id(*sorted(ids)),
        "system_prompt": system.pop() if len(system) == 1 and None not in system else UNKNOWN,
    }


def _token_counter(tokenizer: str | None) -> Callable[[str], int] | None:
    """Completion text -> its token count under the model's tokenizer (a local path or id), None without one."""
    if tokenizer is None:
        return None
    try:
        return tokenizer_counter(tokenizer)
    except (OSError, ValueError) as e:
        raise DistillError(f"--tokenizer {tokenizer}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None


def import_samples(fmt: str, path: Path, out: Path, *, benchmarks: list[str], model: str, bootstrap_resamples: int = 10_000,
                   grading: str = "strict", thought_markers: tuple[str, str] | None = None, tokenizer: str | None = None) -> dict:
    """Write `out` as a finished eval directory of `model` on `benchmarks` (one shard each) from another
    tool's file; return {"matched", "unmatched", "samples", "k"} ("k": one number, or {benchmark: k}
    when they differ). Importing the same file again changes nothing.

    `grading` is the policy our verdicts use (strict | lenient); `thought_markers` (OPEN, CLOSE) names a
    model's own thought markers, stored as `<think>`/`</think>` so strict grading sees an unclosed one;
    `tokenizer` (the model's) re-tokenises every completion for `completion_tokens`, which the
    accuracy-against-budget curve needs (`distill.eval.budget`; an estimate for imported samples)."""
    from distill.eval.stage import spec_record, write_scores
    from distill.verify import check_grading

    if fmt not in READERS:
        raise DistillError(f"--import {fmt}: unknown format (the formats are {FORMAT_HINT})")
    try:
        check_grading(grading)
    except ValueError as e:
        raise DistillError(f"--grading: {e}") from None
    path, out = Path(path), Path(out)
    if not path.is_file():
        raise DistillError(f"{path}: {'a directory, expected a file' if path.is_dir() else 'file not found'}")
    specs = [load_spec(b) for b in benchmarks]
    if len({s.name for s in specs}) != len(specs):
        raise DistillError(f"--benchmark: the same benchmark named twice ({', '.join(s.name for s in specs)})")
    problems = {spec.name: load_benchmark(spec) for spec in specs}
    count = _token_counter(tokenizer)
    by_bench, unmatched = _match_all(_read(fmt, path), specs, problems)
    names = " or ".join(s.name for s in specs)
    if not by_bench:
        raise DistillError(f"{path}: none of its {len(unmatched)} problems is a {names} problem (first: {unmatched[0]['question'][:60]!r})"
                           if unmatched else f"{path}: no problems in it")
    specs = [s for s in specs if s.name in by_bench]
    protocols = {s.name: _protocol(s, by_bench[s.name]) for s in specs}
    config = {
        "imported": {"format": fmt, "file": path.name, "sha256": sha256_file(path), "matched": sum(map(len, by_bench.values())),
                     "unmatched": len(unmatched), **({"thought_markers": list(thought_markers)} if thought_markers else {}),
                     **({"tokenizer": tokenizer} if tokenizer else {})},
        "eval": {"bootstrap_resamples": bootstrap_resamples, "seed": 0, "grading": grading},
        "model": {"name": model, "backend": "imported", "imported_from": fmt},
        "benchmarks": {s.name: {"spec": spec_record(s), "protocol": protocols[s.name]} for s in specs},
        "shards": [[s.name, 0, len(by_bench[s.name])] for s in specs],
    }
    stage = StageDir(out)
    stage.prepare(config)
    if unmatched:
        write_text(out / "unmatched.jsonl", "".join(json.dumps(u, ensure_ascii=False) + "\n" for u in unmatched))
        log.warning("%s: %d of %d problems are not %s problems; left out, listed in %s (first: %s)", path, len(unmatched),
                    len(unmatched) + config["imported"]["matched"], names, out / "unmatched.jsonl", unmatched[0]["at"])
    stage.plan(len(specs))
    for i, spec in enumerate(specs):
        if not stage.is_done(i):
            _write_shard(stage, i, spec, by_bench[spec.name], model, grading, thought_markers, count)
    write_scores(out, config["model"])
    ks = {name: p["k"] for name, p in protocols.items()}
    return {"matched": config["imported"]["matched"], "unmatched": len(unmatched),
            "samples": sum(p["k"] * p["n_problems"] for p in protocols.values()),
            "k": next(iter(ks.values())) if len(set(ks.values())) == 1 else ks}


def _write_shard(stage: StageDir, i: int, spec, pairs: list[tuple[dict, Foreign]], model: str, grading: str,
                 thought_markers: tuple[str, str] | None, count: Callable[[str], int] | None) -> None:
    write_parquet(to_table([p for p, _ in pairs], PROBLEM), stage.path / "problems" / f"{spec.name}.parquet")
    rows = []
    for p, item in pairs:
        texts = [_with_think_markers(t, thought_markers) for t in item.completions]
        verdicts = score(spec.scorer, texts, p["answer"], p["tests"], rel_tol=spec.rel_tol, grading=grading)
        for j, (text, v) in enumerate(zip(texts, verdicts)):
            tokens = count(item.completions[j]) if count else item.tokens[j]
            stored_tokens = tokens if text == item.completions[j] else count(text) if count else None  # tokenised once unless rewritten
            rows.append({
                "benchmark": spec.name, "problem_id": p["id"], "model": model, "sample_idx": j, "answer": p["answer"],
                "completion": text, "extracted": v.extracted, "correct": v.correct, "finish_reason": None,
                "reason": v.reason, "grading": grading,
                "completion_tokens": tokens,
                # positions in the text as stored (a model's own thought markers written as `<think>`), which strict grading reads
                **token_positions(text, stored_tokens, None, count),
                "foreign_correct": item.labels[j], "foreign_extracted": item.extracted[j],
            })
    write_parquet(to_table(rows, EVAL_SAMPLE), stage.part(i))
    stage.finish(i, {"benchmark": spec.name, "rows_in": len(pairs), "rows_out": len(rows), "correct": sum(r["correct"] for r in rows)})
