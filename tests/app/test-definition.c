/* Machine definitions: libvirt domain XML written and read through
 * libvirt-gconfig, checked against libvirt's schema (virt-xml-validate,
 * when installed), and translated into the engine's config; bad
 * definitions are refused with a message. */
#include "app/vessel-definition.h"

#include <glib/gstdio.h>
#include <string.h>

static char *tmpdir;

static char *
tmp_path (const char *name)
{
  return g_build_filename (tmpdir, name, NULL);
}

static void
assert_valid_libvirt (const char *path)
{
  g_autofree char *prog = g_find_program_in_path ("virt-xml-validate");
  if (!prog)
    {
      g_test_message ("virt-xml-validate not installed: schema not checked");
      return;
    }
  const char *argv[] = { prog, path, "domain", NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr (GError) error = NULL;
  g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL,
                               G_SPAWN_DEFAULT, NULL, NULL, &out, &err,
                               &status, &error));
  g_assert_no_error (error);
  if (!g_spawn_check_wait_status (status, NULL))
    g_error ("%s does not validate: %s%s", path, out, err);
}

static void
test_new_round_trip (void)
{
  g_autofree char *name = vessel_definition_make_name ("Debian 12 (test)");
  g_assert_cmpstr (name, ==, "debian-12-test");
  g_autoptr (GVirConfigDomain) d
      = vessel_definition_new (name, "Debian 12 (test)", 512ull << 20, 2);
  vessel_definition_set_cdrom (d, "/srv/iso/debian & co.iso");
  vessel_definition_add_disk (d, "/var/disk0.qcow2", "qcow2", TRUE);
  vessel_definition_add_disk (d, "/var/disk1.img", "raw", FALSE);
  vessel_definition_set_meta (d, "os", "Debian GNU/Linux 12");
  VesselExport vnc = { .enabled = TRUE, .port = 5911, .password = "s3cr<t" };
  vessel_definition_set_export (d, VESSEL_EXPORT_VNC, &vnc);
  VesselExport spice = { .enabled = TRUE, .address = "::1" };
  vessel_definition_set_export (d, VESSEL_EXPORT_SPICE, &spice);
  vessel_definition_set_boot_cdrom_first (d, FALSE);

  g_autofree char *path = tmp_path ("round-trip.xml");
  g_autoptr (GError) error = NULL;
  g_assert_true (vessel_definition_save (d, path, &error));
  g_assert_no_error (error);
  assert_valid_libvirt (path);

  g_autoptr (GVirConfigDomain) r = vessel_definition_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (vessel_definition_get_title (r), ==, "Debian 12 (test)");
  g_assert_cmpstr (gvir_config_domain_get_uuid (r), ==,
                   gvir_config_domain_get_uuid (d));
  g_assert_cmpuint (vessel_definition_get_memory (r), ==, 512ull << 20);
  g_assert_cmpuint (vessel_definition_get_cpus (r), ==, 2);
  g_autofree char *cd = vessel_definition_get_cdrom (r);
  g_assert_cmpstr (cd, ==, "/srv/iso/debian & co.iso");
  g_auto (GStrv) disks = vessel_definition_get_disks (r);
  g_assert_cmpuint (g_strv_length (disks), ==, 2);
  g_assert_cmpstr (disks[0], ==, "/var/disk0.qcow2");
  g_autofree char *os = vessel_definition_get_meta (r, "os");
  g_assert_cmpstr (os, ==, "Debian GNU/Linux 12");
  g_autofree char *created = vessel_definition_get_meta (r, "created");
  g_assert_nonnull (created);
  g_assert_false (vessel_definition_get_boot_cdrom_first (r));

  VesselExport e = { 0 };
  vessel_definition_get_export (r, VESSEL_EXPORT_VNC, &e);
  g_assert_true (e.enabled);
  g_assert_cmpint (e.port, ==, 5911);
  g_assert_cmpstr (e.password, ==, "s3cr<t");
  g_autofree char *uri = vessel_export_uri (VESSEL_EXPORT_VNC, &e);
  g_assert_cmpstr (uri, ==, "vnc://127.0.0.1:5911");
  vessel_export_clear (&e);
  vessel_definition_get_export (r, VESSEL_EXPORT_SPICE, &e);
  g_assert_true (e.enabled);
  g_assert_cmpint (e.port, ==, 0);
  g_assert_cmpstr (e.address, ==, "::1");
  g_assert_null (vessel_export_uri (VESSEL_EXPORT_SPICE, &e));
  e.port = 5930;
  g_autofree char *uri6 = vessel_export_uri (VESSEL_EXPORT_SPICE, &e);
  g_assert_cmpstr (uri6, ==, "spice://[::1]:5930");
  vessel_export_clear (&e);

  VesselEngineConfig cfg;
  g_assert_true (vessel_definition_to_engine (r, &cfg, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (cfg.machine.memory, ==, 512ull << 20);
  g_assert_cmpuint (cfg.machine.cpus, ==, 2);
  g_assert_cmpuint (cfg.machine.n_disks, ==, 2);
  g_assert_cmpint (cfg.disks[0].interface, ==, VMM_DISK_VIRTIO);
  g_assert_cmpstr (cfg.disks[0].format, ==, "qcow2");
  g_assert_cmpint (cfg.disks[1].interface, ==, VMM_DISK_IDE);
  g_assert_cmpstr (cfg.disks[1].format, ==, "raw");
  g_assert_cmpstr (cfg.machine.cdrom, ==, "/srv/iso/debian & co.iso");
  g_assert_cmpint (cfg.machine.boot, ==, VMM_BOOT_DISK);
  g_assert_cmpint (cfg.machine.display, ==, VMM_DISPLAY_STD);
  g_assert_true (cfg.vnc.enabled);
  g_assert_cmpint (cfg.vnc.port, ==, 5911);
  vessel_engine_config_clear (&cfg);

  /* Eject, turn the exports off, change the metadata: all of it sticks. */
  vessel_definition_set_cdrom (r, NULL);
  vessel_definition_set_export (r, VESSEL_EXPORT_VNC, NULL);
  vessel_definition_set_meta (r, "os", NULL);
  g_assert_true (vessel_definition_save (r, path, &error));
  assert_valid_libvirt (path);
  g_autoptr (GVirConfigDomain) r2 = vessel_definition_load (path, &error);
  g_assert_no_error (error);
  g_assert_null (vessel_definition_get_cdrom (r2));
  vessel_definition_get_export (r2, VESSEL_EXPORT_VNC, &e);
  g_assert_false (e.enabled);
  g_assert_null (vessel_definition_get_meta (r2, "os"));
  g_autofree char *created2 = vessel_definition_get_meta (r2, "created");
  g_assert_cmpstr (created2, ==, created);
}

/* A definition written by hand (or by virt-install) with units and devices
 * Vessel reads. */
static void
test_foreign_definition (void)
{
  const char *xml
      = "<domain type='kvm'><name>foreign</name>"
        "<uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid>"
        "<memory unit='GiB'>2</memory><vcpu>4</vcpu>"
        "<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>"
        "<boot dev='cdrom'/><bootmenu enable='yes' timeout='3000'/>"
        "<bios useserial='yes'/></os>"
        "<devices><disk type='file' device='disk'>"
        "<driver name='qemu' type='qcow2' cache='none'/>"
        "<source file='/d.qcow2'/><target dev='vda' bus='virtio'/></disk>"
        "<disk type='file' device='cdrom'><source file='/i.iso'/>"
        "<target dev='hdc' bus='ide'/><readonly/></disk>"
        "<video><model type='vga'/></video>"
        "<interface type='user'><mac address='52:54:00:aa:bb:cc'/>"
        "<model type='e1000'/><rom enabled='no'/></interface>"
        "<interface type='user'/></devices></domain>";
  g_autofree char *path = tmp_path ("foreign.xml");
  g_assert_true (g_file_set_contents (path, xml, -1, NULL));
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomain) d = vessel_definition_load (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (vessel_definition_get_memory (d), ==, 2ull << 30);
  VesselEngineConfig cfg;
  g_assert_true (vessel_definition_to_engine (d, &cfg, &error));
  g_assert_cmpuint (cfg.machine.cpus, ==, 4);
  g_assert_true (cfg.disks[0].direct);
  g_assert_cmpint (cfg.machine.boot, ==, VMM_BOOT_CDROM);
  g_assert_cmpstr (cfg.machine.cdrom, ==, "/i.iso");
  g_assert_true (cfg.machine.boot_menu);
  g_assert_cmpuint (cfg.machine.boot_menu_wait_ms, ==, 3000);
  g_assert_true (cfg.machine.firmware_serial_console);
  g_assert_cmpuint (cfg.machine.n_nics, ==, 2);
  g_assert_true (cfg.machine.nics == cfg.nics);
  g_assert_cmpint (cfg.nics[0].model, ==, VMM_NIC_E1000);
  g_assert_true (cfg.nics[0].has_mac);
  g_assert_cmphex (cfg.nics[0].mac[5], ==, 0xcc);
  g_assert_cmpstr (cfg.nics[0].romfile, ==, "");
  g_assert_cmpint (cfg.nics[1].model, ==, VMM_NIC_VIRTIO);
  g_assert_false (cfg.nics[1].has_mac);
  g_assert_null (cfg.nics[1].romfile);
  vessel_engine_config_clear (&cfg);
}

static void
expect_load_error (const char *name, const char *content)
{
  g_autofree char *path = tmp_path (name);
  g_assert_true (g_file_set_contents (path, content, -1, NULL));
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomain) d = vessel_definition_load (path, &error);
  g_assert_null (d);
  g_assert_nonnull (error);
  g_assert_nonnull (strstr (error->message, path));
  g_assert_null (strchr (error->message, '\n'));
}

static void
test_bad_files (void)
{
  expect_load_error ("empty.xml", "");
  expect_load_error ("garbage.xml", "\x01\x02 not xml <<<");
  expect_load_error ("truncated.xml", "<domain type='kvm'><name>x</na");
  expect_load_error ("noname.xml", "<domain type='kvm'><memory>1</memory>"
                                   "</domain>");
  g_autoptr (GError) error = NULL;
  g_assert_null (vessel_definition_load ("/nonexistent/x.xml", &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
}

static void
expect_engine_error (const char *xml, const char *needle)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomain) d = gvir_config_domain_new_from_xml (xml,
                                                                    &error);
  g_assert_no_error (error);
  VesselEngineConfig cfg;
  g_test_message ("expecting '%s' from %s", needle, xml);
  g_assert_false (vessel_definition_to_engine (d, &cfg, &error));
  g_assert_nonnull (error);
  if (!strstr (error->message, needle))
    g_error ("'%s' does not mention '%s'", error->message, needle);
  vessel_engine_config_clear (&cfg);
}

#define DOM(type, body)                                                     \
  "<domain type='" type "'><name>m</name>"                                  \
  "<uuid>1b4e28ba-2fa1-11d2-883f-0016d3cca427</uuid>"                       \
  "<memory>262144</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type>" \
  "</os><devices>" body "</devices></domain>"

static void
test_unsupported (void)
{
  expect_engine_error (DOM ("qemu", ""), "KVM");
  expect_engine_error (DOM ("kvm", "<interface type='bridge'>"
                                   "<source bridge='br0'/></interface>"),
                       "user-mode");
  expect_engine_error (DOM ("kvm", "<interface type='user'>"
                                   "<model type='rtl8139'/></interface>"),
                       "e1000");
  expect_engine_error (DOM ("kvm", "<disk type='file' device='disk'>"
                                   "<source file='/a'/>"
                                   "<target dev='sda' bus='scsi'/></disk>"),
                       "virtio or ide");
  expect_engine_error (DOM ("kvm", "<disk type='file' device='disk'>"
                                   "<driver name='qemu' type='vmdk'/>"
                                   "<source file='/a.vmdk'/>"
                                   "<target dev='vda' bus='virtio'/></disk>"),
                       "vmdk");
  expect_engine_error (DOM ("kvm", "<disk type='file' device='disk'>"
                                   "<target dev='vda' bus='virtio'/></disk>"),
                       "no image");
  expect_engine_error (DOM ("kvm", "<disk type='file' device='cdrom'>"
                                   "<target dev='hdc' bus='ide'/></disk>"
                                   "<disk type='file' device='cdrom'>"
                                   "<target dev='hdd' bus='ide'/></disk>"),
                       "more than one CD-ROM");
  expect_engine_error (
      "<domain type='kvm'><name>m</name><memory>1</memory>"
      "<os><type arch='x86_64'>hvm</type></os></domain>",
      "too little memory");
  expect_engine_error (
      "<domain type='kvm'><name>m</name><memory>262144</memory>"
      "<os><type arch='aarch64'>hvm</type></os></domain>",
      "x86_64");
}

/* <os firmware='efi'> with a pflash <loader> and an <nvram>: written where
 * libvirt puts them, read back, and handed to the engine as the firmware
 * and its variable store; BIOS again removes all three. */
static void
test_uefi (void)
{
  g_autoptr (GVirConfigDomain) d = vessel_definition_new ("u", "U", 256 << 20,
                                                          1);
  g_assert_false (vessel_definition_get_uefi (d, NULL, NULL));
  vessel_definition_set_uefi (d, "/usr/share/OVMF/OVMF_CODE_4M.fd",
                              "/lib/m/1234_VARS.fd");
  g_autofree char *path = tmp_path ("uefi.xml");
  g_autoptr (GError) error = NULL;
  g_assert_true (vessel_definition_save (d, path, &error));
  g_assert_no_error (error);
  g_autofree char *xml = NULL;
  g_assert_true (g_file_get_contents (path, &xml, NULL, NULL));
  g_test_message ("%s", xml);
  g_assert_nonnull (strstr (xml, "<os firmware=\"efi\">"));
  g_assert_nonnull (strstr (xml, "<loader readonly=\"yes\" type=\"pflash\">"
                                 "/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"));
  g_assert_nonnull (strstr (xml, "<nvram>/lib/m/1234_VARS.fd</nvram>"));
  /* libvirt's order: <type>, <loader>, <nvram>, then <boot>. */
  g_assert_true (strstr (xml, "<type") < strstr (xml, "<loader"));
  g_assert_true (strstr (xml, "</nvram>") < strstr (xml, "<boot"));

  g_autoptr (GVirConfigDomain) back = vessel_definition_load (path, &error);
  g_assert_no_error (error);
  g_autofree char *code = NULL, *vars = NULL;
  g_assert_true (vessel_definition_get_uefi (back, &code, &vars));
  g_assert_cmpstr (code, ==, "/usr/share/OVMF/OVMF_CODE_4M.fd");
  g_assert_cmpstr (vars, ==, "/lib/m/1234_VARS.fd");
  g_assert_true (vessel_definition_get_boot_cdrom_first (back));
  VesselEngineConfig cfg;
  g_assert_true (vessel_definition_to_engine (back, &cfg, &error));
  g_assert_cmpstr (cfg.machine.firmware, ==, "/usr/share/OVMF/OVMF_CODE_4M.fd");
  g_assert_cmpstr (cfg.machine.firmware_vars, ==, "/lib/m/1234_VARS.fd");
  vessel_engine_config_clear (&cfg);

  /* Setting it twice keeps one of each. */
  vessel_definition_set_uefi (back, "/c.fd", "/v.fd");
  g_autofree char *xml2 = gvir_config_object_to_xml (GVIR_CONFIG_OBJECT (back));
  g_assert_null (strstr (strstr (xml2, "<loader") + 1, "<loader"));
  g_assert_null (strstr (strstr (xml2, "<nvram") + 1, "<nvram"));

  /* Back to BIOS. */
  vessel_definition_set_uefi (back, NULL, NULL);
  g_autofree char *xml3 = gvir_config_object_to_xml (GVIR_CONFIG_OBJECT (back));
  g_assert_null (strstr (xml3, "loader"));
  g_assert_null (strstr (xml3, "nvram"));
  g_assert_null (strstr (xml3, "efi"));
  g_clear_pointer (&code, g_free);
  g_clear_pointer (&vars, g_free);
  g_assert_false (vessel_definition_get_uefi (back, &code, &vars));
  g_assert_null (code);
  g_assert_null (vars);
  g_assert_true (vessel_definition_to_engine (back, &cfg, &error));
  g_assert_null (cfg.machine.firmware);
  g_assert_null (cfg.machine.firmware_vars);
  vessel_engine_config_clear (&cfg);
}

#define DOM_OS(os)                                                          \
  "<domain type='kvm'><name>m</name><memory>262144</memory>" os            \
  "<devices/></domain>"

static void
test_firmware_forms (void)
{
  /* A plain <loader>: a BIOS image of the user's own, no store. */
  g_autoptr (GError) error = NULL;
  g_autoptr (GVirConfigDomain) d = gvir_config_domain_new_from_xml (
      DOM_OS ("<os><type arch='x86_64'>hvm</type>"
              "<loader>/my/bios.bin</loader></os>"),
      &error);
  g_assert_no_error (error);
  VesselEngineConfig cfg;
  g_assert_true (vessel_definition_to_engine (d, &cfg, &error));
  g_assert_cmpstr (cfg.machine.firmware, ==, "/my/bios.bin");
  g_assert_null (cfg.machine.firmware_vars);
  vessel_engine_config_clear (&cfg);

  expect_engine_error (DOM_OS ("<os firmware='efi'><type arch='x86_64'>hvm"
                               "</type></os>"),
                       "<loader>");
  expect_engine_error (DOM_OS ("<os firmware='efi'><type arch='x86_64'>hvm"
                               "</type><loader readonly='yes' "
                               "type='pflash'>/c.fd</loader></os>"),
                       "<nvram>");
  expect_engine_error (DOM_OS ("<os><type arch='x86_64'>hvm</type>"
                               "<nvram>/v.fd</nvram></os>"),
                       "no UEFI");
}

static void
test_names (void)
{
  const struct {
    const char *in, *out;
  } cases[] = {
    { "Windows 11", "windows-11" }, { "", "machine" },
    { "...", "machine" },           { "Ünïcode ✓ box", "n-code-box" },
    { "a/b\\c", "a-b-c" },          { ".hidden", "hidden" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *n = vessel_definition_make_name (cases[i].in);
      g_assert_cmpstr (n, ==, cases[i].out);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp ("vessel-definition-XXXXXX", NULL);
  g_test_add_func ("/definition/new-round-trip", test_new_round_trip);
  g_test_add_func ("/definition/foreign", test_foreign_definition);
  g_test_add_func ("/definition/bad-files", test_bad_files);
  g_test_add_func ("/definition/unsupported", test_unsupported);
  g_test_add_func ("/definition/names", test_names);
  g_test_add_func ("/definition/uefi", test_uefi);
  g_test_add_func ("/definition/firmware-forms", test_firmware_forms);
  int rc = g_test_run ();
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmpdir);
  if (system (cmd) != 0)
    rc = rc ? rc : 0;
  g_free (tmpdir);
  return rc;
}
