#!/bin/sh
# Builds Vessel and runs the whole test suite (the README's test command and
# CI's): first the plain build, then the same suite built with
# AddressSanitizer and UndefinedBehaviorSanitizer (VESSEL_NO_SANITIZE=1 skips
# that second pass for a quick local run). Fails if /dev/kvm works here and
# any guest test skipped.
set -u
cd "$(dirname "$0")/.."
builddir=${VESSEL_BUILDDIR:-build}
asandir=${VESSEL_ASAN_BUILDDIR:-build-asan}

status=0
passed=0
failed=0
skipped=0

run_suite() {
  dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" "$@" || return 1
  fi
  meson compile -C "$dir" || return 1
  meson test -C "$dir" --print-errorlogs --num-processes 2 || status=1
  log="$dir/meson-logs/testlog.txt"
  [ -f "$log" ] || return 1
  if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    skips=$(grep -E '^ *[0-9]+/[0-9]+ .* SKIP ' "$log" || true)
    if [ -n "$skips" ]; then
      echo "run-tests: /dev/kvm works here, yet these tests skipped in $dir:" >&2
      echo "$skips" >&2
      status=1
    fi
  fi
  set -- $(awk '/^Ok:/ {ok=$2} /^Expected Fail:/ {xf=$3} /^Fail:/ {f=$2}
       /^Unexpected Pass:/ {up=$3} /^Skipped:/ {s=$2} /^Timeout:/ {t=$2}
       END {print ok+xf, f+up+t, s}' "$log")
  passed=$((passed + $1))
  failed=$((failed + $2))
  skipped=$((skipped + $3))
  return 0
}

run_suite "$builddir" || status=1
if [ "${VESSEL_NO_SANITIZE:-0}" != 1 ]; then
  run_suite "$asandir" -Db_sanitize=address,undefined || status=1
fi

# One plain closing line for CI readers.
echo "tests: $passed passed, $failed failed, $skipped skipped"
exit $status
