"""Bad input across the stages, table-driven, through the CLI in-process: each case ends with the expected
exit status, one `error:` line naming the file (and row/field where there is one) and no traceback,
and every shard that existed before the call is byte-identical after it.

Damage to a stage's *own* finished shard while its input is intact is repaired, not refused: those
cases expect exit 0 and the shard's rows back as they were."""

import errno
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from distill.cli import app
from distill.eval.config import EvalConfig, ModelSpec
from distill.filter.config import FilterConfig
from distill.generate.config import GenerateConfig
from distill.prompts.config import PromptsConfig
from distill.stage import StageDir

PROMPTS = {"source": "toy", "toy": {"n": 40, "seed": 3}, "rows_per_shard": 10}
GENERATE = {"backend": "toy", "samples_per_prompt": 2, "chunk_size": 5, "sampling": {"max_tokens": 128}}
EVAL = {"overrides": {"toy_arith": {"toy": {"n": 12}, "k": 2}}, "problems_per_shard": 4, "problems_per_chunk": 2,
        "max_tokens": 96, "bootstrap_resamples": 100}
EVAL_SET = ["--set", "overrides.toy_arith.toy.n=12", "--set", "overrides.toy_arith.k=2", "--set", "problems_per_shard=4",
            "--set", "problems_per_chunk=2", "--set", "max_tokens=96", "--set", "bootstrap_resamples=100"]
GEN_SET = ["--set", "backend=toy", "--set", "samples_per_prompt=2", "--set", "chunk_size=5", "--set", "sampling.max_tokens=128"]
PROMPT_SET = ["--set", "source=toy", "--set", "toy.n=40", "--set", "toy.seed=3", "--set", "rows_per_shard=10"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Finished prompts (p, 4 shards), traces (t), curated (c) and eval (e) stages of a tiny toy run."""
    from distill.eval.stage import run as run_eval
    from distill.filter.stage import run as run_filter
    from distill.generate.stage import run as run_generate
    from distill.prompts.stage import run as run_prompts

    d = tmp_path_factory.mktemp("pristine")
    run_prompts(PromptsConfig.model_validate(PROMPTS), d / "p")
    run_generate(GenerateConfig.model_validate(GENERATE), d / "p", d / "t")
    run_filter(FilterConfig(), d / "t", d / "c")
    run_eval(EvalConfig.model_validate(EVAL), ModelSpec(name="e", backend="toy", model="toy-teacher"), d / "e")
    return d


@dataclass
class Case:
    name: str
    argv: Callable[[Path], list]  # the CLI arguments, given the case directory
    expect: list[str]  # substrings of the error line, in order (file, then row/field, then the reason)
    setup: Callable[[Path], None] = lambda d: None
    stages: str = ""  # pristine stages copied in first: "pt" = p and t
    code: int = 2
    repaired: list[str] = field(default_factory=list)  # stage/part files that must come back equal to pristine
    read_only: bool = False  # the case directory is on read-only storage


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def short_part(path: Path) -> None:
    pq.write_table(pq.read_table(path).slice(0, 1), path)


def prompts_src(src: str, *more) -> Callable[[Path], list]:
    return lambda d: ["prompts", "-o", d / "out", "--set", f"source={d / src}", *more]


GOOD = {"problem": "What is 2 + 2?", "answer": "4"}
PIPE = {"name": "x", "prompts": PROMPTS, "generate": GENERATE, "filter": {}, "eval": {**EVAL, "models": [{"name": "m", "model": "toy-teacher", "backend": "toy"}]},
        "sft": {"students": [{"name": "s", "model": "toy:qwen2", "chat_template": "distill/templates/qwen2.jinja"}]}}


def pipe(d: Path, **changes) -> Path:
    cfg = {**PIPE, "run_dir": str(d / "run"), **changes}
    write(d / "pipe.yaml", yaml.safe_dump(cfg))
    return d / "pipe.yaml"


def changed_source(d: Path) -> None:
    """A prompts stage made from s.jsonl, whose file was edited afterwards."""
    write(d / "s.jsonl", jsonl(GOOD))
    assert CliRunner().invoke(app, [str(a) for a in prompts_src("s.jsonl")(d)]).exit_code == 0
    write(d / "s.jsonl", jsonl(GOOD, {"problem": "What is 3 + 3?", "answer": "6"}))


def run_dir(d: Path, extra: dict | None = None) -> None:
    """A run directory holding the pristine stages under their pipeline names."""
    run = d / "run"
    for src, name in (("p", "01_prompts"), ("t", "02_traces"), ("c", "03_curated")):
        shutil.move(d / src, run / name) if (d / src).exists() else None
    write(run / "pipeline.yaml", yaml.safe_dump({**PIPE, **(extra or {})}))


CASES = [
    # --- pipeline YAML and stage configs
    Case("pipeline-missing", lambda d: ["run", d / "nope.yaml"], ["nope.yaml", "file not found"]),
    Case("pipeline-is-dir", lambda d: ["run", d / "dir.yaml"], ["dir.yaml", "is a directory"], setup=lambda d: (d / "dir.yaml").mkdir()),
    Case("pipeline-bad-yaml", lambda d: ["run", d / "b.yaml"], ["b.yaml:3:1", "invalid YAML"], setup=lambda d: write(d / "b.yaml", "name: x\nprompts: [a\n")),
    Case("pipeline-duplicate-key", lambda d: ["run", d / "b.yaml"], ["b.yaml:4:3", "duplicate key 'rows_per_shard' (lines 3 and 4)"],
         setup=lambda d: write(d / "b.yaml", "name: x\nprompts:\n  rows_per_shard: 1000\n  rows_per_shard: 7\n")),
    Case("stage-config-duplicate-key", lambda d: ["prompts", "-c", d / "p.yaml", "-o", d / "p"], ["p.yaml:2:1", "duplicate key 'source' (lines 1 and 2)"],
         setup=lambda d: write(d / "p.yaml", "source: toy\nsource: toy\n")),
    Case("pipeline-top-list", lambda d: ["run", d / "b.yaml"], ["b.yaml", "expected a mapping"], setup=lambda d: write(d / "b.yaml", "- a\n- b\n")),
    Case("pipeline-not-utf8", lambda d: ["run", d / "b.yaml"], ["b.yaml", "not UTF-8"], setup=lambda d: write(d / "b.yaml", b"name: \xff\xfe\n")),
    Case("pipeline-unknown-key", lambda d: ["run", pipe(d, bogus=1)], ["pipe.yaml", "field 'bogus'"]),
    Case("pipeline-bad-type", lambda d: ["run", pipe(d, prompts={**PROMPTS, "rows_per_shard": "ten"})], ["pipe.yaml", "field 'prompts.rows_per_shard'"]),
    Case("pipeline-section-file-missing", lambda d: ["run", pipe(d, filter="nope.yaml")], ["nope.yaml", "file not found"]),
    Case("pipeline-section-file-is-dir", lambda d: ["run", pipe(d, filter="sub")], ["sub", "is a directory"], setup=lambda d: (d / "sub").mkdir()),
    Case("pipeline-run-dir-is-file", lambda d: ["run", pipe(d), "--only", "prompts"], ["run", "is a file"], setup=lambda d: write(d / "run", "x")),
    Case("pipeline-only-unknown", lambda d: ["run", pipe(d), "--only", "sfft"], ["--only", "sfft"]),
    Case("pipeline-refused-change-keeps-pipeline-yaml", lambda d: ["run", pipe(d, prompts={**PROMPTS, "toy": {"n": 40, "seed": 4}}), "--only", "prompts"],
         ["01_prompts/config.json", "toy.seed"], stages="p", setup=lambda d: run_dir(d)),
    Case("stage-config-is-dir", lambda d: ["prompts", "-o", d / "out", "-c", d / "cfg"], ["cfg", "is a directory"], setup=lambda d: (d / "cfg").mkdir()),
    Case("stage-config-unknown-key", lambda d: ["prompts", "-o", d / "out", "-c", d / "c.yaml"], ["c.yaml", "field 'sorce'"], setup=lambda d: write(d / "c.yaml", "sorce: toy\n")),
    Case("set-bad-type", lambda d: ["generate", "-i", d / "p", "-o", d / "t", "--set", "sampling.temperature=hot"], ["field 'sampling.temperature'"], stages="p"),
    Case("set-unknown-key", lambda d: ["generate", "-i", d / "p", "-o", d / "t", "--set", "sampling.temprature=1"], ["field 'sampling.temprature'"], stages="p"),
    Case("set-no-equals", lambda d: ["filter", "-i", d / "t", "-o", d / "c", "--set", "select.policy"], ["override 'select.policy'", "key=value"], stages="t"),
    Case("set-through-scalar", lambda d: ["prompts", "-o", d / "out", "--set", "rows_per_shard=5", "--set", "rows_per_shard.x=1"], ["rows_per_shard", "not a mapping"]),
    Case("filter-bad-policy", lambda d: ["filter", "-i", d / "t", "-o", d / "c", "--set", "select.policy=bogus"], ["field 'select.policy'"], stages="t"),
    Case("eval-bad-shard-size", lambda d: ["eval", "-o", d / "e", "--model", "toy-teacher", "--backend", "toy", "--set", "problems_per_shard=0"], ["field 'problems_per_shard'"]),
    # --- JSONL sources
    Case("jsonl-not-utf8", prompts_src("s.jsonl"), ["s.jsonl:2:", "not UTF-8", "0xff"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD).encode() + b'{"problem": "a\xff"}\n')),
    Case("jsonl-latin1", prompts_src("s.jsonl"), ["s.jsonl:1:", "not UTF-8"], setup=lambda d: write(d / "s.jsonl", '{"problem": "caf\xe9"}\n'.encode("latin-1"))),
    Case("jsonl-lone-surrogate", prompts_src("s.jsonl"), ["s.jsonl:3: field 'problem'", "surrogate"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD, GOOD, '{"problem": "x \\ud800 y"}'))),
    Case("jsonl-lone-low-surrogate-answer", prompts_src("s.jsonl", "--set", "columns.answer=answer"), ["s.jsonl:1: field 'answer'", "surrogate"],
         setup=lambda d: write(d / "s.jsonl", jsonl('{"problem": "p", "answer": "\\uDC00"}'))),
    Case("jsonl-malformed", prompts_src("s.jsonl"), ["s.jsonl:2:", "malformed JSON"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD, '{"problem": "b",}'))),
    Case("jsonl-truncated-last-line", prompts_src("s.jsonl"), ["s.jsonl:2:", "malformed JSON"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD) + '{"problem": "Wha')),
    Case("jsonl-bom", prompts_src("s.jsonl"), ["s.jsonl:1:", "malformed JSON"], setup=lambda d: write(d / "s.jsonl", b"\xef\xbb\xbf" + jsonl(GOOD).encode())),
    Case("jsonl-row-is-list", prompts_src("s.jsonl"), ["s.jsonl:1:", "expected a JSON object"], setup=lambda d: write(d / "s.jsonl", "[1, 2]\n")),
    Case("jsonl-row-is-string", prompts_src("s.jsonl"), ["s.jsonl:2:", "expected a JSON object"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD) + '"text"\n')),
    Case("jsonl-missing-prompt", prompts_src("s.jsonl"), ["s.jsonl:2: field 'problem'", "missing or empty"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD, {"query": "q"}))),
    Case("jsonl-empty-prompt", prompts_src("s.jsonl"), ["s.jsonl:1: field 'problem'", "missing or empty"], setup=lambda d: write(d / "s.jsonl", jsonl({"problem": "   "}))),
    Case("jsonl-number-prompt", prompts_src("s.jsonl"), ["s.jsonl:1: field 'problem'", "missing or empty"], setup=lambda d: write(d / "s.jsonl", jsonl({"problem": 7}))),
    Case("jsonl-bad-domain", prompts_src("s.jsonl", "--set", "columns={prompt: problem, domain: kind}"), ["s.jsonl:1: field 'kind'", "domain 'poetry'"],
         setup=lambda d: write(d / "s.jsonl", jsonl({**GOOD, "kind": "poetry"}))),
    Case("jsonl-renamed-column-absent", prompts_src("s.jsonl", "--set", "columns.prompt=question"), ["s.jsonl:1: field 'question'"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD))),
    Case("jsonl-list-answer", prompts_src("s.jsonl"), ["s.jsonl:2: field 'answer'", "a list [5, 7]"], setup=lambda d: write(d / "s.jsonl", jsonl(GOOD, {"problem": "p", "answer": [5, 7]}))),
    Case("jsonl-object-answer", prompts_src("s.jsonl"), ["s.jsonl:1: field 'answer'", "an object"], setup=lambda d: write(d / "s.jsonl", jsonl({"problem": "p", "answer": {"a": 1}}))),
    Case("jsonl-empty-source", prompts_src("s.jsonl"), ["s.jsonl", "no problems", "allow_empty"], setup=lambda d: write(d / "s.jsonl", "")),
    Case("source-changed-on-resume", prompts_src("s.jsonl"), ["out/sources.json", "changed since this stage started"], setup=lambda d: changed_source(d)),
    Case("source-missing", prompts_src("nope.jsonl"), ["nope.jsonl", "file not found"]),
    Case("source-is-dir", prompts_src("dir.jsonl"), ["dir.jsonl", "directory"], setup=lambda d: (d / "dir.jsonl").mkdir()),
    Case("source-unknown-kind", prompts_src("s.csv"), ["s.csv", "expected 'toy'"], setup=lambda d: write(d / "s.csv", "a,b\n")),
    # --- Parquet sources
    Case("parquet-src-truncated", prompts_src("s.parquet"), ["s.parquet", "not a readable Parquet file"],
         setup=lambda d: (pq.write_table(pa.table({"problem": ["a"] * 50}), d / "s.parquet"), truncate(d / "s.parquet"))),
    Case("parquet-src-is-text", prompts_src("s.parquet"), ["s.parquet", "not a readable Parquet file"], setup=lambda d: write(d / "s.parquet", "prompt\nhello\n")),
    Case("parquet-src-empty-file", prompts_src("s.parquet"), ["s.parquet", "not a readable Parquet file"], setup=lambda d: write(d / "s.parquet", b"")),
    Case("parquet-src-is-dir", prompts_src("s.parquet"), ["s.parquet", "directory"], setup=lambda d: (d / "s.parquet").mkdir()),
    Case("parquet-src-no-prompt-column", prompts_src("s.parquet"), ["s.parquet:1: field 'problem'"], setup=lambda d: pq.write_table(pa.table({"query": ["a"]}), d / "s.parquet")),
    Case("parquet-src-null-prompt", prompts_src("s.parquet"), ["s.parquet:2: field 'problem'"], setup=lambda d: pq.write_table(pa.table({"problem": ["a", None]}), d / "s.parquet")),
    # --- an input stage that is damaged or unfinished (generate reads prompts)
    Case("input-part-missing", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["part-00001.parquet", "file not found", "shard 1", "rerun the stage"],
         stages="p", setup=lambda d: StageDir(d / "p").part(1).unlink()),
    Case("input-part-truncated", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["part-00002.parquet", "not a readable Parquet file", "shard 2"],
         stages="p", setup=lambda d: truncate(StageDir(d / "p").part(2))),
    Case("input-part-empty-file", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["part-00000.parquet", "not a readable Parquet file", "shard 0"],
         stages="p", setup=lambda d: write(StageDir(d / "p").part(0), b"")),
    Case("input-part-short", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["part-00003.parquet", "1 rows, but its stats recorded 10", "shard 3"],
         stages="p", setup=lambda d: short_part(StageDir(d / "p").part(3))),
    Case("input-part-is-dir", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["part-00001.parquet", "shard 1"],
         stages="p", setup=lambda d: (StageDir(d / "p").part(1).unlink(), StageDir(d / "p").part(1).mkdir())),
    Case("input-stats-corrupt", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["stats/00001.json", "damaged shard stats file", "shard 1"],
         stages="p", setup=lambda d: write(StageDir(d / "p").stats_file(1), '{"rows_out": 1')),
    Case("input-stats-not-object", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["stats/00002.json", "expected a JSON object"],
         stages="p", setup=lambda d: write(StageDir(d / "p").stats_file(2), "[]")),
    Case("input-stats-missing", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["stats/00000.json", "file not found", "shard 0"],
         stages="p", setup=lambda d: StageDir(d / "p").stats_file(0).unlink()),
    Case("input-plan-corrupt", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["p/plan.json", "damaged shard plan"],
         stages="p", setup=lambda d: write(d / "p" / "plan.json", "{not json")),
    Case("input-plan-wrong-shape", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["p/plan.json", "damaged shard plan"],
         stages="p", setup=lambda d: write(d / "p" / "plan.json", '{"shards": 4}')),
    Case("input-config-corrupt", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["p/config.json", "damaged stage config"],
         stages="p", setup=lambda d: write(d / "p" / "config.json", b"\x00\x01")),
    Case("input-unfinished", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["p:", "prompts stage is not finished", "shards 2 of 4"],
         stages="p", setup=lambda d: StageDir(d / "p").done_file(2).unlink()),
    Case("input-missing", lambda d: ["generate", "-i", d / "nope", "-o", d / "t", *GEN_SET], ["nope", "no finished prompts shards", "no such directory"]),
    Case("input-is-file", lambda d: ["generate", "-i", d / "f", "-o", d / "t", *GEN_SET], ["f", "not a stage directory"], setup=lambda d: write(d / "f", "x")),
    Case("output-is-file", lambda d: ["generate", "-i", d / "p", "-o", d / "f", *GEN_SET], ["f", "is a file, expected a stage directory"], stages="p", setup=lambda d: write(d / "f", "x")),
    Case("output-parent-is-file", lambda d: ["prompts", "-o", d / "f" / "out", *PROMPT_SET], ["f"], setup=lambda d: write(d / "f", "x")),
    Case("output-config-corrupt", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], ["t/config.json", "damaged stage config"],
         stages="pt", setup=lambda d: write(d / "t" / "config.json", '{"hash": ')),
    Case("output-config-other", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET, "--set", "sampling.temperature=0.9"],
         ["t/config.json", "another config", "sampling.temperature"], stages="pt"),
    Case("filter-traces-part-missing", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], ["t/part-00002.parquet", "file not found", "shard 2"],
         stages="t", setup=lambda d: StageDir(d / "t").part(2).unlink()),
    Case("filter-traces-short", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], ["t/part-00001.parquet", "rows, but its stats recorded"],
         stages="t", setup=lambda d: short_part(StageDir(d / "t").part(1))),
    Case("filter-traces-wrong-schema", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], ["t/part-00000.parquet", "column 'completion'"],
         stages="t", setup=lambda d: pq.write_table(pq.read_table(StageDir(d / "t").part(0)).drop_columns(["completion"]), StageDir(d / "t").part(0))),
    Case("filter-traces-unfinished", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], ["generate stage is not finished", "shards 3 of 4"],
         stages="t", setup=lambda d: StageDir(d / "t").done_file(3).unlink()),
    Case("sft-check-curated-part-missing", lambda d: ["sft", "-i", d / "c", "-o", d / "s", "--check", "--set", "name=s", "--set", "model=toy:qwen2",
                                                      "--set", "chat_template=distill/templates/qwen2.jinja"],
         ["c/part-00001.parquet", "file not found", "shard 1"], stages="c", setup=lambda d: StageDir(d / "c").part(1).unlink()),
    Case("sft-check-curated-unfinished", lambda d: ["sft", "-i", d / "c", "-o", d / "s", "--check", "--set", "name=s", "--set", "model=toy:qwen2",
                                                    "--set", "chat_template=distill/templates/qwen2.jinja"],
         ["filter stage is not finished", "shards 0 of 4"], stages="c", setup=lambda d: StageDir(d / "c").done_file(0).unlink()),
    # --- a stage's own finished shards, damaged while its input is intact: regenerated
    Case("own-part-missing-regenerated", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], [], code=0, stages="tc",
         setup=lambda d: StageDir(d / "c").part(1).unlink(), repaired=["c/part-00001.parquet"]),
    Case("own-part-truncated-regenerated", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], [], code=0, stages="pt",
         setup=lambda d: truncate(StageDir(d / "t").part(2)), repaired=["t/part-00002.parquet"]),
    Case("own-stats-corrupt-regenerated", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], [], code=0, stages="tc",
         setup=lambda d: write(StageDir(d / "c").stats_file(0), "{"), repaired=["c/part-00000.parquet"]),
    Case("own-prompts-stats-missing-regenerated", lambda d: ["prompts", "-o", d / "p", *PROMPT_SET], [], code=0, stages="p",
         setup=lambda d: StageDir(d / "p").stats_file(3).unlink(), repaired=["p/part-00003.parquet"]),
    Case("own-prompts-stats-corrupt-regenerated", lambda d: ["prompts", "-o", d / "p", *PROMPT_SET], [], code=0, stages="p",
         setup=lambda d: write(StageDir(d / "p").stats_file(1), "{"), repaired=["p/part-00001.parquet"]),
    Case("own-generate-stats-missing-regenerated", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], [], code=0, stages="pt",
         setup=lambda d: StageDir(d / "t").stats_file(3).unlink(), repaired=["t/part-00003.parquet"]),
    Case("own-generate-stats-corrupt-regenerated", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], [], code=0, stages="pt",
         setup=lambda d: write(StageDir(d / "t").stats_file(0), "[]"), repaired=["t/part-00000.parquet"]),
    Case("own-eval-stats-missing-regenerated", lambda d: ["eval", "-o", d / "e", "--name", "e", "--model", "toy-teacher", "--backend", "toy", *EVAL_SET],
         [], code=0, stages="e", setup=lambda d: StageDir(d / "e").stats_file(1).unlink(), repaired=["e/part-00001.parquet"]),
    Case("own-plan-corrupt-rewritten", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], [], code=0, stages="tc",
         setup=lambda d: write(d / "c" / "plan.json", "garbage"), repaired=["c/plan.json"]),
    Case("own-prompts-part-missing-regenerated", lambda d: ["prompts", "-o", d / "p", *PROMPT_SET], [], code=0, stages="p",
         setup=lambda d: StageDir(d / "p").part(2).unlink(), repaired=["p/part-00002.parquet"]),
    Case("own-eval-part-missing-regenerated", lambda d: ["eval", "-o", d / "e", "--name", "e", "--model", "toy-teacher", "--backend", "toy", *EVAL_SET],
         [], code=0, stages="e", setup=lambda d: StageDir(d / "e").part(1).unlink(), repaired=["e/part-00001.parquet"]),
    Case("eval-output-is-file", lambda d: ["eval", "-o", d / "f", "--model", "toy-teacher", "--backend", "toy", *EVAL_SET], ["f", "is a file"], setup=lambda d: write(d / "f", "x")),
    Case("eval-config-corrupt", lambda d: ["eval", "-o", d / "e", "--name", "e", "--model", "toy-teacher", "--backend", "toy", *EVAL_SET], ["e/config.json", "damaged stage config"],
         stages="e", setup=lambda d: write(d / "e" / "config.json", "[")),
    # --- read-only storage: finished stages rerun as no-ops and are read; anything to write is a one-line error
    Case("read-only-finished-prompts", lambda d: ["prompts", "-o", d / "p", *PROMPT_SET], [], code=0, stages="p", read_only=True),
    Case("read-only-finished-generate", lambda d: ["generate", "-i", d / "p", "-o", d / "t", *GEN_SET], [], code=0, stages="pt", read_only=True),
    Case("read-only-finished-filter", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], [], code=0, stages="tc", read_only=True),
    Case("read-only-finished-eval", lambda d: ["eval", "-o", d / "e", "--name", "e", "--model", "toy-teacher", "--backend", "toy", *EVAL_SET], [],
         code=0, stages="e", read_only=True),
    Case("read-only-status", lambda d: ["status", d / "run"], [], code=0, stages="ptc", setup=lambda d: run_dir(d), read_only=True),
    Case("read-only-unfinished-filter", lambda d: ["filter", "-i", d / "t", "-o", d / "c"], ["c/", "part-00002.parquet", "read-only file system"],
         stages="tc", setup=lambda d: (StageDir(d / "c").part(2).unlink(), StageDir(d / "c").done_file(2).unlink()), read_only=True),
    Case("read-only-new-output", lambda d: ["prompts", "-o", d / "p", *PROMPT_SET], ["p/config.json", "read-only file system"], read_only=True),
    Case("eval-benchmark-twice", lambda d: ["eval", "-o", d / "e2", "--model", "toy-teacher", "--backend", "toy", "--benchmark", "toy_arith", "--benchmark", "toy_arith"],
         ["toy_arith", "listed twice"]),
    Case("eval-rescore-part-missing", lambda d: ["eval", "-o", d / "e", "--rescore"], ["e/part-00002.parquet", "file not found", "shard 2"],
         stages="e", setup=lambda d: StageDir(d / "e").part(2).unlink()),
    # --- distill status
    Case("status-not-a-run", lambda d: ["status", d], ["not a run directory"]),
    Case("status-pipeline-yaml-is-dir", lambda d: ["status", d / "run"], ["run", "not a run directory"], setup=lambda d: (d / "run" / "pipeline.yaml").mkdir(parents=True)),
    Case("status-plan-corrupt", lambda d: ["status", d / "run"], ["02_traces/plan.json", "damaged shard plan"], stages="pt",
         setup=lambda d: (run_dir(d), write(d / "run" / "02_traces" / "plan.json", "{"))),
    Case("status-part-missing", lambda d: ["status", d / "run"], ["shard 1 damaged", "01_prompts/part-00001.parquet", "file not found"], stages="pt",
         setup=lambda d: (run_dir(d), StageDir(d / "run" / "01_prompts").part(1).unlink())),
    Case("status-stats-corrupt", lambda d: ["status", d / "run"], ["shard 3 damaged", "03_curated/stats/00003.json", "damaged shard stats file"], stages="ptc",
         setup=lambda d: (run_dir(d), write(StageDir(d / "run" / "03_curated").stats_file(3), "{{"))),
]


def read_only(root: Path, monkeypatch) -> None:
    """Make `root` read-only: by permissions, and (as root ignores them) by failing every file write the
    way a read-only mount does."""
    import distill.io

    subprocess.run(["chmod", "-R", "a-w", str(root)], check=True)

    def refuse(path, write):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(distill.io, "_atomic", refuse)


def rows(part: Path) -> list[dict]:
    """A part's rows without the generation timestamp, the one field a regenerated shard changes."""
    table = pq.read_table(part)
    return table.drop_columns([c for c in ("generated_at",) if c in table.column_names]).to_pylist()


def snapshot(root: Path) -> dict[str, bytes]:
    """Every finished-shard file and the run's pipeline.yaml, by path."""
    out = {}
    for p in root.rglob("*"):
        if p.is_file() and (p.suffix == ".parquet" or p.parent.name in ("done", "stats") or p.name in ("pipeline.yaml", "config.json")):
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, pristine: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parent.parent)  # chat templates are repo-relative
    for s in case.stages:
        shutil.copytree(pristine / s, tmp_path / s)
    case.setup(tmp_path)
    before = snapshot(tmp_path)
    if case.read_only:
        read_only(tmp_path, monkeypatch)
    result = CliRunner().invoke(app, [str(a) for a in case.argv(tmp_path)])
    if case.read_only:
        subprocess.run(["chmod", "-R", "u+w", str(tmp_path)], check=True)
    out = result.stderr
    assert result.exit_code == case.code, f"{result.exit_code}: {out[-2000:]} {result.exception!r}"
    assert "Traceback" not in out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    if case.code:
        assert len(errors) == 1, out[-2000:]
        at = 0
        for want in case.expect:
            found = errors[0].find(want, at)
            assert found >= 0, f"{want!r} not in {errors[0]!r}"
            at = found
    else:
        assert not errors, out[-2000:]
    after = snapshot(tmp_path)
    changed = [p for p in before if before[p] != after.get(p)]
    if case.code:
        assert not changed, f"changed by a refused call: {changed}"
    else:  # only the repaired shards' files are rewritten
        assert all(p in case.repaired or "/stats/" in p for p in changed), changed
    for rel in case.repaired:
        if rel.endswith(".parquet"):
            assert rows(tmp_path / rel) == rows(pristine / rel), f"{rel} not restored"
        else:
            assert (tmp_path / rel).read_bytes() == (pristine / rel).read_bytes()


def test_at_least_sixty_cases():
    assert len(CASES) >= 60
