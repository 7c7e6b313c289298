"""Run the grading regression cases (tests/fixtures/grading_cases.jsonl) through whichever `distill`
grader is importable and print pass counts per rule.

Compare two graders on the same cases by pointing PYTHONPATH at each checkout:
    PYTHONPATH=/path/to/old python scripts/grading_regression.py
    PYTHONPATH=.            python scripts/grading_regression.py --failures
A grader from before grading policies (score() -> (extracted, correct) pairs, no policy, no
reasons) is run with its only behaviour; a case that expects a reason it cannot give fails.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

CASES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "grading_cases.jsonl"


def judge(case: dict) -> tuple[bool, str | None, str | None]:
    """(correct, extracted, reason) of one case by the importable grader."""
    from distill.eval.scoring import score

    scorer = case.get("scorer", "math")
    try:
        v = score(scorer, [case["completion"]], case["reference"], None, finish_reasons=[case.get("finish_reason")],
                  grading=case["policy"], force_think=case.get("force_think", False), rel_tol=case.get("rel_tol"))[0]
        return v.correct, v.extracted, v.reason
    except TypeError:  # the grader before policies: score(scorer, completions, answer, tests) -> [(extracted, correct)]
        extracted, correct = score(scorer, [case["completion"]], case["reference"], None)[0]
        return correct, extracted, None


def passes(case: dict, got: tuple[bool, str | None, str | None]) -> bool:
    correct, extracted, reason = got
    return (correct == case["expected"] and ("reason" not in case or reason == case["reason"])
            and ("extracted" not in case or extracted == case["extracted"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=CASES)
    ap.add_argument("--failures", action="store_true", help="list the failing cases")
    args = ap.parse_args()
    import distill

    cases = [json.loads(line) for line in args.cases.open(encoding="utf-8") if line.strip()]
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failed = []
    for case in cases:
        got = judge(case)
        ok = passes(case, got)
        totals[case["rule"]][0] += ok
        totals[case["rule"]][1] += 1
        if not ok:
            failed.append((case, got))
    print(f"grader: {Path(distill.__file__).parent}")
    print(f"{'rule':<10} {'pass':>5} {'total':>5}")
    for rule, (ok, n) in totals.items():
        print(f"{rule:<10} {ok:>5} {n:>5}")
    print(f"{'all':<10} {sum(t[0] for t in totals.values()):>5} {len(cases):>5}")
    if args.failures:
        for case, (correct, extracted, reason) in failed:
            print(f"FAIL {case['id']}: expected {case['expected']}{' / ' + case['reason'] if 'reason' in case else ''}, "
                  f"got {correct} (extracted={extracted!r}, reason={reason})  ref={case['reference']!r}  completion={case['completion'][-60:]!r}")


if __name__ == "__main__":
    main()
