"""What a run records about where it ran: the machine (CPU, float-relevant vector flags, Python, torch), the
command line of each start, and wall and CPU seconds per stage."""

import json
import platform
import time

from distill.machine import FLOAT_FLAGS, command_line, describe, invocations, record_invocation, summary
from distill.pipeline import StageTimes
from distill.report.plots import score_axis_top


def test_describe_names_the_cpu_its_float_flags_python_and_torch():
    m = describe()
    assert m["cpu"] and m["cores"] >= 1 and m["python"] == platform.python_version()
    assert set(m["float_flags"]) <= set(FLOAT_FLAGS)
    assert m["torch"].split("+")[0].count(".") == 2 and m["torch_cpu_kernels"] and m["torch_threads"] >= 1
    line = summary(m)
    assert line.startswith(m["cpu"]) and f"Python {m['python']}" in line and f"({m['torch_cpu_kernels']} kernels" in line
    assert summary({**m, "float_flags": []}).count("no vector flags read") == 1


def test_each_start_is_appended_and_a_cut_line_is_skipped(tmp_path):
    record_invocation(tmp_path, ["/venv/bin/distill", "run", "pipelines/toy.yaml", "--set", "run_dir=runs/a b"])
    with (tmp_path / "logs" / "invocations.jsonl").open("a") as f:
        f.write('{"time": "2026-')  # a kill in mid-write
    record_invocation(tmp_path, ["/venv/bin/distill", "run", "pipelines/toy.yaml"])
    (first, second) = invocations(tmp_path)
    assert command_line(first["argv"]) == "distill run pipelines/toy.yaml --set 'run_dir=runs/a b'"
    assert command_line(second["argv"]) == "distill run pipelines/toy.yaml" and second["machine"]["cpu"] == describe()["cpu"]
    assert invocations(tmp_path / "nothing") == []


def test_stage_times_add_wall_and_cpu_seconds_over_attempts(tmp_path):
    times = StageTimes(tmp_path)
    for _ in range(2):
        times.start("sft")
        t = time.process_time()
        while time.process_time() - t < 0.2:  # busy: CPU time, not sleep
            pass
        times.stop("sft")
    entry = json.loads((tmp_path / "logs" / "times.json").read_text())["sft"]
    assert entry["attempts"] == 2 and entry["cpu_seconds"] >= 0.3 and entry["seconds"] >= entry["cpu_seconds"] - 0.1


def test_score_axis_starts_at_zero_and_scales_to_the_data():
    assert score_axis_top([3.0, 1.2]) < 10  # a few percent is not flattened against 0-100
    assert 100 < score_axis_top([99.5]) <= 112  # room for the label above a whisker near 100
    assert score_axis_top([]) == score_axis_top([0.0]) == 5.0  # all zero: an axis still, not a point
