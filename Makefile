# Two commands do all set-up on a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV := .venv
LIGHT := $(VENV)/.installed-light
FULL := $(VENV)/.installed-dev
SERVE := $(VENV)/.installed-serve

.PHONY: demo serve test test-slow lint setup docs

setup: $(FULL)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --upgrade pip >/dev/null

# inference on photos only (ONNX models, YuNet, onnxruntime, Pillow; no OpenCV): what `pip install ferkit` gives
$(LIGHT): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -e .
	touch $(LIGHT)

# the light set plus `ferkit serve` (FastAPI, uvicorn)
$(SERVE): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -e '.[serve]'
	touch $(LIGHT) $(SERVE)

# everything: the training and serve extras and the test tools
$(FULL): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/pip install -e '.[dev]'
	touch $(LIGHT) $(SERVE) $(FULL)

demo: $(LIGHT)
	$(VENV)/bin/ferkit demo

serve: $(SERVE)
	$(VENV)/bin/ferkit serve

test: $(FULL)
	$(VENV)/bin/python -m pytest

test-slow: $(FULL)
	$(VENV)/bin/python -m pytest -m slow

lint: $(FULL)
	$(VENV)/bin/ruff check src tests benchmarks scripts
	$(VENV)/bin/ruff format --check src tests benchmarks scripts

# the documentation site (MkDocs + Material + mkdocstrings, in the dev extra), strict: warnings fail
docs: $(FULL)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site
