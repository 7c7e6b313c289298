"""The KD prompt set: one row per problem of a prompts or curated stage, a seeded held-out slice split off."""

from __future__ import annotations

import hashlib
from pathlib import Path

from distill.errors import DistillError
from distill.generate.prompting import messages_for
from distill.io import read_parquets
from distill.stage import StageDir

COLUMNS = ("id", "prompt", "domain", "answer")

# Problems whose answers the held-out accuracy can check without a model: the math verifier's domain.
SCORED_DOMAINS = ("math",)


def load_prompts(inp: Path, heldout: int, template: str, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows), each {"prompt": chat messages, "answer", "domain", "id"}.

    Any stage with Problem columns works (01_prompts, or 03_curated for the problems SFT saw). A problem
    appears once however many traces it has. The held-out slice is the `heldout` problems with the lowest
    seeded hash of their id, so it is the same on every machine and rerun.
    """
    stage = StageDir(inp)
    parts = stage.parts()
    if not parts:
        raise DistillError(f"{inp}: no finished shards (part-*.parquet with a done/ marker) to take prompts from")
    # Only the Problem columns: a curated row also holds its trace about three times over, and a code problem its tests.
    table = read_parquets(parts, list(COLUMNS))
    rows = {r["id"]: r for r in first_per_id(table).to_pylist()}
    if len(rows) <= heldout:
        raise DistillError(f"{inp}: {len(rows)} problems, not more than heldout={heldout}; lower kd.heldout")

    def key(pid: str) -> str:
        return hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest()

    order = sorted(rows, key=key)
    out = [
        {"id": pid, "prompt": messages_for(rows[pid]["prompt"], rows[pid]["domain"], template), "answer": rows[pid]["answer"], "domain": rows[pid]["domain"]}
        for pid in order
    ]
    return out[heldout:], out[:heldout]


def first_per_id(table):
    """The first row of each id, in table order (a curated problem has up to one row per kept trace): deduplicated
    in Arrow, before any row becomes a Python dict."""
    import pyarrow as pa

    index = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = index.group_by("id", use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    return table.take(sorted(first.to_pylist()))

