"""The optional LLM judge: request shape, verdict parsing, and its use by the filter for general problems."""

import pytest

from distill.filter.config import FilterConfig
from distill.filter.stage import curate_rows
from distill.generate.backends import Completion
from distill.verify.judge import judge_many, parse_judgement
from tests.filter_fixtures import trace_row


class ReferenceMatchingJudge:
    """A backend that answers like a judge would: CORRECT when the graded answer contains the
    reference. It exercises the request/reply plumbing without a model."""

    name, version = "reference-matcher", "0"

    def __init__(self):
        self.requests = []

    def generate(self, requests, sampling):
        self.requests += requests
        out = []
        for r in requests:
            text = r.messages[-1]["content"]
            ref = text.split("Reference answer:\n")[1].split("\n")[0]
            graded = text.split("Answer to grade:\n")[1].split("\n\nIs the answer")[0]
            out.append([Completion("<think>\ncompare\n</think>\n" + ("CORRECT" if ref in graded else "INCORRECT"), "stop")])
        return out

    def close(self):
        pass


def test_parse_judgement():
    assert parse_judgement("It matches.\nCORRECT").verdict == "correct"
    assert parse_judgement("<think>\nCORRECT? no\n</think>\nINCORRECT").reason == "judge_incorrect"
    assert parse_judgement("I cannot tell.").verdict == "unverifiable"


def test_judge_sees_response_not_reasoning():
    judge = ReferenceMatchingJudge()
    verdicts = judge_many(
        [("Capital of France?", "<think>\nmaybe Lyon\n</think>\nParis", "Paris"), ("Capital of Spain?", "<think>\nMadrid\n</think>\nBarcelona", "Madrid")],
        judge,
    )
    assert [v.verdict for v in verdicts] == ["correct", "incorrect"]
    assert "Lyon" not in judge.requests[0].messages[0]["content"]


def test_filter_uses_the_judge_for_general_problems(monkeypatch):
    judge = ReferenceMatchingJudge()
    monkeypatch.setattr("distill.verify.judge.make_judge", lambda cfg: judge)
    problem = {"id": "g1", "source": "t", "domain": "general", "prompt": "Capital of France?", "answer": "Paris", "tests": None, "metadata": None}
    rows = [trace_row(problem, 0, "<think>\nhm\n</think>\nParis"), trace_row(problem, 1, "<think>\nhm\n</think>\nLyon")]
    kept, rejected, counts = curate_rows(rows, FilterConfig.model_validate({"verify": {"judge": {"backend": "toy"}}}))
    assert [r["sample_idx"] for r in kept] == [0] and counts == {"judge_incorrect": 1}
    assert len(judge.requests) == 2
    # Without a judge a general row cannot be verified: it is kept on readability checks alone (issue 11).
    kept, rejected, counts = curate_rows(rows, FilterConfig())
    assert [(r["sample_idx"], r["verdict"]) for r in kept] == [(0, "unverifiable"), (1, "unverifiable")]
    assert not rejected and not counts


@pytest.mark.slow
def test_judge_through_a_real_transformers_backend(tmp_path):
    """make_judge builds a real backend from config; a random-weight model's reply carries no
    CORRECT/INCORRECT, which must come back as "unverifiable", never as a guess."""
    from distill.generate.config import BackendConfig
    from distill.toy.students import build_student
    from distill.verify.judge import make_judge

    model = build_student("qwen2", tmp_path / "judge")
    judge = make_judge(BackendConfig(backend="transformers", model=str(model)))
    verdicts = judge_many([("What is 2 + 2?", "<think>\nadd\n</think>\n4", "4")], judge, max_tokens=8)
    assert len(verdicts) == 1 and verdicts[0].verdict in ("correct", "incorrect", "unverifiable")
    assert verdicts[0].verdict != "unverifiable" or verdicts[0].reason in ("judge_no_verdict", "judge_error")
