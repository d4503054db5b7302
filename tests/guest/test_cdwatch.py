#!/usr/bin/env python3
"""The guest sees CD media changes made through the control socket.

  test_cdwatch.py VESSEL-RUN CDWATCH-ELF

The kit guest cdwatch polls the ATAPI drive (TEST UNIT READY, REQUEST SENSE
on CHECK CONDITION) and prints each change of state on COM1. Two ISOs with
different volume ids go in and out through QMP:

  boot with CDWATCH_A         -> unit-attention, state=ready volume=CDWATCH_A
  eject                       -> DEVICE_TRAY_MOVED open, state=no-medium (2/3a)
  change to CDWATCH_B         -> DEVICE_TRAY_MOVED closed, unit-attention
                                 (6/28/00), state=ready volume=CDWATCH_B,
                                 and the guest locks the tray (lock=CDWATCH_B)
  eject, change without force -> refused in QEMU's words; the guest sees an
                                 eject request each time and no change
  eject with force            -> state=no-medium, the lock is gone
  change to CDWATCH_A, eject  -> ready again, then an unforced eject works
  quit                        -> exit 0

The guest's lines must come exactly in this order, each change once. Every
wait is bounded; nothing sleeps to synchronise. Exit 77 (skip) only when
/dev/kvm is unusable.
"""
import os
import re
import sys
import time

from test_control import (TIMEOUT, Fail, Qmp, cd_info, check, expect_exit,
                          launch, make_media, stop, test_main, wait_running)

# The guest boots in well under a second; its first poll needs the kit's
# start-up and the LAPIC calibration, emulated instruction by instruction.
BOOT_TIMEOUT = 60.0
VOL_A, VOL_B = "CDWATCH_A", "CDWATCH_B"
LOCKED = ("Device 'ide1-cd0' is locked and force was not specified, "
          "wait for tray to open and try again")


class Serial:
    """The guest's COM1 (a file vessel-run writes): result lines in order."""

    def __init__(self, path, proc):
        self.path = path
        self.proc = proc
        self.seen = 0  # KIT: lines consumed so far

    def lines(self):
        try:
            with open(self.path, errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        # Only whole lines: the guest may be half-way through one.
        return [l for l in text.split("\n")[:-1] if l.startswith("KIT: ")]

    def next(self, want, timeout=TIMEOUT):
        """The next KIT: line must match the regular expression @want."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.lines()
            if len(got) > self.seen:
                line = got[self.seen]
                self.seen += 1
                check(re.fullmatch(want, line),
                      f"serial: expected {want!r}, got {line!r}")
                print("guest:", line, flush=True)
                return line
            check(self.proc.poll() is None,
                  f"vessel-run exited ({self.proc.returncode}) waiting for {want!r}")
            check(time.monotonic() < deadline,
                  f"serial: no {want!r} within {timeout}s "
                  f"(last: {got[-1] if got else 'nothing'!r})")
            time.sleep(0.02)


def run(tmp, vessel_run, guest):
    iso_a = make_media(tmp, VOL_A)
    iso_b = make_media(tmp, VOL_B)
    sock = os.path.join(tmp, "qmp.sock")
    serial_path = os.path.join(tmp, "serial.txt")
    proc, err = launch([vessel_run, "--kernel", guest, "--memory", "64M",
                        "--cdrom", iso_a, "--append", f"lock={VOL_B}",
                        "--serial", f"file:{serial_path}", "--control", sock],
                       sock, tmp)
    try:
        serial = Serial(serial_path, proc)
        q = Qmp(sock, "cdwatch")
        q.handshake()
        wait_running(q)
        cd = "ide1-cd0"
        # A drive that powers on with a disc in reports a unit attention
        # first: 29h/00h POWER ON OCCURRED (SPC-3 annex D) or, as Vessel's
        # and QEMU's do, 28h/00h MEDIUM MAY HAVE CHANGED.
        serial.next(r"KIT: cd unit-attention \(sense 6/2[89]/00\)", BOOT_TIMEOUT)
        serial.next(f"KIT: cd state=ready volume={VOL_A}")

        q.ok("eject", {"device": cd})
        q.event("DEVICE_TRAY_MOVED", {"device": cd, "tray-open": True})
        # SPC-3 annex D: 3Ah MEDIUM NOT PRESENT (ASCQ 00h-02h by tray state).
        serial.next(r"KIT: cd state=no-medium \(sense 2/3a/0[0-2]\)")

        q.ok("blockdev-change-medium", {"id": "cd0", "filename": iso_b})
        q.event("DEVICE_TRAY_MOVED", {"device": cd, "tray-open": False})
        # 28h/00h NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED.
        serial.next(r"KIT: cd unit-attention \(sense 6/28/00\)")
        serial.next(f"KIT: cd state=ready volume={VOL_B}")
        serial.next(f"KIT: cd locked volume={VOL_B}")
        info = cd_info(q)
        check(info["locked"] is True and info["inserted"]["file"] == iso_b,
              f"query-block with the tray locked: {info}")

        # Refused while locked, in QEMU's words, and nothing moves. The guest
        # hears of each request (an EjectRequest media event) and prints it
        # after a TEST UNIT READY issued later than the event was read: a
        # change that the refused command made anyway would come first.
        desc = q.error("eject", {"device": cd})
        check(desc == LOCKED, f"eject of a locked tray: {desc!r}")
        serial.next("KIT: cd eject-request")
        desc = q.error("blockdev-change-medium",
                       {"device": cd, "filename": iso_a})
        check(desc == LOCKED, f"change in a locked tray: {desc!r}")
        serial.next("KIT: cd eject-request")
        info = cd_info(q)
        check(info["locked"] is True and info["inserted"]["file"] == iso_b,
              f"query-block after the refusals: {info}")
        check(not any(e["event"] == "DEVICE_TRAY_MOVED" for e in q.events),
              f"the tray moved although locked: {q.events}")

        # Forced: out it comes, and the lock goes with it (as in QEMU).
        q.ok("eject", {"device": cd, "force": True})
        q.event("DEVICE_TRAY_MOVED", {"device": cd, "tray-open": True})
        serial.next(r"KIT: cd state=no-medium \(sense 2/3a/0[0-2]\)")
        info = cd_info(q)
        check(info["locked"] is False and "inserted" not in info,
              f"query-block after the forced eject: {info}")

        q.ok("blockdev-change-medium", {"device": cd, "filename": iso_a})
        q.event("DEVICE_TRAY_MOVED", {"device": cd, "tray-open": False})
        serial.next(r"KIT: cd unit-attention \(sense 6/28/00\)")
        serial.next(f"KIT: cd state=ready volume={VOL_A}")
        q.ok("eject", {"device": cd})
        q.event("DEVICE_TRAY_MOVED", {"device": cd, "tray-open": True})
        serial.next(r"KIT: cd state=no-medium \(sense 2/3a/0[0-2]\)")

        check(q.ok("quit") == {}, "quit")
        expect_exit(proc, err, sock, "after quit")
        check(not any("FAIL" in l for l in serial.lines()), "the guest failed")
        q.close()
        print("ok: the guest saw every media change", flush=True)
    except Fail:
        err.seek(0)
        sys.stdout.write("vessel-run stderr:\n" + err.read())
        try:
            with open(serial_path, errors="replace") as f:
                sys.stdout.write("serial:\n" + f.read())
        except FileNotFoundError:
            pass
        raise
    finally:
        stop(proc, err)


if __name__ == "__main__":
    sys.exit(test_main(__doc__, 2, "vessel-cdwatch-", run))
