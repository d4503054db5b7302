/* A machine's properties: name, memory, CPUs, the CD-ROM and disks, boot
 * order, and the VNC and SPICE exports. Every change is written to the
 * definition at once. */
#pragma once

#include "app/vessel-machine.h"

#include <adwaita.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_PROPERTIES (vessel_properties_get_type ())
G_DECLARE_FINAL_TYPE (VesselProperties, vessel_properties, VESSEL,
                      PROPERTIES, AdwPreferencesWindow)

VesselProperties *vessel_properties_new (VesselMachine *machine);

G_END_DECLS
