/* Classifying a new machine's source (see vessel-source.h). */
#include "wizards/vessel-source.h"

#include "vmm-core/block/block.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ISO_PVD_OFFSET (16 * 2048)

void
vessel_source_clear (VesselSource *source)
{
  g_clear_pointer (&source->format, g_free);
  memset (source, 0, sizeof *source);
}

char *
vessel_source_format_size (guint64 bytes)
{
  return g_format_size_full (bytes, G_FORMAT_SIZE_IEC_UNITS);
}

static gboolean
has_suffix_ci (const char *path, const char *const *suffixes)
{
  g_autofree char *lower = g_ascii_strdown (path, -1);
  for (; *suffixes; suffixes++)
    if (g_str_has_suffix (lower, *suffixes))
      return TRUE;
  return FALSE;
}

gboolean
vessel_source_probe (const char *path, VesselSource *out, GError **error)
{
  memset (out, 0, sizeof *out);
  int fd = g_open (path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0)
    {
      int err = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   _("“%s” cannot be read: %s"), path, g_strerror (err));
      return FALSE;
    }
  struct stat st;
  guint8 head[8] = { 0 }, pvd[6] = { 0 };
  gboolean ok = fstat (fd, &st) == 0;
  ssize_t nhead = ok ? pread (fd, head, sizeof head, 0) : -1;
  ssize_t npvd = ok ? pread (fd, pvd, sizeof pvd, ISO_PVD_OFFSET) : -1;
  int err = errno;
  close (fd);
  if (!ok || nhead < 0 || npvd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   _("“%s” cannot be read: %s"), path, g_strerror (err));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” is not a file"), path);
      return FALSE;
    }
  out->file_size = (guint64) st.st_size;

  if (npvd == (ssize_t) sizeof pvd && pvd[0] == 1
      && !memcmp (pvd + 1, "CD001", 5))
    {
      out->kind = VESSEL_SOURCE_ISO;
      return TRUE;
    }

  static const char *const raw_suffixes[] = { ".img", ".raw", ".bin", NULL };
  gboolean qcow2 = nhead >= 4 && !memcmp (head, "QFI\xfb", 4);
  if (!qcow2)
    {
      if (!has_suffix_ci (path, raw_suffixes))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” is neither a CD or DVD image (ISO) nor a "
                         "disk image (qcow2 or raw)"),
                       path);
          return FALSE;
        }
      if (st.st_size == 0 || st.st_size % 512)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” is not a whole number of 512-byte sectors: "
                         "the image is truncated or no disk image"),
                       path);
          return FALSE;
        }
    }

  g_autoptr (GError) local = NULL;
  VmmBlock *bs = vmm_block_open (path, qcow2 ? "qcow2" : "raw",
                                 VMM_BLOCK_OPEN_READ_ONLY, &local);
  if (!bs)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” cannot be used as a disk: %s"), path,
                   local->message);
      return FALSE;
    }
  VmmBlockInfo info;
  vmm_block_get_info (bs, &info);
  out->kind = VESSEL_SOURCE_DISK;
  out->format = g_strdup (vmm_block_format (bs));
  out->virtual_size = vmm_block_size (bs);
  gboolean bad = info.corrupt;
  /* A qcow2 image cut short: its metadata points past the end. */
  if (!bad && qcow2)
    {
      VmmBlockCheckResult check = { 0 };
      if (!vmm_block_check (bs, VMM_BLOCK_REPAIR_NONE, &check, &local))
        bad = TRUE;
      else
        bad = check.corruptions > 0 || check.check_errors > 0;
      vmm_block_check_result_clear (&check);
    }
  vmm_block_close (bs, NULL);
  if (bad)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   _("“%s” is damaged or truncated: check it with "
                     "“vessel-img check”"),
                   path);
      vessel_source_clear (out);
      return FALSE;
    }
  return TRUE;
}
