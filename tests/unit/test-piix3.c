/* PIIX3 ISA bridge: IDs, PIRQ routing, ELCR, reset control at 0xCF9. */
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/piix3.h"

typedef struct {
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  piix3 *p;
  unsigned resets[2];
  int routed[4];
  unsigned pirq_calls;
} fixture;

static void
on_reset (void *opaque, vmm_reset_kind kind)
{
  fixture *f = opaque;
  g_assert_cmpuint (kind, <=, VMM_RESET_CPU);
  f->resets[kind]++;
}

static void
on_pirq (void *opaque, unsigned pirq, int irq)
{
  fixture *f = opaque;
  g_assert_cmpuint (pirq, <, 4);
  f->routed[pirq] = irq;
  f->pirq_calls++;
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  f->p = piix3_create (on_reset, on_pirq, f);
  g_assert_true (piix3_attach (f->p, f->host, f->pio, &error));
  g_assert_no_error (error);
  for (unsigned i = 0; i < 4; i++)
    f->routed[i] = -1;
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_pci_host_free (f->host);
  vmm_device_destroy (piix3_device (f->p));
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
}

static uint32_t
cfg_read (fixture *f, unsigned off, unsigned size)
{
  return vmm_pci_config_read (f->host, 0, PIIX3_DEVFN, off, size);
}

static void
cfg_write (fixture *f, unsigned off, unsigned size, uint32_t v)
{
  vmm_pci_config_write (f->host, 0, PIIX3_DEVFN, off, size, v);
}

static void
test_ids (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x70008086);
  g_assert_cmphex (cfg_read (f, 0x08, 4) >> 8, ==, 0x060100);
  g_assert_cmphex (cfg_read (f, 0x0e, 1), ==, 0x80);
  g_assert_cmphex (cfg_read (f, 0x04, 2), ==, 0x0007);
  g_assert_cmphex (cfg_read (f, 0x4c, 1), ==, 0x4d);
  g_assert_cmphex (cfg_read (f, 0x60, 4), ==, 0x80808080);
}

static void
test_pirq (fixture *f, gconstpointer data)
{
  for (unsigned i = 0; i < 4; i++)
    g_assert_cmpint (piix3_pirq_to_irq (f->p, i), ==, -1);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 4), ==, -1);
  /* SeaBIOS's routing: PIRQA-D to 10, 10, 11, 11. */
  cfg_write (f, 0x60, 4, 0x0b0b0a0a);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 0), ==, 10);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 1), ==, 10);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 2), ==, 11);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 3), ==, 11);
  g_assert_cmpuint (f->pirq_calls, ==, 4);
  g_assert_cmpint (f->routed[2], ==, 11);
  /* Reserved bits read 0; bit 7 disables. */
  cfg_write (f, 0x61, 1, 0xf5);
  g_assert_cmphex (cfg_read (f, 0x61, 1), ==, 0x85);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 1), ==, -1);
  g_assert_cmpint (f->routed[1], ==, -1);
  /* Reserved IRQ numbers route nowhere. */
  static const uint8_t reserved[] = { 0, 1, 2, 8, 13 };
  for (unsigned i = 0; i < G_N_ELEMENTS (reserved); i++)
    {
      cfg_write (f, 0x62, 1, reserved[i]);
      g_assert_cmpint (piix3_pirq_to_irq (f->p, 2), ==, -1);
    }
  cfg_write (f, 0x62, 1, 0x0f);
  g_assert_cmpint (piix3_pirq_to_irq (f->p, 2), ==, 15);
  /* Reset: 0x80 again. */
  vmm_device_reset (piix3_device (f->p));
  g_assert_cmphex (cfg_read (f, 0x60, 4), ==, 0x80808080);
  for (unsigned i = 0; i < 4; i++)
    g_assert_cmpint (f->routed[i], ==, -1);
}

static void
test_elcr (fixture *f, gconstpointer data)
{
  g_assert_cmphex (tu_inb (f->pio, 0x4d0), ==, 0);
  g_assert_cmphex (tu_inb (f->pio, 0x4d1), ==, 0);
  tu_outb (f->pio, 0x4d0, 0xff);
  tu_outb (f->pio, 0x4d1, 0xff);
  /* IRQ 0, 1, 2, 8, 13 cannot be level. */
  g_assert_cmphex (tu_inb (f->pio, 0x4d0), ==, 0xf8);
  g_assert_cmphex (tu_inb (f->pio, 0x4d1), ==, 0xde);
  tu_outw (f->pio, 0x4d0, 0x0c20);
  g_assert_cmphex (tu_inw (f->pio, 0x4d0), ==, 0x0c20);
  g_assert_true (piix3_irq_is_level (f->p, 5));
  g_assert_true (piix3_irq_is_level (f->p, 10));
  g_assert_true (piix3_irq_is_level (f->p, 11));
  g_assert_false (piix3_irq_is_level (f->p, 9));
  g_assert_false (piix3_irq_is_level (f->p, 99));
  vmm_device_reset (piix3_device (f->p));
  g_assert_cmphex (tu_inw (f->pio, 0x4d0), ==, 0);
}

static void
test_reset_control (fixture *f, gconstpointer data)
{
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0);
  /* SYS_RST alone: stored, no reset. */
  tu_outb (f->pio, 0xcf9, 0x02);
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0x02);
  g_assert_cmpuint (f->resets[VMM_RESET_SYSTEM] + f->resets[VMM_RESET_CPU],
                    ==, 0);
  /* Then RST_CPU with SYS_RST: a full reset (Linux's reboot=pci writes
   * 0x02 then 0x06). */
  tu_outb (f->pio, 0xcf9, 0x06);
  g_assert_cmpuint (f->resets[VMM_RESET_SYSTEM], ==, 1);
  g_assert_cmpuint (f->resets[VMM_RESET_CPU], ==, 0);
  /* RST_CPU alone: a CPU reset. */
  tu_outb (f->pio, 0xcf9, 0x04);
  g_assert_cmpuint (f->resets[VMM_RESET_CPU], ==, 1);
  /* Stored bits are 1..3. */
  tu_outb (f->pio, 0xcf9, 0xfb);
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0x0a);
  /* The 0xCF8 dword is still the PCI address latch. */
  tu_outl (f->pio, 0xcf8, 0x80000800);
  g_assert_cmphex (tu_inl (f->pio, 0xcf8), ==, 0x80000800);
  g_assert_cmphex (tu_inl (f->pio, 0xcfc), ==, 0x70008086);
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0x0a);
  vmm_device_reset (piix3_device (f->p));
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/piix3/" name, fixture, NULL, setup, fn, teardown)
  ADD ("ids", test_ids);
  ADD ("pirq", test_pirq);
  ADD ("elcr", test_elcr);
  ADD ("reset-control", test_reset_control);
  return g_test_run ();
}
