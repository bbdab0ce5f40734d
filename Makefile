# Segue: `make run` starts the project locally, `make test` runs the whole suite.
# Both install what is missing first and are safe to run again.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install services browser run stop test lint lock clean

install: $(STAMP)

# The virtualenv, rebuilt when a requirements or project file changes.
$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# PostgreSQL and RabbitMQ: start them when they are installed but not running.
services:
	bash scripts/ensure-services.sh

# Headless Chromium + chromedriver for the browser tests (Debian packages).
browser:
	bash scripts/ensure-browser.sh

run: install services
	$(VENV)/bin/segue up

stop:
	$(VENV)/bin/segue down

test: install services browser
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Re-resolve the pins after editing the direct dependencies at the top of requirements.txt.
lock:
	bash scripts/lock-requirements.sh

clean: stop
	rm -rf .airflow
