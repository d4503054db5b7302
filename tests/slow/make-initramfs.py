#!/usr/bin/env python3
"""Builds a gzip'd newc cpio initramfs around a static busybox:

  make-initramfs.py BUSYBOX OUTPUT [--init SCRIPT]
                    [--modules MODDIR --load MODULE...]

By default /init mounts proc and sys, prints a marker line on the console
and powers the machine off, so a test can time a boot from launch to init.
--init puts SCRIPT there instead. --modules names an unpacked linux-image
package (its modules are in lib/modules/VERSION, one version); each --load
MODULE and what it depends on goes into /lib/modules/NAME.ko, and
/etc/vessel-modules lists them in an order busybox insmod can load them
(dependencies first), since the package ships no modules.dep (depmod writes
it when the package is installed) and the initramfs has no modprobe.
"""
import argparse
import gzip
import os
import re
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


def module_name(name):
    """The kernel treats - and _ in module names alike."""
    return name.replace("-", "_")


def find_modules(moddir):
    found = {}
    for d, _, files in os.walk(moddir):
        for f in files:
            if f.endswith(".ko"):
                found[module_name(f[:-3])] = os.path.join(d, f)
    return found


def depends(path):
    """The depends= entry modpost writes into a module's .modinfo section."""
    with open(path, "rb") as f:
        m = re.search(rb"(?:^|\0)depends=([^\0]*)\0", f.read())
    if not m:
        return []
    return [module_name(n) for n in m.group(1).decode().split(",") if n]


def load_order(tree, wanted):
    """Every module in wanted and below, each after what it depends on."""
    versions = os.listdir(os.path.join(tree, "lib", "modules"))
    if len(versions) != 1:
        raise SystemExit(f"make-initramfs: {tree}/lib/modules holds {versions}, "
                         "not one kernel version")
    moddir = os.path.join(tree, "lib", "modules", versions[0])
    found = find_modules(moddir)
    order, state = [], {}

    def visit(name, chain):
        if state.get(name) == "done":
            return
        if state.get(name) == "busy":
            raise SystemExit(f"make-initramfs: dependency loop {' -> '.join(chain)}")
        if name not in found:
            raise SystemExit(f"make-initramfs: no module {name} under {moddir}"
                             + (f" (needed by {chain[-2]})" if len(chain) > 1 else ""))
        state[name] = "busy"
        for dep in depends(found[name]):
            visit(dep, chain + [dep])
        state[name] = "done"
        order.append(name)

    for name in wanted:
        visit(module_name(name), [module_name(name)])
    return [(name, found[name]) for name in order]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("busybox")
    ap.add_argument("output")
    ap.add_argument("--init")
    ap.add_argument("--modules")
    ap.add_argument("--load", action="append", default=[])
    a = ap.parse_args()
    with open(a.busybox, "rb") as f:
        bb = f.read()
    init = INIT.encode()
    if a.init:
        with open(a.init, "rb") as f:
            init = f.read()
    blob = b""
    for d in ("bin", "dev", "proc", "sys"):
        blob += newc_entry(d, 0o040755)
    blob += newc_entry("bin/busybox", 0o100755, bb)
    blob += newc_entry("bin/sh", 0o120777, b"busybox")
    blob += newc_entry("init", 0o100755, init)
    if a.load:
        if not a.modules:
            ap.error("--load needs --modules")
        mods = load_order(a.modules, a.load)
        for d in ("etc", "lib", "lib/modules"):
            blob += newc_entry(d, 0o040755)
        for name, path in mods:
            with open(path, "rb") as f:
                blob += newc_entry(f"lib/modules/{name}.ko", 0o100644, f.read())
        blob += newc_entry("etc/vessel-modules", 0o100644,
                           "".join(n + "\n" for n, _ in mods).encode())
    blob += newc_entry("TRAILER!!!", 0)
    with gzip.open(a.output, "wb", compresslevel=6) as f:
        f.write(blob)
    return 0


if __name__ == "__main__":
    sys.exit(main())
