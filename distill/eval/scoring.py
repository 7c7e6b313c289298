"""Per-sample scoring: one problem's completions -> their Verdicts (extracted answer, correct, reason),
by the spec's scorer and the eval's grading policy (`strict` | `lenient`, see `distill.verify`).

Math uses math-verify through `distill.verify.math` (the same verifier the filter uses, so a trace
the filter keeps and an eval sample are judged alike); a math reference that names an option
(`\\text{(C)}`, as in MATH-500) goes to the multiple-choice verifier `distill.verify.choice`, and a
choice reference that is not a letter to math-verify (`answer_verifier`, the filter's routing too); code
runs the extracted program against the problem's tests in `distill.verify.code_sandbox`.
math-verify's timeouts use `signal.alarm`: call these from a process's main thread (the stage
runner's workers are processes).
"""

from __future__ import annotations

from distill.verify import Verdict, check_grading
from distill.verify.choice import answer_verifier, verify_choice
from distill.verify.math import parse_reference, verify_math


def _finish(finish_reasons: list[str | None] | None, n: int) -> list[str | None]:
    return list(finish_reasons) if finish_reasons is not None else [None] * n


def score_math(completions, answer, tests, finish_reasons, grading, force_think, rel_tol) -> list[Verdict]:
    gold = parse_reference(answer) if answer is not None else None  # once per problem, not per sample (k=64 on AIME)
    return [
        verify_math(text, answer, gold=gold, grading=grading, finish_reason=fr, force_think=force_think, rel_tol=rel_tol)
        for text, fr in zip(completions, finish_reasons)
    ]


def score_choice(completions, answer, tests, finish_reasons, grading, force_think, rel_tol) -> list[Verdict]:
    return [verify_choice(t, answer, grading=grading, finish_reason=fr, force_think=force_think) for t, fr in zip(completions, finish_reasons)]


# LiveCodeBench's own limits (lcb_runner: `timeout=6` seconds per test, `reliability_guard()` without a
# memory cap); the filter keeps its stricter ones (distill/filter/config.py), it runs teacher code at scale.
CODE_TIMEOUT_S = 6.0
CODE_MEMORY_MB = None


def score_code(completions, answer, tests, finish_reasons, grading, force_think, rel_tol) -> list[Verdict]:
    from distill.verify.code_sandbox import verify_code

    return [verify_code(t, tests, timeout_s=CODE_TIMEOUT_S, memory_mb=CODE_MEMORY_MB, grading=grading, finish_reason=fr, force_think=force_think)
            for t, fr in zip(completions, finish_reasons)]  # fmt: skip


SCORERS = {"math": score_math, "choice": score_choice, "code": score_code}


def score(
    scorer: str,
    completions: list[str],
    answer: str | None,
    tests: str | None = None,
    *,
    finish_reasons: list[str | None] | None = None,
    grading: str = "strict",
    force_think: bool = False,
    rel_tol: float | None = None,
) -> list[Verdict]:
    """A Verdict for each of one problem's samples.

    `finish_reasons` (the backend's, per sample) and `force_think` (the prompt opened `<think>`) let
    the strict policy refuse credit to unfinished samples; `rel_tol` is the science domain's
    numeric tolerance (None: exact, as for math).
    """
    check_grading(grading)
    return SCORERS[answer_verifier(scorer, answer)](completions, answer, tests, _finish(finish_reasons, len(completions)), grading, force_think, rel_tol)
