/* Vessel guest kit: ATAPI (PACKET, PIO data-in) for CD-ROM drives, polled.
 * References: ATA/ATAPI-6 9.10 (the PACKET protocol, byte count limit, the
 * interrupt reason in the sector count register); MMC / SPC for TEST UNIT
 * READY (0x00), REQUEST SENSE (0x03), READ CAPACITY (0x25), READ(10) (0x28). */
#include "kit.h"

enum { R_FEATURES = 1, R_ERROR = 1, R_NSECT = 2, R_LBAM = 4, R_LBAH = 5, R_STATUS = 7, R_CMD = 7 };

#define BYTE_LIMIT 0xf800 /* even, as ATA-6 asks; a device sends at most this per DRQ */

static int atapi_err(struct kit_ata_dev *d)
{
    return -(int)(d->last_status | (uint32_t)d->last_error << 8);
}

static int wait_bsy(struct kit_ata_dev *d, uint64_t us)
{
    int st = kit_ata_wait_idle(d, us);
    if (st < 0)
        return st;
    d->last_status = inb((uint16_t)(d->io + R_STATUS));
    d->last_error = (d->last_status & KIT_ATA_SR_ERR) ? inb((uint16_t)(d->io + R_ERROR)) : 0;
    return d->last_status;
}

int kit_atapi_packet(struct kit_ata_dev *d, const uint8_t cdb[12], void *buf, uint32_t len)
{
    kit_ata_select(d);
    if (kit_ata_wait_idle(d, 2000000) < 0)
        return KIT_ATA_ETIMEDOUT;
    outb((uint16_t)(d->io + R_FEATURES), 0); /* PIO */
    outb((uint16_t)(d->io + R_LBAM), (uint8_t)BYTE_LIMIT);
    outb((uint16_t)(d->io + R_LBAH), (uint8_t)(BYTE_LIMIT >> 8));
    outb((uint16_t)(d->io + R_CMD), 0xa0);
    int st = wait_bsy(d, 2000000);
    if (st < 0)
        return st;
    if (st & KIT_ATA_SR_ERR)
        return atapi_err(d);
    if (!(st & KIT_ATA_SR_DRQ))
        return KIT_ATA_EPROTO;
    uint8_t ir = inb((uint16_t)(d->io + R_NSECT));
    if ((ir & 3) != 1) /* CoD=1, IO=0: the device wants the packet */
        return KIT_ATA_EPROTO;
    const uint16_t *w = (const uint16_t *)cdb;
    for (int i = 0; i < 6; i++)
        outw(d->io, w[i]);

    uint8_t *base = buf;
    uint32_t done = 0;
    for (;;) {
        st = wait_bsy(d, 10000000);
        if (st < 0)
            return st;
        if (st & KIT_ATA_SR_ERR)
            return atapi_err(d);
        if (!(st & KIT_ATA_SR_DRQ))
            return (int)done;
        uint32_t n = inb((uint16_t)(d->io + R_LBAM)) |
                     (uint32_t)inb((uint16_t)(d->io + R_LBAH)) << 8;
        if (n == 0 || !base || done + n > len) {
            /* More than asked for: drain it so the drive finishes. */
            for (uint32_t i = 0; i < (n + 1) / 2; i++) {
                uint16_t v = inw(d->io);
                if (base && done + 2 * i + 1 < len) {
                    base[done + 2 * i] = (uint8_t)v;
                    base[done + 2 * i + 1] = (uint8_t)(v >> 8);
                }
            }
            if (!base || n == 0)
                return KIT_ATA_EPROTO;
            done = len;
            continue;
        }
        if (n & 1)
            return KIT_ATA_EPROTO;
        size_t words = n / 2;
        uint8_t *p = base + done;
        __asm__ volatile("rep insw" : "+D"(p), "+c"(words) : "d"(d->io) : "memory");
        done += n;
    }
}

int kit_atapi_sense(struct kit_ata_dev *d)
{
    uint8_t cdb[12] = { 0x03, 0, 0, 0, 18, 0 };
    uint8_t s[18];
    memset(s, 0, sizeof(s));
    int r = kit_atapi_packet(d, cdb, s, sizeof(s));
    if (r < 0)
        return r;
    return (s[2] & 0x0f) << 16 | s[12] << 8 | s[13];
}

int kit_atapi_ready(struct kit_ata_dev *d)
{
    int r = 0;
    for (int i = 0; i < 8; i++) {
        uint8_t cdb[12] = { 0x00 };
        r = kit_atapi_packet(d, cdb, NULL, 0);
        if (r >= 0)
            return 0;
        int s = kit_atapi_sense(d);
        kit_printf("kit: atapi test unit ready: status %x error %x, sense %x/%02x/%02x\n",
                   (-r) & 0xff, ((-r) >> 8) & 0xff, (s >> 16) & 0xf, (s >> 8) & 0xff, s & 0xff);
        if (s < 0)
            return s;
        kit_udelay(10000);
    }
    return r;
}

int64_t kit_atapi_capacity(struct kit_ata_dev *d)
{
    uint8_t cdb[12] = { 0x25 };
    uint8_t c[8];
    int r = kit_atapi_packet(d, cdb, c, sizeof(c));
    if (r < 0)
        return r;
    if (r != 8)
        return KIT_ATA_EPROTO;
    return ((int64_t)c[0] << 24 | c[1] << 16 | c[2] << 8 | c[3]) + 1;
}

int kit_atapi_read(struct kit_ata_dev *d, uint32_t lba, uint32_t count, void *buf)
{
    uint8_t *p = buf;
    while (count) {
        uint32_t n = count > 32 ? 32 : count; /* 64 KiB per command */
        uint8_t cdb[12] = { 0x28, 0, (uint8_t)(lba >> 24), (uint8_t)(lba >> 16),
                            (uint8_t)(lba >> 8), (uint8_t)lba, 0, (uint8_t)(n >> 8),
                            (uint8_t)n, 0 };
        int r = kit_atapi_packet(d, cdb, p, n * KIT_CD_SECTOR);
        if (r < 0)
            return r;
        if ((uint32_t)r != n * KIT_CD_SECTOR)
            return KIT_ATA_EPROTO;
        p += n * KIT_CD_SECTOR;
        lba += n;
        count -= n;
    }
    return 0;
}

int kit_atapi_cd_read(void *ctx, uint32_t lba, uint32_t count, void *buf)
{
    return kit_atapi_read(ctx, lba, count, buf);
}
