"""Verifiers: pure functions `(completion or response, reference, ...) -> Verdict` with a reason.

"unverifiable" means "cannot verify" (no reference to compare with), never "wrong"; a response with
no extractable answer is "incorrect" with the reason `no_answer`, one whose check ran out of time is
"incorrect" with the reason `timeout`.

Grading policy (`grading=`):
- "strict" (default): a sample that did not finish (cut at the token limit, or a thought that was
  opened and never closed) is never credited (reason `unfinished`); the answer is read only from
  the response after the thought: its last `\\boxed{}`, else a clear final statement ("the answer
  is X", "Answer: X") in its last paragraph, else the text from the last explicit final-answer
  marker ("final answer", "the answer is", "answer:") in the response's last 800 characters to the
  end, whatever follows it (`**Final answer: 700°C**` then "I hope this helps.";
  `### Final Answer` then the formula and a line of notation).

Thought markers: `<think>...</think>` (R1, Qwen3), `<|begin_of_thought|>...<|end_of_thought|>`
(SkyThought, Bespoke, OpenThoughts), `<thinking>...</thinking>` and `<reasoning>...</reasoning>` are
recognised; a completion that starts with an opening marker and lacks its closing one is unfinished.
- "lenient": what lighteval / Qwen2.5-Math-style graders do: the last `\\boxed{}` anywhere in the
  completion (the reasoning included, finished or not), else the last number or expression.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.think import THOUGHT_MARKERS, thought_end

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
    """The part of a completion that holds the final answer: after the thought when there is one."""
    end = thought_end(completion)
    return completion if end is None else completion[end:]


def is_unfinished(completion: str, finish_reason: str | None = None, force_think: bool = False) -> bool:
    """Cut at the token limit, or a thought opened (by the prompt's forced `<think>` or the model) and never closed."""
    if finish_reason == "length":
        return True
    start = completion.lstrip()
    if force_think and THOUGHT_MARKERS[0][1] not in completion:
        return True
    return any(start.startswith(open_) and close not in completion for open_, close in THOUGHT_MARKERS)


def check_grading(grading: str) -> None:
    if grading not in GRADINGS:
        raise ValueError(f"grading must be one of {GRADINGS}, not {grading!r}")


UNFINISHED = Verdict(INCORRECT, None, "unfinished")
