"""`python tests/engines_two_models.py OUT MODEL_A MODEL_B`: evaluate two vLLM models one after the other
in one process, as `distill run --only eval` does, and print (as JSON) which engine processes each start
found alive: the previous engine's must be gone before the next one loads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import psutil

import distill.engines as engines
from distill.eval.stage import run

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import model_spec, tiny_eval_config  # noqa: E402


def children() -> set[int]:
    """This process's descendants but multiprocessing's resource tracker, which serves the whole process until it
    exits (the first engine's start happens to launch it; it holds no model)."""
    from multiprocessing import resource_tracker

    return {p.pid for p in psutil.Process().children(recursive=True)} - {resource_tracker._resource_tracker._pid}


def main(out: str, *models: str) -> None:
    starts: list[dict] = []
    real = engines.make_backend

    def watched(cfg):
        earlier = [pid for s in starts for pid in s["pids"]]
        alive = [p for p in earlier if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        before = children()
        backend = real(cfg)
        starts.append({"model": cfg.model, "earlier_alive": alive, "pids": sorted(children() - before)})
        return backend

    engines.make_backend = watched
    for i, model in enumerate(models):
        run(tiny_eval_config(n=2, k=1, max_tokens=8), model_spec("vllm", model, f"m{i}"), Path(out) / f"m{i}")
    left = [p for s in starts for p in s["pids"] if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    print(json.dumps({"starts": starts, "alive_at_exit": left}))


if __name__ == "__main__":
    main(*sys.argv[1:])
