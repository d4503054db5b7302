#!/bin/sh
# find-vmlinuz.sh TREE VESSEL-RUN ARGS...: runs vessel-run with --kernel set to
# the vmlinuz unpacked under TREE/boot.
tree=$1
shift
run=$1
shift
kernel=$(ls "$tree"/boot/vmlinuz-* 2>/dev/null | head -n 1)
if [ -z "$kernel" ]; then
  echo "find-vmlinuz: no vmlinuz under $tree/boot" >&2
  exit 1
fi
exec "$run" --kernel "$kernel" "$@"
