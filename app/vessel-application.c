/* The application (see vessel-application.h). */
#include "app/vessel-application.h"

#include "wizards/vessel-assistant.h"

#include <glib/gi18n.h>

struct _VesselApplication {
  AdwApplication parent_instance;
  VesselLibrary *library;
  VesselWindow *window;
  GtkWindow *quit_dialog;
  VesselAssistant *assistant; /* weak */
  GtkFileChooserNative *chooser;
};

G_DEFINE_FINAL_TYPE (VesselApplication, vessel_application,
                     ADW_TYPE_APPLICATION)

VesselLibrary *
vessel_application_get_library (VesselApplication *self)
{
  return self->library;
}

VesselWindow *
vessel_application_get_window (VesselApplication *self)
{
  return self->window;
}

GtkWindow *
vessel_application_get_quit_dialog (VesselApplication *self)
{
  return self->quit_dialog;
}

static void
error_dialog (VesselApplication *self, const char *heading, const char *body)
{
  GtkWidget *d = adw_message_dialog_new (GTK_WINDOW (self->window), heading,
                                         body);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (d), "close",
                                   _("_Close"));
  gtk_window_present (GTK_WINDOW (d));
}

/* ---- new machine --------------------------------------------------- */

static void
on_machine_created (VesselAssistant *assistant, VesselMachine *m,
                    gpointer data)
{
  VesselApplication *self = data;
  if (self->window)
    vessel_window_open_machine (self->window, m);
}

/* The assistant: one at a time. */
static void
action_new_machine (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselApplication *self = data;
  g_application_activate (G_APPLICATION (self));
  if (!self->assistant)
    {
      self->assistant = vessel_assistant_new (GTK_WINDOW (self->window),
                                              self->library);
      g_object_add_weak_pointer (G_OBJECT (self->assistant),
                                 (gpointer *) &self->assistant);
      g_signal_connect (self->assistant, "created",
                        G_CALLBACK (on_machine_created), self);
    }
  gtk_window_present (GTK_WINDOW (self->assistant));
}

VesselAssistant *
vessel_application_get_assistant (VesselApplication *self)
{
  return self->assistant;
}

/* ---- import ---------------------------------------------------------- */

static void
import_path (VesselApplication *self, const char *path)
{
  g_autoptr (GError) error = NULL;
  VesselMachine *m = vessel_library_import (self->library, path, &error);
  if (!m)
    error_dialog (self, _("The Definition Cannot Be Imported"),
                  error->message);
  else
    vessel_window_open_machine (self->window, m);
}

static void
on_import_chosen (GtkNativeDialog *dialog, int response, gpointer data)
{
  VesselApplication *self = data;
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) f = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = f ? g_file_get_path (f) : NULL;
      if (path)
        import_path (self, path);
    }
  g_clear_object (&self->chooser);
}

/* import: a file chooser; import-file(s): that file (tests, scripts). */
static void
action_import (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselApplication *self = data;
  g_application_activate (G_APPLICATION (self));
  self->chooser = gtk_file_chooser_native_new (
      _("Import a Machine Definition"), GTK_WINDOW (self->window),
      GTK_FILE_CHOOSER_ACTION_OPEN, _("_Import"), _("_Cancel"));
  GtkFileFilter *f = gtk_file_filter_new ();
  gtk_file_filter_set_name (f, _("libvirt domain XML"));
  gtk_file_filter_add_suffix (f, "xml");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), f);
  g_object_unref (f);
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_import_chosen),
                    self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
action_import_file (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselApplication *self = data;
  g_application_activate (G_APPLICATION (self));
  import_path (self, g_variant_get_string (p, NULL));
}

static void
action_about (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselApplication *self = data;
  const char *developers[] = { "The Vessel developers", NULL };
  GtkWidget *about = adw_about_window_new ();
  g_object_set (about, "application-name", _("Vessel"), "application-icon",
                VESSEL_APPLICATION_ID, "version", PACKAGE_VERSION,
                "developers", developers, "license-type",
                GTK_LICENSE_GPL_2_0, "comments",
                _("Virtual machines with their own KVM engine"),
                "transient-for", self->window, NULL);
  gtk_window_present (GTK_WINDOW (about));
}

/* ---- quitting -------------------------------------------------------- */

static void
stop_all_and_quit (VesselApplication *self)
{
  GListModel *model = vessel_library_get_model (self->library);
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      vessel_machine_stop_now (m);
    }
  vessel_library_finish_all (self->library);
  if (self->window)
    gtk_window_destroy (GTK_WINDOW (self->window));
  g_application_quit (G_APPLICATION (self));
}

static void
on_quit_response (AdwMessageDialog *d, const char *response, gpointer data)
{
  VesselApplication *self = data;
  self->quit_dialog = NULL;
  if (!g_strcmp0 (response, "force-off"))
    stop_all_and_quit (self);
}

/* Quitting ends the engines in this process: with machines running, ask. */
static void
action_quit (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselApplication *self = data;
  guint n = vessel_library_count_active (self->library);
  if (!n || !self->window)
    {
      stop_all_and_quit (self);
      return;
    }
  if (self->quit_dialog)
    {
      gtk_window_present (self->quit_dialog);
      return;
    }
  g_autofree char *body = g_strdup_printf (
      g_dngettext (GETTEXT_PACKAGE,
                   "%u machine is running. Quitting turns it off as if its "
                   "power were cut; unsaved work in it is lost.",
                   "%u machines are running. Quitting turns them off as if "
                   "their power were cut; unsaved work in them is lost.",
                   n),
      n);
  GtkWidget *d = adw_message_dialog_new (GTK_WINDOW (self->window),
                                         _("Quit Vessel?"), body);
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (d), "cancel",
                                    _("_Keep Running"), "force-off",
                                    _("_Turn Off and Quit"), NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (d),
                                              "force-off",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (d), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (d), "cancel");
  g_signal_connect (d, "response", G_CALLBACK (on_quit_response), self);
  self->quit_dialog = GTK_WINDOW (d);
  gtk_window_present (GTK_WINDOW (d));
}

static gboolean
on_close_request (GtkWindow *window, gpointer data)
{
  g_action_group_activate_action (G_ACTION_GROUP (data), "quit", NULL);
  return TRUE; /* quit decides */
}

static const GActionEntry app_actions[] = {
  { "new-machine", action_new_machine },
  { "import", action_import },
  { "import-file", action_import_file, "s" },
  { "about", action_about },
  { "quit", action_quit },
};

static const struct {
  const char *action;
  const char *accels[3];
} app_accels[] = {
  { "app.quit", { "<Control>q", NULL } },
  { "app.new-machine", { "<Control>n", NULL } },
  { "win.show-library", { "<Alt>Left", NULL } },
  { "machine.fullscreen", { "F11", NULL } },
  { "machine.pause", { "<Control><Shift>p", NULL } },
  { "machine.resume", { "<Control><Shift>r", NULL } },
  { "machine.start", { "<Control><Shift>s", NULL } },
  { "machine.console", { "<Control><Shift>c", NULL } },
};

void
vessel_application_set_accels_enabled (VesselApplication *self,
                                       gboolean enabled)
{
  static const char *const none[] = { NULL };
  for (size_t i = 0; i < G_N_ELEMENTS (app_accels); i++)
    gtk_application_set_accels_for_action (
        GTK_APPLICATION (self), app_accels[i].action,
        enabled ? app_accels[i].accels : none);
}

static void
vessel_application_startup (GApplication *app)
{
  VesselApplication *self = VESSEL_APPLICATION (app);
  G_APPLICATION_CLASS (vessel_application_parent_class)->startup (app);
  g_action_map_add_action_entries (G_ACTION_MAP (self), app_actions,
                                   G_N_ELEMENTS (app_actions), self);
  vessel_application_set_accels_enabled (self, TRUE);
  g_autoptr (GtkCssProvider) css = gtk_css_provider_new ();
  gtk_css_provider_load_from_resource (css,
                                       "/org/vessel/Vessel/style.css");
  gtk_style_context_add_provider_for_display (
      gdk_display_get_default (), GTK_STYLE_PROVIDER (css),
      GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);

  g_autoptr (GPtrArray) errors = g_ptr_array_new_with_free_func (g_free);
  vessel_library_load (self->library, errors);
  for (guint i = 0; i < errors->len; i++)
    g_warning ("%s", (const char *) errors->pdata[i]);
}

static void
vessel_application_activate (GApplication *app)
{
  VesselApplication *self = VESSEL_APPLICATION (app);
  if (!self->window)
    {
      self->window = vessel_window_new (GTK_APPLICATION (app), self->library);
      g_object_add_weak_pointer (G_OBJECT (self->window),
                                 (gpointer *) &self->window);
      g_signal_connect (self->window, "close-request",
                        G_CALLBACK (on_close_request), self);
    }
  gtk_window_present (GTK_WINDOW (self->window));
}

static void
vessel_application_shutdown (GApplication *app)
{
  VesselApplication *self = VESSEL_APPLICATION (app);
  GListModel *model = vessel_library_get_model (self->library);
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      vessel_machine_stop_now (m);
    }
  vessel_library_finish_all (self->library);
  G_APPLICATION_CLASS (vessel_application_parent_class)->shutdown (app);
}

static void
vessel_application_finalize (GObject *object)
{
  VesselApplication *self = VESSEL_APPLICATION (object);
  g_clear_object (&self->library);
  G_OBJECT_CLASS (vessel_application_parent_class)->finalize (object);
}

static void
vessel_application_class_init (VesselApplicationClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = vessel_application_finalize;
  G_APPLICATION_CLASS (klass)->startup = vessel_application_startup;
  G_APPLICATION_CLASS (klass)->activate = vessel_application_activate;
  G_APPLICATION_CLASS (klass)->shutdown = vessel_application_shutdown;
}

static void
vessel_application_init (VesselApplication *self)
{
  self->library = vessel_library_new (NULL);
}

VesselApplication *
vessel_application_new (void)
{
  return g_object_new (VESSEL_TYPE_APPLICATION, "application-id",
                       VESSEL_APPLICATION_ID, "flags",
                       G_APPLICATION_DEFAULT_FLAGS, "resource-base-path",
                       "/org/vessel/Vessel", NULL);
}
