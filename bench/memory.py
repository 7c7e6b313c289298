"""Peak memory of a process tree, sampled in a thread: the one sampler the benches share."""

from __future__ import annotations

import threading
import time

import psutil


def private_bytes(p: psutil.Process) -> int:
    """RssAnon: the anonymous memory a process holds, without the file pages it maps (Arrow, Parquet),
    which RSS counts and the kernel can drop."""
    with open(f"/proc/{p.pid}/status") as f:
        return next((int(line.split()[1]) * 1024 for line in f if line.startswith("RssAnon:")), 0)


class PeakMemory:
    """The largest sum over this process and all its children, sampled every `every_s`: of RSS, or with
    `private` of RssAnon (`private_bytes`)."""

    def __init__(self, private: bool = False, every_s: float = 0.05):
        self.peak, self.every_s, self._stop = 0, every_s, threading.Event()
        self._size = private_bytes if private else (lambda p: p.memory_info().rss)
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += self._size(p)
                except (psutil.NoSuchProcess, OSError):  # it ended between the listing and the read
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.every_s)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
