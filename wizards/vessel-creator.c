/* Making a machine from the assistant's choices (see vessel-creator.h). */
#include "wizards/vessel-creator.h"

#include "vmm-core/block/block.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

#define COPY_CHUNK (1024 * 1024)

void
vessel_create_spec_clear (VesselCreateSpec *spec)
{
  g_free (spec->title);
  g_free (spec->iso);
  g_free (spec->disk_image);
  g_free (spec->disk_format);
  g_free (spec->os_name);
  g_free (spec->os_id);
  g_free (spec->uefi_firmware);
  g_free (spec->uefi_vars_template);
  memset (spec, 0, sizeof *spec);
}

static void
spec_copy (VesselCreateSpec *dst, const VesselCreateSpec *src)
{
  *dst = *src;
  dst->title = g_strdup (src->title);
  dst->iso = g_strdup (src->iso);
  dst->disk_image = g_strdup (src->disk_image);
  dst->disk_format = g_strdup (src->disk_format);
  dst->os_name = g_strdup (src->os_name);
  dst->os_id = g_strdup (src->os_id);
  dst->uefi_firmware = g_strdup (src->uefi_firmware);
  dst->uefi_vars_template = g_strdup (src->uefi_vars_template);
}

gboolean
vessel_creator_title_taken (VesselLibrary *library, const char *title)
{
  GListModel *model = vessel_library_get_model (library);
  g_autofree char *want = g_utf8_casefold (title, -1);
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      g_autofree char *have = g_utf8_casefold (vessel_machine_get_title (m),
                                               -1);
      if (!g_strcmp0 (want, have))
        return TRUE;
    }
  return FALSE;
}

static gboolean
all_zero (const guint8 *p, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (p[i])
      return FALSE;
  return TRUE;
}

/* A qcow2 copy of @spec->disk_image: zero runs stay unallocated. */
static gboolean
copy_image (const VesselCreateSpec *spec, const char *path,
            GCancellable *cancellable, GError **error)
{
  VmmBlock *src = vmm_block_open (spec->disk_image, spec->disk_format,
                                  VMM_BLOCK_OPEN_READ_ONLY, error);
  if (!src)
    return FALSE;
  guint64 size = vmm_block_size (src);
  VmmBlockCreateOptions opts = { .format = "qcow2", .size = size };
  VmmBlock *dst = NULL;
  gboolean ok = vmm_block_create (path, &opts, error)
                && (dst = vmm_block_open (path, "qcow2", 0, error));
  g_autofree guint8 *buf = g_malloc (COPY_CHUNK);
  for (guint64 off = 0; ok && off < size; off += COPY_CHUNK)
    {
      gsize n = (gsize) MIN ((guint64) COPY_CHUNK, size - off);
      if (g_cancellable_set_error_if_cancelled (cancellable, error))
        ok = FALSE;
      else if (!vmm_block_read (src, off, buf, n, error))
        ok = FALSE;
      else if (!all_zero (buf, n) && !vmm_block_write (dst, off, buf, n, error))
        ok = FALSE;
    }
  if (dst && !vmm_block_close (dst, ok ? error : NULL))
    ok = FALSE;
  vmm_block_close (src, NULL);
  return ok;
}

gboolean
vessel_creator_make_disk (const VesselCreateSpec *spec, const char *path,
                          GCancellable *cancellable, GError **error)
{
  gboolean ok;
  if (spec->disk_image && spec->copy)
    ok = copy_image (spec, path, cancellable, error);
  else if (spec->disk_image)
    {
      /* The overlay names its backing file by absolute path: the machine
       * keeps working wherever the library is. */
      g_autofree char *backing = g_canonicalize_filename (spec->disk_image,
                                                          NULL);
      VmmBlockCreateOptions opts = { .format = "qcow2",
                                     .size = spec->disk_image_size,
                                     .backing_file = backing,
                                     .backing_format = spec->disk_format };
      ok = vmm_block_create (path, &opts, error);
    }
  else
    {
      VmmBlockCreateOptions opts = { .format = "qcow2",
                                     .size = spec->disk_size };
      ok = vmm_block_create (path, &opts, error);
    }
  if (!ok)
    {
      g_prefix_error (error, _("The disk cannot be made: "));
      g_unlink (path);
    }
  return ok;
}

typedef struct {
  VesselCreateSpec spec;
  VesselMachine *machine;
  char *disk;  /* NULL: no disk to make */
  char *nvram; /* NULL: no variable store to copy (BIOS) */
} CreateData;

static void
create_data_free (gpointer p)
{
  CreateData *d = p;
  vessel_create_spec_clear (&d->spec);
  g_clear_object (&d->machine);
  g_free (d->disk);
  g_free (d->nvram);
  g_free (d);
}

static void
disk_thread (GTask *task, gpointer source, gpointer data,
             GCancellable *cancellable)
{
  CreateData *d = data;
  GError *error = NULL;
  if (d->nvram)
    {
      /* The machine's own copy of OVMF's variable store template, as
       * libvirt makes one: writable whatever the template's mode. */
      g_autoptr (GFile) from = g_file_new_for_path (d->spec.uefi_vars_template);
      g_autoptr (GFile) to = g_file_new_for_path (d->nvram);
      if (!g_file_copy (from, to, G_FILE_COPY_TARGET_DEFAULT_PERMS,
                        cancellable, NULL, NULL, &error))
        {
          g_prefix_error (&error, _("The UEFI variable store cannot be "
                                    "made: "));
          g_task_return_error (task, error);
          return;
        }
    }
  if (!d->disk || vessel_creator_make_disk (&d->spec, d->disk, cancellable,
                                            &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

/* Takes the machine back out of the library, definition and all. */
static void
undo_add (VesselLibrary *library, VesselMachine *m)
{
  vessel_library_remove (library, m, NULL);
  vessel_library_finish_remove (library, m);
}

static void
disk_done (GObject *source, GAsyncResult *res, gpointer user_data)
{
  GTask *outer = user_data;
  VesselLibrary *library = VESSEL_LIBRARY (source);
  CreateData *d = g_task_get_task_data (outer);
  GError *error = NULL;
  if (!g_task_propagate_boolean (G_TASK (res), &error))
    {
      undo_add (library, d->machine);
      g_task_return_error (outer, error);
      g_object_unref (outer);
      return;
    }
  if (!d->disk)
    {
      g_task_return_pointer (outer, g_object_ref (d->machine), g_object_unref);
      g_object_unref (outer);
      return;
    }
  GVirConfigDomain *domain = vessel_machine_get_domain (d->machine);
  vessel_definition_add_disk (domain, d->disk, "qcow2", TRUE);
  if (!vessel_machine_save (d->machine, &error))
    {
      g_unlink (d->disk);
      undo_add (library, d->machine);
      g_task_return_error (outer, error);
      g_object_unref (outer);
      return;
    }
  vessel_machine_definition_changed (d->machine);
  g_task_return_pointer (outer, g_object_ref (d->machine), g_object_unref);
  g_object_unref (outer);
}

void
vessel_creator_create_async (VesselLibrary *library,
                             const VesselCreateSpec *spec,
                             GCancellable *cancellable,
                             GAsyncReadyCallback callback, gpointer user_data)
{
  GTask *task = g_task_new (library, cancellable, callback, user_data);
  CreateData *d = g_new0 (CreateData, 1);
  spec_copy (&d->spec, spec);
  g_task_set_task_data (task, d, create_data_free);

  const char *title = spec->title && *spec->title ? spec->title
                                                  : _("New Machine");
  if (vessel_creator_title_taken (library, title))
    {
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_EXISTS,
                               _("A machine called “%s” exists already: "
                                 "choose another name"),
                               title);
      g_object_unref (task);
      return;
    }
  g_autofree char *name = vessel_definition_make_name (title);
  g_autoptr (GVirConfigDomain) domain
      = vessel_definition_new (name, title, spec->memory, spec->cpus);
  if (spec->iso)
    {
      g_autofree char *iso = g_canonicalize_filename (spec->iso, NULL);
      vessel_definition_set_cdrom (domain, iso);
      vessel_definition_set_boot_cdrom_first (domain, TRUE);
      vessel_definition_set_meta (domain, "installing", "yes");
    }
  else
    vessel_definition_set_boot_cdrom_first (domain, FALSE);
  vessel_definition_set_meta (domain, "os", spec->os_name);
  vessel_definition_set_meta (domain, "os-id", spec->os_id);
  if (spec->uefi_firmware && spec->uefi_vars_template)
    {
      d->nvram = vessel_library_nvram_path (library,
                                            gvir_config_domain_get_uuid (domain));
      vessel_definition_set_uefi (domain, spec->uefi_firmware, d->nvram);
    }

  GError *error = NULL;
  VesselMachine *m = vessel_library_add (library, domain, &error);
  if (!m)
    {
      g_task_return_error (task, error);
      g_object_unref (task);
      return;
    }
  d->machine = g_object_ref (m);
  vessel_machine_definition_changed (m);
  if (!spec->disk_image && !spec->disk_size && !d->nvram)
    {
      g_task_return_pointer (task, g_object_ref (m), g_object_unref);
      g_object_unref (task);
      return;
    }
  if (spec->disk_image || spec->disk_size)
    d->disk = vessel_library_disk_path (library, m, "disk.qcow2");
  GTask *inner = g_task_new (library, cancellable, disk_done, task);
  g_task_set_task_data (inner, d, NULL);
  g_task_run_in_thread (inner, disk_thread);
  g_object_unref (inner);
}

VesselMachine *
vessel_creator_create_finish (VesselLibrary *library, GAsyncResult *result,
                              GError **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}
