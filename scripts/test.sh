#!/usr/bin/env bash
# The project's test command (README, .ci/run): on a fresh Debian 12 machine, as root, it
# installs every package, builds, and runs every test: unit, integration and end-to-end tests
# against real servers it starts itself on loopback, the unit tests again under
# AddressSanitizer + UBSan, the tests that exercise threads under ThreadSanitizer, and each
# fuzzer for a bounded time.
#   scripts/test.sh [--quick]   (--quick: skip the sanitizer builds and the fuzzers)
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-12}
# The tests that run threads against each other: the fetcher's worker (reload, tasks), the
# milter's lookup and local cache, the Redis pool and the change subscriber, the claim keeper
# and the fleet clock; mta-sts-tlsmap's server and its MX source (single flight, hosts in
# parallel).
TSAN_TESTS=(cached_worker_tests cached_claims_tests fleet_clock_test lookup_unit_tests redis_test store_test
            tlsmap_unit_tests)

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

  step "build: tsan preset (${TSAN_TESTS[*]})"
  cmake --preset tsan >/dev/null
  cmake --build --preset tsan -j"$jobs" --target "${TSAN_TESTS[@]}"
  step "tests: threads under ThreadSanitizer"
  for t in "${TSAN_TESTS[@]}"; do
    bin=$(find build/tsan/tests -type f -name "$t" -perm -u+x | head -n 1)
    [ -n "$bin" ] || { echo "no $t in build/tsan" >&2; exit 1; }
    echo "== $t"
    # ASLR off for the run: ThreadSanitizer needs its fixed memory layout, which the large
    # mmap randomisation of recent kernels can break.
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
      setarch "$(uname -m)" -R "$bin" --gtest_brief=1
  done

  step "fuzzers: ${FUZZ_SECONDS}s each"
  bash scripts/run-fuzzers.sh "$FUZZ_SECONDS"
fi
step "all tests passed"
