#!/usr/bin/env python3
"""Check guest-kit images without booting them.

Each file must be an ELF32 i386 executable with
  - a multiboot v1 header (magic, flags, checksum) 4-byte aligned in the
    first 8 KiB, with no unsupported required flags,
  - an entry point inside a PT_LOAD segment,
  - a PT_NOTE holding a "Xen" note of type 18 (XEN_ELFNOTE_PHYS32_ENTRY)
    whose 32-bit address lies inside a PT_LOAD segment.
"""
import struct
import sys

MB_MAGIC = 0x1BADB002


def check(path):
    data = open(path, 'rb').read()
    if data[:4] != b'\x7fELF':
        return 'not an ELF file'
    if data[4] != 1 or data[5] != 1:
        return 'not ELF32 little-endian'
    (e_type, e_machine, _, e_entry, e_phoff, _, _, _, e_phentsize,
     e_phnum) = struct.unpack_from('<HHIIIIIHHH', data, 16)
    if e_type != 2 or e_machine != 3:
        return 'not an i386 executable (type %d machine %d)' % (e_type, e_machine)

    loads, notes = [], []
    for i in range(e_phnum):
        p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, _, _ = \
            struct.unpack_from('<IIIIIIII', data, e_phoff + i * e_phentsize)
        if p_type == 1:
            loads.append((p_paddr, p_memsz))
        elif p_type == 4:
            notes.append((p_offset, p_filesz))

    def loaded(addr):
        return any(base <= addr < base + size for base, size in loads)

    if not loaded(e_entry):
        return 'entry 0x%x outside the PT_LOAD segments' % e_entry

    for off in range(0, min(len(data), 8192) - 12 + 1, 4):
        magic, flags, csum = struct.unpack_from('<III', data, off)
        if magic == MB_MAGIC:
            if (magic + flags + csum) & 0xffffffff:
                return 'multiboot header at 0x%x: bad checksum' % off
            if flags & 0x0000fffc:
                return 'multiboot header requires unsupported flags 0x%x' % flags
            break
    else:
        return 'no multiboot header in the first 8 KiB'

    pvh = None
    for off, size in notes:
        end = off + size
        while off + 12 <= end:
            namesz, descsz, ntype = struct.unpack_from('<III', data, off)
            name = data[off + 12:off + 12 + namesz]
            desc_off = off + 12 + ((namesz + 3) & ~3)
            if name == b'Xen\0' and ntype == 18 and descsz >= 4:
                pvh = struct.unpack_from('<I', data, desc_off)[0]
            off = desc_off + ((descsz + 3) & ~3)
    if pvh is None:
        return 'no Xen PVH entry note (type 18) in a PT_NOTE segment'
    if not loaded(pvh):
        return 'PVH entry 0x%x outside the PT_LOAD segments' % pvh
    return None


def main():
    bad = 0
    for path in sys.argv[1:]:
        err = check(path)
        print('%s: %s' % (path, err or 'ok'))
        bad += err is not None
    return 1 if bad or len(sys.argv) < 2 else 0


if __name__ == '__main__':
    sys.exit(main())
