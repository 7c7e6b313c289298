import json

import pytest
from transformers import AutoTokenizer

from distill.errors import DistillError
from distill.sft.check import check_conversations, problems
from distill.sft.config import StudentConfig
from distill.sft.data import EMPTY_THINK, curated_dataset
from distill.sft.stage import run
from distill.toy.tokenizer import TEMPLATES_DIR, build_tokenizer
from distill.io import write_parquet
from distill.records import CURATED, to_table
from distill.stage import StageDir
from tests.sft_fixtures import curated_rows, write_curated

QWEN = (TEMPLATES_DIR / "qwen2.jinja").read_text()
# The DeepSeek-R1-Distill habit: keep only what follows </think> in assistant turns.
DROPS_THINK = QWEN.replace("message.content + '<|im_end|>'", "message.content.split('</think>')[-1] + '<|im_end|>'")
NO_GENERATION_TAGS = QWEN.replace("{%- generation %}", "").replace("{%- endgeneration %}", "")
EOS_OUTSIDE_MASK = QWEN.replace(
    "{{- message.content + '<|im_end|>' }}\n        {%- endgeneration %}", "{{- message.content }}\n        {%- endgeneration %}{{- '<|im_end|>' }}"
)
# Only the reasoning and the end token trained: the student learns to think, then to stop without answering.
ANSWER_OUTSIDE_MASK = QWEN.replace(
    "{{- message.content + '<|im_end|>' }}\n        {%- endgeneration %}",
    "{{- message.content.split('</think>')[0] + '</think>' }}{%- endgeneration %}{{- message.content.split('</think>')[1] }}"
    "{%- generation %}{{- '<|im_end|>' }}{%- endgeneration %}",
)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tok")
    build_tokenizer(out, "qwen2")
    return out


@pytest.fixture
def qwen_tok(tok_dir):
    return AutoTokenizer.from_pretrained(tok_dir)


@pytest.fixture(scope="module")
def conversations():
    rows = curated_rows(60, seed=1)
    return [r["messages"] for r in rows if r["messages"]]


def test_shipped_template_passes(qwen_tok, conversations):
    report = check_conversations(qwen_tok, conversations, max_length=512)
    assert report["samples"] == len(conversations)
    assert problems(report, 0.0) == []
    assert report["think_single_token"]


@pytest.mark.parametrize(
    "template, failure",
    [
        (DROPS_THINK, "think_lost"),
        (NO_GENERATION_TAGS, "mask_all_zero"),
        (EOS_OUTSIDE_MASK, "eos_missing_from_labels"),
        (ANSWER_OUTSIDE_MASK, "answer_missing_from_labels"),
    ],
)
def test_check_catches_a_broken_template(qwen_tok, conversations, template, failure):
    assert template != QWEN
    tok = qwen_tok
    tok.chat_template = template
    report = check_conversations(tok, conversations, max_length=512)
    assert report[failure] == len(conversations)
    assert len(problems(report, 1.0)) == 1


def test_check_catches_think_tags_registered_as_special(qwen_tok, conversations):
    tok = qwen_tok
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]})
    assert check_conversations(tok, conversations, max_length=512)["think_lost"] == len(conversations)


def test_check_counts_rows_too_long(qwen_tok, conversations):
    report = check_conversations(qwen_tok, conversations, max_length=100)
    assert 0 < report["too_long_share"] <= 1
    assert report["too_long"] == sum(
        len(qwen_tok.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]) > 100 for c in conversations
    )
    assert "max_length=100" in problems(report, 0.0)[0] and "dropped" in problems(report, 0.0)[0]
    assert problems(report, 1.0) == []


def test_answer_only_view_keeps_the_response_behind_an_empty_think(tmp_path):
    inp = write_curated(tmp_path / "curated", 20, seed=2)
    reasoning, counts = curated_dataset(inp, "reasoning", tmp_path / "cache")
    answers, _ = curated_dataset(inp, "answer_only", tmp_path / "cache")
    assert counts["rows_kept"] == len(reasoning) == len(answers) < counts["rows_in"] == 20
    for r, a in zip(reasoning["messages"], answers["messages"]):
        assert r[0] == a[0]
        assert a[-1]["content"] == EMPTY_THINK + r[-1]["content"].split("</think>\n")[1]


def test_an_empty_curated_part_is_skipped(tmp_path):
    """A shard whose every sample was rejected (a small code source, say) leaves a part with no rows."""
    inp = write_curated(tmp_path / "curated", 20, seed=2, shards=2)
    write_parquet(to_table([], CURATED), StageDir(inp).part(1))
    StageDir(inp).finish(1, {"rows_in": 0, "rows_out": 0})
    ds, counts = curated_dataset(inp, "reasoning", tmp_path / "cache")
    assert counts["rows_in"] == 10 and 0 < len(ds) <= 10


def test_sft_refuses_to_train_on_a_broken_template(tmp_path):
    inp = write_curated(tmp_path / "curated", 30)
    template = tmp_path / "broken.jinja"
    template.write_text(DROPS_THINK)
    cfg = StudentConfig(name="s", model="toy:qwen2", chat_template=str(template), max_length=512, training={"max_steps": 1})
    with pytest.raises(DistillError, match="refusing to train: think tags lost"):
        run(cfg, inp, tmp_path / "out")
    assert json.loads((tmp_path / "out" / "check.json").read_text())["problems"]
    assert not (tmp_path / "out" / "checkpoints").exists() and not (tmp_path / "out" / "done").exists()


def test_sft_refuses_input_without_kept_rows(tmp_path):
    from distill.stage import StageDir

    StageDir(tmp_path / "empty").prepare({})
    cfg = StudentConfig(name="s", model="toy:qwen2", chat_template="distill/templates/qwen2.jinja")
    with pytest.raises(DistillError, match="no finished curated parts"):
        run(cfg, tmp_path / "empty", tmp_path / "out")
