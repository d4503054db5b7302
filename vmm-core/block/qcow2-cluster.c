/* vmm-core/block/qcow2-cluster.c — guest-to-host mapping: the spec's address
 * helpers, L1/L2 lookup, reads (including compressed clusters), writes with
 * allocation and copy-on-write, discard and zeroing. */
#include "vmm-core/block/qcow2.h"

#include <fcntl.h>
#include <string.h>
#include <zlib.h>

/* ---- the spec's helpers, written as the spec writes them ---- */

uint64_t qcow2_l2_entries(uint32_t cluster_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return cluster_size / sizeof(uint64_t);
}

uint64_t qcow2_l2_index(uint64_t offset, uint32_t cluster_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return (offset / cluster_size) % qcow2_l2_entries(cluster_bits);
}

uint64_t qcow2_l1_index(uint64_t offset, uint32_t cluster_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return (offset / cluster_size) / qcow2_l2_entries(cluster_bits);
}

uint64_t qcow2_offset_in_cluster(uint64_t offset, uint32_t cluster_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return offset % cluster_size;
}

uint64_t qcow2_refblock_entries(uint32_t cluster_bits, uint32_t refcount_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return cluster_size * 8 / refcount_bits;
}

uint64_t qcow2_refblock_index(uint64_t offset, uint32_t cluster_bits,
                              uint32_t refcount_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return (offset / cluster_size) %
         qcow2_refblock_entries(cluster_bits, refcount_bits);
}

uint64_t qcow2_reftable_index(uint64_t offset, uint32_t cluster_bits,
                              uint32_t refcount_bits)
{
  uint64_t cluster_size = UINT64_C(1) << cluster_bits;
  return (offset / cluster_size) /
         qcow2_refblock_entries(cluster_bits, refcount_bits);
}

uint64_t qcow2_l1_size_for(uint64_t size, uint32_t cluster_bits)
{
  uint64_t bytes_per_l1_entry = qcow2_l2_entries(cluster_bits) << cluster_bits;
  return (size + bytes_per_l1_entry - 1) / bytes_per_l1_entry;
}

/* Compressed Clusters Descriptor (x = 62 - (cluster_bits - 8)):
 *   bits 0..x-1: host offset; bits x..61: additional 512-byte sectors. */
void qcow2_compressed_desc(uint64_t l2e, uint32_t cluster_bits,
                           uint64_t *host_offset, uint64_t *nb_sectors)
{
  uint32_t x = 62 - (cluster_bits - 8);
  *host_offset = l2e & ((UINT64_C(1) << x) - 1);
  *nb_sectors = (l2e >> x) & ((UINT64_C(1) << (62 - x)) - 1);
}

uint64_t qcow2_compressed_size(uint64_t l2e, uint32_t cluster_bits)
{
  uint64_t host, nb;
  qcow2_compressed_desc(l2e, cluster_bits, &host, &nb);
  return (nb + 1) * 512 - (host & 511);
}

/* ---- L1/L2 ---- */

static gboolean l1_entry(Qcow2 *q, uint64_t l1i, uint64_t *l2_off,
                         GError **error)
{
  if (l1i >= q->l1_size) {
    *l2_off = 0;
    return TRUE;
  }
  uint64_t e = q->l1_table[l1i];
  if (e & QCOW2_L1E_RESERVED) {
    QCOW2_ERR(error, CORRUPT, q, "L1 entry %" G_GUINT64_FORMAT " (0x%"
              G_GINT64_MODIFIER "x) has reserved bits set", l1i, e);
    return FALSE;
  }
  *l2_off = e & QCOW2_L1E_OFFSET_MASK;
  return TRUE;
}

gboolean qcow2_get_l2_entry(Qcow2 *q, uint64_t guest_off, uint64_t *l2e,
                            GError **error)
{
  uint64_t l2_off;
  if (!l1_entry(q, qcow2_l1_index(guest_off, q->cluster_bits), &l2_off, error))
    return FALSE;
  if (!l2_off) {
    *l2e = 0;
    return TRUE;
  }
  uint8_t *t = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
  if (!t)
    return FALSE;
  *l2e = qcow2_be64(t + 8 * qcow2_l2_index(guest_off, q->cluster_bits));
  return TRUE;
}

typedef enum { C_UNALLOCATED, C_ZERO, C_NORMAL, C_COMPRESSED } ClusterType;

static ClusterType classify(Qcow2 *q, uint64_t l2e)
{
  if (l2e & QCOW2_OFLAG_COMPRESSED)
    return C_COMPRESSED;
  if (q->version >= 3 && (l2e & QCOW2_OFLAG_ZERO))
    return C_ZERO;
  if ((l2e & QCOW2_L2E_OFFSET_MASK) == 0)
    return C_UNALLOCATED;
  return C_NORMAL;
}

static gboolean check_data_offset(Qcow2 *q, uint64_t l2e, GError **error)
{
  uint64_t host = l2e & QCOW2_L2E_OFFSET_MASK;
  if (l2e & QCOW2_L2E_RESERVED & ~QCOW2_OFLAG_ZERO) {
    QCOW2_ERR(error, CORRUPT, q, "L2 entry 0x%" G_GINT64_MODIFIER "x has "
              "reserved bits set", l2e);
    return FALSE;
  }
  if (host & (q->cluster_size - 1)) {
    QCOW2_ERR(error, CORRUPT, q, "data cluster offset 0x%" G_GINT64_MODIFIER
              "x is not aligned to a cluster boundary", host);
    return FALSE;
  }
  if (host >= q->alloc_end << q->cluster_bits && host >= vmm_block_file_size(q->bs)) {
    QCOW2_ERR(error, CORRUPT, q, "data cluster offset 0x%" G_GINT64_MODIFIER
              "x is past the end of the file", host);
    return FALSE;
  }
  return TRUE;
}

static gboolean read_compressed(Qcow2 *q, uint64_t l2e, GError **error)
{
  if (q->dbuf_desc == l2e)
    return TRUE;
  uint64_t host, nb;
  qcow2_compressed_desc(l2e, q->cluster_bits, &host, &nb);
  uint64_t csize = (nb + 1) * 512 - (host & 511);
  uint64_t fsize = vmm_block_file_size(q->bs);
  if (host >= fsize || host < q->cluster_size) {
    QCOW2_ERR(error, CORRUPT, q, "compressed cluster offset 0x%"
              G_GINT64_MODIFIER "x is %s", host,
              host < q->cluster_size ? "inside the header" :
              "past the end of the file");
    return FALSE;
  }
  if (csize > q->cluster_size + 512)
    csize = q->cluster_size + 512; /* more input than any cluster needs */
  if (csize > fsize - host)
    csize = fsize - host;
  if (!vmm_block_pread(q->bs, host, q->cbuf, csize, error))
    return FALSE;
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -12) != Z_OK) {
    QCOW2_ERR(error, FAILED, q, "zlib initialisation failed");
    return FALSE;
  }
  z.next_in = q->cbuf;
  z.avail_in = (uInt)csize;
  z.next_out = q->dbuf;
  z.avail_out = q->cluster_size;
  int ret = inflate(&z, Z_FINISH);
  gboolean ok = (ret == Z_STREAM_END || ret == Z_OK || ret == Z_BUF_ERROR) &&
                z.avail_out == 0;
  inflateEnd(&z);
  if (!ok) {
    q->dbuf_desc = 0;
    QCOW2_ERR(error, CORRUPT, q, "compressed cluster at 0x%" G_GINT64_MODIFIER
              "x does not decompress to a full cluster (corrupt data)", host);
    return FALSE;
  }
  q->dbuf_desc = l2e;
  return TRUE;
}

/* Reads guest bytes this layer does not define: backing file or zeroes. */
static gboolean read_unallocated(Qcow2 *q, uint64_t off, uint8_t *buf,
                                 size_t len, GError **error)
{
  size_t n = 0;
  if (q->backing) {
    uint64_t bsize = vmm_block_size(q->backing);
    if (off < bsize) {
      n = (size_t)MIN((uint64_t)len, bsize - off);
      if (!vmm_block_read(q->backing, off, buf, n, error))
        return FALSE;
    }
  }
  memset(buf + n, 0, len - n);
  return TRUE;
}

/* Reads len bytes inside one guest cluster given its L2 entry. */
static gboolean read_in_cluster(Qcow2 *q, uint64_t off, uint64_t l2e,
                                uint8_t *buf, size_t len, GError **error)
{
  uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
  switch (classify(q, l2e)) {
  case C_UNALLOCATED:
    return read_unallocated(q, off, buf, len, error);
  case C_ZERO:
    memset(buf, 0, len);
    return TRUE;
  case C_COMPRESSED:
    if (!read_compressed(q, l2e, error))
      return FALSE;
    memcpy(buf, q->dbuf + in, len);
    return TRUE;
  case C_NORMAL:
    if (!check_data_offset(q, l2e, error))
      return FALSE;
    return vmm_block_pread(q->bs, (l2e & QCOW2_L2E_OFFSET_MASK) + in, buf, len,
                           error);
  }
  return FALSE;
}

/* Data I/O to a mapped cluster runs without the image lock, so requests on
 * other clusters proceed meanwhile (the lock is held once, by block.c).  The
 * cluster cannot be freed and reused under us: frees are only applied when
 * no such I/O is in flight. */
static gboolean unlocked_io(Qcow2 *q, gboolean write, uint64_t host, void *buf,
                            size_t len, GError **error)
{
  VmmBlock *bs = q->bs;
  g_atomic_int_inc(&q->io_in_flight);
  g_rec_mutex_unlock(&bs->lock);
  gboolean ok = write ? vmm_block_pwrite(bs, host, buf, len, error)
                      : vmm_block_pread(bs, host, buf, len, error);
  g_rec_mutex_lock(&bs->lock);
  g_atomic_int_add(&q->io_in_flight, -1);
  return ok;
}

/* The L2 entry for guest offset @o without any I/O: FALSE when its L2
 * table is not in the cache or the L1 entry is bad (0 where there is no L2
 * table). */
static gboolean peek_l2_entry(Qcow2 *q, uint64_t o, uint64_t *l2e)
{
  uint64_t l1i = qcow2_l1_index(o, q->cluster_bits);
  *l2e = 0;
  if (l1i >= q->l1_size)
    return TRUE;
  uint64_t e = q->l1_table[l1i];
  if (e & QCOW2_L1E_RESERVED)
    return FALSE;
  if (!(e & QCOW2_L1E_OFFSET_MASK))
    return TRUE;
  const uint8_t *t = qcow2_cache_peek(q->l2_cache, e & QCOW2_L1E_OFFSET_MASK);
  if (!t)
    return FALSE;
  *l2e = qcow2_be64(t + 8 * qcow2_l2_index(o, q->cluster_bits));
  return TRUE;
}

gboolean qcow2_map_direct(VmmBlock *bs, gboolean write, uint64_t off,
                          uint64_t len, int *fd, uint64_t *host,
                          gboolean *pinned)
{
  Qcow2 *q = bs->opaque;
  enum { NONE, DATA, BACKING } kind = NONE;
  uint64_t run_host = 0, done = 0;
  if (q->incompatible & QCOW2_INCOMPAT_CORRUPT)
    return FALSE;
  while (done < len) {
    uint64_t o = off + done;
    uint64_t in = qcow2_offset_in_cluster(o, q->cluster_bits);
    uint64_t n = MIN(len - done, q->cluster_size - in);
    uint64_t l2e;
    if (!peek_l2_entry(q, o, &l2e))
      return FALSE;
    switch (classify(q, l2e)) {
    case C_NORMAL:
      if (write && !(l2e & QCOW2_OFLAG_COPIED))
        return FALSE;
      if (!check_data_offset(q, l2e, NULL))
        return FALSE;
      if (kind == NONE) {
        kind = DATA;
        run_host = (l2e & QCOW2_L2E_OFFSET_MASK) + in;
      } else if (kind != DATA ||
                 run_host + done != (l2e & QCOW2_L2E_OFFSET_MASK) + in) {
        return FALSE;
      }
      break;
    case C_UNALLOCATED:
      /* unallocated with a raw backing file that covers the range */
      if (write || !q->backing || q->backing->drv != &vmm_block_raw_driver ||
          q->backing->dfd < 0 || o + n > vmm_block_size(q->backing))
        return FALSE;
      if (kind == NONE)
        kind = BACKING;
      else if (kind != BACKING)
        return FALSE;
      break;
    default:
      return FALSE;
    }
    done += n;
  }
  if (kind == DATA) {
    if (bs->dfd < 0)
      return FALSE;
    *fd = bs->dfd;
    *host = run_host;
    *pinned = TRUE;
    g_atomic_int_inc(&q->io_in_flight);
    if (write)
      q->need_sync = TRUE;
    return TRUE;
  }
  if (kind == BACKING) {
    *fd = q->backing->dfd;
    *host = off;
    *pinned = FALSE;
    return TRUE;
  }
  return FALSE;
}

gboolean qcow2_reads_zero(VmmBlock *bs, uint64_t off, uint64_t len)
{
  Qcow2 *q = bs->opaque;
  if (q->incompatible & QCOW2_INCOMPAT_CORRUPT)
    return FALSE;
  uint64_t bsize = q->backing ? vmm_block_size(q->backing) : 0;
  for (uint64_t o = off - qcow2_offset_in_cluster(off, q->cluster_bits);
       o < off + len; o += q->cluster_size) {
    uint64_t l2e;
    if (!peek_l2_entry(q, o, &l2e))
      return FALSE;
    ClusterType type = classify(q, l2e);
    if (!(type == C_ZERO || (type == C_UNALLOCATED && o >= bsize)))
      return FALSE;
  }
  return TRUE;
}

void qcow2_unpin_io(VmmBlock *bs)
{
  Qcow2 *q = bs->opaque;
  g_atomic_int_add(&q->io_in_flight, -1);
}

gboolean qcow2_read(VmmBlock *bs, uint64_t off, void *vbuf, size_t len,
                    GError **error)
{
  Qcow2 *q = bs->opaque;
  uint8_t *buf = vbuf;
  /* Contiguous host runs are read with one pread. */
  uint64_t run_host = 0, run_len = 0;
  uint8_t *run_buf = NULL;
  while (len > 0) {
    uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
    size_t n = (size_t)MIN((uint64_t)len, q->cluster_size - in);
    uint64_t l2e;
    if (!qcow2_get_l2_entry(q, off, &l2e, error))
      return FALSE;
    if (classify(q, l2e) == C_NORMAL) {
      if (!check_data_offset(q, l2e, error))
        return FALSE;
      uint64_t host = (l2e & QCOW2_L2E_OFFSET_MASK) + in;
      if (run_len && run_host + run_len == host && run_buf + run_len == buf) {
        run_len += n;
      } else {
        if (run_len && !unlocked_io(q, FALSE, run_host, run_buf, run_len, error))
          return FALSE;
        run_host = host;
        run_buf = buf;
        run_len = n;
      }
    } else if (!read_in_cluster(q, off, l2e, buf, n, error)) {
      return FALSE;
    }
    buf += n;
    off += n;
    len -= n;
  }
  if (run_len && !unlocked_io(q, FALSE, run_host, run_buf, run_len, error))
    return FALSE;
  return TRUE;
}

unsigned qcow2_status(VmmBlock *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      GError **error)
{
  Qcow2 *q = bs->opaque;
  unsigned first = 0;
  uint64_t done = 0;
  while (done < len) {
    uint64_t in = qcow2_offset_in_cluster(off + done, q->cluster_bits);
    uint64_t n = MIN(len - done, q->cluster_size - in);
    uint64_t l2e;
    if (!qcow2_get_l2_entry(q, off + done, &l2e, error)) {
      *pnum = 0;
      return 0;
    }
    unsigned st = 0;
    switch (classify(q, l2e)) {
    case C_UNALLOCATED: st = 0; break;
    case C_ZERO: st = VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_ZERO; break;
    default: st = VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_DATA; break;
    }
    if (done == 0)
      first = st;
    else if (st != first)
      break;
    done += n;
  }
  *pnum = done;
  return first;
}

gboolean qcow2_write_l1_table(Qcow2 *q, GError **error)
{
  if (!q->l1_dirty)
    return TRUE;
  g_autofree uint8_t *b = g_malloc((size_t)q->l1_size * 8 + 8);
  for (uint32_t i = 0; i < q->l1_size; i++)
    qcow2_put_be64(b + i * 8, q->l1_table[i]);
  if (!vmm_block_pwrite(q->bs, q->l1_table_offset, b, (size_t)q->l1_size * 8,
                        error))
    return FALSE;
  q->l1_dirty = FALSE;
  q->need_sync = TRUE;
  return TRUE;
}

gboolean qcow2_grow_l1(Qcow2 *q, uint64_t min_size, GError **error)
{
  if (min_size <= q->l1_size)
    return TRUE;
  if (min_size * 8 > QCOW2_MAX_L1_BYTES) {
    QCOW2_ERR(error, INVALID, q, "L1 table would exceed %u bytes",
              QCOW2_MAX_L1_BYTES);
    return FALSE;
  }
  /* Everything the new table points to must be on disk first. */
  if (!qcow2_flush_all(q, error))
    return FALSE;
  uint64_t bytes = qcow2_align_up(min_size * 8, q->cluster_size);
  uint64_t new_size = MIN(bytes / 8, (uint64_t)QCOW2_MAX_L1_BYTES / 8);
  uint64_t new_off;
  if (!qcow2_alloc_clusters(q, bytes / q->cluster_size, &new_off, error))
    return FALSE;
  /* The refcounts of the new table are on disk before the header moves. */
  if (!qcow2_cache_flush(q, q->refblock_cache, error) ||
      !qcow2_write_reftable(q, error))
    return FALSE;
  g_autofree uint8_t *b = g_malloc0(bytes);
  for (uint32_t i = 0; i < q->l1_size; i++)
    qcow2_put_be64(b + i * 8, q->l1_table[i]);
  if (!vmm_block_pwrite(q->bs, new_off, b, bytes, error) ||
      !qcow2_sync(q, error))
    return FALSE;
  uint8_t h[12];
  qcow2_put_be32(h, (uint32_t)new_size);
  qcow2_put_be64(h + 4, new_off);
  if (!vmm_block_pwrite(q->bs, 36, h, sizeof h, error) || !qcow2_sync(q, error))
    return FALSE;
  uint64_t old_off = q->l1_table_offset, old_bytes = (uint64_t)q->l1_size * 8;
  q->l1_table = g_renew(uint64_t, q->l1_table, new_size);
  memset(q->l1_table + q->l1_size, 0, (new_size - q->l1_size) * 8);
  q->l1_size = (uint32_t)new_size;
  q->l1_table_offset = new_off;
  if (old_bytes)
    qcow2_free_later(q, old_off, qcow2_align_up(old_bytes, q->cluster_size));
  return TRUE;
}

/* Makes the L2 table for l1i private to the active L1 (allocating it or
 * copying a table shared with a snapshot) and returns its offset. */
static gboolean l2_for_write(Qcow2 *q, uint64_t l1i, uint64_t *out,
                             GError **error)
{
  if (l1i >= q->l1_size && !qcow2_grow_l1(q, l1i + 1, error))
    return FALSE;
  uint64_t l2_off;
  if (!l1_entry(q, l1i, &l2_off, error))
    return FALSE;
  if (l2_off && (q->l1_table[l1i] & QCOW2_OFLAG_COPIED)) {
    *out = l2_off;
    return TRUE;
  }
  g_autofree uint8_t *copy = NULL;
  if (l2_off) {
    uint8_t *old = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
    if (!old)
      return FALSE;
    copy = g_memdup2(old, q->cluster_size);
  }
  uint64_t new_off;
  if (!qcow2_alloc_clusters(q, 1, &new_off, error))
    return FALSE;
  uint8_t *t = qcow2_cache_get(q, q->l2_cache, new_off, FALSE, error);
  if (!t)
    return FALSE;
  if (copy)
    memcpy(t, copy, q->cluster_size);
  qcow2_cache_mark_dirty(q->l2_cache, new_off);
  q->l1_table[l1i] = new_off | QCOW2_OFLAG_COPIED;
  q->l1_dirty = TRUE;
  if (l2_off)
    qcow2_free_later(q, l2_off, q->cluster_size);
  *out = new_off;
  return TRUE;
}

static gboolean set_l2_entry(Qcow2 *q, uint64_t l2_off, uint64_t l2i,
                             uint64_t value, GError **error)
{
  uint8_t *t = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
  if (!t)
    return FALSE;
  qcow2_put_be64(t + 8 * l2i, value);
  qcow2_cache_mark_dirty(q->l2_cache, l2_off);
  return TRUE;
}

static gboolean write_new_cluster(Qcow2 *q, uint64_t off, const uint8_t *data,
                                  size_t len, uint64_t l2_off, uint64_t l2i,
                                  uint64_t l2e, uint8_t *c, GError **error);

/* ---- allocating writes without the lock ---- */

static gboolean allocs_overlap(Qcow2 *q, uint64_t first, uint64_t n)
{
  for (guint i = 0; i + 1 < q->allocs->len; i += 2) {
    uint64_t f = g_array_index(q->allocs, uint64_t, i);
    uint64_t m = g_array_index(q->allocs, uint64_t, i + 1);
    if (f < first + n && first < f + m)
      return TRUE;
  }
  return FALSE;
}

/* With the image lock held: if an allocating write to guest clusters
 * [first, first+n) is in flight, waits for it (dropping the lock) and
 * returns TRUE: the caller must look the mapping up again. */
static gboolean wait_allocs(Qcow2 *q, uint64_t first, uint64_t n)
{
  if (!allocs_overlap(q, first, n))
    return FALSE;
  g_mutex_lock(&q->alloc_mutex);
  g_rec_mutex_unlock(&q->bs->lock);
  while (allocs_overlap(q, first, n))
    g_cond_wait(&q->alloc_cond, &q->alloc_mutex);
  g_mutex_unlock(&q->alloc_mutex);
  g_rec_mutex_lock(&q->bs->lock);
  return TRUE;
}

/* With the lock held: registers guest clusters [first, first+n) as being
 * written to newly allocated host clusters, so that other writes to them
 * wait (wait_allocs), and drops the lock for the data I/O. */
static void alloc_begin(Qcow2 *q, uint64_t first, uint64_t n)
{
  uint64_t reg[2] = { first, n };
  g_mutex_lock(&q->alloc_mutex);
  g_array_append_vals(q->allocs, reg, 2);
  g_mutex_unlock(&q->alloc_mutex);
  g_rec_mutex_unlock(&q->bs->lock);
}

/* Takes the lock back after the data I/O of alloc_begin(); if it went well,
 * points the L2 entries at host clusters [host, host + n clusters) (data
 * before metadata), else frees them; then ends the registration. */
static gboolean alloc_end(Qcow2 *q, uint64_t first, uint64_t n, uint64_t host,
                          gboolean ok, GError **error)
{
  g_rec_mutex_lock(&q->bs->lock);
  if (ok) {
    q->need_sync = TRUE;
    for (uint64_t j = 0; j < n && ok; j++) {
      uint64_t goff = (first + j) << q->cluster_bits, l2_off;
      uint64_t l2i = qcow2_l2_index(goff, q->cluster_bits);
      ok = l2_for_write(q, qcow2_l1_index(goff, q->cluster_bits), &l2_off, error);
      uint8_t *t = ok ? qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error) : NULL;
      ok = t != NULL;
      if (ok) {
        uint64_t old = qcow2_be64(t + 8 * l2i);
        qcow2_put_be64(t + 8 * l2i, (host + (j << q->cluster_bits)) | QCOW2_OFLAG_COPIED);
        qcow2_cache_mark_dirty(q->l2_cache, l2_off);
        qcow2_free_l2_entry_later(q, old);
      } else {
        qcow2_free_later(q, host + (j << q->cluster_bits), (n - j) << q->cluster_bits);
      }
    }
  } else {
    qcow2_free_later(q, host, n << q->cluster_bits);
  }
  g_mutex_lock(&q->alloc_mutex);
  for (guint i = 0; i + 1 < q->allocs->len; i += 2) {
    if (g_array_index(q->allocs, uint64_t, i) == first &&
        g_array_index(q->allocs, uint64_t, i + 1) == n) {
      g_array_remove_range(q->allocs, i, 2);
      break;
    }
  }
  g_cond_broadcast(&q->alloc_cond);
  g_mutex_unlock(&q->alloc_mutex);
  return ok;
}

/* Newly allocated host clusters [host, host + n clusters) for guest clusters
 * [first, first+n): writes len bytes of data at data_host without the lock,
 * then points the L2 entries at them. */
static gboolean finish_alloc_write(Qcow2 *q, uint64_t first, uint64_t n,
                                   uint64_t host, uint64_t data_host,
                                   const uint8_t *data, size_t len,
                                   GError **error)
{
  alloc_begin(q, first, n);
  gboolean ok = vmm_block_pwrite(q->bs, data_host, data, len, error);
  return alloc_end(q, first, n, host, ok, error);
}

/* A write of part of a guest cluster this layer does not define yet, over a
 * backing file: the new host cluster is filled from the backing file merged
 * with the new bytes, without the image lock, so that copy-on-writes to
 * different clusters (and other requests) proceed side by side. */
static gboolean finish_cow_write(Qcow2 *q, uint64_t off, const uint8_t *data,
                                 size_t len, uint64_t host, GError **error)
{
  uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
  uint64_t first = off >> q->cluster_bits;
  alloc_begin(q, first, 1);
  uint8_t *c = g_aligned_alloc(1, q->cluster_size, 4096);
  gboolean ok = read_unallocated(q, off - in, c, q->cluster_size, error);
  if (ok) {
    memcpy(c + in, data, len);
    ok = vmm_block_pwrite(q->bs, host, c, q->cluster_size, error);
  }
  g_aligned_free(c);
  return alloc_end(q, first, 1, host, ok, error);
}

/* Writes [off, off+len) inside one guest cluster; data NULL means zeroes. */
static gboolean write_in_cluster(Qcow2 *q, uint64_t off, const uint8_t *data,
                                 size_t len, GError **error)
{
  uint64_t l1i = qcow2_l1_index(off, q->cluster_bits);
  uint64_t l2i = qcow2_l2_index(off, q->cluster_bits);
  uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
  uint64_t l2_off, l2e;
  if (!l2_for_write(q, l1i, &l2_off, error))
    return FALSE;
  uint8_t *t = qcow2_cache_get(q, q->l2_cache, l2_off, TRUE, error);
  if (!t)
    return FALSE;
  l2e = qcow2_be64(t + 8 * l2i);
  ClusterType type = classify(q, l2e);
  if (!data && (type == C_ZERO ||
                (type == C_UNALLOCATED &&
                 (!q->backing || off >= vmm_block_size(q->backing)))))
    return TRUE; /* already reads as zeroes */
  if (type == C_NORMAL && (l2e & QCOW2_OFLAG_COPIED)) {
    if (!check_data_offset(q, l2e, error))
      return FALSE;
    uint64_t host = (l2e & QCOW2_L2E_OFFSET_MASK) + in;
    q->need_sync = TRUE;
    if (data)
      return unlocked_io(q, TRUE, host, (void *)data, len, error);
    g_autofree uint8_t *z = g_malloc0(len);
    return vmm_block_pwrite(q->bs, host, z, len, error);
  }
  /* New cluster whose other bytes read as zeroes: zero it in the file
   * system (no data written), then only the new bytes, without the lock. */
  if (data && len < q->cluster_size &&
      (type == C_UNALLOCATED || (type == C_ZERO && !(l2e & QCOW2_L2E_OFFSET_MASK))) &&
      (type == C_ZERO || !q->backing ||
       off - in >= vmm_block_size(q->backing))) {
    uint64_t host;
    if (!qcow2_alloc_clusters(q, 1, &host, error))
      return FALSE;
    if (fallocate(q->bs->fd, FALLOC_FL_ZERO_RANGE, (off_t)host,
                  (off_t)q->cluster_size) == 0)
      return finish_alloc_write(q, off >> q->cluster_bits, 1, host, host + in,
                                data, len, error);
    qcow2_free_later(q, host, q->cluster_size);
  }
  if (data && type == C_UNALLOCATED && q->backing) {
    uint64_t host;
    if (!qcow2_alloc_clusters(q, 1, &host, error))
      return FALSE;
    return finish_cow_write(q, off, data, len, host, error);
  }
  /* Build the whole new cluster: old content merged with the new bytes. */
  uint8_t *c = g_aligned_alloc(1, q->cluster_size, 4096);
  gboolean ok = write_new_cluster(q, off, data, len, l2_off, l2i, l2e, c, error);
  g_aligned_free(c);
  return ok;
}

static gboolean write_new_cluster(Qcow2 *q, uint64_t off, const uint8_t *data,
                                  size_t len, uint64_t l2_off, uint64_t l2i,
                                  uint64_t l2e, uint8_t *c, GError **error)
{
  ClusterType type = classify(q, l2e);
  uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
  uint64_t cluster_start = off - in;
  if (len < q->cluster_size) {
    if (type == C_ZERO && (l2e & QCOW2_L2E_OFFSET_MASK) == 0)
      memset(c, 0, q->cluster_size);
    else if (!read_in_cluster(q, cluster_start, type == C_ZERO ? QCOW2_OFLAG_ZERO : l2e,
                              c, q->cluster_size, error))
      return FALSE;
  }
  const uint8_t *src = c;
  if (data && len == q->cluster_size)
    src = data; /* whole cluster: no merge, no copy */
  else if (data)
    memcpy(c + in, data, len);
  else
    memset(c + in, 0, len);
  uint64_t host;
  gboolean reuse = type == C_ZERO && (l2e & QCOW2_L2E_OFFSET_MASK) &&
                   (l2e & QCOW2_OFLAG_COPIED);
  if (reuse) {
    if (!check_data_offset(q, l2e & ~QCOW2_OFLAG_ZERO, error))
      return FALSE;
    host = l2e & QCOW2_L2E_OFFSET_MASK;
  } else if (!qcow2_alloc_clusters(q, 1, &host, error)) {
    return FALSE;
  }
  /* data before the L2 entry that points at it */
  if (!vmm_block_pwrite(q->bs, host, src, q->cluster_size, error))
    return FALSE;
  q->need_sync = TRUE;
  if (!set_l2_entry(q, l2_off, l2i, host | QCOW2_OFLAG_COPIED, error))
    return FALSE;
  if (!reuse)
    qcow2_free_l2_entry_later(q, l2e);
  return TRUE;
}

static gboolean mapped_for_write(Qcow2 *q, uint64_t l2e)
{
  return classify(q, l2e) == C_NORMAL && (l2e & QCOW2_OFLAG_COPIED);
}

gboolean qcow2_write(VmmBlock *bs, uint64_t off, const void *vbuf, size_t len,
                     GError **error)
{
  Qcow2 *q = bs->opaque;
  const uint8_t *buf = vbuf;
  uint64_t cs = q->cluster_size;
  while (len > 0) {
    uint64_t in = qcow2_offset_in_cluster(off, q->cluster_bits);
    size_t n = (size_t)MIN((uint64_t)len, cs - in);
    uint64_t ci = off >> q->cluster_bits;
    if (wait_allocs(q, ci, 1))
      continue;
    uint64_t l2e;
    if (!qcow2_get_l2_entry(q, off, &l2e, error))
      return FALSE;
    if (mapped_for_write(q, l2e) && check_data_offset(q, l2e, NULL)) {
      /* overwrite in place: one pwrite for the contiguous host run */
      uint64_t host = (l2e & QCOW2_L2E_OFFSET_MASK) + in;
      size_t total = n;
      while (total < len) {
        uint64_t e, o = off + total;
        if (allocs_overlap(q, o >> q->cluster_bits, 1) ||
            !qcow2_get_l2_entry(q, o, &e, NULL) || !mapped_for_write(q, e) ||
            (e & QCOW2_L2E_OFFSET_MASK) != host + total ||
            !check_data_offset(q, e, NULL))
          break;
        total += (size_t)MIN((uint64_t)(len - total), cs);
      }
      q->need_sync = TRUE;
      if (!unlocked_io(q, TRUE, host, (void *)buf, total, error))
        return FALSE;
      n = total;
    } else if (in == 0 && n == cs &&
               (classify(q, l2e) == C_UNALLOCATED || classify(q, l2e) == C_NORMAL ||
                (classify(q, l2e) == C_ZERO && !(l2e & QCOW2_L2E_OFFSET_MASK)))) {
      /* whole clusters: allocate the run within this L2 table at once and
       * write it with one pwrite, without the lock */
      uint64_t l2i = qcow2_l2_index(off, q->cluster_bits), k = 1, l2_off;
      if (!l2_for_write(q, qcow2_l1_index(off, q->cluster_bits), &l2_off, error))
        return FALSE;
      while ((k + 1) * cs <= len && l2i + k < q->l2_entries &&
             !allocs_overlap(q, ci + k, 1)) {
        uint64_t e;
        if (!qcow2_get_l2_entry(q, off + k * cs, &e, NULL))
          break;
        ClusterType t = classify(q, e);
        if (!(t == C_UNALLOCATED || (t == C_NORMAL && !(e & QCOW2_OFLAG_COPIED)) ||
              (t == C_ZERO && !(e & QCOW2_L2E_OFFSET_MASK))))
          break;
        k++;
      }
      uint64_t host;
      if (!qcow2_alloc_clusters(q, k, &host, error))
        return FALSE;
      if (!finish_alloc_write(q, ci, k, host, host, buf, k * cs, error))
        return FALSE;
      n = k * cs;
    } else if (!write_in_cluster(q, off, buf, n, error)) {
      return FALSE;
    }
    buf += n;
    off += n;
    len -= n;
  }
  if (q->pending_free->len > 4096)
    return qcow2_flush_all(q, error);
  return TRUE;
}

gboolean qcow2_deallocate(Qcow2 *q, uint64_t off, uint64_t len, gboolean zero,
                          GError **error)
{
  gboolean zero_flag = zero && q->version >= 3;
  g_assert((off & (q->cluster_size - 1)) == 0);
  for (uint64_t pos = off; pos < off + len; pos += q->cluster_size) {
    if (zero && !zero_flag && q->backing) {
      /* v2 has no zero clusters: hide the backing file with real zeroes */
      if (!write_in_cluster(q, pos, NULL, q->cluster_size, error))
        return FALSE;
      continue;
    }
    uint64_t target = zero_flag ? QCOW2_OFLAG_ZERO : 0;
    uint64_t l2e;
    if (!qcow2_get_l2_entry(q, pos, &l2e, error))
      return FALSE;
    if (l2e == target)
      continue;
    if (pos >= q->bs->size && l2e == 0)
      continue;
    uint64_t l2_off;
    if (!l2_for_write(q, qcow2_l1_index(pos, q->cluster_bits), &l2_off, error))
      return FALSE;
    if (!qcow2_get_l2_entry(q, pos, &l2e, error))
      return FALSE;
    if (!set_l2_entry(q, l2_off, qcow2_l2_index(pos, q->cluster_bits), target,
                      error))
      return FALSE;
    qcow2_free_l2_entry_later(q, l2e);
  }
  if (q->pending_free->len > 4096)
    return qcow2_flush_all(q, error);
  return TRUE;
}

gboolean qcow2_discard(VmmBlock *bs, uint64_t off, uint64_t len,
                       GError **error)
{
  Qcow2 *q = bs->opaque;
  uint64_t end = off + len;
  uint64_t a = qcow2_align_up(off, q->cluster_size);
  uint64_t b = end & ~(uint64_t)(q->cluster_size - 1);
  /* The last cluster of the disk counts as whole when the range reaches the
   * end of the disk. */
  if (end == bs->size)
    b = qcow2_align_up(end, q->cluster_size);
  if (a >= b) {
    /* no whole cluster: zero up to two partial pieces */
    uint64_t mid = MIN(a, end);
    if (!write_in_cluster(q, off, NULL, (size_t)(mid - off), error))
      return FALSE;
    if (end > mid && !write_in_cluster(q, mid, NULL, (size_t)(end - mid), error))
      return FALSE;
    return TRUE;
  }
  if (a > off && !write_in_cluster(q, off, NULL, (size_t)(a - off), error))
    return FALSE;
  if (!qcow2_deallocate(q, a, b - a, TRUE, error))
    return FALSE;
  if (end > b && !write_in_cluster(q, b, NULL, (size_t)(end - b), error))
    return FALSE;
  return TRUE;
}

/* Writes one whole guest cluster deflate-compressed (qemu-img convert -c).
 * Compressed clusters are packed back to back: a host cluster's refcount is
 * the number of compressed clusters that touch it.  Data that does not
 * shrink is written as a normal cluster. */
gboolean qcow2_write_compressed(VmmBlock *bs, uint64_t off, const void *buf,
                                size_t len, GError **error)
{
  Qcow2 *q = bs->opaque;
  uint32_t cs = q->cluster_size;
  if ((off & (cs - 1)) || len > cs || (len < cs && off + cs < bs->size)) {
    QCOW2_ERR(error, INVALID, q, "compressed writes must cover one whole "
              "cluster (%u bytes) at a cluster boundary", cs);
    return FALSE;
  }
  g_autofree uint8_t *in = g_malloc0(cs);
  memcpy(in, buf, len);
  g_autofree uint8_t *out = g_malloc(cs);
  z_stream z;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -12, 9,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    QCOW2_ERR(error, FAILED, q, "zlib initialisation failed");
    return FALSE;
  }
  z.next_in = in;
  z.avail_in = cs;
  z.next_out = out;
  z.avail_out = cs;
  int ret = deflate(&z, Z_FINISH);
  size_t clen = cs - z.avail_out;
  deflateEnd(&z);
  if (!qcow2_before_change(q, error))
    return FALSE;
  if (ret != Z_STREAM_END || clen >= cs)
    return qcow2_write(bs, off, in, len, error); /* does not pay */

  uint64_t l2_off;
  if (!l2_for_write(q, qcow2_l1_index(off, q->cluster_bits), &l2_off, error))
    return FALSE;
  uint64_t host = 0;
  gboolean placed = FALSE;
  if (q->comp_next && q->comp_next < q->comp_end) {
    /* narrow refcounts (refcount_bits=1) may not allow another user */
    uint64_t rc;
    if (!qcow2_get_refcount(q, q->comp_next >> q->cluster_bits, &rc, error))
      return FALSE;
    if (rc >= q->refcount_max)
      q->comp_next = q->comp_end = 0;
  }
  if (q->comp_next && q->comp_next + clen <= q->comp_end) {
    host = q->comp_next;
    if (!qcow2_update_refcount(q, host >> q->cluster_bits, 1, error))
      return FALSE;
    placed = TRUE;
  } else if (q->comp_next && (q->comp_end >> q->cluster_bits) == q->alloc_end) {
    /* continue into clusters appended right after the current one */
    uint64_t extra = (q->comp_next + clen - q->comp_end + cs - 1) / cs, got;
    if (!qcow2_alloc_clusters_at_end(q, extra, &got, error))
      return FALSE;
    if (got == q->comp_end) {
      host = q->comp_next;
      /* the partly used cluster gains a user (unless it is already full) */
      if (q->comp_next < q->comp_end &&
          !qcow2_update_refcount(q, host >> q->cluster_bits, 1, error))
        return FALSE;
      q->comp_end += extra * cs;
      placed = TRUE;
    } else {
      qcow2_free_later(q, got, extra * cs); /* not contiguous after all */
    }
  }
  if (!placed) {
    uint64_t n = (clen + cs - 1) / cs;
    if (!qcow2_alloc_clusters(q, n, &host, error))
      return FALSE;
    q->comp_end = host + n * cs;
  }
  q->comp_next = host + clen;
  uint32_t x = 62 - (q->cluster_bits - 8);
  if (host >> x) {
    QCOW2_ERR(error, UNSUPPORTED, q, "compressed data at 0x%" G_GINT64_MODIFIER
              "x is beyond what a compressed descriptor can address", host);
    return FALSE;
  }
  uint64_t nb = ((host + clen - 1) >> 9) - (host >> 9);
  if (!vmm_block_pwrite(bs, host, out, clen, error))
    return FALSE;
  q->need_sync = TRUE;
  uint64_t l2e;
  if (!qcow2_get_l2_entry(q, off, &l2e, error) ||
      !set_l2_entry(q, l2_off, qcow2_l2_index(off, q->cluster_bits),
                    QCOW2_OFLAG_COMPRESSED | (nb << x) | host, error))
    return FALSE;
  qcow2_free_l2_entry_later(q, l2e);
  q->dbuf_desc = 0;
  return TRUE;
}
