"""`accelerate launch` with two CPU processes and the shipped accelerate configs, for `distill sft` and `distill kd`.

Each launch runs a toy student with the shipped config changed only through distill.rehearsal, and checks what a
cluster run depends on: the process group is the trainer config's own (N2), the saved model equals a one-process
run on the same data and seed, and a LoRA run merges outside the training job (N4). Not runnable here (the
reasons are with each): fsdp.yaml, and LoRA under ZeRO-3.
"""

import json
import os
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from distill import rehearsal
from distill.kd.config import KDConfig
from distill.sft.config import StudentConfig
from distill.sft.stage import run as run_sft
from tests.kd_fixtures import kd_fields, models, prompts
from tests.launch import rank_reports, run_launch
from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}
DDP_TIMEOUT = 5400  # not the default 1800: a group made before the trainer's config would not carry it

# The only changes these launches make to a shipped accelerate config ("accelerate") or to the student's training
# keys ("training"), each with its reason. FSDP is absent: accelerate 1.16 turns FSDP on only for a MULTI_GPU/XPU/...
# state (accelerate/state.py, AcceleratorState.__init__), and a CPU process is MULTI_CPU or NO.
# The toy student's training keys a launch on CPU needs (the student is the tests' own, not a shipped config); the
# shipped accelerate configs change only through distill.rehearsal (num_processes, mixed_precision).
# FSDP is absent: accelerate 1.16 turns FSDP on only for a MULTI_GPU/XPU/... state (accelerate/state.py,
# AcceleratorState.__init__), and a CPU process is MULTI_CPU or NO.
CPU_LAUNCH_TRAINING = {
    "multi_gpu.yaml": {},
    "deepspeed_zero3.yaml": {
        "use_cpu": (False, "accelerate turns DeepSpeed on only when the trainer is not use_cpu (state.py, "
                           "AcceleratorState.__init__); distill sets use_cpu when there is no GPU"),
        "ddp_backend": ("gloo", "with use_cpu off and no GPU accelerate finds no backend; DeepSpeed's CPU accelerator uses gloo"),
    },
}


def launch_config(name: str, tmp_path: Path) -> Path:
    """The shipped accelerate config `name` as the CPU launches run it: 2 processes, fp32 (distill.rehearsal)."""
    shipped = yaml.safe_load((ROOT / "pipelines" / "accelerate" / name).read_text())
    config = rehearsal.apply(shipped, "accelerate", {"num_processes": 2, "mixed_precision": "no"})
    assert not rehearsal.unlisted_changes(shipped, config, "accelerate")
    path = tmp_path / name
    path.write_text(yaml.safe_dump(config))
    return path


def launch_training(name: str) -> dict:
    return {k: value for k, (value, _) in CPU_LAUNCH_TRAINING[name].items()}


def accelerate_launch(config: Path, args: list[str], cwd: Path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = run_launch([accelerate, "launch", "--config_file", str(config), "-m", "distill.cli", *args, "--threads", "1"], timeout=900, cwd=cwd, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def student(per_device: int, lora: bool, **training) -> dict:
    training = {"max_steps": 4, "per_device_train_batch_size": per_device, "logging_steps": 2, "save_steps": 2, "learning_rate": 1e-3,
                "ddp_timeout": DDP_TIMEOUT, **training}
    return {"name": "launched", "model": "toy:llama", "chat_template": "distill/templates/llama3.jinja", "max_length": 256,
            "lora": LORA if lora else None, "training": training}


def same_weights(a: Path, b: Path, atol: float) -> None:
    x, y = load_file(str(a)), load_file(str(b))
    assert x.keys() == y.keys()
    worst = max((x[k] - y[k]).abs().max().item() for k in x)
    assert worst <= atol, f"{a} vs {b}: max abs difference {worst}"


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_curated(tmp_path_factory.mktemp("launch") / "03_curated", 40)


@pytest.fixture(scope="module")
def one_process(curated, tmp_path_factory):
    """The one-process runs the launches are compared with: batch 4 in one process = batch 2 in each of two."""
    root = tmp_path_factory.mktemp("one-process")
    return {lora: (run_sft(StudentConfig(**student(4, lora)), curated, root / f"lora-{lora}", threads=1), root / f"lora-{lora}")
            for lora in (False, True)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, lora, distributed_type",
    [("multi_gpu.yaml", False, "MULTI_CPU"), ("multi_gpu.yaml", True, "MULTI_CPU"), ("deepspeed_zero3.yaml", False, "DEEPSPEED")],
    ids=["ddp", "ddp-lora", "zero3"],
)
def test_sft_launch_saves_what_one_process_saves(config, lora, distributed_type, curated, one_process, tmp_path):
    spec = student(2, lora, **launch_training(config))
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "04_sft" / "launched"
    accelerate_launch(launch_config(config, tmp_path), ["sft", "-c", "student.yaml", "-i", str(curated), "-o", str(out)], tmp_path)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 4 and summary["distributed_type"] == distributed_type
    if distributed_type == "DEEPSPEED":  # transformers passes ddp_timeout to the group it makes off use_cpu only
        assert summary["process_group"] == {"backend": "gloo", "timeout_s": DDP_TIMEOUT}  # the trainer's config made it
    reference, reference_dir = one_process[lora]
    assert summary["tokens_seen"] == reference["tokens_seen"] and summary["trainable_params"] == reference["trainable_params"]
    # ZeRO-3 reduce-scatters the gradients, summing in another order than one process does: up to 1.9e-5 measured
    atol = 5e-5 if distributed_type == "DEEPSPEED" else 1e-5
    same_weights(out / "model" / "model.safetensors", reference_dir / "model" / "model.safetensors", atol=atol)
    if lora:  # merged by a process outside the job (distill.sft.merge), from the adapter the launch saved
        same_weights(out / "adapter" / "adapter_model.safetensors", reference_dir / "adapter" / "adapter_model.safetensors", atol=1e-5)
    base, trained = load_file(str(out / "base" / "model.safetensors")), load_file(str(out / "model" / "model.safetensors"))
    assert any(not torch.allclose(base[k], trained[k], atol=1e-4) for k in base)  # it trained: the match means something


@pytest.mark.slow
@pytest.mark.parametrize("config", ["multi_gpu.yaml", "deepspeed_zero3.yaml"], ids=["ddp", "zero3"])
def test_kd_launch_trains_on_two_processes(config, tmp_path):
    """On-policy KD samples per process, so two processes do not reproduce one process's samples: the launch is checked
    to train on both ranks under the shipped config and save a loadable student, not to equal a one-process run."""
    from transformers import AutoModelForCausalLM

    teacher, student_model = models(tmp_path)
    inp = prompts(tmp_path)
    fields = kd_fields(teacher, student_model, heldout=0)
    fields["training"] = {**fields["training"], "max_steps": 2, "per_device_train_batch_size": 2, "ddp_timeout": DDP_TIMEOUT, **launch_training(config)}
    (tmp_path / "kd.yaml").write_text(yaml.safe_dump(KDConfig(**fields).model_dump(mode="json")))
    out = tmp_path / "04_kd" / "launched"
    accelerate_launch(launch_config(config, tmp_path), ["kd", "-c", "kd.yaml", "-i", str(inp), "-o", str(out)], tmp_path)

    summary = json.loads((out / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2 and summary["tokens_generated"] > 0
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    before = AutoModelForCausalLM.from_pretrained(student_model)
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), before.state_dict().values()))


@pytest.mark.slow
def test_a_lora_merge_under_zero3_runs_outside_the_job_and_loads(tmp_path):
    """N4. LoRA training under ZeRO-3 cannot run on a CPU (peft's trainable tokens gather on CUDA only:
    peft/tuners/trainable_tokens/layer.py `_collect_token_weights`), so this probe puts two ranks where such a run's
    are when training ends: a DeepSpeed process group and transformers' ZeRO-3 config alive. Rank 0 merges as the
    stage does, rank 1 returns. An in-process merge there would build the base under zero.Init (a broadcast rank 1
    never joins: a hang); merge_adapter refuses to run with a group or the ZeRO-3 flag, so a merged model is proof
    that the merge ran outside both."""
    pytest.importorskip("deepspeed")
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from distill.sft.merge import merge_adapter
    from distill.sft.stage import load_model
    from distill.toy.students import build_student

    base = build_student("llama", tmp_path / "base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    adapter = tmp_path / "adapter"
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(load_model(str(base), None, tokenizer, untied=True), lora).save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "zero3_merge_probe.py"), str(base), str(adapter), str(tmp_path / "model"), str(tmp_path)]
    proc = run_launch(cmd, timeout=900, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = rank_reports(tmp_path)
    assert sorted(r["rank"] for r in ranks) == [0, 1] and all(r["process_group"] and r["zero3"] for r in ranks)

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    expected = merge_adapter(str(base), None, tokenizer, adapter)
    for name, tensor in expected.state_dict().items():
        assert torch.equal(merged.state_dict()[name], tensor), name
    assert not torch.equal(merged.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           load_file(str(base / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"])
