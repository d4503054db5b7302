/* A disk whose reads never complete (a hung network share, a dying drive)
 * must not freeze the app: the UI thread keeps answering while the guest
 * waits on it, force off does not wait for it, and another machine keeps
 * running beside it; a machine whose disk is missing says why on its page.
 *
 *   test-app-stall ISO
 *
 * The stall is injected below the engine: this program defines pread64,
 * which the dynamic linker binds ahead of libc's for the whole process, and
 * makes every read of the stalled image off the main thread wait until the
 * test releases it. The engine is not told anything. */
#include "tests/app/ui-kit.h"

#include <dlfcn.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static dev_t stall_dev;
static ino_t stall_ino;
static gint stall_armed;   /* atomic */
static gint stalled_reads; /* atomic: reads now waiting */
static GMutex stall_lock;
static GCond stall_cond;
static GThread *main_thread;

ssize_t pread64 (int fd, void *buf, size_t n, off_t off);

ssize_t
pread64 (int fd, void *buf, size_t n, off_t off)
{
  static ssize_t (*real) (int, void *, size_t, off_t);
  if (!real)
    real = (ssize_t (*) (int, void *, size_t, off_t)) dlsym (RTLD_NEXT,
                                                             "pread64");
  struct stat st;
  /* Opening the image (its header probe on the UI thread) goes through;
   * the guest's reads, on the engine's workers, wait. */
  if (g_atomic_int_get (&stall_armed) && g_thread_self () != main_thread
      && fstat (fd, &st) == 0 && st.st_dev == stall_dev
      && st.st_ino == stall_ino)
    {
      g_mutex_lock (&stall_lock);
      g_atomic_int_inc (&stalled_reads);
      while (g_atomic_int_get (&stall_armed))
        g_cond_wait (&stall_cond, &stall_lock);
      g_atomic_int_dec_and_test (&stalled_reads);
      g_mutex_unlock (&stall_lock);
    }
  return real (fd, buf, n, off);
}

static void
stall_release (void)
{
  g_mutex_lock (&stall_lock);
  g_atomic_int_set (&stall_armed, 0);
  g_cond_broadcast (&stall_cond);
  g_mutex_unlock (&stall_lock);
}

static gboolean
read_is_stuck (gpointer data)
{
  return g_atomic_int_get (&stalled_reads) > 0;
}

/* A frame of the window was drawn after @since: the UI thread answers. */
typedef struct {
  GdkFrameClock *clock;
  gint64 since;
} FrameWait;

static gboolean
frame_drawn (gpointer data)
{
  FrameWait *w = data;
  return gdk_frame_clock_get_frame_time (w->clock) > w->since;
}

static void
assert_ui_answers (GtkWidget *window, VesselWindow *vw, const char *uuid)
{
  /* Actions run, pages change and frames are drawn. */
  activate (window, "win.show-library", NULL);
  g_assert_cmpstr (vessel_window_get_library_page (vw), ==, "grid");
  activate (window, "win.view-as-list", NULL); /* toggles */
  g_assert_cmpstr (vessel_window_get_library_page (vw), ==, "list");
  activate (window, "win.view-as-list", NULL);
  activate (window, "win.open-machine", g_variant_new_string (uuid));
  FrameWait fw = { gtk_widget_get_frame_clock (window), 0 };
  fw.since = gdk_frame_clock_get_frame_time (fw.clock);
  gtk_widget_queue_draw (window);
  g_assert_true (wait_for (frame_drawn, &fw, 30));
}

static char *
make_definition (const char *title, const char *disk, const char *iso,
                 gboolean boot_disk)
{
  g_autofree char *uuid = g_uuid_string_random ();
  g_autofree char *name = vessel_definition_make_name (title);
  g_autoptr (GVirConfigDomain) d = vessel_definition_new (name, title,
                                                          64ull << 20, 1);
  gvir_config_domain_set_uuid (d, uuid);
  if (disk)
    vessel_definition_add_disk (d, disk, "raw", FALSE);
  if (iso)
    vessel_definition_set_cdrom (d, iso);
  vessel_definition_set_boot_cdrom_first (d, !boot_disk);
  g_autofree char *file = g_strdup_printf ("%s.xml", name);
  char *path = g_build_filename (ui_kit_tmpdir, file, NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (vessel_definition_save (d, path, &error));
  return path;
}

static const char *iso;

static void
test_stalled_disk (void)
{
  /* The image: 1 MiB of zeroes, stalled from the moment the guest runs. */
  g_autofree char *img = g_build_filename (ui_kit_tmpdir, "stall.img", NULL);
  g_autofree char *zeros = g_malloc0 (1 << 20);
  g_assert_true (g_file_set_contents (img, zeros, 1 << 20, NULL));
  struct stat st;
  g_assert_cmpint (stat (img, &st), ==, 0);
  stall_dev = st.st_dev;
  stall_ino = st.st_ino;
  main_thread = g_thread_self ();

  g_autoptr (VesselApplication) app = vessel_application_new ();
  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE);
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, NULL));
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE,
                NULL);
  g_application_activate (G_APPLICATION (app));
  GtkWidget *window = GTK_WIDGET (vessel_application_get_window (app));
  g_assert_true (wait_for (shown, window, 30));
  VesselWindow *vw = VESSEL_WINDOW (window);
  VesselLibrary *lib = vessel_application_get_library (app);
  GtkWidget *page = GTK_WIDGET (vessel_window_get_machine_page (vw));

  g_autofree char *stall_def = make_definition ("Stalled Disk", img, NULL,
                                                TRUE);
  g_autofree char *other_def = make_definition ("Bystander", NULL, iso,
                                                FALSE);
  g_action_group_activate_action (G_ACTION_GROUP (app), "import-file",
                                  g_variant_new_string (other_def));
  g_action_group_activate_action (G_ACTION_GROUP (app), "import-file",
                                  g_variant_new_string (stall_def));
  GListModel *model = vessel_library_get_model (lib);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, 2);
  g_autoptr (VesselMachine) stalled = NULL, other = NULL;
  for (guint i = 0; i < 2; i++)
    {
      VesselMachine *m = g_list_model_get_item (model, i);
      if (!strcmp (vessel_machine_get_title (m), "Stalled Disk"))
        stalled = m;
      else
        other = m;
    }
  g_assert_nonnull (stalled);
  g_assert_nonnull (other);

  /* The bystander runs first; then the stalled machine, whose firmware
   * reads its disk to boot and never hears back. */
  activate (window, "win.open-machine",
            g_variant_new_string (vessel_machine_get_uuid (other)));
  activate (page, "machine.start", NULL);
  assert_state (other, VESSEL_MACHINE_STATE_RUNNING, 30);
  g_atomic_int_set (&stall_armed, 1);
  activate (window, "win.open-machine",
            g_variant_new_string (vessel_machine_get_uuid (stalled)));
  activate (page, "machine.start", NULL);
  assert_state (stalled, VESSEL_MACHINE_STATE_RUNNING, 30);
  g_assert_true (wait_for (read_is_stuck, NULL, 120));
  g_test_message ("the guest's disk read is stuck");

  assert_ui_answers (window, vw, vessel_machine_get_uuid (stalled));

  /* Force off while the read hangs: the machine leaves the running state
   * at once; its engine finishes going away when the read returns. */
  activate (window, "win.open-machine",
            g_variant_new_string (vessel_machine_get_uuid (stalled)));
  activate (page, "machine.force-off", NULL);
  g_assert_false (vessel_machine_is_active (stalled));
  assert_ui_answers (window, vw, vessel_machine_get_uuid (stalled));
  g_assert_cmpint (vessel_machine_get_state (other), ==,
                   VESSEL_MACHINE_STATE_RUNNING);
  /* The bystander still draws: its screen shows SeaBIOS or GRUB. */
  activate (window, "win.open-machine",
            g_variant_new_string (vessel_machine_get_uuid (other)));
  ui_kit_ocr_focus = vessel_machine_page_get_display (
      vessel_window_get_machine_page (vw));
  assert_window_shows (window, "GRUB", 420);

  /* A machine whose disk is gone says so on its page; nothing else
   * changes. */
  g_autofree char *missing_def = make_definition (
      "Missing Disk", "/nonexistent/vessel-test/disk.img", NULL, TRUE);
  g_action_group_activate_action (G_ACTION_GROUP (app), "import-file",
                                  g_variant_new_string (missing_def));
  VesselMachine *missing = vessel_machine_page_get_machine (
      VESSEL_MACHINE_PAGE (page));
  g_assert_cmpstr (vessel_machine_get_title (missing), ==, "Missing Disk");
  activate (page, "machine.start", NULL);
  g_assert_cmpint (vessel_machine_get_state (missing), ==,
                   VESSEL_MACHINE_STATE_ERROR);
  g_assert_nonnull (strstr (vessel_machine_get_error (missing),
                            "/nonexistent/vessel-test/disk.img"));
  ui_kit_ocr_focus = NULL;
  assert_window_shows (window, "cannot start", 60);
  g_assert_cmpint (vessel_machine_get_state (other), ==,
                   VESSEL_MACHINE_STATE_RUNNING);

  /* The share comes back: the stalled engine finishes stopping. */
  stall_release ();
  assert_state (stalled, VESSEL_MACHINE_STATE_STOPPED, 60);
  activate (window, "win.open-machine",
            g_variant_new_string (vessel_machine_get_uuid (other)));
  activate (page, "machine.force-off", NULL);
  assert_state (other, VESSEL_MACHINE_STATE_STOPPED, 60);
  g_action_group_activate_action (G_ACTION_GROUP (app), "quit", NULL);
  spin (100);
}

int
main (int argc, char **argv)
{
  if (!ui_kit_init (&argc, &argv))
    return 77;
  if (argc < 2)
    {
      g_printerr ("usage: test-app-stall ISO\n");
      return 2;
    }
  iso = g_canonicalize_filename (argv[1], NULL);
  g_test_add_func ("/app/stalled-disk", test_stalled_disk);
  int rc = g_test_run ();
  stall_release ();
  ui_kit_cleanup ();
  return rc;
}
