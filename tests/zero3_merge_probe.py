"""Under torchrun: two ranks in a DeepSpeed (gloo) process group with transformers' ZeRO-3 config alive, as a
ZeRO-3 LoRA run's processes are when training ends. Rank 0 merges the adapter as the sft stage does (merge_outside),
rank 1 returns at once. Each rank writes REPORTS/rank-N.json: what the training process had while the merge ran.
    python -m torch.distributed.run --nproc_per_node 2 tests/zero3_merge_probe.py BASE ADAPTER OUT REPORTS
"""

import json
import sys
from pathlib import Path

import deepspeed
import torch.distributed as dist
from transformers.integrations import HfDeepSpeedConfig
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from distill.sft.merge import merge_outside

base, adapter, out, reports = sys.argv[1:5]
deepspeed.init_distributed(dist_backend="gloo")
zero3 = HfDeepSpeedConfig({"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1})  # held, as TrainingArguments holds it
context = {"rank": dist.get_rank(), "process_group": dist.is_initialized(), "zero3": is_deepspeed_zero3_enabled()}
if dist.get_rank() == 0:
    merge_outside(base, None, Path(adapter), Path(out))
Path(reports, f"rank-{context['rank']}.json").write_text(json.dumps(context))
