"""`distill status`: each stage's progress in a run directory, as a table that fits the terminal (80
columns and up), from what the stages wrote (distill.progress)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from distill.console import count, duration, fit_table
from distill.errors import DistillError
from distill.progress import run_lines
from distill.stage import StageDir


def status_lines(run_dir: Path, width: int) -> tuple[list[str], list[str]]:
    """(the table's lines, the problems found). Per stage a title line, then a row per unit (the stage,
    each student, each model): progress, state, rows, tokens, ETA of a running one; its rate, notes,
    claims held and damaged shards on the line below."""
    run_dir = Path(run_dir)
    if not (run_dir / "pipeline.yaml").is_file():
        raise DistillError(f"{run_dir}: not a run directory (no pipeline.yaml)")
    rows: list = []
    problems: list[str] = []
    for stage, lines in run_lines(run_dir):
        rows.append(f"{stage}:")
        for line in lines:
            done = f"{count(line.done)}/{count(line.total) if line.total is not None else '?'} {line.unit}"
            running = line.state == "running"
            notes = [f"{line.rate:,.1f} {line.unit}/s"] if line.rate and running else []
            notes += [line.info] if line.info else []
            if line.path is not None and line.path.is_dir() and line.unit in ("shards", "samples"):
                damaged, held = _integrity(StageDir(line.path))
                problems += damaged
                notes += damaged + held
            cells = [f"  {line.name}", done, line.state, count(line.rows), count(line.tokens), duration(line.eta_s) if running else ""]
            rows.append((cells, " · ".join(notes)))
    return [str(run_dir)] + fit_table(["", "progress", "state", "rows", "tokens", "ETA"], rows, width, right={1, 3, 4, 5}), problems


def print_status(run_dir: Path) -> None:
    """The table on stdout; damage also makes the command fail, after the table, naming the first one."""
    stdout = Console(highlight=False)
    lines, problems = status_lines(run_dir, stdout.width)
    for text in lines:
        stdout.print(text, markup=False, highlight=False, soft_wrap=True)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s) above)" if len(problems) > 1 else ""
        raise DistillError(problems[0] + more)


def _integrity(stage: StageDir) -> tuple[list[str], list[str]]:
    """(damaged shards, held claims) of one sharded stage; damaged files are problems, not crashes."""
    problems: list[str] = []
    try:
        stage.planned()
    except DistillError as e:
        problems.append(str(e))
    for i in stage.done_shards():
        damage = stage.damage(i)
        if damage is not None:
            problems.append(f"{stage.path.name} shard {i} damaged: {damage}")
    return problems, [f"shard {i} held by {who}" for i, who in stage.held_claims().items()]
