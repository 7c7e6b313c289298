"""The real-model backends on a tiny Qwen2 built from config: transformers, vLLM's offline engine, and
the openai backend against vLLM's own OpenAI-compatible server, run with R1's reasoning parser. One engine and one server per module:
each takes 20-40 s to start on this CPU."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from distill.generate.backends import Request, Sampling, make_backend
from distill.generate.config import BackendConfig, GenerateConfig
from distill.generate.prompting import THINK_PREFIX, messages_for, render_chat
from distill.generate.stage import read_traces, run
from distill.toy.students import build_student

sys.path.insert(0, str(Path(__file__).parent))
from generate_fixtures import make_prompts_stage  # noqa: E402

MAX_TOKENS = 24
SERVER_KEY = "sk-local-vllm-test-key"
VLLM_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}
VLLM_OPTS = {"enforce_eager": True, "dtype": "float32", "max_model_len": 1024}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_student("qwen2", tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server` on 127.0.0.1, launched now, awaited by its user."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, **VLLM_ENV, "VLLM_CACHE_ROOT": str(tmp_path_factory.mktemp("vllm-cache-server"))}
    log = open(tmp_path_factory.mktemp("server-log") / "server.log", "w")
    # fmt: off
    proc = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_model), "--served-model-name", "tiny",
         "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--dtype", "float32", "--max-model-len", "1024",
         "--api-key", SERVER_KEY, "--reasoning-parser", "deepseek_r1"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    # fmt: on
    yield proc, f"http://127.0.0.1:{port}/v1", Path(log.name)
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def vllm_backend(tiny_model, vllm_server, tmp_path_factory):
    """The one offline engine of this module, built through `make_backend` (the server boots meanwhile)."""
    env = {**VLLM_ENV, "VLLM_CACHE_ROOT": str(tmp_path_factory.mktemp("vllm-cache")), "VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # in-process engine core: no spawned process re-importing pytest's __main__
    backend = make_backend(BackendConfig(backend="vllm", model=str(tiny_model), vllm=VLLM_OPTS))
    yield backend
    backend.close()
    for k, v in saved.items():
        os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _check_rows(rows: list[dict], tokenizer, n_problems: int, n: int) -> None:
    assert len(rows) == n_problems * n and len({(r["id"], r["sample_idx"]) for r in rows}) == len(rows)
    for r in rows:
        assert r["completion"].startswith(THINK_PREFIX)
        # The chat template was applied and the prefix forced: the prompt is exactly that many tokens.
        prompt = render_chat(tokenizer, messages_for(r["prompt"], r["domain"], "r1"), THINK_PREFIX)
        assert r["prompt_tokens"] == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        assert 0 < r["completion_tokens"] <= MAX_TOKENS
        assert (r["finish_reason"] == "length") == (r["completion_tokens"] == MAX_TOKENS)


def test_transformers_backend_through_the_stage(tmp_path, tiny_model):
    import torch

    torch.set_num_threads(1)
    inp = make_prompts_stage(tmp_path / "p", 4, 4)
    cfg = GenerateConfig(
        backend="transformers", model=str(tiny_model), teacher="tiny", samples_per_prompt=2, chunk_size=2,
        sampling={"max_tokens": MAX_TOKENS}, transformers={"batch_size": 4},
    )  # fmt: skip
    run(cfg, inp, tmp_path / "a")
    rows = read_traces(tmp_path / "a").to_pylist()
    from transformers import AutoTokenizer

    _check_rows(rows, AutoTokenizer.from_pretrained(tiny_model), 4, 2)
    assert rows[0]["backend"] == "transformers" and rows[0]["backend_version"]
    texts = {r["completion"] for r in rows}
    assert len(texts) > 1  # sampled, not greedy


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_engine_samples_seeded_completions(vllm_backend):
    req = Request("q1", messages_for("What is 12 + 30?", "math"), THINK_PREFIX)
    a = vllm_backend.generate([req], Sampling(max_tokens=MAX_TOKENS, n=3, seed=5))[0]
    b = vllm_backend.generate([req, Request("q2", req.messages, THINK_PREFIX)], Sampling(max_tokens=MAX_TOKENS, n=3, seed=5))
    assert [c.text for c in a] == [c.text for c in b[0]]  # same seed and id: same samples, whatever the batch
    assert len({c.text for c in a}) == 3  # n samples differ from each other
    assert [c.text for c in b[1]] != [c.text for c in a]  # another request id: another seed


@pytest.mark.vllm
@pytest.mark.slow
def test_vllm_backend_through_the_stage(tmp_path, tiny_model, vllm_backend):
    inp = make_prompts_stage(tmp_path / "p", 12, 6)
    cfg = GenerateConfig(
        backend="vllm", model=str(tiny_model), teacher="tiny", samples_per_prompt=2, chunk_size=4,
        sampling={"max_tokens": MAX_TOKENS}, vllm=VLLM_OPTS,
    )  # fmt: skip
    summary = run(cfg, inp, tmp_path / "t", backend=vllm_backend)
    rows = read_traces(tmp_path / "t").to_pylist()
    _check_rows(rows, vllm_backend.tokenizer, 12, 2)
    assert rows[0]["backend"] == "vllm" and rows[0]["backend_version"] == __import__("vllm").__version__
    assert summary["completion_tokens"] == sum(r["completion_tokens"] for r in rows)


@pytest.mark.vllm
@pytest.mark.slow
def test_openai_backend_against_a_real_vllm_server(tmp_path, monkeypatch, vllm_server, vllm_backend):
    proc, base_url, log = vllm_server
    deadline = time.time() + 150
    while True:
        assert proc.poll() is None, log.read_text()[-2000:]
        try:
            if httpx.get(f"{base_url}/models", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.time() < deadline, "vLLM server did not come up in 150 s"
        time.sleep(1)
    monkeypatch.setenv("DISTILL_TEST_VLLM_KEY", SERVER_KEY)
    inp = make_prompts_stage(tmp_path / "p", 8, 8)
    # A random model seldom writes </think>: a logit bias makes most samples close their think block.
    close_id = str(vllm_backend.tokenizer.convert_tokens_to_ids("</think>"))
    cfg = GenerateConfig(
        backend="openai", model="tiny", teacher="tiny", samples_per_prompt=2, chunk_size=4,
        sampling={"max_tokens": MAX_TOKENS},
        openai={"base_url": base_url, "api_key_env": "DISTILL_TEST_VLLM_KEY", "max_concurrency": 8, "timeout_s": 60,
                "extra_body": {"logit_bias": {close_id: 4.0}}},
    )  # fmt: skip
    # The reasoning parser answers in its own field: on the wire, an unclosed think block is all reasoning.
    body = {"model": "tiny", "messages": messages_for("What is 2 + 2?", "math"), "max_tokens": MAX_TOKENS, "seed": 1}
    msg = httpx.post(f"{base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=60).json()["choices"][0]["message"]
    assert (msg.get("reasoning_content") or msg.get("reasoning")) and not msg.get("content")
    run(cfg, inp, tmp_path / "t")
    rows = read_traces(tmp_path / "t").to_pylist()
    # continue_final_message: the server continued "<think>\n" after the same chat template.
    _check_rows(rows, vllm_backend.tokenizer, 8, 2)
    assert rows[0]["backend"] == "openai" and rows[0]["served_model"] == "tiny"
    closed = [r for r in rows if r["response"]]
    assert closed, "no sample closed its think block"
    for r in rows:  # rebuilt from the fields: <think>, the reasoning, </think>, the answer; unclosed stays unclosed
        if r["response"]:
            assert r["completion"] == f"{THINK_PREFIX}{r['reasoning']}\n</think>\n\n{r['response']}"
        else:
            assert "</think>" not in r["completion"] and r["reasoning"] is None
