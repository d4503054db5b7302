#!/usr/bin/env python3
"""Turns a 512-byte boot sector into test media:

  make-boot-media.py disk SECTOR OUTPUT     a 4 MiB raw disk with it as MBR
  make-boot-media.py iso SECTOR OUTPUT      an El Torito (no emulation) ISO
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    kind, sector, output = sys.argv[1:4]
    with open(sector, "rb") as f:
        code = f.read()
    if len(code) != 512 or code[510:512] != b"\x55\xaa":
        print(f"make-boot-media: {sector} is not a 512-byte boot sector",
              file=sys.stderr)
        return 1
    if kind == "disk":
        with open(output, "wb") as f:
            f.write(code)
            f.truncate(4 << 20)
        return 0
    xorriso = shutil.which("xorriso")
    if not xorriso:
        print("make-boot-media: xorriso is missing "
              "(sh tools/install-deps.sh --test)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tree:
        with open(os.path.join(tree, "boot.bin"), "wb") as f:
            f.write(code + bytes(2048 - len(code)))
        with open(os.path.join(tree, "README.TXT"), "w") as f:
            f.write("Vessel boot test medium\n")
        subprocess.run([xorriso, "-as", "mkisofs", "-quiet", "-V", "VESSELTEST",
                        "-o", output, "-b", "boot.bin", "-no-emul-boot",
                        "-boot-load-size", "4", tree], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
