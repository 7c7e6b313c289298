"""Sharded stage directories and the runner that fills them.

A stage maps input shard i to output shard i. Each shard is written in this order: the Parquet part
(atomically), then `stats/i.json`, then `done/i`; so a `done/` marker proves the shard is complete and
a killed stage reruns only the shards without one. Workers claim a shard with an exclusive lock file,
so any number of concurrent processes (a pool, a Slurm array, several nodes on a shared filesystem)
never write the same shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from distill.errors import DistillError
from distill.io import write_json, write_text

log = logging.getLogger(__name__)

# A claim on another host counts as abandoned once its heartbeat is this old; a live holder touches
# its claim every CLAIM_HEARTBEAT_S, so a shard that runs for hours (R1 traces) is never taken over.
CLAIM_STALE_S = 600.0
CLAIM_HEARTBEAT_S = 60.0


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _diff_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _diff_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class StageDir:
    """One stage's output directory: config.json, part-*.parquet, rejected/, stats/, done/, claims/."""

    path: Path

    def __post_init__(self):
        object.__setattr__(self, "path", Path(self.path))

    def part(self, i: int) -> Path:
        return self.path / f"part-{i:05d}.parquet"

    def rejected(self, i: int) -> Path:
        return self.path / "rejected" / f"part-{i:05d}.parquet"

    def chunks(self, i: int) -> Path:
        """Where a long shard checkpoints its finished chunks before they are merged into the part."""
        return self.path / "chunks" / f"{i:05d}"

    def stats_file(self, i: int) -> Path:
        return self.path / "stats" / f"{i:05d}.json"

    def done_file(self, i: int) -> Path:
        return self.path / "done" / f"{i:05d}"

    def is_done(self, i: int) -> bool:
        return self.done_file(i).exists()

    def prepare(self, config: dict) -> None:
        """Record the stage config; refuse to resume into a directory made with a different one."""
        self.path.mkdir(parents=True, exist_ok=True)
        cfg_file = self.path / "config.json"
        new_hash = config_hash(config)
        if cfg_file.exists():
            old = json.loads(cfg_file.read_text())
            if old.get("hash") != new_hash:
                changed = ", ".join(_diff_keys(old.get("config", {}), json.loads(json.dumps(config, default=str))))
                raise DistillError(
                    f"{cfg_file}: this stage was started with another config (changed: {changed or '?'}); "
                    "use a new output directory or delete this one"
                )
            return
        write_json(cfg_file, {"hash": new_hash, "config": config})

    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())["config"]

    def config_hash(self) -> str | None:
        """Hash of the config this stage was made with: the identity of its data, wherever it is moved."""
        cfg_file = self.path / "config.json"
        return json.loads(cfg_file.read_text())["hash"] if cfg_file.exists() else None

    def finish(self, i: int, stats: dict) -> None:
        write_json(self.stats_file(i), stats)
        write_text(self.done_file(i), "")

    def done_shards(self) -> list[int]:
        d = self.path / "done"
        # Only finished markers: a concurrent writer's `.00011.tmp-PID` may sit beside them.
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.exists() else []

    def parts(self) -> list[Path]:
        """The output parts of the finished shards, in shard order."""
        return [self.part(i) for i in self.done_shards() if self.part(i).exists()]

    def rejected_parts(self) -> list[Path]:
        return [self.rejected(i) for i in self.done_shards() if self.rejected(i).exists()]

    def stats(self) -> list[dict]:
        return [json.loads(self.stats_file(i).read_text()) for i in self.done_shards()]

    def is_complete(self) -> bool:
        """True once every planned shard (recorded in plan.json) has its done marker."""
        n = self.planned()
        return n is not None and all(self.is_done(i) for i in range(n))

    def plan(self, n_shards: int) -> None:
        write_json(self.path / "plan.json", {"n_shards": n_shards})

    def planned(self) -> int | None:
        """The number of shards the runner planned, or None before it first ran."""
        plan = self.path / "plan.json"
        return json.loads(plan.read_text())["n_shards"] if plan.exists() else None

    @contextmanager
    def claim(self, i: int) -> Iterator[bool]:
        """Yield True if this process now owns shard i, False if a live worker holds it."""
        lock = self.path / "claims" / f"{i:05d}"
        lock.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        for _ in range(2):
            if _create_with(lock, me):
                break
            holder = self._stale_holder(lock)
            if holder is None or not _take_over(lock, holder):
                yield False
                return
            if holder:
                log.warning("shard %d: took over an abandoned claim of %s", i, holder)
        else:
            yield False
            return
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(lock, stop), daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join()
            lock.unlink(missing_ok=True)

    @staticmethod
    def _stale_holder(lock: Path) -> dict | None:
        """The claim's content if its holder is gone (dead pid here, or no heartbeat elsewhere), else None."""
        try:
            holder = json.loads(lock.read_text())
            age = time.time() - lock.stat().st_mtime
        except FileNotFoundError:
            return {}  # released meanwhile: free to take
        except json.JSONDecodeError:
            return None  # claims are created whole (see _create_with): a torn one is not ours to judge
        if holder.get("host") == socket.gethostname():
            return None if _pid_alive(int(holder.get("pid", -1))) else holder
        return holder if age > CLAIM_STALE_S else None


def _create_with(lock: Path, content: dict) -> bool:
    """Create `lock` holding `content`, atomically and only if absent: a hard link of a written temp file
    (the classic lock-file idiom that also holds on NFS), so no reader ever sees an empty claim."""
    tmp = lock.with_name(f".{lock.name}.{socket.gethostname()}.{os.getpid()}")
    tmp.write_text(json.dumps(content))
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(lock: Path, judged: dict) -> bool:
    """Remove a stale claim. Renaming is atomic, so of several workers taking over only one moves it;
    if what moved is not the claim judged stale (a fresh one replaced it meanwhile), it is put back."""
    if not judged:
        return True
    tomb = lock.with_name(f".{lock.name}.stale.{socket.gethostname()}.{os.getpid()}")
    try:
        os.rename(lock, tomb)
    except FileNotFoundError:
        return True
    try:
        if json.loads(tomb.read_text()) != judged:
            try:
                os.link(tomb, lock)
            except FileExistsError:
                pass
            return False
        return True
    finally:
        tomb.unlink(missing_ok=True)


def _heartbeat(lock: Path, stop: threading.Event) -> None:
    while not stop.wait(CLAIM_HEARTBEAT_S):
        try:
            os.utime(lock)
        except FileNotFoundError:
            return


ShardTask = Callable[[int], dict]


def _run_one(stage: StageDir, task: ShardTask, i: int) -> dict | None:
    """Run shard i if it is neither done nor claimed; return its stats, or None when skipped."""
    with stage.claim(i) as mine:
        if not mine or stage.is_done(i):
            return None
        start = time.time()
        stats = task(i)
        stats = {"shard": i, **stats, "seconds": round(time.time() - start, 3)}
        stage.finish(i, stats)
        return stats


def _init_worker(threads: int, log: dict) -> None:
    """Pool-worker start-up: log where the parent logs (see distill.console), and split the cores."""
    from distill import console

    console.worker_setup(**log)
    _share_cores(threads)


def _share_cores(threads: int) -> None:
    """Split the cores between the workers, so torch in each does not spin up a thread per core and
    oversubscribe the machine."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _progress() -> Progress:
    from distill import console

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rows]} rows"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console.CONSOLE,
        disable=not console.bars_enabled(),
    )


def run_shards(
    stage: StageDir,
    n_shards: int,
    task: ShardTask,
    *,
    workers: int = 1,
    rank: int = 0,
    world_size: int = 1,
    desc: str = "",
    executor: str = "local",
    ray_options: dict | None = None,
) -> list[dict]:
    """Run every unfinished shard of this rank (`shards[rank::world_size]`) in-process or in a pool.

    `task(i)` writes shard i's outputs and returns its counters; the runner then writes stats and the
    done marker. `task` must be picklable when workers > 1 (a module-level function or a partial).
    With `executor="ray"` each shard is a task of the Ray cluster at $RAY_ADDRESS (a local one if
    unset), with `ray_options` as its resources (e.g. `{"num_gpus": 8}`); claims still apply, so Ray
    and plain workers can share an output directory.
    """
    if not 0 <= rank < world_size:
        raise DistillError(f"--rank {rank} must be in [0, --world-size {world_size})")
    stage.plan(n_shards)
    mine = range(n_shards)[rank::world_size]
    todo = [i for i in mine if not stage.is_done(i)]
    if len(todo) < len(mine):
        log.info("%s: %d shard(s) already done, %d to run", stage.path, len(mine) - len(todo), len(todo))
    results: list[dict] = []
    with _progress() as bar:
        t = bar.add_task(desc or stage.path.name, total=len(todo), rows=0)
        rows = 0

        def record(stats: dict | None) -> None:
            nonlocal rows
            if stats is not None:
                results.append(stats)
                rows += int(stats.get("rows_out", 0))
            bar.update(t, advance=1, rows=rows)

        if executor == "ray":
            for stats in _run_ray(stage, task, todo, ray_options or {}):
                record(stats)
        elif workers <= 1 or len(todo) <= 1:
            for i in todo:
                record(_run_one(stage, task, i))
        else:
            # spawn, not fork: the parent may hold torch or tokenizer threads that fork would copy.
            from distill import console

            n = min(workers, len(todo))
            threads = max(1, (os.cpu_count() or 1) // n)
            with ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(threads, console.worker_settings())) as pool:
                futures = [pool.submit(_run_one, stage, task, i) for i in todo]
                for fut in as_completed(futures):
                    record(fut.result())
    return sorted(results, key=lambda s: s["shard"])


def _run_ray(stage: StageDir, task: ShardTask, todo: list[int], options: dict) -> Iterator[dict | None]:
    """Yield each shard's stats as its Ray task finishes."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    remote = ray.remote(**options)(_run_one) if options else ray.remote(_run_one)
    pending = [remote.remote(stage, task, i) for i in todo]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        yield ray.get(ready[0])
