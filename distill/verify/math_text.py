"""Rewrites of a response's answer text before math-verify reads it, for notations it misreads.

Each rewrite is narrow and runs on both the reference and the prediction, so the two are read alike:
- `E_1`, `E_{k}`: a subscripted E is a name, not Euler's number; it becomes `\\mathsf{E}_1`, which
  latex2sympy reads as a symbol (`\\mathrm{E}` would be taken for a unit and dropped with all that
  follows it: `\\frac{1}{3}\\mathrm{E}_{1}+\\frac{2}{3}\\mathrm{E}_{2}` read as 1/3);
- e-notation `1e-6`, `2.5E+3` is a number, `1\\times10^{-6}`, not `1 * e - 6`;
- an ordinal suffix after a digit (`12^{\\mathrm{th}}`, `12^{th}`, `3rd`) is dropped: `12^{}` otherwise;
- unit text with a non-ASCII symbol right after a number (`3.5 Å`, `2 m⁻²`, `700°C`, `5 µm`) is dropped
  (math-verify drops ASCII units in `\\text{}` itself, but a unicode unit breaks the parse);
- markdown bold `**` around a statement (`**Final answer: 700**`) is dropped.
"""

from __future__ import annotations

import re

_E_SUBSCRIPT = re.compile(r"(?<![\\A-Za-z])([Ee])_")
_E_NOTATION = re.compile(r"(?<![\w.\\])(\d+(?:\.\d*)?|\.\d+)[eE]([+-]?\d+)(?![\w.])")
_ORDINAL = re.compile(
    r"(?<=\d)\s*(?:\^\s*\{\s*(?:\\(?:mathrm|text|textrm|mathit)\s*\{\s*)?(?:st|nd|rd|th)\s*\}?\s*\}"
    r"|\^\s*\\(?:mathrm|text|textrm)\s*\{\s*(?:st|nd|rd|th)\s*\}|\^\s*(?:st|nd|rd|th)\b|(?:st|nd|rd|th)\b)"
)
_UNICODE_UNIT_CHARS = "°ÅΩµμ℃℉·⁻⁺⁰¹²³⁴⁵⁶⁷⁸⁹"
_UNICODE_UNIT = re.compile(
    rf"(?<=\d)[ \t~]*(?:\\,)?[ \t]*(?:[A-Za-z]*[{_UNICODE_UNIT_CHARS}][A-Za-z/{_UNICODE_UNIT_CHARS}]*[ \t]*)+"
    r"(?=$|[\s}$*.,;)\]])"
)
_BOLD = re.compile(r"\*\*")


def e_symbols(latex: str) -> str:
    """`E_1` -> `\\mathsf{E}_1` (reference and prediction alike)."""
    return _E_SUBSCRIPT.sub(r"\\mathsf{\1}_", latex)


def answer_notation(text: str) -> str:
    """A response's answer text with the notations above rewritten for math-verify."""
    text = _E_NOTATION.sub(r"\1\\times10^{\2}", e_symbols(text))
    text = _UNICODE_UNIT.sub("", _ORDINAL.sub("", text))
    return _BOLD.sub("", text)
