#include "device-kit.h"

static void
on_callback (void *opaque)
{
  ((device_kit *) opaque)->callbacks++;
}

static void
on_reset (void *opaque, vmm_reset_kind kind)
{
  ((device_kit *) opaque)->callbacks++;
}

static void
on_a20 (void *opaque, bool on)
{
  ((device_kit *) opaque)->callbacks++;
}

static void
on_pam (void *opaque, unsigned segment, i440fx_pam_mode mode)
{
  g_assert_cmpuint (segment, <, I440FX_PAM_SEGMENTS);
  g_assert_cmpuint (mode, <=, 3);
  ((device_kit *) opaque)->callbacks++;
}

static void
on_pirq (void *opaque, unsigned pirq, int irq)
{
  g_assert_cmpuint (pirq, <, 4);
  g_assert_cmpint (irq, >=, -1);
  g_assert_cmpint (irq, <, 16);
  ((device_kit *) opaque)->callbacks++;
}

static void
add (device_kit *kit, const char *name, vmm_device *dev, int devfn,
     kit_port_range p0, kit_port_range p1, kit_port_range p2)
{
  g_assert_cmpuint (kit->n_devices, <, KIT_MAX_DEVICES);
  kit->devices[kit->n_devices++] = (kit_device){
    .name = name, .dev = dev, .devfn = devfn, .ports = { p0, p1, p2 },
  };
}

#define R(b, l) ((kit_port_range){ (b), (l) })
#define NONE R (0, 0)

device_kit *
device_kit_new (void)
{
  g_autoptr (GError) error = NULL;
  device_kit *kit = g_new0 (device_kit, 1);
  kit->pio = vmm_bus_new (VMM_BUS_PIO);
  kit->mmio = vmm_bus_new (VMM_BUS_MMIO);
  kit->host = vmm_pci_host_new (kit->pio, kit->mmio, NULL, NULL, &error);
  g_assert_no_error (error);
  kit->fc = fake_clock_new (1000000000ull);
  vmm_clock *clock = fake_clock_get (kit->fc);
  kit->serial_out = g_byte_array_new ();
  kit->debug_out = g_byte_array_new ();

  vmm_irq irq4 = fake_irq_line (&kit->irq, 4);
  vmm_chardev serial = fake_chardev (kit->serial_out);
  kit->uart = uart16550_create ("com1", &irq4, &serial, clock, on_callback,
                                kit);
  g_assert_true (uart16550_attach (kit->uart, kit->pio, 0x3f8, &error));
  add (kit, "uart16550", uart16550_device (kit->uart), -1, R (0x3f8, 8), NONE,
       NONE);

  vmm_chardev dbg = fake_chardev (kit->debug_out);
  kit->dcon = debugcon_create (&dbg);
  g_assert_true (debugcon_attach (kit->dcon, kit->pio, 0x402, &error));
  add (kit, "debugcon", debugcon_device (kit->dcon), -1, R (0x402, 1), NONE,
       NONE);

  vmm_irq irq8 = fake_irq_line (&kit->irq, 8);
  kit->rtc = rtc_create (clock, &irq8, 0);
  g_assert_true (rtc_attach (kit->rtc, kit->pio, 0x70, &error));
  add (kit, "rtc", rtc_device (kit->rtc), -1, R (0x70, 4), NONE, NONE);

  vmm_irq irq9 = fake_irq_line (&kit->irq, 9);
  kit->pm = piix4_pm_create (kit->pio, clock, &irq9, on_callback, kit);
  g_assert_true (piix4_pm_attach (kit->pm, kit->host, PIIX4_PM_DEVFN, &error));
  vmm_pci_config_write (kit->host, 0, PIIX4_PM_DEVFN, 0x40, 4, 0x601);
  vmm_pci_config_write (kit->host, 0, PIIX4_PM_DEVFN, 0x80, 1, 1);
  g_assert_cmpuint (piix4_pm_io_base (kit->pm), ==, 0x600);
  add (kit, "piix4-pm", piix4_pm_device (kit->pm), PIIX4_PM_DEVFN,
       R (0xb2, 2), R (0x600, 64), NONE);

  kit->fx = i440fx_create (on_pam, kit);
  g_assert_true (i440fx_attach (kit->fx, kit->host, &error));
  add (kit, "i440fx", i440fx_device (kit->fx), I440FX_DEVFN, NONE, NONE,
       NONE);

  kit->piix3 = piix3_create (on_reset, on_pirq, kit);
  g_assert_true (piix3_attach (kit->piix3, kit->host, kit->pio, &error));
  add (kit, "piix3", piix3_device (kit->piix3), PIIX3_DEVFN, R (0x4d0, 2),
       R (0xcf9, 1), NONE);

  vmm_irq irq1 = fake_irq_line (&kit->irq, 1);
  vmm_irq irq12 = fake_irq_line (&kit->irq, 12);
  kit->kbc = i8042_create (&irq1, &irq12, on_reset, on_a20, kit);
  g_assert_true (i8042_attach (kit->kbc, kit->pio, 0x60, &error));
  add (kit, "i8042", i8042_device (kit->kbc), -1, R (0x60, 1), R (0x64, 1),
       NONE);

  kit->p92 = port92_create (on_reset, on_a20, kit);
  g_assert_true (port92_attach (kit->p92, kit->pio, 0x92, &error));
  add (kit, "port92", port92_device (kit->p92), -1, R (0x92, 1), NONE, NONE);
  g_assert_no_error (error);
  return kit;
}

void
device_kit_free (device_kit *kit)
{
  /* The PCI host first (it points at the functions), then the devices
   * (they unregister their ports), then the buses. */
  vmm_pci_host_free (kit->host);
  for (unsigned i = 0; i < kit->n_devices; i++)
    vmm_device_destroy (kit->devices[i].dev);
  fake_clock_free (kit->fc);
  vmm_bus_free (kit->pio);
  vmm_bus_free (kit->mmio);
  g_byte_array_unref (kit->serial_out);
  g_byte_array_unref (kit->debug_out);
  g_free (kit);
}

void
device_kit_host_input (device_kit *kit, GRand *rand)
{
  uint8_t buf[24];
  size_t n = g_rand_int_range (rand, 0, sizeof buf + 1);
  for (size_t i = 0; i < n; i++)
    buf[i] = (uint8_t) g_rand_int (rand);
  switch (g_rand_int_range (rand, 0, 7))
    {
    case 0:
      g_assert_cmpuint (uart16550_receive (kit->uart, buf, n), <=, n);
      break;
    case 1:
      i8042_keyboard_put (kit->kbc, buf, n);
      break;
    case 2:
      i8042_mouse_put_motion (kit->kbc, g_rand_int_range (rand, -2000, 2000),
                              g_rand_int_range (rand, -2000, 2000),
                              g_rand_int_range (rand, -200, 200),
                              g_rand_int (rand));
      break;
    case 3:
      piix4_pm_power_button (kit->pm);
      break;
    case 4:
      piix4_pm_set_gpe (kit->pm, g_rand_int_range (rand, 0, 16));
      break;
    case 5:
      rtc_nvram_set (kit->rtc, g_rand_int_range (rand, 0, 300),
                     (uint8_t) g_rand_int (rand));
      rtc_set_time (kit->rtc, (int64_t) g_rand_int (rand)
                                  + g_rand_int_range (rand, -1000, 1000)
                                        * (int64_t) 86400 * 365);
      break;
    default:
      fake_clock_advance (kit->fc, g_rand_int_range (rand, 0, 3000000));
      break;
    }
}
