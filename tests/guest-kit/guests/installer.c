/* installer: the kit's "operating system installer". It finds the ATAPI
 * CD-ROM, reads PAYLOAD.BIN and VERIFY.BIN (a boot sector built from
 * tests/guest/install-verify.S) from the CD's ISO9660 root, patches the
 * payload's checksum and length into the boot sector, and writes boot
 * sector + payload (sectors 0, 1..N) onto the IDE primary master disk and
 * the first virtio-blk disk (each if present), flushes, reads back and
 * compares, then powers off.
 *   KIT: installer payload bytes=B sectors=N sum=XXXXXXXX
 *   KIT: installer wrote ide primary master (N+1 sectors)
 *   KIT: installer wrote virtio 0 (N+1 sectors)
 *   KIT: PASS installer
 * The checksum: sum = rol(sum, 5) + dword over N * 512 bytes from 0, the
 * payload padded with zeros to whole sectors (install-verify.S does the same
 * through the BIOS). */
#include "kit.h"

KIT_GUEST("installer");

#define PAYLOAD ((uint8_t *)(uintptr_t)0x2000000)   /* 32 MiB */
#define READBACK ((uint8_t *)(uintptr_t)0x3000000)  /* 48 MiB */
#define MAX_PAYLOAD (8u << 20)
#define VERIFY_MAGIC_OFF 0x1b0
#define VERIFY_SUM_OFF 0x1b4
#define VERIFY_COUNT_OFF 0x1b8

static uint8_t verify[KIT_CD_SECTOR] __attribute__((aligned(16)));
static uint32_t nsectors;

/* At CPL3 (native speed): the checksum over the payload. */
static uint64_t user_checksum(uint64_t words)
{
    const uint32_t *w = (const uint32_t *)(PAYLOAD + 512);
    uint32_t sum = 0;
    for (uint64_t i = 0; i < words; i++)
        sum = ((sum << 5) | (sum >> 27)) + w[i];
    return sum;
}

/* At CPL3: 0 when the read-back copy equals boot sector + payload. */
static uint64_t user_compare(uint64_t bytes)
{
    const uint64_t *a = (const uint64_t *)PAYLOAD, *b = (const uint64_t *)READBACK;
    for (uint64_t i = 0; i < bytes / 8; i++)
        if (a[i] != b[i])
            return i * 8 + 1;
    return 0;
}

/* At CPL3: poisons the read-back area. */
static uint64_t user_poison(uint64_t bytes)
{
    uint64_t *b = (uint64_t *)READBACK;
    for (uint64_t i = 0; i < bytes / 8; i++)
        b[i] = 0xeeeeeeeeeeeeeeeeULL;
    return 0;
}

static bool find_cd(struct kit_ata_dev *cd)
{
    for (int pos = 0; pos < 4; pos++) {
        kit_ata_init_pos(cd, pos);
        if (kit_ata_probe(cd) == KIT_ATA_ATAPI) {
            kit_printf("kit: installer: cdrom at ide %s \"%s\"\n", kit_ata_pos_name(pos),
                       cd->model);
            return true;
        }
    }
    return false;
}

static void check_readback(const char *what)
{
    uint64_t bad = kit_user_call(user_compare, (uint64_t)(nsectors + 1) * 512);
    if (bad)
        kit_fail("%s: read-back differs at byte %llu", what, (unsigned long long)(bad - 1));
}

void kit_main(void)
{
    struct kit_ata_dev cd;
    if (!find_cd(&cd))
        kit_fail("no ATAPI CD-ROM drive");
    int r = kit_atapi_ready(&cd);
    if (r < 0)
        kit_fail("the CD-ROM is not ready (%d)", r);
    struct kit_iso9660 iso;
    r = kit_iso_open(&iso, kit_atapi_cd_read, &cd);
    if (r < 0)
        kit_fail("no ISO9660 volume on the CD (%d)", r);
    kit_printf("kit: installer: volume \"%s\", %u blocks\n", iso.volume_id, iso.volume_blocks);

    struct kit_iso_file pf, vf;
    if ((r = kit_iso_find(&iso, "PAYLOAD.BIN", &pf)) < 0)
        kit_fail("PAYLOAD.BIN not found on the CD (%d)", r);
    if ((r = kit_iso_find(&iso, "VERIFY.BIN", &vf)) < 0)
        kit_fail("VERIFY.BIN not found on the CD (%d)", r);
    if (pf.size == 0 || pf.size > MAX_PAYLOAD)
        kit_fail("PAYLOAD.BIN has %u bytes", pf.size);
    if (vf.size != 512)
        kit_fail("VERIFY.BIN has %u bytes, not 512", vf.size);

    if ((r = kit_iso_read_file(&iso, &vf, verify)) < 0)
        kit_fail("reading VERIFY.BIN: %d", r);
    if (verify[510] != 0x55 || verify[511] != 0xaa ||
        memcmp(verify + VERIFY_MAGIC_OFF, "VRFY", 4) != 0)
        kit_fail("VERIFY.BIN is not the verify boot sector");

    /* The payload goes to sectors 1..N: read it one sector in. */
    nsectors = (pf.size + 511) / 512;
    uint32_t cd_bytes = (pf.size + KIT_CD_SECTOR - 1) / KIT_CD_SECTOR * KIT_CD_SECTOR;
    uint64_t t0 = kit_pmtmr_ticks();
    if ((r = kit_iso_read_file(&iso, &pf, PAYLOAD + 512)) < 0)
        kit_fail("reading PAYLOAD.BIN: %d", r);
    uint64_t t1 = kit_pmtmr_ticks();
    memset(PAYLOAD + 512 + pf.size, 0, cd_bytes - pf.size + 512);
    uint32_t sum = (uint32_t)kit_user_call(user_checksum, (uint64_t)nsectors * 128);
    kit_printf("kit: installer: payload read in %llu ms\n",
               (unsigned long long)((t1 - t0) * 1000 / KIT_PMTMR_HZ));
    kit_printf("KIT: installer payload bytes=%u sectors=%u sum=%08x\n", pf.size, nsectors, sum);

    memcpy(verify + VERIFY_SUM_OFF, &sum, 4);
    uint16_t n16 = (uint16_t)nsectors;
    if (nsectors > 0xffff)
        kit_fail("payload too large for the boot sector's counter");
    memcpy(verify + VERIFY_COUNT_OFF, &n16, 2);
    memcpy(PAYLOAD, verify, 512);

    int written = 0;
    struct kit_ata_dev disk;
    kit_ata_init_pos(&disk, 0);
    if (kit_ata_probe(&disk) == KIT_ATA_DISK) {
        if (disk.sectors < nsectors + 1)
            kit_fail("ide primary master: %llu sectors, need %u",
                     (unsigned long long)disk.sectors, nsectors + 1);
        if ((r = kit_ata_write(&disk, 0, nsectors + 1, PAYLOAD)) < 0)
            kit_fail("ide primary master: write failed (%d)", r);
        if ((r = kit_ata_flush(&disk)) < 0)
            kit_fail("ide primary master: flush failed (%d)", r);
        kit_user_call(user_poison, (uint64_t)(nsectors + 1) * 512);
        if ((r = kit_ata_read(&disk, 0, nsectors + 1, READBACK)) < 0)
            kit_fail("ide primary master: read-back failed (%d)", r);
        check_readback("ide primary master");
        kit_printf("KIT: installer wrote ide primary master (%u sectors)\n", nsectors + 1);
        written++;
    }

    struct kit_vblk v;
    if (kit_vblk_find(&v, 0) == 0) {
        if ((r = kit_vblk_init(&v)) < 0)
            kit_fail("virtio 0: init failed (%d), status %x", r, kit_vblk_get_status(&v));
        if (v.capacity < nsectors + 1)
            kit_fail("virtio 0: %llu sectors, need %u", (unsigned long long)v.capacity,
                     nsectors + 1);
        if ((r = kit_vblk_write(&v, 0, nsectors + 1, PAYLOAD)) != 0)
            kit_fail("virtio 0: write failed (%d)", r);
        if (v.has_flush && (r = kit_vblk_flush(&v)) != 0)
            kit_fail("virtio 0: flush failed (%d)", r);
        kit_user_call(user_poison, (uint64_t)(nsectors + 1) * 512);
        if ((r = kit_vblk_read(&v, 0, nsectors + 1, READBACK)) != 0)
            kit_fail("virtio 0: read-back failed (%d)", r);
        check_readback("virtio 0");
        kit_vblk_reset(&v);
        kit_printf("KIT: installer wrote virtio 0 (%u sectors)\n", nsectors + 1);
        written++;
    }
    if (!written)
        kit_fail("no disk to install onto (IDE primary master or virtio-blk)");
    kit_pass();
}
