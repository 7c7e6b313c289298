"""`distill prompts`: import, exact/near dedup, decontamination against real benchmark problems."""

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distill.errors import DistillError
from distill.io import read_parquets
from distill.prompts.config import PromptsConfig
from distill.prompts.decontam import Decontaminator
from distill.prompts.dedup import words
from distill.prompts.stage import REMOVED, run
from distill.records import PROBLEM
from distill.stage import StageDir

FIXTURE_BENCH = Path(__file__).parent.parent / "evals" / "data"  # the shipped benchmark files


def _bench_rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURE_BENCH / name).open()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_toy_source_shards_and_resume(tmp_path):
    cfg = PromptsConfig(toy={"n": 250, "seed": 1}, rows_per_shard=100)
    totals = run(cfg, tmp_path / "p")
    stage = StageDir(tmp_path / "p")
    table = read_parquets(stage.parts())
    assert table.schema.equals(PROBLEM) and table.num_rows == 250 and len(stage.parts()) == 3
    assert totals == {"shards": 3, "rows_in": 250, "rows_out": 250, "rejected": {}, "contaminated_by": {}}
    for s in stage.stats():  # every shard accounts for its own rows
        assert s["rows_in"] == s["rows_out"] + sum(s["rejected"].values())
    stage.done_file(1).unlink()
    stage.part(1).unlink()
    assert run(cfg, tmp_path / "p") == totals
    assert read_parquets(stage.parts()).equals(table)


def test_jsonl_import_with_mapping_and_exact_dedup(tmp_path):
    rows = [
        {"question": "What is 2+2?", "sol": 4.0},
        {"question": "  what is 2 + 2 ?\r\n", "sol": 4},
        {"question": "Name the capital of France.", "sol": "Paris"},
    ]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = PromptsConfig(source=str(src), columns={"prompt": "question", "answer": "sol"}, domain="general")
    totals = run(cfg, tmp_path / "p")
    kept = read_parquets(StageDir(tmp_path / "p").parts()).to_pylist()
    assert [(r["prompt"], r["answer"], r["domain"], r["source"]) for r in kept] == [
        ("What is 2+2?", "4", "general", "in"),
        ("Name the capital of France.", "Paris", "general", "in"),
    ]
    assert totals["rejected"] == {"duplicate": 1}
    removed = [json.loads(line) for line in (tmp_path / "p" / REMOVED).open()]
    assert removed[0]["reason"] == "duplicate" and removed[0]["match"] == kept[0]["id"]


def test_parquet_import_and_bad_row(tmp_path):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"problem": ["A?", "B?", "C?"], "answer": ["1", "2", "3"]}), path)
    totals = run(PromptsConfig(source=str(path), limit=2), tmp_path / "p")
    assert totals["rows_out"] == 2
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"problem": "ok?"}, {"problem": ""}])
    with pytest.raises(DistillError, match=r"bad.jsonl:2: field 'problem'"):
        run(PromptsConfig(source=str(bad)), tmp_path / "q")


def test_near_duplicates_removed_by_minhash(tmp_path):
    base = "A farmer has 17 sheep and all but 9 run away. How many sheep does the farmer have left at the end of the day?"
    rows = [{"problem": base}, {"problem": base.replace("end of the day", "end of this day")}, {"problem": "Compute the sum of the first 100 odd positive integers."}]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    totals = run(PromptsConfig(source=str(src), dedup={"near": True, "threshold": 0.7}), tmp_path / "p")
    assert totals["rows_out"] == 2 and totals["rejected"] == {"near_duplicate": 1}
    totals = run(PromptsConfig(source=str(src)), tmp_path / "q")
    assert totals["rows_out"] == 3


def _paraphrase(text: str, rng: random.Random) -> str:
    """Light edits a scraped copy shows: whitespace, casing, punctuation."""
    out = text.upper() if rng.random() < 0.5 else text.lower()
    out = out.replace(" ", "  ").replace(",", " ,").replace("$", "")
    return "\n" + out.rstrip(".?") + " !"


def test_decontamination_finds_planted_benchmark_copies(tmp_path):
    rng = random.Random(0)
    math500, aime = _bench_rows("math500_test.jsonl"), _bench_rows("aime24_test.jsonl")
    planted = rng.sample(math500, 20) + rng.sample(aime, 10)
    clean = [{"problem": f"A shop sells {i} apples at {i + 3} cents each and {2 * i} pears at {i + 7} cents each. How many cents does it make?"} for i in range(200)]
    copies = [{"problem": p["problem"]} for p in planted[:15]] + [{"problem": _paraphrase(p["problem"], rng)} for p in planted[15:]]
    rows = clean + copies
    rng.shuffle(rows)
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    files = [FIXTURE_BENCH / "math500_test.jsonl", FIXTURE_BENCH / "aime24_test.jsonl"]
    totals = run(PromptsConfig(source=str(src), decontaminate={"files": files}), tmp_path / "p")
    assert totals["rejected"] == {"contaminated": 30} and totals["rows_out"] == 200
    assert totals["contaminated_by"] == {"math500_test": 20, "aime24_test": 10}
    removed = [json.loads(line) for line in (tmp_path / "p" / REMOVED).open()]
    assert {r["match"].split("/")[0] for r in removed} == {"math500_test", "aime24_test"}
    # the evidence: the shared 8 words, or the whole text of a benchmark problem shorter than that
    assert all(len(r["ngram"].split()) == 8 or r["ngram"].split() == words(r["prompt"]) for r in removed)


def test_every_copy_of_a_benchmark_problem_is_counted_as_contamination(tmp_path):
    problem = _bench_rows("math500_test.jsonl")[11]["problem"]
    rows = [{"problem": problem}, {"problem": "Compute the sum of the first ten odd numbers."}, {"problem": problem}]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    files = [FIXTURE_BENCH / "math500_test.jsonl"]
    totals = run(PromptsConfig(source=str(src), decontaminate={"files": files}), tmp_path / "p")
    assert totals["rejected"] == {"contaminated": 2} and totals["contaminated_by"] == {"math500_test": 2}
    kept = {r["id"] for r in read_parquets(StageDir(tmp_path / "p").parts()).to_pylist()}
    assert len(kept) == 1


def test_decontamination_reads_a_gpqa_style_csv_and_names_a_bad_row(tmp_path):
    """GPQA Diamond ships as CSV with its text in "Question"; a user's copy is a decontamination file as it is."""
    import csv

    questions = [f"A spin-{i}/2 particle in a uniform magnetic field of {i + 2} tesla precesses; what is its Larmor frequency in GHz?"
                 for i in range(5)]
    gpqa = tmp_path / "gpqa_diamond.csv"
    with open(gpqa, "w", newline="") as f:
        w = csv.DictWriter(f, ["Record ID", "Question", "Correct Answer"])
        w.writeheader()
        w.writerows({"Record ID": f"r{i}", "Question": q, "Correct Answer": "1"} for i, q in enumerate(questions))
    rows = [{"problem": questions[3]}, {"problem": "Compute the sum of the first ten odd numbers."}]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    totals = run(PromptsConfig(source=str(src), decontaminate={"files": [gpqa]}), tmp_path / "p")
    assert totals["rejected"] == {"contaminated": 1} and totals["contaminated_by"] == {"gpqa_diamond": 1}

    with open(gpqa, "a", newline="") as f:
        csv.writer(f).writerow(["r9", "", "1"])  # row 7: the header, five problems, then one without text
    with pytest.raises(DistillError, match=r"gpqa_diamond\.csv:7: benchmark record has no 'prompt', 'problem' or 'question' text"):
        run(PromptsConfig(source=str(src), decontaminate={"files": [gpqa]}), tmp_path / "p2")


def test_decontaminator_matches_by_ngram_only():
    d = Decontaminator([("b/1", "Find the number of ordered pairs of positive integers whose product is 720."), ("b/2", "Compute 3+4.")], n=8)
    assert d.match("Hint: find the number of ordered pairs of positive integers whose product is 100?") == "b/1"
    assert d.match("Find the number of ordered triples of integers.") is None
    assert d.match("compute 3 + 4") == "b/2"


def test_decontamination_by_benchmark_name(tmp_path):
    """The shipped evals/ specs (distill.eval.benchmarks.load_benchmark) are the default source."""
    aime = _bench_rows("aime24_test.jsonl")
    rows = [{"problem": aime[3]["problem"].replace("$", "").upper()}, {"problem": "What is the least prime greater than 90?"}]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    totals = run(PromptsConfig(source=str(src), decontaminate={"benchmarks": ["aime24", "math500"]}), tmp_path / "p")
    assert totals["rejected"] == {"contaminated": 1}
    removed = json.loads((tmp_path / "p" / REMOVED).read_text())
    assert removed["match"].startswith("aime24/")


def test_workers_give_the_same_shards(tmp_path):
    rows = [{"problem": f"Compute {i % 150} plus {i % 150} times three, then add seven."} for i in range(600)]
    rows += [{"problem": _bench_rows("math500_test.jsonl")[7]["problem"]}]
    src = _write_jsonl(tmp_path / "in.jsonl", rows)
    cfg = PromptsConfig(source=str(src), rows_per_shard=50, dedup={"near": True}, decontaminate={"files": [FIXTURE_BENCH / "math500_test.jsonl"]})
    one = run(cfg, tmp_path / "a")
    two = run(cfg, tmp_path / "b", workers=2)
    assert one == two and one["rejected"]["contaminated"] == 1 and one["rows_out"] == 150
    assert read_parquets(StageDir(tmp_path / "a").parts()).equals(read_parquets(StageDir(tmp_path / "b").parts()))
    assert (tmp_path / "a" / REMOVED).read_text() == (tmp_path / "b" / REMOVED).read_text()


def test_hf_datasets_source_offline(tmp_path):
    """`hf:<name>` goes through datasets.load_dataset (streaming); a local dataset dir stands in for the Hub."""
    ds = tmp_path / "ds"
    ds.mkdir()
    _write_jsonl(ds / "train.jsonl", [{"q": "What is 1+1?", "a": 2}, {"q": "What is 2+2?", "a": 4}])
    cfg = PromptsConfig(source=f"hf:{ds}", columns={"prompt": "q", "answer": "a"}, name="tiny")
    assert run(cfg, tmp_path / "p")["rows_out"] == 2
    rows = read_parquets(StageDir(tmp_path / "p").parts()).to_pylist()
    assert [(r["source"], r["answer"]) for r in rows] == [("tiny", "2"), ("tiny", "4")]
