/* The machines library (see vessel-library.h). */
#include "app/vessel-library.h"

#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <string.h>

struct _VesselLibrary {
  GObject parent_instance;
  char *dir;
  GListStore *store;
  GPtrArray *pending; /* VesselMachine removed, not yet deleted */
};

G_DEFINE_FINAL_TYPE (VesselLibrary, vessel_library, G_TYPE_OBJECT)

static void
vessel_library_finalize (GObject *object)
{
  VesselLibrary *self = VESSEL_LIBRARY (object);
  g_free (self->dir);
  g_object_unref (self->store);
  g_ptr_array_unref (self->pending);
  G_OBJECT_CLASS (vessel_library_parent_class)->finalize (object);
}

static void
vessel_library_class_init (VesselLibraryClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = vessel_library_finalize;
}

static void
vessel_library_init (VesselLibrary *self)
{
  self->store = g_list_store_new (VESSEL_TYPE_MACHINE);
  self->pending = g_ptr_array_new_with_free_func (g_object_unref);
}

VesselLibrary *
vessel_library_new (const char *dir)
{
  VesselLibrary *self = g_object_new (VESSEL_TYPE_LIBRARY, NULL);
  self->dir = dir ? g_strdup (dir)
                  : g_build_filename (g_get_user_data_dir (), "vessel", NULL);
  return self;
}

const char *
vessel_library_get_dir (VesselLibrary *self)
{
  return self->dir;
}

static int
compare_titles (gconstpointer a, gconstpointer b, gpointer data)
{
  g_autofree char *ka = g_utf8_collate_key (
      vessel_machine_get_title ((VesselMachine *) a), -1);
  g_autofree char *kb = g_utf8_collate_key (
      vessel_machine_get_title ((VesselMachine *) b), -1);
  return strcmp (ka, kb);
}

static void
insert_sorted (VesselLibrary *self, VesselMachine *m)
{
  g_list_store_insert_sorted (self->store, m, compare_titles, NULL);
}

void
vessel_library_load (VesselLibrary *self, GPtrArray *errors)
{
  g_list_store_remove_all (self->store);
  g_autoptr (GDir) dir = g_dir_open (self->dir, 0, NULL);
  if (!dir)
    return; /* no machines yet */
  const char *name;
  while ((name = g_dir_read_name (dir)))
    {
      if (!g_str_has_suffix (name, ".xml") || name[0] == '.')
        continue;
      g_autofree char *path = g_build_filename (self->dir, name, NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (VesselMachine) m = vessel_machine_load (path, &error);
      if (!m)
        {
          if (errors)
            g_ptr_array_add (errors, g_strdup (error->message));
          continue;
        }
      if (vessel_library_find (self, vessel_machine_get_uuid (m)))
        {
          if (errors)
            g_ptr_array_add (errors,
                             g_strdup_printf (_("%s has the same UUID as "
                                                "another machine; skipped"),
                                              path));
          continue;
        }
      insert_sorted (self, m);
    }
}

GListModel *
vessel_library_get_model (VesselLibrary *self)
{
  return G_LIST_MODEL (self->store);
}

VesselMachine *
vessel_library_find (VesselLibrary *self, const char *uuid)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (VesselMachine) m
          = g_list_model_get_item (G_LIST_MODEL (self->store), i);
      if (uuid && !g_strcmp0 (vessel_machine_get_uuid (m), uuid))
        return m; /* the store keeps it alive */
    }
  return NULL;
}

guint
vessel_library_count_active (VesselLibrary *self)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store)), active = 0;
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (VesselMachine) m
          = g_list_model_get_item (G_LIST_MODEL (self->store), i);
      active += vessel_machine_is_active (m)
                || vessel_machine_get_state (m)
                       == VESSEL_MACHINE_STATE_STOPPING;
    }
  return active;
}

static gboolean
name_taken (VesselLibrary *self, const char *name)
{
  guint n = g_list_model_get_n_items (G_LIST_MODEL (self->store));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr (VesselMachine) m
          = g_list_model_get_item (G_LIST_MODEL (self->store), i);
      if (!g_strcmp0 (gvir_config_domain_get_name (
                          vessel_machine_get_domain (m)),
                      name))
        return TRUE;
    }
  return FALSE;
}

VesselMachine *
vessel_library_add (VesselLibrary *self, GVirConfigDomain *domain,
                    GError **error)
{
  if (g_mkdir_with_parents (self->dir, 0755) < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
                   _("Cannot create the machines folder %s: %s"), self->dir,
                   g_strerror (e));
      return NULL;
    }
  /* libvirt names are unique per host: make ours unique in the library. */
  const char *base = gvir_config_domain_get_name (domain);
  g_autofree char *name = g_strdup (base);
  for (int i = 2; name_taken (self, name); i++)
    {
      g_free (name);
      name = g_strdup_printf ("%s-%d", base, i);
    }
  gvir_config_domain_set_name (domain, name);
  g_autofree char *file = g_strdup_printf ("%s.xml",
                                           gvir_config_domain_get_uuid (domain));
  g_autofree char *path = g_build_filename (self->dir, file, NULL);
  g_autoptr (VesselMachine) m = vessel_machine_new (domain, path);
  if (!vessel_machine_save (m, error))
    return NULL;
  insert_sorted (self, m);
  return m;
}

VesselMachine *
vessel_library_import (VesselLibrary *self, const char *path, GError **error)
{
  g_autoptr (GVirConfigDomain) d = vessel_definition_load (path, error);
  if (!d)
    return NULL;
  if (vessel_library_find (self, gvir_config_domain_get_uuid (d)))
    {
      g_autofree char *uuid = g_uuid_string_random ();
      gvir_config_domain_set_uuid (d, uuid);
    }
  return vessel_library_add (self, d, error);
}

char *
vessel_library_disk_path (VesselLibrary *self, VesselMachine *machine,
                          const char *name)
{
  g_autofree char *file = g_strdup_printf ("%s-%s",
                                           vessel_machine_get_uuid (machine),
                                           name);
  return g_build_filename (self->dir, file, NULL);
}

char *
vessel_library_nvram_path (VesselLibrary *self, const char *uuid)
{
  g_autofree char *file = g_strdup_printf ("%s_VARS.fd", uuid);
  return g_build_filename (self->dir, file, NULL);
}

gboolean
vessel_library_remove (VesselLibrary *self, VesselMachine *machine,
                       GError **error)
{
  if (vessel_machine_is_active (machine)
      || vessel_machine_get_state (machine) == VESSEL_MACHINE_STATE_STOPPING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   _("“%s” is running: shut it down before deleting it"),
                   vessel_machine_get_title (machine));
      return FALSE;
    }
  guint pos;
  if (!g_list_store_find (self->store, machine, &pos))
    return TRUE;
  g_ptr_array_add (self->pending, g_object_ref (machine));
  g_list_store_remove (self->store, pos);
  return TRUE;
}

void
vessel_library_undo_remove (VesselLibrary *self, VesselMachine *machine)
{
  guint idx;
  if (!g_ptr_array_find (self->pending, machine, &idx))
    return;
  insert_sorted (self, machine);
  g_ptr_array_remove_index (self->pending, idx);
}

/* Only files inside the library directory, named after the machine (its
 * disks UUID-NAME, its variable store UUID_VARS.fd): a disk the user
 * brought along is theirs to keep. */
static gboolean
owned_by (VesselLibrary *self, VesselMachine *machine, const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  const char *uuid = vessel_machine_get_uuid (machine);
  g_autofree char *prefix = g_strdup_printf ("%s-", uuid);
  g_autofree char *nvram = g_strdup_printf ("%s_VARS.fd", uuid);
  return !strcmp (dir, self->dir)
         && (g_str_has_prefix (base, prefix) || !strcmp (base, nvram));
}

static void
delete_owned (VesselLibrary *self, VesselMachine *machine, const char *path)
{
  if (owned_by (self, machine, path) && g_unlink (path) < 0 && errno != ENOENT)
    g_warning ("cannot delete %s: %s", path, g_strerror (errno));
}

void
vessel_library_finish_remove (VesselLibrary *self, VesselMachine *machine)
{
  guint idx;
  if (!g_ptr_array_find (self->pending, machine, &idx))
    return;
  g_auto (GStrv) disks
      = vessel_definition_get_disks (vessel_machine_get_domain (machine));
  for (char **d = disks; *d; d++)
    delete_owned (self, machine, *d);
  g_autofree char *vars = NULL;
  vessel_definition_get_uefi (vessel_machine_get_domain (machine), NULL,
                              &vars);
  if (vars)
    delete_owned (self, machine, vars);
  if (g_unlink (vessel_machine_get_path (machine)) < 0 && errno != ENOENT)
    g_warning ("cannot delete %s: %s", vessel_machine_get_path (machine),
               g_strerror (errno));
  g_ptr_array_remove_index (self->pending, idx);
}

void
vessel_library_finish_all (VesselLibrary *self)
{
  while (self->pending->len)
    vessel_library_finish_remove (self, self->pending->pdata[0]);
}
