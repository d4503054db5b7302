/* The page of one machine: its screen (or serial console), the lifecycle
 * controls, and the "machine.*" actions they use. */
#pragma once

#include "app/vessel-machine.h"

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_MACHINE_PAGE (vessel_machine_page_get_type ())
G_DECLARE_FINAL_TYPE (VesselMachinePage, vessel_machine_page, VESSEL,
                      MACHINE_PAGE, GtkWidget)

void vessel_machine_page_set_machine (VesselMachinePage *self,
                                      VesselMachine *machine);
VesselMachine *vessel_machine_page_get_machine (VesselMachinePage *self);
/* The display widget (a VesselDisplayView). */
GtkWidget *vessel_machine_page_get_display (VesselMachinePage *self);
/* Shows the header bar or hides it (fullscreen). */
void vessel_machine_page_set_chrome_visible (VesselMachinePage *self,
                                             gboolean visible);

G_END_DECLS
