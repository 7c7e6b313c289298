"""`distill prompts` over a mix of sources: quotas, row filters, dedup over the union, per-source resume,
source fingerprints, empty sources and list answers."""

import json
import os
from pathlib import Path

import pytest

from distill.errors import DistillError
from distill.io import read_parquets
from distill.prompts.config import PromptsConfig
from distill.prompts.sources import closed_form
from distill.prompts.stage import REMOVED, run
from distill.stage import StageDir


def _jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _sources(tmp_path: Path) -> list[dict]:
    """Three sources with their own columns: math with proofs and prose answers to filter out, code with
    and without tests, and a chat source; source 2 repeats two math problems (dedup over the union)."""
    math = [{"problem": f"Compute {i} times {i + 1} plus {i % 7}.", "answer": str(i * (i + 1) + i % 7), "question_type": "math-word-problem"} for i in range(120)]
    math += [{"problem": f"Prove that {i} is the sum of two things.", "answer": "proof", "question_type": "proof"} for i in range(30)]
    math += [{"problem": f"Describe the set number {i} in words.", "answer": "all even numbers", "question_type": "math-word-problem"} for i in range(30)]
    code = [{"statement": f"Read n and print n plus {i}.", "tests": {"input": ["1"], "output": [str(1 + i)]}} for i in range(80)]
    code += [{"statement": f"Untested task {i}.", "tests": None} for i in range(20)]
    code += [{"statement": math[0]["problem"], "tests": {"input": ["1"], "output": ["1"]}}, {"statement": math[1]["problem"], "tests": {"input": ["1"], "output": ["1"]}}]
    chat = [{"messages": [{"role": "user", "content": f"Say hi to friend {i}."}, {"role": "assistant", "content": f"Hi, friend {i}!"}]} for i in range(60)]
    return [
        {
            "source": _jsonl(tmp_path / "math.jsonl", math),
            "name": "math",
            "where": [{"column": "question_type", "not_in": ["proof"]}, {"column": "answer", "numeric": True}],
            "share": 0.5,
            "seed": 1,
            "shuffle_buffer": 50,
        },
        {
            "source": _jsonl(tmp_path / "code.jsonl", code),
            "name": "code",
            "domain": "code",
            "columns": {"prompt": "statement", "tests": "tests"},
            "where": [{"column": "tests", "present": True}],
            "share": 0.3,
            "seed": 2,
        },
        {
            "source": _jsonl(tmp_path / "chat.jsonl", chat),
            "name": "chat",
            "domain": "general",
            "columns": {"messages": "messages"},
            "nonreasoning": "imported",
            "limit": 20,
        },
    ]


def _by_source(out: Path) -> dict[str, list[dict]]:
    rows = read_parquets(StageDir(out).parts()).to_pylist()
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["source"], []).append(r)
    return groups


def test_three_source_mix_gives_exact_quotas_deterministically(tmp_path):
    cfg = PromptsConfig(sources=_sources(tmp_path), total=150, rows_per_shard=16)
    assert cfg.quotas() == [75, 45, 20]
    totals = run(cfg, tmp_path / "a")
    groups = _by_source(tmp_path / "a")
    assert {k: len(v) for k, v in groups.items()} == {"math": 75, "code": 45, "chat": 20}
    assert {r["domain"] for r in groups["code"]} == {"code"} and all(json.loads(r["tests"]) for r in groups["code"])
    assert all(r["answer"] not in ("proof", "all even numbers") for r in groups["math"])
    chat = json.loads(groups["chat"][0]["metadata"])
    assert chat["nonreasoning"] == "imported" and chat["reply"].endswith(groups["chat"][0]["answer"])
    assert totals["by_source"]["math"]["rejected"]["filtered"] > 0
    # the two math problems repeated in the code source are duplicates across sources (when the shuffle kept them)
    removed = [json.loads(line) for line in (tmp_path / "a" / REMOVED).open()]
    assert removed and all(r["source"] == "code" and r["reason"] == "duplicate" for r in removed)
    # same config, new directory: byte-identical shards; another seed: another sample of the math source
    run(cfg, tmp_path / "b")
    assert read_parquets(StageDir(tmp_path / "a").parts()).equals(read_parquets(StageDir(tmp_path / "b").parts()))
    other = PromptsConfig(sources=[{**_sources(tmp_path)[0], "seed": 7}, *_sources(tmp_path)[1:]], total=150, rows_per_shard=16)
    run(other, tmp_path / "c")
    assert {r["id"] for r in _by_source(tmp_path / "c")["math"]} != {r["id"] for r in groups["math"]}


def test_failed_source_resumes_without_redoing_the_others(tmp_path, caplog):
    sources = _sources(tmp_path)
    chat_rows = [json.loads(line) for line in Path(sources[2]["source"]).open()]
    broken = chat_rows[:5] + [{"messages": "not a conversation"}] + chat_rows[5:]
    sources[2]["source"] = _jsonl(tmp_path / "chat.jsonl", broken)
    cfg = PromptsConfig(sources=sources, total=150, rows_per_shard=16)
    with pytest.raises(DistillError, match=r"^source 'chat': .*chat.jsonl:6: field 'messages'"):
        run(cfg, tmp_path / "p")
    stage = StageDir(tmp_path / "p")
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in stage.parts()}
    assert len(before) == 8  # math (5 shards) and code (3) written, chat not
    _jsonl(tmp_path / "chat.jsonl", chat_rows)  # fixed; nothing of it was written, so the change is accepted
    caplog.clear()
    with caplog.at_level("INFO"):
        totals = run(cfg, tmp_path / "p")
    assert "resuming at source 3" in caplog.text
    assert "source 'chat': 60 read" in caplog.text and "source 'math'" not in caplog.text  # math and code not reread
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in list(before)} == before
    assert totals["rows_out"] == 140 and stage.is_complete()
    run(cfg, tmp_path / "fresh")
    assert read_parquets(stage.parts()).equals(read_parquets(StageDir(tmp_path / "fresh").parts()))
    assert (tmp_path / "p" / REMOVED).read_text() == (tmp_path / "fresh" / REMOVED).read_text()


def test_changed_source_is_refused_on_resume(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"problem": f"Problem number {i}?", "answer": str(i)} for i in range(30)])
    cfg = PromptsConfig(source=src, rows_per_shard=10)
    run(cfg, tmp_path / "p")
    stage = StageDir(tmp_path / "p")
    stage.done_file(2).unlink()  # as if killed before the last shard
    os.utime(src, (1, 1))  # touched, same content: accepted
    assert run(cfg, tmp_path / "p")["rows_out"] == 30
    stage.done_file(2).unlink()
    _jsonl(tmp_path / "in.jsonl", [{"problem": f"Problem number {i}?", "answer": str(i + 1)} for i in range(30)])
    with pytest.raises(DistillError, match=r"sources.json: source 'in' .* changed since this stage started \(changed: .*sha256"):
        run(cfg, tmp_path / "p")


def test_same_size_replacement_with_restored_mtime_is_refused_on_resume(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"problem": f"Problem number {i}?", "answer": str(i)} for i in range(30)])
    cfg = PromptsConfig(source=src, rows_per_shard=10)
    run(cfg, tmp_path / "p")
    StageDir(tmp_path / "p").done_file(2).unlink()
    path = tmp_path / "in.jsonl"
    st = path.stat()
    _jsonl(path, [{"problem": f"Problem number {i}?", "answer": str(29 - i)} for i in range(30)])  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(DistillError, match=r"source 'in' .* changed since this stage started \(changed: sha256\)"):
        run(cfg, tmp_path / "p")


def test_empty_source_is_an_error_unless_allowed(tmp_path):
    empty = _jsonl(tmp_path / "empty.jsonl", [])
    with pytest.raises(DistillError, match=r"^source 'empty' .*: no problems: it has no rows \(set allow_empty: true"):
        run(PromptsConfig(source=empty), tmp_path / "p")
    filtered = _jsonl(tmp_path / "proofs.jsonl", [{"problem": "Prove it.", "answer": "proof"}])
    with pytest.raises(DistillError, match=r"none of its 1 rows is left"):
        run(PromptsConfig(source=filtered, where=[{"column": "answer", "numeric": True}]), tmp_path / "q")
    totals = run(PromptsConfig(source=empty, allow_empty=True), tmp_path / "r")
    assert totals["rows_out"] == 0 and StageDir(tmp_path / "r").is_complete()


def test_list_answer_is_rejected_or_accepted_explicitly(tmp_path):
    src = _jsonl(tmp_path / "in.jsonl", [{"problem": "Roots of x^2 = 4?", "answer": "2"}, {"problem": "Solve x^2 - 12x + 35 = 0.", "answer": [5, 7]}])
    with pytest.raises(DistillError, match=r"in.jsonl:2: field 'answer': a list \[5, 7\] where one answer belongs"):
        run(PromptsConfig(source=src), tmp_path / "p")
    run(PromptsConfig(source=src, multi_answer=True), tmp_path / "q")
    rows = read_parquets(StageDir(tmp_path / "q").parts()).to_pylist()
    assert rows[1]["answer"] == '["5", "7"]' and json.loads(rows[1]["metadata"])["multi_answer"] is True
    bad = _jsonl(tmp_path / "bad.jsonl", [{"problem": "Q?", "answer": {"value": 3}}])
    with pytest.raises(DistillError, match=r"bad.jsonl:1: field 'answer': an object"):
        run(PromptsConfig(source=bad, multi_answer=True), tmp_path / "r")


def test_closed_form_answers():
    assert all(closed_form(a) for a in ["42", "-3.5", "\\frac{1}{2}", "$2\\sqrt{3}$", "\\boxed{7}", "3\\pi", "45^\\circ", 12])
    assert not any(closed_form(a) for a in ["proof", "notfound", "x = 3 or y = 2", "all even numbers", "", None, "A"])


def test_bad_mix_configs_are_refused():
    with pytest.raises(ValueError, match="needs the mix's `total`"):
        PromptsConfig(sources=[{"source": "a.jsonl", "share": 0.5}])
    with pytest.raises(ValueError, match="unique"):
        PromptsConfig(sources=[{"source": "a.jsonl"}, {"source": "dir/a.jsonl"}])
    with pytest.raises(ValueError, match="not both"):
        PromptsConfig(sources=[{"source": "a.jsonl", "limit": 3, "share": 0.1}], total=10)


def test_nonreasoning_problems_through_generate(tmp_path):
    """Imported replies are kept as they are (no teacher call); `nonreasoning: teacher` problems get one
    sample with thinking off; reasoning problems get their samples_per_prompt."""
    from distill.generate.config import GenerateConfig
    from distill.generate.stage import run as run_generate

    sources = _sources(tmp_path)[2:] + [
        {"source": "toy", "name": "greet", "toy": {"task": "chat", "n": 5}, "nonreasoning": "teacher"},
        {"source": "toy", "name": "arith", "toy": {"n": 5}},
    ]
    run(PromptsConfig(sources=sources, rows_per_shard=50), tmp_path / "p")
    run_generate(GenerateConfig(backend="toy", samples_per_prompt=2, sampling={"max_tokens": 256}), tmp_path / "p", tmp_path / "t")
    rows = read_parquets(StageDir(tmp_path / "t").parts()).to_pylist()
    by = {}
    for r in rows:
        by.setdefault(r["source"], []).append(r)
    assert len(by["chat"]) == 20 and {r["backend"] for r in by["chat"]} == {"imported"}
    assert all(r["completion"] == "<think>\n\n</think>\n\n" + r["answer"] and r["reasoning"] == "" for r in by["chat"])
    assert len(by["greet"]) == 5 and all(r["completion"].startswith("<think>\n\n</think>\n\n") for r in by["greet"])
    assert len(by["arith"]) == 10 and all(r["reasoning"] for r in by["arith"] if r["finish_reason"] == "stop" and r["reasoning"] is not None)
