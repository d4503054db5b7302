#!/usr/bin/env python3
"""Vessel's benchmarks, side by side with QEMU in the same run.

  run-bench.py --vessel-run PATH --kit-dir DIR --bios PATH [--runs N]

Prints one table: metric | Vessel | QEMU | ratio (Vessel / QEMU; below 1 is
better for times and memory). Needs qemu-system-x86_64 (install with
`sh tools/install-deps.sh --bench`) and a usable /dev/kvm.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def run_to_exit(cmd, timeout=120):
    """Wall time from launch to exit, and the child's peak RSS in KiB."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"timed out: {' '.join(cmd)}")
        time.sleep(0.002)
    elapsed = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {' '.join(cmd)}")
    return elapsed, ru.ru_maxrss


def run_until_text(cmd, path, text, timeout=60):
    """Wall time from launch until @text appears in @path; then stop."""
    if os.path.exists(path):
        os.unlink(path)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - t0 < timeout:
            try:
                with open(path, "rb") as f:
                    if text in f.read():
                        return time.monotonic() - t0
            except FileNotFoundError:
                pass
            time.sleep(0.001)
        raise RuntimeError(f"'{text.decode()}' never appeared: {' '.join(cmd)}")
    finally:
        proc.kill()
        proc.wait()


def smaps_overhead(pid, guest_bytes):
    """RSS of the process beyond the guest RAM mapping, in KiB: the host
    memory an engine costs on top of what the guest touched."""
    total = 0
    guest = 0
    size = 0
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            if line.startswith("Size:"):
                size = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
                total += rss
                # The guest RAM mapping: exactly the RAM size (QEMU may add
                # a little alignment).
                if guest_bytes // 1024 <= size <= guest_bytes // 1024 + 4096:
                    guest += rss
    return total - guest, guest


def run_and_measure_overhead(cmd, path, text, guest_bytes, timeout=60):
    """Runs until @text appears in @path, then reads the process's memory."""
    if os.path.exists(path):
        os.unlink(path)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < timeout:
            try:
                with open(path, "rb") as f:
                    if text in f.read():
                        return smaps_overhead(proc.pid, guest_bytes)
            except FileNotFoundError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"'{text.decode()}' never appeared: {' '.join(cmd)}")
    finally:
        proc.kill()
        proc.wait()


def median_of(n, fn):
    return statistics.median(fn() for _ in range(n))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vessel-run", required=True)
    ap.add_argument("--kit-dir", required=True)
    ap.add_argument("--bios", required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("bench: qemu-system-x86_64 is missing; run "
              "`sh tools/install-deps.sh --bench`", file=sys.stderr)
        return 1
    hello = os.path.join(a.kit_dir, "hello.elf")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vessel-bench-") as tmp:
        dbg = os.path.join(tmp, "debugcon.txt")
        vessel_direct = [a.vessel_run, "--memory", "256M", "--kernel", hello,
                         "--serial", "none"]
        qemu_direct = [qemu, "-enable-kvm", "-m", "256", "-kernel", hello,
                       "-display", "none", "-serial", "null", "-monitor",
                       "none", "-nodefaults", "-no-reboot"]
        v = [run_to_exit(vessel_direct) for _ in range(a.runs)]
        q = [run_to_exit(qemu_direct) for _ in range(a.runs)]
        rows.append(("launch to exit, kit hello, direct boot (s)",
                     statistics.median(x[0] for x in v),
                     statistics.median(x[0] for x in q)))
        rows.append(("peak RSS, kit hello, direct boot (MiB)",
                     statistics.median(x[1] for x in v) / 1024,
                     statistics.median(x[1] for x in q) / 1024))

        vessel_bios = [a.vessel_run, "--memory", "256M", "--firmware", a.bios,
                       "--serial", "none", "--debugcon", "file:" + dbg]
        qemu_bios = [qemu, "-enable-kvm", "-m", "256", "-bios", a.bios,
                     "-display", "none", "-serial", "null", "-monitor", "none",
                     "-nodefaults", "-chardev", "file,id=dbg,path=" + dbg,
                     "-device", "isa-debugcon,iobase=0x402,chardev=dbg"]
        banner = b"SeaBIOS (version"
        rows.append(("launch to SeaBIOS banner (s)",
                     median_of(a.runs, lambda: run_until_text(vessel_bios, dbg, banner)),
                     median_of(a.runs, lambda: run_until_text(qemu_bios, dbg, banner))))
        idle = b"No bootable device"
        vo = [run_and_measure_overhead(vessel_bios, dbg, idle, 256 << 20)
              for _ in range(a.runs)]
        qo = [run_and_measure_overhead(qemu_bios, dbg, idle, 256 << 20)
              for _ in range(a.runs)]
        rows.append(("RSS beyond guest RAM, SeaBIOS idle (MiB)",
                     statistics.median(x[0] for x in vo) / 1024,
                     statistics.median(x[0] for x in qo) / 1024))
        rows.append(("guest RAM touched, SeaBIOS idle (MiB)",
                     statistics.median(x[1] for x in vo) / 1024,
                     statistics.median(x[1] for x in qo) / 1024))

    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}} | {'Vessel':>9} | {'QEMU':>9} | ratio")
    print("-" * (w + 34))
    for name, vv, qq in rows:
        print(f"{name:<{w}} | {vv:9.3f} | {qq:9.3f} | {vv / qq:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
