"""A tiny pipeline with a kd stage end to end: SFT, on-policy KD and its matched-time SFT control, eval, report."""

import json

import pytest

from distill.pipeline import load_pipeline, run_pipeline
from distill.progress import run_lines

STEPS = {"learning_rate": 3e-3, "max_steps": 4, "per_device_train_batch_size": 8, "logging_steps": 2, "save_steps": 2}


def student(name: str, size: str, **kw) -> dict:
    return {"name": name, "model": f"toy:llama:{size}", "chat_template": "distill/templates/llama3.jinja", "max_length": 256, "training": STEPS, **kw}


@pytest.mark.slow
def test_the_report_compares_baseline_sft_and_sft_plus_kd_with_compute_per_stage(tmp_path, capfd):
    import yaml

    cfg = {
        "name": "tiny-kd",
        "run_dir": str(tmp_path / "run"),
        "prompts": {"source": "toy", "toy": {"n": 40, "seed": 1}, "rows_per_shard": 20, "decontaminate": {"benchmarks": ["toy_arith"]}},
        "generate": {"backend": "toy", "samples_per_prompt": 1, "sampling": {"max_tokens": 160}},
        "filter": {"select": {"policy": "first"}},
        "sft": {"students": [student("teacher", "tiny"), student("micro", "micro"), student("micro-base", "micro", data_format="answer_only")]},
        "kd": {
            "runs": [
                {
                    "name": "micro-kd",
                    "student": "sft:micro",
                    "teacher": "sft:teacher",
                    "heldout": 4,
                    "max_completion_length": 16,
                    "sft_control": {},
                    "training": {"max_steps": 3, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "eval_steps": 3, "logging_steps": 1, "save_steps": 3},
                }
            ]
        },
        "eval": {
            "benchmarks": ["toy_arith"],
            "overrides": {"toy_arith": {"limit": 6, "k": 2}},
            "max_tokens": 48,
            "bootstrap_resamples": 200,
            "models": [
                {"name": "micro", "model": "sft:micro", "baseline": "micro-base"},
                {"name": "micro-base", "model": "sft:micro-base", "baseline_of": "micro"},
                {"name": "micro-kd", "model": "kd:micro-kd"},
                {"name": "micro-kd-sft-control", "model": "kd:micro-kd-sft-control"},
            ],
        },
    }
    path = tmp_path / "tiny_kd.yaml"
    path.write_text(yaml.safe_dump(cfg))
    report = run_pipeline(load_pipeline(path), workers=1)

    run = tmp_path / "run"
    # The trainer prints nothing over the run's display; its metrics go to the kd log, one line per logging step
    # and per held-out evaluation (as sft's); status lists the stage.
    kd_log = (run / "logs" / "kd.log").read_text()
    assert "completions/mean_length" not in capfd.readouterr().err + kd_log
    assert "train step 1/3  divergence " in kd_log and "heldout step 3/3  kl_to_teacher " in kd_log
    [kd_lines] = [lines for stage, lines in run_lines(run) if stage == "kd"]
    assert [(line.name, line.state, line.done) for line in kd_lines] == [("micro-kd", "done", 3), ("micro-kd-sft-control", "done", kd_lines[1].done)]
    assert kd_lines[0].info.startswith("held-out KL ") and " -> " in kd_lines[0].info and kd_lines[1].done >= 1
    kd = json.loads((run / "04_kd" / "micro-kd" / "summary.json").read_text())
    control = json.loads((run / "04_kd" / "micro-kd-sft-control" / "summary.json").read_text())
    assert kd["steps"] == 3 and kd["tokens_generated"] > 0
    assert control["steps"] >= 1 and control["train_seconds"] > 0

    md = (report.parent / "report.md").read_text()
    section = md.split("## After SFT: on-policy distillation")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines() if line.startswith("| micro |")]
    stages = [(r[2], r[3], r[5]) for r in rows]
    assert stages == [
        ("baseline", "micro-base", ""),
        ("SFT", "micro", "micro-base"),
        ("SFT + on-policy KD", "micro-kd", "micro"),
        ("SFT + more SFT (same time)", "micro-kd-sft-control", "micro"),
        ("SFT + on-policy KD", "micro-kd", "micro-kd-sft-control"),
    ]
    assert all(r[7].startswith("[") for r in rows[1:]), "each step has a paired 95% CI"
    assert rows[2][8] == f"{kd['tokens_generated']:,}" and rows[2][9] == f"{kd['tokens_trained']:,}"
    assert rows[3][9] == f"{control['tokens_seen']:,}"
    assert 'id="table-kd"' in report.read_text()
