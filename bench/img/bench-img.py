#!/usr/bin/env python3
"""vessel-img bench side by side with qemu-img bench.

Usage:
  python3 bench/img/bench-img.py --vessel-img BUILD/app/vessel-img [--quick]
      [--dir DIR] [--repeat N]

Each scenario runs `qemu-img bench ARGS IMAGE` and `vessel-img bench ARGS
IMAGE` with identical arguments on identical images (fresh copies for the
allocating-write cases), keeps the best of N runs of each, and prints the
times and the ratio qemu/vessel (above 1.0: Vessel is faster).  Scenarios
without -t use the host page cache (qemu-img bench's default); the "-t none"
ones use O_DIRECT in both tools.  Neither tool's final flush is timed.  Exit
status 0 unless a tool fails; the numbers are information, not assertions.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SCENARIOS = [
    # name, image kind, bench args
    ("raw read 4K qd32", "raw-full", ["-c", "200000", "-d", "32", "-s", "4K"]),
    ("qcow2 read 4K qd32", "qcow2-full", ["-c", "200000", "-d", "32", "-s", "4K"]),
    ("qcow2 read 4K qd1", "qcow2-full", ["-c", "100000", "-d", "1", "-s", "4K"]),
    ("qcow2 read 64K qd8 step 1M", "qcow2-full", ["-c", "20000", "-d", "8", "-s", "64K", "-S", "1M"]),
    ("qcow2 overwrite 4K qd32", "qcow2-full", ["-w", "-c", "100000", "-d", "32", "-s", "4K"]),
    ("qcow2 allocating write 64K qd8", "qcow2-empty", ["-w", "-c", "4096", "-d", "8", "-s", "64K"]),
    ("qcow2 allocating write 4K step 64K", "qcow2-empty", ["-w", "-c", "4096", "-d", "16", "-s", "4K", "-S", "64K"]),
    # O_DIRECT: the host page cache out of the picture
    ("raw read 4K qd32 -t none", "raw-full", ["-t", "none", "-c", "50000", "-d", "32", "-s", "4K"]),
    ("qcow2 read 4K qd32 -t none", "qcow2-full", ["-t", "none", "-c", "50000", "-d", "32", "-s", "4K"]),
    ("qcow2 read 64K qd8 -t none", "qcow2-full", ["-t", "none", "-c", "4096", "-d", "8", "-s", "64K"]),
    ("qcow2 overwrite 4K qd32 -t none", "qcow2-full", ["-t", "none", "-w", "-c", "20000", "-d", "32", "-s", "4K"]),
    ("qcow2 allocating write 64K qd8 -t none", "qcow2-empty", ["-t", "none", "-w", "-c", "4096", "-d", "8", "-s", "64K"]),
]

SIZE = "256M"


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
    ap.add_argument("--dir", default=None)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="a tenth of the requests")
    a = ap.parse_args()
    if not a.qemu_img:
        print("bench-img: qemu-img not found; nothing to compare with")
        return 77
    tmp = tempfile.mkdtemp(prefix="vessel-bench-", dir=a.dir)
    try:
        images = {}
        raw = os.path.join(tmp, "full.raw")
        run([a.qemu_img, "create", "-q", "-f", "raw", raw, SIZE])
        run([a.qemu_img, "bench", "-q", "-w", "-f", "raw", "-c", "4096", "-s", "64K", "-d", "8", "--pattern=7", raw])
        images["raw-full"] = ("raw", raw)
        full = os.path.join(tmp, "full.qcow2")
        run([a.qemu_img, "convert", "-f", "raw", "-O", "qcow2", raw, full])
        images["qcow2-full"] = ("qcow2", full)
        empty = os.path.join(tmp, "empty.qcow2")
        run([a.qemu_img, "create", "-q", "-f", "qcow2", empty, SIZE])
        images["qcow2-empty"] = ("qcow2", empty)
        print(f"{'scenario':40} {'qemu-img s':>11} {'vessel-img s':>13} {'qemu/vessel':>12}")
        for name, kind, args in SCENARIOS:
            fmt, img = images[kind]
            if a.quick:
                i = args.index("-c")
                args = args[:i + 1] + [str(max(1, int(args[i + 1]) // 10))] + args[i + 2:]
            best = {}
            for tool in (a.qemu_img, a.vessel_img):
                times = []
                for _ in range(a.repeat):
                    target = img
                    if kind == "qcow2-empty":
                        target = os.path.join(tmp, "work.qcow2")
                        shutil.copy(img, target)
                    times.append(seconds(run([tool, "bench", "-f", fmt, *args, target])))
                best[tool] = min(times)
            q, v = best[a.qemu_img], best[a.vessel_img]
            ratio = q / v if v > 0 else float("inf")
            print(f"{name:40} {q:11.3f} {v:13.3f} {ratio:12.2f}")
            sys.stdout.flush()
        print(f"# bench args: see SCENARIOS in {os.path.abspath(__file__)}; image size {SIZE}; best of {a.repeat}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
