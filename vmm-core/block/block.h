/* vmm-core/block/block.h — the block layer's public interface.
 *
 * A VmmBlock is an open disk image (raw or qcow2, with a backing chain of any
 * depth).  All I/O is in bytes: guests issue sector-aligned requests, tools
 * may issue unaligned ones.  The synchronous calls may be used from any
 * thread; one image serialises its metadata updates internally.
 *
 * Asynchronous I/O: vmm_block_submit() sends aligned O_DIRECT reads and
 * writes that need no metadata work to io_uring, and queues everything else
 * on the image's worker pool (a GThreadPool, created on first use).  The
 * completion callback runs on the io_uring reaper or worker thread, or, if a
 * GMainContext was given with vmm_block_set_completion_context(), is posted
 * to that context.  Without io_uring the pool does everything; see
 * block-async.c.
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_BLOCK_ERROR (vmm_block_error_quark())
GQuark vmm_block_error_quark(void);

typedef enum {
  VMM_BLOCK_ERROR_FAILED,       /* generic failure; message says why */
  VMM_BLOCK_ERROR_IO,           /* the host file failed a read/write */
  VMM_BLOCK_ERROR_CORRUPT,      /* image metadata is inconsistent */
  VMM_BLOCK_ERROR_UNSUPPORTED,  /* a feature Vessel does not implement */
  VMM_BLOCK_ERROR_INVALID,      /* bad argument (offset, size, option) */
  VMM_BLOCK_ERROR_READ_ONLY,    /* write to a read-only image */
} VmmBlockError;

typedef enum {
  VMM_BLOCK_OPEN_READ_ONLY  = 1 << 0,
  VMM_BLOCK_OPEN_NO_BACKING = 1 << 1, /* do not open the backing file */
  VMM_BLOCK_OPEN_CHECK      = 1 << 2, /* open for check: no automatic repair */
  VMM_BLOCK_OPEN_DIRECT     = 1 << 3, /* O_DIRECT on the host file if possible */
} VmmBlockOpenFlags;

typedef struct VmmBlock VmmBlock;

VmmBlock *vmm_block_open(const char *path, const char *format, unsigned flags,
                         GError **error);
/* The same, with asynchronous completions posted to context (NULL: on the
 * worker thread); see vmm_block_set_completion_context(). */
VmmBlock *vmm_block_open_with_context(const char *path, const char *format,
                                      unsigned flags, GMainContext *context,
                                      GError **error);
/* Flushes and closes; errors on the final flush are returned.  Drain
 * asynchronous requests first when completions go to a GMainContext. */
gboolean vmm_block_close(VmmBlock *bs, GError **error);

gboolean vmm_block_read(VmmBlock *bs, uint64_t offset, void *buf, size_t len,
                        GError **error);
gboolean vmm_block_write(VmmBlock *bs, uint64_t offset, const void *buf,
                         size_t len, GError **error);
gboolean vmm_block_flush(VmmBlock *bs, GError **error);
/* After discard or write_zeroes the range reads as zeroes. */
gboolean vmm_block_discard(VmmBlock *bs, uint64_t offset, uint64_t len,
                           GError **error);
gboolean vmm_block_write_zeroes(VmmBlock *bs, uint64_t offset, uint64_t len,
                                GError **error);
uint64_t vmm_block_size(VmmBlock *bs);
/* Growing makes the new range read as zeroes; shrinking needs allow_shrink. */
gboolean vmm_block_resize(VmmBlock *bs, uint64_t size, gboolean allow_shrink,
                          GError **error);

const char *vmm_block_format(VmmBlock *bs);     /* "raw" or "qcow2" */
const char *vmm_block_filename(VmmBlock *bs);
gboolean vmm_block_is_read_only(VmmBlock *bs);
VmmBlock *vmm_block_backing(VmmBlock *bs);      /* NULL if none */

/* How many write, discard and write-zeroes requests the image accepted
 * since it was opened (a front end learns that a guest wrote). */
uint64_t vmm_block_write_count(VmmBlock *bs);

/* Block status of [offset, offset+len) in this layer only: sets *pnum to the
 * length of the run starting at offset that shares the returned flags. */
typedef enum {
  VMM_BLOCK_STATUS_ALLOCATED = 1 << 0, /* this layer defines the content */
  VMM_BLOCK_STATUS_ZERO      = 1 << 1, /* reads as zeroes */
  VMM_BLOCK_STATUS_DATA      = 1 << 2, /* backed by host data */
} VmmBlockStatus;
unsigned vmm_block_status(VmmBlock *bs, uint64_t offset, uint64_t len,
                          uint64_t *pnum, GError **error);

/* ---- asynchronous requests ---- */
typedef enum {
  VMM_BLOCK_OP_READ,
  VMM_BLOCK_OP_WRITE,
  VMM_BLOCK_OP_FLUSH,
  VMM_BLOCK_OP_DISCARD,
  VMM_BLOCK_OP_WRITE_ZEROES,
} VmmBlockOp;

/* error is owned by the block layer and freed after the callback returns. */
typedef void (*VmmBlockCompletion)(VmmBlock *bs, gboolean ok,
                                   const GError *error, gpointer user_data);

void vmm_block_set_completion_context(VmmBlock *bs, GMainContext *context);
/* buf must stay valid until the completion runs.  A read of a range that
 * reads as zeroes may complete at once: without a completion context its
 * callback may then run on the submitting thread before this returns, so
 * such a caller must not hold a lock its callback takes. */
void vmm_block_submit(VmmBlock *bs, VmmBlockOp op, uint64_t offset, void *buf,
                      uint64_t len, VmmBlockCompletion done, gpointer user_data);
/* The same for a read or write over one or several buffers (the array is
 * copied; the buffers must stay valid until the completion runs): straight
 * to the kernel where vmm_block_submit's buffer would go, else through a
 * bounce buffer on a worker thread, never on the caller's. */
struct iovec;
void vmm_block_submitv(VmmBlock *bs, VmmBlockOp op, uint64_t offset,
                       const struct iovec *iov, unsigned iovcnt,
                       VmmBlockCompletion done, gpointer user_data);
/* Waits for every submitted request to complete (callbacks that are posted to
 * a GMainContext may still be pending in that context). */
void vmm_block_drain(VmmBlock *bs);
/* Registers buffers that later requests will use (each at most 1 GiB, at
 * most 64), before the image's first request: the kernel pins their pages
 * once, instead of pinning and releasing them for every request.  Only the
 * caller's own buffers belong here (their memory stays locked until the
 * image is closed), so a tool that owns its buffers uses it, not a machine
 * for guest RAM.  Returns FALSE where it is not possible (no io_uring,
 * RLIMIT_MEMLOCK, requests already made); requests work the same either
 * way. */
gboolean vmm_block_register_buffers(VmmBlock *bs, const struct iovec *iov,
                                    unsigned n);
/* Waits until every submitted request has moved its data (its completion
 * may still be on its way): after it returns, no request writes into a
 * buffer given to vmm_block_submit().  Needs no GMainContext, so a device
 * model may call it from any thread but the block layer's own. */
void vmm_block_wait_transfers(VmmBlock *bs);

/* ---- image tool operations ---- */
typedef struct {
  const char *format;          /* "raw" or "qcow2" */
  uint64_t size;
  const char *backing_file;    /* NULL: none */
  const char *backing_format;  /* NULL: probe */
  uint32_t cluster_size;       /* 0: 65536 */
  int compat;                  /* 2 or 3; 0: 3 */
  int refcount_bits;           /* 0: 16 */
  gboolean lazy_refcounts;
} VmmBlockCreateOptions;

gboolean vmm_block_create(const char *path, const VmmBlockCreateOptions *opts,
                          GError **error);

typedef struct {
  int64_t corruptions;
  int64_t leaks;
  int64_t corruptions_fixed;
  int64_t leaks_fixed;
  int64_t check_errors;
  uint64_t image_end_offset;
  uint64_t allocated_clusters;
  uint64_t total_clusters;
  uint64_t fragmented_clusters;
  uint64_t compressed_clusters;
  GPtrArray *messages;         /* one line each; owned */
} VmmBlockCheckResult;

typedef enum {
  VMM_BLOCK_REPAIR_NONE   = 0,
  VMM_BLOCK_REPAIR_LEAKS  = 1,
  VMM_BLOCK_REPAIR_ALL    = 3,
} VmmBlockRepair;

/* Returns FALSE only if the check could not be completed. */
gboolean vmm_block_check(VmmBlock *bs, VmmBlockRepair repair,
                         VmmBlockCheckResult *result, GError **error);
void vmm_block_check_result_clear(VmmBlockCheckResult *result);

typedef struct {
  char *id;
  char *name;
  uint64_t vm_state_size;
  uint32_t date_sec;
  uint32_t date_nsec;
  uint64_t vm_clock_nsec;
  uint64_t icount;
  uint64_t disk_size;
} VmmBlockSnapshotInfo;

/* Returns an array of VmmBlockSnapshotInfo (free with g_array_unref). */
GArray *vmm_block_snapshot_list(VmmBlock *bs);
gboolean vmm_block_snapshot_create(VmmBlock *bs, const char *name,
                                   GError **error);
gboolean vmm_block_snapshot_apply(VmmBlock *bs, const char *name_or_id,
                                  GError **error);
gboolean vmm_block_snapshot_delete(VmmBlock *bs, const char *name_or_id,
                                   GError **error);

/* Key facts for `info`. Strings owned by the image. */
typedef struct {
  uint64_t virtual_size;
  uint32_t cluster_size;       /* 0 for raw */
  const char *backing_file;    /* as stored in the image */
  const char *backing_format;  /* as stored, or NULL */
  int compat;                  /* qcow2: 2 or 3 */
  int refcount_bits;
  gboolean lazy_refcounts;
  gboolean corrupt;
  gboolean dirty;
} VmmBlockInfo;
void vmm_block_get_info(VmmBlock *bs, VmmBlockInfo *info);

/* qcow2 only: writes one whole cluster (the last may be partial at the end
 * of the disk) deflate-compressed, or plainly if it does not shrink. */
gboolean vmm_block_write_compressed(VmmBlock *bs, uint64_t offset,
                                    const void *buf, size_t len,
                                    GError **error);

/* Rewrite the backing file reference only (rebase -u). */
gboolean vmm_block_set_backing(VmmBlock *bs, const char *backing_file,
                               const char *backing_format, GError **error);
/* Makes every cluster of this layer unallocated (after commit). */
gboolean vmm_block_make_empty(VmmBlock *bs, GError **error);

/* Parses sizes such as 512, 64K, 1.5G, 2T (binary multiples). */
gboolean vmm_block_parse_size(const char *text, uint64_t *out);

G_END_DECLS
