"""`distill plan`: per-source problems, samples, tokens and kept samples, from the config's assumptions or a
pilot run's measurements; GPU-hours or API cost."""

import random
from pathlib import Path

from typer.testing import CliRunner

from distill.cli import app
from distill.filter.config import FilterConfig
from distill.filter.stage import run as run_filter
from distill.pipeline import CURATED, TRACES, load_pipeline
from distill.plan import cost_line, plan, read_pilot
from distill.pricing import Price
from distill.stage import StageDir
from distill.toy.tasks import make_chat_problems, make_problems
from distill.toy.teacher import ToyTeacherConfig, write_trace
from tests.filter_fixtures import trace_row, write_traces_stage

TOY = Path(__file__).parent.parent / "pipelines" / "toy.yaml"


def test_plan_from_assumptions_and_from_a_pilot(tmp_path):
    cfg = load_pipeline(TOY)
    rows = {r.source: r for r in plan(cfg)}
    arith = cfg.prompts.sources[0]
    assert rows["toy-arith"].samples == arith.toy.n * cfg.generate.samples_per_prompt
    assert rows["toy-arith"].basis == "toy teacher"  # drafted by the toy teacher, not the 4,000-token R1 assumption
    chat = next(s for s in cfg.prompts.sources if s.name == "toy-chat")
    assert rows["toy-chat"].samples == rows["toy-chat"].problems == chat.toy.n  # one sample per non-reasoning problem

    rng, teacher = random.Random(0), ToyTeacherConfig()
    traces = []
    for p in make_problems(40, seed=5):
        traces += [trace_row({**p, "source": "toy-arith"}, k, write_trace(p["prompt"], rng, teacher, 256)[0]) for k in range(2)]
    for p in make_chat_problems(10, seed=5):
        traces.append(trace_row({**p, "source": "toy-chat"}, 0, write_trace(p["prompt"], rng, teacher, 256)[0]))
    stage = write_traces_stage(tmp_path / TRACES, traces, shards=1)
    stage.finish(0, {"rows_out": len(traces), "completion_tokens": 9000, "generate_seconds": 3.0})
    run_filter(FilterConfig(), tmp_path / TRACES, tmp_path / CURATED)
    from distill.report.build import mix_funnel_table
    from distill.report.collect import funnel

    head, table = mix_funnel_table(funnel(tmp_path, []))  # the report's funnel per domain and source
    assert [r[0] for r in table] == ["domain: general", "domain: math", "source: toy-arith", "source: toy-chat"]
    pilot = read_pilot(tmp_path)
    measured = {r.source: r for r in plan(cfg, pilot)}
    arith_rows = [t for t in traces if t["source"] == "toy-arith"]
    mean = sum(t["completion_tokens"] for t in arith_rows) / len(arith_rows)
    assert measured["toy-arith"].basis == "pilot" and measured["toy-arith"].completion_tokens == round(rows["toy-arith"].samples * mean)
    assert measured["toy-arith"].keep_rate == round(pilot.keep_rate["toy-arith"], 4) < 1
    assert pilot.tokens_per_s == 3000.0
    gpu = load_pipeline(TOY, ["generate.backend=transformers", "generate.model=deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"])
    assert "at 3,000 generated tokens/s" in cost_line(gpu, list(measured.values()), pilot.tokens_per_s, None)

    api = load_pipeline(TOY, ["generate.backend=openai", "generate.model=deepseek-reasoner"])
    rows = plan(api)
    usd = (sum(r.prompt_tokens for r in rows) * 0.5 + sum(r.completion_tokens for r in rows) * 2.0) / 1e6
    assert f"API cost: ${usd:,.0f}" in cost_line(api, rows, 1.0, Price(input=0.5, output=2.0))
    out = CliRunner().invoke(app, ["plan", str(TOY), "--pilot", str(tmp_path)])
    assert out.exit_code == 0 and "toy-arith" in out.output and "(pilot)" in out.output


def test_plan_of_the_toy_predicts_the_tokens_its_teacher_writes(tmp_path):
    """The toy's plan is within 15% of what the generate stage writes (it predicted 35x before), names no
    GPU-hours for the CPU teacher and adds the SFT and eval compute."""
    from distill.generate.stage import run as run_generate
    from distill.plan import training_lines
    from distill.prompts.stage import run as run_prompts

    cfg = load_pipeline(TOY)
    rows = {r.source: r for r in plan(cfg)}
    arith = cfg.prompts.sources[0]
    prompts = arith.model_copy(update={"toy": arith.toy.model_copy(update={"n": 96, "seed": 11})})  # other problems than the plan drew
    run_prompts(cfg.prompts.model_copy(update={"sources": [prompts], "decontaminate": cfg.prompts.decontaminate.model_copy(update={"benchmarks": []})}),
                tmp_path / "p")
    run_generate(cfg.generate, tmp_path / "p", tmp_path / "t")
    written = sum(s["completion_tokens"] for s in StageDir(tmp_path / "t").stats()) / sum(s["rows_out"] for s in StageDir(tmp_path / "t").stats())
    predicted = rows["toy-arith"].completion_tokens / rows["toy-arith"].samples
    assert abs(predicted / written - 1) < 0.15, (predicted, written)
    cost = cost_line(cfg, list(rows.values()), 2000.0, None)
    assert "GPU" not in cost.replace("no GPU", "") and "toy teacher" in cost
    compute = training_lines(cfg, list(rows.values()))
    assert [c.split(":")[0] for c in compute] == [f"sft {s.name}" for s in cfg.sft.students] + ["eval"]
