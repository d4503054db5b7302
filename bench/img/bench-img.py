#!/usr/bin/env python3
"""vessel-img bench side by side with qemu-img bench.

Usage:
  python3 bench/img/bench-img.py --vessel-img BUILD/app/vessel-img
      [--qemu-img PATH] [--dir DIR | --ram-disk] [--repeat N]
      [--only SUBSTRING]

The matrix (the issue's benchmark requirement), every row with `-t none`
(O_DIRECT) in both tools and the same -c/-d/-s/-S/-o:

  {raw, qcow2} x {fresh image, fully allocated image}
    x {no backing file, backing file (qcow2 only)}
    x {4 KiB random, 1 MiB sequential} x {read, write}

* fresh: just created (qemu-img create); for write rows a new one is created
  before every run, so every run allocates.
* fully allocated: every byte written (raw), every cluster allocated (qcow2).
  Write rows overwrite it in place.
* backing file: a fully written raw base under a qcow2 overlay (fresh: the
  overlay is new, reads go to the base and writes copy-on-write from it; fully
  allocated: the overlay has been written completely over the base).
* 4 KiB random: qemu-img bench has no random mode; it walks offset += step
  modulo the image size.  The step is an odd number of 4 KiB blocks and the
  image size a power of two, so the walk visits 4 KiB blocks in a scattered
  order without repeating; both tools get the same -S and so the same
  offsets.
* 1 MiB sequential: step = size = 1 MiB from offset 0 (wrapping at the end
  of the image when the count is scaled up).
* Rows whose first (calibration) QEMU run takes under 0.5 s get their -c
  multiplied until a run takes about that long (at most x50); the table
  shows the count used.

--ram-disk (root, util-linux and e2fsprogs): the images go on ext4 over a
loop device whose backing file is in /dev/shm, made for the run and removed
after it.  O_DIRECT still goes through the block layer (page pinning, bios,
completions), but the "device" is memory: the figures then compare the two
engines' own cost.  On a virtual disk whose speed swings from run to run
(seen here: the same fio job took 0.7 s to 1.7 s), the 1 MiB rows measure
the disk, and both tools get its figure within that noise.

Each row runs the two tools alternately (QEMU, Vessel, Vessel, QEMU, ...)
N times, and prints the median times and ratio = QEMU median / Vessel median:
above 1.0 means Vessel is faster.  Neither tool's final flush is timed.
Image preparation is not timed.  Exit status 0 unless a tool fails, 77 when
qemu-img is missing; the numbers are information, not assertions.
"""
import argparse
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

SIZE = 2 << 30                      # 2 GiB images
MIN_SECONDS = 0.5                    # rows shorter than this get a bigger -c
BLOCKS_4K = SIZE // 4096
RAND_STEP = 4096 * 100003            # odd number of 4 KiB blocks: co-prime
assert BLOCKS_4K & (BLOCKS_4K - 1) == 0 and 100003 % 2 == 1

# pattern name -> bench args (besides -w and -t none)
PATTERNS = {
    "4K rand": {"read": ["-c", "60000", "-d", "32", "-s", "4K", "-S", str(RAND_STEP)],
                "write": ["-c", "30000", "-d", "32", "-s", "4K", "-S", str(RAND_STEP)]},
    "1M seq": {"read": ["-c", "2048", "-d", "8", "-s", "1M", "-S", "1M"],
               "write": ["-c", "2048", "-d", "8", "-s", "1M", "-S", "1M"]},
}

# (label, format, image kind)
IMAGES = [
    ("raw fresh", "raw", "raw-fresh"),
    ("raw full", "raw", "raw-full"),
    ("qcow2 fresh", "qcow2", "qcow2-fresh"),
    ("qcow2 full", "qcow2", "qcow2-full"),
    ("qcow2+backing fresh", "qcow2", "overlay-fresh"),
    ("qcow2+backing full", "qcow2", "overlay-full"),
]


def run(args):
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"bench-img: {' '.join(args)} failed: {r.stderr.strip()}")
    return r.stdout


def seconds(out):
    m = re.search(r"Run completed in ([0-9.]+) seconds", out)
    if not m:
        sys.exit(f"bench-img: no timing in output: {out!r}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vessel-img", required=True)
    ap.add_argument("--qemu-img", default=shutil.which("qemu-img"))
    ap.add_argument("--dir", default=None, help="where the images go (not tmpfs: O_DIRECT)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default=None, help="run rows whose name contains this")
    ap.add_argument("--ram-disk", action="store_true",
                    help="images on ext4 over a loop device in RAM (root)")
    a = ap.parse_args()
    if not a.qemu_img:
        print("bench-img: qemu-img not found; nothing to compare with")
        return 77
    ram = None
    if a.ram_disk:
        ram = RamDisk()
        a.dir = ram.mountpoint
    try:
        return bench(a)
    finally:
        if ram:
            ram.remove()


class RamDisk:
    """ext4 on a loop device backed by a file in /dev/shm."""
    SIZE = 14 << 30   # every image of the matrix with room to spare

    def __init__(self):
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize < self.SIZE:
            sys.exit("bench-img: --ram-disk needs %d GiB free in /dev/shm"
                     % (self.SIZE >> 30))
        self.backing = f"/dev/shm/vessel-bench-{os.getpid()}.img"
        self.loop = None
        self.mountpoint = tempfile.mkdtemp(prefix="vessel-bench-ram-")
        self.mounted = False
        try:
            with open(self.backing, "wb") as f:
                f.truncate(self.SIZE)
            self.loop = run(["losetup", "-f", "--show", self.backing]).strip()
            run(["mkfs.ext4", "-q", self.loop])
            run(["mount", self.loop, self.mountpoint])
            self.mounted = True
        except BaseException:
            self.remove()
            raise

    def remove(self):
        if self.mounted:
            subprocess.run(["umount", self.mountpoint])
        if self.loop:
            subprocess.run(["losetup", "-d", self.loop])
        if os.path.exists(self.backing):
            os.unlink(self.backing)
        os.rmdir(self.mountpoint)


def bench(a):
    q = a.qemu_img
    tmp = tempfile.mkdtemp(prefix="vessel-bench-", dir=a.dir)
    try:
        p = lambda n: os.path.join(tmp, n)
        fill = ["bench", "-q", "-w", "-t", "none", "-c", str(SIZE >> 20), "-s", "1M", "-d", "8"]
        run([q, "create", "-q", "-f", "raw", p("base.raw"), str(SIZE)])
        run([q, *fill, "--pattern=7", "-f", "raw", p("base.raw")])
        run([q, "create", "-q", "-f", "raw", p("full.raw"), str(SIZE)])
        run([q, *fill, "--pattern=5", "-f", "raw", p("full.raw")])
        run([q, "create", "-q", "-f", "qcow2", p("full.qcow2"), str(SIZE)])
        run([q, *fill, "--pattern=5", "-f", "qcow2", p("full.qcow2")])
        run([q, "create", "-q", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw",
             p("overlay-full.qcow2"), str(SIZE)])
        run([q, *fill, "--pattern=9", "-f", "qcow2", p("overlay-full.qcow2")])

        def fresh(kind):
            """Creates the image afresh; returns its path.  Only one fresh
            image exists at a time (a RAM disk has room for that)."""
            for name in ("fresh.raw", "fresh.qcow2", "overlay-fresh.qcow2"):
                if os.path.exists(p(name)):
                    os.unlink(p(name))
            if kind == "raw-fresh":
                run([q, "create", "-q", "-f", "raw", p("fresh.raw"), str(SIZE)])
                return p("fresh.raw")
            if kind == "qcow2-fresh":
                run([q, "create", "-q", "-f", "qcow2", p("fresh.qcow2"), str(SIZE)])
                return p("fresh.qcow2")
            run([q, "create", "-q", "-f", "qcow2", "-b", p("base.raw"), "-F", "raw",
                 p("overlay-fresh.qcow2"), str(SIZE)])
            return p("overlay-fresh.qcow2")

        fixed = {"raw-full": p("full.raw"), "qcow2-full": p("full.qcow2"),
                 "overlay-full": p("overlay-full.qcow2")}

        print("# ratio = QEMU time / Vessel time (median of %d interleaved runs each);"
              " ratio > 1: Vessel is faster" % a.repeat)
        print("# all rows -t none (O_DIRECT); image size %d GiB; 4K rand = qemu-img's"
              " step walk with -S %d (odd number of 4 KiB blocks, so co-prime with"
              " the %d blocks): same offsets in both tools" % (SIZE >> 30, RAND_STEP, BLOCKS_4K))
        print(f"{'metric':44} | {'-c':>7} | {'Vessel s':>9} | {'QEMU s':>9} | {'ratio':>6}")
        print(f"{'-' * 44}-+-{'-' * 7}-+-{'-' * 9}-+-{'-' * 9}-+-{'-' * 6}")
        worst = None
        for label, fmt, kind in IMAGES:
            for pat, ops in PATTERNS.items():
                for op in ("read", "write"):
                    name = f"{label} {pat} {op}"
                    if a.only and a.only not in name:
                        continue
                    args = ["-t", "none", *(["-w"] if op == "write" else []), *ops[op]]
                    # Rows that finish in a blink (reads of holes, say) say
                    # more about start-up noise than about either tool: one
                    # QEMU calibration run scales the count until a run
                    # takes about MIN_SECONDS (same count for both tools).
                    img = fixed[kind] if kind in fixed else fresh(kind)
                    t = seconds(run([q, "bench", "-f", fmt, *args, img]))
                    if t < MIN_SECONDS:
                        scale = min(50, math.ceil(MIN_SECONDS / max(t, 1e-3)))
                        c = args.index("-c") + 1
                        args[c] = str(int(args[c]) * scale)
                    times = {q: [], a.vessel_img: []}
                    for r in range(a.repeat):
                        order = (q, a.vessel_img) if r % 2 == 0 else (a.vessel_img, q)
                        for tool in order:
                            if kind in fixed:
                                img = fixed[kind]
                            else:
                                img = fresh(kind)
                            times[tool].append(seconds(run([tool, "bench", "-f", fmt, *args, img])))
                    qt = statistics.median(times[q])
                    vt = statistics.median(times[a.vessel_img])
                    ratio = qt / vt if vt > 0 else float("inf")
                    worst = ratio if worst is None else min(worst, ratio)
                    count = args[args.index("-c") + 1]
                    note = "  (<0.3 s)" if min(qt, vt) < 0.3 else ""
                    print(f"{name:44} | {count:>7} | {vt:9.3f} | {qt:9.3f} | {ratio:6.2f}{note}")
                    sys.stdout.flush()
        print("# args per row (-c as in the table: short rows are scaled up): -t none [-w] " + "; ".join(
            f"{pat} {op}: {' '.join(v[op])}" for pat, v in PATTERNS.items() for op in v))
        if worst is not None:
            print(f"# lowest ratio: {worst:.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
