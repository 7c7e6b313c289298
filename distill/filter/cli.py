"""`distill filter`: rejection sampling and curation of a traces stage directory."""

from __future__ import annotations

import json

import typer

from distill.cli_options import ConfigOpt, ExecutorOpt, InputOpt, OutputOpt, RankOpt, WorkersOpt, WorldSizeOpt, set_option
from distill.config import load
from distill.filter.config import FilterConfig
from distill.filter.stage import run

SetOpt = set_option("select.policy=shortest")


def filter_cmd(
    input: InputOpt,
    output: OutputOpt,
    config: ConfigOpt = None,
    set: SetOpt = None,
    workers: WorkersOpt = 1,
    rank: RankOpt = 0,
    world_size: WorldSizeOpt = 1,
    executor: ExecutorOpt = "local",
) -> None:
    """Verify, check and select teacher traces; kept rows get SFT messages, rejected rows keep their reason."""
    cfg = load(FilterConfig, config, set)
    totals = run(cfg, input, output, workers=workers, rank=rank, world_size=world_size, executor=executor)
    typer.echo(json.dumps(totals, sort_keys=True), err=True)
