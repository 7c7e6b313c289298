"""The kd prompt set reads only the Problem columns of a curated stage and one row per problem (review N5)."""

import pyarrow.parquet as pq
import pytest

from distill.errors import DistillError
from distill.kd.data import COLUMNS, load_prompts
from tests.sft_fixtures import write_curated


def test_only_the_problem_columns_are_read_and_each_problem_once(tmp_path, monkeypatch):
    inp = write_curated(tmp_path / "03_curated", 12, shards=2)
    reads = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, columns=None, **kw: reads.append(columns) or real(path, columns=columns, **kw))
    train, heldout = load_prompts(inp, 2, "r1")
    assert reads and all(c == list(COLUMNS) for c in reads)
    ids = [r["id"] for r in train + heldout]
    assert len(ids) == len(set(ids)) == 12


def test_repeated_traces_of_a_problem_give_one_prompt_the_first(tmp_path):
    from distill.kd.data import first_per_id
    import pyarrow as pa

    table = pa.table({"id": ["a", "b", "a", "c", "b"], "answer": ["1", "2", "x", "3", "y"]})
    assert first_per_id(table).to_pylist() == [{"id": "a", "answer": "1"}, {"id": "b", "answer": "2"}, {"id": "c", "answer": "3"}]


def test_a_stage_without_a_problem_column_is_named(tmp_path):
    inp = write_curated(tmp_path / "03_curated", 4)
    part = next(inp.glob("part-*.parquet"))
    pq.write_table(pq.read_table(part).drop_columns(["answer"]), part)
    with pytest.raises(DistillError, match=r"part-\d+\.parquet: no column 'answer'"):
        load_prompts(inp, 1, "r1")
