"""`distill generate`: teacher traces for every problem of a prompts stage directory."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from distill.cli_options import ConfigOpt, ExecutorOpt, InputOpt, OutputOpt, RankOpt, WorkersOpt, WorldSizeOpt, set_option
from distill.config import load
from distill.generate.config import GenerateConfig
from distill.generate.stage import run

SetOpt = set_option("sampling.temperature=0.7")

LeaveHeldOpt = Annotated[bool, typer.Option("--leave-held", help="Exit 0 when the only unfinished shards are held by other live workers (Slurm array tasks).")]


def generate_cmd(
    input: InputOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    set: SetOpt = None,
    workers: WorkersOpt = 1,
    rank: RankOpt = 0,
    world_size: WorldSizeOpt = 1,
    executor: ExecutorOpt = "local",
    leave_held: LeaveHeldOpt = False,
) -> None:
    """Sample teacher traces (toy | transformers | vllm | openai backend); rerun to resume, run many to share work."""
    cfg = load(GenerateConfig, config, set)
    summary = run(cfg, input, output, workers=workers, rank=rank, world_size=world_size, executor=executor, leave_held=leave_held)
    typer.echo(json.dumps(summary, sort_keys=True), err=True)

