#!/usr/bin/env python3
"""The install tests: a kit installer copies a payload from a CD onto disks,
then SeaBIOS boots each disk and the boot sector checks the payload.

  install-test.py install --mode direct|grub|linux --vessel-run VR --vessel-img VI
        --firmware BIOS --installer ELF --iso ISO --payload PAYLOAD
        --verify VERIFY.BIN [--qemu-img QI] [--timeout S]
      direct: vessel-run --kernel ELF --cdrom ISO (no firmware) installs onto
              an IDE raw disk and a virtio raw disk;
      grub:   SeaBIOS boots ISO (a GRUB rescue CD) from the CD, GRUB loads the
              installer through `multiboot`; the virtio disk is a qcow2
              overlay (vessel-img create -b base.raw -F raw) on a raw base;
      linux:  as grub, but GRUB boots Debian's kernel and a busybox initramfs
              (tests/slow) whose init writes the disks through Linux's own
              ata_piix, sr_mod and virtio_blk drivers (no --installer).
      Then: both disks hold the boot sector and the payload (read back on
      the host; the overlay through qemu-img convert), each boots alone
      with --boot disk and no CD and prints "VESSEL-VERIFY: payload ok",
      the base image is unchanged and `qemu-img check` finds no errors.
  install-test.py hostile --vessel-run VR --guest ELF --name NAME
        --if ide|virtio [--iso ISO] [--timeout S]
      runs a hostile kit guest against a scratch disk (and the CD): it must
      print "KIT: PASS NAME" and vessel-run must exit 0.

Exit 77 (skip) only when /dev/kvm is unusable. Times of every run are
printed as "time: <what> <seconds> s".
"""
import argparse
import hashlib
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

SECTOR = 512


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return str(e)
    os.close(fd)
    return None


class Failed(Exception):
    pass


def checksum(data):
    data = data + bytes(-len(data) % SECTOR)
    s = 0
    for (w,) in struct.iter_unpack("<I", data):
        s = (((s << 5) | (s >> 27)) + w) & 0xFFFFFFFF
    return s


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def vcpu_state(proc, outpath):
    """Where the guest is (vessel-run prints each vCPU's registers on
    SIGUSR1): for a guest that runs on silently, e.g. Linux's decompressor,
    which prints nothing without CONFIG_X86_VERBOSE_BOOTUP. Waits for the
    lines a few seconds at most."""
    proc.send_signal(signal.SIGUSR1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        with open(outpath, errors="replace") as f:
            lines = [l for l in f.read().splitlines() if re.match(r"cpu[0-9]+: ", l)]
        if lines:
            return "; ".join(lines)
        time.sleep(0.1)
    return None


def run_vm(what, cmd, tmp, timeout, expect, reject=("KIT: FAIL",)):
    """Runs vessel-run with COM1 and the debug console in files; returns
    COM1's text. The guest must power off (exit 0) and print every pattern."""
    tag = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-")
    serial = os.path.join(tmp, tag + ".serial")
    dbg = os.path.join(tmp, tag + ".debugcon")
    full = cmd[:1] + [f"--serial=file:{serial}", f"--debugcon=file:{dbg}"] + cmd[1:]
    print(f"running ({what}):", " ".join(full), flush=True)
    t0 = time.monotonic()
    outpath = os.path.join(tmp, tag + ".out")

    def read(path):
        try:
            with open(path, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # Poll the outputs while the guest runs, to time its milestones.
    seen = {}
    milestones = [(serial, "GRUB boots the entry", r"Booting `"),
                  (serial, "the kit starts", r"kit: (multiboot|pvh) boot"),
                  (serial, "the kit passes", r"KIT: PASS"),
                  (dbg, "SeaBIOS starts", r"SeaBIOS \(version"),
                  (dbg, "SeaBIOS boots", r"Booting from [0-9a-f]{4}:7c00"),
                  (serial, "the boot sector reports", r"VESSEL-VERIFY: "),
                  (serial, "GRUB loads Linux", r"VESSEL-GRUB: loading Linux"),
                  (serial, "GRUB loads the initramfs", r"VESSEL-GRUB: loading the initramfs"),
                  (serial, "GRUB boots Linux", r"VESSEL-GRUB: booting Linux"),
                  (serial, "Linux starts", r"Linux version [0-9]"),
                  (serial, "Linux reaches init", r"VESSEL-INSTALL: reached init"),
                  (serial, "Linux loads the drivers", r"VESSEL-INSTALL: drivers loaded"),
                  (serial, "Linux mounts the CD", r"VESSEL-INSTALL: CD mounted"),
                  (serial, "Linux writes the disks", r"VESSEL-INSTALL: done")]

    def scan(now):
        texts = {serial: read(serial), dbg: read(dbg)}
        for path, name, rx in milestones:
            if name not in seen and re.search(rx, texts[path]):
                seen[name] = now

    with open(outpath, "w") as outf:
        proc = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=outf,
                                stderr=subprocess.STDOUT, text=True)
        timed_out = False
        while proc.poll() is None:
            now = time.monotonic() - t0
            if now > timeout:
                timed_out = True
                where = vcpu_state(proc, outpath)
                proc.kill()
                proc.wait()
                break
            scan(now)
            time.sleep(0.25)
        scan(time.monotonic() - t0)  # what came just before the exit
    out = read(outpath)
    took = time.monotonic() - t0
    print(f"time: {what} {took:.1f} s", flush=True)
    for name, at in sorted(seen.items(), key=lambda kv: kv[1]):
        print(f"time: {what}: {name} after {at:.1f} s")

    text, dtext = read(serial), read(dbg)
    problems = []
    if timed_out:
        problems.append(f"no power-off within {timeout} s")
        problems.append("vCPUs then: " + (where or "vessel-run did not say"))
    elif proc.returncode != 0:
        problems.append(f"exit status {proc.returncode}, expected 0")
    for p in expect:
        if not re.search(p, text):
            problems.append(f"/{p}/ not seen on COM1")
    for p in reject:
        if re.search(p, text):
            problems.append(f"/{p}/ seen on COM1")
    if problems:
        # How far it got, for boots that stop on the way (see KVM-HERE.md).
        if seen:
            order = [name for _, name, _ in milestones]
            last = max(seen.items(), key=lambda kv: (kv[1], order.index(kv[0])))
            problems.append(f"got as far as: {last[0]} (after {last[1]:.0f} s)")
        else:
            problems.append("reached none of the milestones")
        print("--- COM1 ---\n" + text[-4000:])
        print("--- debug console ---\n" + dtext[-3000:])
        print("--- vessel-run output ---\n" + (out or ""))
        raise Failed(f"{what}: " + "; ".join(problems))
    # Keep the interesting lines in the log even on success.
    for line in text.splitlines():
        if line.startswith(("KIT:", "kit: installer", "VESSEL-VERIFY", "kit: hostile",
                            "VESSEL-GRUB", "VESSEL-INSTALL")):
            print("  COM1:", line)
    if out.strip():
        print("  vessel-run:", out.strip().replace("\n", "\n  vessel-run: "))
    return text, took


def check_disk_image(what, data, verify, payload):
    n = (len(payload) + SECTOR - 1) // SECTOR
    padded = payload + bytes(n * SECTOR - len(payload))
    if len(data) < (n + 1) * SECTOR:
        raise Failed(f"{what}: the image has {len(data)} bytes")
    boot = data[:SECTOR]
    want = bytearray(verify)
    want[0x1B4:0x1B8] = struct.pack("<I", checksum(payload))
    want[0x1B8:0x1BA] = struct.pack("<H", n)
    if boot != bytes(want):
        raise Failed(f"{what}: sector 0 is not the patched verify boot sector")
    if data[SECTOR:(n + 1) * SECTOR] != padded:
        raise Failed(f"{what}: sectors 1..{n} differ from PAYLOAD.BIN")
    print(f"  {what}: sector 0 and sectors 1..{n} as expected")


def cmd_install(a, tmp):
    with open(a.payload, "rb") as f:
        payload = f.read()
    with open(a.verify, "rb") as f:
        verify = f.read()
    n = (len(payload) + SECTOR - 1) // SECTOR
    want_sum = "%08x" % checksum(payload)
    size = 8 << 20

    ide = os.path.join(tmp, "ide.raw")
    with open(ide, "wb") as f:
        f.truncate(size)
    base = overlay = None
    if a.mode != "direct":
        # A base with contents of its own, so that a write through to it shows.
        base = os.path.join(tmp, "base.raw")
        with open(base, "wb") as f:
            f.write((b"VESSEL-BASE-IMAGE-" * 32)[:SECTOR] * (size // SECTOR))
        base_sha = sha256(base)
        overlay = os.path.join(tmp, "base-overlay.qcow2")
        r = subprocess.run([a.vessel_img, "create", "-f", "qcow2", "-b", "base.raw", "-F", "raw",
                            overlay], cwd=tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise Failed("vessel-img create: " + r.stdout)
        vdisk = overlay + ",format=qcow2,if=virtio"
    else:
        vraw = os.path.join(tmp, "virtio.raw")
        with open(vraw, "wb") as f:
            f.truncate(size)
        vdisk = vraw + ",format=raw,if=virtio"

    disks = ["--disk", ide + ",format=raw,if=ide", "--disk", vdisk]
    expect = [rf"KIT: installer payload bytes={len(payload)} sectors={n} sum={want_sum}",
              rf"KIT: installer wrote ide primary master \({n + 1} sectors\)",
              rf"KIT: installer wrote virtio 0 \({n + 1} sectors\)",
              r"KIT: PASS installer"]
    if a.mode == "linux":
        expect = [rf"VESSEL-INSTALL: wrote /dev/sda \({n + 1} sectors\)",
                  rf"VESSEL-INSTALL: wrote /dev/vda \({n + 1} sectors\)",
                  r"VESSEL-INSTALL: done"]
    if a.mode == "direct":
        install = [a.vessel_run, "--kernel", a.installer, "--memory", "128M",
                   "--cdrom", a.iso] + disks
    elif a.mode == "linux":
        # As linux-direct-boot: this host's nested KVM cannot emulate lock
        # cmpxchg16b at CPL0 (../shared/KVM-HERE.md), so no CX16; the
        # kernel's command line (on the CD) says noxsave for XRSTOR.
        install = [a.vessel_run, "--firmware", a.firmware, "--memory", "512M",
                   "--cpu", "host,-cx16", "--boot", "cdrom", "--cdrom", a.iso] + disks
    else:
        install = [a.vessel_run, "--firmware", a.firmware, "--memory", "128M",
                   "--boot", "cdrom", "--cdrom", a.iso] + disks
    text, took = run_vm(f"install ({a.mode})", install, tmp, a.timeout, expect,
                        ("KIT: FAIL", "VESSEL-INSTALL: FAIL"))
    if a.mode == "grub":
        m = re.search(r"kit: multiboot boot", text)
        if not m:
            raise Failed("the installer did not report a multiboot boot (GRUB)")

    # The host's view of both disks.
    with open(ide, "rb") as f:
        check_disk_image("ide.raw", f.read(), verify, payload)
    if a.mode != "direct":
        if a.qemu_img:
            conv = os.path.join(tmp, "overlay-as-raw.raw")
            subprocess.run([a.qemu_img, "convert", "-f", "qcow2", "-O", "raw", overlay, conv],
                           check=True)
            with open(conv, "rb") as f:
                check_disk_image("base-overlay.qcow2 (qemu-img convert)", f.read(), verify,
                                 payload)
            os.unlink(conv)
        else:
            print("  note: qemu-img missing, the overlay's contents are checked by booting only")
    else:
        with open(vraw, "rb") as f:
            check_disk_image("virtio.raw", f.read(), verify, payload)

    ok = rf"VESSEL-VERIFY: payload ok \({n} sectors\)"
    bad = (r"VESSEL-VERIFY: payload BAD", r"KIT: FAIL")
    for what, disk in (("ide", disks[1]), ("virtio", disks[3])):
        run_vm(f"boot {what} disk", [a.vessel_run, "--firmware", a.firmware, "--memory", "128M",
                                     "--boot", "disk", "--disk", disk],
               tmp, 120, [ok], bad)

    if a.mode != "direct":
        if sha256(base) != base_sha:
            raise Failed("the base image changed")
        print("  base.raw unchanged (sha256 %s)" % base_sha)
        if a.qemu_img:
            r = subprocess.run([a.qemu_img, "check", overlay], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            print("  qemu-img check: " + r.stdout.strip().replace("\n", "\n  "))
            if r.returncode != 0 or "No errors were found" not in r.stdout:
                raise Failed(f"qemu-img check of the overlay: status {r.returncode}")
        r = subprocess.run([a.vessel_img, "check", overlay], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        print("  vessel-img check: " + r.stdout.strip().replace("\n", "\n  "))
        if r.returncode != 0:
            raise Failed(f"vessel-img check of the overlay: status {r.returncode}")


def cmd_hostile(a, tmp):
    disk = os.path.join(tmp, "scratch.raw")
    with open(disk, "wb") as f:
        f.write(b"\0" * SECTOR + (b"HOSTILE!" * 64) * 15)
        f.truncate(4 << 20)
    cmd = [a.vessel_run, "--kernel", a.guest, "--memory", "128M",
           "--disk", disk + ",format=raw,if=" + getattr(a, "if")]
    if a.iso:
        cmd += ["--cdrom", a.iso]
    run_vm(a.name, cmd, tmp, a.timeout, [rf"KIT: PASS {re.escape(a.name)}"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["install", "hostile"])
    ap.add_argument("--mode", choices=["direct", "grub", "linux"], default="direct")
    ap.add_argument("--vessel-run", required=True)
    ap.add_argument("--vessel-img")
    ap.add_argument("--qemu-img")
    ap.add_argument("--firmware")
    ap.add_argument("--installer")
    ap.add_argument("--iso")
    ap.add_argument("--payload")
    ap.add_argument("--verify")
    ap.add_argument("--guest")
    ap.add_argument("--name")
    ap.add_argument("--if", choices=["ide", "virtio"], default="ide")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    why = kvm_usable()
    if why:
        print(f"SKIP: /dev/kvm is not usable here ({why})")
        return 77
    if a.qemu_img and not shutil.which(a.qemu_img):
        a.qemu_img = None
    # Meson passes paths relative to the build directory; some runs change
    # directory (vessel-img create names the backing file relative to it).
    for k in ("vessel_run", "vessel_img", "qemu_img", "firmware", "installer", "iso",
              "payload", "verify", "guest"):
        if getattr(a, k):
            setattr(a, k, os.path.abspath(getattr(a, k)))
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vessel-install-") as tmp:
        try:
            (cmd_install if a.what == "install" else cmd_hostile)(a, tmp)
        except Failed as e:
            print(f"FAIL: {e}")
            return 1
    print(f"time: total {time.monotonic() - t0:.1f} s")
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
