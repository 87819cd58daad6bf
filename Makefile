# The two commands a newcomer runs (README.md): `make demo` and `make test`.
VENV ?= .venv
# Some machines set PYTHONDONTWRITEBYTECODE: then every process the tests start (gateway serve,
# its worker, the mocks, each xdist worker's assertion rewriting) compiles every module again.
# Python's default is to keep the compiled files (in __pycache__, ignored by git).
unexport PYTHONDONTWRITEBYTECODE
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench install

# uv installs the dependencies (from the package index, in parallel: ~15 s where pip took ~35 s
# with its cache warm); the package is the same editable install of this checkout.
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q uv
	$(PY) -m uv pip install -q --python $(PY) -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/gateway demo

lint: $(STAMP)
	$(PY) -m ruff check gateway mocks tests bench
	$(PY) -m mypy

# The type check runs beside the tests (it takes one core for ~20 s on a clean clone, while the
# tests' first seconds are collection); its report follows theirs, and either failing fails.
test: $(STAMP)
	$(PY) -m ruff check gateway mocks tests bench
	@$(PY) -m mypy > $(VENV)/mypy.out 2>&1 & types=$$!; \
	$(PY) -m pytest -q; tests=$$?; \
	wait $$types; typed=$$?; \
	echo "$(PY) -m mypy"; cat $(VENV)/mypy.out; \
	exit $$(( tests != 0 || typed != 0 ))

bench: $(STAMP)
	$(PY) -m bench.run
