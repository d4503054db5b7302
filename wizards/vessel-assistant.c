/* The new-machine assistant (see vessel-assistant.h). */
#include "wizards/vessel-assistant.h"

#include "wizards/vessel-creator.h"
#include "wizards/vessel-os-detect.h"
#include "wizards/vessel-source.h"

#include <glib/gi18n.h>
#include <stdio.h>
#include <string.h>

#define MIB (G_GUINT64_CONSTANT (1) << 20)
#define GIB (G_GUINT64_CONSTANT (1) << 30)
#define DOWNLOADS_MAX 8

/* UEFI is offered where OVMF's split images are installed
 * (vmm_machine_find_ovmf): the engine boots OVMF_CODE_4M.fd with the
 * machine's own copy of OVMF_VARS_4M.fd as a flash. BIOS stays the
 * default. */

struct _VesselAssistant {
  AdwWindow parent_instance;

  GtkButton *back_button;
  GtkButton *next_button;
  GtkSpinner *spinner;
  AdwWindowTitle *title_widget;
  GtkStack *stack;
  GtkLabel *source_message;
  AdwPreferencesGroup *downloads_group;
  GtkListBox *downloads_list;
  AdwActionRow *os_row;
  GtkImage *os_logo;
  AdwEntryRow *name_row;
  GtkSpinButton *memory_spin;
  GtkSpinButton *cpus_spin;
  AdwActionRow *disk_row;
  GtkSpinButton *disk_spin;
  AdwComboRow *firmware_row;
  GtkLabel *resources_message;
  AdwActionRow *image_row;
  GtkCheckButton *keep_check;
  GtkCheckButton *copy_check;
  GtkLabel *disk_message;
  AdwPreferencesGroup *review_group;
  GtkLabel *review_message;

  VesselLibrary *library;
  GtkFileChooserNative *chooser;
  GCancellable *cancellable;
  gboolean busy;
  gboolean chosen;    /* a source (or blank) was chosen */
  char *path;         /* the chosen file, NULL: blank */
  VesselSource source;
  VesselOsInfo *os;
  char *ovmf;         /* OVMF's code image, or NULL: no UEFI offered */
  char *ovmf_vars;    /* OVMF's variable store template */
  guint64 ram_available; /* bytes, 0: unknown */
  guint64 disk_free;     /* bytes in the library's file system, 0: unknown */
  GPtrArray *review_rows;
};

G_DEFINE_FINAL_TYPE (VesselAssistant, vessel_assistant, ADW_TYPE_WINDOW)

enum { SIGNAL_CREATED, N_SIGNALS };
static guint signals[N_SIGNALS];

/* ---- the host ------------------------------------------------------ */

/* MemAvailable from /proc/meminfo, in bytes (0: unknown). */
static guint64
host_ram_available (void)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/meminfo", &text, NULL, NULL))
    return 0;
  const char *p = strstr (text, "MemAvailable:");
  unsigned long long kib;
  if (!p || sscanf (p, "MemAvailable: %llu kB", &kib) != 1)
    return 0;
  return (guint64) kib * 1024;
}

/* Free space where the library keeps disks (its nearest existing
 * folder). */
static guint64
host_disk_free (VesselLibrary *library)
{
  g_autoptr (GFile) f = g_file_new_for_path (vessel_library_get_dir (library));
  while (f && !g_file_query_exists (f, NULL))
    {
      GFile *parent = g_file_get_parent (f);
      g_object_unref (f);
      f = parent;
    }
  if (!f)
    return 0;
  g_autoptr (GFileInfo) info = g_file_query_filesystem_info (
      f, G_FILE_ATTRIBUTE_FILESYSTEM_FREE, NULL, NULL);
  return info ? g_file_info_get_attribute_uint64 (
                    info, G_FILE_ATTRIBUTE_FILESYSTEM_FREE)
              : 0;
}

/* ---- messages and the buttons -------------------------------------- */

static GtkLabel *
page_message_label (VesselAssistant *self, const char *page)
{
  if (!g_strcmp0 (page, "source"))
    return self->source_message;
  if (!g_strcmp0 (page, "resources"))
    return self->resources_message;
  if (!g_strcmp0 (page, "disk"))
    return self->disk_message;
  return self->review_message;
}

static void
show_message (GtkLabel *label, const char *text, gboolean error)
{
  gtk_label_set_text (label, text ? text : "");
  gtk_widget_set_visible (GTK_WIDGET (label), text && *text);
  if (error)
    {
      gtk_widget_remove_css_class (GTK_WIDGET (label), "warning");
      gtk_widget_add_css_class (GTK_WIDGET (label), "error");
    }
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (label), "error");
      gtk_widget_add_css_class (GTK_WIDGET (label), "warning");
    }
}

const char *
vessel_assistant_get_page (VesselAssistant *self)
{
  return gtk_stack_get_visible_child_name (self->stack);
}

gboolean
vessel_assistant_is_busy (VesselAssistant *self)
{
  return self->busy;
}

const char *
vessel_assistant_get_message (VesselAssistant *self)
{
  GtkLabel *l = page_message_label (self, vessel_assistant_get_page (self));
  return gtk_widget_get_visible (GTK_WIDGET (l)) ? gtk_label_get_text (l)
                                                 : NULL;
}

const char *
vessel_assistant_get_os_name (VesselAssistant *self)
{
  return self->os && self->os->recognised ? self->os->name : NULL;
}

gboolean
vessel_assistant_offers_uefi (VesselAssistant *self)
{
  return self->ovmf != NULL;
}

static gboolean is_disk_image (VesselAssistant *self);

static guint64
chosen_memory (VesselAssistant *self)
{
  return (guint64) gtk_spin_button_get_value_as_int (self->memory_spin) * MIB;
}

static guint64
chosen_disk (VesselAssistant *self)
{
  return (guint64) gtk_spin_button_get_value_as_int (self->disk_spin) * GIB;
}

static const char *
chosen_title (VesselAssistant *self)
{
  return gtk_editable_get_text (GTK_EDITABLE (self->name_row));
}

/* What stops the resources page, or NULL; *warning: what the user should
 * know but may go on with. */
static char *
resources_problem (VesselAssistant *self, char **warning)
{
  *warning = NULL;
  const char *title = chosen_title (self);
  g_autofree char *trimmed = g_strstrip (g_strdup (title));
  if (!*trimmed)
    return g_strdup (_("Give the machine a name"));
  if (vessel_creator_title_taken (self->library, trimmed))
    return g_strdup_printf (_("A machine called “%s” exists already: choose "
                              "another name"),
                            trimmed);
  /* A new qcow2 disk grows as the guest writes: its full size is what it
   * may need. A copy needs about what the image holds (zeroes are not
   * copied; the file's size is the estimate). An overlay needs little. */
  gboolean copy = is_disk_image (self)
                  && gtk_check_button_get_active (self->copy_check);
  guint64 need = copy ? self->source.file_size : 0;
  if (!is_disk_image (self) && self->disk_free
      && chosen_disk (self) > self->disk_free)
    {
      g_autofree char *free_text = vessel_source_format_size (self->disk_free);
      return g_strdup_printf (_("The disk is larger than the free space on "
                                "this computer (%s): make it smaller or free "
                                "some space"),
                              free_text);
    }
  if (need && self->disk_free && need > self->disk_free)
    {
      g_autofree char *free_text = vessel_source_format_size (self->disk_free);
      return g_strdup_printf (_("A copy of the image does not fit in the free "
                                "space on this computer (%s): keep the "
                                "original instead, or free some space"),
                              free_text);
    }
  GString *w = g_string_new (NULL);
  if (self->ram_available && chosen_memory (self) > self->ram_available)
    {
      g_autofree char *avail = vessel_source_format_size (self->ram_available);
      g_string_append_printf (w, _("This computer has %s of memory free: the "
                                   "machine may not start, or slow "
                                   "everything down."),
                              avail);
    }
  else if (self->ram_available
           && chosen_memory (self) > self->ram_available / 4 * 3)
    g_string_append (w, _("That leaves little memory for this computer."));
  guint cpus = (guint) gtk_spin_button_get_value_as_int (self->cpus_spin);
  if (cpus > g_get_num_processors ())
    {
      if (w->len)
        g_string_append_c (w, ' ');
      g_string_append_printf (w, _("This computer has %u processors."),
                              g_get_num_processors ());
    }
  if (!is_disk_image (self) && self->disk_free
      && chosen_disk (self) > self->disk_free / 4 * 3)
    {
      if (w->len)
        g_string_append_c (w, ' ');
      g_string_append (w, _("The disk may fill most of the free space as the "
                            "machine writes to it."));
    }
  *warning = g_string_free (w, !w->len);
  return NULL;
}

static void
update_buttons (VesselAssistant *self)
{
  const char *page = vessel_assistant_get_page (self);
  gboolean first = !g_strcmp0 (page, "source");
  gtk_button_set_label (self->back_button, first ? _("_Cancel") : _("_Back"));
  gtk_button_set_label (self->next_button, !g_strcmp0 (page, "review")
                                               ? _("C_reate")
                                               : _("_Next"));
  gtk_widget_set_visible (GTK_WIDGET (self->next_button), !first);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "assistant.next",
                                 vessel_assistant_can_go_next (self));
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "assistant.back",
                                 !self->busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "assistant.choose-file",
                                 !self->busy);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "assistant.blank",
                                 !self->busy);
  gtk_spinner_set_spinning (self->spinner, self->busy);
}

gboolean
vessel_assistant_can_go_next (VesselAssistant *self)
{
  if (self->busy)
    return FALSE;
  const char *page = vessel_assistant_get_page (self);
  if (!g_strcmp0 (page, "source"))
    return FALSE; /* choosing a source goes on by itself */
  if (!g_strcmp0 (page, "resources"))
    {
      g_autofree char *warning = NULL;
      g_autofree char *problem = resources_problem (self, &warning);
      return problem == NULL;
    }
  return TRUE;
}

static void
check_resources (VesselAssistant *self)
{
  g_autofree char *warning = NULL;
  g_autofree char *problem = resources_problem (self, &warning);
  if (problem)
    show_message (self->resources_message, problem, TRUE);
  else
    show_message (self->resources_message, warning, FALSE);
  update_buttons (self);
}

static void
on_resources_changed (VesselAssistant *self)
{
  if (!g_strcmp0 (vessel_assistant_get_page (self), "resources"))
    check_resources (self);
}

static void
show_page (VesselAssistant *self, const char *page)
{
  gtk_stack_set_visible_child_name (self->stack, page);
  if (!g_strcmp0 (page, "resources"))
    check_resources (self);
  update_buttons (self);
}

static gboolean
is_disk_image (VesselAssistant *self)
{
  return self->path && self->source.kind == VESSEL_SOURCE_DISK;
}

/* ---- the source ---------------------------------------------------- */

typedef struct {
  VesselSource source;
  VesselOsInfo *os;
} ProbeResult;

static void
probe_result_free (gpointer p)
{
  ProbeResult *r = p;
  vessel_source_clear (&r->source);
  vessel_os_info_free (r->os);
  g_free (r);
}

static void
probe_thread (GTask *task, gpointer source, gpointer data,
              GCancellable *cancellable)
{
  const char *path = data;
  ProbeResult *r = g_new0 (ProbeResult, 1);
  GError *error = NULL;
  if (!vessel_source_probe (path, &r->source, &error))
    {
      probe_result_free (r);
      g_task_return_error (task, error);
      return;
    }
  if (r->source.kind == VESSEL_SOURCE_ISO)
    r->os = vessel_os_detect (path, &error);
  else
    r->os = vessel_os_info_new_default ();
  if (!r->os)
    {
      probe_result_free (r);
      g_task_return_error (task, error);
      return;
    }
  g_task_return_pointer (task, r, probe_result_free);
}

static void
set_busy (VesselAssistant *self, gboolean busy)
{
  self->busy = busy;
  update_buttons (self);
}

static char *
title_from_path (const char *path)
{
  g_autofree char *base = g_path_get_basename (path);
  char *dot = strrchr (base, '.');
  if (dot && dot != base)
    *dot = '\0';
  return g_strdup (base);
}

/* The resources page from what the source is. */
static void
fill_resources (VesselAssistant *self)
{
  const VesselOsInfo *os = self->os;
  if (!self->path)
    {
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->os_row),
                                     _("Blank Machine"));
      adw_action_row_set_subtitle (self->os_row,
                                   _("An empty disk: attach an installer "
                                     "from the properties later"));
    }
  else if (self->source.kind == VESSEL_SOURCE_DISK)
    {
      g_autofree char *base = g_path_get_basename (self->path);
      g_autofree char *vsize
          = vessel_source_format_size (self->source.virtual_size);
      g_autofree char *sub = g_strdup_printf (
          _("A %s disk image of %s: the machine boots from it"),
          self->source.format, vsize);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->os_row), base);
      adw_action_row_set_subtitle (self->os_row, sub);
    }
  else if (os->recognised)
    {
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->os_row),
                                     os->name);
      adw_action_row_set_subtitle (self->os_row,
                                   _("Recognised from the image: its "
                                     "recommended resources are set"));
    }
  else
    {
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->os_row),
                                     _("Unknown Operating System"));
      adw_action_row_set_subtitle (self->os_row,
                                   _("The operating system on this image was "
                                     "not recognised: safe defaults are set"));
    }
  /* A logo when osinfo-db names a local file; else a generic icon. */
  g_autofree char *logo = NULL;
  if (os->logo)
    logo = g_str_has_prefix (os->logo, "file://")
               ? g_filename_from_uri (os->logo, NULL, NULL)
               : NULL;
  if (logo && g_file_test (logo, G_FILE_TEST_IS_REGULAR))
    gtk_image_set_from_file (self->os_logo, logo);
  else
    gtk_image_set_from_icon_name (self->os_logo,
                                  !self->path ? "computer-symbolic"
                                  : self->source.kind == VESSEL_SOURCE_DISK
                                      ? "drive-harddisk-symbolic"
                                      : "media-optical-symbolic");

  g_autofree char *title = os->recognised && os->name
                               ? g_strdup (os->name)
                           : self->path ? title_from_path (self->path)
                                        : g_strdup (_("New Machine"));
  /* A free name: "Debian 11", then "Debian 11 (2)". */
  g_autofree char *free_title = g_strdup (title);
  for (int i = 2; vessel_creator_title_taken (self->library, free_title);
       i++)
    {
      g_free (free_title);
      free_title = g_strdup_printf ("%s (%d)", title, i);
    }
  gtk_editable_set_text (GTK_EDITABLE (self->name_row), free_title);

  /* Memory bounded by what the host has; the spin stops there. */
  guint64 mem = os->memory;
  if (self->ram_available)
    {
      gtk_spin_button_set_range (self->memory_spin, 64,
                                 (double) MAX (self->ram_available / MIB,
                                               256));
      mem = MIN (mem, MAX (self->ram_available / 2, 256 * MIB));
    }
  gtk_spin_button_set_value (self->memory_spin, (double) (mem / MIB));
  gtk_spin_button_set_range (self->cpus_spin, 1,
                             (double) g_get_num_processors ());
  gtk_spin_button_set_value (self->cpus_spin,
                             MIN (os->cpus, g_get_num_processors ()));
  gtk_spin_button_set_value (self->disk_spin,
                             (double) MAX (os->disk / GIB, 1));
  gtk_widget_set_visible (GTK_WIDGET (self->disk_row), !is_disk_image (self));

  if (is_disk_image (self))
    {
      g_autofree char *base = g_path_get_basename (self->path);
      g_autofree char *vsize
          = vessel_source_format_size (self->source.virtual_size);
      g_autofree char *fsize
          = vessel_source_format_size (self->source.file_size);
      g_autofree char *sub = g_strdup_printf (
          _("Format %s, virtual size %s (%s on disk)"), self->source.format,
          vsize, fsize);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (self->image_row),
                                     base);
      adw_action_row_set_subtitle (self->image_row, sub);
    }
}

static void
probe_done (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (GError) error = NULL;
  ProbeResult *r = g_task_propagate_pointer (G_TASK (res), &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return; /* the assistant is gone */
  VesselAssistant *self = data;
  set_busy (self, FALSE);
  if (!r)
    {
      show_message (self->source_message, error->message, TRUE);
      g_clear_pointer (&self->path, g_free);
      return;
    }
  vessel_source_clear (&self->source);
  self->source = r->source;
  memset (&r->source, 0, sizeof r->source);
  vessel_os_info_free (self->os);
  self->os = g_steal_pointer (&r->os);
  probe_result_free (r);
  self->chosen = TRUE;
  fill_resources (self);
  show_page (self, "resources");
}

void
vessel_assistant_choose (VesselAssistant *self, const char *path)
{
  if (self->busy)
    return;
  show_message (self->source_message, NULL, TRUE);
  g_clear_pointer (&self->path, g_free);
  vessel_source_clear (&self->source);
  g_clear_pointer (&self->os, vessel_os_info_free);
  if (!path)
    {
      self->os = vessel_os_info_new_default ();
      self->chosen = TRUE;
      fill_resources (self);
      show_page (self, "resources");
      return;
    }
  self->path = g_canonicalize_filename (path, NULL);
  set_busy (self, TRUE);
  GTask *task = g_task_new (NULL, self->cancellable, probe_done, self);
  g_task_set_task_data (task, g_strdup (self->path), g_free);
  g_task_run_in_thread (task, probe_thread);
  g_object_unref (task);
}

static void
on_file_chosen (GtkNativeDialog *dialog, int response, gpointer data)
{
  VesselAssistant *self = data;
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) f
          = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = f ? g_file_get_path (f) : NULL;
      if (path)
        vessel_assistant_choose (self, path);
    }
  g_clear_object (&self->chooser);
}

static void
action_choose_file (GtkWidget *w, const char *name, GVariant *p)
{
  VesselAssistant *self = VESSEL_ASSISTANT (w);
  if (self->chooser)
    return;
  self->chooser = gtk_file_chooser_native_new (
      _("Choose an ISO or a Disk Image"), GTK_WINDOW (self),
      GTK_FILE_CHOOSER_ACTION_OPEN, _("_Choose"), _("_Cancel"));
  GtkFileFilter *f = gtk_file_filter_new ();
  gtk_file_filter_set_name (f, _("CD, DVD and disk images"));
  gtk_file_filter_add_suffix (f, "iso");
  gtk_file_filter_add_suffix (f, "qcow2");
  gtk_file_filter_add_suffix (f, "img");
  gtk_file_filter_add_suffix (f, "raw");
  gtk_file_filter_add_mime_type (f, "application/x-cd-image");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), f);
  g_object_unref (f);
  f = gtk_file_filter_new ();
  gtk_file_filter_set_name (f, _("All files"));
  gtk_file_filter_add_pattern (f, "*");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), f);
  g_object_unref (f);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_file_chosen),
                    self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
action_blank (GtkWidget *w, const char *name, GVariant *p)
{
  vessel_assistant_choose (VESSEL_ASSISTANT (w), NULL);
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y,
         gpointer data)
{
  VesselAssistant *self = data;
  if (!G_VALUE_HOLDS (value, GDK_TYPE_FILE_LIST) || self->busy)
    return FALSE;
  GSList *files = gdk_file_list_get_files (g_value_get_boxed (value));
  g_autofree char *path = files ? g_file_get_path (files->data) : NULL;
  g_slist_free (files);
  if (!path)
    return FALSE;
  show_page (self, "source");
  vessel_assistant_choose (self, path);
  return TRUE;
}

/* The ISOs in the Downloads folder, newest first. */
static gint
by_mtime_desc (gconstpointer a, gconstpointer b)
{
  GFileInfo *ia = *(GFileInfo **) a, *ib = *(GFileInfo **) b;
  guint64 ta = g_file_info_get_attribute_uint64 (
      ia, G_FILE_ATTRIBUTE_TIME_MODIFIED);
  guint64 tb = g_file_info_get_attribute_uint64 (
      ib, G_FILE_ATTRIBUTE_TIME_MODIFIED);
  return ta < tb ? 1 : ta > tb ? -1 : 0;
}

static void
on_download_activated (AdwActionRow *row, gpointer data)
{
  vessel_assistant_choose (VESSEL_ASSISTANT (data),
                           g_object_get_data (G_OBJECT (row), "path"));
}

static void
list_downloads (VesselAssistant *self)
{
  const char *dir = g_get_user_special_dir (G_USER_DIRECTORY_DOWNLOAD);
  if (!dir)
    return;
  g_autoptr (GFile) d = g_file_new_for_path (dir);
  g_autoptr (GFileEnumerator) e = g_file_enumerate_children (
      d,
      G_FILE_ATTRIBUTE_STANDARD_NAME "," G_FILE_ATTRIBUTE_STANDARD_SIZE
      "," G_FILE_ATTRIBUTE_TIME_MODIFIED "," G_FILE_ATTRIBUTE_STANDARD_TYPE,
      G_FILE_QUERY_INFO_NONE, NULL, NULL);
  if (!e)
    return;
  g_autoptr (GPtrArray) isos = g_ptr_array_new_with_free_func (g_object_unref);
  GFileInfo *info;
  while ((info = g_file_enumerator_next_file (e, NULL, NULL)))
    {
      g_autofree char *lower = g_ascii_strdown (g_file_info_get_name (info),
                                                -1);
      if (g_file_info_get_file_type (info) == G_FILE_TYPE_REGULAR
          && g_str_has_suffix (lower, ".iso"))
        g_ptr_array_add (isos, info);
      else
        g_object_unref (info);
    }
  g_ptr_array_sort (isos, by_mtime_desc);
  for (guint i = 0; i < isos->len && i < DOWNLOADS_MAX; i++)
    {
      GFileInfo *fi = isos->pdata[i];
      GtkWidget *row = adw_action_row_new ();
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row),
                                     g_file_info_get_name (fi));
      g_autofree char *size
          = vessel_source_format_size ((guint64) g_file_info_get_size (fi));
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), size);
      gtk_list_box_row_set_activatable (GTK_LIST_BOX_ROW (row), TRUE);
      GtkWidget *icon = gtk_image_new_from_icon_name ("media-optical-symbolic");
      adw_action_row_add_prefix (ADW_ACTION_ROW (row), icon);
      g_object_set_data_full (G_OBJECT (row), "path",
                              g_build_filename (dir, g_file_info_get_name (fi),
                                                NULL),
                              g_free);
      g_signal_connect (row, "activated", G_CALLBACK (on_download_activated),
                        self);
      gtk_list_box_append (self->downloads_list, row);
    }
  gtk_widget_set_visible (GTK_WIDGET (self->downloads_group), isos->len > 0);
}

/* ---- review and create --------------------------------------------- */

static void
add_review_row (VesselAssistant *self, const char *title, const char *value)
{
  GtkWidget *row = adw_action_row_new ();
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), value);
  adw_preferences_group_add (self->review_group, row);
  g_ptr_array_add (self->review_rows, row);
}

static gboolean
uefi_chosen (VesselAssistant *self)
{
  return self->ovmf && adw_combo_row_get_selected (self->firmware_row) == 1;
}

static void
fill_review (VesselAssistant *self)
{
  for (guint i = 0; i < self->review_rows->len; i++)
    adw_preferences_group_remove (self->review_group,
                                  self->review_rows->pdata[i]);
  g_ptr_array_set_size (self->review_rows, 0);
  add_review_row (self, _("Name"), chosen_title (self));
  if (self->path)
    add_review_row (self,
                    is_disk_image (self) ? _("Disk Image") : _("Install From"),
                    self->path);
  if (self->path && !is_disk_image (self))
    add_review_row (self, _("Operating System"),
                    vessel_assistant_get_os_name (self)
                        ? vessel_assistant_get_os_name (self)
                        : _("Not recognised"));
  g_autofree char *mem = vessel_source_format_size (chosen_memory (self));
  add_review_row (self, _("Memory"), mem);
  g_autofree char *cpus = g_strdup_printf (
      "%d", gtk_spin_button_get_value_as_int (self->cpus_spin));
  add_review_row (self, _("Processors"), cpus);
  g_autofree char *disk = NULL;
  if (is_disk_image (self))
    disk = g_strdup (gtk_check_button_get_active (self->copy_check)
                         ? _("A copy of the image")
                         : _("A new layer on the image, which stays "
                             "untouched"));
  else
    disk = vessel_source_format_size (chosen_disk (self));
  add_review_row (self, _("Disk"), disk);
  add_review_row (self, _("Firmware"),
                  uefi_chosen (self) ? _("UEFI (OVMF)") : _("BIOS (SeaBIOS)"));
}

static void
create_done (GObject *source, GAsyncResult *res, gpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (VesselMachine) m = vessel_creator_create_finish (
      VESSEL_LIBRARY (source), res, &error);
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  VesselAssistant *self = data;
  set_busy (self, FALSE);
  if (!m)
    {
      show_message (self->review_message, error->message, TRUE);
      return;
    }
  /* Start it when there is something to boot; a start that fails shows on
   * the machine's page. */
  if (self->path)
    {
      g_autoptr (GError) start_error = NULL;
      if (!vessel_machine_start (m, &start_error))
        g_debug ("%s", start_error->message);
    }
  g_signal_emit (self, signals[SIGNAL_CREATED], 0, m);
  gtk_window_destroy (GTK_WINDOW (self));
}

static void
create (VesselAssistant *self)
{
  VesselCreateSpec spec = { 0 };
  spec.title = g_strstrip (g_strdup (chosen_title (self)));
  spec.memory = chosen_memory (self);
  spec.cpus = (guint) gtk_spin_button_get_value_as_int (self->cpus_spin);
  if (is_disk_image (self))
    {
      spec.disk_image = g_strdup (self->path);
      spec.disk_format = g_strdup (self->source.format);
      spec.disk_image_size = self->source.virtual_size;
      spec.copy = gtk_check_button_get_active (self->copy_check);
    }
  else
    {
      spec.iso = g_strdup (self->path);
      spec.disk_size = chosen_disk (self);
    }
  if (self->os && self->os->recognised)
    {
      spec.os_name = g_strdup (self->os->name);
      spec.os_id = g_strdup (self->os->os_id);
    }
  if (uefi_chosen (self))
    {
      spec.uefi_firmware = g_strdup (self->ovmf);
      spec.uefi_vars_template = g_strdup (self->ovmf_vars);
    }
  show_message (self->review_message, NULL, TRUE);
  set_busy (self, TRUE);
  vessel_creator_create_async (self->library, &spec, self->cancellable,
                               create_done, self);
  vessel_create_spec_clear (&spec);
}

/* ---- navigation ---------------------------------------------------- */

static void
action_next (GtkWidget *w, const char *name, GVariant *p)
{
  VesselAssistant *self = VESSEL_ASSISTANT (w);
  if (!vessel_assistant_can_go_next (self))
    return;
  const char *page = vessel_assistant_get_page (self);
  if (!g_strcmp0 (page, "resources"))
    {
      if (is_disk_image (self))
        show_page (self, "disk");
      else
        {
          fill_review (self);
          show_page (self, "review");
        }
    }
  else if (!g_strcmp0 (page, "disk"))
    {
      g_autofree char *warning = NULL;
      g_autofree char *problem = resources_problem (self, &warning);
      show_message (self->disk_message, problem, TRUE);
      if (problem)
        return;
      fill_review (self);
      show_page (self, "review");
    }
  else if (!g_strcmp0 (page, "review"))
    create (self);
}

static void
action_back (GtkWidget *w, const char *name, GVariant *p)
{
  VesselAssistant *self = VESSEL_ASSISTANT (w);
  if (self->busy)
    return;
  const char *page = vessel_assistant_get_page (self);
  if (!g_strcmp0 (page, "source"))
    gtk_window_destroy (GTK_WINDOW (self));
  else if (!g_strcmp0 (page, "resources"))
    show_page (self, "source");
  else if (!g_strcmp0 (page, "disk"))
    show_page (self, "resources");
  else if (is_disk_image (self))
    show_page (self, "disk");
  else
    show_page (self, "resources");
}

void
vessel_assistant_set_machine_title (VesselAssistant *self, const char *title)
{
  gtk_editable_set_text (GTK_EDITABLE (self->name_row), title);
}

void
vessel_assistant_set_resources (VesselAssistant *self, guint64 memory,
                                guint cpus, guint64 disk)
{
  if (memory)
    gtk_spin_button_set_value (self->memory_spin, (double) (memory / MIB));
  if (cpus)
    gtk_spin_button_set_value (self->cpus_spin, cpus);
  if (disk)
    gtk_spin_button_set_value (self->disk_spin, (double) (disk / GIB));
}

void
vessel_assistant_set_keep_original (VesselAssistant *self, gboolean keep)
{
  gtk_check_button_set_active (keep ? self->keep_check : self->copy_check,
                               TRUE);
}

gboolean
vessel_assistant_get_uefi (VesselAssistant *self)
{
  return uefi_chosen (self);
}

void
vessel_assistant_set_uefi (VesselAssistant *self, gboolean uefi)
{
  if (self->ovmf)
    adw_combo_row_set_selected (self->firmware_row, uefi ? 1 : 0);
}

/* ---- the class ----------------------------------------------------- */

static void
vessel_assistant_dispose (GObject *object)
{
  VesselAssistant *self = VESSEL_ASSISTANT (object);
  g_cancellable_cancel (self->cancellable);
  if (self->chooser)
    {
      gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
      g_clear_object (&self->chooser);
    }
  gtk_widget_dispose_template (GTK_WIDGET (self), VESSEL_TYPE_ASSISTANT);
  G_OBJECT_CLASS (vessel_assistant_parent_class)->dispose (object);
}

static void
vessel_assistant_finalize (GObject *object)
{
  VesselAssistant *self = VESSEL_ASSISTANT (object);
  g_clear_object (&self->cancellable);
  g_clear_object (&self->library);
  g_free (self->path);
  g_free (self->ovmf);
  g_free (self->ovmf_vars);
  vessel_source_clear (&self->source);
  vessel_os_info_free (self->os);
  g_ptr_array_unref (self->review_rows);
  G_OBJECT_CLASS (vessel_assistant_parent_class)->finalize (object);
}

static void
vessel_assistant_class_init (VesselAssistantClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  object_class->dispose = vessel_assistant_dispose;
  object_class->finalize = vessel_assistant_finalize;

  signals[SIGNAL_CREATED] = g_signal_new (
      "created", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
      NULL, G_TYPE_NONE, 1, VESSEL_TYPE_MACHINE);

  gtk_widget_class_set_template_from_resource (
      wc, "/org/vessel/Vessel/ui/vessel-assistant.ui");
#define CHILD(name) \
  gtk_widget_class_bind_template_child (wc, VesselAssistant, name)
  CHILD (back_button);
  CHILD (next_button);
  CHILD (spinner);
  CHILD (title_widget);
  CHILD (stack);
  CHILD (source_message);
  CHILD (downloads_group);
  CHILD (downloads_list);
  CHILD (os_row);
  CHILD (os_logo);
  CHILD (name_row);
  CHILD (memory_spin);
  CHILD (cpus_spin);
  CHILD (disk_row);
  CHILD (disk_spin);
  CHILD (firmware_row);
  CHILD (resources_message);
  CHILD (image_row);
  CHILD (keep_check);
  CHILD (copy_check);
  CHILD (disk_message);
  CHILD (review_group);
  CHILD (review_message);
#undef CHILD
  gtk_widget_class_install_action (wc, "assistant.next", NULL, action_next);
  gtk_widget_class_install_action (wc, "assistant.back", NULL, action_back);
  gtk_widget_class_install_action (wc, "assistant.choose-file", NULL,
                                   action_choose_file);
  gtk_widget_class_install_action (wc, "assistant.blank", NULL, action_blank);
  gtk_widget_class_add_binding_action (wc, GDK_KEY_Escape, 0,
                                       "assistant.back", NULL);
}

static void
vessel_assistant_init (VesselAssistant *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->cancellable = g_cancellable_new ();
  self->review_rows = g_ptr_array_new ();
  vmm_machine_find_ovmf (&self->ovmf, &self->ovmf_vars);
  self->ram_available = host_ram_available ();

  GtkStringList *fw = gtk_string_list_new (NULL);
  gtk_string_list_append (fw, _("BIOS (SeaBIOS)"));
  if (self->ovmf)
    gtk_string_list_append (fw, _("UEFI (OVMF)"));
  adw_combo_row_set_model (self->firmware_row, G_LIST_MODEL (fw));
  g_object_unref (fw);
  /* Only one choice: nothing to choose. */
  gtk_widget_set_sensitive (GTK_WIDGET (self->firmware_row),
                            self->ovmf != NULL);

  g_signal_connect_swapped (self->name_row, "changed",
                            G_CALLBACK (on_resources_changed), self);
  g_signal_connect_swapped (self->memory_spin, "value-changed",
                            G_CALLBACK (on_resources_changed), self);
  g_signal_connect_swapped (self->cpus_spin, "value-changed",
                            G_CALLBACK (on_resources_changed), self);
  g_signal_connect_swapped (self->disk_spin, "value-changed",
                            G_CALLBACK (on_resources_changed), self);

  GtkDropTarget *drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST,
                                             GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));
}

VesselAssistant *
vessel_assistant_new (GtkWindow *parent, VesselLibrary *library)
{
  VesselAssistant *self = g_object_new (VESSEL_TYPE_ASSISTANT,
                                        "transient-for", parent, NULL);
  self->library = g_object_ref (library);
  self->disk_free = host_disk_free (library);
  list_downloads (self);
  update_buttons (self);
  return self;
}
