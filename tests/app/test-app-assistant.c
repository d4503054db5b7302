/* The new-machine assistant in the real app under Xvfb:
 *
 *   /assistant/iso          the test ISO: resources, review, create; the
 *                           definition (CD, boot order CD first, a new qcow2
 *                           disk, "installing"), qemu-img check, and the
 *                           first boot from the CD (GRUB on the screen)
 *   /assistant/bad-input    a file that is no image, a truncated qcow2, a
 *                           name in use, a disk larger than the free space
 *   /assistant/blank        a blank machine: a new disk, no CD, not started
 *   /assistant/disk-image   a qcow2 image kept untouched: a qcow2 overlay
 *                           with it as backing file (qemu-img check, info),
 *                           boot order disk first, and the guest booting
 *                           from it (its boot sector writes on COM1)
 *   /assistant/install-reset, /assistant/install-poweroff
 *                           an ISO whose installer writes the disk's boot
 *                           sector and restarts: then the CD is out, the
 *                           disk first, "installing" gone, and the guest
 *                           boots from its disk
 *
 *   test-app-assistant ISO BOOT_DISK INSTALL_RESET_ISO INSTALL_POWEROFF_ISO
 *                      QEMU_IMG OUTDIR [-p PATH...]
 *
 * Needs /dev/kvm (skips without it), a display (xvfb-run) and tesseract. */
#include "tests/app/ui-kit.h"

#include "wizards/vessel-assistant.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static const char *iso, *boot_disk, *install_reset_iso, *install_poweroff_iso;
static const char *qemu_img, *outdir;
static VesselApplication *app;
static GtkWidget *window;

/* ---- helpers ------------------------------------------------------- */

static gboolean
assistant_idle (gpointer data)
{
  return !vessel_assistant_is_busy (data);
}

static VesselAssistant *
open_assistant (void)
{
  g_action_group_activate_action (G_ACTION_GROUP (app), "new-machine", NULL);
  VesselAssistant *a = vessel_application_get_assistant (app);
  g_assert_nonnull (a);
  g_assert_true (wait_for (shown, a, 30));
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "source");
  return a;
}

static void
choose (VesselAssistant *a, const char *path)
{
  vessel_assistant_choose (a, path);
  g_assert_true (wait_for (assistant_idle, a, 120));
}

static void
next (VesselAssistant *a)
{
  g_assert_true (vessel_assistant_can_go_next (a));
  activate (GTK_WIDGET (a), "assistant.next", NULL);
}

static gboolean
assistant_gone (gpointer data)
{
  return vessel_application_get_assistant (data) == NULL;
}

/* Review → Create; returns the machine the assistant made. */
static VesselMachine *
create (VesselAssistant *a, const char *title)
{
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "review");
  next (a);
  if (!wait_for (assistant_gone, app, 300))
    g_error ("the assistant did not finish: %s",
             vessel_assistant_get_message (a) ? vessel_assistant_get_message (a)
                                              : "(no message)");
  VesselLibrary *lib = vessel_application_get_library (app);
  GListModel *model = vessel_library_get_model (lib);
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      if (!g_strcmp0 (vessel_machine_get_title (m), title))
        {
          /* It opened in the machine view. */
          VesselMachinePage *page = vessel_window_get_machine_page (
              VESSEL_WINDOW (window));
          g_assert_true (vessel_machine_page_get_machine (page) == m);
          return m;
        }
    }
  g_error ("no machine titled %s", title);
}

static GVirConfigDomain *
load_definition (VesselMachine *m)
{
  g_autoptr (GError) error = NULL;
  GVirConfigDomain *d = vessel_definition_load (vessel_machine_get_path (m),
                                                &error);
  g_assert_no_error (error);
  return d;
}

static char *
run (const char *const *argv)
{
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL,
                               &out, &err, &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s failed:\n%s%s", argv[0], out, err);
  return g_steal_pointer (&out);
}

static void
qemu_img_check (const char *path)
{
  const char *argv[] = { qemu_img, "check", path, NULL };
  g_autofree char *out = run (argv);
  g_test_message ("qemu-img check %s: %s", path, out);
}

/* The only disk of the definition, in the library folder. */
static char *
only_disk (GVirConfigDomain *d)
{
  g_auto (GStrv) disks = vessel_definition_get_disks (d);
  g_assert_cmpuint (g_strv_length (disks), ==, 1);
  g_autofree char *dir = g_path_get_dirname (disks[0]);
  g_assert_cmpstr (dir, ==,
                   vessel_library_get_dir (vessel_application_get_library (app)));
  return g_strdup (disks[0]);
}

typedef struct {
  VesselMachine *m;
  const char *needle;
} SerialWait;

static gboolean
serial_shows (gpointer data)
{
  SerialWait *w = data;
  g_autoptr (GBytes) b = vessel_machine_get_serial_history (w->m);
  gsize n;
  const char *p = g_bytes_get_data (b, &n);
  g_autofree char *text = g_strndup (p ? p : "", n);
  return strstr (text, w->needle) != NULL;
}

static void
assert_serial_shows (VesselMachine *m, const char *needle, int seconds)
{
  SerialWait w = { m, needle };
  if (!wait_for (serial_shows, &w, seconds))
    {
      g_autoptr (GBytes) b = vessel_machine_get_serial_history (m);
      gsize n;
      const char *p = g_bytes_get_data (b, &n);
      g_error ("COM1 never showed '%s'; it showed:\n%.*s", needle, (int) n,
               p ? p : "");
    }
  g_test_message ("COM1 shows '%s'", needle);
}

static void
force_off (VesselMachine *m)
{
  if (vessel_machine_is_active (m))
    vessel_machine_force_off (m);
  assert_state (m, VESSEL_MACHINE_STATE_STOPPED, 120);
}

/* ---- the test ISO ---------------------------------------------------- */

static void
test_iso (void)
{
  VesselAssistant *a = open_assistant ();
  /* The ISOs in the Downloads folder come first (main put the test ISO
   * there). */
  assert_window_shows (GTK_WIDGET (a), "In Your Downloads Folder", 60);
  assert_window_shows (GTK_WIDGET (a), "rescue-cdrom.iso", 60);
  save_window (GTK_WIDGET (a), outdir, "assistant-source.png");
  choose (a, iso);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "resources");
  /* GRUB's rescue CD is no OS osinfo-db knows: the page says so. */
  g_assert_null (vessel_assistant_get_os_name (a));
  assert_window_shows (GTK_WIDGET (a), "Unknown Operating System", 60);
  save_window (GTK_WIDGET (a), outdir, "assistant-resources.png");
  vessel_assistant_set_machine_title (a, "ISO Machine");
  next (a);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "review");
  assert_window_shows (GTK_WIDGET (a), "Review", 60);
  VesselMachine *m = create (a, "ISO Machine");

  g_autoptr (GVirConfigDomain) d = load_definition (m);
  g_autofree char *cd = vessel_definition_get_cdrom (d);
  g_assert_cmpstr (cd, ==, iso);
  g_assert_true (vessel_definition_get_boot_cdrom_first (d));
  g_autofree char *installing = vessel_definition_get_meta (d, "installing");
  g_assert_cmpstr (installing, ==, "yes");
  g_assert_cmpuint (vessel_definition_get_memory (d), ==, 2u << 30);
  g_autofree char *disk = only_disk (d);
  qemu_img_check (disk);

  /* It started from the CD: GRUB's screen. */
  assert_state (m, VESSEL_MACHINE_STATE_RUNNING, 60);
  VesselMachinePage *page = vessel_window_get_machine_page (
      VESSEL_WINDOW (window));
  ui_kit_ocr_focus = vessel_machine_page_get_display (page);
  assert_window_shows (window, "GRUB", 600);
  save_window (window, outdir, "assistant-first-boot.png");
  ui_kit_ocr_focus = NULL;
  force_off (m);
  /* GRUB wrote nothing, and a force-off is no install finishing. */
  g_assert_true (vessel_machine_is_installing (m));
}

/* ---- bad input ------------------------------------------------------- */

static void
test_bad_input (void)
{
  GListModel *model = vessel_library_get_model (
      vessel_application_get_library (app));
  guint machines = g_list_model_get_n_items (model);
  VesselAssistant *a = open_assistant ();

  /* No image at all. */
  g_autofree char *text = g_build_filename (ui_kit_tmpdir, "notes.txt", NULL);
  g_assert_true (g_file_set_contents (text, "not a disk\n", -1, NULL));
  choose (a, text);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "source");
  g_assert_nonnull (strstr (vessel_assistant_get_message (a), "neither"));

  /* A truncated qcow2 image. */
  g_autofree char *full = g_build_filename (ui_kit_tmpdir, "full.qcow2", NULL);
  const char *argv[] = { qemu_img, "convert", "-f", "raw", "-O", "qcow2",
                         boot_disk, full, NULL };
  g_free (run (argv));
  g_autofree char *cut = g_build_filename (ui_kit_tmpdir, "cut.qcow2", NULL);
  g_autofree char *data = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (full, &data, &len, NULL));
  g_assert_true (g_file_set_contents (cut, data, 200 * 1024, NULL));
  choose (a, cut);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "source");
  g_test_message ("truncated: %s", vessel_assistant_get_message (a));
  g_assert_nonnull (strstr (vessel_assistant_get_message (a), "cut.qcow2"));
  assert_window_shows (GTK_WIDGET (a), "truncated", 60);

  /* A name in use: Next is refused and the page says why. */
  choose (a, iso);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "resources");
  vessel_assistant_set_machine_title (a, "ISO Machine");
  g_assert_false (vessel_assistant_can_go_next (a));
  g_assert_nonnull (strstr (vessel_assistant_get_message (a),
                            "exists already"));
  /* A disk larger than the free space. */
  vessel_assistant_set_machine_title (a, "Too Big");
  g_assert_true (vessel_assistant_can_go_next (a));
  vessel_assistant_set_resources (a, 256 << 20, 1,
                                  G_GUINT64_CONSTANT (65536) << 30);
  g_assert_false (vessel_assistant_can_go_next (a));
  g_test_message ("too big: %s", vessel_assistant_get_message (a));
  g_assert_nonnull (strstr (vessel_assistant_get_message (a), "free space"));
  assert_window_shows (GTK_WIDGET (a), "free space", 60);
  gtk_widget_activate_action (GTK_WIDGET (a), "assistant.back", NULL);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "source");
  gtk_widget_activate_action (GTK_WIDGET (a), "assistant.back", NULL);
  g_assert_true (wait_for (assistant_gone, app, 30));
  /* Nothing was made. */
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, machines);
}

/* ---- a blank machine -------------------------------------------------- */

static void
test_blank (void)
{
  VesselAssistant *a = open_assistant ();
  activate (GTK_WIDGET (a), "assistant.blank", NULL);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "resources");
  vessel_assistant_set_machine_title (a, "Blank Machine");
  vessel_assistant_set_resources (a, 256 << 20, 1, 2u << 30);
  next (a);
  VesselMachine *m = create (a, "Blank Machine");
  /* Nothing to boot: it waits, stopped, for an installer. */
  g_assert_cmpint (vessel_machine_get_state (m), ==,
                   VESSEL_MACHINE_STATE_STOPPED);
  g_assert_false (vessel_machine_is_installing (m));
  g_autoptr (GVirConfigDomain) d = load_definition (m);
  g_autofree char *cd = vessel_definition_get_cdrom (d);
  g_assert_null (cd);
  g_assert_false (vessel_definition_get_uefi (d, NULL, NULL));
  g_assert_cmpuint (vessel_definition_get_memory (d), ==, 256u << 20);
  g_autofree char *disk = only_disk (d);
  qemu_img_check (disk);
  const char *info_argv[] = { qemu_img, "info", "--output=json", disk, NULL };
  g_autofree char *info = run (info_argv);
  g_assert_nonnull (strstr (info, "\"virtual-size\": 2147483648"));
}

/* ---- a UEFI machine ----------------------------------------------------- */

static char *checksum_file (const char *path);

/* UEFI where OVMF is installed, BIOS by default. The definition names
 * OVMF's code and the machine's own copy of the variable store, which is
 * deleted with the machine. (Nothing boots: a blank machine waits, and on
 * this host OVMF could not get past SEC anyway.) */
static void
test_uefi (void)
{
  g_autofree char *code = NULL, *vars_template = NULL;
  VesselAssistant *a = open_assistant ();
  if (!vmm_machine_find_ovmf (&code, &vars_template))
    {
      g_assert_false (vessel_assistant_offers_uefi (a));
      gtk_widget_activate_action (GTK_WIDGET (a), "assistant.back", NULL);
      g_test_skip ("OVMF is not installed (Debian's ovmf package)");
      return;
    }
  g_assert_true (vessel_assistant_offers_uefi (a));
  activate (GTK_WIDGET (a), "assistant.blank", NULL);
  g_assert_false (vessel_assistant_get_uefi (a));
  vessel_assistant_set_machine_title (a, "UEFI Machine");
  vessel_assistant_set_resources (a, 256 << 20, 1, 1u << 30);
  vessel_assistant_set_uefi (a, TRUE);
  g_assert_true (vessel_assistant_get_uefi (a));
  next (a);
  assert_window_shows (GTK_WIDGET (a), "UEFI", 60);
  VesselMachine *m = create (a, "UEFI Machine");
  g_assert_cmpint (vessel_machine_get_state (m), ==,
                   VESSEL_MACHINE_STATE_STOPPED);

  g_autoptr (GVirConfigDomain) d = load_definition (m);
  g_autofree char *loader = NULL, *nvram = NULL;
  g_assert_true (vessel_definition_get_uefi (d, &loader, &nvram));
  g_assert_cmpstr (loader, ==, code);
  VesselLibrary *lib = vessel_application_get_library (app);
  g_autofree char *want_nvram = vessel_library_nvram_path (
      lib, vessel_machine_get_uuid (m));
  g_assert_cmpstr (nvram, ==, want_nvram);
  g_autofree char *xml = gvir_config_object_to_xml (GVIR_CONFIG_OBJECT (d));
  g_assert_nonnull (strstr (xml, "firmware=\"efi\""));
  g_assert_nonnull (strstr (xml, "type=\"pflash\""));
  g_autofree char *sum = checksum_file (nvram);
  g_autofree char *template_sum = checksum_file (vars_template);
  g_assert_cmpstr (sum, ==, template_sum);
  g_assert_true (g_access (nvram, W_OK) == 0);
  /* The engine gets both flashes. */
  VesselEngineConfig cfg;
  g_autoptr (GError) error = NULL;
  g_assert_true (vessel_definition_to_engine (d, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (cfg.machine.firmware, ==, code);
  g_assert_cmpstr (cfg.machine.firmware_vars, ==, nvram);
  vessel_engine_config_clear (&cfg);

  /* Deleting the machine deletes its variable store. */
  g_assert_true (vessel_library_remove (lib, m, &error));
  g_assert_no_error (error);
  vessel_library_finish_remove (lib, m);
  g_assert_false (g_file_test (nvram, G_FILE_TEST_EXISTS));
}

/* ---- a disk image, kept untouched ------------------------------------ */

static char *
checksum_file (const char *path)
{
  g_autofree char *data = NULL;
  gsize len;
  g_assert_true (g_file_get_contents (path, &data, &len, NULL));
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (guchar *) data, len);
}

static guint
count_files (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  guint n = 0;
  while (d && g_dir_read_name (d))
    n++;
  return n;
}

static void
test_disk_image (void)
{
  /* A qcow2 image of the boot disk (its boot sector prints on COM1). */
  g_autofree char *image = g_build_filename (ui_kit_tmpdir, "brought.qcow2",
                                             NULL);
  const char *argv[] = { qemu_img, "convert", "-f", "raw", "-O", "qcow2",
                         boot_disk, image, NULL };
  g_free (run (argv));
  g_autofree char *before = checksum_file (image);

  VesselAssistant *a = open_assistant ();
  choose (a, image);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "resources");
  vessel_assistant_set_machine_title (a, "Disk Machine");
  vessel_assistant_set_resources (a, 128 << 20, 1, 0);
  next (a);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "disk");
  /* Its format and size are shown before anything happens. */
  assert_window_shows (GTK_WIDGET (a), "qcow2", 60);
  assert_window_shows (GTK_WIDGET (a), "4.0 MiB", 60);
  save_window (GTK_WIDGET (a), outdir, "assistant-disk-image.png");
  vessel_assistant_set_keep_original (a, TRUE);
  next (a);
  VesselMachine *m = create (a, "Disk Machine");

  g_autoptr (GVirConfigDomain) d = load_definition (m);
  g_autofree char *cd = vessel_definition_get_cdrom (d);
  g_assert_null (cd);
  g_assert_false (vessel_definition_get_boot_cdrom_first (d));
  g_autofree char *installing = vessel_definition_get_meta (d, "installing");
  g_assert_null (installing);
  g_autofree char *overlay = only_disk (d);
  qemu_img_check (overlay);
  const char *info_argv[] = { qemu_img, "info", "--output=json", overlay,
                              NULL };
  g_autofree char *info = run (info_argv);
  g_autofree char *want = g_strdup_printf ("\"backing-filename\": \"%s\"",
                                           image);
  if (!strstr (info, want))
    g_error ("the overlay does not stand on %s:\n%s", image, info);
  g_assert_nonnull (strstr (info, "\"format\": \"qcow2\""));
  g_assert_nonnull (strstr (info, "\"virtual-size\": 4194304"));

  /* The guest boots from it (and powers off). */
  assert_serial_shows (m, "VESSEL-BOOT: from the disk", 600);
  assert_state (m, VESSEL_MACHINE_STATE_STOPPED, 120);
  g_autofree char *after = checksum_file (image);
  g_assert_cmpstr (before, ==, after);

  /* Copied instead: a qcow2 image of its own with the same contents. */
  a = open_assistant ();
  choose (a, image);
  vessel_assistant_set_machine_title (a, "Disk Copy");
  vessel_assistant_set_resources (a, 128 << 20, 1, 0);
  next (a);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "disk");
  vessel_assistant_set_keep_original (a, FALSE);
  next (a);
  VesselMachine *c = create (a, "Disk Copy");
  assert_serial_shows (c, "VESSEL-BOOT: from the disk", 600);
  assert_state (c, VESSEL_MACHINE_STATE_STOPPED, 120);
  g_autoptr (GVirConfigDomain) cd_def = load_definition (c);
  g_autofree char *copy = only_disk (cd_def);
  qemu_img_check (copy);
  const char *copy_info_argv[] = { qemu_img, "info", "--output=json", copy,
                                   NULL };
  g_autofree char *copy_info = run (copy_info_argv);
  g_assert_null (strstr (copy_info, "backing-filename"));
  const char *compare_argv[] = { qemu_img, "compare", image, copy, NULL };
  g_free (run (compare_argv));

  /* A creation that fails (the image is gone before the copy) leaves
   * nothing behind: no machine, no definition, no disk. */
  g_autofree char *doomed = g_build_filename (ui_kit_tmpdir, "doomed.qcow2",
                                              NULL);
  const char *doomed_argv[] = { qemu_img, "convert", "-f", "raw", "-O",
                                "qcow2", boot_disk, doomed, NULL };
  g_free (run (doomed_argv));
  GListModel *model = vessel_library_get_model (
      vessel_application_get_library (app));
  guint machines = g_list_model_get_n_items (model);
  const char *dir
      = vessel_library_get_dir (vessel_application_get_library (app));
  guint files_before = count_files (dir);
  a = open_assistant ();
  choose (a, doomed);
  vessel_assistant_set_machine_title (a, "Doomed");
  next (a);
  vessel_assistant_set_keep_original (a, FALSE);
  next (a);
  g_assert_cmpint (g_unlink (doomed), ==, 0);
  next (a);
  g_assert_true (wait_for (assistant_idle, a, 120));
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "review");
  g_test_message ("failed creation: %s", vessel_assistant_get_message (a));
  g_assert_nonnull (vessel_assistant_get_message (a));
  assert_window_shows (GTK_WIDGET (a), "cannot", 60);
  g_assert_cmpuint (g_list_model_get_n_items (model), ==, machines);
  g_assert_cmpuint (count_files (dir), ==, files_before);
  activate (GTK_WIDGET (a), "assistant.back", NULL);
  activate (GTK_WIDGET (a), "assistant.back", NULL);
  activate (GTK_WIDGET (a), "assistant.back", NULL);
  activate (GTK_WIDGET (a), "assistant.back", NULL);
  g_assert_true (wait_for (assistant_gone, app, 30));
}

/* ---- the install flow ------------------------------------------------ */

static gboolean
install_finished (gpointer data)
{
  return !vessel_machine_is_installing (data);
}

static void
on_install_finished (VesselMachine *m, gboolean *seen)
{
  *seen = TRUE;
}

static void
install (const char *cd_iso, const char *title)
{
  VesselAssistant *a = open_assistant ();
  choose (a, cd_iso);
  g_assert_cmpstr (vessel_assistant_get_page (a), ==, "resources");
  vessel_assistant_set_machine_title (a, title);
  vessel_assistant_set_resources (a, 128 << 20, 1, 1u << 30);
  next (a);
  VesselMachine *m = create (a, title);
  gboolean seen = FALSE;
  g_signal_connect (m, "install-finished", G_CALLBACK (on_install_finished),
                    &seen);
  g_assert_true (vessel_machine_is_installing (m));

  /* The installer runs from the CD, writes, restarts... */
  if (!wait_for (install_finished, m, 900))
    {
      g_autoptr (GBytes) b = vessel_machine_get_serial_history (m);
      gsize n;
      const char *p = g_bytes_get_data (b, &n);
      g_error ("the install never finished; COM1:\n%.*s", (int) n,
               p ? p : "");
    }
  g_assert_true (seen);
  /* ... and the definition no longer has the CD, the disk comes first. */
  g_autoptr (GVirConfigDomain) d = load_definition (m);
  g_autofree char *cd = vessel_definition_get_cdrom (d);
  g_assert_null (cd);
  g_assert_false (vessel_definition_get_boot_cdrom_first (d));
  g_autofree char *installing = vessel_definition_get_meta (d, "installing");
  g_assert_null (installing);
  g_autofree char *disk = only_disk (d);

  /* The user was told. */
  assert_window_shows (window, "is installed", 120);
  /* The guest boots from its disk, whose boot sector the installer wrote
   * (it prints, then powers off). */
  assert_serial_shows (m, "VESSEL-BOOT: from the disk", 900);
  assert_state (m, VESSEL_MACHINE_STATE_STOPPED, 120);
  qemu_img_check (disk);
  g_signal_handlers_disconnect_by_func (m, on_install_finished, &seen);
}

static void
test_install_reset (void)
{
  install (install_reset_iso, "Install Reset");
}

static void
test_install_poweroff (void)
{
  install (install_poweroff_iso, "Install Poweroff");
}

int
main (int argc, char **argv)
{
  if (!ui_kit_init (&argc, &argv))
    return 77;
  if (argc < 7)
    {
      g_printerr ("usage: test-app-assistant ISO BOOT_DISK INSTALL_RESET_ISO "
                  "INSTALL_POWEROFF_ISO QEMU_IMG OUTDIR\n");
      return 2;
    }
  iso = g_canonicalize_filename (argv[1], NULL);
  boot_disk = g_canonicalize_filename (argv[2], NULL);
  install_reset_iso = g_canonicalize_filename (argv[3], NULL);
  install_poweroff_iso = g_canonicalize_filename (argv[4], NULL);
  qemu_img = argv[5];
  outdir = argv[6];
  g_mkdir_with_parents (outdir, 0755);

  /* A Downloads folder (XDG user dirs) with the test ISO in it. */
  g_autofree char *downloads = g_build_filename (ui_kit_tmpdir, "Downloads",
                                                 NULL);
  g_autofree char *config = g_build_filename (ui_kit_tmpdir, "config", NULL);
  g_mkdir_with_parents (downloads, 0755);
  g_mkdir_with_parents (config, 0755);
  g_autofree char *link = g_build_filename (downloads, "grub-rescue-cdrom.iso",
                                            NULL);
  g_assert_cmpint (symlink (iso, link), ==, 0);
  g_autofree char *dirs_file = g_build_filename (config, "user-dirs.dirs",
                                                 NULL);
  g_autofree char *dirs = g_strdup_printf ("XDG_DOWNLOAD_DIR=\"%s\"\n",
                                           downloads);
  g_assert_true (g_file_set_contents (dirs_file, dirs, -1, NULL));
  g_setenv ("XDG_CONFIG_HOME", config, TRUE);

  app = vessel_application_new ();
  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE,
                NULL);
  g_application_activate (G_APPLICATION (app));
  window = GTK_WIDGET (vessel_application_get_window (app));
  g_assert_true (wait_for (shown, window, 30));

  g_test_add_func ("/assistant/iso", test_iso);
  g_test_add_func ("/assistant/bad-input", test_bad_input);
  g_test_add_func ("/assistant/blank", test_blank);
  g_test_add_func ("/assistant/disk-image", test_disk_image);
  g_test_add_func ("/assistant/uefi", test_uefi);
  g_test_add_func ("/assistant/install-reset", test_install_reset);
  g_test_add_func ("/assistant/install-poweroff", test_install_poweroff);
  int rc = g_test_run ();
  g_action_group_activate_action (G_ACTION_GROUP (app), "quit", NULL);
  spin (100);
  g_object_unref (app);
  ui_kit_cleanup ();
  return rc;
}
