"""`distill prompts`: import, normalise, deduplicate and decontaminate training problems."""

from __future__ import annotations

import json

import typer

from distill.cli_options import ConfigOpt, ExecutorOpt, OutputOpt, WorkersOpt, set_option
from distill.config import load
from distill.prompts.config import PromptsConfig
from distill.prompts.stage import run

SetOpt = set_option("toy.n=500")


def prompts_cmd(output: OutputOpt, config: ConfigOpt = None, set: SetOpt = None, workers: WorkersOpt = 1, executor: ExecutorOpt = "local") -> None:
    """Write PROBLEM shards from the toy world, a JSONL/Parquet file or a HF dataset (see PromptsConfig)."""
    cfg = load(PromptsConfig, config, set)
    totals = run(cfg, output, workers=workers, executor=executor)
    typer.echo(json.dumps(totals, sort_keys=True), err=True)
