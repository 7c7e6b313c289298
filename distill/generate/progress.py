"""A live bar for generation: rows done of rows planned, completion tokens per second, ETA, and for a
paid endpoint the spend so far and the projected total."""

from __future__ import annotations

import time

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RowProgress:
    """Advanced once per finished problem. Disabled (a no-op) when shards run in other processes.
    With a budget, the planned rows are an upper bound, so the ETA and the projection are too.
    `spent`: USD of the stage's earlier runs, shown from the start."""

    def __init__(self, total_rows: int, enabled: bool = True, spent: float = 0.0):
        from distill import console

        self.enabled = enabled = enabled and console.bars_enabled()
        self.tokens = 0
        self.rows = 0
        self.total_rows = total_rows
        self.spent_before, self.spent = spent, 0.0
        self.start = time.time()
        self.bar = Progress(
            TextColumn("traces"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows  {task.fields[tok_s]:,.0f} tok/s{task.fields[spend]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console.CONSOLE,
            disable=not enabled,
        )
        self.task = self.bar.add_task("traces", total=total_rows, tok_s=0.0, spend="")

    def spend_line(self) -> str:
        """'  $1.23 spent, ~$4.56 projected' once anything was paid for; '' otherwise."""
        total = self.spent_before + self.spent
        if not total:
            return ""
        projected = self.spent_before + self.spent / self.rows * self.total_rows if self.rows else total
        return f"  ${total:,.2f} spent, ~${projected:,.2f} projected"

    def advance(self, rows: int, tokens: int, cost: float = 0.0) -> None:
        self.tokens += tokens
        self.rows += rows
        self.spent += cost
        tok_s = self.tokens / max(time.time() - self.start, 1e-9)
        self.bar.update(self.task, advance=rows, tok_s=tok_s, spend=self.spend_line())

    def __enter__(self) -> "RowProgress":
        self.bar.start()
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:  # with a budget the plan was an upper bound: show the run as complete
            self.bar.update(self.task, total=self.bar.tasks[0].completed)
        self.bar.stop()
