"""What `distill run` and `distill status` print fits 80 columns (and uses 120 when there), keeping
every name whole, the CIs, the counts and the ETA; the closing results table goes to stdout."""

import io
import json
import time

import pytest
from rich.console import Console

from distill import console
from distill.progress import Line
from distill.status import status_lines

PAIRS = [
    {"distilled": name, "baseline": f"{name}-answer-only", "benchmark": "toy_arith", "n_problems": 250, "k": 4,
     "distilled_pass1": 0.251, "distilled_ci": [0.21, 0.295], "baseline_pass1": 0.0, "baseline_ci": [0.0, 0.0151],
     "diff": 0.251, "diff_ci": [0.206, 0.297], "p_not_better": 0.0}
    for name in ("toy-llama", "toy-qwen2-with-a-very-long-student-name-indeed")
]


@pytest.mark.parametrize("width", [80, 120])
def test_the_closing_table_fits_and_keeps_names_and_intervals(width):
    lines = console.summary_lines({"pairs": PAIRS}, width)
    text = "\n".join(lines)
    assert max(len(line) for line in lines) <= width, text
    for name in ("toy-llama", "toy-llama-answer-only", "toy-qwen2-with-a-very-long-student-name-indeed-answer-only"):
        assert name in text
    assert "25.1 [21.0, 29.5]" in text and "0.0 [0.0, 1.5]" in text and "+25.1 [+20.6, +29.7]" in text


def test_the_closing_table_goes_to_stdout(tmp_path, capsys):
    summary = tmp_path / "report" / "summary.json"
    summary.parent.mkdir()
    summary.write_text(json.dumps({"pairs": PAIRS}))
    console.print_summary(summary)
    out = capsys.readouterr()
    assert "toy-llama-answer-only" in out.out and "[21.0, 29.5]" in out.out
    assert "toy-llama" not in out.err


@pytest.mark.parametrize("width", [80, 120])
def test_live_lines_keep_eta_and_counts(width, monkeypatch):
    buf = io.StringIO()
    monkeypatch.setattr(console, "CONSOLE", Console(file=buf, width=width, height=40, force_terminal=False))
    lines = [
        Line(name="toy-qwen2-answer-only", unit="steps", done=1234, total=2000, tokens=1_234_567, state="running",
             eta_s=754, info="loss 0.231 · 12,345 tok/s · sampled 512 tok"),
        Line(name="02_traces", unit="shards", done=12, total=40, rows=123_456, tokens=45_678_901, state="running", eta_s=3725,
             info="$12.34 spent, ~$41.13 projected"),
    ]
    with console.stage_display("sft", lambda: lines):
        pass
    shown = buf.getvalue().splitlines()
    assert max(len(s) for s in shown) <= width, "\n".join(shown)
    text = " ".join(" ".join(shown).split())  # a line's tail may wrap onto the next line
    for part in ("toy-qwen2-answer-only", "1,234/2,000 steps", "ETA 12:34", "1.2M tok", "12/40 shards", "123,456 rows", "ETA 1:02:05", "45.7M tok"):
        assert part in text, (part, text)


def _run_with_a_training_student(tmp_path):
    run = tmp_path / "run"
    name = "toy-qwen2-answer-only-sft-control"
    (run / "04_sft" / name).mkdir(parents=True)
    (run / "pipeline.yaml").write_text(f"name: x\nsft: {{students: [{{name: {name}}}]}}\n")
    now = time.time()
    rows = [{"step": s, "max_steps": 2000, "loss": 0.5, "tokens_seen": 600_000 * s, "tokens_per_s": 12345, "time": now - 10 + s}
            for s in (1, 2)]
    (run / "04_sft" / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run, name


@pytest.mark.parametrize("width", [80, 120])
def test_status_fits_and_keeps_eta_and_counts(tmp_path, width):
    run, name = _run_with_a_training_student(tmp_path)
    lines, problems = status_lines(run, width)
    text = "\n".join(lines)
    assert not problems
    assert max(len(s) for s in lines) <= width, text
    assert name in text and "2/2,000 steps" in text and "running" in text and "1.2M" in text
    assert "33:18" in text  # 1,998 steps left at one step a second
    assert "loss 0.500" in text and "1.0 steps/s" in text
