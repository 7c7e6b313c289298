"""Sharded stage directories and the runner that fills them.

A stage maps input shard i to output shard i. Each shard is written in this order: the Parquet part
(atomically), then `stats/i.json`, then `done/i`; so a `done/` marker proves the shard is complete and
a killed stage reruns only the shards without one. Workers claim a shard with an exclusive lock file,
so any number of concurrent processes (a pool, a Slurm array, several nodes on a shared filesystem)
never write the same shard.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from distill.errors import DistillError
from distill.io import parquet_rows, read_json, remove_leftover_tmp, tmp_path, write_json, write_text
from distill.procs import pid_alive, proc_start

log = logging.getLogger(__name__)

# A claim on another host counts as abandoned once its heartbeat is this old; a live holder touches
# its claim every CLAIM_HEARTBEAT_S, so a shard that runs for hours (R1 traces) is never taken over.
# A torn claim (unreadable: a crash of the storage, not of a writer, since claims are created whole)
# names no holder; it is abandoned once nobody has touched it for two heartbeats.
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


def _age(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"


@dataclass(frozen=True)
class StageDir:
    """One stage's output directory: config.json, part-*.parquet, rejected/, stats/, done/, claims/.

    Shards are named by their index everywhere; a done shard is trusted only after `damage(i)` finds
    its part present, readable and holding the row count its stats recorded.
    """

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

    def claim_file(self, i: int) -> Path:
        return self.path / "claims" / f"{i:05d}"

    def is_done(self, i: int) -> bool:
        return self.done_file(i).exists()

    def prepare(self, config: dict) -> None:
        """Record the stage config; refuse to resume into a directory made with a different one.
        Also removes the temporary files of killed writers, and unmarks damaged shards (once the
        config is known to match: a refused call changes nothing)."""
        if self.path.exists() and not self.path.is_dir():
            raise DistillError(f"{self.path}: is a file, expected a stage directory")
        self.path.mkdir(parents=True, exist_ok=True)
        for leftover in remove_leftover_tmp(self.path):
            log.info("removed %s (left by a killed writer)", leftover)
        self._drop_abandoned_claims()
        self._check_config(config)
        self._unmark_damaged()

    def _check_config(self, config: dict) -> None:
        cfg_file = self.path / "config.json"
        new_hash = config_hash(config)
        if cfg_file.exists():
            old = self._config_file()
            if old.get("hash") != new_hash:
                changed = ", ".join(_diff_keys(old.get("config", {}), json.loads(json.dumps(config, default=str))))
                raise DistillError(
                    f"{cfg_file}: this stage was started with another config (changed: {changed or '?'}); "
                    "use a new output directory or delete this one"
                )
            return
        write_json(cfg_file, {"hash": new_hash, "config": config})

    def _unmark_damaged(self) -> None:
        """Remove the done marker of every damaged shard (part or stats missing, unreadable or short), so
        the stage regenerates it from its intact input, and nothing before that (a spend total, a source
        check) reads its stats. Every stage calls this through `prepare`: one repair for all of them."""
        for i in self.done_shards():
            self.unmark_if_damaged(i)

    def unmark_if_damaged(self, i: int) -> bool:
        """Remove done shard i's marker if the shard is damaged; whether it is still done and whole."""
        problem = self.damage(i)
        if problem is None:
            return True
        log.warning("shard %d was marked done but is damaged (%s); regenerating it", i, problem)
        self.done_file(i).unlink(missing_ok=True)
        return False

    def _config_file(self) -> dict:
        cfg_file = self.path / "config.json"
        data = read_json(cfg_file, "stage config")
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "hash" not in data:
            raise DistillError(f"{cfg_file}: damaged stage config (expected keys 'hash' and 'config')")
        return data

    def config(self) -> dict:
        return self._config_file()["config"]

    def config_hash(self) -> str | None:
        """Hash of the config this stage was made with: the identity of its data, wherever it is moved."""
        return self._config_file()["hash"] if (self.path / "config.json").exists() else None

    def finish(self, i: int, stats: dict) -> None:
        write_json(self.stats_file(i), stats)
        write_text(self.done_file(i), "")

    def done_shards(self) -> list[int]:
        d = self.path / "done"
        # Only finished markers: a concurrent writer's `.00011.tmp-HOST-PID` may sit beside them.
        return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []

    def shard_stats(self, i: int) -> dict:
        stats = read_json(self.stats_file(i), "shard stats file")
        if not isinstance(stats, dict):
            raise DistillError(f"{self.stats_file(i)}: damaged shard stats file (expected a JSON object)")
        return stats

    def damage(self, i: int) -> str | None:
        """Why done shard i cannot be trusted (stats or part missing or unreadable, or fewer or more
        rows than its stats recorded), or None when it can."""
        try:
            stats = self.shard_stats(i)
            rows = parquet_rows(self.part(i))
        except DistillError as e:
            return str(e)
        want = stats.get("rows_out")
        if isinstance(want, int) and rows != want:
            return f"{self.part(i)}: {rows} rows, but its stats recorded {want}"
        return None

    def trusted(self, i: int) -> bool:
        """Shard i is done and its part is whole."""
        return self.is_done(i) and self.damage(i) is None

    def verify(self, i: int) -> int:
        """i, once shard i is found whole; otherwise an error naming what is wrong and how to regenerate it."""
        problem = self.damage(i)
        if problem is not None:
            raise DistillError(
                f"{problem} (shard {i} of {self.path}); rerun the stage that wrote it with the same command "
                f"and it regenerates that shard"
            )
        return i

    def parts(self) -> list[Path]:
        """The output parts of the finished shards, in shard order; a damaged one is an error naming it."""
        return [self.part(self.verify(i)) for i in self.done_shards()]

    def rejected_parts(self) -> list[Path]:
        return [self.rejected(i) for i in self.done_shards() if self.rejected(i).exists()]

    def stats(self) -> list[dict]:
        return [self.shard_stats(i) for i in self.done_shards()]

    def is_complete(self) -> bool:
        """True once every planned shard (recorded in plan.json) is done and whole."""
        n = self.planned()
        return n is not None and all(self.trusted(i) for i in range(n))

    def require_complete(self, stage_name: str) -> int:
        """The shard count of a finished input stage; otherwise an error saying what is missing."""
        n = self.planned()
        if n is None:
            what = "no plan.json" if self.path.is_dir() else "a file, not a stage directory" if self.path.exists() else "no such directory"
            raise DistillError(f"{self.path}: no finished {stage_name} shards ({what}); run `distill {stage_name}` into it first")
        missing = [i for i in range(n) if not self.is_done(i)]
        if missing:
            raise DistillError(
                f"{self.path}: the {stage_name} stage is not finished (shards {_list(missing)} of {n} not done); "
                f"run `distill {stage_name}` to completion first"
            )
        for i in range(n):
            self.verify(i)
        return n

    def plan(self, n_shards: int) -> None:
        """Record the shard count; rewritten only when it changes, so a finished stage on read-only
        storage can be run again (a no-op) and read."""
        try:
            if self.planned() == n_shards:
                return
        except DistillError:
            pass  # damaged: the plan is derived from the input, so it is simply written again
        write_json(self.path / "plan.json", {"n_shards": n_shards})

    def planned(self) -> int | None:
        """The number of shards the runner planned, or None before it first ran."""
        plan = self.path / "plan.json"
        if not plan.exists():
            return None
        data = read_json(plan, "shard plan")
        if not isinstance(data, dict) or not isinstance(data.get("n_shards"), int):
            raise DistillError(f"{plan}: damaged shard plan (expected {{\"n_shards\": <int>}})")
        return data["n_shards"]

    def held_claims(self) -> dict[int, str]:
        """Shard -> who holds its claim and for how long, for every claim file present."""
        d = self.path / "claims"
        out = {}
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.name.isdigit():
                out[int(p.name)] = _describe_claim(p)
        return out

    def _drop_abandoned_claims(self) -> None:
        """Remove the claims of workers that are gone, so `status` lists only live holders."""
        d = self.path / "claims"
        for lock in d.iterdir() if d.is_dir() else []:
            if lock.name.isdigit():
                stale, seen = _judge(lock)
                if stale and seen is not None:
                    try:
                        _take_over(lock, seen)
                    except OSError:
                        pass  # read-only storage: left as it is

    @contextmanager
    def claim(self, i: int) -> Iterator[bool]:
        """Yield True if this process now owns shard i, False if a live worker holds it."""
        lock = self.claim_file(i)
        lock.parent.mkdir(parents=True, exist_ok=True)
        me = json.dumps(
            {"host": socket.gethostname(), "pid": os.getpid(), "started": proc_start(os.getpid()),
             "token": secrets.token_hex(8), "since": time.time()}
        ).encode()
        for _ in range(2):
            if _create_with(lock, me):
                break
            stale, seen = _judge(lock)
            if not stale or not _take_over(lock, seen):
                yield False
                return
            if seen is not None:
                log.warning("shard %d: took over an abandoned claim (%s)", i, seen.decode("utf-8", "replace")[:200])
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


def _list(shards: list[int], most: int = 8) -> str:
    return ", ".join(map(str, shards[:most])) + (f" and {len(shards) - most} more" if len(shards) > most else "")


def _read_claim(lock: Path) -> tuple[bytes, float]:
    """(content, heartbeat age in seconds); FileNotFoundError when released meanwhile."""
    content = lock.read_bytes()
    return content, time.time() - lock.stat().st_mtime


def _holder(content: bytes) -> dict | None:
    try:
        holder = json.loads(content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return holder if isinstance(holder, dict) and isinstance(holder.get("pid"), int) and holder.get("host") else None


def _judge(lock: Path) -> tuple[bool, bytes | None]:
    """(abandoned?, the claim's content as judged; None if it was released meanwhile).

    A claim of this host is abandoned when its process is gone: the pid is dead, or alive but started
    at another time than the claim recorded (the pid was reused); a claim that recorded no start time
    (an older version) when its heartbeat stopped. Elsewhere, when its heartbeat stopped.
    """
    try:
        content, age = _read_claim(lock)
    except FileNotFoundError:
        return True, None
    holder = _holder(content)
    if holder is None:
        return age > 2 * CLAIM_HEARTBEAT_S, content
    if holder["host"] != socket.gethostname():
        return age > CLAIM_STALE_S, content
    pid = holder["pid"]
    if not pid_alive(pid):
        return True, content
    started = holder.get("started")
    if started is None:  # written by an older version: a live pid proves nothing, the heartbeat does
        return age > 2 * CLAIM_HEARTBEAT_S, content
    return proc_start(pid) not in (None, started), content


def _describe_claim(lock: Path) -> str:
    try:
        content, age = _read_claim(lock)
    except FileNotFoundError:
        return "released"
    holder = _holder(content)
    if holder is None:
        return f"unreadable claim file {lock}, last touched {_age(age)} ago"
    since = holder.get("since")
    held = f", claimed {_age(time.time() - since)} ago" if isinstance(since, (int, float)) else ""
    return f"{holder['host']}:{holder['pid']}{held}, heartbeat {_age(age)} ago"


def _create_with(lock: Path, content: bytes) -> bool:
    """Create `lock` holding `content`, atomically and only if absent: a hard link of a written temp file
    (the classic lock-file idiom that also holds on NFS), so no reader ever sees an empty claim."""
    tmp = tmp_path(lock)
    tmp.write_bytes(content)
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _take_over(lock: Path, judged: bytes | None) -> bool:
    """Remove a stale claim. Renaming is atomic, so of several workers taking over only one moves it;
    if what moved is not the claim judged stale (a fresh one replaced it meanwhile), it is put back."""
    if judged is None:
        return True
    tomb = tmp_path(lock.with_name(f"{lock.name}.stale"))
    try:
        os.rename(lock, tomb)
    except FileNotFoundError:
        return True
    try:
        if tomb.read_bytes() != judged:
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


def die_with_parent(parent: int) -> None:
    """Worker start-up: exit when the process that started this one dies, kill -9 included, instead of
    idling forever as an orphan (each holds a Python, maybe torch: ~250 MB). Linux: the kernel sends
    SIGKILL (PR_SET_PDEATHSIG); elsewhere a thread polls the parent pid."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    else:
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


ShardTask = Callable[[int], dict]

EXECUTORS = ("local", "ray")
HELD_WAIT_S = 60.0  # how long a stage waits for the shards other live workers hold before it fails
HELD = "held"  # what `_run_one` returns for a shard whose claim another live worker holds


def _begin(stage: StageDir, i: int) -> ExitStack | str | None:
    """Claim shard i unless it is done and whole: the held claim (closing it releases it), HELD, or None when done.

    A done shard whose part is missing or damaged is run again: its input is there, so it is regenerated."""
    with ExitStack() as held:
        if not held.enter_context(stage.claim(i)):
            return HELD
        if stage.is_done(i) and stage.unmark_if_damaged(i):
            return None
        return held.pop_all()  # held on: the caller releases it


def _finish(stage: StageDir, i: int, stats: dict, start: float) -> dict:
    stats = {"shard": i, **stats, "seconds": round(time.time() - start, 3)}
    stage.finish(i, stats)
    return stats


def _run_one(stage: StageDir, task: ShardTask, i: int) -> dict | str | None:
    """Run shard i unless it is done and whole; return its stats, HELD, or None when already done."""
    held = _begin(stage, i)
    if not isinstance(held, ExitStack):
        return held
    with held:
        start = time.time()
        return _finish(stage, i, task(i), start)


@dataclass
class Claimed:
    """A shard this process holds and has not finished; `finish(stats)` writes its stats and done marker."""

    i: int
    finish: Callable[[dict], None]


def _claim_each(stage: StageDir, todo: list[int], record: Callable) -> Iterator[Claimed]:
    """Claim the shards of `todo` one at a time, as the consumer asks for the next; a shard's claim is held
    until its `finish`, so several are held at once while their work overlaps."""
    held: dict[int, ExitStack] = {}

    def finish(i: int, start: float, stats: dict) -> None:
        with held.pop(i):
            record(_finish(stage, i, stats, start))

    try:
        for i in todo:
            claim = _begin(stage, i)
            if not isinstance(claim, ExitStack):
                record(claim)
                continue
            held[i] = claim
            yield Claimed(i, partial(finish, i, time.time()))
    finally:
        for claim in held.values():  # stopped early: what was not finished is released for a rerun
            claim.close()


def _init_worker(threads: int, parent: int, log: dict) -> None:
    """Pool-worker start-up: die with the parent, log where the parent logs (see distill.console), and
    split the cores between the workers, so torch in each does not spin up a thread per core and
    oversubscribe the machine."""
    from distill import console

    die_with_parent(parent)
    console.worker_setup(**log)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def worker_pool(n: int, threads: int | None = None) -> ProcessPoolExecutor:
    """A pool of `n` spawned worker processes that exit if this process dies.

    spawn, not fork: the parent may hold torch or tokenizer threads that fork would copy."""
    from distill import console

    threads = threads or max(1, (os.cpu_count() or 1) // n)
    return ProcessPoolExecutor(n, mp_context=get_context("spawn"), initializer=_init_worker,
                               initargs=(threads, os.getpid(), console.worker_settings()))


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
    leave_held: bool = False,
) -> list[dict]:
    """Run every unfinished shard of this rank (`shards[rank::world_size]`) in-process or in a pool.

    `task(i)` writes shard i's outputs and returns its counters; the runner then writes stats and the
    done marker. A task with `overlap(claimed)` (the generation stages, distill/generate/stream.py) runs
    this process's shards itself from an iterator that claims each one when asked, so one engine works
    on the next shard while the last one's longest samples finish. `task` must be picklable when
    workers > 1 (a module-level function, a partial or a dataclass).
    With `executor="ray"` each shard is a task of the Ray cluster at $RAY_ADDRESS (a local one if
    unset), with `ray_options` as its resources (e.g. `{"num_gpus": 8}`, or `{"gpu_bundles": 16}`: a
    placement group of 16 one-GPU bundles, across nodes, reserved per shard; see `ray_shard_options`);
    claims still apply, so Ray and plain workers can share an output directory.

    Shards that other live workers hold are left to them, and waited for up to HELD_WAIT_S (one whose
    holder dies meanwhile is taken over); if any is still unfinished then, the run fails naming those
    shards and their holders, so a stage never exits 0 with shards missing. `leave_held`: shards that other live
    workers hold are theirs, and this worker returns at once when nothing else is left (a Slurm array task, whose
    non-zero exit would fail an `afterok` dependency while the last holders are still working).
    """
    if not 0 <= rank < world_size:
        raise DistillError(f"--rank {rank} must be in [0, --world-size {world_size})")
    if executor not in EXECUTORS:
        raise DistillError(f"--executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    stage.plan(n_shards)
    mine = range(n_shards)[rank::world_size]
    todo = [i for i in mine if not stage.trusted(i)]
    if len(todo) < len(mine):
        log.info("%s: %d shard(s) already done, %d to run", stage.path, len(mine) - len(todo), len(todo))
    results: list[dict] = []
    with _progress() as bar:
        t = bar.add_task(desc or stage.path.name, total=len(todo), rows=0)
        rows = 0

        def record(stats: dict | str | None) -> None:
            nonlocal rows
            if isinstance(stats, dict):
                results.append(stats)
                rows += int(stats.get("rows_out", 0))
            bar.update(t, advance=1, rows=rows)

        if executor == "ray":
            for stats in _run_ray(stage, task, todo, ray_options or {}):
                record(stats)
        elif (workers <= 1 or len(todo) <= 1) and hasattr(task, "overlap"):
            task.overlap(_claim_each(stage, todo, record))
        elif workers <= 1 or len(todo) <= 1:
            for i in todo:
                record(_run_one(stage, task, i))
        else:
            with worker_pool(min(workers, len(todo))) as pool:
                futures = [pool.submit(_run_one, stage, task, i) for i in todo]
                for fut in as_completed(futures):
                    record(fut.result())
    # Shards other workers hold: wait a while for them (workers sharing a directory finish at about the
    # same time), taking over any whose holder dies meanwhile; still held after that, the stage fails.
    deadline = time.time() + (0 if leave_held else HELD_WAIT_S)
    while (unfinished := [i for i in todo if not stage.trusted(i)]) and time.time() < deadline:
        time.sleep(min(1.0, HELD_WAIT_S / 10))
        for i in unfinished:
            stats = _run_one(stage, task, i)
            if isinstance(stats, dict):
                results.append(stats)
    held = stage.held_claims() if unfinished else {}
    if unfinished and leave_held and all(i in held for i in unfinished):
        log.info("%s: %d shard(s) left to the workers that hold them: %s", stage.path, len(unfinished), unfinished[:8])
    elif unfinished:
        holders = "; ".join(f"shard {i}: {held.get(i, 'no claim left: its holder stopped without finishing it')}" for i in unfinished[:8])
        raise DistillError(
            f"{stage.path}: {len(unfinished)} shard(s) unfinished because other workers hold them ({holders}); "
            "rerun when they are done (a holder that is gone is taken over after its heartbeat stops)"
        )
    return sorted(results, key=lambda s: s["shard"])


def ray_cluster():
    """The `ray` module, connected to the cluster at $RAY_ADDRESS (a local one if unset)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False)
    return ray


def _run_ray(stage: StageDir, task: ShardTask, todo: list[int], options: dict) -> Iterator[dict | str | None]:
    """Yield each shard's stats as its Ray task finishes. A task whose node dies is retried elsewhere
    by Ray (3 times by default); the dead worker's claim is taken over as any abandoned claim is."""
    ray = ray_cluster()
    remote = ray.remote(_run_one)
    groups = {}
    for i in todo:
        opts, group = ray_shard_options(options)
        # SPREAD: shards are independent, so one per node before two on any (Ray packs the driver's node first)
        groups[remote.options(**{"scheduling_strategy": "SPREAD", **opts}).remote(stage, task, i)] = group
    pending = list(groups)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        try:
            yield ray.get(ready[0])
        finally:
            if groups[ready[0]] is not None:
                ray.util.remove_placement_group(groups[ready[0]])


def ray_shard_options(options: dict) -> tuple[dict, object | None]:
    """(Ray task options, its placement group or None). `gpu_bundles: n` reserves n one-GPU bundles (they may span
    nodes) per shard: the task runs in the first, holding one CPU and no GPU, and captures the group for its
    children, so an engine on vLLM's Ray executor (TP x PP workers) places its workers in it."""
    if "gpu_bundles" not in options:
        return dict(options), None
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    n = options["gpu_bundles"]
    group = placement_group([{"CPU": 1, "GPU": 1}] + [{"GPU": 1}] * (n - 1))
    strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=0, placement_group_capture_child_tasks=True)
    rest = {k: v for k, v in options.items() if k != "gpu_bundles"}
    return {**rest, "num_cpus": 1, "num_gpus": 0, "scheduling_strategy": strategy}, group
