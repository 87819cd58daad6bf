# The two commands a newcomer runs (README.md): `make demo` and `make test`.
VENV ?= .venv
# Some machines set PYTHONDONTWRITEBYTECODE: then every process the tests start (gateway serve,
# its worker, the mocks, each xdist worker's assertion rewriting) compiles every module again.
# Python's default is to keep the compiled files (in __pycache__, ignored by git).
unexport PYTHONDONTWRITEBYTECODE
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gateway demo

lint: $(STAMP)
	$(PY) -m ruff check gateway mocks tests bench
	$(PY) -m mypy

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m bench.run
