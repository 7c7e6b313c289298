"""The whole data path at a given size: prompts -> generate -> filter -> SFT data, measured per stage.

    .venv/bin/python bench/scale.py --size 8k 80k                    # two sizes and their ratios
    .venv/bin/python bench/scale.py --size 8k --kill-each-stage      # plus kill -9 once per stage, rerun, compare
    .venv/bin/python bench/scale.py --size 80k 800k --readme --json m.json   # and write the table into README.md
    .venv/bin/python bench/scale.py --table-from m.json --readme     # the table of a finished run, again

A size is a number of teacher traces. The mix, written as local JSONL sources: math word problems
(85%: toy arithmetic behind a random story; 3% exact repeats (other punctuation), 3% near-repeats with one story word
changed, a few MATH-500/AIME-2024 problems planted for decontamination), code (3%: toy programs with
stdin tests) and chat (12%, answered with thinking off); quotas by share, exact + MinHash near-dedup
and 8-gram decontamination against MATH-500 and AIME 2024. generate: the toy teacher, 4 samples per
problem, R1-like heavy-tailed reasoning (log-normal, median 1.5k / p99 16k toy tokens, ~4 kB of text
at the median, cut at 16k). filter: the real verifiers per domain (math-verify, the code sandbox),
readability checks, selection. SFT data: the kept rows tokenized for Qwen2.5's real tokenizer (the
one the tests install) with `distill.sft.data`, 2 processes.

Each stage runs in its own process; printed per stage: wall seconds, output rows/s, peak RSS (the
stage process plus its largest worker), peak private memory (the largest sum of RssAnon over the stage
process and its workers, sampled every 0.1 s: what they hold, without the pages of the Arrow and Parquet
files they map, which RSS counts and the kernel can drop), bytes on disk, and with two sizes the
large/small ratios (targets, issue 22: time ratio <= 1.1x the size ratio, i.e. linear; peak memory ratio <= 1.3). `--kill-each-stage` reruns the path in a
second directory, kills each stage with SIGKILL halfway through its measured time, reruns it, and
requires rows identical to the uninterrupted run.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES = ("prompts", "generate", "filter", "sft_data")
SAMPLES = 4  # traces per problem
PROBLEMS_PER_SHARD = 500  # 2,000 traces per generate/filter shard: a kill loses at most that
MIX = (("math", 0.85), ("code", 0.03), ("chat", 0.12))
WORKERS = 2
STORY = (
    "a shop sells apples pears and plums each day the farmer counts baskets of fruit while the children "
    "carry boxes to the market near the river where boats bring more crates every morning at dawn"
).split()
OUT_DIRS = {"prompts": "prompts", "generate": "traces", "filter": "curated", "sft_data": "sft_data"}  # each stage's output in a work dir
KILL_AT = 0.5  # --kill-each-stage kills a stage at this share of its uninterrupted time
VOLATILE = ("generated_at",)  # the one column a regenerated row changes


def parse_size(text: str) -> int:
    text = text.lower().replace("_", "")
    return int(float(text[:-1]) * 1000) if text.endswith("k") else int(float(text[:-1]) * 10**6) if text.endswith("m") else int(text)


def _story(rng: random.Random) -> str:
    return " ".join(rng.choices(STORY, k=24)).capitalize() + "."


def write_sources(d: Path, traces: int, seed: int = 0) -> list[dict]:
    """The mix's three JSONL sources, ~10% larger than their quotas (dedup and decontamination remove
    some); streamed to disk, keeping only a window of recent rows to repeat."""
    from distill.prompts.stage import benchmark_problems

    problems = traces // SAMPLES
    rng = random.Random(seed)
    bench = [text for _, text in benchmark_problems(["math500", "aime24"], [])]
    d.mkdir(parents=True, exist_ok=True)
    sources = []
    for name, share in MIX:
        n = int(problems * share * 1.1) + 10
        path = d / f"{name}.jsonl"
        recent: list[dict] = []
        with open(path, "w") as f:
            for _ in range(n):
                roll = rng.random()
                if name == "math" and roll < 0.002:
                    row = {"problem": rng.choice(bench), "answer": "0"}
                elif recent and roll < 0.03:
                    row = {**rng.choice(recent)}
                    row["problem"] = row["problem"].replace(".", "!", 1).replace(" ", "  ", 1)  # the story's punctuation: an exact repeat
                elif recent and roll < 0.06:
                    row = {**rng.choice(recent)}
                    words = row["problem"].split(" ")
                    words[rng.randrange(1, 20)] = rng.choice(STORY)
                    row["problem"] = " ".join(words)
                else:
                    row = _problem(name, rng)
                    recent = (recent + [row])[-1000:]
                f.write(json.dumps(row) + "\n")
        src = {"source": str(path), "name": name, "share": share, "seed": seed}
        if name == "code":
            src.update(domain="code", columns={"prompt": "problem", "tests": "tests"})
        if name == "chat":
            src.update(domain="general", nonreasoning="teacher")
        sources.append(src)
    return sources


def _problem(name: str, rng: random.Random) -> dict:
    from distill.toy.tasks import CHAT_REPLIES, CODE_TEST_INPUTS, code_prompt

    if name == "math":
        a, b = rng.randrange(100, 1000), rng.randrange(100, 1000)
        op = rng.choice("+-")
        a, b = (a, b) if op == "+" or a >= b else (b, a)
        return {"problem": f"{_story(rng)} What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a - b)}
    if name == "code":
        x, y = rng.randrange(100, 1000), rng.randrange(100, 1000)
        tests = [{"input": i, "output": str(int(i) + x + y)} for i in CODE_TEST_INPUTS]
        return {"problem": f"{_story(rng)} {code_prompt(x, y)}", "tests": json.dumps(tests)}
    verb = rng.choice(list(CHAT_REPLIES))
    who = "".join(rng.choices("bdklmnrstv", k=1)) + "".join(rng.choices("aeiou", k=1)) + "".join(rng.choices("bdklmnrstv", k=1)) + "o"
    return {"problem": f"{_story(rng)}\n{verb} {who.capitalize()}.", "answer": CHAT_REPLIES[verb].format(name=who.capitalize())}


def run_stage(stage: str, work: Path, traces: int) -> tuple[int, str | None]:
    """Run one stage in this process: (output rows, a hash of the tokenized rows for SFT data)."""
    if stage == "prompts":
        from distill.prompts.config import PromptsConfig
        from distill.prompts.stage import run

        sources = json.loads((work / "sources.json").read_text())
        cfg = PromptsConfig(
            sources=sources, total=traces // SAMPLES, rows_per_shard=PROBLEMS_PER_SHARD,
            dedup={"near": True}, decontaminate={"benchmarks": ["math500", "aime24"]},
        )
        return run(cfg, work / "prompts", workers=WORKERS)["rows_out"], None
    if stage == "generate":
        from distill.generate.config import GenerateConfig
        from distill.generate.stage import run

        cfg = GenerateConfig.model_validate({
            "backend": "toy", "samples_per_prompt": SAMPLES, "sampling": {"max_tokens": 16384},
            "toy": {"think_median_tokens": 1500, "think_p99_tokens": 16000},
        })
        return run(cfg, work / "prompts", work / "traces", workers=WORKERS)["rows"], None
    if stage == "filter":
        from distill.filter.config import FilterConfig
        from distill.filter.stage import run

        return run(FilterConfig(), work / "traces", work / "curated", workers=WORKERS)["rows_out"], None
    from distill.sft.data import curated_dataset, source_key, tokenized_dataset
    from distill.stage import StageDir
    from tests.real_students import real_tokenizer

    tok = real_tokenizer("qwen2.5")
    tok.chat_template = (ROOT / "distill/templates/qwen2.jinja").read_text()
    convs, _ = curated_dataset(work / "curated", "reasoning", work / "sft_data")
    rows, _ = tokenized_dataset(convs, source_key(StageDir(work / "curated").parts(), "reasoning"), tok, 20480, work / "sft_data", WORKERS)
    h = hashlib.sha256()
    for batch in rows.iter(batch_size=1000):
        h.update(json.dumps(batch).encode())
    return len(rows), h.hexdigest()[:16]


def _child(stage: str, work: Path, traces: int) -> None:
    from memory import PeakMemory  # bench/memory.py, beside this script

    with PeakMemory(private=True, every_s=0.1) as private:
        t0 = time.perf_counter()
        rows, tokens = run_stage(stage, work, traces)
        seconds = time.perf_counter() - t0
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": kib / 1024, "private_mb": private.peak / 2**20, "tokens_digest": tokens}))


def _start(stage: str, work: Path, traces: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--child", stage, str(work), str(traces)]
    log = open(work / f"{stage}.log", "ab")
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=env, cwd=ROOT, start_new_session=True)


def measure(stage: str, work: Path, traces: int) -> dict:
    proc = _start(stage, work, traces)
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"{stage} failed (exit {proc.returncode}); see {work / f'{stage}.log'}")
    m = json.loads(out.decode().strip().splitlines()[-1])
    m["bytes"] = du(work / OUT_DIRS[stage])
    return m


def kill_and_rerun(stage: str, work: Path, traces: int, after_s: float) -> dict:
    """Start the stage, SIGKILL its whole process tree after `after_s`, run it again to the end."""
    proc = _start(stage, work, traces)
    try:
        proc.wait(timeout=after_s)
        killed = False  # it finished first: nothing to resume
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        killed = True
    at_kill = units_done(stage, work)
    t0 = time.perf_counter()
    m = measure(stage, work, traces)
    return {"killed": killed, "rerun_s": time.perf_counter() - t0, "rows": m["rows"], "tokens_digest": m["tokens_digest"],
            "units_at_kill": at_kill, "units": units_done(stage, work)}


def units_done(stage: str, work: Path) -> int:
    """The finished units a rerun keeps: shards of a Parquet stage, tokenized chunks of the SFT data step."""
    from distill.stage import StageDir

    if stage == "sft_data":
        return len(list((work / OUT_DIRS[stage]).glob("tokens-*-of-*.arrow")))
    return len(StageDir(work / OUT_DIRS[stage]).done_shards())


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def digest(work: Path, stage: str) -> str:
    """A hash of a Parquet stage's rows in order (volatile columns dropped), read one part at a time."""
    import pyarrow.parquet as pq

    from distill.stage import StageDir

    h = hashlib.sha256()
    d = OUT_DIRS[stage]
    for part in StageDir(work / d).parts() + StageDir(work / d).rejected_parts():
        t = pq.read_table(part)
        t = t.drop_columns([c for c in VOLATILE if c in t.column_names])
        h.update(json.dumps(t.to_pylist(), sort_keys=True, default=str).encode())
    if stage == "prompts":
        h.update((work / d / "removed.jsonl").read_bytes())
    return h.hexdigest()[:16]


def run_path(work: Path, traces: int, kill: bool, results: dict, save, stages: tuple[str, ...] = STAGES) -> None:
    """Measure `stages` (the path's first ones) at one size into `results`, calling `save` after each, so a
    run stopped part-way keeps the stages it finished."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "sources.json").write_text(json.dumps(write_sources(work / "sources", traces)))
    for stage in stages:
        m = measure(stage, work, traces)
        results[stage] = m
        save()
        print(f"  {traces:>9,} {stage:9s} {m['seconds']:8.1f} s {m['rows']:>9,} rows {m['peak_mb']:7.0f} MB ({m['private_mb']:.0f} private) {m['bytes'] / 2**20:9.1f} MiB", file=sys.stderr)
    if kill:
        again = work.parent / f"{work.name}-killed"
        again.mkdir(parents=True, exist_ok=True)
        (again / "sources.json").write_text((work / "sources.json").read_text())
        for stage in stages:
            k = kill_and_rerun(stage, again, traces, results[stage]["seconds"] * KILL_AT)
            if stage == "sft_data":
                same = k["rows"] == results[stage]["rows"] and k["tokens_digest"] == results[stage]["tokens_digest"]
            else:
                same = digest(work, stage) == digest(again, stage)
            results[stage]["kill"] = {**k, "same_rows": same}
            save()
            print(f"  {traces:>9,} {stage:9s} killed={k['killed']} rerun {k['rerun_s']:.1f} s, same rows: {same}", file=sys.stderr)


def table(sizes: list[int], results: dict[int, dict]) -> str:
    """The per-stage table; a stage a stopped run did not reach is left out of its size's rows and totals."""
    done = {n: [s for s in STAGES if s in results[n]] for n in sizes}
    complete = {n: len(done[n]) == len(STAGES) for n in sizes}
    lines = [f"{'stage':9s} {'traces':>9s} {'seconds':>9s} {'rows out':>9s} {'rows/s':>8s} {'peak RSS MB':>12s} {'private MB':>11s} {'on disk MiB':>12s}"]
    for stage in STAGES:
        for n in [n for n in sizes if stage in done[n]]:
            m = results[n][stage]
            lines.append(f"{stage:9s} {n:>9,} {m['seconds']:>9.1f} {m['rows']:>9,} {m['rows'] / max(m['seconds'], 1e-9):>8,.0f} {m['peak_mb']:>12,.0f} "
                         f"{m['private_mb']:>11,.0f} {m['bytes'] / 2**20:>12,.1f}")
    total = {n: sum(results[n][s]["seconds"] for s in done[n]) for n in sizes}
    lines.append(f"{'total':9s} " + "  ".join(f"{n:,}: {total[n]:.0f} s" + ("" if complete[n] else f" ({len(done[n])} of {len(STAGES)} stages)") for n in sizes))
    if len(sizes) == 2:
        a, b = sizes
        lines.append(f"\nratios {b:,} / {a:,} traces (size x{b / a:g}):")
        for stage in [s for s in done[a] if s in done[b]]:
            x, y = results[a][stage], results[b][stage]
            lines.append(
                f"{stage:9s} time x{y['seconds'] / x['seconds']:.2f}  peak RSS x{y['peak_mb'] / x['peak_mb']:.2f}  private x{y['private_mb'] / x['private_mb']:.2f}  "
                f"disk x{y['bytes'] / max(x['bytes'], 1):.2f}  rows x{y['rows'] / max(x['rows'], 1):.2f}"
            )
        if complete[a] and complete[b]:
            lines.append(f"{'total':9s} time x{total[b] / total[a]:.2f}")
    for n in sizes:
        kills = {s: results[n][s]["kill"] for s in done[n] if "kill" in results[n][s]}
        if kills:
            lines.append(f"\nkill -9 once per stage at {n:,} traces (at half its time), rerun; time lost = kill time + rerun - uninterrupted:")
            for s, k in kills.items():
                lost = f"time lost {results[n][s]['seconds'] * KILL_AT + k['rerun_s'] - results[n][s]['seconds']:.1f} s" if k["killed"] else "finished first"
                kept = f", {k['units_at_kill']} of {k['units']} {'chunks' if s == 'sft_data' else 'shards'} kept" if "units" in k else ""
                lines.append(f"{s:9s} rerun {k['rerun_s']:.1f} s of {results[n][s]['seconds']:.1f}{kept}, {lost}, same rows {k['same_rows']}")
    return "\n".join(lines)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    return f"{model}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start"


def write_readme(text: str, block: str) -> None:
    """Replace the table between README.md's `<!-- bench/scale.py BLOCK -->` markers."""
    from scripts.readme_block import replace_block

    replace_block(ROOT / "README.md", f"<!-- bench/scale.py {block} -->", f"<!-- /bench/scale.py {block} -->", f"\n```\n{text}\n```\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", nargs="+", default=["8k"], help="traces per run: 8k, 80k, 800k (two sizes print ratios)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/distill-bench-scale"))
    ap.add_argument("--kill-each-stage", action="store_true")
    ap.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES, help="the path's first stages only (each needs those before it)")
    ap.add_argument("--readme", action="store_true", help="write the table into README.md")
    ap.add_argument("--block", default="table", help="with --readme: the README block's marker name (`<!-- bench/scale.py BLOCK -->`)")
    ap.add_argument("--json", type=Path, help="also write the measurements here")
    ap.add_argument("--table-from", type=Path, help="print (and with --readme write) the table of a --json file instead of running")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child[0], Path(args.child[1]), int(args.child[2]))
        return
    if args.table_from:
        saved = json.loads(args.table_from.read_text())
        results = {int(n): r for n, r in saved.items() if n.isdigit()}
        header = saved.get("header") or f"bench/scale.py: {machine().split(', load')[0]}, {datetime.date.fromtimestamp(args.table_from.stat().st_mtime)}"
        text = f"{header}\n{table(sorted(results), results)}"
        print(text)
        if args.readme:
            write_readme(text, args.block)
        return
    import shutil

    from distill.io import write_json

    if tuple(args.stages) != STAGES[: len(args.stages)]:
        raise SystemExit(f"--stages: the path's first stages, in order ({' '.join(STAGES)}), got {' '.join(args.stages)}")
    sizes = sorted(parse_size(s) for s in args.size)
    flags = (" --stages " + " ".join(args.stages) if len(args.stages) < len(STAGES) else "") + (" --kill-each-stage" if args.kill_each_stage else "")
    header = f"bench/scale.py --size {' '.join(args.size)}{flags}: {machine()}, {datetime.date.today()}"
    print(header, file=sys.stderr)
    results = {}

    def save() -> None:
        if args.json:
            write_json(args.json, {"header": header, **{str(n): r for n, r in results.items()}})

    for n in sizes:
        work = args.work / str(n)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(args.work / f"{n}-killed", ignore_errors=True)
        run_path(work, n, args.kill_each_stage, results.setdefault(n, {}), save, tuple(args.stages))
    text = f"{header}\n{table(sizes, results)}"
    print(text)
    if args.readme:
        write_readme(text, args.block)


if __name__ == "__main__":
    main()
