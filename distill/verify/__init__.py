"""Verifiers: pure functions `(completion or response, reference, ...) -> Verdict` with a reason.

"unverifiable" means "cannot verify" (no reference to compare with), never "wrong"; a response with
no extractable answer, or one whose parse times out, is "incorrect" with the reason `no_answer`.
"""

from __future__ import annotations

from dataclasses import dataclass

CORRECT, INCORRECT, UNVERIFIABLE = "correct", "incorrect", "unverifiable"


@dataclass(frozen=True)
class Verdict:
    verdict: str  # correct | incorrect | unverifiable
    extracted: str | None = None  # the answer as found in the response
    reason: str | None = None  # why: "wrong_answer", "no_answer", "timeout", ...

    @property
    def correct(self) -> bool:
        return self.verdict == CORRECT


def answer_text(completion: str) -> str:
    """The part of a completion that holds the final answer: after `</think>` when there is one."""
    head, sep, tail = completion.rpartition("</think>")
    return tail if sep else completion
