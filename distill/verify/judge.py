"""An LLM judge for answers no rule can check (R1 used DeepSeek-V3 to compare a response with the
reference). Optional: the filter uses it only when `verify.judge` names a backend.

The judge sees the problem, the reference and the response (never the reasoning) and must end its
reply with CORRECT or INCORRECT; anything else is "unverifiable", not "incorrect".
"""

from __future__ import annotations

import re

from distill.generate.backends import Backend, Request, Sampling
from distill.verify import CORRECT, INCORRECT, UNVERIFIABLE, Verdict, answer_text

JUDGE_PROMPT = """You are grading an answer to a problem against a reference answer.

Problem:
{problem}

Reference answer:
{reference}

Answer to grade:
{response}

Is the answer to grade equivalent to the reference answer? Reply with one word on the last line: CORRECT or INCORRECT."""

_WORD = re.compile(r"\b(INCORRECT|CORRECT)\b")


def judge_request(i: int, problem: str, completion: str, reference: str | None) -> Request:
    text = JUDGE_PROMPT.format(problem=problem, reference=reference or "(none: judge the answer on its own merits)",
                               response=answer_text(completion).strip()[-4000:])
    return Request(id=f"judge-{i}", messages=[{"role": "user", "content": text}])


def parse_judgement(reply: str) -> Verdict:
    words = _WORD.findall(answer_text(reply))
    if not words:
        return Verdict(UNVERIFIABLE, None, "judge_no_verdict")
    return Verdict(CORRECT, None, None) if words[-1] == "CORRECT" else Verdict(INCORRECT, None, "judge_incorrect")


def judge_many(items: list[tuple[str, str, str | None]], backend: Backend, *, max_tokens: int = 1024) -> list[Verdict]:
    """Verdicts for (problem, completion, reference) triples, in one batched backend call.

    Greedy and short (1024 tokens by default): the judge compares answers, it does not solve.
    """
    if not items:
        return []
    requests = [judge_request(i, *item) for i, item in enumerate(items)]
    replies = backend.generate(requests, Sampling(temperature=0.0, top_p=1.0, max_tokens=max_tokens, n=1, seed=0))
    return [parse_judgement(r[0].text) if r and r[0].finish_reason != "error" else Verdict(UNVERIFIABLE, None, "judge_error") for r in replies]


def make_judge(backend_cfg) -> Backend:
    """The judge's engine from a `BackendConfig` (e.g. the teacher's): this process's engine, started on
    first use and kept for every shard (see distill/engines.py)."""
    from distill import engines

    return engines.engine(backend_cfg)
