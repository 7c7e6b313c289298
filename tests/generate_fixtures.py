"""Shared helpers of the generate tests: a prompts stage directory of toy problems, and a worker entry."""

from __future__ import annotations

import sys
from pathlib import Path

from distill.records import PROBLEM, to_table
from distill.stage import StageDir
from distill.io import write_parquet
from distill.toy.tasks import make_problems


def make_prompts_stage(path: Path, n_problems: int, rows_per_shard: int, seed: int = 0) -> Path:
    """A finished prompts stage (parts, stats, done markers, plan) of toy arithmetic problems."""
    stage = StageDir(path)
    problems = make_problems(n_problems, seed=seed)
    shards = [problems[i : i + rows_per_shard] for i in range(0, len(problems), rows_per_shard)]
    for i, rows in enumerate(shards):
        write_parquet(to_table(rows, PROBLEM), stage.part(i))
        stage.finish(i, {"rows_in": len(rows), "rows_out": len(rows)})
    stage.plan(len(shards))
    return path


def worker_main(argv: list[str]) -> None:
    """`python tests/generate_fixtures.py CONFIG.yaml INPUT OUTPUT`: one `distill generate` worker."""
    from distill.config import load
    from distill.generate.config import GenerateConfig
    from distill.generate.stage import run

    cfg_path, inp, out = argv
    run(load(GenerateConfig, Path(cfg_path)), Path(inp), Path(out))


if __name__ == "__main__":
    worker_main(sys.argv[1:])
