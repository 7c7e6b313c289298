"""N4: the LoRA merge never runs inside the training job (a ZeRO-3 from_pretrained there broadcasts over the group
while the other ranks wait at a barrier: a hang). The launched ZeRO-3 LoRA run is tests/test_launch_configs.py."""

import pytest
import torch.distributed as dist

from distill.errors import DistillError
from distill.sft.merge import merge_adapter


def test_merge_refuses_to_run_inside_a_process_group(tmp_path):
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        with pytest.raises(DistillError, match="outside the training job"):
            merge_adapter("no-model-needed", None, None, tmp_path / "adapter")
    finally:
        dist.destroy_process_group()


def test_merge_refuses_under_transformers_zero3_config(tmp_path):
    pytest.importorskip("deepspeed")
    from transformers.integrations import HfDeepSpeedConfig

    zero3 = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})  # noqa: F841 (kept alive: a weakref)
    with pytest.raises(DistillError, match="outside the training job"):
        merge_adapter("no-model-needed", None, None, tmp_path / "adapter")

