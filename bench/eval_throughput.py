"""Throughput of `distill eval` against the raw vLLM engine, on the same requests, in one run.

    python bench/eval_throughput.py                          # tiny Qwen2 built from config, CPU
    python bench/eval_throughput.py --model /models/R1-Distill-Qwen-7B --problems 512 --k 16 --median 4000 --p99 28000

Both paths share one engine (start-up is not measured), the same prompts (the benchmark's template and
the `<think>\\n` prefix), per-request seeds and R1-like heavy-tailed lengths (bench/lengths.py: median
4k, p99 28k on a GPU, scaled to 131/871 for the CPU), forced: EOS is ignored, so every request generates
exactly its drawn length on both paths. raw: one `LLM.generate` over every problem's k samples. distill:
`distill eval` with the default layout (`problems_per_shard` and `problems_per_chunk` of EvalConfig):
streaming through the engine across chunks and shards, checkpoints, scoring in a worker pool, Parquet,
scores.json. The paths run in turn, `--repeats` times: each distill run is compared with the raw run just
before it, and the table gives the median and the range of those ratios. Target: distill/raw >= 0.95.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

for k, v in {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_HOST_IP": "127.0.0.1", "HF_HUB_OFFLINE": "1"}.items():
    os.environ.setdefault(k, v)


def main() -> None:
    from distill.eval.config import EvalConfig, ModelSpec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory (default: the toy tiny Qwen2, built now)")
    ap.add_argument("--problems", type=int, default=256, help="toy_arith problems")
    ap.add_argument("--k", type=int, default=4, help="samples per problem")
    ap.add_argument("--median", type=int, default=131)
    ap.add_argument("--p99", type=int, default=871)
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--max-num-seqs", type=int, help="vLLM's samples in flight (default: vLLM's)")
    ap.add_argument("--problems-per-shard", type=int, default=EvalConfig.model_fields["problems_per_shard"].default)
    ap.add_argument("--problems-per-chunk", type=int, default=EvalConfig.model_fields["problems_per_chunk"].default)
    ap.add_argument("--repeats", type=int, default=3, help="rounds of alternating runs")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lengths import alternate, describe, impose, lognormal_lengths, report
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from distill import engines
    from distill.eval.benchmarks import load_benchmark
    from distill.eval.stage import load_samples, resolved_specs, run
    from distill.generate.backends import make_backend
    from distill.generate.backends.base import derive_seed
    from distill.generate.prompting import THINK_PREFIX, messages_for, render_chat
    from distill.toy.students import build_student

    work = Path(tempfile.mkdtemp(prefix="bench-eval-"))
    model = args.model or str(build_student("qwen2", work / "tiny"))
    cfg = EvalConfig.model_validate({
        "benchmarks": ["toy_arith"], "overrides": {"toy_arith": {"toy": {"n": args.problems}, "k": args.k, "max_tokens": args.max_model_len - 256}},
        "problems_per_shard": args.problems_per_shard, "problems_per_chunk": args.problems_per_chunk, "bootstrap_resamples": 200,
    })  # fmt: skip
    vllm_opts = {"enforce_eager": not args.model, "dtype": "float32" if not args.model else "auto", "max_model_len": args.max_model_len,
                 "max_num_seqs": args.max_num_seqs}
    spec = ModelSpec.model_validate({"name": "bench", "backend": "vllm", "model": model, "vllm": vllm_opts})
    backend = make_backend(spec)
    [bench] = resolved_specs(cfg)
    problems = load_benchmark(bench)
    lengths = lognormal_lengths([p["id"] for p in problems], median=args.median, p99=args.p99, hi=args.max_model_len - 256)
    impose(backend, lengths)

    tok = backend.tokenizer
    prompts = [
        TokensPrompt(prompt_token_ids=tok.encode(render_chat(tok, messages_for(p["prompt"], p["domain"], bench.template), THINK_PREFIX), add_special_tokens=False))
        for p in problems
    ]
    params = [SamplingParams(n=args.k, temperature=0.6, top_p=0.95, max_tokens=lengths[p["id"]], seed=derive_seed(0, p["id"]), ignore_eos=True)
              for p in problems]  # fmt: skip

    def raw() -> int:
        outs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.token_ids) for out in outs for o in out.outputs)

    def distill() -> int:
        out = work / "eval"
        shutil.rmtree(out, ignore_errors=True)
        with engines.lend(spec, backend):
            run(cfg, spec, out)
        return sum(r["completion_tokens"] for r in load_samples(out, ["completion_tokens"]))

    backend.llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
    runs = alternate({"raw vllm": raw, "distill eval": distill}, args.repeats)
    shards = -(-args.problems // args.problems_per_shard)
    print(f"\n{args.problems} problems x k={args.k} in {shards} shards of {args.problems_per_shard} (chunks of {args.problems_per_chunk}), "
          f"{describe(lengths)}, max_num_seqs {backend.capacity}, model {model}")
    report(runs, "distill eval", intended=sum(lengths.values()) * args.k)
    backend.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
