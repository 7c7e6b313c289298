"""The curated stage's dataset card: Hugging Face card format, the funnel, sources, decontamination and
licences, and `datasets.load_dataset` loads the directory as it is (kept rows; `rejected` as a config)."""

import pyarrow.parquet as pq
import yaml

from distill.filter.card import write_dataset_card
from distill.filter.config import FilterConfig
from distill.filter.export import export
from distill.filter.stage import run as run_filter
from distill.generate.config import GenerateConfig
from distill.generate.stage import run as run_generate
from distill.prompts.config import PromptsConfig
from distill.prompts.stage import run as run_prompts
from distill.stage import StageDir


def test_curated_directory_loads_with_datasets_and_its_card_tells_the_funnel(tmp_path):
    import datasets

    run = tmp_path / "run"
    run_prompts(PromptsConfig.model_validate({"source": "toy", "toy": {"n": 60, "seed": 3}, "rows_per_shard": 30,
                                              "decontaminate": {"benchmarks": ["toy_arith"]}}), run / "01_prompts")
    run_generate(GenerateConfig.model_validate({"backend": "toy", "samples_per_prompt": 2, "sampling": {"max_tokens": 160}}),
                 run / "01_prompts", run / "02_traces")
    run_filter(FilterConfig.model_validate({"select": {"policy": "first"}}), run / "02_traces", run / "03_curated")
    card = write_dataset_card(run / "03_curated", run / "01_prompts").read_text()

    front = yaml.safe_load(card.split("---")[1])
    assert front["license"] == "apache-2.0" and "text-generation" in front["task_categories"]
    stats = StageDir(run / "03_curated").stats()
    kept, seen = sum(s["rows_out"] for s in stats), sum(s["rows_in"] for s in stats)
    assert f"| traces in | {seen:,} |" in card and f"| kept | {kept:,} |" in card
    assert f"| toy | {kept:,} | apache-2.0 |" in card and "toy_arith" in card

    loaded = datasets.load_dataset(str(run / "03_curated"), cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == kept > 0
    assert loaded["train"][0]["messages"][-1]["role"] == "assistant"
    rejected = datasets.load_dataset(str(run / "03_curated"), "rejected", cache_dir=str(tmp_path / "cache"))
    on_disk = sum(pq.read_metadata(p).num_rows for p in StageDir(run / "03_curated").rejected_parts())
    assert rejected["train"].num_rows == on_disk == seen - kept
    assert all(r is not None for r in rejected["train"]["reject_reason"])

    # the teacher's sampling and prompt template, the verifier per domain; verified traces left out by the
    # one-per-problem policy are counted apart from failures
    assert "| toy-teacher | toy | `{" in card and "| r1 |" in card
    assert "| math | math-verify" in card and "| code | the problem's tests" in card
    not_selected = sum(s["rejected"].get("not_selected", 0) for s in stats)
    assert not_selected > 0 and f"| passed, not selected (another sample of the problem kept) | {not_selected:,} |" in card
    assert "failed: not_selected" not in card
    assert 'load_dataset("YOUR_ORG/run-traces")' in card and str(tmp_path) not in card

    # the export: card and data only, and it loads as the stage does
    copied = export(run / "03_curated", tmp_path / "publish")
    names = sorted(str(f.relative_to(tmp_path / "publish")) for f in copied)
    assert names[0] == "README.md" and all(n == "README.md" or n.endswith(".parquet") for n in names)
    assert not any((tmp_path / "publish" / d).exists() for d in ("done", "claims", "stats", "plan.json", "config.json", "chunks"))
    again = datasets.load_dataset(str(tmp_path / "publish"), cache_dir=str(tmp_path / "cache2"))
    assert again["train"].num_rows == kept
