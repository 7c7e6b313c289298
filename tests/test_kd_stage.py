import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from distill.errors import DistillError
from distill.kd.check import same_tokenizer
from distill.kd.config import KDConfig
from distill.kd.stage import run
from distill.toy.students import build_student
from tests.kd_fixtures import TRAINING, kd_fields, models, prompts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("kd")
    teacher, student = models(root)
    return teacher, student, prompts(root)


def test_a_teacher_with_another_tokenizer_or_template_is_refused_before_any_compute(world, tmp_path):
    from transformers import AutoTokenizer

    teacher, student, inp = world
    other = build_student("qwen2", tmp_path / "qwen2", size="micro")  # the toy Qwen2 family: other special tokens
    out = tmp_path / "kd"
    with pytest.raises(DistillError, match=r"student .* vs teacher .*qwen2: different vocabularies \(\d+ vs \d+ tokens"):
        run(KDConfig(**kd_fields(other, student)), inp, out)
    assert not out.exists(), "refused before the run directory is made"

    s, t = AutoTokenizer.from_pretrained(student), AutoTokenizer.from_pretrained(teacher)
    same_tokenizer(s, t, "s", "t")
    t.chat_template = t.chat_template.replace("<|start_header_id|>", "<|start_header_id|> ")
    with pytest.raises(DistillError, match=r"s vs teacher t: different chat templates .* from character \d+"):
        same_tokenizer(s, t, "s", "t")


def test_a_few_kd_steps_lower_the_kl_to_the_teacher_on_heldout_prompts(world, tmp_path):
    teacher, student, inp = world
    out = tmp_path / "kd"
    summary = run(KDConfig(**kd_fields(teacher, student)), inp, out, threads=1)

    start, end = summary["heldout_start"], summary["heldout_end"]
    assert (start["step"], end["step"]) == (0, 6)
    assert end["kl_to_teacher"] < 0.5 * start["kl_to_teacher"]
    assert summary["prompts"] == 32 and summary["heldout"] == 8 and summary["steps"] == 6
    assert 0 < summary["tokens_generated"] <= 6 * 4 * 24 < summary["tokens_trained"]

    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train] == [2, 4, 6]
    assert all(r["divergence"] > 0 and 0 < r["sampled_length"] <= 24 for r in train)
    assert [r["step"] for r in rows if r["split"] == "heldout"] == [0, 6]

    assert set(load_file(str(out / "model" / "model.safetensors"))) == set(load_file(str(student / "model.safetensors")))
    card = (out / "model" / "README.md").read_text()
    assert "reverse KL" in card and str(teacher) in card and str(inp.resolve()) in card
    assert run(KDConfig(**kd_fields(teacher, student)), inp, out) == summary  # done: a no-op
    with pytest.raises(DistillError, match="another config .*beta"):
        run(KDConfig(**kd_fields(teacher, student, beta=0.5)), inp, out)


def test_a_token_budget_stops_training():
    cfg = KDConfig(**kd_fields("t", "s", budget_tokens=1, training={**TRAINING, "max_steps": 100}))
    from distill.kd.trainer import Ledger

    ledger = Ledger(budget_tokens=cfg.budget_tokens)
    ledger.on_train_begin(None, None, None)
    ledger.tokens_generated = 1
    control = type("Control", (), {"should_training_stop": False, "should_save": False})()
    ledger.on_step_end(None, None, control)
    assert control.should_training_stop and control.should_save


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint_and_matches_an_uninterrupted_one(world, tmp_path):
    teacher, student, inp = world
    cfg = KDConfig(**kd_fields(teacher, student, heldout=0))
    whole = run(cfg, inp, tmp_path / "whole", threads=1)

    out = tmp_path / "killed"
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("kd_kill.py")), cfg.model_dump_json(), str(inp), str(out), "4"], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert (out / "checkpoints" / "checkpoint-3").exists() and not (out / "done").exists()

    resumed = run(cfg, inp, out, threads=1)
    assert resumed["resumed_from"] == "checkpoint-3" and resumed["steps"] == whole["steps"]
    assert resumed["tokens_generated"] == whole["tokens_generated"] and resumed["tokens_trained"] == whole["tokens_trained"]
    a, b = load_file(str(tmp_path / "whole" / "model" / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4, 6]
