"""A traces stage directory built from the toy teacher, as the generate stage would write it."""

from __future__ import annotations

import json
import random
from pathlib import Path

from distill.io import write_parquet
from distill.records import TRACE, to_table
from distill.stage import StageDir
from distill.think import split_think
from distill.toy.tasks import make_problems
from distill.toy.teacher import ToyTeacherConfig, count_tokens, write_trace


def trace_row(problem: dict, sample_idx: int, completion: str, finish_reason: str = "stop") -> dict:
    reasoning, response = split_think(completion)
    return {
        **problem,
        "sample_idx": sample_idx,
        "teacher": "toy",
        "completion": completion,
        "reasoning": reasoning,
        "response": response,
        "finish_reason": finish_reason,
        "prompt_tokens": count_tokens(problem["prompt"]),
        "completion_tokens": count_tokens(completion),
        "sampling": json.dumps({"temperature": 0.6}),
        "backend": "toy",
    }


def toy_traces(n_problems: int, samples: int, seed: int = 0, max_tokens: int = 256) -> list[dict]:
    rng = random.Random(seed)
    cfg = ToyTeacherConfig()
    rows = []
    for p in make_problems(n_problems, seed):
        for k in range(samples):
            text, finish = write_trace(p["prompt"], rng, cfg, max_tokens)
            rows.append(trace_row(p, k, text, finish))
    return rows


def write_traces_stage(path: Path, rows: list[dict], shards: int) -> StageDir:
    """Rows split into `shards` parts by problem (all samples of a problem in one shard), all done."""
    stage = StageDir(path)
    ids = sorted({r["id"] for r in rows})
    for i in range(shards):
        mine = set(ids[i::shards])
        part = [r for r in rows if r["id"] in mine]
        write_parquet(to_table(part, TRACE), stage.part(i))
        stage.finish(i, {"rows_in": len(part), "rows_out": len(part)})
    stage.plan(shards)
    return stage
