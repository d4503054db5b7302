#!/usr/bin/env python3
"""OVMF boots GRUB from a CD: a grub-mkrescue image (x86_64-efi, from
grub-efi-amd64-bin) in the CD-ROM drive, OVMF_CODE_4M.fd with a copy of
OVMF_VARS_4M.fd, and GRUB's menu text on COM1.

  test_ovmf_grub.py RUN-GUEST VESSEL-RUN [OVMF-DIR]

In the `slow` suite, for hosts with hardware virtualization: on the nested
KVM the tests run on, OVMF's SEC stops on an `fwait` KVM cannot emulate
(tests/guest/test_ovmf.py), so this fails there. Exit 77 (skip) when OVMF,
GRUB's EFI modules or grub-mkrescue/xorriso are missing.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "guest"))
from ovmf_files import ovmf_files  # noqa: E402

GRUB_EFI_DIR = "/usr/lib/grub/x86_64-efi"
MARK = "VESSEL-GRUB-EFI: GRUB runs under OVMF"

GRUB_CFG = f"""serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=60
echo "{MARK}"
menuentry "Vessel UEFI test" {{
  halt
}}
"""


def main():
    run_guest, vessel_run = sys.argv[1:3]
    files = ovmf_files(sys.argv[3] if len(sys.argv) > 3 else None)
    if not files:
        return 77
    code, vars_template = files
    if not os.path.isdir(GRUB_EFI_DIR):
        print(f"SKIP: {GRUB_EFI_DIR} is missing (install grub-efi-amd64-bin)")
        return 77
    for tool in ("grub-mkrescue", "xorriso", "mformat"):
        if not shutil.which(tool):
            print(f"SKIP: {tool} is missing (install grub-common, xorriso, mtools)")
            return 77
    with tempfile.TemporaryDirectory(prefix="vessel-ovmf-grub-") as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(os.path.join(root, "boot", "grub"))
        with open(os.path.join(root, "boot", "grub", "grub.cfg"), "w") as f:
            f.write(GRUB_CFG)
        iso = os.path.join(tmp, "grub-efi.iso")
        subprocess.run(["grub-mkrescue", "-d", GRUB_EFI_DIR, "-o", iso, root],
                       check=True, stdout=subprocess.DEVNULL)
        vars_copy = os.path.join(tmp, "VARS.fd")
        shutil.copyfile(vars_template, vars_copy)
        cmd = [sys.executable, run_guest, "--stop-when-matched", "--timeout", "600",
               "--expect", "GNU GRUB", "--expect", MARK, "--",
               vessel_run, "--firmware", code, "--firmware-vars", vars_copy,
               "--memory", "512M", "--cdrom", iso, "--boot", "cdrom"]
        return subprocess.run(cmd).returncode


if __name__ == "__main__":
    sys.exit(main())
