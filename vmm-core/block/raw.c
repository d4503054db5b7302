/* vmm-core/block/raw.c — raw images: the file is the disk. */
#include "vmm-core/block/block-int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static gboolean raw_open(VmmBlock *bs, unsigned flags, GError **error)
{
  struct stat st;
  if (fstat(bs->fd, &st) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO, "%s: %s",
                bs->filename, g_strerror(errno));
    return FALSE;
  }
  if (S_ISBLK(st.st_mode)) {
    off_t end = lseek(bs->fd, 0, SEEK_END);
    bs->size = end > 0 ? (uint64_t)end : 0;
  } else {
    bs->size = (uint64_t)st.st_size;
  }
  return TRUE;
}

static void raw_close(VmmBlock *bs) {}

static gboolean raw_read(VmmBlock *bs, uint64_t off, void *buf, size_t len,
                         GError **error)
{
  return vmm_block_pread(bs, off, buf, len, error);
}

static gboolean raw_write(VmmBlock *bs, uint64_t off, const void *buf,
                          size_t len, GError **error)
{
  return vmm_block_pwrite(bs, off, buf, len, error);
}

static gboolean raw_flush(VmmBlock *bs, GError **error)
{
  if (fdatasync(bs->fd) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: flush failed: %s", bs->filename, g_strerror(errno));
    return FALSE;
  }
  return TRUE;
}

static gboolean raw_discard(VmmBlock *bs, uint64_t off, uint64_t len,
                            GError **error)
{
  if (fallocate(bs->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                (off_t)len) == 0)
    return TRUE;
  if (fallocate(bs->fd, FALLOC_FL_ZERO_RANGE, (off_t)off, (off_t)len) == 0)
    return TRUE;
  /* Fallback: write zeroes. */
  size_t chunk = 1 << 20;
  g_autofree uint8_t *zero = g_malloc0(chunk);
  while (len > 0) {
    size_t n = len < chunk ? (size_t)len : chunk;
    if (!vmm_block_pwrite(bs, off, zero, n, error))
      return FALSE;
    off += n;
    len -= n;
  }
  return TRUE;
}

static gboolean raw_resize(VmmBlock *bs, uint64_t size, gboolean shrink,
                           GError **error)
{
  if (ftruncate(bs->fd, (off_t)size) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not resize: %s", bs->filename, g_strerror(errno));
    return FALSE;
  }
  bs->size = size;
  return TRUE;
}

static unsigned raw_status(VmmBlock *bs, uint64_t off, uint64_t len,
                           uint64_t *pnum, GError **error)
{
  off_t data = lseek(bs->fd, (off_t)off, SEEK_DATA);
  if (data < 0 && errno == ENXIO) {
    *pnum = len; /* hole up to the end */
    return VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_ZERO;
  }
  if (data < 0) {
    *pnum = len;
    return VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_DATA;
  }
  if ((uint64_t)data > off) {
    uint64_t n = (uint64_t)data - off;
    *pnum = n < len ? n : len;
    return VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_ZERO;
  }
  off_t hole = lseek(bs->fd, (off_t)off, SEEK_HOLE);
  uint64_t n = hole > (off_t)off ? (uint64_t)hole - off : len;
  *pnum = n < len ? n : len;
  return VMM_BLOCK_STATUS_ALLOCATED | VMM_BLOCK_STATUS_DATA;
}

static gboolean raw_create(const char *path, const VmmBlockCreateOptions *opts,
                           GError **error)
{
  if (opts->backing_file) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                "%s: format 'raw' does not support backing files", path);
    return FALSE;
  }
  int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not create: %s", path, g_strerror(errno));
    return FALSE;
  }
  if (ftruncate(fd, (off_t)opts->size) < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not set the size: %s", path, g_strerror(errno));
    close(fd);
    return FALSE;
  }
  close(fd);
  return TRUE;
}

const VmmBlockDriver vmm_block_raw_driver = {
  .name = "raw",
  .probe = NULL, /* raw is what remains when nothing else matches */
  .open = raw_open,
  .close = raw_close,
  .read = raw_read,
  .write = raw_write,
  .flush = raw_flush,
  .discard = raw_discard,
  .resize = raw_resize,
  .status = raw_status,
  .create = raw_create,
  .check = NULL,
  .get_info = NULL,
  .parallel_io = TRUE,
};
