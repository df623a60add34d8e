# Two commands do all set-up on a fresh machine (Python 3.11 and access to the package registries):
#   make demo   - create .venv if missing, install, run the main flow on corpora/demo
#   make test   - create .venv if missing, install with dev extras, run the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= outputs/demo

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1

QC_VENV ?= .venv-qc

.PHONY: demo test install install-dev lint clean-outputs browser bench audit

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: install
	$(VENV)/bin/alliance run corpora/demo --out $(OUT)

# qualitative-coding (an independent REFI-QDA reader used by one interop test) pins versions that clash with
# ours, so it gets its own venv; if it cannot be installed the test skips and says why.
$(QC_VENV)/bin/qc:
	$(PYTHON) -m venv $(QC_VENV)
	$(QC_VENV)/bin/python -m pip install --quiet qualitative-coding==1.7.8 || \
		echo "qualitative-coding could not be installed: its interop test will skip"

# The browser test drives Debian's Chromium with Playwright; without root or apt it skips and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium could not be installed: the browser test will skip"; }

# Dependency audit as a report (outputs/audit/): fails only when installed versions break the pins.
audit: install-dev
	$(PY) .ci/audit.py

# The ledger tests also run on PostgreSQL: .ci/postgres.sh starts a throw-away server (loopback, free port) unless
# ALLIANCE_TEST_PG_URL is set already; if it cannot start, those variants skip and say why.
test: install-dev $(QC_VENV)/bin/qc browser audit
	@pg=$$(mktemp -d -u /tmp/alliance-pg.XXXXXX); trap ".ci/postgres.sh stop $$pg >/dev/null 2>&1 || true" EXIT; \
	if [ -z "$$ALLIANCE_TEST_PG_URL" ]; then \
	  url=$$(.ci/postgres.sh start "$$pg" | tail -n 1) && export "$$url" || \
	    echo "PostgreSQL could not be started: the PostgreSQL ledger tests will skip"; \
	fi; \
	ALLIANCE_QC_BIN=$(abspath $(QC_VENV))/bin/qc $(PY) -m pytest $(PYTEST_ARGS)

# Benchmark suite over synthetic corpora (bench/README.md): `make bench` runs the 10k-segment size;
# larger sizes by flag, e.g. `make bench SIZES="10000 100000 300000"`; more options via BENCH_ARGS
# (e.g. BENCH_ARGS="--no-dask --no-incremental"). Results: bench/results/suite-<size>.json and the
# table in bench/README.md; corpora and runs under outputs/bench/.
SIZES ?= 10000
BENCH_ARGS ?=
bench: install
	$(PY) bench/run.py --sizes $(SIZES) $(BENCH_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check pipeline flows tests

clean-outputs:
	rm -rf outputs/demo outputs/demo_broken
