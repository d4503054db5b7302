/* OS detection and the source probe on media built here: ISOs whose volume
 * IDs match osinfo-db's Debian 11 and Fedora 37 netinst entries, one no
 * entry matches; qcow2 and raw disk images, a truncated qcow2, and files
 * that are no image at all.
 *
 * Needs xorriso ($XORRISO); qemu-img ($QEMU_IMG) for the truncated image
 * (skipped without it). */
#include "wizards/vessel-os-detect.h"
#include "wizards/vessel-source.h"

#include "vmm-core/block/block.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *tmpdir;

static char *
make_iso (const char *volid, const char *name)
{
  g_autofree char *tree = g_build_filename (tmpdir, "tree", NULL);
  g_mkdir_with_parents (tree, 0755);
  g_autofree char *readme = g_build_filename (tree, "README.TXT", NULL);
  g_assert_true (g_file_set_contents (readme, "Vessel detection test\n", -1,
                                      NULL));
  char *out = g_build_filename (tmpdir, name, NULL);
  const char *xorriso = g_getenv ("XORRISO");
  const char *argv[] = { xorriso && *xorriso ? xorriso : "xorriso", "-as",
                         "mkisofs", "-quiet", "-V", volid, "-o", out, tree,
                         NULL };
  g_autoptr (GError) error = NULL;
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL,
                               G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                               &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  return out;
}

static void
test_debian (void)
{
  g_autofree char *iso = make_iso ("Debian 11.5.0 amd64 n", "debian.iso");
  VesselSource src;
  g_autoptr (GError) error = NULL;
  g_assert_true (vessel_source_probe (iso, &src, &error));
  g_assert_no_error (error);
  g_assert_cmpint (src.kind, ==, VESSEL_SOURCE_ISO);
  vessel_source_clear (&src);

  g_autoptr (VesselOsInfo) info = vessel_os_detect (iso, &error);
  g_assert_no_error (error);
  g_assert_nonnull (info);
  g_assert_true (info->recognised);
  g_assert_cmpstr (info->short_id, ==, "debian11");
  g_assert_cmpstr (info->name, ==, "Debian 11");
  g_assert_cmpstr (info->volume_id, ==, "Debian 11.5.0 amd64 n");
  /* osinfo-db: 1 GiB recommended, 20 GiB of disk; no processor count
   * recommended, so the default. */
  g_assert_cmpuint (info->memory, ==, G_GUINT64_CONSTANT (1) << 30);
  g_assert_cmpuint (info->disk, ==, G_GUINT64_CONSTANT (20) << 30);
  g_assert_cmpuint (info->cpus, ==, VESSEL_OS_DEFAULT_CPUS);
}

static void
test_fedora (void)
{
  g_autofree char *iso = make_iso ("Fedora-S-dvd-x86_64-37", "fedora.iso");
  g_autoptr (GError) error = NULL;
  g_autoptr (VesselOsInfo) info = vessel_os_detect (iso, &error);
  g_assert_no_error (error);
  g_assert_true (info->recognised);
  g_assert_cmpstr (info->short_id, ==, "fedora37");
  g_assert_nonnull (strstr (info->name, "Fedora"));
  g_assert_cmpuint (info->memory, ==, G_GUINT64_CONSTANT (2) << 30);
  g_assert_cmpuint (info->disk, ==, G_GUINT64_CONSTANT (20) << 30);
}

static void
test_unknown (void)
{
  g_autofree char *iso = make_iso ("VESSEL NOBODY KNOWS", "unknown.iso");
  g_autoptr (GError) error = NULL;
  g_autoptr (VesselOsInfo) info = vessel_os_detect (iso, &error);
  g_assert_no_error (error);
  g_assert_false (info->recognised);
  g_assert_null (info->name);
  g_assert_cmpuint (info->memory, ==, VESSEL_OS_DEFAULT_MEMORY);
  g_assert_cmpuint (info->cpus, ==, VESSEL_OS_DEFAULT_CPUS);
  g_assert_cmpuint (info->disk, ==, VESSEL_OS_DEFAULT_DISK);
}

static void
test_not_media (void)
{
  g_autofree char *path = g_build_filename (tmpdir, "notes.txt", NULL);
  g_assert_true (g_file_set_contents (path, "shopping list\n", -1, NULL));
  g_autoptr (GError) error = NULL;
  VesselSource src;
  g_assert_false (vessel_source_probe (path, &src, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_nonnull (strstr (error->message, "neither"));
  g_clear_error (&error);
  g_assert_null (vessel_os_detect (path, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);

  g_autofree char *missing = g_build_filename (tmpdir, "missing.iso", NULL);
  g_assert_false (vessel_source_probe (missing, &src, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* A raw image must be whole sectors. */
  g_autofree char *odd = g_build_filename (tmpdir, "odd.img", NULL);
  g_assert_true (g_file_set_contents (odd, "12345", 5, NULL));
  g_assert_false (vessel_source_probe (odd, &src, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

static void
test_disks (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *qcow2 = g_build_filename (tmpdir, "disk.qcow2", NULL);
  VmmBlockCreateOptions opts = { .format = "qcow2", .size = 64 << 20 };
  g_assert_true (vmm_block_create (qcow2, &opts, &error));
  VesselSource src;
  g_assert_true (vessel_source_probe (qcow2, &src, &error));
  g_assert_no_error (error);
  g_assert_cmpint (src.kind, ==, VESSEL_SOURCE_DISK);
  g_assert_cmpstr (src.format, ==, "qcow2");
  g_assert_cmpuint (src.virtual_size, ==, 64 << 20);
  vessel_source_clear (&src);

  g_autofree char *raw = g_build_filename (tmpdir, "disk.img", NULL);
  opts = (VmmBlockCreateOptions) { .format = "raw", .size = 8 << 20 };
  g_assert_true (vmm_block_create (raw, &opts, &error));
  g_assert_true (vessel_source_probe (raw, &src, &error));
  g_assert_cmpstr (src.format, ==, "raw");
  g_assert_cmpuint (src.virtual_size, ==, 8 << 20);
  vessel_source_clear (&src);

  /* A qcow2 image with data, cut short: its clusters point past the end. */
  const char *qemu_img = g_getenv ("QEMU_IMG");
  if (!qemu_img || !*qemu_img)
    {
      g_test_message ("no qemu-img: the truncated image is not tried");
      return;
    }
  g_autofree char *full = g_build_filename (tmpdir, "full.qcow2", NULL);
  const char *argv[] = { qemu_img, "convert", "-f", "raw", "-O", "qcow2",
                         raw, full, NULL };
  /* Data to convert: 8 MiB of non-zero bytes. */
  g_autofree guint8 *data = g_malloc (8 << 20);
  memset (data, 0x5a, 8 << 20);
  g_assert_true (g_file_set_contents (raw, (char *) data, 8 << 20, NULL));
  int status = 0;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL,
                               NULL, NULL, &status, NULL));
  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_true (vessel_source_probe (full, &src, &error));
  vessel_source_clear (&src);
  g_assert_cmpint (truncate (full, 1 << 20), ==, 0);
  g_assert_false (vessel_source_probe (full, &src, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_test_message ("truncated: %s", error->message);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("vessel-os-detect-XXXXXX", NULL);
  g_test_add_func ("/os-detect/debian", test_debian);
  g_test_add_func ("/os-detect/fedora", test_fedora);
  g_test_add_func ("/os-detect/unknown", test_unknown);
  g_test_add_func ("/os-detect/not-media", test_not_media);
  g_test_add_func ("/os-detect/disks", test_disks);
  int rc = g_test_run ();
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  (void) system (cmd);
  return rc;
}
