#!/usr/bin/env python3
"""The display path under load and at rest, Vessel beside QEMU.

  bench-display.py --vessel-run PATH --guest vbe-animate.elf [--runs N]
                   [--seconds S] [--idle-seconds S] [--mode WxHx32]

The kit guest `vbe-animate` (tests/guest-kit/guests/vbe-animate.c) sets
1920x1080x32 through VBE DISPI and redraws the whole framebuffer with a new
solid colour as fast as its CPU goes (at CPL3, natively: hundreds of frames
a second, far more than any refresh). Each engine runs it with its VNC
server on loopback (Vessel: vessel-run --vnc; QEMU 7.2: -vga std -vnc), and
a small RFB client here keeps exactly one incremental
FramebufferUpdateRequest outstanding, as viewers do, reading every update
(Raw encoding, or ZRLE with --encoding zrle). Measured over --seconds after a
warm-up second:

  - full-screen updates per second: pixels delivered / (width * height)
    per second, as seen by the client;
  - host CPU per frame: the engine process's utime + stime
    (/proc/PID/stat) over the window, divided by the frames delivered;
    and the same without the vCPU threads (Vessel "vcpuN", QEMU
    "CPU N/KVM"), i.e. what the display path costs beside the guest's own
    drawing;
  - idle: the guest draws one frame and halts (frames=1); with the client
    attached (its request always outstanding), the process's CPU over
    --idle-seconds as a percentage of one core.

SPICE: each engine with its SPICE server on loopback (QEMU: -spice) and
spice-frames.py attached, a spice-gtk client that opens every channel and
decodes every update into its primary surface as a viewer does. Under load:
full-screen frames per second (the area the client drew / (width *
height), per second), its draw calls per second, the host CPU (whole
process and without vCPUs, per second and per frame) and the display
channel's bytes; idle: the process's CPU and the frames still drawn (an
idle screen should draw ~0).

Prints one table: metric | Vessel | QEMU | ratio (Vessel / QEMU), medians
of --runs interleaved runs (who goes first alternates).
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
ENC_RAW, ENC_ZRLE, ENC_DESKTOP_SIZE = 0, 16, -223
ENCODINGS = {"raw": ENC_RAW, "zrle": ENC_ZRLE}


def log(msg):
    print(f"bench-display: {msg}", file=sys.stderr, flush=True)


def free_port(lo=5900, hi=6900):
    for _ in range(200):
        port = random.randint(lo, hi)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


# --- CPU accounting ---------------------------------------------------------

def proc_ticks(pid):
    """utime + stime of the whole process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def thread_ticks(pid):
    """{tid: (name, utime + stime)} of every thread."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except FileNotFoundError:
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        out[tid] = (name, int(fields[11]) + int(fields[12]))
    return out


VCPU = re.compile(r"^(vcpu\d+|CPU \d+/KVM)$")


def log_threads(what, th0, th1):
    """Each thread's CPU seconds between two thread_ticks() readings."""
    log(f"{what}: " + ", ".join(
        f"{th1[t][0]}={(th1[t][1] - th0.get(t, ('', 0))[1]) / CLK_TCK:.2f}"
        for t in th1 if th1[t][1] - th0.get(t, ('', 0))[1] > 0))


def vcpu_ticks(threads):
    return sum(t for name, t in threads.values() if VCPU.match(name))


# --- a minimal RFB client -------------------------------------------------------

class Rfb:
    """RFB 3.8, None security, one encoding (+ DesktopSize); reads updates
    without decoding them, counting the pixels they cover."""

    def __init__(self, port, encoding, deadline):
        while True:
            try:
                self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray(1 << 22)
        version = self.recv(12)
        assert version.startswith(b"RFB 003."), version
        self.s.sendall(b"RFB 003.008\n")
        n = self.recv(1)[0]
        types = list(self.recv(n))
        assert 1 in types, f"security types {types}"
        self.s.sendall(b"\x01")
        assert struct.unpack(">I", self.recv(4))[0] == 0, "security failed"
        self.s.sendall(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", self.recv(4))
        self.recv(16)
        self.recv(struct.unpack(">I", self.recv(4))[0])
        # 32 bpp, depth 24, little-endian true colour, RGB at 16/8/0.
        self.s.sendall(struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1,
                                   255, 255, 255, 16, 8, 0))
        self.s.sendall(struct.pack(">BxHii", 2, 2, encoding, ENC_DESKTOP_SIZE))
        self.encoding = encoding

    def recv(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise EOFError("server closed the connection")
            out += chunk
        return bytes(out)

    def skip(self, n):
        view = memoryview(self.buf)
        while n:
            got = self.s.recv_into(view, min(n, len(self.buf)))
            if not got:
                raise EOFError("server closed the connection")
            n -= got

    def request(self, incremental):
        self.s.sendall(struct.pack(">BBHHHH", 3, 1 if incremental else 0, 0, 0,
                                   self.width, self.height))

    def update(self):
        """Reads one server message; returns the pixels a
        FramebufferUpdate covered (0 for other messages)."""
        kind = self.recv(1)[0]
        if kind == 0:
            self.recv(1)
            n = struct.unpack(">H", self.recv(2))[0]
            area = 0
            for _ in range(n):
                x, y, w, h, enc = struct.unpack(">HHHHi", self.recv(12))
                if enc == ENC_DESKTOP_SIZE:
                    self.width, self.height = w, h
                elif enc == ENC_RAW:
                    self.skip(w * h * 4)
                    area += w * h
                elif enc == ENC_ZRLE:
                    self.skip(struct.unpack(">I", self.recv(4))[0])
                    area += w * h
                else:
                    raise RuntimeError(f"unexpected encoding {enc}")
            return area
        if kind == 1:  # SetColourMapEntries
            self.recv(1)
            _, n = struct.unpack(">HH", self.recv(4))
            self.recv(6 * n)
        elif kind == 2:  # Bell
            pass
        elif kind == 3:  # ServerCutText
            self.recv(3)
            self.recv(struct.unpack(">I", self.recv(4))[0])
        else:
            raise RuntimeError(f"unexpected server message {kind}")
        return 0

    def close(self):
        self.s.close()


# --- engines --------------------------------------------------------------------

class Engine:
    """One engine running vbe-animate with a VNC or SPICE server."""

    def __init__(self, kind, a, tmp, append, server):
        self.kind = kind
        self.serial = os.path.join(tmp, f"{kind}-serial.txt")
        if os.path.exists(self.serial):
            os.unlink(self.serial)
        self.port = free_port()
        if kind == "vessel":
            cmd = [a.vessel_run, "--kernel", a.guest, "--memory", "128M",
                   "--append", append, "--serial", "file:" + self.serial,
                   f"--{server}", f"127.0.0.1:{self.port}"]
        else:
            cmd = [a.qemu, "-enable-kvm", "-m", "128", "-kernel", a.guest,
                   "-append", append, "-nodefaults", "-vga", "std",
                   "-serial", "file:" + self.serial, "-monitor", "none",
                   "-no-reboot", "-name", "bench,debug-threads=on"]
            if server == "vnc":
                cmd += ["-vnc", f"127.0.0.1:{self.port - 5900}"]
            else:
                cmd += ["-spice", f"port={self.port},addr=127.0.0.1,disable-ticketing=on"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(tmp, f"{kind}-stderr.txt"), "wb"))
        self.deadline = time.monotonic() + 120

    def wait_serial(self, text):
        while True:
            try:
                with open(self.serial, "rb") as f:
                    if text in f.read():
                        return
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} ended early ({self.proc.returncode})")
            if time.monotonic() > self.deadline:
                raise RuntimeError(f"{self.kind}: never saw {text!r}")
            time.sleep(0.02)

    def guest_frames(self):
        """The last frame count the guest printed."""
        try:
            with open(self.serial, "rb") as f:
                found = re.findall(rb"KIT: animate frames=(\d+)", f.read())
        except FileNotFoundError:
            return 0
        return int(found[-1]) if found else 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def vnc_busy(kind, a, tmp):
    """Frames per second, CPU ticks per frame (all, and without vCPUs)."""
    e = Engine(kind, a, tmp, f"mode={a.mode}", "vnc")
    try:
        e.wait_serial(b"KIT: animate frames=")
        c = Rfb(e.port, ENCODINGS[a.encoding], e.deadline)
        c.request(False)
        w, h = (int(v) for v in a.mode.split("x")[:2])
        # Warm up: the desktop at the guest's size and a second of updates.
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end or (c.width, c.height) != (w, h):
            if c.update():
                c.request(True)
            if time.monotonic() > e.deadline:
                raise RuntimeError(f"{kind}: desktop {c.width}x{c.height}, not {w}x{h}")
        t0, th0 = time.monotonic(), thread_ticks(e.proc.pid)
        p0, g0 = proc_ticks(e.proc.pid), e.guest_frames()
        area = 0
        t_end = t0 + a.seconds
        while time.monotonic() < t_end:
            got = c.update()
            if got:
                area += got
                c.request(True)
        t1, th1 = time.monotonic(), thread_ticks(e.proc.pid)
        p1, g1 = proc_ticks(e.proc.pid), e.guest_frames()
        c.close()
        log_threads(f"{kind} threads (CPU s in the window)", th0, th1)
        frames = area / (w * h)
        cpu = (p1 - p0) / CLK_TCK
        vcpu = (vcpu_ticks(th1) - vcpu_ticks(th0)) / CLK_TCK
        fps = frames / (t1 - t0)
        return {"fps": fps, "guest_fps": (g1 - g0) / (t1 - t0),
                "ms_per_frame": 1000 * cpu / frames if frames else float("inf"),
                "ms_per_frame_display": 1000 * (cpu - vcpu) / frames if frames else float("inf"),
                "cpu_pct": 100 * cpu / (t1 - t0),
                "display_cpu_pct": 100 * (cpu - vcpu) / (t1 - t0)}
    finally:
        e.stop()


def vnc_idle(kind, a, tmp):
    """CPU % of one core with a VNC client attached to a still screen."""
    e = Engine(kind, a, tmp, f"mode={a.mode} frames=1", "vnc")
    try:
        e.wait_serial(b"KIT: animate done")
        c = Rfb(e.port, ENCODINGS[a.encoding], e.deadline)
        c.request(False)
        w, h = (int(v) for v in a.mode.split("x")[:2])
        # Until the first full frame at the guest's size has arrived.
        while True:
            got = c.update()
            if got and (c.width, c.height) == (w, h):
                break
            if got:
                c.request(False)
            if time.monotonic() > e.deadline:
                raise RuntimeError(f"{kind}: no {w}x{h} frame")
        c.request(True)
        c.s.settimeout(0.2)
        # Let the first frame's aftermath settle, then measure; any update
        # that still comes is read and answered, as a viewer would.
        t0 = time.monotonic()
        p0 = None
        late = 0
        while True:
            now = time.monotonic()
            if p0 is None and now - t0 >= 1.0:
                p0, m0, th0 = proc_ticks(e.proc.pid), now, thread_ticks(e.proc.pid)
            if p0 is not None and now - m0 >= a.idle_seconds:
                break
            try:
                if c.update():
                    late += 1
                    c.request(True)
            except socket.timeout:
                pass
        cpu = (proc_ticks(e.proc.pid) - p0) / CLK_TCK
        th1 = thread_ticks(e.proc.pid)
        log_threads(f"{kind} idle threads (CPU s)", th0, th1)
        c.close()
        return {"idle_pct": 100 * cpu / (time.monotonic() - m0), "idle_updates": late}
    finally:
        e.stop()


class SpiceFrames:
    """spice-frames.py (a spice-gtk client that decodes every update and
    counts the area drawn) attached to an engine; snapshot() returns its
    running totals."""

    def __init__(self, python, port):
        self.proc = subprocess.Popen(
            [python, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                  "spice-frames.py"), "--port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True)

    def snapshot(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"spice-frames ended ({self.proc.wait()})")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def spice_run(kind, a, tmp, idle):
    """With spice-frames attached: full-screen frames per second (area drawn
    by the client / screen size), draw calls per second, CPU, and the
    display channel's bytes."""
    append = f"mode={a.mode} frames=1" if idle else f"mode={a.mode}"
    e = Engine(kind, a, tmp, append, "spice")
    w, h = (int(v) for v in a.mode.split("x")[:2])
    c = None
    try:
        e.wait_serial(b"KIT: animate done" if idle else b"KIT: animate frames=")
        c = SpiceFrames(a.spice_python, e.port)
        # Connected with the primary at the guest's size and something
        # drawn; then a warm-up second (idle: the first frame's aftermath).
        while True:
            s0 = c.snapshot()
            if (s0["width"], s0["height"]) == (w, h) and s0["area"]:
                break
            if time.monotonic() > e.deadline:
                raise RuntimeError(f"{kind}: SPICE primary {s0['width']}x{s0['height']}, "
                                   f"not {w}x{h}")
            time.sleep(0.05)
        time.sleep(1.0)
        secs = a.idle_seconds if idle else a.seconds
        s0 = c.snapshot()
        p0, t0, th0 = proc_ticks(e.proc.pid), time.monotonic(), thread_ticks(e.proc.pid)
        time.sleep(secs)
        p1, t1, th1 = proc_ticks(e.proc.pid), time.monotonic(), thread_ticks(e.proc.pid)
        s1 = c.snapshot()
        log_threads(f"{kind} SPICE {'idle' if idle else 'busy'} threads (CPU s)", th0, th1)
        cpu = (p1 - p0) / CLK_TCK
        vcpu = (vcpu_ticks(th1) - vcpu_ticks(th0)) / CLK_TCK
        frames = (s1["area"] - s0["area"]) / (w * h)
        span = s1["t"] - s0["t"]
        return {"fps": frames / span,
                "draws_s": (s1["invalidates"] - s0["invalidates"]) / span,
                "pct": 100 * cpu / (t1 - t0), "display_pct": 100 * (cpu - vcpu) / (t1 - t0),
                "ms_per_frame": 1000 * cpu / frames if frames else float("inf"),
                "ms_per_frame_display": 1000 * (cpu - vcpu) / frames if frames else float("inf"),
                "kib_s": (s1["bytes"] - s0["bytes"]) / 1024 / span}
    finally:
        if c:
            c.close()
        e.stop()


def spice_python():
    """An interpreter with spice-gtk's introspection: the one running this,
    or the system's (python3-gi is a Debian package, not in a pyenv)."""
    probe = ("import gi; gi.require_version('SpiceClientGLib', '2.0'); "
             "from gi.repository import SpiceClientGLib")
    for python in (sys.executable, "/usr/bin/python3"):
        if python and subprocess.run([python, "-c", probe], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL).returncode == 0:
            return python
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vessel-run", required=True)
    ap.add_argument("--guest", required=True, help="vbe-animate.elf")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--mode", default="1920x1080x32")
    ap.add_argument("--encoding", choices=sorted(ENCODINGS), default="raw")
    ap.add_argument("--no-spice", action="store_true")
    ap.add_argument("--no-vnc", action="store_true")
    ap.add_argument("--engines", default="vessel,qemu",
                    help="comma-separated: vessel, qemu (both for the table)")
    a = ap.parse_args()
    root = os.environ.get("MESON_BUILD_ROOT")
    if root:
        if not os.path.isabs(a.guest):
            a.guest = os.path.join(root, a.guest)
        if not os.path.isabs(a.vessel_run) and os.sep in a.vessel_run:
            a.vessel_run = os.path.join(root, a.vessel_run)
    a.qemu = shutil.which("qemu-system-x86_64")
    if not a.qemu:
        print("bench-display: qemu-system-x86_64 is missing; run "
              "`sh tools/install-deps.sh --bench`", file=sys.stderr)
        return 1
    a.spice_python = None if a.no_spice else spice_python()
    spice = a.spice_python is not None
    if not a.no_spice and not spice:
        log("spice-gtk's introspection is missing (gir1.2-spiceclientglib-2.0, "
            "python3-gi): SPICE rows skipped")

    res = {"vessel": [], "qemu": []}
    with tempfile.TemporaryDirectory(prefix="vessel-bench-display-") as tmp:
        for i in range(a.runs):
            order = ["vessel", "qemu"] if i % 2 == 0 else ["qemu", "vessel"]
            for kind in [k for k in order if k in a.engines.split(",")]:
                r = {}
                if not a.no_vnc:
                    r.update(vnc_busy(kind, a, tmp))
                    r.update(vnc_idle(kind, a, tmp))
                if spice:
                    s = spice_run(kind, a, tmp, idle=False)
                    r.update({"spice_" + k: v for k, v in s.items()})
                    s = spice_run(kind, a, tmp, idle=True)
                    r["spice_idle_pct"] = s["pct"]
                    r["spice_idle_fps"] = s["fps"]
                res[kind].append(r)
                log(f"run {i + 1}/{a.runs} {kind}: " +
                    " ".join(f"{k}={v:.2f}" for k, v in r.items()))

    if not res["vessel"] or not res["qemu"]:
        return 0
    med = statistics.median
    rows = [] if a.no_vnc else [
        ("VNC full-screen updates/s", "fps", "more is better"),
        ("guest frames drawn/s (VNC run)", "guest_fps", "more is better"),
        ("VNC host CPU ms/frame (process)", "ms_per_frame", ""),
        ("VNC host CPU ms/frame (without vCPUs)", "ms_per_frame_display", ""),
        ("VNC process CPU % of a core, busy", "cpu_pct", ""),
        ("VNC CPU % without vCPUs, busy", "display_cpu_pct", ""),
        ("VNC idle, client attached, CPU %", "idle_pct", "target < 1"),
    ]
    if spice:
        rows += [
            ("SPICE full-screen frames/s", "spice_fps", "more is better"),
            ("SPICE draw calls/s at the client", "spice_draws_s", ""),
            ("SPICE host CPU ms/frame (process)", "spice_ms_per_frame", ""),
            ("SPICE host CPU ms/frame (without vCPUs)", "spice_ms_per_frame_display", ""),
            ("SPICE process CPU % of a core, busy", "spice_pct", ""),
            ("SPICE CPU % without vCPUs, busy", "spice_display_pct", ""),
            ("SPICE display channel KiB/s, busy", "spice_kib_s", ""),
            ("SPICE idle, client attached, CPU %", "spice_idle_pct", "target < 1"),
            ("SPICE idle, frames/s", "spice_idle_fps", "expect ~0"),
        ]
    print(f"Display benchmark: kit guest vbe-animate at {a.mode}, redrawing the whole "
          f"screen continuously; medians of {a.runs} interleaved runs, "
          f"{a.seconds:g} s windows ({a.idle_seconds:g} s idle).")
    print(f"VNC client: RFB 3.8, {a.encoding} encoding, one incremental request "
          "outstanding; frames = pixels delivered / screen size.")
    print("CPU: the engine process's utime+stime (/proc/PID/stat); 'without vCPUs' "
          "leaves out the vCPU threads (the guest's own drawing).")
    print("ratio = Vessel / QEMU.")
    w = max(len(r[0]) for r in rows)
    print(f"{'metric':<{w}} | {'Vessel':>9} | {'QEMU':>9} | {'ratio':>6} | note")
    print("-" * (w + 48))
    for name, key, note in rows:
        v = med(r[key] for r in res["vessel"])
        q = med(r[key] for r in res["qemu"])
        ratio = f"{v / q:6.2f}" if q else "     -"
        print(f"{name:<{w}} | {v:9.2f} | {q:9.2f} | {ratio} | {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
