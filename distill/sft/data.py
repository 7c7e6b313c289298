"""The SFT rows from a curated stage: kept rows only, in the reasoning or answer-only view, tokenized once.

Nothing here holds the conversations as Python objects: the curated Parquet parts are read through
`datasets` (converted once to memory-mapped Arrow under the student's `data/` directory), and each
step writes its result there too. A restarted run, and every rank of a multi-process run, finds the
files and reuses them: rank 0 builds them first (`main_process_first`), the others only open them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import pickle
import random
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from distill.errors import DistillError, where
from distill.io import write_bytes
from distill.stage import StageDir, worker_pool
from distill.think import split_think

log = logging.getLogger(__name__)

# The answer-only control keeps R1's output shape with an empty reasoning block, as R1 itself writes
# when it skips thinking, so both students see the same template and stop token.
EMPTY_THINK = "<think>\n\n</think>\n\n"
IGNORE_INDEX = -100  # the label of a token the loss skips (the prompt, the template's scaffolding)
# Rows tokenized per cached file: about one filter shard's kept rows, so a kill -9 loses as little as a stage shard.
CHUNK_ROWS = 2_000
PARTIAL = "partial"  # the folder, in the cache dir, of the chunks being written


def require_curated(inp: Path) -> list[Path]:
    """The parts of curated stage `inp`, or one line saying why there are none (checked before SFT writes anything)."""
    stage = StageDir(inp)
    if stage.done_shards():
        stage.require_complete("filter")
    parts = stage.parts()
    if not parts:
        raise DistillError(f"{inp}: no finished curated parts (run `distill filter` into it first)")
    return parts


def curated_dataset(inp: Path, data_format: str, cache_dir: Path, num_proc: int | None = None):
    """(datasets.Dataset with one `messages` column, counts) from every finished part of curated stage `inp`."""
    from datasets import Dataset

    parts = require_curated(inp)
    schemas = [pq.read_schema(p) for p in parts]
    for path, schema in zip(parts, schemas):
        if "messages" not in schema.names:
            raise DistillError(f"{where(path, field='messages')}: column missing (is this a curated stage?)")
    columns = ["messages"] + (["reject_reason"] if all("reject_reason" in s.names for s in schemas) else [])
    # A shard whose every sample was rejected has an empty part, which datasets cannot read ("BatchSize must
    # be greater than 0"): only parts with rows are read.
    parts = [p for p in parts if pq.ParquetFile(p).metadata.num_rows]
    if not parts:
        raise DistillError(f"{inp}: no kept rows to train on (every curated part is empty)")
    cache_dir = Path(cache_dir)
    ds = Dataset.from_parquet([str(p) for p in parts], columns=columns, cache_dir=str(cache_dir / "parquet"))
    rows_in = len(ds)
    starts = [0]
    for p in parts:
        starts.append(starts[-1] + pq.ParquetFile(p).metadata.num_rows)
    key = source_key(parts, data_format)
    kept = ds.filter(
        _kept_and_well_formed,
        with_indices=True,
        batched=True,
        fn_kwargs={"parts": [str(p) for p in parts], "starts": starts},
        cache_file_name=str(cache_dir / f"kept-{key}.arrow"),
        num_proc=_procs(num_proc, len(ds)),
        desc="Selecting kept rows",
    ).select_columns(["messages"])
    if len(kept) == 0:
        raise DistillError(f"{inp}: no kept rows to train on ({rows_in} rows, all rejected)")
    if data_format == "answer_only":
        kept = kept.map(answer_only, input_columns="messages", cache_file_name=str(cache_dir / f"answer-only-{key}.arrow"))
    return kept, {"rows_in": rows_in, "rows_kept": len(kept), "parts": len(parts)}


def source_key(parts: list[Path], data_format: str) -> str:
    """Names the cached files of one input: its finished parts (name, size, mtime) and the view."""
    return _key([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in parts], data_format)


def sample_conversations(conversations, samples: int, seed: int = 0) -> list[list[dict]]:
    """A seeded sample of at most `samples` conversations, as Python lists, for the pre-training check."""
    n = len(conversations)
    picked = sorted(random.Random(seed).sample(range(n), min(samples, n)))
    return conversations.select(picked)["messages"]


def _kept_and_well_formed(batch: dict, indices: list[int], parts: list[str], starts: list[int]) -> list[bool]:
    out = []
    rejected = batch.get("reject_reason") or [None] * len(indices)
    for messages, reason, i in zip(batch["messages"], rejected, indices):
        if reason is not None:
            out.append(False)
            continue
        if not messages or messages[-1].get("role") != "assistant" or not messages[-1].get("content"):
            part = next(k for k in range(len(parts)) if starts[k] <= i < starts[k + 1])
            raise DistillError(f"{where(Path(parts[part]), i - starts[part] + 1, 'messages')}: a kept row must end with a non-empty assistant turn")
        out.append(True)
    return out


def answer_only(messages: list[dict]) -> dict:
    messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    reasoning, response = split_think(messages[-1]["content"])
    answer = response if reasoning is not None else messages[-1]["content"]
    messages[-1]["content"] = EMPTY_THINK + answer
    return {"messages": messages}


def tokenized_dataset(conversations, source: str, tokenizer, max_length: int, cache_dir: Path, num_proc: int | None = None):
    """(input_ids + labels dataset of the rows that fit in max_length, rows dropped as too long).

    Tokenized exactly as trl renders a conversation (`check.render`), with trl's labels (-100 outside the
    assistant turns), once: the Arrow files are keyed by the rows, the template, the tokenizer and max_length,
    so a restart, another rank or the run after `distill sft --prepare` reuses them, and the trainer is given
    them as they are (skip_prepare_dataset), so no rank rewrites 800k rows behind a barrier.

    The rows are tokenized in chunks of CHUNK_ROWS, each written to its own Arrow file when it is done, so a
    killed run redoes one chunk per worker at most (a chunk is written in PARTIAL, which the rerun clears).
    One pool of `num_proc` workers serves every chunk and loads the tokenizer once (datasets' own num_proc
    would start a pool and pickle the tokenizer per chunk).
    """
    from datasets import Dataset, concatenate_datasets

    cache_dir = Path(cache_dir)
    key = _key(source, tokenizer.chat_template, tokenizer.name_or_path, len(tokenizer), tokenizer.eos_token, "labels", CHUNK_ROWS)
    chunks = -(-len(conversations) // CHUNK_ROWS)
    paths = [cache_dir / f"tokens-{key}-{i:05d}-of-{chunks:05d}.arrow" for i in range(chunks)]
    todo = [i for i, path in enumerate(paths) if not path.exists()]
    if todo and len(todo) < chunks:
        log.info("resuming tokenization: %d of %d chunks of %d rows cached in %s", chunks - len(todo), chunks, CHUNK_ROWS, cache_dir)
    if todo:  # only the process that tokenizes gets here (other ranks wait for it): what a killed run left is garbage
        shutil.rmtree(cache_dir / PARTIAL, ignore_errors=True)
    jobs = [(conversations.shard(chunks, i, contiguous=True), paths[i]) for i in todo]
    workers = min(num_proc or 1, len(jobs))
    if workers > 1:
        tokenizer_file = cache_dir / f"tokenizer-{key}.pickle"
        write_bytes(tokenizer_file, pickle.dumps(tokenizer))
        try:
            with worker_pool(workers) as pool:
                for done in [pool.submit(_tokenize_chunk_in_worker, rows, path, tokenizer_file) for rows, path in jobs]:
                    done.result()
        finally:
            tokenizer_file.unlink()
    else:
        for rows, path in jobs:
            _tokenize_chunk(rows, path, tokenizer)
    tokens = concatenate_datasets([Dataset.from_file(str(path)) for path in paths])
    fits = tokens.filter(
        lambda n: [x <= max_length for x in n],
        input_columns="length",
        batched=True,
        cache_file_name=str(cache_dir / f"fits-{key}-{max_length}.arrow"),
        desc=f"Dropping rows longer than {max_length} tokens",
    )
    return fits.remove_columns("length"), len(tokens) - len(fits)


def _tokenize_chunk_in_worker(rows, path: Path, tokenizer_file: Path) -> None:
    """`_tokenize_chunk` in a pool worker, with the tokenizer pickled to `tokenizer_file` (loaded once per worker)."""
    _tokenize_chunk(rows, path, _unpickled(tokenizer_file))


def _tokenize_chunk(rows, path: Path, tokenizer) -> None:
    """Tokenize `rows` into the Arrow file `path`: datasets writes it under a temporary name in the folder it is
    given, so it is given PARTIAL, where a kill leaves that file for the rerun to clear, and the finished file
    is moved in place."""
    from datasets import Features, Sequence, Value

    from distill.sft.check import render

    features = Features({"input_ids": Sequence(Value("int32")), "labels": Sequence(Value("int32")), "length": Value("int32")})
    partial = path.parent / PARTIAL / path.name
    rows.map(
        _tokenize,
        input_columns="messages",
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "render": render},
        remove_columns=rows.column_names,
        features=features,
        cache_file_name=str(partial),
        new_fingerprint=path.stem,  # named, not hashed: datasets would hash the whole tokenizer to name it
    )
    partial.replace(path)


@functools.lru_cache(maxsize=1)
def _unpickled(path: Path):
    return pickle.loads(path.read_bytes())


def _tokenize(batch: list[list[dict]], tokenizer, render) -> dict:
    ids, masks = zip(*(render(tokenizer, messages) for messages in batch)) if batch else ((), ())
    labels = [[t if m else IGNORE_INDEX for t, m in zip(row, mask)] for row, mask in zip(ids, masks)]
    return {"input_ids": list(ids), "labels": labels, "length": [len(i) for i in ids]}


def _procs(num_proc: int | None, rows: int) -> int | None:
    """datasets' num_proc: None (this process) unless several workers each get a row."""
    return num_proc if num_proc and num_proc > 1 and rows >= num_proc else None


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]
