#!/usr/bin/env python3
"""Corrupt-image corpus (TAP).

Generates damaged qcow2 images from a healthy one (truncations, offsets past
the end of the file or misaligned, loops and overlaps in the tables, absurd
sizes and counts, bad header extensions, unsupported features) and runs
vessel-img info, check, convert and check -r all on each.  Every run must end
with an exit status (never a signal or a sanitizer report); info and convert
failures must be one line on stderr starting with "vessel-img: ".  Where the
damage has a specific message, it must appear.  Images that `check -r all`
says it repaired must then pass `qemu-img check`.
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
VESSEL_IMG = os.environ.get("VESSEL_IMG")
CS = 65536


def run(*args):
    try:
        return subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, errors="replace", timeout=60)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 999, "", "timed out after 60 s (a hang)")


def be64(b, off):
    return struct.unpack(">Q", b[off:off + 8])[0]


def be32(b, off):
    return struct.unpack(">I", b[off:off + 4])[0]


class Image:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self.data = bytearray(f.read())
        d = self.data
        self.l1_off = be64(d, 40)
        self.l1_size = be32(d, 36)
        self.rt_off = be64(d, 48)
        self.snap_off = be64(d, 64)
        self.l2_off = be64(d, self.l1_off) & 0x00fffffffffffe00
        self.rb_off = be64(d, self.rt_off)
        self.data_off = be64(d, self.l2_off) & 0x00fffffffffffe00

    def put64(self, off, v):
        self.data[off:off + 8] = struct.pack(">Q", v)

    def put32(self, off, v):
        self.data[off:off + 4] = struct.pack(">I", v)

    def save(self, path):
        with open(path, "wb") as f:
            f.write(self.data)


def make_base(tmp):
    """A healthy v3 image with data, zero clusters, a snapshot and compressed data."""
    raw = os.path.join(tmp, "seed.raw")
    with open(raw, "wb") as f:
        f.write(b"".join(b"sector %08d of the seed image\n" % i for i in range(40000))[:1 << 20])
        f.write(os.urandom(1 << 20))
    img = os.path.join(tmp, "base.qcow2")
    r = run(VESSEL_IMG, "convert", "-f", "raw", "-O", "qcow2", raw, img)
    assert r.returncode == 0, r.stderr
    r = run(VESSEL_IMG, "snapshot", "-c", "snap1", img)
    assert r.returncode == 0, r.stderr
    r = run(VESSEL_IMG, "resize", img, "+2M")  # unallocated room to write into
    assert r.returncode == 0, r.stderr
    comp = os.path.join(tmp, "comp.qcow2")
    r = run(QEMU_IMG, "convert", "-c", "-f", "raw", "-O", "qcow2", raw, comp)
    assert r.returncode == 0, r.stderr
    return img, comp


def corpus(base, comp, tmp):
    """Yields (name, bytes, expected substring or None)."""
    b = Image(base)
    size = len(b.data)
    for cut in (0, 3, 8, 71, 100, 104, 511, CS - 1, CS, b.l1_off + 4,
                b.rt_off + 8, b.l2_off + 100, b.data_off + 1000, size - 1):
        if cut < size:
            yield f"truncated at {cut}", bytes(b.data[:cut]), None

    def mutate(name, fn, expect=None, src=b):
        img = Image(src.path)
        fn(img)
        return name, bytes(img.data), expect

    yield mutate("version 1", lambda i: i.put32(4, 1), "version")
    yield mutate("version 4", lambda i: i.put32(4, 4), "version")
    for bits in (0, 8, 22, 63, 0xffffffff):
        yield mutate(f"cluster_bits {bits}", lambda i, v=bits: i.put32(20, v),
                     "cluster size")
    yield mutate("virtual size 2^63", lambda i: i.put64(24, 1 << 63), "size")
    yield mutate("encrypted AES", lambda i: i.put32(32, 1), "encrypted")
    yield mutate("encrypted LUKS", lambda i: i.put32(32, 2), "encrypted")
    yield mutate("l1_size absurd", lambda i: i.put32(36, 0xffffffff), "L1 table")
    yield mutate("l1_size too small", lambda i: i.put32(36, 0), "too small")
    yield mutate("l1 offset past end", lambda i: i.put64(40, 1 << 40), "past the end")
    yield mutate("l1 offset misaligned", lambda i: i.put64(40, i.l1_off + 8), "aligned")
    yield mutate("refcount table past end", lambda i: i.put64(48, 1 << 40), "past the end")
    yield mutate("refcount table misaligned", lambda i: i.put64(48, i.rt_off + 512), "aligned")
    yield mutate("refcount table clusters absurd", lambda i: i.put32(56, 0xffffffff), "refcount table")
    yield mutate("refcount table clusters zero", lambda i: i.put32(56, 0), "refcount table")
    yield mutate("nb_snapshots absurd", lambda i: i.put32(60, 0xffffffff), "snapshots")
    yield mutate("nb_snapshots past table", lambda i: i.put32(60, 5000), None)
    yield mutate("snapshot table past end", lambda i: i.put64(64, 1 << 40), "past the end")
    yield mutate("snapshot l1 size absurd",
                 lambda i: i.put32(i.snap_off + 8, 0xffffffff), "L1 table")
    yield mutate("snapshot l1 past end",
                 lambda i: i.put64(i.snap_off, 1 << 40), "past the end")
    yield mutate("snapshot extra data absurd",
                 lambda i: i.put32(i.snap_off + 36, 0xffffff), "extra data")
    yield mutate("unknown incompatible feature", lambda i: i.put64(72, 1 << 40), "bit 40")
    yield mutate("external data file feature", lambda i: i.put64(72, 1 << 2), "external data file")
    yield mutate("extended L2 feature", lambda i: i.put64(72, 1 << 4), "extended L2")
    yield mutate("zstd compression", lambda i: (i.put64(72, 1 << 3), i.data.__setitem__(104, 1)), "zstd")
    yield mutate("refcount order 7", lambda i: i.put32(96, 7), "refcount width")
    yield mutate("header length tiny", lambda i: i.put32(100, 20), "header length")
    yield mutate("header length huge", lambda i: i.put32(100, 0x7fffffff), "header length")
    yield mutate("backing name outside header", lambda i: (i.put64(8, CS - 4), i.put32(16, 100)), "backing file name")
    yield mutate("backing name absurd", lambda i: (i.put64(8, 200), i.put32(16, 5000)), "backing file name")
    yield mutate("backing file missing", lambda i: (i.put64(8, 4000), i.put32(16, 7),
                                                    i.data.__setitem__(slice(4000, 4007), b"missing")), "backing file")

    def ext_overflow(i):
        # first extension (after the 112-byte header): claim a huge length
        i.put32(112 + 4, 0x7ffffff0)
    yield mutate("header extension length overflow", ext_overflow, "header extension")
    yield mutate("L1 entry past end", lambda i: i.put64(i.l1_off, (1 << 40) | (1 << 63)), "past the end")
    yield mutate("L1 entry misaligned", lambda i: i.put64(i.l1_off, (i.l2_off + 512) | (1 << 63)), "aligned")
    yield mutate("L1 entry reserved bits", lambda i: i.put64(i.l1_off, i.l2_off | 1), "reserved")
    yield mutate("L1 entry points at the L1 table (loop)",
                 lambda i: i.put64(i.l1_off, i.l1_off | (1 << 63)), None)
    yield mutate("L1 entry points at the header",
                 lambda i: i.put64(i.l1_off, CS | (1 << 63)), None)
    yield mutate("L2 entry past end", lambda i: i.put64(i.l2_off + 8, (1 << 40) | (1 << 63)), "past the end")
    yield mutate("L2 entry misaligned", lambda i: i.put64(i.l2_off + 8, (i.data_off + 4096) | (1 << 63)), "aligned")
    yield mutate("L2 entry points at its own table (overlap)",
                 lambda i: i.put64(i.l2_off + 8, i.l2_off | (1 << 63)), None)
    yield mutate("two L2 entries share a cluster (overlap)",
                 lambda i: i.put64(i.l2_off + 16, be64(i.data, i.l2_off)), None)
    yield mutate("L2 entry points at the refcount table",
                 lambda i: i.put64(i.l2_off + 8, i.rt_off | (1 << 63)), None)
    yield mutate("refcount block pointer past end", lambda i: i.put64(i.rt_off, 1 << 40), "past the end")
    yield mutate("refcount block pointer misaligned", lambda i: i.put64(i.rt_off, i.rb_off + 8), "aligned")
    yield mutate("refcount block zeroed",
                 lambda i: i.data.__setitem__(slice(i.rb_off, i.rb_off + CS), bytes(CS)), None)
    yield mutate("refcount table points at the L1 table",
                 lambda i: i.put64(i.rt_off, i.l1_off), None)
    def all_refcounts_max(i):
        i.data[i.rb_off:i.rb_off + CS] = b"\xff" * CS
        for k in range(CS // 8):
            i.put64(i.rt_off + 8 * k, i.rb_off)
    yield mutate("refcount table: every entry at one block of maximal refcounts",
                 all_refcounts_max, None)
    yield mutate("corrupt bit", lambda i: i.put64(72, 2), None)
    yield mutate("dirty bit with refcounts zeroed (lazy refcounts)",
                 lambda i: (i.put64(72, 1), i.put64(80, 1),
                            i.data.__setitem__(slice(i.rb_off + 2, i.rb_off + 200), bytes(198))), None)

    c = Image(comp)
    first = be64(c.data, c.l2_off)
    yield mutate("compressed cluster data garbage",
                 lambda i: i.data.__setitem__(slice((be64(i.data, i.l2_off) & ((1 << 54) - 1)),
                                                    (be64(i.data, i.l2_off) & ((1 << 54) - 1)) + 64),
                                              b"\xff" * 64), "compressed", src=c)
    yield mutate("compressed cluster offset past end",
                 lambda i: i.put64(i.l2_off, (first & ~((1 << 54) - 1)) | (1 << 50)), "past the end", src=c)
    yield mutate("compressed cluster offset in header",
                 lambda i: i.put64(i.l2_off, (first & ~((1 << 54) - 1)) | 100), None, src=c)


def one_line_error(r):
    lines = r.stderr.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("vessel-img: ")


def sanitizer_hit(r):
    return "Sanitizer" in r.stderr or "runtime error:" in r.stderr


def main():
    if not QEMU_IMG:
        print("1..0 # SKIP qemu-img not found (the oracle for this test)")
        return 77
    tmp = tempfile.mkdtemp(prefix="vessel-corrupt-")
    try:
        base, comp = make_base(tmp)
        cases = list(corpus(base, comp, tmp))
        payload = os.path.join(tmp, "payload.raw")
        with open(payload, "wb") as f:
            f.write(os.urandom(3 << 20))
        print(f"1..{len(cases)}")
        failed = 0
        for n, (name, data, expect) in enumerate(cases, 1):
            img = os.path.join(tmp, "case.qcow2")
            problems = []
            msgs = []
            with open(img, "wb") as f:
                f.write(data)
            for args in (["info", img], ["check", img],
                         ["convert", "-O", "raw", img, os.path.join(tmp, "out.raw")],
                         ["info", "-f", "qcow2", img]):
                r = run(VESSEL_IMG, *args)
                if r.returncode < 0 or r.returncode > 63 or sanitizer_hit(r):
                    problems.append(f"{args[0]}: status {r.returncode}: {r.stderr[-2000:]}")
                elif r.returncode != 0 and args[0] != "check" and not one_line_error(r):
                    problems.append(f"{args[0]}: not a one-line error: {r.stderr[:500]!r}")
                if r.returncode != 0:
                    msgs.extend(r.stderr.strip().splitlines() or [r.stdout.strip()])
            if expect and not any(expect.lower() in m.lower() for m in msgs):
                problems.append(f"no message mentions '{expect}': {msgs}")
            # write into the damaged image as it is: refused or done, no crash
            wimg = os.path.join(tmp, "write.qcow2")
            shutil.copy(img, wimg)
            w = run(VESSEL_IMG, "convert", "-n", "-f", "raw", "-O", "qcow2", payload, wimg)
            if w.returncode < 0 or w.returncode > 63 or sanitizer_hit(w):
                problems.append(f"write: status {w.returncode}: {w.stderr[-2000:]}")
            elif w.returncode != 0 and not one_line_error(w):
                problems.append(f"write: not a one-line error: {w.stderr[:500]!r}")
            if name.startswith("refcount block zeroed") and "marked corrupt" not in w.stderr:
                problems.append(f"write over zeroed refcounts not refused: {w.stderr!r}")
            # repair a copy; if Vessel says it is repaired, qemu must agree
            fix = os.path.join(tmp, "fix.qcow2")
            shutil.copy(img, fix)
            r = run(VESSEL_IMG, "check", "-r", "all", fix)
            if r.returncode < 0 or r.returncode > 63 or sanitizer_hit(r):
                problems.append(f"check -r all: status {r.returncode}: {r.stderr[-2000:]}")
            elif r.returncode == 0:
                q = run(QEMU_IMG, "check", fix)
                missing_backing = q.returncode == 1 and "backing" in q.stderr.lower()
                if q.returncode not in (0, 3) and not missing_backing:
                    problems.append(f"repaired image fails qemu-img check ({q.returncode}): {q.stdout[-1500:]}")
                w = run(VESSEL_IMG, "resize", fix, "+64K")
                if w.returncode < 0 or sanitizer_hit(w):
                    problems.append(f"writing the repaired image: status {w.returncode}")
            detail = msgs[0] if msgs else "accepted"
            if problems:
                failed += 1
                print(f"not ok {n} - {name}")
                for p in problems:
                    for ln in p.splitlines()[:15]:
                        print(f"#   {ln}")
            else:
                print(f"ok {n} - {name}: {detail[:160]}")
            sys.stdout.flush()
        return 1 if failed else 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
