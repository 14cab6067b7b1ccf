# zns-bot: `make test` and `make demo` set everything up on a fresh machine.
# Supported: CPython 3.11, 3.12 and 3.13. Another one: make test PY=python3.13 VENV=.venv-3.13
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# standins/demo.py keeps each run's store under here, apart from the live data/
DEMO_DATA := demo-data
SOURCES := bot handlers storage tests bench
# The supported versions: mypy checks the code as each of them would run it.
PYTHONS := 3.11 3.12 3.13
MKVENV ?= $(PY) -m venv
INSTALL ?= $(BIN)/pip install --quiet --upgrade pip && $(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
SUPPORTED := zns-bot needs Python 3.11 or newer (PY=python3.11; tested on 3.11, 3.12 and 3.13)

# How an interpreter describes itself: a venv's python says what the python that built it
# says. Empty when the command is missing or broken.
identity = $(shell $(1) -c 'import sys; print(sys.version.split()[0], sys.base_prefix)' 2>/dev/null)
# "ok", the version of a Python too old, or empty when $(PY) does not run at all.
py_check = $(shell $(PY) -c 'import sys; print("ok" if sys.version_info >= (3, 11) else sys.version.split()[0])' 2>/dev/null)

ifneq ($(call identity,$(PY)),$(call identity,$(BIN)/python))
# Built by another Python, half-built or broken: a stamp would keep reusing it.
.PHONY: $(STAMP)
endif

.PHONY: check test test-fast format bench demo standins serve clean clean-demo

$(STAMP): pyproject.toml constraints.txt
	$(if $(py_check),,$(error $(PY) does not run. $(SUPPORTED)))
	$(if $(filter ok,$(py_check)),,$(error $(PY) is Python $(py_check). $(SUPPORTED)))
	rm -rf $(VENV)
	$(MKVENV) $(VENV)
	$(INSTALL)
	touch $(STAMP)

# Lint, format, types and layers: what CI and the pre-commit hook insist on.
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	for version in $(PYTHONS); do $(BIN)/mypy --python-version $$version || exit 1; done
	$(BIN)/lint-imports

test: check
	$(BIN)/pytest -q -n 2 --dist worksteal

# The unit tests only: no bot process, no end-to-end flow (tests/e2e/).
test-fast: $(STAMP)
	$(BIN)/pytest -q -n 2 -m "not e2e"

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: $(STAMP)
	$(BIN)/python -m standins.demo

# Both stand-ins until Ctrl-C, printing a .env for zns-bot against them (no accounts needed).
standins: $(STAMP)
	$(BIN)/python -m standins

serve: $(STAMP)
	$(BIN)/zns-bot serve

bench: $(STAMP)
	$(BIN)/python bench/storage_bench.py

# What make builds, and nothing else: data/ is ZNS_DATA_DIR's default, a live store.
clean:
	rm -rf $(sort $(wildcard .venv .venv-*) $(VENV)) .pytest_cache .ruff_cache build dist *.egg-info
	find $(wildcard $(SOURCES)) -name __pycache__ -type d -prune -exec rm -rf {} +

# The stores `make demo` and `make standins` left; the live store in data/ stays.
clean-demo:
	rm -rf $(DEMO_DATA)
