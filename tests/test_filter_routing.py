"""Per-domain verification routing, non-reasoning rows in the SFT mix, the student pass-rate filter, and the
planner's arithmetic on a measured pilot."""

import json
import random

from distill.filter.config import FilterConfig
from distill.filter.difficulty import student_pass_rates
from distill.filter.stage import curate_rows, run as run_filter, totals
from distill.generate.prompting import NO_THINK_PREFIX
from distill.records import content_id, to_json
from distill.toy.tasks import make_chat_problems, make_code_problems, make_problems
from distill.toy.teacher import ToyTeacherConfig, write_trace
from tests.filter_fixtures import trace_row, write_traces_stage


def _problem(domain: str, prompt: str, answer=None, tests=None, **meta) -> dict:
    return {"id": content_id("t", prompt), "source": f"src-{domain}", "domain": domain, "prompt": prompt, "answer": answer, "tests": tests, "metadata": to_json(meta)}


FN = "```python\ndef add_one(xs):\n    return [x + 1 for x in xs]\n```"
STDIO = "```python\nprint(int(input()) * 2)\n```"


def test_routing_by_domain():
    rows = [
        trace_row(_problem("math", "What is 6 * 7?", "42"), 0, "<think>\n6*7=42\n</think>\n\\boxed{42}"),
        trace_row(_problem("math", "Compute 6 * 8.", "48"), 0, "<think>\n6*8=47\n</think>\n\\boxed{47}"),
        trace_row(_problem("math", "Roots of x^2-12x+35?", '["5", "7"]', multi_answer=True), 0, "<think>\nfactor\n</think>\n\\boxed{7}"),
        trace_row(_problem("code", "Double n.", None, json.dumps([{"input": "4", "output": "8"}])), 0, f"<think>\ndouble\n</think>\n{STDIO}"),
        trace_row(_problem("code", "Triple n.", None, json.dumps([{"input": "4", "output": "12"}])), 0, f"<think>\ntriple\n</think>\n{STDIO}"),
        trace_row(
            _problem("code", "Add one to each.", None, json.dumps([{"fn_name": "add_one", "input": "[[1, 2]]", "output": "[[2, 3]]", "type": "function_call"}])),
            0,
            f"<think>\nmap\n</think>\n{FN}",
        ),
        trace_row(_problem("science", "Which is a noble gas?\n\nA) neon\nB) iron", "A"), 0, "<think>\nneon\n</think>\nAnswer: A"),
        trace_row(_problem("science", "Which is a metal?\n\nA) neon\nB) iron", "B"), 0, "<think>\nneon\n</think>\nAnswer: A"),
        trace_row(_problem("science", "Speed of light in km/s, rounded?", "300000"), 0, "<think>\nc\n</think>\n\\boxed{300000}"),
        trace_row(_problem("general", "Write a haiku."), 0, "<think>\nsyllables\n</think>\nAn old silent pond"),
        trace_row(_problem("general", "Greet Ana.", nonreasoning="teacher"), 0, NO_THINK_PREFIX + "Hello, Ana!"),
    ]
    kept, rejected, _ = curate_rows(rows, FilterConfig())
    outcome = {r["prompt"][:12]: (r["verdict"], r["reject_reason"]) for r in kept + rejected}
    assert outcome == {
        "What is 6 * ": ("correct", None),
        "Compute 6 * ": ("incorrect", "wrong_answer"),
        "Roots of x^2": ("correct", None),
        "Double n.": ("correct", None),
        "Triple n.": ("incorrect", "wrong_answer"),
        "Add one to e": ("correct", None),
        "Which is a n": ("correct", None),
        "Which is a m": ("incorrect", "wrong_answer"),
        "Speed of lig": ("correct", None),
        "Write a haik": ("unverifiable", None),  # no judge: readability checks only, verdict unverifiable
        "Greet Ana.": ("unverifiable", None),
    }
    # a route can be changed: general rows without a verifier are then rejected as unverifiable
    kept, rejected, _ = curate_rows(rows[-2:-1], FilterConfig(verify={"routes": {"general": "none"}}))
    assert not kept and rejected[0]["reject_reason"] == "unverifiable"


def test_nonreasoning_rows_pass_the_sft_check_with_an_empty_think_block(tmp_path):
    from distill.sft.check import check_conversations
    from distill.toy.tokenizer import build_tokenizer

    rng, cfg = random.Random(0), ToyTeacherConfig(language_switch=0, repetition=0, truncation=0)
    rows = []
    for p in make_problems(20, seed=1):
        rows.append(trace_row(p, 0, write_trace(p["prompt"], rng, cfg, 256)[0]))
    for p in make_chat_problems(10, seed=1):
        p = {**p, "metadata": to_json({"nonreasoning": "teacher"})}
        rows.append(trace_row(p, 0, write_trace(p["prompt"], rng, cfg, 256, thinking=False)[0]))
    for p in make_code_problems(5, seed=1):  # thinking off on a task that usually reasons
        p = {**p, "metadata": to_json({"nonreasoning": "teacher"})}
        rows.append(trace_row(p, 0, write_trace(p["prompt"], rng, cfg, 256, thinking=False)[0]))
    write_traces_stage(tmp_path / "traces", rows, shards=1)
    stats = run_filter(FilterConfig(), tmp_path / "traces", tmp_path / "curated")
    assert stats["kinds"]["nonreasoning_teacher"] == 15 and stats["by_domain"]["general"]["rows_out"] == 10
    from distill.io import read_parquets
    from distill.stage import StageDir

    kept = read_parquets(StageDir(tmp_path / "curated").parts()).to_pylist()
    nonreasoning = [r["messages"] for r in kept if "nonreasoning" in r["metadata"]]
    assert all(m[-1]["content"].startswith("<think>\n\n</think>\n\n") for m in nonreasoning)
    tok = build_tokenizer(tmp_path / "tok", "qwen2")
    report = check_conversations(tok, [r["messages"] for r in kept], max_length=512)
    assert report["think_lost"] == report["mask_all_zero"] == report["eos_missing_from_labels"] == 0
    n = len(kept)
    assert report["mix"] == {"reasoning": round((n - 15) / n, 4), "nonreasoning": round(15 / n, 4)}


def test_student_pass_rate_filter_drops_what_the_student_solves():
    rng = random.Random(0)
    clean = ToyTeacherConfig(wrong_answer=0, self_correction=0, missing_think_close=0, repetition=0, language_switch=0, truncation=0)
    rows = [trace_row(p, 0, write_trace(p["prompt"], rng, clean, 256)[0]) for p in make_problems(12, seed=2)]
    strong = {"backend": "toy", "toy": clean.model_dump()}
    weak = {"backend": "toy", "toy": {**clean.model_dump(), "wrong_answer": 1.0}}
    kept, rejected, counts = curate_rows(rows, FilterConfig(student_pass_rate={"model": strong, "k": 4, "max_rate": 0.75}))
    assert not kept and counts == {"student_solves": 12}
    kept, rejected, counts = curate_rows(rows, FilterConfig(student_pass_rate={"model": weak, "k": 4, "max_rate": 0.75}))
    assert len(kept) == 12 and not rejected
    half = {"backend": "toy", "toy": {**clean.model_dump(), "wrong_answer": 0.5}}
    cfg = FilterConfig(student_pass_rate={"model": half, "k": 8, "max_rate": 0.5, "min_rate": 0.5})
    kept, rejected, counts = curate_rows(rows, cfg)
    rates = student_pass_rates(rows, cfg.student_pass_rate, cfg.verify)
    assert {r["id"] for r in kept} == {pid for pid, rate in rates.items() if rate == 0.5}
    assert 0 < len(kept) < 12 and set(counts) == {"student_solves", "student_fails"}
    assert totals([{"shard": 0, "rejected": dict(counts), "by_source": {"a": {"rows_in": 1}}}, {"shard": 1, "by_source": {"a": {"rows_in": 2}}}])["by_source"] == {"a": {"rows_in": 3}}


def test_a_math_row_with_a_choice_letter_is_judged_alike_by_filter_and_eval():
    from distill.eval.scoring import score
    from distill.filter.config import VerifyConfig
    from distill.filter.routing import Verifier

    verifier = Verifier(VerifyConfig())
    for ref, completion, expected in [("(C)", "<think>\nc\n</think>\n\\boxed{(C) 5}", True), ("\\text{(E)}", "<think>\ne\n</think>\n\\boxed{E}", True),
                                      ("C", "<think>\nb\n</think>\n\\boxed{(B) 4}", False), ("5", "<think>\n5\n</think>\n\\boxed{5}", True)]:
        row = trace_row(_problem("math", f"Which option? {ref}", ref), 0, completion)
        in_filter = verifier(row)
        (in_eval,) = score("math", [completion], ref)
        assert in_filter.correct == in_eval.correct == expected and in_filter.extracted == in_eval.extracted, (ref, in_filter, in_eval)
