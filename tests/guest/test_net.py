#!/usr/bin/env python3
"""The kit guest `net` on Vessel's user-mode network (libslirp).

  test_net.py MODE VESSEL-RUN NET-ELF
  MODE: virtio | e1000 | virtio-offload | e1000-offload | virtio-restrict |
        e1000-restrict | virtio-hostile | e1000-hostile | e1000-second

The guest gets 10.0.2.15 by DHCP, resolves 10.0.2.2 by ARP, pings it, and
sends a UDP datagram to a server this script runs on 127.0.0.1 (reached from
the guest as 10.0.2.2:PORT), which answers "pong: <data>". Then the guest
serves a UDP port and a TCP port that this script reaches through
--net user,hostfwd=udp:127.0.0.1:H1-:7777,hostfwd=tcp:127.0.0.1:H2-:8888.

restrict: --net ...,restrict=on. The host's loopback is outside: the UDP
datagram to 10.0.2.2 gets no answer; the TCP forward still works. (libslirp's
restricted mode drops every UDP datagram from the guest that is not DHCP or
TFTP, so UDP forwards cannot answer there: only TCP is checked.)

second: two NICs (--net user first, a virtio-net at 00:03.0, then the
e1000 under test at 00:15.0 with the second default MAC address, each on a
network of its own); the guest uses the second.

hostile: the guest first misuses the NIC (see guests/net.c), resets it and
then does all of the above; the log must show the drops counted.

Reads the guest's COM1 from a pipe line by line: every wait is on a line.
Skips (77) only when /dev/kvm is unusable.
"""
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time

T0 = time.monotonic()
GUEST_UDP = 7777
GUEST_TCP = 8888


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def kvm_usable():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class UdpServer(threading.Thread):
    """Answers each datagram with "pong: <data>"."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got = []

    def run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(2048)
            except OSError:
                return
            self.got.append(data)
            self.sock.sendto(b"pong: " + data, addr)


class Guest:
    def __init__(self, cmd):
        log("running: " + " ".join(cmd))
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        self.all = []
        self.errors = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        self.deadline = time.monotonic() + 120

    @staticmethod
    def _read(pipe, q):
        for raw in pipe:
            q.put(raw.decode(errors="replace").rstrip("\r\n"))
        q.put(None)

    def _read_err(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.errors.append(line)
            print("stderr:", line, flush=True)

    def wait(self, pattern):
        rx = re.compile(pattern)
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the guest ended before {pattern!r}")
            self.all.append(line)
            print("guest:", line, flush=True)
            assert "KIT: FAIL" not in line, line
            m = rx.search(line)
            if m:
                return m

    def finish(self):
        self.wait(r"KIT: PASS net")
        rc = self.proc.wait(timeout=max(1, self.deadline - time.monotonic()))
        assert rc == 0, f"vessel-run exited with {rc}"


def udp_forward(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    for msg in (b"hello guest", b"quit"):
        s.sendto(msg, ("127.0.0.1", port))
        data, _ = s.recvfrom(2048)
        assert data == b"echo: " + msg, data
        log(f"udp forward: {data!r}")
    s.close()


def tcp_forward(port):
    for msg in (b"hello over tcp", b"quit"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            c.sendall(msg + b"\n")
            got = b""
            while not got.endswith(b"\n"):
                chunk = c.recv(256)
                assert chunk, f"connection closed after {got!r}"
                got += chunk
            assert got == b"echo: " + msg + b"\n", got
            log(f"tcp forward: {got!r}")
            c.shutdown(socket.SHUT_WR)
            assert c.recv(256) == b"", "no FIN from the guest"


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    mode, vessel_run, elf = sys.argv[1:]
    if not kvm_usable():
        print("SKIP: /dev/kvm is not usable here")
        return 77
    model, _, variant = mode.partition("-")
    server = UdpServer()
    server.start()
    hudp, htcp = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    net = (f"user,model={model},hostfwd=udp:127.0.0.1:{hudp}-:{GUEST_UDP},"
           f"hostfwd=tcp:127.0.0.1:{htcp}-:{GUEST_TCP}")
    append = [f"nic={model}", f"host={server.port}", f"tcp={GUEST_TCP}"]
    if variant == "restrict":
        net += ",restrict=on"
    else:
        append.append(f"listen={GUEST_UDP}")
    if variant == "offload":
        append.append("offload")
    if variant == "hostile":
        append.append("hostile")
    nets = ["--net", net]
    mac, slot = "52:54:00:12:34:56", "00:03.0"
    if variant == "second":
        nets = ["--net", "user"] + nets
        mac, slot = "52:54:00:12:34:57", "00:15.0"
    g = Guest([vessel_run, "--kernel", elf, "--memory", "64M", "--display", "none",
               "--serial", "stdio"] + nets + ["--append", " ".join(append)])
    try:
        g.wait(rf"KIT: net nic={model} mac={mac} at {slot}")
        if model == "e1000":
            g.wait(r"KIT: net e1000 eeprom-sum=0xbaba microwire=ok phy-link=1 phy7=error")
        if variant == "hostile":
            g.wait(r"KIT: net hostile done")
        g.wait(r"KIT: net dhcp ip=10\.0\.2\.15 mask=255\.255\.255\.0")
        g.wait(r"KIT: net arp 10\.0\.2\.2 is 52:55:0a:00:02:02")
        g.wait(r"KIT: net ping 10\.0\.2\.2 ok")
        if variant == "restrict":
            g.wait(r"KIT: net udp no reply")
            assert not server.got, f"the host server got {server.got!r}"
        else:
            g.wait(rf'KIT: net udp reply "pong: hello from the guest over {model}"')
            g.wait(rf"KIT: net listening udp {GUEST_UDP}")
            udp_forward(hudp)
        g.wait(rf"KIT: net listening tcp {GUEST_TCP}")
        tcp_forward(htcp)
        g.wait(r"KIT: net tcp connections=2")
        g.finish()
        if variant == "hostile":
            drops = [l for l in g.errors if "so far" in l]
            assert len(drops) >= 3, f"drops not reported: {g.errors!r}"
            # Both directions: bad transmit descriptors and bad receive
            # buffers met by slirp's answers.
            rx = "receive buffer" if model == "e1000" else "receive chain"
            assert any(rx in l for l in drops), f"no receive drop: {drops!r}"
            assert any("transmit" in l for l in drops), f"no transmit drop: {drops!r}"
            log(f"{len(drops)} drop reports")
    finally:
        if g.proc.poll() is None:
            g.proc.kill()
            g.proc.wait()
        server.sock.close()
    log("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
