#!/bin/sh
# Builds Vessel and runs the whole test suite (the README's test command and
# CI's). Fails if /dev/kvm works here and any guest test skipped.
set -eu
cd "$(dirname "$0")/.."
builddir=${VESSEL_BUILDDIR:-build}

if [ ! -f "$builddir/build.ninja" ]; then
  meson setup "$builddir" "$@"
fi
meson compile -C "$builddir"
status=0
meson test -C "$builddir" --print-errorlogs --num-processes 2 || status=$?

log="$builddir/meson-logs/testlog.txt"
if [ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -f "$log" ]; then
  skipped=$(grep -E '^ *[0-9]+/[0-9]+ .* SKIP ' "$log" || true)
  if [ -n "$skipped" ]; then
    echo "run-tests: /dev/kvm works here, yet these tests skipped:" >&2
    echo "$skipped" >&2
    status=1
  fi
fi
# One plain closing line for CI readers: "N passed, N failed, N skipped".
if [ -f "$log" ]; then
  awk '/^Ok:/ {ok=$2} /^Expected Fail:/ {xf=$3} /^Fail:/ {f=$2}
       /^Unexpected Pass:/ {up=$3} /^Skipped:/ {s=$2} /^Timeout:/ {t=$2}
       END {printf "tests: %d passed, %d failed, %d skipped\n", ok+xf, f+up+t, s}' "$log"
fi
exit $status
