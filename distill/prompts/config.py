"""Config of `distill prompts`: the sources of the problem mix, and how the union is deduplicated and
decontaminated.

A config lists `sources`; each has its own columns, domain, row filter (`where`), quota (`limit`, or a
`share` of `total`) and shuffle seed. A single-source config may give the source keys at the top level
(`source: toy`, `columns: ...`): it is read as a one-element `sources` list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from distill.config import Config
from distill.toy.config import ToyTasks


MAPPABLE = ("id", "prompt", "answer", "tests", "domain", "metadata", "messages")  # problem fields a source column can fill


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
        default_factory=list, description="extra benchmark files, .jsonl, .parquet or .csv (problem text in 'problem', 'question' or 'prompt', any case: GPQA's CSV works)"
    )
    ngram: int = Field(8, ge=1, description="a shared word n-gram of this length marks a problem as contaminated")


class RowRule(Config):
    """One condition on a source column; a row is imported only if it meets every rule of `where`."""

    column: str
    in_: Optional[list[Any]] = Field(None, alias="in", description="keep rows whose value is one of these")
    not_in: Optional[list[Any]] = Field(None, description="drop rows whose value is one of these")
    regex: Optional[str] = Field(None, description="keep rows whose value (as text) matches this regex (re.search)")
    not_regex: Optional[str] = Field(None, description="drop rows whose value (as text) matches this regex")
    numeric: Optional[bool] = Field(
        None, description="true: keep closed-form answers (a number, fraction, root, pi ... with no words); false: the others"
    )
    present: Optional[bool] = Field(None, description="true: keep rows with a non-empty value; false: rows without")

    model_config = {**Config.model_config, "populate_by_name": True}

    @field_validator("regex", "not_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"invalid regex {value!r}: {e}") from None
        return value


class Choices(Config):
    """Multiple choice from a correct and several incorrect answer columns (SciQ's and GPQA's layout): the
    options are shuffled with a per-problem seed and lettered; the reference is the correct letter."""

    correct: str = Field(description="column with the correct option")
    incorrect: list[str] = Field(min_length=1, description="columns with the wrong options")
    format: str = Field("{prompt}\n\n{options}", description="problem text layout: {prompt} the question, {options} the lettered options")


class Expect(Config):
    """What the planner (`distill plan`) assumes for a source until a pilot run measures it; not part of
    the stage's identity, so refining it never blocks a resume."""

    keep_rate: float = Field(0.5, gt=0, le=1, description="kept SFT samples per generated sample (teacher pass rate x checks)")
    completion_tokens: int = Field(4000, ge=1, description="mean teacher completion tokens per sample")
    prompt_tokens: int = Field(200, ge=1, description="mean prompt tokens per sample")


class SourceConfig(Config):
    """One source of the mix."""

    source: str = Field("toy", description="'toy', a local .jsonl/.parquet path, or 'hf:<dataset name>'")
    name: Optional[str] = Field(None, description="the `source` column of its rows (default: derived from `source`); unique in the mix")
    split: str = Field("train", description="dataset split (hf sources)")
    subset: Optional[str] = Field(None, description="dataset configuration name (hf sources)")
    revision: Optional[str] = Field(None, description="dataset revision (hf sources): a commit sha pins the data")
    columns: dict[str, str] = Field(
        default_factory=lambda: {"prompt": "problem", "answer": "answer"},
        description="problem field -> source column, e.g. {prompt: problem, answer: solution, tests: test_cases}; "
        "chat sources map `messages` to a list of {role, content} turns; `a.b` reads field b of a struct column a",
    )
    choices: Optional[Choices] = Field(None, description="build a lettered multiple-choice problem from option columns")
    domain: Literal["math", "code", "science", "general"] = Field("math", description="domain of rows without a mapped domain column")
    toy: ToyTasks = Field(default_factory=ToyTasks, description="toy source: the train split of these problems")
    where: list[RowRule] = Field(default_factory=list, description="row filter: every rule must hold (e.g. numeric answers, no proofs)")
    limit: Optional[int] = Field(None, ge=1, description="quota: keep exactly this many problems (after filter, dedup, decontamination)")
    share: Optional[float] = Field(None, gt=0, le=1, description="quota as a share of the mix's `total`")
    seed: Optional[int] = Field(None, description="shuffle the source with this seed (buffered, streaming) before taking the quota")
    shuffle_buffer: int = Field(10000, ge=1, description="rows held by the streaming shuffle")
    nonreasoning: Optional[Literal["imported", "teacher"]] = Field(
        None,
        description="non-reasoning samples: 'imported' keeps the source's last assistant turn as the answer, as is "
        "(no teacher call); 'teacher' asks the teacher with thinking off. None: reasoning traces",
    )
    multi_answer: bool = Field(False, description="a list in the answer column is a set of accepted answers (else an error)")
    allow_empty: bool = Field(False, description="accept a source that yields no problem (else an error)")
    expect: Expect = Field(default_factory=Expect, description="planner assumptions (distill plan); not hashed")

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, columns: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(columns) - set(MAPPABLE))
        if unknown:
            raise ValueError(f"unknown problem field(s) {unknown}; mappable: {list(MAPPABLE)}")
        return columns

    @model_validator(mode="after")
    def _one_quota(self) -> "SourceConfig":
        if self.limit is not None and self.share is not None:
            raise ValueError("give a source `limit` or `share`, not both")
        if self.nonreasoning == "imported" and "messages" not in self.columns and "answer" not in self.columns:
            raise ValueError("nonreasoning: imported needs columns.messages (a chat) or columns.answer (the reply)")
        return self

    @property
    def label(self) -> str:
        """The `source` value of its rows."""
        if self.name:
            return self.name
        if self.source.startswith("hf:"):
            return self.source[3:] + (f"/{self.subset}" if self.subset else "")
        return "toy" if self.source == "toy" else Path(self.source).stem


_SOURCE_KEYS = set(SourceConfig.model_fields)


class PromptsConfig(Config):
    sources: list[SourceConfig] = Field(default_factory=lambda: [SourceConfig()], description="the sources of the mix, read in order")
    total: Optional[int] = Field(None, ge=1, description="problems in the whole mix; sources with a `share` take that share of it")
    rows_per_shard: int = Field(5000, ge=1, description="problems per output part (a part never spans two sources)")
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    decontaminate: DecontamConfig = Field(default_factory=DecontamConfig)

    @model_validator(mode="before")
    @classmethod
    def _single_source(cls, data: Any) -> Any:
        """Top-level source keys (the one-source form) become `sources: [{...}]`."""
        if isinstance(data, dict) and _SOURCE_KEYS & set(data):
            if "sources" in data:
                raise ValueError(f"give source keys {sorted(_SOURCE_KEYS & set(data))} inside `sources`, not beside it")
            data = dict(data)
            data["sources"] = [{k: data.pop(k) for k in list(data) if k in _SOURCE_KEYS}]
        return data

    @model_validator(mode="after")
    def _quotas(self) -> "PromptsConfig":
        labels = [s.label for s in self.sources]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, got {dupes} twice: set `name` on each")
        if any(s.share is not None for s in self.sources) and self.total is None:
            raise ValueError("a source `share` needs the mix's `total`")
        if self.total is not None:
            fixed = sum(s.limit or 0 for s in self.sources)
            shares = sum(s.share or 0 for s in self.sources)
            if shares > 1 + 1e-9 or fixed > self.total:
                raise ValueError(f"quotas exceed total {self.total}: limits {fixed}, shares {shares:.3f}")
        if not self.sources:
            raise ValueError("at least one source is needed")
        return self

    def identity(self) -> dict:
        """The config that decides the rows, for the stage's config hash: the planner's `expect` is left out,
        and sources are keyed by name, so a refused change names its place (`sources.<name>.toy.seed`)."""
        out = self.model_dump(mode="json", exclude={"sources": {"__all__": {"expect"}}})
        out["sources"] = {f"{k}:{s['name'] or src.label}": s for k, (src, s) in enumerate(zip(self.sources, out["sources"]))}
        return out

    def quotas(self) -> list[int | None]:
        """Problems each source contributes: its `limit`, or its share of `total` by largest remainder, so
        the shares of a mix that adds up to `total` give exactly `total` problems."""
        out: list[int | None] = [s.limit for s in self.sources]
        shared = [i for i, s in enumerate(self.sources) if s.share is not None]
        if not shared:
            return out
        room = self.total - sum(s.limit or 0 for s in self.sources)
        exact = {i: self.sources[i].share * self.total for i in shared}
        floor = {i: int(v) for i, v in exact.items()}
        want = min(room, round(sum(exact.values())))
        extra = want - sum(floor.values())
        for i in sorted(shared, key=lambda i: (floor[i] - exact[i], i))[: max(0, extra)]:
            floor[i] += 1
        for i in shared:
            out[i] = floor[i]
        return out
