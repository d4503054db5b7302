/* diskbench: disk throughput measured inside the guest (bench/disk).
 *
 * Command line (key=value words; anything else is ignored):
 *   dev=virtio|ide        the first virtio-blk disk, or the IDE primary master
 *   pattern=seq1m|rand4k  1 MiB requests in order, or 4 KiB at random places
 *   op=read|write
 *   total=N[K|M|G]        bytes to move (default 256M)
 *   qd=N                  requests in flight (virtio; IDE has one at a time)
 *   span=N[K|M|G]         region of the disk used (default: all of it)
 *   flush=0|1             writes: a FLUSH at the end, inside the timed part
 *                         (default 1)
 *
 * Prints
 *   KIT: diskbench dev=D pattern=P op=O qd=Q bytes=B us=T MiB/s=X.Y
 *   KIT: PASS diskbench
 *
 * The CPU work stays small: virtio with several requests in flight through
 * indirect descriptors, IDE through bus-master DMA, polled, and the data is
 * never touched by the guest (writes send whatever the buffer holds). The
 * virtio loop runs at CPL3 (kit_user_call), because on the nested KVM these
 * benches run on CPL0 code is emulated instruction by instruction and the
 * guest's own loop, not the device, would set the pace; it comes back to
 * CPL0 now and then to read the PM timer (ports are CPL0 only there). The
 * IDE loop is mostly port I/O and stays at CPL0. Time is the ACPI PM timer,
 * read around the transfers only, so the boot (SeaBIOS under QEMU) is not
 * counted.
 */
#include "kit.h"

KIT_GUEST("diskbench");

#define DATA_BASE 0x4000000ull   /* 64 MiB: the data buffers */
#define MAX_QD 64

static struct kit_vblk_slot slots[MAX_QD];
static uint32_t prd_table[1024] __attribute__((aligned(8192)));

static const char *arg(const char *key, char *out, size_t size)
{
    size_t n = strlen(key);
    const char *p = kit_boot.cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) > n && !strncmp(p, key, n) && p[n] == '=') {
            size_t len = (size_t)(e - p) - n - 1;
            if (len >= size)
                len = size - 1;
            memcpy(out, p + n + 1, len);
            out[len] = 0;
            return out;
        }
        p = e;
    }
    return NULL;
}

static uint64_t arg_size(const char *key, uint64_t def)
{
    char buf[32];
    if (!arg(key, buf, sizeof(buf)))
        return def;
    uint64_t v = 0;
    const char *p = buf;
    while (*p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    switch (*p) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    }
    return v;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The next request's first sector. */
static uint64_t seq_pos;
static uint64_t next_sector(bool seq, uint64_t span_sectors, uint32_t req_sectors)
{
    uint64_t blocks = span_sectors / req_sectors;
    if (seq) {
        uint64_t s = seq_pos;
        seq_pos += req_sectors;
        if (seq_pos + req_sectors > blocks * req_sectors)
            seq_pos = 0;
        return s;
    }
    return (next_rand() % blocks) * req_sectors;
}

static uint64_t ticks_to_us(uint64_t t)
{
    return t * 1000000 / KIT_PMTMR_HZ;
}

static void report(const char *dev, const char *pattern, const char *op, int qd,
                   uint64_t bytes, uint64_t ticks)
{
    uint64_t us = ticks_to_us(ticks);
    if (us == 0)
        us = 1;
    /* MiB/s with one decimal: bytes * 10 / 2^20 / (us / 1e6) */
    uint64_t x10 = bytes * 10 * 1000000 / us / (1 << 20);
    kit_printf("KIT: diskbench dev=%s pattern=%s op=%s qd=%d bytes=%llu us=%llu "
               "MiB/s=%llu.%llu\n", dev, pattern, op, qd, (unsigned long long)bytes,
               (unsigned long long)us, (unsigned long long)(x10 / 10),
               (unsigned long long)(x10 % 10));
}

struct virtio_loop {
    struct kit_vblk *v;
    bool seq;
    uint32_t type, req;
    int qd;
    uint64_t span_sectors, nreq;
    uint64_t posted, done;
    int status; /* a failed request's status, or -1 */
};

/* One stretch of the timed virtio loop, at CPL3: keeps qd requests in
 * flight until every request is done, a request fails, 1024 more are done
 * or the device stays silent for 2^20 polls; then back to CPL0, which
 * reads the PM timer (keeping its wrap count current) and the device
 * status. Touches memory and MMIO only. */
static uint64_t virtio_loop(uint64_t arg)
{
    struct virtio_loop *l = (struct virtio_loop *)(uintptr_t)arg;
    struct kit_vblk *v = l->v;
    uint32_t sectors = l->req / 512;
    if (l->posted == 0) {
        for (int s = 0; s < l->qd && l->posted < l->nreq; s++, l->posted++)
            kit_vblk_post(v, slots, s, l->type,
                          next_sector(l->seq, l->span_sectors, sectors),
                          DATA_BASE + (uint64_t)s * l->req, l->req);
        kit_vblk_kick(v);
    }
    uint64_t until = l->done + 1024;
    uint32_t idle = 0;
    while (l->done < l->nreq && l->done < until) {
        int st;
        int s = kit_vblk_reap(v, slots, &st);
        if (s < 0) {
            if (++idle == 1u << 20)
                return 0;
            continue;
        }
        idle = 0;
        bool more = false;
        do {
            if (st != KIT_VIRTIO_BLK_S_OK) {
                l->status = st;
                return 0;
            }
            l->done++;
            if (l->posted < l->nreq) {
                kit_vblk_post(v, slots, s, l->type,
                              next_sector(l->seq, l->span_sectors, sectors),
                              DATA_BASE + (uint64_t)s * l->req, l->req);
                l->posted++;
                more = true;
            }
            s = kit_vblk_reap(v, slots, &st);
        } while (s >= 0);
        if (more)
            kit_vblk_kick(v);
    }
    return 0;
}

static void bench_virtio(bool seq, bool write, uint64_t total, int qd, uint64_t span,
                         bool flush, const char *pattern, const char *op)
{
    struct kit_vblk v;
    int r = kit_vblk_find(&v, 0);
    if (r < 0)
        kit_fail("no virtio-blk disk (%d)", r);
    v.want_extra = 1ULL << KIT_VIRTIO_F_INDIRECT_DESC;
    r = kit_vblk_init(&v);
    if (r < 0)
        kit_fail("virtio-blk init %d", r);
    int max = kit_vblk_slots(&v);
    if (qd > max) {
        kit_printf("kit: diskbench: qd %d capped at %d\n", qd, max);
        qd = max;
    }
    uint32_t req = seq ? 1u << 20 : 4096;
    uint64_t span_sectors = span ? span / 512 : v.capacity;
    if (span_sectors > v.capacity)
        span_sectors = v.capacity;
    if (span_sectors < req / 512)
        kit_fail("disk too small: %llu sectors", (unsigned long long)v.capacity);
    uint64_t nreq = total / req;
    uint32_t type = write ? KIT_VIRTIO_BLK_T_OUT : KIT_VIRTIO_BLK_T_IN;

    struct virtio_loop l = { .v = &v, .seq = seq, .type = type, .req = req, .qd = qd,
                             .span_sectors = span_sectors, .nreq = nreq, .status = -1 };
    uint64_t t0 = kit_pmtmr_ticks();
    while (l.done < nreq) {
        kit_user_call(virtio_loop, (uint64_t)(uintptr_t)&l);
        kit_pmtmr_ticks();
        if (l.status >= 0)
            kit_fail("virtio-blk request failed: status %d", l.status);
        if (kit_vblk_get_status(&v) & KIT_VIRTIO_S_NEEDS_RESET)
            kit_fail("virtio-blk needs reset");
    }
    if (write && flush && v.has_flush) {
        r = kit_vblk_flush(&v);
        if (r != 0)
            kit_fail("virtio-blk flush %d", r);
    }
    uint64_t t1 = kit_pmtmr_ticks();
    report("virtio", pattern, op, qd, nreq * req, t1 - t0);
}

static void bench_ide(bool seq, bool write, uint64_t total, uint64_t span, bool flush,
                      const char *pattern, const char *op)
{
    struct kit_ata_dev d;
    kit_ata_init_pos(&d, 0);
    if (kit_ata_probe(&d) != KIT_ATA_DISK)
        kit_fail("no IDE disk at the primary master");
    uint16_t bm = kit_ata_bm_find(&d);
    if (!bm)
        kit_fail("no bus-master IDE");
    if (!d.lba48)
        kit_fail("the IDE disk has no LBA48");
    uint32_t req = seq ? 1u << 20 : 4096;
    uint64_t span_sectors = span ? span / 512 : d.sectors;
    if (span_sectors > d.sectors)
        span_sectors = d.sectors;
    if (span_sectors < req / 512)
        kit_fail("disk too small: %llu sectors", (unsigned long long)d.sectors);
    uint64_t nreq = total / req;

    uint32_t prd = (uint32_t)(uintptr_t)prd_table;
    uint64_t t0 = kit_pmtmr_ticks();
    for (uint64_t i = 0; i < nreq; i++) {
        uint64_t lba = next_sector(seq, span_sectors, req / 512);
        int r = kit_ata_dma_start(&d, bm, prd, write, lba, req / 512, (uint32_t)DATA_BASE);
        if (r < 0)
            kit_fail("ide dma start at %llu: %d", (unsigned long long)lba, r);
        uint32_t spins = 0;
        while ((r = kit_ata_dma_poll(&d, bm)) == 1) {
            if ((++spins & 0xfff) == 0)
                kit_pmtmr_ticks();
        }
        if (r < 0)
            kit_fail("ide dma at %llu: %d", (unsigned long long)lba, r);
        if ((i & 63) == 0)
            kit_pmtmr_ticks();
    }
    if (write && flush) {
        int r = kit_ata_flush(&d);
        if (r < 0)
            kit_fail("ide flush %d", r);
    }
    uint64_t t1 = kit_pmtmr_ticks();
    report("ide", pattern, op, 1, nreq * req, t1 - t0);
}

void kit_main(void)
{
    char dev[16] = "virtio", pattern[16] = "seq1m", op[16] = "read", tmp[16];
    arg("dev", dev, sizeof(dev));
    arg("pattern", pattern, sizeof(pattern));
    arg("op", op, sizeof(op));
    uint64_t total = arg_size("total", 256ull << 20);
    int qd = (int)arg_size("qd", 1);
    uint64_t span = arg_size("span", 0);
    bool flush = !(arg("flush", tmp, sizeof(tmp)) && tmp[0] == '0');
    if (qd < 1)
        qd = 1;
    if (qd > MAX_QD)
        qd = MAX_QD;
    bool seq;
    if (!strcmp(pattern, "seq1m"))
        seq = true;
    else if (!strcmp(pattern, "rand4k"))
        seq = false;
    else
        kit_fail("pattern=%s: not seq1m or rand4k", pattern);
    bool write;
    if (!strcmp(op, "read"))
        write = false;
    else if (!strcmp(op, "write"))
        write = true;
    else
        kit_fail("op=%s: not read or write", op);
    if (!kit_pmtmr_present())
        kit_fail("no ACPI PM timer");
    uint64_t need = DATA_BASE + (uint64_t)qd * (seq ? 1u << 20 : 4096);
    if (kit_ram_end() < need)
        kit_fail("needs %llu MiB of RAM", (unsigned long long)(need >> 20));
    kit_printf("kit: diskbench: %s\n", kit_boot.cmdline);
    if (!strcmp(dev, "virtio"))
        bench_virtio(seq, write, total, qd, span, flush, pattern, op);
    else if (!strcmp(dev, "ide"))
        bench_ide(seq, write, total, span, flush, pattern, op);
    else
        kit_fail("dev=%s: not virtio or ide", dev);
    kit_pass();
}
