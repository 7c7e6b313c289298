"""Is a process alive, and which process is it: what claims and temp-file cleanup need to tell a live
writer from a dead one whose pid was reused (Linux /proc; elsewhere only the pid is known)."""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie, dead but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return stat is None or stat[0] != "Z"


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first); None where there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def proc_start(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux); None where /proc has no answer.
    With the pid, it names one process: pids are reused, most of all in containers that restart."""
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else None
