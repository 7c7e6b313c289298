"""Config of `distill filter`: which checks run, how answers are verified, which samples are kept."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from distill.config import Config
from distill.generate.config import BackendConfig
from distill.generate.prompting import TemplateName


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


class FilterConfig(Config):
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    verify: VerifyConfig = Field(default_factory=VerifyConfig)
    select: SelectConfig = Field(default_factory=SelectConfig)
    template: TemplateName = Field("r1", description="prompt template of the SFT user turn (distill/generate/prompting.py)")
