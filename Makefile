# HSĐT — the README's commands. Everything installs itself on a fresh Debian machine (as root).
VENV   := .venv
HSDT   := $(VENV)/bin/hsdt
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup setup-test demo test lint bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh test

demo: setup
	$(HSDT) demo $(DEMO_ARGS)

test: setup-test
	$(VENV)/bin/ruff check hsdt tests bench
	$(PYTEST) -q $(PYTEST_ARGS)

lint: setup-test
	$(VENV)/bin/ruff check hsdt tests bench

bench: setup-test
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache
