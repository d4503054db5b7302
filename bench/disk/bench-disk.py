#!/usr/bin/env python3
"""Disk throughput inside a kit guest, Vessel beside QEMU and the host.

  bench-disk.py --vessel-run PATH --guest diskbench.elf [--runs N]
                [--dir DIR] [--size BYTES] [--only SUBSTRING]

The kit guest `diskbench` (tests/guest-kit/guests/diskbench.c) moves data
with sequential 1 MiB or random 4 KiB requests on virtio-blk (several in
flight) or IDE (bus-master DMA, one at a time) and times itself with the
ACPI PM timer, so neither engine's boot is counted (QEMU boots the
multiboot image through SeaBIOS). Both engines get the same image, one raw
and one qcow2 made from it with qemu-img (fully allocated, so qcow2 writes
overwrite clusters and never allocate).

Cache mode (--cache, default none): with `none` both engines open the image
with O_DIRECT (vessel-run --disk ...,cache=none; QEMU -drive cache=none,
aio=io_uring) and the host column reads and writes the same file with
O_DIRECT, 1 MiB at a time with 4 in flight like the virtio sequential rows
(writes end with fdatasync, like the guest's final FLUSH): all three measure the disk, not the host's memory copy speed.  With
`writeback` all three go through the host page cache instead.  The other
mode's host figure is printed under the table for reference.

Prints one table: metric | Vessel | QEMU | ratio (Vessel / QEMU, above 1
is better) | host | Vessel / host, medians of --runs interleaved runs.
"""
import argparse
import mmap
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

MiB = 1 << 20

# (dev, pattern, queue depth, bytes moved per run)
CASES = [
    ("virtio", "seq1m", 4, 512 * MiB),
    ("virtio", "rand4k", 16, 16 * MiB),
    ("ide", "seq1m", 1, 512 * MiB),
    ("ide", "rand4k", 1, 8 * MiB),
]
FORMATS = ["raw", "qcow2"]
# the host column moves 1 MiB at a time with this many in flight: the depth
# of the virtio sequential rows
HOST_QD = 4
OPS = ["read", "write"]

LINE = re.compile(rb"KIT: diskbench dev=(\S+) pattern=(\S+) op=(\S+) qd=(\d+) "
                  rb"bytes=(\d+) us=(\d+) MiB/s=([\d.]+)")


def guest_rate(cmd, timeout):
    """Runs one guest; returns its MiB/s."""
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"timed out: {' '.join(cmd)}")
    m = LINE.search(p.stdout)
    if not m:
        tail = p.stdout.decode(errors="replace")[-600:]
        raise RuntimeError(f"no result (exit {p.returncode}): {' '.join(cmd)}\n{tail}")
    return int(m.group(5)) / MiB / (int(m.group(6)) / 1e6)


def host_seq(path, op, total, direct, qd=1):
    """Sequential 1 MiB reads or writes of @total bytes, @qd at a time (one
    thread each, taking the next 1 MiB in turn, as a guest with qd requests
    in flight would); MiB/s."""
    flags = os.O_RDONLY if op == "read" else os.O_WRONLY
    if direct:
        flags |= os.O_DIRECT
    fd = os.open(path, flags)
    try:
        size = os.fstat(fd).st_size
        count = total // MiB
        lock = threading.Lock()
        state = {"next": 0, "error": None}

        def worker():
            buf = mmap.mmap(-1, MiB)  # page-aligned, as O_DIRECT wants
            view = memoryview(buf)
            while True:
                with lock:
                    i = state["next"]
                    if i >= count or state["error"]:
                        return
                    state["next"] = i + 1
                off = (i * MiB) % (size - size % MiB)
                n = (os.preadv if op == "read" else os.pwritev)(fd, [view], off)
                if n != MiB:
                    state["error"] = f"host {op}: {n} bytes at {off}"
                    return

        threads = [threading.Thread(target=worker) for _ in range(qd)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if state["error"]:
            raise RuntimeError(state["error"])
        if op == "write":
            os.fdatasync(fd)
        return total / MiB / (time.monotonic() - t0)
    finally:
        os.close(fd)


def make_images(d, size, vessel_img):
    raw = os.path.join(d, "disk.raw")
    with open(raw, "wb") as f:
        chunk = os.urandom(MiB)
        for _ in range(size // MiB):
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    qcow2 = os.path.join(d, "disk.qcow2")
    qemu_img = shutil.which("qemu-img")
    if qemu_img:
        subprocess.run([qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2],
                       check=True)
    else:
        subprocess.run([vessel_img, "convert", "-f", "raw", "-O", "qcow2", raw, qcow2],
                       check=True)
    # convert leaves the qcow2 in the page cache: the first O_DIRECT run
    # (Vessel's, in run 1) would otherwise pay for writing it back
    # (seen: 116 MiB/s against 700-1100 in the runs after it)
    os.sync()
    # ... and leaves both files' pages cached: an O_DIRECT write over a
    # cached page has to drop it first, which io_uring cannot do without
    # blocking, so the first engine to write each block took a slow path
    # the other then skipped
    for path in (raw, qcow2):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return {"raw": raw, "qcow2": qcow2}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vessel-run", required=True)
    ap.add_argument("--guest", required=True, help="diskbench.elf")
    ap.add_argument("--vessel-img", help="to make the qcow2 image without qemu-img")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dir", default="/var/tmp",
                    help="where the images go (not tmpfs: O_DIRECT)")
    ap.add_argument("--size", type=int, default=1024 * MiB)
    ap.add_argument("--only", help="run only the rows whose name contains this")
    ap.add_argument("--cache", choices=["none", "writeback"], default="none")
    a = ap.parse_args()
    # run_target() passes build-relative paths and runs in the build root.
    root = os.environ.get("MESON_BUILD_ROOT")
    if root and not os.path.isabs(a.guest):
        a.guest = os.path.join(root, a.guest)
    qemu = shutil.which("qemu-system-x86_64")
    if not qemu:
        print("bench-disk: qemu-system-x86_64 is missing; run "
              "`sh tools/install-deps.sh --bench`", file=sys.stderr)
        return 1

    rows = []  # (name, dev, fmt, pattern, op, qd, total)
    for dev, pattern, qd, total in CASES:
        for fmt in FORMATS:
            for op in OPS:
                name = f"{dev} {fmt} {pattern} {op} qd{qd} (MiB/s)"
                if a.only and a.only not in name:
                    continue
                rows.append((name, dev, fmt, pattern, op, qd, total))

    res = {r[0]: ([], []) for r in rows}
    host = {}
    with tempfile.TemporaryDirectory(prefix="vessel-bench-disk-", dir=a.dir) as tmp:
        imgs = make_images(tmp, a.size, a.vessel_img)
        for op in OPS:
            host[op] = ([], [])
        for i in range(a.runs):
            for name, dev, fmt, pattern, op, qd, total in rows:
                img = imgs[fmt]
                append = (f"dev={dev} pattern={pattern} op={op} total={total} qd={qd}")
                vcmd = [a.vessel_run, "--memory", "512M", "--kernel", a.guest,
                        "--append", append, "--disk",
                        f"{img},format={fmt},if={dev},cache={a.cache}"]
                drive = f"file={img},format={fmt},cache={a.cache},aio=io_uring"
                if dev == "virtio":
                    dargs = ["-drive", drive + ",if=none,id=d0",
                             "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"]
                else:
                    dargs = ["-drive", drive + ",if=ide"]
                qcmd = [qemu, "-enable-kvm", "-m", "512", "-kernel", a.guest,
                        "-append", append, *dargs, "-display", "none", "-serial",
                        "stdio", "-monitor", "none", "-nodefaults", "-no-reboot"]
                # Alternate who goes first, so neither always finds a
                # warmer page cache or a quieter machine.
                order = [(0, vcmd), (1, qcmd)] if i % 2 == 0 else [(1, qcmd), (0, vcmd)]
                for k, cmd in order:
                    res[name][k].append(guest_rate(cmd, timeout=300))
                print(f"bench-disk: run {i + 1}/{a.runs} {name}: "
                      f"vessel {res[name][0][-1]:.1f} qemu {res[name][1][-1]:.1f}",
                      file=sys.stderr, flush=True)
            for op in OPS:
                host[op][0].append(host_seq(imgs["raw"], op, 512 * MiB, False, HOST_QD))
                host[op][1].append(host_seq(imgs["raw"], op, 512 * MiB, True, HOST_QD))

    med = statistics.median
    w = max(len(r[0]) for r in rows)
    print("Disk throughput inside the kit guest `diskbench`, MiB/s, medians of "
          f"{a.runs} interleaved runs.")
    direct = a.cache == "none"
    print(f"Vessel: vessel-run --disk IMG,format=F,if=D,cache={a.cache}; "
          f"QEMU 7.2: -drive cache={a.cache},aio=io_uring on the same image;")
    print("ratio = Vessel / QEMU (above 1: Vessel faster); host = 1 MiB preadv/pwritev, "
          f"{HOST_QD} in flight (+fdatasync), on the raw file " + ("with O_DIRECT" if direct else
                                              "through the page cache")
          + ", sequential rows only;")
    print("V/host = Vessel / host. Writes end with a FLUSH inside the timed part. "
          "IDE: one DMA command at a time.")
    print(f"{'metric':<{w}} | {'Vessel':>8} | {'QEMU':>8} | ratio | {'host':>8} | V/host")
    print("-" * (w + 52))
    for name, dev, fmt, pattern, op, qd, total in rows:
        v = med(res[name][0])
        q = med(res[name][1])
        hs = hr = ""
        if pattern == "seq1m":
            h = med(host[op][1 if direct else 0])
            hs = f"{h:8.1f}"
            hr = f"{v / h:6.2f}"
        print(f"{name:<{w}} | {v:8.1f} | {q:8.1f} | {v / q:5.2f} | {hs:>8} | {hr:>6}")
    other = 0 if direct else 1
    print(f"host {'page cache' if direct else 'O_DIRECT'}, same file, 1 MiB sequential: read "
          f"{med(host['read'][other]):.1f} MiB/s, write {med(host['write'][other]):.1f} MiB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
