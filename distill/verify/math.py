"""Math answers checked with math-verify (HF): the reference and the response's boxed/final answer
are parsed to sympy and compared symbolically.

math-verify's timeouts use `signal.alarm`, which only works in a process's main thread: call these
functions in the main thread of a worker process (`verify_math_many` does), never from a thread.
"""

from __future__ import annotations

import logging

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

from distill.stage import worker_pool
from distill.verify import CORRECT, INCORRECT, UNVERIFIABLE, Verdict, answer_text

log = logging.getLogger(__name__)

# math-verify logs the whole input on a timeout; a looping 30k-token trace would become one
# 100 kB log line per sample. Its own loggers are muted; we log one truncated line instead.
for _name in ("math_verify", "math_verify.parser", "math_verify.grader", "latex2sympy2_extended"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

# A final answer sits at the end; parsing only the tail keeps pathological inputs (a 100k-char
# repetition loop) from costing seconds of regex work. 4000 chars is ~1000 tokens of response.
TAIL_CHARS = 4000

_PRED_CONFIG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
_GOLD_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n // 2] + " ... " + text[-n // 2 :]


def _answer_window(text: str) -> str:
    """The last `\\boxed{...}` and what follows it, or the tail: bounded work on any input."""
    at = text.rfind("\\boxed")
    if at < 0:
        return text[-TAIL_CHARS:]
    return text[max(0, at - 200) : at + TAIL_CHARS]


def parse_reference(reference: str, timeout_s: int = 5) -> list:
    """Parse a reference answer ("420", "\\frac{1}{2}", "$x=3$"); boxed so bare LaTeX is found."""
    ref = str(reference).strip()
    gold = parse(ref if "\\boxed" in ref else f"\\boxed{{{ref}}}", _GOLD_CONFIG, parsing_timeout=timeout_s)
    gold = gold or parse(ref, _GOLD_CONFIG, parsing_timeout=timeout_s)
    if not gold:
        log.warning("reference answer not parseable, its samples are unverifiable: %r", _short(ref))
    return gold


def verify_math(completion: str, reference: str | None, *, timeout_s: int = 5, gold: list | None = None) -> Verdict:
    """Verdict for a completion (R1 `<think>...</think>answer` or a plain response) against `reference`.

    `gold` lets a caller pass `parse_reference(reference)` once for the many samples of one problem.
    """
    if reference is None or not str(reference).strip():
        return Verdict(UNVERIFIABLE, None, "no_reference")
    text = _answer_window(answer_text(completion))
    if gold is None:
        gold = parse_reference(reference, timeout_s)
    if not gold:
        return Verdict(UNVERIFIABLE, None, "reference_unparseable")
    pred = parse(text, _PRED_CONFIG, parsing_timeout=timeout_s)
    if not pred:
        return Verdict(INCORRECT, None, "no_answer")
    extracted = str(pred[-1])
    ok = verify(gold, pred, timeout_seconds=timeout_s)
    return Verdict(CORRECT, extracted, None) if ok else Verdict(INCORRECT, extracted, "wrong_answer")


def _verify_pairs(pairs: list[tuple[str, str | None]], timeout_s: int) -> list[Verdict]:
    return [verify_math(c, r, timeout_s=timeout_s) for c, r in pairs]


def verify_math_many(
    pairs: list[tuple[str, str | None]], *, workers: int = 1, timeout_s: int = 5, chunk: int = 64
) -> list[Verdict]:
    """Verdicts for (completion, reference) pairs, in order, computed in `workers` spawned processes
    (so math-verify's alarm-based timeouts work even when the caller runs threads)."""
    chunks = [pairs[i : i + chunk] for i in range(0, len(pairs), chunk)]
    with worker_pool(max(1, workers)) as pool:
        out: list[Verdict] = []
        for part in pool.map(_verify_pairs, chunks, [timeout_s] * len(chunks)):
            out += part
    return out
