"""The shipped student configs against the real Qwen2.5 / Llama-3.1 / DeepSeek-R1 tokenizers (tiny random bodies)."""

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from distill import rehearsal
from distill.cli import app
from distill.generate.prompting import THINK_PREFIX, render_chat
from distill.sft.check import check_conversations, problems, render
from distill.sft.config import StudentConfig
from distill.sft.stage import load_model, load_tokenizer, run
from tests import rehearsals
from tests.real_students import real_tokenizer, template_text
from tests.sft_fixtures import curated_rows, write_curated

ROOT = Path(__file__).resolve().parent.parent
# Each shipped student config and the tiny body of its real architecture and tokenizer.
STUDENTS = {
    "qwen2.5-math-1.5b.yaml": "qwen2.5-math-1.5b",
    "qwen2.5-math-7b.yaml": "qwen2.5-math-7b",
    "qwen2.5-14b.yaml": "qwen2.5-14b",
    "qwen2.5-32b.yaml": "qwen2.5-32b",
    "llama-3.1-8b.yaml": "llama-3.1-8b",
    "llama-3.3-70b-instruct.yaml": "llama-3.3-70b-instruct",
    "llama-3.3-70b-instruct-lora.yaml": "llama-3.3-70b-instruct",
}


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    return write_curated(tmp_path_factory.mktemp("curated") / "03_curated", 16)


@pytest.mark.parametrize("config", sorted(STUDENTS))
def test_sft_check_passes_with_each_shipped_config_on_its_real_tokenizer(config, models, curated, tmp_path):
    """The check loads the student (it measures where the think tags start): the shipped config on the tiny body,
    its CUDA attention kernel swapped for the CPU's, both through distill.rehearsal's list."""
    out = tmp_path / "check"
    shipped = yaml.safe_load((ROOT / "pipelines/sft" / config).read_text())
    ran = rehearsal.cpu_attention(rehearsal.apply(shipped, "student", {"model": str(models(STUDENTS[config]))}), "student")
    (tmp_path / config).write_text(yaml.safe_dump(ran))
    args = ["sft", "--check", "-c", str(tmp_path / config), "-i", str(curated), "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "check.json").read_text())
    assert report["problems"] == [] and report["think_single_token"] and report["samples"] > 0


@pytest.mark.parametrize(
    "model, template, think_ids, vocab",
    [
        # Qwen2.5: added tokens after <|file_sep|> (151664), inside the embedding's spare rows (152064).
        ("qwen2.5-math-7b", "qwen2.jinja", [151665, 151666], 151667),
        # Llama-3: the reserved ids DeepSeek-R1-Distill-Llama used; the vocabulary does not grow.
        ("llama-3.1-8b", "llama3.jinja", [128013, 128014], 128256),
    ],
)
def test_think_tags_are_one_token_each_as_in_the_r1_distill_releases(model, template, think_ids, vocab, models):
    cfg = StudentConfig(name="s", model=str(models(model)), chat_template=f"distill/templates/{template}", training={})
    tok = load_tokenizer(cfg.model, cfg)
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == think_ids and len(tok) == vocab
    for row in curated_rows(8, seed=3):
        if not row["messages"]:
            continue
        ids, mask = render(tok, row["messages"])
        trained = [i for i, m in zip(ids, mask) if m]
        # Each tag is exactly one trained id, never split into pieces, and decodes back as eval decodes.
        assert [trained.count(i) for i in think_ids] == [1, 1]
        assert "</think>" in tok.decode(trained, skip_special_tokens=True)
        assert trained[-1] == tok.convert_tokens_to_ids({"qwen2.jinja": "<|im_end|>", "llama3.jinja": "<|eot_id|>"}[template])


def test_the_teachers_tokenizer_has_r1s_think_tokens():
    tok = real_tokenizer("deepseek-r1")
    assert tok.convert_tokens_to_ids(["<think>", "</think>"]) == [128798, 128799]
    assert tok.encode("<think>\nx</think>", add_special_tokens=False)[0] == 128798


def test_check_refuses_the_stock_r1_distill_template_it_drops_the_reasoning():
    tok = real_tokenizer("qwen2.5", template="r1-distill")
    tok.add_tokens(["<think>", "</think>"])
    conversations = [r["messages"] for r in curated_rows(10, seed=1) if r["messages"]]
    report = check_conversations(tok, conversations, max_length=4096)
    assert report["think_lost"] == len(conversations) and "think tags lost" in problems(report, 1.0)[0]


def trained_prefix_equals_eval_prompt(model_dir: Path, messages: list[dict]) -> None:
    """The saved tokenizer renders eval's prompt (chat template + forced <think>\\n) byte for byte as the
    start of what training saw, and tokenizes it to the same ids."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = render_chat(tok, messages[:-1], THINK_PREFIX)
    trained_text = tok.apply_chat_template(messages, tokenize=False)
    assert trained_text.startswith(prompt) and prompt.endswith("<think>\n")
    ids, _ = render(tok, messages)
    prompt_ids = tok.encode(prompt, add_special_tokens=False)
    assert ids[: len(prompt_ids)] == prompt_ids


@pytest.mark.slow
def test_full_fine_tune_of_a_qwen_math_student_extends_its_context_and_renders_eval_prompts(models, curated, tmp_path):
    cfg = rehearsals.student_config(ROOT / "pipelines/sft/qwen2.5-math-7b.yaml", models)
    summary = run(cfg, curated, tmp_path / "out", threads=1)
    saved = json.loads((tmp_path / "out" / "model" / "config.json").read_text())
    init = cfg.training["model_init_kwargs"]
    assert saved["max_position_embeddings"] == init["max_position_embeddings"] > 4096
    assert saved["rope_parameters"]["rope_theta"] == init["rope_parameters"]["rope_theta"] > 10000
    assert summary["rows_too_long"] == 0 and summary["steps"] == rehearsal.REHEARSAL_STEPS
    messages = next(r["messages"] for r in curated_rows(4, seed=5) if r["messages"])
    trained_prefix_equals_eval_prompt(tmp_path / "out" / "model", messages)


@pytest.mark.slow
def test_lora_on_an_untied_llama_moves_the_think_close_logit(models, curated, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = rehearsals.student_config(ROOT / "pipelines/sft/llama-3.3-70b-instruct-lora.yaml", models)
    base = cfg.model
    run(cfg, curated, tmp_path / "out", threads=1)
    out = tmp_path / "out" / "model"
    tok = AutoTokenizer.from_pretrained(out)
    close = tok.convert_tokens_to_ids("</think>")
    assert close == 128014 and len(tok) == 128256
    # Against the student at step 0 as the stage built it: the think rows' start alone moves the logit too.
    # In the shipped dtype (bf16), as it trained: a float32 start would differ by rounding alone.
    before = load_model(base, cfg.training["model_init_kwargs"], load_tokenizer(base, cfg)).float()
    after = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not after.config.tie_word_embeddings
    assert not torch.equal(before.lm_head.weight[close], after.lm_head.weight[close])  # the output row trained
    messages = next(r["messages"] for r in curated_rows(4, seed=5) if r["messages"])
    ids = torch.tensor([render(tok, messages)[0]])
    with torch.no_grad():
        moved = after(ids).logits[0, :, close] - before(ids).logits[0, :, close]
    assert moved.abs().max() > 1e-3
    trained_prefix_equals_eval_prompt(out, messages)


def test_stock_instruct_templates_render_the_baselines_prompt():
    """Baselines keep their own template: Qwen-Math's default system prompt, Llama-3.1's date header."""
    qwen = real_tokenizer("qwen2.5", eos="<|im_end|>", template="qwen2.5-math-instruct")
    llama = real_tokenizer("llama-3.1", eos="<|eot_id|>", template="llama-3.1-instruct")
    msgs = [{"role": "user", "content": "1+1?"}]
    assert render_chat(qwen, msgs, THINK_PREFIX).startswith("<|im_start|>system\nPlease reason step by step")
    assert "Cutting Knowledge Date" in render_chat(llama, msgs) and template_text("qwen2.5-instruct") != template_text("qwen2.5-math-instruct")
