"""Shard tasks used by the stage-runner tests (importable by spawned workers and subprocesses)."""

import sys
import time
from pathlib import Path

import pyarrow as pa

from distill.io import write_parquet
from distill.stage import StageDir, run_shards

ROWS_PER_SHARD = 5


def live_group_members(pgid: int) -> list[int]:
    """Pids of the running (not zombie) processes of process group `pgid` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            out.append(int(d.name))
    return out


def wait_group_gone(pgid: int, timeout_s: float = 20) -> list[int]:
    """Wait until no process of the group runs; return those still running at the timeout."""
    deadline = time.time() + timeout_s
    while (alive := live_group_members(pgid)) and time.time() < deadline:
        time.sleep(0.1)
    return alive


def numbers_task(out: str, delay_s: float, i: int) -> dict:
    """Write shard i: rows i*5 .. i*5+4, after an optional delay (so a test can kill us mid-stage)."""
    time.sleep(delay_s)
    rows = list(range(i * ROWS_PER_SHARD, (i + 1) * ROWS_PER_SHARD))
    write_parquet(pa.table({"x": rows}), StageDir(out).part(i))
    return {"rows_in": len(rows), "rows_out": len(rows)}


if __name__ == "__main__":  # python stage_tasks.py OUT N_SHARDS DELAY_S WORKERS
    from functools import partial

    out, n, delay, workers = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    stage = StageDir(Path(out))
    stage.prepare({"task": "numbers"})
    run_shards(stage, n, partial(numbers_task, out, delay), workers=workers)
