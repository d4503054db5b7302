#!/usr/bin/env python3
"""The guest's screen over SPICE (vessel-run --spice), with Debian's SPICE
client.

  test_spice.py VESSEL-RUN BIOS

SeaBIOS runs with --spice on a free loopback port and a password file:
1. query-spice (--control) reports the server: host, port, auth "spice".
2. spicy-screenshot (spice-client-gtk) with the right password captures
   SeaBIOS's text screen: 720x400, the banner lit in the top text row (and
   read by OCR where tesseract is installed), the bottom rows black.
3. spicy-screenshot with a wrong password is refused.
4. Hostile clients (random bytes, a link header announcing a huge message,
   a hang-up mid-header) are disconnected; the guest keeps running and the
   real client is served afterwards.

Keys typed through a SPICE client are tested by test_spice_keys.py.
"""
import importlib.util
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

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("test_vnc", os.path.join(HERE, "test_vnc.py"))
tv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tv)

PASSWORD = "s3cret-spice"
SPICE_MAGIC = b"REDQ"


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


T0 = time.monotonic()


class Machine:
    """vessel-run with SeaBIOS, --spice and --control."""

    def __init__(self, vessel_run, bios, tmp, name, spice_extra="", extra=()):
        self.dbg = os.path.join(tmp, name + "-debugcon.txt")
        self.sock = os.path.join(tmp, name + "-qmp.sock")
        self.port = tv.free_port()
        self.proc = subprocess.Popen(
            [vessel_run, "--firmware", bios, "--memory", "128M", "--serial", "none",
             "--debugcon", "file:" + self.dbg, "--control", self.sock,
             "--spice", f"127.0.0.1:{self.port}{spice_extra}", *extra],
            stdin=subprocess.DEVNULL)
        self.deadline = time.monotonic() + 150
        self.qmp = tv.Qmp(self.sock, self.deadline)

    def debugcon(self):
        try:
            with open(self.dbg, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def wait_debugcon(self, text, poll=0.05):
        while text not in self.debugcon():
            assert self.proc.poll() is None, "vessel-run ended early"
            assert time.monotonic() < self.deadline, f"never saw {text!r}"
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


def read_ppm(path):
    """A binary PPM (P6, maxval 255) → width, height, rows of RGB bytes."""
    data = open(path, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    pos += 1  # the one whitespace byte after maxval
    assert fields[0] == b"P6" and fields[3] == b"255", fields
    width, height = int(fields[1]), int(fields[2])
    pixels = data[pos:pos + width * height * 3]
    assert len(pixels) == width * height * 3, "short PPM"
    return width, height, [pixels[y * width * 3:(y + 1) * width * 3] for y in range(height)]


def spicy_screenshot(port, out, password=None):
    args = ["spicy-screenshot", "-h", "127.0.0.1", "-p", str(port), "-o", out]
    if password is not None:
        args += ["-w", password]
    if os.path.exists(out):
        os.unlink(out)
    return subprocess.run(args, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def check_banner(m, tmp, password):
    """SeaBIOS's screen through spicy-screenshot; asks again until the
    banner shows."""
    ppm = os.path.join(tmp, "spice.ppm")
    for _ in range(100):
        r = spicy_screenshot(m.port, ppm, password)
        assert r.returncode == 0 and os.path.exists(ppm), \
            f"spicy-screenshot failed ({r.returncode}): {r.stderr.strip()}"
        width, height, rows = read_ppm(ppm)
        lit = sum(1 for row in rows[0:16] for i in range(0, len(row), 3)
                  if row[i:i + 3] != b"\0\0\0")
        if lit > 200:
            break
        time.sleep(0.1)
    log(f"spicy-screenshot: {width}x{height}, {lit} lit pixels in the top text row")
    assert (width, height) == (720, 400), (width, height)
    assert lit > 200, "the banner line is blank"
    assert all(row == bytes(len(row)) for row in rows[-40:]), "lower screen not black"
    text = tv.ocr(ppm)
    if text is not None:
        log("OCR: " + text.strip().replace("\n", " | ")[:160])
        assert "SeaBIOS" in text, "OCR did not read the banner"


def hostile_clients(m):
    # Random bytes instead of a link message.
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    s.sendall(bytes(random.getrandbits(8) for _ in range(4096)))
    assert tv.closed_by_server(s), "random bytes: not disconnected"
    s.close()
    # The right magic and version, then a link message claiming 1 GiB.
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    s.sendall(SPICE_MAGIC + struct.pack("<III", 2, 2, 1 << 30) + bytes(64))
    assert tv.closed_by_server(s), "huge link message: not disconnected"
    s.close()
    # The right header and a link message whose fields point past its end.
    body = struct.pack("<IBBIII", 0xffffffff, 1, 0, 0xffff, 0xffff, 0xfffffff0)
    s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
    s.sendall(SPICE_MAGIC + struct.pack("<III", 2, 2, len(body)) + body)
    assert tv.closed_by_server(s), "bogus link message: not disconnected"
    s.close()
    # Hang-ups mid-header.
    for cut in (0, 3, 9):
        s = socket.create_connection(("127.0.0.1", m.port), timeout=10)
        s.sendall((SPICE_MAGIC + struct.pack("<III", 2, 2, 18))[:cut])
        s.close()
    log("hostile clients disconnected")


def main():
    vessel_run, bios = sys.argv[1:3]
    if not tv.kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    assert shutil.which("spicy-screenshot"), \
        "spicy-screenshot is missing (spice-client-gtk): tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-spice-") as tmp:
        pwfile = os.path.join(tmp, "password")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\nignored second line\n")
        m = Machine(vessel_run, bios, tmp, "spice", spice_extra=",password-file=" + pwfile)
        try:
            info = m.qmp.cmd("query-spice")["return"]
            log(f"query-spice: {json.dumps(info)}")
            assert info["enabled"] is True and info["host"] == "127.0.0.1", info
            assert info["port"] == m.port and info["auth"] == "spice", info
            assert info["mouse-mode"] in ("client", "server"), info
            assert isinstance(info["channels"], list), info
            assert m.qmp.cmd("query-vnc")["return"] == {"enabled": False}

            m.wait_debugcon(b"No bootable device")
            log("SeaBIOS gave up booting")
            check_banner(m, tmp, PASSWORD)

            r = spicy_screenshot(m.port, os.path.join(tmp, "wrong.ppm"), "wrong")
            assert r.returncode != 0, "a wrong password was accepted"
            assert not os.path.exists(os.path.join(tmp, "wrong.ppm")), \
                "a wrong password got a screenshot"
            r = spicy_screenshot(m.port, os.path.join(tmp, "none.ppm"))
            assert r.returncode != 0, "no password was accepted"
            log("wrong and missing passwords refused")

            hostile_clients(m)
            assert m.proc.poll() is None, "vessel-run died"
            assert m.qmp.cmd("query-status")["return"]["status"] == "running"
            check_banner(m, tmp, PASSWORD)
            # The clients have hung up: their channels go.
            while m.qmp.cmd("query-spice")["return"]["channels"]:
                assert time.monotonic() < m.deadline, "channels left over"
                time.sleep(0.05)
            assert m.stop() == 0
        finally:
            m.stop()
    print("spice: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
