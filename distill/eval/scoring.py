"""Per-sample scoring: (completion, reference) -> (extracted answer, correct), by the spec's scorer.

Math uses math-verify through `distill.verify.math` (the same verifier the filter uses, so a trace
the filter keeps and an eval sample are judged alike); multiple choice uses `distill.verify.choice`;
code runs the extracted program against the problem's tests in `distill.verify.code_sandbox`. math-verify's timeouts use
`signal.alarm`: call these from a process's main thread (the stage runner's workers are processes).
"""

from __future__ import annotations

from distill.verify.choice import verify_choice
from distill.verify.math import parse_reference, verify_math


def score_math(completions: list[str], answer: str | None, tests: str | None = None) -> list[tuple[str | None, bool]]:
    if answer is None:
        return [(None, False)] * len(completions)
    gold = parse_reference(answer)  # once per problem, not once per sample (k=64 on AIME)
    out = []
    for text in completions:
        v = verify_math(text, answer, gold=gold)
        out.append((v.extracted, v.correct))
    return out


def score_choice(completions: list[str], answer: str | None, tests: str | None = None) -> list[tuple[str | None, bool]]:
    return [(v.extracted, v.correct) for v in (verify_choice(t, answer) for t in completions)]


def score_code(completions: list[str], answer: str | None, tests: str | None = None) -> list[tuple[str | None, bool]]:
    from distill.verify.code_sandbox import verify_code

    return [(v.extracted, v.correct) for v in (verify_code(t, tests) for t in completions)]


SCORERS = {"math": score_math, "choice": score_choice, "code": score_code}


def score(scorer: str, completions: list[str], answer: str | None, tests: str | None = None) -> list[tuple[str | None, bool]]:
    """(extracted, correct) for each of one problem's samples."""
    return SCORERS[scorer](completions, answer, tests)
