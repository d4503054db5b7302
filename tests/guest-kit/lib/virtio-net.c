/* Vessel guest kit: a polled virtio-net driver over modern virtio-pci
 * (virtio 1.2: 4.1.4 capabilities, 4.1.4.3 common configuration, 2.7 split
 * virtqueues, 5.1 the network device). Features taken when offered:
 * VERSION_1, MAC, MRG_RXBUF, CSUM. Queue 0 (receive) gets KIT_NIC_QSIZE
 * buffers of KIT_NIC_BUF bytes, posted again once read; queue 1 (transmit)
 * takes one descriptor per frame (header and frame in one buffer) and
 * waits for it to come back.
 *
 * DMA area: queue q's ring page at q * 0x1000 (descriptors, avail at
 * 0x400, used at 0x800); receive buffers from 0x2000, transmit buffers from
 * 0xA000, KIT_NIC_BUF bytes each. */
#include "net.h"

#define VIRTIO_F_VERSION_1 32
#define VNET_F_CSUM 0
#define VNET_F_MAC 5
#define VNET_F_MRG_RXBUF 15
#define VNET_HDR 12
#define NO_VECTOR 0xffff
#define RX_BUFS 0x2000
#define TX_BUFS 0xA000
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

struct ring_avail { uint16_t flags; uint16_t idx; uint16_t ring[KIT_NIC_QSIZE]; uint16_t used_event; };
struct ring_used { uint16_t flags; uint16_t idx; struct kit_virtq_used_elem ring[KIT_NIC_QSIZE]; uint16_t avail_event; };

static volatile struct kit_virtq_desc *desc(struct kit_nic *n, int q)
{
    return (volatile struct kit_virtq_desc *)(n->dma + q * 0x1000);
}
static volatile struct ring_avail *avail(struct kit_nic *n, int q)
{
    return (volatile struct ring_avail *)(n->dma + q * 0x1000 + 0x400);
}
static volatile struct ring_used *used(struct kit_nic *n, int q)
{
    return (volatile struct ring_used *)(n->dma + q * 0x1000 + 0x800);
}

volatile struct kit_virtq_desc *kit_vnet_desc(struct kit_nic *n, int q) { return desc(n, q); }
uint16_t kit_vnet_used_idx(struct kit_nic *n, int q) { return used(n, q)->idx; }

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

struct find_ctx { uint16_t vendor, device; int want, seen; struct kit_pci_dev found; };

static bool find_cb(const struct kit_pci_dev *d, void *p)
{
    struct find_ctx *c = p;
    if (d->vendor != c->vendor || d->device != c->device)
        return true;
    if (c->seen++ < c->want)
        return true;
    c->found = *d;
    return false;
}

/* Shared with e1000.c. */
int kit_nic_find(uint16_t vendor, uint16_t device, int index, struct kit_pci_dev *out)
{
    struct find_ctx c = { vendor, device, index, 0, { .vendor = 0 } };
    kit_pci_scan(find_cb, &c);
    if (c.found.vendor != vendor)
        return -1;
    *out = c.found;
    uint16_t cmd = kit_pci_read16(out->bus, out->dev, out->fn, 0x04);
    kit_pci_write16(out->bus, out->dev, out->fn, 0x04, (uint16_t)(cmd | 0x0007 | 0x0400));
    return 0;
}

static void kick(struct kit_nic *n, int q)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    mmio_write16(n->notify + (uint64_t)n->notify_off[q] * n->notify_mult, (uint16_t)q);
}

uint8_t kit_vnet_status(struct kit_nic *n)
{
    return mmio_read8(n->common + KIT_VPCI_STATUS);
}

void kit_vnet_post_raw(struct kit_nic *n, int q, uint16_t head)
{
    uint16_t *idx = q == 0 ? &n->rx_avail : &n->tx_avail;
    avail(n, q)->ring[*idx % KIT_NIC_QSIZE] = head;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    (*idx)++;
    avail(n, q)->idx = *idx;
    kick(n, q);
}

static void write64(struct kit_nic *n, uint32_t field, uint64_t val)
{
    mmio_write32(n->common + field, (uint32_t)val);
    mmio_write32(n->common + field + 4, (uint32_t)(val >> 32));
}

static int setup_queue(struct kit_nic *n, uint16_t q)
{
    uint64_t c = n->common;
    mmio_write16(c + KIT_VPCI_Q_SELECT, q);
    if (mmio_read16(c + KIT_VPCI_Q_SIZE) < KIT_NIC_QSIZE)
        return -1;
    mmio_write16(c + KIT_VPCI_Q_SIZE, KIT_NIC_QSIZE);
    mmio_write16(c + KIT_VPCI_Q_MSIX, NO_VECTOR);
    memset(n->dma + q * 0x1000, 0, 0x1000);
    write64(n, KIT_VPCI_Q_DESC, (uint64_t)(uintptr_t)desc(n, q));
    write64(n, KIT_VPCI_Q_DRIVER, (uint64_t)(uintptr_t)avail(n, q));
    write64(n, KIT_VPCI_Q_DEVICE, (uint64_t)(uintptr_t)used(n, q));
    n->notify_off[q] = mmio_read16(c + KIT_VPCI_Q_NOTIFY_OFF);
    mmio_write16(c + KIT_VPCI_Q_ENABLE, 1);
    return 0;
}

static int vnet_send(struct kit_nic *n, const void *frame, uint32_t len,
                     uint32_t csum_start, uint32_t csum_offset)
{
    if (len > KIT_NIC_BUF - VNET_HDR)
        return -2;
    /* One frame in flight: wait for the previous one to come back. */
    struct kit_deadline dl;
    kit_deadline_set(&dl, 2000000);
    while (used(n, 1)->idx != n->tx_avail) {
        if (kit_deadline_passed(&dl))
            return KIT_NIC_ETIMEDOUT;
        cpu_relax();
    }
    uint16_t slot = n->tx_avail % KIT_NIC_QSIZE;
    uint8_t *buf = n->dma + TX_BUFS + slot * KIT_NIC_BUF;
    memset(buf, 0, VNET_HDR);
    if (csum_start) {
        buf[0] = 1; /* NEEDS_CSUM */
        buf[6] = (uint8_t)csum_start;
        buf[7] = (uint8_t)(csum_start >> 8);
        buf[8] = (uint8_t)csum_offset;
        buf[9] = (uint8_t)(csum_offset >> 8);
    }
    memcpy(buf + VNET_HDR, frame, len);
    volatile struct kit_virtq_desc *d = &desc(n, 1)[slot];
    d->addr = (uint64_t)(uintptr_t)buf;
    d->len = VNET_HDR + len;
    d->flags = 0;
    d->next = 0;
    kit_vnet_post_raw(n, 1, slot);
    n->sent++;
    return 0;
}

static int vnet_recv(struct kit_nic *n, void *out, uint32_t max)
{
    volatile struct ring_used *u = used(n, 0);
    if (u->idx == n->rx_used)
        return 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint32_t id = u->ring[n->rx_used % KIT_NIC_QSIZE].id;
    uint32_t len = u->ring[n->rx_used % KIT_NIC_QSIZE].len;
    n->rx_used++;
    if (id >= KIT_NIC_QSIZE)
        return -3;
    uint8_t *buf = n->dma + RX_BUFS + id * KIT_NIC_BUF;
    int r = 0;
    if (len >= VNET_HDR && len <= KIT_NIC_BUF) {
        uint16_t num_buffers = (uint16_t)(buf[10] | buf[11] << 8);
        uint32_t flen = len - VNET_HDR;
        if (flen > max)
            flen = max;
        memcpy(out, buf + VNET_HDR, flen);
        r = num_buffers == 1 ? (int)flen : -4; /* our buffers hold any frame */
    }
    /* The buffer goes back at once. */
    desc(n, 0)[id].len = KIT_NIC_BUF;
    desc(n, 0)[id].flags = KIT_VIRTQ_DESC_F_WRITE;
    kit_vnet_post_raw(n, 0, (uint16_t)id);
    if (r > 0)
        n->received++;
    return r;
}

static void vnet_tx_prepare(struct kit_nic *n, const void *frame, uint32_t len)
{
    for (uint16_t i = 0; i < KIT_NIC_QSIZE; i++) {
        uint8_t *buf = n->dma + TX_BUFS + i * KIT_NIC_BUF;
        memset(buf, 0, VNET_HDR);
        memcpy(buf + VNET_HDR, frame, len);
        desc(n, 1)[i].addr = (uint64_t)(uintptr_t)buf;
        desc(n, 1)[i].len = VNET_HDR + len;
        desc(n, 1)[i].flags = 0;
    }
    n->bench_len = len;
}

static uint32_t vnet_tx_burst(struct kit_nic *n, uint32_t count)
{
    volatile struct ring_avail *a = avail(n, 1);
    uint16_t done = used(n, 1)->idx;
    uint32_t posted = 0;
    while (posted < count && (uint16_t)(n->tx_avail - done) < KIT_NIC_QSIZE) {
        a->ring[n->tx_avail % KIT_NIC_QSIZE] = (uint16_t)(n->tx_avail % KIT_NIC_QSIZE);
        n->tx_avail++;
        posted++;
    }
    if (posted) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        a->idx = n->tx_avail;
        if (!(used(n, 1)->flags & 1)) /* VIRTQ_USED_F_NO_NOTIFY */
            kick(n, 1);
        n->sent += posted;
    }
    return posted;
}

static uint32_t vnet_rx_drain(struct kit_nic *n, uint64_t *bytes)
{
    volatile struct ring_used *u = used(n, 0);
    volatile struct ring_avail *a = avail(n, 0);
    uint32_t frames = 0;
    while (u->idx != n->rx_used) {
        uint32_t i = n->rx_used % KIT_NIC_QSIZE;
        uint32_t id = u->ring[i].id, len = u->ring[i].len;
        n->rx_used++;
        *bytes += len > VNET_HDR ? len - VNET_HDR : 0;
        frames++;
        a->ring[n->rx_avail % KIT_NIC_QSIZE] = (uint16_t)(id % KIT_NIC_QSIZE);
        n->rx_avail++;
    }
    if (frames) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        a->idx = n->rx_avail;
        kick(n, 0);
        n->received += frames;
    }
    return frames;
}

int kit_vnet_open(struct kit_nic *n, int index, uint8_t *dma)
{
    memset(n, 0, sizeof(*n));
    n->model = "virtio";
    n->dma = dma;
    if (kit_nic_find(0x1af4, 0x1041, index, &n->pci))
        return -1;
    struct kit_pci_dev *d = &n->pci;
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
            if (type == CAP_COMMON && !n->common)
                n->common = addr;
            else if (type == CAP_DEVICE && !n->device)
                n->device = addr;
            else if (type == CAP_NOTIFY && !n->notify) {
                n->notify = addr;
                n->notify_mult = kit_pci_read32(d->bus, d->dev, d->fn, (uint8_t)(p + 16));
            }
        }
        p = next;
    }
    if (!n->common || !n->notify || !n->device)
        return -2;
    uint64_t top = n->common > n->notify ? n->common : n->notify;
    if (n->device > top)
        top = n->device;
    top = (top + 0x201000) & ~0x1fffffULL;
    if (top > kit_mapped_end() && kit_map_identity(top) < top)
        return -3;

    uint64_t c = n->common;
    mmio_write8(c + KIT_VPCI_STATUS, 0);
    struct kit_deadline dl;
    kit_deadline_set(&dl, 1000000);
    while (mmio_read8(c + KIT_VPCI_STATUS) != 0)
        if (kit_deadline_passed(&dl))
            return -4;
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK);
    mmio_write8(c + KIT_VPCI_STATUS, KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER);
    mmio_write32(c + KIT_VPCI_DFSELECT, 0);
    uint64_t offered = mmio_read32(c + KIT_VPCI_DF);
    mmio_write32(c + KIT_VPCI_DFSELECT, 1);
    offered |= (uint64_t)mmio_read32(c + KIT_VPCI_DF) << 32;
    uint64_t want = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VNET_F_MAC)
                  | (1ULL << VNET_F_MRG_RXBUF) | (1ULL << VNET_F_CSUM);
    if (!(offered & (1ULL << VIRTIO_F_VERSION_1)) || !(offered & (1ULL << VNET_F_MAC)))
        return -5;
    n->features = offered & want;
    mmio_write32(c + KIT_VPCI_GFSELECT, 0);
    mmio_write32(c + KIT_VPCI_GF, (uint32_t)n->features);
    mmio_write32(c + KIT_VPCI_GFSELECT, 1);
    mmio_write32(c + KIT_VPCI_GF, (uint32_t)(n->features >> 32));
    uint8_t s = KIT_VIRTIO_S_ACK | KIT_VIRTIO_S_DRIVER | KIT_VIRTIO_S_FEATURES_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (!(mmio_read8(c + KIT_VPCI_STATUS) & KIT_VIRTIO_S_FEATURES_OK))
        return -6;
    mmio_write16(c + KIT_VPCI_MSIX_CONFIG, NO_VECTOR);
    if (setup_queue(n, 0) || setup_queue(n, 1))
        return -7;
    for (int i = 0; i < 6; i++)
        n->mac[i] = mmio_read8(n->device + i);
    for (uint16_t i = 0; i < KIT_NIC_QSIZE; i++) {
        desc(n, 0)[i].addr = (uint64_t)(uintptr_t)(n->dma + RX_BUFS + i * KIT_NIC_BUF);
        desc(n, 0)[i].len = KIT_NIC_BUF;
        desc(n, 0)[i].flags = KIT_VIRTQ_DESC_F_WRITE;
        avail(n, 0)->ring[i] = i;
    }
    n->rx_avail = KIT_NIC_QSIZE;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    avail(n, 0)->idx = n->rx_avail;
    s |= KIT_VIRTIO_S_DRIVER_OK;
    mmio_write8(c + KIT_VPCI_STATUS, s);
    if (mmio_read8(c + KIT_VPCI_STATUS) & (KIT_VIRTIO_S_NEEDS_RESET | KIT_VIRTIO_S_FAILED))
        return -8;
    kick(n, 0);
    n->send = vnet_send;
    n->recv = vnet_recv;
    n->tx_prepare = vnet_tx_prepare;
    n->tx_burst = vnet_tx_burst;
    n->rx_drain = vnet_rx_drain;
    return 0;
}
