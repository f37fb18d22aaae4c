#!/usr/bin/env bash
# The single test command for Parley (also what CI runs, through .ci/run).
#
#   1. installs the Debian packages (deploy/install-deps.sh; instant when all are present)
#      and tests/browser's node packages (`npm ci`, only when package-lock.json changed),
#   2. configures and builds two trees: build/ (normal) and build-asan/ (-DPARLEY_SANITIZE=ON:
#      AddressSanitizer + UndefinedBehaviorSanitizer),
#   3. runs `ctest --output-on-failure` in both,
#   4. prints a summary and exits non-zero if any step failed.
#
# Usage: tests/run.sh [extra ctest arguments, e.g. -R hostile or -L unit]
# Environment: PARLEY_TEST_JOBS (ctest -j, default 2),
#              PARLEY_TEST_TIMEOUT (seconds for one tree's whole ctest run, default 900).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JOBS="${PARLEY_TEST_JOBS:-2}"
CTEST_TIMEOUT="${PARLEY_TEST_TIMEOUT:-900}"
BUILD_JOBS="$(nproc)"
CTEST_ARGS=("$@")

declare -a SUMMARY=()
failures=0
started_all=$SECONDS

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
section() { printf '\n%s==== %s ====%s\n' "$BOLD" "$*" "$PLAIN"; }

# step NAME COMMAND...: runs one step, records its result and duration, never exits.
step() {
  local name="$1" rc=0 t0=$SECONDS
  shift
  section "$name"
  "$@" || rc=$?
  local dt=$((SECONDS - t0))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf 'PASS  %-34s %4ds' "$name" "$dt")")
  else
    SUMMARY+=("$(printf 'FAIL  %-34s %4ds  (exit %d)' "$name" "$dt" "$rc")")
    failures=$((failures + 1))
  fi
  return "$rc"
}

configure_and_build() {
  local dir="$1"
  shift
  cmake -S "$ROOT" -B "$ROOT/$dir" -DPARLEY_TESTS=ON "$@" &&
    cmake --build "$ROOT/$dir" -j"$BUILD_JOBS"
}

run_ctest() {
  local dir="$1"
  timeout -k 30 "$CTEST_TIMEOUT" \
    ctest --test-dir "$ROOT/$dir" --output-on-failure -j"$JOBS" "${CTEST_ARGS[@]}"
}

# Sanitizer settings for the build-asan/ tree: report leaks, stop at the first error with a
# stack trace. The integration harness checks parleyd's stderr for sanitizer reports.
run_ctest_asan() {
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
  LSAN_OPTIONS="report_objects=0" \
    run_ctest build-asan
}

step "install dependencies" "$ROOT/deploy/install-deps.sh" || true

# Node packages pinned in a package-lock.json: tests/browser's (playwright-core) and
# bench/peerjs's (the PeerJS server the bench tests drive). `npm ci` only when node_modules
# is missing or package.json / package-lock.json changed since the last one.
node_deps() {
  local dir="$ROOT/$1" probe="$2" want
  local stamp="$dir/node_modules/.parley-installed"
  want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1)"
  if [ -d "$dir/node_modules/$probe" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    echo "$1: node_modules up to date"
    return 0
  fi
  (cd "$dir" && npm ci --no-audit --no-fund) && echo "$want" >"$stamp"
}
step "browser test deps (npm ci)" node_deps tests/browser playwright-core || true
step "PeerJS server for the bench tests (npm ci)" node_deps bench/peerjs peer || true

# ---------------------------------------------------------------------------------------
# REDIS: nothing to start here. Every test that needs Redis starts its own redis-server on a
# free loopback port without persistence and stops it (tests/integration/harness.py's
# RedisServer for the suites registered with engine "redis"; tests/unit/test_store_redis.c
# for the engine's own test), so no test depends on a Redis already running.
# ---------------------------------------------------------------------------------------

normal_built=0
asan_built=0
if step "build build/ (normal)" configure_and_build build; then
  normal_built=1
fi
if step "build build-asan/ (ASan+UBSan)" configure_and_build build-asan -DPARLEY_SANITIZE=ON; then
  asan_built=1
fi

if [ "$normal_built" -eq 1 ]; then
  step "ctest build/" run_ctest build || true
else
  SUMMARY+=("$(printf 'SKIP  %-34s        (build failed)' "ctest build/")")
fi
if [ "$asan_built" -eq 1 ]; then
  step "ctest build-asan/" run_ctest_asan || true
else
  SUMMARY+=("$(printf 'SKIP  %-34s        (build failed)' "ctest build-asan/")")
fi

section "summary ($((SECONDS - started_all))s)"
printf '%s\n' "${SUMMARY[@]}"
if [ "$failures" -ne 0 ]; then
  printf '\n%d step(s) FAILED\n' "$failures"
  exit 1
fi
printf '\nall steps passed\n'
