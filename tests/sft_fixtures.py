"""A curated stage directory made from toy-teacher traces, for the sft tests and the toy tuning script.

Rows are kept the way the filter keeps them (well-formed think tags, finished, boxed answer correct),
so the student sees what the pipeline would give it; rejected rows stay in the part with a reason.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from distill.generate.prompting import messages_for
from distill.io import write_parquet
from distill.records import CURATED, to_table
from distill.stage import StageDir
from distill.think import split_think
from distill.toy.tasks import make_problems
from distill.toy.teacher import ToyTeacherConfig, write_trace


def curated_rows(n: int, seed: int = 0, ops=("+",), digits: int = 2, teacher: ToyTeacherConfig | None = None) -> list[dict]:
    teacher = teacher or ToyTeacherConfig()
    rng = random.Random(seed)
    rows = []
    for p in make_problems(n, seed=seed, ops=ops, digits=digits):
        messages = messages_for(p["prompt"], p["domain"])
        completion, finish = write_trace(p["prompt"], rng, teacher, max_tokens=512)
        reasoning, response = split_think(completion)
        m = re.search(r"\\boxed\{(-?\d+)\}", response or "")
        extracted = m.group(1) if m else None
        reason = (
            "length" if finish != "stop" else "think_tags" if reasoning is None else "wrong_answer" if extracted != p["answer"] else None
        )
        rows.append(
            {
                **p,
                "sample_idx": 0,
                "teacher": "toy",
                "completion": completion,
                "reasoning": reasoning,
                "response": response,
                "finish_reason": finish,
                "verdict": "correct" if extracted == p["answer"] else "incorrect",
                "extracted": extracted,
                "reject_reason": reason,
                "messages": None if reason else messages + [{"role": "assistant", "content": completion}],
            }
        )
    return rows


def write_curated(stage_dir: Path, n: int, seed: int = 0, shards: int = 1, **kw) -> Path:
    """A finished curated stage of `n` problems in `shards` parts."""
    stage = StageDir(stage_dir)
    stage.prepare({"fixture": "toy", "n": n, "seed": seed, **{k: str(v) for k, v in kw.items()}})
    rows = curated_rows(n, seed, **kw)
    for i in range(shards):
        write_parquet(to_table(rows[i::shards], CURATED), stage.part(i))
        stage.finish(i, {"rows_in": len(rows[i::shards]), "rows_out": len(rows[i::shards])})
    stage.plan(shards)
    return Path(stage_dir)
