/* The user's machines: every definition in the library directory
 * ($XDG_DATA_HOME/vessel/), as a list model of VesselMachine. */
#pragma once

#include "app/vessel-machine.h"

#include <gio/gio.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_LIBRARY (vessel_library_get_type ())
G_DECLARE_FINAL_TYPE (VesselLibrary, vessel_library, VESSEL, LIBRARY, GObject)

/* @dir NULL: $XDG_DATA_HOME/vessel. */
VesselLibrary *vessel_library_new (const char *dir);
const char *vessel_library_get_dir (VesselLibrary *self);
/* Reads every *.xml definition; one that cannot be read is skipped and
 * reported in @errors (messages a user can act on). */
void vessel_library_load (VesselLibrary *self, GPtrArray *errors);
/* A GListModel of VesselMachine, sorted by title. */
GListModel *vessel_library_get_model (VesselLibrary *self);
VesselMachine *vessel_library_find (VesselLibrary *self, const char *uuid);
guint vessel_library_count_active (VesselLibrary *self);

/* Adds a machine for @domain: writes its definition as DIR/UUID.xml (the
 * name made unique first). */
VesselMachine *vessel_library_add (VesselLibrary *self,
                                   GVirConfigDomain *domain, GError **error);
/* Imports a definition file (a copy is kept; a UUID clash gets a new
 * UUID). */
VesselMachine *vessel_library_import (VesselLibrary *self, const char *path,
                                      GError **error);
/* Where a new disk of the machine's goes: DIR/UUID-NAME. */
char *vessel_library_disk_path (VesselLibrary *self, VesselMachine *machine,
                                const char *name);
/* Where a UEFI machine's variable store lives: UUID_VARS.fd beside its
 * definition (libvirt names its copies NAME_VARS.fd). Deleting the machine
 * deletes it. */
char *vessel_library_nvram_path (VesselLibrary *self, const char *uuid);

/* Deleting is two steps so that it can be undone: remove() takes the
 * machine out of the model (nothing on disk changes); then either
 * undo_remove() puts it back, or finish_remove() deletes the definition and
 * the disks Vessel made for it inside the library directory (never an ISO
 * or a disk the user brought from elsewhere). */
gboolean vessel_library_remove (VesselLibrary *self, VesselMachine *machine,
                                GError **error);
void vessel_library_undo_remove (VesselLibrary *self, VesselMachine *machine);
void vessel_library_finish_remove (VesselLibrary *self,
                                   VesselMachine *machine);
/* finish_remove() for every pending removal (quitting). */
void vessel_library_finish_all (VesselLibrary *self);

G_END_DECLS
