/* Generic save/load test over every device model: save, scribble, load,
 * compare; truncated, corrupted and foreign blobs must fail with a GError
 * and leave the device as it was. */
#include "device-kit.h"
#include "test-util.h"

static GBytes *
save (vmm_device *dev)
{
  GByteArray *out = g_byte_array_new ();
  g_mutex_lock (&dev->lock);
  dev->ops->save_state (dev, out);
  g_mutex_unlock (&dev->lock);
  return g_byte_array_free_to_bytes (out);
}

static gboolean
load (vmm_device *dev, const uint8_t *data, size_t len, GError **error)
{
  g_mutex_lock (&dev->lock);
  gboolean ok = dev->ops->load_state (dev, data, len, error);
  g_mutex_unlock (&dev->lock);
  return ok;
}

static void
assert_same (const char *name, GBytes *a, GBytes *b)
{
  if (!g_bytes_equal (a, b))
    {
      gsize la, lb;
      const uint8_t *pa = g_bytes_get_data (a, &la);
      const uint8_t *pb = g_bytes_get_data (b, &lb);
      for (gsize i = 0; i < MIN (la, lb); i++)
        if (pa[i] != pb[i])
          g_error ("%s: state differs at byte %" G_GSIZE_FORMAT
                   ": 0x%02x vs 0x%02x", name, i, pa[i], pb[i]);
      g_error ("%s: state lengths differ: %" G_GSIZE_FORMAT " vs %"
               G_GSIZE_FORMAT, name, la, lb);
    }
}

/* Random guest accesses to one device, then some host input. */
static void
scribble (device_kit *kit, const kit_device *d, GRand *rand)
{
  for (unsigned i = 0; i < 400; i++)
    {
      const kit_port_range *r = &d->ports[g_rand_int_range (rand, 0, 3)];
      if (r->len)
        {
          uint16_t port = r->base + g_rand_int_range (rand, 0, r->len);
          uint64_t v;
          if (g_rand_boolean (rand))
            vmm_bus_write (kit->pio, port, 1, 0, g_rand_int (rand));
          else
            vmm_bus_read (kit->pio, port, 1, 0, &v);
        }
      if (d->devfn >= 0 && g_rand_int_range (rand, 0, 4) == 0)
        vmm_pci_config_write (kit->host, 0, d->devfn,
                              g_rand_int_range (rand, 0x04, 0x100), 1,
                              g_rand_int (rand));
      if (g_rand_int_range (rand, 0, 10) == 0)
        device_kit_host_input (kit, rand);
    }
}

static void
test_round_trip (void)
{
  device_kit *kit = device_kit_new ();
  GRand *rand = g_rand_new_with_seed (1234);

  for (unsigned round = 0; round < 20; round++)
    for (unsigned i = 0; i < kit->n_devices; i++)
      {
        const kit_device *d = &kit->devices[i];
        g_autoptr (GError) error = NULL;
        scribble (kit, d, rand);
        g_autoptr (GBytes) a = save (d->dev);
        scribble (kit, d, rand);
        gsize len;
        const uint8_t *data = g_bytes_get_data (a, &len);
        g_assert_true (load (d->dev, data, len, &error));
        g_assert_no_error (error);
        g_autoptr (GBytes) b = save (d->dev);
        assert_same (d->name, a, b);
      }
  g_rand_free (rand);
  device_kit_free (kit);
}

static void
test_bad_blobs (void)
{
  device_kit *kit = device_kit_new ();
  GRand *rand = g_rand_new_with_seed (99);

  for (unsigned i = 0; i < kit->n_devices; i++)
    {
      const kit_device *d = &kit->devices[i];
      scribble (kit, d, rand);
      g_autoptr (GBytes) good = save (d->dev);
      gsize len;
      const uint8_t *data = g_bytes_get_data (good, &len);
      g_assert_cmpuint (len, >=, 6);

      /* Every truncation fails and changes nothing. */
      for (gsize n = 0; n < len; n++)
        {
          g_autoptr (GError) error = NULL;
          g_assert_false (load (d->dev, n ? data : NULL, n, &error));
          g_assert_nonnull (error);
          g_autoptr (GBytes) now = save (d->dev);
          assert_same (d->name, good, now);
        }
      /* Trailing bytes fail. */
      {
        g_autoptr (GError) error = NULL;
        uint8_t *longer = g_malloc (len + 1);
        memcpy (longer, data, len);
        longer[len] = 0;
        g_assert_false (load (d->dev, longer, len + 1, &error));
        g_assert_nonnull (error);
        g_free (longer);
      }
      /* Another version fails. */
      {
        g_autoptr (GError) error = NULL;
        uint8_t *other = g_memdup2 (data, len);
        other[4] ^= 0x80;
        g_assert_false (load (d->dev, other, len, &error));
        g_assert_nonnull (error);
        g_free (other);
      }
      /* Random garbage of any length fails (wrong tag). */
      for (unsigned k = 0; k < 200; k++)
        {
          g_autoptr (GError) error = NULL;
          gsize n = g_rand_int_range (rand, 0, len * 2 + 8);
          uint8_t *junk = g_malloc (n + 1);
          for (gsize j = 0; j < n; j++)
            junk[j] = (uint8_t) g_rand_int (rand);
          g_assert_false (load (d->dev, junk, n, &error));
          g_assert_nonnull (error);
          g_free (junk);
        }
      /* Corrupted fields behind a valid header: success or a GError, never
       * a crash; the device keeps working either way. */
      for (unsigned k = 0; len > 6 && k < 500; k++)
        {
          g_autoptr (GError) error = NULL;
          uint8_t *bad = g_memdup2 (data, len);
          unsigned flips = g_rand_int_range (rand, 1, 8);
          for (unsigned j = 0; j < flips; j++)
            bad[g_rand_int_range (rand, 6, len)] = (uint8_t) g_rand_int (rand);
          if (load (d->dev, bad, len, &error))
            g_assert_no_error (error);
          else
            g_assert_nonnull (error);
          g_clear_error (&error);
          g_free (bad);
          scribble (kit, d, rand);
        }
      /* Back to the good state. */
      g_autoptr (GError) error = NULL;
      g_assert_true (load (d->dev, data, len, &error));
      g_assert_no_error (error);
    }

  /* A blob from one device does not load into another. */
  for (unsigned i = 0; i < kit->n_devices; i++)
    {
      g_autoptr (GBytes) blob = save (kit->devices[i].dev);
      gsize len;
      const uint8_t *data = g_bytes_get_data (blob, &len);
      for (unsigned j = 0; j < kit->n_devices; j++)
        {
          if (i == j)
            continue;
          g_autoptr (GError) error = NULL;
          g_assert_false (load (kit->devices[j].dev, data, len, &error));
          g_assert_nonnull (error);
        }
    }
  g_rand_free (rand);
  device_kit_free (kit);
}

/* State saved from one kit restores into a fresh one. */
static void
test_transfer (void)
{
  device_kit *a = device_kit_new ();
  device_kit *b = device_kit_new ();
  GRand *rand = g_rand_new_with_seed (7);
  for (unsigned i = 0; i < a->n_devices; i++)
    scribble (a, &a->devices[i], rand);
  for (unsigned i = 0; i < a->n_devices; i++)
    {
      g_autoptr (GBytes) blob = save (a->devices[i].dev);
      gsize len;
      const uint8_t *data = g_bytes_get_data (blob, &len);
      g_autoptr (GError) error = NULL;
      g_assert_true (load (b->devices[i].dev, data, len, &error));
      g_assert_no_error (error);
    }
  /* Same guest-visible registers on both sides. */
  g_assert_cmpuint (piix4_pm_io_base (a->pm), ==, piix4_pm_io_base (b->pm));
  for (unsigned s = 0; s < I440FX_PAM_SEGMENTS; s++)
    g_assert_cmpint (i440fx_pam_mode_get (a->fx, s), ==,
                     i440fx_pam_mode_get (b->fx, s));
  for (unsigned i = 0x0e; i < 0x100; i++)
    if (i != 0x32)
      g_assert_cmphex (rtc_nvram_get (a->rtc, i), ==,
                       rtc_nvram_get (b->rtc, i));
  g_assert_cmphex (tu_inb (a->pio, 0x3f8 + 3), ==, tu_inb (b->pio, 0x3f8 + 3));
  g_rand_free (rand);
  device_kit_free (a);
  device_kit_free (b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/device-state/round-trip", test_round_trip);
  g_test_add_func ("/device-state/bad-blobs", test_bad_blobs);
  g_test_add_func ("/device-state/transfer", test_transfer);
  return g_test_run ();
}
