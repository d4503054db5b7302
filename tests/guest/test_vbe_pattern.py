#!/usr/bin/env python3
"""A graphics-mode picture, end to end: the kit guest vbe-pattern sets a VBE
DISPI mode on the std VGA and draws a known pattern into the linear
framebuffer (a white 4-pixel border, eight vertical colour bars; see
tests/guest-kit/guests/vbe-pattern.c). For each mode, the screen is read
back three ways and compared with the pattern computed here:

  - a QMP screendump over the control socket (PNG): every pixel, exactly;
  - gvnccapture, a real VNC client (gtk-vnc; PNG): every pixel, exactly;
  - vncsnapshot, a real VNC client (TightVNC; JPEG, decoded with djpeg):
    the middle of each bar and of the border, within JPEG's error;
  - spicy-screenshot, a real SPICE client (spice-gtk; PPM) on the same
    machine's SPICE server: every pixel, exactly.

At 15/16 bpp the expected colours are the guest's truncation expanded the
way the renderer does (bit replication), at 8 bpp the 6-bit DAC's.

  test_vbe_pattern.py VESSEL-RUN GUEST-ELF MODE...   (MODE: 1024x768x32)
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("test_vnc", os.path.join(HERE, "test_vnc.py"))
tv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tv)
spec = importlib.util.spec_from_file_location("test_spice", os.path.join(HERE, "test_spice.py"))
ts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ts)

BORDER = 4
BARS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
        (0, 255, 255), (255, 0, 255), (128, 128, 128), (255, 128, 0)]
WHITE = (255, 255, 255)


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


T0 = time.monotonic()


def expand(c, bits):
    """The top @bits of an 8-bit component, widened again by bit
    replication (what the renderer does)."""
    v = c >> (8 - bits)
    out = v << (8 - bits)
    shift = bits
    while shift < 8:
        out |= (v << (8 - bits)) >> shift
        shift += bits
    return out & 0xff


def shown(rgb, bpp):
    r, g, b = rgb
    if bpp == 16:
        return (expand(r, 5), expand(g, 6), expand(b, 5))
    if bpp == 15:
        return (expand(r, 5), expand(g, 5), expand(b, 5))
    if bpp == 8:
        return (expand(r, 6), expand(g, 6), expand(b, 6))
    return rgb


def expected_rows(w, h, bpp):
    """The border row and the bar row as RGB bytes."""
    white = bytes(shown(WHITE, bpp))
    edge = white * w
    bar = bytearray()
    for x in range(w):
        if x < BORDER or x >= w - BORDER:
            bar += white
        else:
            bar += bytes(shown(BARS[x * 8 // w], bpp))
    return edge, bytes(bar)


def compare_exact(rows, w, h, bpp):
    """None when the picture is the pattern, else what differs."""
    if len(rows) != h or any(len(r) != 3 * w for r in rows):
        return f"size {len(rows[0]) // 3 if rows else 0}x{len(rows)}, expected {w}x{h}"
    edge, bar = expected_rows(w, h, bpp)
    for y, row in enumerate(rows):
        want = edge if y < BORDER or y >= h - BORDER else bar
        if row != want:
            x = next(i for i in range(0, 3 * w, 3) if row[i:i + 3] != want[i:i + 3]) // 3
            return (f"pixel ({x}, {y}) is {tuple(row[3 * x:3 * x + 3])}, "
                    f"expected {tuple(want[3 * x:3 * x + 3])}")
    return None


def compare_points(rows, w, h, bpp, tolerance):
    """The middle of each bar and of the border, within @tolerance."""
    if len(rows) != h or any(len(r) != 3 * w for r in rows):
        return f"size {len(rows[0]) // 3 if rows else 0}x{len(rows)}, expected {w}x{h}"
    points = [((2 * i + 1) * w // 16, h // 2, shown(BARS[i], bpp)) for i in range(8)]
    points += [(w // 2, BORDER // 2, shown(WHITE, bpp)),
               (BORDER // 2, h // 2, shown(WHITE, bpp))]
    for x, y, want in points:
        got = tuple(rows[y][3 * x:3 * x + 3])
        if any(abs(a - b) > tolerance for a, b in zip(got, want)):
            return f"pixel ({x}, {y}) is {got}, expected {want} ±{tolerance}"
    return None


def read_ppm(path):
    data = open(path, "rb").read()
    parts, pos = [], 0
    while len(parts) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        parts.append(data[pos:end])
        pos = end
    assert parts[0] == b"P6" and parts[3] == b"255", parts
    w, h = int(parts[1]), int(parts[2])
    pix = data[pos + 1:]
    return w, h, [pix[y * 3 * w:(y + 1) * 3 * w] for y in range(h)]


def until_matches(what, capture, check, deadline):
    """Captures until the picture matches (the screen refreshes at 30 Hz:
    the first capture may predate the drawing); returns the last
    difference, None on a match."""
    while True:
        diff = check(capture())
        if diff is None or time.monotonic() > deadline:
            return diff
        time.sleep(0.1)


def run_mode(vessel_run, guest, mode, tmp):
    w, h, bpp = (int(v) for v in mode.split("x"))
    serial = os.path.join(tmp, f"{mode}-serial.txt")
    sock = os.path.join(tmp, f"{mode}-qmp.sock")
    port = tv.free_port()
    spice_port = tv.free_port()
    proc = subprocess.Popen(
        [vessel_run, "--kernel", guest, "--append", f"mode={mode}", "--memory", "128M",
         "--serial", "file:" + serial, "--control", sock,
         "--vnc", f"127.0.0.1:{port}", "--spice", f"127.0.0.1:{spice_port}"],
        stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        qmp = tv.Qmp(sock, deadline)
        ready = f"KIT: pattern ready mode={mode}".encode()
        while True:
            text = open(serial, "rb").read() if os.path.exists(serial) else b""
            assert b"KIT: FAIL" not in text, text.decode(errors="replace")
            if ready in text:
                break
            assert proc.poll() is None, "vessel-run ended early"
            assert time.monotonic() < deadline, f"never saw {ready!r}: {text!r}"
            time.sleep(0.05)

        png = os.path.join(tmp, f"{mode}-screendump.png")

        def screendump():
            r = qmp.cmd("screendump", filename=png)
            assert "return" in r, r
            return tv.read_png_rgb(png)[2]
        diff = until_matches("screendump", screendump,
                             lambda rows: compare_exact(rows, w, h, bpp), deadline)
        assert diff is None, f"{mode} screendump: {diff}"
        log(f"{mode}: screendump matches the pattern exactly")

        gpng = os.path.join(tmp, f"{mode}-gvnc.png")

        def gvnc():
            r = subprocess.run(["gvnccapture", "-q", f"127.0.0.1:{port - 5900}", gpng],
                               capture_output=True, text=True, timeout=60,
                               stdin=subprocess.DEVNULL)
            assert r.returncode == 0, f"gvnccapture failed: {r.stderr}"
            return tv.read_png_rgb(gpng)[2]
        diff = until_matches("gvnccapture", gvnc,
                             lambda rows: compare_exact(rows, w, h, bpp), deadline)
        assert diff is None, f"{mode} gvnccapture: {diff}"
        log(f"{mode}: gvnccapture matches the pattern exactly")

        jpg = os.path.join(tmp, f"{mode}-vncsnapshot.jpg")
        ppm = os.path.join(tmp, f"{mode}-vncsnapshot.ppm")

        def snapshot():
            r = tv.vncsnapshot(port, jpg)
            assert r.returncode == 0, f"vncsnapshot failed: {r.stderr}"
            subprocess.run(["djpeg", "-pnm", "-outfile", ppm, jpg], check=True)
            return read_ppm(ppm)[2]
        diff = until_matches("vncsnapshot", snapshot,
                             lambda rows: compare_points(rows, w, h, bpp, 12), deadline)
        assert diff is None, f"{mode} vncsnapshot: {diff}"
        log(f"{mode}: vncsnapshot shows the bars and the border")

        sppm = os.path.join(tmp, f"{mode}-spicy.ppm")

        def spicy():
            r = ts.spicy_screenshot(spice_port, sppm)
            assert r.returncode == 0 and os.path.exists(sppm), \
                f"spicy-screenshot failed ({r.returncode}): {r.stderr.strip()}"
            return ts.read_ppm(sppm)[2]
        diff = until_matches("spicy-screenshot", spicy,
                             lambda rows: compare_exact(rows, w, h, bpp), deadline)
        assert diff is None, f"{mode} spicy-screenshot: {diff}"
        log(f"{mode}: spicy-screenshot matches the pattern exactly")

        qmp.cmd("quit")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main():
    vessel_run, guest = sys.argv[1:3]
    modes = sys.argv[3:]
    if not tv.kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    for tool in ("gvnccapture", "vncsnapshot", "djpeg", "spicy-screenshot"):
        assert shutil.which(tool), f"{tool} is missing: tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-vbe-") as tmp:
        for mode in modes:
            run_mode(vessel_run, guest, mode, tmp)
    print("vbe-pattern: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
