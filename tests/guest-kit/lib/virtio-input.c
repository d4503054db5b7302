/* Vessel guest kit: a virtio-input driver over modern virtio-pci (virtio
 * 1.2: 4.1.4 capabilities, 4.1.4.3 common configuration, 2.7 split
 * virtqueues, 5.8 the input device), polled: the eventq gets
 * KIT_VINPUT_QSIZE buffers of one virtio_input_event each; the driver reads
 * the used ring and posts each buffer again once read. The statusq is set
 * up and left without buffers. */
#include "kit.h"

#define VIRTIO_F_VERSION_1 32
#define VIRTIO_NO_VECTOR 0xffff
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

/* Rings: eventq and statusq, one page each. */
static uint8_t ring_pages[2][4096] __attribute__((aligned(4096)));
static struct kit_vinput_event events[KIT_VINPUT_QSIZE] __attribute__((aligned(16)));

static uint64_t bar_address(const struct kit_pci_dev *d, int bar)
{
    uint8_t off = (uint8_t)(0x10 + 4 * bar);
    uint32_t lo = kit_pci_read32(d->bus, d->dev, d->fn, off);
    if (lo & 1)
        return 0;
    uint64_t a = lo & ~0xfu;
    if (((lo >> 1) & 3) == 2 && bar < 5)
        a |= (uint64_t)kit_pci_read32(d->bus, d->dev, d->fn, (uint8_t)(off + 4)) << 32;
    return a;
}

static bool find_cb(const struct kit_pci_dev *d, void *ctx)
{
    if (d->vendor != 0x1af4 || d->device != 0x1052)
        return true;
    *(struct kit_pci_dev *)ctx = *d;
    return false;
}

int kit_vinput_find(struct kit_vinput *v)
{
    memset(v, 0, sizeof(*v));
    struct kit_pci_dev d = { .vendor = 0 };
    kit_pci_scan(find_cb, &d);
    if (d.vendor != 0x1af4)
        return -1;
    v->pci = d;
    uint16_t cmd = kit_pci_read16(d.bus, d.dev, d.fn, 0x04);
    kit_pci_write16(d.bus, d.dev, d.fn, 0x04, (uint16_t)(cmd | 0x0006 | 0x0400));
    uint8_t p = kit_pci_read8(d.bus, d.dev, d.fn, 0x34) & 0xfc;
    for (int guard = 0; p && guard < 48; guard++) {
        uint8_t id = kit_pci_read8(d.bus, d.dev, d.fn, p);
        uint8_t next = kit_pci_read8(d.bus, d.dev, d.fn, (uint8_t)(p + 1)) & 0xfc;
        if (id == 0x09) {
            uint8_t type = kit_pci_read8(d.bus, d.dev, d.fn, (uint8_t)(p + 3));
            uint8_t bar = kit_pci_read8(d.bus, d.dev, d.fn, (uint8_t)(p + 4));
            uint32_t off = kit_pci_read32(d.bus, d.dev, d.fn, (uint8_t)(p + 8));
            uint64_t base = bar < 6 ? bar_address(&d, bar) : 0;
            uint64_t addr = base ? base + off : 0;
            if (type == CAP_COMMON && !v->common)
                v->common = addr;
            else if (type == CAP_DEVICE && !v->device)
                v->device = addr;
            else if (type == CAP_NOTIFY && !v->notify) {
                v->notify = addr;
                v->notify_mult = kit_pci_read32(d.bus, d.dev, d.fn, (uint8_t)(p + 16));
            }
        }
        p = next;
    }
    if (!v->common || !v->notify || !v->device)
        return -2;
    uint64_t top = v->common > v->notify ? v->common : v->notify;
    if (v->device > top)
        top = v->device;
    top = (top + 0x201000) & ~0x1fffffULL;
    if (top > kit_mapped_end() && kit_map_identity(top) < top)
        return -3;
    return 0;
}

unsigned kit_vinput_config(struct kit_vinput *v, uint8_t select, uint8_t subsel, uint8_t *out)
{
    mmio_write8(v->device + 0, select);
    mmio_write8(v->device + 1, subsel);
    unsigned size = mmio_read8(v->device + 2);
    for (unsigned i = 0; i < size && i < 128; i++)
        out[i] = mmio_read8(v->device + 8 + i);
    return size;
}

static void write64(struct kit_vinput *v, uint32_t field, uint64_t val)
{
    mmio_write32(v->common + field, (uint32_t)val);
    mmio_write32(v->common + field + 4, (uint32_t)(val >> 32));
}

static int setup_queue(struct kit_vinput *v, uint16_t q, uint8_t *page)
{
    uint64_t c = v->common;
    mmio_write16(c + KIT_VPCI_Q_SELECT, q);
    uint16_t max = mmio_read16(c + KIT_VPCI_Q_SIZE);
    if (max < KIT_VINPUT_QSIZE)
        return -1;
    mmio_write16(c + KIT_VPCI_Q_SIZE, KIT_VINPUT_QSIZE);
    mmio_write16(c + KIT_VPCI_Q_MSIX, VIRTIO_NO_VECTOR);
    memset(page, 0, 4096);
    write64(v, KIT_VPCI_Q_DESC, (uint64_t)(uintptr_t)page);
    write64(v, KIT_VPCI_Q_DRIVER, (uint64_t)(uintptr_t)(page + 0x400));
    write64(v, KIT_VPCI_Q_DEVICE, (uint64_t)(uintptr_t)(page + 0x800));
    if (q == 0)
        v->notify_off = mmio_read16(c + KIT_VPCI_Q_NOTIFY_OFF);
    mmio_write16(c + KIT_VPCI_Q_ENABLE, 1);
    return 0;
}

int kit_vinput_init(struct kit_vinput *v)
{
    uint64_t c = v->common;
    mmio_write8(c + KIT_VPCI_STATUS, 0);
    if (mmio_read8(c + KIT_VPCI_STATUS) != 0)
        return -1;
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK);
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER);
    mmio_write32(c + KIT_VPCI_DFSELECT, 1);
    if (!(mmio_read32(c + KIT_VPCI_DF) & 1))
        return -2;
    mmio_write32(c + KIT_VPCI_GFSELECT, 0);
    mmio_write32(c + KIT_VPCI_GF, 0);
    mmio_write32(c + KIT_VPCI_GFSELECT, 1);
    mmio_write32(c + KIT_VPCI_GF, 1); /* VERSION_1 */
    uint8_t s = KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER | KIT_VIRTIO_S_FEATURES_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (!(mmio_read8(c + KIT_VPCI_STATUS) & KIT_VIRTIO_S_FEATURES_OK))
        return -3;
    mmio_write16(c + KIT_VPCI_MSIX_CONFIG, VIRTIO_NO_VECTOR);
    if (setup_queue(v, 0, ring_pages[0]) || setup_queue(v, 1, ring_pages[1]))
        return -4;
    v->desc = (volatile struct kit_virtq_desc *)ring_pages[0];
    v->avail = (volatile struct kit_vinput_avail *)(ring_pages[0] + 0x400);
    v->used = (volatile struct kit_vinput_used *)(ring_pages[0] + 0x800);
    v->events = events;
    v->avail_idx = v->used_idx = 0;
    for (uint16_t i = 0; i < KIT_VINPUT_QSIZE; i++) {
        v->desc[i].addr = (uint64_t)(uintptr_t)&events[i];
        v->desc[i].len = sizeof(events[i]);
        v->desc[i].flags = KIT_VIRTQ_DESC_F_WRITE;
        v->desc[i].next = 0;
        v->avail->ring[v->avail_idx % KIT_VINPUT_QSIZE] = i;
        v->avail_idx++;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    v->avail->idx = v->avail_idx;
    s |= KIT_VIRTIO_S_DRIVER_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (mmio_read8(c + KIT_VPCI_STATUS) & (KIT_VIRTIO_S_NEEDS_RESET | KIT_VIRTIO_S_FAILED))
        return -5;
    kit_vinput_kick(v);
    return 0;
}

void kit_vinput_kick(struct kit_vinput *v)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    mmio_write16(v->notify + (uint64_t)v->notify_off * v->notify_mult, 0);
}

uint8_t kit_vinput_status(struct kit_vinput *v)
{
    return mmio_read8(v->common + KIT_VPCI_STATUS);
}

bool kit_vinput_next(struct kit_vinput *v, struct kit_vinput_event *out)
{
    if (v->used->idx == v->used_idx)
        return false;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t id = v->used->ring[v->used_idx % KIT_VINPUT_QSIZE].id;
    v->used_idx++;
    if (id >= KIT_VINPUT_QSIZE)
        id = 0;
    *out = events[id];
    /* The buffer goes back at once (the caller kicks). */
    v->avail->ring[v->avail_idx % KIT_VINPUT_QSIZE] = (uint16_t)id;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    v->avail_idx++;
    v->avail->idx = v->avail_idx;
    return true;
}
