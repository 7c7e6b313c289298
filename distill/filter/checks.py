"""Format and readability checks of one trace, after the DeepSeek-R1 recipe: each returns the reason
it rejects the trace, or None. They are cheap (bounded work per trace) because they run on every sample.
"""

from __future__ import annotations

import re
import zlib

from distill.think import THINK_CLOSE, THINK_OPEN


def think_format(completion: str) -> str | None:
    """Exactly one `<think>` at the start and one `</think>` after it."""
    opens, closes = completion.count(THINK_OPEN), completion.count(THINK_CLOSE)
    if opens == 0:
        return "no_think_open"
    if closes == 0:
        return "no_think_close"
    if opens > 1 or closes > 1:
        return "duplicate_think"
    if not completion.lstrip().startswith(THINK_OPEN) or completion.index(THINK_CLOSE) < completion.index(THINK_OPEN):
        return "no_think_open"
    return None


def truncated(finish_reason: str | None) -> str | None:
    """The backend stopped at max_tokens: the trace has no real ending."""
    return "truncated" if finish_reason == "length" else None


def repetition(text: str, *, window_chars: int = 2000, min_ratio: float = 0.12) -> str | None:
    """A runaway loop at the end of the trace: its last `window_chars` compress far better than prose.

    zlib keeps ~35-50% of English or LaTeX reasoning; a loop of one repeated line compresses to a
    few percent. Only the tail is checked because loops run until the end (the token limit).
    """
    if len(text) < window_chars:
        return None
    tail = text[-window_chars:].encode("utf-8")
    return "repetition" if len(zlib.compress(tail, 1)) / len(tail) < min_ratio else None


_SCRIPTS = {
    "cjk": re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]"),
    "cyrillic": re.compile(r"[\u0400-\u04ff]"),
    "arabic": re.compile(r"[\u0600-\u06ff]"),
    "latin": re.compile(r"[A-Za-z\u00c0-\u024f]"),
}


def script_counts(text: str) -> dict[str, int]:
    if text.isascii():  # fast path: most traces are plain ASCII
        return {"latin": len(_SCRIPTS["latin"].findall(text))}
    return {name: len(rx.findall(text)) for name, rx in _SCRIPTS.items()}


def main_script(text: str) -> str:
    counts = script_counts(text)
    return max(counts, key=counts.get) if any(counts.values()) else "latin"


def language_mixing(text: str, prompt_script: str, *, max_share: float = 0.1) -> str | None:
    """More than `max_share` of the letters are in a script other than the prompt's (R1's
    language-consistency concern: reasoning that drifts into Chinese on an English prompt)."""
    if prompt_script == "latin" and text.isascii():  # fast path for most traces: nothing foreign
        return None
    counts = script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return None
    foreign = total - counts.get(prompt_script, 0)
    return "language_mixing" if foreign / total > max_share else None


def long_paragraph(text: str, *, max_chars: int = 5000) -> str | None:
    """A paragraph (text between blank lines) longer than `max_chars`: a wall of text is unreadable."""
    return "long_paragraph" if any(len(p) > max_chars for p in text.split("\n\n")) else None


def code_in_reasoning(reasoning: str | None, domain: str) -> str | None:
    """A fenced code block inside the reasoning of a problem that is not a coding problem."""
    return "code_in_reasoning" if domain != "code" and reasoning and "```" in reasoning else None
