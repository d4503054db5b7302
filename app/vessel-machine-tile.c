/* A machine in the library (see vessel-machine-tile.h). */
#include "app/vessel-machine-tile.h"

#include <glib/gi18n.h>

struct _VesselMachineTile {
  GtkWidget parent_instance;
  GtkBox *box;
  GtkBox *labels;
  GtkStack *picture_stack;
  GtkPicture *picture;
  GtkLabel *title_label;
  GtkLabel *subtitle_label;
  VesselMachine *machine;
  gulong notify_handler;
};

G_DEFINE_FINAL_TYPE (VesselMachineTile, vessel_machine_tile, GTK_TYPE_WIDGET)

static void
update (VesselMachineTile *self)
{
  if (!self->machine)
    return;
  gtk_label_set_text (self->title_label,
                      vessel_machine_get_title (self->machine));
  const char *os = vessel_machine_get_os_name (self->machine);
  const char *state
      = vessel_machine_state_label (vessel_machine_get_state (self->machine));
  g_autofree char *sub = os ? g_strdup_printf ("%s · %s", state, os)
                            : g_strdup (state);
  gtk_label_set_text (self->subtitle_label, sub);
  GdkPaintable *thumb = vessel_machine_get_thumbnail (self->machine);
  gboolean show = thumb && vessel_machine_is_active (self->machine);
  gtk_picture_set_paintable (self->picture, show ? thumb : NULL);
  gtk_stack_set_visible_child_name (self->picture_stack,
                                    show ? "picture" : "icon");
  /* A black frame around the live screen; a plain card for the icon. */
  if (show)
    {
      gtk_widget_remove_css_class (GTK_WIDGET (self->picture_stack), "card");
      gtk_widget_add_css_class (GTK_WIDGET (self->picture_stack),
                                "vessel-thumbnail");
    }
  else
    {
      gtk_widget_remove_css_class (GTK_WIDGET (self->picture_stack),
                                   "vessel-thumbnail");
      gtk_widget_add_css_class (GTK_WIDGET (self->picture_stack), "card");
    }
}

static void
on_notify (VesselMachine *m, GParamSpec *pspec, VesselMachineTile *self)
{
  update (self);
}

void
vessel_machine_tile_set_machine (VesselMachineTile *self,
                                 VesselMachine *machine)
{
  if (self->machine)
    {
      g_clear_signal_handler (&self->notify_handler, self->machine);
      g_clear_object (&self->machine);
    }
  if (machine)
    {
      self->machine = g_object_ref (machine);
      self->notify_handler = g_signal_connect (machine, "notify",
                                               G_CALLBACK (on_notify), self);
      update (self);
    }
}

static void
vessel_machine_tile_dispose (GObject *object)
{
  VesselMachineTile *self = VESSEL_MACHINE_TILE (object);
  vessel_machine_tile_set_machine (self, NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), VESSEL_TYPE_MACHINE_TILE);
  G_OBJECT_CLASS (vessel_machine_tile_parent_class)->dispose (object);
}

static void
vessel_machine_tile_class_init (VesselMachineTileClass *klass)
{
  GtkWidgetClass *wc = GTK_WIDGET_CLASS (klass);
  G_OBJECT_CLASS (klass)->dispose = vessel_machine_tile_dispose;
  gtk_widget_class_set_layout_manager_type (wc, GTK_TYPE_BIN_LAYOUT);
  gtk_widget_class_set_template_from_resource (
      wc, "/org/vessel/Vessel/ui/vessel-machine-tile.ui");
  gtk_widget_class_bind_template_child (wc, VesselMachineTile, box);
  gtk_widget_class_bind_template_child (wc, VesselMachineTile, labels);
  gtk_widget_class_bind_template_child (wc, VesselMachineTile, picture_stack);
  gtk_widget_class_bind_template_child (wc, VesselMachineTile, picture);
  gtk_widget_class_bind_template_child (wc, VesselMachineTile, title_label);
  gtk_widget_class_bind_template_child (wc, VesselMachineTile,
                                        subtitle_label);
}

static void
vessel_machine_tile_init (VesselMachineTile *self)
{
  gtk_widget_init_template (GTK_WIDGET (self));
}

GtkWidget *
vessel_machine_tile_new (gboolean compact)
{
  VesselMachineTile *self = g_object_new (VESSEL_TYPE_MACHINE_TILE, NULL);
  if (compact)
    {
      gtk_orientable_set_orientation (GTK_ORIENTABLE (self->box),
                                      GTK_ORIENTATION_HORIZONTAL);
      gtk_widget_set_size_request (GTK_WIDGET (self->picture_stack), 64, 48);
      gtk_widget_set_margin_top (GTK_WIDGET (self->box), 6);
      gtk_widget_set_margin_bottom (GTK_WIDGET (self->box), 6);
      gtk_widget_set_halign (GTK_WIDGET (self->title_label), GTK_ALIGN_START);
      gtk_widget_set_halign (GTK_WIDGET (self->subtitle_label),
                             GTK_ALIGN_START);
      gtk_box_set_spacing (self->box, 12);
    }
  return GTK_WIDGET (self);
}
