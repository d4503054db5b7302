#!/usr/bin/env python3
"""vessel-run --firmware-vars: the kit's pflash guest drives the flash.

  test_pflash.py RUN-GUEST VESSEL-RUN PFLASH-ELF

A 256 KiB store of known bytes is mapped below 4 GiB (a direct boot, so the
flash ends at 4 GiB). Run 1: the guest checks the CFI table, erases block 5
and programs a text at its offset 16, then reads it back through the
read-array mapping; the file on disk must have changed exactly there. Run 2
(`verify`) sees the data again and changes nothing. Exit 77 (skip) only
when /dev/kvm is unusable (run-guest.py decides).
"""
import os
import random
import subprocess
import sys
import tempfile

SIZE_KIB = 256
BLOCK = 5
TEXT = b"VESSEL-PFLASH-KIT"
TEXT_OFFSET = 16


def run(run_guest, vessel_run, kernel, vars_path, append, expects):
    cmd = [sys.executable, run_guest, "--timeout", "120", "--reject", "KIT: FAIL"]
    for e in expects:
        cmd += ["--expect", e]
    cmd += ["--", vessel_run, "--kernel", kernel, "--memory", "64M",
            "--firmware-vars", vars_path, "--append", append]
    return subprocess.run(cmd).returncode


def main():
    run_guest, vessel_run, kernel = sys.argv[1:4]
    rng = random.Random(0x5eed)
    original = bytes(rng.randrange(256) for _ in range(SIZE_KIB * 1024))
    with tempfile.TemporaryDirectory(prefix="vessel-pflash-") as tmp:
        vars_path = os.path.join(tmp, "VARS.fd")
        with open(vars_path, "wb") as f:
            f.write(original)
        append = f"size={SIZE_KIB} block={BLOCK}"
        rc = run(run_guest, vessel_run, kernel, vars_path, append,
                 ["KIT: pflash cfi cmdset=1 regions=1 blocks=64 block-size=4096 size-log2=18",
                  "KIT: pflash id manufacturer=0x89",
                  f"KIT: pflash erased and programmed block {BLOCK}",
                  "KIT: PASS pflash"])
        if rc != 0:
            return rc
        want = bytearray(original)
        start = BLOCK * 4096
        want[start:start + 4096] = b"\xff" * 4096
        want[start + TEXT_OFFSET:start + TEXT_OFFSET + len(TEXT)] = TEXT
        with open(vars_path, "rb") as f:
            got = f.read()
        if got != bytes(want):
            diff = [i for i in range(len(want)) if i >= len(got) or got[i] != want[i]]
            print(f"FAIL: the store on disk differs from what was expected at "
                  f"{len(diff)} bytes, first at 0x{diff[0]:x}")
            return 1
        print("the store on disk changed exactly in block", BLOCK)

        rc = run(run_guest, vessel_run, kernel, vars_path, append + " verify",
                 ["KIT: pflash persisted ok", "KIT: PASS pflash"])
        if rc != 0:
            return rc
        with open(vars_path, "rb") as f:
            if f.read() != bytes(want):
                print("FAIL: the verifying run changed the store")
                return 1
    print("PASS: programmed data persisted across runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
