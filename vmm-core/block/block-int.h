/* vmm-core/block/block-int.h — what drivers see; not for device models. */
#pragma once

#include "vmm-core/block/block.h"

/* Named limits. */
#define VMM_BLOCK_MAX_CHAIN_DEPTH 64          /* backing files below one image */
#define VMM_BLOCK_MAX_VIRTUAL_SIZE (UINT64_C(1) << 56) /* 64 PiB */

typedef struct VmmBlockDriver {
  const char *name;
  /* Score 0..100 that the first bytes of a file are this format. */
  int (*probe)(const uint8_t *buf, size_t len);
  gboolean (*open)(VmmBlock *bs, unsigned flags, GError **error);
  void (*close)(VmmBlock *bs);
  gboolean (*read)(VmmBlock *bs, uint64_t off, void *buf, size_t len,
                   GError **error);
  gboolean (*write)(VmmBlock *bs, uint64_t off, const void *buf, size_t len,
                    GError **error);
  gboolean (*flush)(VmmBlock *bs, GError **error);
  gboolean (*discard)(VmmBlock *bs, uint64_t off, uint64_t len, GError **error);
  gboolean (*resize)(VmmBlock *bs, uint64_t size, gboolean shrink,
                     GError **error);
  unsigned (*status)(VmmBlock *bs, uint64_t off, uint64_t len, uint64_t *pnum,
                     GError **error);
  gboolean (*create)(const char *path, const VmmBlockCreateOptions *opts,
                     GError **error);
  gboolean (*check)(VmmBlock *bs, VmmBlockRepair repair,
                    VmmBlockCheckResult *res, GError **error);
  void (*get_info)(VmmBlock *bs, VmmBlockInfo *info);
  gboolean parallel_io; /* requests may run concurrently without the lock */
} VmmBlockDriver;

struct VmmBlock {
  const VmmBlockDriver *drv;
  char *filename;
  int fd;
  int dfd;                 /* O_DIRECT descriptor for aligned I/O, or -1 */
  gboolean read_only;
  unsigned flags;
  uint64_t size;           /* virtual size */
  void *opaque;            /* driver state */
  GRecMutex lock;          /* serialises driver calls unless parallel_io */
  int depth;               /* position in a backing chain (0 = top) */
  uint64_t writes;         /* write requests accepted (atomic) */

  /* async */
  GThreadPool *pool;
  GMainContext *completion_ctx;
  GSource *done_source;  /* in completion_ctx: runs done_queue */
  GQueue done_queue;     /* finished requests for done_source (async_lock) */
  GMutex async_lock;
  GCond async_cond;
  unsigned in_flight;
  unsigned transferring; /* submitted, data not yet moved (async_lock) */
  struct VmmBlockUring *uring; /* io_uring data path (block-async.c), or NULL */
  gboolean uring_failed;       /* io_uring unavailable: worker pool only */
};

/* block-async.c: stops the io_uring data path (after a drain). */
void vmm_block_async_shutdown(VmmBlock *bs);

extern const VmmBlockDriver vmm_block_raw_driver;
extern const VmmBlockDriver vmm_block_qcow2_driver;

VmmBlock *vmm_block_open_internal(const char *path, const char *format,
                                  unsigned flags, int depth, GError **error);

/* Host file helpers: full-length pread/pwrite that set a GError naming the
 * file.  Reads past the end of the file return zeroes.  With
 * VMM_BLOCK_OPEN_DIRECT, requests whose buffer, offset and length are
 * 512-byte aligned bypass the page cache (a second, O_DIRECT descriptor);
 * others (metadata updates of a few bytes) go through the page cache, which
 * the kernel keeps coherent with direct I/O. */
#define VMM_BLOCK_DIRECT_ALIGN 512
gboolean vmm_block_pread(VmmBlock *bs, uint64_t off, void *buf, size_t len,
                         GError **error);
gboolean vmm_block_pwrite(VmmBlock *bs, uint64_t off, const void *buf,
                          size_t len, GError **error);
uint64_t vmm_block_file_size(VmmBlock *bs);
gboolean vmm_block_check_result_add(VmmBlockCheckResult *res,
                                    const char *fmt, ...) G_GNUC_PRINTF(2, 3);

static inline gboolean vmm_buf_is_zero(const void *buf, size_t len)
{
  const uint8_t *p = buf;
  while (len && ((uintptr_t)p & 7)) {
    if (*p)
      return FALSE;
    p++, len--;
  }
  const uint64_t *q = (const uint64_t *)p;
  for (; len >= 8; len -= 8, q++)
    if (*q)
      return FALSE;
  p = (const uint8_t *)q;
  while (len--)
    if (*p++)
      return FALSE;
  return TRUE;
}
