/* vmm-core/block/qcow2-snapshot.c — internal snapshots: the snapshot table,
 * create, apply (goto), delete. */
#include "vmm-core/block/qcow2.h"

#include <string.h>

void qcow2_snapshots_free(Qcow2 *q)
{
  for (uint32_t i = 0; q->snapshots && i < q->nb_snapshots; i++) {
    g_free(q->snapshots[i].id);
    g_free(q->snapshots[i].name);
    g_free(q->snapshots[i].extra);
  }
  g_clear_pointer(&q->snapshots, g_free);
}

gboolean qcow2_snapshots_load(Qcow2 *q, GError **error)
{
  if (q->nb_snapshots == 0)
    return TRUE;
  if (q->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
    QCOW2_ERR(error, CORRUPT, q, "image claims %u snapshots, more than the "
              "limit of %d", q->nb_snapshots, QCOW2_MAX_SNAPSHOTS);
    q->nb_snapshots = 0;
    return FALSE;
  }
  if (!qcow2_check_offset(q, q->snapshots_offset, 40, "snapshot table", error)) {
    q->nb_snapshots = 0;
    return FALSE;
  }
  uint32_t n = q->nb_snapshots;
  q->snapshots = g_new0(Qcow2Snapshot, n);
  uint64_t off = q->snapshots_offset, fsize = vmm_block_file_size(q->bs);
  for (uint32_t i = 0; i < n; i++) {
    Qcow2Snapshot *s = &q->snapshots[i];
    uint8_t h[40];
    if (off - q->snapshots_offset + 40 > QCOW2_MAX_SNAPSHOT_TABLE_BYTES ||
        off + 40 > fsize) {
      QCOW2_ERR(error, CORRUPT, q, "snapshot table entry %u is past the end "
                "of the file or the table is larger than %u bytes", i,
                QCOW2_MAX_SNAPSHOT_TABLE_BYTES);
      goto fail;
    }
    if (!vmm_block_pread(q->bs, off, h, sizeof h, error))
      goto fail;
    s->l1_table_offset = qcow2_be64(h);
    s->l1_size = qcow2_be32(h + 8);
    uint16_t id_len = qcow2_be16(h + 12), name_len = qcow2_be16(h + 14);
    s->date_sec = qcow2_be32(h + 16);
    s->date_nsec = qcow2_be32(h + 20);
    s->vm_clock_nsec = qcow2_be64(h + 24);
    s->vm_state_size = qcow2_be32(h + 32);
    s->extra_size = qcow2_be32(h + 36);
    s->disk_size = q->bs->size;
    if (s->extra_size > QCOW2_MAX_SNAPSHOT_EXTRA) {
      QCOW2_ERR(error, CORRUPT, q, "snapshot %u has %u bytes of extra data, "
                "more than the limit of %d", i, s->extra_size,
                QCOW2_MAX_SNAPSHOT_EXTRA);
      goto fail;
    }
    uint64_t var = (uint64_t)s->extra_size + id_len + name_len;
    if (off + 40 + var > fsize) {
      QCOW2_ERR(error, CORRUPT, q, "snapshot table entry %u is past the end "
                "of the file", i);
      goto fail;
    }
    g_autofree uint8_t *v = g_malloc(var + 1);
    if (!vmm_block_pread(q->bs, off + 40, v, var, error))
      goto fail;
    s->extra = g_memdup2(v, s->extra_size);
    if (s->extra_size >= 8)
      s->vm_state_size = qcow2_be64(v);
    if (s->extra_size >= 16)
      s->disk_size = qcow2_be64(v + 8);
    if (s->extra_size >= 24) {
      s->icount = qcow2_be64(v + 16);
      s->has_icount = s->icount != UINT64_MAX;
    }
    s->id = g_strndup((const char *)v + s->extra_size, id_len);
    s->name = g_strndup((const char *)v + s->extra_size + id_len, name_len);
    if ((uint64_t)s->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
      QCOW2_ERR(error, CORRUPT, q, "snapshot '%s' has an L1 table of %u "
                "entries, larger than the limit of %u bytes", s->name,
                s->l1_size, QCOW2_MAX_L1_BYTES);
      goto fail;
    }
    if (s->l1_size && !qcow2_check_offset(q, s->l1_table_offset,
                                          (uint64_t)s->l1_size * 8,
                                          "snapshot L1 table", error))
      goto fail;
    if (s->extra_size >= 16 &&
        (s->disk_size > VMM_BLOCK_MAX_VIRTUAL_SIZE ||
         qcow2_l1_size_for(s->disk_size, q->cluster_bits) > s->l1_size)) {
      QCOW2_ERR(error, CORRUPT, q, "snapshot '%s' has a disk size of %"
                G_GUINT64_FORMAT " bytes that its L1 table cannot map",
                s->name, s->disk_size);
      goto fail;
    }
    off += qcow2_align_up(40 + var, 8);
  }
  q->snapshots_size = off - q->snapshots_offset;
  return TRUE;
fail:
  qcow2_snapshots_free(q);
  q->nb_snapshots = 0;
  return FALSE;
}

GArray *qcow2_snapshot_list(VmmBlock *bs)
{
  Qcow2 *q = bs->opaque;
  GArray *a = g_array_new(FALSE, TRUE, sizeof(VmmBlockSnapshotInfo));
  for (uint32_t i = 0; i < q->nb_snapshots; i++) {
    Qcow2Snapshot *s = &q->snapshots[i];
    VmmBlockSnapshotInfo info = {
      .id = s->id, .name = s->name, .vm_state_size = s->vm_state_size,
      .date_sec = s->date_sec, .date_nsec = s->date_nsec,
      .vm_clock_nsec = s->vm_clock_nsec,
      .icount = s->has_icount ? s->icount : UINT64_MAX,
      .disk_size = s->disk_size,
    };
    g_array_append_val(a, info);
  }
  return a;
}

static Qcow2Snapshot *find(Qcow2 *q, const char *name, uint32_t *index)
{
  for (uint32_t i = 0; i < q->nb_snapshots; i++)
    if (g_str_equal(q->snapshots[i].id, name)) {
      *index = i;
      return &q->snapshots[i];
    }
  for (uint32_t i = 0; i < q->nb_snapshots; i++)
    if (g_str_equal(q->snapshots[i].name, name)) {
      *index = i;
      return &q->snapshots[i];
    }
  return NULL;
}

/* Writes the table to new clusters, then points the header at it. */
static gboolean write_table(Qcow2 *q, Qcow2Snapshot *snaps, uint32_t n,
                            GError **error)
{
  g_autoptr(GByteArray) b = g_byte_array_new();
  for (uint32_t i = 0; i < n; i++) {
    Qcow2Snapshot *s = &snaps[i];
    uint32_t extra_size = MAX(s->extra_size, 16u);
    uint8_t h[40];
    size_t id_len = strlen(s->id), name_len = strlen(s->name);
    qcow2_put_be64(h, s->l1_table_offset);
    qcow2_put_be32(h + 8, s->l1_size);
    qcow2_put_be16(h + 12, (uint16_t)id_len);
    qcow2_put_be16(h + 14, (uint16_t)name_len);
    qcow2_put_be32(h + 16, s->date_sec);
    qcow2_put_be32(h + 20, s->date_nsec);
    qcow2_put_be64(h + 24, s->vm_clock_nsec);
    qcow2_put_be32(h + 32, (uint32_t)MIN(s->vm_state_size, UINT32_MAX));
    qcow2_put_be32(h + 36, extra_size);
    g_byte_array_append(b, h, 40);
    g_autofree uint8_t *extra = g_malloc0(extra_size + 16);
    if (s->extra)
      memcpy(extra, s->extra, s->extra_size);
    if (extra_size >= 16) {
      qcow2_put_be64(extra, s->vm_state_size);
      qcow2_put_be64(extra + 8, s->disk_size);
    }
    g_byte_array_append(b, extra, extra_size);
    g_byte_array_append(b, (const uint8_t *)s->id, (guint)id_len);
    g_byte_array_append(b, (const uint8_t *)s->name, (guint)name_len);
    static const uint8_t pad[8];
    g_byte_array_append(b, pad, (guint)(qcow2_align_up(b->len, 8) - b->len));
  }
  if (b->len > QCOW2_MAX_SNAPSHOT_TABLE_BYTES) {
    QCOW2_ERR(error, UNSUPPORTED, q, "snapshot table would exceed %u bytes",
              QCOW2_MAX_SNAPSHOT_TABLE_BYTES);
    return FALSE;
  }
  uint64_t off = 0;
  if (b->len) {
    uint64_t clusters = qcow2_align_up(b->len, q->cluster_size) >> q->cluster_bits;
    if (!qcow2_alloc_clusters(q, clusters, &off, error))
      return FALSE;
    if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
        !qcow2_write_reftable(q, error) ||
        !vmm_block_pwrite(q->bs, off, b->data, b->len, error) ||
        !qcow2_sync(q, error))
      return FALSE;
  }
  uint8_t h[12];
  qcow2_put_be32(h, n);
  qcow2_put_be64(h + 4, off);
  if (!vmm_block_pwrite(q->bs, 60, h, sizeof h, error) || !qcow2_sync(q, error))
    return FALSE;
  if (q->nb_snapshots && q->snapshots_size)
    qcow2_free_later(q, q->snapshots_offset,
                     qcow2_align_up(q->snapshots_size, q->cluster_size));
  q->snapshots_offset = off;
  q->snapshots_size = b->len;
  return TRUE;
}

static gboolean load_l1(Qcow2 *q, const Qcow2Snapshot *s, uint64_t **out,
                        GError **error)
{
  uint64_t *l1 = g_new0(uint64_t, MAX(s->l1_size, 1));
  if (s->l1_size && !vmm_block_pread(q->bs, s->l1_table_offset, l1,
                                     (size_t)s->l1_size * 8, error)) {
    g_free(l1);
    return FALSE;
  }
  for (uint32_t i = 0; i < s->l1_size; i++)
    l1[i] = qcow2_be64((uint8_t *)&l1[i]) & ~QCOW2_OFLAG_COPIED;
  *out = l1;
  return TRUE;
}

/* A refused request (bad name, refcounts too narrow) changed nothing and
 * clears the dirty bit again; any other failure keeps it so the next open
 * repairs refcounts and bit 63. */
static gboolean finish(Qcow2 *q, gboolean ok, gboolean marked, GError **error)
{
  if (ok)
    return qcow2_end_metadata_op(q, marked, error);
  if (*error && ((*error)->code == VMM_BLOCK_ERROR_INVALID ||
                 (*error)->code == VMM_BLOCK_ERROR_UNSUPPORTED))
    qcow2_end_metadata_op(q, marked, NULL);
  return FALSE;
}

/* Snapshot operations run between the dirty marks of a metadata operation
 * (see qcow2_begin_metadata_op), so a crash midway is repaired on open. */
typedef gboolean (*SnapshotOp)(VmmBlock *bs, const char *name,
                               GError **error);

static gboolean run_metadata_op(VmmBlock *bs, const char *name, SnapshotOp op,
                                GError **error)
{
  Qcow2 *q = bs->opaque;
  gboolean marked;
  if (!qcow2_begin_metadata_op(q, &marked, error))
    return FALSE;
  gboolean ok = op(bs, name, error);
  return finish(q, ok, marked, error);
}

/* The named snapshot, with the image's caches written out first. */
static Qcow2Snapshot *find_flushed(Qcow2 *q, const char *name, GError **error)
{
  uint32_t idx;
  Qcow2Snapshot *s = find(q, name, &idx);
  if (!s) {
    QCOW2_ERR(error, INVALID, q, "no snapshot named '%s'", name);
    return NULL;
  }
  return qcow2_flush_all(q, error) ? s : NULL;
}

static gboolean snapshot_create(VmmBlock *bs, const char *name, GError **error);

gboolean qcow2_snapshot_create(VmmBlock *bs, const char *name, GError **error)
{
  return run_metadata_op(bs, name, snapshot_create, error);
}

static gboolean snapshot_create(VmmBlock *bs, const char *name, GError **error)
{
  Qcow2 *q = bs->opaque;
  uint32_t dummy;
  if (!name || !*name || strlen(name) > 65535) {
    QCOW2_ERR(error, INVALID, q, "snapshot name must be 1 to 65535 bytes");
    return FALSE;
  }
  if (find(q, name, &dummy)) {
    QCOW2_ERR(error, INVALID, q, "a snapshot named '%s' already exists", name);
    return FALSE;
  }
  if (q->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
    QCOW2_ERR(error, UNSUPPORTED, q, "image already has the maximum of %d "
              "snapshots", QCOW2_MAX_SNAPSHOTS);
    return FALSE;
  }
  if (!qcow2_flush_all(q, error))
    return FALSE;
  if (!qcow2_update_tree_refcounts(q, q->l1_table, q->l1_size, 1, TRUE, error))
    return FALSE;
  uint64_t max_id = 0;
  for (uint32_t i = 0; i < q->nb_snapshots; i++)
    max_id = MAX(max_id, g_ascii_strtoull(q->snapshots[i].id, NULL, 10));

  /* 1. copy of the active L1, 2. refcounts up, 3. table and header */
  uint64_t l1_bytes = (uint64_t)q->l1_size * 8, l1_off = 0;
  if (l1_bytes) {
    if (!qcow2_alloc_clusters(q, qcow2_align_up(l1_bytes, q->cluster_size) >>
                                     q->cluster_bits, &l1_off, error))
      return FALSE;
    g_autofree uint8_t *b = g_malloc(l1_bytes);
    for (uint32_t i = 0; i < q->l1_size; i++)
      qcow2_put_be64(b + i * 8, q->l1_table[i] & ~QCOW2_OFLAG_COPIED);
    if (!vmm_block_pwrite(bs, l1_off, b, l1_bytes, error))
      return FALSE;
  }
  if (!qcow2_update_tree_refcounts(q, q->l1_table, q->l1_size, 1, FALSE, error))
    return FALSE;
  if (!qcow2_flush_all(q, error))
    return FALSE;

  gint64 now = g_get_real_time();
  Qcow2Snapshot *snaps = g_new0(Qcow2Snapshot, q->nb_snapshots + 1);
  if (q->nb_snapshots)
    memcpy(snaps, q->snapshots, sizeof(Qcow2Snapshot) * q->nb_snapshots);
  Qcow2Snapshot *s = &snaps[q->nb_snapshots];
  s->l1_table_offset = l1_off;
  s->l1_size = q->l1_size;
  s->id = g_strdup_printf("%" G_GUINT64_FORMAT, max_id + 1);
  s->name = g_strdup(name);
  s->date_sec = (uint32_t)(now / G_USEC_PER_SEC);
  s->date_nsec = (uint32_t)(now % G_USEC_PER_SEC) * 1000;
  s->disk_size = bs->size;
  if (!write_table(q, snaps, q->nb_snapshots + 1, error)) {
    g_free(s->id);
    g_free(s->name);
    g_free(snaps);
    return FALSE;
  }
  g_free(q->snapshots);
  q->snapshots = snaps;
  q->nb_snapshots++;
  /* Everything is shared now: clear bit 63 in the active tables. */
  return qcow2_fix_copied_flags(q, error) && qcow2_flush_all(q, error);
}

static gboolean snapshot_apply(VmmBlock *bs, const char *name, GError **error);

gboolean qcow2_snapshot_apply(VmmBlock *bs, const char *name, GError **error)
{
  return run_metadata_op(bs, name, snapshot_apply, error);
}

static gboolean snapshot_apply(VmmBlock *bs, const char *name, GError **error)
{
  Qcow2 *q = bs->opaque;
  Qcow2Snapshot *s = find_flushed(q, name, error);
  if (!s)
    return FALSE;
  g_autofree uint64_t *snap_l1 = NULL;
  if (!load_l1(q, s, &snap_l1, error))
    return FALSE;
  if (!qcow2_update_tree_refcounts(q, snap_l1, s->l1_size, 1, TRUE, error))
    return FALSE;
  if (!qcow2_update_tree_refcounts(q, snap_l1, s->l1_size, 1, FALSE, error) ||
      !qcow2_flush_all(q, error))
    return FALSE;
  if (s->l1_size > q->l1_size && !qcow2_grow_l1(q, s->l1_size, error))
    return FALSE;
  g_autofree uint64_t *old = g_memdup2(q->l1_table, (gsize)q->l1_size * 8);
  uint32_t old_size = q->l1_size;
  memset(q->l1_table, 0, (size_t)q->l1_size * 8);
  memcpy(q->l1_table, snap_l1, (size_t)s->l1_size * 8);
  q->l1_dirty = TRUE;
  if (!qcow2_write_l1_table(q, error) || !qcow2_sync(q, error))
    return FALSE;
  if (s->disk_size != bs->size) {
    uint8_t b[8];
    qcow2_put_be64(b, s->disk_size);
    if (!vmm_block_pwrite(bs, 24, b, 8, error))
      return FALSE;
    bs->size = s->disk_size;
  }
  if (!qcow2_update_tree_refcounts(q, old, old_size, -1, FALSE, error))
    return FALSE;
  q->dbuf_desc = 0;
  return qcow2_fix_copied_flags(q, error) && qcow2_flush_all(q, error);
}

static gboolean snapshot_delete(VmmBlock *bs, const char *name, GError **error);

gboolean qcow2_snapshot_delete(VmmBlock *bs, const char *name, GError **error)
{
  return run_metadata_op(bs, name, snapshot_delete, error);
}

static gboolean snapshot_delete(VmmBlock *bs, const char *name, GError **error)
{
  Qcow2 *q = bs->opaque;
  uint32_t idx;
  Qcow2Snapshot *s = find(q, name, &idx);
  if (!s) {
    QCOW2_ERR(error, INVALID, q, "no snapshot named '%s'", name);
    return FALSE;
  }
  if (!qcow2_flush_all(q, error))
    return FALSE;
  Qcow2Snapshot gone = *s;
  g_autofree uint64_t *l1 = NULL;
  if (!load_l1(q, &gone, &l1, error))
    return FALSE;
  Qcow2Snapshot *snaps = g_new0(Qcow2Snapshot, MAX(q->nb_snapshots, 1));
  memcpy(snaps, q->snapshots, sizeof(Qcow2Snapshot) * idx);
  memcpy(snaps + idx, q->snapshots + idx + 1,
         sizeof(Qcow2Snapshot) * (q->nb_snapshots - idx - 1));
  if (!write_table(q, snaps, q->nb_snapshots - 1, error)) {
    g_free(snaps);
    return FALSE;
  }
  g_free(q->snapshots);
  q->snapshots = snaps;
  q->nb_snapshots--;
  gboolean ok = qcow2_update_tree_refcounts(q, l1, gone.l1_size, -1, FALSE,
                                            error);
  if (ok && gone.l1_size)
    qcow2_free_later(q, gone.l1_table_offset,
                     qcow2_align_up((uint64_t)gone.l1_size * 8, q->cluster_size));
  g_free(gone.id);
  g_free(gone.name);
  g_free(gone.extra);
  q->dbuf_desc = 0;
  return ok && qcow2_flush_all(q, error) && qcow2_fix_copied_flags(q, error) &&
         qcow2_flush_all(q, error);
}
