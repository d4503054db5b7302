/* Every register of every device, any value, any width, interleaved with
 * host input, timers and resets: nothing may crash, assert or warn. */
#include "device-kit.h"
#include "test-util.h"

static void
access_port (device_kit *kit, uint16_t port, unsigned size, bool write,
             uint32_t value)
{
  uint64_t v;
  if (write)
    vmm_bus_write (kit->pio, port, size, 0, value);
  else
    vmm_bus_read (kit->pio, port, size, 0, &v);
}

/* Each port of each device: every byte value written, then read back. */
static void
test_sweep (void)
{
  device_kit *kit = device_kit_new ();
  for (unsigned i = 0; i < kit->n_devices; i++)
    {
      const kit_device *d = &kit->devices[i];
      for (unsigned r = 0; r < 3; r++)
        for (unsigned p = 0; p < d->ports[r].len; p++)
          {
            uint16_t port = d->ports[r].base + p;
            for (unsigned v = 0; v < 256; v++)
              {
                access_port (kit, port, 1, true, v);
                for (unsigned q = 0; q < d->ports[r].len; q++)
                  access_port (kit, d->ports[r].base + q, 1, false, 0);
              }
            access_port (kit, port, 2, true, 0xffff);
            access_port (kit, port, 4, true, 0xffffffff);
            access_port (kit, port, 2, false, 0);
            access_port (kit, port, 4, false, 0);
          }
      if (d->devfn >= 0)
        for (unsigned off = 0; off < 256; off++)
          for (unsigned v = 0; v < 256; v++)
            {
              vmm_pci_config_write (kit->host, 0, d->devfn, off, 1, v);
              vmm_pci_config_read (kit->host, 0, d->devfn, off & ~3u, 4);
            }
      fake_clock_advance (kit->fc, 1000000000ull);
    }
  device_kit_free (kit);
}

static void
test_random (void)
{
  device_kit *kit = device_kit_new ();
  guint32 seed = g_test_rand_int ();
  g_test_message ("seed %u", seed);
  GRand *rand = g_rand_new_with_seed (seed);
  static const unsigned sizes[] = { 1, 1, 1, 2, 4 };

  for (unsigned i = 0; i < 300000; i++)
    {
      const kit_device *d = &kit->devices[g_rand_int_range (rand, 0,
                                                            kit->n_devices)];
      switch (g_rand_int_range (rand, 0, 16))
        {
        case 0:
          if (d->devfn >= 0)
            {
              unsigned size = sizes[g_rand_int_range (rand, 0, 5)];
              unsigned off = g_rand_int_range (rand, 0, 256) & ~(size - 1);
              if (g_rand_boolean (rand))
                vmm_pci_config_write (kit->host, 0, d->devfn, off, size,
                                      g_rand_int (rand));
              else
                vmm_pci_config_read (kit->host, 0, d->devfn, off, size);
            }
          break;
        case 1:
          /* Through the 0xCF8/0xCFC pair, any address. */
          tu_outl (kit->pio, 0xcf8, g_rand_int (rand) | 0x80000000u);
          access_port (kit, 0xcfc + g_rand_int_range (rand, 0, 4),
                       sizes[g_rand_int_range (rand, 0, 5)],
                       g_rand_boolean (rand), g_rand_int (rand));
          break;
        case 2:
          device_kit_host_input (kit, rand);
          break;
        case 3:
          if (g_rand_int_range (rand, 0, 200) == 0)
            vmm_device_reset (d->dev);
          else
            fake_clock_advance (kit->fc, g_rand_int_range (rand, 0, 50000000));
          break;
        default:
          {
            const kit_port_range *r = &d->ports[g_rand_int_range (rand, 0, 3)];
            if (!r->len)
              break;
            access_port (kit, r->base + g_rand_int_range (rand, 0, r->len),
                         sizes[g_rand_int_range (rand, 0, 5)],
                         g_rand_int_range (rand, 0, 3) != 0,
                         g_rand_int (rand));
          }
          break;
        }
    }
  g_test_message ("%u board callbacks, %u serial bytes, %u debug bytes",
                  kit->callbacks, kit->serial_out->len, kit->debug_out->len);
  g_assert_cmpuint (kit->callbacks, >, 0);
  g_assert_cmpuint (kit->serial_out->len, >, 0);
  g_rand_free (rand);
  device_kit_free (kit);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/device-fuzz/sweep", test_sweep);
  g_test_add_func ("/device-fuzz/random", test_random);
  return g_test_run ();
}
