"""pass@k, cons@k, bootstrap CIs and termination metrics against values computed by hand."""

import math
import random

import numpy as np
import pytest

from distill.eval.metrics import bootstrap_ci, ends_in_loop, k_values, majority_vote, paired_bootstrap, pass_at_k
from distill.eval.scores import summarize


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 1, 1, 1 / 4),  # pass@1 is the share correct
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (4, 2, 2, 1 - 1 / 6),  # 1 - C(2,2)/C(4,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (5, 0, 3, 0.0),
        (5, 3, 3, 1.0),  # only 2 wrong samples: any 3 include a correct one
        (64, 1, 64, 1.0),
    ],
)
def test_pass_at_k_hand_computed(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_the_binomial_formula_and_rejects_bad_input():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 64)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-9)
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_k_values_are_powers_of_two_then_k():
    assert k_values(1) == [1]
    assert k_values(4) == [1, 2, 4]
    assert k_values(64) == [1, 2, 4, 8, 16, 32, 64]
    assert k_values(6) == [1, 2, 4, 6]


def test_majority_vote():
    assert majority_vote(["2", "3", "3", None], [False, True, True, False]) is True
    assert majority_vote(["2", "3", "3", None], [True, False, False, False]) is False
    assert majority_vote(["2", "3"], [False, True]) is False  # a tie goes to the first answer seen
    assert majority_vote(["3", "2"], [True, False]) is True
    assert majority_vote([None, None], [False, False]) is False
    assert majority_vote(["1 / 2", "1/2", "3"], [True, True, False]) is True  # whitespace does not split votes
    assert majority_vote([None, None, "7"], [False, False, True]) is True  # unanswered samples do not vote


def test_bootstrap_two_and_three_problems_by_enumeration():
    # Two problems with differences 0 and 1: resampled means are 0 (1/4), 0.5 (1/2), 1 (1/4).
    r = paired_bootstrap([1.0, 1.0], [1.0, 0.0], n_resamples=20_000, seed=1)
    assert r["diff"] == 0.5 and (r["ci_low"], r["ci_high"]) == (0.0, 1.0)
    assert r["p_not_better"] == pytest.approx(0.25, abs=0.015)
    # Three problems [0, 0, 1]: P(mean=1) = 1/27 < 2.5%, P(mean=0) = 8/27 > 2.5%, so the CI is [0, 1]
    # although 1 is rare, and P(mean <= 0) = 8/27.
    lo, hi = bootstrap_ci([0, 0, 1], n_resamples=20_000, seed=2)
    assert (lo, hi) == (0.0, 1.0)
    r = paired_bootstrap([0, 0, 1], [0, 0, 0], n_resamples=20_000, seed=2)
    assert r["p_not_better"] == pytest.approx(8 / 27, abs=0.015)


def test_bootstrap_constant_difference_and_normal_width():
    r = paired_bootstrap([0.5, 0.75, 1.0], [0.25, 0.5, 0.75])
    assert r["diff"] == pytest.approx(0.25) and r["ci_low"] == pytest.approx(0.25) and r["ci_high"] == pytest.approx(0.25)
    d = np.random.default_rng(0).normal(0.1, 0.3, size=400)
    lo, hi = bootstrap_ci(d, seed=3)
    se = d.std() / np.sqrt(d.size)  # the bootstrap SE of a mean is the plug-in SE
    assert (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.08)
    assert lo < d.mean() < hi


def test_pairing_narrows_the_interval_when_problems_differ_in_difficulty():
    rng = np.random.default_rng(4)
    difficulty = rng.uniform(0, 1, size=200)
    a = np.clip(difficulty + 0.05 + rng.normal(0, 0.05, 200), 0, 1)
    b = np.clip(difficulty + rng.normal(0, 0.05, 200), 0, 1)
    paired = paired_bootstrap(a, b, seed=5)
    lo_a, hi_a = bootstrap_ci(a, seed=5)
    assert paired["ci_high"] - paired["ci_low"] < (hi_a - lo_a) / 3
    assert paired["ci_low"] > 0  # a real 0.05 gain is detected
    with pytest.raises(ValueError):
        paired_bootstrap([1, 0], [1])


def test_loop_detection():
    assert ends_in_loop("<think>\nWe need 47 + 38.\n" + "Let me check the tens again.\n" * 40)
    assert ends_in_loop("x" + "ab" * 150)
    assert not ends_in_loop("<think>\nOnes: 7 + 8 = 15.\n</think>\n47 + 38 = \\boxed{85}" + "}" * 5)
    assert not ends_in_loop("Let me check.\n" * 3)  # too short to call a loop
    text = "".join(f"Step {i}: add the column {i % 7}.\n" for i in range(200))
    assert not ends_in_loop(text)  # long but each line differs


def _rows(pid, correct, extracted, finish=None, tokens=None):
    return [
        {"problem_id": pid, "sample_idx": j, "correct": c, "extracted": e, "completion": "<think>\nok\n</think>\n\\boxed{1}",
         "finish_reason": (finish or ["stop"] * len(correct))[j], "completion_tokens": (tokens or [10] * len(correct))[j]}
        for j, (c, e) in enumerate(zip(correct, extracted))
    ]


def test_summarize_hand_computed():
    rows = _rows("p1", [True, False, False, False], ["5", "6", "6", "7"], tokens=[10, 20, 30, 40]) + _rows(
        "p2", [True, True, False, True], ["3", "3", "4", None], finish=["stop", "stop", "stop", "length"], tokens=[10, 10, 10, 100]
    )
    random.Random(0).shuffle(rows)  # order of rows must not matter
    s = summarize(rows, 4, resamples=2000)
    assert s["n_problems"] == 2 and s["n_samples"] == 8
    assert s["pass@1"] == pytest.approx((0.25 + 0.75) / 2)
    assert s["cons@k"] == pytest.approx(0.5)  # p1 votes "6" (wrong), p2 votes "3" (right)
    assert s["pass@k"]["2"] == pytest.approx((0.5 + 1.0) / 2)
    assert s["pass@k"]["4"] == 1.0
    t = s["termination"]
    assert t["unfinished"] == pytest.approx(1 / 8) and t["no_answer"] == pytest.approx(1 / 8)
    assert t["mean_tokens"] == pytest.approx(230 / 8)
    assert t["mean_tokens_to_answer"] == pytest.approx(130 / 7)
    assert s["pass@1_ci95"] == [0.25, 0.75]


def test_summarize_refuses_problems_without_k_samples():
    from distill.errors import DistillError

    with pytest.raises(DistillError, match="k=4"):
        summarize(_rows("p1", [True, False, False], ["1", "2", "2"]), 4)
