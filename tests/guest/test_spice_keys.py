#!/usr/bin/env python3
"""Keys typed through a real SPICE client reach the guest: SeaBIOS with
--boot-menu waits for ESC; remote-viewer (virt-viewer) shows the guest on an
Xvfb server, xdotool presses Escape in its window, and SeaBIOS opens its
boot menu ("Select boot device:" on the debug console).

  test_spice_keys.py VESSEL-RUN BIOS
"""
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("test_spice", os.path.join(HERE, "test_spice.py"))
ts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ts)

SPICE_CHANNEL_INPUTS = 3


def start_xvfb(tmp):
    """An Xvfb server on a free display (it picks one and writes it to
    -displayfd); no authorization, local connections only."""
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1024x768x24",
                             "-nolisten", "tcp"], pass_fds=(wfd,),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "xvfb.log"), "wb"))
    os.close(wfd)
    with os.fdopen(rfd) as f:
        display = f.readline().strip()  # written once the server is ready
    assert display, "Xvfb did not start"
    return proc, ":" + display


def xdotool(env, *args):
    return subprocess.run(["xdotool", *args], env=env, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def main():
    vessel_run, bios = sys.argv[1:3]
    if not ts.tv.kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    for tool, pkg in (("remote-viewer", "virt-viewer"), ("xdotool", "xdotool"),
                      ("Xvfb", "xvfb")):
        assert shutil.which(tool), f"{tool} is missing ({pkg}): tools/install-deps.sh --test"
    with tempfile.TemporaryDirectory(prefix="vessel-spice-keys-") as tmp:
        xvfb, display = start_xvfb(tmp)
        env = dict(os.environ, DISPLAY=display)
        env.pop("WAYLAND_DISPLAY", None)
        m = viewer = None
        try:
            # SeaBIOS waits 30 s for the key: on a loaded host the in-kernel
            # PIT re-injects missed ticks in bursts, so its default 2.5 s can
            # pass in a blink.
            m = ts.Machine(vessel_run, bios, tmp, "keys",
                           extra=("--boot-menu", "--boot-menu-wait", "30000"))
            viewer = subprocess.Popen(
                ["remote-viewer", f"spice://127.0.0.1:{m.port}"], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(tmp, "remote-viewer.log"), "wb"))
            r = xdotool(env, "search", "--sync", "--onlyvisible", "--class", "remote-viewer")
            assert r.returncode == 0 and r.stdout.split(), f"no remote-viewer window: {r.stderr}"
            window = r.stdout.split()[0]
            ts.log(f"remote-viewer window {window} on {display}")
            # The key goes out once the client's inputs channel is up.
            while not any(c["channel-type"] == SPICE_CHANNEL_INPUTS
                          for c in m.qmp.cmd("query-spice")["return"]["channels"]):
                assert viewer.poll() is None, "remote-viewer ended"
                assert time.monotonic() < m.deadline, "the client never opened its inputs channel"
                time.sleep(0.05)
            # SeaBIOS flushes its key buffer, prints "Press ESC for boot
            # menu" and waits for the key: one press, after the flush.
            m.wait_debugcon(b"Press ESC for boot menu", poll=0.02)
            assert b"Select boot device" not in m.debugcon()
            for args in (("windowfocus", "--sync", window),
                         ("mousemove", "--window", window, "100", "100"),
                         ("key", "Escape")):
                r = xdotool(env, *args)
                assert r.returncode == 0, f"xdotool {args[0]}: {r.stderr}"
            while b"Select boot device" not in m.debugcon():
                assert b"enter handle_19" not in m.debugcon(), \
                    "SeaBIOS went on booting: the ESC key did not reach it"
                assert m.proc.poll() is None, "vessel-run ended early"
                assert time.monotonic() < m.deadline, "no boot menu"
                time.sleep(0.05)
            print("SeaBIOS opened its boot menu on a key typed in remote-viewer over SPICE")
            assert m.stop() == 0
        finally:
            if viewer and viewer.poll() is None:
                viewer.terminate()
                viewer.wait(timeout=30)
            if m:
                m.stop()
            xvfb.terminate()
            xvfb.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
