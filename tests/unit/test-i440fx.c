/* i440FX host bridge: IDs, PAM callbacks, SMRAM lock. */
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/i440fx.h"

typedef struct {
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  i440fx *fx;
  unsigned calls;
  int mode[I440FX_PAM_SEGMENTS];
} fixture;

static void
on_pam (void *opaque, unsigned segment, i440fx_pam_mode mode)
{
  fixture *f = opaque;
  g_assert_cmpuint (segment, <, I440FX_PAM_SEGMENTS);
  g_assert_cmpuint (mode, <=, 3);
  f->calls++;
  f->mode[segment] = mode;
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  f->fx = i440fx_create (on_pam, f);
  g_assert_true (i440fx_attach (f->fx, f->host, &error));
  g_assert_no_error (error);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_pci_host_free (f->host);
  vmm_device_destroy (i440fx_device (f->fx));
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
}

static uint32_t
cfg_read (fixture *f, unsigned off, unsigned size)
{
  return vmm_pci_config_read (f->host, 0, 0, off, size);
}

static void
cfg_write (fixture *f, unsigned off, unsigned size, uint32_t v)
{
  vmm_pci_config_write (f->host, 0, 0, off, size, v);
}

static void
test_ids (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x12378086);
  g_assert_cmphex (cfg_read (f, 0x08, 4), ==, 0x06000002);
  g_assert_cmphex (cfg_read (f, 0x0e, 1), ==, 0x00);
  g_assert_cmphex (cfg_read (f, 0x2c, 4), ==, 0x11001af4);
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x02);
  /* Through the 0xCF8/0xCFC ports as firmware sees it. */
  tu_outl (f->pio, 0xcf8, 0x80000000);
  g_assert_cmphex (tu_inl (f->pio, 0xcfc), ==, 0x12378086);
  /* IDs are read-only. */
  cfg_write (f, 0x00, 4, 0);
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x12378086);
}

static void
test_pam (fixture *f, gconstpointer data)
{
  g_assert_cmpuint (f->calls, ==, 0);
  /* SeaBIOS makes the BIOS area writable: PAM0 = 0x30, others 0x33. */
  cfg_write (f, 0x59, 1, 0x30);
  g_assert_cmpuint (f->calls, ==, 1);
  g_assert_cmpint (f->mode[0], ==, I440FX_PAM_READ_WRITE);
  g_assert_cmphex (cfg_read (f, 0x59, 1), ==, 0x30);
  /* Low nibble of PAM0 and the reserved bits are not writable. */
  cfg_write (f, 0x59, 1, 0xff);
  g_assert_cmphex (cfg_read (f, 0x59, 1), ==, 0x30);
  g_assert_cmpuint (f->calls, ==, 1);
  /* A dword over 0x5c-0x5f: segments 5..12. */
  cfg_write (f, 0x5c, 4, 0x33333333);
  g_assert_cmpuint (f->calls, ==, 9);
  for (unsigned s = 5; s <= 12; s++)
    g_assert_cmpint (f->mode[s], ==, 3);
  /* Each nibble is one segment: PAM1 low = 0xC0000, high = 0xC4000. */
  cfg_write (f, 0x5a, 1, 0x21);
  g_assert_cmpint (f->mode[1], ==, I440FX_PAM_READ_ONLY);
  g_assert_cmpint (f->mode[2], ==, I440FX_PAM_WRITE_ONLY);
  g_assert_cmpint (i440fx_pam_mode_get (f->fx, 2), ==, I440FX_PAM_WRITE_ONLY);
  uint64_t base, size;
  i440fx_pam_segment_range (2, &base, &size);
  g_assert_cmphex (base, ==, 0xc4000);
  g_assert_cmphex (size, ==, 0x4000);
  i440fx_pam_segment_range (12, &base, &size);
  g_assert_cmphex (base, ==, 0xec000);
  i440fx_pam_segment_range (0, &base, &size);
  g_assert_cmphex (base, ==, 0xf0000);
  g_assert_cmphex (size, ==, 0x10000);
  /* Rewriting the same value does not call back. */
  unsigned calls = f->calls;
  cfg_write (f, 0x5a, 1, 0x21);
  g_assert_cmpuint (f->calls, ==, calls);
  /* Reset returns every segment to 0 and says so. */
  vmm_device_reset (i440fx_device (f->fx));
  for (unsigned s = 0; s < I440FX_PAM_SEGMENTS; s++)
    g_assert_cmpint (f->mode[s], ==, 0);
  g_assert_cmpuint (f->calls, ==, calls + 11);
  g_assert_cmphex (cfg_read (f, 0x5c, 4), ==, 0);
}

static void
test_smram (fixture *f, gconstpointer data)
{
  cfg_write (f, 0x72, 1, 0xef);
  /* C_BASE_SEG is fixed; reserved bit 7 reads 0. */
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x6a);
  cfg_write (f, 0x72, 1, 0x4a);
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x4a);
  /* D_LCK closes D_OPEN and locks itself and G_SMRAME. */
  cfg_write (f, 0x72, 1, 0x5a);
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x1a);
  cfg_write (f, 0x72, 1, 0x42);
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x1a);
  cfg_write (f, 0x72, 1, 0x3a);
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x3a);
  vmm_device_reset (i440fx_device (f->fx));
  g_assert_cmphex (cfg_read (f, 0x72, 1), ==, 0x02);
  cfg_write (f, 0x72, 1, 0x4a);
  g_assert_cmphex (i440fx_smram (f->fx), ==, 0x4a);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/i440fx/" name, fixture, NULL, setup, fn, teardown)
  ADD ("ids", test_ids);
  ADD ("pam", test_pam);
  ADD ("smram", test_smram);
  return g_test_run ();
}
