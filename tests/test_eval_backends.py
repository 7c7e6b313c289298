"""A tiny local model evaluated through the `transformers` and `vllm` backends.

What is compared, precisely: sampling differs across engines (different kernels and RNGs), so the
T=0.6 samples of the two engines are NOT expected to be equal. The tests check that
(1) each engine writes valid EVAL_SAMPLE rows for the same (problem, sample) keys under the same
    protocol, and rescoring its saved samples reproduces its scores.json exactly (no model runs);
(2) given the same completions (the toy teacher's, a mix of right, wrong, looping and cut-off
    answers, put into both engines' saved rows), both directories rescore to identical scores;
(3) with greedy decoding (k=1, T=0; not the R1 protocol, a cross-engine check only) both engines
    write the same completions for the same float32 model.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.eval.compare import protocol_mismatches
from distill.eval.stage import load_samples, rescore, run
from distill.generate.backends import make_backend
from distill.generate.backends.base import Request, Sampling
from distill.generate.config import BackendConfig
from distill.generate.prompting import THINK_PREFIX, messages_for
from distill.records import EVAL_SAMPLE
from distill.toy.students import build_student

sys.path.insert(0, str(Path(__file__).parent))
from eval_fixtures import model_spec, tiny_eval_config  # noqa: E402

FIXTURES = Path(__file__).with_name("eval_fixtures.py")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return build_student("qwen2", tmp_path_factory.mktemp("tiny") / "qwen2")


def keyed(out):
    return {(r["problem_id"], r["sample_idx"]): r for r in load_samples(out)}


def scores_of(out):
    return json.loads((Path(out) / "scores.json").read_text())["benchmarks"]


def check_rows_and_rescore(out, k):
    rows = load_samples(out)
    for part in sorted(Path(out).glob("part-*.parquet")):
        assert pq.read_schema(part) == EVAL_SAMPLE
    assert len(rows) == 4 * k and all(r["completion"].startswith(THINK_PREFIX) for r in rows)
    assert all(r["finish_reason"] in ("stop", "length") and 0 < r["completion_tokens"] <= 24 for r in rows)
    before = scores_of(out)
    assert rescore(out)["benchmarks"] == before  # the same numbers from the saved samples alone


def transplant_teacher_completions(out):
    """Replace every saved completion with the toy teacher's for the same problem and sample."""
    problems = {p["id"]: p for p in pq.read_table(Path(out) / "problems" / "toy_arith.parquet").to_pylist()}
    teacher = make_backend(BackendConfig(backend="toy", toy={"wrong_answer": 0.4, "repetition": 0.2, "truncation": 0.1}))
    for part in sorted(Path(out).glob("part-*.parquet")):
        rows = pq.read_table(part).to_pylist()
        for r in rows:
            p = problems[r["problem_id"]]
            req = Request(id=f"{p['id']}/{r['sample_idx']}", messages=messages_for(p["prompt"], "math"), prefix=THINK_PREFIX)
            (c,) = teacher.generate([req], Sampling(n=1, max_tokens=200, seed=7))[0]
            r.update(completion=c.text, finish_reason=c.finish_reason, completion_tokens=c.completion_tokens, correct=False, extracted=None)
        pq.write_table(pa.Table.from_pylist(rows, schema=EVAL_SAMPLE), part)


def test_transformers_eval_rescores_identically(tiny_model, tmp_path):
    out = tmp_path / "hf"
    run(tiny_eval_config(), model_spec("transformers", str(tiny_model), "hf"), out)
    check_rows_and_rescore(out, k=2)


def engine_free(benchmarks: dict) -> dict:
    """Scores without the budget curve's exactness label, which names the engine (vLLM exact, transformers an estimate)."""
    return {name: {**b, "budget": {k: v for k, v in b["budget"].items() if k not in ("exact", "why")}} for name, b in benchmarks.items()}


@pytest.mark.slow
@pytest.mark.vllm
def test_vllm_and_transformers_score_alike(tiny_model, tmp_path):
    sampled, greedy = tiny_eval_config().model_dump(mode="json"), {**tiny_eval_config(k=1).model_dump(mode="json"), "temperature": 0.0}
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache")}
    jobs = [[sampled, str(tmp_path / "vllm")], [greedy, str(tmp_path / "vllm_greedy")]]
    proc = subprocess.run([sys.executable, str(FIXTURES), "vllm", str(tiny_model), "vllm", json.dumps(jobs)],
                          env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = model_spec("transformers", str(tiny_model), "hf")
    run(tiny_eval_config(), spec, tmp_path / "hf")
    run(tiny_eval_config(k=1).model_copy(update={"temperature": 0.0}), spec, tmp_path / "hf_greedy")

    # (1) valid rows, same keys and protocol, rescoring reproduces each engine's own scores
    for out in ("vllm", "hf"):
        check_rows_and_rescore(tmp_path / out, k=2)
    assert keyed(tmp_path / "vllm").keys() == keyed(tmp_path / "hf").keys()
    sv, sh = (json.loads((tmp_path / d / "scores.json").read_text()) for d in ("vllm", "hf"))
    assert protocol_mismatches(sv, sh) == []

    # (2) the same completions score the same, whichever engine's directory they sit in
    for out in ("vllm", "hf"):
        transplant_teacher_completions(tmp_path / out)
    sv, sh = (engine_free(rescore(tmp_path / d)["benchmarks"]) for d in ("vllm", "hf"))
    assert sv == sh
    assert 0 < sv["toy_arith"]["pass@1"] < 1  # a mix of right and wrong, so equality is not 0 == 0

    # (3) greedy decoding of the same float32 weights: the same text from both engines
    gv, gh = keyed(tmp_path / "vllm_greedy"), keyed(tmp_path / "hf_greedy")
    assert gv.keys() == gh.keys()
    for key in gv:
        assert (gv[key]["completion"], gv[key]["completion_tokens"]) == (gh[key]["completion"], gh[key]["completion_tokens"])
