# Every target creates and uses .venv itself: on a fresh clone `make demo` and `make test` are
# the only commands a newcomer runs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check

.PHONY: demo test lint types pytest bench docs dist sbom clean

$(VENV)/.base: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentmw needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -e .
	@touch $@

$(VENV)/.dev: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "agentmw needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev]'
	@touch $(VENV)/.base $(VENV)/.demo $@

# The tour prints OpenTelemetry spans from the SDK's in-memory exporter (the `otel` extra); the
# docs' examples read YAML documents (the `yaml` extra).
$(VENV)/.demo: $(VENV)/.base
	$(PY) -m pip install $(PIP_FLAGS) -e '.[otel,yaml]'
	@touch $@

demo: $(VENV)/.demo
	$(PY) examples/tiny_agent.py

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check agentmw tests examples benchmarks scripts
	$(VENV)/bin/lint-imports --no-cache

types: $(VENV)/.dev
	$(VENV)/bin/mypy --strict agentmw tests

pytest: $(VENV)/.dev
	$(PY) -m pytest -q -p no:cacheprovider

test: lint types pytest docs

$(VENV)/.bench: $(VENV)/.dev
	$(PY) -m pip install $(PIP_FLAGS) -e '.[dev,bench]'
	@touch $@

bench: $(VENV)/.bench
	$(PY) -m benchmarks

docs: $(VENV)/.dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# The sdist and the wheel, built in an isolated environment and checked by twine.
dist: $(VENV)/.dev
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# A CycloneDX SBOM of what `pip install agentmw` brings (no extras): the wheel is installed into
# a throwaway runtime-only environment, which cyclonedx-py then describes.
sbom: dist
	rm -rf build/sbom-env
	$(PYTHON) -m venv --without-pip build/sbom-env
	$(PY) -m pip --python build/sbom-env/bin/python install $(PIP_FLAGS) dist/*.whl
	$(VENV)/bin/cyclonedx-py environment --pyproject pyproject.toml --mc-type library \
		--output-reproducible --of JSON -o dist/agentmw-sbom.cdx.json build/sbom-env/bin/python
	@echo "wrote dist/agentmw-sbom.cdx.json"

clean:
	rm -rf $(VENV) site build dist .mypy_cache .ruff_cache .pytest_cache
