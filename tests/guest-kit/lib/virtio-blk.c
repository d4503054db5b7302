/* Vessel guest kit: virtio-blk over modern virtio-pci (virtio 1.2: 4.1.4
 * capabilities, 4.1.4.3 common configuration, 2.7 split virtqueues, 5.2 the
 * block device), polled: no MSI-X vectors, no interrupts; the driver
 * watches the used ring. One queue of KIT_VBLK_QSIZE entries, one request
 * at a time (three descriptors: header, data, status). */
#include "kit.h"

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_NO_VECTOR 0xffff

enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

/* Per device (up to 4): one page for the rings and the request header. */
#define VBLK_MAX 4
static uint8_t ring_pages[VBLK_MAX][4096] __attribute__((aligned(4096)));
static int ring_pages_used;

static uint64_t bar_address(const struct kit_pci_dev *d, int bar)
{
    uint8_t off = (uint8_t)(0x10 + 4 * bar);
    uint32_t lo = kit_pci_read32(d->bus, d->dev, d->fn, off);
    if (lo & 1)
        return 0; /* an I/O BAR: not what virtio-pci modern uses here */
    uint64_t a = lo & ~0xfu;
    if (((lo >> 1) & 3) == 2 && bar < 5)
        a |= (uint64_t)kit_pci_read32(d->bus, d->dev, d->fn, (uint8_t)(off + 4)) << 32;
    return a;
}

struct find_ctx {
    int want, seen;
    struct kit_pci_dev found;
    bool ok;
};

static bool find_cb(const struct kit_pci_dev *d, void *ctx)
{
    struct find_ctx *c = ctx;
    if (d->vendor != 0x1af4 || d->device != 0x1042)
        return true;
    if (c->seen++ != c->want)
        return true;
    c->found = *d;
    c->ok = true;
    return false;
}

int kit_vblk_find(struct kit_vblk *v, int n)
{
    struct find_ctx c = { .want = n };
    memset(v, 0, sizeof(*v));
    kit_pci_scan(find_cb, &c);
    if (!c.ok)
        return -1;
    struct kit_pci_dev *d = &c.found;
    v->pci = *d;
    /* Memory decoding and bus mastering on, INTx off. */
    uint16_t cmd = kit_pci_read16(d->bus, d->dev, d->fn, 0x04);
    kit_pci_write16(d->bus, d->dev, d->fn, 0x04, (uint16_t)(cmd | 0x0006 | 0x0400));
    if (!(kit_pci_read16(d->bus, d->dev, d->fn, 0x06) & 0x10))
        return -2; /* no capability list */
    uint8_t p = kit_pci_read8(d->bus, d->dev, d->fn, 0x34) & 0xfc;
    for (int guard = 0; p && guard < 48; guard++) {
        uint8_t id = kit_pci_read8(d->bus, d->dev, d->fn, p);
        uint8_t next = kit_pci_read8(d->bus, d->dev, d->fn, (uint8_t)(p + 1)) & 0xfc;
        if (id == 0x09) {
            uint8_t type = kit_pci_read8(d->bus, d->dev, d->fn, (uint8_t)(p + 3));
            uint8_t bar = kit_pci_read8(d->bus, d->dev, d->fn, (uint8_t)(p + 4));
            uint32_t off = kit_pci_read32(d->bus, d->dev, d->fn, (uint8_t)(p + 8));
            uint64_t base = bar < 6 ? bar_address(d, bar) : 0;
            uint64_t addr = base ? base + off : 0;
            switch (type) {
            case CAP_COMMON: if (!v->common) v->common = addr; break;
            case CAP_ISR: if (!v->isr) v->isr = addr; break;
            case CAP_DEVICE: if (!v->device) v->device = addr; break;
            case CAP_NOTIFY:
                if (!v->notify) {
                    v->notify = addr;
                    v->notify_mult = kit_pci_read32(d->bus, d->dev, d->fn, (uint8_t)(p + 16));
                }
                break;
            }
        }
        p = next;
    }
    if (!v->common || !v->notify || !v->device || !v->isr)
        return -3;
    /* A 64-bit BAR above the boot map (firmware may put it above 4 GiB). */
    uint64_t top = v->common > v->notify ? v->common : v->notify;
    if (v->device > top)
        top = v->device;
    top = (top + 0x201000) & ~0x1fffffULL;
    if (top > kit_mapped_end() && kit_map_identity(top) < top)
        return -6;
    if (ring_pages_used >= VBLK_MAX)
        return -4;
    uint8_t *pg = ring_pages[ring_pages_used++];
    v->desc = (volatile struct kit_virtq_desc *)pg;
    v->avail = (volatile struct kit_virtq_avail *)(pg + 0x400);
    v->used = (volatile struct kit_virtq_used *)(pg + 0x800);
    v->hdr = (struct kit_vblk_req *)(pg + 0xc00);
    v->status = pg + 0xc40;
    return 0;
}

/* 64-bit fields as two 32-bit writes, low half first (as Linux does). */
void kit_vblk_write64(struct kit_vblk *v, uint32_t field, uint64_t val)
{
    mmio_write32(v->common + field, (uint32_t)val);
    mmio_write32(v->common + field + 4, (uint32_t)(val >> 32));
}

uint8_t kit_vblk_get_status(struct kit_vblk *v)
{
    return mmio_read8(v->common + KIT_VPCI_STATUS);
}

void kit_vblk_reset(struct kit_vblk *v)
{
    mmio_write8(v->common + KIT_VPCI_STATUS, 0);
    struct kit_deadline dl;
    kit_deadline_set(&dl, 1000000);
    while (mmio_read8(v->common + KIT_VPCI_STATUS) != 0 && !kit_deadline_passed(&dl))
        cpu_relax();
}

int kit_vblk_init(struct kit_vblk *v)
{
    uint64_t c = v->common;
    kit_vblk_reset(v);
    if (kit_vblk_get_status(v) != 0)
        return -1;
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK);
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER);
    mmio_write32(c + KIT_VPCI_DFSELECT, 0);
    uint64_t f = mmio_read32(c + KIT_VPCI_DF);
    mmio_write32(c + KIT_VPCI_DFSELECT, 1);
    f |= (uint64_t)mmio_read32(c + KIT_VPCI_DF) << 32;
    v->features = f;
    if (!(f & (1ULL << VIRTIO_F_VERSION_1)))
        return -2;
    uint64_t want = 1ULL << VIRTIO_F_VERSION_1;
    v->has_flush = (f & (1ULL << VIRTIO_BLK_F_FLUSH)) != 0;
    if (v->has_flush)
        want |= 1ULL << VIRTIO_BLK_F_FLUSH;
    want |= v->want_extra & f;
    mmio_write32(c + KIT_VPCI_GFSELECT, 0);
    mmio_write32(c + KIT_VPCI_GF, (uint32_t)want);
    mmio_write32(c + KIT_VPCI_GFSELECT, 1);
    mmio_write32(c + KIT_VPCI_GF, (uint32_t)(want >> 32));
    uint8_t s = KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER | KIT_VIRTIO_S_FEATURES_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (!(kit_vblk_get_status(v) & KIT_VIRTIO_S_FEATURES_OK))
        return -3;
    mmio_write16(c + KIT_VPCI_MSIX_CONFIG, VIRTIO_NO_VECTOR);
    mmio_write16(c + KIT_VPCI_Q_SELECT, 0);
    uint16_t max = mmio_read16(c + KIT_VPCI_Q_SIZE);
    if (max == 0)
        return -4;
    v->qsize = max < KIT_VBLK_QSIZE ? max : KIT_VBLK_QSIZE;
    mmio_write16(c + KIT_VPCI_Q_SIZE, v->qsize);
    mmio_write16(c + KIT_VPCI_Q_MSIX, VIRTIO_NO_VECTOR);
    v->notify_off = mmio_read16(c + KIT_VPCI_Q_NOTIFY_OFF);
    memset((void *)v->desc, 0, 0xc00);
    v->avail_idx = v->used_idx = 0;
    kit_vblk_write64(v, KIT_VPCI_Q_DESC, (uint64_t)(uintptr_t)v->desc);
    kit_vblk_write64(v, KIT_VPCI_Q_DRIVER, (uint64_t)(uintptr_t)v->avail);
    kit_vblk_write64(v, KIT_VPCI_Q_DEVICE, (uint64_t)(uintptr_t)v->used);
    mmio_write16(c + KIT_VPCI_Q_ENABLE, 1);
    s |= KIT_VIRTIO_S_DRIVER_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (kit_vblk_get_status(v) & (KIT_VIRTIO_S_NEEDS_RESET | KIT_VIRTIO_S_FAILED))
        return -5;
    v->capacity = mmio_read32(v->device) | (uint64_t)mmio_read32(v->device + 4) << 32;
    return 0;
}

void kit_vblk_submit(struct kit_vblk *v, uint16_t head)
{
    v->avail->ring[v->avail_idx % v->qsize] = head;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    v->avail_idx++;
    v->avail->idx = v->avail_idx;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    mmio_write16(v->notify + (uint64_t)v->notify_off * v->notify_mult, 0);
}

int kit_vblk_wait(struct kit_vblk *v, uint64_t us)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    for (;;) {
        if (v->used->idx != v->used_idx) {
            __atomic_thread_fence(__ATOMIC_SEQ_CST);
            int id = (int)v->used->ring[v->used_idx % v->qsize].id;
            v->used_idx++;
            return id;
        }
        if (kit_vblk_get_status(v) & KIT_VIRTIO_S_NEEDS_RESET)
            return KIT_VBLK_ERESET;
        if (kit_deadline_passed(&dl))
            return KIT_VBLK_ETIMEDOUT;
        cpu_relax();
    }
}

int kit_vblk_request(struct kit_vblk *v, uint32_t type, uint64_t sector, void *buf,
                     uint32_t len, bool dev_writes)
{
    v->hdr->type = type;
    v->hdr->reserved = 0;
    v->hdr->sector = sector;
    *v->status = 0xff;
    int i = 0;
    v->desc[i].addr = (uint64_t)(uintptr_t)v->hdr;
    v->desc[i].len = sizeof(*v->hdr);
    v->desc[i].flags = KIT_VIRTQ_DESC_F_NEXT;
    v->desc[i].next = (uint16_t)(i + 1);
    i++;
    if (buf && len) {
        v->desc[i].addr = (uint64_t)(uintptr_t)buf;
        v->desc[i].len = len;
        v->desc[i].flags = (uint16_t)(KIT_VIRTQ_DESC_F_NEXT | (dev_writes ? KIT_VIRTQ_DESC_F_WRITE : 0));
        v->desc[i].next = (uint16_t)(i + 1);
        i++;
    }
    v->desc[i].addr = (uint64_t)(uintptr_t)v->status;
    v->desc[i].len = 1;
    v->desc[i].flags = KIT_VIRTQ_DESC_F_WRITE;
    v->desc[i].next = 0;
    kit_vblk_submit(v, 0);
    int r = kit_vblk_wait(v, 10000000);
    if (r < 0)
        return r;
    return *v->status;
}

static int rw(struct kit_vblk *v, uint32_t type, uint64_t sector, uint32_t count, void *buf)
{
    uint8_t *p = buf;
    while (count) {
        uint32_t n = count > 128 ? 128 : count;
        int r = kit_vblk_request(v, type, sector, p, n * 512, type == KIT_VIRTIO_BLK_T_IN);
        if (r != 0)
            return r;
        p += n * 512;
        sector += n;
        count -= n;
    }
    return 0;
}

int kit_vblk_read(struct kit_vblk *v, uint64_t sector, uint32_t count, void *buf)
{
    return rw(v, KIT_VIRTIO_BLK_T_IN, sector, count, buf);
}

int kit_vblk_write(struct kit_vblk *v, uint64_t sector, uint32_t count, const void *buf)
{
    return rw(v, KIT_VIRTIO_BLK_T_OUT, sector, count, (void *)buf);
}

int kit_vblk_flush(struct kit_vblk *v)
{
    return kit_vblk_request(v, KIT_VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false);
}

/* ---- several requests in flight ----------------------------------------- */

static bool has_indirect(struct kit_vblk *v)
{
    return (v->features & v->want_extra & (1ULL << KIT_VIRTIO_F_INDIRECT_DESC)) != 0;
}

int kit_vblk_slots(struct kit_vblk *v)
{
    return has_indirect(v) ? v->qsize : v->qsize / 3;
}

void kit_vblk_post(struct kit_vblk *v, struct kit_vblk_slot *slots, int slot,
                   uint32_t type, uint64_t sector, uint64_t buf, uint32_t len)
{
    struct kit_vblk_slot *s = &slots[slot];
    bool dev_writes = type == KIT_VIRTIO_BLK_T_IN;
    s->hdr.type = type;
    s->hdr.reserved = 0;
    s->hdr.sector = sector;
    s->status = 0xff;
    volatile struct kit_virtq_desc *d;
    uint16_t head, base;
    if (has_indirect(v)) {
        d = s->ind;
        base = 0;
        head = (uint16_t)slot;
    } else {
        d = v->desc;
        base = (uint16_t)(3 * slot);
        head = base;
    }
    d[base].addr = (uint64_t)(uintptr_t)&s->hdr;
    d[base].len = sizeof(s->hdr);
    d[base].flags = KIT_VIRTQ_DESC_F_NEXT;
    d[base].next = (uint16_t)(base + 1);
    d[base + 1].addr = buf;
    d[base + 1].len = len;
    d[base + 1].flags = (uint16_t)(KIT_VIRTQ_DESC_F_NEXT | (dev_writes ? KIT_VIRTQ_DESC_F_WRITE : 0));
    d[base + 1].next = (uint16_t)(base + 2);
    d[base + 2].addr = (uint64_t)(uintptr_t)&s->status;
    d[base + 2].len = 1;
    d[base + 2].flags = KIT_VIRTQ_DESC_F_WRITE;
    d[base + 2].next = 0;
    if (has_indirect(v)) {
        v->desc[head].addr = (uint64_t)(uintptr_t)s->ind;
        v->desc[head].len = sizeof(s->ind);
        v->desc[head].flags = KIT_VIRTQ_DESC_F_INDIRECT;
        v->desc[head].next = 0;
    }
    v->avail->ring[v->avail_idx % v->qsize] = head;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    v->avail_idx++;
    v->avail->idx = v->avail_idx;
}

void kit_vblk_kick(struct kit_vblk *v)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!(v->used->flags & 1)) /* VIRTQ_USED_F_NO_NOTIFY */
        mmio_write16(v->notify + (uint64_t)v->notify_off * v->notify_mult, 0);
}

int kit_vblk_reap(struct kit_vblk *v, struct kit_vblk_slot *slots, int *status)
{
    if (v->used->idx == v->used_idx)
        return -1;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t id = v->used->ring[v->used_idx % v->qsize].id;
    v->used_idx++;
    int slot = has_indirect(v) ? (int)id : (int)id / 3;
    *status = slots[slot].status;
    return slot;
}
