"""Verification routed by the row's domain: math -> math-verify, code -> the problem's tests in the sandbox
(stdin/stdout and function-call tests), science -> the choice verifier (math-verify when the reference is
not a letter; a math row whose reference is a letter goes to the choice verifier, as in eval: one rule,
`distill.verify.choice.answer_verifier`), general -> the LLM judge when one is configured, else readability checks only
(verdict `unverifiable`, reason `no_judge`).

Non-reasoning rows (imported replies, teacher with thinking off) are not verified: they are in the mix
for their style, and only the format and readability checks apply to them.
"""

from __future__ import annotations

import json

from distill.filter.config import VerifyConfig
from distill.verify import CORRECT, INCORRECT, UNVERIFIABLE, Verdict
from distill.verify.choice import answer_verifier, verify_choice
from distill.verify.math import parse_reference, verify_math

NEEDS_JUDGE = "needs_judge"
NO_JUDGE = "no_judge"  # why a general row's verdict is `unverifiable`: no judge, kept on readability checks alone
NONREASONING = "nonreasoning"

# Runs the candidate's function on JSON arguments from stdin and prints its JSON result. LeetCode-style
# answers define the function as a method of `Solution`.
_CALL = """

import json as _json, sys as _sys
_args = _json.loads(_sys.stdin.read())
_fn = getattr(Solution(), {fn!r}) if "Solution" in globals() and hasattr(Solution, {fn!r}) else globals()[{fn!r}]
print(_json.dumps(_fn(*_args) if isinstance(_args, list) else _fn(_args)))
"""


def _json_or_text(text):
    try:
        return json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return text


def verify_function_calls(completion: str, cases: list[dict], *, timeout_s: float, memory_mb: int) -> Verdict:
    """Function-call tests ({fn_name, input: JSON argument list, output: JSON result}): the extracted
    program's function is called on each input in the sandbox; a result equal to the output, or to its
    only element (the TACO / PrimeIntellect layout wraps results in a list), passes."""
    from distill.verify.code_sandbox import extract_program, run_program

    program = extract_program(completion)
    if program is None:
        return Verdict(INCORRECT, None, "no_answer")
    for case in cases:
        res = run_program(program + _CALL.format(fn=case["fn_name"]), json.dumps(_json_or_text(case["input"])), timeout_s=timeout_s, memory_mb=memory_mb)
        if res.status == "setup_failed":
            raise RuntimeError(f"code sandbox could not start: {res.stderr.strip()[-300:]}")
        if res.status != "ok":
            return Verdict(INCORRECT, program, {"error": "runtime_error", "timeout": "timeout", "memory": "memory_limit"}.get(res.status, res.status))
        got, want = _json_or_text(res.stdout.strip()), _json_or_text(case["output"])
        if got != want and not (isinstance(want, list) and len(want) == 1 and got == want[0]):
            return Verdict(INCORRECT, program, "wrong_answer")
    return Verdict(CORRECT, program, None)


def _code(completion: str, tests: str, cfg: VerifyConfig) -> Verdict:
    from distill.verify.code_sandbox import verify_code

    try:
        cases = json.loads(tests)
    except ValueError:
        return Verdict(UNVERIFIABLE, None, "bad_tests")
    calls = [c for c in cases if isinstance(c, dict) and c.get("fn_name")] if isinstance(cases, list) else []
    if calls:
        return verify_function_calls(completion, calls, timeout_s=cfg.code_timeout_s, memory_mb=cfg.code_memory_mb)
    return verify_code(completion, tests, timeout_s=cfg.code_timeout_s, memory_mb=cfg.code_memory_mb)


def _meta(row: dict, key: str):
    meta = row.get("metadata")
    return json.loads(meta).get(key) if meta and f'"{key}"' in meta else None


def is_nonreasoning(row: dict) -> str | None:
    """'imported' or 'teacher' for a non-reasoning row (from the prompts stage's metadata), else None."""
    return _meta(row, "nonreasoning")


class Verifier:
    """Verdicts for the samples of one shard; caches the parsed reference of each problem."""

    def __init__(self, cfg: VerifyConfig):
        self.cfg = cfg
        self._gold: dict[str, list] = {}

    def route(self, row: dict) -> str:
        return self.cfg.routes.get(row["domain"], "none")

    def __call__(self, row: dict) -> Verdict:
        if is_nonreasoning(row):
            return Verdict(UNVERIFIABLE, None, NONREASONING)
        route, ref, text = self.route(row), row.get("answer"), row["completion"]
        if route == "code":
            return _code(text, row["tests"], self.cfg) if row.get("tests") else Verdict(UNVERIFIABLE, None, "no_tests")
        if route in ("math", "choice") and ref is not None and answer_verifier(route, ref) == "choice":
            return verify_choice(text, ref)  # a choice letter under domain math too, as eval scores it
        if route in ("math", "choice") and ref is not None:
            return self._math(row["id"], text, json.loads(ref) if _meta(row, "multi_answer") else [ref])
        if route == "judge":
            if self.cfg.judge is not None:
                return Verdict(UNVERIFIABLE, None, NEEDS_JUDGE)  # judged in one batch per shard
            return Verdict(UNVERIFIABLE, None, NO_JUDGE)
        return Verdict(UNVERIFIABLE, None, "no_verifier" if ref is None else "no_verifier_for_domain")

    def _math(self, pid: str, text: str, refs: list[str]) -> Verdict:
        """math-verify against each accepted reference (several for a source with `multi_answer`)."""
        best = None
        for i, r in enumerate(refs):
            key = f"{pid}/{i}"
            if key not in self._gold:
                self._gold[key] = parse_reference(r, self.cfg.math_timeout_s)
            v = verify_math(text, r, timeout_s=self.cfg.math_timeout_s, gold=self._gold[key])
            if v.correct:
                return v
            best = best or v
        return best

