"""The engine lifecycle: one engine per process, released (its processes gone) before the next model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill import engines
from distill.generate.config import BackendConfig
from distill.toy.students import build_student


def test_engine_is_reused_for_the_same_config_and_released_for_another():
    toy = BackendConfig(backend="toy")
    a = engines.engine(toy)
    assert engines.engine(BackendConfig(backend="toy")) is a
    b = engines.engine(BackendConfig(backend="toy", toy={"wrong_answer": 0.5}))
    assert b is not a
    lent = object()
    with engines.lend(toy, lent):
        assert engines.engine(toy) is lent
    engines.release()
    assert engines.engine(toy) is not a
    engines.release()


@pytest.mark.slow
@pytest.mark.vllm
def test_two_vllm_models_in_one_eval_never_overlap(tmp_path):
    models = [build_student(arch, tmp_path / arch) for arch in ("qwen2", "llama")]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache")}  # fmt: skip
    env.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)  # vLLM's default: the engine core runs in its own process
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "engines_two_models.py"), str(tmp_path / "eval"), *map(str, models)],
                          env=env, capture_output=True, text=True, timeout=1500)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    first, second = report["starts"]
    assert first["pids"], "the first engine started no process of its own: nothing proves it was released"
    assert second["earlier_alive"] == []  # the first engine's processes had exited before the second loaded
    assert report["alive_at_exit"] == []
    assert "still alive" not in proc.stderr  # each engine's processes exited on shutdown; none waited for or killed
    for i in range(2):
        assert (tmp_path / "eval" / f"m{i}" / "scores.json").exists()
