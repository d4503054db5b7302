/* A machine in the library's grid or list. */
#pragma once

#include "app/vessel-machine.h"

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_MACHINE_TILE (vessel_machine_tile_get_type ())
G_DECLARE_FINAL_TYPE (VesselMachineTile, vessel_machine_tile, VESSEL,
                      MACHINE_TILE, GtkWidget)

/* @compact: a row for the list (small picture beside the labels). */
GtkWidget *vessel_machine_tile_new (gboolean compact);
void vessel_machine_tile_set_machine (VesselMachineTile *self,
                                      VesselMachine *machine);

G_END_DECLS
