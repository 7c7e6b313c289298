"""Exact and near-duplicate problem removal, with the index on disk so memory stays flat at any size.

Exact: the hash of the problem text lower-cased with punctuation and whitespace runs collapsed, so
"What is 2+2?" and "what is 2 + 2 ?" are one problem. Near: MinHash of the word 3-grams (datasketch),
cut into the LSH bands datasketch's `MinHashLSH` would use for the threshold; a problem that shares a
band with a kept one is a near-duplicate of it, exactly as `MinHashLSH.query` judged it.

The index is a SQLite table of 64-bit keys (one per exact key, one per band of each kept problem) in
the stage's `state/`: a B-tree on disk, read through a bounded page cache, so near-dedup of 1M
problems no longer needs the ~5 kB per kept problem the in-memory `MinHashLSH` held (~4.8 GiB).
Each key records the shard its problem went to, so a resume drops what the unfinished shard added.

Why not the offline band-sort of datatrove (signatures, sort by band, union-find, filter): it needs
the whole mix before judging any row, so quotas could no longer stop reading a source, and its
clusters are transitive (a ~ b ~ c removes c even when c is far from the kept a), which is not what
was judged before. Here every problem is still judged, in order, against the kept ones only.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections import Counter
from functools import lru_cache
from pathlib import Path

from datasketch import MinHash, MinHashLSH

_NON_WORD = re.compile(r"[^\w]+")
_SIGN = 1 << 63  # SQLite integers are signed 64-bit


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: whitespace, casing and punctuation do not matter."""
    return [w for w in _NON_WORD.sub(" ", text.lower()).split() if w != "_"]


def _u64(digest: bytes) -> int:
    return int.from_bytes(digest, "big")


def exact_key(text: str) -> int:
    """64-bit key: a 1M-problem mix collides with probability ~3e-8."""
    return _u64(hashlib.blake2b(" ".join(words(text)).encode(), digest_size=8).digest())


@lru_cache(maxsize=None)
def bands(threshold: float, num_perm: int) -> tuple[tuple[int, int], ...]:
    """The (start, end) hash-value ranges of the LSH bands datasketch picks for this threshold (b * r <= num_perm)."""
    return tuple(MinHashLSH(threshold=threshold, num_perm=num_perm).hashranges)


def band_keys(text: str, threshold: float, num_perm: int, n: int = 3) -> list[int]:
    """One 64-bit key per LSH band of the MinHash of the word n-grams: two problems share a key when
    their band is identical (the band index is hashed in, as each band is its own table in datasketch)."""
    w = words(text)
    shingles = {" ".join(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}
    m = MinHash(num_perm=num_perm)
    m.update_batch([s.encode() for s in shingles])
    hv = m.hashvalues
    return [
        _u64(hashlib.blake2b(bytes(hv[a:b].byteswap().data), digest_size=8, key=b"%d" % k).digest())
        for k, (a, b) in enumerate(bands(threshold, num_perm))
    ]


def _signed(u: int) -> int:
    return u - (1 << 64) if u >= _SIGN else u


def _hex(signed: int) -> str:
    return f"{signed % (1 << 64):016x}"


class Deduplicator:
    """Remembers kept problems in the SQLite file `path`; `check` returns (reason, id of the earlier
    copy) or None, and remembers a kept one as going to shard `self.shard`. Call `commit` after each batch:
    until then a kill loses only that batch's keys, which the resume drops anyway (`forget_from`).

    The fingerprints (`exact_key`, `band_keys`) are computed by the caller, possibly in worker
    processes; only the lookups, which need everything kept before, run here in order.
    """

    def __init__(self, path: Path, exact: bool = True, near: bool = False, cache_mib: int = 64):
        self.exact, self.near = exact, near
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level="DEFERRED")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed
        self._db.execute(f"PRAGMA cache_size=-{cache_mib * 1024}")  # the bound on memory: pages beyond it stay on disk
        for table in ("exact", "band"):
            columns = [c[1] for c in self._db.execute(f"PRAGMA table_info({table})")]
            if columns and "shard" not in columns:  # an older version's index (keys by source): rebuilt from the start
                self._db.execute(f"DROP TABLE {table}")
            self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key INTEGER PRIMARY KEY, id INTEGER NOT NULL, shard INTEGER NOT NULL)")
        self._db.commit()
        self.shard = 0
        # keys per shard, read once and kept up to date: every shard cut's checkpoint counts the keys before it
        self._per_shard = Counter()
        for table in ("exact", "band"):
            self._per_shard.update(dict(self._db.execute(f"SELECT shard, COUNT(*) FROM {table} GROUP BY shard")))

    def forget_from(self, shard: int) -> None:
        """Drop the keys of the problems kept into shards `shard`, `shard + 1`, ...: a resume starts at that shard."""
        for table in ("exact", "band"):
            self._db.execute(f"DELETE FROM {table} WHERE shard >= ?", (shard,))
        self._db.commit()
        self._per_shard = Counter({s: n for s, n in self._per_shard.items() if s < shard})

    def keys_before(self, shard: int) -> int:
        """How many keys the shards before `shard` added: recorded in each checkpoint, checked on resume."""
        return sum(n for s, n in self._per_shard.items() if s < shard)

    def check(self, pid: str, key: int, bands_: list[int] | None) -> tuple[str, str] | None:
        """Judge a problem against the kept ones; only a kept problem is remembered, so every match
        names a problem that is in the output. A band holds at most one kept problem (a second one
        sharing it would have been judged its duplicate), so the earliest-named match is the smallest id."""
        db = self._db
        if self.exact:
            hit = db.execute("SELECT id FROM exact WHERE key = ?", (_signed(key),)).fetchone()
            if hit:
                return "duplicate", _hex(hit[0])
        near = self.near and bands_ is not None
        if near:
            keys = [_signed(b) for b in bands_]
            hits = db.execute(f"SELECT id FROM band WHERE key IN ({','.join('?' * len(keys))})", keys).fetchall()
            if hits:
                return "near_duplicate", min(_hex(h[0]) for h in hits)
        me = _signed(int(pid, 16))
        if self.exact:
            self._per_shard[self.shard] += db.execute("INSERT OR IGNORE INTO exact VALUES (?, ?, ?)", (_signed(key), me, self.shard)).rowcount
        if near:
            self._per_shard[self.shard] += db.executemany("INSERT OR IGNORE INTO band VALUES (?, ?, ?)", [(k, me, self.shard) for k in keys]).rowcount
        return None

    def commit(self) -> None:
        self._db.commit()

    def close(self) -> None:
        self._db.commit()
        self._db.close()
