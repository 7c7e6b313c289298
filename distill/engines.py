"""The generation engines' lifecycle, for generate, eval and the judge alike.

One engine per process: started on first use, reused by every shard (and stage) that asks for the
same backend config, and shut down before a different one starts, with the processes it started
waited for, so the next model never loads while the last one still holds the GPU. A stage releases
its engine when it ends; `lend` puts a caller's running engine in place without ever closing it.
"""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import psutil

from distill.generate.backends import Backend, make_backend

log = logging.getLogger(__name__)

EXIT_TIMEOUT_S = 60.0  # how long an engine's processes may take to exit after shutdown


@dataclass
class _Held:
    key: str
    backend: Backend
    owned: bool  # started here (closed on release) or lent by the caller
    pids: list[int] = field(default_factory=list)  # processes the engine started


_held: _Held | None = None


def backend_key(cfg) -> str:
    """What identifies an engine: the backend part of a config (a BackendConfig, GenerateConfig or ModelSpec)."""
    from distill.generate.config import BackendConfig

    return json.dumps(cfg.model_dump(mode="json", include=set(BackendConfig.model_fields)), sort_keys=True)


def _children() -> set[int]:
    """This process's descendants, less multiprocessing's resource tracker: a helper of the whole process, started
    by whichever library first needs one and alive until the process exits. Counted as the engine's, its release
    waited out the timeout (60 s per engine) and then killed it under everyone else."""
    from multiprocessing import resource_tracker

    tracker = getattr(resource_tracker._resource_tracker, "_pid", None)
    return {p.pid for p in psutil.Process().children(recursive=True)} - {tracker}


def engine(cfg) -> Backend:
    """This process's engine for `cfg`: the running one if it matches, else a new one (the old one released first)."""
    global _held
    key = backend_key(cfg)
    if _held is not None and _held.key == key:
        return _held.backend
    release()
    _pin_data_parallel_gpus(cfg)
    before = _children()
    backend = make_backend(cfg)
    pids = sorted(_children() - before)
    _held = _Held(key, backend, owned=True, pids=pids)
    log.info("engine started: %s %s%s", cfg.backend, cfg.model, f" (processes {pids})" if pids else "")
    return backend


def held_pids() -> list[int]:
    """The processes of the engine held now (empty when none, or it runs in this process)."""
    return list(_held.pids) if _held is not None else []


def release() -> None:
    """Close this process's engine, if it started it, and wait until its processes have exited."""
    global _held
    held, _held = _held, None
    if held is None or not held.owned:
        return
    held.backend.close()
    procs = [p for p in (_process(pid) for pid in held.pids) if p is not None]
    _, alive = psutil.wait_procs(procs, timeout=EXIT_TIMEOUT_S)
    for p in alive:  # ours, and still holding memory after a clean shutdown: stop them
        log.warning("engine process %d still alive %.0f s after shutdown; killing it", p.pid, EXIT_TIMEOUT_S)
        p.kill()
    psutil.wait_procs(alive, timeout=EXIT_TIMEOUT_S)
    del held
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    log.info("engine released")


def _process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@contextmanager
def lend(cfg, backend: Backend) -> Iterator[None]:
    """Use `backend`, already running and owned by the caller (tests, benchmarks), as the engine for `cfg`."""
    global _held
    release()
    _held = _Held(backend_key(cfg), backend, owned=False)
    try:
        yield
    finally:
        if _held is not None and _held.backend is backend:
            _held = None


def _pin_data_parallel_gpus(cfg) -> None:
    """vLLM data parallelism = one engine per pool worker, each on its own `tensor_parallel_size` GPUs.

    Pool workers are numbered from 1 by multiprocessing; worker k takes GPU group (k-1) mod dp.
    """
    if cfg.backend != "vllm":
        return
    dp, tp = cfg.vllm.data_parallel_size, cfg.vllm.tensor_parallel_size
    identity = multiprocessing.current_process()._identity
    if dp <= 1 or not identity:
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpus = visible.split(",") if visible else [str(g) for g in range(dp * tp)]
    slot = (identity[0] - 1) % dp
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus[slot * tp : (slot + 1) * tp])
    log.info("data-parallel engine %d/%d on GPUs %s", slot + 1, dp, os.environ["CUDA_VISIBLE_DEVICES"])
