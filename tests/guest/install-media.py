#!/usr/bin/env python3
"""Media for the install tests:

  install-media.py payload OUTPUT [BYTES]
      a deterministic pattern (xorshift32 words), 256 KiB by default
  install-media.py iso OUTPUT --payload P --verify V [--installer ELF --grub]
      an ISO9660 image with PAYLOAD.BIN and VERIFY.BIN in its root; with
      --grub, a GRUB rescue CD (grub-mkrescue) that boots ELF through
      `multiboot` from /boot/installer.elf, its console on COM1
  install-media.py iso OUTPUT --payload P --verify V --grub
                   --linux KERNEL --initrd INITRD --append CMDLINE
      the same GRUB CD booting a Linux kernel and initramfs (`linux`,
      `initrd`) instead, with VPATCH.BIN too: the six bytes an installer
      patches into the verify sector at 0x1B4 (the payload's checksum, u32,
      and its length in sectors, u16), for installers that cannot compute
      them (a busybox shell)
  install-media.py sum PAYLOAD
      prints the kit's checksum of PAYLOAD padded to whole sectors
"""
import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile

GRUB_HEAD = """\
set timeout=0
set default=0
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
"""

GRUB_CFG = GRUB_HEAD + """\
menuentry "Vessel kit installer" {
    multiboot /boot/installer.elf
    boot
}
"""

# The echo lines tell a test how far GRUB got (loading an 8 MB kernel
# through the BIOS is slow where GRUB is instruction-emulated).
GRUB_LINUX_CFG = GRUB_HEAD + """\
menuentry "Vessel Linux installer" {
    echo "VESSEL-GRUB: loading Linux"
    linux /boot/vmlinuz %s
    echo "VESSEL-GRUB: loading the initramfs"
    initrd /boot/initrd.gz
    echo "VESSEL-GRUB: booting Linux"
    boot
}
"""


def payload_bytes(n):
    words = []
    x = 0x2545F491
    for _ in range((n + 3) // 4):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        words.append(x)
    return struct.pack("<%dI" % len(words), *words)[:n]


def checksum(data):
    """rol(sum, 5) + dword over the data padded to whole sectors."""
    data = data + bytes(-len(data) % 512)
    s = 0
    for (w,) in struct.iter_unpack("<I", data):
        s = (((s << 5) | (s >> 27)) + w) & 0xFFFFFFFF
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["payload", "iso", "sum"])
    ap.add_argument("output")
    ap.add_argument("size", nargs="?", type=int, default=256 * 1024)
    ap.add_argument("--payload")
    ap.add_argument("--verify")
    ap.add_argument("--installer")
    ap.add_argument("--grub", action="store_true")
    ap.add_argument("--linux")
    ap.add_argument("--initrd")
    ap.add_argument("--append", default="")
    a = ap.parse_args()
    if a.kind == "payload":
        with open(a.output, "wb") as f:
            f.write(payload_bytes(a.size))
        return 0
    if a.kind == "sum":
        with open(a.output, "rb") as f:
            print("%08x" % checksum(f.read()))
        return 0
    with open(a.verify, "rb") as f:
        vb = f.read()
    if len(vb) != 512 or vb[510:] != b"\x55\xaa" or vb[0x1b0:0x1b4] != b"VRFY":
        print(f"install-media: {a.verify} is not the verify boot sector", file=sys.stderr)
        return 1
    tool = "grub-mkrescue" if a.grub else "xorriso"
    exe = shutil.which(tool)
    if not exe:
        print(f"install-media: {tool} is missing (sh tools/install-deps.sh --test)",
              file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tree:
        shutil.copy(a.payload, os.path.join(tree, "PAYLOAD.BIN"))
        shutil.copy(a.verify, os.path.join(tree, "VERIFY.BIN"))
        if a.grub:
            os.makedirs(os.path.join(tree, "boot", "grub"))
            if a.linux:
                shutil.copy(a.linux, os.path.join(tree, "boot", "vmlinuz"))
                shutil.copy(a.initrd, os.path.join(tree, "boot", "initrd.gz"))
                with open(a.payload, "rb") as f:
                    data = f.read()
                with open(os.path.join(tree, "VPATCH.BIN"), "wb") as f:
                    f.write(struct.pack("<IH", checksum(data), (len(data) + 511) // 512))
                cfg, loader = GRUB_LINUX_CFG % a.append, "linux echo"
            else:
                shutil.copy(a.installer, os.path.join(tree, "boot", "installer.elf"))
                cfg, loader = GRUB_CFG, "multiboot"
            with open(os.path.join(tree, "boot", "grub", "grub.cfg"), "w") as f:
                f.write(cfg)
            # Only the BIOS (i386-pc) platform: no EFI image, no mformat need.
            # Only the modules the entry needs, no fonts, locales or themes:
            # GRUB runs instruction-emulated under nested KVM, and the slim
            # CD reaches the kit in about half the time of the full one.
            cmd = [exe, "-o", a.output, "--compress=no", "-d", "/usr/lib/grub/i386-pc",
                   f"--install-modules=normal {loader} serial iso9660 biosdisk terminal boot",
                   "--fonts=", "--locales=", "--themes=",
                   tree, "--", "-volid", "VESSELINST"]
        else:
            cmd = [exe, "-as", "mkisofs", "-quiet", "-V", "VESSELINST", "-o", a.output, tree]
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            print(r.stdout, file=sys.stderr)
            return r.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
