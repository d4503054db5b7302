#!/usr/bin/env python3
"""Keyboard and pointer from real clients into kit guests.

  test_input_clients.py keys VESSEL-RUN PS2-ECHO-ELF
  test_input_clients.py pointer VESSEL-RUN TABLET-ELF
  test_input_clients.py spice-pointer VESSEL-RUN TABLET-ELF

keys: the guest ps2-echo prints every byte of the i8042 keyboard (set 1,
translation on). gvncviewer (gtk-vnc) runs on a private Xvfb and xdotool
types into its window: "a" must give make 1e and break 9e, Return 1c 9c,
Up e0 48 e0 c8. Then QMP send-key over the control socket: ctrl-alt-delete
(pressed in order, released in reverse), a key by number, and an unknown
qcode (a GenericError naming it).

pointer: the guest tablet sets 800x600 and prints every virtio-input batch
as "abs X Y buttons B". A click at (x, y) must land at
x * 32767 / 799, y * 32767 / 599 (±1): first through test_vnc.py's
minimal RFB client (PointerEvents at exact pixels, and a wheel step), then
through gvncviewer with xdotool moving and clicking the X pointer over the
framebuffer (the widget sits below gvncviewer's menu bar; its offset is the
window's height less the framebuffer's).

spice-pointer: the same guest with --spice; remote-viewer (virt-viewer) on
a private Xvfb shows the 800x600 display unscaled, xdotool moves and clicks
the X pointer over it, and SPICE's client mouse mode sends the position
absolute. The display's offset inside the window is learnt from one
motion; each click after it at display pixel (x, y) must land at the
scaled position as above (±1), corners included.

Skips (77) only when /dev/kvm is unusable. Waits on serial lines, never on
fixed sleeps.
"""
import importlib.util
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("test_vnc", os.path.join(HERE, "test_vnc.py"))
tv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tv)

ABS_MAX = 32767
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Guest:
    def __init__(self, vessel_run, elf, tmp, append=None, spice=False):
        self.serial = os.path.join(tmp, "serial.txt")
        sock = os.path.join(tmp, "qmp.sock")
        self.port = tv.free_port()
        args = [vessel_run, "--kernel", elf, "--memory", "128M",
                "--serial", "file:" + self.serial, "--control", sock,
                "--vnc", f"127.0.0.1:{self.port}"]
        if spice:
            self.spice_port = tv.free_port()
            args += ["--spice", f"127.0.0.1:{self.spice_port}"]
        if append:
            args += ["--append", append]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL)
        self.deadline = time.monotonic() + 150
        self.qmp = tv.Qmp(sock, self.deadline)
        self.seen = 0  # serial bytes already matched

    def text(self):
        try:
            with open(self.serial, "rb") as f:
                return f.read().decode(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait(self, pattern, what=None, each=None):
        """Waits for @pattern in serial output after what was matched
        before; returns the match."""
        rx = re.compile(pattern)
        while True:
            text = self.text()
            assert "KIT: FAIL" not in text, text
            m = rx.search(text, self.seen)
            if m:
                self.seen = m.end()
                return m
            assert self.proc.poll() is None, "vessel-run ended early"
            assert time.monotonic() < self.deadline, \
                f"never saw {what or pattern!r}; serial:\n{text[-2000:]}"
            if each:
                each()
            time.sleep(0.02)

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.qmp.cmd("quit")
                self.proc.wait(timeout=30)
            except Exception:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Viewer:
    """gvncviewer on a private Xvfb, driven by xdotool."""

    def __init__(self, port, tmp):
        r, w = os.pipe()
        self.xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(w), "-screen", "0", "1600x1200x24",
             "-nolisten", "tcp"], pass_fds=(w,), stdin=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            display = f.readline().strip()
        assert display, "Xvfb did not start"
        self.env = dict(os.environ, DISPLAY=":" + display)
        self.env.pop("WAYLAND_DISPLAY", None)
        self.viewer = subprocess.Popen(
            ["gvncviewer", f"127.0.0.1:{port - 5900}"], env=self.env,
            stdin=subprocess.DEVNULL, stdout=open(os.path.join(tmp, "gvncviewer.log"), "w"),
            stderr=subprocess.STDOUT)
        self.wid = None

    def xdotool(self, *args):
        r = subprocess.run(["xdotool", *args], env=self.env, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, f"xdotool {args}: {r.stderr}"
        return r.stdout

    def window(self, deadline):
        """The viewer's window once it shows the desktop (named after it)."""
        while self.wid is None:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name",
                                "Vessel - GVncViewer"], env=self.env,
                               capture_output=True, text=True, timeout=30)
            if r.returncode == 0 and r.stdout.strip():
                self.wid = r.stdout.split()[0]
                break
            assert self.viewer.poll() is None, "gvncviewer ended"
            assert time.monotonic() < deadline, "no gvncviewer window"
            time.sleep(0.1)
        return self.wid

    def geometry(self):
        out = self.xdotool("getwindowgeometry", "--shell", self.wid)
        g = dict(line.split("=", 1) for line in out.split())
        return int(g["WIDTH"]), int(g["HEIGHT"])

    def close(self):
        for p in (self.viewer, self.xvfb):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def scancodes(g, codes, what):
    for c in codes:
        g.wait(rf"scancode {c:02x}\n", f"{what}: scancode {c:02x}")
    log(f"{what}: " + " ".join(f"{c:02x}" for c in codes))


def run_keys(vessel_run, elf, tmp):
    g = Guest(vessel_run, elf, tmp)
    viewer = None
    try:
        g.wait(r"KIT: ps2-echo ready\n")
        viewer = Viewer(g.port, tmp)
        wid = viewer.window(g.deadline)
        viewer.xdotool("windowfocus", "--sync", wid)
        viewer.xdotool("mousemove", "--window", wid, "20", "60")
        viewer.xdotool("key", "--delay", "50", "a")
        scancodes(g, [0x1e, 0x9e], "gvncviewer a")
        viewer.xdotool("key", "--delay", "50", "Return", "Up")
        scancodes(g, [0x1c, 0x9c, 0xe0, 0x48, 0xe0, 0xc8], "gvncviewer Return Up")
        viewer.close()
        viewer = None

        cmds = g.qmp.cmd("query-commands")["return"]
        assert any(c["name"] == "send-key" for c in cmds), cmds
        r = g.qmp.cmd("send-key", keys=[{"type": "qcode", "data": k}
                                        for k in ("ctrl", "alt", "delete")])
        assert r == {"return": {}}, r
        scancodes(g, [0x1d, 0x38, 0xe0, 0x53, 0xe0, 0xd3, 0xb8, 0x9d],
                  "send-key ctrl-alt-delete")
        r = g.qmp.cmd("send-key", keys=[{"type": "number", "data": 0x1e}],
                      **{"hold-time": 10})
        assert r == {"return": {}}, r
        scancodes(g, [0x1e, 0x9e], "send-key number 0x1e")
        r = g.qmp.cmd("send-key", keys=[{"type": "number", "data": 0xe048}])
        assert r == {"return": {}}, r
        scancodes(g, [0xe0, 0x48, 0xe0, 0xc8], "send-key number 0xe048")
        r = g.qmp.cmd("send-key", keys=[{"type": "qcode", "data": "shift"},
                                        {"type": "qcode", "data": "nosuchkey"}])
        assert r["error"]["class"] == "GenericError", r
        assert "nosuchkey" in r["error"]["desc"], r
        log(f"unknown qcode: {r['error']['desc']}")
        # Nothing of the refused command reached the guest.
        r = g.qmp.cmd("send-key", keys=[{"type": "qcode", "data": "esc"}])
        scancodes(g, [0x01, 0x81], "send-key esc")
        assert "scancode 2a" not in g.text(), "a refused send-key pressed shift"
        assert g.proc.poll() is None
    finally:
        if viewer:
            viewer.close()
        g.stop()


def scaled(v, size):
    return v * ABS_MAX / (size - 1)


def expect_click(g, x, y, w, h, buttons, what):
    m = g.wait(rf"abs (\d+) (\d+) buttons {buttons}(?: wheel -?\d+)?\n",
               f"{what}: buttons {buttons}")
    gx, gy = int(m.group(1)), int(m.group(2))
    wx, wy = scaled(x, w), scaled(y, h)
    log(f"{what}: ({x}, {y}) → guest ({gx}, {gy}), expected ({wx:.1f}, {wy:.1f})")
    assert abs(gx - wx) <= 1 and abs(gy - wy) <= 1, \
        f"{what}: ({x}, {y}) landed at ({gx}, {gy}), expected ({wx:.1f}, {wy:.1f})"


def pointer(c, mask, x, y):
    c.s.sendall(struct.pack(">BBHH", 5, mask, x, y))


def run_pointer(vessel_run, elf, tmp):
    w, h = 800, 600
    g = Guest(vessel_run, elf, tmp, append=f"mode={w}x{h}x32")
    viewer = None
    try:
        g.wait(r"KIT: tablet ready name=\"Vessel Tablet\" max=32767 screen=800x600")
        # The VNC desktop follows the guest's mode at the next refresh.
        while True:
            c = tv.Rfb(g.port).init()
            if (c.width, c.height) == (w, h):
                break
            c.close()
            assert time.monotonic() < g.deadline, "the VNC desktop never became 800x600"
        for x, y in ((0, 0), (w - 1, h - 1), (400, 300), (123, 456), (799, 1)):
            pointer(c, 1, x, y)
            expect_click(g, x, y, w, h, 1, "RFB press")
            pointer(c, 0, x, y)
            expect_click(g, x, y, w, h, 0, "RFB release")
        # Right button, then a wheel step up (RFB button 4).
        pointer(c, 4, 200, 100)
        expect_click(g, 200, 100, w, h, 2, "RFB right")
        pointer(c, 0, 200, 100)
        expect_click(g, 200, 100, w, h, 0, "RFB right release")
        pointer(c, 8, 200, 100)
        g.wait(r"wheel 1\n", "RFB wheel up")
        pointer(c, 0, 200, 100)
        c.close()
        log("RFB pointer events land where they were sent")

        viewer = Viewer(g.port, tmp)
        wid = viewer.window(g.deadline)
        # gvncviewer may come up before the desktop has its final size:
        # wait until its window holds the 800x600 framebuffer.
        while True:
            ww, wh = viewer.geometry()
            if ww >= w and wh >= h:
                break
            assert time.monotonic() < g.deadline, f"window {ww}x{wh}"
            time.sleep(0.1)
        off_x, off_y = ww - w, wh - h
        log(f"gvncviewer window {ww}x{wh}: framebuffer at +{off_x}+{off_y}")
        viewer.xdotool("windowfocus", "--sync", wid)
        for x, y in ((400, 300), (10, 590), (790, 20)):
            viewer.xdotool("mousemove", "--window", wid, str(x + off_x), str(y + off_y))
            viewer.xdotool("click", "1")
            expect_click(g, x, y, w, h, 1, "gvncviewer press")
            expect_click(g, x, y, w, h, 0, "gvncviewer release")
        assert g.proc.poll() is None
    finally:
        if viewer:
            viewer.close()
        g.stop()


def start_xvfb(size, tmp):
    """An Xvfb server of @size ("WxH") on a free display."""
    r, w = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(w), "-screen", "0", f"{size}x24", "-nolisten", "tcp"],
        pass_fds=(w,), stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    with os.fdopen(r) as f:
        display = f.readline().strip()
    assert display, "Xvfb did not start"
    env = dict(os.environ, DISPLAY=":" + display)
    env.pop("WAYLAND_DISPLAY", None)
    return xvfb, env


def run_spice_pointer(vessel_run, elf, tmp):
    """remote-viewer on an Xvfb screen larger than the guest's, so it shows
    the 800x600 display unscaled; xdotool moves and clicks the X pointer
    over it. SPICE's client mouse mode (the tablet is there) sends absolute
    positions. Where the display sits inside the window (below menus and
    a toolbar, inside GTK's window margins) is learnt from one motion:
    every click after it must land at the pixel it was made on."""
    w, h = 800, 600
    g = Guest(vessel_run, elf, tmp, append=f"mode={w}x{h}x32", spice=True)
    xvfb = viewer = None
    try:
        g.wait(r"KIT: tablet ready name=\"Vessel Tablet\" max=32767 screen=800x600")
        xvfb, env = start_xvfb("1280x1024", tmp)
        viewer = subprocess.Popen(
            ["remote-viewer", f"spice://127.0.0.1:{g.spice_port}"], env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(tmp, "remote-viewer.log"), "wb"))

        def xdotool(*args):
            r = subprocess.run(["xdotool", *args], env=env, capture_output=True,
                               text=True, timeout=30)
            assert r.returncode == 0, f"xdotool {args}: {r.stderr}"
            return r.stdout

        # The inputs channel up and the client's mouse mode in force.
        while True:
            info = g.qmp.cmd("query-spice")["return"]
            if info["mouse-mode"] == "client" and any(
                    c["channel-type"] == 3 for c in info["channels"]):
                break
            assert viewer.poll() is None, "remote-viewer ended"
            assert time.monotonic() < g.deadline, f"SPICE client not ready: {info}"
            time.sleep(0.05)
        # The window named after the guest ("Vessel ..."), once it holds the
        # whole 800x600 display.
        while True:
            r = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^Vessel"],
                               env=env, capture_output=True, text=True)
            wid = r.stdout.split()[0] if r.returncode == 0 and r.stdout.split() else None
            if wid:
                geo = dict(line.split("=", 1) for line in
                           xdotool("getwindowgeometry", "--shell", wid).split())
                ww, wh = int(geo["WIDTH"]), int(geo["HEIGHT"])
                if ww >= w and wh >= h:
                    break
            assert viewer.poll() is None, "remote-viewer ended"
            assert time.monotonic() < g.deadline, "no remote-viewer window"
            time.sleep(0.1)
        xdotool("windowfocus", "--sync", wid)
        # One motion to the middle of the display's likely place: where it
        # lands gives the display's offset in the window.
        px, py = ww // 2, wh - h // 2
        xdotool("mousemove", "--window", wid, str(px), str(py))
        m = g.wait(r"abs (\d+) (\d+) buttons 0\n", "remote-viewer motion")
        gx = round(int(m.group(1)) * (w - 1) / ABS_MAX)
        gy = round(int(m.group(2)) * (h - 1) / ABS_MAX)
        off_x, off_y = px - gx, py - gy
        log(f"remote-viewer window {ww}x{wh}: motion to +{px}+{py} landed at guest "
            f"({gx}, {gy}); the display is at +{off_x}+{off_y}")
        assert 0 <= off_x <= ww - w and 0 <= off_y <= wh - h, \
            f"display at +{off_x}+{off_y} does not fit a {ww}x{wh} window"
        for x, y in ((400, 300), (10, 590), (790, 20), (123, 456), (0, 0), (w - 1, h - 1)):
            xdotool("mousemove", "--window", wid, str(x + off_x), str(y + off_y))
            xdotool("click", "1")
            expect_click(g, x, y, w, h, 1, "remote-viewer press")
            expect_click(g, x, y, w, h, 0, "remote-viewer release")
        assert g.proc.poll() is None
    finally:
        for p in (viewer, xvfb):
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        g.stop()


def main():
    mode, vessel_run, elf = sys.argv[1:4]
    if not tv.kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    for tool in ("gvncviewer", "remote-viewer", "xdotool", "Xvfb"):
        assert shutil.which(tool), f"{tool} is missing: tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-input-") as tmp:
        if mode == "keys":
            run_keys(vessel_run, elf, tmp)
        elif mode == "pointer":
            run_pointer(vessel_run, elf, tmp)
        elif mode == "spice-pointer":
            run_spice_pointer(vessel_run, elf, tmp)
        else:
            raise SystemExit(f"unknown mode {mode}")
    print(f"input {mode}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
