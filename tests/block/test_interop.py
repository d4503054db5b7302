#!/usr/bin/env python3
"""Interop with qemu-img both ways (TAP).

qemu -> Vessel: images qemu-img/qemu-io write (v2 and v3, cluster sizes 512 B
to 2 MiB, refcount_bits 1 to 64, zero clusters, discards, compressed clusters
from `qemu-img convert -c`, internal snapshots, overlay chains) must read back
byte-exact through `vessel-img convert -O raw`, and `vessel-img info/check`
must agree with qemu-img.
Vessel -> qemu: images vessel-img creates and modifies (convert, snapshot,
resize, commit, rebase) must pass `qemu-img check` and `qemu-img compare`.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

QEMU_IMG = shutil.which("qemu-img")
QEMU_IO = shutil.which("qemu-io")
VESSEL_IMG = os.environ.get("VESSEL_IMG")

results = []


def run(*args, check=True):
    r = subprocess.run(list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def vimg(*args, check=True):
    return run(VESSEL_IMG, *args, check=check)


def qimg(*args, check=True):
    return run(QEMU_IMG, *args, check=check)


def qio(img, *cmds, fmt="qcow2"):
    args = [QEMU_IO, "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    run(*args, img)


def same_file(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x = fa.read(1 << 20)
            y = fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def vessel_reads_like_qemu(img, tmp, extra_q=(), extra_v=()):
    ref = os.path.join(tmp, "ref.raw")
    out = os.path.join(tmp, "out.raw")
    qimg("convert", *extra_q, "-O", "raw", img, ref)
    vimg("convert", *extra_v, "-O", "raw", img, out)
    if not same_file(ref, out):
        raise AssertionError(f"{img}: Vessel's read differs from qemu-img's")
    os.unlink(ref)
    os.unlink(out)


def check_info_matches(img):
    q = json.loads(qimg("info", "--output=json", img).stdout)
    v = json.loads(vimg("info", "--output=json", img).stdout)
    for key in ("virtual-size", "cluster-size", "format", "backing-filename",
                "backing-filename-format"):
        if q.get(key) != v.get(key):
            raise AssertionError(f"info {key}: qemu {q.get(key)} vessel {v.get(key)}")
    qs = [(s["id"], s["name"]) for s in q.get("snapshots", [])]
    vs = [(s["id"], s["name"]) for s in v.get("snapshots", [])]
    if qs != vs:
        raise AssertionError(f"snapshots: qemu {qs} vessel {vs}")
    qd = q.get("format-specific", {}).get("data", {})
    vd = v.get("format-specific", {}).get("data", {})
    for key in ("compat", "refcount-bits", "lazy-refcounts"):
        if qd.get(key) != vd.get(key):
            raise AssertionError(f"format-specific {key}: qemu {qd.get(key)} vessel {vd.get(key)}")


def random_qemu_writes(img, size, cluster, rng, n=40):
    cmds = []
    for _ in range(n):
        kind = rng.random()
        off = rng.randrange(0, size // 512) * 512
        ln = min(rng.randrange(1, 3 * cluster // 512 + 8) * 512, size - off)
        if ln <= 0:
            continue
        if kind < 0.7:
            cmds.append(f"write -P {rng.randrange(1, 255)} {off} {ln}")
        elif kind < 0.85:
            cmds.append(f"write -z {off} {ln}")
        else:
            cmds.append(f"discard {off} {ln}")
    # qemu-io takes many -c at once
    for i in range(0, len(cmds), 20):
        qio(img, *cmds[i:i + 20])


def test(name):
    def deco(fn):
        results.append((name, fn))
        return fn
    return deco


LAYOUTS = [
    # compat, cluster, refcount_bits, size
    ("1.1", 65536, 16, 32 << 20),
    ("0.10", 65536, 16, 32 << 20),
    ("1.1", 512, 1, 2 << 20),
    ("0.10", 512, 16, 2 << 20),
    ("1.1", 1024, 2, 4 << 20),
    ("1.1", 4096, 4, 8 << 20),
    ("1.1", 8192, 8, 8 << 20),
    ("1.1", 16384, 32, 16 << 20),
    ("1.1", 32768, 64, 16 << 20),
    ("1.1", 2 << 20, 16, 24 << 20),
    ("0.10", 2 << 20, 16, 24 << 20),
]

for compat, cluster, rbits, size in LAYOUTS:
    def make(compat=compat, cluster=cluster, rbits=rbits, size=size):
        def t(tmp, rng):
            img = os.path.join(tmp, "q.qcow2")
            qimg("create", "-q", "-f", "qcow2", "-o",
                 f"compat={compat},cluster_size={cluster},refcount_bits={rbits}",
                 img, str(size))
            random_qemu_writes(img, size, cluster, rng)
            vessel_reads_like_qemu(img, tmp)
            check_info_matches(img)
            r = vimg("check", img, check=False)
            if r.returncode != 0:
                raise AssertionError(f"vessel-img check exit {r.returncode}: {r.stdout}{r.stderr}")
            # Vessel writes into qemu's image; qemu checks and compares
            ref = os.path.join(tmp, "data.raw")
            with open(ref, "wb") as f:
                f.write(rng.randbytes(size // 3) + bytes(size // 3) + rng.randbytes(size - 2 * (size // 3)))
            vimg("convert", "-n", "-f", "raw", "-O", "qcow2", ref, img)
            qimg("check", img)
            qimg("compare", "-f", "raw", "-F", "qcow2", ref, img)
        return t
    test(f"qemu-written compat={compat} cluster={cluster} refcount_bits={rbits}")(make())


@test("compressed clusters (qemu-img convert -c) at several cluster sizes")
def t_compressed(tmp, rng):
    src = os.path.join(tmp, "src.raw")
    size = 6 << 20
    with open(src, "wb") as f:
        # compressible text, random (incompressible), zeroes, repeated bytes
        text = b"".join(b"line %d of some compressible text\n" % i for i in range(60000))
        f.write(text[:2 << 20] + rng.randbytes(1 << 20) + bytes(1 << 20) + b"\xab" * (2 << 20))
    for cluster in (512, 4096, 65536, 2 << 20):
        for compat in ("1.1", "0.10"):
            img = os.path.join(tmp, f"c{cluster}.qcow2")
            qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                 f"cluster_size={cluster},compat={compat}", src, img)
            vessel_reads_like_qemu(img, tmp)
            r = vimg("check", img, check=False)
            if r.returncode != 0:
                raise AssertionError(f"check of compressed image exit {r.returncode}: {r.stdout}")
            # overwrite part of it: compressed clusters get COW'd
            qio(img, "write -P 7 1000 300000")
            assert os.path.getsize(src) == size
            patch = os.path.join(tmp, "patch.raw")
            vimg("convert", "-O", "raw", img, patch)
            vimg("convert", "-n", "-f", "raw", "-O", "qcow2", patch, img)
            qimg("check", img)
            qimg("compare", "-f", "raw", patch, img)
            for f in (img, patch):
                if os.path.exists(f):
                    os.unlink(f)


@test("Vessel compresses (convert -c); qemu reads it")
def t_vessel_compressed(tmp, rng):
    src = os.path.join(tmp, "src.raw")
    with open(src, "wb") as f:
        f.write(b"".join(b"line %d of some text\n" % i for i in range(100000))[:2 << 20]
                + rng.randbytes(1 << 20) + bytes(1 << 20) + b"\x11" * 777777)
    for cluster in (512, 4096, 65536, 2 << 20):
        for compat in ("1.1", "0.10"):
            img = os.path.join(tmp, "v.qcow2")
            vimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                 f"cluster_size={cluster},compat={compat}", src, img)
            qimg("check", img)
            qimg("compare", "-f", "raw", src, img)
            ref = os.path.join(tmp, "q.qcow2")
            qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
                 f"cluster_size={cluster},compat={compat}", src, ref)
            assert os.path.getsize(img) <= os.path.getsize(ref) * 1.05, \
                (cluster, os.path.getsize(img), os.path.getsize(ref))
            qio(img, "write -P 3 4096 100000")   # qemu COWs Vessel's clusters
            qimg("check", img)
            vessel_reads_like_qemu(img, tmp)


@test("qemu snapshots: list, read each, apply and delete in Vessel")
def t_qemu_snapshots(tmp, rng):
    img = os.path.join(tmp, "s.qcow2")
    qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", img, "4M")
    random_qemu_writes(img, 4 << 20, 4096, rng, 20)
    qimg("snapshot", "-c", "first", img)
    random_qemu_writes(img, 4 << 20, 4096, rng, 20)
    qimg("snapshot", "-c", "second", img)
    qimg("resize", img, "6M")
    random_qemu_writes(img, 6 << 20, 4096, rng, 20)
    check_info_matches(img)
    listing = vimg("snapshot", "-l", img).stdout
    assert "first" in listing and "second" in listing, listing
    vessel_reads_like_qemu(img, tmp)
    for snap in ("first", "second"):
        ref = os.path.join(tmp, f"{snap}.raw")
        qimg("convert", "-l", f"snapshot.name={snap}", "-O", "raw", img, ref)
        copy = os.path.join(tmp, "copy.qcow2")
        shutil.copy(img, copy)
        vimg("snapshot", "-a", snap, copy)
        qimg("check", copy)
        qimg("compare", "-f", "raw", "-F", "qcow2", ref, copy)
        os.unlink(copy)
    vimg("snapshot", "-d", "first", img)
    qimg("check", img)
    out = qimg("snapshot", "-l", img).stdout
    assert "first" not in out and "second" in out, out
    # Vessel's snapshots read by qemu
    vimg("snapshot", "-c", "third", img)
    before = os.path.join(tmp, "before.raw")
    qimg("convert", "-O", "raw", img, before)
    qio(img, "write -P 9 0 1M")
    qimg("check", img)
    snap = os.path.join(tmp, "third.raw")
    qimg("convert", "-l", "snapshot.name=third", "-O", "raw", img, snap)
    assert same_file(before, snap), "qemu reads Vessel's snapshot differently"


@test("overlay chain of mixed formats written by qemu")
def t_chain(tmp, rng):
    base = os.path.join(tmp, "base.raw")
    mid = os.path.join(tmp, "mid.qcow2")
    top = os.path.join(tmp, "top.qcow2")
    qimg("create", "-q", "-f", "raw", base, "3M")
    qio(base, "write -P 1 0 3M", fmt="raw")
    qimg("create", "-q", "-f", "qcow2", "-o", "compat=0.10,cluster_size=512",
         "-b", "base.raw", "-F", "raw", mid, "4M")
    random_qemu_writes(mid, 4 << 20, 512, rng, 30)
    qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", "-b", "mid.qcow2",
         "-F", "qcow2", top, "5M")
    random_qemu_writes(top, 5 << 20, 65536, rng, 30)
    for img in (mid, top):
        vessel_reads_like_qemu(img, tmp)
        check_info_matches(img)
    # deeper: 12 levels
    prev = "top.qcow2"
    for i in range(12):
        cur = os.path.join(tmp, f"l{i}.qcow2")
        qimg("create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", "-b", prev,
             "-F", "qcow2", cur)
        qio(cur, f"write -P {i + 20} {i * 300000} 5000")
        prev = f"l{i}.qcow2"
    vessel_reads_like_qemu(os.path.join(tmp, prev), tmp)


@test("Vessel-made images: create options, overlay, commit, rebase, resize")
def t_vessel_made(tmp, rng):
    for opts in ("compat=0.10", "cluster_size=512,refcount_bits=1",
                 "cluster_size=2M,refcount_bits=64", "lazy_refcounts=on",
                 "cluster_size=4K,refcount_bits=8"):
        img = os.path.join(tmp, "v.qcow2")
        vimg("create", "-q", "-f", "qcow2", "-o", opts, img, "5M")
        data = os.path.join(tmp, "data.raw")
        with open(data, "wb") as f:
            f.write(rng.randbytes(1 << 20) + bytes(2 << 20) + rng.randbytes(2 << 20))
        vimg("convert", "-n", "-f", "raw", "-O", "qcow2", data, img)
        qimg("check", img)
        qimg("compare", "-f", "raw", data, img)
        check_info_matches(img)
        vimg("resize", img, "+3M")
        q = json.loads(qimg("info", "--output=json", img).stdout)
        assert q["virtual-size"] == 8 << 20, q
        qimg("check", img)
        if "compat=0.10" not in opts:
            vimg("resize", "--shrink", img, "4M")
            qimg("check", img)
            with open(data, "r+b") as f:
                f.truncate(4 << 20)
            qimg("compare", "-f", "raw", data, img)
        os.unlink(img)
    # overlay, commit, rebase
    base = os.path.join(tmp, "base.qcow2")
    top = os.path.join(tmp, "top.qcow2")
    vimg("create", "-q", "-f", "qcow2", base, "4M")
    qio(base, "write -P 3 0 4M")
    vimg("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
    q = json.loads(qimg("info", "--output=json", top).stdout)
    assert q["backing-filename"] == "base.qcow2" and q["virtual-size"] == 4 << 20, q
    qio(top, "write -P 4 100000 200000", "write -z 1M 64K", "write -P 5 3M 4096")
    expect = os.path.join(tmp, "expect.raw")
    qimg("convert", "-O", "raw", top, expect)
    vimg("commit", top)
    qimg("check", base)
    qimg("check", top)
    qimg("compare", "-f", "raw", expect, base)
    qimg("compare", "-f", "raw", expect, top)
    m = json.loads(qimg("map", "--output=json", top).stdout)
    assert all(e["depth"] > 0 or not e["data"] for e in m), "commit left data in the top"
    # rebase -u onto a copy, then a safe rebase onto a different base
    shutil.copy(base, os.path.join(tmp, "copy.qcow2"))
    vimg("rebase", "-u", "-b", "copy.qcow2", "-F", "qcow2", top)
    q = json.loads(qimg("info", "--output=json", top).stdout)
    assert q["backing-filename"] == "copy.qcow2" and q["backing-filename-format"] == "qcow2", q
    qimg("compare", "-f", "raw", expect, top)
    other = os.path.join(tmp, "other.raw")
    with open(other, "wb") as f:
        f.write(rng.randbytes(4 << 20))
    vimg("rebase", "-b", "other.raw", "-F", "raw", top)
    qimg("check", top)
    qimg("compare", "-f", "raw", expect, top)
    q = json.loads(qimg("info", "--output=json", top).stdout)
    assert q["backing-filename"] == "other.raw", q
    # convert flattens the chain into raw and into qcow2
    for fmt in ("raw", "qcow2"):
        out = os.path.join(tmp, "flat." + fmt)
        vimg("convert", "-O", fmt, top, out)
        if fmt == "qcow2":
            qimg("check", out)
            q = json.loads(qimg("info", "--output=json", out).stdout)
            assert "backing-filename" not in q, q
        qimg("compare", "-f", "raw", expect, out)


@test("snapshots over compressed clusters")
def t_snap_compressed(tmp, rng):
    src = os.path.join(tmp, "src.raw")
    with open(src, "wb") as f:
        f.write(b"abcdefgh" * (256 << 10) + rng.randbytes(1 << 20))
    img = os.path.join(tmp, "c.qcow2")
    qimg("convert", "-c", "-f", "raw", "-O", "qcow2", "-o", "cluster_size=4096", src, img)
    vimg("snapshot", "-c", "before", img)
    qimg("check", img)
    patch = os.path.join(tmp, "patch.raw")
    with open(patch, "wb") as f:
        f.write(rng.randbytes(300000))
    vimg("convert", "-n", "-f", "raw", "-O", "qcow2", patch, img, check=False)
    qio(img, "write -P 5 1M 100000", "discard 2M 64K")
    qimg("check", img)
    snap = os.path.join(tmp, "snap.raw")
    qimg("convert", "-l", "snapshot.name=before", "-O", "raw", img, snap)
    assert same_file(src, snap), "snapshot of compressed data changed"
    vessel_reads_like_qemu(img, tmp)
    vimg("snapshot", "-a", "before", img)
    qimg("check", img)
    qimg("compare", "-f", "raw", src, img)
    vimg("snapshot", "-d", "before", img)
    qimg("check", img)


@test("header extensions kept: backing format, unknown extension; feature names")
def t_header_ext(tmp, rng):
    import struct
    base = os.path.join(tmp, "base.raw")
    with open(base, "wb") as f:
        f.write(bytes(1 << 20))
    img = os.path.join(tmp, "e.qcow2")
    vimg("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", img)

    def exts(path):
        with open(path, "rb") as f:
            d = f.read(65536)
        off = struct.unpack(">I", d[100:104])[0]
        out = {}
        while True:
            t, ln = struct.unpack(">II", d[off:off + 8])
            if t == 0:
                return out, d
            out[t] = d[off + 8:off + 8 + ln]
            off += 8 + ((ln + 7) & ~7)
    e, d = exts(img)
    assert e.get(0xe2792aca) == b"raw", e
    names = e.get(0x6803f857, b"")
    assert b"lazy refcounts" in names and b"dirty bit" in names, names
    # inject an unknown extension before the end marker (room in cluster 0)
    off = struct.unpack(">I", d[100:104])[0]
    while struct.unpack(">I", d[off:off + 4])[0] != 0:
        off += 8 + ((struct.unpack(">I", d[off + 4:off + 8])[0] + 7) & ~7)
    bf_off = struct.unpack(">Q", d[8:16])[0]
    bf_len = struct.unpack(">I", d[16:20])[0]
    name = d[bf_off:bf_off + bf_len]
    new = bytearray(d[:off]) + struct.pack(">II", 0x12345678, 5) + b"hello\0\0\0" + bytes(8)
    nb = len(new)
    new += name
    new[8:16] = struct.pack(">Q", nb)
    with open(img, "r+b") as f:
        f.write(new)
    qimg("check", img)
    vimg("rebase", "-u", "-b", "base.raw", "-F", "raw", img)
    vimg("resize", img, "+1M")
    e, _ = exts(img)
    assert e.get(0x12345678) == b"hello", e
    assert e.get(0xe2792aca) == b"raw", e
    qimg("check", img)
    q = json.loads(qimg("info", "--output=json", img).stdout)
    assert q["backing-filename-format"] == "raw" and q["virtual-size"] == 2 << 20, q


@test("check exit codes and repair of leaks")
def t_check_codes(tmp, rng):
    img = os.path.join(tmp, "leak.qcow2")
    qimg("create", "-q", "-f", "qcow2", img, "4M")
    qio(img, "write -P 1 0 1M")
    # leak: bump the refcount of the header cluster (refcount block entry 0)
    info = json.loads(qimg("info", "--output=json", img).stdout)
    import struct
    with open(img, "r+b") as f:
        hdr = f.read(104)
        rt_off = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt_off)
        rb_off = struct.unpack(">Q", f.read(8))[0]
        f.seek(rb_off)
        f.write(struct.pack(">H", 2))
    assert qimg("check", img, check=False).returncode == 3
    r = vimg("check", img, check=False)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert "leaked clusters" in r.stdout, r.stdout
    r = vimg("check", "-r", "leaks", img, check=False)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    qimg("check", img)
    # corruption: refcount 0 for the L1 table's cluster
    l1_off = struct.unpack(">Q", hdr[40:48])[0]
    with open(img, "r+b") as f:
        hdr = f.read(104)
        rt_off = struct.unpack(">Q", hdr[48:56])[0]
        f.seek(rt_off)
        rb_off = struct.unpack(">Q", f.read(8))[0]
        f.seek(rb_off + 2 * (l1_off // 65536))
        f.write(struct.pack(">H", 0))
    assert qimg("check", img, check=False).returncode == 2
    r = vimg("check", img, check=False)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    r = vimg("check", "-r", "all", img, check=False)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    qimg("check", img)
    del info


def main():
    if not QEMU_IMG or not QEMU_IO:
        print("1..0 # SKIP qemu-img/qemu-io not found (the oracle for this test)")
        return 77
    seed = int(os.environ.get("VESSEL_INTEROP_SEED", "4242"))
    print(f"# seed {seed}")
    print(f"1..{len(results)}")
    failed = 0
    for i, (name, fn) in enumerate(results, 1):
        tmp = tempfile.mkdtemp(prefix="vessel-interop-")
        try:
            fn(tmp, random.Random(seed + i))
            print(f"ok {i} - {name}")
        except Exception as e:  # noqa: BLE001 - report and continue
            failed += 1
            print(f"not ok {i} - {name}")
            for ln in str(e).splitlines()[:30]:
                print(f"#   {ln}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
