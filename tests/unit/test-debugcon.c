/* Debug console port. */
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/debugcon.h"

static void
test_debugcon (void)
{
  g_autoptr (GError) error = NULL;
  vmm_bus *pio = vmm_bus_new (VMM_BUS_PIO);
  GByteArray *out = g_byte_array_new ();
  vmm_chardev chr = fake_chardev (out);
  debugcon *dc = debugcon_create (&chr);
  g_assert_true (debugcon_attach (dc, pio, DEBUGCON_DEFAULT_PORT, &error));
  g_assert_no_error (error);

  /* Firmware probes by reading back 0xE9. */
  g_assert_cmphex (tu_inb (pio, 0x402), ==, 0xe9);
  tu_outb (pio, 0x402, 'o');
  tu_outb (pio, 0x402, 'k');
  tu_outw (pio, 0x402, 0x0a41); /* the low byte only */
  g_assert_cmpmem (out->data, out->len, "okA", 3);
  /* Neighbouring ports are not claimed. */
  g_assert_cmphex (tu_inb (pio, 0x403), ==, 0xff);
  /* A second device on the same port is refused. */
  debugcon *dc2 = debugcon_create (NULL);
  g_assert_false (debugcon_attach (dc2, pio, 0x402, &error));
  g_assert_nonnull (error);
  vmm_device_destroy (debugcon_device (dc2));
  /* No chardev: writes go nowhere. */
  vmm_device_destroy (debugcon_device (dc));
  g_assert_cmphex (tu_inb (pio, 0x402), ==, 0xff);
  vmm_bus_free (pio);
  g_byte_array_unref (out);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/debugcon/basic", test_debugcon);
  return g_test_run ();
}
