"""The grading regression cases (tests/fixtures/grading_cases.jsonl, sources in fixtures/SOURCES.md):
every case's verdict, and reason / extracted value where the case names one."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from grading_regression import CASES, judge, passes  # noqa: E402

ALL = [json.loads(line) for line in CASES.open(encoding="utf-8") if line.strip()]


def test_the_regression_set_covers_every_rule():
    rules = {c["rule"] for c in ALL}
    assert len(ALL) >= 60 and {"policy", "reason", "choice", "number", "percent", "roots", "symbol", "tolerance"} <= rules
    assert {c["policy"] for c in ALL} == {"strict", "lenient"} and all(c["source"] for c in ALL)


@pytest.mark.parametrize("case", ALL, ids=[c["id"] for c in ALL])
def test_grading_case(case):
    got = judge(case)
    assert passes(case, got), f"{case.get('note', '')} got correct={got[0]} extracted={got[1]!r} reason={got[2]}"
