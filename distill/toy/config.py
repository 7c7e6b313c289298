"""The toy world's config shapes (which toy problems, which teacher mistakes), apart from its code, so the
real stage configs that offer a `toy` section import these few fields and not the toy world itself."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from distill.config import Config


class ToyTasks(Config):
    """Which toy problems a stage draws: the prompt stage takes the train split, the eval the test split."""

    task: Literal["arith", "code", "chat"] = Field("arith", description="arith (math), code (stdin/stdout tests) or chat (general)")
    n: int = Field(200, ge=1, description="number of problems")
    seed: int = Field(0, description="seed of the problem sampler")
    ops: list[str] = Field(default_factory=lambda: ["+"], description="operations among + - *")
    digits: int | None = Field(None, ge=1, le=5, description="digits of the operands (the first one's for - and *); default 2 for arith, 3 for code")

    def make(self, split: str) -> list[dict]:
        from distill.toy.tasks import make_chat_problems, make_code_problems, make_problems

        if self.task == "code":
            return make_code_problems(self.n, seed=self.seed, split=split, digits=self.digits or 3)
        if self.task == "chat":
            return make_chat_problems(self.n, seed=self.seed, split=split)
        return make_problems(self.n, seed=self.seed, split=split, ops=tuple(self.ops), digits=self.digits or 2)


class ToyTeacherConfig(Config):
    """Rates of each mistake, per trace; at most one mistake per trace."""

    wrong_answer: float = Field(0.12, ge=0, le=1, description="silent slip in one column: wrong final answer")
    self_correction: float = Field(0.15, ge=0, le=1, description="slip caught with 'Wait', then fixed (still correct)")
    missing_think_close: float = Field(0.04, ge=0, le=1, description="the </think> tag is never written")
    repetition: float = Field(0.04, ge=0, le=1, description="a line repeats until the token limit")
    language_switch: float = Field(0.04, ge=0, le=1, description="the column steps are written in Chinese")
    truncation: float = Field(0.03, ge=0, le=1, description="the trace stops mid-way at the token limit")
    think_median_tokens: int | None = Field(
        None, ge=1, description="R1-like lengths: pad each arith/code reasoning with re-checks to a log-normal token count of this median (None: short traces)"
    )
    think_p99_tokens: int = Field(16000, ge=1, description="99th percentile of that log-normal (R1: a heavy tail up to the 32k limit)")
