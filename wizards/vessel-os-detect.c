/* OS detection with libosinfo (see vessel-os-detect.h). */
#include "wizards/vessel-os-detect.h"

#include <gio/gio.h>
#include <glib/gi18n.h>
#include <osinfo/osinfo.h>

void
vessel_os_info_free (VesselOsInfo *info)
{
  if (!info)
    return;
  g_free (info->os_id);
  g_free (info->short_id);
  g_free (info->name);
  g_free (info->logo);
  g_free (info->volume_id);
  g_free (info);
}

VesselOsInfo *
vessel_os_info_new_default (void)
{
  VesselOsInfo *info = g_new0 (VesselOsInfo, 1);
  info->memory = VESSEL_OS_DEFAULT_MEMORY;
  info->cpus = VESSEL_OS_DEFAULT_CPUS;
  info->disk = VESSEL_OS_DEFAULT_DISK;
  return info;
}

/* The entry of @list for x86_64, else the one for all architectures. */
static OsinfoResources *
resources_for_x86_64 (OsinfoResourcesList *list)
{
  OsinfoResources *all = NULL;
  if (!list)
    return NULL;
  for (int i = 0; i < osinfo_list_get_length (OSINFO_LIST (list)); i++)
    {
      OsinfoResources *r = OSINFO_RESOURCES (
          osinfo_list_get_nth (OSINFO_LIST (list), i));
      const char *arch = osinfo_resources_get_architecture (r);
      if (!g_strcmp0 (arch, "x86_64"))
        return r;
      if (!g_strcmp0 (arch, "all") && !all)
        all = r;
    }
  return all;
}

/* Recommended values, else the minimum ones, else the defaults. */
static void
take_resources (VesselOsInfo *info, OsinfoOs *os)
{
  g_autoptr (OsinfoResourcesList) rec
      = osinfo_os_get_recommended_resources (os);
  g_autoptr (OsinfoResourcesList) min = osinfo_os_get_minimum_resources (os);
  OsinfoResources *lists[] = { resources_for_x86_64 (rec),
                               resources_for_x86_64 (min) };
  gboolean have_ram = FALSE, have_cpus = FALSE, have_disk = FALSE;
  for (size_t i = 0; i < G_N_ELEMENTS (lists); i++)
    {
      OsinfoResources *r = lists[i];
      if (!r)
        continue;
      gint64 ram = osinfo_resources_get_ram (r);
      gint n_cpus = osinfo_resources_get_n_cpus (r);
      gint64 storage = osinfo_resources_get_storage (r);
      if (!have_ram && ram > 0)
        {
          info->memory = (guint64) ram;
          have_ram = TRUE;
        }
      if (!have_cpus && n_cpus > 0 && i == 0)
        {
          /* A minimum of one processor is no recommendation: keep the
           * default unless osinfo-db recommends a number. */
          info->cpus = (guint) n_cpus;
          have_cpus = TRUE;
        }
      if (!have_disk && storage > 0)
        {
          info->disk = (guint64) storage;
          have_disk = TRUE;
        }
    }
}

VesselOsInfo *
vessel_os_detect (const char *path, GError **error)
{
  g_autoptr (GError) local = NULL;
  g_autofree char *uri = g_filename_to_uri (path, NULL, error);
  if (!uri)
    return NULL;
  /* Not only bootable media: a data ISO's volume ID is worth knowing too,
   * and the firmware will say soon enough when it cannot boot. */
  g_autoptr (OsinfoMedia) media
      = osinfo_media_create_from_location_with_flags (uri, NULL, 0, &local);
  if (!media)
    {
      if (g_error_matches (local, OSINFO_MEDIA_ERROR,
                           OSINFO_MEDIA_ERROR_NO_DESCRIPTORS)
          || g_error_matches (local, OSINFO_MEDIA_ERROR,
                              OSINFO_MEDIA_ERROR_NO_PVD))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       _("“%s” is not a CD or DVD image (ISO 9660)"), path);
          return NULL;
        }
      if (local->domain == OSINFO_MEDIA_ERROR)
        return vessel_os_info_new_default (); /* an ISO with little in it */
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   _("“%s” cannot be read: %s"), path, local->message);
      return NULL;
    }

  VesselOsInfo *info = vessel_os_info_new_default ();
  info->volume_id = g_strdup (osinfo_media_get_volume_id (media));

  g_autoptr (OsinfoLoader) loader = osinfo_loader_new ();
  osinfo_loader_process_default_path (loader, &local);
  if (local)
    {
      /* A broken or missing osinfo-db: detection is a nicety, the
       * defaults still make a machine. */
      g_debug ("osinfo-db: %s", local->message);
      g_clear_error (&local);
    }
  OsinfoDb *db = osinfo_loader_get_db (loader);
  if (!db || !osinfo_db_identify_media (db, media))
    return info;
  OsinfoOs *os = osinfo_media_get_os (media);
  if (!os)
    return info;
  info->recognised = TRUE;
  info->os_id = g_strdup (osinfo_entity_get_id (OSINFO_ENTITY (os)));
  info->short_id = g_strdup (osinfo_product_get_short_id (OSINFO_PRODUCT (os)));
  info->name = g_strdup (osinfo_product_get_name (OSINFO_PRODUCT (os)));
  info->logo = g_strdup (osinfo_product_get_logo (OSINFO_PRODUCT (os)));
  take_resources (info, os);
  g_object_unref (os);
  return info;
}
