"""The openai backend against a local fault-injecting endpoint: every row completes once, keys stay secret."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.generate.backends import Request, Sampling, make_backend
from distill.generate.config import BackendConfig, GenerateConfig
from distill.generate.stage import read_traces, run
from distill.io import read_parquet, read_parquets
from distill.progress import shard_stage
from distill.stage import StageDir

sys.path.insert(0, str(Path(__file__).parent))
from generate_fake_openai import FAULTS, FakeOpenAI  # noqa: E402
from generate_fixtures import make_prompts_stage  # noqa: E402

KEY = "sk-test-5f3a9c1e-never-log-me"


def _cfg(base_url: str, **openai) -> dict:
    opts = {"base_url": base_url, "api_key_env": "DISTILL_TEST_KEY", "max_concurrency": 8, "timeout_s": 1.0, "backoff_s": 0.01, "max_backoff_s": 0.05}
    return {"backend": "openai", "model": "fake-r1", "openai": {**opts, **openai}}


def test_faults_are_retried_and_every_row_written_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    inp = make_prompts_stage(tmp_path / "p", 12, 6)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(faults_per_sample=2, key=KEY, hang_s=1.5) as fake:
        cfg = GenerateConfig(**_cfg(fake.base_url), samples_per_prompt=3, chunk_size=4)
        summary = run(cfg, inp, tmp_path / "t")
    rows = read_traces(tmp_path / "t").to_pylist()
    assert summary["rows"] == len(rows) == 12 * 3
    assert len({(r["id"], r["sample_idx"]) for r in rows}) == len(rows)
    assert set(fake.faults) == set(FAULTS)  # every kind of fault was served...
    assert sum(fake.attempts.values()) == 36 * 3  # ...and each sample took exactly 2 faults + 1 success
    seeds = Counter()
    for r in rows:
        assert r["completion"].startswith("<think>\nthinking\n</think>\n")
        assert r["response"].endswith(r["prompt"]) and r["reasoning"] == "thinking"
        assert r["backend"] == "openai" and r["backend_version"].startswith("httpx-")
        seeds[r["completion"].split()[4]] += 1
    assert len(seeds) == 36  # one distinct seed per (problem, sample)
    # The key went in the header only: not in any file of the stage, not in the logs.
    for f in (tmp_path / "t").rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in caplog.text and "retry" in caplog.text


def test_reasoning_field_becomes_the_think_block(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    with FakeOpenAI(faults_per_sample=0, key=KEY) as fake:
        backend = make_backend(BackendConfig(**_cfg(fake.base_url, prefix_mode="none")))
        [[c]] = backend.generate([Request("q", [{"role": "user", "content": "What is 1 + 1?"}], "<think>\n")], Sampling(seed=7))
    assert c.text == "<think>\nthinking\n</think>\n\nseed " + c.text.split("seed ")[1]
    assert c.finish_reason == "stop" and c.completion_tokens > 0


def test_retries_exhausted_fail_the_chunk_then_a_rerun_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    inp = make_prompts_stage(tmp_path / "p", 6, 6)
    with FakeOpenAI(faults_per_sample=0, key=KEY, fail_after_ok=2) as fake:  # the first chunk succeeds, then 500s
        cfg = GenerateConfig(**_cfg(fake.base_url, max_retries=2, max_concurrency=1), chunk_size=2)
        with pytest.raises(DistillError, match="failed after 2 retries: HTTP 500"):
            run(cfg, inp, tmp_path / "t")
    chunks = StageDir(tmp_path / "t").chunks(0)
    # The finished chunk, then what had finished when the stage stopped: the failed problem, as an error row.
    assert not StageDir(tmp_path / "t").is_done(0) and sorted(p.name for p in chunks.glob("*.parquet")) == ["00000.parquet", "00001.parquet"]
    [failed] = read_parquet(chunks / "00001.parquet").to_pylist()
    assert failed["finish_reason"] == "error" and "HTTP 500" in failed["error"] and failed["attempts"] == 0
    with FakeOpenAI(faults_per_sample=0, key=KEY) as fake:
        summary = run(GenerateConfig(**_cfg(fake.base_url), chunk_size=2), inp, tmp_path / "t")
        assert sum(fake.attempts.values()) == 4  # the error row and the three problems not yet asked for
    rows = read_traces(tmp_path / "t").to_pylist()
    assert summary["rows"] == len(rows) == 6 and {r["finish_reason"] for r in rows} == {"stop"}
    assert StageDir(tmp_path / "t").stats()[0]["chunks_resumed"] == 2


def test_missing_key_and_bad_key_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("DISTILL_TEST_KEY", raising=False)
    with pytest.raises(DistillError, match="DISTILL_TEST_KEY is not set"):
        make_backend(BackendConfig(**_cfg("http://127.0.0.1:9/v1")))
    monkeypatch.setenv("DISTILL_TEST_KEY", "wrong")
    with FakeOpenAI(key=KEY) as fake:
        backend = make_backend(BackendConfig(**_cfg(fake.base_url)))
        with pytest.raises(DistillError, match="HTTP 401") as e:
            backend.generate([Request("q", [{"role": "user", "content": "hi"}])], Sampling())
    assert "wrong" not in str(e.value)


def _prompts(inp: Path) -> list[str]:
    return [p["prompt"] for p in read_parquet(StageDir(inp).part(0)).to_pylist()]


def _no_key_anywhere(root: Path, log_text: str) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert KEY not in log_text


def test_bad_requests_become_error_rows_and_the_rest_is_kept(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    inp = make_prompts_stage(tmp_path / "p", 10, 10)
    prompts = _prompts(inp)
    per_prompt = {prompts[1]: "reject", prompts[4]: "filter", prompts[7]: "slow", prompts[8]: "slow"}
    caplog.set_level(logging.INFO)
    with FakeOpenAI(faults_per_sample=1, key=KEY, per_prompt=per_prompt, slow_s=1.0) as fake:
        price = {"input": 1.0, "cached_input": 0.5, "output": 2.0}
        cfg = GenerateConfig(**_cfg(fake.base_url, max_attempts=2, price=price, timeout_s=5.0), samples_per_prompt=2, chunk_size=3)
        summary = run(cfg, inp, tmp_path / "t")
    rows = read_traces(tmp_path / "t").to_pylist()
    assert len(rows) == 20 and len({(r["id"], r["sample_idx"]) for r in rows}) == 20  # every row once
    by_prompt = {p: [r for r in rows if r["prompt"] == p] for p in prompts}
    for r in by_prompt[prompts[1]]:  # refused twice (max_attempts), kept as an error row with the message
        assert r["finish_reason"] == "error" and "Content Exists Risk" in r["error"] and r["attempts"] == 2
        assert r["completion"] == "" and r["cost_usd"] is None
    assert sum(n for (user, _), n in fake.attempts.items() if user.startswith(prompts[1])) == 4
    assert {r["finish_reason"] for r in by_prompt[prompts[4]]} == {"content_filter"}
    assert summary["finish_reasons"] == {"stop": 16, "error": 2, "content_filter": 2}
    # No paid answer was dropped: each one the server sent is exactly one row.
    assert len(fake.paid) == len(set(fake.paid)) == 18
    for r in rows:
        if r["finish_reason"] != "error":
            assert r["served_model"] == "fake-r1-served" == r["teacher"] and r["system_fingerprint"] == "fp_test_1"
            assert r["cached_tokens"] == 2 and r["reasoning_tokens"] == 1 and r["attempts"] == 1
            assert r["cost_usd"] == pytest.approx(((r["prompt_tokens"] - 2) * 1.0 + 2 * 0.5 + r["completion_tokens"] * 2.0) / 1e6)
    assert summary["cost_usd"] == pytest.approx(sum(r["cost_usd"] or 0 for r in rows), abs=1e-4)
    _no_key_anywhere(tmp_path / "t", caplog.text)


def test_payment_required_stops_keeps_every_paid_answer_and_a_rerun_finishes(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    inp = make_prompts_stage(tmp_path / "p", 12, 12)
    caplog.set_level(logging.INFO)
    with FakeOpenAI(faults_per_sample=0, key=KEY, pay_after=7) as fake:
        cfg = GenerateConfig(**_cfg(fake.base_url, max_concurrency=4), samples_per_prompt=2, chunk_size=2)
        with pytest.raises(DistillError, match="HTTP 402") as e:
            run(cfg, inp, tmp_path / "t")
    assert "\n" not in str(e.value) and len(fake.paid) == 7
    saved = read_parquets(sorted(StageDir(tmp_path / "t").chunks(0).glob("*.parquet"))).to_pylist()
    answered = {(r["prompt"], r["completion"]) for r in saved if r["finish_reason"] == "stop"}
    assert len(answered) == 7  # all 7 paid answers are on disk, none twice
    with FakeOpenAI(faults_per_sample=0, key=KEY) as fake:
        cfg = GenerateConfig(**_cfg(fake.base_url, max_concurrency=4), samples_per_prompt=2, chunk_size=2)
        summary = run(cfg, inp, tmp_path / "t")
    assert len(fake.paid) == 24 - 7  # the rerun asked only for what was not paid for yet
    rows = read_traces(tmp_path / "t").to_pylist()
    assert summary["rows"] == len(rows) == 24 and {r["finish_reason"] for r in rows} == {"stop"}
    assert len({(r["id"], r["sample_idx"]) for r in rows}) == 24
    _no_key_anywhere(tmp_path / "t", caplog.text)


def test_spend_cap_stops_cleanly_and_a_higher_cap_resumes(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    inp = make_prompts_stage(tmp_path / "p", 12, 12)
    price = {"input": 1000.0, "output": 1000.0}  # about 2 cents a sample: the cap bites after a few
    with FakeOpenAI(faults_per_sample=0, key=KEY) as fake:
        cfg = GenerateConfig(**_cfg(fake.base_url, max_concurrency=2, price=price, max_spend_usd=0.1), chunk_size=2)
        with pytest.raises(DistillError, match="max_spend_usd: spent"):
            run(cfg, inp, tmp_path / "t")
        paid = len(fake.paid)
        saved = read_parquets(sorted(StageDir(tmp_path / "t").chunks(0).glob("*.parquet")))
        assert 0 < saved.num_rows == paid < 12  # stopped early, and what was paid for is kept
        more = cfg.model_copy(update={"openai": cfg.openai.model_copy(update={"max_spend_usd": 100.0})})
        summary = run(more, inp, tmp_path / "t")
    assert summary["rows"] == 12 and len(fake.paid) == 12
    # `distill run`'s display and `distill status` show the spend, from the finished shards' stats
    assert summary["cost_usd"] > 0.1 and shard_stage(tmp_path / "t").info == f"${summary['cost_usd']:,.2f} spent"


def test_a_capacity_cut_is_asked_again_and_the_seed_is_sent_only_where_configured(tmp_path, monkeypatch):
    """DeepSeek's finish_reason insufficient_system_resource is a cut answer (retried); its API documents no seed."""
    monkeypatch.setenv("DISTILL_TEST_KEY", KEY)
    request = Request("q", [{"role": "user", "content": "What is 1 + 1?"}], "<think>\n")
    for send_seed in (True, False):
        with FakeOpenAI(faults_per_sample=0, key=KEY, per_prompt={"What is": "busy"}) as fake:
            backend = make_backend(BackendConfig(**_cfg(fake.base_url, prefix_mode="none", send_seed=send_seed)))
            [[c]] = backend.generate([request], Sampling(seed=7))
        assert c.finish_reason == "stop" and sum(fake.attempts.values()) == 2
        assert (fake.paid[0][1] is not None) == send_seed
