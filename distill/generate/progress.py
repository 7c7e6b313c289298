"""A live bar for generation: rows done of rows planned, completion tokens per second, ETA."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RowProgress:
    """Advanced once per checkpointed chunk. Disabled (a no-op) when shards run in other processes.
    With a budget, the planned rows are an upper bound, so the ETA is too."""

    def __init__(self, total_rows: int, enabled: bool = True):
        from distill import console

        self.enabled = enabled = enabled and console.bars_enabled()
        self.tokens = 0
        self.start = time.time()
        self.bar = Progress(
            TextColumn("traces"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows  {task.fields[tok_s]:,.0f} tok/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console.CONSOLE,
            disable=not enabled,
        )
        self.task = self.bar.add_task("traces", total=total_rows, tok_s=0.0)

    def advance(self, rows: int, tokens: int) -> None:
        self.tokens += tokens
        self.bar.update(self.task, advance=rows, tok_s=self.tokens / max(time.time() - self.start, 1e-9))

    def __enter__(self) -> "RowProgress":
        self.bar.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:  # with a budget the plan was an upper bound: show the run as complete
            self.bar.update(self.task, total=self.bar.tasks[0].completed)
        self.bar.stop()
