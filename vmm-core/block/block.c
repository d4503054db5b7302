/* vmm-core/block/block.c — open by filename with format probing, request
 * dispatch to the drivers, and the host-file helpers they share. */
#include "vmm-core/block/block-int.h"
#include "vmm-core/block/qcow2.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_QUARK(vmm-block-error-quark, vmm_block_error)

static const VmmBlockDriver *const drivers[] = {
  &vmm_block_qcow2_driver,
  &vmm_block_raw_driver,
};

static const VmmBlockDriver *find_driver(const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS(drivers); i++)
    if (g_str_equal(drivers[i]->name, name))
      return drivers[i];
  return NULL;
}

/* Formats we do not read but must not mistake for raw. */
static const char *foreign_format(const uint8_t *buf, size_t len)
{
  static const struct { const char *magic; size_t len; const char *name; } m[] = {
    { "QFI\xfb", 4, "qcow2" }, /* any version we do not support */
    { "KDMV", 4, "vmdk" },
    { "# Disk DescriptorFile", 21, "vmdk" },
    { "vhdxfile", 8, "vhdx" },
    { "QED\0", 4, "qed" },
    { "conectix", 8, "vpc" },
    { "<<< Oracle VM VirtualBox Disk Image >>>", 39, "vdi" },
    { "<<< innotek VirtualBox Disk Image >>>", 37, "vdi" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS(m); i++)
    if (len >= m[i].len && memcmp(buf, m[i].magic, m[i].len) == 0)
      return m[i].name;
  return NULL;
}

static const VmmBlockDriver *probe(const char *path, int fd, GError **error)
{
  uint8_t buf[512];
  ssize_t n = pread(fd, buf, sizeof buf, 0);
  if (n < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not read the image header: %s", path,
                g_strerror(errno));
    return NULL;
  }
  int best = 0;
  const VmmBlockDriver *drv = NULL;
  for (size_t i = 0; i < G_N_ELEMENTS(drivers); i++) {
    if (!drivers[i]->probe)
      continue;
    int score = drivers[i]->probe(buf, (size_t)n);
    if (score > best) {
      best = score;
      drv = drivers[i];
    }
  }
  if (drv)
    return drv;
  const char *foreign = foreign_format(buf, (size_t)n);
  if (foreign) {
    if (g_str_equal(foreign, "qcow2") && n >= 8) {
      uint32_t version = (uint32_t)buf[4] << 24 | buf[5] << 16 | buf[6] << 8 | buf[7];
      g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                  "%s: looks like a qcow image of version %u, which Vessel "
                  "does not support (pass -f raw to treat it as raw)",
                  path, version);
    } else {
      g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                  "%s: looks like a %s image, which Vessel does not support "
                  "(pass -f raw to treat it as raw)", path, foreign);
    }
    return NULL;
  }
  return &vmm_block_raw_driver;
}

VmmBlock *vmm_block_open_internal(const char *path, const char *format,
                                  unsigned flags, int depth, GError **error)
{
  if (depth > VMM_BLOCK_MAX_CHAIN_DEPTH) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_CORRUPT,
                "%s: backing chain is deeper than %d images (a loop?)", path,
                VMM_BLOCK_MAX_CHAIN_DEPTH);
    return NULL;
  }
  const VmmBlockDriver *drv = NULL;
  if (format && *format) {
    drv = find_driver(format);
    if (!drv) {
      g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                  "%s: unknown or unsupported format '%s' (Vessel supports "
                  "raw and qcow2)", path, format);
      return NULL;
    }
  }
  gboolean ro = (flags & VMM_BLOCK_OPEN_READ_ONLY) != 0;
  int oflags = (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  int fd = open(path, oflags);
  if (fd < 0) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                "%s: could not open: %s", path, g_strerror(errno));
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: is a directory, not a disk image", path);
    close(fd);
    return NULL;
  }
  if (!drv) {
    drv = probe(path, fd, error);
    if (!drv) {
      close(fd);
      return NULL;
    }
  }
  VmmBlock *bs = g_new0(VmmBlock, 1);
  bs->drv = drv;
  bs->filename = g_strdup(path);
  bs->fd = fd;
  bs->dfd = -1;
  if (flags & VMM_BLOCK_OPEN_DIRECT) {
    /* file systems without O_DIRECT (tmpfs) keep using the page cache */
    bs->dfd = open(path, oflags | O_DIRECT);
  }
  bs->read_only = ro;
  bs->flags = flags;
  bs->depth = depth;
  g_rec_mutex_init(&bs->lock);
  g_mutex_init(&bs->async_lock);
  g_cond_init(&bs->async_cond);
  if (!drv->open(bs, flags, error)) {
    close(fd);
    if (bs->dfd >= 0)
      close(bs->dfd);
    g_rec_mutex_clear(&bs->lock);
    g_mutex_clear(&bs->async_lock);
    g_cond_clear(&bs->async_cond);
    g_free(bs->filename);
    g_free(bs);
    return NULL;
  }
  return bs;
}

VmmBlock *vmm_block_open(const char *path, const char *format, unsigned flags,
                         GError **error)
{
  return vmm_block_open_internal(path, format, flags, 0, error);
}

VmmBlock *vmm_block_open_with_context(const char *path, const char *format,
                                      unsigned flags, GMainContext *context,
                                      GError **error)
{
  VmmBlock *bs = vmm_block_open_internal(path, format, flags, 0, error);
  if (bs)
    vmm_block_set_completion_context(bs, context);
  return bs;
}

gboolean vmm_block_close(VmmBlock *bs, GError **error)
{
  if (!bs)
    return TRUE;
  vmm_block_drain(bs);
  vmm_block_async_shutdown(bs);
  vmm_block_set_completion_context(bs, NULL);
  if (bs->pool)
    g_thread_pool_free(bs->pool, FALSE, TRUE);
  gboolean ok = TRUE;
  if (!bs->read_only)
    ok = vmm_block_flush(bs, error);
  bs->drv->close(bs);
  close(bs->fd);
  if (bs->dfd >= 0)
    close(bs->dfd);
  g_rec_mutex_clear(&bs->lock);
  g_mutex_clear(&bs->async_lock);
  g_cond_clear(&bs->async_cond);
  g_free(bs->filename);
  g_free(bs);
  return ok;
}

static gboolean check_range(VmmBlock *bs, uint64_t off, uint64_t len,
                            GError **error)
{
  if (off > bs->size || len > bs->size - off) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: request at offset %" G_GUINT64_FORMAT " length %"
                G_GUINT64_FORMAT " is past the end of the disk (%"
                G_GUINT64_FORMAT " bytes)", bs->filename, off, len, bs->size);
    return FALSE;
  }
  return TRUE;
}

static gboolean check_writable(VmmBlock *bs, GError **error)
{
  if (bs->read_only) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_READ_ONLY,
                "%s: image is open read-only", bs->filename);
    return FALSE;
  }
  return TRUE;
}

#define LOCK(bs) do { if (!(bs)->drv->parallel_io) g_rec_mutex_lock(&(bs)->lock); } while (0)
#define UNLOCK(bs) do { if (!(bs)->drv->parallel_io) g_rec_mutex_unlock(&(bs)->lock); } while (0)

gboolean vmm_block_read(VmmBlock *bs, uint64_t offset, void *buf, size_t len,
                        GError **error)
{
  if (!check_range(bs, offset, len, error))
    return FALSE;
  if (len == 0)
    return TRUE;
  LOCK(bs);
  gboolean ok = bs->drv->read(bs, offset, buf, len, error);
  UNLOCK(bs);
  return ok;
}

gboolean vmm_block_write(VmmBlock *bs, uint64_t offset, const void *buf,
                         size_t len, GError **error)
{
  if (!check_writable(bs, error) || !check_range(bs, offset, len, error))
    return FALSE;
  if (len == 0)
    return TRUE;
  __atomic_add_fetch(&bs->writes, 1, __ATOMIC_RELAXED);
  LOCK(bs);
  gboolean ok = bs->drv->write(bs, offset, buf, len, error);
  UNLOCK(bs);
  return ok;
}

gboolean vmm_block_flush(VmmBlock *bs, GError **error)
{
  if (bs->read_only)
    return TRUE;
  LOCK(bs);
  gboolean ok = bs->drv->flush(bs, error);
  UNLOCK(bs);
  return ok;
}

gboolean vmm_block_discard(VmmBlock *bs, uint64_t offset, uint64_t len,
                           GError **error)
{
  if (!check_writable(bs, error) || !check_range(bs, offset, len, error))
    return FALSE;
  if (len == 0)
    return TRUE;
  __atomic_add_fetch(&bs->writes, 1, __ATOMIC_RELAXED);
  LOCK(bs);
  gboolean ok = bs->drv->discard(bs, offset, len, error);
  UNLOCK(bs);
  return ok;
}

gboolean vmm_block_write_zeroes(VmmBlock *bs, uint64_t offset, uint64_t len,
                                GError **error)
{
  return vmm_block_discard(bs, offset, len, error);
}

uint64_t vmm_block_write_count(VmmBlock *bs)
{
  return __atomic_load_n(&bs->writes, __ATOMIC_RELAXED);
}

uint64_t vmm_block_size(VmmBlock *bs)
{
  return bs->size;
}

gboolean vmm_block_resize(VmmBlock *bs, uint64_t size, gboolean allow_shrink,
                          GError **error)
{
  if (!check_writable(bs, error))
    return FALSE;
  if (size < bs->size && !allow_shrink) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: shrinking would discard data past %" G_GUINT64_FORMAT
                " bytes; use --shrink to confirm", bs->filename, size);
    return FALSE;
  }
  if (size > VMM_BLOCK_MAX_VIRTUAL_SIZE) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: size %" G_GUINT64_FORMAT " is larger than the limit of %"
                G_GUINT64_FORMAT " bytes", bs->filename, size,
                (uint64_t)VMM_BLOCK_MAX_VIRTUAL_SIZE);
    return FALSE;
  }
  vmm_block_drain(bs);
  g_rec_mutex_lock(&bs->lock);
  gboolean ok = bs->drv->resize(bs, size, allow_shrink, error);
  g_rec_mutex_unlock(&bs->lock);
  return ok;
}

const char *vmm_block_format(VmmBlock *bs) { return bs->drv->name; }
const char *vmm_block_filename(VmmBlock *bs) { return bs->filename; }
gboolean vmm_block_is_read_only(VmmBlock *bs) { return bs->read_only; }

VmmBlock *vmm_block_backing(VmmBlock *bs)
{
  if (bs->drv == &vmm_block_qcow2_driver)
    return qcow2_backing(bs);
  return NULL;
}

unsigned vmm_block_status(VmmBlock *bs, uint64_t offset, uint64_t len,
                          uint64_t *pnum, GError **error)
{
  if (offset >= bs->size) {
    *pnum = 0;
    return 0;
  }
  if (len > bs->size - offset)
    len = bs->size - offset;
  LOCK(bs);
  unsigned st = bs->drv->status(bs, offset, len, pnum, error);
  UNLOCK(bs);
  return st;
}

gboolean vmm_block_create(const char *path, const VmmBlockCreateOptions *opts,
                          GError **error)
{
  const VmmBlockDriver *drv = find_driver(opts->format ? opts->format : "raw");
  if (!drv) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                "unknown or unsupported format '%s' (Vessel supports raw and "
                "qcow2)", opts->format);
    return FALSE;
  }
  if (opts->size > VMM_BLOCK_MAX_VIRTUAL_SIZE) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: size %" G_GUINT64_FORMAT " is larger than the limit of %"
                G_GUINT64_FORMAT " bytes", path, opts->size,
                (uint64_t)VMM_BLOCK_MAX_VIRTUAL_SIZE);
    return FALSE;
  }
  return drv->create(path, opts, error);
}

gboolean vmm_block_check(VmmBlock *bs, VmmBlockRepair repair,
                         VmmBlockCheckResult *result, GError **error)
{
  memset(result, 0, sizeof *result);
  result->messages = g_ptr_array_new_with_free_func(g_free);
  if (!bs->drv->check)
    return TRUE;
  if (repair && !check_writable(bs, error))
    return FALSE;
  g_rec_mutex_lock(&bs->lock);
  gboolean ok = bs->drv->check(bs, repair, result, error);
  g_rec_mutex_unlock(&bs->lock);
  return ok;
}

void vmm_block_check_result_clear(VmmBlockCheckResult *result)
{
  if (result->messages)
    g_ptr_array_unref(result->messages);
  result->messages = NULL;
}

gboolean vmm_block_check_result_add(VmmBlockCheckResult *res, const char *fmt,
                                    ...)
{
  va_list ap;
  va_start(ap, fmt);
  if (res->messages && res->messages->len < 1000)
    g_ptr_array_add(res->messages, g_strdup_vprintf(fmt, ap));
  va_end(ap);
  return TRUE;
}

void vmm_block_get_info(VmmBlock *bs, VmmBlockInfo *info)
{
  memset(info, 0, sizeof *info);
  info->virtual_size = bs->size;
  if (bs->drv->get_info)
    bs->drv->get_info(bs, info);
}

static gboolean need_qcow2(VmmBlock *bs, const char *what, GError **error)
{
  if (bs->drv != &vmm_block_qcow2_driver) {
    g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED,
                "%s: format '%s' does not support %s", bs->filename,
                bs->drv->name, what);
    return FALSE;
  }
  return TRUE;
}

GArray *vmm_block_snapshot_list(VmmBlock *bs)
{
  if (bs->drv != &vmm_block_qcow2_driver) {
    GArray *a = g_array_new(FALSE, TRUE, sizeof(VmmBlockSnapshotInfo));
    return a;
  }
  g_rec_mutex_lock(&bs->lock);
  GArray *a = qcow2_snapshot_list(bs);
  g_rec_mutex_unlock(&bs->lock);
  return a;
}

#define QCOW2_OP(what, call)                                                   \
  do {                                                                         \
    if (!need_qcow2(bs, what, error))                                          \
      return FALSE;                                                            \
    if (!check_writable(bs, error))                                            \
      return FALSE;                                                            \
    vmm_block_drain(bs);                                                       \
    g_rec_mutex_lock(&bs->lock);                                               \
    gboolean ok_ = call;                                                       \
    g_rec_mutex_unlock(&bs->lock);                                             \
    return ok_;                                                                \
  } while (0)

gboolean vmm_block_snapshot_create(VmmBlock *bs, const char *name,
                                   GError **error)
{
  QCOW2_OP("snapshots", qcow2_snapshot_create(bs, name, error));
}

gboolean vmm_block_snapshot_apply(VmmBlock *bs, const char *name,
                                  GError **error)
{
  QCOW2_OP("snapshots", qcow2_snapshot_apply(bs, name, error));
}

gboolean vmm_block_snapshot_delete(VmmBlock *bs, const char *name,
                                   GError **error)
{
  QCOW2_OP("snapshots", qcow2_snapshot_delete(bs, name, error));
}

gboolean vmm_block_set_backing(VmmBlock *bs, const char *backing_file,
                               const char *backing_format, GError **error)
{
  QCOW2_OP("backing files",
           qcow2_set_backing(bs, backing_file, backing_format, error));
}

gboolean vmm_block_write_compressed(VmmBlock *bs, uint64_t offset,
                                    const void *buf, size_t len,
                                    GError **error)
{
  if (!need_qcow2(bs, "compressed writes", error) ||
      !check_writable(bs, error) || !check_range(bs, offset, len, error))
    return FALSE;
  g_rec_mutex_lock(&bs->lock);
  gboolean ok = qcow2_write_compressed(bs, offset, buf, len, error);
  g_rec_mutex_unlock(&bs->lock);
  return ok;
}

gboolean vmm_block_make_empty(VmmBlock *bs, GError **error)
{
  QCOW2_OP("emptying", qcow2_make_empty(bs, error));
}

/* ---- host file helpers ---- */

static int pick_fd(VmmBlock *bs, uint64_t off, const void *buf, size_t len)
{
  if (bs->dfd >= 0 &&
      (((uintptr_t)buf | off | len) & (VMM_BLOCK_DIRECT_ALIGN - 1)) == 0)
    return bs->dfd;
  return bs->fd;
}

gboolean vmm_block_pread(VmmBlock *bs, uint64_t off, void *buf, size_t len,
                         GError **error)
{
  uint8_t *p = buf;
  int fd = pick_fd(bs, off, buf, len);
  while (len > 0) {
    ssize_t n = pread(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINVAL && fd != bs->fd) {
      fd = bs->fd; /* alignment the device refuses: buffered instead */
      continue;
    }
    if (n > 0 && fd != bs->fd && ((size_t)n & (VMM_BLOCK_DIRECT_ALIGN - 1)))
      fd = bs->fd; /* short read at the end of the file */
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                  "%s: read at offset %" G_GUINT64_FORMAT " failed: %s",
                  bs->filename, off, g_strerror(errno));
      return FALSE;
    }
    if (n == 0) {
      memset(p, 0, len);
      return TRUE;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return TRUE;
}

gboolean vmm_block_pwrite(VmmBlock *bs, uint64_t off, const void *buf,
                          size_t len, GError **error)
{
  const uint8_t *p = buf;
  int fd = pick_fd(bs, off, buf, len);
  while (len > 0) {
    ssize_t n = pwrite(fd, p, len, (off_t)off);
    if (n < 0 && errno == EINVAL && fd != bs->fd) {
      fd = bs->fd;
      continue;
    }
    if (n > 0 && fd != bs->fd && ((size_t)n & (VMM_BLOCK_DIRECT_ALIGN - 1)))
      fd = bs->fd;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      g_set_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_IO,
                  "%s: write at offset %" G_GUINT64_FORMAT " failed: %s",
                  bs->filename, off, g_strerror(errno));
      return FALSE;
    }
    p += n;
    off += (uint64_t)n;
    len -= (size_t)n;
  }
  return TRUE;
}

uint64_t vmm_block_file_size(VmmBlock *bs)
{
  struct stat st;
  if (fstat(bs->fd, &st) < 0)
    return 0;
  return (uint64_t)st.st_size;
}

gboolean vmm_block_parse_size(const char *text, uint64_t *out)
{
  if (!text || !*text)
    return FALSE;
  char *end = NULL;
  errno = 0;
  double v = g_ascii_strtod(text, &end);
  if (errno || end == text || v < 0)
    return FALSE;
  double mult = 1;
  if (*end) {
    switch (g_ascii_toupper(*end)) {
    case 'B': mult = 1; break;
    case 'K': mult = 1024.0; break;
    case 'M': mult = 1024.0 * 1024; break;
    case 'G': mult = 1024.0 * 1024 * 1024; break;
    case 'T': mult = 1024.0 * 1024 * 1024 * 1024; break;
    case 'P': mult = 1024.0 * 1024 * 1024 * 1024 * 1024; break;
    case 'E': mult = 1024.0 * 1024 * 1024 * 1024 * 1024 * 1024; break;
    default: return FALSE;
    }
    end++;
    if (*end == 'i' && end[1] == 'B')
      end += 2;
    else if (*end == 'B' && mult > 1)
      end++;
    if (*end)
      return FALSE;
  }
  double r = v * mult;
  if (r >= 18446744073709551615.0)
    return FALSE;
  uint64_t u = (uint64_t)r;
  if ((double)u != r)
    return FALSE; /* fractional bytes */
  *out = u;
  return TRUE;
}
