"""Eval config (benchmarks and the R1 sampling protocol) and the spec of one model to evaluate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from distill.config import Config
from distill.generate.config import BackendConfig
from distill.toy.tasks import ToyTasks


class BenchmarkOverride(Config):
    """Per-benchmark changes to its spec: a smaller k for a quick run, a local copy of the data."""

    k: int | None = Field(None, ge=1, description="samples per problem instead of the spec's")
    max_tokens: int | None = Field(None, ge=1, description="token limit instead of the spec's")
    limit: int | None = Field(None, ge=1, description="only the first N problems (quick runs; not comparable to papers)")
    source: str | None = Field(None, description="local file or hf: dataset instead of the spec's source")
    toy: ToyTasks | None = Field(None, description="toy benchmark: problem count, seed, ops, digits")


class EvalConfig(Config):
    """The R1 protocol by default: T=0.6, top-p 0.95, 32,768 tokens, k per benchmark, `<think>\\n` prefix."""

    benchmarks: list[str] = Field(
        default_factory=lambda: ["toy_arith"], description="spec names in evals/ or paths to spec YAML files"
    )
    overrides: dict[str, BenchmarkOverride] = Field(default_factory=dict, description="per benchmark name")
    temperature: float = Field(0.6, ge=0, description="R1: 0.6 (no greedy decoding)")
    top_p: float = Field(0.95, gt=0, le=1, description="R1: 0.95")
    max_tokens: int | None = Field(None, ge=1, description="token limit for every benchmark (default: each spec's, 32,768)")
    seed: int = Field(0, description="sampling seed; distilled and baseline models get the same seeds")
    force_think: bool = Field(True, description="start every response with '<think>\\n' (R1 usage advice)")
    grading: Literal["strict", "lenient"] = Field(
        "strict",
        description="strict: unfinished samples never credited, answer read after </think> (boxed or a final statement); "
        "lenient: last \\boxed{} anywhere, last-number fallback (lighteval / Qwen2.5-Math style)",
    )
    problems_per_shard: int = Field(64, ge=1, description="problems per output shard (a unit of resume and parallelism)")
    problems_per_chunk: int = Field(8, ge=1, description="problems generated between checkpoints inside a shard")
    bootstrap_resamples: int = Field(10_000, ge=100, description="resamples for the 95% confidence intervals")


class ModelSpec(BackendConfig):
    """A model to evaluate: its name in the run, how to load it (the generation backend's keys:
    backend, model, vllm/openai/transformers options) and which model it is compared with."""

    name: str = Field(description="directory name under 05_eval/ and label in the report")
    backend: Literal["toy", "transformers", "vllm", "openai"] = Field("transformers", description="generation engine")
    model: str = Field(description="model path or id; in a pipeline, sft:<student> names a trained student")
    baseline: str | None = Field(None, description="name of the undistilled model this one is compared with")
    baseline_of: str | None = Field(None, description="name of the distilled model this one is the baseline of")
    r1_reference: str | None = Field(
        None, description="row of the R1 paper's Table 5 to show beside this model, e.g. DeepSeek-R1-Distill-Qwen-7B"
    )

    @model_validator(mode="after")
    def _not_own_baseline(self):
        if self.name in (self.baseline, self.baseline_of):
            raise ValueError(f"model '{self.name}' cannot be compared with itself")
        return self
