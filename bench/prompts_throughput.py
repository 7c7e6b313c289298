"""Prompt import throughput and memory on synthetic sources: does a 1M-row source stream?

    .venv/bin/python bench/prompts_throughput.py                       # 100k vs 500k rows, near-dedup at 50k vs 200k
    .venv/bin/python bench/prompts_throughput.py --sizes 20000 100000 --near-sizes 25000 100000

Prints, in one run: rows/s and peak RSS of `distill prompts` (exact dedup + 8-gram decontamination
against MATH-500 and AIME 2024, one worker) at each size, the peak-memory ratio of the largest size
to the smallest (target, issue 11: <= 1.3: only the dedup keys grow with the input), the same file
read by the raw library (`json.loads` per line, nothing else) for comparison, and near-dedup
(`dedup.near`, MinHash LSH bands in the on-disk index) at two sizes: peak RSS, its ratio (flat: the
index lives on disk) and the index's bytes on disk.
Each measurement runs in its own process, so peaks do not mix.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WORDS = (
    "a shop sells apples pears and plums each day the number of fruits triangle circle radius area integer "
    "prime divisor sum product sequence term value find compute determine how many what is the least greatest"
).split()


def write_source(path: Path, n: int, seed: int = 0) -> None:
    """`n` problems of ~40 words with numbers; 3% exact repeats (with other casing/spacing)."""
    rng = random.Random(seed)
    recent: list[str] = []
    with open(path, "w") as f:
        for i in range(n):
            if recent and rng.random() < 0.03:
                text = rng.choice(recent).upper().replace(" ", "  ")
            else:
                words = rng.choices(WORDS, k=34)
                text = " ".join(words) + f" {i} {rng.randint(2, 10**6)} {rng.randint(2, 999)}?"
                recent = (recent + [text])[-1000:]
            f.write(json.dumps({"problem": text, "answer": str(rng.randint(0, 999))}) + "\n")


def _child(src: str, out: str, near: bool) -> None:
    from distill.prompts.config import PromptsConfig
    from distill.prompts.stage import run

    cfg = PromptsConfig(source=src, rows_per_shard=5000, dedup={"near": near}, decontaminate={"benchmarks": ["math500", "aime24"]})
    t0 = time.perf_counter()
    totals = run(cfg, Path(out))
    seconds = time.perf_counter() - t0
    index = sum(f.stat().st_size for f in Path(out, "state").glob("dedup.sqlite*"))
    print(json.dumps({"seconds": seconds, "rows_in": totals["rows_in"], "rows_out": totals["rows_out"], "peak_mb": _peak_mb(), "index_mb": index / 2**20}))


def _raw(src: str) -> None:
    t0 = time.perf_counter()
    n = 0
    with open(src) as f:
        for line in f:
            json.loads(line)
            n += 1
    print(json.dumps({"seconds": time.perf_counter() - t0, "rows_in": n, "peak_mb": _peak_mb()}))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    res = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if res.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000])
    ap.add_argument("--near-sizes", type=int, nargs=2, default=[50_000, 200_000])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--raw", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], args.child[2] == "near")
        return
    if args.raw:
        _raw(args.raw)
        return

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared cores slow the rows/s, not the memory)")
    rows, near = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sorted(set(args.sizes) | set(args.near_sizes)):
            src = Path(tmp) / f"src-{n}.jsonl"
            write_source(src, n)
            if n in args.sizes:
                rows.append((n, _measure("--child", str(src), f"{tmp}/out-{n}", "exact"), _measure("--raw", str(src))))
            if n in args.near_sizes:
                near.append((n, _measure("--child", str(src), f"{tmp}/near-{n}", "near")))
            src.unlink()
        print(f"\n{'rows':>9} {'rows/s':>9} {'peak MB':>9} {'raw json rows/s':>16} {'raw peak MB':>12} {'kept':>9}")
        for n, m, raw in rows:
            print(f"{n:>9,} {m['rows_in'] / m['seconds']:>9,.0f} {m['peak_mb']:>9,.0f} {raw['rows_in'] / raw['seconds']:>16,.0f} {raw['peak_mb']:>12,.0f} {m['rows_out']:>9,}")
        (n0, m0, _), (n1, m1, _) = rows[0], rows[-1]
        ratio = m1["peak_mb"] / m0["peak_mb"]
        print(f"\npeak memory {n1:,} / {n0:,} rows: {ratio:.2f} (target <= 1.3) -> {'PASS' if ratio <= 1.3 else 'FAIL'}")
        print(f"\nnear-dedup (MinHash 128 permutations, threshold 0.8, index on disk)\n{'rows':>9} {'rows/s':>9} {'peak MB':>9} {'index MB on disk':>17} {'kept':>9}")
        for n, m in near:
            print(f"{n:>9,} {m['rows_in'] / m['seconds']:>9,.0f} {m['peak_mb']:>9,.0f} {m['index_mb']:>17,.1f} {m['rows_out']:>9,}")
        (n0, m0), (n1, m1) = near
        ratio = m1["peak_mb"] / m0["peak_mb"]
        print(f"near-dedup peak memory {n1:,} / {n0:,} rows: {ratio:.2f} (target: flat, <= 1 GiB at 1M) -> {'PASS' if ratio <= 1.3 and m1['peak_mb'] <= 1024 else 'FAIL'}")


if __name__ == "__main__":
    main()
