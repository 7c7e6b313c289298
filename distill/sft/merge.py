"""The LoRA merge, in a fresh process outside the training job: base + saved adapter -> model/, a plain checkpoint.

Under `accelerate launch` the training processes hold the process group and, with ZeRO-3, transformers' global
DeepSpeed config: a from_pretrained there builds the base under deepspeed.zero.Init, which broadcasts every
parameter over the group while the other ranks are elsewhere (a hang until the watchdog kills the job). A fresh
interpreter without the launcher's variables has neither; it loads, merges and saves on the CPU.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from distill.errors import DistillError

# What torchrun / accelerate launch put in a worker's environment; the merge process starts without them.
LAUNCHER_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE", "ROLE_RANK",
                 "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
LAUNCHER_PREFIXES = ("ACCELERATE_", "FSDP_", "TORCHELASTIC_")


def merge_outside(model_path: str, init_kwargs: dict | None, adapter: Path, model_dir: Path) -> None:
    """Merge `adapter` (a saved trainer output: adapter + tokenizer) into `model_path` into `model_dir`, in a new process."""
    spec = {"model": model_path, "init_kwargs": init_kwargs, "adapter": str(adapter), "out": str(model_dir)}
    env = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARS and not k.startswith(LAUNCHER_PREFIXES)}
    rc = subprocess.run([sys.executable, "-m", "distill.sft.merge", json.dumps(spec)], env=env).returncode
    if rc:
        raise DistillError(f"{adapter}: merging the LoRA adapter failed (exit {rc}, its error is above); rerun to merge again")


def merge_adapter(model_path: str, init_kwargs: dict | None, tokenizer, adapter: Path):
    """Base + saved adapter, merged in this process, which must not be part of a distributed job."""
    import torch.distributed as dist
    from peft import PeftModel
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    from distill.sft.stage import load_model

    if dist.is_initialized() or is_deepspeed_zero3_enabled():
        raise DistillError(f"{adapter}: the LoRA merge runs outside the training job (merge_outside), not in a process group")
    base = load_model(model_path, init_kwargs, tokenizer, untied=True)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()


def save_atomically(model, tokenizer, model_dir: Path) -> None:
    tmp = model_dir.with_name(f".{model_dir.name}-tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)


def main(spec: dict) -> None:
    from transformers import AutoTokenizer

    adapter = Path(spec["adapter"])
    tokenizer = AutoTokenizer.from_pretrained(adapter)  # the training tokenizer: think tokens, template, eos
    save_atomically(merge_adapter(spec["model"], spec["init_kwargs"], tokenizer, adapter), tokenizer, Path(spec["out"]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
