# HSĐT — the README's commands. Everything installs itself on a fresh Debian machine (as root).
VENV   := .venv
HSDT   := $(VENV)/bin/hsdt
PYTEST := $(VENV)/bin/python -m pytest

.PHONY: setup setup-test services services-down demo test lint bench clean

setup:
	@scripts/setup.sh

setup-test:
	@scripts/setup.sh test

# The services the tests need that the project starts itself (a one-node Ceph radosgw for S3
# Object Lock); `up` is a quick no-op when they already run.
services: setup-test
	@scripts/services.sh up

services-down:
	@scripts/services.sh down

demo: setup
	$(HSDT) demo $(DEMO_ARGS)

test: setup-test services
	$(VENV)/bin/ruff check hsdt tests bench
	$(PYTEST) -q $(PYTEST_ARGS)

lint: setup-test
	$(VENV)/bin/ruff check hsdt tests bench

bench: setup-test
	$(VENV)/bin/python -m bench $(BENCH_ARGS)

clean:
	rm -rf out .pytest_cache .ruff_cache
