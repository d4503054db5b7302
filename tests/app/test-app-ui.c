/* The real app under Xvfb: import a machine from a definition, start it
 * with the test ISO, see the guest's first screen in the window (the
 * window's own rendering, read back with OCR), send keys, pause, resume,
 * force off and delete (with undo); the definition on disk is checked after
 * each step. Writes screenshots of the main window and of a running machine
 * to OUTDIR for the README.
 *
 *   test-app-ui ISO OUTDIR
 *
 * Needs /dev/kvm (skips, saying so, without it), a display (run it under
 * xvfb-run) and tesseract. */
#include "app/vessel-application.h"
#include "display/vessel-display-view.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <string.h>

static const char *iso;
static const char *outdir;
static char *tmpdir;

/* ---- waiting without sleeping ------------------------------------- */

static gboolean
wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop until @cond holds or @seconds pass. */
static gboolean
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

static void
spin (int ms)
{
  gint64 until = g_get_monotonic_time () + (gint64) ms * 1000;
  guint tick = g_timeout_add (20, wake, NULL);
  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
}

/* ---- reading the window -------------------------------------------- */

static void spin (int ms);

static GdkTexture *
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

static void
save_window (GtkWidget *window, const char *name)
{
  g_autoptr (GdkTexture) t = window_texture (window);
  g_autofree char *path = g_build_filename (outdir, name, NULL);
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
  g_autofree char *png = g_build_filename (tmpdir, "ocr.png", NULL);
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

static GtkWidget *ocr_focus; /* a widget to read on its own, or NULL */

/* The window as text, through tesseract: the whole window, then the
 * focus widget (the guest's screen) on its own, since OCR reads a text
 * screen poorly inside a busy window. */
static char *
window_text (GtkWidget *window)
{
  g_autoptr (GdkTexture) t = window_texture (window);
  graphene_rect_t all = GRAPHENE_RECT_INIT (0, 0, gdk_texture_get_width (t),
                                            gdk_texture_get_height (t));
  g_autoptr (GdkTexture) whole = ocr_region (t, &all);
  g_autofree char *text = ocr (whole);
  graphene_rect_t b;
  if (!ocr_focus || !gtk_widget_get_mapped (ocr_focus)
      || !gtk_widget_compute_bounds (ocr_focus, window, &b))
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

static void
assert_window_shows (GtkWidget *window, const char *needle, int seconds)
{
  TextWait w = { window, needle, NULL, 0 };
  if (!wait_for (window_shows, &w, seconds))
    g_error ("the window never showed '%s'; last read:\n%s", needle,
             w.last ? w.last : "");
  g_test_message ("window shows '%s'", needle);
  g_free (w.last);
}

/* ---- the definition on disk ---------------------------------------- */

static void
assert_definition (const char *path, const char *cdrom)
{
  g_assert_true (g_file_test (path, G_FILE_TEST_IS_REGULAR));
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomain) d = vessel_definition_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vessel_definition_get_title (d), ==, "UI Test Machine");
  g_autofree char *cd = vessel_definition_get_cdrom (d);
  g_assert_cmpstr (cd, ==, cdrom);
  g_autofree char *prog = g_find_program_in_path ("virt-xml-validate");
  if (prog)
    {
      const char *argv[] = { prog, path, "domain", NULL };
      int status = 0;
      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL,
                                   G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL,
                                   NULL, NULL, &status, NULL));
      if (!g_spawn_check_wait_status (status, NULL))
        {
          g_autofree char *text = NULL;
          g_file_get_contents (path, &text, NULL, NULL);
          g_error ("%s is not a valid libvirt domain:\n%s", path, text);
        }
    }
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

static void
assert_state (VesselMachine *m, VesselMachineState state, int seconds)
{
  StateWait w = { m, state };
  if (!wait_for (in_state, &w, seconds))
    g_error ("machine is %s, expected %s",
             vessel_machine_state_label (vessel_machine_get_state (m)),
             vessel_machine_state_label (state));
}

static gboolean
shown (gpointer data)
{
  return gtk_widget_get_mapped (data) && gtk_widget_get_width (data) > 0;
}

static void
activate (GtkWidget *w, const char *action, GVariant *param)
{
  g_assert_true (gtk_widget_activate_action_variant (w, action, param));
}

static void
test_app (void)
{
  g_autoptr (VesselApplication) app = vessel_application_new ();
  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  /* Pages change without sliding, so that a screenshot is never taken
   * halfway through a transition. */
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE,
                NULL);
  g_application_activate (G_APPLICATION (app));
  GtkWidget *window = GTK_WIDGET (vessel_application_get_window (app));
  g_assert_nonnull (window);
  g_assert_true (wait_for (shown, window, 30));
  VesselWindow *vw = VESSEL_WINDOW (window);
  VesselLibrary *lib = vessel_application_get_library (app);

  /* An empty library leads to creating a machine. */
  g_assert_cmpstr (vessel_window_get_library_page (vw), ==, "empty");
  assert_window_shows (window, "No Machines", 30);

  /* A definition written by hand, as virt-install would: SeaBIOS's boot
   * menu waits a minute so that the test can press ESC. */
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *xml = g_markup_printf_escaped (
      "<domain type='kvm'><name>ui-test</name><title>UI Test Machine</title>"
      "<uuid>%s</uuid><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
      "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='cdrom'/>"
      "<bootmenu enable='yes' timeout='60000'/></os>"
      "<devices><disk type='file' device='cdrom'><driver name='qemu' "
      "type='raw'/><source file='%s'/><target dev='hdc' bus='ide'/>"
      "<readonly/></disk><video><model type='vga'/></video>"
      "<serial type='pty'><target port='0'/></serial></devices></domain>",
      uuid, iso);
  g_autofree char *src = g_build_filename (tmpdir, "ui-test.xml", NULL);
  g_assert_true (g_file_set_contents (src, xml, -1, NULL));
  g_action_group_activate_action (G_ACTION_GROUP (app), "import-file",
                                  g_variant_new_string (src));
  g_assert_cmpuint (g_list_model_get_n_items (vessel_library_get_model (lib)),
                    ==, 1);
  VesselMachine *m = vessel_library_find (lib, uuid);
  g_assert_nonnull (m);
  g_autofree char *def = g_build_filename (vessel_library_get_dir (lib),
                                           NULL);
  g_autofree char *file = g_strdup_printf ("%s.xml", uuid);
  g_autofree char *path = g_build_filename (def, file, NULL);
  g_assert_cmpstr (vessel_machine_get_path (m), ==, path);
  assert_definition (path, iso);

  /* The library shows it. */
  activate (window, "win.show-library", NULL);
  g_assert_cmpstr (vessel_window_get_library_page (vw), ==, "grid");
  assert_window_shows (window, "UI Test Machine", 30);
  save_window (window, "main-window.png");

  /* Open and start it: the guest's first screen appears in the window. */
  activate (window, "win.open-machine", g_variant_new_string (uuid));
  VesselMachinePage *page = vessel_window_get_machine_page (vw);
  ocr_focus = vessel_machine_page_get_display (page);
  g_assert_true (vessel_machine_page_get_machine (page) == m);
  activate (GTK_WIDGET (page), "machine.start", NULL);
  g_assert_null (vessel_machine_get_error (m));
  assert_state (m, VESSEL_MACHINE_STATE_RUNNING, 30);
  assert_definition (path, iso);
  assert_window_shows (window, "ESC for boot menu", 120);

  /* Keys reach the guest: ESC opens SeaBIOS's boot menu, whose first
   * entry (the CD) boots GRUB. */
  VesselDisplayView *view
      = VESSEL_DISPLAY_VIEW (vessel_machine_page_get_display (page));
  const unsigned esc = 0x01, one = 0x02;
  vessel_display_view_send_keys (view, &esc, 1);
  assert_window_shows (window, "boot device", 60);
  vessel_display_view_send_keys (view, &one, 1);
  assert_window_shows (window, "GNU GRUB", 120);
  save_window (window, "machine-running.png");

  /* Pause and resume. */
  activate (GTK_WIDGET (page), "machine.pause", NULL);
  assert_state (m, VESSEL_MACHINE_STATE_PAUSED, 30);
  assert_window_shows (window, "Paused", 30);
  assert_definition (path, iso);
  activate (GTK_WIDGET (page), "machine.resume", NULL);
  assert_state (m, VESSEL_MACHINE_STATE_RUNNING, 30);

  /* Force off. */
  activate (GTK_WIDGET (page), "machine.force-off", NULL);
  assert_state (m, VESSEL_MACHINE_STATE_STOPPED, 60);
  assert_window_shows (window, "The Machine Is Off", 30);
  assert_definition (path, iso);

  /* Delete, undo, delete again. */
  activate (window, "win.delete-machine", g_variant_new_string (uuid));
  GtkWindow *dialog = vessel_window_get_pending_dialog (vw);
  g_assert_nonnull (dialog);
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), "delete");
  g_assert_cmpuint (g_list_model_get_n_items (vessel_library_get_model (lib)),
                    ==, 0);
  g_assert_true (g_file_test (path, G_FILE_TEST_EXISTS)); /* undo is possible */
  activate (window, "win.undo-delete", NULL);
  g_assert_cmpuint (g_list_model_get_n_items (vessel_library_get_model (lib)),
                    ==, 1);
  assert_definition (path, iso);
  activate (window, "win.delete-machine", g_variant_new_string (uuid));
  dialog = vessel_window_get_pending_dialog (vw);
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), "delete");
  AdwToast *toast = vessel_window_get_undo_toast (vw);
  g_assert_nonnull (toast);
  adw_toast_dismiss (toast);
  spin (100);
  g_assert_false (g_file_test (path, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (iso, G_FILE_TEST_EXISTS)); /* never the ISO */
  g_assert_cmpstr (vessel_window_get_library_page (vw), ==, "empty");

  g_action_group_activate_action (G_ACTION_GROUP (app), "quit", NULL);
  spin (100);
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

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_log_set_fatal_handler (fatal_filter, NULL);
  if (argc < 3)
    {
      g_printerr ("usage: test-app-ui ISO OUTDIR\n");
      return 2;
    }
  iso = g_canonicalize_filename (argv[1], NULL);
  outdir = argv[2];
  int fd = g_open ("/dev/kvm", O_RDWR | O_CLOEXEC, 0);
  if (fd < 0)
    {
      g_print ("SKIP: /dev/kvm is not usable here (%s)\n", g_strerror (errno));
      return 77;
    }
  close (fd);
  tmpdir = g_dir_make_tmp ("vessel-ui-XXXXXX", NULL);
  g_autofree char *data = g_build_filename (tmpdir, "data", NULL);
  g_setenv ("XDG_DATA_HOME", data, TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);
  g_mkdir_with_parents (outdir, 0755);
  g_test_add_func ("/app/import-start-keys-pause-delete", test_app);
  int rc = g_test_run ();
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    g_printerr ("could not remove %s\n", tmpdir);
  return rc;
}
