/* hostile-ide: a guest that misuses the PIIX3 IDE controller, then shows it
 * still works. Needs an ATA disk at the primary master (writable, at least
 * 1 MiB) and an ATAPI CD-ROM with a medium at the secondary master.
 * Every case must end with an error the guest can read (ATA ERR, usually
 * with ABRT/IDNF, or the bus-master ERROR bit) and never hang the channel:
 *   kit: hostile-ide <case>: ata=SS err=EE bm=BB
 *   KIT: hostile-ide cases=N
 *   KIT: PASS hostile-ide
 * Bus-master DMA: PRD table outside RAM, across the top of the 32-bit space,
 * a PRD buffer in the PCI hole and one that runs past the end of RAM, an
 * endless PRD table (no EOT, 2-byte entries), a table shorter than the
 * transfer; DMA and PIO past the end of the disk; bogus ATA opcodes; bogus
 * SCSI opcodes and reads past the medium's end over ATAPI; then a good DMA
 * read that must match a PIO read of the same sectors. */
#include "kit.h"

KIT_GUEST("hostile-ide");

#define SCRATCH ((uint8_t *)(uintptr_t)0x1000000)  /* 16 MiB */
#define PRD_TABLE 0x1800000u                        /* 24 MiB, 64 KiB aligned */
#define PIO_COPY ((uint8_t *)(uintptr_t)0x1c00000)  /* 28 MiB */

enum { BM_CMD = 0, BM_STATUS = 2, BM_PRD = 4 };
enum { BM_START = 1, BM_TO_MEMORY = 8, BM_ACTIVE = 1, BM_ERROR = 2, BM_INTR = 4 };

static uint16_t bmide;   /* primary channel's bus-master registers */
static int cases;

struct result {
    uint8_t ata, err, bm;
    bool timed_out;
};

static bool find_ide(const struct kit_pci_dev *d, void *ctx)
{
    struct kit_pci_dev *out = ctx;
    if (d->vendor == 0x8086 && d->device == 0x7010) {
        *out = *d;
        return false;
    }
    return true;
}

static void prd_set(uint32_t table, int i, uint32_t addr, uint32_t count, bool eot)
{
    volatile uint32_t *e = (volatile uint32_t *)(uintptr_t)(table + 8u * (uint32_t)i);
    e[0] = addr;
    e[1] = (count & 0xffff) | (eot ? 0x80000000u : 0);
}

/* One DMA command: PRD table address, then the command, then START. */
static struct result dma(struct kit_ata_dev *d, bool write, uint64_t lba, uint32_t count,
                         uint32_t prd)
{
    struct result r = { 0 };
    outb(bmide + BM_CMD, 0);
    outb(bmide + BM_STATUS, BM_ERROR | BM_INTR);
    outl(bmide + BM_PRD, prd);
    kit_ata_select(d);
    if (kit_ata_wait_idle(d, 1000000) < 0) {
        r.timed_out = true;
        return r;
    }
    kit_ata_issue(d, write ? 0x35 : 0x25, lba, count, 0, true);
    outb(bmide + BM_CMD, (uint8_t)((write ? 0 : BM_TO_MEMORY) | BM_START));
    struct kit_deadline dl;
    kit_deadline_set(&dl, 5000000);
    uint8_t bm;
    for (;;) {
        bm = inb(bmide + BM_STATUS);
        uint8_t st = kit_ata_status(d);
        if (!(st & KIT_ATA_SR_BSY) && ((bm & BM_INTR) || !(bm & BM_ACTIVE) || (st & KIT_ATA_SR_ERR)))
            break;
        if (kit_deadline_passed(&dl)) {
            r.timed_out = true;
            break;
        }
    }
    /* Polled with nIEN set: the device drives no INTRQ, so the INTR bit
     * stays clear (as on a PIIX3); the end shows as ACTIVE clearing. */
    r.bm = bm;
    outb(bmide + BM_CMD, 0);
    r.ata = inb((uint16_t)(d->io + 7));
    r.err = (r.ata & KIT_ATA_SR_ERR) ? inb((uint16_t)(d->io + 1)) : 0;
    outb(bmide + BM_STATUS, BM_ERROR | BM_INTR);
    return r;
}

static void report(const char *name, struct result r)
{
    cases++;
    kit_printf("kit: hostile-ide %s: ata=%02x err=%02x bm=%02x\n", name, r.ata, r.err, r.bm);
    if (r.timed_out)
        kit_fail("%s: the channel stayed busy (status %02x, bm %02x)", name,
                 r.ata, r.bm);
}

/* The case must have failed visibly. */
static void expect_error(const char *name, struct result r)
{
    report(name, r);
    if (!(r.ata & KIT_ATA_SR_ERR) && !(r.bm & BM_ERROR))
        kit_fail("%s: no error reported (ata %02x, bm %02x)", name, r.ata, r.bm);
    if (r.ata & KIT_ATA_SR_DRQ)
        kit_fail("%s: DRQ still set after the error (ata %02x)", name, r.ata);
}

static struct result from_code(int code)
{
    struct result r = { 0 };
    if (code == KIT_ATA_ETIMEDOUT) {
        r.timed_out = true;
        return r;
    }
    if (code < 0 && code > -0x10000) {
        r.ata = (uint8_t)(-code);
        r.err = (uint8_t)((-code) >> 8);
    }
    return r;
}

static void expect_ata_error(const char *name, int code, uint8_t err_bits)
{
    struct result r = from_code(code);
    report(name, r);
    if (code >= 0)
        kit_fail("%s: succeeded (%d)", name, code);
    if (code <= -0x10000)
        kit_fail("%s: protocol error %d instead of an error status", name, code);
    if (!(r.ata & KIT_ATA_SR_ERR) || !(r.err & err_bits))
        kit_fail("%s: status %02x error %02x, wanted ERR with %02x", name, r.ata, r.err,
                 err_bits);
}

static void ide_cases(struct kit_ata_dev *d)
{
    uint64_t ram_end = kit_ram_end();

    /* 1. The PRD table itself outside RAM (and across the 4 GiB line). */
    expect_error("prd table outside RAM", dma(d, false, 0, 1, 0x3f000000));
    expect_error("prd table at 4 GiB - 4", dma(d, false, 0, 1, 0xfffffffc));
    expect_error("dma write, prd table outside RAM", dma(d, true, 0, 1, 0x3f000000));

    /* 2. A PRD buffer in the PCI hole, one running past the end of RAM. */
    prd_set(PRD_TABLE, 0, 0xfec00000u, 512, true);
    expect_error("prd buffer at the IOAPIC", dma(d, false, 0, 1, PRD_TABLE));
    prd_set(PRD_TABLE, 0, 0xe0000000u, 512, true);
    expect_error("prd buffer in the PCI hole", dma(d, false, 0, 1, PRD_TABLE));
    expect_error("dma write from the PCI hole", dma(d, true, 0, 1, PRD_TABLE));
    if (ram_end < 0xe0000000u) {
        prd_set(PRD_TABLE, 0, (uint32_t)ram_end - 256, 512, true);
        expect_error("prd buffer across the end of RAM", dma(d, false, 0, 1, PRD_TABLE));
    }

    /* 3. An endless PRD table: 8192 + 8 two-byte entries, none with EOT,
     * describing less than the 64 sectors asked for. */
    for (int i = 0; i < 8200; i++)
        prd_set(PRD_TABLE, i, (uint32_t)(uintptr_t)SCRATCH, 2, false);
    expect_error("endless prd table", dma(d, false, 0, 64, PRD_TABLE));
    /* A table that ends (EOT) before the transfer does. */
    prd_set(PRD_TABLE, 0, (uint32_t)(uintptr_t)SCRATCH, 512, true);
    expect_error("prd table shorter than the transfer", dma(d, false, 0, 4, PRD_TABLE));

    /* 4. Past the end of the disk. */
    prd_set(PRD_TABLE, 0, (uint32_t)(uintptr_t)SCRATCH, 0, true); /* 64 KiB */
    expect_error("dma read past the end", dma(d, false, d->sectors, 1, PRD_TABLE));
    expect_error("dma read across the end", dma(d, false, d->sectors - 1, 2, PRD_TABLE));
    expect_error("dma write past the end", dma(d, true, d->sectors, 1, PRD_TABLE));
    expect_error("dma read at lba 2^48-1", dma(d, false, (1ULL << 48) - 1, 1, PRD_TABLE));
    expect_ata_error("pio read past the end", kit_ata_read(d, d->sectors, 1, SCRATCH),
                     KIT_ATA_ER_IDNF | KIT_ATA_ER_ABRT);
    expect_ata_error("pio read across the end", kit_ata_read(d, d->sectors - 1, 2, SCRATCH),
                     KIT_ATA_ER_IDNF | KIT_ATA_ER_ABRT);
    expect_ata_error("pio write past the end", kit_ata_write(d, d->sectors, 1, SCRATCH),
                     KIT_ATA_ER_IDNF | KIT_ATA_ER_ABRT);

    /* 5. Bogus opcodes, and ATAPI's PACKET sent to a disk. */
    static const uint8_t bogus[] = { 0x00, 0x5a, 0x7f, 0xd9, 0xfd, 0xff, 0xa0, 0xa1 };
    for (unsigned i = 0; i < ARRAY_SIZE(bogus); i++) {
        char name[48];
        kit_snprintf(name, sizeof(name), "ata opcode %02x", bogus[i]);
        expect_ata_error(name, kit_ata_nodata(d, bogus[i], 0, 1, 0, false), KIT_ATA_ER_ABRT);
    }
    /* DMA started with no command at all: nothing may move, nothing may hang. */
    outb(bmide + BM_STATUS, BM_ERROR | BM_INTR);
    outl(bmide + BM_PRD, 0x3f000000);
    outb(bmide + BM_CMD, BM_TO_MEMORY | BM_START);
    kit_udelay(1000);
    outb(bmide + BM_CMD, 0);
    report("bus master started without a command",
           (struct result){ kit_ata_status(d), 0, inb(bmide + BM_STATUS), false });
}

static void atapi_cases(struct kit_ata_dev *cd)
{
    if (kit_atapi_ready(cd) < 0)
        kit_fail("the CD-ROM is not ready");
    int64_t blocks = kit_atapi_capacity(cd);
    if (blocks <= 0)
        kit_fail("READ CAPACITY: %lld", (long long)blocks);
    static const uint8_t ops[] = { 0x02, 0x0d, 0xe7, 0xff };
    for (unsigned i = 0; i < ARRAY_SIZE(ops); i++) {
        uint8_t cdb[12] = { ops[i] };
        int r = kit_atapi_packet(cd, cdb, SCRATCH, 2048);
        char name[48];
        kit_snprintf(name, sizeof(name), "scsi opcode %02x", ops[i]);
        expect_ata_error(name, r, KIT_ATA_ER_ABRT | 0x50);
        int s = kit_atapi_sense(cd);
        kit_printf("kit: hostile-ide %s: sense %x/%02x/%02x\n", name, (s >> 16) & 0xf,
                   (s >> 8) & 0xff, s & 0xff);
        if (((s >> 16) & 0xf) != 5)
            kit_fail("%s: sense key %x, wanted 5 (illegal request)", name, (s >> 16) & 0xf);
    }
    int r = kit_atapi_read(cd, (uint32_t)blocks, 1, SCRATCH);
    expect_ata_error("atapi read past the end", r, 0xf0);
    r = kit_atapi_read(cd, 0xffffffffu, 2, SCRATCH);
    expect_ata_error("atapi read at lba 2^32-1", r, 0xf0);
    /* A READ(10) whose data is larger than the buffer it is given: the
     * driver drains it; the drive must not wedge. */
    uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 16, 0, 0, 4, 0 };
    r = kit_atapi_packet(cd, cdb, SCRATCH, 2048);
    kit_printf("kit: hostile-ide short buffer: %d\n", r);
    cases++;
    /* An ATA command to the ATAPI device aborts (with its signature). */
    expect_ata_error("ata read to the cdrom", kit_ata_nodata(cd, 0x20, 0, 1, 0, false),
                     KIT_ATA_ER_ABRT);
    if (kit_atapi_read(cd, 16, 1, SCRATCH) < 0 || memcmp(SCRATCH + 1, "CD001", 5) != 0)
        kit_fail("the CD-ROM does not read its volume descriptor after the abuse");
}

void kit_main(void)
{
    struct kit_pci_dev ide = { 0 };
    kit_pci_scan(find_ide, &ide);
    if (ide.vendor != 0x8086)
        kit_fail("no PIIX3 IDE function (8086:7010)");
    uint32_t bar4 = kit_pci_read32(ide.bus, ide.dev, ide.fn, 0x20);
    if (!(bar4 & 1) || (bar4 & ~3u) == 0)
        kit_fail("IDE BAR4 is not an assigned I/O BAR (%08x)", bar4);
    bmide = (uint16_t)(bar4 & 0xfffc);
    uint16_t cmd = kit_pci_read16(ide.bus, ide.dev, ide.fn, 4);
    kit_pci_write16(ide.bus, ide.dev, ide.fn, 4, (uint16_t)(cmd | 0x5));
    kit_printf("kit: hostile-ide: bus master at %x\n", bmide);

    struct kit_ata_dev d, cd;
    kit_ata_init_pos(&d, 0);
    if (kit_ata_probe(&d) != KIT_ATA_DISK || d.sectors < 2048)
        kit_fail("no ATA disk of 1 MiB or more at the primary master");
    kit_ata_init_pos(&cd, 2);
    if (kit_ata_probe(&cd) != KIT_ATA_ATAPI)
        kit_fail("no ATAPI drive at the secondary master");

    ide_cases(&d);
    atapi_cases(&cd);

    /* Still working: a DMA read of 64 sectors equals a PIO read of them. */
    memset(SCRATCH, 0xaa, 512);
    prd_set(PRD_TABLE, 0, (uint32_t)(uintptr_t)SCRATCH, 0x8000, false);
    prd_set(PRD_TABLE, 1, (uint32_t)(uintptr_t)SCRATCH + 0x8000, 0x8000, true);
    struct result r = dma(&d, false, 0, 128, PRD_TABLE);
    kit_printf("kit: hostile-ide good dma read: ata=%02x err=%02x bm=%02x\n", r.ata, r.err, r.bm);
    if (r.timed_out || (r.ata & (KIT_ATA_SR_ERR | KIT_ATA_SR_DRQ)) || (r.bm & (BM_ERROR | BM_ACTIVE)))
        kit_fail("a good DMA read failed after the abuse (ata %02x bm %02x)", r.ata, r.bm);
    int e = kit_ata_read(&d, 0, 128, PIO_COPY);
    if (e < 0)
        kit_fail("a good PIO read failed after the abuse (%d)", e);
    if (memcmp(SCRATCH, PIO_COPY, 512) != 0 || memcmp(SCRATCH + 65024, PIO_COPY + 65024, 512) != 0)
        kit_fail("DMA and PIO reads differ");
    kit_printf("KIT: hostile-ide cases=%d\n", cases);
    kit_pass();
}
