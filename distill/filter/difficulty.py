"""Difficulty selection by the student's own pass rate: a problem the undistilled student already solves
teaches it little. The student samples k answers per problem through the same backends the eval stage
uses, and the filter's verifiers judge them."""

from __future__ import annotations

from distill.filter.config import StudentPassRate, VerifyConfig
from distill.filter.routing import Verifier
from distill.generate.backends import Request, Sampling, make_backend
from distill.generate.prompting import THINK_PREFIX, messages_for

_students: dict[str, object] = {}  # one student backend per worker process, built on first use


def student_pass_rates(problems: list[dict], cfg: StudentPassRate, verify: VerifyConfig) -> dict[str, float]:
    """Problem id -> share of the student's k samples that verify correct (problems of `cfg.domains` only)."""
    todo = [p for p in problems if p["domain"] in cfg.domains]
    if not todo:
        return {}
    key = cfg.model.model_dump_json()
    if key not in _students:
        _students[key] = make_backend(cfg.model)
    requests = [Request(p["id"], messages_for(p["prompt"], p["domain"], cfg.template), THINK_PREFIX) for p in todo]
    sampling = Sampling(temperature=cfg.temperature, top_p=0.95, max_tokens=cfg.max_tokens, n=cfg.k, seed=0)
    verifier = Verifier(verify)
    rates = {}
    for p, samples in zip(todo, _students[key].generate(requests, sampling)):
        rates[p["id"]] = sum(verifier({**p, "completion": c.text}).correct for c in samples) / len(samples)
    return rates
