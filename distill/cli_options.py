"""Typer options that recur across commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config of this stage.")]


def set_option(example: str):
    """`--set KEY=VALUE`, its help showing `example`, a key of the command's own config (tests/test_cli_help.py checks it)."""
    return Annotated[
        Optional[list[str]], typer.Option("--set", "-s", metavar="KEY=VALUE", help=f"Override a config key, e.g. --set {example} (repeatable).")
    ]


InputOpt = Annotated[Path, typer.Option("--input", "-i", help="Input stage directory.")]
OutputOpt = Annotated[Path, typer.Option("--output", "-o", help="Output stage directory (resumes if it exists).")]
WorkersOpt = Annotated[int, typer.Option("--workers", "-w", min=1, help="Local worker processes.")]
RankOpt = Annotated[int, typer.Option("--rank", min=0, help="This worker's index among --world-size (e.g. $SLURM_ARRAY_TASK_ID).")]
WorldSizeOpt = Annotated[int, typer.Option("--world-size", min=1, help="Number of cooperating workers; shards are split rank::world_size.")]
ExecutorOpt = Annotated[str, typer.Option("--executor", help="local (this process or a pool) | ray (tasks of the Ray cluster at $RAY_ADDRESS).")]
