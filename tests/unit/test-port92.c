/* System Control Port A. */
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/port92.h"

static unsigned resets, a20_calls;
static bool a20;

static void
on_reset (void *opaque, vmm_reset_kind kind)
{
  g_assert_cmpint (kind, ==, VMM_RESET_CPU);
  resets++;
}

static void
on_a20 (void *opaque, bool on)
{
  a20_calls++;
  a20 = on;
}

static void
test_port92 (void)
{
  g_autoptr (GError) error = NULL;
  vmm_bus *pio = vmm_bus_new (VMM_BUS_PIO);
  port92 *p = port92_create (on_reset, on_a20, NULL);
  g_assert_true (port92_attach (p, pio, PORT92_PORT, &error));
  g_assert_no_error (error);

  g_assert_cmphex (tu_inb (pio, 0x92), ==, 0x00);
  /* Fast A20: bit 1, with a callback on change only. */
  tu_outb (pio, 0x92, 0x02);
  g_assert_cmphex (tu_inb (pio, 0x92), ==, 0x02);
  g_assert_true (a20);
  g_assert_true (port92_a20 (p));
  tu_outb (pio, 0x92, 0x02);
  g_assert_cmpuint (a20_calls, ==, 1);
  /* Other bits are kept. */
  tu_outb (pio, 0x92, 0xca);
  g_assert_cmphex (tu_inb (pio, 0x92), ==, 0xca);
  g_assert_cmpuint (resets, ==, 0);
  /* Bit 0 written 1: reset; it reads back 0. */
  tu_outb (pio, 0x92, 0x03);
  g_assert_cmpuint (resets, ==, 1);
  g_assert_cmphex (tu_inb (pio, 0x92), ==, 0x02);
  tu_outb (pio, 0x92, 0x00);
  g_assert_false (a20);
  g_assert_cmpuint (a20_calls, ==, 2);
  tu_outb (pio, 0x92, 0x02);
  vmm_device_reset (port92_device (p));
  g_assert_cmphex (tu_inb (pio, 0x92), ==, 0x00);

  vmm_device_destroy (port92_device (p));
  vmm_bus_free (pio);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/port92/basic", test_port92);
  return g_test_run ();
}
