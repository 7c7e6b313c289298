"""Near-dedup on disk: the same verdicts as the in-memory datasketch `MinHashLSH` index it replaced, on a
set with planted near-duplicates, and a resume that drops what a killed shard added and skips the rows
judged before it."""

import json
import pickle
import random
from pathlib import Path

from datasketch import LeanMinHash, MinHash, MinHashLSH

from distill.io import read_parquets
from distill.prompts.config import PromptsConfig
from distill.prompts.dedup import Deduplicator, band_keys, exact_key, words
from distill.prompts.stage import REMOVED, run
from distill.records import content_id
from distill.stage import StageDir

VOCAB = [f"w{i}" for i in range(400)]


def _planted(n: int, seed: int = 0) -> list[str]:
    """n problems: fresh ones, and copies of earlier ones with 1-3 words changed, appended or reordered,
    some exact (case and punctuation only), and copies of copies (chains)."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        if out and rng.random() < 0.4:
            w = rng.choice(out).split()
            for _ in range(rng.randint(0, 3)):
                w[rng.randrange(len(w))] = rng.choice(VOCAB)
            if rng.random() < 0.2:
                w.append(rng.choice(VOCAB))
            text = " ".join(w)
            out.append(text.upper() + " ?" if rng.random() < 0.1 else text)
        else:
            out.append(" ".join(rng.choice(VOCAB) for _ in range(rng.randint(12, 40))))
    return out


def _old_verdicts(texts: list[str], threshold: float, num_perm: int = 128) -> list:
    """The index as it was before it moved to disk: datasketch MinHashLSH in memory, exact keys in a dict."""
    seen: dict[int, str] = {}
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    out = []
    for t in texts:
        pid, key = content_id("s", t), exact_key(t)
        w = words(t)
        m = MinHash(num_perm=num_perm)
        m.update_batch([" ".join(w[i : i + 3]).encode() for i in range(max(1, len(w) - 2))])
        mh = LeanMinHash(m)
        if key in seen:
            out.append(("duplicate", seen[key]))
            continue
        hits = lsh.query(mh)
        if hits:
            out.append(("near_duplicate", sorted(hits)[0]))
            continue
        seen[key] = pid
        if pid not in lsh:
            lsh.insert(pid, mh)
        out.append(None)
    return out


def test_disk_index_finds_the_same_duplicates_as_the_in_memory_lsh(tmp_path):
    texts = _planted(2000)
    for threshold in (0.5, 0.8):
        dedup = Deduplicator(tmp_path / f"{threshold}.sqlite", exact=True, near=True)
        new = [dedup.check(content_id("s", t), exact_key(t), band_keys(t, threshold, 128)) for t in texts]
        dedup.close()
        old = _old_verdicts(texts, threshold)
        reasons = [v[0] for v in old if v]
        assert reasons.count("near_duplicate") > 100 and reasons.count("duplicate") > 20, "the planted set exercises both"
        assert new == old


def _source(path: Path, texts: list[str]) -> dict:
    path.write_text("".join(json.dumps({"problem": t, "answer": "1"}) + "\n" for t in texts))
    return {"source": str(path), "name": path.stem}


def test_killed_source_resumes_with_the_same_rows_and_a_small_checkpoint(tmp_path):
    texts = _planted(900, seed=1)
    sources = [_source(tmp_path / f"s{k}.jsonl", texts[k * 300 : (k + 1) * 300]) for k in range(3)]
    cfg = PromptsConfig(sources=sources, rows_per_shard=40, dedup={"near": True, "threshold": 0.7})
    run(cfg, tmp_path / "fresh")
    run(cfg, tmp_path / "p")
    stage = StageDir(tmp_path / "p")
    ckpt = tmp_path / "p" / "state" / "after-source-001.pkl"
    assert len(ckpt.read_bytes()) < 200, "the checkpoint names a shard and a key count, not the index"
    assert set(pickle.loads(ckpt.read_bytes())) == {"next_shard", "index_keys"}
    # as if killed in source 3 after its first shard: its checkpoint, plan and later shards are gone,
    # but the keys it added are in the index
    (tmp_path / "p" / "state" / "after-source-002.pkl").unlink()
    (tmp_path / "p" / "plan.json").unlink()
    first_of_3 = pickle.loads(ckpt.read_bytes())["next_shard"]
    for i in stage.done_shards():
        if i > first_of_3:
            stage.done_file(i).unlink()
    run(cfg, tmp_path / "p")
    assert read_parquets(stage.parts()).equals(read_parquets(StageDir(tmp_path / "fresh").parts()))
    assert (tmp_path / "p" / REMOVED).read_text() == (tmp_path / "fresh" / REMOVED).read_text()
    removed = [json.loads(line)["reason"] for line in (tmp_path / "p" / REMOVED).open()]
    assert removed.count("near_duplicate") > 50


def test_a_lost_index_is_rebuilt_from_the_first_source(tmp_path, caplog):
    texts = _planted(400, seed=2)
    sources = [_source(tmp_path / f"s{k}.jsonl", texts[k * 200 : (k + 1) * 200]) for k in range(2)]
    cfg = PromptsConfig(sources=sources, rows_per_shard=40, dedup={"near": True})
    run(cfg, tmp_path / "fresh")
    run(cfg, tmp_path / "p")
    stage = StageDir(tmp_path / "p")
    for f in (tmp_path / "p" / "state").glob("dedup.sqlite*"):
        f.unlink()
    (tmp_path / "p" / "state" / "after-source-001.pkl").unlink()
    stage.done_file(stage.done_shards()[-1]).unlink()
    with caplog.at_level("INFO"):
        run(cfg, tmp_path / "p")
    assert "resuming at source" not in caplog.text, "a checkpoint whose index is gone is not resumed from"
    assert read_parquets(stage.parts()).equals(read_parquets(StageDir(tmp_path / "fresh").parts()))


class _Killed(Exception):
    pass


def test_a_source_killed_mid_way_resumes_at_its_last_shard_cut(tmp_path, monkeypatch):
    """The rerun judges only the rows from the last cut on: the ones before it are read past, never
    fingerprinted, and the index keys the unfinished shard had added are dropped, so the shards, the removed
    rows and the totals are those of an uninterrupted run."""
    from distill.prompts import stage as prompts_stage

    monkeypatch.setattr(prompts_stage, "BATCH", 50)
    texts = _planted(1200, seed=3)
    sources = [_source(tmp_path / f"s{k}.jsonl", texts[k * 600 : (k + 1) * 600]) for k in range(2)]
    cfg = PromptsConfig(sources=sources, rows_per_shard=40, dedup={"near": True, "threshold": 0.7})
    fresh_totals = run(cfg, tmp_path / "fresh")

    real, fingerprinted = prompts_stage._fingerprints, []

    def dies_in_source_2(rows):
        if sum(fingerprinted) >= 900:
            raise _Killed
        fingerprinted.append(len(rows))
        return real(rows)

    monkeypatch.setattr(prompts_stage, "_fingerprints", dies_in_source_2)
    try:
        run(cfg, tmp_path / "p")
        raise AssertionError("the run was to die in source 2")
    except _Killed:
        pass
    cut = pickle.loads((tmp_path / "p" / "state" / "in-source-001.pkl").read_bytes())
    assert 0 < cut["position"] < 600 and not (tmp_path / "p" / "state" / "after-source-001.pkl").exists()

    fingerprinted.clear()
    monkeypatch.setattr(prompts_stage, "_fingerprints", lambda rows: fingerprinted.append(len(rows)) or real(rows))
    totals = run(cfg, tmp_path / "p")
    assert sum(fingerprinted) == 600 - cut["position"], "only the rows from the last cut on are judged again"
    stage, fresh = StageDir(tmp_path / "p"), StageDir(tmp_path / "fresh")
    assert read_parquets(stage.parts()).equals(read_parquets(fresh.parts()))
    assert (tmp_path / "p" / REMOVED).read_text() == (tmp_path / "fresh" / REMOVED).read_text()
    assert totals == fresh_totals
