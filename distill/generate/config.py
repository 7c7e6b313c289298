"""Configs of the generation backends and of the `generate` stage.

`GenerateConfig` inherits `BackendConfig`, so a stage YAML has the backend keys at the top level
(`backend`, `model`, `vllm:`, `openai:` ...) beside the stage keys (`teacher`, `sampling`, ...). The eval
stage builds a bare `BackendConfig` for its student and calls the same `make_backend`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from distill.config import Config
from distill.generate.backends.base import Sampling
from distill.generate.prompting import TEMPLATES, TemplateName
from distill.toy.teacher import ToyTeacherConfig


class VLLMOptions(Config):
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
    "openai": {"base_url", "api_key_env", "max_concurrency", "max_retries", "backoff_s", "max_backoff_s", "timeout_s"},
    "vllm": {
        "tensor_parallel_size", "data_parallel_size", "gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens",
        "enable_chunked_prefill", "enforce_eager",
    },  # fmt: skip
    "transformers": {"device"},  # batch_size stays: the transformers backend seeds per batch
}


class GenerateConfig(BackendConfig):
    teacher: str = Field("toy-teacher", description="Teacher label recorded in every row (e.g. deepseek-ai/DeepSeek-R1).")
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    samples_per_prompt: int = Field(
        1, ge=1, description="Samples per problem (with a budget: the most samples a problem may take)."
    )
    prompt_template: TemplateName = Field("r1", description=f"User-prompt template: {' | '.join(TEMPLATES)}.")
    force_think: bool = Field(True, description="Force every completion to start with '<think>\\n' (R1 usage advice).")
    chunk_size: int = Field(
        256, ge=1, description="Problems per checkpointed chunk inside a shard; a killed worker loses at most one chunk."
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
