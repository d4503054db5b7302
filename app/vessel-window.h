/* The main window: the machines library (grid or list, search, the empty
 * state) and one machine's page. Window actions ("win."): show-library,
 * open-machine(s uuid), delete-machine(s uuid), undo-delete,
 * properties(s uuid), view-as-list (boolean state), toast(s message). */
#pragma once

#include "app/vessel-library.h"
#include "app/vessel-machine-page.h"

#include <adwaita.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_WINDOW (vessel_window_get_type ())
G_DECLARE_FINAL_TYPE (VesselWindow, vessel_window, VESSEL, WINDOW,
                      AdwApplicationWindow)

VesselWindow *vessel_window_new (GtkApplication *app, VesselLibrary *library);
void vessel_window_open_machine (VesselWindow *self, VesselMachine *machine);
void vessel_window_show_library (VesselWindow *self);
VesselMachinePage *vessel_window_get_machine_page (VesselWindow *self);
void vessel_window_toast (VesselWindow *self, const char *message);
/* The confirmation dialog of a delete in progress, or NULL (for tests and
 * for the app's quit flow). */
GtkWindow *vessel_window_get_pending_dialog (VesselWindow *self);
/* The undo toast of the last delete, or NULL once it is gone. */
AdwToast *vessel_window_get_undo_toast (VesselWindow *self);
/* The name of the library's visible page: "empty", "no-results", "grid"
 * or "list". */
const char *vessel_window_get_library_page (VesselWindow *self);

G_END_DECLS
