#!/usr/bin/env python3
"""Network figures from inside a kit guest, Vessel beside QEMU.

  bench-net.py --vessel-run PATH --guest netbench.elf [--qemu PATH]
               [--runs N] [--only virtio|e1000]

The kit guest `netbench` (tests/guest-kit/guests/netbench.c) measures with
the ACPI PM timer, so neither engine's boot counts (QEMU boots the
multiboot image through SeaBIOS with -kernel):
  - ping RTT: ICMP echo to 10.0.2.2, answered by libslirp itself;
  - UDP RTT: a datagram to an echo server this script runs on 127.0.0.1;
  - guest → host: datagrams of 1400 bytes to a sink here, as fast as the
    NIC takes them (the guest's rate; the sink's count is printed too);
  - host → guest: datagrams of 1400 bytes through hostfwd=udp, paced by the
    guest's "ack" every 16 (at most WINDOW in flight, so nothing is lost to
    socket buffers).
Both engines use the user-mode network through the same libslirp (QEMU's
-netdev user; its virtio-net-pci with disable-legacy=on, so the guest
sees the same 1af4:1041) and the same guest file.

Prints one table: metric | Vessel | QEMU | ratio, medians of --runs
interleaved runs. The ratio is Vessel / QEMU for rates and QEMU / Vessel
for round-trip times: above 1 is better for Vessel on every row.
"""
import argparse
import os
import queue
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

SIZE = 1400
TX_FRAMES = 5000
RX_FRAMES = 5000
RTT = 200
WINDOW = 48
ACK_EVERY = 16
GUEST_PORT = 9000


class Udp(threading.Thread):
    """An echo server (echo=True) or a sink that counts."""

    def __init__(self, echo):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.echo = echo
        self.count = 0

    def run(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            self.count += 1
            if self.echo:
                self.sock.sendto(data, addr)


def blast(port, n):
    """Sends n datagrams to 127.0.0.1:port, at most WINDOW ahead of the
    guest's acks."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    payload = bytes(i & 255 for i in range(SIZE))
    sent = acks = 0
    stall = time.monotonic()
    while sent < n:
        while sent < n and sent - acks * ACK_EVERY < WINDOW:
            try:
                s.send(payload)
            except BlockingIOError:
                break
            sent += 1
        r, _, _ = select.select([s], [], [], 0.5)
        if r:
            while True:
                try:
                    s.recv(64)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                acks += 1
                stall = time.monotonic()
        elif time.monotonic() - stall > 0.5:
            acks = (sent - WINDOW // 2) // ACK_EVERY + 1  # resynchronise
            stall = time.monotonic()
    s.close()


def run_guest(cmd, hostfwd_port, timeout=300):
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    lines = queue.Queue()

    def reader():
        for raw in proc.stdout:
            lines.put(raw.decode(errors="replace").strip())
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()
    out = {}
    deadline = time.monotonic() + timeout
    try:
        while True:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            if "KIT: FAIL" in line:
                raise RuntimeError(line)
            m = re.search(r"KIT: netbench (ping|udp-rtt) n=(\d+) lost=(\d+) rtt_us=(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(4))
                out[m.group(1) + "-lost"] = int(m.group(3))
            m = re.search(r"KIT: netbench (tx|rx) frames=(\d+) bytes=(\d+) us=(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(3)) / max(1, int(m.group(4)))  # MB/s
                out[m.group(1) + "-frames"] = int(m.group(2))
            if "KIT: netbench rx ready" in line:
                threading.Thread(target=blast, args=(hostfwd_port, RX_FRAMES),
                                 daemon=True).start()
            if "KIT: PASS netbench" in line:
                break
    except queue.Empty:
        raise RuntimeError(f"timed out: {' '.join(cmd)}")
    finally:
        proc.kill()
        proc.wait()
    return out


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vessel-run", required=True)
    ap.add_argument("--guest", required=True)
    ap.add_argument("--qemu", default=shutil.which("qemu-system-x86_64"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only")
    a = ap.parse_args()
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"bench-net: /dev/kvm is not usable ({e})")
        return 1
    echo, sink = Udp(True), Udp(False)
    echo.start()
    sink.start()
    append = (f"rtt={RTT} echo={echo.port} tx={TX_FRAMES} size={SIZE} sink={sink.port} "
              f"rx={RX_FRAMES} listen={GUEST_PORT}")
    models = [m for m in ("virtio", "e1000") if not a.only or a.only == m]
    results = {}
    for run in range(a.runs):
        for model in models:
            for engine in ("vessel", "qemu"):
                if engine == "qemu" and not a.qemu:
                    continue
                hport = free_udp_port()
                fwd = f"hostfwd=udp:127.0.0.1:{hport}-:{GUEST_PORT}"
                args = f"nic={model} {append}"
                if engine == "vessel":
                    cmd = [a.vessel_run, "--kernel", a.guest, "--memory", "128M",
                           "--display", "none", "--serial", "stdio",
                           "--net", f"user,model={model},{fwd}", "--append", args]
                else:
                    dev = ("virtio-net-pci,disable-legacy=on,romfile="
                           if model == "virtio" else "e1000,romfile=")
                    cmd = [a.qemu, "-enable-kvm", "-m", "128", "-kernel", a.guest,
                           "-append", args, "-display", "none", "-serial", "stdio",
                           "-no-reboot", "-netdev", f"user,id=n0,{fwd}",
                           "-device", dev + ",netdev=n0"]
                before = sink.count
                out = run_guest(cmd, hport)
                out["tx-delivered"] = (sink.count - before) / TX_FRAMES
                print(f"run {run + 1} {model} {engine}: " +
                      " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in sorted(out.items())), flush=True)
                for k, v in out.items():
                    results.setdefault((model, engine, k), []).append(v)

    rows = [("ping", "ping RTT (slirp), us", False), ("udp-rtt", "UDP RTT (host echo), us", False),
            ("tx", "guest -> host, MB/s", True), ("rx", "host -> guest, MB/s", True)]
    print()
    print(f"{'metric':34} {'Vessel':>10} {'QEMU':>10} {'ratio':>7}")
    for model in models:
        for key, name, higher in rows:
            v = results.get((model, "vessel", key))
            q = results.get((model, "qemu", key))
            vm = statistics.median(v) if v else None
            qm = statistics.median(q) if q else None
            ratio = ""
            if vm and qm:
                ratio = f"{(vm / qm if higher else qm / vm):7.2f}"
            fmt = (lambda x: f"{x:10.2f}" if x is not None else f"{'-':>10}")
            print(f"{model + ' ' + name:34} {fmt(vm)} {fmt(qm)} {ratio:>7}")
        for engine in ("vessel", "qemu"):
            d = results.get((model, engine, "tx-delivered"))
            f = results.get((model, engine, "rx-frames"))
            if d:
                print(f"  {model} {engine}: sink got {statistics.median(d) * 100:.1f}% of the "
                      f"guest's datagrams; guest got {statistics.median(f) if f else 0:.0f} of "
                      f"{RX_FRAMES}")
    print("(ratio: above 1 is better for Vessel: Vessel/QEMU for rates, QEMU/Vessel for times)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
