"""Eval config (benchmarks and the R1 sampling protocol) and the spec of one model to evaluate, with the
model's own protocol where it cannot run R1's (a 4,096-token context, its own chain-of-thought prompt)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from distill.config import Config
from distill.generate.config import BackendConfig
from distill.generate.prompting import TemplateName
from distill.toy.config import ToyTasks

R1_REFERENCE_FILE = Path(__file__).resolve().parents[1] / "report" / "r1_reference.json"


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
    bootstrap_resamples: int = Field(10_000, ge=100, description="paired bootstrap resamples for P(distilled <= baseline)")
    budgets: list[int] | None = Field(
        None, description="thinking budgets (tokens) of the accuracy-against-budget curve; default: powers of two from 1,024 (from an eighth of max_tokens below 8,192) up to max_tokens"
    )

    @field_validator("benchmarks")
    @classmethod
    def _each_benchmark_once(cls, names: list[str]) -> list[str]:
        # a benchmark listed twice would write every sample twice and then fail its own k check
        seen = set()
        for n in names:
            key = Path(n).stem if Path(n).suffix in (".yaml", ".yml") else n
            if key in seen:
                raise ValueError(f"benchmark '{key}' is listed twice")
            seen.add(key)
        return names


class ModelSpec(BackendConfig):
    """A model to evaluate: its name in the run, how to load it (the generation backend's keys:
    backend, model, vllm/openai/transformers options) and which model it is compared with."""

    name: str = Field(description="directory name under 05_eval/ and label in the report")
    backend: Literal["toy", "transformers", "vllm", "openai"] = Field("transformers", description="generation engine")
    model: str = Field(description="model path or id; in a pipeline, sft:<student> names a trained student")
    baseline: str | None = Field(None, description="name of the undistilled model this one is compared with")
    baseline_of: str | None = Field(None, description="name of the distilled model this one is the baseline of")
    r1_reference: str | None = Field(
        None, description="row of the R1 paper's Table 5 to show beside this model, e.g. DeepSeek-R1-Distill-Qwen-7B "
        "(only this names a row: models are never matched to the paper by name)"
    )
    # The model's own protocol; unset fields follow the eval config and the benchmark specs (R1's).
    max_model_len: int | None = Field(
        None, ge=1, description="context length (prompt + completion) the model supports; also vLLM's max_model_len"
    )
    max_tokens: int | None = Field(None, ge=1, description="token limit for this model: each benchmark's is lowered to it, never raised")
    force_think: bool | None = Field(None, description="start responses with '<think>\\n' (default: the eval config's)")
    template: TemplateName | None = Field(None, description="prompt template for every benchmark (default: each spec's, 'r1')")
    system_prompt: str | None = Field(None, description="system turn before the problem (R1: none)")

    @model_validator(mode="after")
    def _not_own_baseline(self):
        if self.name in (self.baseline, self.baseline_of):
            raise ValueError(f"model '{self.name}' cannot be compared with itself")
        return self

    @model_validator(mode="after")
    def _one_context_length(self):
        """`max_model_len` and `vllm.max_model_len` are one setting: either may be given, not two values."""
        a, b = self.max_model_len, self.vllm.max_model_len
        if a is not None and b is not None and a != b:
            raise ValueError(f"max_model_len {a} and vllm.max_model_len {b} differ; give one")
        if a is None and b is not None:
            self.max_model_len = b
        elif a is not None and b is None:
            self.vllm = self.vllm.model_copy(update={"max_model_len": a})
        if self.max_model_len is not None and self.max_tokens is not None and self.max_tokens >= self.max_model_len:
            raise ValueError(f"max_tokens {self.max_tokens} leaves no room for the prompt in max_model_len {self.max_model_len}")
        return self

    @field_validator("r1_reference")
    @classmethod
    def _known_reference(cls, name: str | None) -> str | None:
        if name is not None:
            rows = [r["model"] for r in json.loads(R1_REFERENCE_FILE.read_text())["rows"]]
            if name not in rows:
                raise ValueError(f"'{name}' is not a row of the R1 paper's Table 5 ({', '.join(rows)})")
        return name


def token_limit(spec_max_tokens: int, model: ModelSpec) -> int:
    """A benchmark's token limit for this model: the model's own limit caps it (a 4k-context baseline)."""
    return min(spec_max_tokens, model.max_tokens) if model.max_tokens is not None else spec_max_tokens


def check_fits(model: ModelSpec, limits: dict[str, int]) -> None:
    """Every benchmark's token limit must leave room for a prompt in the model's context (config load).
    Raises ValueError, so that a config validator reports it as a field error."""
    if model.max_model_len is None:
        return
    for bench, limit in limits.items():
        if limit >= model.max_model_len:
            raise ValueError(
                f"model '{model.name}': {bench} asks for {limit} new tokens but max_model_len is {model.max_model_len}; "
                f"set the model's max_tokens below it (e.g. {model.max_model_len - 1024})"
            )


def check_fits_all(cfg: EvalConfig, model: ModelSpec) -> None:
    """`check_fits` over the eval's benchmarks as configured (spec, overrides, then the model's cap)."""
    from distill.eval.stage import resolved_specs  # the specs module reads files; configs import this one

    check_fits(model, {s.name: token_limit(s.max_tokens, model) for s in resolved_specs(cfg)})


def local_positions(model: str) -> int | None:
    """The model's max_position_embeddings when its config.json is readable here (a directory, or the Hugging Face
    cache; config load never downloads), else None. None also when RoPE scaling lets vLLM derive a longer context."""
    path = Path(model) / "config.json"
    if not path.is_file():
        from huggingface_hub import try_to_load_from_cache

        try:
            cached = try_to_load_from_cache(model, "config.json")
        except ValueError:  # not a hub id (sft:<student>, toy:...)
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    config = json.loads(path.read_text(encoding="utf-8"))
    config = config.get("text_config", config)
    rope = config.get("rope_scaling") or config.get("rope_parameters") or {}
    return None if rope.get("factor") else config.get("max_position_embeddings")


def check_positions(model: ModelSpec, positions: int | None) -> None:
    """ValueError when the model's max_model_len exceeds the positions it has: vLLM refuses it at engine start."""
    if positions is not None and model.max_model_len is not None and model.max_model_len > positions:
        raise ValueError(
            f"model '{model.name}': max_model_len {model.max_model_len} is more than its {positions} positions "
            "(max_position_embeddings); vLLM refuses it at engine start"
        )

