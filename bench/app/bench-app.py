#!/usr/bin/env python3
"""The app's cost beside QEMU's: resident memory beyond the guests' RAM
with one and with N running machines, and the time from Start to the first
guest frame.

  bench-app.py --bench-app PATH --iso ISO [--machines N] [--runs R]

Vessel: the real app (bench-app, under xvfb-run and dbus-run-session)
starts N machines one after the other (128 MiB each, the test ISO in the
CD drive): time from activating Start to the first window frame that shows
a lit guest pixel; VmRSS of the app minus the resident part of the guests'
RAM mappings (/proc/self/smaps).

QEMU: N qemu-system-x86_64 processes (-m 128, the same ISO, std VGA, VNC
display), one per machine as QEMU runs them: time from spawning to the
first QMP screendump of the guest's 720x400 text screen with a lit pixel
(polled every 20 ms; Vessel waits for the same screen); the sum of the
processes' VmRSS minus their 128 MiB RAM mappings' resident pages. QEMU
has no window of its own here: its figure excludes a viewer, Vessel's
includes the GTK window.

Prints medians of --runs runs and ratios (Vessel / QEMU; below 1 is better
for memory and time).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

GUEST_MIB = 128


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def guest_rss_kib(pid):
    """Resident kB of mappings of exactly the guest's RAM size."""
    total, in_guest = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split(" ", 1)[0]
            if "-" in head and not line.startswith(" ") and ":" not in head:
                lo, hi = (int(x, 16) for x in head.split("-"))
                in_guest = hi - lo == GUEST_MIB << 20
            elif in_guest and line.startswith("Rss:"):
                total += int(line.split()[1])
    return total


def run_vessel(bench_app, iso, n):
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24"]
    if shutil.which("dbus-run-session"):
        cmd += ["dbus-run-session", "--"]
    cmd += [bench_app, iso, str(n)]
    env = dict(os.environ, GDK_BACKEND="x11", NO_AT_BRIDGE="1", GTK_A11Y="none")
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        sys.exit(f"bench-app failed:\n{out.stdout}\n{out.stderr}")
    vals, frames = {}, []
    for line in out.stdout.splitlines():
        k, _, v = line.partition(" ")
        if k == "first_frame_ms":
            frames.append(float(v))
        elif k:
            vals[k] = float(v)
    return {
        "rss1": vals["rss_beyond_guests_1_kib"] / 1024,
        "rssn": vals[f"rss_beyond_guests_{n}_kib"] / 1024,
        "frame": statistics.median(frames),
    }


class Qmp:
    def __init__(self, path):
        deadline = time.monotonic() + 30
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            r = json.loads(self.f.readline())
            if "return" in r or "error" in r:
                return r


def ppm_lit(path):
    with open(path, "rb") as f:
        data = f.read()
    # P6 header: magic, width, height, maxval, one whitespace each.
    parts, pos = [], 0
    while len(parts) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        parts.append(data[pos:end])
        pos = end
    body = data[pos + 1:]
    # The guest's own text screen (720x400), not QEMU's placeholder.
    return parts[1:3] == [b"720", b"400"] and any(body)


def run_qemu(iso, n, tmp):
    procs, frames = [], []
    try:
        for i in range(n):
            sock = os.path.join(tmp, f"qmp{i}")
            t0 = time.monotonic()
            p = subprocess.Popen(
                ["qemu-system-x86_64", "-enable-kvm", "-m", str(GUEST_MIB),
                 "-cdrom", iso, "-boot", "d", "-vga", "std", "-display", "none",
                 "-vnc", f"127.0.0.1:{60 + i}", "-qmp", f"unix:{sock},server=on,wait=off",
                 "-serial", "none", "-monitor", "none"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            q = Qmp(sock)
            ppm = os.path.join(tmp, f"shot{i}.ppm")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                r = q.cmd("screendump", filename=ppm)
                if "return" in r and os.path.exists(ppm) and ppm_lit(ppm):
                    break
                time.sleep(0.02)
            frames.append((time.monotonic() - t0) * 1000)
            time.sleep(5)
            if i == 0:
                rss1 = (rss_kib(p.pid) - guest_rss_kib(p.pid)) / 1024
        rssn = sum(rss_kib(p.pid) - guest_rss_kib(p.pid) for p in procs) / 1024
        return {"rss1": rss1, "rssn": rssn, "frame": statistics.median(frames)}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench-app", required=True)
    ap.add_argument("--iso", required=True)
    ap.add_argument("--machines", type=int, default=4)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    have_qemu = shutil.which("qemu-system-x86_64") is not None
    if not have_qemu:
        print("qemu-system-x86_64 not found (sh tools/install-deps.sh --bench): Vessel only")
    rows = {"rss1": [], "rssn": [], "frame": []}
    qrows = {"rss1": [], "rssn": [], "frame": []}
    with tempfile.TemporaryDirectory(prefix="vessel-bench-app-") as tmp:
        for _ in range(a.runs):
            v = run_vessel(a.bench_app, a.iso, a.machines)
            for k in rows:
                rows[k].append(v[k])
            if have_qemu:
                q = run_qemu(a.iso, a.machines, tmp)
                for k in qrows:
                    qrows[k].append(q[k])
    for r in (rows, qrows):
        r["per"] = [(n - o) / max(1, a.machines - 1) for o, n in zip(r["rss1"], r["rssn"])]
    names = {
        "rss1": "RSS beyond guest RAM, 1 machine (MiB)",
        "rssn": f"RSS beyond guest RAM, {a.machines} machines (MiB)",
        "per": "RSS per further machine (MiB)",
        "frame": "Start to first guest frame (ms)",
    }
    print(f"{'metric':<44} {'Vessel':>10} {'QEMU':>10} {'ratio':>7}")
    for k, label in names.items():
        v = statistics.median(rows[k])
        if have_qemu and qrows[k]:
            q = statistics.median(qrows[k])
            print(f"{label:<44} {v:>10.1f} {q:>10.1f} {v / q:>7.2f}")
        else:
            print(f"{label:<44} {v:>10.1f} {'-':>10} {'-':>7}")
    print("(medians of", a.runs, "runs; ratio = Vessel / QEMU, below 1 is better;"
          " QEMU has no viewer window, Vessel's figure includes its GTK window)")


if __name__ == "__main__":
    main()
