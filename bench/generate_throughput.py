"""Throughput of `distill generate` against the raw vLLM engine, on the same prompts, in one run.

    python bench/generate_throughput.py                      # tiny Qwen2 built from config, CPU
    python bench/generate_throughput.py --model /models/R1-Distill-Qwen-7B --problems 2000 --max-tokens 4096

Both paths share one engine (start-up is not measured) and the same per-request seeds, so they
generate the same tokens; the raw path is a single `LLM.generate` over every prompt, the best case
vLLM can do. `distill generate` adds the chat template, chunked checkpoints, Parquet writes and claims.
Target: distill/raw >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

for k, v in {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(k, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory (default: the toy tiny Qwen2, built now)")
    ap.add_argument("--problems", type=int, default=512)
    ap.add_argument("--samples", type=int, default=2, help="samples per problem")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--chunk-size", type=int, default=128, help="problems per checkpointed chunk")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per path (alternating); best kept")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from generate_fixtures import make_prompts_stage
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from distill.generate.backends import make_backend
    from distill.generate.backends.base import derive_seed
    from distill.generate.config import GenerateConfig
    from distill.generate.prompting import THINK_PREFIX, messages_for, render_chat
    from distill.generate.stage import run
    from distill.io import read_parquets
    from distill.stage import StageDir
    from distill.toy.students import build_student

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = args.model or str(build_student("qwen2", work / "tiny"))
    vllm_opts = {"enforce_eager": True, "dtype": "float32" if not args.model else "auto", "max_model_len": 2048}
    cfg = GenerateConfig(
        backend="vllm", model=model, teacher=model, samples_per_prompt=args.samples, chunk_size=args.chunk_size,
        sampling={"max_tokens": args.max_tokens}, vllm=vllm_opts,
    )  # fmt: skip
    backend = make_backend(cfg)
    inp = make_prompts_stage(work / "prompts", args.problems, rows_per_shard=max(args.problems // 2, 1))
    problems = read_parquets(StageDir(inp).parts()).to_pylist()

    # The raw path: exactly the prompts and seeds `distill generate` sends, in one call.
    tok = backend.tokenizer
    prompts = [
        TokensPrompt(prompt_token_ids=tok.encode(render_chat(tok, messages_for(p["prompt"], p["domain"]), THINK_PREFIX), add_special_tokens=False))
        for p in problems
    ]
    params = [
        SamplingParams(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=args.max_tokens, seed=derive_seed(0, p["id"]))
        for p in problems
    ]

    def raw() -> int:
        outs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.token_ids) for out in outs for o in out.outputs)

    def distill(i: int) -> int:
        out = work / f"traces-{i}"
        shutil.rmtree(out, ignore_errors=True)
        return run(cfg, inp, out, backend=backend)["completion_tokens"]

    backend.llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
    best = {"raw vllm": (0.0, 0), "distill generate": (0.0, 0)}
    for i in range(args.repeats):
        for name, fn in (("raw vllm", raw), ("distill generate", lambda: distill(i))):
            t0 = time.perf_counter()
            tokens = fn()
            rate = tokens / (time.perf_counter() - t0)
            best[name] = max(best[name], (rate, tokens))

    print(f"\n{args.problems} problems x {args.samples} samples, max_tokens {args.max_tokens}, chunk_size {args.chunk_size}, model {model}")
    print(f"{'path':<18} {'tokens':>9} {'tok/s':>9}")
    for name, (rate, tokens) in best.items():
        print(f"{name:<18} {tokens:>9} {rate:>9.0f}")
    ratio = best["distill generate"][0] / best["raw vllm"][0]
    same = "same tokens" if best["distill generate"][1] == best["raw vllm"][1] else "TOKEN COUNTS DIFFER"
    print(f"distill/raw throughput: {ratio:.3f} (target >= 0.95; {same})")
    backend.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
