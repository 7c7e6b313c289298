"""SFT throughput: `distill sft` against plain TRL on the same tiny model, data and settings, in one run.

    python bench/sft_throughput.py [--steps 60] [--rows 600] [--threads 1]

For each setting (padded batches, bfd packing) it trains the toy Qwen2 student with a bare
`trl.SFTTrainer` and through `distill.sft.stage.run`, alternating, best of `--repeats`, and prints
non-padding tokens per second for both and their ratio (target >= 0.95: the check, metrics file and
model card must cost next to nothing), and the share of real tokens in the batches the trainer
builds (target >= 0.95 with packing; padding-free packing puts no pad token in a batch at all, so
`fill` also shows how full the max_length bins are).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402
from trl import SFTTrainer  # noqa: E402

from distill.sft.config import StudentConfig, sft_config  # noqa: E402
from distill.sft.data import curated_dataset  # noqa: E402
from distill.sft.stage import resolve_model, run  # noqa: E402
from tests.sft_fixtures import write_curated  # noqa: E402

MAX_LENGTH = 512


def training(steps: int, packing: bool) -> dict:
    return {
        "max_steps": steps,
        "per_device_train_batch_size": 8 if not packing else 2,  # 2 bins of 512 ~ 8 traces of ~135 tokens
        "learning_rate": 1e-3,
        "logging_steps": 10,
        "save_steps": 10_000,
        "packing": packing,
        "seed": 0,
    }


def plain_trl(base: str, template: str, conversations, train: dict, out: Path) -> tuple[float, float, SFTTrainer]:
    """The bare library, as a user would write it with TRL alone: same SFTConfig, template, data. Returns
    (training-loop tokens/s, end-to-end seconds including load, tokenization and save, the trainer)."""
    start = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(base)
    tok.chat_template = Path(template).read_text()
    args = sft_config(train, out, max_length=MAX_LENGTH, assistant_only_loss=True)
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base),
        args=args,
        train_dataset=Dataset.from_list([{"messages": m} for m in conversations]),
        processing_class=tok,
    )
    loop = time.perf_counter()
    trainer.train()
    rate = trainer.state.num_input_tokens_seen / (time.perf_counter() - loop)
    trainer.save_model(str(out / "model"))
    return rate, time.perf_counter() - start, trainer


def through_distill(cfg: StudentConfig, inp: Path, out: Path) -> tuple[float, float]:
    """The same through `distill sft` (check, metrics file, model card included)."""
    start = time.perf_counter()
    summary = run(cfg, inp, out)
    return summary["tokens_seen"] / summary["train_seconds"], time.perf_counter() - start


def batch_shares(trainer: SFTTrainer, batches: int = 20) -> tuple[float, float | None]:
    """(real tokens / tensor positions, packed bin fill = real tokens / (bins x max_length)) over the first batches."""
    real = positions = 0
    for i, batch in enumerate(trainer.get_train_dataloader()):
        if i == batches:
            break
        ids = batch["input_ids"]
        real += int(batch["attention_mask"].sum()) if "attention_mask" in batch else ids.numel()
        positions += ids.numel()
    bins = min(batches, len(trainer.get_train_dataloader())) * trainer.args.per_device_train_batch_size
    return real / positions, real / (bins * MAX_LENGTH) if trainer.args.packing else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    tmp = Path(tempfile.mkdtemp(prefix="sft-bench-"))
    inp = write_curated(tmp / "03_curated", a.rows)
    conversations = curated_dataset(inp, "reasoning", tmp / "cache")[0]["messages"]
    template = "distill/templates/qwen2.jinja"
    base = resolve_model("toy:qwen2", tmp / "shared")

    table = Table(title=f"SFT throughput, toy Qwen2 ({a.steps} steps, {a.threads} thread(s), best of {a.repeats})")
    for col in ("setting", "TRL tok/s", "distill tok/s", "ratio", "TRL e2e s", "distill e2e s", "non-pad share", "bin fill"):
        table.add_column(col, justify="right")
    for packing in (False, True):
        train = training(a.steps, packing)
        cfg = StudentConfig(name="bench", model=base, chat_template=template, max_length=MAX_LENGTH, training=train)
        trl_rate = distill_rate = 0.0
        trl_s = distill_s = float("inf")
        for r in range(a.repeats):  # alternate, so load from other users of the machine hits both alike
            rate, seconds, trainer = plain_trl(base, template, conversations, train, tmp / f"trl-{packing}-{r}")
            trl_rate, trl_s = max(trl_rate, rate), min(trl_s, seconds)
            rate, seconds = through_distill(cfg, inp, tmp / f"distill-{packing}-{r}")
            distill_rate, distill_s = max(distill_rate, rate), min(distill_s, seconds)
        share, fill = batch_shares(trainer)
        table.add_row(
            "bfd packing" if packing else "padded batches",
            f"{trl_rate:,.0f}",
            f"{distill_rate:,.0f}",
            f"{distill_rate / trl_rate:.3f}",
            f"{trl_s:.1f}",
            f"{distill_s:.1f}",
            f"{share:.3f}",
            "-" if fill is None else f"{fill:.3f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
