#!/usr/bin/env python3
"""The guest's screen and keyboard over VNC (vessel-run --vnc), with real
clients.

  test_vnc.py VESSEL-RUN BIOS VNC-PASSWD

1. SeaBIOS: once it gives up booting, gvnccapture's pixels and OCR, and
   vncsnapshot's OCR, show the SeaBIOS banner. query-vnc reports the server
   and its clients (a minimal RFB 3.8 client with None security).
   Hostile clients (a bogus protocol version, garbage after the handshake,
   a hang-up mid-handshake) are disconnected, and real clients are served
   afterwards.
2. With password-file=F: only VNC authentication is offered; vncsnapshot
   with the right password captures the banner, with a wrong one it fails.

Keys typed over VNC are tested by test_vnc_keys.py (ESC opens SeaBIOS's
boot menu).
"""
import json
import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_screen import Qmp, kvm_usable  # noqa: E402

XK_ESCAPE = 0xff1b


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


T0 = time.monotonic()


def free_port():
    """A free TCP port from 5900 up (gvnccapture names ports as displays)."""
    for _ in range(200):
        port = random.randint(15900, 45900)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


def recvn(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def closed_by_server(s, timeout=10):
    """True when the server closes the connection (reads to EOF)."""
    s.settimeout(timeout)
    try:
        while s.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Rfb:
    """Just enough RFB 3.8: None security, ClientInit, KeyEvent."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        version = recvn(self.s, 12)
        assert version.startswith(b"RFB 003."), version
        self.s.sendall(b"RFB 003.008\n")
        n = recvn(self.s, 1)[0]
        self.types = list(recvn(self.s, n))

    def init(self):
        assert 1 in self.types, f"security types {self.types}"
        self.s.sendall(b"\x01")
        assert struct.unpack(">I", recvn(self.s, 4))[0] == 0, "security failed"
        self.s.sendall(b"\x01")  # shared
        self.width, self.height = struct.unpack(">HH", recvn(self.s, 4))
        recvn(self.s, 16)  # pixel format
        name_len = struct.unpack(">I", recvn(self.s, 4))[0]
        self.name = recvn(self.s, name_len)
        return self

    def key(self, keysym, down):
        self.s.sendall(struct.pack(">BBxxI", 4, 1 if down else 0, keysym))

    def tap(self, keysym):
        self.key(keysym, True)
        self.key(keysym, False)

    def close(self):
        self.s.close()


def read_png_rgb(path):
    """8-bit RGB or RGBA PNG → width, height, rows of RGB bytes."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rgb = bytes(line) if bpp == 3 else bytes(
            v for i in range(0, stride, 4) for v in line[i:i + 3])
        rows.append(rgb)
    return width, height, rows


def ocr(path):
    if not shutil.which("tesseract"):
        return None
    return subprocess.run(["tesseract", path, "-", "--psm", "6"],
                          capture_output=True, text=True).stdout


def gvnccapture(port, out_png, tmp):
    """Captures with gvnccapture; returns the RGB rows and the OCR text
    (of a PPM copy: gtk-vnc leaves alpha 0 in some tiles)."""
    r = subprocess.run(["gvnccapture", "-q", f"127.0.0.1:{port - 5900}", out_png],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"gvnccapture failed: {r.stderr}"
    width, height, rows = read_png_rgb(out_png)
    ppm = os.path.join(tmp, "capture.ppm")
    with open(ppm, "wb") as f:
        f.write(b"P6 %d %d 255\n" % (width, height) + b"".join(rows))
    return width, height, rows, ocr(ppm)


def vncsnapshot(port, out_jpg, passwd=None):
    args = ["vncsnapshot", "-quiet", "-allowblank"]
    if passwd:
        args += ["-passwd", passwd]
    return subprocess.run(args + [f"127.0.0.1::{port}", out_jpg],
                          capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


class Machine:
    def __init__(self, vessel_run, bios, tmp, name, vnc_extra="", extra=()):
        self.dbg = os.path.join(tmp, name + "-debugcon.txt")
        self.sock = os.path.join(tmp, name + "-qmp.sock")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [vessel_run, "--firmware", bios, "--memory", "128M", "--serial", "none",
             "--debugcon", "file:" + self.dbg, "--control", self.sock,
             "--vnc", f"127.0.0.1:{self.port}{vnc_extra}", *extra],
            stdin=subprocess.DEVNULL)
        self.deadline = time.monotonic() + 150
        self.qmp = Qmp(self.sock, self.deadline)

    def debugcon(self):
        try:
            return open(self.dbg, "rb").read()
        except FileNotFoundError:
            return b""

    def wait_debugcon(self, text, poll=0.05, each=None):
        while text not in self.debugcon():
            assert self.proc.poll() is None, "vessel-run ended early"
            assert time.monotonic() < self.deadline, f"never saw {text!r}"
            if each:
                each()
            time.sleep(poll)

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
        return self.proc.returncode


def check_banner(m, tmp):
    """The SeaBIOS banner through gvnccapture (pixels, OCR) and vncsnapshot
    (OCR); asks again until the banner shows."""
    png = os.path.join(tmp, "vnc.png")
    for _ in range(100):
        width, height, rows, text = gvnccapture(m.port, png, tmp)
        lit = sum(1 for r in rows[0:16] for i in range(0, len(r), 3)
                  if r[i:i + 3] != b"\0\0\0")
        if lit > 200:
            break
        time.sleep(0.1)
    log(f"gvnccapture: {width}x{height}, {lit} lit pixels in the top text row")
    assert (width, height) == (720, 400), (width, height)
    assert lit > 200, "the banner line is blank"
    assert all(r == bytes(len(r)) for r in rows[-40:]), "lower screen not black"
    if text is not None:
        log("gvnccapture OCR: " + text.strip().replace("\n", " | ")[:160])
        assert "SeaBIOS" in text, "OCR did not read the banner (gvnccapture)"
    jpg = os.path.join(tmp, "vnc.jpg")
    r = vncsnapshot(m.port, jpg)
    assert r.returncode == 0, f"vncsnapshot failed: {r.stderr}"
    text = ocr(jpg)
    if text is not None:
        assert "SeaBIOS" in text, "OCR did not read the banner (vncsnapshot)"
        log("vncsnapshot OCR: ok")


def hostile_clients(m):
    # A bogus protocol version.
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    recvn(s, 12)
    s.sendall(b"RFB 999.999\n")
    assert closed_by_server(s), "bogus version: not disconnected"
    s.close()
    # Garbage instead of a version.
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    recvn(s, 12)
    s.sendall(bytes(random.getrandbits(8) for _ in range(4096)))
    assert closed_by_server(s), "garbage: not disconnected"
    s.close()
    # A proper handshake, then an unknown message type.
    c = Rfb(m.port).init()
    c.s.sendall(b"\xfe" + bytes(64))
    assert closed_by_server(c.s), "unknown message: not disconnected"
    c.close()
    # Hang-ups mid-handshake.
    for cut in (0, 5):
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        recvn(s, 12)
        s.sendall(b"RFB 003.008\n"[:cut])
        s.close()
    log("hostile clients disconnected")


def run_plain(vessel_run, bios, tmp):
    m = Machine(vessel_run, bios, tmp, "plain")
    try:
        info = m.qmp.cmd("query-vnc")["return"]
        log(f"query-vnc: {json.dumps(info)}")
        assert info["enabled"] is True and info["host"] == "127.0.0.1", info
        assert info["service"] == str(m.port) and info["auth"] == "none", info
        assert info["clients"] == [], info

        # A client that completed the handshake is listed. (Typing into
        # SeaBIOS's boot menu is not checked yet: see the note at the top.)
        kb = Rfb(m.port).init()
        assert (kb.width, kb.height) in ((640, 480), (720, 400)), (kb.width, kb.height)
        assert kb.name == b"Vessel", kb.name
        clients = m.qmp.cmd("query-vnc")["return"]["clients"]
        assert len(clients) == 1 and clients[0]["host"] == "127.0.0.1", clients
        assert clients[0]["family"] == "ipv4", clients
        kb.tap(XK_ESCAPE)  # reaches the PS/2 keyboard; nothing waits for it
        m.wait_debugcon(b"No bootable device")
        kb.close()
        log("SeaBIOS gave up booting")

        check_banner(m, tmp)
        hostile_clients(m)
        check_banner(m, tmp)
        assert m.proc.poll() is None, "vessel-run died"
        assert m.stop() == 0
    finally:
        m.stop()


def run_password(vessel_run, bios, vnc_passwd, tmp):
    pwfile = os.path.join(tmp, "password")
    with open(pwfile, "w") as f:
        f.write("s3cret\nignored second line\n")
    good = os.path.join(tmp, "good.vncpasswd")
    bad = os.path.join(tmp, "bad.vncpasswd")
    subprocess.run([vnc_passwd, "s3cret", good], check=True)
    subprocess.run([vnc_passwd, "wrong", bad], check=True)
    m = Machine(vessel_run, bios, tmp, "auth", vnc_extra=",password-file=" + pwfile)
    try:
        info = m.qmp.cmd("query-vnc")["return"]
        assert info["auth"] == "vnc", info
        c = Rfb(m.port)
        assert c.types == [2], f"security types offered: {c.types}"
        c.close()
        m.wait_debugcon(b"No bootable device")
        jpg = os.path.join(tmp, "auth.jpg")
        r = vncsnapshot(m.port, jpg, passwd=bad)
        assert r.returncode != 0, "a wrong password was accepted"
        log(f"wrong password refused (vncsnapshot exit {r.returncode})")
        for _ in range(50):
            r = vncsnapshot(m.port, jpg, passwd=good)
            assert r.returncode == 0, f"the right password was refused: {r.stderr}"
            text = ocr(jpg)
            if text is None or "SeaBIOS" in text:
                break
            time.sleep(0.1)
        if text is not None:
            assert "SeaBIOS" in text, "OCR did not read the banner (password)"
        log("right password: banner captured")
        assert m.stop() == 0
    finally:
        m.stop()


def main():
    vessel_run, bios, vnc_passwd = sys.argv[1:4]
    if not kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    for tool in ("gvnccapture", "vncsnapshot"):
        assert shutil.which(tool), f"{tool} is missing: tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-vnc-") as tmp:
        run_plain(vessel_run, bios, tmp)
        run_password(vessel_run, bios, vnc_passwd, tmp)
    print("vnc: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
