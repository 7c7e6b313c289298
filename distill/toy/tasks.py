"""Procedural toy problems in three domains, each with a way to check an answer.

- arith (math): "What is 47 + 38?" -> "85".
- code: "What is 374 + 487? Call the answer c. Write a Python program that reads an integer n and prints n + c."
  -> tests on stdin/stdout, run in the sandbox like any code problem. The program needs c computed (861):
  its addition is the reasoning, so an answer-only student cannot copy the program from the prompt.
- chat (general, the non-reasoning part of the mix): "Greet Kato." -> "Hello, Kato! Nice to meet you."

Each problem space is split by a hash of the problem, so the held-out `test` split never shares a
problem with `train`, whatever the seeds. A code problem belongs to its addition's split, so no held-out
addition is ever trained on through a program either.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re

from distill.errors import DistillError
from distill.records import content_id, to_json

SOURCE = "toy"
TEST_SHARE = 0.1  # one problem in ten belongs to the held-out split
OPS = ("+", "-", "*")

_PROMPT = re.compile(r"What is (\d+) ([+\-*]) (\d+)\?")
_CODE = re.compile(r"What is (\d+) \+ (\d+)\? Call the answer c\. Write a Python program that reads an integer n and prints n \+ c\.")
_CHAT = re.compile(r"^(Greet|Say goodbye to|Thank) ([A-Z][a-z]+)\.$", re.MULTILINE)
CODE_TEST_INPUTS = ("41",)  # stdin of the test of every toy code problem: one, as each sandboxed run costs ~0.1-0.3 s
CHAT_REPLIES = {"Greet": "Hello, {name}! Nice to meet you.", "Say goodbye to": "Goodbye, {name}! See you soon.", "Thank": "Thank you, {name}! That was kind of you."}
_NAME_PARTS = ("b", "d", "k", "l", "m", "n", "r", "s", "t", "v"), ("a", "e", "i", "o", "u")


def prompt_for(a: int, op: str, b: int) -> str:
    return f"What is {a} {op} {b}?"


def parse_prompt(prompt: str) -> tuple[int, str, int]:
    """Operands of a toy prompt (the user prompt may carry the R1 instruction after it)."""
    m = _PROMPT.search(prompt)
    if not m:
        raise DistillError(f"not a toy arithmetic prompt: {prompt[:60]!r}")
    return int(m.group(1)), m.group(2), int(m.group(3))


def task_of(prompt: str) -> str:
    """arith | code | chat: which toy task a prompt belongs to."""
    if _CODE.search(prompt):
        return "code"
    if _CHAT.search(prompt):
        return "chat"
    parse_prompt(prompt)
    return "arith"


def code_prompt(x: int, y: int) -> str:
    """The addition is asked first, as an addition problem is, and the program's spec follows it where an
    addition's instruction does (about as many tokens), so the students read its operands as they learnt
    to there (asked after the spec, 4-digit operands were miscopied in most programs: pipelines/toy.yaml)."""
    return f"{prompt_for(x, '+', y)} Call the answer c. Write a Python program that reads an integer n and prints n + c."


def parse_code_prompt(prompt: str) -> tuple[int, int]:
    """(x, y) of a toy code prompt: the program prints n + (x + y)."""
    m = _CODE.search(prompt)
    if not m:
        raise DistillError(f"not a toy code prompt: {prompt[:60]!r}")
    return int(m.group(1)), int(m.group(2))


def parse_chat_prompt(prompt: str) -> tuple[str, str]:
    m = _CHAT.search(prompt)
    if not m:
        raise DistillError(f"not a toy chat prompt: {prompt[:60]!r}")
    return m.group(1), m.group(2)


def _names() -> list[str]:
    c, v = _NAME_PARTS
    return [(c1 + v1 + c2 + v2).capitalize() for c1 in c for v1 in v for c2 in c for v2 in v]


def _split(text: str) -> str:
    h = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return "test" if h % 1000 < TEST_SHARE * 1000 else "train"


def _pick(space: list[str], n: int, seed: int, split: str, what: str) -> list[str]:
    space = [p for p in space if _split(p) == split]
    if n > len(space):
        raise DistillError(f"asked for {n} toy {what} {split} problems but only {len(space)} exist")
    return random.Random(f"{seed}-{split}-{what}").sample(space, n)


def make_code_problems(n: int, seed: int = 0, split: str = "train", digits: int = 3) -> list[dict]:
    """`n` toy code problems with stdin/stdout tests: n plus a constant that is the sum of two `digits`-digit
    numbers, an addition of `split` (drawn, not listed: hashing the whole split would cost ~2 s)."""
    rows = []
    for x, _, y in draw_problems(n, random.Random(f"{seed}-{split}-code"), split, ("+",), digits):
        tests = [{"input": i, "output": str(int(i) + x + y)} for i in CODE_TEST_INPUTS]
        rows.append(_row(code_prompt(x, y), "code", None, to_json(tests), {"x": x, "y": y, "split": split}))
    return rows


def make_chat_problems(n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """`n` toy chat requests; the reference reply is kept as the answer (the judge's reference)."""
    rows = []
    for prompt in _pick([f"{verb} {name}." for verb in CHAT_REPLIES for name in _names()], n, seed, split, "chat"):
        verb, name = parse_chat_prompt(prompt)
        rows.append(_row(prompt, "general", CHAT_REPLIES[verb].format(name=name), None, {"split": split}))
    return rows


def _row(prompt: str, domain: str, answer: str | None, tests: str | None, meta: dict) -> dict:
    return {"id": content_id(SOURCE, prompt), "source": SOURCE, "domain": domain, "prompt": prompt, "answer": answer, "tests": tests, "metadata": to_json(meta)}


def solve(a: int, op: str, b: int) -> int:
    return {"+": a + b, "-": a - b, "*": a * b}[op]


def split_of(a: int, op: str, b: int) -> str:
    h = int(hashlib.sha256(prompt_for(a, op, b).encode()).hexdigest()[:8], 16)
    return "test" if h % 1000 < TEST_SHARE * 1000 else "train"


LISTED_DIGITS = 3  # spaces up to 3-digit operands are listed (810k additions); larger ones are drawn from


def _bounds(digits: int) -> tuple[int, int]:
    return 10 ** (digits - 1), 10**digits


def _second_operands(op: str, a: int, lo: int, hi: int) -> range:
    """The b of every problem `a op b` whose operands have digits in [lo, hi): the one definition of the space,
    which `arith_space` lists and `draw_problems` draws from."""
    if op == "*":  # multi-digit times one digit: the carry chain is the lesson, not long multiplication
        return range(2, 10)
    if op == "-":  # non-negative results only
        return range(lo, a + 1)
    return range(lo, hi)


def arith_space(ops: tuple[str, ...], digits: int) -> list[tuple[int, str, int]]:
    """Every (a, op, b) problem of these ops and digits, both splits, in a fixed order."""
    lo, hi = _bounds(digits)
    return [(a, op, b) for op in ops for a in range(lo, hi) for b in _second_operands(op, a, lo, hi)]


def draw_problems(n: int, rng: random.Random, split: str, ops: tuple[str, ...], digits: int) -> list[tuple[int, str, int]]:
    """`n` distinct (a, op, b) of `split`, drawn at random from the space `arith_space` would list: an op
    uniformly (no draw for one op, so the programs of earlier runs are drawn as they were), then its
    operands. For spaces too big to list; at most half a space, so drawing ends soon."""
    lo, hi = _bounds(digits)
    size = sum(len(_second_operands(op, a, lo, hi)) for op in ops for a in range(lo, hi))
    if n > size // 2:
        raise DistillError(f"asked for {n} toy {split} problems drawn from {size} (ops={ops} digits={digits}): draw at most half")
    picked: dict[tuple[int, str, int], None] = {}
    while len(picked) < n:
        op = ops[0] if len(ops) == 1 else rng.choice(ops)
        a = rng.randrange(lo, hi)
        b = rng.choice(_second_operands(op, a, lo, hi))
        if split_of(a, op, b) == split:
            picked[a, op, b] = None
    return list(picked)


@functools.lru_cache(maxsize=4)
def _split_space(ops: tuple[str, ...], digits: int, split: str) -> tuple[tuple[int, str, int], ...]:
    """One split of the space, in `arith_space` order. Cached: hashing the 810k 3-digit additions costs
    ~2 CPU s, paid once per process instead of on every benchmark load (each eval model, each resume)."""
    return tuple(p for p in arith_space(ops, digits) if split_of(*p) == split)


def make_problems(
    n: int, seed: int = 0, split: str = "train", ops: tuple[str, ...] = ("+",), digits: int = 2
) -> list[dict]:
    """`n` distinct problems of one split, as PROBLEM rows, in a seed-determined order."""
    if split not in ("train", "test"):
        raise DistillError(f"toy split must be 'train' or 'test', got {split!r}")
    bad = [op for op in ops if op not in OPS]
    if bad:
        raise DistillError(f"toy ops must be among {OPS}, got {bad}")
    if digits > LISTED_DIGITS:
        picked = draw_problems(n, random.Random(f"{seed}-{split}"), split, tuple(ops), digits)
    else:
        space = _split_space(tuple(ops), digits, split)
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
