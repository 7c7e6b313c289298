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
every rank (FSDP and ZeRO-3 gather the shards); the LoRA merge then runs from the saved adapter in a fresh
process outside the training job (distill.sft.merge). Other files are written by the main process only.
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
from distill.generate.prompting import check_round_trip
from distill.io import write_json, write_text
from distill.sft.card import model_card
from distill.sft.check import check_conversations, is_reasoning, problems, refuse_if_broken, render
from distill.sft.config import StudentConfig, sft_config
from distill.hub import require_model
from distill.sft.data import curated_dataset, require_curated, sample_conversations, source_key, tokenized_dataset
from distill.sft.merge import merge_outside
from distill.sft.metrics import MetricsFile, log_instead_of_printing
from distill.sft.smoke import smoke_generate, warn_if_low
from distill.sft.start import close_tag_start
from distill.stage import StageDir
from distill.think import THINK_CLOSE, THINK_OPEN

log = logging.getLogger(__name__)


def run(cfg: StudentConfig, inp: Path, out: Path, *, check_only: bool = False, prepare_only: bool = False, threads: int | None = None,
        callbacks: tuple = ()) -> dict:
    """Check, then train student `cfg` on curated stage `inp` into `out`; returns the summary (or the check report).

    `prepare_only`: stop once the training rows are tokenized into out/data (`distill sft --prepare`, one process
    before `accelerate launch`, whose ranks then only open the files instead of waiting on rank 0 at a barrier).
    `callbacks`: extra TrainerCallbacks (the kd stage's matched-compute control stops SFT on a time budget).
    """
    import torch
    from accelerate import PartialState

    cfg.check_training()
    inp, out = Path(inp), Path(out)
    if threads:
        torch.set_num_threads(threads)
    # The trainer's own config sets up the process group (its backend, its ddp_timeout); PartialState reuses it.
    train_now = not (check_only or prepare_only)
    args = training_args(cfg, out) if train_now else None
    state = PartialState(cpu=not torch.cuda.is_available())
    num_proc = cfg.training.get("dataset_num_proc")
    # Everything that can be refused is checked before the first file is written, so a typo leaves no
    # output directory that the corrected command would then refuse as a config change.
    require_curated(inp)
    if not cfg.model.startswith("toy:"):
        require_model(cfg.model, f"student {cfg.name}")
    if not check_only:
        if train_now:
            require_gpu_packages(cfg.name, cfg.training)
        StageDir(out).prepare({**cfg.model_dump(mode="json"), "input_config": StageDir(inp).config_hash()})
        if (out / "done").exists():
            log.info("%s: already trained, nothing to do", out)
            return json.loads((out / "summary.json").read_text())

    with state.main_process_first():
        model_path = resolve_model(cfg.model, out, seed=int(cfg.training.get("seed", 0)))
        conversations, counts = curated_dataset(inp, cfg.data_format, out / "data", num_proc)
    tokenizer = load_tokenizer(model_path, cfg)
    sampled = sample_conversations(conversations, cfg.check_samples)
    report = check_conversations(tokenizer, sampled, cfg.max_length, cfg.check_samples)
    report["max_position_embeddings"] = max_positions(model_path, cfg)
    if not prepare_only:  # --prepare tokenises only: no weights on the node that prepares
        # The model is loaded here, not by the trainer, to resize it for added think tokens and start their rows first.
        init_kwargs = {**(cfg.training.get("model_init_kwargs") or {})}
        model = load_model(model_path, init_kwargs, tokenizer, untied=cfg.lora is not None)
        report["start"] = start_check(model, tokenizer, sampled, state)
    if state.is_main_process:
        write_json(out / "check.json", {**report, "problems": problems(report, cfg.max_too_long_share)})
    if check_only:
        return report
    refuse_if_broken(report, cfg.max_too_long_share, str(out / "check.json"))

    with state.main_process_first():
        source = source_key(StageDir(inp).parts(), cfg.data_format)
        rows, too_long = tokenized_dataset(conversations, source, tokenizer, cfg.max_length, out / "data", num_proc)
    counts = {**counts, "rows_train": len(rows), "rows_too_long": too_long}
    if prepare_only:
        return {"student": cfg.name, "data_format": cfg.data_format, **counts, "data": str(out / "data")}
    args.model_init_kwargs = None  # applied by load_model above
    with redirect_stdout(sys.stderr):  # the Trainer's progress bar writes its log lines to stdout
        summary = train(cfg, args, rows, model, model_path, init_kwargs, tokenizer, out, callbacks)
    if state.num_processes == 1:
        summary["smoke"] = smoke_generate(model, tokenizer, sampled, smoke_tokens(tokenizer, sampled, cfg.max_length))
        warn_if_low(summary["smoke"], cfg.name)
    summary = {"student": cfg.name, "data_format": cfg.data_format, "torch_threads": torch.get_num_threads(), **counts, **summary}
    if state.is_main_process:
        write_text(out / "model" / "README.md", model_card(cfg, inp, model_path, summary, report))
        write_json(out / "summary.json", summary)
        write_text(out / "done", "")
    return summary


# SFTConfig fields the stage sets: the loss mask is in the rows' labels (data.tokenized_dataset), which trl takes
# as they are instead of rebuilding them on every rank.
FIXED_TRAINING = {"assistant_only_loss": False, "dataset_kwargs": {"skip_prepare_dataset": True}}


def training_args(cfg: StudentConfig, out: Path):
    """The trl.SFTConfig the student trains with. Rows over max_length are dropped (`tokenized_dataset`), never
    cut, so trl gets max_length only to size packed bins: trl 1.16 refuses it for padding-free rows without
    packing, where it would not be enforced."""
    max_length = cfg.max_length if cfg.training.get("packing") else None
    return sft_config(cfg.training, out / "checkpoints", max_length=max_length, **FIXED_TRAINING)


# attn_implementation -> the distribution it needs; a missing one is named with the extra, not a traceback.
# flash-attn-4 is in the [gpu] extra (a wheel on PyPI); flash-attn (2) builds from source on A100-class GPUs.
ATTENTION_PACKAGES = {"flash_attention_2": "flash-attn", "flash_attention_3": "flash-attn-3", "flash_attention_4": "flash-attn-4"}


def require_gpu_packages(name: str, training: dict) -> None:
    """DistillError naming the `[gpu]` extra when a trainer config (sft's or kd's `training`, student and teacher
    init kwargs) or the launcher needs a package that is not installed."""
    needs = []
    for key in ("model_init_kwargs", "teacher_model_init_kwargs"):
        attn = (training.get(key) or {}).get("attn_implementation")
        if attn in ATTENTION_PACKAGES and not _installed(ATTENTION_PACKAGES[attn]):
            needs.append(f"training.{key}.attn_implementation={attn} needs {ATTENTION_PACKAGES[attn]}")
    if (os.environ.get("ACCELERATE_USE_DEEPSPEED") == "true" or training.get("deepspeed")) and find_spec("deepspeed") is None:
        needs.append("the DeepSpeed launcher config needs deepspeed")
    if needs:
        raise DistillError(f"{name}: {'; '.join(needs)}, not installed: pip install 'distill[gpu]'")


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return bool(version(distribution))
    except PackageNotFoundError:
        return False


def resolve_model(name: str, out: Path, seed: int = 0) -> str:
    """A `toy:*` name builds its random-init student once into out/base (its init drawn from the training
    seed, so another seed is another student); a `fetch:*` name is converted once into the model cache
    (distill.models); anything else goes to from_pretrained."""
    from distill.models import resolve
    from distill.toy.students import SEED, build_student, parse_toy_name

    toy = parse_toy_name(name)
    if toy is None:
        return resolve(name)
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
    grown only when the tokenizer outgrew them, the think tags' untrained rows started where they can be learnt
    (</think> as the end token, <think> as its spelling: distill.sft.start). `untied`: lm_head as its own weight, a copy of a tied embedding (peft's advice for
    training the output layer of a tied model)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from distill.sft.start import init_tag_rows, untrained_tag_ids

    kwargs = {"dtype": "auto", **(init_kwargs or {})}
    tied = untied and AutoConfig.from_pretrained(model_path).get_text_config().tie_word_embeddings
    model = AutoModelForCausalLM.from_pretrained(model_path, **kwargs, **({"tie_word_embeddings": False} if tied else {}))
    if tied:  # the checkpoint holds one matrix: the output layer starts as the embedding, as it was tied
        model.get_output_embeddings().weight.data.copy_(model.get_input_embeddings().weight.data)
    if len(tokenizer) > embedding_rows(model):
        model.resize_token_embeddings(len(tokenizer))
    spelling = AutoTokenizer.from_pretrained(model_path)
    init_tag_rows(model, tokenizer, spelling, untrained_tag_ids(tokenizer, spelling.get_vocab()))
    return model


def embedding_rows(model) -> int:
    """Rows of the input embedding; under ZeRO-3 a partitioned weight's data is empty, its full shape is ds_shape."""
    weight = model.get_input_embeddings().weight
    return getattr(weight, "ds_shape", weight.shape)[0]


def build_trainer(cfg: StudentConfig, args, rows, model, tokenizer, callbacks: tuple = ()):
    """trl's SFTTrainer on the student `load_model` loaded (resized for added think tokens, their rows started);
    args.model_init_kwargs must be None, as they were applied there."""
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=rows,  # input_ids + labels, used as they are (skip_prepare_dataset)
        processing_class=tokenizer,
        peft_config=lora_config(cfg, tokenizer),
        callbacks=list(callbacks),
    )
    log_instead_of_printing(trainer)
    return trainer


def start_check(model, tokenizer, conversations: list[list[dict]], state) -> dict:
    """close_tag_start on up to 4 reasoning rows of the sample, on the device training will use; skipped under a
    multi-process launch, whose ranks may hold only shards or empty (meta) weights before the trainer wraps the model."""
    if state.num_processes > 1:
        return {"skipped": f"{state.num_processes} processes"}
    model.to(state.device)
    picked = [c for c in conversations if is_reasoning(c[-1]["content"])][:4] or conversations[:4]
    return close_tag_start(model, tokenizer, [render(tokenizer, c)[0] for c in picked])


def smoke_tokens(tokenizer, conversations: list[list[dict]], max_length: int) -> int:
    """Enough new tokens for the longest sampled reply and some slack, within max_length."""
    longest = max((len(tokenizer.encode(c[-1]["content"], add_special_tokens=False)) for c in conversations), default=0)
    return min(max_length, longest + 32)


def train(cfg: StudentConfig, args, rows, model, model_path: str, init_kwargs: dict, tokenizer, out: Path, callbacks: tuple = ()) -> dict:
    from accelerate import PartialState
    from transformers.trainer_utils import get_last_checkpoint

    ckpt_dir = Path(args.output_dir)
    metrics = MetricsFile(out / "metrics.jsonl")
    trainer = build_trainer(cfg, args, rows, model, tokenizer, (metrics, *callbacks))
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
        # Every rank saves through the trainer (it gathers FSDP / ZeRO-3 shards); the main process then merges
        # the saved adapter in a fresh process outside the job (see distill.sft.merge), while the other ranks
        # return: none waits at a barrier for a merge that may outlast the group's timeout.
        tmp = out / ".adapter-tmp"
        trainer.save_model(str(tmp))
        state.wait_for_everyone()
        if state.is_main_process:
            tokenizer.save_pretrained(tmp)
            if (out / "adapter").exists():
                shutil.rmtree(out / "adapter")
            os.replace(tmp, out / "adapter")
            merge_outside(model_path, init_kwargs, out / "adapter", model_dir)
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
        "process_group": process_group(),
        "resumed_from": Path(last).name if last else None,
        "train_loss": result.training_loss,
        "final_loss": next((h["loss"] for h in reversed(ts.log_history) if "loss" in h), None),
        "tokens_seen": int(ts.num_input_tokens_seen),
        "train_seconds": round(seconds, 1),
        "tokens_per_s": round((ts.num_input_tokens_seen - metrics.start_tokens) / seconds, 1),  # this run's share
        "trainable_params": trainable,
        "model": str(model_dir),
    }


def process_group() -> dict | None:
    """The default process group's backend and timeout (None in one process): nccl and the config's ddp_timeout
    when the trainer's config created it, not a group some earlier step left behind."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        return None
    backend = dist.group.WORLD._get_backend(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    return {"backend": dist.get_backend(), "timeout_s": backend.options._timeout.total_seconds()}


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
