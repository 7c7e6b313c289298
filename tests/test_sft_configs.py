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
