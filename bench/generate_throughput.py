"""Throughput of `distill generate` against the raw vLLM engine, on the same requests, in one run.

    python bench/generate_throughput.py                      # tiny Qwen2 built from config, CPU
    python bench/generate_throughput.py --model /models/R1-Distill-Qwen-7B --problems 2000 --median 4000 --p99 28000

Every path shares one engine (start-up is not measured), the same per-request seeds and the same
R1-like heavy-tailed lengths (bench/lengths.py), so they generate the same tokens. raw: one
`LLM.generate` over every prompt, the best case vLLM can do. distill: `distill generate` (chat template,
streaming through the engine, checkpoints, Parquet, claims). sync chunks: one `LLM.generate` per chunk,
what `distill generate` did before it streamed: every chunk waits for its longest sample.
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
    ap.add_argument("--median", type=int, default=131, help="median per-request max_tokens")
    ap.add_argument("--p99", type=int, default=871, help="99th percentile of per-request max_tokens")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--chunk-size", type=int, default=64, help="problems per checkpoint (and per call of the sync-chunks path)")
    ap.add_argument("--repeats", type=int, default=1, help="timed runs per path (alternating); best kept")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generate_fixtures import make_prompts_stage
    from lengths import describe, impose, lognormal_lengths
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
    vllm_opts = {"enforce_eager": not args.model, "dtype": "float32" if not args.model else "auto", "max_model_len": args.max_model_len}
    cfg = GenerateConfig(
        backend="vllm", model=model, teacher=model, samples_per_prompt=args.samples, chunk_size=args.chunk_size,
        sampling={"max_tokens": args.p99 * 4}, vllm=vllm_opts,
    )  # fmt: skip
    backend = make_backend(cfg)
    inp = make_prompts_stage(work / "prompts", args.problems, rows_per_shard=max(args.problems // 2, 1))
    problems = read_parquets(StageDir(inp).parts()).to_pylist()
    hi = args.max_model_len - 256
    lengths = lognormal_lengths([p["id"] for p in problems], median=args.median, p99=args.p99, hi=hi)
    impose(backend, lengths)

    # The raw path: exactly the prompts, seeds and lengths `distill generate` sends, in one call.
    tok = backend.tokenizer
    prompts = [
        TokensPrompt(prompt_token_ids=tok.encode(render_chat(tok, messages_for(p["prompt"], p["domain"]), THINK_PREFIX), add_special_tokens=False))
        for p in problems
    ]
    params = [
        SamplingParams(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=lengths[p["id"]], seed=derive_seed(0, p["id"]))
        for p in problems
    ]

    def raw() -> int:
        outs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.token_ids) for out in outs for o in out.outputs)

    def sync_chunks() -> int:
        tokens = 0
        for a in range(0, len(prompts), args.chunk_size):
            outs = backend.llm.generate(prompts[a : a + args.chunk_size], params[a : a + args.chunk_size], use_tqdm=False)
            tokens += sum(len(o.token_ids) for out in outs for o in out.outputs)
        return tokens

    def distill(i: int) -> int:
        out = work / f"traces-{i}"
        shutil.rmtree(out, ignore_errors=True)
        return run(cfg, inp, out, backend=backend)["completion_tokens"]

    backend.llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
    paths = (("raw vllm", raw), ("distill generate", None), (f"sync chunks of {args.chunk_size}", sync_chunks))
    best = {name: (0.0, 0, 0.0) for name, _ in paths}
    for i in range(args.repeats):
        for name, fn in paths:
            t0 = time.perf_counter()
            tokens = fn() if fn is not None else distill(i)
            took = time.perf_counter() - t0
            best[name] = max(best[name], (tokens / took, tokens, took))

    print(f"\n{args.problems} problems x {args.samples} samples, {describe(lengths)}, chunk_size {args.chunk_size}, model {model}")
    print(f"{'path':<22} {'tokens':>9} {'seconds':>8} {'tok/s':>9} {'vs raw':>7}")
    for name, (rate, tokens, took) in best.items():
        print(f"{name:<22} {tokens:>9} {took:>8.1f} {rate:>9.0f} {rate / best['raw vllm'][0]:>7.3f}")
    ratio = best["distill generate"][0] / best["raw vllm"][0]
    same = "same tokens" if best["distill generate"][1] == best["raw vllm"][1] else "TOKEN COUNTS DIFFER"
    print(f"distill/raw throughput: {ratio:.3f} (target >= 0.95; {same})")
    backend.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
