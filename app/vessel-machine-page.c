/* One machine's page (see vessel-machine-page.h). */
#include "app/vessel-machine-page.h"

#include "app/vessel-application.h"
#include "app/vessel-console.h"
#include "display/vessel-display-view.h"

#include <adwaita.h>
#include <glib/gi18n.h>

struct _VesselMachinePage {
  GtkWidget parent_instance;

  GtkWidget *box;
  GtkWidget *header_revealer;
  AdwWindowTitle *window_title;
  GtkWidget *start_button;
  GtkWidget *pause_button;
  GtkWidget *resume_button;
  GtkWidget *shutdown_button;
  GtkWidget *console_toggle;
  GtkStack *view_stack;
  AdwStatusPage *stopped_page;
  GtkOverlay *display_overlay;
  GtkRevealer *hint_revealer;
  GtkLabel *hint_label;
  GtkScrolledWindow *console_scroller;

  VesselDisplayView *display;
  VesselConsole *console;
  VesselMachine *machine;
  gulong state_handler;
  gulong display_handler;
  gulong serial_handler;
  gboolean show_console;
  GSimpleActionGroup *actions;
};

G_DEFINE_FINAL_TYPE (VesselMachinePage, vessel_machine_page, GTK_TYPE_WIDGET)

static void
set_action_enabled (VesselMachinePage *self, const char *name, gboolean on)
{
  GAction *a = g_action_map_lookup_action (G_ACTION_MAP (self->actions), name);
  g_simple_action_set_enabled (G_SIMPLE_ACTION (a), on);
}

static void
update_state (VesselMachinePage *self)
{
  VesselMachineState st = self->machine ? vessel_machine_get_state (self->machine)
                                        : VESSEL_MACHINE_STATE_STOPPED;
  gboolean active = self->machine && vessel_machine_is_active (self->machine);
  gboolean stopped = st == VESSEL_MACHINE_STATE_STOPPED
                     || st == VESSEL_MACHINE_STATE_ERROR;
  adw_window_title_set_title (self->window_title,
                              self->machine
                                  ? vessel_machine_get_title (self->machine)
                                  : "");
  adw_window_title_set_subtitle (self->window_title,
                                 vessel_machine_state_label (st));
  gtk_widget_set_visible (self->start_button, stopped);
  gtk_widget_set_visible (self->pause_button,
                          st == VESSEL_MACHINE_STATE_RUNNING);
  gtk_widget_set_visible (self->resume_button,
                          st == VESSEL_MACHINE_STATE_PAUSED);
  gtk_widget_set_visible (self->shutdown_button, active);
  set_action_enabled (self, "start", self->machine && stopped);
  set_action_enabled (self, "pause", st == VESSEL_MACHINE_STATE_RUNNING);
  set_action_enabled (self, "resume", st == VESSEL_MACHINE_STATE_PAUSED);
  set_action_enabled (self, "shutdown", st == VESSEL_MACHINE_STATE_RUNNING);
  set_action_enabled (self, "force-off", active);
  set_action_enabled (self, "reset", active);
  set_action_enabled (self, "send-keys", active);
  set_action_enabled (self, "screenshot", active);
  set_action_enabled (self, "delete", self->machine && stopped);

  if (stopped)
    {
      const char *err = self->machine ? vessel_machine_get_error (self->machine)
                                      : NULL;
      adw_status_page_set_title (
          self->stopped_page,
          err ? _("The Machine Stopped") : _("The Machine Is Off"));
      adw_status_page_set_description (self->stopped_page, err);
      adw_status_page_set_icon_name (self->stopped_page,
                                     err ? "dialog-error-symbolic"
                                         : "computer-symbolic");
    }
  const char *page = self->show_console ? "console"
                     : active          ? "display"
                     : st == VESSEL_MACHINE_STATE_STOPPING ? "display"
                                                           : "stopped";
  gtk_stack_set_visible_child_name (self->view_stack, page);
}

static void
update_hint (VesselMachinePage *self)
{
  gboolean grabbed = vessel_display_view_get_grabbed (self->display);
  gboolean active = self->machine && vessel_machine_is_active (self->machine);
  gboolean paused = self->machine
                    && vessel_machine_get_state (self->machine)
                           == VESSEL_MACHINE_STATE_PAUSED;
  g_autofree char *text
      = paused ? g_strdup (_("Paused"))
               : g_strdup_printf (
                     _("Click to control the machine · %s releases"),
                     vessel_display_view_get_release_keys (self->display));
  gtk_label_set_text (self->hint_label, text);
  gtk_revealer_set_reveal_child (self->hint_revealer,
                                 paused || (active && !grabbed));
}

static void
attach_display (VesselMachinePage *self)
{
  display_surface *s = self->machine
                           ? vessel_machine_get_surface (self->machine)
                           : NULL;
  display_input *in = self->machine ? vessel_machine_get_input (self->machine)
                                    : NULL;
  vessel_display_view_set_source (self->display, s, in);
  update_hint (self);
}

static void
on_machine_state (VesselMachine *m, GParamSpec *pspec, VesselMachinePage *self)
{
  update_state (self);
  update_hint (self);
}

static void
on_display_changed (VesselMachine *m, VesselMachinePage *self)
{
  attach_display (self);
}

static void
on_serial_output (VesselMachine *m, GBytes *bytes, VesselMachinePage *self)
{
  vessel_console_feed (self->console, bytes);
}

static void
on_console_input (VesselConsole *console, GBytes *bytes,
                  VesselMachinePage *self)
{
  if (!self->machine)
    return;
  gsize n;
  const guint8 *p = g_bytes_get_data (bytes, &n);
  vessel_machine_send_serial (self->machine, p, n);
}

void
vessel_machine_page_set_machine (VesselMachinePage *self,
                                 VesselMachine *machine)
{
  if (self->machine == machine)
    return;
  if (self->machine)
    {
      g_clear_signal_handler (&self->state_handler, self->machine);
      g_clear_signal_handler (&self->display_handler, self->machine);
      g_clear_signal_handler (&self->serial_handler, self->machine);
      vessel_display_view_set_source (self->display, NULL, NULL);
      g_clear_object (&self->machine);
    }
  self->show_console = FALSE;
  g_action_group_change_action_state (G_ACTION_GROUP (self->actions),
                                      "console", g_variant_new_boolean (FALSE));
  vessel_console_reset (self->console);
  if (machine)
    {
      self->machine = g_object_ref (machine);
      self->state_handler = g_signal_connect (machine, "notify",
                                              G_CALLBACK (on_machine_state),
                                              self);
      self->display_handler = g_signal_connect (
          machine, "display-changed", G_CALLBACK (on_display_changed), self);
      self->serial_handler = g_signal_connect (
          machine, "serial-output", G_CALLBACK (on_serial_output), self);
      g_autoptr (GBytes) history = vessel_machine_get_serial_history (machine);
      vessel_console_feed (self->console, history);
    }
  attach_display (self);
  update_state (self);
}

VesselMachine *
vessel_machine_page_get_machine (VesselMachinePage *self)
{
  return self->machine;
}

GtkWidget *
vessel_machine_page_get_display (VesselMachinePage *self)
{
  return GTK_WIDGET (self->display);
}

void
vessel_machine_page_set_chrome_visible (VesselMachinePage *self,
                                        gboolean visible)
{
  gtk_revealer_set_reveal_child (GTK_REVEALER (self->header_revealer),
                                 visible);
}

static void
show_error (VesselMachinePage *self, const char *heading, const char *body)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkWidget *dialog = adw_message_dialog_new (GTK_IS_WINDOW (root)
                                                  ? GTK_WINDOW (root)
                                                  : NULL,
                                              heading, body);
  adw_message_dialog_add_response (ADW_MESSAGE_DIALOG (dialog), "close",
                                   _("_Close"));
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
action_start (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  g_autoptr (GError) error = NULL;
  if (self->machine && !vessel_machine_start (self->machine, &error))
    show_error (self, _("The Machine Cannot Start"), error->message);
}

static void
action_pause (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  vessel_display_view_ungrab (self->display);
  vessel_machine_pause (self->machine);
}

static void
action_resume (GSimpleAction *a, GVariant *p, gpointer data)
{
  vessel_machine_resume (((VesselMachinePage *) data)->machine);
}

static void
action_shutdown (GSimpleAction *a, GVariant *p, gpointer data)
{
  vessel_machine_shutdown (((VesselMachinePage *) data)->machine);
}

static void
action_force_off (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  vessel_display_view_ungrab (self->display);
  vessel_machine_force_off (self->machine);
}

static void
action_reset (GSimpleAction *a, GVariant *p, gpointer data)
{
  vessel_machine_reset (((VesselMachinePage *) data)->machine);
}

/* "ctrl-alt-delete" and "ctrl-alt-fN": the combinations a window system
 * keeps for itself, sent as set 1 scan codes. */
static void
action_send_keys (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  const char *which = g_variant_get_string (p, NULL);
  unsigned keys[3] = { 0x1d /* Ctrl */, 0x38 /* Alt */, 0 };
  if (!g_strcmp0 (which, "ctrl-alt-delete"))
    keys[2] = 0xe053;
  else if (g_str_has_prefix (which, "ctrl-alt-f"))
    {
      unsigned n = (unsigned) g_ascii_strtoull (which + 10, NULL, 10);
      /* F1-F10 are 0x3b-0x44, F11 and F12 0x57 and 0x58. */
      if (n >= 1 && n <= 10)
        keys[2] = 0x3a + n;
      else if (n == 11 || n == 12)
        keys[2] = 0x57 + (n - 11);
    }
  if (keys[2])
    vessel_display_view_send_keys (self->display, keys, 3);
}

static void
action_screenshot (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  const char *dir = g_get_user_special_dir (G_USER_DIRECTORY_PICTURES);
  if (!dir)
    dir = g_get_home_dir ();
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d %H-%M-%S");
  g_autofree char *file = g_strdup_printf (
      "%s %s.png", vessel_machine_get_title (self->machine), stamp);
  g_autofree char *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  if (!vessel_display_view_save_screenshot (self->display, path, &error))
    {
      show_error (self, _("Cannot Take a Screenshot"), error->message);
      return;
    }
  g_autofree char *msg = g_strdup_printf (_("Screenshot saved to %s"), path);
  gtk_widget_activate_action (GTK_WIDGET (root), "win.toast", "s", msg);
}

static void
action_fullscreen (GSimpleAction *a, GVariant *p, gpointer data)
{
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (data));
  if (!GTK_IS_WINDOW (root))
    return;
  if (gtk_window_is_fullscreen (GTK_WINDOW (root)))
    gtk_window_unfullscreen (GTK_WINDOW (root));
  else
    gtk_window_fullscreen (GTK_WINDOW (root));
}

static void
action_scale_to_fit (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  gboolean fit = g_variant_get_boolean (p);
  g_simple_action_set_state (a, p);
  vessel_display_view_set_scale_mode (self->display,
                                      fit ? VESSEL_DISPLAY_SCALE_FIT
                                          : VESSEL_DISPLAY_SCALE_ONE_TO_ONE);
}

static void
action_console (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  g_simple_action_set_state (a, p);
  self->show_console = g_variant_get_boolean (p);
  if (self->show_console)
    vessel_display_view_ungrab (self->display);
  update_state (self);
  if (self->show_console)
    gtk_widget_grab_focus (GTK_WIDGET (self->console));
}

static void
action_properties (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  gtk_widget_activate_action (GTK_WIDGET (self), "win.properties", "s",
                              vessel_machine_get_uuid (self->machine));
}

static void
action_delete (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselMachinePage *self = data;
  gtk_widget_activate_action (GTK_WIDGET (self), "win.delete-machine", "s",
                              vessel_machine_get_uuid (self->machine));
}

static const GActionEntry page_actions[] = {
  { "start", action_start },
  { "pause", action_pause },
  { "resume", action_resume },
  { "shutdown", action_shutdown },
  { "force-off", action_force_off },
  { "reset", action_reset },
  { "send-keys", action_send_keys, "s" },
  { "screenshot", action_screenshot },
  { "fullscreen", action_fullscreen },
  { "scale-to-fit", NULL, NULL, "true", action_scale_to_fit },
  { "console", NULL, NULL, "false", action_console },
  { "properties", action_properties },
  { "delete", action_delete },
};

static void
on_grabbed (VesselDisplayView *view, GParamSpec *pspec, VesselMachinePage *self)
{
  update_hint (self);
  /* The window handles accelerators before the view sees a key: while the
   * guest has the keyboard, Ctrl+Q and friends are the guest's. */
  GtkRoot *root = gtk_widget_get_root (GTK_WIDGET (self));
  GtkApplication *app = GTK_IS_WINDOW (root)
                            ? gtk_window_get_application (GTK_WINDOW (root))
                            : NULL;
  if (VESSEL_IS_APPLICATION (app))
    vessel_application_set_accels_enabled (
        VESSEL_APPLICATION (app), !vessel_display_view_get_grabbed (view));
}

static void
vessel_machine_page_dispose (GObject *object)
{
  VesselMachinePage *self = VESSEL_MACHINE_PAGE (object);
  vessel_machine_page_set_machine (self, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), VESSEL_TYPE_MACHINE_PAGE);
  g_clear_object (&self->actions);
  G_OBJECT_CLASS (vessel_machine_page_parent_class)->dispose (object);
}

static void
vessel_machine_page_class_init (VesselMachinePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);
  object_class->dispose = vessel_machine_page_dispose;
  gtk_widget_class_set_layout_manager_type (widget_class,
                                            GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_template_from_resource (
      widget_class, "/org/vessel/Vessel/ui/vessel-machine-page.ui");
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage, box);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        header_revealer);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        window_title);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        start_button);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        pause_button);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        resume_button);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        shutdown_button);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        console_toggle);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        view_stack);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        stopped_page);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        display_overlay);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        hint_revealer);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        hint_label);
  gtk_widget_class_bind_template_child (widget_class, VesselMachinePage,
                                        console_scroller);
}

static void
vessel_machine_page_init (VesselMachinePage *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  self->actions = g_simple_action_group_new ();
  g_action_map_add_action_entries (G_ACTION_MAP (self->actions), page_actions,
                                   G_N_ELEMENTS (page_actions), self);
  gtk_widget_insert_action_group (GTK_WIDGET (self), "machine",
                                  G_ACTION_GROUP (self->actions));

  self->display = VESSEL_DISPLAY_VIEW (vessel_display_view_new ());
  gtk_widget_set_hexpand (GTK_WIDGET (self->display), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self->display), TRUE);
  gtk_overlay_set_child (self->display_overlay, GTK_WIDGET (self->display));
  g_signal_connect (self->display, "notify::grabbed", G_CALLBACK (on_grabbed),
                    self);

  self->console = vessel_console_new ();
  gtk_scrolled_window_set_child (self->console_scroller,
                                 GTK_WIDGET (self->console));
  g_signal_connect (self->console, "input", G_CALLBACK (on_console_input),
                    self);
  update_state (self);
  update_hint (self);
}
