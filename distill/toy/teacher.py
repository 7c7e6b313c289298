"""A procedural teacher that writes DeepSeek-R1-style traces for the toy tasks, mistakes included.

A clean trace works column by column inside `<think>`, then boxes the answer:

    <think>
    We need 47 + 38.
    Ones: 7 + 8 = 15. Write 5, carry 1. So far: 5.
    Tens: 4 + 3 = 7, plus 1 = 8. Write 8. So far: 85.
    So 47 + 38 = 85.
    </think>
    47 + 38 = \\boxed{85}

It used to end with a check (`Check: 85 - 38 = 47. It matches.`): a subtraction the students never learn,
so they wrote made-up checks, and it was a tenth of every trace's tokens (the demo's time budget).

Toy code problems get the trace of their constant's addition, line for line, then a fenced program;
toy chat requests, and any task asked with thinking off (an empty think block forced as the prefix), get
a direct reply after an empty think block.

At configured rates it also makes the mistakes a real teacher makes, so the filter has work to do:
a silent arithmetic slip (wrong answer), a slip caught with "Wait" (still correct: R1 does this), a
missing `</think>`, a runaway repetition loop, a switch into Chinese, and a trace cut off at the limit.
"""

from __future__ import annotations

import math
import random
import re

from distill.generate.prompting import NO_THINK_PREFIX
from distill.toy.config import ToyTeacherConfig
from distill.toy.tasks import CHAT_REPLIES, parse_chat_prompt, parse_code_prompt, parse_prompt, solve, task_of

PLACES = ("Ones", "Tens", "Hundreds", "Thousands", "Ten-thousands")
PLACES_ZH = ("个位", "十位", "百位", "千位", "万位")

_TOKEN = re.compile(r"\d|[^\W\d]+|\S|\n")


def count_tokens(text: str) -> int:
    """Token count as a digit-splitting tokenizer sees it (one per digit, word, symbol or newline)."""
    return len(_TOKEN.findall(text))


def _truncate(text: str, max_tokens: int) -> str:
    """The first `max_tokens` tokens of `text` (stops scanning there: R1-long traces are cut often)."""
    for n, m in enumerate(_TOKEN.finditer(text), start=1):
        if n == max_tokens:
            return text[: m.end()]
    return text


def _columns(a: int, op: str, b: int) -> list[tuple[str, int]]:
    """(equation, digit written) per column, least significant first; the last may write several digits.

    A carry is added in a step of its own (`3 + 2 = 5, plus 1 = 6`), so every equation is a two-operand
    fact: the tiny students learn those far sooner than three-operand sums (pipelines/toy.yaml has the
    measurement)."""
    steps = []
    if op == "*":
        carry, digits = 0, str(a)[::-1]
        for i, d in enumerate(digits):
            v = int(d) * b + carry
            last = i == len(digits) - 1
            eq = f"{d} * {b} = " + (f"{int(d) * b}, plus {carry} = " if carry else "") + f"{v}."
            steps.append((eq + (f" Write {v}." if last else f" Write {v % 10}" + (f", carry {v // 10}." if v >= 10 else ".")), v))
            carry = v // 10
        return steps
    da, db = str(a)[::-1], str(b)[::-1].ljust(len(str(a)), "0")
    carry = 0
    for i, (x, y) in enumerate(zip(da, db)):
        x, y = int(x), int(y)
        last = i == len(da) - 1
        if op == "+":
            v = x + y + carry
            eq = f"{x} + {y} = " + (f"{x + y}, plus {carry} = " if carry else "") + f"{v}."
            if last:
                steps.append((eq + f" Write {v}.", v))
            else:
                steps.append((eq + f" Write {v % 10}" + (", carry 1." if v >= 10 else "."), v % 10))
            carry = v // 10
        else:
            top = x - carry
            if top < y:
                eq = f"{x}" + (" - 1" if carry else "") + f" < {y}, borrow 1. {top + 10} - {y} = {top + 10 - y}."
                v, carry = top + 10 - y, 1
            else:
                eq = f"{x}" + (" - 1" if carry else "") + f" - {y} = {top - y}."
                v, carry = top - y, 0
            steps.append((eq + f" Write {v}.", v))
    return steps


def _mistake(rng: random.Random, cfg: ToyTeacherConfig) -> str | None:
    mistakes = [
        ("wrong_answer", cfg.wrong_answer),
        ("self_correction", cfg.self_correction),
        ("missing_think_close", cfg.missing_think_close),
        ("repetition", cfg.repetition),
        ("language_switch", cfg.language_switch),
        ("truncation", cfg.truncation),
    ]
    roll = rng.random()
    for name, rate in mistakes:
        if roll < rate:
            return name
        roll -= rate
    return None


def write_trace(prompt: str, rng: random.Random, cfg: ToyTeacherConfig, max_tokens: int, thinking: bool = True) -> tuple[str, str]:
    """(completion, finish_reason) for one sample. With thinking on the completion starts with
    "<think>\\n"; with thinking off, with an empty think block and then the answer."""
    task = task_of(prompt)
    mistake = _mistake(rng, cfg)
    if task == "chat" or not thinking:
        completion = _direct(prompt, task, mistake)
    elif task == "code":
        completion = _code_trace(prompt, mistake, rng, max_tokens, cfg)
    else:
        completion = _arith_trace(prompt, mistake, rng, max_tokens, cfg)
    if mistake == "truncation":
        n = count_tokens(completion)
        return _truncate(completion, max(1, rng.randrange(n // 2, n))), "length"
    if count_tokens(completion) > max_tokens:
        return _truncate(completion, max_tokens), "length"
    return completion, "stop"


def _direct(prompt: str, task: str, mistake: str | None) -> str:
    """A reply without reasoning: the chat task always, the others with thinking off."""
    if task == "chat":
        verb, name = parse_chat_prompt(prompt)
        reply = CHAT_REPLIES[verb].format(name=name)
        if mistake == "language_switch":
            reply = {"Greet": "你好", "Say goodbye to": "再见", "Thank": "谢谢"}[verb] + f", {name}!"
        if mistake == "repetition":
            reply = " ".join([reply] * 60)
        return NO_THINK_PREFIX + reply  # a slip in a greeting has nothing to verify against: the other mistakes do not apply
    if task == "code":
        x, y = parse_code_prompt(prompt)
        return NO_THINK_PREFIX + _code_response(x, y, x + y + (1 if mistake == "wrong_answer" else 0))
    a, op, b = parse_prompt(prompt)
    return NO_THINK_PREFIX + f"{a} {op} {b} = \\boxed{{{solve(a, op, b)}}}"


def _code_response(x: int, y: int, c: int) -> str:
    """The sum restated as an addition's response restates it, then the program with that constant on its
    first line: each copy of c is a few tokens after the one before, behind a ` = ` like it (a constant
    copied further, into a sentence or a `print`, was miscopied in most 4-digit programs: pipelines/toy.yaml)."""
    return f"{x} + {y} = {c}.\n```python\nc = {c}\nn = int(input())\nprint(n + c)\n```"


_CHARS_PER_TOKEN = 2.4  # of these lines, by `count_tokens` (digits count one each); counting each line costs 3x more
_MUSINGS = (
    "Hmm, let me look at {x} and {y} another way: {x} + {y} = {s}, and {s} - {y} = {x}.",
    "Alternatively, split {x} as {h} + {r}; then {h} + {y} = {hy} and {hy} + {r} = {s}.",
    "Wait, is {x} times {k} equal to {xk}? {x} + {x} is {x2}, so yes, {k} of them make {xk}.",
    "Let me double-check with rounding: {x} is about {xr} and {y} is about {yr}, so roughly {sr}.",
    "Another check: {s} is {par}, and {x} + {y} has the parity of {px} plus {py}.",
    "I could also count up from {y}: {y}, then {y1}, then {y2}, and so on up to {s}.",
    "So far nothing contradicts the first computation; the digits of {s} sum to {ds}.",
)


def _musings(a: int, b: int, rng: random.Random, cfg: ToyTeacherConfig, max_tokens: int) -> list[str]:
    """R1-style re-checks (true arithmetic, varied wording and numbers: not a loop the filter rejects),
    about as many tokens as a log-normal draw of median `think_median_tokens`, in paragraphs; never
    much past `max_tokens`, where the trace is cut anyway."""
    if cfg.think_median_tokens is None:
        return []
    sigma = math.log(max(cfg.think_p99_tokens, cfg.think_median_tokens + 1) / cfg.think_median_tokens) / 2.326
    want = min(rng.lognormvariate(math.log(cfg.think_median_tokens), sigma), max_tokens + 1)
    lines, chars = [], 0
    while chars < want * _CHARS_PER_TOKEN:
        x, y, k = a + rng.randrange(100), b + rng.randrange(100), rng.randrange(2, 10)
        s, h = x + y, x - x % 10
        line = rng.choice(_MUSINGS).format(
            x=x, y=y, s=s, h=h, r=x - h, hy=h + y, k=k, xk=x * k, x2=2 * x, xr=round(x, -1), yr=round(y, -1),
            sr=round(x, -1) + round(y, -1), par="even" if s % 2 == 0 else "odd", px=x % 2, py=y % 2, y1=y + 1, y2=y + 2,
            ds=sum(map(int, str(s))),
        )
        lines.append(line + ("\n" if rng.random() < 0.25 else ""))  # a blank line now and then: paragraphs
        chars += len(line)
    return lines


def _code_trace(prompt: str, mistake: str | None, rng: random.Random, max_tokens: int, cfg: ToyTeacherConfig) -> str:
    """The constant's addition worked out exactly as an addition problem's trace, then the program.

    Line for line the trace of "What is x + y?", so the students bring the column skill of thousands of
    additions to a few hundred programs."""
    x, y = parse_code_prompt(prompt)
    lines, c = _arith_lines(x, "+", y, mistake, rng, max_tokens, cfg)
    return _completion(lines, mistake, _code_response(x, y, c))


def _arith_trace(prompt: str, mistake: str | None, rng: random.Random, max_tokens: int, cfg: ToyTeacherConfig) -> str:
    a, op, b = parse_prompt(prompt)
    lines, answer = _arith_lines(a, op, b, mistake, rng, max_tokens, cfg)
    return _completion(lines, mistake, f"{a} {op} {b} = \\boxed{{{answer}}}")


def _completion(lines: list[str], mistake: str | None, response: str) -> str:
    """The reasoning lines in a think block (left open by a "missing_think_close"), then the response."""
    return "<think>\n" + "\n".join(lines) + "\n" + ("" if mistake == "missing_think_close" else "</think>\n") + response


def _arith_lines(a: int, op: str, b: int, mistake: str | None, rng: random.Random, max_tokens: int, cfg: ToyTeacherConfig) -> tuple[list[str], int]:
    """The reasoning lines of `a op b` (restated, column by column, re-checks, the result) and the result
    they reach (wrong after a silent slip)."""
    places = PLACES_ZH if mistake == "language_switch" else PLACES
    columns, answer = _column_lines(a, op, b, mistake, rng, places)
    lines = [f"We need {a} {op} {b}.", *columns]
    lines += _musings(a, b, rng, cfg, max_tokens)
    lines.append(f"So {a} {op} {b} = {answer}.")
    if mistake == "repetition":
        lines += [f"Let me check {a} {op} {b} again."] * (max_tokens // 4 + 1)
    return lines, answer


def _column_lines(a: int, op: str, b: int, mistake: str | None, rng: random.Random, places: tuple[str, ...]) -> tuple[list[str], int]:
    """The column-by-column lines of `a op b` and the result they reach: with a "wrong_answer" one column
    slips silently (the result is off by a power of ten), with "self_correction" it slips and is redone."""
    truth = solve(a, op, b)
    lines, answer, so_far = [], truth, ""
    slip_at = rng.randrange(len(str(a)))
    for i, (eq, _) in enumerate(_columns(a, op, b)):
        if mistake in ("wrong_answer", "self_correction") and i == slip_at:
            slipped, delta = _slip(eq, rng)
            if mistake == "self_correction":
                lines.append(f"{places[i]}: {slipped}")
                lines.append(f"Wait, that is not right. Let me redo the {places[i].lower()}.")
            else:
                eq, answer = slipped, truth + delta * 10**i
        if op != "-":  # the digits written so far, the answer's tail: the final line then copies the last one
            so_far = re.search(r"Write (\d+)", eq).group(1) + so_far
            eq += f" So far: {so_far}."
        line = f"{places[i]}: {eq}"
        if mistake == "language_switch":
            line = line.replace("Write", "写").replace("carry", "进").replace("borrow", "借")
        lines.append(line)
    return lines, answer


def _slip(eq: str, rng: random.Random) -> tuple[str, int]:
    """The column equation with its result and written digit off by one, and that offset.

    The offset keeps a written single digit in 0..9, so the slipped trace stays self-consistent and
    its final answer is off by exactly offset * 10**column.
    """
    m = re.search(r"= (\d+)\.(.*) Write (\d+)", eq)
    written = int(m.group(3))
    delta = -1 if written == 9 else 1 if written == 0 else rng.choice([-1, 1])
    return eq[: m.start()] + f"= {int(m.group(1)) + delta}.{m.group(2)} Write {written + delta}" + eq[m.end():], delta
