"""A real two-node Ray cluster on this machine for tests: a head and a second node, each its own `ray start
--block` process tree in its own session, so the test can kill the second node's raylet and, at the end,
every process either tree started (never `ray stop`, which would stop other users' clusters too).

Addressed as 127.0.0.1; Ray (2.60) itself rewrites a loopback address to the host's own IP in every
driver (`services.resolve_ip_for_localhost`), so the nodes register under that address: a cluster
whose nodes say `--node-ip-address=127.0.0.1` cannot be joined by a driver. Token authentication is
off for this private cluster (`RAY_AUTH_MODE=disabled`): the default token lives in ~/.ray, shared with
any other cluster of this user."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.launch import session_processes

RAY = str(Path(sys.executable).with_name("ray"))
# Seconds, not the default ~30, before the head declares a node dead and Ray retries its tasks elsewhere.
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4", "RAY_health_check_timeout_ms": "500"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodes:
    def __init__(self, tmp: Path, cpus_per_node: int = 1):
        self.tmp, self.cpus = tmp, cpus_per_node
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.ray_tmp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
        self.procs: list[subprocess.Popen] = []
        self.sessions: list[int] = []

    def env(self) -> dict:
        return {**os.environ, **FAST_HEALTH, "RAY_ADDRESS": self.address, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}

    def _start(self, *args: str, log: str) -> subprocess.Popen:
        proc = subprocess.Popen([RAY, "start", "--block", f"--num-cpus={self.cpus}", "--num-gpus=0", *args],
                                stdout=open(self.tmp / log, "wb"), stderr=subprocess.STDOUT, env=self.env(), start_new_session=True)
        self.procs.append(proc)
        self.sessions.append(proc.pid)  # start_new_session: its pid is the session id of its whole tree
        return proc

    def start(self, timeout_s: float = 300) -> None:
        self._start("--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.ray_tmp}", log="head.log")
        self._wait_started("head.log", timeout_s)
        self._start(f"--address={self.address}", log="node2.log")
        self._wait_started("node2.log", timeout_s)
        self._wait_nodes(2, timeout_s)

    def _wait_started(self, log: str, timeout_s: float) -> None:
        """Until `ray start --block` says it is up (a driver connecting earlier can hang for minutes)."""
        deadline = time.time() + timeout_s
        while "block forever" not in (self.tmp / log).read_text(errors="replace"):
            if any(p.poll() is not None for p in self.procs) or time.time() > deadline:
                raise RuntimeError(f"ray start did not come up: {(self.tmp / log).read_text(errors='replace')[-2000:]}")
            time.sleep(1)

    def _wait_nodes(self, n: int, timeout_s: float) -> None:
        probe = "import ray; ray.init(log_to_driver=False); print(sum(x['Alive'] for x in ray.nodes()))"
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            try:
                res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=self.env(), timeout=120)
                if res.returncode == 0 and res.stdout.strip().splitlines()[-1:] == [str(n)]:
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(2)
        raise RuntimeError(f"the cluster did not reach {n} nodes in {timeout_s} s")

    def kill_second_raylet(self) -> int:
        raylets = [p for p in session_processes(self.sessions[1]) if "raylet" in p.name()]
        assert len(raylets) == 1, [p.name() for p in session_processes(self.sessions[1])]
        raylets[0].send_signal(signal.SIGKILL)
        return raylets[0].pid

    def stop(self) -> None:
        """SIGKILL both trees (second node first), then wait until none of their processes is left."""
        for session in reversed(self.sessions):
            for p in session_processes(session):
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        for proc in self.procs:
            proc.wait(timeout=30)
        deadline = time.time() + 30
        while any(session_processes(s) for s in self.sessions) and time.time() < deadline:
            time.sleep(0.5)
        shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def leftovers(self) -> list[str]:
        return [f"{p.pid} {p.name()}" for s in self.sessions for p in session_processes(s)]
