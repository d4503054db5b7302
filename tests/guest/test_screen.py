#!/usr/bin/env python3
"""The guest's screen, end to end: SeaBIOS runs the std VGA's option ROM,
prints its banner in text mode, and a QMP screendump of the engine's display
surface shows it.

  test_screen.py VESSEL-RUN BIOS

Checks the PNG's size (720x400: 80x25 text with 9-dot characters), that the
banner line has text-coloured pixels and the lower screen is black, and —
when tesseract is installed — that OCR reads "SeaBIOS" in it.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        crc = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]
        assert zlib.crc32(kind + body) & 0xffffffff == crc, "bad CRC"
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert (depth, ctype) == (8, 2), "expected 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    row = 1 + width * 3
    rows = [raw[y * row + 1:(y + 1) * row] for y in range(height)]
    return width, height, rows


class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.s.settimeout(30)
        self.f = self.s.makefile("rwb")
        json.loads(self.f.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "return" in msg or "error" in msg:
                return msg


def main():
    vessel_run, bios = sys.argv[1:3]
    if not kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    with tempfile.TemporaryDirectory(prefix="vessel-screen-") as tmp:
        sock = os.path.join(tmp, "qmp.sock")
        dbg = os.path.join(tmp, "debugcon.txt")
        png = os.path.join(tmp, "screen.png")
        proc = subprocess.Popen([vessel_run, "--firmware", bios, "--memory", "128M",
                                 "--serial", "none", "--debugcon", "file:" + dbg,
                                 "--control", sock], stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            qmp = Qmp(sock, deadline)
            # SeaBIOS has drawn its screen once it gives up booting.
            while b"No bootable device" not in open(dbg, "rb").read():
                assert proc.poll() is None, "vessel-run ended early"
                assert time.monotonic() < deadline, "SeaBIOS never finished"
                time.sleep(0.1)
            # One refresh period (1/30 s) later the surface holds it; ask
            # until the banner shows rather than sleeping a fixed time.
            for _ in range(100):
                reply = qmp.cmd("screendump", filename=png)
                assert "return" in reply, reply
                width, height, rows = read_png(png)
                top = rows[0:16]
                lit = sum(1 for r in top for i in range(0, len(r), 3)
                          if r[i:i + 3] != b"\0\0\0")
                if lit > 200:
                    break
                time.sleep(0.05)
            print(f"screen {width}x{height}, {lit} lit pixels in the top text row")
            assert (width, height) == (720, 400), (width, height)
            assert lit > 200, "the banner line is blank"
            bottom = rows[-40:]
            assert all(r == bytes(len(r)) for r in bottom), "lower screen not black"
            bad = qmp.cmd("screendump", filename=png, format="ppm")
            assert "error" in bad, bad
            if shutil.which("tesseract"):
                text = subprocess.run(["tesseract", png, "-", "--psm", "6"],
                                      capture_output=True, text=True).stdout
                print("OCR:", text.strip()[:200])
                assert "SeaBIOS" in text, "OCR did not read the SeaBIOS banner"
            qmp.cmd("quit")
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("screen: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
