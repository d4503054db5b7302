/* Vessel guest kit: an ISO9660 reader (ECMA-119): the primary volume
 * descriptor from sector 16 on (8.4), directory records (9.1), the root and
 * one level of subdirectories. Names are the plain ISO9660 ones (Rock Ridge
 * and Joliet are ignored), compared case-insensitively without ";1". */
#include "kit.h"

static uint8_t sector[KIT_CD_SECTOR] __attribute__((aligned(16)));

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int kit_iso_open(struct kit_iso9660 *iso, kit_cd_read_fn read, void *ctx)
{
    memset(iso, 0, sizeof(*iso));
    iso->read = read;
    iso->ctx = ctx;
    for (uint32_t lba = 16; lba < 32; lba++) {
        int r = read(ctx, lba, 1, sector);
        if (r < 0)
            return r;
        if (memcmp(sector + 1, "CD001", 5) != 0)
            return -1;
        if (sector[0] == 255) /* set terminator */
            return -2;
        if (sector[0] != 1)
            continue;
        memcpy(iso->volume_id, sector + 40, 32);
        int n = 32;
        while (n > 0 && iso->volume_id[n - 1] == ' ')
            n--;
        iso->volume_id[n] = 0;
        iso->volume_blocks = le32(sector + 80);
        const uint8_t *root = sector + 156;
        iso->root.lba = le32(root + 2);
        iso->root.size = le32(root + 10);
        iso->root.dir = true;
        return 0;
    }
    return -2;
}

static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
}

/* The record's name made comparable: no ";version", no trailing '.'. */
static void record_name(const uint8_t *rec, char *out, size_t cap)
{
    size_t n = rec[32];
    if (n >= cap)
        n = cap - 1;
    size_t k = 0;
    for (size_t i = 0; i < n && rec[33 + i] != ';'; i++)
        out[k++] = (char)rec[33 + i];
    if (k > 0 && out[k - 1] == '.')
        k--;
    out[k] = 0;
}

static bool name_eq(const char *a, const char *b, size_t blen)
{
    size_t i = 0;
    for (; a[i] && i < blen; i++)
        if (upper(a[i]) != upper(b[i]))
            return false;
    return a[i] == 0 && i == blen;
}

typedef bool (*walk_fn)(const char *name, const struct kit_iso_file *f, void *ctx);

static int walk(struct kit_iso9660 *iso, const struct kit_iso_file *dir, walk_fn fn, void *ctx)
{
    uint32_t blocks = (dir->size + KIT_CD_SECTOR - 1) / KIT_CD_SECTOR;
    for (uint32_t b = 0; b < blocks; b++) {
        int r = iso->read(iso->ctx, dir->lba + b, 1, sector);
        if (r < 0)
            return r;
        uint32_t off = 0;
        while (off + 33 < KIT_CD_SECTOR) {
            const uint8_t *rec = sector + off;
            if (rec[0] == 0)
                break; /* the rest of this sector is padding */
            if (rec[0] < 34 || off + rec[0] > KIT_CD_SECTOR)
                return -3;
            bool special = rec[32] == 1 && (rec[33] == 0 || rec[33] == 1);
            if (!special) {
                char name[128];
                record_name(rec, name, sizeof(name));
                struct kit_iso_file f = { le32(rec + 2), le32(rec + 10), (rec[25] & 2) != 0 };
                if (!fn(name, &f, ctx))
                    return 1;
            }
            off += rec[0];
        }
    }
    return 0;
}

struct find_ctx {
    const char *want;
    size_t len;
    struct kit_iso_file *out;
    bool found;
};

static bool find_cb(const char *name, const struct kit_iso_file *f, void *ctx)
{
    struct find_ctx *c = ctx;
    if (!name_eq(name, c->want, c->len))
        return true;
    *c->out = *f;
    c->found = true;
    return false;
}

int kit_iso_find(struct kit_iso9660 *iso, const char *path, struct kit_iso_file *out)
{
    struct kit_iso_file dir = iso->root;
    while (*path == '/')
        path++;
    for (;;) {
        const char *slash = path;
        while (*slash && *slash != '/')
            slash++;
        struct find_ctx c = { path, (size_t)(slash - path), out, false };
        int r = walk(iso, &dir, find_cb, &c);
        if (r < 0)
            return r;
        if (!c.found)
            return -4;
        if (!*slash)
            return 0;
        if (!out->dir)
            return -5;
        dir = *out;
        path = slash + 1;
    }
}

struct list_ctx {
    void (*cb)(const char *name, const struct kit_iso_file *f, void *ctx);
    void *ctx;
};

static bool list_cb(const char *name, const struct kit_iso_file *f, void *ctx)
{
    struct list_ctx *c = ctx;
    c->cb(name, f, c->ctx);
    return true;
}

int kit_iso_list(struct kit_iso9660 *iso, const struct kit_iso_file *dir,
                 void (*cb)(const char *name, const struct kit_iso_file *f, void *ctx),
                 void *ctx)
{
    struct list_ctx c = { cb, ctx };
    int r = walk(iso, dir, list_cb, &c);
    return r < 0 ? r : 0;
}

int kit_iso_read_file(struct kit_iso9660 *iso, const struct kit_iso_file *f, void *buf)
{
    uint32_t blocks = (f->size + KIT_CD_SECTOR - 1) / KIT_CD_SECTOR;
    return blocks ? iso->read(iso->ctx, f->lba, blocks, buf) : 0;
}
