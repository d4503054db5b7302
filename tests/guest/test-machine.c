/* The engine API under KVM: pause and resume, a reset from the host, and
 * the errors vmm_machine_new reports. Boots the guest kit's guests. */
#include "vmm-core/machine/machine.h"

#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static const char *kit_dir;

typedef struct watcher {
  GMutex lock;
  GCond cond;
  vmm_machine_state state;
  unsigned resets;
  GString *serial;
} watcher;

static void
on_event (vmm_machine *m, vmm_machine_event event, void *opaque)
{
  watcher *w = opaque;
  g_mutex_lock (&w->lock);
  if (event == VMM_MACHINE_EVENT_RESET)
    w->resets++;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
on_state (vmm_machine *m, vmm_machine_state state, void *opaque)
{
  watcher *w = opaque;
  g_mutex_lock (&w->lock);
  w->state = state;
  g_cond_broadcast (&w->cond);
  g_mutex_unlock (&w->lock);
}

static void
on_serial (void *opaque, const uint8_t *buf, size_t len)
{
  watcher *w = opaque;
  g_mutex_lock (&w->lock);
  g_string_append_len (w->serial, (const char *) buf, (gssize) len);
  g_mutex_unlock (&w->lock);
}

static void
watcher_init (watcher *w)
{
  g_mutex_init (&w->lock);
  g_cond_init (&w->cond);
  w->state = VMM_MACHINE_STOPPED;
  w->resets = 0;
  w->serial = g_string_new (NULL);
}

static void
watcher_clear (watcher *w)
{
  g_string_free (w->serial, TRUE);
  g_mutex_clear (&w->lock);
  g_cond_clear (&w->cond);
}

/* Waits for the machine to end (the meson test timeout bounds it). */
static vmm_machine_state
watcher_wait_end (watcher *w)
{
  g_mutex_lock (&w->lock);
  while (w->state != VMM_MACHINE_POWERED_OFF && w->state != VMM_MACHINE_ERROR)
    g_cond_wait (&w->cond, &w->lock);
  vmm_machine_state s = w->state;
  g_mutex_unlock (&w->lock);
  return s;
}

static unsigned
count (const char *haystack, const char *needle)
{
  unsigned n = 0;
  for (const char *p = strstr (haystack, needle); p;
       p = strstr (p + 1, needle))
    n++;
  return n;
}

static vmm_machine *
kit_machine (const char *guest, unsigned cpus, watcher *w)
{
  g_autofree char *kernel = g_strdup_printf ("%s/%s.elf", kit_dir, guest);
  vmm_machine_config cfg = {
    .memory = 64u << 20,
    .cpus = cpus,
    .kernel = kernel,
    .serial = { on_serial, w },
  };
  g_autoptr (GError) error = NULL;
  vmm_machine *m = vmm_machine_new (&cfg, &error);
  g_assert_no_error (error);
  vmm_machine_set_state_callback (m, on_state, w);
  vmm_machine_set_event_callback (m, on_event, w);
  return m;
}

static gboolean
need_kvm (void)
{
  int fd = open ("/dev/kvm", O_RDWR);
  if (fd < 0)
    {
      g_test_skip ("/dev/kvm is not usable here");
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static void
test_pause_resume (void)
{
  if (!need_kvm ())
    return;
  watcher w;
  watcher_init (&w);
  vmm_machine *m = kit_machine ("smp", 4, &w);
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_machine_start (m, &error));
  for (int i = 0; i < 20; i++)
    {
      vmm_machine_pause (m);
      vmm_machine_state s = vmm_machine_get_state (m);
      /* Paused, unless the guest got to power off first. */
      g_assert_true (s == VMM_MACHINE_PAUSED || s == VMM_MACHINE_POWERED_OFF);
      vmm_machine_resume (m);
    }
  g_assert_cmpint (watcher_wait_end (&w), ==, VMM_MACHINE_POWERED_OFF);
  g_assert_nonnull (strstr (w.serial->str, "KIT: cpus madt=4 online=4"));
  g_assert_nonnull (strstr (w.serial->str, "KIT: PASS smp"));
  vmm_machine_free (m);
  watcher_clear (&w);
}

static void
test_reset_from_host (void)
{
  if (!need_kvm ())
    return;
  watcher w;
  watcher_init (&w);
  vmm_machine *m = kit_machine ("hello", 2, &w);
  g_autoptr (GError) error = NULL;
  /* Paused before it runs, so that the reset lands before the guest
   * powers off; a reset keeps a paused machine paused. */
  g_assert_true (vmm_machine_start (m, &error));
  vmm_machine_pause (m);
  g_assert_cmpint (vmm_machine_get_state (m), ==, VMM_MACHINE_PAUSED);
  vmm_machine_reset (m);
  g_mutex_lock (&w.lock);
  while (w.resets == 0)
    g_cond_wait (&w.cond, &w.lock);
  g_mutex_unlock (&w.lock);
  g_assert_cmpint (vmm_machine_get_state (m), ==, VMM_MACHINE_PAUSED);
  vmm_machine_resume (m);
  g_assert_cmpint (watcher_wait_end (&w), ==, VMM_MACHINE_POWERED_OFF);
  g_assert_cmpuint (vmm_machine_get_reset_count (m), ==, 1);
  g_assert_cmpuint (count (w.serial->str, "KIT: PASS hello"), >=, 1);
  vmm_machine_free (m);
  watcher_clear (&w);
}

static void
expect_new_error (const vmm_machine_config *cfg, const char *fragment)
{
  g_autoptr (GError) error = NULL;
  vmm_machine *m = vmm_machine_new (cfg, &error);
  g_assert_null (m);
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  g_assert_nonnull (strstr (error->message, fragment));
  g_assert_null (strchr (error->message, '\n'));
}

static void
test_errors (void)
{
  g_autofree char *kernel = g_strdup_printf ("%s/hello.elf", kit_dir);
  vmm_machine_config small = { .memory = 1u << 20, .cpus = 1, .kernel = kernel };
  expect_new_error (&small, "too little");
  vmm_machine_config missing = { .memory = 64u << 20, .cpus = 1,
                                 .kernel = "/nonexistent/kernel" };
  expect_new_error (&missing, "/nonexistent/kernel");

  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vessel-machine-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *bad_bios = g_build_filename (dir, "bios.bin", NULL);
  g_assert_true (g_file_set_contents (bad_bios, "not a bios", -1, NULL));
  vmm_machine_config bios = { .memory = 64u << 20, .cpus = 1,
                              .firmware = bad_bios };
  expect_new_error (&bios, "is not a firmware image");
  /* A UEFI variable store that is missing, or not whole 4 KiB blocks. */
  g_autofree char *bad_vars = g_build_filename (dir, "VARS.fd", NULL);
  g_assert_true (g_file_set_contents (bad_vars, "not a flash", -1, NULL));
  vmm_machine_config no_vars = { .memory = 64u << 20, .cpus = 1,
                                 .kernel = kernel,
                                 .firmware_vars = "/nonexistent/VARS.fd" };
  expect_new_error (&no_vars, "variable store /nonexistent/VARS.fd");
  vmm_machine_config odd_vars = { .memory = 64u << 20, .cpus = 1,
                                  .kernel = kernel, .firmware_vars = bad_vars };
  expect_new_error (&odd_vars, "multiple of 4 KiB");
  g_autofree char *not_kernel = g_build_filename (dir, "kernel", NULL);
  g_assert_true (g_file_set_contents (not_kernel, "plain text", -1, NULL));
  if (need_kvm ())
    {
      vmm_machine_config nk = { .memory = 64u << 20, .cpus = 1,
                                .kernel = not_kernel };
      expect_new_error (&nk, "not a kernel Vessel can boot directly");
      vmm_machine_config many = { .memory = 64u << 20, .cpus = 65,
                                  .kernel = kernel };
      expect_new_error (&many, "CPUs");
    }
  g_unlink (bad_bios);
  g_unlink (bad_vars);
  g_unlink (not_kernel);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  kit_dir = g_getenv ("KIT_DIR");
  if (!kit_dir)
    g_error ("KIT_DIR must name the built guest kit");
  g_test_add_func ("/machine/pause-resume", test_pause_resume);
  g_test_add_func ("/machine/reset-from-host", test_reset_from_host);
  g_test_add_func ("/machine/errors", test_errors);
  return g_test_run ();
}
