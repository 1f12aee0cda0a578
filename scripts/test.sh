#!/usr/bin/env bash
# The project's test command (README, .ci/run): on a fresh Debian 12 machine, as root, it
# installs every package, builds, and runs every test: unit, integration and end-to-end tests
# against real servers it starts itself on loopback, the unit tests again under
# AddressSanitizer + UBSan, and each fuzzer for a bounded time.
#   scripts/test.sh [--quick]   (--quick: skip the sanitizer build and the fuzzers)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

step() { printf '\n==== %s (%s)\n' "$*" "$(date +%T)"; }

step "installing packages"
bash scripts/install-deps.sh

step "build: default preset"
cmake --preset default >/dev/null
cmake --build --preset default -j"$jobs"

step "tests: unit, integration, e2e"
ctest --preset default -j"$jobs" --timeout 300

step "packaging build: Release with Debian's build flags, no tests, warnings not errors"
(
  eval "$(dpkg-buildflags --export=sh)"
  cmake --preset package >/dev/null
  cmake --build --preset package -j"$jobs"
  [ ! -e build/package/tests ] || { echo "the packaging build built the tests" >&2; exit 1; }
  cd build/package && rm -f ./*.deb && cpack -G DEB >/dev/null && ls ./*.deb
)

if [ "$quick" -eq 0 ]; then
  step "build: asan preset"
  cmake --preset asan >/dev/null
  cmake --build --preset asan -j"$jobs" --target unit_tests
  step "tests: unit tests under ASan+UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --preset asan -j"$jobs" --timeout 300

  step "fuzzers: ${FUZZ_SECONDS}s each"
  bash scripts/run-fuzzers.sh "$FUZZ_SECONDS"
fi
step "all tests passed"
