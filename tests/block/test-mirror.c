/* tests/block/test-mirror.c — randomized mirror test: thousands of random
 * writes, discards, snapshot create/apply/delete, resizes and reopens applied
 * both to a qcow2 image (with and without backing files) and to a plain
 * buffer; contents must agree throughout.  At the end qemu-img check must find
 * no errors and qemu-img compare must match the buffer.
 * Seed: VESSEL_MIRROR_SEED (default fixed); ops per config: VESSEL_MIRROR_OPS. */
#include "vmm-core/block/block.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const char *name;
  int compat;
  uint32_t cluster_size;
  int refcount_bits;
  const char *backing; /* NULL, "raw" or "qcow2" */
  uint64_t backing_size;
  gboolean lazy;
  gboolean direct;   /* O_DIRECT for aligned requests, page cache for others */
} Config;

static const Config configs[] = {
  { "v3-64k-direct", 3, 65536, 16, NULL, 0, FALSE, TRUE },
  { "v3-4k-qcow2-backing-direct", 3, 4096, 16, "qcow2", 6 << 20, FALSE, TRUE },
  { "v2-512-raw-backing", 2, 512, 16, "raw", 10 << 20, FALSE },
  { "v3-1k-refcount1", 3, 1024, 1, NULL, 0, FALSE },
  { "v3-8k-refcount64-lazy-backing", 3, 8192, 64, "qcow2", 3 << 20, TRUE },
  { "v3-32k-refcount2", 3, 32768, 2, NULL, 0, FALSE },
  { "v3-512-refcount64-raw-backing", 3, 512, 64, "raw", 5 << 20, FALSE },
};

#define INITIAL_SIZE (8u << 20)
#define MAX_SIZE (12u << 20)
#define MAX_SNAPSHOTS 6

typedef struct {
  char *name;
  uint8_t *data;
  uint64_t size;
} Snap;

static char *tmpdir;
static gboolean trace, paranoid;
static unsigned skip_lo, skip_hi;
static const char *qemu_img;

static void die(const char *cfg, uint64_t op, const char *what, GError *e)
{
  g_printerr("[%s] op %" G_GUINT64_FORMAT ": %s: %s\n", cfg, op, what,
             e ? e->message : "");
  g_printerr("tmpdir kept: %s\n", tmpdir);
  exit(1);
}

static void random_fill(GRand *r, uint8_t *b, size_t n)
{
  uint32_t x = g_rand_int(r) | 1;
  for (size_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b[i] = (uint8_t)x;
  }
}

static int run(const char *const argv[], char **out)
{
  int status = 0;
  GError *e = NULL;
  if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                    out, NULL, &status, &e)) {
    g_printerr("spawn %s: %s\n", argv[0], e->message);
    exit(1);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void full_compare(VmmBlock *bs, const uint8_t *m, uint64_t size,
                         const char *cfg, uint64_t op)
{
  if (vmm_block_size(bs) != size) {
    g_printerr("[%s] op %" G_GUINT64_FORMAT ": size %" G_GUINT64_FORMAT
               " != mirror %" G_GUINT64_FORMAT "\n", cfg, op,
               vmm_block_size(bs), size);
    exit(1);
  }
  g_autofree uint8_t *b = g_malloc(size ? size : 1);
  GError *e = NULL;
  if (!vmm_block_read(bs, 0, b, size, &e))
    die(cfg, op, "full read", e);
  if (memcmp(b, m, size)) {
    for (uint64_t i = 0; i < size; i++)
      if (b[i] != m[i]) {
        g_printerr("[%s] op %" G_GUINT64_FORMAT ": mismatch at byte %"
                   G_GUINT64_FORMAT " (image %02x, mirror %02x)\n", cfg, op, i,
                   b[i], m[i]);
        break;
      }
    exit(1);
  }
}

static void run_config(const Config *c, guint32 seed, uint64_t nops)
{
  GRand *r = g_rand_new_with_seed(seed);
  g_autofree char *img = g_build_filename(tmpdir, "mirror.qcow2", NULL);
  g_autofree char *base = g_build_filename(tmpdir, "base.img", NULL);
  g_autofree char *raw = g_build_filename(tmpdir, "mirror.raw", NULL);
  GError *e = NULL;
  uint64_t size = INITIAL_SIZE;
  uint8_t *m = g_malloc0(MAX_SIZE);
  GPtrArray *snaps = g_ptr_array_new();
  unsigned snap_seq = 0;

  if (c->backing) {
    VmmBlockCreateOptions bo = { .format = c->backing, .size = c->backing_size,
                                 .cluster_size = 65536 };
    if (!vmm_block_create(base, &bo, &e))
      die(c->name, 0, "create base", e);
    VmmBlock *b = vmm_block_open(base, c->backing, 0, &e);
    if (!b)
      die(c->name, 0, "open base", e);
    random_fill(r, m, c->backing_size);
    /* leave some holes in the base */
    memset(m + 65536, 0, 200000);
    if (!vmm_block_write(b, 0, m, c->backing_size, &e) || !vmm_block_close(b, &e))
      die(c->name, 0, "fill base", e);
    if (c->backing_size > size) /* not visible: grows must read zeroes */
      memset(m + size, 0, c->backing_size - size);
  }
  VmmBlockCreateOptions o = {
    .format = "qcow2", .size = size, .cluster_size = c->cluster_size,
    .compat = c->compat, .refcount_bits = c->refcount_bits,
    .lazy_refcounts = c->lazy,
    .backing_file = c->backing ? "base.img" : NULL, .backing_format = c->backing,
  };
  if (!vmm_block_create(img, &o, &e))
    die(c->name, 0, "create", e);
  unsigned oflags = c->direct ? VMM_BLOCK_OPEN_DIRECT : 0;
  VmmBlock *bs = vmm_block_open(img, NULL, oflags, &e);
  if (!bs)
    die(c->name, 0, "open", e);

  uint64_t maxlen = 3 * (uint64_t)c->cluster_size + 4096;
  /* page-aligned, so aligned requests really take the O_DIRECT path */
  uint8_t *buf = g_aligned_alloc(1, maxlen + 1, 4096);
  gboolean can_snapshot = c->refcount_bits > 1;
  for (uint64_t op = 1; op <= nops; op++) {
    unsigned k = (unsigned)g_rand_int_range(r, 0, 1000);
    if (skip_lo < skip_hi && k >= skip_lo && k < skip_hi)
      k = 700;
    uint64_t off = (uint64_t)g_rand_double_range(r, 0, (double)size);
    uint64_t len = (uint64_t)g_rand_int_range(r, 1, (gint32)maxlen);
    if (g_rand_int_range(r, 0, 10) < 7) {
      off &= ~UINT64_C(511);
      len = (len + 511) & ~UINT64_C(511);
    }
    if (off >= size)
      off = size - 1;
    if (len > size - off)
      len = size - off;
    if (trace)
      g_printerr("op %" G_GUINT64_FORMAT " k=%u off=%" G_GUINT64_FORMAT
                 " len=%" G_GUINT64_FORMAT " size=%" G_GUINT64_FORMAT "\n",
                 op, k, off, len, size);
    if (k < 60) {
      /* a compressed cluster: compressible data, whole cluster */
      uint64_t cs = c->cluster_size;
      uint64_t coff = off & ~(cs - 1);
      uint64_t clen = MIN(cs, size - coff);
      if (coff + cs < size)
        clen = cs;
      else
        clen = size - coff; /* the last cluster */
      for (uint64_t i = 0; i < clen; i++)
        buf[i] = (uint8_t)((i / 64) % 7 + op);
      if (!vmm_block_write_compressed(bs, coff, buf, clen, &e))
        die(c->name, op, "write_compressed", e);
      memcpy(m + coff, buf, clen);
    } else if (k < 450) {
      random_fill(r, buf, len);
      if (!vmm_block_write(bs, off, buf, len, &e))
        die(c->name, op, "write", e);
      memcpy(m + off, buf, len);
    } else if (k < 560) {
      if (!vmm_block_discard(bs, off, len, &e))
        die(c->name, op, "discard", e);
      memset(m + off, 0, len);
    } else if (k < 600) {
      if (!vmm_block_write_zeroes(bs, off, len, &e))
        die(c->name, op, "write_zeroes", e);
      memset(m + off, 0, len);
    } else if (k < 800) {
      if (!vmm_block_read(bs, off, buf, len, &e))
        die(c->name, op, "read", e);
      if (memcmp(buf, m + off, len)) {
        g_printerr("[%s] op %" G_GUINT64_FORMAT ": read mismatch at %"
                   G_GUINT64_FORMAT "+%" G_GUINT64_FORMAT "\n", c->name, op,
                   off, len);
        exit(1);
      }
    } else if (k < 830) {
      if (!vmm_block_flush(bs, &e))
        die(c->name, op, "flush", e);
    } else if (k < 845) {
      if (!vmm_block_close(bs, &e))
        die(c->name, op, "close", e);
      bs = vmm_block_open(img, NULL, oflags, &e);
      if (!bs)
        die(c->name, op, "reopen", e);
    } else if (k < 880 && can_snapshot && snaps->len < MAX_SNAPSHOTS) {
      Snap *s = g_new0(Snap, 1);
      s->name = g_strdup_printf("snap%u", ++snap_seq);
      s->size = size;
      s->data = g_memdup2(m, size);
      if (!vmm_block_snapshot_create(bs, s->name, &e)) {
        if (!g_error_matches(e, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED))
          die(c->name, op, "snapshot create", e);
        g_clear_error(&e); /* refcounts too narrow: refused, nothing changed */
        g_free(s->name);
        g_free(s->data);
        g_free(s);
        continue;
      }
      g_ptr_array_add(snaps, s);
    } else if (k < 905 && snaps->len) {
      Snap *s = snaps->pdata[g_rand_int_range(r, 0, (gint32)snaps->len)];
      if (!vmm_block_snapshot_apply(bs, s->name, &e)) {
        if (!g_error_matches(e, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED))
          die(c->name, op, "snapshot apply", e);
        g_clear_error(&e);
        continue;
      }
      size = s->size;
      memset(m, 0, MAX_SIZE);
      memcpy(m, s->data, size);
    } else if (k < 930 && snaps->len) {
      guint i = (guint)g_rand_int_range(r, 0, (gint32)snaps->len);
      Snap *s = snaps->pdata[i];
      if (!vmm_block_snapshot_delete(bs, s->name, &e))
        die(c->name, op, "snapshot delete", e);
      g_ptr_array_remove_index(snaps, i);
      g_free(s->name);
      g_free(s->data);
      g_free(s);
    } else if (k < 960) {
      uint64_t ns;
      if (snaps->len || g_rand_boolean(r) || size <= (2u << 20))
        ns = size + (uint64_t)g_rand_int_range(r, 1, 1 << 20);
      else
        ns = (uint64_t)g_rand_int_range(r, 1 << 20, (gint32)size);
      ns &= ~UINT64_C(511); /* qcow2 sizes are whole sectors */
      if (ns > MAX_SIZE)
        ns = MAX_SIZE;
      if (ns == size)
        continue;
      if (!vmm_block_resize(bs, ns, TRUE, &e))
        die(c->name, op, "resize", e);
      if (ns < size)
        memset(m + ns, 0, MAX_SIZE - ns);
      size = ns;
    }
    if (op % 500 == 0 || paranoid)
      full_compare(bs, m, size, c->name, op);
  }
  full_compare(bs, m, size, c->name, nops);
  if (!vmm_block_close(bs, &e))
    die(c->name, nops, "close", e);

  /* Our own check, then the oracle. */
  bs = vmm_block_open(img, NULL, VMM_BLOCK_OPEN_READ_ONLY, &e);
  if (!bs)
    die(c->name, nops, "reopen for check", e);
  full_compare(bs, m, size, c->name, nops);
  VmmBlockCheckResult res;
  if (!vmm_block_check(bs, VMM_BLOCK_REPAIR_NONE, &res, &e))
    die(c->name, nops, "check", e);
  if (res.corruptions || res.leaks) {
    for (guint i = 0; i < res.messages->len; i++)
      g_printerr("  %s\n", (char *)res.messages->pdata[i]);
    g_printerr("[%s] vessel check: %" G_GINT64_FORMAT " corruptions, %"
               G_GINT64_FORMAT " leaks\n", c->name, res.corruptions, res.leaks);
    exit(1);
  }
  vmm_block_check_result_clear(&res);
  vmm_block_close(bs, NULL);
  if (qemu_img) {
    g_autofree char *out = NULL;
    const char *check[] = { qemu_img, "check", img, NULL };
    int rc = run(check, &out);
    if (rc != 0) {
      g_printerr("[%s] qemu-img check exit %d:\n%s\n", c->name, rc, out);
      exit(1);
    }
    if (!g_file_set_contents(raw, (char *)m, (gssize)size, NULL))
      exit(1);
    g_free(out);
    out = NULL;
    const char *cmp[] = { qemu_img, "compare", "-f", "raw", "-F", "qcow2", raw,
                          img, NULL };
    rc = run(cmp, &out);
    if (rc != 0) {
      g_printerr("[%s] qemu-img compare exit %d:\n%s\n", c->name, rc, out);
      exit(1);
    }
  }
  printf("ok - mirror %s (%" G_GUINT64_FORMAT " ops, seed %u, %u snapshots "
         "made)\n", c->name, nops, seed, snap_seq);
  fflush(stdout);
  for (guint i = 0; i < snaps->len; i++) {
    Snap *s = snaps->pdata[i];
    g_free(s->name);
    g_free(s->data);
    g_free(s);
  }
  g_ptr_array_unref(snaps);
  g_aligned_free(buf);
  g_free(m);
  g_rand_free(r);
  unlink(img);
  unlink(base);
  unlink(raw);
}

int main(int argc, char **argv)
{
  guint32 seed = 20261125;
  uint64_t nops = 5000;
  const char *s = g_getenv("VESSEL_MIRROR_SEED");
  if (s)
    seed = (guint32)g_ascii_strtoull(s, NULL, 10);
  s = g_getenv("VESSEL_MIRROR_OPS");
  if (s)
    nops = g_ascii_strtoull(s, NULL, 10);
  qemu_img = g_find_program_in_path("qemu-img");
  trace = g_getenv("VESSEL_MIRROR_TRACE") != NULL;
  paranoid = g_getenv("VESSEL_MIRROR_PARANOID") != NULL;
  if (g_getenv("VESSEL_MIRROR_SKIP"))
    sscanf(g_getenv("VESSEL_MIRROR_SKIP"), "%u-%u", &skip_lo, &skip_hi);
  tmpdir = g_dir_make_tmp("vessel-mirror-XXXXXX", NULL);
  printf("1..%u\n", (unsigned)G_N_ELEMENTS(configs));
  if (!qemu_img)
    printf("# qemu-img not found: oracle checks skipped\n");
  for (size_t i = 0; i < G_N_ELEMENTS(configs); i++)
    run_config(&configs[i], seed + (guint32)i, nops);
  rmdir(tmpdir);
  g_free(tmpdir);
  return 0;
}
