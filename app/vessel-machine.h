/* A machine as the app sees it: its definition on disk and, while it runs,
 * the engine inside this process. Everything here is called on the UI
 * thread; the engine's threads reach it only through messages queued to
 * the main context. */
#pragma once

#include "app/vessel-definition.h"
#include "display/input.h"
#include "display/surface.h"

#include <gdk/gdk.h>
#include <glib-object.h>

G_BEGIN_DECLS

typedef enum {
  VESSEL_MACHINE_STATE_STOPPED,
  VESSEL_MACHINE_STATE_RUNNING,
  VESSEL_MACHINE_STATE_PAUSED,
  VESSEL_MACHINE_STATE_STOPPING, /* the engine is being torn down */
  VESSEL_MACHINE_STATE_ERROR,    /* it stopped with an error (see "error") */
} VesselMachineState;

GType vessel_machine_state_get_type (void);
#define VESSEL_TYPE_MACHINE_STATE (vessel_machine_state_get_type ())

#define VESSEL_TYPE_MACHINE (vessel_machine_get_type ())
G_DECLARE_FINAL_TYPE (VesselMachine, vessel_machine, VESSEL, MACHINE, GObject)

/* Takes a reference on @domain; @path is where save() writes it. */
VesselMachine *vessel_machine_new (GVirConfigDomain *domain, const char *path);
VesselMachine *vessel_machine_load (const char *path, GError **error);

GVirConfigDomain *vessel_machine_get_domain (VesselMachine *self);
const char *vessel_machine_get_path (VesselMachine *self);
const char *vessel_machine_get_uuid (VesselMachine *self);
const char *vessel_machine_get_title (VesselMachine *self);
/* The operating system's name from Vessel's metadata, or NULL. */
const char *vessel_machine_get_os_name (VesselMachine *self);
VesselMachineState vessel_machine_get_state (VesselMachine *self);
/* A translated word for the state ("Running", "Paused"...). */
const char *vessel_machine_state_label (VesselMachineState state);
/* Why the machine last failed to start or stopped with an error, or NULL. */
const char *vessel_machine_get_error (VesselMachine *self);
/* A small picture of the screen (NULL before the first frame). */
GdkPaintable *vessel_machine_get_thumbnail (VesselMachine *self);
/* Whether the engine is up (running or paused). */
gboolean vessel_machine_is_active (VesselMachine *self);

/* Writes the definition; call after changing it through
 * vessel_machine_get_domain() and the vessel_definition_* setters, then
 * vessel_machine_definition_changed(). */
gboolean vessel_machine_save (VesselMachine *self, GError **error);
void vessel_machine_definition_changed (VesselMachine *self);
void vessel_machine_set_title (VesselMachine *self, const char *title);

/* Lifecycle. start() builds and starts the engine from the definition;
 * errors (no /dev/kvm, a missing disk) come back as a GError a user can
 * act on and leave the machine stopped. */
gboolean vessel_machine_start (VesselMachine *self, GError **error);
void vessel_machine_pause (VesselMachine *self);
void vessel_machine_resume (VesselMachine *self);
/* Presses the ACPI power button. */
void vessel_machine_shutdown (VesselMachine *self);
/* Pulls the plug. */
void vessel_machine_force_off (VesselMachine *self);
void vessel_machine_reset (VesselMachine *self);
/* Stops the engine now, waiting for its threads (quitting the app). */
void vessel_machine_stop_now (VesselMachine *self);

/* The screen and the input router while the engine is up, else NULL.
 * "display-changed" is emitted before they go away and after they come. */
display_surface *vessel_machine_get_surface (VesselMachine *self);
display_input *vessel_machine_get_input (VesselMachine *self);
gboolean vessel_machine_screenshot (VesselMachine *self, const char *path,
                                    GError **error);

/* The CD-ROM: saved in the definition, and changed in the running guest
 * (a media change it sees) when the engine is up. @iso NULL ejects. */
gboolean vessel_machine_set_cdrom (VesselMachine *self, const char *iso,
                                   GError **error);

/* The install flow. A machine made from an ISO is "installing" (Vessel's
 * metadata): when its guest resets or powers off after writing to its
 * disk, the install is over: the ISO is taken out (definition and drive),
 * the disk comes first in the boot order, "installing" is cleared,
 * "install-finished" is emitted, and the guest boots from its disk (a
 * reset goes on; a power-off starts the machine again). The user can put
 * the ISO back from the properties. */
gboolean vessel_machine_is_installing (VesselMachine *self);
/* Ends the install now (the definition part only). */
void vessel_machine_finish_install (VesselMachine *self);

/* COM1: what the guest wrote so far (the last 256 KiB) and input to it.
 * "serial-output" (GBytes) carries what it writes from now on. */
GBytes *vessel_machine_get_serial_history (VesselMachine *self);
void vessel_machine_send_serial (VesselMachine *self, const guint8 *data,
                                 gsize len);

/* The URI a remote viewer opens while the export runs, or NULL. */
char *vessel_machine_get_export_uri (VesselMachine *self,
                                     VesselExportKind kind);

G_END_DECLS
