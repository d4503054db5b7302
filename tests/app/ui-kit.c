/* Helpers for the app's UI tests: waiting on the main loop without
 * sleeping, reading the window back (its own rendering) and OCR. */
#include "tests/app/ui-kit.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

char *ui_kit_tmpdir;
GtkWidget *ui_kit_ocr_focus;

/* ---- waiting without sleeping ------------------------------------- */

static gboolean
wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop until @cond holds or @seconds pass. */
gboolean
wait_for (gboolean (*cond) (gpointer), gpointer data, int seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
  guint tick = g_timeout_add (100, wake, NULL);
  gboolean ok;
  while (!(ok = cond (data)) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  return ok;
}

void
spin (int ms)
{
  gint64 until = g_get_monotonic_time () + (gint64) ms * 1000;
  guint tick = g_timeout_add (20, wake, NULL);
  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
}

/* ---- reading the window -------------------------------------------- */


GdkTexture *
window_texture (GtkWidget *window)
{
  int w = gtk_widget_get_width (window), h = gtk_widget_get_height (window);
  g_assert_cmpint (w, >, 0);
  GdkPaintable *p = gtk_widget_paintable_new (window);
  GskRenderNode *node = NULL;
  /* Between a page change and its next frame the window has nothing to
   * draw yet: let the frame clock run. */
  for (int tries = 0; !node && tries < 100; tries++)
    {
      GtkSnapshot *s = gtk_snapshot_new ();
      gdk_paintable_snapshot (p, s, w, h);
      node = gtk_snapshot_free_to_node (s);
      if (!node)
        spin (50);
    }
  g_assert_nonnull (node);
  GskRenderer *r = gtk_native_get_renderer (GTK_NATIVE (window));
  GdkTexture *t = gsk_renderer_render_texture (r, node,
                                               &GRAPHENE_RECT_INIT (0, 0, w, h));
  gsk_render_node_unref (node);
  g_object_unref (p);
  return t;
}

void
save_window (GtkWidget *window, const char *dir, const char *name)
{
  g_autoptr (GdkTexture) t = window_texture (window);
  g_autofree char *path = g_build_filename (dir, name, NULL);
  g_assert_true (gdk_texture_save_to_png (t, path));
  g_test_message ("screenshot: %s", path);
}

/* What OCR reads best: dark text on a light ground, so a region that is
 * mostly dark (the guest's text screen) is inverted. */
static GdkTexture *
ocr_region (GdkTexture *t, const graphene_rect_t *r)
{
  int tw = gdk_texture_get_width (t), th = gdk_texture_get_height (t);
  int x0 = CLAMP ((int) r->origin.x, 0, tw), y0 = CLAMP ((int) r->origin.y, 0, th);
  int w = MIN ((int) r->size.width, tw - x0);
  int h = MIN ((int) r->size.height, th - y0);
  g_assert_cmpint (w, >, 0);
  g_assert_cmpint (h, >, 0);
  gsize stride = (gsize) tw * 4;
  g_autofree guint8 *all = g_malloc (stride * th);
  gdk_texture_download (t, all, stride);
  guint8 *out = g_malloc ((gsize) w * h * 4);
  guint64 luma = 0;
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        const guint8 *p = all + (gsize) (y0 + y) * stride + (gsize) (x0 + x) * 4;
        luma += p[0] + p[1] + p[2];
        memcpy (out + ((gsize) y * w + x) * 4, p, 4);
      }
  if (luma / ((guint64) w * h * 3) < 96)
    for (gsize i = 0; i < (gsize) w * h; i++)
      for (int c = 0; c < 3; c++)
        out[i * 4 + c] = 255 - out[i * 4 + c];
  g_autoptr (GBytes) bytes = g_bytes_new_take (out, (gsize) w * h * 4);
  return gdk_memory_texture_new (w, h, GDK_MEMORY_DEFAULT, bytes,
                                 (gsize) w * 4);
}

static char *
ocr (GdkTexture *t)
{
  g_autofree char *png = g_build_filename (ui_kit_tmpdir, "ocr.png", NULL);
  g_assert_true (gdk_texture_save_to_png (t, png));
  const char *argv[] = { "tesseract", png, "stdout", NULL };
  char *out = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  if (!g_spawn_sync (NULL, (char **) argv, NULL,
                     G_SPAWN_SEARCH_PATH | G_SPAWN_STDERR_TO_DEV_NULL, NULL,
                     NULL, &out, NULL, &status, &error))
    g_error ("tesseract: %s", error->message);
  return out;
}


/* The window as text, through tesseract: the whole window, then the
 * focus widget (the guest's screen) on its own, since OCR reads a text
 * screen poorly inside a busy window. */
char *
window_text (GtkWidget *window)
{
  g_autoptr (GdkTexture) t = window_texture (window);
  graphene_rect_t all = GRAPHENE_RECT_INIT (0, 0, gdk_texture_get_width (t),
                                            gdk_texture_get_height (t));
  g_autoptr (GdkTexture) whole = ocr_region (t, &all);
  g_autofree char *text = ocr (whole);
  graphene_rect_t b;
  if (!ui_kit_ocr_focus || !gtk_widget_get_mapped (ui_kit_ocr_focus)
      || !gtk_widget_compute_bounds (ui_kit_ocr_focus, window, &b))
    return g_steal_pointer (&text);
  if (b.size.width < 8 || b.size.height < 8)
    return g_steal_pointer (&text); /* not laid out yet */
  g_autoptr (GdkTexture) part = ocr_region (t, &b);
  g_autofree char *more = ocr (part);
  return g_strconcat (text, more, NULL);
}

typedef struct {
  GtkWidget *window;
  const char *needle;
  char *last;
  gint64 next;
} TextWait;

static gboolean
window_shows (gpointer data)
{
  TextWait *w = data;
  /* OCR takes a while: look about once a second. */
  if (g_get_monotonic_time () < w->next)
    return FALSE;
  w->next = g_get_monotonic_time () + G_USEC_PER_SEC;
  g_free (w->last);
  w->last = window_text (w->window);
  if (g_getenv ("VESSEL_UI_TEST_VERBOSE"))
    g_printerr ("[%.1f] %s\n", g_get_monotonic_time () / 1e6, w->last);
  return strstr (w->last, w->needle) != NULL;
}

void
assert_window_shows (GtkWidget *window, const char *needle, int seconds)
{
  TextWait w = { window, needle, NULL, 0 };
  if (!wait_for (window_shows, &w, seconds))
    g_error ("the window never showed '%s'; last read:\n%s", needle,
             w.last ? w.last : "");
  g_test_message ("window shows '%s'", needle);
  g_free (w.last);
}

/* ---- state waits ----------------------------------------------------- */

typedef struct {
  VesselMachine *m;
  VesselMachineState state;
} StateWait;

static gboolean
in_state (gpointer data)
{
  StateWait *w = data;
  return vessel_machine_get_state (w->m) == w->state;
}

void
assert_state (VesselMachine *m, VesselMachineState state, int seconds)
{
  StateWait w = { m, state };
  if (!wait_for (in_state, &w, seconds))
    g_error ("machine is %s, expected %s",
             vessel_machine_state_label (vessel_machine_get_state (m)),
             vessel_machine_state_label (state));
}

gboolean
shown (gpointer data)
{
  return gtk_widget_get_mapped (data) && gtk_widget_get_width (data) > 0;
}

void
activate (GtkWidget *w, const char *action, GVariant *param)
{
  g_assert_true (gtk_widget_activate_action_variant (w, action, param));
}


/* Warnings are fatal in tests, but for the test machine having no D-Bus
 * session (the app runs without one; only its single-instance and portal
 * features need it). */
static gboolean
fatal_filter (const char *domain, GLogLevelFlags level, const char *message,
              gpointer data)
{
  return !(message && strstr (message, "session bus"));
}

gboolean
ui_kit_init (int *argc, char ***argv)
{
  g_test_init (argc, argv, NULL);
  g_test_log_set_fatal_handler (fatal_filter, NULL);
  int fd = g_open ("/dev/kvm", O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    {
      g_print ("SKIP: /dev/kvm is not usable here (%s)\n", g_strerror (errno));
      return FALSE;
    }
  close (fd);
  ui_kit_tmpdir = g_dir_make_tmp ("vessel-ui-XXXXXX", NULL);
  g_autofree char *data = g_build_filename (ui_kit_tmpdir, "data", NULL);
  g_setenv ("XDG_DATA_HOME", data, TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  return TRUE;
}

void
ui_kit_cleanup (void)
{
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", ui_kit_tmpdir);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", ui_kit_tmpdir);
  g_clear_pointer (&ui_kit_tmpdir, g_free);
}
