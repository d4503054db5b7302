/* vmm-core/block/qcow2.h — qcow2 driver internals, from the qcow2 spec
 * (QEMU docs/interop/qcow2.txt). */
#pragma once

#include "vmm-core/block/block-int.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */

/* Named limits: anything larger is refused as absurd. */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_MAX_L1_BYTES (32u << 20)
#define QCOW2_MAX_REFTABLE_BYTES (8u << 20)
#define QCOW2_MAX_SNAPSHOTS 65536
#define QCOW2_MAX_SNAPSHOT_TABLE_BYTES (64u << 20)
#define QCOW2_MAX_SNAPSHOT_EXTRA 1024
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_HEADER_EXTENSIONS 64
#define QCOW2_L2_CACHE_BYTES (4u << 20)
#define QCOW2_REFBLOCK_CACHE_ENTRIES 8
#define QCOW2_MAX_USED_PAST_END 65536 /* in-use clusters skipped when appending */

/* Table entry bits. */
#define QCOW2_OFLAG_COPIED     (UINT64_C(1) << 63)
#define QCOW2_OFLAG_COMPRESSED (UINT64_C(1) << 62)
#define QCOW2_OFLAG_ZERO       UINT64_C(1)
#define QCOW2_L1E_OFFSET_MASK  UINT64_C(0x00fffffffffffe00)
#define QCOW2_L2E_OFFSET_MASK  UINT64_C(0x00fffffffffffe00)
#define QCOW2_REFT_OFFSET_MASK UINT64_C(0xfffffffffffffe00)
#define QCOW2_L1E_RESERVED     UINT64_C(0x7f000000000001ff)
#define QCOW2_L2E_RESERVED     UINT64_C(0x3f000000000001fe)

/* Feature bits. */
#define QCOW2_INCOMPAT_DIRTY       (UINT64_C(1) << 0)
#define QCOW2_INCOMPAT_CORRUPT     (UINT64_C(1) << 1)
#define QCOW2_INCOMPAT_DATA_FILE   (UINT64_C(1) << 2)
#define QCOW2_INCOMPAT_COMPRESSION (UINT64_C(1) << 3)
#define QCOW2_INCOMPAT_EXTL2       (UINT64_C(1) << 4)
#define QCOW2_COMPAT_LAZY_REFCOUNTS (UINT64_C(1) << 0)
#define QCOW2_AUTOCLEAR_BITMAPS    (UINT64_C(1) << 0)
#define QCOW2_AUTOCLEAR_DATA_FILE_RAW (UINT64_C(1) << 1)

/* Header extensions. */
#define QCOW2_EXT_END             0x00000000u
#define QCOW2_EXT_BACKING_FORMAT  0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE   0x6803f857u
#define QCOW2_EXT_BITMAPS         0x23852875u
#define QCOW2_EXT_CRYPTO          0x0537be77u
#define QCOW2_EXT_DATA_FILE       0x44415441u

#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
#define QCOW2_V3_HEADER_LEN_CT 112 /* with the compression type byte, padded */

typedef struct {
  uint32_t type;
  uint32_t len;
  uint8_t *data;
} Qcow2Ext;

typedef struct {
  uint64_t l1_table_offset;
  uint32_t l1_size;
  char *id;
  char *name;
  uint32_t date_sec;
  uint32_t date_nsec;
  uint64_t vm_clock_nsec;
  uint64_t vm_state_size;
  uint64_t disk_size;
  uint64_t icount;
  gboolean has_icount;
  uint32_t extra_size;
  uint8_t *extra;        /* the extra data as read, preserved on rewrite */
} Qcow2Snapshot;

typedef struct Qcow2Cache Qcow2Cache;

typedef struct Qcow2 {
  VmmBlock *bs;
  uint32_t version;
  uint32_t cluster_bits;
  uint32_t cluster_size;
  uint32_t l2_bits;          /* log2 of entries per L2 table */
  uint32_t l2_entries;
  uint64_t backing_file_offset;
  uint32_t backing_file_size;
  char *backing_file;
  char *backing_format;
  uint32_t crypt_method;

  uint32_t l1_size;
  uint64_t l1_table_offset;
  uint64_t *l1_table;        /* host order */
  gboolean l1_dirty;
  gboolean reftable_dirty;

  uint64_t refcount_table_offset;
  uint32_t refcount_table_clusters;
  uint64_t refcount_table_size; /* entries */
  uint64_t *refcount_table;  /* host order */
  uint32_t refcount_order;
  uint32_t refcount_bits;
  uint64_t refcount_max;
  uint32_t refblock_bits;    /* log2 of entries per refcount block */

  uint32_t nb_snapshots;
  uint64_t snapshots_offset;
  Qcow2Snapshot *snapshots;
  uint64_t snapshots_size;   /* bytes of the table on disk */

  uint64_t incompatible;
  uint64_t compatible;
  uint64_t autoclear;
  uint32_t header_length;
  uint8_t compression_type;
  GArray *extensions;        /* Qcow2Ext kept verbatim (unknown, bitmaps…) */
  GArray *feature_names;     /* raw 48-byte entries */

  Qcow2Cache *l2_cache;
  Qcow2Cache *refblock_cache;

  uint64_t free_hint;        /* cluster index where the free search starts */
  uint64_t alloc_end;        /* cluster index past the last used cluster */
  GArray *pending_free;      /* host offsets whose refcount drops at flush */

  VmmBlock *backing;
  uint8_t *cbuf;             /* compressed input */
  uint8_t *dbuf;             /* decompressed cluster */
  uint64_t dbuf_desc;        /* L2 entry dbuf holds (0: none) */
  uint64_t comp_next;        /* next free byte for compressed data (0: none) */
  uint64_t comp_end;         /* end of the cluster comp_next lies in */
  gboolean need_sync;        /* host writes since the last fdatasync */
  gint io_in_flight;         /* data preads/pwrites running without the lock;
                                frees are not applied while any runs (raised
                                under the lock, lowered atomically without:
                                an io_uring completion need not wait for it) */
  gboolean dirty_on_disk;    /* we set the dirty bit (lazy refcounts) */
  /* Allocating writes whose data is being written without the lock: guest
   * cluster ranges (pairs of first, count).  Other writes to those clusters
   * wait on alloc_cond (alloc_mutex is taken only with the image lock). */
  GArray *allocs;
  GMutex alloc_mutex;
  GCond alloc_cond;
} Qcow2;

/* ---- address helpers, literally from the spec (qcow2-cluster.c) ---- */
uint64_t qcow2_l2_entries(uint32_t cluster_bits);
uint64_t qcow2_l1_index(uint64_t offset, uint32_t cluster_bits);
uint64_t qcow2_l2_index(uint64_t offset, uint32_t cluster_bits);
uint64_t qcow2_offset_in_cluster(uint64_t offset, uint32_t cluster_bits);
uint64_t qcow2_refblock_entries(uint32_t cluster_bits, uint32_t refcount_bits);
uint64_t qcow2_refblock_index(uint64_t offset, uint32_t cluster_bits,
                              uint32_t refcount_bits);
uint64_t qcow2_reftable_index(uint64_t offset, uint32_t cluster_bits,
                              uint32_t refcount_bits);
/* L1 entries needed for a virtual size. */
uint64_t qcow2_l1_size_for(uint64_t size, uint32_t cluster_bits);
/* Compressed descriptor fields. */
void qcow2_compressed_desc(uint64_t l2e, uint32_t cluster_bits,
                           uint64_t *host_offset, uint64_t *nb_sectors);
/* Host bytes a compressed cluster occupies (from its offset). */
uint64_t qcow2_compressed_size(uint64_t l2e, uint32_t cluster_bits);
/* Refcount block entry of any width (order 0..6). */
uint64_t qcow2_refcount_get(const uint8_t *block, uint64_t index,
                            uint32_t order);
void qcow2_refcount_set(uint8_t *block, uint64_t index, uint32_t order,
                        uint64_t value);

static inline uint64_t qcow2_be64(const uint8_t *p)
{
  return (uint64_t)p[0] << 56 | (uint64_t)p[1] << 48 | (uint64_t)p[2] << 40 |
         (uint64_t)p[3] << 32 | (uint64_t)p[4] << 24 | (uint64_t)p[5] << 16 |
         (uint64_t)p[6] << 8 | p[7];
}
static inline uint32_t qcow2_be32(const uint8_t *p)
{
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint16_t qcow2_be16(const uint8_t *p)
{
  return (uint16_t)(p[0] << 8 | p[1]);
}
static inline void qcow2_put_be64(uint8_t *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static inline void qcow2_put_be32(uint8_t *p, uint32_t v)
{
  for (int i = 3; i >= 0; i--, v >>= 8)
    p[i] = (uint8_t)v;
}
static inline void qcow2_put_be16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static inline uint64_t qcow2_align_up(uint64_t v, uint64_t a)
{
  return (v + a - 1) & ~(a - 1);
}

/* ---- qcow2.c ---- */
gboolean qcow2_write_header(Qcow2 *q, GError **error);
gboolean qcow2_sync(Qcow2 *q, GError **error);
/* Checks that a metadata offset read from the file is usable. */
gboolean qcow2_check_offset(Qcow2 *q, uint64_t off, uint64_t len,
                            const char *what, GError **error);
gboolean qcow2_flush_all(Qcow2 *q, GError **error);
/* Lazy refcounts: sets the dirty bit before the first change. */
gboolean qcow2_before_change(Qcow2 *q, GError **error);
gboolean qcow2_begin_metadata_op(Qcow2 *q, gboolean *marked, GError **error);
gboolean qcow2_end_metadata_op(Qcow2 *q, gboolean marked, GError **error);
VmmBlock *qcow2_backing(VmmBlock *bs);
gboolean qcow2_set_backing(VmmBlock *bs, const char *file, const char *fmt,
                           GError **error);
gboolean qcow2_make_empty(VmmBlock *bs, GError **error);

/* ---- qcow2-cache.c: write-back cache of cluster-sized tables ---- */
Qcow2Cache *qcow2_cache_new(unsigned entries, uint32_t cluster_size,
                            gboolean is_l2);
void qcow2_cache_free(Qcow2Cache *c);
/* Returns the table (on-disk byte order); valid until the next get. */
uint8_t *qcow2_cache_get(Qcow2 *q, Qcow2Cache *c, uint64_t offset,
                         gboolean read, GError **error);
const uint8_t *qcow2_cache_peek(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_mark_dirty(Qcow2Cache *c, uint64_t offset);
gboolean qcow2_cache_flush(Qcow2 *q, Qcow2Cache *c, GError **error);
void qcow2_cache_drop(Qcow2Cache *c, uint64_t offset);
void qcow2_cache_clear(Qcow2Cache *c);

/* ---- qcow2-refcount.c ---- */
gboolean qcow2_refcount_load(Qcow2 *q, GError **error);
gboolean qcow2_get_refcount(Qcow2 *q, uint64_t cluster, uint64_t *rc,
                            GError **error);
gboolean qcow2_update_refcount(Qcow2 *q, uint64_t cluster, int64_t delta,
                               GError **error);
/* Allocates n contiguous clusters with refcount 1; returns host offset. */
gboolean qcow2_alloc_clusters(Qcow2 *q, uint64_t n, uint64_t *offset,
                              GError **error);
/* The same, always past the last used cluster (contiguous with it). */
gboolean qcow2_alloc_clusters_at_end(Qcow2 *q, uint64_t n, uint64_t *offset,
                                     GError **error);
/* Drops one reference to each cluster of [offset, offset+len) after the
 * next metadata flush (so nothing on disk still points there when freed). */
void qcow2_free_later(Qcow2 *q, uint64_t offset, uint64_t len);
/* The clusters an L2 entry holds (for compressed: those it touches). */
void qcow2_free_l2_entry_later(Qcow2 *q, uint64_t l2e);
gboolean qcow2_apply_pending_frees(Qcow2 *q, GError **error);
gboolean qcow2_write_reftable(Qcow2 *q, GError **error);
gboolean qcow2_check(VmmBlock *bs, VmmBlockRepair repair,
                     VmmBlockCheckResult *res, GError **error);
/* Adds delta to the refcount of every cluster reachable from an L1 table. */
gboolean qcow2_update_tree_refcounts(Qcow2 *q, const uint64_t *l1,
                                     uint32_t l1_size, int64_t delta,
                                     gboolean dry_run, GError **error);
/* Sets bit 63 in the active L1 and its L2 tables from the refcounts. */
gboolean qcow2_fix_copied_flags(Qcow2 *q, GError **error);
/* Rebuilds all refcounts from the metadata (dirty image, check -r all). */
gboolean qcow2_rebuild_refcounts(Qcow2 *q, GError **error);

/* ---- qcow2-cluster.c ---- */
gboolean qcow2_read(VmmBlock *bs, uint64_t off, void *buf, size_t len,
                    GError **error);
gboolean qcow2_write(VmmBlock *bs, uint64_t off, const void *buf, size_t len,
                     GError **error);
gboolean qcow2_discard(VmmBlock *bs, uint64_t off, uint64_t len,
                       GError **error);
gboolean qcow2_write_compressed(VmmBlock *bs, uint64_t off, const void *buf,
                                size_t len, GError **error);
unsigned qcow2_status(VmmBlock *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                      GError **error);
/* Current L2 entry for a guest offset (0 when no L2 table). */
gboolean qcow2_get_l2_entry(Qcow2 *q, uint64_t guest_off, uint64_t *l2e,
                            GError **error);
gboolean qcow2_grow_l1(Qcow2 *q, uint64_t min_size, GError **error);
/* Direct (io_uring) data path, called with bs->lock held: maps the guest
 * range to one host range without doing any I/O -- a run of mapped clusters
 * of this file (pinned against frees until qcow2_unpin_io), or, for reads of
 * unallocated clusters, the same range of a raw backing file.  FALSE when
 * the request needs the ordinary path (allocation, COW, zero or compressed
 * clusters, tables not cached...). */
gboolean qcow2_map_direct(VmmBlock *bs, gboolean write, uint64_t off,
                          uint64_t len, int *fd, uint64_t *host,
                          gboolean *pinned);
void qcow2_unpin_io(VmmBlock *bs);
/* With the image lock held: TRUE when every byte of [off, off+len) reads
 * as zero, known without I/O (zero clusters, or unallocated ones with no
 * backing file behind them, in L2 tables already cached). */
gboolean qcow2_reads_zero(VmmBlock *bs, uint64_t off, uint64_t len);
gboolean qcow2_write_l1_table(Qcow2 *q, GError **error);
/* Sets clusters in [off, off+len) to unallocated (mode 0) or zero (mode 1),
 * whole clusters only. */
gboolean qcow2_deallocate(Qcow2 *q, uint64_t off, uint64_t len, gboolean zero,
                          GError **error);

/* ---- qcow2-snapshot.c ---- */
gboolean qcow2_snapshots_load(Qcow2 *q, GError **error);
void qcow2_snapshots_free(Qcow2 *q);
GArray *qcow2_snapshot_list(VmmBlock *bs);
gboolean qcow2_snapshot_create(VmmBlock *bs, const char *name, GError **error);
gboolean qcow2_snapshot_apply(VmmBlock *bs, const char *name, GError **error);
gboolean qcow2_snapshot_delete(VmmBlock *bs, const char *name, GError **error);

#define QCOW2_ERR(error, code, q, fmt, ...)                                    \
  g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_##code, "%s: " fmt,      \
              (q)->bs->filename, ##__VA_ARGS__)
