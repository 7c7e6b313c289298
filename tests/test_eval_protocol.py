"""Per-model protocols (context, token limit, prefix, template, system prompt), the config checks that go
with them, and the config hash that names a model by its content, not by where it lies."""

import json
import shutil

import pytest
import typer
from typer.testing import CliRunner

import distill.eval.stage as eval_stage
from distill.config import parse
from distill.errors import DistillError
from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.identity import fingerprint, model_identity
from distill.eval.stage import load_samples, run
from distill.generate.prompting import MATH_INSTRUCTION, THINK_PREFIX
from distill.pipeline import EvalSection

N, K = 6, 2
QWEN_MATH_COT = {"max_model_len": 4096, "max_tokens": 300, "force_think": False, "template": "plain", "system_prompt": MATH_INSTRUCTION}


def cfg(**kw):
    return EvalConfig.model_validate({"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": N}, "k": K}},
                                      "bootstrap_resamples": 200, **kw})


def recording(monkeypatch):
    """Record the (request, sampling) of every job the eval shards send to the engine."""
    real, seen = eval_stage.EvalShard.first_jobs, []

    def first_jobs(self, item):
        jobs = real(self, item)
        seen.extend((j.request, j.sampling) for j in jobs)
        return jobs

    monkeypatch.setattr(eval_stage.EvalShard, "first_jobs", first_jobs)
    return seen


def test_a_model_runs_its_own_protocol_and_records_it(tmp_path, monkeypatch):
    seen = recording(monkeypatch)
    spec = ModelSpec(name="qwen-math", backend="toy", model="toy-teacher", **QWEN_MATH_COT)
    proto = run(cfg(), spec, tmp_path / "m")["benchmarks"]["toy_arith"]["protocol"]
    assert len(seen) == N
    for req, sampling in seen:
        system, user = req.messages
        assert system == {"role": "system", "content": MATH_INSTRUCTION}
        assert user["role"] == "user" and not user["content"].endswith(MATH_INSTRUCTION)  # plain: the problem as it is
        assert req.prefix == "" and sampling.max_tokens == 300
    assert proto["max_tokens"] == 300 and proto["prefix"] == "" and proto["template"] == "plain"
    assert proto["system_prompt"] == MATH_INSTRUCTION and proto["temperature"] == 0.6

    seen.clear()
    r1 = run(cfg(), ModelSpec(name="student", backend="toy", model="toy-teacher"), tmp_path / "s")
    req, sampling = seen[0]
    assert [m["role"] for m in req.messages] == ["user"] and req.messages[0]["content"].endswith(MATH_INSTRUCTION)
    assert req.prefix == THINK_PREFIX and sampling.max_tokens == 512  # the toy spec's limit, R1's prefix
    assert r1["benchmarks"]["toy_arith"]["protocol"]["system_prompt"] is None


def test_a_model_token_limit_caps_but_never_raises_a_benchmark_limit(tmp_path):
    spec = ModelSpec(name="m", backend="toy", model="toy-teacher", max_tokens=4000)
    assert run(cfg(), spec, tmp_path / "m")["benchmarks"]["toy_arith"]["protocol"]["max_tokens"] == 512


@pytest.mark.parametrize("model, message", [
    ({"max_model_len": 4096, "max_tokens": 4096}, "leaves no room for the prompt"),
    ({"max_model_len": 4096, "vllm": {"max_model_len": 8192}}, "differ; give one"),
    ({"r1_reference": "Qwen2.5-Math-7B-Instruct"}, "not a row of the R1 paper"),
])
def test_inconsistent_model_protocols_are_refused_at_load(model, message):
    with pytest.raises(DistillError, match=message) as e:
        parse(ModelSpec, {"name": "m", "model": "x", **model}, "eval.yaml")
    assert "\n" not in str(e.value) and str(e.value).startswith("eval.yaml: field")


def test_context_length_is_one_setting_for_vllm():
    m = ModelSpec(name="m", model="x", backend="vllm", max_model_len=4096)
    assert m.vllm.max_model_len == 4096
    assert ModelSpec(name="m", model="x", backend="vllm", vllm={"max_model_len": 2048}).max_model_len == 2048


def test_a_benchmark_limit_that_does_not_fit_the_context_is_refused_at_pipeline_load(tmp_path):
    section = {**cfg().model_dump(), "models": [{"name": "small", "model": "toy-teacher", "backend": "toy", "max_model_len": 512}]}
    with pytest.raises(DistillError, match="toy_arith asks for 512 new tokens but max_model_len is 512") as e:
        parse(EvalSection, section, "r1.yaml")
    assert "\n" not in str(e.value)
    section["models"][0]["max_tokens"] = 400
    parse(EvalSection, section, "r1.yaml")  # its own lower limit fits
    with pytest.raises(DistillError, match="max_model_len is 512"):  # the command line path checks it too
        run(cfg(), ModelSpec(name="small", backend="toy", model="toy-teacher", max_model_len=512), tmp_path / "x")
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("benchmarks", [["toy_arith", "toy_arith"], ["math500", "toy_arith", "math500"]])
def test_a_benchmark_listed_twice_is_refused_at_load(benchmarks):
    with pytest.raises(DistillError, match="listed twice") as e:
        parse(EvalConfig, {"benchmarks": benchmarks}, "eval.yaml")
    assert "\n" not in str(e.value)


def fake_checkpoint(d, weights=b"\x01" * 1000):
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 8}))
    (d / "model.safetensors").write_bytes(weights)
    return d


def test_a_moved_or_symlinked_model_resumes_and_changed_weights_are_refused(tmp_path, monkeypatch):
    first = fake_checkpoint(tmp_path / "a" / "model")
    out = tmp_path / "eval"
    run(cfg(), ModelSpec(name="m", backend="toy", model=str(first)), out)
    rows = load_samples(out)

    moved = tmp_path / "b" / "model"
    moved.parent.mkdir()
    shutil.move(first, moved)
    (tmp_path / "link").symlink_to(moved)
    seen = recording(monkeypatch)
    for path in (moved, tmp_path / "link"):
        run(cfg(), ModelSpec(name="m", backend="toy", model=str(path)), out)  # same files elsewhere: resumes
    assert seen == [] and load_samples(out) == rows

    (moved / "model.safetensors").write_bytes(b"\x02" * 1000)  # same size, other weights
    with pytest.raises(DistillError, match="identity"):
        run(cfg(), ModelSpec(name="m", backend="toy", model=str(moved)), out)


def test_model_identity_of_a_run_student_hub_id_and_large_files(tmp_path):
    student = tmp_path / "run" / "04_sft" / "s"
    fake_checkpoint(student / "model")
    (student / "config.json").write_text(json.dumps({"hash": "abc123", "config": {}}))
    (student / "done").write_text("")
    assert model_identity(str(student / "model")) == "sft:abc123"
    shutil.move(tmp_path / "run", tmp_path / "elsewhere")
    assert model_identity(str(tmp_path / "elsewhere" / "04_sft" / "s" / "model")) == "sft:abc123"
    assert model_identity("Qwen/Qwen2.5-Math-7B-Instruct") == "Qwen/Qwen2.5-Math-7B-Instruct"
    # a shard over 64 MiB is read in 16 blocks: other weights of the same size (a fine-tune changes every
    # block) give another fingerprint, the same file copied elsewhere the same one
    big = fake_checkpoint(tmp_path / "big", weights=bytes(70 << 20))
    before = fingerprint(big)
    shutil.copytree(big, tmp_path / "copy")
    assert fingerprint(tmp_path / "copy") == before
    (big / "model.safetensors").write_bytes(b"\x07" * (70 << 20))
    assert fingerprint(big) != before


def test_a_model_path_that_does_not_exist_is_one_line(tmp_path):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    missing = tmp_path / "runs" / "r1" / "04_sft" / "s" / "model"
    res = CliRunner().invoke(app, ["--output", str(tmp_path / "o"), "--model", str(missing), "--backend", "transformers",
                                   "--benchmark", "toy_arith", "--set", "overrides.toy_arith.toy.n=2"])
    assert isinstance(res.exception, DistillError)
    assert "no such local path" in str(res.exception) and str(missing) in str(res.exception)
    assert not (tmp_path / "o").exists()


def md_table(md: str, header_start: str) -> list[list[str]]:
    lines = md.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("| " + header_start))
    rows = []
    for line in lines[i + 2:]:
        if not line.startswith("|"):
            return rows
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def test_report_marks_other_protocols_refuses_other_k_and_states_each_models_settings(tmp_path):
    import yaml

    from distill.eval.compare import compare
    from distill.report.build import run as build_report

    r1 = cfg(overrides={"toy_arith": {"toy": {"n": N}, "k": K, "max_tokens": 32768}})
    models = [
        ModelSpec(name="student", backend="toy", model="toy-teacher", baseline="instruct", r1_reference="DeepSeek-R1-Distill-Qwen-1.5B"),
        ModelSpec(name="instruct", backend="toy", model="toy-teacher", **QWEN_MATH_COT),
        ModelSpec(name="lookalike", backend="toy", model="DeepSeek-R1-Distill-Qwen-7B", baseline_of="student2"),
        ModelSpec(name="student2", backend="toy", model="toy-teacher"),
    ]
    d = tmp_path / "run"
    for m in models[:2]:
        run(r1, m, d / "05_eval" / m.name)
    run(cfg(overrides={"toy_arith": {"toy": {"n": N}, "k": 1, "max_tokens": 32768}}), models[2], d / "05_eval" / "lookalike")
    run(r1, models[3], d / "05_eval" / "student2")
    (d / "pipeline.yaml").write_text(yaml.safe_dump({"name": "r", "eval": {"models": [m.model_dump(mode="json") for m in models]}}))
    assert compare(d / "05_eval" / "student2", d / "05_eval" / "lookalike")["benchmarks"] == {"toy_arith": {"refused": "k differs (2 vs 1)"}}

    md = (tmp_path / "report" / "report.md").read_text() if build_report(d, tmp_path / "report") else ""
    protocol = {r[0]: r[-1] for r in md_table(md, "model | benchmark")}
    assert protocol["student"] == protocol["student2"] == "R1"
    assert protocol["instruct"].startswith("not R1:")
    for named in ("300 tokens", "no <think> prefix", "template plain", "system prompt"):
        assert named in protocol["instruct"]
    cmp = {r[1]: r for r in md_table(md, "distilled | baseline")}
    assert cmp["lookalike"][4] == "" and cmp["lookalike"][-1] == "not compared: k differs (2 vs 1)"
    assert cmp["instruct"][4] != "" and "max_tokens differs" in cmp["instruct"][-1] and "prefix differs" in cmp["instruct"][-1]
    assert [r[0] for r in md_table(md, "model | source")] == ["student", "student"]  # only the model that names a row
    assert "- instruct: T=0.6; top-p 0.95; 300 tokens; no <think> prefix; system prompt " in md
    assert "- student: T=0.6; top-p 0.95; 32768 tokens; prefix '<think>\\n'; no system prompt; template r1; toy_arith k=2" in md
    page = (tmp_path / "report" / "index.html").read_text()
    assert '<td class="warn">not compared: k differs (2 vs 1)</td>' in page and 'id="settings"' in page


@pytest.mark.slow
def test_the_shipped_baseline_protocol_fits_real_prompts_and_a_tighter_one_is_refused(tmp_path):
    """Qwen2.5-Math-7B-Instruct as r1_distill.yaml runs it (4,096 context, 3,072 new tokens), with the real
    Qwen2.5 tokenizer and chat template, on the shipped MATH-500 and AIME 2024 files."""
    from distill.eval.benchmarks import load_benchmark
    from distill.pipeline import load_pipeline
    from tests.real_students import real_tokenizer

    real_tokenizer("qwen2.5", template="qwen2.5-math-instruct").save_pretrained(tmp_path / "tok")
    (shipped,) = [m for m in load_pipeline("pipelines/r1_distill.yaml").eval.models if m.name == "qwen2.5-math-7b-instruct"]
    baseline = shipped.model_copy(update={"model": str(tmp_path / "tok")})
    r1 = EvalConfig(benchmarks=["math500", "aime24"])
    specs = eval_stage.resolved_specs(r1)
    problems = {s.name: load_benchmark(s) for s in specs}
    protos = {s.name: eval_stage.protocol(r1, s, ["-"], baseline) for s in specs}
    assert {p["max_tokens"] for p in protos.values()} == {3072} and protos["math500"]["system_prompt"]
    eval_stage.check_prompts_fit(baseline, protos, problems)
    tight = baseline.model_copy(update={"max_model_len": 3100})
    with pytest.raises(DistillError, match=r"model 'qwen2.5-math-7b-instruct': \w+'s longest prompt is \d+ tokens, which with max_tokens 3072 exceeds max_model_len 3100"):
        eval_stage.check_prompts_fit(tight, protos, problems)


def test_cli_takes_the_models_own_protocol_and_paper_row(tmp_path):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["--output", str(out), "--model", "toy-teacher", "--backend", "toy", "--r1-reference", "DeepSeek-R1-Distill-Qwen-1.5B",
                                   "--set", "overrides.toy_arith.toy.n=4", "--set", "overrides.toy_arith.k=2", "--set", "bootstrap_resamples=200",
                                   "--set", "model.force_think=false", "--set", "model.max_tokens=100"])
    assert res.exit_code == 0, res.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["benchmarks"]["toy_arith"]["protocol"]["prefix"] == "" and scores["benchmarks"]["toy_arith"]["protocol"]["max_tokens"] == 100
    assert scores["model"]["r1_reference"] == "DeepSeek-R1-Distill-Qwen-1.5B"
    res = CliRunner().invoke(app, ["--output", str(tmp_path / "bad"), "--model", "toy-teacher", "--backend", "toy", "--set", "model.max_tokns=5"])
    assert isinstance(res.exception, DistillError) and "field 'max_tokns'" in str(res.exception)


def test_a_moved_benchmark_file_resumes(tmp_path):
    """A user benchmark (spec + data) elsewhere on another node: same problems, same stage config."""
    first = tmp_path / "a"
    first.mkdir()
    (first / "sums.jsonl").write_text("".join(json.dumps({"problem": f"What is {a} + {a + 1}?", "answer": str(2 * a + 1)}) + "\n" for a in range(100, 104)))
    (first / "sums.yaml").write_text("name: sums\nsource: sums.jsonl\nk: 2\nmax_tokens: 512\n")
    out = tmp_path / "eval"
    spec = ModelSpec(name="m", backend="toy", model="toy-teacher")
    run(EvalConfig(benchmarks=[str(first / "sums.yaml")], bootstrap_resamples=200), spec, out)
    assert json.loads((out / "config.json").read_text())["config"]["benchmarks"]["sums"]["spec"]["source"] == "sums.jsonl"
    shutil.move(first, tmp_path / "b")
    run(EvalConfig(benchmarks=[str(tmp_path / "b" / "sums.yaml")], bootstrap_resamples=200), spec, out)  # no refusal
