"""N9: `distill sft --prepare` tokenizes the rows (with trl's labels) in one process before `accelerate launch`;
the training run, on every rank, only opens those files: nothing is rebuilt or rewritten behind a barrier."""

from pathlib import Path

import pytest
from datasets import Dataset, concatenate_datasets

from distill.config import load
from distill.sft.config import StudentConfig
from distill.sft.data import IGNORE_INDEX
from distill.sft.stage import run
from tests.sft_fixtures import write_curated

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines" / "sft").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_students_give_collectives_hours_not_the_30_minute_default(path):
    assert load(StudentConfig, path).training.get("ddp_timeout", 1800) >= 3 * 3600


@pytest.mark.slow  # one toy training run: ~70 s on 2 loaded cores
def test_prepare_tokenizes_once_and_the_training_run_rewrites_nothing(tmp_path):
    inp = write_curated(tmp_path / "03_curated", 24)
    training = {"max_steps": 2, "per_device_train_batch_size": 2, "learning_rate": 1e-3, "dataset_num_proc": 2, "save_steps": 2}
    cfg = StudentConfig(name="prep", model="toy:qwen2", chat_template="distill/templates/qwen2.jinja", max_length=256, training=training)
    out = tmp_path / "04_sft" / "prep"

    prepared = run(cfg, inp, out, prepare_only=True, threads=1)
    assert prepared["rows_train"] > 0 and not (out / "checkpoints").exists() and not (out / "done").exists()
    files = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "data").rglob("*") if p.is_file()}
    shards = sorted(p for p in files if p.name.startswith("tokens-"))  # one per tokenizing worker
    rows = concatenate_datasets([Dataset.from_file(str(out / p)) for p in shards])
    assert {"input_ids", "labels"} <= set(rows.column_names) and len(rows) == prepared["rows_train"] + prepared["rows_too_long"]
    for row in rows:
        trained = [t for t, label in zip(row["input_ids"], row["labels"]) if label != IGNORE_INDEX]
        assert row["labels"][0] == IGNORE_INDEX and trained  # the prompt is masked, the answer is trained
        assert all(label in (IGNORE_INDEX, t) for t, label in zip(row["input_ids"], row["labels"]))

    summary = run(cfg, inp, out, threads=1)
    assert summary["steps"] == 2 and summary["rows_train"] == prepared["rows_train"]
    after = {p.relative_to(out): p.stat().st_mtime_ns for p in (out / "data").rglob("*") if p.is_file()}
    assert after == files  # the trainer took the rows as they are: no labels pass, no new cache file


def test_tokenizing_resumes_chunk_by_chunk_to_the_same_rows(tmp_path, monkeypatch):
    """A killed run keeps the chunks it finished: only a missing chunk is tokenized again, by the worker pool
    or in-process, and the rows come out as one pass over all of them would give."""
    from distill.sft import data
    from tests.real_students import real_tokenizer

    tokenizer = real_tokenizer("qwen2.5")
    tokenizer.chat_template = (ROOT / "distill/templates/qwen2.jinja").read_text()
    conversations, _ = data.curated_dataset(write_curated(tmp_path / "03_curated", 24), "reasoning", tmp_path / "parquet")
    monkeypatch.setattr(data, "CHUNK_ROWS", 10**9)
    whole, _ = data.tokenized_dataset(conversations, "src", tokenizer, 4096, tmp_path / "whole")

    monkeypatch.setattr(data, "CHUNK_ROWS", 5)
    out = tmp_path / "chunked"
    chunked, _ = data.tokenized_dataset(conversations, "src", tokenizer, 4096, out, num_proc=2)
    chunks = sorted(out.glob("tokens-*.arrow"))
    assert len(chunks) == -(-len(conversations) // 5) > 1 and not list(out.glob("tokenizer-*"))
    assert chunked.to_list() == whole.to_list() and not list((out / data.PARTIAL).iterdir())

    before = {p: p.stat().st_mtime_ns for p in chunks}
    chunks[2].unlink()  # as a kill -9 in the middle of that chunk leaves it: missing, and datasets' temporary file
    (out / data.PARTIAL / "tmpk1ll3d").write_bytes(b"half a chunk")
    resumed, _ = data.tokenized_dataset(conversations, "src", tokenizer, 4096, out)
    assert resumed.to_list() == whole.to_list() and not list((out / data.PARTIAL).iterdir())
    assert chunks[2].exists() and all(p.stat().st_mtime_ns == t for p, t in before.items() if p != chunks[2])
