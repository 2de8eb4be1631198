# botcore: two commands do all the set-up on a fresh machine.
#   make run   - set up .venv and run the main job on embedded defaults
#   make test  - set up .venv and run every check and test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Checksum of every file under nbs/ and botcore/: a changed or a new file changes it.
TREE_SUM = find nbs botcore -type f -not -path '*/__pycache__/*' -not -path '*/.ipynb_checkpoints/*' -print0 | sort -z | xargs -0 sha1sum | sha1sum

.PHONY: run test venv check-export lint nbtest pytest clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/botcore run

test: check-export lint nbtest pytest

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
	$(BIN)/ruff check nbs botcore dashboards pipelines
	$(BIN)/lint-imports

nbtest: $(STAMP)
	$(BIN)/python .ci/nbtest.py --n-workers 2 --timing $(NBTEST_FLAGS)

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
