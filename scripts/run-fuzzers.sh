#!/usr/bin/env bash
# Builds the libFuzzer targets (CMake preset "fuzz", into build/fuzz) and runs each one for
# SECONDS (default 30) on a copy of its seed corpus, so that the repository is never modified.
# Exits non-zero when any target crashes, leaks, times out, or reports undefined behaviour;
# the input that did it is kept under build/fuzz/artifacts/.
#
# usage: scripts/run-fuzzers.sh [SECONDS] [TARGET...]
set -euo pipefail

secs=${1:-30}
shift || true
case "$secs" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_txt fuzz_policy fuzz_domain fuzz_mx fuzz_netstring fuzz_cache_entry
                                     fuzz_recipient fuzz_header fuzz_dns fuzz_tlsrpt_record fuzz_tlsrpt_batch
                                     fuzz_reportd)

root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/fuzz"
jobs=${FUZZ_BUILD_JOBS:-2}

cd "$root"
cmake --preset fuzz >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

work=$(mktemp -d /tmp/mtasts-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
artifacts="$build/artifacts"
mkdir -p "$artifacts"

# Leaks count as failures; UBSan stops at the first report so libFuzzer sees a crash.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

dict_for() {
  case "$1" in
    fuzz_txt) echo "$root/tests/fuzz/txt.dict" ;;
    fuzz_policy) echo "$root/tests/fuzz/policy.dict" ;;
    fuzz_domain | fuzz_mx | fuzz_recipient) echo "$root/tests/fuzz/domain.dict" ;;
    fuzz_netstring) echo "$root/tests/fuzz/netstring.dict" ;;
    fuzz_cache_entry) echo "$root/tests/fuzz/cache_entry.dict" ;;
    fuzz_tlsrpt_record) echo "$root/tests/fuzz/tlsrpt_record.dict" ;;
    fuzz_reportd) echo "$root/tests/fuzz/reportd.dict" ;;
  esac
}

failed=()
for t in "${targets[@]}"; do
  seeds="$root/tests/fuzz/corpus/$t"
  corpus="$work/$t"
  mkdir -p "$corpus"
  [ -d "$seeds" ] && cp -R "$seeds/." "$corpus/"
  # Policies may reach the 64 KiB limit; names and TXT records are far shorter, and small
  # inputs keep those fuzzers fast.
  maxlen=4096
  [ "$t" = fuzz_policy ] && maxlen=70000
  [ "$t" = fuzz_netstring ] && maxlen=12000  # past the 10,000-byte request limit
  [ "$t" = fuzz_tlsrpt_record ] && maxlen=34000  # past the 32 KiB record limit
  # Cache entries carry a policy body: room for one near the limit, escaped.
  [ "$t" = fuzz_cache_entry ] && maxlen=220000
  # Datagrams up to the 64 KiB limit and past it.
  [ "$t" = fuzz_reportd ] && maxlen=70000
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$maxlen"
        -print_final_stats=1 -artifact_prefix="$artifacts/$t-")
  dict=$(dict_for "$t")
  [ -n "$dict" ] && [ -f "$dict" ] && args+=(-dict="$dict")
  log="$work/$t.log"
  echo "== $t: ${secs}s"
  rc=0
  "$build/tests/fuzz/$t" "${args[@]}" "$corpus" >"$log" 2>&1 || rc=$?
  # Belt and braces: a sanitizer report is a failure even if the exit status said otherwise.
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|invariant failed' "$log"; then
    echo "!! $t FAILED (exit $rc); log follows" >&2
    tail -n 60 "$log" >&2
    cp "$log" "$artifacts/$t.log"
    failed+=("$t")
  else
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$log" | tail -n 2 | sed 's/^/   /'
    echo "   corpus: $(find "$corpus" -type f | wc -l) inputs, no crash, leak or sanitizer report"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-fuzzers: FAILED: ${failed[*]} (inputs in $artifacts)" >&2
  exit 1
fi
echo "run-fuzzers: ok (${targets[*]})"
