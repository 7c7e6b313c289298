"""Verifiers: pure functions `(completion or response, reference, ...) -> Verdict` with a reason.

"unverifiable" means "cannot verify" (no reference to compare with), never "wrong"; a response with
no extractable answer is "incorrect" with the reason `no_answer`, one whose check ran out of time is
"incorrect" with the reason `timeout`.

Grading policy (`grading=`):
- "strict" (default): a sample that did not finish (cut at the token limit, or a `<think>` that was
  opened and never closed) is never credited (reason `unfinished`); the answer is read only from
  the response after `</think>`: its last `\\boxed{}`, else a clear final statement ("the answer
  is X", "Answer: X") in its last paragraph.
- "lenient": what lighteval / Qwen2.5-Math-style graders do: the last `\\boxed{}` anywhere in the
  completion (the reasoning included, finished or not), else the last number or expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.think import THINK_CLOSE, THINK_OPEN, partition_think

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"
GRADINGS = ("strict", "lenient")


@dataclass(frozen=True)
class Verdict:
    verdict: str  # correct | incorrect | unverifiable
    extracted: str | None = None  # the answer that was compared (parsed and normalised), None if none was
    reason: str | None = None  # why: "wrong_answer", "no_answer", "unfinished", "timeout", ...

    @property
    def correct(self) -> bool:
        return self.verdict == CORRECT


def answer_text(completion: str) -> str:
    """The part of a completion that holds the final answer: after `</think>` when there is one."""
    _, response = partition_think(completion)
    return completion if response is None else response


def is_unfinished(completion: str, finish_reason: str | None = None, force_think: bool = False) -> bool:
    """Cut at the token limit, or reasoning opened (by the prompt's forced `<think>` or the model) and never closed."""
    if finish_reason == "length":
        return True
    opened = force_think or completion.lstrip().startswith(THINK_OPEN)
    return opened and THINK_CLOSE not in completion


def check_grading(grading: str) -> None:
    if grading not in GRADINGS:
        raise ValueError(f"grading must be one of {GRADINGS}, not {grading!r}")


UNFINISHED = Verdict(INCORRECT, None, "unfinished")
