/* VesselDisplayView internals shared with its tests. */
#pragma once

#include "display/vessel-display-view.h"

G_BEGIN_DECLS

/* A key event as the key controller delivers it (hardware @keycode =
 * evdev + 8, @keyval for keys without a scan code). Returns TRUE when the
 * event was consumed (the view is grabbed). */
gboolean vessel_display_view_process_key (VesselDisplayView *self,
                                          guint keycode, guint keyval,
                                          gboolean down);

G_END_DECLS
