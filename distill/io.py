"""Atomic file writes and input readers with errors that name the file, row and field."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import DistillError, where


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic(path: Path, write) -> None:
    """Write via a temporary sibling, fsync, then rename: readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


# Row groups are the unit a Parquet reader loads: bounded, a shard of 20k 32k-token traces (~2 GB) is
# read a group at a time (`pq.ParquetFile.iter_batches`) instead of all at once.
ROW_GROUP_BYTES = 128 * 2**20  # in memory, before compression
ROW_GROUP_ROWS = 65_536


def row_group_rows(table: pa.Table, max_bytes: int = ROW_GROUP_BYTES, max_rows: int = ROW_GROUP_ROWS) -> int:
    """Rows per group so that a group holds at most `max_bytes` (at the table's mean row size) and `max_rows`."""
    if table.num_rows == 0:
        return max_rows
    per_row = max(table.nbytes / table.num_rows, 1.0)
    return max(1, min(max_rows, int(max_bytes // per_row)))


def write_parquet(table: pa.Table, path: Path, *, max_group_bytes: int = ROW_GROUP_BYTES, max_group_rows: int = ROW_GROUP_ROWS) -> None:
    rows = row_group_rows(table, max_group_bytes, max_group_rows)
    _atomic(path, lambda tmp: pq.write_table(table, tmp, compression="zstd", row_group_size=rows))


def write_bytes(path: Path, data: bytes) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_bytes(data))


def write_text(path: Path, text: str) -> None:
    _atomic(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except pa.ArrowInvalid as e:
        raise DistillError(f"{path}: not a readable Parquet file ({e})") from None


def read_parquets(paths: list[Path]) -> pa.Table:
    tables = [read_parquet(p) for p in paths]
    return pa.concat_tables(tables) if tables else pa.table({})


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object); a malformed line stops with `file:line: ...`."""
    path = Path(path)
    if not path.exists():
        raise DistillError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DistillError(f"{where(path, lineno)}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DistillError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj
