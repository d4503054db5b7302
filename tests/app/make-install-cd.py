#!/usr/bin/env python3
"""The install-flow test CD: an El Torito (no emulation) ISO whose boot
image is the installer sector followed by the disk's boot sector.

  make-install-cd.py INSTALLER_SECTOR DISK_SECTOR OUTPUT
"""
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    installer, disk, output = sys.argv[1:4]
    sectors = []
    for path in (installer, disk):
        with open(path, "rb") as f:
            code = f.read()
        if len(code) != 512 or code[510:512] != b"\x55\xaa":
            print(f"make-install-cd: {path} is not a 512-byte boot sector",
                  file=sys.stderr)
            return 1
        sectors.append(code)
    xorriso = shutil.which("xorriso")
    if not xorriso:
        print("make-install-cd: xorriso is missing "
              "(sh tools/install-deps.sh --test)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tree:
        image = b"".join(sectors)
        with open(os.path.join(tree, "boot.bin"), "wb") as f:
            f.write(image + bytes(2048 - len(image)))
        subprocess.run([xorriso, "-as", "mkisofs", "-quiet", "-V", "VESSELINSTALL",
                        "-o", output, "-b", "boot.bin", "-no-emul-boot",
                        "-boot-load-size", "4", tree], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
