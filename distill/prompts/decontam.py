"""Decontamination: drop training problems that share a word n-gram (8 by default) with an
evaluation benchmark problem.

Texts are compared as lower-cased alphanumeric words, so copies that differ in whitespace, casing
or punctuation still match. A benchmark problem shorter than n words is matched as a whole.
"""

from __future__ import annotations

import hashlib

from distill.generate.prompting import MATH_INSTRUCTION
from distill.prompts.dedup import words


def _h(gram: list[str]) -> bytes:
    return hashlib.blake2b(" ".join(gram).encode(), digest_size=8).digest()


def ngrams(text: str, n: int) -> set[bytes]:
    w = words(text)
    if len(w) < n:
        return {_h(w)} if w else set()
    return {_h(w[i : i + n]) for i in range(len(w) - n + 1)}


class Decontaminator:
    """An index of benchmark n-grams; `match(text)` names the first benchmark problem it overlaps."""

    def __init__(self, problems: list[tuple[str, str]], n: int = 8):
        """`problems`: (benchmark problem id like "math500/17", text)."""
        self.n = n
        self._index: dict[bytes, str] = {}
        self._short: dict[bytes, str] = {}  # whole-text keys of problems shorter than n words
        for pid, text in problems:
            text = text.replace(MATH_INSTRUCTION, "")  # some files ship the prompt with the R1 instruction
            w = words(text)
            if len(w) < n:
                self._short.setdefault(_h(w), pid)
            for g in ngrams(text, n):
                self._index.setdefault(g, pid)

    def __len__(self) -> int:
        return len(self._index)

    def match(self, text: str) -> str | None:
        found = self.evidence(text)
        return found[0] if found else None

    def evidence(self, text: str) -> tuple[str, str] | None:
        """(benchmark problem id, the shared n-gram as words) of the first overlap, None when there is none."""
        w = words(text)
        if self._short and _h(w) in self._short:
            return self._short[_h(w)], " ".join(w)
        for i in range(len(w) - self.n + 1):
            if (pid := self._index.get(_h(w[i : i + self.n]))) is not None:
                return pid, " ".join(w[i : i + self.n])
        return None
