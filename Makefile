# portsuite: `make run` starts the suite on config/config.toml, `make test` runs the tests.
# Both create .venv (Python >= 3.11) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/config.toml

.PHONY: run test lint check venv bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml services/pyproject.toml services/setup.py plugins/portsuite-rot13/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e services -e plugins/portsuite-rot13
	touch $@

run: venv
	$(BIN)/twistd -n --pidfile= portsuite -c $(CONFIG)

check: venv
	$(BIN)/portsuite check -c $(CONFIG)

test: venv
	$(BIN)/ruff check src services tests plugins bench
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check src services tests plugins bench
	$(BIN)/ruff format --check src services tests plugins bench
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/echo.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
