/* diskprobe: lists the IDE devices (ATA disks, ATAPI CD-ROMs) and the
 * virtio-blk disks it finds, reads each one's first sector, and lists the
 * root directory of an ISO9660 CD.
 *   kit: ide <position>: disk "<model>" sectors=N lba48=B mbr=55aa|none
 *   kit: ide <position>: cdrom "<model>" blocks=N volume="V"
 *   kit: iso <name> lba=L size=S
 *   kit: virtio <n> (00:04.0): sectors=N flush=B mbr=...
 *   KIT: diskprobe ide=I cdrom=C virtio=V
 */
#include "kit.h"

KIT_GUEST("diskprobe");

#define SCRATCH ((uint8_t *)(uintptr_t)0x1000000) /* 16 MiB: above the image */

static void list_cb(const char *name, const struct kit_iso_file *f, void *ctx)
{
    (void)ctx;
    kit_printf("kit: iso %s%s lba=%u size=%u\n", name, f->dir ? "/" : "", f->lba, f->size);
}

static const char *mbr(const uint8_t *s)
{
    return s[510] == 0x55 && s[511] == 0xaa ? "55aa" : "none";
}

void kit_main(void)
{
    int ndisk = 0, ncd = 0, nvirtio = 0;
    for (int pos = 0; pos < 4; pos++) {
        struct kit_ata_dev d;
        kit_ata_init_pos(&d, pos);
        enum kit_ata_kind k = kit_ata_probe(&d);
        if (k == KIT_ATA_DISK) {
            ndisk++;
            int r = kit_ata_read(&d, 0, 1, SCRATCH);
            if (r < 0)
                kit_fail("ide %s: read of sector 0: %d", kit_ata_pos_name(pos), r);
            kit_printf("kit: ide %s: disk \"%s\" sectors=%llu lba48=%d mbr=%s\n",
                       kit_ata_pos_name(pos), d.model, (unsigned long long)d.sectors,
                       d.lba48, mbr(SCRATCH));
        } else if (k == KIT_ATA_ATAPI) {
            ncd++;
            kit_printf("kit: ide %s: cdrom \"%s\"\n", kit_ata_pos_name(pos), d.model);
            int r = kit_atapi_ready(&d);
            if (r < 0) {
                kit_printf("kit: ide %s: no medium (%d)\n", kit_ata_pos_name(pos), r);
                continue;
            }
            int64_t blocks = kit_atapi_capacity(&d);
            struct kit_iso9660 iso;
            r = kit_iso_open(&iso, kit_atapi_cd_read, &d);
            if (r < 0)
                kit_fail("ide %s: no ISO9660 volume (%d)", kit_ata_pos_name(pos), r);
            kit_printf("kit: ide %s: cdrom blocks=%lld volume=\"%s\"\n", kit_ata_pos_name(pos),
                       (long long)blocks, iso.volume_id);
            kit_iso_list(&iso, &iso.root, list_cb, NULL);
        } else {
            kit_printf("kit: ide %s: none\n", kit_ata_pos_name(pos));
        }
    }
    for (int n = 0; n < 4; n++) {
        struct kit_vblk v;
        if (kit_vblk_find(&v, n) < 0)
            break;
        int r = kit_vblk_init(&v);
        if (r < 0)
            kit_fail("virtio %d: init failed (%d), status %x", n, r, kit_vblk_get_status(&v));
        r = kit_vblk_read(&v, 0, 1, SCRATCH);
        if (r != 0)
            kit_fail("virtio %d: read of sector 0: %d", n, r);
        kit_printf("kit: virtio %d (%02x:%02x.%x): sectors=%llu flush=%d mbr=%s\n", n,
                   v.pci.bus, v.pci.dev, v.pci.fn, (unsigned long long)v.capacity, v.has_flush,
                   mbr(SCRATCH));
        kit_vblk_reset(&v);
        nvirtio++;
    }
    kit_printf("KIT: diskprobe ide=%d cdrom=%d virtio=%d\n", ndisk, ncd, nvirtio);
    kit_pass();
}
