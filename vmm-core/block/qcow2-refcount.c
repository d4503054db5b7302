/* vmm-core/block/qcow2-refcount.c — host cluster refcounts: lookup, update,
 * allocation, deferred frees, the consistency check and a full rebuild. */
#include "vmm-core/block/qcow2.h"

#include <string.h>

/* Refcount block entries are refcount_bits wide; below 8 bits, bit 0 is the
 * least significant bit of the byte; 16/32/64 bits are big-endian. */
uint64_t qcow2_refcount_get(const uint8_t *block, uint64_t index, uint32_t order)
{
  switch (order) {
  case 0: return (block[index / 8] >> (index % 8)) & 1;
  case 1: return (block[index / 4] >> (2 * (index % 4))) & 3;
  case 2: return (block[index / 2] >> (4 * (index % 2))) & 15;
  case 3: return block[index];
  case 4: return qcow2_be16(block + index * 2);
  case 5: return qcow2_be32(block + index * 4);
  default: return qcow2_be64(block + index * 8);
  }
}

void qcow2_refcount_set(uint8_t *block, uint64_t index, uint32_t order,
                        uint64_t value)
{
  switch (order) {
  case 0: case 1: case 2: {
    unsigned bits = 1u << order;
    unsigned per_byte = 8 / bits;
    unsigned shift = (unsigned)(index % per_byte) * bits;
    uint8_t mask = (uint8_t)(((1u << bits) - 1) << shift);
    uint8_t *b = &block[index / per_byte];
    *b = (uint8_t)((*b & ~mask) | ((value << shift) & mask));
    break;
  }
  case 3: block[index] = (uint8_t)value; break;
  case 4: qcow2_put_be16(block + index * 2, (uint16_t)value); break;
  case 5: qcow2_put_be32(block + index * 4, (uint32_t)value); break;
  default: qcow2_put_be64(block + index * 8, value); break;
  }
}

gboolean qcow2_refcount_load(Qcow2 *q, GError **error)
{
  uint64_t bytes = (uint64_t)q->refcount_table_clusters * q->cluster_size;
  if (bytes > QCOW2_MAX_REFTABLE_BYTES) {
    QCOW2_ERR(error, CORRUPT, q, "refcount table of %u clusters is larger "
              "than the limit of %u bytes", q->refcount_table_clusters,
              QCOW2_MAX_REFTABLE_BYTES);
    return FALSE;
  }
  if (bytes == 0) {
    QCOW2_ERR(error, CORRUPT, q, "image has no refcount table");
    return FALSE;
  }
  if (!qcow2_check_offset(q, q->refcount_table_offset, bytes,
                          "refcount table", error))
    return FALSE;
  q->refcount_table_size = bytes / 8;
  q->refcount_table = g_malloc(bytes);
  if (!vmm_block_pread(q->bs, q->refcount_table_offset, q->refcount_table,
                       bytes, error))
    return FALSE;
  for (uint64_t i = 0; i < q->refcount_table_size; i++)
    q->refcount_table[i] = qcow2_be64((uint8_t *)&q->refcount_table[i]);
  return TRUE;
}

static gboolean refblock_offset(Qcow2 *q, uint64_t idx, uint64_t *off,
                                GError **error)
{
  uint64_t e = q->refcount_table[idx];
  if (e & ~QCOW2_REFT_OFFSET_MASK) {
    QCOW2_ERR(error, CORRUPT, q, "refcount table entry %" G_GUINT64_FORMAT
              " (0x%" G_GINT64_MODIFIER "x) has reserved bits set", idx, e);
    return FALSE;
  }
  *off = e & QCOW2_REFT_OFFSET_MASK;
  return TRUE;
}

gboolean qcow2_get_refcount(Qcow2 *q, uint64_t cluster, uint64_t *rc,
                            GError **error)
{
  uint64_t idx = cluster >> q->refblock_bits;
  *rc = 0;
  if (idx >= q->refcount_table_size)
    return TRUE;
  uint64_t off;
  if (!refblock_offset(q, idx, &off, error))
    return FALSE;
  if (!off)
    return TRUE;
  uint8_t *b = qcow2_cache_get(q, q->refblock_cache, off, TRUE, error);
  if (!b)
    return FALSE;
  *rc = qcow2_refcount_get(b, cluster & ((UINT64_C(1) << q->refblock_bits) - 1),
                           q->refcount_order);
  return TRUE;
}

gboolean qcow2_write_reftable(Qcow2 *q, GError **error)
{
  if (!q->reftable_dirty)
    return TRUE;
  uint64_t bytes = (uint64_t)q->refcount_table_clusters * q->cluster_size;
  g_autofree uint8_t *b = g_malloc0(bytes);
  for (uint64_t i = 0; i < q->refcount_table_size; i++)
    qcow2_put_be64(b + i * 8, q->refcount_table[i]);
  if (!vmm_block_pwrite(q->bs, q->refcount_table_offset, b, bytes, error))
    return FALSE;
  q->reftable_dirty = FALSE;
  q->need_sync = TRUE;
  return TRUE;
}

/* First cluster at or after alloc_end with refcount 0 that starts a run of n
 * free clusters; reserves it by moving alloc_end. */
static gboolean append_clusters(Qcow2 *q, uint64_t n, uint64_t *first,
                                GError **error)
{
  uint64_t c = MAX(q->alloc_end, 1), skipped = 0;
  for (uint64_t i = 0; i < n;) {
    uint64_t rc;
    if (!qcow2_get_refcount(q, c + i, &rc, error))
      return FALSE;
    if (rc && ++skipped > QCOW2_MAX_USED_PAST_END) {
      QCOW2_ERR(error, CORRUPT, q, "more than %d clusters past the end of the "
                "image have non-zero refcounts (run 'vessel-img check -r all')",
                QCOW2_MAX_USED_PAST_END);
      return FALSE;
    }
    if (rc) {
      c = c + i + 1;
      i = 0;
    } else {
      i++;
    }
  }
  q->alloc_end = c + n;
  *first = c;
  return TRUE;
}

static gboolean grow_reftable(Qcow2 *q, uint64_t min_entries, GError **error);

static gboolean create_refblock(Qcow2 *q, uint64_t idx, GError **error)
{
  uint64_t c;
  if (!append_clusters(q, 1, &c, error))
    return FALSE;
  uint64_t off = c << q->cluster_bits;
  if (!qcow2_cache_get(q, q->refblock_cache, off, FALSE, error))
    return FALSE;
  qcow2_cache_mark_dirty(q->refblock_cache, off);
  q->refcount_table[idx] = off;
  q->reftable_dirty = TRUE;
  /* The new block's own refcount (often stored in itself). */
  return qcow2_update_refcount(q, c, 1, error);
}

gboolean qcow2_update_refcount(Qcow2 *q, uint64_t cluster, int64_t delta,
                               GError **error)
{
  uint64_t idx = cluster >> q->refblock_bits;
  if (idx >= q->refcount_table_size) {
    if (delta < 0)
      goto underflow;
    if (!grow_reftable(q, idx + 1, error))
      return FALSE;
  }
  uint64_t off;
  if (!refblock_offset(q, idx, &off, error))
    return FALSE;
  if (!off) {
    if (delta < 0)
      goto underflow;
    if (!create_refblock(q, idx, error))
      return FALSE;
    off = q->refcount_table[idx] & QCOW2_REFT_OFFSET_MASK;
  }
  uint8_t *b = qcow2_cache_get(q, q->refblock_cache, off, TRUE, error);
  if (!b)
    return FALSE;
  uint64_t i = cluster & ((UINT64_C(1) << q->refblock_bits) - 1);
  uint64_t v = qcow2_refcount_get(b, i, q->refcount_order);
  if (delta < 0 && v < (uint64_t)-delta)
    goto underflow;
  if (delta > 0 && q->refcount_max - v < (uint64_t)delta) {
    QCOW2_ERR(error, UNSUPPORTED, q, "refcount of cluster 0x%"
              G_GINT64_MODIFIER "x would exceed the maximum %"
              G_GUINT64_FORMAT " of refcount_bits=%u", cluster << q->cluster_bits,
              q->refcount_max, q->refcount_bits);
    return FALSE;
  }
  v = (uint64_t)((int64_t)v + delta);
  if (delta < 0)
    q->comp_next = q->comp_end = 0; /* never pack into a cluster being freed */
  qcow2_refcount_set(b, i, q->refcount_order, v);
  qcow2_cache_mark_dirty(q->refblock_cache, off);
  if (v == 0 && cluster < q->free_hint)
    q->free_hint = cluster;
  return TRUE;

underflow:
  QCOW2_ERR(error, CORRUPT, q, "refcount of cluster 0x%" G_GINT64_MODIFIER
            "x would drop below zero (run 'vessel-img check -r all')",
            cluster << q->cluster_bits);
  return FALSE;
}

static gboolean grow_reftable(Qcow2 *q, uint64_t min_entries, GError **error)
{
  uint64_t want = MAX(min_entries + 16, q->refcount_table_size * 2);
  uint64_t bytes = qcow2_align_up(want * 8, q->cluster_size);
  if (bytes > QCOW2_MAX_REFTABLE_BYTES) {
    bytes = QCOW2_MAX_REFTABLE_BYTES;
    if (bytes / 8 < min_entries) {
      QCOW2_ERR(error, UNSUPPORTED, q, "the refcount table would exceed %u "
                "bytes; the image cannot grow further", QCOW2_MAX_REFTABLE_BYTES);
      return FALSE;
    }
  }
  /* Bring the current table up to date on disk first. */
  if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
      !qcow2_write_reftable(q, error))
    return FALSE;
  uint64_t n = bytes / q->cluster_size, first;
  if (!append_clusters(q, n, &first, error))
    return FALSE;
  uint64_t old_off = q->refcount_table_offset;
  uint64_t old_bytes = (uint64_t)q->refcount_table_clusters * q->cluster_size;
  uint64_t old_entries = q->refcount_table_size;
  q->refcount_table = g_renew(uint64_t, q->refcount_table, bytes / 8);
  memset(q->refcount_table + old_entries, 0, (bytes / 8 - old_entries) * 8);
  q->refcount_table_size = bytes / 8;
  q->refcount_table_offset = first << q->cluster_bits;
  q->refcount_table_clusters = (uint32_t)n;
  q->reftable_dirty = TRUE;
  for (uint64_t i = 0; i < n; i++)
    if (!qcow2_update_refcount(q, first + i, 1, error))
      return FALSE;
  if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
      !qcow2_write_reftable(q, error) || !qcow2_sync(q, error))
    return FALSE;
  uint8_t h[12];
  qcow2_put_be64(h, q->refcount_table_offset);
  qcow2_put_be32(h + 8, q->refcount_table_clusters);
  if (!vmm_block_pwrite(q->bs, 48, h, sizeof h, error) || !qcow2_sync(q, error))
    return FALSE;
  qcow2_free_later(q, old_off, old_bytes);
  return TRUE;
}

static gboolean in_range(uint64_t off, uint64_t start, uint64_t len)
{
  return len && off >= (start & ~UINT64_C(511)) && off < start + len;
}

/* A cluster with refcount 0 that the metadata still uses means the refcounts
 * are wrong; reusing it would destroy the image.  Checked for the tables we
 * hold in memory (cheap); the image is marked corrupt if one is hit. */
static const char *metadata_user(Qcow2 *q, uint64_t c)
{
  uint64_t off = c << q->cluster_bits;
  if (off == 0)
    return "header";
  if (in_range(off, q->l1_table_offset, (uint64_t)q->l1_size * 8))
    return "L1 table";
  if (in_range(off, q->refcount_table_offset,
               (uint64_t)q->refcount_table_clusters << q->cluster_bits))
    return "refcount table";
  if (q->nb_snapshots && in_range(off, q->snapshots_offset, q->snapshots_size))
    return "snapshot table";
  for (uint64_t i = 0; i < q->refcount_table_size; i++)
    if ((q->refcount_table[i] & QCOW2_REFT_OFFSET_MASK) == off)
      return "refcount block";
  for (uint32_t i = 0; i < q->l1_size; i++)
    if ((q->l1_table[i] & QCOW2_L1E_OFFSET_MASK) == off)
      return "L2 table";
  return NULL;
}

static void mark_corrupt(Qcow2 *q)
{
  if (q->version < 3)
    return;
  uint8_t b[8];
  q->incompatible |= QCOW2_INCOMPAT_CORRUPT;
  qcow2_put_be64(b, q->incompatible);
  vmm_block_pwrite(q->bs, 72, b, 8, NULL);
}

gboolean qcow2_alloc_clusters(Qcow2 *q, uint64_t n, uint64_t *offset,
                              GError **error)
{
  uint64_t c = 0;
  gboolean found = FALSE;
  if (n == 1) {
    uint64_t start = MAX(q->free_hint, 1);
    for (c = start; c < q->alloc_end; c++) {
      uint64_t rc;
      if (!qcow2_get_refcount(q, c, &rc, error))
        return FALSE;
      if (rc == 0) {
        const char *user = metadata_user(q, c);
        if (user) {
          mark_corrupt(q);
          QCOW2_ERR(error, CORRUPT, q, "refcounts are inconsistent: cluster "
                    "0x%" G_GINT64_MODIFIER "x has refcount 0 but holds the "
                    "%s; the image is now marked corrupt (repair it with "
                    "'vessel-img check -r all')", c << q->cluster_bits, user);
          return FALSE;
        }
        found = TRUE;
        break;
      }
    }
    q->free_hint = found ? c + 1 : q->alloc_end;
  }
  if (!found && !append_clusters(q, n, &c, error))
    return FALSE;
  for (uint64_t i = 0; i < n; i++)
    if (!qcow2_update_refcount(q, c + i, 1, error))
      return FALSE;
  if (q->free_hint > c + n && n == 1)
    q->free_hint = c + 1;
  *offset = c << q->cluster_bits;
  return TRUE;
}

gboolean qcow2_alloc_clusters_at_end(Qcow2 *q, uint64_t n, uint64_t *offset,
                                     GError **error)
{
  uint64_t c;
  if (!append_clusters(q, n, &c, error))
    return FALSE;
  for (uint64_t i = 0; i < n; i++)
    if (!qcow2_update_refcount(q, c + i, 1, error))
      return FALSE;
  *offset = c << q->cluster_bits;
  return TRUE;
}

void qcow2_free_later(Qcow2 *q, uint64_t offset, uint64_t len)
{
  for (uint64_t o = offset & ~(uint64_t)(q->cluster_size - 1); o < offset + len;
       o += q->cluster_size)
    g_array_append_val(q->pending_free, o);
}

/* Host clusters an L2 entry holds a reference to. */
static void l2_entry_clusters(Qcow2 *q, uint64_t l2e, uint64_t *start,
                              uint64_t *len)
{
  *start = *len = 0;
  if (l2e & QCOW2_OFLAG_COMPRESSED) {
    uint64_t host, nb;
    qcow2_compressed_desc(l2e, q->cluster_bits, &host, &nb);
    *start = host;
    *len = (nb + 1) * 512 - (host & 511);
    return;
  }
  uint64_t off = l2e & QCOW2_L2E_OFFSET_MASK;
  if (off) {
    *start = off;
    *len = q->cluster_size;
  }
}

void qcow2_free_l2_entry_later(Qcow2 *q, uint64_t l2e)
{
  uint64_t s, l;
  l2_entry_clusters(q, l2e, &s, &l);
  if (l)
    qcow2_free_later(q, s, l);
}

gboolean qcow2_apply_pending_frees(Qcow2 *q, GError **error)
{
  GArray *a = q->pending_free;
  q->pending_free = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  gboolean ok = TRUE;
  for (unsigned i = 0; i < a->len && ok; i++) {
    uint64_t off = g_array_index(a, uint64_t, i);
    uint64_t c = off >> q->cluster_bits, rc = 0;
    ok = qcow2_update_refcount(q, c, -1, error) &&
         qcow2_get_refcount(q, c, &rc, error);
    if (ok && rc == 0) {
      qcow2_cache_drop(q->l2_cache, off);
      q->dbuf_desc = 0;
    }
  }
  g_array_unref(a);
  return ok;
}

gboolean qcow2_update_tree_refcounts(Qcow2 *q, const uint64_t *l1,
                                     uint32_t l1_size, int64_t delta,
                                     gboolean dry_run, GError **error)
{
  g_autofree uint8_t *t = g_malloc(q->cluster_size);
  /* dry run: how often each cluster is reached (packed compressed clusters
   * share host clusters), so the check is exact */
  g_autoptr(GHashTable) seen = dry_run ? g_hash_table_new(g_direct_hash,
                                                          g_direct_equal) : NULL;
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2_off = l1[i] & QCOW2_L1E_OFFSET_MASK;
    if (!l2_off)
      continue;
    uint8_t *ct = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
    if (!ct)
      return FALSE;
    memcpy(t, ct, q->cluster_size);
    for (uint64_t j = 0; j <= q->l2_entries; j++) {
      uint64_t s, l;
      if (j == q->l2_entries) {
        s = l2_off;
        l = q->cluster_size;
      } else {
        l2_entry_clusters(q, qcow2_be64(t + 8 * j), &s, &l);
      }
      for (uint64_t o = s & ~(uint64_t)(q->cluster_size - 1); o < s + l;
           o += q->cluster_size) {
        if (dry_run) {
          uint64_t rc;
          if (!qcow2_get_refcount(q, o >> q->cluster_bits, &rc, error))
            return FALSE;
          gpointer key = GSIZE_TO_POINTER(o >> q->cluster_bits);
          uint64_t before = GPOINTER_TO_SIZE(g_hash_table_lookup(seen, key));
          g_hash_table_insert(seen, key, GSIZE_TO_POINTER(before + 1));
          rc += before * (uint64_t)delta;
          if (rc + (uint64_t)delta > q->refcount_max || rc == 0) {
            if (rc == 0)
              QCOW2_ERR(error, CORRUPT, q, "cluster 0x%" G_GINT64_MODIFIER
                        "x is in use but has refcount 0 (run 'vessel-img "
                        "check -r all')", o);
            else
              QCOW2_ERR(error, UNSUPPORTED, q, "refcount_bits=%u is too "
                        "small: cluster 0x%" G_GINT64_MODIFIER "x cannot be "
                        "shared once more", q->refcount_bits, o);
            return FALSE;
          }
        } else {
          if (!qcow2_update_refcount(q, o >> q->cluster_bits, delta, error))
            return FALSE;
          uint64_t rc = 1;
          if (delta < 0 &&
              !qcow2_get_refcount(q, o >> q->cluster_bits, &rc, error))
            return FALSE;
          if (rc == 0)
            qcow2_cache_drop(q->l2_cache, o);
        }
      }
    }
  }
  return TRUE;
}

gboolean qcow2_fix_copied_flags(Qcow2 *q, GError **error)
{
  for (uint32_t i = 0; i < q->l1_size; i++) {
    uint64_t l2_off = q->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (!l2_off)
      continue;
    uint64_t rc;
    if (!qcow2_get_refcount(q, l2_off >> q->cluster_bits, &rc, error))
      return FALSE;
    uint64_t want = l2_off | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
    if (q->l1_table[i] != want) {
      q->l1_table[i] = want;
      q->l1_dirty = TRUE;
    }
    for (uint64_t j = 0; j < q->l2_entries; j++) {
      uint8_t *t = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
      if (!t)
        return FALSE;
      uint64_t e = qcow2_be64(t + 8 * j), ne = e;
      uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
      if (e & QCOW2_OFLAG_COMPRESSED) {
        ne = e & ~QCOW2_OFLAG_COPIED;
      } else if (host) {
        if (!qcow2_get_refcount(q, host >> q->cluster_bits, &rc, error))
          return FALSE;
        ne = (e & ~QCOW2_OFLAG_COPIED) | (rc == 1 ? QCOW2_OFLAG_COPIED : 0);
        t = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
        if (!t)
          return FALSE;
      } else {
        ne = e & ~QCOW2_OFLAG_COPIED;
      }
      if (ne != e) {
        qcow2_put_be64(t + 8 * j, ne);
        qcow2_cache_mark_dirty(q->l2_cache, l2_off);
      }
    }
  }
  return TRUE;
}

/* ---- check ---- */

typedef struct {
  Qcow2 *q;
  uint32_t *refs;        /* computed references per cluster */
  uint64_t nb;           /* clusters in refs */
  VmmBlockCheckResult *res;
  gboolean fix;          /* clear entries that point outside the file */
  gboolean count_refcount_structs;
  uint64_t highest;      /* highest referenced cluster + 1 */
} Walk;

static void walk_inc(Walk *w, uint64_t off, uint64_t len, const char *what)
{
  if (len == 0)
    return;
  uint64_t first = off >> w->q->cluster_bits;
  uint64_t last = (off + len - 1) >> w->q->cluster_bits;
  for (uint64_t c = first; c <= last; c++) {
    if (c >= w->nb) {
      w->res->corruptions++;
      vmm_block_check_result_add(w->res, "ERROR %s at offset 0x%"
                                 G_GINT64_MODIFIER "x is past the end of the "
                                 "file", what, c << w->q->cluster_bits);
      return;
    }
    if (w->refs[c] != UINT32_MAX)
      w->refs[c]++;
    if (c + 1 > w->highest)
      w->highest = c + 1;
  }
}

static gboolean table_ok(Walk *w, uint64_t off, uint64_t len, const char *what)
{
  Qcow2 *q = w->q;
  if (off & (q->cluster_size - 1)) {
    w->res->corruptions++;
    vmm_block_check_result_add(w->res, "ERROR %s offset 0x%" G_GINT64_MODIFIER
                               "x is not aligned to a cluster boundary", what, off);
    return FALSE;
  }
  if (off == 0 || ((off + len - 1) >> q->cluster_bits) >= w->nb) {
    w->res->corruptions++;
    vmm_block_check_result_add(w->res, "ERROR %s offset 0x%" G_GINT64_MODIFIER
                               "x is %s", what, off, off ? "past the end of "
                               "the file" : "zero (the header)");
    return FALSE;
  }
  return TRUE;
}

static gboolean walk_l1(Walk *w, uint64_t *l1, uint32_t l1_size,
                        gboolean active, GError **error)
{
  Qcow2 *q = w->q;
  g_autofree uint8_t *t = g_malloc(q->cluster_size);
  uint64_t prev_host = 0;
  for (uint32_t i = 0; i < l1_size; i++) {
    uint64_t l2_off = l1[i] & QCOW2_L1E_OFFSET_MASK;
    if (l1[i] & QCOW2_L1E_RESERVED) {
      w->res->corruptions++;
      vmm_block_check_result_add(w->res, "ERROR L1 entry %u (0x%"
                                 G_GINT64_MODIFIER "x) has reserved bits set",
                                 i, l1[i]);
      if (w->fix && active) {
        l1[i] &= ~QCOW2_L1E_RESERVED;
        q->l1_dirty = TRUE;
        w->res->corruptions_fixed++;
      }
    }
    if (!l2_off)
      continue;
    if (!table_ok(w, l2_off, q->cluster_size, "L2 table")) {
      if (w->fix && active) {
        l1[i] = 0;
        q->l1_dirty = TRUE;
        w->res->corruptions_fixed++;
      }
      continue;
    }
    walk_inc(w, l2_off, q->cluster_size, "L2 table");
    if (!vmm_block_pread(q->bs, l2_off, t, q->cluster_size, error))
      return FALSE;
    gboolean changed = FALSE;
    for (uint64_t j = 0; j < q->l2_entries; j++) {
      uint64_t e = qcow2_be64(t + 8 * j);
      if (e & QCOW2_OFLAG_COMPRESSED) {
        uint64_t s, l;
        l2_entry_clusters(q, e, &s, &l);
        if (s < q->cluster_size || (s >> q->cluster_bits) >= w->nb) {
          w->res->corruptions++;
          vmm_block_check_result_add(w->res, "ERROR compressed cluster offset "
                                     "0x%" G_GINT64_MODIFIER "x is outside "
                                     "the file", s);
          if (w->fix) {
            qcow2_put_be64(t + 8 * j, 0);
            changed = TRUE;
            w->res->corruptions_fixed++;
          }
          continue;
        }
        walk_inc(w, s, MIN(l, (w->nb << q->cluster_bits) - s), "compressed cluster");
        if (active)
          w->res->allocated_clusters++, w->res->compressed_clusters++;
        continue;
      }
      uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
      if (!host)
        continue;
      if (!table_ok(w, host, q->cluster_size, "data cluster")) {
        if (w->fix) {
          qcow2_put_be64(t + 8 * j, q->version >= 3 ? QCOW2_OFLAG_ZERO : 0);
          changed = TRUE;
          w->res->corruptions_fixed++;
        }
        continue;
      }
      walk_inc(w, host, q->cluster_size, "data cluster");
      if (active && !(q->version >= 3 && (e & QCOW2_OFLAG_ZERO))) {
        w->res->allocated_clusters++;
        if (prev_host && host != prev_host + q->cluster_size)
          w->res->fragmented_clusters++;
        prev_host = host;
      }
    }
    if (changed) {
      qcow2_cache_drop(q->l2_cache, l2_off);
      if (!vmm_block_pwrite(q->bs, l2_off, t, q->cluster_size, error))
        return FALSE;
    }
  }
  return TRUE;
}

static gboolean load_l1(Qcow2 *q, uint64_t off, uint32_t size, uint64_t **out,
                        GError **error)
{
  uint64_t *l1 = g_new0(uint64_t, MAX(size, 1));
  if (size && !vmm_block_pread(q->bs, off, l1, (size_t)size * 8, error)) {
    g_free(l1);
    return FALSE;
  }
  for (uint32_t i = 0; i < size; i++)
    l1[i] = qcow2_be64((uint8_t *)&l1[i]);
  *out = l1;
  return TRUE;
}

/* Counts the references to every cluster from the image metadata. */
static gboolean compute_refs(Qcow2 *q, Walk *w, GError **error)
{
  uint64_t fsize = vmm_block_file_size(q->bs);
  w->nb = MAX(qcow2_align_up(fsize, q->cluster_size) >> q->cluster_bits, 1);
  w->refs = g_new0(uint32_t, w->nb);
  walk_inc(w, 0, q->cluster_size, "header");
  if (q->l1_size && table_ok(w, q->l1_table_offset, (uint64_t)q->l1_size * 8,
                             "L1 table"))
    walk_inc(w, q->l1_table_offset, (uint64_t)q->l1_size * 8, "L1 table");
  if (!walk_l1(w, q->l1_table, q->l1_size, TRUE, error))
    return FALSE;
  if (q->nb_snapshots && table_ok(w, q->snapshots_offset, q->snapshots_size,
                                  "snapshot table"))
    walk_inc(w, q->snapshots_offset, q->snapshots_size, "snapshot table");
  for (uint32_t i = 0; i < q->nb_snapshots; i++) {
    Qcow2Snapshot *s = &q->snapshots[i];
    if (!s->l1_size)
      continue;
    if (!table_ok(w, s->l1_table_offset, (uint64_t)s->l1_size * 8,
                  "snapshot L1 table"))
      continue;
    walk_inc(w, s->l1_table_offset, (uint64_t)s->l1_size * 8,
             "snapshot L1 table");
    g_autofree uint64_t *l1 = NULL;
    if (!load_l1(q, s->l1_table_offset, s->l1_size, &l1, error) ||
        !walk_l1(w, l1, s->l1_size, FALSE, error))
      return FALSE;
  }
  if (w->count_refcount_structs) {
    walk_inc(w, q->refcount_table_offset,
             (uint64_t)q->refcount_table_clusters * q->cluster_size,
             "refcount table");
    for (uint64_t i = 0; i < q->refcount_table_size; i++) {
      uint64_t off = q->refcount_table[i] & QCOW2_REFT_OFFSET_MASK;
      if (q->refcount_table[i] & ~QCOW2_REFT_OFFSET_MASK) {
        w->res->corruptions++;
        vmm_block_check_result_add(w->res, "ERROR refcount table entry %"
                                   G_GUINT64_FORMAT " (0x%" G_GINT64_MODIFIER
                                   "x) is not aligned: reserved bits set", i,
                                   q->refcount_table[i]);
      }
      if (!off)
        continue;
      if (table_ok(w, off, q->cluster_size, "refcount block"))
        walk_inc(w, off, q->cluster_size, "refcount block");
    }
  }
  return TRUE;
}

gboolean qcow2_rebuild_refcounts(Qcow2 *q, GError **error)
{
  VmmBlockCheckResult scratch = { 0 };
  Walk w = { .q = q, .res = &scratch, .count_refcount_structs = FALSE };
  gboolean ok = FALSE;
  g_autofree uint8_t *blk = NULL, *tb = NULL;
  g_autofree uint64_t *table = NULL;
  /* Metadata must be on disk as we walk it; pending frees are superseded. */
  if (!qcow2_cache_flush(q, q->l2_cache, error) ||
      !qcow2_write_l1_table(q, error))
    return FALSE;
  g_array_set_size(q->pending_free, 0);
  if (!compute_refs(q, &w, error))
    goto out;
  uint64_t start = MAX(w.highest, w.nb);
  uint64_t rbe = qcow2_refblock_entries(q->cluster_bits, q->refcount_bits);
  uint64_t rt = 1, rb = 1;
  for (int iter = 0; iter < 32; iter++) {
    uint64_t total = start + rt + rb;
    uint64_t nrb = (total + rbe - 1) / rbe;
    uint64_t nrt = qcow2_align_up(nrb * 8, q->cluster_size) >> q->cluster_bits;
    if (nrb == rb && nrt == rt)
      break;
    rb = nrb;
    rt = nrt;
  }
  if (rt << q->cluster_bits > QCOW2_MAX_REFTABLE_BYTES) {
    QCOW2_ERR(error, UNSUPPORTED, q, "rebuilt refcount table would exceed %u "
              "bytes", QCOW2_MAX_REFTABLE_BYTES);
    goto out;
  }
  uint64_t total = start + rt + rb;
  uint64_t rb_start = start + rt;
  blk = g_malloc(q->cluster_size);
  uint64_t rt_entries = (rt << q->cluster_bits) / 8;
  table = g_new0(uint64_t, rt_entries);
  for (uint64_t b = 0; b < rb; b++) {
    memset(blk, 0, q->cluster_size);
    for (uint64_t k = 0; k < rbe; k++) {
      uint64_t c = b * rbe + k;
      if (c >= total)
        break;
      uint64_t v = c < w.nb ? w.refs[c] : 0;
      if (c >= start)
        v = 1;
      if (v > q->refcount_max) {
        QCOW2_ERR(error, CORRUPT, q, "cluster 0x%" G_GINT64_MODIFIER "x has %"
                  G_GUINT64_FORMAT " references, more than refcount_bits=%u "
                  "can count", c << q->cluster_bits, v, q->refcount_bits);
        goto out;
      }
      qcow2_refcount_set(blk, k, q->refcount_order, v);
    }
    table[b] = (rb_start + b) << q->cluster_bits;
    if (!vmm_block_pwrite(q->bs, table[b], blk, q->cluster_size, error))
      goto out;
  }
  tb = g_malloc0(rt << q->cluster_bits);
  for (uint64_t i = 0; i < rt_entries; i++)
    qcow2_put_be64(tb + i * 8, table[i]);
  if (!vmm_block_pwrite(q->bs, start << q->cluster_bits, tb, rt << q->cluster_bits,
                        error) || !qcow2_sync(q, error))
    goto out;
  uint8_t h[12];
  qcow2_put_be64(h, start << q->cluster_bits);
  qcow2_put_be32(h + 8, (uint32_t)rt);
  if (!vmm_block_pwrite(q->bs, 48, h, sizeof h, error) || !qcow2_sync(q, error))
    goto out;
  qcow2_cache_clear(q->refblock_cache);
  g_free(q->refcount_table);
  q->refcount_table = g_steal_pointer(&table);
  q->refcount_table_size = rt_entries;
  q->refcount_table_offset = start << q->cluster_bits;
  q->refcount_table_clusters = (uint32_t)rt;
  q->reftable_dirty = FALSE;
  q->alloc_end = total;
  q->free_hint = 1;
  /* bit 63 follows the new refcounts */
  if (!qcow2_fix_copied_flags(q, error) || !qcow2_flush_all(q, error))
    goto out;
  ok = TRUE;
out:
  g_free(w.refs);
  return ok;
}

static gboolean do_check(Qcow2 *q, VmmBlockCheckResult *res, gboolean fix,
                         GError **error)
{
  Walk w = { .q = q, .res = res, .fix = fix, .count_refcount_structs = TRUE };
  gboolean ok = FALSE;
  g_autofree uint8_t *blk = NULL;
  if (!compute_refs(q, &w, error))
    goto out;
  res->total_clusters = qcow2_align_up(q->bs->size, q->cluster_size) >>
                        q->cluster_bits;
  /* Compare with the stored refcounts. */
  uint64_t rbe = UINT64_C(1) << q->refblock_bits;
  uint64_t limit = MAX(w.nb, 1);
  for (uint64_t i = 0; i < q->refcount_table_size; i++)
    if (q->refcount_table[i] & QCOW2_REFT_OFFSET_MASK)
      limit = MAX(limit, (i + 1) * rbe);
  /* refcounts far past the end of the file are not compared (a crafted
   * table would make this loop endless); the blocks just past it are */
  limit = MIN(limit, ((w.nb >> q->refblock_bits) + 2) * rbe);
  blk = g_malloc(q->cluster_size);
  uint64_t loaded = UINT64_MAX;
  gboolean blk_valid = FALSE;
  for (uint64_t c = 0; c < limit; c++) {
    uint64_t idx = c >> q->refblock_bits;
    uint64_t disk = 0;
    if (idx != loaded) {
      loaded = idx;
      blk_valid = FALSE;
      uint64_t off = idx < q->refcount_table_size
                         ? q->refcount_table[idx] & QCOW2_REFT_OFFSET_MASK : 0;
      if (off && (off & (q->cluster_size - 1) ||
                  (off >> q->cluster_bits) >= w.nb)) {
        /* already reported as a corruption by compute_refs */
      } else if (off) {
        if (!vmm_block_pread(q->bs, off, blk, q->cluster_size, error))
          goto out;
        blk_valid = TRUE;
      }
    }
    if (blk_valid)
      disk = qcow2_refcount_get(blk, c & (rbe - 1), q->refcount_order);
    uint64_t ref = c < w.nb ? w.refs[c] : 0;
    if (disk == ref)
      continue;
    if (disk < ref) {
      res->corruptions++;
      vmm_block_check_result_add(res, "ERROR cluster %" G_GUINT64_FORMAT
                                 " refcount=%" G_GUINT64_FORMAT " reference=%"
                                 G_GUINT64_FORMAT, c, disk, ref);
    } else {
      res->leaks++;
      vmm_block_check_result_add(res, "Leaked cluster %" G_GUINT64_FORMAT
                                 " refcount=%" G_GUINT64_FORMAT " reference=%"
                                 G_GUINT64_FORMAT, c, disk, ref);
    }
  }
  /* bit 63 of the active tables */
  for (uint32_t i = 0; i < q->l1_size; i++) {
    uint64_t l2_off = q->l1_table[i] & QCOW2_L1E_OFFSET_MASK;
    if (!l2_off || (l2_off & (q->cluster_size - 1)) ||
        (l2_off >> q->cluster_bits) >= w.nb)
      continue;
    uint64_t c = l2_off >> q->cluster_bits;
    gboolean want = w.refs[c] == 1;
    if (want != !!(q->l1_table[i] & QCOW2_OFLAG_COPIED)) {
      res->corruptions++;
      vmm_block_check_result_add(res, "ERROR OFLAG_COPIED L2 cluster: l1_index=%u "
                                 "l1_entry=%" G_GINT64_MODIFIER "x refcount=%u",
                                 i, q->l1_table[i], w.refs[c]);
    }
    if (!vmm_block_pread(q->bs, l2_off, blk, q->cluster_size, error))
      goto out;
    for (uint64_t j = 0; j < q->l2_entries; j++) {
      uint64_t e = qcow2_be64(blk + 8 * j);
      uint64_t host = e & QCOW2_L2E_OFFSET_MASK;
      if ((e & QCOW2_OFLAG_COMPRESSED) || !host ||
          (host >> q->cluster_bits) >= w.nb)
        continue;
      gboolean want_d = w.refs[host >> q->cluster_bits] == 1;
      if (want_d != !!(e & QCOW2_OFLAG_COPIED)) {
        res->corruptions++;
        vmm_block_check_result_add(res, "ERROR OFLAG_COPIED data cluster: "
                                   "l2_entry=%" G_GINT64_MODIFIER "x refcount=%u",
                                   e, w.refs[host >> q->cluster_bits]);
      }
    }
  }
  res->image_end_offset = w.highest << q->cluster_bits;
  ok = TRUE;
out:
  g_free(w.refs);
  return ok;
}

gboolean qcow2_check(VmmBlock *bs, VmmBlockRepair repair,
                     VmmBlockCheckResult *res, GError **error)
{
  Qcow2 *q = bs->opaque;
  if (!bs->read_only && !qcow2_flush_all(q, error))
    return FALSE;
  if (!do_check(q, res, FALSE, error))
    return FALSE;
  gboolean dirty = (q->incompatible &
                    (QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT)) != 0;
  if (repair == VMM_BLOCK_REPAIR_NONE || (!res->corruptions && !res->leaks &&
                                          !dirty))
    return TRUE;
  int64_t before_c = res->corruptions, before_l = res->leaks;
  if (repair == VMM_BLOCK_REPAIR_ALL || (before_c == 0 && before_l > 0) || dirty) {
    if (repair == VMM_BLOCK_REPAIR_ALL) {
      /* drop entries that point outside the file, then recount */
      VmmBlockCheckResult scratch = { 0 };
      Walk w = { .q = q, .res = &scratch, .fix = TRUE };
      gboolean ok = compute_refs(q, &w, error);
      g_free(w.refs);
      if (!ok || !qcow2_write_l1_table(q, error))
        return FALSE;
    }
    if (!qcow2_rebuild_refcounts(q, error))
      return FALSE;
    if (dirty) {
      uint8_t b[8];
      q->incompatible &= ~(QCOW2_INCOMPAT_DIRTY |
                           (repair == VMM_BLOCK_REPAIR_ALL ? QCOW2_INCOMPAT_CORRUPT : 0));
      qcow2_put_be64(b, q->incompatible);
      if (!vmm_block_pwrite(bs, 72, b, 8, error) || !qcow2_sync(q, error))
        return FALSE;
    }
  }
  VmmBlockCheckResult after = { .messages = g_ptr_array_new_with_free_func(g_free) };
  if (!do_check(q, &after, FALSE, error)) {
    vmm_block_check_result_clear(&after);
    return FALSE;
  }
  res->corruptions_fixed = MAX(before_c - after.corruptions, 0);
  res->leaks_fixed = MAX(before_l - after.leaks, 0);
  res->corruptions = after.corruptions;
  res->leaks = after.leaks;
  res->image_end_offset = after.image_end_offset;
  res->allocated_clusters = after.allocated_clusters;
  res->fragmented_clusters = after.fragmented_clusters;
  res->compressed_clusters = after.compressed_clusters;
  vmm_block_check_result_clear(&after);
  return TRUE;
}
