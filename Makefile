# `make demo` and `make test` set everything up idempotently, then run.
# A second run skips what is already done (stamp files in .venv).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.simpool-installed
FMNIST_DIR := /usr/share/datasets/fashion-mnist
CHROMIUM := /usr/bin/chromium
PYTEST_ARGS ?=
# pytest-xdist: one worker per core, at most 4; worksteal evens out the long cases (docs blocks, torchrun).
# `make test XDIST=` runs in one process.
XDIST ?= -n auto --maxprocesses 4 --dist worksteal

.PHONY: setup demo test test-fast lint bench clean fashion-mnist chromium

setup: $(STAMP) fashion-mnist chromium

$(STAMP): pyproject.toml setup.py constraints.txt simpool/evaluate/_level_sets.c
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

# Fashion-MNIST from Debian's package when apt is there (root or sudo); otherwise a notice.
fashion-mnist:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] && echo "" || echo "sudo -n" ); \
	  ($$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
	    || echo "note: could not install dataset-fashion-mnist; pass --fashion-mnist-dir to commands that need it"; \
	else echo "note: apt-get not found; install Fashion-MNIST IDX files and pass --fashion-mnist-dir"; fi

# Headless Chromium from Debian's package, the same way (the gallery's browser test renders the page in it);
# without apt-get, root or sudo: a notice, and that one test is skipped (it fails instead where CI is set).
chromium:
	@if [ -x $(CHROMIUM) ]; then :; \
	elif command -v apt-get >/dev/null 2>&1; then \
	  SUDO=$$( [ "$$(id -u)" -eq 0 ] && echo "" || echo "sudo -n" ); \
	  ($$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends chromium) >/dev/null 2>&1 \
	    || echo "note: could not install chromium; the gallery's browser test will be skipped"; \
	else echo "note: apt-get not found; install Chromium at $(CHROMIUM) for the gallery's browser test"; fi

demo: setup
	$(VENV)/bin/simpool demo

test: setup
	$(PY) -m pytest -q $(XDIST) $(PYTEST_ARGS)

# the edit-test loop: everything but @pytest.mark.slow (torchrun launches, 224-px models, end-to-end runs,
# the docs' command-line blocks)
test-fast: setup
	$(PY) -m pytest -q -m "not slow" $(XDIST) $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check simpool tests benchmarks
	$(VENV)/bin/ruff format --check simpool tests benchmarks

bench: setup
	$(PY) benchmarks/pool_overhead.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache build simpool/evaluate/*.so
