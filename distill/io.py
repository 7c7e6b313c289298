"""Atomic file writes and input readers with errors that name the file, row and field."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import socket
import time
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from distill.errors import DistillError, where
from distill.procs import pid_alive

# A temporary file is named after its writer, `.NAME.tmp-HOST-PID`, so a later run can tell a killed
# writer's leftover (its pid gone on this host) from a live writer's file and remove only the former.
_TMP = re.compile(r"^\..+\.tmp-(?P<host>.+)-(?P<pid>\d+)$")
# A temporary file of another host is a leftover once untouched this long (a live writer keeps writing).
FOREIGN_TMP_STALE_S = 3600.0


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (sources and imports can be GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def tmp_path(path: Path) -> Path:
    """The temporary sibling this process writes `path` through."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{socket.gethostname()}-{os.getpid()}")


def remove_leftover_tmp(root: Path) -> list[Path]:
    """Delete the temporary files under `root` whose writer is gone; return them. Unremovable ones
    (read-only storage) are left: they are never read, only in the way of nothing."""
    removed = []
    if not Path(root).is_dir():
        return removed
    host = socket.gethostname()
    for dirpath, _, files in os.walk(root):
        for name in files:
            m = _TMP.match(name)
            if m is None:
                continue
            path = Path(dirpath) / name
            if m["host"] == host:
                gone = int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"]))
            else:
                try:
                    gone = time.time() - path.stat().st_mtime > FOREIGN_TMP_STALE_S
                except FileNotFoundError:
                    continue
            if gone:
                try:
                    path.unlink(missing_ok=True)
                    removed.append(path)
                except OSError:
                    pass
    return removed


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
    tmp = tmp_path(path)
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


def read_json(path: Path, what: str = "JSON file"):
    """A JSON file written by a stage; a damaged one is a one-line error naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DistillError(f"{path}: is a directory, expected a {what}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DistillError(f"{path}: damaged {what} ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    if isinstance(e, json.JSONDecodeError):
        return f"{e.msg} at line {e.lineno} column {e.colno}"
    return str(e)


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """The table at `path` (only `columns`, when given: the others are never read); a missing column, like a
    missing or damaged file, is a one-line DistillError."""
    try:
        if columns is not None:
            missing = [c for c in columns if c not in pq.read_schema(path).names]
            if missing:
                raise DistillError(f"{path}: no column '{missing[0]}'")
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DistillError(f"{path}: is a directory, expected a Parquet file") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise DistillError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


def read_parquets(paths: list[Path], columns: list[str] | None = None) -> pa.Table:
    tables = [read_parquet(p, columns) for p in paths]
    return pa.concat_tables(tables) if tables else pa.table({})


def parquet_rows(path: Path) -> int:
    """Row count from the Parquet footer (no data read); a missing or damaged file is a DistillError."""
    try:
        return pq.read_metadata(path).num_rows
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise DistillError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None


def iter_parquet_rows(path: Path, batch_size: int = 4096) -> Iterator[tuple[int, dict]]:
    """Yield (1-based row, record) of a Parquet file, batch by batch; damage is `file: ...` or `file:row: ...`."""
    path = Path(path)
    if path.is_dir():
        raise DistillError(f"{path}: is a directory, expected a Parquet file")
    try:
        batches = pq.ParquetFile(path).iter_batches(batch_size=batch_size)
    except FileNotFoundError:
        raise DistillError(f"{path}: file not found") from None
    except (pa.ArrowInvalid, OSError) as e:
        raise DistillError(f"{path}: not a readable Parquet file ({str(e).splitlines()[0]})") from None
    row = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as e:
            raise DistillError(f"{where(path, row + 1)}: unreadable Parquet data ({str(e).splitlines()[0]})") from None
        for rec in batch.to_pylist():
            row += 1
            yield row, rec


# A JSON `\uD800`-`\uDFFF` escape: decodes to a lone surrogate, which no UTF-8 writer (Parquet) accepts.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object); a malformed line stops with `file:line: ...`."""
    path = Path(path)
    if not path.exists():
        raise DistillError(f"{path}: file not found")
    if path.is_dir():
        raise DistillError(f"{path}: is a directory, expected a JSONL file")
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DistillError(f"{where(path, lineno)}: not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DistillError(f"{where(path, lineno)}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(obj, dict):
                raise DistillError(f"{where(path, lineno)}: expected a JSON object, got {type(obj).__name__}")
            if _SURROGATE_ESCAPE.search(raw):
                _refuse_lone_surrogates(obj, path, lineno)
            yield lineno, obj


def iter_rows(path: Path) -> Iterator[tuple[int, dict]]:
    """(row number, dict) of a local .jsonl, .parquet or .csv file: a benchmark or a user's copy of one (GPQA
    ships as CSV). A CSV's row 1 is its header, so its first record is row 2, as a spreadsheet numbers it."""
    path = Path(path)
    if path.suffix == ".jsonl":
        yield from iter_jsonl(path)
    elif path.suffix == ".parquet":
        yield from iter_parquet_rows(path)
    elif not path.is_file():
        raise DistillError(f"{path}: file not found")
    elif path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as f:
            yield from enumerate(csv.DictReader(f), start=2)
    else:
        raise DistillError(f"{path}: expected a .jsonl, .parquet or .csv file")


def _refuse_lone_surrogates(obj: dict, path: Path, lineno: int) -> None:
    """Surrogate pairs are fine (they decode to one character); a lone half is an error naming its field."""
    for key, value in obj.items():
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise DistillError(f"{where(path, lineno, key)}: lone UTF-16 surrogate (a broken \\u escape)") from None
