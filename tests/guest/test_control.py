#!/usr/bin/env python3
"""vessel-run --control: QMP over a UNIX socket, against SeaBIOS.

  test_control.py VESSEL-RUN BIOS BOOT-ISO

Run 1 (SeaBIOS finds nothing to boot and waits): greeting, negotiation,
query-status, stop/cont with STOP/RESUME, query-block, eject and
blockdev-change-medium with DEVICE_TRAY_MOVED, system_reset with RESET,
system_powerdown with POWERDOWN, malformed input of every kind, several
clients at once (one too big, one that never reads, one that hangs up
mid-message), and quit: vessel-run exits 0 and removes its socket.

Run 2: a stale socket file is replaced; the drive starts empty, the boot CD
goes in, system_reset boots it and the guest powers off: RESET and
SHUTDOWN {"guest": true}, exit 0.

Every wait has a timeout as its upper bound; nothing sleeps to synchronise.
Exit 77 (skip) only when /dev/kvm is unusable.
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 20.0
BOOT_TIMEOUT = 90.0


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError as e:
        return str(e)
    os.close(fd)
    return None


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Qmp:
    """A minimal QMP client: replies in order, events kept aside."""

    def __init__(self, path, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.buf = b""
        self.events = []

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv(self, timeout=TIMEOUT):
        """The next message; Fail on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            check(left > 0, f"{self.name}: no message within {timeout}s")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise Fail(f"{self.name}: no message within {timeout}s")
            check(chunk, f"{self.name}: the server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg = json.loads(line)
        check(isinstance(msg, dict), f"{self.name}: not an object: {line!r}")
        return msg

    def reply(self):
        """The next reply; events met on the way are kept."""
        while True:
            msg = self.recv()
            if "event" in msg:
                check("timestamp" in msg and "seconds" in msg["timestamp"]
                      and "microseconds" in msg["timestamp"],
                      f"{self.name}: event without a timestamp: {msg}")
                self.events.append(msg)
                continue
            return msg

    def execute(self, name, args=None, id=None):
        cmd = {"execute": name}
        if args is not None:
            cmd["arguments"] = args
        if id is not None:
            cmd["id"] = id
        self.send_raw(json.dumps(cmd).encode() + b"\n")
        return self.reply()

    def ok(self, name, args=None):
        r = self.execute(name, args, id=name)
        check("return" in r and r.get("id") == name,
              f"{self.name}: {name} {args}: {r}")
        return r["return"]

    def error(self, name, args=None, cls="GenericError", id="e"):
        r = self.execute(name, args, id=id)
        check("error" in r and r["error"]["class"] == cls
              and r.get("id") == id and r["error"].get("desc"),
              f"{self.name}: {name} {args}: expected {cls}, got {r}")
        return r["error"]["desc"]

    def event(self, name, data=None, timeout=TIMEOUT):
        """Waits for the event @name (with @data's members, if given)."""
        def matches(e):
            return e["event"] == name and all(
                e.get("data", {}).get(k) == v for k, v in (data or {}).items())
        while True:
            for i, e in enumerate(self.events):
                if matches(e):
                    del self.events[i]
                    return e
            msg = self.recv(timeout)
            check("event" in msg, f"{self.name}: a reply nobody asked for: {msg}")
            self.events.append(msg)

    def handshake(self):
        g = self.recv()
        check(g.get("QMP", {}).get("version", {}).get("qemu") ==
              {"micro": 0, "minor": 0, "major": 0}
              and g["QMP"]["version"].get("package") == "vessel 0.1"
              and g["QMP"].get("capabilities") == [],
              f"{self.name}: greeting {g}")
        r = self.execute("qmp_capabilities")
        check(r == {"return": {}}, f"{self.name}: qmp_capabilities: {r}")


def start(vessel_run, bios, sock, tmp, extra, stale=False):
    return launch([vessel_run, "--firmware", bios, "--memory", "128M",
                   "--serial", "none", "--control", sock] + extra,
                  sock, tmp, stale)


def launch(cmd, sock, tmp, stale=False):
    """Runs vessel-run with CMD (which has --control SOCK) until it listens.
    Returns the process and its stderr (a file)."""
    err = open(os.path.join(tmp, "stderr.txt"), "w+")
    print("running:", " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=err)
    # The socket appears once the machine is built: poll, bounded. Where a
    # stale one was left (run 2), wait until somebody listens on it.
    def ready():
        try:
            st = os.lstat(sock)
        except FileNotFoundError:
            return False
        if not stat.S_ISSOCK(st.st_mode):
            return False
        if not stale:
            return True
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            return probe.connect_ex(sock) == 0
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if proc.poll() is not None:
            err.seek(0)
            raise Fail(f"vessel-run exited ({proc.returncode}) before "
                       f"listening: {err.read()}")
        check(time.monotonic() < deadline, "no control socket within 20 s")
        time.sleep(0.02)
    return proc, err


def expect_exit(proc, err, sock, when):
    """vessel-run exits 0 by itself (bounded) and removes its socket."""
    try:
        rc = proc.wait(TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Fail(f"vessel-run did not exit {when}")
    err.seek(0)
    check(rc == 0, f"exit status {rc} {when}: {err.read()}")
    check(not os.path.exists(sock), "the socket outlived vessel-run")


def stop(proc, err):
    """Whatever happened, no vessel-run is left behind."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    err.close()


def test_main(doc, nargs, prefix, body):
    """A guest test's main: NARGS arguments (else the usage in DOC), exit 77
    without /dev/kvm, BODY(tmp, *args) in a scratch directory; Fail is 1."""
    if len(sys.argv) != nargs + 1:
        print(doc)
        return 2
    why = kvm_usable()
    if why:
        print(f"SKIP: /dev/kvm is not usable here ({why})")
        return 77
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        try:
            body(tmp, *sys.argv[1:])
        except Fail as e:
            print(f"FAIL: {e}", flush=True)
            return 1
    return 0


def wait_running(q):
    st = q.ok("query-status")
    if st["status"] == "prelaunch":
        q.event("RESUME")
        st = q.ok("query-status")
    check(st == {"status": "running", "running": True, "singlestep": False},
          f"query-status: {st}")


def cd_info(q):
    blocks = q.ok("query-block")
    cds = [b for b in blocks if b["device"] == "ide1-cd0"]
    check(len(cds) == 1 and cds[0]["removable"], f"query-block: {blocks}")
    return cds[0]


def make_media(tmp, name):
    path = os.path.join(tmp, name + ".iso")
    if shutil.which("xorriso"):
        src = os.path.join(tmp, name)
        os.mkdir(src)
        with open(os.path.join(src, "README"), "w") as f:
            f.write(f"medium {name}\n")
        subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", name,
                        "-o", path, src], check=True)
    else:
        with open(path, "wb") as f:
            f.truncate(1 << 20)
    return path


def malformed(q):
    """Bad input gets one error reply; the connection stays usable."""
    def bad(data, cls="GenericError"):
        q.send_raw(data)
        r = q.reply()
        check("error" in r and r["error"]["class"] == cls,
              f"{data[:60]!r}: expected {cls}, got {r}")
        return r
    bad(b"this is not json\n")
    bad(b'{"execute": "query-status", \x01}\n')
    bad(b"[1, 2, 3]\n")
    bad(b"42\n")
    bad(b'"query-status"\n')
    bad(b"{}\n")
    bad(b'{"execute": 42}\n')
    bad(b'{"execute": "query-status", "arguments": []}\n')
    bad(b'{"execute": "query-status", "bogus": 1}\n')
    # Without a newline, as old python clients send it; braces in strings.
    r = bad(b'{"execute": "no-such-command", "id": {"a": "}{"}}',
            "CommandNotFound")
    check(r.get("id") == {"a": "}{"}, f"id not echoed: {r}")
    q.error("eject", {}, id=7)
    q.error("eject", {"device": "ide1-cd0", "force": "yes"})
    q.error("eject", {"device": 5})
    q.error("eject", {"device": "ide1-cd0", "bogus": True})
    desc = q.error("blockdev-change-medium", {"id": "cd0"})
    check("filename" in desc, f"missing filename: {desc}")
    q.error("eject", {"device": "nosuch"}, "DeviceNotFound")
    q.error("blockdev-change-medium",
            {"id": "cd0", "filename": "/nonexistent.iso"})
    q.error("blockdev-change-medium",
            {"id": "cd0", "filename": "/dev/null", "format": "qcow2"})
    q.error("qmp_capabilities", None, "CommandNotFound")
    q.error("stop", {"unexpected": 1})
    check(q.ok("query-status")["running"], "not running after bad input")


def oversized(sock):
    """A 2 MiB line: an error, then the server hangs up."""
    c = Qmp(sock, "big")
    c.handshake()

    def pump():
        try:
            c.sock.sendall(b'{"execute": "' + b"x" * (2 << 20) + b'"}\n')
        except OSError:
            pass  # the server hung up first, as it should
    t = threading.Thread(target=pump)
    t.start()
    got = b""
    c.sock.settimeout(TIMEOUT)
    try:
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    t.join(TIMEOUT)
    check(not t.is_alive(), "the oversized sender is stuck")
    c.close()
    msgs = [json.loads(line) for line in got.split(b"\n") if line]
    check(all("error" in m for m in msgs), f"oversized: {msgs}")


def never_reads(sock):
    """Commands whose replies are never read: disconnected, not buffered
    without end."""
    c = Qmp(sock, "deaf")
    c.handshake()
    line = b'{"execute": "query-commands"}\n'
    sent = 0
    try:
        for _ in range(20000):
            c.sock.sendall(line)
            sent += 1
    except (BrokenPipeError, ConnectionResetError):
        pass
    except socket.timeout:
        raise Fail("the server stalled on a client that does not read")
    check(sent < 20000, "a client that never reads was never disconnected")
    c.close()


def crowd(sock, connected):
    """64 clients at once; more are told so and hung up on."""
    extra = []
    try:
        greeted = errors = 0
        for i in range(70):
            # One at a time: the first message says that it was accepted.
            c = Qmp(sock, f"crowd{i}")
            extra.append(c)
            m = c.recv()
            if "error" in m:
                errors += 1
            else:
                check("QMP" in m, f"{c.name}: {m}")
                greeted += 1
        check(greeted == 64 - connected and errors == 70 - greeted,
              f"crowd: {greeted} greeted, {errors} refused")
    finally:
        for c in extra:
            c.close()


def run_main(vessel_run, bios, tmp):
    iso_a = make_media(tmp, "first")
    iso_b = make_media(tmp, "second")
    sock = os.path.join(tmp, "qmp.sock")

    # A path that is not a socket is refused.
    with open(sock, "w") as f:
        f.write("not a socket")
    r = subprocess.run([vessel_run, "--firmware", bios, "--memory", "64M",
                        "--serial", "none", "--control", sock],
                       stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=TIMEOUT)
    check(r.returncode == 2 and "not a socket" in r.stderr,
          f"--control on a file: {r.returncode} {r.stderr!r}")
    os.unlink(sock)

    proc, err = start(vessel_run, bios, sock, tmp, ["--cdrom", iso_a])
    try:
        check(stat.S_IMODE(os.lstat(sock).st_mode) == 0o600,
              f"socket mode {oct(os.lstat(sock).st_mode)}")
        # A second vessel-run on the same socket is refused; this one stays.
        r = subprocess.run([vessel_run, "--firmware", bios, "--memory", "64M",
                            "--serial", "none", "--control", sock],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=TIMEOUT)
        check(r.returncode == 2 and "in use" in r.stderr,
              f"--control on a live socket: {r.returncode} {r.stderr!r}")
        q = Qmp(sock, "first")
        g = q.recv()
        check("QMP" in g, f"greeting {g}")
        q.error("query-status", None, "CommandNotFound", id="early")
        r = q.execute("qmp_capabilities", id=1)
        check(r == {"return": {}, "id": 1}, f"qmp_capabilities: {r}")
        wait_running(q)

        # A second client, negotiated; a third that is not (no events).
        q2 = Qmp(sock, "second")
        q2.handshake()
        q3 = Qmp(sock, "third")
        check("QMP" in q3.recv(), "third: greeting")

        check(q.ok("stop") == {}, "stop")
        q.event("STOP")
        q2.event("STOP")
        st = q.ok("query-status")
        check(st["status"] == "paused" and st["running"] is False,
              f"paused: {st}")
        check(q.ok("stop") == {}, "stop twice")
        q.ok("cont")
        q.event("RESUME")
        q2.event("RESUME")
        wait_running(q2)

        # The third client saw nothing before negotiating.
        r = q3.execute("qmp_capabilities", id="late")
        check(r == {"return": {}, "id": "late"}, f"third: {r}")
        check(not q3.events, f"events before negotiation: {q3.events}")

        names = {c["name"] for c in q.ok("query-commands")}
        for n in ["qmp_capabilities", "query-status", "stop", "cont",
                  "system_powerdown", "system_reset", "quit", "eject",
                  "blockdev-change-medium", "query-block", "query-commands"]:
            check(n in names, f"query-commands lacks {n}")

        cd = cd_info(q)
        check(cd.get("inserted", {}).get("file") == iso_a
              and cd["tray_open"] is False and cd["locked"] is False,
              f"query-block at start: {cd}")

        q.ok("eject", {"device": "ide1-cd0"})
        for c in (q, q2, q3):
            c.event("DEVICE_TRAY_MOVED", {"device": "ide1-cd0",
                                          "tray-open": True})
        cd = cd_info(q)
        check("inserted" not in cd and cd["tray_open"] is True,
              f"query-block after eject: {cd}")

        q.ok("blockdev-change-medium", {"id": "cd0", "filename": iso_b,
                                        "format": "raw"})
        q.event("DEVICE_TRAY_MOVED", {"tray-open": False})
        cd = cd_info(q)
        check(cd.get("inserted", {}).get("file") == iso_b
              and cd["tray_open"] is False, f"after the change: {cd}")
        # A change with a medium in: the tray opens and closes.
        q.ok("blockdev-change-medium", {"device": "ide1-cd0",
                                        "filename": iso_a, "force": True})
        q.event("DEVICE_TRAY_MOVED", {"tray-open": True})
        q.event("DEVICE_TRAY_MOVED", {"tray-open": False})
        check(cd_info(q)["inserted"]["file"] == iso_a, "second change")

        q.ok("system_reset")
        e = q.event("RESET")
        check(e["data"]["guest"] is False, f"RESET: {e}")
        q2.event("RESET")
        q.ok("system_powerdown")
        q.event("POWERDOWN")

        malformed(q)
        oversized(sock)
        never_reads(sock)
        # A client that hangs up in the middle of a message.
        c = Qmp(sock, "rude")
        c.handshake()
        c.send_raw(b'{"execute": "query-sta')
        c.close()
        wait_running(q)
        wait_running(q2)
        crowd(sock, 3)
        wait_running(q)

        # quit from the second client: a reply, then vessel-run exits 0.
        r = q2.execute("quit", id="bye")
        check(r == {"return": {}, "id": "bye"}, f"quit: {r}")
        expect_exit(proc, err, sock, "after quit")
        for c in (q, q2, q3):
            c.close()
    finally:
        stop(proc, err)


def run_boot(vessel_run, bios, boot_iso, tmp):
    sock = os.path.join(tmp, "boot.sock")
    # A stale socket (nobody listens) is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()
    proc, err = start(vessel_run, bios, sock, tmp, [], stale=True)
    try:
        q = Qmp(sock, "boot")
        q.handshake()
        wait_running(q)
        check("inserted" not in cd_info(q), "the drive should start empty")
        q.ok("blockdev-change-medium", {"id": "cd0", "filename": boot_iso})
        q.event("DEVICE_TRAY_MOVED", {"tray-open": False})
        q.ok("system_reset")
        e = q.event("RESET")
        check(e["data"]["guest"] is False, f"RESET: {e}")
        # SeaBIOS boots the CD, whose boot sector powers the machine off
        # (SeaBIOS takes its time over the drives: allow for it).
        e = q.event("SHUTDOWN", timeout=BOOT_TIMEOUT)
        check(e["data"]["guest"] is True, f"SHUTDOWN: {e}")
        expect_exit(proc, err, sock, "after the guest powered off")
        q.close()
    finally:
        stop(proc, err)


def main():
    def body(tmp, vessel_run, bios, boot_iso):
        run_main(vessel_run, bios, tmp)
        print("ok: control protocol, run 1", flush=True)
        run_boot(vessel_run, bios, boot_iso, tmp)
        print("ok: control protocol, run 2 (boot CD via QMP)", flush=True)
    return test_main(__doc__, 3, "vessel-control-", body)


if __name__ == "__main__":
    sys.exit(main())
