/* The Vessel application: one library of machines, one main window, the
 * app-wide actions (new-machine, import, about, quit) and their
 * accelerators. The engine of every running machine lives in this
 * process. */
#pragma once

#include "app/vessel-library.h"
#include "app/vessel-window.h"
#include "wizards/vessel-assistant.h"

#include <adwaita.h>

G_BEGIN_DECLS

#define VESSEL_APPLICATION_ID "org.vessel.Vessel"

#define VESSEL_TYPE_APPLICATION (vessel_application_get_type ())
G_DECLARE_FINAL_TYPE (VesselApplication, vessel_application, VESSEL,
                      APPLICATION, AdwApplication)

VesselApplication *vessel_application_new (void);
VesselLibrary *vessel_application_get_library (VesselApplication *self);
/* The main window (made on first activation), or NULL. */
VesselWindow *vessel_application_get_window (VesselApplication *self);
/* The question asked when quitting with machines running, while it is
 * open (for tests). */
GtkWindow *vessel_application_get_quit_dialog (VesselApplication *self);

/* Turns the app's keyboard accelerators off while a guest has the keyboard
 * (the display view is grabbed), and back on. */
void vessel_application_set_accels_enabled (VesselApplication *self,
                                            gboolean enabled);

/* The new-machine assistant while it is open (app.new-machine opens it),
 * or NULL. */
VesselAssistant *vessel_application_get_assistant (VesselApplication *self);

G_END_DECLS
