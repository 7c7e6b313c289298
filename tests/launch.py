"""Run a multi-process launch (torchrun, accelerate launch, a Slurm script) in its own session, so a timeout or a
failed assertion never leaves its worker processes behind."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil


def session_processes(session: int) -> list[psutil.Process]:
    """Live processes of a session (a launch started with start_new_session: its pid is the session id);
    zombies are dead, waiting only for their parent to reap them, so they do not count."""
    alive = []
    for p in psutil.process_iter(["pid"]):
        try:
            if os.getsid(p.pid) == session and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except (ProcessLookupError, PermissionError, psutil.NoSuchProcess):
            pass
    return alive


def run_launch(cmd: list[str], timeout: float, check_left: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd) with text output captured; on timeout the whole process group is killed, then re-raised.

    `check_left`: once the command has returned, its processes get 30 s to end (helpers that exit when they
    read their parent's exit, e.g. multiprocessing's resource tracker), then any still alive fail the call."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)
    left = []
    try:
        out, err = proc.communicate(timeout=timeout)
        deadline = time.time() + 30
        while check_left and (left := session_processes(proc.pid)) and time.time() < deadline:
            time.sleep(0.5)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers still alive after the launcher returned, or on timeout
        except ProcessLookupError:
            pass
    assert not left, f"{cmd[:4]} left processes {[p.pid for p in left]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def rank_reports(folder: Path) -> list[dict]:
    """The JSON each rank of a launched probe wrote to `folder`/rank-N.json: one file a rank, because the ranks'
    lines on a shared stdout can run together (CI once read two ranks' JSON as one line)."""
    return [json.loads(path.read_text()) for path in sorted(folder.glob("rank-*.json"))]
