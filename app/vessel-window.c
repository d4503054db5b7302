/* The main window (see vessel-window.h). */
#include "app/vessel-window.h"

#include "app/vessel-machine-tile.h"
#include "app/vessel-properties.h"
#include "display/vessel-display-view.h"

#include <glib/gi18n.h>

struct _VesselWindow {
  AdwApplicationWindow parent_instance;

  AdwToastOverlay *toast_overlay;
  GtkStack *main_stack;
  GtkStack *library_stack;
  GtkSearchEntry *search_entry;
  GtkGridView *grid_view;
  GtkListView *list_view;
  VesselMachinePage *machine_page;

  VesselLibrary *library;
  GtkFilterListModel *filtered;
  GtkStringFilter *filter;
  gboolean as_list;

  GtkWindow *pending_dialog;
  VesselMachine *deleting; /* removed from the library, undo possible */
  AdwToast *undo_toast;
};

G_DEFINE_FINAL_TYPE (VesselWindow, vessel_window, ADW_TYPE_APPLICATION_WINDOW)

static void
update_library_page (VesselWindow *self)
{
  guint total = g_list_model_get_n_items (vessel_library_get_model (
      self->library));
  guint shown = g_list_model_get_n_items (G_LIST_MODEL (self->filtered));
  const char *page = total == 0   ? "empty"
                     : shown == 0 ? "no-results"
                     : self->as_list ? "list"
                                     : "grid";
  gtk_stack_set_visible_child_name (self->library_stack, page);
}

const char *
vessel_window_get_library_page (VesselWindow *self)
{
  return gtk_stack_get_visible_child_name (self->library_stack);
}

static void
on_install_finished (VesselMachine *m, VesselWindow *self)
{
  g_autofree char *text = g_strdup_printf (
      _("“%s” is installed: the CD image was taken out and the machine "
        "boots from its disk"),
      vessel_machine_get_title (m));
  vessel_window_toast (self, text);
}

/* Tell the user when an install ends, whichever page is showing. */
static void
watch_installs (VesselWindow *self, GListModel *model, guint pos, guint n)
{
  for (guint i = pos; i < pos + n; i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      if (!g_signal_handler_find (m, G_SIGNAL_MATCH_FUNC | G_SIGNAL_MATCH_DATA,
                                  0, 0, NULL, on_install_finished, self))
        g_signal_connect_object (m, "install-finished",
                                 G_CALLBACK (on_install_finished), self, 0);
    }
}

static void
on_items_changed (GListModel *model, guint pos, guint removed, guint added,
                  VesselWindow *self)
{
  watch_installs (self, model, pos, added);
  update_library_page (self);
}

void
vessel_window_toast (VesselWindow *self, const char *message)
{
  adw_toast_overlay_add_toast (self->toast_overlay, adw_toast_new (message));
}

VesselMachinePage *
vessel_window_get_machine_page (VesselWindow *self)
{
  return self->machine_page;
}

GtkWindow *
vessel_window_get_pending_dialog (VesselWindow *self)
{
  return self->pending_dialog;
}

AdwToast *
vessel_window_get_undo_toast (VesselWindow *self)
{
  return self->undo_toast;
}

void
vessel_window_open_machine (VesselWindow *self, VesselMachine *machine)
{
  vessel_machine_page_set_machine (self->machine_page, machine);
  gtk_stack_set_visible_child_name (self->main_stack, "machine");
}

void
vessel_window_show_library (VesselWindow *self)
{
  if (gtk_window_is_fullscreen (GTK_WINDOW (self)))
    gtk_window_unfullscreen (GTK_WINDOW (self));
  gtk_stack_set_visible_child_name (self->main_stack, "library");
  /* The page keeps its machine: the guest goes on running and its view
   * lets go of the keyboard. */
  vessel_display_view_ungrab (VESSEL_DISPLAY_VIEW (
      vessel_machine_page_get_display (self->machine_page)));
}

/* ---- list items ---------------------------------------------------- */

static void
tile_setup (GtkSignalListItemFactory *f, GtkListItem *item, gpointer compact)
{
  gtk_list_item_set_child (item,
                           vessel_machine_tile_new (GPOINTER_TO_INT (compact)));
}

static void
tile_bind (GtkSignalListItemFactory *f, GtkListItem *item, gpointer data)
{
  vessel_machine_tile_set_machine (
      VESSEL_MACHINE_TILE (gtk_list_item_get_child (item)),
      gtk_list_item_get_item (item));
}

static void
tile_unbind (GtkSignalListItemFactory *f, GtkListItem *item, gpointer data)
{
  vessel_machine_tile_set_machine (
      VESSEL_MACHINE_TILE (gtk_list_item_get_child (item)), NULL);
}

static GtkListItemFactory *
tile_factory (gboolean compact)
{
  GtkListItemFactory *f = gtk_signal_list_item_factory_new ();
  g_signal_connect (f, "setup", G_CALLBACK (tile_setup),
                    GINT_TO_POINTER (compact));
  g_signal_connect (f, "bind", G_CALLBACK (tile_bind), NULL);
  g_signal_connect (f, "unbind", G_CALLBACK (tile_unbind), NULL);
  return f;
}

static void
on_activate_item (GtkWidget *view, guint position, VesselWindow *self)
{
  g_autoptr (VesselMachine) m
      = g_list_model_get_item (G_LIST_MODEL (self->filtered), position);
  if (m)
    vessel_window_open_machine (self, m);
}

static void
on_search_changed (GtkSearchEntry *entry, VesselWindow *self)
{
  gtk_string_filter_set_search (self->filter,
                                gtk_editable_get_text (GTK_EDITABLE (entry)));
}

/* ---- actions ------------------------------------------------------- */

static VesselMachine *
machine_from_param (VesselWindow *self, GVariant *param)
{
  return vessel_library_find (self->library,
                              g_variant_get_string (param, NULL));
}

static void
action_show_library (GSimpleAction *a, GVariant *p, gpointer data)
{
  vessel_window_show_library (data);
}

static void
action_open_machine (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselWindow *self = data;
  VesselMachine *m = machine_from_param (self, p);
  if (m)
    vessel_window_open_machine (self, m);
}

static void
action_toast (GSimpleAction *a, GVariant *p, gpointer data)
{
  vessel_window_toast (data, g_variant_get_string (p, NULL));
}

static void
action_view_as_list (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselWindow *self = data;
  g_simple_action_set_state (a, p);
  self->as_list = g_variant_get_boolean (p);
  update_library_page (self);
}

static void
on_undo_toast_dismissed (AdwToast *toast, VesselWindow *self)
{
  if (self->deleting)
    {
      vessel_library_finish_remove (self->library, self->deleting);
      g_clear_object (&self->deleting);
    }
  if (self->undo_toast == toast)
    self->undo_toast = NULL;
}

static void
action_undo_delete (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselWindow *self = data;
  if (!self->deleting)
    return;
  vessel_library_undo_remove (self->library, self->deleting);
  g_clear_object (&self->deleting);
  if (self->undo_toast)
    adw_toast_dismiss (self->undo_toast);
}

static void
delete_confirmed (VesselWindow *self, VesselMachine *m)
{
  /* One undo at a time: an earlier delete becomes final now. */
  if (self->undo_toast)
    adw_toast_dismiss (self->undo_toast);
  g_autoptr (GError) error = NULL;
  if (!vessel_library_remove (self->library, m, &error))
    {
      vessel_window_toast (self, error->message);
      return;
    }
  if (vessel_machine_page_get_machine (self->machine_page) == m)
    {
      vessel_machine_page_set_machine (self->machine_page, NULL);
      vessel_window_show_library (self);
    }
  self->deleting = g_object_ref (m);
  g_autofree char *title = g_strdup_printf (_("“%s” deleted"),
                                            vessel_machine_get_title (m));
  AdwToast *toast = adw_toast_new (title);
  adw_toast_set_button_label (toast, _("_Undo"));
  adw_toast_set_action_name (toast, "win.undo-delete");
  adw_toast_set_timeout (toast, 10);
  g_signal_connect (toast, "dismissed", G_CALLBACK (on_undo_toast_dismissed),
                    self);
  self->undo_toast = toast;
  adw_toast_overlay_add_toast (self->toast_overlay, toast);
}

static void
on_delete_response (AdwMessageDialog *dialog, const char *response,
                    VesselWindow *self)
{
  VesselMachine *m = g_object_get_data (G_OBJECT (dialog), "machine");
  if (!g_strcmp0 (response, "delete") && m)
    delete_confirmed (self, m);
  if (self->pending_dialog == GTK_WINDOW (dialog))
    self->pending_dialog = NULL;
}

static void
action_delete_machine (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselWindow *self = data;
  VesselMachine *m = machine_from_param (self, p);
  if (!m)
    return;
  g_autofree char *heading = g_strdup_printf (_("Delete “%s”?"),
                                              vessel_machine_get_title (m));
  GtkWidget *dialog = adw_message_dialog_new (
      GTK_WINDOW (self), heading,
      _("Its definition and the disks Vessel made for it will be deleted. "
        "ISO images and disks from elsewhere are kept."));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog), "cancel",
                                    _("_Cancel"), "delete", _("_Delete"),
                                    NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog),
                                              "delete",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog),
                                           "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog),
                                         "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "machine", g_object_ref (m),
                          g_object_unref);
  g_signal_connect (dialog, "response", G_CALLBACK (on_delete_response), self);
  self->pending_dialog = GTK_WINDOW (dialog);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
action_properties (GSimpleAction *a, GVariant *p, gpointer data)
{
  VesselWindow *self = data;
  VesselMachine *m = machine_from_param (self, p);
  if (!m)
    return;
  GtkWindow *w = GTK_WINDOW (vessel_properties_new (m));
  gtk_window_set_transient_for (w, GTK_WINDOW (self));
  gtk_window_set_modal (w, TRUE);
  gtk_window_present (w);
}

static const GActionEntry win_actions[] = {
  { "show-library", action_show_library },
  { "open-machine", action_open_machine, "s" },
  { "delete-machine", action_delete_machine, "s" },
  { "undo-delete", action_undo_delete },
  { "properties", action_properties, "s" },
  { "view-as-list", NULL, NULL, "false", action_view_as_list },
  { "toast", action_toast, "s" },
};

static void
on_fullscreened (VesselWindow *self, GParamSpec *pspec, gpointer data)
{
  vessel_machine_page_set_chrome_visible (
      self->machine_page, !gtk_window_is_fullscreen (GTK_WINDOW (self)));
}

static void
vessel_window_dispose (GObject *object)
{
  VesselWindow *self = VESSEL_WINDOW (object);
  if (self->deleting)
    {
      vessel_library_finish_remove (self->library, self->deleting);
      g_clear_object (&self->deleting);
    }
  if (self->filtered)
    g_signal_handlers_disconnect_by_data (self->filtered, self);
  if (self->library)
    g_signal_handlers_disconnect_by_data (
        vessel_library_get_model (self->library), self);
  gtk_widget_dispose_template (GTK_WIDGET (self), VESSEL_TYPE_WINDOW);
  g_clear_object (&self->filtered);
  g_clear_object (&self->library);
  G_OBJECT_CLASS (vessel_window_parent_class)->dispose (object);
}

static void
vessel_window_class_init (VesselWindowClass *klass)
{
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  G_OBJECT_CLASS (klass)->dispose = vessel_window_dispose;
  g_type_ensure (VESSEL_TYPE_MACHINE_PAGE);
  gtk_widget_class_set_template_from_resource (
      wc, "/org/vessel/Vessel/ui/vessel-window.ui");
  gtk_widget_class_bind_template_child (wc, VesselWindow, toast_overlay);
  gtk_widget_class_bind_template_child (wc, VesselWindow, main_stack);
  gtk_widget_class_bind_template_child (wc, VesselWindow, library_stack);
  gtk_widget_class_bind_template_child (wc, VesselWindow, search_entry);
  gtk_widget_class_bind_template_child (wc, VesselWindow, grid_view);
  gtk_widget_class_bind_template_child (wc, VesselWindow, list_view);
  gtk_widget_class_bind_template_child (wc, VesselWindow, machine_page);
}

static void
vessel_window_init (VesselWindow *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
  g_action_map_add_action_entries (G_ACTION_MAP (self), win_actions,
                                   G_N_ELEMENTS (win_actions), self);
  g_signal_connect (self, "notify::fullscreened",
                    G_CALLBACK (on_fullscreened), NULL);
  g_signal_connect (self->search_entry, "search-changed",
                    G_CALLBACK (on_search_changed), self);
}

VesselWindow *
vessel_window_new (GtkApplication *app, VesselLibrary *library)
{
  VesselWindow *self = g_object_new (VESSEL_TYPE_WINDOW, "application", app,
                                     NULL);
  self->library = g_object_ref (library);
  GListModel *model = vessel_library_get_model (library);
  self->filter = gtk_string_filter_new (
      gtk_property_expression_new (VESSEL_TYPE_MACHINE, NULL, "title"));
  gtk_string_filter_set_ignore_case (self->filter, TRUE);
  gtk_string_filter_set_match_mode (self->filter,
                                    GTK_STRING_FILTER_MATCH_MODE_SUBSTRING);
  self->filtered = gtk_filter_list_model_new (g_object_ref (model),
                                              GTK_FILTER (self->filter));
  g_signal_connect (self->filtered, "items-changed",
                    G_CALLBACK (on_items_changed), self);
  g_signal_connect (model, "items-changed", G_CALLBACK (on_items_changed),
                    self);
  watch_installs (self, model, 0, g_list_model_get_n_items (model));

  gtk_grid_view_set_model (self->grid_view,
                           GTK_SELECTION_MODEL (gtk_no_selection_new (
                               g_object_ref (G_LIST_MODEL (self->filtered)))));
  g_autoptr (GtkListItemFactory) grid_factory = tile_factory (FALSE);
  g_autoptr (GtkListItemFactory) list_factory = tile_factory (TRUE);
  gtk_grid_view_set_factory (self->grid_view, grid_factory);
  gtk_list_view_set_model (self->list_view,
                           GTK_SELECTION_MODEL (gtk_no_selection_new (
                               g_object_ref (G_LIST_MODEL (self->filtered)))));
  gtk_list_view_set_factory (self->list_view, list_factory);
  g_signal_connect (self->grid_view, "activate",
                    G_CALLBACK (on_activate_item), self);
  g_signal_connect (self->list_view, "activate",
                    G_CALLBACK (on_activate_item), self);
  update_library_page (self);
  return self;
}
