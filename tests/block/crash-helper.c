/* tests/block/crash-helper.c — the writer and verifier for test_crash.py.
 *
 *   crash-helper write-snapshots IMG SEED   the same, creating and deleting
 *                                    internal snapshots as it goes
 *   crash-helper write IMG SEED      random writes/discards forever; after each
 *                                    flush prints "F <op>" (all ops <= op are
 *                                    durable) and flushes stdout
 *   crash-helper base IMG SEED       fills IMG with the pattern of op 0
 *   crash-helper verify IMG SEED OP  checks every 4 KiB sector holds what ops
 *                                    <= OP left there, or what a later
 *                                    (unacknowledged) op wrote
 *
 * Every 512-byte unit written carries a header (magic, unit, op) and a fill
 * derived from (seed, op, unit), so a torn or misplaced unit cannot pass;
 * units of one unacknowledged request may come from different ops. */
#include "vmm-core/block/block.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECTOR 4096u
#define FLUSH_EVERY 16
#define LOOKAHEAD 200000 /* ops the writer may have done after its last flush */
#define MAGIC UINT64_C(0x56455353454c4352) /* "VESSELCR" */

typedef struct {
  gboolean discard;
  uint64_t first, count; /* sectors */
} Op;

static Op next_op(GRand *r, uint64_t nsectors)
{
  Op op;
  op.discard = g_rand_int_range(r, 0, 10) == 0;
  op.count = (uint64_t)g_rand_int_range(r, 1, 40);
  op.first = (uint64_t)g_rand_int_range(r, 0, (gint32)nsectors);
  if (op.first + op.count > nsectors)
    op.count = nsectors - op.first;
  return op;
}

/* Each 512-byte unit of a sector carries its own header, so a sector torn by
 * the kill (units from different ops) is still checked unit by unit. */
#define UNIT 512u
static void fill_unit(uint8_t *b, guint32 seed, uint64_t op, uint64_t unit)
{
  uint64_t h[3] = { MAGIC, unit, op };
  memcpy(b, h, sizeof h);
  uint64_t x = (seed * UINT64_C(0x9E3779B97F4A7C15)) ^ (op << 24) ^ unit;
  for (size_t i = sizeof h; i < UNIT; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    memcpy(b + i, &x, 8);
  }
}

static void fill_sector(uint8_t *b, guint32 seed, uint64_t op, uint64_t sector)
{
  for (unsigned k = 0; k < SECTOR / UNIT; k++)
    fill_unit(b + k * UNIT, seed, op, sector * (SECTOR / UNIT) + k);
}

static int do_write(const char *img, guint32 seed, gboolean snapshots)
{
  GError *e = NULL;
  VmmBlock *bs = vmm_block_open(img, NULL, 0, &e);
  if (!bs) {
    fprintf(stderr, "crash-helper: %s\n", e->message);
    return 1;
  }
  uint64_t nsectors = vmm_block_size(bs) / SECTOR;
  GRand *r = g_rand_new_with_seed(seed);
  uint8_t *buf = g_malloc(40 * SECTOR);
  for (uint64_t opn = 1;; opn++) {
    Op op = next_op(r, nsectors);
    gboolean ok;
    if (op.discard) {
      ok = vmm_block_discard(bs, op.first * SECTOR, op.count * SECTOR, &e);
    } else {
      for (uint64_t i = 0; i < op.count; i++)
        fill_sector(buf + i * SECTOR, seed, opn, op.first + i);
      ok = vmm_block_write(bs, op.first * SECTOR, buf, op.count * SECTOR, &e);
    }
    if (ok && snapshots && opn % 40 == 0) {
      /* keep two snapshots: create one, delete the one before the last */
      g_autofree char *name = g_strdup_printf("s%" G_GUINT64_FORMAT, opn / 40);
      ok = vmm_block_snapshot_create(bs, name, &e);
      if (ok && opn / 40 > 2) {
        g_autofree char *old = g_strdup_printf("s%" G_GUINT64_FORMAT, opn / 40 - 2);
        ok = vmm_block_snapshot_delete(bs, old, &e);
      }
    }
    if (ok && opn % FLUSH_EVERY == 0) {
      ok = vmm_block_flush(bs, &e);
      if (ok) {
        printf("F %" G_GUINT64_FORMAT "\n", opn);
        fflush(stdout);
      }
    }
    if (!ok) {
      fprintf(stderr, "crash-helper: %s\n", e->message);
      return 1;
    }
  }
}

typedef struct {
  uint64_t required;  /* last op <= flushed that touched the sector */
  gboolean req_discard;
  GArray *later;      /* ops > flushed touching it (uint64, discard has bit 63) */
} SectorState;

static int do_verify(const char *img, guint32 seed, uint64_t flushed)
{
  GError *e = NULL;
  VmmBlock *bs = vmm_block_open(img, NULL, VMM_BLOCK_OPEN_READ_ONLY, &e);
  if (!bs) {
    fprintf(stderr, "crash-helper: %s\n", e->message);
    return 1;
  }
  uint64_t nsectors = vmm_block_size(bs) / SECTOR;
  SectorState *st = g_new0(SectorState, nsectors);
  GRand *r = g_rand_new_with_seed(seed);
  for (uint64_t opn = 1; opn <= flushed + LOOKAHEAD; opn++) {
    Op op = next_op(r, nsectors);
    for (uint64_t s = op.first; s < op.first + op.count; s++) {
      if (opn <= flushed) {
        st[s].required = opn;
        st[s].req_discard = op.discard;
      } else {
        if (!st[s].later)
          st[s].later = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        uint64_t v = opn | (op.discard ? UINT64_C(1) << 63 : 0);
        g_array_append_val(st[s].later, v);
      }
    }
  }
  uint8_t *sec = g_malloc(SECTOR), *want = g_malloc(UNIT);
  int bad = 0;
  for (uint64_t s = 0; s < nsectors && bad < 5; s++) {
    if (!vmm_block_read(bs, s * SECTOR, sec, SECTOR, &e)) {
      fprintf(stderr, "crash-helper: %s\n", e->message);
      return 1;
    }
    for (unsigned k = 0; k < SECTOR / UNIT; k++) {
      const uint8_t *b = sec + k * UNIT;
      uint64_t unit = s * (SECTOR / UNIT) + k;
      gboolean ok = FALSE;
      gboolean zero = TRUE;
      for (size_t i = 0; i < UNIT && zero; i++)
        zero = b[i] == 0;
      uint64_t h[3];
      memcpy(h, b, sizeof h);
      if (zero) {
        ok = st[s].required == 0 || st[s].req_discard;
        for (guint i = 0; !ok && st[s].later && i < st[s].later->len; i++)
          ok = (g_array_index(st[s].later, uint64_t, i) >> 63) != 0;
      } else if (h[0] == MAGIC && h[1] == unit) {
        uint64_t opn = h[2];
        gboolean known = opn == st[s].required && !st[s].req_discard;
        for (guint i = 0; !known && st[s].later && i < st[s].later->len; i++)
          known = g_array_index(st[s].later, uint64_t, i) == opn;
        if (known) {
          fill_unit(want, seed, opn, unit);
          ok = memcmp(b, want, UNIT) == 0;
        }
      }
      if (!ok) {
        bad++;
        fprintf(stderr, "sector %" G_GUINT64_FORMAT " unit %u: content %s "
                "(header op %" G_GUINT64_FORMAT "), expected op >= %"
                G_GUINT64_FORMAT "%s\n", s, k, zero ? "zero" : "data",
                zero ? 0 : h[2], st[s].required,
                st[s].req_discard ? " (discard)" : "");
        break;
      }
    }
  }
  vmm_block_close(bs, NULL);
  if (bad)
    return 2;
  printf("verified %" G_GUINT64_FORMAT " sectors up to op %" G_GUINT64_FORMAT "\n",
         nsectors, flushed);
  return 0;
}

/* Fills every sector with the pattern of op 0 (a backing file). */
static int do_base(const char *img, guint32 seed)
{
  GError *e = NULL;
  VmmBlock *bs = vmm_block_open(img, NULL, 0, &e);
  if (!bs) {
    fprintf(stderr, "crash-helper: %s\n", e->message);
    return 1;
  }
  uint8_t *b = g_malloc(SECTOR);
  for (uint64_t s = 0; s < vmm_block_size(bs) / SECTOR; s++) {
    fill_sector(b, seed, 0, s);
    if (!vmm_block_write(bs, s * SECTOR, b, SECTOR, &e)) {
      fprintf(stderr, "crash-helper: %s\n", e->message);
      return 1;
    }
  }
  g_free(b);
  return vmm_block_close(bs, NULL) ? 0 : 1;
}

int main(int argc, char **argv)
{
  if (argc == 4 && g_str_equal(argv[1], "base"))
    return do_base(argv[2], (guint32)atoi(argv[3]));
  if (argc == 4 && g_str_equal(argv[1], "write"))
    return do_write(argv[2], (guint32)atoi(argv[3]), FALSE);
  if (argc == 4 && g_str_equal(argv[1], "write-snapshots"))
    return do_write(argv[2], (guint32)atoi(argv[3]), TRUE);
  if (argc == 5 && g_str_equal(argv[1], "verify"))
    return do_verify(argv[2], (guint32)atoi(argv[3]),
                     g_ascii_strtoull(argv[4], NULL, 10));
  fprintf(stderr, "usage: crash-helper write IMG SEED | verify IMG SEED OP\n");
  return 1;
}
