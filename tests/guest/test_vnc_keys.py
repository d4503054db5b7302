#!/usr/bin/env python3
"""Keys typed through VNC reach the guest: SeaBIOS with --boot-menu waits for
ESC; a VNC client (the minimal RFB 3.8 client of test_vnc.py) sends it, and
SeaBIOS opens its boot menu ("Select boot device:" on the debug console).

  test_vnc_keys.py VESSEL-RUN BIOS
"""
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("test_vnc", os.path.join(HERE, "test_vnc.py"))
tv = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tv)

ESC = 0xff1b


def main():
    vessel_run, bios = sys.argv[1:3]
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"SKIP: /dev/kvm is not usable here ({e})")
        return 77
    with tempfile.TemporaryDirectory(prefix="vessel-vnc-keys-") as tmp:
        dbg = os.path.join(tmp, "debugcon.txt")
        port = tv.free_port()
        proc = subprocess.Popen([vessel_run, "--firmware", bios, "--memory", "128M",
                                 "--serial", "none", "--debugcon", "file:" + dbg,
                                 "--boot-menu", "--boot-menu-wait", "30000",
                                 "--vnc", f"127.0.0.1:{port}"],
                                stdin=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120

            def debugcon():
                try:
                    with open(dbg, "rb") as f:
                        return f.read()
                except FileNotFoundError:
                    return b""

            client = None
            while client is None:
                try:
                    client = tv.Rfb(port).init()
                except OSError:
                    assert time.monotonic() < deadline, "no VNC server"
                    time.sleep(0.05)
            # SeaBIOS flushes its key buffer, prints "Press ESC for boot
            # menu" and waits for the key (30 s here: on a loaded host the
            # in-kernel PIT re-injects missed ticks in bursts, so SeaBIOS's
            # default 2.5 s can pass in a blink). One press, after the flush.
            while b"Press ESC for boot menu" not in debugcon():
                assert proc.poll() is None, "vessel-run ended early"
                assert time.monotonic() < deadline, "SeaBIOS never offered its menu"
                time.sleep(0.02)
            client.tap(ESC)
            while b"Select boot device" not in debugcon():
                assert b"enter handle_19" not in debugcon(), \
                    "SeaBIOS went on booting: the ESC key did not reach it"
                assert proc.poll() is None, "vessel-run ended early"
                assert time.monotonic() < deadline, "no boot menu"
                time.sleep(0.05)
            print("SeaBIOS opened its boot menu on a key typed over VNC")
            client.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
