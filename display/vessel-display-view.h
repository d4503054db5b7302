/* VesselDisplayView: the guest's screen in a GTK window, and the keyboard
 * and pointer back to the guest.
 *
 * Shows a display_surface (display/surface.h): a listener records the
 * damage on the engine's thread and wakes the UI thread, which uploads only
 * the dirty rectangles into a GL texture (a GtkGLArea child, through
 * libepoxy) and draws it fitted to the widget with the aspect ratio kept
 * (black bars) or one guest pixel per device pixel, centred. Without GL
 * (the area failed to realize) the same picture is drawn from a
 * GdkMemoryTexture instead.
 *
 * Input goes to a display_input (display/input.h) while the view is
 * grabbed: a click into the view grabs it (focus, system shortcuts
 * inhibited, pointer hidden); pressing and releasing Ctrl+Alt together
 * releases it, as does losing focus. The view shows no hint of its own:
 * the parent shows one while "grabbed" is FALSE, naming "release-keys".
 *
 * All functions are for the UI thread. */
#pragma once

#include <gtk/gtk.h>

#include "display/input.h"
#include "display/surface.h"

G_BEGIN_DECLS

typedef enum {
  VESSEL_DISPLAY_SCALE_FIT,        /* scaled to the widget, aspect kept */
  VESSEL_DISPLAY_SCALE_ONE_TO_ONE, /* one guest pixel per device pixel */
} VesselDisplayScaleMode;

GType vessel_display_scale_mode_get_type (void) G_GNUC_CONST;
#define VESSEL_TYPE_DISPLAY_SCALE_MODE (vessel_display_scale_mode_get_type ())

#define VESSEL_TYPE_DISPLAY_VIEW (vessel_display_view_get_type ())
G_DECLARE_FINAL_TYPE (VesselDisplayView, vessel_display_view, VESSEL,
                      DISPLAY_VIEW, GtkWidget)

GtkWidget *vessel_display_view_new (void);

/* Shows @surface and sends input to @input (either may be NULL; NULL, NULL
 * detaches). The caller keeps both alive until they are detached: by
 * another call, or when the view is disposed. */
void vessel_display_view_set_source (VesselDisplayView *self,
                                     display_surface *surface,
                                     display_input *input);

void vessel_display_view_set_scale_mode (VesselDisplayView *self,
                                         VesselDisplayScaleMode mode);
VesselDisplayScaleMode vessel_display_view_get_scale_mode (VesselDisplayView *self);

/* The guest's resolution (0 x 0 without a surface). It changes with
 * ::guest-size-changed and notifications of "guest-width"/"guest-height". */
int vessel_display_view_get_guest_width (VesselDisplayView *self);
int vessel_display_view_get_guest_height (VesselDisplayView *self);

/* Whether keyboard and pointer go to the guest. */
gboolean vessel_display_view_get_grabbed (VesselDisplayView *self);
/* Grabs as a click would (does nothing without a surface). */
void vessel_display_view_grab (VesselDisplayView *self);
/* Releases the grab and every key and button the guest holds. */
void vessel_display_view_ungrab (VesselDisplayView *self);
/* The keys that release the grab, translated, for the parent's hint
 * (e.g. "Click to control the machine · Ctrl+Alt releases"). */
const char *vessel_display_view_get_release_keys (VesselDisplayView *self);

/* Presses @xt_codes (set 1, display/input.h) in order and releases them in
 * reverse: Ctrl+Alt+Del is { 0x1d, 0x38, 0xe053 }. Needs no grab. */
void vessel_display_view_send_keys (VesselDisplayView *self,
                                    const unsigned *xt_codes, size_t n);

/* The guest's screen as it is now, or NULL without a surface. */
GdkTexture *vessel_display_view_get_texture_snapshot (VesselDisplayView *self);
/* Writes the guest's screen to @path as PNG. */
gboolean vessel_display_view_save_screenshot (VesselDisplayView *self,
                                              const char *path,
                                              GError **error);

/* Maps a point in widget coordinates to a guest pixel through the current
 * scale and bars. Returns FALSE for points outside the guest's picture (in
 * the bars, or without a surface); *gx, *gy are then the nearest guest
 * pixel (clamped), or 0 without a surface. */
gboolean vessel_display_view_widget_to_guest (VesselDisplayView *self,
                                              double wx, double wy,
                                              int *gx, int *gy);

/* Whether the guest is drawn through GL (FALSE: the software path, or not
 * realized yet). */
gboolean vessel_display_view_is_accelerated (VesselDisplayView *self);

G_END_DECLS
