/* Helpers for the app's UI tests (see ui-kit.c). */
#pragma once

#include "app/vessel-application.h"

#include <gtk/gtk.h>

/* A scratch directory (set by the test's main) and the widget OCR also
 * reads on its own (the guest's screen), or NULL. */
extern char *ui_kit_tmpdir;
extern GtkWidget *ui_kit_ocr_focus;

/* Runs the main loop until @cond holds or @seconds pass. */
gboolean wait_for (gboolean (*cond) (gpointer), gpointer data, int seconds);
/* Runs the main loop for @ms (letting frames and idles happen). */
void spin (int ms);
/* The window as its renderer draws it. */
GdkTexture *window_texture (GtkWidget *window);
void save_window (GtkWidget *window, const char *dir, const char *name);
/* What tesseract reads in the window (and in ui_kit_ocr_focus). */
char *window_text (GtkWidget *window);
void assert_window_shows (GtkWidget *window, const char *needle, int seconds);
void assert_state (VesselMachine *m, VesselMachineState state, int seconds);
/* The widget is mapped with a size. */
gboolean shown (gpointer widget);
void activate (GtkWidget *w, const char *action, GVariant *param);
/* Scratch directory, XDG_DATA_HOME, no D-Bus noise: call first in main;
 * returns FALSE (after printing SKIP) where /dev/kvm is unusable. */
gboolean ui_kit_init (int *argc, char ***argv);
void ui_kit_cleanup (void);
