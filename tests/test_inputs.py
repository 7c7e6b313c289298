"""Bad input ends in one line naming the file, row and field."""

import pytest

from distill.config import Config, load, load_yaml, parse
from distill.errors import DistillError
from distill.io import iter_jsonl
from distill.records import PROBLEM, to_table


class Small(Config):
    n: int
    name: str = "x"


def test_malformed_jsonl_row_names_file_and_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "a"}\n\n{"prompt": "b",}\n')
    rows = iter_jsonl(f)
    assert next(rows) == (1, {"prompt": "a"})
    with pytest.raises(DistillError, match=rf"^{f}:3: malformed JSON"):
        next(rows)


def test_jsonl_row_that_is_not_an_object(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('[1, 2]\n')
    with pytest.raises(DistillError, match=":1: expected a JSON object, got list"):
        list(iter_jsonl(f))


def test_missing_file(tmp_path):
    with pytest.raises(DistillError, match="file not found"):
        list(iter_jsonl(tmp_path / "nope.jsonl"))
    with pytest.raises(DistillError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")


def test_invalid_yaml_names_line_and_column(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n: 3\nname: [unclosed\n")
    with pytest.raises(DistillError, match=rf"^{f}:\d+:\d+: invalid YAML"):
        load_yaml(f)


def test_config_errors_name_the_field_and_unknown_keys_are_refused(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n: three\n")
    with pytest.raises(DistillError, match=r"c\.yaml: field 'n': Input should be a valid integer"):
        load(Small, f)
    with pytest.raises(DistillError, match="field 'nn': Extra inputs are not permitted"):
        parse(Small, {"n": 1, "nn": 2}, "x.yaml")


def test_overrides_are_parsed_as_yaml_scalars(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("n: 3\n")
    assert load(Small, f, ["n=7", "name=abc"]) == Small(n=7, name="abc")
    with pytest.raises(DistillError, match="expected key=value"):
        load(Small, f, ["n"])


def test_missing_required_record_field_names_row_and_field():
    rows = [{"id": "a", "source": "s", "domain": "math", "prompt": "p"}, {"id": "b", "source": "s", "domain": "math"}]
    with pytest.raises(DistillError, match="row 2: field 'prompt' is required"):
        to_table(rows, PROBLEM)


def test_parquet_row_groups_are_bounded_by_bytes_and_rows(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from distill.io import write_parquet

    big = pa.table({"completion": ["x" * 10_000] * 300})  # ~3 MB in memory
    write_parquet(big, tmp_path / "big.parquet", max_group_bytes=1_000_000)
    meta = pq.read_metadata(tmp_path / "big.parquet")
    assert meta.num_row_groups >= 3 and all(meta.row_group(g).num_rows <= 100 for g in range(meta.num_row_groups))
    write_parquet(pa.table({"n": list(range(250))}), tmp_path / "small.parquet", max_group_rows=100)
    meta = pq.read_metadata(tmp_path / "small.parquet")
    assert [meta.row_group(g).num_rows for g in range(meta.num_row_groups)] == [100, 100, 50]
    assert pq.read_table(tmp_path / "big.parquet").equals(big)
