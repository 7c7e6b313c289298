"""What the terminal shows: our own log lines, one live progress display per stage, a closing summary.

Everything the libraries print (transformers/datasets/TRL/vLLM logging, tqdm bars, Python warnings,
the Trainer's dict logs) goes to a log file of the run instead: `<run>/logs/<stage>.log`, one per
student (`sft-<student>.log`) and per evaluated model (`eval-<model>.log`). The terminal keeps our
INFO lines, every warning of ours and errors of the libraries. `--verbose` sends everything to stderr
as the libraries would by default. Data never goes to stderr; stdout carries only results.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from distill.errors import DistillError

CONSOLE = Console(stderr=True, highlight=False)
if not CONSOLE.is_terminal:
    CONSOLE.width = max(CONSOLE.width, 120)  # a log file or a pipe: rich's 80 columns would wrap every table
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Set in each process by `setup` / `worker_setup`.
_settings = {"verbose": False, "log_file": None, "display": False}

# Read by the libraries at import (tqdm >= 4.66, huggingface_hub, datasets, vLLM) and inherited by
# every worker process, so their bars and handlers are off before any of them is imported.
QUIET_ENV = {
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "VLLM_CONFIGURE_LOGGING": "0",  # vLLM's records then reach the root logger, hence the log file
}

# Library warnings that say nothing a user can act on in this project, dropped even from the log
# files (they repeat once per model load or per worker).
IGNORED_WARNINGS = (
    r".*mtime may not be reliable.*",
    r".*`torch_dtype` is deprecated.*",
    r".*TRANSFORMERS_CACHE.*",
)


def _shown_on_terminal(record: logging.LogRecord) -> bool:
    if _settings["verbose"]:
        return True
    if record.name == "distill" or record.name.startswith("distill."):
        return record.levelno >= (logging.WARNING if _settings["display"] else logging.INFO)
    # Library warnings go to the stage's log file; a standalone command without one shows them.
    return record.levelno >= (logging.ERROR if _settings["log_file"] or _settings["display"] else logging.WARNING)


class _TerminalHandler(logging.Handler):
    """Prints through the shared rich console, so lines appear above a live display instead of through it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            CONSOLE.print(self.format(record), markup=False, highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise (same contract as logging.StreamHandler)
            self.handleError(record)


def _route_library_loggers() -> None:
    """transformers and datasets attach their own stderr handler to their root logger (transformers also
    stops propagation); take both off so their records reach our handlers (terminal filter, log file)."""
    for name in ("transformers", "datasets"):
        try:
            lib = __import__(f"{name}.utils.logging", fromlist=["_"])  # configures the library's logger
        except ImportError:
            continue
        lib.get_logger()
        logger = logging.getLogger(name)
        for h in list(logger.handlers):
            logger.removeHandler(h)
        logger.propagate = True
        if not _settings["verbose"]:
            getattr(lib, "disable_progress_bar", getattr(lib, "disable_progress_bars", lambda: None))()


def setup(verbose: bool = False) -> None:
    """Configure this (the CLI's) process: terminal handler with the filter above; quiet libraries."""
    _settings["verbose"] = verbose
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = _TerminalHandler()
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_shown_on_terminal)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose:
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    logging.captureWarnings(True)  # Python warnings become records of "py.warnings": to the log file
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


@contextmanager
def log_file(path: Path | None) -> Iterator[None]:
    """While inside, every record of this process also goes to `path`; workers started inside write there too."""
    if path is None:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _route_library_loggers()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    previous, _settings["log_file"] = _settings["log_file"], str(path)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()
        _settings["log_file"] = previous


def worker_settings() -> dict:
    """What a worker process needs to log like this one (passed to `worker_setup`)."""
    return {"verbose": _settings["verbose"], "log_file": _settings["log_file"]}


_saved_stderr: int | None = None


def worker_setup(verbose: bool = False, log_file: str | None = None) -> None:
    """In a spawned worker: everything it prints, C libraries included, goes to `log_file` (appended);
    our warnings and library errors still reach the terminal. May be called again to switch files."""
    global _saved_stderr
    _settings.update(verbose=verbose, log_file=log_file, display=True)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if verbose or log_file is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
        handler.addFilter(_shown_on_terminal)
        root.addHandler(handler)
        return
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    logging.captureWarnings(True)
    for pattern in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    if _saved_stderr is None:
        _saved_stderr = os.dup(2)
    sys.stdout.flush()
    sys.stderr.flush()
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    to_file = logging.StreamHandler(sys.stderr)  # fd 2 is the log file now
    to_file.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(to_file)
    terminal = logging.StreamHandler(os.fdopen(os.dup(_saved_stderr), "w", buffering=1))
    terminal.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    terminal.addFilter(_shown_on_terminal)
    root.addHandler(terminal)
    _route_library_loggers()


@contextmanager
def quiet() -> Iterator[None]:
    """Our INFO lines to the log file only, as under a display (a stage that has nothing to do)."""
    before, _settings["display"] = _settings["display"], True
    try:
        yield
    finally:
        _settings["display"] = before


def bars_enabled() -> bool:
    """False while a stage display of `distill run` is on screen (a second live bar would fight it)."""
    return not _settings["display"]


# Below this width the live display drops its bar, so a line keeps its counts and ETA at 80 columns.
BAR_MIN_WIDTH = 100
NAME_WIDTH = 24  # the longest name of the toy (toy-qwen2-answer-only) and a kd control (<run>-sft-control)


def _columns(width: int):
    from rich.table import Column

    bar = [BarColumn(bar_width=16)] if width >= BAR_MIN_WIDTH else []
    return (
        TextColumn("  {task.fields[name]}", table_column=Column(width=NAME_WIDTH + 2, no_wrap=True, overflow="ellipsis")),
        *bar,
        TextColumn("{task.fields[progress]}", justify="right", table_column=Column(no_wrap=True)),
        # what a line may not lose (ETA, counts) comes first; a long tail wraps onto a second line
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=False, overflow="fold", ratio=1)),
    )


def line_fields(line) -> dict:
    """The text of one live line (a progress.Line): name, `done/total unit`, then ETA, rows, tokens, info."""
    if line.finished:
        where = f"{count(line.done)} {line.unit}"
    else:
        where = f"{count(line.done)}/{count(line.total) if line.total else '?'} {line.unit}"
    extra = [f"ETA {duration(line.eta_s)}"] if not line.finished and line.eta_s is not None else []
    if line.rows:
        extra.append(f"{count(line.rows)} rows")
    if line.tokens:
        extra.append(f"{count(line.tokens)} tok")
    if line.info:
        extra.append(line.info)
    if line.state == "not started" and not line.done:
        extra = ["waiting"]
    return {"name": line.name, "progress": where, "info": " · ".join(extra)}


@contextmanager
def stage_display(title: str, poll: Callable[[], list], every_s: float = 0.5) -> Iterator[None]:
    """One live display for a stage of `distill run`: a line per unit (the stage, each student, each
    model) redrawn from `poll()` (a list of progress.Line) until the stage returns. On a terminal it
    animates; in a log file or a pipe it prints the final lines once."""
    CONSOLE.print(f"[bold]{title}[/bold]")
    progress = Progress(*_columns(CONSOLE.width), console=CONSOLE, transient=False, auto_refresh=CONSOLE.is_terminal)
    tasks: dict[str, int] = {}

    def refresh() -> None:
        for line in poll():
            total = line.total if line.total else None
            fields = line_fields(line)
            if line.name not in tasks:
                tasks[line.name] = progress.add_task(line.name, total=total, completed=line.done, **fields)
            else:
                progress.update(tasks[line.name], total=total, completed=line.done, **fields)

    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                refresh()
            except (OSError, ValueError, KeyError, DistillError):
                continue  # a file between writes: the next poll reads it whole

    before, _settings["display"] = _settings["display"], True
    refresh()
    progress.start()
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        try:
            refresh()
        finally:
            progress.stop()
            _settings["display"] = before


def fit_table(head: list[str], rows: list, width: int, right: set[int] = frozenset()) -> list[str]:
    """Plain-text table lines no wider than `width`. A row is a list of cells, or a str printed as it is
    (a section title), or a (cells, note) pair whose note goes on the next line(s), indented. Columns
    whose index is in `right` are right-aligned. The first column gets what the others leave; a first cell
    longer than that goes on a line of its own above its row, so no cell is ever cut."""
    import textwrap

    cells = [head] + [r[0] if isinstance(r, tuple) else r for r in rows if not isinstance(r, str)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    widths[0] = max(8, min(widths[0], width - sum(widths[1:]) - 2 * (len(head) - 1)))

    def cols(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    out = [cols(head)]
    for r in rows:
        if isinstance(r, str):
            out.append(r)
            continue
        values, note = r if isinstance(r, tuple) else (r, "")
        if len(values[0]) > widths[0]:
            out += textwrap.wrap(values[0], width, break_on_hyphens=False, break_long_words=False)
            values = [""] + list(values[1:])
        out.append(cols(values))
        if note:
            out += textwrap.wrap(note, width, initial_indent="    ", subsequent_indent="    ", break_long_words=False)
    return out


def points(v: float, signed: bool = False) -> str:
    """A rate as a percentage, or a difference in points with its sign; zero never gets one (`0.0`, not `+0.0`)."""
    return "0.0" if signed and round(100 * v, 1) == 0 else f"{100 * v:+.1f}" if signed else f"{100 * v:.1f}"


def interval(x: float, lo: float, hi: float, signed: bool = False) -> str:
    """A rate or a difference in points with its 95% CI: `25.1 [21.0, 29.5]`, `+4.0 [-1.9, +9.9]`."""
    return f"{points(x, signed)} [{points(lo, signed)}, {points(hi, signed)}]"


def summary_lines(summary: dict, width: int) -> list[str]:
    """The closing table of `distill run`, per benchmark: each distilled model (its pass@1 and its difference
    to the baseline), then on the next row its baseline; fits `width` columns (80 and up)."""
    pairs = summary.get("pairs") or []
    out: list[str] = []
    for bench in sorted({p["benchmark"] for p in pairs}):
        mine = [p for p in pairs if p["benchmark"] == bench]
        out.append(f"pass@1 (%) on {bench} ({mine[0]['n_problems']} problems, k={mine[0]['k']}), 95% CI in brackets")
        rows = []
        for p in mine:
            rows.append([p["distilled"], interval(p["distilled_pass1"], *p["distilled_ci"]), interval(p["diff"], *p["diff_ci"], signed=True)])
            rows.append([f"  vs {p['baseline']}", interval(p["baseline_pass1"], *p["baseline_ci"]), ""])
        out += fit_table(["model", "pass@1", "vs baseline (points)"], rows, width, right={1, 2}) + [""]
    return out


def print_summary(summary_file: Path) -> None:
    """The result of `distill run` on stdout (so `distill run ... > out.txt` keeps it): the closing table;
    the count of library warnings in the logs goes to stderr with the other log lines."""
    import json

    if not Path(summary_file).exists():
        return
    summary = json.loads(Path(summary_file).read_text())
    stdout = Console(highlight=False)
    for text in summary_lines(summary, stdout.width):
        stdout.print(text, markup=False, highlight=False, soft_wrap=True)
    logs = Path(summary_file).parent.parent / "logs"
    warned = sum(_count_warnings(f) for f in logs.glob("*.log")) if logs.is_dir() else 0
    if warned:
        CONSOLE.print(f"{warned} library warning(s) in {logs}/ (not shown here; --verbose shows them)", markup=False)


def _count_warnings(path: Path) -> int:
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if " WARNING " in line)


def duration(seconds: float | None) -> str:
    """3725 -> 1:02:05; 65 -> 1:05."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def count(n: int | None) -> str:
    """1234 -> 1,234; 1234567 -> 1.2M."""
    if n is None:
        return ""
    return f"{n / 1e6:.1f}M" if n >= 1_000_000 else f"{n:,}"
