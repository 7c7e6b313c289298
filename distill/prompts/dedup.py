"""Exact and near-duplicate problem removal.

Exact: the hash of the problem text lower-cased with punctuation and whitespace runs collapsed, so
"What is 2+2?" and "what is 2 + 2 ?" are one problem. Memory grows with the kept problems: ~100
bytes each for exact keys (64-bit key -> 64-bit id), ~5 kB each for the MinHash LSH index (datasketch,
128 permutations; bench/prompts_throughput.py measures both).
"""

from __future__ import annotations

import hashlib
import re

from datasketch import LeanMinHash, MinHash, MinHashLSH

_NON_WORD = re.compile(r"[^\w]+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: whitespace, casing and punctuation do not matter."""
    return [w for w in _NON_WORD.sub(" ", text.lower()).split() if w != "_"]


def exact_key(text: str) -> int:
    """64-bit key: a 1M-problem mix collides with probability ~3e-8, and an int is half a 16-byte digest's memory."""
    return int.from_bytes(hashlib.blake2b(" ".join(words(text)).encode(), digest_size=8).digest(), "big")


def minhash(text: str, num_perm: int, n: int = 3) -> LeanMinHash:
    """MinHash of the word n-grams; lean (seed + hash values) so it pickles small between processes."""
    w = words(text)
    shingles = {" ".join(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}
    m = MinHash(num_perm=num_perm)
    m.update_batch([s.encode() for s in shingles])
    return LeanMinHash(m)


class Deduplicator:
    """Remembers kept problems; `check` returns (reason, id of the earlier copy) or None.

    The fingerprints (`exact_key`, `minhash`) are computed by the caller, possibly in worker
    processes; only the lookups, which need everything seen before, run here in order.
    """

    def __init__(self, exact: bool = True, near: bool = False, threshold: float = 0.8, num_perm: int = 128):
        self.exact = exact
        self._seen: dict[int, int] = {}  # exact key -> the kept problem's 16-hex id, as an int
        self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm) if near else None

    def check(self, pid: str, key: int, mh: LeanMinHash | None) -> tuple[str, str] | None:
        """Judge a problem against the kept ones; only a kept problem is remembered, so every match
        names a problem that is in the output."""
        if self.exact and key in self._seen:
            return "duplicate", f"{self._seen[key]:016x}"
        near = self._lsh is not None and mh is not None
        if near:
            hits = self._lsh.query(mh)
            if hits:
                return "near_duplicate", sorted(hits)[0]
        if self.exact:
            self._seen[key] = int(pid, 16)
        if near and pid not in self._lsh:
            self._lsh.insert(pid, mh)
        return None
