"""`distill report`: the run's HTML page and Markdown file from what the stages wrote."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/toy.")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Report directory (default: RUN_DIR/report).")] = None,
) -> None:
    """Write RUN_DIR/report/index.html (self-contained) and report.md: results with CIs, plots, R1 reference rows."""
    from distill.report.build import run

    page = run(run_dir, output or run_dir / "report")
    typer.echo(str(page))
