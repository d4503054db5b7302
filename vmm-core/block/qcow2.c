/* vmm-core/block/qcow2.c — qcow2 header, open/close, create, resize, flush.
 * Written from the qcow2 specification (QEMU docs/interop/qcow2.txt). */
#include "vmm-core/block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The feature name table written into every v3 image Vessel writes. */
static const struct { uint8_t type, bit; const char *name; } feature_names[] = {
  { 0, 0, "dirty bit" },
  { 0, 1, "corrupt bit" },
  { 0, 2, "external data file" },
  { 0, 3, "compression type" },
  { 0, 4, "extended L2 entries" },
  { 1, 0, "lazy refcounts" },
  { 2, 0, "bitmaps" },
  { 2, 1, "raw external data" },
};

static int qcow2_probe(const uint8_t *buf, size_t len)
{
  if (len < 8 || qcow2_be32(buf) != QCOW2_MAGIC)
    return 0;
  uint32_t version = qcow2_be32(buf + 4);
  return (version == 2 || version == 3) ? 100 : 0;
}

gboolean qcow2_sync(Qcow2 *q, GError **error)
{
  if (fdatasync(q->bs->fd) < 0) {
    QCOW2_ERR(error, IO, q, "flush failed: %s", g_strerror(errno));
    return FALSE;
  }
  q->need_sync = FALSE;
  return TRUE;
}

gboolean qcow2_check_offset(Qcow2 *q, uint64_t off, uint64_t len,
                            const char *what, GError **error)
{
  if (off & (q->cluster_size - 1)) {
    QCOW2_ERR(error, CORRUPT, q,
              "%s offset 0x%" G_GINT64_MODIFIER "x is not aligned to a "
              "cluster boundary (cluster size %u)", what, off, q->cluster_size);
    return FALSE;
  }
  if (off == 0) {
    QCOW2_ERR(error, CORRUPT, q, "%s offset is 0, which is the image header",
              what);
    return FALSE;
  }
  uint64_t end = off + len;
  if (end < off || end > vmm_block_file_size(q->bs)) {
    QCOW2_ERR(error, CORRUPT, q,
              "%s offset 0x%" G_GINT64_MODIFIER "x is past the end of the "
              "file", what, off);
    return FALSE;
  }
  return TRUE;
}

/* Names an incompatible feature bit, using the image's table if it has one. */
static char *feature_name(Qcow2 *q, int type, int bit)
{
  for (unsigned i = 0; q->feature_names && i < q->feature_names->len / 48; i++) {
    const uint8_t *e = (const uint8_t *)q->feature_names->data + i * 48;
    if (e[0] == type && e[1] == bit)
      return g_strndup((const char *)e + 2, 46);
  }
  for (size_t i = 0; i < G_N_ELEMENTS(feature_names); i++)
    if (feature_names[i].type == type && feature_names[i].bit == bit)
      return g_strdup(feature_names[i].name);
  return g_strdup_printf("unknown feature bit %d", bit);
}

static gboolean parse_extensions(Qcow2 *q, const uint8_t *hdr, uint64_t start,
                                 uint64_t end, GError **error)
{
  uint64_t off = start;
  for (int n = 0;; n++) {
    if (off + 8 > end) {
      if (off == end)
        return TRUE; /* no end marker but nothing left: accept */
      QCOW2_ERR(error, CORRUPT, q, "header extension at offset %"
                G_GUINT64_FORMAT " runs past the header cluster", off);
      return FALSE;
    }
    if (n > QCOW2_MAX_HEADER_EXTENSIONS) {
      QCOW2_ERR(error, CORRUPT, q, "more than %d header extensions",
                QCOW2_MAX_HEADER_EXTENSIONS);
      return FALSE;
    }
    uint32_t type = qcow2_be32(hdr + off);
    uint32_t len = qcow2_be32(hdr + off + 4);
    off += 8;
    if (type == QCOW2_EXT_END)
      return TRUE;
    if (len > end - off) {
      QCOW2_ERR(error, CORRUPT, q, "header extension 0x%08x of %u bytes runs "
                "past the header cluster", type, len);
      return FALSE;
    }
    const uint8_t *data = hdr + off;
    switch (type) {
    case QCOW2_EXT_BACKING_FORMAT:
      g_free(q->backing_format);
      q->backing_format = g_strndup((const char *)data, len);
      break;
    case QCOW2_EXT_FEATURE_TABLE:
      if (q->feature_names)
        g_array_unref(q->feature_names);
      q->feature_names = g_array_sized_new(FALSE, FALSE, 1, len);
      g_array_append_vals(q->feature_names, data, len - len % 48);
      break;
    case QCOW2_EXT_DATA_FILE:
      QCOW2_ERR(error, UNSUPPORTED, q, "image uses an external data file "
                "('%.*s'), which Vessel does not support", (int)MIN(len, 256u),
                (const char *)data);
      return FALSE;
    default: {
      Qcow2Ext ext = { type, len, g_memdup2(data, len) };
      g_array_append_val(q->extensions, ext);
      break;
    }
    }
    off += qcow2_align_up(len, 8);
  }
}

static gboolean open_backing(Qcow2 *q, unsigned flags, GError **error)
{
  VmmBlock *bs = q->bs;
  g_autofree char *path = NULL;
  if (g_path_is_absolute(q->backing_file)) {
    path = g_strdup(q->backing_file);
  } else {
    g_autofree char *dir = g_path_get_dirname(bs->filename);
    path = g_build_filename(dir, q->backing_file, NULL);
  }
  GError *err = NULL;
  q->backing = vmm_block_open_internal(path, q->backing_format,
                                       VMM_BLOCK_OPEN_READ_ONLY |
                                       (flags & VMM_BLOCK_OPEN_DIRECT),
                                       bs->depth + 1, &err);
  if (!q->backing) {
    QCOW2_ERR(error, FAILED, q, "could not open backing file: %s",
              err->message);
    g_error_free(err);
    return FALSE;
  }
  return TRUE;
}

static void qcow2_free_state(Qcow2 *q)
{
  if (q->allocs) {
    g_array_free(q->allocs, TRUE);
    g_mutex_clear(&q->alloc_mutex);
    g_cond_clear(&q->alloc_cond);
  }
  if (q->backing)
    vmm_block_close(q->backing, NULL);
  qcow2_cache_free(q->l2_cache);
  qcow2_cache_free(q->refblock_cache);
  qcow2_snapshots_free(q);
  if (q->extensions) {
    for (unsigned i = 0; i < q->extensions->len; i++)
      g_free(g_array_index(q->extensions, Qcow2Ext, i).data);
    g_array_unref(q->extensions);
  }
  if (q->feature_names)
    g_array_unref(q->feature_names);
  if (q->pending_free)
    g_array_unref(q->pending_free);
  g_free(q->l1_table);
  g_free(q->refcount_table);
  g_free(q->backing_file);
  g_free(q->backing_format);
  g_free(q->cbuf);
  g_free(q->dbuf);
  g_free(q);
}

static gboolean mark_dirty(Qcow2 *q, gboolean dirty, GError **error)
{
  uint64_t inc = dirty ? (q->incompatible | QCOW2_INCOMPAT_DIRTY)
                       : (q->incompatible & ~QCOW2_INCOMPAT_DIRTY);
  if (q->version < 3)
    return TRUE;
  uint8_t b[8];
  qcow2_put_be64(b, inc);
  if (!dirty && !qcow2_sync(q, error))
    return FALSE;
  if (!vmm_block_pwrite(q->bs, 72, b, 8, error))
    return FALSE;
  if (dirty && !qcow2_sync(q, error))
    return FALSE;
  q->incompatible = inc;
  q->dirty_on_disk = dirty;
  return TRUE;
}

/* Multi-step metadata operations (snapshots) cannot order their writes so
 * that every intermediate state is consistent (bit 63 of the active tables
 * changes with the refcounts).  On v3 images the dirty bit covers them: the
 * next opener (Vessel or QEMU) repairs refcounts and bit 63. */
gboolean qcow2_begin_metadata_op(Qcow2 *q, gboolean *marked, GError **error)
{
  *marked = FALSE;
  if (q->version < 3 || q->dirty_on_disk)
    return TRUE;
  if (!qcow2_flush_all(q, error) || !mark_dirty(q, TRUE, error))
    return FALSE;
  *marked = TRUE;
  return TRUE;
}

gboolean qcow2_end_metadata_op(Qcow2 *q, gboolean marked, GError **error)
{
  if (!marked || (q->compatible & QCOW2_COMPAT_LAZY_REFCOUNTS))
    return TRUE;
  return qcow2_flush_all(q, error) && mark_dirty(q, FALSE, error);
}

/* Called before the first metadata change of an image with lazy refcounts:
 * the dirty bit tells the next opener that refcounts may need a rebuild. */
gboolean qcow2_before_change(Qcow2 *q, GError **error)
{
  if ((q->compatible & QCOW2_COMPAT_LAZY_REFCOUNTS) && !q->dirty_on_disk)
    return mark_dirty(q, TRUE, error);
  return TRUE;
}

static gboolean qcow2_open(VmmBlock *bs, unsigned flags, GError **error)
{
  Qcow2 *q = g_new0(Qcow2, 1);
  q->bs = bs;
  q->extensions = g_array_new(FALSE, TRUE, sizeof(Qcow2Ext));
  q->pending_free = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  q->allocs = g_array_new(FALSE, FALSE, sizeof(uint64_t));
  g_mutex_init(&q->alloc_mutex);
  g_cond_init(&q->alloc_cond);
  bs->opaque = q;
  uint64_t file_size = vmm_block_file_size(bs);
  uint8_t first[QCOW2_V3_HEADER_LEN_CT];
  g_autofree uint8_t *hdr = NULL;

  if (file_size < QCOW2_V2_HEADER_LEN) {
    QCOW2_ERR(error, CORRUPT, q, "file is too short (%" G_GUINT64_FORMAT
              " bytes) to hold a qcow2 header", file_size);
    goto fail;
  }
  if (!vmm_block_pread(bs, 0, first, sizeof first, error))
    goto fail;
  if (qcow2_be32(first) != QCOW2_MAGIC) {
    QCOW2_ERR(error, INVALID, q, "not a qcow2 image (bad magic)");
    goto fail;
  }
  q->version = qcow2_be32(first + 4);
  if (q->version != 2 && q->version != 3) {
    QCOW2_ERR(error, UNSUPPORTED, q, "qcow2 version %u is not supported "
              "(Vessel reads versions 2 and 3)", q->version);
    goto fail;
  }
  q->backing_file_offset = qcow2_be64(first + 8);
  q->backing_file_size = qcow2_be32(first + 16);
  q->cluster_bits = qcow2_be32(first + 20);
  bs->size = qcow2_be64(first + 24);
  q->crypt_method = qcow2_be32(first + 32);
  q->l1_size = qcow2_be32(first + 36);
  q->l1_table_offset = qcow2_be64(first + 40);
  q->refcount_table_offset = qcow2_be64(first + 48);
  q->refcount_table_clusters = qcow2_be32(first + 56);
  q->nb_snapshots = qcow2_be32(first + 60);
  q->snapshots_offset = qcow2_be64(first + 64);
  if (q->version == 3) {
    q->incompatible = qcow2_be64(first + 72);
    q->compatible = qcow2_be64(first + 80);
    q->autoclear = qcow2_be64(first + 88);
    q->refcount_order = qcow2_be32(first + 96);
    q->header_length = qcow2_be32(first + 100);
    if (q->header_length < QCOW2_V3_HEADER_LEN) {
      QCOW2_ERR(error, CORRUPT, q, "header length %u is too small (at least "
                "%d for version 3)", q->header_length, QCOW2_V3_HEADER_LEN);
      goto fail;
    }
    if (q->header_length > QCOW2_V3_HEADER_LEN)
      q->compression_type = first[104];
  } else {
    q->refcount_order = 4;
    q->header_length = QCOW2_V2_HEADER_LEN;
  }

  if (q->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
      q->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
    QCOW2_ERR(error, CORRUPT, q, "cluster size 2^%u is out of range (512 B "
              "to 2 MiB)", q->cluster_bits);
    goto fail;
  }
  q->cluster_size = 1u << q->cluster_bits;
  q->l2_bits = q->cluster_bits - 3;
  q->l2_entries = 1u << q->l2_bits;
  if (q->header_length > q->cluster_size) {
    QCOW2_ERR(error, CORRUPT, q, "header length %u is larger than a cluster",
              q->header_length);
    goto fail;
  }
  if (q->crypt_method != 0) {
    QCOW2_ERR(error, UNSUPPORTED, q, "image is encrypted (%s), which Vessel "
              "does not support", q->crypt_method == 1 ? "AES" :
              q->crypt_method == 2 ? "LUKS" : "unknown method");
    goto fail;
  }
  if (q->refcount_order > 6) {
    QCOW2_ERR(error, CORRUPT, q, "refcount width 2^%u bits is invalid (at "
              "most 64 bits)", q->refcount_order);
    goto fail;
  }
  q->refcount_bits = 1u << q->refcount_order;
  q->refcount_max = q->refcount_bits == 64 ? UINT64_MAX
                                           : (UINT64_C(1) << q->refcount_bits) - 1;
  q->refblock_bits = q->cluster_bits + 3 - q->refcount_order;
  if (bs->size > VMM_BLOCK_MAX_VIRTUAL_SIZE) {
    QCOW2_ERR(error, CORRUPT, q, "virtual size %" G_GUINT64_FORMAT " is "
              "larger than the limit of %" G_GUINT64_FORMAT " bytes", bs->size,
              (uint64_t)VMM_BLOCK_MAX_VIRTUAL_SIZE);
    goto fail;
  }

  /* The whole header cluster: extensions and the backing file name. */
  hdr = g_malloc0(q->cluster_size);
  if (!vmm_block_pread(bs, 0, hdr, q->cluster_size, error))
    goto fail;
  uint64_t ext_end = q->cluster_size;
  if (q->backing_file_offset) {
    if (q->backing_file_size > QCOW2_MAX_BACKING_NAME ||
        q->backing_file_offset > q->cluster_size ||
        q->backing_file_size > q->cluster_size - q->backing_file_offset) {
      QCOW2_ERR(error, CORRUPT, q, "backing file name (offset %" G_GUINT64_FORMAT
                ", %u bytes) is not inside the header cluster or longer than "
                "%d bytes", q->backing_file_offset, q->backing_file_size,
                QCOW2_MAX_BACKING_NAME);
      goto fail;
    }
    if (q->backing_file_offset >= q->header_length)
      ext_end = q->backing_file_offset;
    q->backing_file = g_strndup((const char *)hdr + q->backing_file_offset,
                                q->backing_file_size);
    if (!*q->backing_file)
      g_clear_pointer(&q->backing_file, g_free);
  }
  if (!parse_extensions(q, hdr, q->header_length, ext_end, error))
    goto fail;

  /* Features. */
  uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT;
  for (int bit = 0; bit < 64; bit++) {
    uint64_t m = UINT64_C(1) << bit;
    if (!(q->incompatible & m) || (known & m))
      continue;
    if (m == QCOW2_INCOMPAT_COMPRESSION && q->compression_type == 0)
      continue;
    g_autofree char *name = feature_name(q, 0, bit);
    if (m == QCOW2_INCOMPAT_COMPRESSION)
      QCOW2_ERR(error, UNSUPPORTED, q, "image uses compression type %s, which "
                "Vessel does not support (only zlib)",
                q->compression_type == 1 ? "zstd" : "unknown");
    else
      QCOW2_ERR(error, UNSUPPORTED, q, "image uses the incompatible feature "
                "'%s' (bit %d), which Vessel does not support", name, bit);
    goto fail;
  }
  if (q->compression_type != 0) {
    QCOW2_ERR(error, UNSUPPORTED, q, "image uses compression type %u, which "
              "Vessel does not support (only zlib)", q->compression_type);
    goto fail;
  }
  if ((q->incompatible & QCOW2_INCOMPAT_CORRUPT) && !bs->read_only &&
      !(flags & VMM_BLOCK_OPEN_CHECK)) {
    QCOW2_ERR(error, CORRUPT, q, "image is marked corrupt; it can only be "
              "opened read-only (repair it with 'vessel-img check -r all')");
    goto fail;
  }

  /* L1 table. */
  uint64_t l1_needed = qcow2_l1_size_for(bs->size, q->cluster_bits);
  if ((uint64_t)q->l1_size * 8 > QCOW2_MAX_L1_BYTES) {
    QCOW2_ERR(error, CORRUPT, q, "L1 table of %u entries is larger than the "
              "limit of %u bytes", q->l1_size, QCOW2_MAX_L1_BYTES);
    goto fail;
  }
  if (q->l1_size < l1_needed) {
    QCOW2_ERR(error, CORRUPT, q, "L1 table of %u entries is too small for "
              "the virtual size (%" G_GUINT64_FORMAT " needed)", q->l1_size,
              l1_needed);
    goto fail;
  }
  q->alloc_end = qcow2_align_up(file_size, q->cluster_size) >> q->cluster_bits;
  q->l1_table = g_new0(uint64_t, MAX(q->l1_size, 1));
  if (q->l1_size > 0) {
    if (!qcow2_check_offset(q, q->l1_table_offset, (uint64_t)q->l1_size * 8,
                            "L1 table", error))
      goto fail;
    if (!vmm_block_pread(bs, q->l1_table_offset, q->l1_table,
                         (size_t)q->l1_size * 8, error))
      goto fail;
    for (uint32_t i = 0; i < q->l1_size; i++)
      q->l1_table[i] = qcow2_be64((uint8_t *)&q->l1_table[i]);
  }

  /* Refcounts and snapshots. */
  if (!qcow2_refcount_load(q, error))
    goto fail;
  if (!qcow2_snapshots_load(q, error))
    goto fail;

  unsigned l2_entries = QCOW2_L2_CACHE_BYTES / q->cluster_size;
  q->l2_cache = qcow2_cache_new(MAX(l2_entries, 16u), q->cluster_size, TRUE);
  q->refblock_cache = qcow2_cache_new(QCOW2_REFBLOCK_CACHE_ENTRIES,
                                      q->cluster_size, FALSE);
  q->cbuf = g_malloc(q->cluster_size + 1024);
  q->dbuf = g_malloc(q->cluster_size);

  if (q->backing_file && !(flags & VMM_BLOCK_OPEN_NO_BACKING) &&
      !open_backing(q, flags, error))
    goto fail;

  if (!bs->read_only && !(flags & VMM_BLOCK_OPEN_CHECK)) {
    if (q->incompatible & QCOW2_INCOMPAT_DIRTY) {
      /* Refcounts may be stale (lazy refcounts and a crash): rebuild. */
      GError *err = NULL;
      if (!qcow2_rebuild_refcounts(q, &err) || !mark_dirty(q, FALSE, &err)) {
        g_propagate_prefixed_error(error, err, "image is dirty (it was not "
                                   "closed cleanly) and its refcounts could "
                                   "not be rebuilt: ");
        goto fail;
      }
    }
    /* Writing invalidates features we do not understand (autoclear bits). */
    if (q->autoclear) {
      q->autoclear = 0;
      if (!qcow2_write_header(q, error))
        goto fail;
    }
  }
  return TRUE;

fail:
  qcow2_free_state(q);
  bs->opaque = NULL;
  return FALSE;
}

gboolean qcow2_flush_all(Qcow2 *q, GError **error)
{
  /* 1. refcounts of everything newly referenced */
  if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
      !qcow2_write_reftable(q, error))
    return FALSE;
  /* 2. data and refcounts durable before the tables that point at them */
  if (q->need_sync && !qcow2_sync(q, error))
    return FALSE;
  /* 3. L2 tables, then the L1 table */
  if (!qcow2_cache_flush(q, q->l2_cache, error))
    return FALSE;
  if (!qcow2_write_l1_table(q, error))
    return FALSE;
  if (q->need_sync && !qcow2_sync(q, error))
    return FALSE;
  /* 4. only now nothing on disk points at freed clusters: drop their refs
   * (later if a request is still reading or writing a cluster unlocked) */
  if (q->pending_free->len > 0 && g_atomic_int_get(&q->io_in_flight) == 0) {
    if (!qcow2_apply_pending_frees(q, error))
      return FALSE;
    if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
        !qcow2_write_reftable(q, error))
      return FALSE;
    if (q->need_sync && !qcow2_sync(q, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean qcow2_flush(VmmBlock *bs, GError **error)
{
  return qcow2_flush_all(bs->opaque, error);
}

static void qcow2_close(VmmBlock *bs)
{
  Qcow2 *q = bs->opaque;
  if (!bs->read_only) {
    GError *err = NULL;
    if (qcow2_flush_all(q, &err) && q->dirty_on_disk)
      mark_dirty(q, FALSE, &err);
    /* vmm_block_close() flushed first and returned any error; this is the
     * second attempt, so stay quiet */
    if (err) {
      g_debug("%s", err->message);
      g_error_free(err);
    }
  }
  qcow2_free_state(q);
}

/* Builds the header cluster: fixed fields, extensions, backing file name. */
static GByteArray *build_header(Qcow2 *q, gboolean with_feature_table)
{
  GByteArray *b = g_byte_array_new();
  uint32_t hlen = q->version >= 3 ? QCOW2_V3_HEADER_LEN_CT : QCOW2_V2_HEADER_LEN;
  g_byte_array_set_size(b, hlen);
  uint8_t *h = b->data;
  memset(h, 0, hlen);
  qcow2_put_be32(h, QCOW2_MAGIC);
  qcow2_put_be32(h + 4, q->version);
  qcow2_put_be32(h + 20, q->cluster_bits);
  qcow2_put_be64(h + 24, q->bs->size);
  qcow2_put_be32(h + 32, q->crypt_method);
  qcow2_put_be32(h + 36, q->l1_size);
  qcow2_put_be64(h + 40, q->l1_table_offset);
  qcow2_put_be64(h + 48, q->refcount_table_offset);
  qcow2_put_be32(h + 56, q->refcount_table_clusters);
  qcow2_put_be32(h + 60, q->nb_snapshots);
  qcow2_put_be64(h + 64, q->snapshots_offset);
  if (q->version >= 3) {
    qcow2_put_be64(h + 72, q->incompatible);
    qcow2_put_be64(h + 80, q->compatible);
    qcow2_put_be64(h + 88, q->autoclear);
    qcow2_put_be32(h + 96, q->refcount_order);
    qcow2_put_be32(h + 100, hlen);
  }
#define PUT_EXT(type, data, len)                                               \
  do {                                                                         \
    uint8_t eh_[8];                                                            \
    qcow2_put_be32(eh_, type);                                                 \
    qcow2_put_be32(eh_ + 4, (uint32_t)(len));                                  \
    g_byte_array_append(b, eh_, 8);                                            \
    g_byte_array_append(b, (const uint8_t *)(data), (guint)(len));             \
    static const uint8_t pad_[8];                                              \
    g_byte_array_append(b, pad_, (guint)(qcow2_align_up(len, 8) - (len)));     \
  } while (0)
  if (q->backing_format && q->backing_file)
    PUT_EXT(QCOW2_EXT_BACKING_FORMAT, q->backing_format,
            strlen(q->backing_format));
  if (q->version >= 3 && with_feature_table) {
    uint8_t table[G_N_ELEMENTS(feature_names) * 48];
    memset(table, 0, sizeof table);
    for (size_t i = 0; i < G_N_ELEMENTS(feature_names); i++) {
      table[i * 48] = feature_names[i].type;
      table[i * 48 + 1] = feature_names[i].bit;
      memcpy(table + i * 48 + 2, feature_names[i].name,
             strlen(feature_names[i].name));
    }
    PUT_EXT(QCOW2_EXT_FEATURE_TABLE, table, sizeof table);
  }
  for (unsigned i = 0; i < q->extensions->len; i++) {
    Qcow2Ext *e = &g_array_index(q->extensions, Qcow2Ext, i);
    PUT_EXT(e->type, e->data, e->len);
  }
#undef PUT_EXT
  uint8_t end[8] = { 0 };
  g_byte_array_append(b, end, 8);
  uint64_t bf_off = 0, bf_len = 0;
  if (q->backing_file) {
    bf_off = b->len;
    bf_len = strlen(q->backing_file);
    g_byte_array_append(b, (const uint8_t *)q->backing_file, (guint)bf_len);
  }
  qcow2_put_be64(b->data + 8, bf_off);
  qcow2_put_be32(b->data + 16, (uint32_t)bf_len);
  return b;
}

gboolean qcow2_write_header(Qcow2 *q, GError **error)
{
  /* The feature name table is informative: left out when space is short
   * (512-byte clusters with a backing file). */
  g_autoptr(GByteArray) b = build_header(q, TRUE);
  if (b->len > q->cluster_size) {
    g_byte_array_unref(b);
    b = build_header(q, FALSE);
  }
  if (b->len > q->cluster_size) {
    QCOW2_ERR(error, INVALID, q, "header, extensions and backing file name "
              "(%u bytes) do not fit in one cluster (%u bytes)", b->len,
              q->cluster_size);
    return FALSE;
  }
  if (!vmm_block_pwrite(q->bs, 0, b->data, b->len, error))
    return FALSE;
  q->header_length = q->version >= 3 ? QCOW2_V3_HEADER_LEN_CT : QCOW2_V2_HEADER_LEN;
  q->backing_file_offset = qcow2_be64(b->data + 8);
  q->backing_file_size = qcow2_be32(b->data + 16);
  q->need_sync = TRUE;
  return TRUE;
}

static uint64_t compute_size_from_backing(const VmmBlockCreateOptions *opts,
                                          const char *path, char **fmt_out,
                                          GError **error)
{
  g_autofree char *bpath = NULL;
  if (g_path_is_absolute(opts->backing_file)) {
    bpath = g_strdup(opts->backing_file);
  } else {
    g_autofree char *dir = g_path_get_dirname(path);
    bpath = g_build_filename(dir, opts->backing_file, NULL);
  }
  GError *err = NULL;
  VmmBlock *b = vmm_block_open(bpath, opts->backing_format,
                               VMM_BLOCK_OPEN_READ_ONLY, &err);
  if (!b) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_FAILED,
                "%s: could not open backing file: %s", path, err->message);
    g_error_free(err);
    return UINT64_MAX;
  }
  uint64_t size = vmm_block_size(b);
  if (!*fmt_out)
    *fmt_out = g_strdup(vmm_block_format(b));
  vmm_block_close(b, NULL);
  return size;
}

static gboolean qcow2_create(const char *path, const VmmBlockCreateOptions *opts,
                             GError **error)
{
  uint32_t cs = opts->cluster_size ? opts->cluster_size : 65536;
  int compat = opts->compat ? opts->compat : 3;
  int rbits = opts->refcount_bits ? opts->refcount_bits : 16;
  uint64_t size = qcow2_align_up(opts->size, 512); /* whole sectors */
  g_autofree char *bfmt = opts->backing_format ? g_strdup(opts->backing_format)
                                               : NULL;
  if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1))) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: cluster size %u is invalid: it must be a power of two "
                "between 512 and 2M", path, cs);
    return FALSE;
  }
  if (compat != 2 && compat != 3) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: compat level must be 0.10 or 1.1", path);
    return FALSE;
  }
  if (rbits < 1 || rbits > 64 || (rbits & (rbits - 1))) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: refcount_bits %d is invalid: it must be a power of two "
                "from 1 to 64", path, rbits);
    return FALSE;
  }
  if (compat == 2 && rbits != 16) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: compat=0.10 images only support refcount_bits=16", path);
    return FALSE;
  }
  if (compat == 2 && opts->lazy_refcounts) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: lazy refcounts need compat=1.1", path);
    return FALSE;
  }
  if (opts->backing_file) {
    uint64_t bsize = compute_size_from_backing(opts, path, &bfmt, error);
    if (bsize == UINT64_MAX)
      return FALSE;
    if (size == 0)
      size = bsize;
  }
  uint32_t cbits = (uint32_t)g_bit_storage(cs) - 1;
  uint64_t l1_size = qcow2_l1_size_for(size, cbits);
  if (l1_size * 8 > QCOW2_MAX_L1_BYTES) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: size %" G_GUINT64_FORMAT " needs an L1 table larger than "
                "%u bytes with cluster size %u; use a larger cluster size",
                path, size, QCOW2_MAX_L1_BYTES, cs);
    return FALSE;
  }
  /* Layout: header | L1 | refcount table | refcount blocks. */
  uint64_t l1_clusters = qcow2_align_up(l1_size * 8, cs) / cs;
  uint32_t order = (uint32_t)g_bit_storage((guint)rbits) - 1;
  uint64_t rb_entries = qcow2_refblock_entries(cbits, (uint32_t)rbits);
  uint64_t rt_clusters = 1, rb_count = 1;
  for (int iter = 0; iter < 16; iter++) {
    uint64_t total = 1 + l1_clusters + rt_clusters + rb_count;
    uint64_t need_rb = (total + rb_entries - 1) / rb_entries;
    uint64_t need_rt = qcow2_align_up(need_rb * 8, cs) / cs;
    if (need_rb == rb_count && need_rt == rt_clusters)
      break;
    rb_count = need_rb;
    rt_clusters = need_rt;
  }
  if (rt_clusters * cs > QCOW2_MAX_REFTABLE_BYTES) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: refcount table would exceed %u bytes", path,
                QCOW2_MAX_REFTABLE_BYTES);
    return FALSE;
  }
  uint64_t total = 1 + l1_clusters + rt_clusters + rb_count;

  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not create: %s", path, g_strerror(errno));
    return FALSE;
  }
  VmmBlock bs = { .filename = (char *)path, .fd = fd, .dfd = -1, .size = size };
  Qcow2 q = { .bs = &bs };
  q.version = (uint32_t)compat;
  q.cluster_bits = cbits;
  q.cluster_size = cs;
  q.l1_size = (uint32_t)l1_size;
  q.l1_table_offset = (uint64_t)cs;
  q.refcount_table_offset = (1 + l1_clusters) * cs;
  q.refcount_table_clusters = (uint32_t)rt_clusters;
  q.refcount_order = order;
  q.compatible = opts->lazy_refcounts ? QCOW2_COMPAT_LAZY_REFCOUNTS : 0;
  q.backing_file = (char *)opts->backing_file;
  q.backing_format = bfmt;
  q.extensions = g_array_new(FALSE, TRUE, sizeof(Qcow2Ext));
  gboolean ok = FALSE;
  g_autofree uint8_t *buf = g_malloc0(cs);
  g_autofree uint8_t *rt = NULL;

  if (ftruncate(fd, (off_t)(total * cs)) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not size the file: %s", path, g_strerror(errno));
    goto out;
  }
  /* Refcount table and blocks. */
  uint64_t rb_start = 1 + l1_clusters + rt_clusters;
  rt = g_malloc0(rt_clusters * cs);
  for (uint64_t i = 0; i < rb_count; i++)
    qcow2_put_be64(rt + i * 8, (rb_start + i) * cs);
  if (!vmm_block_pwrite(&bs, q.refcount_table_offset, rt, rt_clusters * cs,
                        error))
    goto out;
  for (uint64_t i = 0; i < rb_count; i++) {
    memset(buf, 0, cs);
    for (uint64_t j = 0; j < rb_entries; j++) {
      uint64_t c = i * rb_entries + j;
      if (c >= total)
        break;
      qcow2_refcount_set(buf, j, order, 1);
    }
    if (!vmm_block_pwrite(&bs, (rb_start + i) * cs, buf, cs, error))
      goto out;
  }
  if (!qcow2_write_header(&q, error))
    goto out;
  if (fsync(fd) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not sync: %s", path, g_strerror(errno));
    goto out;
  }
  ok = TRUE;
out:
  g_array_unref(q.extensions);
  close(fd);
  return ok;
}

static gboolean qcow2_resize(VmmBlock *bs, uint64_t size, gboolean shrink,
                             GError **error)
{
  Qcow2 *q = bs->opaque;
  uint64_t old = bs->size;
  if (size % 512) {
    QCOW2_ERR(error, INVALID, q, "the new size must be a multiple of 512 "
              "bytes (%" G_GUINT64_FORMAT " is not)", size);
    return FALSE;
  }
  if (!qcow2_before_change(q, error))
    return FALSE;
  if (size < old) {
    if (q->nb_snapshots > 0) {
      QCOW2_ERR(error, UNSUPPORTED, q, "cannot shrink an image that has "
                "internal snapshots; delete them first");
      return FALSE;
    }
    uint64_t cend = qcow2_align_up(size, q->cluster_size);
    if (cend > old)
      cend = old;
    if (cend > size && !qcow2_discard(bs, size, cend - size, error))
      return FALSE;
    uint64_t full_end = qcow2_align_up(old, q->cluster_size);
    uint64_t whole = qcow2_align_up(size, q->cluster_size);
    if (full_end > whole && !qcow2_deallocate(q, whole, full_end - whole, FALSE,
                                              error))
      return FALSE;
  } else if (size > old) {
    uint64_t need = qcow2_l1_size_for(size, q->cluster_bits);
    if (need * 8 > QCOW2_MAX_L1_BYTES) {
      QCOW2_ERR(error, INVALID, q, "size %" G_GUINT64_FORMAT " needs an L1 "
                "table larger than %u bytes", size, QCOW2_MAX_L1_BYTES);
      return FALSE;
    }
    if (need > q->l1_size && !qcow2_grow_l1(q, need, error))
      return FALSE;
  }
  if (!qcow2_flush_all(q, error))
    return FALSE;
  uint8_t b[8];
  qcow2_put_be64(b, size);
  if (!vmm_block_pwrite(bs, 24, b, 8, error))
    return FALSE;
  q->need_sync = TRUE;
  bs->size = size;
  /* Growing over a larger backing file: the new range must read as zeroes. */
  if (size > old && q->backing) {
    uint64_t bsize = vmm_block_size(q->backing);
    if (bsize > old) {
      uint64_t zend = MIN(bsize, size);
      if (!qcow2_discard(bs, old, zend - old, error))
        return FALSE;
    }
  }
  return qcow2_flush_all(q, error);
}

static gboolean qcow2_write_entry(VmmBlock *bs, uint64_t off, const void *buf,
                                  size_t len, GError **error)
{
  if (!qcow2_before_change(bs->opaque, error))
    return FALSE;
  return qcow2_write(bs, off, buf, len, error);
}

static gboolean qcow2_discard_entry(VmmBlock *bs, uint64_t off, uint64_t len,
                                    GError **error)
{
  if (!qcow2_before_change(bs->opaque, error))
    return FALSE;
  return qcow2_discard(bs, off, len, error);
}

static void qcow2_get_info(VmmBlock *bs, VmmBlockInfo *info)
{
  Qcow2 *q = bs->opaque;
  info->cluster_size = q->cluster_size;
  info->backing_file = q->backing_file;
  info->backing_format = q->backing_format;
  info->compat = (int)q->version;
  info->refcount_bits = (int)q->refcount_bits;
  info->lazy_refcounts = (q->compatible & QCOW2_COMPAT_LAZY_REFCOUNTS) != 0;
  info->corrupt = (q->incompatible & QCOW2_INCOMPAT_CORRUPT) != 0;
  info->dirty = (q->incompatible & QCOW2_INCOMPAT_DIRTY) != 0;
}

VmmBlock *qcow2_backing(VmmBlock *bs)
{
  Qcow2 *q = bs->opaque;
  return q->backing;
}

gboolean qcow2_set_backing(VmmBlock *bs, const char *file, const char *fmt,
                           GError **error)
{
  Qcow2 *q = bs->opaque;
  char *old_file = q->backing_file, *old_fmt = q->backing_format;
  q->backing_file = file && *file ? g_strdup(file) : NULL;
  q->backing_format = q->backing_file && fmt ? g_strdup(fmt) : NULL;
  if (!qcow2_flush_all(q, error) || !qcow2_write_header(q, error) ||
      !qcow2_sync(q, error)) {
    g_free(q->backing_file);
    g_free(q->backing_format);
    q->backing_file = old_file;
    q->backing_format = old_fmt;
    return FALSE;
  }
  g_free(old_file);
  g_free(old_fmt);
  return TRUE;
}

gboolean qcow2_make_empty(VmmBlock *bs, GError **error)
{
  Qcow2 *q = bs->opaque;
  if (q->nb_snapshots > 0) {
    QCOW2_ERR(error, UNSUPPORTED, q, "cannot empty an image that has "
              "internal snapshots");
    return FALSE;
  }
  if (!qcow2_before_change(q, error))
    return FALSE;
  uint64_t span = qcow2_align_up(bs->size, q->cluster_size);
  if (span && !qcow2_deallocate(q, 0, span, FALSE, error))
    return FALSE;
  return qcow2_flush_all(q, error);
}

const VmmBlockDriver vmm_block_qcow2_driver = {
  .name = "qcow2",
  .probe = qcow2_probe,
  .open = qcow2_open,
  .close = qcow2_close,
  .read = qcow2_read,
  .write = qcow2_write_entry,
  .flush = qcow2_flush,
  .discard = qcow2_discard_entry,
  .resize = qcow2_resize,
  .status = qcow2_status,
  .create = qcow2_create,
  .check = qcow2_check,
  .get_info = qcow2_get_info,
  .parallel_io = FALSE,
};
