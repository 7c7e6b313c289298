"""Config of `distill prompts`: where problems come from, and how they are deduplicated and decontaminated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator

from distill.config import Config
from distill.toy.tasks import ToyTasks


MAPPABLE = ("id", "prompt", "answer", "tests", "domain", "metadata")  # problem fields a source column can fill


class DedupConfig(Config):
    exact: bool = Field(True, description="drop problems whose normalised text repeats an earlier one")
    near: bool = Field(False, description="drop near-duplicates by MinHash LSH (datasketch)")
    threshold: float = Field(0.8, gt=0, le=1, description="estimated Jaccard similarity of word 3-grams above which two problems are near-duplicates")
    num_perm: int = Field(128, ge=16, description="MinHash permutations (more: slower, more precise)")


class DecontamConfig(Config):
    benchmarks: list[str] = Field(
        default_factory=list, description="benchmark names loaded with distill.eval.benchmarks.load_benchmark (e.g. math500, aime24)"
    )
    files: list[Path] = Field(
        default_factory=list, description="extra benchmark JSONL files (problem text in 'problem', 'question' or 'prompt')"
    )
    ngram: int = Field(8, ge=1, description="a shared word n-gram of this length marks a problem as contaminated")


class PromptsConfig(Config):
    source: str = Field("toy", description="'toy', a local .jsonl/.parquet path, or 'hf:<dataset name>'")
    name: Optional[str] = Field(None, description="the `source` column of the rows (default: derived from `source`)")
    split: str = Field("train", description="dataset split (hf sources)")
    subset: Optional[str] = Field(None, description="dataset configuration name (hf sources)")
    columns: dict[str, str] = Field(
        default_factory=lambda: {"prompt": "problem", "answer": "answer"},
        description="problem field -> source column, e.g. {prompt: problem, answer: solution, tests: test_cases}",
    )
    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(MAPPABLE))
        if unknown:
            raise ValueError(f"unknown problem field(s) {unknown}; mappable: {list(MAPPABLE)}")
        return columns

    domain: Literal["math", "code", "science", "general"] = Field("math", description="domain of rows without a mapped domain column")
    toy: ToyTasks = Field(default_factory=ToyTasks, description="toy source: the train split of these problems")
    limit: Optional[int] = Field(None, ge=1, description="read at most this many source rows")
    rows_per_shard: int = Field(5000, ge=1, description="problems per output part")
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)
