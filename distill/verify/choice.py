"""Multiple-choice answers (GPQA-style, letters A-J): find the chosen letter and compare it.

Order of evidence, strongest first: the last `\\boxed{X}`, then the last "answer is (X)" /
"Answer: X" phrase. A letter merely mentioned in the text is never taken as the answer.
"""

from __future__ import annotations

import re

from distill.verify import CORRECT, INCORRECT, UNVERIFIABLE, Verdict, answer_text

LETTERS = "ABCDEFGHIJ"

_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-J])\)?\s*\}?\s*\}")
_PHRASE = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is)?\s*(?i:option\s*)?[:\s]*\**\s*\(?(?<![A-Za-z])([A-J])\)?\**(?![A-Za-z])"
)


def extract_choice(text: str) -> str | None:
    """The chosen letter, upper-case, or None."""
    tail = answer_text(text)[-4000:]
    for rx in (_BOXED, _PHRASE):
        found = rx.findall(tail)
        if found:
            return found[-1].upper()
    return None


def verify_choice(completion: str, reference: str | None) -> Verdict:
    ref = (reference or "").strip().strip("()").upper()
    if len(ref) != 1 or ref not in LETTERS:
        return Verdict(UNVERIFIABLE, None, "no_reference")
    got = extract_choice(completion)
    if got is None:
        return Verdict(INCORRECT, None, "no_answer")
    return Verdict(CORRECT, got, None) if got == ref else Verdict(INCORRECT, got, "wrong_answer")


def is_choice_reference(reference: str | None) -> bool:
    """A single letter A-J (optionally in parentheses): the problem is multiple choice."""
    ref = (reference or "").strip().strip("()")
    return len(ref) == 1 and ref.upper() in LETTERS
