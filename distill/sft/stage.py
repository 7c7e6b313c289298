"""SFT of one student on the curated traces with TRL's SFTTrainer: full or LoRA, resumable, one process or many.

Output directory (04_sft/<student>/):
  config.json       the student config and its hash; a rerun with another config refuses
  base/             toy students only: the random-init model and tokenizer built from config
  data/             the curated rows as memory-mapped Arrow, tokenized once (reused on restart and by every rank)
  check.json        the pre-training check's report
  checkpoints/      trainer checkpoints; a rerun resumes from the last one
  metrics.jsonl     loss, tokens seen and tokens/s per logging step
  model/            the final model + tokenizer (LoRA merged in) with its model card README.md
  adapter/          LoRA only: the adapter alone
  summary.json      counters for the report (rows_too_long: rows dropped for exceeding max_length)
  done              written last: its existence means the student is finished
Under `accelerate launch` every process runs this function. Models are saved through the trainer on
every rank (FSDP and ZeRO-3 gather the shards); the LoRA merge then runs on the main process from the
saved adapter, offline. Other files are written by the main process only.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

from importlib.util import find_spec

from distill.errors import DistillError
from distill.generate.prompting import THINK_CLOSE, THINK_OPEN, check_round_trip
from distill.io import write_json, write_text
from distill.sft.card import model_card
from distill.sft.check import check_conversations, problems, refuse_if_broken
from distill.sft.config import StudentConfig, sft_config
from distill.sft.data import curated_dataset, sample_conversations, source_key, tokenized_dataset
from distill.sft.metrics import MetricsFile, log_instead_of_printing
from distill.stage import StageDir

log = logging.getLogger(__name__)


def run(cfg: StudentConfig, inp: Path, out: Path, *, check_only: bool = False, threads: int | None = None, callbacks: tuple = ()) -> dict:
    """Check, then train student `cfg` on curated stage `inp` into `out`; returns the summary (or the check report).

    `callbacks`: extra TrainerCallbacks (the kd stage's matched-compute control stops SFT on a time budget).
    """
    import torch
    from accelerate import PartialState

    cfg.check_training()
    inp, out = Path(inp), Path(out)
    if threads:
        torch.set_num_threads(threads)
    state = PartialState(cpu=not torch.cuda.is_available())
    if not check_only:
        require_gpu_packages(cfg)
        StageDir(out).prepare({**cfg.model_dump(mode="json"), "input_config": StageDir(inp).config_hash()})
        if (out / "done").exists():
            log.info("%s: already trained, nothing to do", out)
            return json.loads((out / "summary.json").read_text())

    with state.main_process_first():
        model_path = resolve_model(cfg.model, out, seed=int(cfg.training.get("seed", 0)))
        conversations, counts = curated_dataset(inp, cfg.data_format, out / "data")
    tokenizer = load_tokenizer(model_path, cfg)
    report = check_conversations(tokenizer, sample_conversations(conversations, cfg.check_samples), cfg.max_length, cfg.check_samples)
    report["max_position_embeddings"] = max_positions(model_path, cfg)
    if state.is_main_process:
        write_json(out / "check.json", {**report, "problems": problems(report, cfg.max_too_long_share)})
    if check_only:
        return report
    refuse_if_broken(report, cfg.max_too_long_share, str(out / "check.json"))

    args = sft_config(cfg.training, out / "checkpoints", max_length=cfg.max_length, assistant_only_loss=False)
    with state.main_process_first():
        source = source_key(StageDir(inp).parts(), cfg.data_format)
        rows, too_long = tokenized_dataset(conversations, source, tokenizer, cfg.max_length, out / "data", args.dataset_num_proc)
    counts = {**counts, "rows_train": len(rows), "rows_too_long": too_long}
    with redirect_stdout(sys.stderr):  # the Trainer's progress bar writes its log lines to stdout
        summary = train(cfg, args, rows, model_path, tokenizer, out, callbacks)
    summary = {"student": cfg.name, "data_format": cfg.data_format, "torch_threads": torch.get_num_threads(), **counts, **summary}
    if state.is_main_process:
        write_text(out / "model" / "README.md", model_card(cfg, inp, model_path, summary, report))
        write_json(out / "summary.json", summary)
        write_text(out / "done", "")
    state.wait_for_everyone()
    return summary


# attn_implementation -> the distribution it needs; a missing one is named with the extra, not a traceback.
# flash-attn-4 is in the [gpu] extra (a wheel on PyPI); flash-attn (2) builds from source on A100-class GPUs.
ATTENTION_PACKAGES = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn-3", "flash_attention_4": "flash-attn-4"}


def require_gpu_packages(cfg: StudentConfig) -> None:
    """DistillError naming the `[gpu]` extra when the config or the launcher needs a package that is not installed."""
    attn = (cfg.training.get("model_init_kwargs") or {}).get("attn_implementation")
    needs = []
    if attn in ATTENTION_PACKAGES and not _installed(ATTENTION_PACKAGES[attn]):
        needs.append(f"training.model_init_kwargs.attn_implementation={attn} needs {ATTENTION_PACKAGES[attn]}")
    if (os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true" or cfg.training.get("deepspeed")) and find_spec("deepspeed") is None:
        needs.append("the DeepSpeed launcher config needs deepspeed")
    if needs:
        raise DistillError(f"{cfg.name}: {'; '.join(needs)}, not installed: pip install 'distill[gpu]'")


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return bool(version(distribution))
    except PackageNotFoundError:
        return False


def resolve_model(name: str, out: Path, seed: int = 0) -> str:
    """A `toy:*` name builds its random-init student once into out/base (its init drawn from the training
    seed, so another seed is another student); anything else goes to from_pretrained."""
    from distill.toy.students import SEED, build_student, parse_toy_name

    toy = parse_toy_name(name)
    if toy is None:
        return name
    base = out / "base"
    if not base.exists():
        tmp = out / f".base-tmp-{os.getpid()}"
        build_student(toy[0], tmp, size=toy[1], seed=SEED + seed)
        os.replace(tmp, base)  # a killed build leaves only a tmp dir behind
    return str(base)


def max_positions(model_path: str, cfg: StudentConfig) -> int | None:
    """The positions the trained student will have: the model's, or the config's context extension."""
    from transformers import AutoConfig

    override = (cfg.training.get("model_init_kwargs") or {}).get("max_position_embeddings")
    return override or getattr(AutoConfig.from_pretrained(model_path), "max_position_embeddings", None)


# DeepSeek-R1-Distill-Llama turned these two reserved special tokens of Llama-3 into <think> and </think>.
LLAMA3_THINK_IDS = (128013, 128014)


def load_tokenizer(model_path: str, cfg: StudentConfig):
    """The student's tokenizer with the training template, <think>/</think> as one non-special token each (as
    the R1-Distill releases: Llama-3 reuses reserved ids 128013/128014, others get added tokens, which for
    Qwen2.5 land in the embedding's spare rows), and the eos the template ends a turn with."""
    from tokenizers import AddedToken
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    check_round_trip(tokenizer, model_path)
    vocab = tokenizer.get_vocab()
    if THINK_OPEN not in vocab and THINK_CLOSE not in vocab and _reserved(tokenizer, LLAMA3_THINK_IDS):
        tokenizer = _rename_tokens(tokenizer, dict(zip(LLAMA3_THINK_IDS, (THINK_OPEN, THINK_CLOSE))))
    missing = [t for t in (THINK_OPEN, THINK_CLOSE) if t not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in missing])
    tokenizer.chat_template = cfg.template_path().read_text(encoding="utf-8")
    if cfg.training.get("eos_token"):
        tokenizer.eos_token = cfg.training["eos_token"]
    return tokenizer


def think_ids(tokenizer) -> list[int]:
    return tokenizer.convert_tokens_to_ids([THINK_OPEN, THINK_CLOSE])


def _reserved(tokenizer, ids) -> bool:
    return all(tokenizer.convert_ids_to_tokens(i) or "" for i in ids) and all(
        (tokenizer.convert_ids_to_tokens(i) or "").startswith("<|reserved_special_token_") for i in ids
    )


def _rename_tokens(tokenizer, names: dict[int, str]):
    """The tokenizer with added tokens `names` (id -> new text) renamed and made non-special, in its backend."""
    from tokenizers import Tokenizer

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    for t in backend["added_tokens"]:
        if t["id"] in names:
            t.update(content=names[t["id"]], special=False, normalized=False)
    tokenizer._tokenizer = Tokenizer.from_str(json.dumps(backend))
    return tokenizer


def load_model(model_path: str, init_kwargs: dict | None, tokenizer, untied: bool = False):
    """The student as trained and merged: init kwargs applied (dtype, attention, context extension), embeddings
    grown only when the tokenizer outgrew them. `untied`: lm_head as its own weight, a copy of a tied
    embedding (peft's advice for training the output layer of a tied model)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    kwargs = {"dtype": "auto", **(init_kwargs or {})}
    tied = untied and AutoConfig.from_pretrained(model_path).get_text_config().tie_word_embeddings
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs, **({"tie_word_embeddings": False} if tied else {}))
    if tied:  # the checkpoint holds one matrix: the output layer starts as the embedding, as it was tied
        model.get_output_embeddings().weight.data.copy_(model.get_input_embeddings().weight.data)
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer))
    return model


def train(cfg: StudentConfig, args, rows, model_path: str, tokenizer, out: Path, callbacks: tuple = ()) -> dict:
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint
    from trl import SFTTrainer

    ckpt_dir = Path(args.output_dir)
    # The model is loaded here, not by the trainer, to resize it for added think tokens first.
    init_kwargs, args.model_init_kwargs = args.model_init_kwargs, None
    model = load_model(model_path, init_kwargs, tokenizer, untied=cfg.lora is not None)
    metrics = MetricsFile(out / "metrics.jsonl")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,  # input_ids + assistant_masks: trl builds the labels from the mask
        processing_class=tokenizer,
        peft_config=lora_config(cfg, tokenizer),
        callbacks=[metrics, *callbacks],
    )
    log_instead_of_printing(trainer)
    # Counted before the trainer shards the model; ds_numel is a ZeRO-3 partitioned parameter's full size.
    trainable = sum(getattr(p, "ds_numel", p.numel()) for p in trainer.model.parameters() if p.requires_grad)
    last = get_last_checkpoint(str(ckpt_dir)) if ckpt_dir.is_dir() else None
    if last:
        log.info("%s: resuming from %s", out, last)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - start

    model_dir, state = out / "model", PartialState()
    if cfg.lora:
        # Every rank saves through the trainer (it gathers FSDP / ZeRO-3 shards); the merge then runs offline
        # on the main process from the saved adapter, so no rank merges a shard.
        tmp = out / ".adapter-tmp"
        trainer.save_model(str(tmp))
        state.wait_for_everyone()
        if state.is_main_process:
            if (out / "adapter").exists():
                shutil.rmtree(out / "adapter")
            os.replace(tmp, out / "adapter")
            _save_atomically(merge_adapter(model_path, init_kwargs, tokenizer, out / "adapter"), tokenizer, model_dir)
    else:
        trainer.save_model(str(model_dir))
        if state.is_main_process:
            tokenizer.save_pretrained(model_dir)
    state.wait_for_everyone()
    ts = trainer.state
    return {
        "steps": ts.global_step,
        "processes": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type.value),  # NO, MULTI_GPU, FSDP, DEEPSPEED...
        "resumed_from": Path(last).name if last else None,
        "train_loss": result.training_loss,
        "final_loss": next((h["loss"] for h in reversed(ts.log_history) if "loss" in h), None),
        "tokens_seen": int(ts.num_input_tokens_seen),
        "train_seconds": round(seconds, 1),
        "tokens_per_s": round((ts.num_input_tokens_seen - metrics.start_tokens) / seconds, 1),  # this run's share
        "trainable_params": trainable,
        "model": str(model_dir),
    }


def merge_adapter(model_path: str, init_kwargs: dict | None, tokenizer, adapter: Path):
    """Base + saved adapter, merged on the CPU of one process (eval and vLLM load a plain checkpoint)."""
    from peft import PeftModel

    base = load_model(model_path, init_kwargs, tokenizer, untied=True)
    return PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()


def lora_config(cfg: StudentConfig, tokenizer):
    """LoRA on the configured layers, plus what <think>/</think> need: their rows start untrained (new, or
    Llama's reserved ones), so their input rows train as trainable tokens and the output layer trains in full.

    The output layer is a separate, fully trained module (untied first, see `load_model`) because trl's fused
    loss reads lm_head.weight directly: peft's trainable-token rows on lm_head would be skipped (and a
    list of indices trains the input side only), so the student could read the tags but never learn to
    write </think>.
    """
    if cfg.lora is None:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="CAUSAL_LM",
        trainable_token_indices={"embed_tokens": think_ids(tokenizer)},
        modules_to_save=["lm_head"],
    )


def _save_atomically(model, tokenizer, model_dir: Path) -> None:
    tmp = model_dir.with_name(f".{model_dir.name}-tmp-{os.getpid()}")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if model_dir.exists():
        shutil.rmtree(model_dir)
    os.replace(tmp, model_dir)
