/* hostile-virtio: a guest that misuses a virtio-blk device (modern
 * virtio-pci), then shows it still works. Needs one writable virtio-blk
 * disk of at least 1 MiB. Each case must end with an error the guest can
 * see: the request's status byte (IOERR 1, UNSUPP 2), or the device setting
 * DEVICE_NEEDS_RESET (0x40) in device_status, after which the guest resets
 * and re-initialises it. A hang (no used element, no status change within
 * 5 s) fails the case.
 *   kit: hostile-virtio <case>: status=S device_status=DS
 *   KIT: hostile-virtio cases=N resets=R
 *   KIT: PASS hostile-virtio
 * Cases: a looping descriptor chain, a head and a next index out of range,
 * the descriptor table / available ring / used ring outside RAM or in the
 * PCI hole, a data buffer outside RAM, a request past the capacity, a
 * bogus request type, a chain without a writable status, an oversized
 * descriptor, an out-of-range queue notification; then a write, a read
 * back and a flush. */
#include "kit.h"

KIT_GUEST("hostile-virtio");

#define SCRATCH ((uint8_t *)(uintptr_t)0x1000000)  /* 16 MiB */
#define SCRATCH2 ((uint8_t *)(uintptr_t)0x1100000)

static struct kit_vblk v;
static int cases, resets;

static void reinit(const char *why)
{
    int r = kit_vblk_init(&v);
    if (r < 0)
        kit_fail("re-initialising after %s: %d (device_status %02x)", why, r,
                 kit_vblk_get_status(&v));
    resets++;
}

static void desc(int i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    v.desc[i].addr = addr;
    v.desc[i].len = len;
    v.desc[i].flags = flags;
    v.desc[i].next = next;
}

/* A well-formed header in v.hdr, status byte poisoned. */
static void header(uint32_t type, uint64_t sector)
{
    v.hdr->type = type;
    v.hdr->reserved = 0;
    v.hdr->sector = sector;
    *v.status = 0xff;
}

enum want { WANT_RESET = 1, WANT_IOERR = 2, WANT_UNSUPP = 4, WANT_OK = 8 };

/* Submits head, waits, checks the outcome is one of the wanted ones. */
static void outcome(const char *name, int r, unsigned want)
{
    cases++;
    uint8_t ds = kit_vblk_get_status(&v);
    kit_printf("kit: hostile-virtio %s: %s=%d device_status=%02x\n", name,
               r >= 0 ? "status" : "error", r >= 0 ? (int)*v.status : r, ds);
    if (r == KIT_VBLK_ETIMEDOUT)
        kit_fail("%s: no answer within 5 s (device_status %02x)", name, ds);
    bool ok = false;
    if ((r == KIT_VBLK_ERESET || (ds & KIT_VIRTIO_S_NEEDS_RESET)) && (want & WANT_RESET))
        ok = true;
    if (r >= 0 && *v.status == KIT_VIRTIO_BLK_S_IOERR && (want & WANT_IOERR))
        ok = true;
    if (r >= 0 && *v.status == KIT_VIRTIO_BLK_S_UNSUPP && (want & WANT_UNSUPP))
        ok = true;
    if (r >= 0 && *v.status == KIT_VIRTIO_BLK_S_OK && (want & WANT_OK))
        ok = true;
    if (!ok)
        kit_fail("%s: unexpected outcome %d, status byte %02x, device_status %02x", name, r,
                 *v.status, ds);
    if (ds & (KIT_VIRTIO_S_NEEDS_RESET | KIT_VIRTIO_S_FAILED))
        reinit(name);
}

static int submit_wait(uint16_t head)
{
    kit_vblk_submit(&v, head);
    return kit_vblk_wait(&v, 5000000);
}

static uint64_t a(const volatile void *p)
{
    return (uint64_t)(uintptr_t)p;
}

/* Re-programs the rings with one of them moved, then submits a read. */
static void ring_case(const char *name, int which, uint64_t where)
{
    uint64_t c = v.common;
    kit_vblk_reset(&v);
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER);
    mmio_write32(c + KIT_VPCI_GFSELECT, 0);
    mmio_write32(c + KIT_VPCI_GF, 0);
    mmio_write32(c + KIT_VPCI_GFSELECT, 1);
    mmio_write32(c + KIT_VPCI_GF, 1); /* VERSION_1 */
    mmio_write8(c + KIT_VPCI_STATUS,
                KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER | KIT_VIRTIO_S_FEATURES_OK);
    mmio_write16(c + KIT_VPCI_Q_SELECT, 0);
    mmio_write16(c + KIT_VPCI_Q_SIZE, v.qsize);
    mmio_write16(c + KIT_VPCI_Q_MSIX, 0xffff);
    memset((void *)v.desc, 0, 0xc00);
    v.avail_idx = v.used_idx = 0;
    kit_vblk_write64(&v, KIT_VPCI_Q_DESC, which == 0 ? where : a(v.desc));
    kit_vblk_write64(&v, KIT_VPCI_Q_DRIVER, which == 1 ? where : a(v.avail));
    kit_vblk_write64(&v, KIT_VPCI_Q_DEVICE, which == 2 ? where : a(v.used));
    mmio_write16(c + KIT_VPCI_Q_ENABLE, 1);
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER |
                                         KIT_VIRTIO_S_FEATURES_OK | KIT_VIRTIO_S_DRIVER_OK);
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, KIT_VIRTQ_DESC_F_NEXT, 1);
    desc(1, a(SCRATCH), 512, KIT_VIRTQ_DESC_F_NEXT | KIT_VIRTQ_DESC_F_WRITE, 2);
    desc(2, a(v.status), 1, KIT_VIRTQ_DESC_F_WRITE, 0);
    int r = submit_wait(0);
    if (which == 2 && r == KIT_VBLK_ETIMEDOUT) {
        /* The used element went where the driver said (nowhere): what
         * counts is that the device reports the fault. */
        r = (kit_vblk_get_status(&v) & KIT_VIRTIO_S_NEEDS_RESET) ? KIT_VBLK_ERESET : r;
    }
    outcome(name, r, WANT_RESET);
}

void kit_main(void)
{
    int r = kit_vblk_find(&v, 0);
    if (r < 0)
        kit_fail("no virtio-blk device (%d)", r);
    if ((r = kit_vblk_init(&v)) < 0)
        kit_fail("virtio-blk init failed (%d)", r);
    if (v.capacity < 2048)
        kit_fail("the disk has %llu sectors, need 2048", (unsigned long long)v.capacity);
    kit_printf("kit: hostile-virtio: %02x:%02x.%x sectors=%llu queue=%u\n", v.pci.bus,
               v.pci.dev, v.pci.fn, (unsigned long long)v.capacity, v.qsize);
    uint64_t ram_end = kit_ram_end();
    uint16_t wr = KIT_VIRTQ_DESC_F_WRITE, nx = KIT_VIRTQ_DESC_F_NEXT;

    /* A looping chain: 0 -> 1 -> 2 -> 1 ... (all writable after the header,
     * so only the loop is wrong) */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, a(SCRATCH), 512, nx | wr, 2);
    desc(2, a(v.status), 1, nx | wr, 1);
    outcome("looping descriptor chain", submit_wait(0), WANT_RESET);

    /* A chain that loops onto itself. */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 0);
    outcome("self-looping descriptor", submit_wait(0), WANT_RESET);

    /* Head index out of range. */
    outcome("head index out of range", submit_wait((uint16_t)(v.qsize + 3)), WANT_RESET);
    outcome("head index 65535", submit_wait(0xffff), WANT_RESET);

    /* Next index out of range. */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, a(SCRATCH), 512, nx | wr, 200);
    outcome("next index out of range", submit_wait(0), WANT_RESET);

    /* The rings outside RAM and in the PCI hole. */
    ring_case("descriptor table outside RAM", 0, 0x3f000000);
    ring_case("available ring outside RAM", 1, 0x3f000000);
    ring_case("used ring outside RAM", 2, 0x3f000000);
    ring_case("descriptor table in the PCI hole", 0, 0xfec00000);
    ring_case("used ring at 2^64 - 4096", 2, 0xfffffffffffff000ULL);
    reinit("the ring cases");

    /* A data buffer outside RAM, one across the end of RAM. */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, 0x3f000000, 512, nx | wr, 2);
    desc(2, a(v.status), 1, wr, 0);
    outcome("data buffer outside RAM", submit_wait(0), WANT_RESET | WANT_IOERR);
    header(KIT_VIRTIO_BLK_T_OUT, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, ram_end - 256, 512, nx, 2);
    desc(2, a(v.status), 1, wr, 0);
    outcome("data buffer across the end of RAM", submit_wait(0), WANT_RESET | WANT_IOERR);

    /* An oversized descriptor (4 GiB - 1 bytes). */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, a(SCRATCH), 0xffffffffu, nx | wr, 2);
    desc(2, a(v.status), 1, wr, 0);
    outcome("4 GiB data descriptor", submit_wait(0), WANT_RESET | WANT_IOERR);

    /* Past the capacity. */
    outcome("read past the capacity",
            kit_vblk_request(&v, KIT_VIRTIO_BLK_T_IN, v.capacity, SCRATCH, 512, true),
            WANT_IOERR);
    outcome("read across the capacity",
            kit_vblk_request(&v, KIT_VIRTIO_BLK_T_IN, v.capacity - 1, SCRATCH, 1024, true),
            WANT_IOERR);
    outcome("write past the capacity",
            kit_vblk_request(&v, KIT_VIRTIO_BLK_T_OUT, v.capacity, SCRATCH, 512, false),
            WANT_IOERR);
    outcome("read at sector 2^63",
            kit_vblk_request(&v, KIT_VIRTIO_BLK_T_IN, 1ULL << 63, SCRATCH, 512, true),
            WANT_IOERR);

    /* A bogus request type. */
    outcome("request type 0x55",
            kit_vblk_request(&v, 0x55, 0, SCRATCH, 512, true), WANT_UNSUPP);

    /* A chain with no writable status byte (header only, then header +
     * a read-only "status"). */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, 0, 0);
    outcome("header only", submit_wait(0), WANT_RESET | WANT_IOERR);
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 16, nx, 1);
    desc(1, a(v.status), 1, 0, 0);
    outcome("read-only status", submit_wait(0), WANT_RESET | WANT_IOERR);
    /* A header shorter than 16 bytes. */
    header(KIT_VIRTIO_BLK_T_IN, 0);
    desc(0, a(v.hdr), 8, nx, 1);
    desc(1, a(v.status), 1, wr, 0);
    outcome("short header", submit_wait(0), WANT_RESET | WANT_IOERR);

    /* Indirect descriptors: first without having negotiated them. */
    static struct kit_virtq_desc ind[8] __attribute__((aligned(16)));
    header(KIT_VIRTIO_BLK_T_IN, 0);
    ind[0] = (struct kit_virtq_desc){ a(v.hdr), 16, nx, 1 };
    ind[1] = (struct kit_virtq_desc){ a(SCRATCH), 512, nx | wr, 2 };
    ind[2] = (struct kit_virtq_desc){ a(v.status), 1, wr, 0 };
    desc(0, a(ind), 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
    /* The spec only binds the driver here (2.7.5.3.1); QEMU serves it
     * anyway, so a served request is acceptable too. */
    outcome("indirect descriptor not negotiated", submit_wait(0),
            WANT_RESET | WANT_IOERR | WANT_OK);
    v.want_extra = 1ULL << KIT_VIRTIO_F_INDIRECT_DESC;
    reinit("negotiating indirect descriptors");
    if (v.features & (1ULL << KIT_VIRTIO_F_INDIRECT_DESC)) {
        /* A good indirect request first: the feature works. */
        header(KIT_VIRTIO_BLK_T_IN, 0);
        desc(0, a(ind), 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        r = submit_wait(0);
        cases++;
        if (r != 0 || *v.status != 0)
            kit_fail("a good indirect request failed (%d, status %02x)", r, *v.status);
        desc(0, 0x3f000000, 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        outcome("indirect table outside RAM", submit_wait(0), WANT_RESET);
        desc(0, a(ind), 20, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        outcome("indirect table of 20 bytes", submit_wait(0), WANT_RESET);
        ind[1].flags = nx | wr | KIT_VIRTQ_DESC_F_INDIRECT;
        desc(0, a(ind), 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        outcome("nested indirect descriptor", submit_wait(0), WANT_RESET);
        ind[1].flags = nx | wr;
        ind[2].flags = nx | wr;
        ind[2].next = 1;
        desc(0, a(ind), 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        outcome("looping indirect table", submit_wait(0), WANT_RESET);
        ind[2].flags = nx | wr;
        ind[2].next = 9;
        desc(0, a(ind), 3 * 16, KIT_VIRTQ_DESC_F_INDIRECT, 0);
        outcome("indirect next out of range", submit_wait(0), WANT_RESET);
    } else {
        kit_printf("kit: hostile-virtio: no VIRTIO_F_RING_INDIRECT_DESC offered\n");
    }

    /* A notification for a queue that does not exist: ignored. */
    mmio_write16(v.notify + 7ull * v.notify_mult, 7);
    cases++;

    /* Still working: write a pattern to sectors 100..107, read it back. */
    for (int i = 0; i < 4096; i++)
        SCRATCH[i] = (uint8_t)(i * 7 + 3);
    memset(SCRATCH2, 0, 4096);
    if ((r = kit_vblk_write(&v, 100, 8, SCRATCH)) != 0)
        kit_fail("a good write failed after the abuse (%d)", r);
    if ((r = kit_vblk_read(&v, 100, 8, SCRATCH2)) != 0)
        kit_fail("a good read failed after the abuse (%d)", r);
    if (memcmp(SCRATCH, SCRATCH2, 4096) != 0)
        kit_fail("the good read returned other data than was written");
    if (v.has_flush && (r = kit_vblk_flush(&v)) != 0)
        kit_fail("a flush failed after the abuse (%d)", r);
    kit_printf("kit: hostile-virtio good write, read back, flush: ok\n");
    kit_vblk_reset(&v);
    kit_printf("KIT: hostile-virtio cases=%d resets=%d\n", cases, resets);
    kit_pass();
}
