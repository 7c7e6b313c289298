"""Throughput of `distill generate` against the raw vLLM engine, on the same requests, in one run.

    python bench/generate_throughput.py                      # tiny Qwen2 built from config, CPU, default layout
    python bench/generate_throughput.py --problems 2000 --rows-per-shard 500   # a CPU-sized run with 4 shards
    python bench/generate_throughput.py --model /models/R1-Distill-Qwen-7B --problems 20000 --median 4000 --p99 28000

Both paths share one engine (start-up is not measured), the same per-request seeds and the same R1-like
heavy-tailed lengths (bench/lengths.py), forced: EOS is ignored, so every request generates exactly its
drawn length on both paths. raw: one `LLM.generate` over every prompt, the best case vLLM can do. distill:
`distill generate` (chat template, streaming through the engine across chunks and shards, checkpoints,
Parquet, claims) with the default layout: `rows_per_shard` of the prompts stage and `chunk_size` of the
generate stage. The paths run in turn, `--repeats` times: each distill run is compared with the raw run
just before it, and the table gives the median and the range of those ratios. Target: distill/raw >= 0.95.
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
    from distill.generate.config import GenerateConfig
    from distill.prompts.config import PromptsConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory (default: the toy tiny Qwen2, built now)")
    ap.add_argument("--problems", type=int, default=2 * PromptsConfig.model_fields["rows_per_shard"].default)
    ap.add_argument("--samples", type=int, default=2, help="samples per problem")
    ap.add_argument("--median", type=int, default=131, help="median per-request max_tokens")
    ap.add_argument("--p99", type=int, default=871, help="99th percentile of per-request max_tokens")
    ap.add_argument("--max-model-len", type=int, default=2048)
    ap.add_argument("--max-num-seqs", type=int, help="vLLM's samples in flight (default: vLLM's); smaller makes a CPU run's shards span many waves")
    ap.add_argument("--rows-per-shard", type=int, default=PromptsConfig.model_fields["rows_per_shard"].default, help="problems per shard (default: the prompts stage's)")
    ap.add_argument("--chunk-size", type=int, default=GenerateConfig.model_fields["chunk_size"].default, help="problems per checkpoint (default: generate's)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds of alternating runs")
    args = ap.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from generate_fixtures import make_prompts_stage
    from lengths import alternate, describe, impose, lognormal_lengths, report
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from distill.generate.backends import make_backend
    from distill.generate.backends.base import derive_seed
    from distill.generate.prompting import THINK_PREFIX, messages_for, render_chat
    from distill.generate.stage import run
    from distill.io import read_parquets
    from distill.stage import StageDir
    from distill.toy.students import build_student

    work = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    model = args.model or str(build_student("qwen2", work / "tiny"))
    vllm_opts = {"enforce_eager": not args.model, "dtype": "float32" if not args.model else "auto", "max_model_len": args.max_model_len,
                 "max_num_seqs": args.max_num_seqs}
    cfg = GenerateConfig(
        backend="vllm", model=model, teacher=model, samples_per_prompt=args.samples, chunk_size=args.chunk_size,
        sampling={"max_tokens": args.p99 * 4}, vllm=vllm_opts,
    )  # fmt: skip
    backend = make_backend(cfg)
    inp = make_prompts_stage(work / "prompts", args.problems, rows_per_shard=args.rows_per_shard)
    problems = read_parquets(StageDir(inp).parts()).to_pylist()
    lengths = lognormal_lengths([p["id"] for p in problems], median=args.median, p99=args.p99, hi=args.max_model_len - 256)
    impose(backend, lengths)

    # The raw path: exactly the prompts, seeds and lengths `distill generate` sends, in one call.
    tok = backend.tokenizer
    prompts = [
        TokensPrompt(prompt_token_ids=tok.encode(render_chat(tok, messages_for(p["prompt"], p["domain"]), THINK_PREFIX), add_special_tokens=False))
        for p in problems
    ]
    params = [
        SamplingParams(n=args.samples, temperature=0.6, top_p=0.95, max_tokens=lengths[p["id"]], seed=derive_seed(0, p["id"]), ignore_eos=True)
        for p in problems
    ]

    def raw() -> int:
        outs = backend.llm.generate(prompts, params, use_tqdm=False)
        return sum(len(o.token_ids) for out in outs for o in out.outputs)

    def distill() -> int:
        out = work / "traces"
        shutil.rmtree(out, ignore_errors=True)
        return run(cfg, inp, out, backend=backend)["completion_tokens"]

    backend.llm.generate(prompts[:8], params[:8], use_tqdm=False)  # warm-up
    runs = alternate({"raw vllm": raw, "distill generate": distill}, args.repeats)
    shards = StageDir(inp).planned()
    print(f"\n{args.problems} problems x {args.samples} samples in {shards} shards of {args.rows_per_shard} (chunks of {args.chunk_size}), "
          f"{describe(lengths)}, max_num_seqs {backend.capacity}, model {model}")
    report(runs, "distill generate", intended=sum(lengths.values()) * args.samples)
    backend.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
