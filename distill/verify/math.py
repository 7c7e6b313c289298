"""Math answers checked with math-verify (HF): the reference and the response's final answer are
parsed to sympy and compared symbolically. We choose *where* the answer is read (the grading policy,
see `distill.verify`) and pre-process references math-verify misreads; the parsing and the
comparison are math-verify's.

Reference rules (`parse_reference`):
- a plain number is a number first: `1e-5` is 0.00001, not the expression E-5;
- a percentage matches the number as written or its value: reference `17.5\\%` accepts 17.5,
  `17.5\\%` and 0.175 (a percent sign in the response: see the prediction rules);
- a bare comma list with repeated items keeps its multiplicity: `-2,-2` (a double root) needs both
  roots, while math-verify would read the set {-2} and accept `-2`;
- notations math-verify misreads (`E_{1}`, e-notation, ordinals, unicode units, markdown bold) are
  rewritten first, in the reference and the response alike (`distill.verify.math_text`).

Prediction rules:
- a percentage in the response (`17.5\\%`) also reads as the bare number it writes, so a bare
  reference `17.5` accepts it (math-verify alone reads it as 0.175 only);
- a tuple `(-2, -2)` answers a bare list reference `-2,-2` item by item.

Numbers (both sides a number, at least one written as a decimal) are compared by us, not by
math-verify's 6-decimal rounding (which makes any two numbers below 5e-7 equal: `1e-8` = `10^{-9}`):
- math: |p - g| <= 1e-6 * min(1, |g|): six decimals for |g| >= 1, six significant digits below
  (`0.333333` = 1/3, `3.39e-6` != `2.7778e-6`), never tighter than a double's precision
  (1e-12 * |g|: `6.02 \\times 10^{23}` = `6.02e23`); two exact numbers (`\\frac{1}{3}`, `\\sqrt{2}`) are
  math-verify's symbolic comparison;
- science: the benchmark's `rel_tol` (measurements), |p - g| <= rel_tol * |g|, exact numbers included.

math-verify's timeouts use `signal.alarm`, which only works in a process's main thread: call these
functions in the main thread of a worker process (`verify_math_many` does), never from a thread.
"""

from __future__ import annotations

import logging
import re
from itertools import product

import sympy
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify.errors import TimeoutException
from math_verify.utils import timeout

from distill.stage import worker_pool
from distill.verify import CORRECT, INCORRECT, UNFINISHED, UNVERIFIABLE, Verdict, answer_text, check_grading, is_unfinished
from distill.verify.math_text import answer_notation

log = logging.getLogger(__name__)

# math-verify logs the whole input on a timeout; a looping 30k-token trace would become one
# 100 kB log line per sample. Its own loggers are muted; we log one truncated line instead.
for _name in ("math_verify", "math_verify.parser", "math_verify.grader", "latex2sympy2_extended"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)

# A final answer sits at the end; parsing only the tail keeps pathological inputs (a 100k-char
# repetition loop) from costing seconds of regex work. 4000 chars is ~1000 tokens of response.
TAIL_CHARS = 4000
STATEMENT_CHARS = 400  # strict: the final statement is read from at most this tail of the last paragraph
MARKER_CHARS = 800  # ... or from an explicit final-answer marker within this tail of the response

# lenient: the last \boxed{} first, else any final-answer phrase, LaTeX or number (math-verify's defaults)
_LENIENT = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
# strict: the last \boxed{} (or an anchored phrase) ...
_STRICT_BOXED = [LatexExtractionConfig(boxed_match_priority=0, try_extract_without_anchor=False)]
# ... else only an anchored statement ("the final answer is X", "Answer: X"), never a stray number
_STRICT_STATEMENT = [
    LatexExtractionConfig(boxed_match_priority=-1, try_extract_without_anchor=False),
    ExprExtractionConfig(try_extract_without_anchor=False),
]
_GOLD_CONFIG = [LatexExtractionConfig(), ExprExtractionConfig()]

_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_PERCENT = re.compile(r"(.+?)\s*(?:\\%|%|\\text\{\s*\\?%\s*\})")
_THOUSANDS = re.compile(r"-?\d{1,3}(?:,(?:\\!)?\s*\d{3})+(?:\.\d+)?")
_FINAL_MARKER = re.compile(r"(?i)final\s+answer|the\s+answer\s+is|\banswer\s*:")
_PRED_PERCENT = re.compile(r"(.+?)\s*(?:\\%|%)\s*")
_TUPLE = re.compile(r"^(?:\\left)?\((.*?)(?:\\right)?\)$", re.S)
MATH_TOL = 1e-6  # see the module docstring: numbers in the math domain


def _short(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[: n // 2] + " ... " + text[-n // 2 :]


def _answer_window(text: str) -> str:
    """The last `\\boxed{...}` and what follows it, or the tail: bounded work on any input."""
    at = text.rfind("\\boxed")
    if at < 0:
        return text[-TAIL_CHARS:]
    return text[max(0, at - 200) : at + TAIL_CHARS]


def _last_paragraph(text: str) -> str:
    return text.strip().rsplit("\n\n", 1)[-1][-STATEMENT_CHARS:]


def _marked_statement(text: str) -> str | None:
    """From the last explicit final-answer marker in the response's tail to the end (at most
    STATEMENT_CHARS), or None: `**Final answer: 700°C**` followed by "I hope this helps."."""
    tail = text[-MARKER_CHARS:]
    found = list(_FINAL_MARKER.finditer(tail))
    return tail[found[-1].start():][:STATEMENT_CHARS] if found else None


def _parse(text: str, config, timeout_s: int) -> list:
    """math-verify's parse; a timeout raises TimeoutException instead of looking like "no answer"."""
    try:
        return parse(text, config, parsing_timeout=timeout_s, raise_on_error=True)
    except Exception:  # noqa: BLE001 - math-verify's own policy for unparseable text: nothing found
        return []


def _parse_gold(ref: str, timeout_s: int) -> list:
    gold = _parse(ref if "\\boxed" in ref else f"\\boxed{{{ref}}}", _GOLD_CONFIG, timeout_s)
    return gold or _parse(ref, _GOLD_CONFIG, timeout_s)


def parse_reference(reference: str, timeout_s: int = 5) -> list:
    """Parse a reference answer ("420", "\\frac{1}{2}", "$x=3$", "1e-5", "17.5\\%"): the module's rules."""
    raw = str(reference).strip()
    bare = raw.strip("$ ")  # "$17.5\%$" reads as "17.5\%"
    try:
        if _PLAIN_NUMBER.fullmatch(bare):  # "025" (AIME) is 25; "1e-5" is 0.00001
            return [sympy.Integer(int(bare)) if bare.lstrip("+-").isdigit() else sympy.Float(bare), raw]
        ref = answer_notation(raw)
        gold = _parse_gold(ref, timeout_s)
        if (m := _PERCENT.fullmatch(bare)) and gold:
            gold = gold[:1] + [g for g in _parse_gold(answer_notation(m.group(1)), timeout_s)[:1]] + gold[1:]
    except TimeoutException:
        gold = []
    if not gold:
        log.warning("reference answer not parseable, its samples are unverifiable: %r", _short(raw))
    return gold


def _top_level_items(latex: str) -> list[str]:
    """`-2, -2` -> ['-2', '-2']; commas inside brackets or braces do not split."""
    items, depth, cur = [], 0, ""
    for ch in latex:
        depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
        if ch == "," and depth == 0:
            items.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return items + [cur.strip()]


def repeated_items(reference: str) -> list[str] | None:
    """The items of a bare comma list with a repeated item (`-2,-2`), else None."""
    ref = str(reference).strip().strip("$")
    if _THOUSANDS.fullmatch(ref):
        return None
    items = _top_level_items(ref)
    return items if len(items) > 1 and len(set(items)) < len(items) else None


def _same(gold: list, pred: list, timeout_s: int, rel_tol: float | None) -> bool:
    """Any (gold, pred) reading equal: two numbers by `_numbers_equal`, anything else by math-verify's
    verify; raises TimeoutException when no pair matched and a comparison ran out of time."""
    timed_out = False
    for g, p in product(gold, pred):
        try:
            same = _numbers_equal(g, p, rel_tol, timeout_s)
            if same is None:
                same = verify(g, p, timeout_seconds=timeout_s, raise_on_error=True)
            if same:
                return True
        except TimeoutException:
            timed_out = True
        except Exception:  # noqa: BLE001 - an uncomparable pair is "not equal", as in math-verify
            pass
    if timed_out:
        raise TimeoutException("comparison timed out")
    return False


def _numbers_equal(g, p, rel_tol: float | None, timeout_s: int) -> bool | None:
    """The module's numeric rule for two numbers, None when it does not apply (not two numbers, or
    two exact numbers in math: math-verify's symbolic comparison)."""
    if not (isinstance(g, sympy.Basic) and isinstance(p, sympy.Basic) and g.is_number and p.is_number):
        return None
    if rel_tol is None and not (g.has(sympy.Float) or p.has(sympy.Float)):
        return None
    try:
        x, y = timeout(timeout_seconds=timeout_s)(lambda: (complex(g.doit().evalf()), complex(p.doit().evalf())))()
    except (TypeError, ValueError, OverflowError):
        return None
    if rel_tol is not None:
        return abs(y - x) <= rel_tol * abs(x)
    # 1 + 1e-9: 0.333333 vs 1/3 sits on the bound; 1e-12 * |g|: a double's own precision for large |g|
    return abs(y - x) <= max(MATH_TOL * min(1.0, abs(x)) * (1 + 1e-9), 1e-12 * abs(x))


def _percent_free(pred: list, timeout_s: int) -> list:
    """`17.5\\%` as predicted also reads as 17.5 (after math-verify's own readings)."""
    m = _PRED_PERCENT.fullmatch(str(pred[-1])) if pred else None
    return pred[:-1] + _parse(f"\\boxed{{{m.group(1)}}}", _STRICT_BOXED, timeout_s)[:1] + pred[-1:] if m else pred


def _same_multiset(items: list[str], extracted: str, timeout_s: int) -> bool:
    """Every reference item matched by its own predicted item (`-2,-2` needs two roots of -2)."""
    preds = _top_level_items(_TUPLE.sub(r"\1", extracted.strip()))
    if len(preds) != len(items):
        return False
    golds = [parse_reference(i, timeout_s) for i in items]
    left = [parse_reference(p, timeout_s) for p in preds]
    for g in golds:
        hit = next((j for j, p in enumerate(left) if p and g and _same(g, p, timeout_s, None)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


def _extract(completion: str, grading: str, timeout_s: int) -> list:
    if grading == "lenient":
        return _parse(answer_notation(_answer_window(completion)), _LENIENT, timeout_s)
    response = answer_text(completion)
    if "\\boxed" in response:
        found = _parse(answer_notation(_answer_window(response)), _STRICT_BOXED, timeout_s)
        if found:
            return found
    found = _parse(answer_notation(_last_paragraph(response)), _STRICT_STATEMENT, timeout_s)
    if not found and (statement := _marked_statement(response)) is not None:
        found = _parse(answer_notation(statement), _STRICT_STATEMENT, timeout_s)
    return found


def _shown(pred: list, timeout_s: int) -> str:
    """The compared value as text: sympy's form of the parsed answer (bounded), else the matched string."""
    try:
        return timeout(timeout_seconds=timeout_s)(sympy.sstr)(pred[0], full_prec=False)
    except (Exception, TimeoutException):  # noqa: BLE001 - printing a pathological expression
        return str(pred[-1])


def verify_math(
    completion: str,
    reference: str | None,
    *,
    timeout_s: int = 5,
    gold: list | None = None,
    grading: str = "strict",
    finish_reason: str | None = None,
    force_think: bool = False,
    rel_tol: float | None = None,
) -> Verdict:
    """Verdict for a completion (R1 `<think>...</think>answer` or a plain response) against `reference`.

    `gold` lets a caller pass `parse_reference(reference)` once for the many samples of one problem;
    `finish_reason` and `force_think` tell the strict policy whether the sample finished.
    """
    check_grading(grading)
    if reference is None or not str(reference).strip():
        return Verdict(UNVERIFIABLE, None, "no_reference")
    if gold is None:
        gold = parse_reference(reference, timeout_s)
    if not gold:
        return Verdict(UNVERIFIABLE, None, "reference_unparseable")
    if grading == "strict" and is_unfinished(completion, finish_reason, force_think):
        return UNFINISHED
    try:
        pred = _extract(completion, grading, timeout_s)
    except TimeoutException:
        return Verdict(INCORRECT, None, "timeout")
    if not pred:
        return Verdict(INCORRECT, None, "no_answer")
    extracted = _shown(pred, timeout_s)
    pred = _percent_free(pred, timeout_s)
    try:
        items = repeated_items(reference)
        ok = _same_multiset(items, str(pred[-1]), timeout_s) if items else _same(gold, pred, timeout_s, rel_tol)
    except TimeoutException:
        return Verdict(INCORRECT, extracted, "timeout")
    return Verdict(CORRECT, extracted, None) if ok else Verdict(INCORRECT, extracted, "wrong_answer")


def _verify_pairs(pairs: list[tuple[str, str | None]], timeout_s: int, grading: str) -> list[Verdict]:
    return [verify_math(c, r, timeout_s=timeout_s, grading=grading) for c, r in pairs]


def verify_math_many(
    pairs: list[tuple[str, str | None]], *, workers: int = 1, timeout_s: int = 5, chunk: int = 64, grading: str = "strict"
) -> list[Verdict]:
    """Verdicts for (completion, reference) pairs, in order, computed in `workers` spawned processes
    (so math-verify's alarm-based timeouts work even when the caller runs threads)."""
    chunks = [pairs[i : i + chunk] for i in range(0, len(pairs), chunk)]
    with worker_pool(max(1, workers)) as pool:
        out: list[Verdict] = []
        for part in pool.map(_verify_pairs, chunks, [timeout_s] * len(chunks), [grading] * len(chunks)):
            out += part
    return out
