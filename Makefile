# portsuite: `make run` starts the suite on config/config.toml, `make test` runs the checks
# CI runs (ruff lint, ruff format, mypy, pytest). Both create .venv (Python >= 3.11) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= config/config.toml

# mypy cannot follow setuptools' editable finder, which maps services/ to the package
# portsuite_services: this link, on mypy_path (pyproject.toml), gives it that name.
MYPY_LINK := build/mypy/portsuite_services

.PHONY: run test lint mypy check venv bench clean i18n

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

test: lint
	$(BIN)/pytest

lint: venv $(MYPY_LINK)
	$(BIN)/ruff check src services tests plugins bench .ci
	$(BIN)/ruff format --check src services tests plugins bench .ci
	$(BIN)/mypy

# plain mypy on src/portsuite and services/, --strict's checks on the plugin API
mypy: venv $(MYPY_LINK)
	$(BIN)/mypy

$(MYPY_LINK):
	mkdir -p $(dir $@)
	ln -sfn ../../services $@

bench: venv
	$(BIN)/python bench/echo.py

# French and English: extract the messages (babel.cfg), merge them into the .po (translate
# what is new there), compile the .mo that the packages ship (tests check both)
i18n: venv
	mkdir -p build
	$(BIN)/pybabel extract -F babel.cfg -k _ -k N_ --no-location --sort-output -o build/portsuite.pot .
	$(BIN)/pybabel update -i build/portsuite.pot -d src/portsuite/locale -D portsuite --no-wrap --no-fuzzy-matching --ignore-obsolete
	$(BIN)/pybabel compile -d src/portsuite/locale -D portsuite --statistics

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
