#!/usr/bin/env python3
"""Network boot: SeaBIOS runs the NIC's iPXE option ROM (Debian's
ipxe-qemu, in the PCI expansion ROM BAR), iPXE gets an address from
libslirp's DHCP and fetches a script over HTTP from a server this script
runs on 127.0.0.1 (10.0.2.2 from the guest; DHCP's boot file names it).

  test_ipxe.py virtio|e1000 VESSEL-RUN SEABIOS-BIOS

SeaBIOS mirrors its console (and so iPXE's) on COM1 (--firmware-serial-
console). Passes when the script's first line appears on COM1; on a
timeout prints how far the boot got. On this host's nested KVM iPXE may
stop at "starting execution" (QEMU does too); see KVM-HERE.md. Skips (77)
when /dev/kvm is unusable or ipxe-qemu is not installed.
"""
import http.server
import os
import queue
import re
import subprocess
import sys
import threading
import time

ROMS = {"virtio": "/usr/lib/ipxe/qemu/pxe-virtio.rom",
        "e1000": "/usr/lib/ipxe/qemu/pxe-e1000.rom"}
SCRIPT = b"#!ipxe\necho VESSEL-IPXE: script fetched ip ${net0/ip}\npoweroff\n"
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


class Handler(http.server.BaseHTTPRequestHandler):
    fetched = threading.Event()

    def do_GET(self):
        log(f"http: GET {self.path}")
        if self.path != "/boot.ipxe":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(SCRIPT)))
        self.end_headers()
        self.wfile.write(SCRIPT)
        Handler.fetched.set()

    def log_message(self, *args):
        pass


def main():
    model, vessel_run, bios = sys.argv[1:4]
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
    except OSError as e:
        print(f"SKIP: /dev/kvm is not usable here ({e})")
        return 77
    if not os.path.exists(ROMS[model]):
        print(f"SKIP: {ROMS[model]} is missing (apt-get install ipxe-qemu)")
        return 77
    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = httpd.server_address[1]
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cmd = [vessel_run, "--firmware", bios, "--memory", "128M", "--display", "none",
           "--firmware-serial-console", "--serial", "stdio",
           "--net", f"user,model={model},bootfile=http://10.0.2.2:{port}/boot.ipxe"]
    log("running: " + " ".join(cmd))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    lines = queue.Queue()
    partial = [b""]

    def reader():
        buf = b""
        while True:
            chunk = proc.stdout.read1(4096)
            if not chunk:
                lines.put(None)
                return
            buf += chunk
            # SeaBIOS's console mirror uses escape sequences and carriage
            # returns: split on both.
            *done, buf = re.split(rb"[\r\n]+", buf)
            for l in done:
                lines.put(re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", l).decode(errors="replace"))
            partial[0] = buf

    threading.Thread(target=reader, daemon=True).start()
    seen = []
    deadline = time.monotonic() + float(os.environ.get("IPXE_TIMEOUT", "600"))
    ok = False
    try:
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=deadline - time.monotonic())
            except queue.Empty:
                break
            if line is None:
                break
            if line.strip():
                seen.append(line)
                print("guest:", line, flush=True)
            if "VESSEL-IPXE: script fetched" in line:
                ok = True
                break
    finally:
        proc.kill()
        proc.wait()
        httpd.shutdown()
    tail = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", partial[0]).decode(errors="replace")
    if tail.strip():
        seen.append(tail)
        print("guest (no newline yet):", tail, flush=True)
    if ok:
        log("PASS: iPXE fetched and ran the script")
        return 0
    milestones = [("iPXE banner", r"iPXE"), ("DHCP", r"net0:.*(ok|DHCP)|Configuring"),
                  ("HTTP fetch", r"http://10\.0\.2\.2"), ("starting execution", r"starting execution")]
    text = "\n".join(seen)
    for name, rx in milestones:
        log(f"{name}: {'seen' if re.search(rx, text) else 'not seen'}")
    log(f"script fetched over HTTP: {Handler.fetched.is_set()}")
    log("FAIL: the script's line never appeared on COM1")
    return 1


if __name__ == "__main__":
    sys.exit(main())
