from pathlib import Path

import pytest
import yaml

from distill.config import load
from distill.sft.config import StudentConfig

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = sorted((ROOT / "pipelines" / "sft").glob("*.yaml"))
R1_STUDENTS = {
    "Qwen/Qwen2.5-Math-1.5B",
    "Qwen/Qwen2.5-Math-7B",
    "Qwen/Qwen2.5-14B",
    "Qwen/Qwen2.5-32B",
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.3-70B-Instruct",
}


def test_every_r1_student_has_a_config():
    assert R1_STUDENTS <= {yaml.safe_load(p.read_text())["model"] for p in STUDENTS}


@pytest.mark.parametrize("path", STUDENTS, ids=lambda p: p.name)
def test_shipped_student_config_validates_and_says_how_to_run_it(path):
    cfg = load(StudentConfig, path)
    cfg.check_training()  # constructs the trl.SFTConfig
    assert cfg.name == path.stem
    assert cfg.template_path().is_file()
    header = path.read_text().split("\nname:")[0]
    assert f"pipelines/sft/{path.name}" in header and "distill" in header
    launcher = next((w for w in header.split() if w.startswith("pipelines/accelerate/") or w.startswith("pipelines/slurm/")), None)
    assert launcher and (ROOT / launcher).is_file()


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines" / "accelerate").glob("*.yaml")), ids=lambda p: p.name)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    assert load_config_from_file(str(path)).num_processes >= 2


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines" / "sft" / "toy").glob("*.yaml")), ids=lambda p: p.name)
def test_toy_student_configs_validate(path):
    cfg = load(StudentConfig, path)
    assert cfg.name == path.stem and cfg.model.startswith("toy:")
    assert (cfg.data_format == "answer_only") == path.stem.endswith("answer-only")
    assert f"pipelines/sft/toy/{path.name}" in path.read_text().split("\nname:")[0]


def test_exponent_floats_without_a_dot_are_floats_in_files_and_overrides(tmp_path):
    """PyYAML alone reads `2e-5` as text, which reached the optimizer and crashed after the model loaded."""
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodel: toy:qwen2\nchat_template: distill/templates/qwen2.jinja\ntraining:\n  learning_rate: 2e-5\n  weight_decay: 1E-2\n")
    cfg = load(StudentConfig, path, ["training.adam_epsilon=1e-8", "training.adam_beta2=9.5e-1", "name=1e5x"])
    assert cfg.training["learning_rate"] == 2e-5 and cfg.training["weight_decay"] == 0.01
    assert cfg.training["adam_epsilon"] == 1e-8 and cfg.training["adam_beta2"] == 0.95 and cfg.name == "1e5x"


@pytest.mark.parametrize("path", STUDENTS, ids=lambda p: p.name)
def test_student_config_states_its_batch_arithmetic(path):
    """Sequences per step = per GPU x accumulation x GPUs as stated, and the stated steps per epoch at 800k."""
    import re

    cfg = load(StudentConfig, path)
    text = path.read_text()
    m = re.search(r"Batch: (\d+) sequences per optimizer step = (\d+) per GPU x (\d+) accumulation x (\d+) GPUs", text)
    assert m, "state the batch as 'Batch: N sequences per optimizer step = A per GPU x B accumulation x C GPUs'"
    seqs, per_gpu, accum, gpus = map(int, m.groups())
    assert (per_gpu, accum) == (cfg.training["per_device_train_batch_size"], cfg.training["gradient_accumulation_steps"])
    assert seqs == per_gpu * accum * gpus
    steps = int(re.search(r"Steps per epoch at R1's 800k samples: ([\d,]+)", text).group(1).replace(",", ""))
    assert steps == -(-800_000 // seqs)
    # Sequences, not packed bins, as the cited recipe counts them; no row is cut to max_length.
    assert cfg.training.get("packing") is False and cfg.training.get("padding_free") is True


def test_students_are_saved_with_the_positions_the_eval_asks_for():
    """vLLM refuses a max_model_len beyond max_position_embeddings: each student's (native or extended) must cover it."""
    from distill.pipeline import load_pipeline
    from tests.real_students import MODELS

    pipeline = load_pipeline(ROOT / "pipelines" / "r1_distill.yaml")
    students = {s.name: s for s in pipeline.sft.students}
    checked = 0
    for spec in pipeline.eval.models:
        if not spec.model.startswith("sft:"):
            continue
        student = students[spec.model.removeprefix("sft:")]
        extended = (student.training.get("model_init_kwargs") or {}).get("max_position_embeddings")
        native = next(m.max_position_embeddings for name, m in MODELS.items() if student.model.lower().endswith(name))
        want = spec.max_model_len
        assert want and (extended or native) >= want >= student.max_length, spec.name
        checked += 1
    assert checked == 6


def test_parsing_every_config_loads_neither_torch_nor_trl():
    """`distill run --only generate` on a vLLM node parses every student config without the training stack."""
    import subprocess
    import sys

    code = (
        "import sys; from distill.pipeline import load_pipeline; "
        "load_pipeline('pipelines/r1_distill.yaml'); "
        "print(sorted(m for m in ('torch', 'trl', 'transformers', 'peft') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
