/* A machine's properties (see vessel-properties.h). The rows are built in
 * code from the definition; the window's frame is a template. */
#include "app/vessel-properties.h"

#include <glib/gi18n.h>

struct _VesselProperties {
  AdwPreferencesWindow parent_instance;
  AdwEntryRow *name_row;
  GtkSpinButton *memory_spin;
  GtkSpinButton *cpus_spin;
  AdwActionRow *cdrom_row;
  AdwComboRow *boot_row;
  AdwPreferencesGroup *disks_group;
  AdwPreferencesGroup *remote_group;
  GtkLabel *restart_note;
  VesselMachine *machine;
  GtkFileChooserNative *chooser;
};

G_DEFINE_FINAL_TYPE (VesselProperties, vessel_properties,
                     ADW_TYPE_PREFERENCES_WINDOW)

static void
save (VesselProperties *self)
{
  g_autoptr (GError) error = NULL;
  vessel_machine_definition_changed (self->machine);
  if (!vessel_machine_save (self->machine, &error))
    adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self),
                                      adw_toast_new (error->message));
}

static void
update_cdrom_row (VesselProperties *self)
{
  g_autofree char *iso
      = vessel_definition_get_cdrom (vessel_machine_get_domain (self->machine));
  adw_action_row_set_subtitle (self->cdrom_row, iso ? iso : _("Empty"));
}

static void
on_name_apply (AdwEntryRow *row, VesselProperties *self)
{
  const char *t = gtk_editable_get_text (GTK_EDITABLE (row));
  if (!*t)
    return;
  vessel_machine_set_title (self->machine, t);
  save (self);
}

static void
on_memory_changed (GtkSpinButton *spin, VesselProperties *self)
{
  guint64 mib = (guint64) gtk_spin_button_get_value_as_int (spin);
  vessel_definition_set_memory (vessel_machine_get_domain (self->machine),
                                mib << 20);
  save (self);
}

static void
on_cpus_changed (GtkSpinButton *spin, VesselProperties *self)
{
  vessel_definition_set_cpus (vessel_machine_get_domain (self->machine),
                              (guint) gtk_spin_button_get_value_as_int (spin));
  save (self);
}

static void
on_boot_changed (AdwComboRow *row, GParamSpec *pspec, VesselProperties *self)
{
  vessel_definition_set_boot_cdrom_first (
      vessel_machine_get_domain (self->machine),
      adw_combo_row_get_selected (row) == 0);
  save (self);
}

static void
set_cdrom (VesselProperties *self, const char *iso)
{
  g_autoptr (GError) error = NULL;
  if (!vessel_machine_set_cdrom (self->machine, iso, &error))
    adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (self),
                                      adw_toast_new (error->message));
  update_cdrom_row (self);
}

static void
on_chooser_response (GtkNativeDialog *dialog, int response,
                     VesselProperties *self)
{
  if (response == GTK_RESPONSE_ACCEPT)
    {
      g_autoptr (GFile) file
          = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      g_autofree char *path = file ? g_file_get_path (file) : NULL;
      if (path)
        set_cdrom (self, path);
    }
  g_clear_object (&self->chooser);
}

static void
on_choose_iso (GtkButton *button, VesselProperties *self)
{
  self->chooser = gtk_file_chooser_native_new (
      _("Choose an ISO Image"), GTK_WINDOW (self),
      GTK_FILE_CHOOSER_ACTION_OPEN, _("_Insert"), _("_Cancel"));
  GtkFileFilter *f = gtk_file_filter_new ();
  gtk_file_filter_set_name (f, _("CD and DVD images"));
  gtk_file_filter_add_suffix (f, "iso");
  gtk_file_filter_add_mime_type (f, "application/x-cd-image");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), f);
  g_object_unref (f);
  g_signal_connect (self->chooser, "response",
                    G_CALLBACK (on_chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
on_eject (GtkButton *button, VesselProperties *self)
{
  set_cdrom (self, NULL);
}

/* ---- remote access ------------------------------------------------- */

typedef struct {
  VesselProperties *self;
  VesselExportKind kind;
  AdwExpanderRow *expander;
  AdwEntryRow *address;
  GtkSpinButton *port;
  AdwPasswordEntryRow *password;
  AdwActionRow *uri_row;
} ExportRows;

static void
export_update_uri (ExportRows *r)
{
  VesselExport e = { 0 };
  vessel_definition_get_export (vessel_machine_get_domain (r->self->machine),
                                r->kind, &e);
  g_autofree char *uri = vessel_export_uri (r->kind, &e);
  if (!uri)
    uri = vessel_machine_get_export_uri (r->self->machine, r->kind);
  adw_action_row_set_subtitle (r->uri_row,
                               uri ? uri
                                   : _("Chosen when the machine starts"));
  vessel_export_clear (&e);
}

static void
export_store (ExportRows *r)
{
  VesselExport e = { 0 };
  e.enabled = adw_expander_row_get_enable_expansion (r->expander);
  e.address = g_strdup (gtk_editable_get_text (GTK_EDITABLE (r->address)));
  e.port = gtk_spin_button_get_value_as_int (r->port);
  const char *pw = gtk_editable_get_text (GTK_EDITABLE (r->password));
  e.password = *pw ? g_strdup (pw) : NULL;
  vessel_definition_set_export (vessel_machine_get_domain (r->self->machine),
                                r->kind, &e);
  vessel_export_clear (&e);
  save (r->self);
  export_update_uri (r);
}

static void
on_export_changed (GObject *obj, GParamSpec *pspec, ExportRows *r)
{
  export_store (r);
}

static void
on_export_apply (AdwEntryRow *row, ExportRows *r)
{
  export_store (r);
}

static void
on_copy_uri (GtkButton *button, ExportRows *r)
{
  const char *uri = adw_action_row_get_subtitle (r->uri_row);
  if (uri && strstr (uri, "://"))
    {
      gdk_clipboard_set_text (
          gtk_widget_get_clipboard (GTK_WIDGET (button)), uri);
      adw_preferences_window_add_toast (ADW_PREFERENCES_WINDOW (r->self),
                                        adw_toast_new (_("Address copied")));
    }
}

static GtkSpinButton *
spin_suffix (AdwActionRow *row, double min, double max, double value)
{
  GtkWidget *spin = gtk_spin_button_new_with_range (min, max, 1);
  gtk_spin_button_set_value (GTK_SPIN_BUTTON (spin), value);
  gtk_widget_set_valign (spin, GTK_ALIGN_CENTER);
  adw_action_row_add_suffix (row, spin);
  return GTK_SPIN_BUTTON (spin);
}

static void
add_export_rows (VesselProperties *self, VesselExportKind kind)
{
  ExportRows *r = g_new0 (ExportRows, 1);
  r->self = self;
  r->kind = kind;
  g_object_set_data_full (G_OBJECT (self),
                          kind == VESSEL_EXPORT_VNC ? "vnc-rows" : "spice-rows",
                          r, g_free);
  VesselExport e = { 0 };
  vessel_definition_get_export (vessel_machine_get_domain (self->machine),
                                kind, &e);
  r->expander = ADW_EXPANDER_ROW (adw_expander_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (r->expander),
                                 kind == VESSEL_EXPORT_VNC ? _("VNC")
                                                           : _("SPICE"));
  adw_expander_row_set_subtitle (
      r->expander, kind == VESSEL_EXPORT_VNC
                       ? _("View the machine from any VNC client")
                       : _("View the machine from remote-viewer"));
  adw_expander_row_set_show_enable_switch (r->expander, TRUE);
  adw_expander_row_set_enable_expansion (r->expander, e.enabled);

  r->address = ADW_ENTRY_ROW (adw_entry_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (r->address),
                                 _("Listen Address"));
  gtk_editable_set_text (GTK_EDITABLE (r->address),
                         e.address ? e.address : "127.0.0.1");
  adw_entry_row_set_show_apply_button (r->address, TRUE);
  adw_expander_row_add_row (r->expander, GTK_WIDGET (r->address));

  AdwActionRow *port_row = ADW_ACTION_ROW (adw_action_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (port_row), _("Port"));
  adw_action_row_set_subtitle (port_row, _("0 picks a free one"));
  r->port = spin_suffix (port_row, 0, 65535, e.port);
  adw_expander_row_add_row (r->expander, GTK_WIDGET (port_row));

  r->password = ADW_PASSWORD_ENTRY_ROW (adw_password_entry_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (r->password),
                                 _("Password"));
  gtk_editable_set_text (GTK_EDITABLE (r->password),
                         e.password ? e.password : "");
  adw_entry_row_set_show_apply_button (ADW_ENTRY_ROW (r->password), TRUE);
  adw_expander_row_add_row (r->expander, GTK_WIDGET (r->password));

  r->uri_row = ADW_ACTION_ROW (adw_action_row_new ());
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (r->uri_row),
                                 _("Address for Viewers"));
  gtk_widget_add_css_class (GTK_WIDGET (r->uri_row), "property");
  GtkWidget *copy = gtk_button_new_from_icon_name ("edit-copy-symbolic");
  gtk_widget_set_valign (copy, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (copy, _("Copy"));
  gtk_widget_add_css_class (copy, "flat");
  adw_action_row_add_suffix (r->uri_row, copy);
  adw_expander_row_add_row (r->expander, GTK_WIDGET (r->uri_row));
  export_update_uri (r);
  vessel_export_clear (&e);

  g_signal_connect (r->expander, "notify::enable-expansion",
                    G_CALLBACK (on_export_changed), r);
  g_signal_connect (r->address, "apply", G_CALLBACK (on_export_apply), r);
  g_signal_connect (r->password, "apply", G_CALLBACK (on_export_apply), r);
  g_signal_connect (r->port, "notify::value", G_CALLBACK (on_export_changed),
                    r);
  g_signal_connect (copy, "clicked", G_CALLBACK (on_copy_uri), r);
  adw_preferences_group_add (self->remote_group, GTK_WIDGET (r->expander));
}

static void
vessel_properties_dispose (GObject *object)
{
  VesselProperties *self = VESSEL_PROPERTIES (object);
  if (self->chooser)
    {
      gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
      g_clear_object (&self->chooser);
    }
  gtk_widget_dispose_template (GTK_WIDGET (self), VESSEL_TYPE_PROPERTIES);
  g_clear_object (&self->machine);
  G_OBJECT_CLASS (vessel_properties_parent_class)->dispose (object);
}

static void
vessel_properties_class_init (VesselPropertiesClass *klass)
{
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  G_OBJECT_CLASS (klass)->dispose = vessel_properties_dispose;
  gtk_widget_class_set_template_from_resource (
      wc, "/org/vessel/Vessel/ui/vessel-properties.ui");
  gtk_widget_class_bind_template_child (wc, VesselProperties, name_row);
  gtk_widget_class_bind_template_child (wc, VesselProperties, cdrom_row);
  gtk_widget_class_bind_template_child (wc, VesselProperties, boot_row);
  gtk_widget_class_bind_template_child (wc, VesselProperties, disks_group);
  gtk_widget_class_bind_template_child (wc, VesselProperties, remote_group);
  gtk_widget_class_bind_template_child (wc, VesselProperties, restart_note);
  gtk_widget_class_bind_template_child (wc, VesselProperties, memory_spin);
  gtk_widget_class_bind_template_child (wc, VesselProperties, cpus_spin);
  gtk_widget_class_bind_template_callback (wc, on_choose_iso);
  gtk_widget_class_bind_template_callback (wc, on_eject);
}

static void
vessel_properties_init (VesselProperties *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

VesselProperties *
vessel_properties_new (VesselMachine *machine)
{
  VesselProperties *self = g_object_new (VESSEL_TYPE_PROPERTIES, NULL);
  self->machine = g_object_ref (machine);
  GVirConfigDomain *d = vessel_machine_get_domain (machine);
  gtk_window_set_title (GTK_WINDOW (self), vessel_machine_get_title (machine));
  gtk_editable_set_text (GTK_EDITABLE (self->name_row),
                         vessel_machine_get_title (machine));
  gtk_spin_button_set_range (self->memory_spin, 16,
                             (double) (g_get_num_processors () > 0
                                           ? 1024 * 1024
                                           : 65536));
  gtk_spin_button_set_value (self->memory_spin,
                             (double) (vessel_definition_get_memory (d) >> 20));
  gtk_spin_button_set_range (self->cpus_spin, 1, 288);
  gtk_spin_button_set_value (self->cpus_spin, vessel_definition_get_cpus (d));
  adw_combo_row_set_selected (self->boot_row,
                              vessel_definition_get_boot_cdrom_first (d) ? 0
                                                                         : 1);
  gtk_widget_set_visible (GTK_WIDGET (self->restart_note),
                          vessel_machine_is_active (machine));
  update_cdrom_row (self);

  g_auto (GStrv) disks = vessel_definition_get_disks (d);
  for (guint i = 0; disks[i]; i++)
    {
      GtkWidget *row = adw_action_row_new ();
      g_autofree char *title = g_strdup_printf (_("Disk %u"), i + 1);
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), title);
      adw_action_row_set_subtitle (ADW_ACTION_ROW (row), disks[i]);
      gtk_widget_add_css_class (row, "property");
      adw_preferences_group_add (self->disks_group, row);
    }
  if (!disks[0])
    {
      GtkWidget *row = adw_action_row_new ();
      adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row),
                                     _("No disks"));
      adw_preferences_group_add (self->disks_group, row);
    }
  add_export_rows (self, VESSEL_EXPORT_VNC);
  add_export_rows (self, VESSEL_EXPORT_SPICE);

  g_signal_connect (self->name_row, "apply", G_CALLBACK (on_name_apply), self);
  g_signal_connect (self->memory_spin, "value-changed",
                    G_CALLBACK (on_memory_changed), self);
  g_signal_connect (self->cpus_spin, "value-changed",
                    G_CALLBACK (on_cpus_changed), self);
  g_signal_connect (self->boot_row, "notify::selected",
                    G_CALLBACK (on_boot_changed), self);
  return self;
}
