#!/usr/bin/env python3
"""Debian's GRUB rescue CD through real VNC and SPICE clients.

  test_grub_clients.py VESSEL-RUN BIOS GRUB-RESCUE-ISO [--keys]

SeaBIOS boots grub-rescue-cdrom.iso from the ATAPI drive with both --vnc
and --spice (SeaBIOS mirrors the text screen on COM1, so the menu is
awaited there). Once GRUB's menu is up:

1. With --keys, Home through QMP send-key stops GRUB's countdown without
   moving the selection (the first entry stays highlighted); without, the
   countdown boots the first entry, which fails, and GRUB shows its menu
   again (the captures wait for it).
2. gvnccapture (gtk-vnc) and spicy-screenshot (spice-gtk) capture the
   screen: 720x400 (80x25 text), OCR (tesseract) reads "GNU GRUB" in both,
   and the highlighted line (GRUB draws it black on light grey) is the
   first menu entry.
3. With --keys: Down typed through an RFB client (a KeyEvent with
   XK_Down, over the VNC server's input path) moves the highlight: a fresh
   capture through each client shows the light-grey bar one text row
   lower, and the old line no longer highlighted. Not run by default:
   on the nested KVM of the build machines keys reach SeaBIOS's boot menu
   (which waits in sti; hlt) but not GRUB's menu, which polls int 16h with
   interrupts off between calls, so IRQ 1 must arrive in SeaBIOS's
   two-instruction window (sti; nop; pause; cli). A boot sector polling
   int 16h AH=01 the same way gets no keys there under Vessel nor under
   QEMU 7.2 (send-key over QMP), so the limit is the host's. GRUB's
   countdown, timed with the TSC, also runs several times too fast there.

  test_grub_clients.py VESSEL-RUN BIOS --own-grub

GRUB's menu moving under keys from each client, on any KVM: the test builds
its own GRUB CD with grub-mkrescue (Debian's grub-pc-bin) whose grub.cfg
has three entries, no timeout, and `terminal_input at_keyboard console`:
GRUB then reads the PS/2 controller itself (at_keyboard polls ports 0x64 and
0x60), so no interrupt window is needed, and keeps the BIOS console as a
second input for a key SeaBIOS's IRQ 1 handler takes first. The highlight
starts on the first entry in captures through gvnccapture and
spicy-screenshot; Down typed through an RFB client moves it one row in
both; Down typed in remote-viewer (SPICE, under Xvfb with xdotool) moves
it once more (seen through VNC: spice-server serves one client at a time);
Return typed there starts the third entry, which says so on COM1 (GRUB's
output goes there too).

Skips (77) only when /dev/kvm is unusable; GRUB takes a while to load under
a nested KVM (its menu after tens of seconds).
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tv = load("test_vnc")
ts = load("test_spice")
tk = load("test_spice_keys")

XK_DOWN = 0xff54
HIGHLIGHT = b"\xaa\xaa\xaa"  # VGA colour 7, GRUB's menu highlight background
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
CHAR_H = 16                  # 80x25 text with the 9x16 font: 720x400
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def highlighted_rows(rows):
    """The text rows (0-based) more than half covered by the highlight
    colour."""
    width = len(rows[0]) // 3
    out = []
    for r in range(len(rows) // CHAR_H):
        band = rows[r * CHAR_H:(r + 1) * CHAR_H]
        lit = sum(1 for line in band for i in range(0, len(line), 3)
                  if line[i:i + 3] == HIGHLIGHT)
        if lit > width * CHAR_H // 2:
            out.append(r)
    return out


def capture_vnc(port, tmp, n):
    png = os.path.join(tmp, f"grub-vnc-{n}.png")
    r = subprocess.run(["gvnccapture", "-q", f"127.0.0.1:{port - 5900}", png],
                       capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"gvnccapture failed: {r.stderr}"
    w, h, rows = tv.read_png_rgb(png)
    ppm = os.path.join(tmp, f"grub-vnc-{n}.ppm")
    with open(ppm, "wb") as f:
        f.write(b"P6 %d %d 255\n" % (w, h) + b"".join(rows))
    return w, h, rows, ppm


def capture_spice(port, tmp, n):
    ppm = os.path.join(tmp, f"grub-spice-{n}.ppm")
    r = ts.spicy_screenshot(port, ppm)
    assert r.returncode == 0 and os.path.exists(ppm), \
        f"spicy-screenshot failed ({r.returncode}): {r.stderr.strip()}"
    w, h, rows = ts.read_ppm(ppm)
    return w, h, rows, ppm


def until_highlight(what, capture, want, deadline):
    """Captures until the highlight is on text row @want alone (the screen
    refreshes at 30 Hz: a capture may predate the key's effect)."""
    n = 0
    while True:
        n += 1
        w, h, rows, path = capture(n)
        assert (w, h) == (720, 400), f"{what}: {w}x{h}, expected 720x400 text"
        hl = highlighted_rows(rows)
        if hl == [want] or time.monotonic() > deadline:
            assert hl == [want], f"{what}: highlighted text rows {hl}, expected [{want}]"
            return rows, path
        time.sleep(0.2)


OWN_GRUB_CFG = """\
insmod at_keyboard
terminal_input at_keyboard console
serial --unit=0 --speed=115200
terminal_output console serial
set timeout=-1
menuentry "Vessel first entry" { echo "VESSEL-GRUB: first entry chosen"; sleep 3600 }
menuentry "Vessel second entry" { echo "VESSEL-GRUB: second entry chosen"; sleep 3600 }
menuentry "Vessel third entry" { echo "VESSEL-GRUB: third entry chosen"; sleep 3600 }
"""


def make_own_grub(tmp):
    """A GRUB CD (grub-mkrescue) with the menu above; returns its path."""
    root = os.path.join(tmp, "cd")
    os.makedirs(os.path.join(root, "boot", "grub"))
    with open(os.path.join(root, "boot", "grub", "grub.cfg"), "w") as f:
        f.write(OWN_GRUB_CFG)
    iso = os.path.join(tmp, "own-grub.iso")
    r = subprocess.run(["grub-mkrescue", "-o", iso, root], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=300)
    assert r.returncode == 0, f"grub-mkrescue failed: {r.stderr[-800:]}"
    return iso


def wait_serial(serial, pattern, proc, deadline, what):
    while True:
        try:
            text = open(serial, "rb").read()
        except FileNotFoundError:
            text = b""
        # SeaBIOS's and GRUB's cursor moves: drop escapes.
        if pattern.search(ANSI.sub(b"", text)):
            return
        assert proc.poll() is None, "vessel-run ended early"
        assert time.monotonic() < deadline, \
            f"{what}; serial:\n{text[-1500:].decode(errors='replace')}"
        time.sleep(0.05)


def run_own_grub(vessel_run, bios):
    for tool, pkg in (("grub-mkrescue", "grub-common, grub-pc-bin"), ("xorriso", "xorriso"),
                      ("remote-viewer", "virt-viewer"), ("xdotool", "xdotool"),
                      ("Xvfb", "xvfb")):
        assert shutil.which(tool), f"{tool} is missing ({pkg}): tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-grub-keys-") as tmp:
        iso = make_own_grub(tmp)
        serial = os.path.join(tmp, "serial.txt")
        sock = os.path.join(tmp, "qmp.sock")
        vport, sport = tv.free_port(), tv.free_port()
        proc = subprocess.Popen(
            [vessel_run, "--firmware", bios, "--memory", "256M", "--cdrom", iso,
             "--boot", "cdrom", "--serial", "file:" + serial, "--control", sock,
             "--vnc", f"127.0.0.1:{vport}", "--spice", f"127.0.0.1:{sport}"],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 540
        xvfb = viewer = None
        try:
            qmp = tv.Qmp(sock, deadline)
            wait_serial(serial, re.compile(rb"Vessel third entry"), proc, deadline,
                        "no GRUB menu")
            log("GRUB's menu is up")
            captures = (("gvnccapture", lambda n: capture_vnc(vport, tmp, n)),
                        ("spicy-screenshot", lambda n: capture_spice(sport, tmp, n)))
            top = None
            for what, capture in captures:
                while True:
                    w, h, rows, path = capture(0)
                    hl = highlighted_rows(rows)
                    if len(hl) == 1 and "Vessel first entry" in (tv.ocr(path) or ""):
                        break
                    assert time.monotonic() < deadline, f"{what}: highlighted rows {hl}"
                    time.sleep(0.2)
                assert top is None or hl[0] == top, (what, hl, top)
                top = hl[0]
                log(f"{what}: the first entry is highlighted (text row {top})")

            kb = tv.Rfb(vport).init()
            kb.tap(XK_DOWN)
            log("Down typed through RFB")
            for what, capture in captures:
                until_highlight(what, capture, top + 1, deadline)
                log(f"{what}: the highlight moved to text row {top + 1}")
            kb.close()

            xvfb, display = tk.start_xvfb(tmp)
            env = dict(os.environ, DISPLAY=display)
            env.pop("WAYLAND_DISPLAY", None)
            viewer = subprocess.Popen(
                ["remote-viewer", f"spice://127.0.0.1:{sport}"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, "remote-viewer.log"), "wb"))
            r = tk.xdotool(env, "search", "--sync", "--onlyvisible", "--class", "remote-viewer")
            assert r.returncode == 0 and r.stdout.split(), f"no remote-viewer window: {r.stderr}"
            window = r.stdout.split()[0]
            for args in (("windowfocus", "--sync", window),
                         ("mousemove", "--window", window, "100", "100")):
                r = tk.xdotool(env, *args)
                assert r.returncode == 0, f"xdotool {args[0]}: {r.stderr}"
            # A key goes out once the client's inputs channel is up. From
            # here the screen is read through VNC only: spice-server serves
            # one client, and a capture over SPICE would take remote-viewer's
            # place.
            while not any(c["channel-type"] == tk.SPICE_CHANNEL_INPUTS
                          for c in qmp.cmd("query-spice")["return"]["channels"]):
                assert viewer.poll() is None, "remote-viewer ended"
                assert time.monotonic() < deadline, "remote-viewer never opened its inputs channel"
                time.sleep(0.05)
            r = tk.xdotool(env, "key", "Down")
            assert r.returncode == 0, f"xdotool key: {r.stderr}"
            until_highlight("gvnccapture", captures[0][1], top + 2, deadline)
            log("Down typed in remote-viewer (SPICE) moved the highlight to the third entry")
            r = tk.xdotool(env, "key", "Return")
            assert r.returncode == 0, f"xdotool key: {r.stderr}"
            wait_serial(serial, re.compile(rb"VESSEL-GRUB: third entry chosen"), proc, deadline,
                        "Return in remote-viewer did not start the third entry")
            log("Return typed in remote-viewer started the third entry")
        finally:
            if viewer and viewer.poll() is None:
                viewer.terminate()
                viewer.wait(timeout=30)
            if xvfb:
                xvfb.terminate()
                xvfb.wait(timeout=30)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("grub-keys: ok")
    return 0


def main():
    if sys.argv[3:4] == ["--own-grub"]:
        if not tv.kvm_usable():
            print("SKIP: /dev/kvm is not usable here")
            return 77
        return run_own_grub(*sys.argv[1:3])
    vessel_run, bios, iso = sys.argv[1:4]
    keys = "--keys" in sys.argv[4:]
    if not tv.kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    for tool, pkg in (("gvnccapture", "gvncviewer"), ("spicy-screenshot", "spice-client-gtk"),
                      ("tesseract", "tesseract-ocr")):
        assert shutil.which(tool), f"{tool} is missing ({pkg}): tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-grub-clients-") as tmp:
        serial = os.path.join(tmp, "serial.txt")
        sock = os.path.join(tmp, "qmp.sock")
        vport, sport = tv.free_port(), tv.free_port()
        proc = subprocess.Popen(
            [vessel_run, "--firmware", bios, "--memory", "256M", "--cdrom", iso,
             "--boot", "cdrom", "--firmware-serial-console", "--serial", "file:" + serial,
             "--control", sock, "--vnc", f"127.0.0.1:{vport}", "--spice", f"127.0.0.1:{sport}"],
            stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 540
        try:
            qmp = tv.Qmp(sock, deadline)
            menu = re.compile(rb"GNU GRUB +version 2.*The highlighted entry will be executed",
                              re.S)
            wait_serial(serial, menu, proc, deadline, "no GRUB menu")
            if keys:
                # Stop the countdown; Home keeps the first entry selected.
                r = qmp.cmd("send-key", keys=[{"type": "qcode", "data": "home"}])
                assert r == {"return": {}}, r
                log("GRUB's menu is up; Home sent to stop its countdown")
            else:
                log("GRUB's menu is up")

            captures = (("gvnccapture", lambda n: capture_vnc(vport, tmp, n)),
                        ("spicy-screenshot", lambda n: capture_spice(sport, tmp, n)))
            first = {}
            for what, capture in captures:
                rows, path = None, None
                # The whole menu drawn (OCR reads the title) with one line
                # highlighted. Without keys the countdown may boot the entry
                # first: GRUB comes back to its menu when that fails.
                while True:
                    w, h, rows, path = capture(0)
                    hl = highlighted_rows(rows)
                    text = tv.ocr(path) or ""
                    if "GNU GRUB" in text and len(hl) == 1:
                        break
                    assert time.monotonic() < deadline, \
                        f"{what}: OCR {text.strip()[:200]!r}, highlighted rows {hl}"
                    time.sleep(0.2)
                assert (w, h) == (720, 400), f"{what}: {w}x{h}"
                first[what] = hl[0]
                log(f"{what}: OCR reads GNU GRUB; highlight on text row {hl[0]}: "
                    + text.strip().replace("\n", " | ")[:120])
            assert first["gvnccapture"] == first["spicy-screenshot"], first
            top = first["gvnccapture"]
            assert proc.poll() is None
            if not keys:
                qmp.cmd("quit")
                assert proc.wait(timeout=30) == 0
                print("grub-clients: ok")
                return 0

            kb = tv.Rfb(vport).init()
            kb.tap(XK_DOWN)
            log("Down typed through RFB")
            for what, capture in captures:
                rows, path = until_highlight(what, capture, top + 1, deadline)
                text = tv.ocr(path) or ""
                assert "GNU GRUB" in text, f"{what}: OCR after Down: {text[:200]!r}"
                log(f"{what}: the highlight moved from text row {top} to {top + 1}")
            kb.close()
            qmp.cmd("quit")
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    print("grub-clients: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
