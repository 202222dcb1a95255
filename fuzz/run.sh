#!/usr/bin/env bash
# Builds every cargo-fuzz target once, then runs each for SECONDS_PER_TARGET seconds (default 60)
# from its committed seed corpus, and prints how many inputs each executed. Exits non-zero if any
# target crashed (panic, failed assertion, timeout, out of memory); the input that did it is left
# in fuzz/artifacts/<target>/ and the log in fuzz/target/logs/<target>.log.
#
#   fuzz/run.sh        # `make fuzz`: 60 s per target
#   fuzz/run.sh 10     # the CI smoke run
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`), and for
# `filter_requests` (the whole filter in the wasmtime harness) the built filter in the repository's
# target/wasm32-wasip1/wasm/ (`make wasm`; `make fuzz` builds it first).
# Environment: FUZZ_TOOLCHAIN (default `nightly`), FUZZ_SANITIZER (default `none`: the autoid
# crates forbid `unsafe`, so address sanitizer buys little and costs half the executions; set
# `address` for a deeper run), FUZZ_TARGETS (space-separated subset, default all),
# FUZZ_CODEGEN_UNITS (default 16: the whole-filter target instruments wasmtime and Cranelift, and
# those build faster in 16 units than in cargo-fuzz's default 1, for somewhat slower
# executions; set 1 for a long run).
set -euo pipefail

SECONDS_PER_TARGET="${1:-60}"
if ! [[ "$SECONDS_PER_TARGET" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [SECONDS_PER_TARGET]" >&2
  exit 2
fi
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"
SANITIZER="${FUZZ_SANITIZER:-none}"

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$FUZZ_DIR"
TARGET_DIR="$FUZZ_DIR/target"

if ! cargo "+$TOOLCHAIN" fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz on the $TOOLCHAIN toolchain is required:" >&2
  echo "  rustup toolchain install $TOOLCHAIN && cargo install cargo-fuzz --locked" >&2
  exit 2
fi

# One optimized build for all targets, with debug assertions (overflow checks) on. Its own target
# directory whatever CARGO_TARGET_DIR says: the instrumented build must not mix with the workspace's.
unset CARGO_TARGET_DIR
build_start=$SECONDS
cargo "+$TOOLCHAIN" fuzz build --release --debug-assertions --sanitizer "$SANITIZER" \
  --codegen-units "${FUZZ_CODEGEN_UNITS:-16}" --target-dir "$TARGET_DIR"
echo "fuzz: build took $((SECONDS - build_start)) s"

triple="$(rustc "+$TOOLCHAIN" -vV | sed -n 's/^host: //p')"
bin_dir="$TARGET_DIR/$triple/release"
read -r -a targets <<<"${FUZZ_TARGETS:-$(cargo "+$TOOLCHAIN" fuzz list | tr '\n' ' ')}"

mkdir -p "$TARGET_DIR/logs"
failed=()
summary=()
for t in "${targets[@]}"; do
  # New inputs go to a scratch corpus (first directory); the committed seeds are only read.
  work="$TARGET_DIR/corpus/$t"
  mkdir -p "$work" "$FUZZ_DIR/artifacts/$t" "$FUZZ_DIR/corpus/$t"
  log="$TARGET_DIR/logs/$t.log"
  echo "fuzz: $t for ${SECONDS_PER_TARGET} s"
  set +e
  "$bin_dir/$t" "$work" "$FUZZ_DIR/corpus/$t" \
    -max_total_time="$SECONDS_PER_TARGET" -print_final_stats=1 \
    -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
    -artifact_prefix="$FUZZ_DIR/artifacts/$t/" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  if [[ -z "$execs" ]]; then
    # A crash skips the final stats: take the last status line (`#N  DONE`, `#N  NEW`, `pulse`…).
    execs="$(grep -aoE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')"
  fi
  execs="${execs:-0}"
  if [[ $rc -ne 0 ]]; then
    failed+=("$t")
    summary+=("$(printf '%-14s %12s execs  CRASH (exit %d), see %s' "$t" "$execs" "$rc" "$log")")
    echo "fuzz: $t FAILED (exit $rc); last lines of $log:" >&2
    tail -n 30 "$log" >&2
    ls -1 "$FUZZ_DIR/artifacts/$t/" >&2 || true
  else
    summary+=("$(printf '%-14s %12s execs  in %s s  (%s/s)' "$t" "$execs" "$SECONDS_PER_TARGET" \
      "$((execs / SECONDS_PER_TARGET))")")
  fi
done

echo "fuzz: executions per target"
printf '  %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: crashed: ${failed[*]}" >&2
  exit 1
fi
