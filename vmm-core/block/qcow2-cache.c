/* vmm-core/block/qcow2-cache.c — a small write-back cache of L2 tables or
 * refcount blocks, kept in on-disk byte order.
 *
 * Ordering rule for crash safety: a dirty L2 table is written only after the
 * refcount blocks (which record the clusters it points to) are on disk, so the
 * L2 cache flushes the refcount cache first, and syncs if the data it points
 * to was written since the last fdatasync. */
#include "vmm-core/block/qcow2.h"

#include <string.h>

typedef struct {
  uint64_t offset;   /* 0: empty slot */
  uint64_t lru;
  gboolean dirty;
  uint8_t *table;
} Entry;

struct Qcow2Cache {
  unsigned n;
  uint32_t cluster_size;
  gboolean is_l2;
  uint64_t clock;
  Entry *e;
};

Qcow2Cache *qcow2_cache_new(unsigned entries, uint32_t cluster_size,
                            gboolean is_l2)
{
  Qcow2Cache *c = g_new0(Qcow2Cache, 1);
  c->n = entries < 2 ? 2 : entries;
  c->cluster_size = cluster_size;
  c->is_l2 = is_l2;
  c->e = g_new0(Entry, c->n);
  for (unsigned i = 0; i < c->n; i++)
    c->e[i].table = g_malloc(cluster_size);
  return c;
}

void qcow2_cache_free(Qcow2Cache *c)
{
  if (!c)
    return;
  for (unsigned i = 0; i < c->n; i++)
    g_free(c->e[i].table);
  g_free(c->e);
  g_free(c);
}

static gboolean write_entry(Qcow2 *q, Qcow2Cache *c, Entry *e, GError **error)
{
  if (!e->dirty)
    return TRUE;
  if (c->is_l2) {
    /* refcounts first, then (for power loss) make them and the data durable */
    if (!qcow2_cache_flush(q, q->refblock_cache, error))
      return FALSE;
    if (!qcow2_write_reftable(q, error))
      return FALSE;
    if (q->need_sync && !qcow2_sync(q, error))
      return FALSE;
  }
  if (!vmm_block_pwrite(q->bs, e->offset, e->table, c->cluster_size, error))
    return FALSE;
  e->dirty = FALSE;
  q->need_sync = TRUE;
  return TRUE;
}

/* The cached table at offset, or NULL when it is not cached (no I/O, no
 * eviction, the LRU clock is left alone). */
const uint8_t *qcow2_cache_peek(Qcow2Cache *c, uint64_t offset)
{
  for (unsigned i = 0; i < c->n; i++)
    if (c->e[i].offset == offset && offset != 0)
      return c->e[i].table;
  return NULL;
}

uint8_t *qcow2_cache_get(Qcow2 *q, Qcow2Cache *c, uint64_t offset,
                         gboolean read, GError **error)
{
  Entry *victim = NULL;
  for (unsigned i = 0; i < c->n; i++) {
    Entry *e = &c->e[i];
    if (e->offset == offset && offset != 0) {
      e->lru = ++c->clock;
      if (!read)
        memset(e->table, 0, c->cluster_size);
      return e->table;
    }
    if (!victim || (victim->offset != 0 && (e->offset == 0 || e->lru < victim->lru)))
      victim = e;
  }
  if (!write_entry(q, c, victim, error))
    return NULL;
  victim->offset = 0;
  if (read) {
    if (!qcow2_check_offset(q, offset, c->cluster_size,
                            c->is_l2 ? "L2 table" : "refcount block", error))
      return NULL;
    if (!vmm_block_pread(q->bs, offset, victim->table, c->cluster_size, error))
      return NULL;
  } else {
    memset(victim->table, 0, c->cluster_size);
  }
  victim->offset = offset;
  victim->dirty = FALSE;
  victim->lru = ++c->clock;
  return victim->table;
}

void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t offset)
{
  for (unsigned i = 0; i < c->n; i++)
    if (c->e[i].offset == offset) {
      c->e[i].dirty = TRUE;
      return;
    }
  g_assert_not_reached();
}

gboolean qcow2_cache_flush(Qcow2 *q, Qcow2Cache *c, GError **error)
{
  /* Write in offset order: cheaper for the disk, deterministic for tests. */
  for (;;) {
    Entry *next = NULL;
    for (unsigned i = 0; i < c->n; i++)
      if (c->e[i].dirty && (!next || c->e[i].offset < next->offset))
        next = &c->e[i];
    if (!next)
      return TRUE;
    if (!write_entry(q, c, next, error))
      return FALSE;
  }
}

void qcow2_cache_drop(Qcow2Cache *c, uint64_t offset)
{
  for (unsigned i = 0; i < c->n; i++)
    if (c->e[i].offset == offset) {
      c->e[i].offset = 0;
      c->e[i].dirty = FALSE;
    }
}

void qcow2_cache_clear(Qcow2Cache *c)
{
  for (unsigned i = 0; i < c->n; i++) {
    c->e[i].offset = 0;
    c->e[i].dirty = FALSE;
  }
}
