"""`distill run` end to end through the real CLI on a very small toy pipeline, plus kill-and-resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from distill.pipeline import load_pipeline
from distill.stage import StageDir

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAINING = {"learning_rate": 3e-3, "max_steps": 4, "per_device_train_batch_size": 8, "logging_steps": 2, "save_steps": 2}


def tiny_pipeline(tmp_path: Path, n_problems: int = 60) -> Path:
    student = {"model": "toy:qwen2", "chat_template": "distill/templates/qwen2.jinja", "max_length": 256, "training": TINY_TRAINING}
    cfg = {
        "name": "tiny",
        "run_dir": str(tmp_path / "run"),
        "prompts": {"source": "toy", "toy": {"n": n_problems, "seed": 1}, "rows_per_shard": 20, "decontaminate": {"benchmarks": ["toy_arith"]}},
        "generate": {"backend": "toy", "samples_per_prompt": 2, "sampling": {"max_tokens": 160}, "chunk_size": 5},
        "filter": {"select": {"policy": "first"}},
        "sft": {
            "students": [
                {"name": "distilled", **student},
                {"name": "base", **student, "data_format": "answer_only"},
            ]
        },
        "eval": {
            "benchmarks": ["toy_arith"],
            "overrides": {"toy_arith": {"limit": 6, "k": 2}},
            "max_tokens": 96,
            "bootstrap_resamples": 200,
            "models": [
                {"name": "distilled", "model": "sft:distilled", "baseline": "base"},
                {"name": "base", "model": "sft:base", "baseline_of": "distilled"},
            ],
        },
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def distill(*args, **kw):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "distill.cli", *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, **kw)


def test_every_shipped_pipeline_config_loads():
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        if "name" in yaml.safe_load(path.read_text()):  # whole pipelines, not single-stage configs
            load_pipeline(path)


def test_models_evaluated_side_by_side_sample_as_one_at_a_time(tmp_path):
    """`eval.parallel` evaluates each model in a worker process of its own, its log apart; samples are keyed by
    problem, sample and batch, not by process or worker count, so they are those of one model after another."""
    from distill.config import parse
    from distill.eval.stage import load_samples
    from distill.pipeline import PipelineConfig, run_pipeline

    models = [{"name": "teacher", "model": "toy-teacher", "backend": "toy"},
              {"name": "teacher-short", "model": "toy-teacher", "backend": "toy", "max_tokens": 48}]
    samples = {}
    for parallel in (1, 2):
        run_dir = tmp_path / f"parallel{parallel}"
        cfg = {"name": "evals", "run_dir": str(run_dir), "prompts": {"source": "toy"}, "generate": {"backend": "toy"}, "filter": {},
               "sft": {"students": []},
               "eval": {"benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"limit": 5, "k": 2}}, "max_tokens": 160,
                        "problems_per_shard": 2, "parallel": parallel, "models": models}}
        run_pipeline(parse(PipelineConfig, cfg, "evals.yaml"), workers=2, only=["eval"])
        samples[parallel] = {(m["name"], r["problem_id"], r["sample_idx"]): r["completion"]
                             for m in models for r in load_samples(run_dir / "05_eval" / m["name"])}
        for m in models:  # each model's records in its own log: its 3 shards (5 problems, 2 a shard), not the other's
            assert (run_dir / "logs" / f"eval-{m['name']}.log").read_text().count("toy_arith shard") == 3
    assert len(samples[1]) == 2 * 5 * 2 and samples[2] == samples[1]
    assert any(len(c) < len(samples[1][("teacher", p, i)]) for (name, p, i), c in samples[1].items() if name == "teacher-short")


@pytest.mark.slow
def test_cli_runs_the_whole_pipeline_and_a_rerun_does_nothing(tmp_path):
    cfg = tiny_pipeline(tmp_path)
    result = distill("run", cfg, "--workers", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    report = run / "report" / "index.html"
    # stdout is the result (the closing table and the report's path), so `distill run ... > out.txt` keeps it
    out = result.stdout.strip().splitlines()
    assert out[0].startswith("pass@1 (%) on toy_arith") and "vs base" in result.stdout, result.stdout
    assert out[-1] == f"report: {report}" and max(map(len, out[:-1])) <= 80, result.stdout
    # stderr: a display per stage; the libraries' bars and dicts are in logs/.
    err = result.stderr
    assert "it/s" not in err and "{'loss'" not in err and "Loading weights" not in err, err[-3000:]
    assert len(err.splitlines()) < 40, err
    assert "pass@1 (%) on" not in err  # the closing table is on stdout only
    logs = run / "logs"
    for name in ("prompts", "generate", "filter", "sft-distilled", "sft-base", "eval-distilled", "eval-base"):
        assert (logs / f"{name}.log").exists(), name
    assert "loss" in (logs / "sft-distilled.log").read_text()
    assert (run / "03_curated" / "README.md").read_text().startswith("---\n")
    html = report.read_text()
    assert "<table" in html and "<svg" in html and 'id="traces"' in html
    assert (run / "report" / "report.md").exists()
    for student in ("distilled", "base"):
        assert (run / "04_sft" / student / "done").exists()
        scores = json.loads((run / "05_eval" / student / "scores.json").read_text())
        toy = scores["benchmarks"]["toy_arith"]
        assert toy["n_problems"] == 6 and toy["k"] == 2
    curated = StageDir(run / "03_curated")
    kept = sum(pq.read_table(p).num_rows for p in curated.parts())
    stats = curated.stats()
    assert kept == sum(s["rows_out"] for s in stats) > 0
    assert sum(s["rows_in"] for s in stats) == 2 * 60  # two samples of every problem reached the filter

    status = distill("status", run)
    assert status.returncode == 0, status.stderr
    rows, stage = {}, None
    for line in status.stdout.splitlines()[2:]:
        if line.endswith(":") and not line.startswith(" "):
            stage = line[:-1]  # a stage's title line, then a row per unit
        elif line.startswith("  ") and not line.startswith("    "):
            rows[(stage, line.split()[0])] = line.split()[1:]
    assert rows[("prompts", "01_prompts")][:3] == ["3/3", "shards", "done"]
    assert rows[("sft", "distilled")][:3] == ["4/4", "steps", "done"]
    assert rows[("eval", "base")][:3] == ["12/12", "samples", "done"]

    started = time.time()
    again = distill("run", cfg)
    assert again.returncode == 0, again.stderr[-3000:]
    assert time.time() - started < 60, "a finished run only checks its markers"
    assert "already" in again.stderr


def test_a_different_config_in_the_same_run_is_refused(tmp_path):
    cfg = tiny_pipeline(tmp_path)
    assert distill("run", cfg, "--only", "prompts").returncode == 0
    result = distill("run", cfg, "--only", "prompts", "--set", "prompts.toy.seed=2")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "toy.seed" in result.stderr and "01_prompts/config.json" in result.stderr


@pytest.mark.parametrize(
    "text, expected",
    [
        ("name: x\nprompts: [unclosed\n", r"tiny\.yaml:\d+:\d+: invalid YAML"),
        ("name: x\nprompts: {source: toy, rows_per_shard: zero}\n", "field 'prompts.rows_per_shard'"),
    ],
)
def test_bad_pipeline_yaml_is_one_line_naming_the_place(tmp_path, text, expected):
    import re

    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    result = distill("run", path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(expected, lines[0]), result.stderr


def test_a_missing_prompts_file_names_the_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(f"source: {tmp_path / 'nope.jsonl'}\n")
    result = distill("prompts", "-c", path, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "nope.jsonl" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_kill_during_the_data_stages_then_rerun_gives_the_uninterrupted_rows(tmp_path):
    ref_cfg = tiny_pipeline(tmp_path / "ref", n_problems=400)
    assert distill("run", ref_cfg, "--only", "prompts", "--only", "generate", "--only", "filter").returncode == 0
    cfg = tiny_pipeline(tmp_path / "killed", n_problems=400)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    args = [sys.executable, "-m", "distill.cli", "run", str(cfg), "--only", "prompts", "--only", "generate", "--only", "filter"]
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    traces = StageDir(tmp_path / "killed" / "run" / "02_traces")
    deadline = time.time() + 120
    while len(traces.done_shards()) < 3 and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(traces.done_shards()) < 20, "the kill must land before generation finished"
    assert distill(*args[3:]).returncode == 0

    def rows(root, stage):
        table = pq.read_table([str(p) for p in StageDir(root / "run" / stage).parts()])
        return sorted(zip(table["id"].to_pylist(), table["sample_idx"].to_pylist(), table["completion"].to_pylist()))

    for stage in ("02_traces", "03_curated"):
        got, want = rows(tmp_path / "killed", stage), rows(tmp_path / "ref", stage)
        assert got == want and len(set(got)) == len(got)
