/* Vessel guest kit: ATA PIO on the legacy IDE ports, polled (nIEN set).
 * References: ATA/ATAPI-6 (T13/1410D): the task file (7.x), PIO data-in and
 * data-out (9.7, 9.8), IDENTIFY DEVICE (8.15), READ/WRITE SECTORS EXT
 * (8.33, 8.62), FLUSH CACHE EXT (8.11), the signatures (9.12). */
#include "kit.h"

/* Task-file registers, offsets from the command block base. */
enum {
    R_DATA = 0, R_ERROR = 1, R_FEATURES = 1, R_NSECT = 2, R_LBAL = 3, R_LBAM = 4,
    R_LBAH = 5, R_DEVICE = 6, R_STATUS = 7, R_CMD = 7,
};

/* ---- deadlines ---------------------------------------------------------- */

void kit_deadline_set(struct kit_deadline *dl, uint64_t us)
{
    dl->pm = kit_pmtmr_present();
    dl->spins = 0;
    if (dl->pm)
        dl->end = kit_pmtmr_ticks() + us * KIT_PMTMR_HZ / 1000000 + 1;
    else
        dl->end = us; /* about a microsecond per port access or more */
}

bool kit_deadline_passed(struct kit_deadline *dl)
{
    dl->spins++;
    if (!dl->pm)
        return dl->spins > dl->end;
    /* A PM-timer read is a port exit too: look every 16 polls. */
    if (dl->spins & 15)
        return false;
    return kit_pmtmr_ticks() > dl->end;
}

/* ---- registers ---------------------------------------------------------- */

static const uint16_t pos_io[4] = { 0x1f0, 0x1f0, 0x170, 0x170 };
static const uint16_t pos_ctl[4] = { 0x3f6, 0x3f6, 0x376, 0x376 };
static const char *const pos_names[4] = {
    "primary master", "primary slave", "secondary master", "secondary slave",
};

void kit_ata_init_pos(struct kit_ata_dev *d, int pos)
{
    memset(d, 0, sizeof(*d));
    d->io = pos_io[pos & 3];
    d->ctl = pos_ctl[pos & 3];
    d->slave = (uint8_t)(pos & 1);
}

const char *kit_ata_pos_name(int pos)
{
    return pos_names[pos & 3];
}

uint8_t kit_ata_status(struct kit_ata_dev *d)
{
    return inb(d->ctl);
}

static void delay400(struct kit_ata_dev *d)
{
    for (int i = 0; i < 4; i++)
        (void)inb(d->ctl);
}

void kit_ata_select(struct kit_ata_dev *d)
{
    outb(d->ctl, 0x02); /* nIEN: no interrupts, we poll */
    outb((uint16_t)(d->io + R_DEVICE), (uint8_t)(0xa0 | 0x40 | d->slave << 4));
    delay400(d);
}

int kit_ata_wait_idle(struct kit_ata_dev *d, uint64_t us)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    for (;;) {
        uint8_t st = inb(d->ctl);
        if (st == 0xff)
            return KIT_ATA_ENODEV; /* floating bus */
        if (!(st & KIT_ATA_SR_BSY))
            return st;
        if (kit_deadline_passed(&dl))
            return KIT_ATA_ETIMEDOUT;
    }
}

/* Waits for BSY clear, then reads the real status (acknowledging). */
static int wait_status(struct kit_ata_dev *d, uint64_t us)
{
    int st = kit_ata_wait_idle(d, us);
    if (st < 0)
        return st;
    d->last_status = inb((uint16_t)(d->io + R_STATUS));
    d->last_error = (d->last_status & KIT_ATA_SR_ERR) ? inb((uint16_t)(d->io + R_ERROR)) : 0;
    return d->last_status;
}

static int err_code(struct kit_ata_dev *d)
{
    return -(int)(d->last_status | (uint32_t)d->last_error << 8);
}

void kit_ata_issue(struct kit_ata_dev *d, uint8_t cmd, uint64_t lba, uint32_t count,
                   uint8_t features, bool ext)
{
    uint16_t io = d->io;
    if (ext) {
        outb((uint16_t)(io + R_FEATURES), 0);
        outb((uint16_t)(io + R_NSECT), (uint8_t)(count >> 8));
        outb((uint16_t)(io + R_LBAL), (uint8_t)(lba >> 24));
        outb((uint16_t)(io + R_LBAM), (uint8_t)(lba >> 32));
        outb((uint16_t)(io + R_LBAH), (uint8_t)(lba >> 40));
        outb((uint16_t)(io + R_DEVICE), (uint8_t)(0xe0 | d->slave << 4));
    } else {
        outb((uint16_t)(io + R_DEVICE),
             (uint8_t)(0xe0 | d->slave << 4 | ((lba >> 24) & 0x0f)));
    }
    outb((uint16_t)(io + R_FEATURES), features);
    outb((uint16_t)(io + R_NSECT), (uint8_t)count);
    outb((uint16_t)(io + R_LBAL), (uint8_t)lba);
    outb((uint16_t)(io + R_LBAM), (uint8_t)(lba >> 8));
    outb((uint16_t)(io + R_LBAH), (uint8_t)(lba >> 16));
    outb((uint16_t)(io + R_CMD), cmd);
}

static void pio_in(uint16_t port, void *buf, size_t words)
{
    __asm__ volatile("rep insw" : "+D"(buf), "+c"(words) : "d"(port) : "memory");
}

static void pio_out(uint16_t port, const void *buf, size_t words)
{
    __asm__ volatile("rep outsw" : "+S"(buf), "+c"(words) : "d"(port) : "memory");
}

static void copy_string(char *dst, const uint16_t *w, int words)
{
    int n = 0;
    for (int i = 0; i < words; i++) {
        dst[n++] = (char)(w[i] >> 8);
        dst[n++] = (char)w[i];
    }
    while (n > 0 && (dst[n - 1] == ' ' || dst[n - 1] == 0))
        n--;
    dst[n] = 0;
}

static int identify(struct kit_ata_dev *d, uint8_t cmd)
{
    kit_ata_issue(d, cmd, 0, 0, 0, false);
    int st = wait_status(d, 2000000);
    if (st < 0)
        return st;
    if (st & KIT_ATA_SR_ERR)
        return err_code(d);
    if (!(st & KIT_ATA_SR_DRQ))
        return KIT_ATA_EPROTO;
    pio_in(d->io, d->ident, 256);
    wait_status(d, 1000000);
    copy_string(d->model, &d->ident[27], 20);
    return 0;
}

enum kit_ata_kind kit_ata_probe(struct kit_ata_dev *d)
{
    d->kind = KIT_ATA_NONE;
    kit_ata_select(d);
    uint8_t st = inb(d->ctl);
    if (st == 0xff || st == 0x7f)
        return KIT_ATA_NONE;
    /* A register that holds what is written tells a device from no device. */
    outb((uint16_t)(d->io + R_NSECT), 0x55);
    outb((uint16_t)(d->io + R_LBAL), 0xaa);
    if (inb((uint16_t)(d->io + R_NSECT)) != 0x55 || inb((uint16_t)(d->io + R_LBAL)) != 0xaa)
        return KIT_ATA_NONE;
    if (kit_ata_wait_idle(d, 1000000) < 0)
        return KIT_ATA_NONE;
    st = inb(d->ctl);
    int r = identify(d, 0xec);
    if (r == 0 && !(st & KIT_ATA_SR_DRDY) && d->ident[0] == 0)
        return KIT_ATA_NONE;
    if (r == 0) {
        d->kind = KIT_ATA_DISK;
        d->lba48 = (d->ident[83] & (1u << 10)) != 0;
        if (d->lba48)
            d->sectors = (uint64_t)d->ident[100] | (uint64_t)d->ident[101] << 16 |
                         (uint64_t)d->ident[102] << 32 | (uint64_t)d->ident[103] << 48;
        else
            d->sectors = (uint64_t)d->ident[60] | (uint64_t)d->ident[61] << 16;
        return d->kind;
    }
    /* The ATAPI signature in LBA mid/high after the aborted IDENTIFY. */
    uint8_t m = inb((uint16_t)(d->io + R_LBAM)), h = inb((uint16_t)(d->io + R_LBAH));
    if (m == 0x14 && h == 0xeb && identify(d, 0xa1) == 0) {
        d->kind = KIT_ATA_ATAPI;
        return d->kind;
    }
    return KIT_ATA_NONE;
}

int kit_ata_nodata(struct kit_ata_dev *d, uint8_t cmd, uint64_t lba, uint32_t count,
                   uint8_t features, bool ext)
{
    kit_ata_select(d);
    if (kit_ata_wait_idle(d, 1000000) < 0)
        return KIT_ATA_ETIMEDOUT;
    kit_ata_issue(d, cmd, lba, count, features, ext);
    int st = wait_status(d, 5000000);
    if (st < 0)
        return st;
    if (st & (KIT_ATA_SR_ERR | KIT_ATA_SR_DF))
        return err_code(d);
    if (st & KIT_ATA_SR_DRQ)
        return KIT_ATA_EPROTO;
    return 0;
}

int kit_ata_flush(struct kit_ata_dev *d)
{
    return kit_ata_nodata(d, 0xea, 0, 0, 0, true);
}

static int xfer(struct kit_ata_dev *d, bool write, uint64_t lba, uint32_t count, void *buf)
{
    uint8_t *p = buf;
    kit_ata_select(d);
    while (count) {
        uint32_t n = count > 256 ? 256 : count;
        if (kit_ata_wait_idle(d, 1000000) < 0)
            return KIT_ATA_ETIMEDOUT;
        kit_ata_issue(d, write ? 0x34 : 0x24, lba, n == 256 ? 0x100 : n, 0, true);
        for (uint32_t i = 0; i < n; i++) {
            int st = wait_status(d, 5000000);
            if (st < 0)
                return st;
            if (st & (KIT_ATA_SR_ERR | KIT_ATA_SR_DF))
                return err_code(d);
            if (!(st & KIT_ATA_SR_DRQ))
                return KIT_ATA_EPROTO;
            if (write)
                pio_out(d->io, p, 256);
            else
                pio_in(d->io, p, 256);
            p += 512;
        }
        int st = wait_status(d, 5000000);
        if (st < 0)
            return st;
        if (st & (KIT_ATA_SR_ERR | KIT_ATA_SR_DF))
            return err_code(d);
        if (st & KIT_ATA_SR_DRQ)
            return KIT_ATA_EPROTO;
        lba += n;
        count -= n;
    }
    return 0;
}

int kit_ata_read(struct kit_ata_dev *d, uint64_t lba, uint32_t count, void *buf)
{
    return xfer(d, false, lba, count, buf);
}

int kit_ata_write(struct kit_ata_dev *d, uint64_t lba, uint32_t count, const void *buf)
{
    return xfer(d, true, lba, count, (void *)buf);
}

/* ---- bus-master DMA ------------------------------------------------------ */

enum { BM_CMD = 0, BM_STATUS = 2, BM_PRD = 4 };
enum { BM_START = 1, BM_TO_MEMORY = 8, BM_ACTIVE = 1, BM_ERROR = 2, BM_INTR = 4 };

static bool find_piix_ide(const struct kit_pci_dev *p, void *ctx)
{
    struct kit_pci_dev *out = ctx;
    if (p->vendor == 0x8086 && (p->device == 0x7010 || p->device == 0x7111)) {
        *out = *p;
        return false;
    }
    return true;
}

uint16_t kit_ata_bm_find(struct kit_ata_dev *d)
{
    struct kit_pci_dev p = { .vendor = 0 };
    kit_pci_scan(find_piix_ide, &p);
    if (p.vendor != 0x8086)
        return 0;
    uint16_t cmd = kit_pci_read16(p.bus, p.dev, p.fn, 0x04);
    kit_pci_write16(p.bus, p.dev, p.fn, 0x04, (uint16_t)(cmd | 0x0005));
    uint32_t bar4 = kit_pci_read32(p.bus, p.dev, p.fn, 0x20);
    if (!(bar4 & 1) || (bar4 & 0xfffc) == 0)
        return 0;
    return (uint16_t)((bar4 & 0xfffc) + (d->io == 0x170 ? 8 : 0));
}

int kit_ata_dma_start(struct kit_ata_dev *d, uint16_t bm, uint32_t prd, bool write,
                      uint64_t lba, uint32_t count, uint32_t buf)
{
    uint64_t bytes = (uint64_t)count * 512;
    volatile uint32_t *e = (volatile uint32_t *)(uintptr_t)prd;
    for (uint64_t off = 0; off < bytes; off += 0x10000, e += 2) {
        uint64_t n = bytes - off > 0x10000 ? 0x10000 : bytes - off;
        e[0] = buf + (uint32_t)off;
        e[1] = (uint32_t)(n & 0xffff) | (off + n == bytes ? 0x80000000u : 0);
    }
    outb((uint16_t)(bm + BM_CMD), 0);
    outb((uint16_t)(bm + BM_STATUS), BM_ERROR | BM_INTR);
    outl((uint16_t)(bm + BM_PRD), prd);
    kit_ata_select(d);
    if (kit_ata_wait_idle(d, 1000000) < 0)
        return KIT_ATA_ETIMEDOUT;
    kit_ata_issue(d, write ? 0x35 : 0x25, lba, count == 65536 ? 0 : count, 0, true);
    outb((uint16_t)(bm + BM_CMD), (uint8_t)((write ? 0 : BM_TO_MEMORY) | BM_START));
    return 0;
}

int kit_ata_dma_poll(struct kit_ata_dev *d, uint16_t bm)
{
    uint8_t st = inb(d->ctl);
    if (st & KIT_ATA_SR_BSY)
        return 1;
    uint8_t b = inb((uint16_t)(bm + BM_STATUS));
    if ((b & BM_ACTIVE) && !(b & (BM_ERROR | BM_INTR)) && !(st & KIT_ATA_SR_ERR))
        return 1;
    outb((uint16_t)(bm + BM_CMD), 0);
    d->last_status = inb((uint16_t)(d->io + R_STATUS));
    d->last_error = (d->last_status & KIT_ATA_SR_ERR) ? inb((uint16_t)(d->io + R_ERROR)) : 0;
    outb((uint16_t)(bm + BM_STATUS), BM_ERROR | BM_INTR);
    if ((b & BM_ERROR) || (d->last_status & (KIT_ATA_SR_ERR | KIT_ATA_SR_DF)))
        return err_code(d) ? err_code(d) : KIT_ATA_EPROTO;
    return 0;
}
