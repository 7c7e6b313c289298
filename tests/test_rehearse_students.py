"""Every shipped student config (pipelines/sft/*.yaml) builds trl's SFTTrainer and trains on this CPU as written:
padding-free without packing, its max_length, gradient checkpointing, bf16, its batch and schedule; only the
changes of distill.rehearsal are made (tiny body of the real architecture with the real tokenizer, sdpa,
two steps of one micro-batch)."""

import pytest

from distill import rehearsal
from distill.sft.data import curated_dataset, tokenized_dataset
from distill.sft.stage import build_trainer, load_model, load_tokenizer, run, training_args
from tests import rehearsals
from tests.sft_fixtures import write_curated


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_curated(tmp_path_factory.mktemp("curated") / "03_curated", 8, digits=1)


def test_shipped_student_builds_trls_sft_trainer(models, curated, tmp_path):
    """trl 1.16 raises in SFTTrainer.__init__ for padding_free without packing when max_length is set (finding N1);
    every other student config builds it in test_shipped_student_takes_two_optimizer_steps (slow)."""
    cfg = rehearsals.student_config(rehearsals.ROOT / "pipelines" / "sft" / "qwen2.5-math-1.5b.yaml", models)
    assert cfg.training["padding_free"] and not cfg.training["packing"] and cfg.max_length >= 16384
    tokenizer = load_tokenizer(cfg.model, cfg)
    conversations, _ = curated_dataset(curated, cfg.data_format, tmp_path / "data")
    args = training_args(cfg, tmp_path)
    rows, _ = tokenized_dataset(conversations, "rows", tokenizer, cfg.max_length, tmp_path / "data", args.dataset_num_proc)
    init_kwargs, args.model_init_kwargs = args.model_init_kwargs, None
    trainer = build_trainer(cfg, args, rows, load_model(cfg.model, init_kwargs, tokenizer, untied=cfg.lora is not None), tokenizer)
    assert trainer.padding_free and trainer.args.bf16 and trainer.args.gradient_checkpointing


@pytest.mark.slow
@pytest.mark.parametrize("path", rehearsals.STUDENT_CONFIGS, ids=lambda p: p.stem)
def test_shipped_student_takes_two_optimizer_steps(path, models, curated, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    cfg = rehearsals.student_config(path, models)
    summary = run(cfg, curated, tmp_path / "out", threads=1)
    assert summary["steps"] == rehearsal.REHEARSAL_STEPS and summary["rows_too_long"] == 0
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / "model", dtype=torch.bfloat16)
    base = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.bfloat16)
    assert trained.dtype == torch.bfloat16  # trained in the shipped dtype
    before = dict(base.named_parameters())
    moved = [n for n, p in trained.named_parameters() if n in before and p.shape == before[n].shape and not torch.equal(p, before[n])]
    assert moved, "no parameter changed in two optimizer steps"
