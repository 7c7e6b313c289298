"""Per-subset pass@1 with 95% CIs, from the metadata columns a benchmark spec keeps (`fields.metadata`).

Every metadata column that splits the problems into 2 to MAX_VALUES groups is a subset: MATH-500's
`level` and `subject`, LiveCodeBench's `difficulty` and `platform`, GPQA's `High-level domain`. Two
columns are read as what they stand for: a date (`contest_date`) as its month, `2024-08`, and a URL
holding a year (AIME's problem pages) as that year.
"""

from __future__ import annotations

import json
import re

import numpy as np

from distill.eval.metrics import wilson_ci
from distill.eval.scores import per_problem

MAX_VALUES = 30
_DATE = re.compile(r"^(\d{4}-\d{2})-\d{2}")
_URL_YEAR = re.compile(r"^https?://.*?(?<!\d)((?:19|20)\d{2})(?!\d)")


def subset_value(value) -> str | None:
    """The group a metadata value puts its problem in: a date's month, a URL's year, else the value."""
    if value is None or value == "":
        return None
    text = str(value)
    if m := _DATE.match(text):
        return m.group(1)
    if text.startswith(("http://", "https://")):
        m = _URL_YEAR.match(text)
        return m.group(1) if m else None
    return text


def subsets(problems: list[dict]) -> dict[str, dict[str, str]]:
    """{column: {problem id: group}} for each metadata column that splits these problems."""
    columns: dict[str, dict[str, str]] = {}
    for p in problems:
        for key, value in json.loads(p.get("metadata") or "{}").items():
            columns.setdefault(key, {})
            if (group := subset_value(value)) is not None:
                columns[key][p["id"]] = group
    return {key: groups for key, groups in columns.items()
            if len(groups) == len(problems) and 2 <= len(set(groups.values())) <= MAX_VALUES}


def breakdown(rows: list[dict], problems: list[dict]) -> dict:
    """{column: {group: {"n_problems", "pass@1", "pass@1_ci95"}}} of one benchmark's samples."""
    scores = per_problem(rows)
    out = {}
    for key, groups in subsets([p for p in problems if p["id"] in scores]).items():
        by_group: dict[str, list[float]] = {}
        for pid, group in groups.items():
            by_group.setdefault(group, []).append(scores[pid]["pass@1"])
        out[key] = {}
        for group in sorted(by_group, key=_natural):
            lo, hi = wilson_ci(float(np.mean(by_group[group])), len(by_group[group]))
            out[key][group] = {"n_problems": len(by_group[group]), "pass@1": float(np.mean(by_group[group])), "pass@1_ci95": [lo, hi]}
    return out


def _natural(text: str):
    """'Level 2' before 'Level 10'."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]
