"""Run a multi-process launch (torchrun, accelerate launch, a Slurm script) in its own session, so a timeout or a
failed assertion never leaves its worker processes behind."""

import os
import signal
import subprocess


def run_launch(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """subprocess.run(cmd) with text output captured; on timeout the whole process group is killed, then re-raised."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # workers still alive after the launcher returned, or on timeout
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
