"""Multiple-choice answers (GPQA-style, letters A-J; MATH/AMC `\\text{(C)}` references): find the
chosen letter and compare it.

Order of evidence, strongest first: the last `\\boxed{...}` whose content starts with a letter
(`\\boxed{C}`, `\\boxed{\\textbf{(E)}}`, `\\boxed{\\mathrm{E}}`, `\\boxed{(C) 5}`,
`\\boxed{\\text{(E) Hyperbola}}`), then the last "answer is (X)" / "Answer: X" / "**Answer: X**"
phrase. A letter merely mentioned in the text is never taken as the answer.
"""

from __future__ import annotations

import re

from distill.verify import CORRECT, INCORRECT, UNFINISHED, UNVERIFIABLE, Verdict, answer_text, check_grading, is_unfinished

LETTERS = "ABCDEFGHIJ"

# LaTeX text/font wrappers around a letter: \text{(E) Hyperbola} -> (E) Hyperbola
_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|textnormal|mathrm|mathbf|mathit|mathsf|mbox|operatorname)\s*\{([^{}]*)\}")
_LETTER_FIRST = re.compile(r"^(?:\(([A-J])\)|([A-J]))(?=$|[\s.:,;\\~])")
_PHRASE = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is)?\s*(?i:option\s*)?[:\s]*\**\s*\$?\s*\(?(?<![A-Za-z])([A-J])\)?\$?\**(?![A-Za-z])"
)


def _unwrap(latex: str) -> str:
    """`\\textbf{(E)}` -> `(E)`; `$...$`, `{}` and surrounding space dropped."""
    prev = None
    while prev != latex:
        prev, latex = latex, _WRAPPER.sub(r"\1", latex)
    return latex.replace("$", "").strip().strip("{}").strip()


def boxed_contents(text: str) -> list[str]:
    """The contents of every `\\boxed{...}` (nested braces balanced), in order."""
    return [text[a:b] for a, b in boxed_spans(text)]


def boxed_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the contents of every `\\boxed{...}`, in order; `end` is its closing brace (or the
    text's end when it never closes)."""
    out, at = [], 0
    while (at := text.find("\\boxed", at)) >= 0:
        i = at + len("\\boxed")
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text) or text[i] != "{":
            at = i
            continue
        depth, j = 0, i
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        out.append((i + 1, j))
        at = j
    return out


def _letter(content: str) -> str | None:
    m = _LETTER_FIRST.match(_unwrap(content))
    return (m.group(1) or m.group(2)) if m else None


def extract_choice(text: str) -> str | None:
    """The chosen letter, upper-case, or None (`text` is the part of the completion to read)."""
    tail = text[-4000:]
    for content in reversed(boxed_contents(tail)):
        if (letter := _letter(content)) is not None:
            return letter
    found = _PHRASE.findall(tail)
    return found[-1].upper() if found else None


def choice_letter(reference: str | None) -> str | None:
    """The letter of a multiple-choice reference (`B`, `(b)`, `\\text{(C)}`, `\\textbf{(E)}`), else None."""
    ref = _unwrap(reference or "")
    m = re.fullmatch(r"\(?([A-Ja-j])\)?", ref)
    return m.group(1).upper() if m else None


def verify_choice(completion: str, reference: str | None, *, grading: str = "strict",
                  finish_reason: str | None = None, force_think: bool = False) -> Verdict:
    check_grading(grading)
    ref = choice_letter(reference)
    if ref is None:
        return Verdict(UNVERIFIABLE, None, "no_reference")
    if grading == "strict" and is_unfinished(completion, finish_reason, force_think):
        return UNFINISHED
    got = extract_choice(answer_text(completion) if grading == "strict" else completion)
    if got is None:
        return Verdict(INCORRECT, None, "no_answer")
    return Verdict(CORRECT, got, None) if got == ref else Verdict(INCORRECT, got, "wrong_answer")


def is_choice_reference(reference: str | None) -> bool:
    """A letter A-J, bare, in parentheses or in `\\text{}`: the problem is multiple choice."""
    return choice_letter(reference) is not None


def answer_verifier(kind: str, reference: str | None) -> str:
    """`choice` or `math` for a `math` or `choice` problem, by its reference: a letter is multiple choice
    (a MATH/AMC `\\text{(C)}` under domain math too), anything else math-verify's. The one routing the
    filter's verifier and eval's scorer share; other kinds are returned unchanged."""
    if kind not in ("math", "choice"):
        return kind
    return "choice" if is_choice_reference(reference) else "math"
