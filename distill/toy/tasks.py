"""Procedural arithmetic problems with exact answers.

Example: "What is 47 + 38?" -> "85". The problem space is split by a hash of the problem, so the
held-out `test` split never shares a problem with `train`, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
import re

from pydantic import Field

from distill.config import Config
from distill.errors import DistillError
from distill.records import content_id, to_json

SOURCE = "toy"
TEST_SHARE = 0.1  # one problem in ten belongs to the held-out split
OPS = ("+", "-", "*")

_PROMPT = re.compile(r"What is (\d+) ([+\-*]) (\d+)\?")


def prompt_for(a: int, op: str, b: int) -> str:
    return f"What is {a} {op} {b}?"


def parse_prompt(prompt: str) -> tuple[int, str, int]:
    """Operands of a toy prompt (the user prompt may carry the R1 instruction after it)."""
    m = _PROMPT.search(prompt)
    if not m:
        raise DistillError(f"not a toy arithmetic prompt: {prompt[:60]!r}")
    return int(m.group(1)), m.group(2), int(m.group(3))


def solve(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def split_of(a: int, op: str, b: int) -> str:
    h = int(hashlib.sha256(prompt_for(a, op, b).encode()).hexdigest()[:8], 16)
    return "test" if h % 1000 < TEST_SHARE * 1000 else "train"


def _space(ops: tuple[str, ...], digits: int) -> list[tuple[int, str, int]]:
    lo, hi = 10 ** (digits - 1), 10**digits
    out = []
    for op in ops:
        if op == "*":  # multi-digit times one digit: the carry chain is the lesson, not long multiplication
            out += [(a, op, b) for a in range(lo, hi) for b in range(2, 10)]
        elif op == "-":  # non-negative results only
            out += [(a, op, b) for a in range(lo, hi) for b in range(lo, a + 1)]
        else:
            out += [(a, op, b) for a in range(lo, hi) for b in range(lo, hi)]
    return out


def make_problems(
    n: int, seed: int = 0, split: str = "train", ops: tuple[str, ...] = ("+",), digits: int = 2
) -> list[dict]:
    """`n` distinct problems of one split, as PROBLEM rows, in a seed-determined order."""
    if split not in ("train", "test"):
        raise DistillError(f"toy split must be 'train' or 'test', got {split!r}")
    bad = [op for op in ops if op not in OPS]
    if bad:
        raise DistillError(f"toy ops must be among {OPS}, got {bad}")
    space = [p for p in _space(tuple(ops), digits) if split_of(*p) == split]
    if n > len(space):
        raise DistillError(f"asked for {n} toy {split} problems but only {len(space)} exist for ops={ops} digits={digits}")
    picked = random.Random(f"{seed}-{split}").sample(space, n)
    rows = []
    for a, op, b in picked:
        prompt = prompt_for(a, op, b)
        rows.append(
            {
                "id": content_id(SOURCE, prompt),
                "source": SOURCE,
                "domain": "math",
                "prompt": prompt,
                "answer": str(solve(a, op, b)),
                "tests": None,
                "metadata": to_json({"a": a, "op": op, "b": b, "split": split}),
            }
        )
    return rows


class ToyTasks(Config):
    """Which toy problems a stage draws: the prompt stage takes the train split, the eval the test split."""

    n: int = Field(200, ge=1, description="number of problems")
    seed: int = Field(0, description="seed of the problem sampler")
    ops: list[str] = Field(default_factory=lambda: ["+"], description="operations among + - *")
    digits: int = Field(2, ge=1, le=5, description="digits of the first operand")

    def make(self, split: str) -> list[dict]:
        return make_problems(self.n, seed=self.seed, split=split, ops=tuple(self.ops), digits=self.digits)
