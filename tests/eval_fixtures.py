"""Shared pieces of the eval tests: a small eval config and a worker entry that runs one eval in its
own process (vLLM's engine must start under `if __name__ == "__main__"`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from distill.eval.config import EvalConfig, ModelSpec


def tiny_eval_config(n: int = 4, k: int = 2, max_tokens: int = 24) -> EvalConfig:
    return EvalConfig.model_validate(
        {"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": n}, "k": k, "max_tokens": max_tokens}},
         "bootstrap_resamples": 200}
    )


def model_spec(backend: str, model_dir: str, name: str) -> ModelSpec:
    options = {
        "transformers": {"transformers": {"batch_size": 8}},
        # vLLM on CPU: eager mode; the toy students have 2,048 positions
        "vllm": {"vllm": {"enforce_eager": True, "dtype": "float32", "max_model_len": 2048, "enable_prefix_caching": False}},
    }[backend]
    return ModelSpec.model_validate({"name": name, "backend": backend, "model": model_dir, **options})


if __name__ == "__main__":  # python tests/eval_fixtures.py BACKEND MODEL_DIR NAME '[[CONFIG, OUT], ...]'
    from distill.eval.stage import run

    backend, model_dir, name, jobs = sys.argv[1:]
    spec = model_spec(backend, model_dir, name)
    for config, out in json.loads(jobs):  # one engine for every job: it is cached per model
        run(EvalConfig.model_validate(config), spec, Path(out))
