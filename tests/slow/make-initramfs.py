#!/usr/bin/env python3
"""Builds a gzip'd newc cpio initramfs around a static busybox:

  make-initramfs.py BUSYBOX OUTPUT

/init mounts proc and sys, prints a marker line on the console and powers the
machine off, so a test can time a boot from launch to init.
"""
import gzip
import os
import sys

INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
echo "VESSEL-INIT: reached init after $(/bin/busybox cut -d' ' -f1 /proc/uptime) s"
echo "VESSEL-INIT: cpus $(/bin/busybox grep -c ^processor /proc/cpuinfo)"
/bin/busybox poweroff -f
"""


def newc_entry(name, mode, data=b"", ino=[1]):
    ino[0] += 1
    namez = name.encode() + b"\0"
    hdr = "070701" + "".join(f"{v:08x}" for v in (
        ino[0], mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(namez), 0))
    out = hdr.encode() + namez
    out += b"\0" * ((4 - len(out) % 4) % 4)
    out += data
    out += b"\0" * ((4 - len(data) % 4) % 4)
    return out


def main():
    busybox, output = sys.argv[1], sys.argv[2]
    with open(busybox, "rb") as f:
        bb = f.read()
    blob = b""
    for d in ("bin", "dev", "proc", "sys"):
        blob += newc_entry(d, 0o040755)
    blob += newc_entry("bin/busybox", 0o100755, bb)
    blob += newc_entry("bin/sh", 0o120777, b"busybox")
    blob += newc_entry("init", 0o100755, INIT.encode())
    blob += newc_entry("TRAILER!!!", 0)
    with gzip.open(output, "wb", compresslevel=6) as f:
        f.write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
