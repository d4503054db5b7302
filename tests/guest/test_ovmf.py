#!/usr/bin/env python3
"""OVMF in its split layout: vessel-run --firmware OVMF_CODE_4M.fd
--firmware-vars <a copy of OVMF_VARS_4M.fd>.

  test_ovmf.py VESSEL-RUN [OVMF-DIR]

On the nested paravirtual KVM the tests run on (../../shared/KVM-HERE.md),
OVMF's SEC stops on an `fwait` KVM cannot emulate. QEMU 7.2 with the same
two flash drives stops at 0010:fffced45 there; vessel-run must stop at the
same place with one clear line on stderr, exit 1, and leave the store's
bytes as they were. On a host with hardware virtualization OVMF runs on:
the test then passes once it has run for a while without an error.

Exit 77 (skip) when OVMF (Debian's ovmf package) is not installed or
/dev/kvm is unusable.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

from ovmf_files import ovmf_files

EXPECTED = re.compile(r"^vessel-run: vCPU 0: KVM internal error: emulation failure "
                      r"at 0010:00000000fffced45 \(linear 0xfffced45\)$")
RUN_SECONDS = 60


def main():
    vessel_run = sys.argv[1]
    files = ovmf_files(sys.argv[2] if len(sys.argv) > 2 else None)
    if not files:
        return 77
    code, vars_template = files
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"SKIP: /dev/kvm is not usable here ({e})")
        return 77
    with open(vars_template, "rb") as f:
        template = f.read()
    with tempfile.TemporaryDirectory(prefix="vessel-ovmf-") as tmp:
        vars_copy = os.path.join(tmp, "VARS.fd")
        shutil.copyfile(vars_template, vars_copy)
        cmd = [vessel_run, "--firmware", code, "--firmware-vars", vars_copy,
               "--memory", "256M", "--serial", "none", "--display", "none"]
        print("running:", " ".join(cmd), flush=True)
        try:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:
            print(f"PASS: OVMF ran for {RUN_SECONDS} s without an error "
                  "(a host with hardware virtualization)")
            return 0
        lines = p.stderr.splitlines()
        print("exit", p.returncode, "stderr:", lines)
        if p.returncode != 1 or len(lines) != 1 or not EXPECTED.match(lines[0]):
            print("FAIL: expected exit 1 and one line matching", EXPECTED.pattern)
            return 1
        with open(vars_copy, "rb") as f:
            if f.read() != template:
                print("FAIL: the variable store changed before OVMF reached its driver")
                return 1
    print("PASS: OVMF stopped where QEMU does here, the store unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
