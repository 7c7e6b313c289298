"""SFT data path at scale: peak RSS and tokenization time for 20k vs 100k synthetic traces, and time to the
first training step on a restart (tokenized cache reused).

    python bench/sft_data.py                      # 20k and 100k rows of ~8k-token traces (hours on 2 cores)
    python bench/sft_data.py --tokens 1024        # the same at 1k tokens per trace

Each measurement runs in a fresh process (peak RSS = ru_maxrss of that process plus its tokenizing
workers). Two data paths over the same curated Parquet parts:
  lists    every conversation as Python objects, then datasets.Dataset.from_list (the path distill sft had)
  distill  distill.sft.data: Parquet -> memory-mapped Arrow, filtered and tokenized into cached Arrow files
Target: distill's peak RSS at 100k within 1.3x of its peak at 20k (memory independent of the row count).
Then `distill sft` itself (toy:qwen2 student, one step) runs twice on the 20k set: cold, and again after
its model/checkpoints are removed (a restart before the first checkpoint) with the data cache kept.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORDS = "the of and to in is that for it as with was on be by this are from at or an which have not but".split()
NUM_PROC = 2


def write_stage(stage_dir: Path, rows: int, tokens: int, per_word: float, shards: int = 10) -> Path:
    """A finished curated stage of `rows` kept rows whose assistant turn is ~`tokens` tokens (`per_word` tokens a word)."""
    import pyarrow as pa

    from distill.io import write_parquet
    from distill.stage import StageDir

    stage = StageDir(stage_dir)
    stage.prepare({"bench": "sft_data", "rows": rows, "tokens": tokens})
    rng = random.Random(0)
    per_shard = -(-rows // shards)  # one random body per shard keeps generation cheap
    for i in range(shards):
        n = min(per_shard, rows - i * per_shard)
        body = " ".join(rng.choice(WORDS) for _ in range(int(tokens / per_word)))
        messages = [
            [{"role": "user", "content": f"Problem {i}-{j}: add {j} and {i}."}, {"role": "assistant", "content": f"<think>\n{body}\n</think>\n\n{j + i}"}]
            for j in range(n)
        ]
        table = pa.table({"messages": messages, "reject_reason": pa.array([None] * n, pa.string())})
        write_parquet(table, stage.part(i))
        stage.finish(i, {"rows_in": n, "rows_out": n})
    stage.plan(shards)
    return stage_dir


def child(mode: str, stage_dir: Path, work: Path, max_length: int) -> dict:
    """Run one data path in this process; returns seconds and peak RSS (MB)."""
    from transformers import AutoTokenizer

    from distill.sft.check import render

    tok = AutoTokenizer.from_pretrained(work.parent / "base")
    tok.chat_template = (ROOT / "distill/templates/qwen2.jinja").read_text()
    start = time.perf_counter()
    if mode == "lists":
        from datasets import Dataset

        from distill.io import read_parquet
        from distill.stage import StageDir

        conversations = [m for p in StageDir(stage_dir).parts() for m in read_parquet(p).column("messages").to_pylist()]
        ds = Dataset.from_list([{"messages": m} for m in conversations])

        def tokenize(batch):
            ids, masks = zip(*(render(tok, m) for m in batch["messages"]))
            return {"input_ids": list(ids), "assistant_masks": list(masks)}

        rows = ds.map(tokenize, batched=True, num_proc=NUM_PROC, remove_columns=["messages"])
        n = len(rows)
    else:
        from distill.sft.data import curated_dataset, source_key, tokenized_dataset
        from distill.stage import StageDir

        convs, _ = curated_dataset(stage_dir, "reasoning", work / "data")
        rows, _ = tokenized_dataset(convs, source_key(StageDir(stage_dir).parts(), "reasoning"), tok, max_length, work / "data", NUM_PROC)
        n = len(rows)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"rows": n, "seconds": round(seconds, 1), "peak_rss_mb": round(peak / 1024)}


def sft_run(stage_dir: Path, out: Path, max_length: int) -> float:
    """Seconds of one `distill sft` run to its first optimizer step (plus saving), in a fresh process."""
    cfg = out.parent / "student.yaml"
    cfg.write_text(
        json.dumps(
            {
                "name": "bench",
                "model": "toy:qwen2",
                "chat_template": "distill/templates/qwen2.jinja",
                "max_length": max_length,
                "training": {"max_steps": 1, "per_device_train_batch_size": 2, "dataset_num_proc": NUM_PROC, "save_strategy": "no"},
            }
        )
    )
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "distill.cli", "sft", "-c", str(cfg), "-i", str(stage_dir), "-o", str(out), "--threads", "2"]
    subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
    return round(time.perf_counter() - start, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, nargs=2, default=[20_000, 100_000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--tokens", type=int, default=8192, help="assistant tokens per synthetic trace")
    ap.add_argument("--work", type=Path, default=Path("/tmp/distill-bench-sft-data"))
    ap.add_argument("--child", nargs=4, metavar=("MODE", "STAGE", "WORK", "MAX_LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, stage, work, max_length = args.child
        print(json.dumps(child(mode, Path(stage), Path(work), int(max_length))))
        return

    from transformers import AutoTokenizer

    from distill.toy.students import build_student

    shutil.rmtree(args.work, ignore_errors=True)
    tok = AutoTokenizer.from_pretrained(build_student("qwen2", args.work / "base"))  # the toy student's tokenizer
    per_word = len(tok.encode(" ".join(WORDS * 20), add_special_tokens=False)) / (len(WORDS) * 20)
    max_length = int(args.tokens * 1.25) + 256
    results = []
    for n in args.rows:
        stage = write_stage(args.work / f"curated-{n}", n, args.tokens, per_word)
        for mode in ("lists", "distill"):
            work = args.work / f"{mode}-{n}"
            cmd = [sys.executable, __file__, "--child", mode, str(stage), str(work), str(max_length)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
            results.append({"mode": mode, "n": n, **json.loads(out.stdout.strip().splitlines()[-1])})
            print(f"  {mode:8s} {n:>7,} rows: {results[-1]}", file=sys.stderr)

    print(f"\nSFT data path, ~{args.tokens}-token traces, dataset_num_proc={NUM_PROC}")
    print(f"{'path':8s} {'rows':>8s} {'tokenize s':>11s} {'peak RSS MB':>12s}")
    for r in results:
        print(f"{r['mode']:8s} {r['n']:>8,} {r['seconds']:>11.1f} {r['peak_rss_mb']:>12,}")
    for mode in ("lists", "distill"):
        small, large = (next(r for r in results if r["mode"] == mode and r["n"] == n) for n in args.rows)
        print(f"{mode}: peak RSS at {args.rows[1]:,} / at {args.rows[0]:,} rows = {large['peak_rss_mb'] / small['peak_rss_mb']:.2f}")

    stage, out = args.work / f"curated-{args.rows[0]}", args.work / "sft" / "run"
    out.parent.mkdir(parents=True, exist_ok=True)
    cold = sft_run(stage, out, max_length)
    for leftover in ("done", "summary.json", "model", "checkpoints"):
        path = out / leftover
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    warm = sft_run(stage, out, max_length)
    print(f"\ndistill sft to the first step ({args.rows[0]:,} rows): cold {cold} s, restart with the data cache {warm} s")


if __name__ == "__main__":
    main()
