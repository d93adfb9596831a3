# xtml: the two commands a fresh machine needs are `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# OpenMP threads (PyTorch, gradient boosting) wait passively: spinning threads on a busy 2-core machine
# made a CNN epoch 25x slower (bench/bench_cnn.py measures it)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: demo test test-fast browser bench lint format clean docs

# torch first, pinned, so pip takes the local CPU wheel instead of a multi-GB CUDA build
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[sbi,dask,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/xtml demo --out runs/demo

# two processes (the CI machine's two cores); the tests sharing a trained session run stay in one of them
test: $(STAMP) browser
	XTML_REQUIRE_BROWSER=1 $(PY) -m pytest -q -n 2 --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup -m "not slow"

# tests/test_report_browser.py opens the HTML report in Debian's headless Chromium; installed once, as root or
# through sudo (the paths are the ones tests/browser.py starts)
browser:
	@test -x /usr/bin/chromium && test -x /usr/bin/chromedriver || { \
	  echo "installing chromium and chromium-driver (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || command -v sudo); \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }

bench: $(STAMP)
	$(PY) bench/run_all.py

# the documentation site (docs/, mkdocs.yml) into site/; any warning is an error
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict -d site

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench evals
	$(VENV)/bin/ruff format --check src tests bench evals

format: $(STAMP)
	$(VENV)/bin/ruff format src tests bench evals
	$(VENV)/bin/ruff check --fix src tests bench evals

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
