"""Generation backends behind one call: `make_backend(cfg).generate(requests, sampling)`.

Each backend imports its heavy library (torch, vllm, httpx) only when it is built, so `import distill`
stays light.
"""

from __future__ import annotations

from distill.generate.backends.base import Backend, Completion, Request, Sampling


def _toy(cfg):
    from distill.generate.backends.toy import ToyBackend

    return ToyBackend(cfg.toy)


def _transformers(cfg):
    from distill.generate.backends.hf import TransformersBackend

    return TransformersBackend(cfg.model, cfg.transformers)


def _vllm(cfg):
    from distill.generate.backends.vllm_engine import VLLMBackend

    return VLLMBackend(cfg.model, cfg.vllm)


def _openai(cfg):
    from distill.generate.backends.openai_api import OpenAIBackend

    return OpenAIBackend(cfg.model, cfg.openai)


BACKENDS = {"toy": _toy, "transformers": _transformers, "vllm": _vllm, "openai": _openai}


def make_backend(cfg) -> Backend:
    """The backend named by `cfg.backend` (a `BackendConfig`, or anything with its fields)."""
    return BACKENDS[cfg.backend](cfg)


__all__ = ["Backend", "Completion", "Request", "Sampling", "make_backend", "BACKENDS"]
