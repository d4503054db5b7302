/* Vessel guest kit: a polled driver for the Intel 82540EM (8254x Software
 * Developer's Manual): BAR0 registers, a device reset, the MAC address from
 * the EEPROM through EERD, legacy receive descriptors (KIT_NIC_QSIZE
 * buffers of 2048 bytes, RCTL.SECRC so no FCS), legacy transmit
 * descriptors, or a context and a data descriptor when a checksum is left
 * to the device (TXSM, and IXSM for the IPv4 header).
 *
 * DMA area: receive ring at 0, transmit ring at 0x1000, receive buffers
 * from 0x2000, transmit buffers from 0xA000. */
#include "net.h"

enum {
    CTRL = 0x0000, STATUS = 0x0008, EECD = 0x0010, EERD = 0x0014, MDIC = 0x0020,
    ICR = 0x00c0, IMC = 0x00d8, RCTL = 0x0100, TCTL = 0x0400,
    RDBAL = 0x2800, RDBAH = 0x2804, RDLEN = 0x2808, RDH = 0x2810, RDT = 0x2818,
    TDBAL = 0x3800, TDBAH = 0x3804, TDLEN = 0x3808, TDH = 0x3810, TDT = 0x3818,
    RAL0 = 0x5400, RAH0 = 0x5404, MTA = 0x5200,
};
#define RX_BUFS 0x2000
#define TX_BUFS 0xA000

struct rx_desc { uint64_t addr; uint16_t len; uint16_t csum; uint8_t status; uint8_t errors; uint16_t special; };
struct tx_desc { uint64_t addr; uint32_t lower; uint8_t status; uint8_t popts; uint16_t special; };

int kit_nic_find(uint16_t vendor, uint16_t device, int index, struct kit_pci_dev *out);

uint32_t kit_e1000_read(struct kit_nic *n, uint32_t reg)
{
    return mmio_read32(n->regs + reg);
}

void kit_e1000_write(struct kit_nic *n, uint32_t reg, uint32_t v)
{
    mmio_write32(n->regs + reg, v);
}

int kit_e1000_eerd(struct kit_nic *n, unsigned addr)
{
    kit_e1000_write(n, EERD, (addr & 0xff) << 8 | 1);
    for (int i = 0; i < 1000; i++) {
        uint32_t v = kit_e1000_read(n, EERD);
        if (v & (1u << 4))
            return (int)(v >> 16);
    }
    return -1;
}

static void ee_clock(struct kit_nic *n, uint32_t *eecd, int bit)
{
    *eecd = (*eecd & ~4u) | (bit ? 4u : 0);
    kit_e1000_write(n, EECD, *eecd);
    kit_e1000_write(n, EECD, *eecd | 1);   /* SK up */
    kit_e1000_write(n, EECD, *eecd);       /* SK down */
}

int kit_e1000_microwire(struct kit_nic *n, unsigned addr)
{
    uint32_t eecd = kit_e1000_read(n, EECD) | (1u << 6); /* REQ */
    kit_e1000_write(n, EECD, eecd);
    if (!(kit_e1000_read(n, EECD) & (1u << 7)))
        return -1;                         /* no GNT */
    eecd = (eecd & ~0xfu) | 2;             /* CS */
    kit_e1000_write(n, EECD, eecd);
    ee_clock(n, &eecd, 1);                 /* start bit, READ = 10b */
    ee_clock(n, &eecd, 1);
    ee_clock(n, &eecd, 0);
    for (int i = 5; i >= 0; i--)
        ee_clock(n, &eecd, (addr >> i) & 1);
    eecd &= ~4u;
    uint16_t w = 0;
    for (int i = 0; i < 16; i++) {
        kit_e1000_write(n, EECD, eecd | 1);
        w = (uint16_t)(w << 1 | ((kit_e1000_read(n, EECD) >> 3) & 1));
        kit_e1000_write(n, EECD, eecd);
    }
    kit_e1000_write(n, EECD, eecd & ~(2u | (1u << 6))); /* CS down, REQ off */
    return w;
}

int kit_e1000_phy_read(struct kit_nic *n, unsigned phy, unsigned reg)
{
    kit_e1000_write(n, MDIC, (reg & 31) << 16 | (phy & 31) << 21 | 2u << 26);
    for (int i = 0; i < 1000; i++) {
        uint32_t v = kit_e1000_read(n, MDIC);
        if (v & (1u << 30))
            return -2;
        if (v & (1u << 28))
            return (int)(v & 0xffff);
    }
    return -1;
}

static volatile struct rx_desc *rxd(struct kit_nic *n, uint32_t i)
{
    return (volatile struct rx_desc *)(n->dma) + i;
}

static volatile struct tx_desc *txd(struct kit_nic *n, uint32_t i)
{
    return (volatile struct tx_desc *)(n->dma + 0x1000) + i;
}

static int e1000_send(struct kit_nic *n, const void *frame, uint32_t len,
                      uint32_t csum_start, uint32_t csum_offset)
{
    if (len > KIT_NIC_BUF)
        return -2;
    uint32_t first = n->tx_cur;
    uint32_t ndesc = csum_start ? 2 : 1;
    uint8_t *buf = n->dma + TX_BUFS + (first % KIT_NIC_QSIZE) * KIT_NIC_BUF;
    memcpy(buf, frame, len);
    if (csum_start) {
        /* Context: IPv4 header checksum (IXSM) over 14..33 at 24, and the
         * transport checksum (TXSM) from csum_start to the end. */
        volatile uint8_t *c = (volatile uint8_t *)txd(n, n->tx_cur);
        c[0] = 14; c[1] = 24; c[2] = 33; c[3] = 0;
        c[4] = (uint8_t)csum_start;
        c[5] = (uint8_t)(csum_start + csum_offset);
        c[6] = 0; c[7] = 0;
        c[8] = 0; c[9] = 0; c[10] = 0;       /* PAYLEN, DTYP 0 */
        c[11] = 0x20 | 0x02;                  /* DEXT, IP (UDP: TCP bit clear) */
        c[12] = 0; c[13] = 0; c[14] = 0; c[15] = 0;
        n->tx_cur = (n->tx_cur + 1) % KIT_NIC_QSIZE;
        volatile struct tx_desc *d = txd(n, n->tx_cur);
        d->addr = (uint64_t)(uintptr_t)buf;
        /* DTALEN, DTYP 1, DCMD: EOP, IFCS, RS, DEXT */
        d->lower = len | 1u << 20 | (uint32_t)(0x01 | 0x02 | 0x08 | 0x20) << 24;
        d->status = 0;
        d->popts = 0x01 | 0x02;               /* IXSM, TXSM */
        d->special = 0;
    } else {
        volatile struct tx_desc *d = txd(n, n->tx_cur);
        d->addr = (uint64_t)(uintptr_t)buf;
        d->lower = len | (uint32_t)(0x01 | 0x02 | 0x08) << 24; /* EOP, IFCS, RS */
        d->status = 0;
        d->popts = 0;
        d->special = 0;
    }
    volatile struct tx_desc *last = txd(n, n->tx_cur);
    n->tx_cur = (n->tx_cur + 1) % KIT_NIC_QSIZE;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    kit_e1000_write(n, TDT, n->tx_cur);
    (void)ndesc;
    struct kit_deadline dl;
    kit_deadline_set(&dl, 2000000);
    while (!(last->status & 1)) {
        if (kit_deadline_passed(&dl))
            return KIT_NIC_ETIMEDOUT;
        cpu_relax();
    }
    n->sent++;
    return 0;
}

static int e1000_recv(struct kit_nic *n, void *out, uint32_t max)
{
    volatile struct rx_desc *d = rxd(n, n->rx_cur);
    if (!(d->status & 1))
        return 0;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int r;
    uint32_t len = d->len;
    if (!(d->status & 2) || d->errors)
        r = -3;                                 /* our buffers hold any frame */
    else {
        if (len > max)
            len = max;
        memcpy(out, n->dma + RX_BUFS + n->rx_cur * KIT_NIC_BUF, len);
        r = (int)len;
        n->received++;
    }
    d->status = 0;
    kit_e1000_write(n, RDT, n->rx_cur);         /* the buffer goes back */
    n->rx_cur = (n->rx_cur + 1) % KIT_NIC_QSIZE;
    return r;
}

static void e1000_tx_prepare(struct kit_nic *n, const void *frame, uint32_t len)
{
    for (uint32_t i = 0; i < KIT_NIC_QSIZE; i++) {
        uint8_t *buf = n->dma + TX_BUFS + i * KIT_NIC_BUF;
        memcpy(buf, frame, len);
        volatile struct tx_desc *d = txd(n, i);
        d->addr = (uint64_t)(uintptr_t)buf;
        d->lower = len | (uint32_t)(0x01 | 0x02 | 0x08) << 24;
        d->status = 1; /* done: free for the first burst */
        d->popts = 0;
        d->special = 0;
    }
    n->tx_clean = n->tx_cur;
    n->bench_len = len;
}

static uint32_t e1000_tx_burst(struct kit_nic *n, uint32_t count)
{
    /* Reclaim what the device finished (DD), then post. */
    while (n->tx_clean != n->tx_cur && (txd(n, n->tx_clean)->status & 1))
        n->tx_clean = (n->tx_clean + 1) % KIT_NIC_QSIZE;
    uint32_t posted = 0;
    while (posted < count && (n->tx_cur + 1) % KIT_NIC_QSIZE != n->tx_clean) {
        txd(n, n->tx_cur)->status = 0;
        n->tx_cur = (n->tx_cur + 1) % KIT_NIC_QSIZE;
        posted++;
    }
    if (posted) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        kit_e1000_write(n, TDT, n->tx_cur);
        n->sent += posted;
    }
    return posted;
}

static uint32_t e1000_rx_drain(struct kit_nic *n, uint64_t *bytes)
{
    uint32_t frames = 0, last = 0;
    for (;;) {
        volatile struct rx_desc *d = rxd(n, n->rx_cur);
        if (!(d->status & 1))
            break;
        *bytes += d->len;
        d->status = 0;
        last = n->rx_cur;
        n->rx_cur = (n->rx_cur + 1) % KIT_NIC_QSIZE;
        frames++;
    }
    if (frames) {
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        kit_e1000_write(n, RDT, last);
        n->received += frames;
    }
    return frames;
}

int kit_e1000_open(struct kit_nic *n, int index, uint8_t *dma)
{
    memset(n, 0, sizeof(*n));
    n->model = "e1000";
    n->dma = dma;
    if (kit_nic_find(0x8086, 0x100e, index, &n->pci))
        return -1;
    struct kit_pci_dev *p = &n->pci;
    uint32_t bar0 = kit_pci_read32(p->bus, p->dev, p->fn, 0x10);
    uint32_t bar1 = kit_pci_read32(p->bus, p->dev, p->fn, 0x14);
    if ((bar0 & 1) || !(bar0 & ~0xfu) || !(bar1 & 1))
        return -2;
    n->regs = bar0 & ~0xfu;
    n->io = (uint16_t)(bar1 & ~3u);
    kit_e1000_write(n, IMC, 0xffffffff);
    kit_e1000_write(n, CTRL, kit_e1000_read(n, CTRL) | (1u << 26)); /* RST */
    struct kit_deadline dl;
    kit_deadline_set(&dl, 1000000);
    while (kit_e1000_read(n, CTRL) & (1u << 26))
        if (kit_deadline_passed(&dl))
            return -3;
    kit_e1000_write(n, IMC, 0xffffffff);
    kit_e1000_read(n, ICR);
    kit_e1000_write(n, CTRL, kit_e1000_read(n, CTRL) | (1u << 6)); /* SLU */
    for (int i = 0; i < 3; i++) {
        int w = kit_e1000_eerd(n, (unsigned)i);
        if (w < 0)
            return -4;
        n->mac[2 * i] = (uint8_t)w;
        n->mac[2 * i + 1] = (uint8_t)(w >> 8);
    }
    for (int i = 0; i < 128; i++)
        kit_e1000_write(n, MTA + 4 * i, 0);
    memset(n->dma, 0, 0x2000);
    for (uint32_t i = 0; i < KIT_NIC_QSIZE; i++)
        rxd(n, i)->addr = (uint64_t)(uintptr_t)(n->dma + RX_BUFS + i * KIT_NIC_BUF);
    uint64_t rx = (uint64_t)(uintptr_t)rxd(n, 0), tx = (uint64_t)(uintptr_t)txd(n, 0);
    kit_e1000_write(n, RDBAL, (uint32_t)rx);
    kit_e1000_write(n, RDBAH, (uint32_t)(rx >> 32));
    kit_e1000_write(n, RDLEN, KIT_NIC_QSIZE * 16);
    kit_e1000_write(n, RDH, 0);
    kit_e1000_write(n, RDT, KIT_NIC_QSIZE - 1);
    kit_e1000_write(n, TDBAL, (uint32_t)tx);
    kit_e1000_write(n, TDBAH, (uint32_t)(tx >> 32));
    kit_e1000_write(n, TDLEN, KIT_NIC_QSIZE * 16);
    kit_e1000_write(n, TDH, 0);
    kit_e1000_write(n, TDT, 0);
    /* EN, BAM, BSIZE 2048, SECRC; TCTL: EN, PSP, CT 0x10, COLD 0x40. */
    kit_e1000_write(n, RCTL, (1u << 1) | (1u << 15) | (1u << 26));
    kit_e1000_write(n, TCTL, (1u << 1) | (1u << 3) | (0x10u << 4) | (0x40u << 12));
    n->send = e1000_send;
    n->recv = e1000_recv;
    n->tx_prepare = e1000_tx_prepare;
    n->tx_burst = e1000_tx_burst;
    n->rx_drain = e1000_rx_drain;
    return 0;
}
