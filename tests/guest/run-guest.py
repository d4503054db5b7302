#!/usr/bin/env python3
"""Runs vessel-run on a guest and checks what it prints.

  run-guest.py [--expect RE]... [--expect-debugcon RE]... [--stop-when-matched]
               [--exit-code N] [--timeout S] -- VESSEL-RUN [ARGS...]

The guest's COM1 and debug console go to files this script reads while the
guest runs. With --stop-when-matched the guest is stopped (SIGTERM) as soon as
every pattern has appeared; otherwise the guest must end by itself (power-off)
with the expected exit code. Exit 77 (skip) only when /dev/kvm is unusable.
"""
import argparse
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return str(e)
    os.close(fd)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--expect-debugcon", action="append", default=[])
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--stop-when-matched", action="store_true")
    ap.add_argument("--exit-code", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--no-kvm-ok", action="store_true",
                    help="the command does not need KVM (flag checks)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not a.no_kvm_ok:
        why = kvm_usable()
        if why:
            print(f"SKIP: /dev/kvm is not usable here ({why})")
            return 77

    with tempfile.TemporaryDirectory(prefix="vessel-guest-") as tmp:
        serial = os.path.join(tmp, "serial.txt")
        dbg = os.path.join(tmp, "debugcon.txt")
        # Right after vessel-run itself, so that later flags still win.
        at = next((i + 1 for i, c in enumerate(cmd)
                   if os.path.basename(c) == "vessel-run"), len(cmd))
        full = cmd[:at] + [f"--serial=file:{serial}",
                           f"--debugcon=file:{dbg}"] + cmd[at:]
        print("running:", " ".join(full), flush=True)
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        want = [(serial, re.compile(p)) for p in a.expect] + \
               [(dbg, re.compile(p)) for p in a.expect_debugcon]
        deadline = time.monotonic() + a.timeout
        stopped = False
        timed_out = False

        def read(path):
            try:
                with open(path, "r", errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                return ""

        def all_matched():
            return all(rx.search(read(path)) for path, rx in want)

        # Wait for the process, polling the outputs for the patterns. The
        # process's stderr pipe doubles as the wake-up source.
        while proc.poll() is None:
            if a.stop_when_matched and want and all_matched():
                proc.send_signal(signal.SIGTERM)
                stopped = True
                break
            if time.monotonic() > deadline:
                timed_out = True
                proc.kill()
                break
            select.select([proc.stderr], [], [], 0.2)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        out_serial, out_dbg = read(serial), read(dbg)

        ok = True
        if timed_out:
            print(f"FAIL: no result within {a.timeout} s")
            ok = False
        for path, rx in want:
            if not rx.search(read(path)):
                print(f"FAIL: /{rx.pattern}/ not seen on "
                      f"{'COM1' if path == serial else 'the debug console'}")
                ok = False
        for p in a.reject:
            if re.search(p, out_serial):
                print(f"FAIL: /{p}/ seen on COM1")
                ok = False
        if not stopped and not timed_out and proc.returncode != a.exit_code:
            print(f"FAIL: exit status {proc.returncode}, expected {a.exit_code}")
            ok = False
        if stopped and proc.returncode != 0:
            print(f"FAIL: exit status {proc.returncode} after SIGTERM")
            ok = False
        print("--- COM1 ---\n" + out_serial[-4000:])
        print("--- debug console ---\n" + out_dbg[-3000:])
        print("--- stderr ---\n" + (err or ""))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
