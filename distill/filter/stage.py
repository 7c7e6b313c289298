"""`distill filter`: rejection sampling and curation of teacher traces, one traces shard at a time.

Each sample gets a verdict from its domain's verifier and the R1 format/readability checks; the
selection policy then picks, per problem, which passing samples become SFT data. Kept rows carry the
SFT `messages`; rejected rows go to `rejected/part-*.parquet` with their `reject_reason`; per-shard
counts per reason go to `stats/`, which the report reads to draw the funnel.

Memory is bounded by one shard (the prompts stage's rows_per_shard x samples per prompt), whatever the input size.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from functools import partial
from pathlib import Path

from distill import engines
from distill.errors import DistillError
from distill.filter import checks
from distill.filter.config import FilterConfig
from distill.filter.select import Sample, select
from distill.generate.prompting import messages_for
from distill.io import read_parquet, write_parquet
from distill.records import CURATED, TRACE, conform, to_table
from distill.stage import StageDir, run_shards
from distill.filter.difficulty import student_pass_rates
from distill.filter.routing import NEEDS_JUDGE, NO_JUDGE, NONREASONING, Verifier, is_nonreasoning
from distill.verify import UNVERIFIABLE, Verdict

log = logging.getLogger(__name__)

# Order in which reasons are checked (the first one that applies is recorded) and drawn in the funnel.
REASONS = (
    "truncated",
    "no_think_open",
    "no_think_close",
    "duplicate_think",
    "repetition",
    "language_mixing",
    "long_paragraph",
    "code_in_reasoning",
    "no_answer",
    "wrong_answer",
    "runtime_error",
    "timeout",
    "memory_limit",
    "output_limit",
    "judge_incorrect",
    "unverifiable",
    "no_tests",
    "bad_tests",
    "student_solves",
    "student_fails",
    "duplicate",
    "too_hard",
    "too_easy",
    "not_selected",
)


def format_reason(row: dict, cfg: FilterConfig, prompt_script: str) -> str | None:
    """The first format/readability check this trace fails, or None."""
    c = cfg.checks
    text, reasoning = row["completion"], row.get("reasoning")
    if c.truncation and (r := checks.truncated(row.get("finish_reason"))):
        return r
    if c.think_format and (r := checks.think_format(text)):
        return r
    if c.repetition_min_ratio is not None and (r := checks.repetition(text, min_ratio=c.repetition_min_ratio)):
        return r
    if c.language_max_share is not None and (
        r := checks.language_mixing(text, prompt_script, max_share=c.language_max_share)
    ):
        return r
    if c.max_paragraph_chars is not None and (r := checks.long_paragraph(text, max_chars=c.max_paragraph_chars)):
        return r
    if c.code_in_reasoning and (r := checks.code_in_reasoning(reasoning, row["domain"])):
        return r
    return None




def judge_pending(rows: list[dict], verdicts: list[Verdict], judge_cfg) -> None:
    """Replace the verdicts waiting for the LLM judge with its verdicts, in one batched call."""
    todo = [i for i, v in enumerate(verdicts) if v.reason == NEEDS_JUDGE]
    if not todo:
        return
    from distill.verify.judge import judge_many, make_judge

    items = [(rows[i]["prompt"], rows[i]["completion"], rows[i].get("answer")) for i in todo]
    for i, v in zip(todo, judge_many(items, make_judge(judge_cfg))):
        verdicts[i] = v


def sft_messages(row: dict, template: str) -> list[dict]:
    """The SFT conversation: an imported chat's earlier turns, the user turn, the teacher's (or the
    imported) completion."""
    meta = json.loads(row["metadata"]) if row.get("metadata") else {}
    return [*meta.get("context", []), *messages_for(row["prompt"], row["domain"], template), {"role": "assistant", "content": row["completion"]}]


def kind(row: dict) -> str:
    """reasoning | nonreasoning_imported | nonreasoning_teacher: the parts of the SFT mix."""
    nr = is_nonreasoning(row)
    return f"nonreasoning_{nr}" if nr else "reasoning"


def _verdicts(rows: list[dict], formats: list[str | None], verifier: Verifier) -> list[Verdict]:
    """Each row's verdict. A sample repeated verbatim is judged once; code that failed the format checks
    is not run (a sandbox run is the costliest check, and the sample is rejected anyway)."""
    done: dict[tuple[str, str], Verdict] = {}
    out = []
    for row, fmt in zip(rows, formats):
        key = (row["id"], row["completion"])
        if key not in done:
            done[key] = Verdict(UNVERIFIABLE, None, "not_run") if fmt and verifier.route(row) == "code" else verifier(row)
        out.append(done[key])
    return out


def curate_rows(rows: list[dict], cfg: FilterConfig) -> tuple[list[dict], list[dict], Counter]:
    """(kept rows, rejected rows, counts) for the trace rows of whole problems."""
    scripts = {r["id"]: checks.main_script(r["prompt"]) for r in rows}
    formats = [format_reason(row, cfg, scripts[row["id"]]) for row in rows]
    verdicts = _verdicts(rows, formats, Verifier(cfg.verify))
    if cfg.verify.judge is not None:
        judge_pending(rows, verdicts, cfg.verify.judge)
    student = {}
    if cfg.student_pass_rate is not None:
        problems = list({r["id"]: r for r in rows if not is_nonreasoning(r)}.values())
        student = student_pass_rates(problems, cfg.student_pass_rate, cfg.verify)
    by_problem: dict[str, list[Sample]] = {}
    for i, (row, v, reason) in enumerate(zip(rows, verdicts, formats)):
        if reason is None and v.verdict != "correct":
            if v.reason in (NO_JUDGE, NONREASONING):
                reason = None  # kept on the format and readability checks alone
            elif v.verdict == UNVERIFIABLE:
                reason = None if cfg.verify.keep_unverifiable else "unverifiable"
            else:
                reason = v.reason or "wrong_answer"
        rate = student.get(row["id"])
        if reason is None and rate is not None:
            sp = cfg.student_pass_rate
            reason = "student_solves" if rate > sp.max_rate else "student_fails" if rate < sp.min_rate else None
        sample = Sample(i, row["sample_idx"], row["completion"], row.get("completion_tokens") or 0, v.correct, reason)
        by_problem.setdefault(row["id"], []).append(sample)
    for samples in by_problem.values():
        select(samples, cfg.select)

    kept, rejected, counts = [], [], Counter()
    for samples in by_problem.values():
        for s in samples:
            row, v = rows[s.index], verdicts[s.index]
            out = {**row, "verdict": v.verdict, "extracted": v.extracted, "reject_reason": s.reason}
            if s.reason is None:
                out["messages"] = sft_messages(row, cfg.template)
                kept.append(out)
            else:
                rejected.append(out)
                counts[s.reason] += 1
    kept.sort(key=lambda r: (r["id"], r["sample_idx"]))
    rejected.sort(key=lambda r: (r["id"], r["sample_idx"]))
    return kept, rejected, counts


def filter_shard(i: int, *, inp: str, out: str, cfg: dict) -> dict:
    """Curate shard i of the traces stage `inp` into output shard i; return its funnel counters."""
    cpu = time.process_time()
    config = FilterConfig.model_validate(cfg)
    stage = StageDir(Path(out))
    part = StageDir(Path(inp)).part(i)
    try:
        table = conform(read_parquet(part), TRACE)
    except DistillError as e:
        raise DistillError(f"{part}: {e}" if str(part) not in str(e) else str(e)) from None
    rows = table.to_pylist()
    kept, rejected, counts = curate_rows(rows, config)
    write_parquet(to_table(kept, CURATED), stage.part(i))
    write_parquet(to_table(rejected, CURATED), stage.rejected(i))
    log.info("filter shard %d: kept %d of %d; top reasons %s", i, len(kept), len(rows), dict(counts.most_common(3)))
    verdicts = Counter(r["verdict"] for r in kept + rejected)
    return {
        **funnel(rows, kept, rejected),
        "verdicts": dict(sorted(verdicts.items())),
        "kept_unverifiable": sum(r["extracted"] is None and r["verdict"] == UNVERIFIABLE and r["domain"] == "general" and kind(r) == "reasoning" for r in kept),
        "kinds": dict(Counter(kind(r) for r in kept)),
        "by_source": {k: funnel(*v) for k, v in _groups(rows, kept, rejected, "source").items()},
        "by_domain": {k: funnel(*v) for k, v in _groups(rows, kept, rejected, "domain").items()},
        "cpu_seconds": round(time.process_time() - cpu, 3),  # beside the runner's wall `seconds`
    }


def funnel(rows: list[dict], kept: list[dict], rejected: list[dict]) -> dict:
    """Rows, problems and tokens in and out, and the count of each reject reason."""
    counts = Counter(r["reject_reason"] for r in rejected)
    return {
        "rows_in": len(rows),
        "rows_out": len(kept),
        "rejected": {r: counts[r] for r in REASONS if counts[r]} | {r: n for r, n in counts.items() if r not in REASONS},
        "problems_in": len({r["id"] for r in rows}),
        "problems_out": len({r["id"] for r in kept}),
        "completion_tokens_in": sum(r.get("completion_tokens") or 0 for r in rows),
        "completion_tokens_out": sum(r.get("completion_tokens") or 0 for r in kept),
    }


def _groups(rows: list[dict], kept: list[dict], rejected: list[dict], key: str) -> dict[str, tuple[list, list, list]]:
    out: dict[str, tuple[list, list, list]] = {}
    for i, part in enumerate((rows, kept, rejected)):
        for r in part:
            out.setdefault(r[key], ([], [], []))[i].append(r)
    return out


def run(cfg: FilterConfig, inp: Path, out: Path, *, workers: int = 1, rank: int = 0, world_size: int = 1, executor: str = "local") -> dict:
    """Curate every shard of the traces stage `inp` into `out`; returns the totals over all done shards."""
    src = StageDir(Path(inp))
    n_shards = src.require_complete("generate")
    stage = StageDir(Path(out))
    stage.prepare({**cfg.model_dump(), "input_config": src.config_hash()})
    task = partial(filter_shard, inp=str(src.path), out=str(stage.path), cfg=cfg.model_dump())
    try:
        run_shards(stage, n_shards, task, workers=workers, rank=rank, world_size=world_size, desc="filter", executor=executor)
    finally:
        engines.release()  # the judge's engine, if this process started one: SFT comes next
    return totals(stage.stats())


def totals(stats: list[dict]) -> dict:
    """Sum of the per-shard counters (nested ones too: per source, per domain): the funnel of the whole stage."""
    out: dict = {"shards": len(stats)}
    for s in stats:
        _add(out, {k: v for k, v in s.items() if k not in ("shard", "seconds")})
    return out


def _add(acc: dict, counters: dict) -> None:
    for k, v in counters.items():
        if isinstance(v, dict):
            _add(acc.setdefault(k, {}), v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            acc[k] = acc.get(k, 0) + v
