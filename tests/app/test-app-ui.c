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
#include "display/vessel-display-view.h"
#include "tests/app/ui-kit.h"

#include <fcntl.h>
#include <glib/gstdio.h>
#include <unistd.h>
#include <string.h>

static const char *iso;
static const char *outdir;

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

static gboolean
has_thumbnail (gpointer m)
{
  return vessel_machine_get_thumbnail (m) != NULL;
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
  g_autofree char *src = g_build_filename (ui_kit_tmpdir, "ui-test.xml", NULL);
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
  assert_window_shows (window, "Test Mach", 30);
  save_window (window, outdir, "library-stopped.png");

  /* Open and start it: the guest's first screen appears in the window. */
  activate (window, "win.open-machine", g_variant_new_string (uuid));
  VesselMachinePage *page = vessel_window_get_machine_page (vw);
  ui_kit_ocr_focus = vessel_machine_page_get_display (page);
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
  assert_window_shows (window, "GNU GRUB", 420);
  assert_window_shows (window, "to boot the selected", 120); /* menu drawn */
  save_window (window, outdir, "machine-running.png");

  /* The library shows the running machine's live thumbnail. */
  activate (window, "win.show-library", NULL);
  g_assert_true (wait_for (has_thumbnail, m, 60));
  spin (1500); /* the next thumbnail, drawn */
  save_window (window, outdir, "main-window.png");
  activate (window, "win.open-machine", g_variant_new_string (uuid));

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

int
main (int argc, char **argv)
{
  if (!ui_kit_init (&argc, &argv))
    return 77;
  if (argc < 3)
    {
      g_printerr ("usage: test-app-ui ISO OUTDIR\n");
      return 2;
    }
  iso = g_canonicalize_filename (argv[1], NULL);
  outdir = argv[2];
  g_mkdir_with_parents (outdir, 0755);
  g_test_add_func ("/app/import-start-keys-pause-delete", test_app);
  int rc = g_test_run ();
  ui_kit_cleanup ();
  return rc;
}
