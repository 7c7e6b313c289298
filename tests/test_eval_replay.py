"""`distill eval --replay`: one saved sample regenerated from the eval directory's records; a sample that
does not reproduce says where it diverges and which recorded setting differs."""

import json

import typer
from typer.testing import CliRunner

from distill.eval.config import EvalConfig, ModelSpec
from distill.eval.stage import load_samples, run
from distill.stage import StageDir


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
