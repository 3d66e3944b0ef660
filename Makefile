# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MIRROR := $(VENV)/bin/mirror
DEMO_DATA ?= mirror-data

.PHONY: demo test install dev lint typecheck check bench contact-sheets clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: install
	@echo "== mirror demo: offline, local renderer, local store in $(DEMO_DATA)/"
	$(MIRROR) generate --user demo --stage month --data-dir $(DEMO_DATA)
	$(MIRROR) trilogy --user demo --data-dir $(DEMO_DATA)
	$(MIRROR) gallery --user demo --data-dir $(DEMO_DATA) --out $(DEMO_DATA)/gallery
	@echo "== images are under $(DEMO_DATA)/avatars/demo/ ; review page: $(DEMO_DATA)/gallery/gallery-demo.html"

test: dev
	$(PY) -m pytest -q

lint: dev
	$(VENV)/bin/ruff check mirror_cli tests bench
	$(VENV)/bin/mypy

check: lint test

bench: dev
	$(PY) bench/local_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_DATA) .pytest_cache .mypy_cache .ruff_cache
