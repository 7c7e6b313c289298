"""bench/scale.py scaled down: the whole data path at two small sizes, with a kill -9 in each stage. Checks the
inputs of the printed ratios (rows, seconds, peak RSS, bytes per stage at both sizes) and that every
killed stage reran to the same rows; timings are not asserted (a shared machine)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
STAGES = ("prompts", "generate", "filter", "sft_data")


def test_scale_bench_at_two_small_sizes_with_a_kill_in_each_stage(tmp_path):
    out = tmp_path / "m.json"
    res = subprocess.run([sys.executable, "bench/scale.py", "--size", "400", "800", "--kill-each-stage", "--work", str(tmp_path / "w"),
                          "--json", str(out)], cwd=ROOT, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    m = json.loads(out.read_text())
    assert m["header"].startswith("bench/scale.py --size 400 800 --kill-each-stage")
    for size in ("400", "800"):
        for stage in STAGES:
            s = m[size][stage]
            assert s["rows"] > 0 and s["seconds"] > 0 and s["peak_mb"] > 50 and 10 < s["private_mb"] <= s["peak_mb"] * 2 and s["bytes"] > 0, (size, stage, s)
            assert s["kill"]["same_rows"], f"{stage} at {size} traces: the rerun after kill -9 gave other rows"
            assert s["kill"]["rows"] == s["rows"]
            assert 0 <= s["kill"]["units_at_kill"] <= s["kill"]["units"] and s["kill"]["units"] > 0, (size, stage, s["kill"])
        assert not list((tmp_path / "w" / f"{size}-killed" / "sft_data" / "partial").glob("*")), "the killed chunk's file was left"
    small, large = m["400"], m["800"]
    assert large["prompts"]["rows"] == 2 * small["prompts"]["rows"] == 200, "quotas: a quarter of the traces, as problems"
    assert 1.6 < large["generate"]["rows"] / small["generate"]["rows"] < 2.4
    assert large["generate"]["bytes"] > 1.5 * small["generate"]["bytes"], "R1-long traces: the bytes grow with the rows"
    assert small["filter"]["rows"] < small["generate"]["rows"], "the filter rejects some (truncated, wrong, unreadable)"
    assert "ratios 800 / 400 traces" in res.stdout and "same rows True" in res.stdout and "shards kept" in res.stdout


def test_scale_bench_runs_the_first_stages_only_and_refuses_a_gap(tmp_path):
    out = tmp_path / "m.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, "bench/scale.py", "--size", "400", "--stages", "prompts", "--work", str(tmp_path / "w"), "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert list(json.loads(out.read_text())["400"]) == ["prompts"] and "(1 of 4 stages)" in res.stdout
    gap = subprocess.run([sys.executable, "bench/scale.py", "--stages", "generate", "--work", str(tmp_path / "w2")], cwd=ROOT, capture_output=True, text=True, env=env)
    assert gap.returncode != 0 and "the path's first stages" in gap.stderr and not (tmp_path / "w2").exists()
