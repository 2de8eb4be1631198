# botcore: two commands do all the set-up on a fresh machine.
#   make run   - set up .venv and run the main job on embedded defaults
#   make test  - set up .venv and run every check and test
# The seed's named test runs (test-integration, test-engine-ai, ...) are selections of the same
# pytest suite, listed at the end of this file and in README.md ("Tests").
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Checksum of every file under nbs/ and botcore/: a changed or a new file changes it.
TREE_SUM = find nbs botcore -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha1sum | sha1sum

.PHONY: run test venv check-export lint nbtest nbval pytest lab docs clean test-integration \
	test-engine-ai \
	test-dashboard-engine test-dashboard-ai test-websocket test-with-mock-data generate-test-data

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/botcore run

test: check-export lint nbtest nbval pytest

# JupyterLab in the project on 127.0.0.1 ([lab] port, 8888), the guide opened on first start; its
# token: `botcore config token --name lab_token`.
lab: $(STAMP)
	$(BIN)/botcore lab

# The documentation site from the notebooks (nbs/ and guide/) and the README, into _docs/;
# `botcore docs` serves it.
docs: $(STAMP)
	$(BIN)/python -c "from botcore.jobs.docs import build_docs; build_docs()"

# The notebooks are the source: cleaning and exporting them must change nothing.
check-export: $(STAMP)
	@before=$$($(TREE_SUM)); \
	$(BIN)/nbdev-clean && $(BIN)/nbdev-export || exit 1; \
	after=$$($(TREE_SUM)); \
	if [ "$$before" != "$$after" ]; then \
	  echo "nbdev-clean/nbdev-export changed nbs/ or botcore/: run them, review and commit."; \
	  git status --short nbs botcore 2>/dev/null; exit 1; \
	fi; echo "check-export: nbs/ is clean and botcore/ is what it exports"

# ruff (settings in pyproject.toml) on the notebooks and what they export, and the layering contract:
# an import that points the wrong way (a library module importing the CLI, the engine importing the
# API, ...) fails here.
lint: $(STAMP)
	$(BIN)/ruff check nbs botcore dashboards pipelines guide
	$(BIN)/lint-imports

# A notebook cell still running after 10 minutes has hung: it fails the run instead of holding CI.
nbtest: $(STAMP)
	$(BIN)/python .ci/nbtest.py --n-workers 2 --timing --cell-timeout 600 $(NBTEST_FLAGS)

# The guide, the dashboards and the pipelines run top to bottom as tests (nbval; a cell that raises
# fails), with their quick parameters (BOTCORE_QUICK=1) and a data directory of their own, which
# also holds their temporary files (TMPDIR) and goes when they end.
NBVAL_PATHS = guide dashboards pipelines
nbval: $(STAMP)
	@data=$$(mktemp -d); trap 'rm -rf "$$data"' EXIT; \
	BOTCORE_QUICK=1 BOTCORE_DATA_DIR="$$data" TMPDIR="$$data" \
	  $(BIN)/pytest --nbval-lax -p no:cacheprovider \
	  $(NBVAL_PATHS) $(NBVAL_ARGS)

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

# --- the seed's test targets: named selections of tests/ (PYTEST_ARGS adds pytest options) ---------
# test-integration: the three services together (botcore run; the engine with the AI service; the
# dashboards in a browser with both).
test-integration: $(STAMP)
	$(BIN)/pytest tests/test_run.py tests/test_engine_e2e.py tests/test_dashboard_e2e.py $(PYTEST_ARGS)

# test-engine-ai (the seed's test-rust-python): the engine asking the AI service for signals over
# HTTP: trades, degraded while the AI service is down, recovery, restart.
test-engine-ai: $(STAMP)
	$(BIN)/pytest tests/test_engine_e2e.py $(PYTEST_ARGS)

# test-dashboard-engine / test-dashboard-ai (the seed's test-dashboard-rust / -python): the monitor
# page in headless Chromium against the engine's API and WebSocket, or against the AI service.
DASHBOARD_ENGINE = monitor_renders or events_reach or stop_close or settings or engine_outage
DASHBOARD_AI = ai_service_outage or train_a_model
test-dashboard-engine: $(STAMP)
	$(BIN)/pytest tests/test_dashboard_e2e.py -k '$(DASHBOARD_ENGINE)' $(PYTEST_ARGS)

test-dashboard-ai: $(STAMP)
	$(BIN)/pytest tests/test_dashboard_e2e.py -k '$(DASHBOARD_AI)' $(PYTEST_ARGS)

# test-websocket: every WebSocket path: the engine's /ws events, their arrival in the open page,
# clients that never read (test_ws_laggards.py), and Binance's kline streams (the simulator's,
# through ccxt.pro and BinanceMarketData).
test-websocket: $(STAMP)
	$(BIN)/pytest tests/test_engine_e2e.py tests/test_dashboard_e2e.py tests/test_simulator.py \
	  tests/test_binance.py tests/test_ws_laggards.py tests/test_ws_stall.py \
	  -k 'websocket or events_reach or stream or watches or laggards or stall' $(PYTEST_ARGS)

# test-with-mock-data: the tests that run against the Binance simulator, the mock exchange that
# replays the bundled real candles (REST, streams, orders, faults, its fuzzing, botcore download).
test-with-mock-data: $(STAMP)
	$(BIN)/pytest tests/test_simulator.py tests/test_simulator_fuzz.py \
	  tests/test_binance.py tests/test_download.py $(PYTEST_ARGS)

# generate-test-data: from the bundled real candles, TEST_DATA/candles/SYMBOL-TF.csv (the last 500
# candles of every bundled series) and TEST_DATA/analyze/SYMBOL-TF.json (POST /analyze bodies).
TEST_DATA ?= runs/test-data
generate-test-data: $(STAMP)
	$(BIN)/botcore testdata --out $(TEST_DATA)
