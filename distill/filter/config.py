"""Config of `distill filter`: which checks run, how answers are verified, which samples are kept."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator

from distill.config import Config
from distill.generate.config import BackendConfig
from distill.generate.prompting import TemplateName

Domain = Literal["math", "code", "science", "general"]
Route = Literal["math", "code", "choice", "judge", "none"]


class ChecksConfig(Config):
    """Format and readability checks (R1 recipe); a disabled check is None or False."""

    think_format: bool = Field(True, description="reject missing or duplicated <think>/</think> tags")
    truncation: bool = Field(True, description="reject traces cut off at max_tokens (finish_reason 'length')")
    repetition_min_ratio: Optional[float] = Field(
        0.12, gt=0, lt=1, description="reject when the last 2000 chars zlib-compress below this ratio (a loop)"
    )
    language_max_share: Optional[float] = Field(
        0.1, ge=0, le=1, description="reject when more than this share of letters is outside the prompt's script"
    )
    max_paragraph_chars: Optional[int] = Field(5000, gt=0, description="reject a paragraph longer than this")
    code_in_reasoning: bool = Field(True, description="reject ``` code blocks inside the reasoning of non-code problems")


class VerifyConfig(Config):
    math_timeout_s: int = Field(5, gt=0, description="math-verify timeout per parse and per comparison")
    keep_unverifiable: bool = Field(
        False, description="keep samples that cannot be verified (no reference, general domain without a judge)"
    )
    code_timeout_s: float = Field(10.0, gt=0, description="wall-clock limit of one sandboxed test run")
    code_memory_mb: int = Field(512, gt=0, description="address-space limit of the sandboxed program")
    judge: Optional[BackendConfig] = Field(
        None, description="LLM judge for problems without a verifier (general domain): a generation backend, e.g. the teacher"
    )
    routes: dict[Domain, Route] = Field(
        default_factory=lambda: {"math": "math", "code": "code", "science": "choice", "general": "judge"},
        description="verifier per domain: math (math-verify), code (tests in the sandbox), choice (letter; math-verify "
        "when the reference is not a letter), judge (the LLM judge; without one, readability checks only, "
        "verdict `unverifiable`), none",
    )

    @field_validator("routes")
    @classmethod
    def _every_domain(cls, routes: dict) -> dict:
        return {**{"math": "math", "code": "code", "science": "choice", "general": "judge"}, **routes}


class SelectConfig(Config):
    """Rejection sampling: which of a problem's correct samples become SFT data."""

    policy: Literal["all", "first", "shortest"] = Field("all", description="all correct, first correct, or shortest correct")
    max_per_prompt: Optional[int] = Field(None, ge=1, description="keep at most this many samples per problem")
    dedup: bool = Field(True, description="drop a sample whose completion repeats another of the same problem")
    pass_rate_min: Optional[float] = Field(
        None, ge=0, le=1, description="drop problems the teacher solves less often than this (too hard)"
    )
    pass_rate_max: Optional[float] = Field(
        None, ge=0, le=1, description="drop problems the teacher solves more often than this (too easy)"
    )


class StudentPassRate(Config):
    """Difficulty selection beyond R1: sample the undistilled student k times per problem with the eval
    machinery (its backends and scorers) and keep only problems it solves at a rate inside the band."""

    model: BackendConfig = Field(description="the undistilled student as a generation backend (e.g. transformers or vllm)")
    k: int = Field(4, ge=1, description="samples per problem")
    max_rate: float = Field(0.75, ge=0, le=1, description="drop problems the student already solves more often than this")
    min_rate: float = Field(0.0, ge=0, le=1, description="drop problems the student solves less often than this")
    max_tokens: int = Field(4096, ge=1, description="generation limit per student sample")
    temperature: float = Field(0.6, ge=0, description="R1 eval protocol: T=0.6, top-p 0.95")
    template: TemplateName = Field("r1", description="prompt template of the student's user turn")
    domains: list[Domain] = Field(
        default_factory=lambda: ["math", "code", "science"], description="domains it applies to (general has no verifier)"
    )


class FilterConfig(Config):
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    template: TemplateName = Field("r1", description="prompt template of the SFT user turn (distill/generate/prompting.py)")
    student_pass_rate: Optional[StudentPassRate] = Field(None, description="optional difficulty filter by the student's own pass rate")
