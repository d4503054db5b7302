/* The port-I/O / MMIO bus: registration, overlap refusal, dispatch,
 * unclaimed accesses, straddling accesses and the device lock. */
#include <gio/gio.h>

#include "test-util.h"
#include "vmm-core/bus/bus.h"

typedef struct rec {
  vmm_device dev;
  unsigned reads, writes;
  vmm_access last;
  uint64_t last_value;
  uint8_t bytes[16]; /* backing store: reads return these, writes set them */
  bool lock_held_in_handler;
} rec;

static uint64_t
rec_read (void *opaque, const vmm_access *a)
{
  rec *r = opaque;
  r->reads++;
  r->last = *a;
  /* The bus holds the device lock: trylock must fail. */
  if (g_mutex_trylock (&r->dev.lock))
    {
      r->lock_held_in_handler = false;
      g_mutex_unlock (&r->dev.lock);
    }
  else
    r->lock_held_in_handler = true;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size; i++)
    v |= (uint64_t) r->bytes[(a->offset + i) & 15] << (8 * i);
  /* Garbage above the access size: the bus must mask it. */
  if (a->size < 8)
    v |= ~0ull << (8 * a->size) & 0xdead000000000000ull;
  return v;
}

static void
rec_write (void *opaque, const vmm_access *a, uint64_t value)
{
  rec *r = opaque;
  r->writes++;
  r->last = *a;
  r->last_value = value;
  if (g_mutex_trylock (&r->dev.lock))
    {
      r->lock_held_in_handler = false;
      g_mutex_unlock (&r->dev.lock);
    }
  else
    r->lock_held_in_handler = true;
  for (unsigned i = 0; i < a->size; i++)
    r->bytes[(a->offset + i) & 15] = (value >> (8 * i)) & 0xff;
}

static const vmm_region_ops rec_ops = { rec_read, rec_write };

static void
rec_init (rec *r, const char *name)
{
  memset (r, 0, sizeof *r);
  vmm_device_init (&r->dev, name, NULL);
  for (unsigned i = 0; i < 16; i++)
    r->bytes[i] = 0x10 + i;
}

static void
rec_clear (rec *r)
{
  g_mutex_clear (&r->dev.lock);
}

static void
test_register_dispatch (void)
{
  g_autoptr (GError) error = NULL;
  vmm_bus *bus = vmm_bus_new (VMM_BUS_PIO);
  rec a, b;
  rec_init (&a, "dev-a");
  rec_init (&b, "dev-b");
  g_assert_true (vmm_bus_register (bus, 0x100, 8, &a.dev, &rec_ops, &a,
                                   &error));
  g_assert_no_error (error);
  g_assert_true (vmm_bus_register (bus, 0x108, 4, &b.dev, &rec_ops, &b,
                                   &error));
  g_assert_no_error (error);

  uint64_t v = 0;
  g_assert_true (vmm_bus_read (bus, 0x102, 2, 3, &v));
  g_assert_cmphex (v, ==, 0x1312);
  g_assert_cmpuint (a.reads, ==, 1);
  g_assert_cmpuint (a.last.addr, ==, 0x102);
  g_assert_cmpuint (a.last.offset, ==, 2);
  g_assert_cmpuint (a.last.size, ==, 2);
  g_assert_cmpuint (a.last.cpu, ==, 3);
  g_assert_cmpuint (b.reads, ==, 0);

  g_assert_true (vmm_bus_read (bus, 0x108, 4, 0, &v));
  g_assert_cmphex (v, ==, 0x13121110);
  g_assert_cmpuint (b.reads, ==, 1);
  g_assert_cmpuint (b.last.offset, ==, 0);

  g_assert_true (vmm_bus_write (bus, 0x10b, 1, VMM_ACCESS_NO_CPU, 0x1ab));
  g_assert_cmpuint (b.writes, ==, 1);
  g_assert_cmpuint (b.last.offset, ==, 3);
  g_assert_cmpuint (b.last.cpu, ==, VMM_ACCESS_NO_CPU);
  /* The value is masked to the access size. */
  g_assert_cmphex (b.last_value, ==, 0xab);

  /* 8-byte access on the MMIO-style path. */
  g_assert_true (vmm_bus_read (bus, 0x100, 8, 0, &v));
  g_assert_cmphex (v, ==, 0x1716151413121110ull);

  rec_clear (&a);
  rec_clear (&b);
  vmm_bus_free (bus);
}

static void
test_overlap_refused (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_MMIO);
  rec a, b;
  rec_init (&a, "first-device");
  rec_init (&b, "second-device");
  g_assert_true (vmm_bus_register (bus, 0x1000, 0x100, &a.dev, &rec_ops, &a,
                                   NULL));

  static const struct { uint64_t base, len; } bad[] = {
    { 0x1000, 0x100 }, /* identical */
    { 0x0f00, 0x101 }, /* ends one byte into it */
    { 0x10ff, 0x10 },  /* starts at its last byte */
    { 0x1010, 0x10 },  /* inside */
    { 0x0800, 0x1000 }, /* covers it */
  };
  for (unsigned i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_false (vmm_bus_register (bus, bad[i].base, bad[i].len, &b.dev,
                                        &rec_ops, &b, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
      /* The message names both parties. */
      g_assert_nonnull (strstr (error->message, "first-device"));
      g_assert_nonnull (strstr (error->message, "second-device"));
    }

  /* Adjacent on both sides is fine. */
  g_assert_true (vmm_bus_register (bus, 0x0f00, 0x100, &b.dev, &rec_ops, &b,
                                   NULL));
  g_assert_true (vmm_bus_register (bus, 0x1100, 0x100, &b.dev, &rec_ops, &b,
                                   NULL));

  /* Zero length and wrapping ranges are invalid. */
  g_autoptr (GError) e1 = NULL, e2 = NULL;
  g_assert_false (vmm_bus_register (bus, 0x5000, 0, &b.dev, &rec_ops, &b,
                                    &e1));
  g_assert_error (e1, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_false (vmm_bus_register (bus, UINT64_MAX - 4, 0x10, &b.dev,
                                    &rec_ops, &b, &e2));
  g_assert_error (e2, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);

  /* A NULL device is named generically, not crashed on. */
  g_autoptr (GError) e3 = NULL;
  g_assert_true (vmm_bus_register (bus, 0x3000, 0x10, NULL, &rec_ops, &a,
                                   NULL));
  g_assert_false (vmm_bus_register (bus, 0x3008, 0x10, NULL, &rec_ops, &b,
                                    &e3));
  g_assert_error (e3, G_IO_ERROR, G_IO_ERROR_EXISTS);

  rec_clear (&a);
  rec_clear (&b);
  vmm_bus_free (bus);
}

static void
test_unregister (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_PIO);
  rec a, b;
  rec_init (&a, "a");
  rec_init (&b, "b");
  g_assert_true (vmm_bus_register (bus, 0x60, 1, &a.dev, &rec_ops, &a, NULL));
  g_assert_true (vmm_bus_register (bus, 0x64, 1, &b.dev, &rec_ops, &b, NULL));
  /* Wrong opaque, wrong base, not the start of the region: refused. */
  g_assert_false (vmm_bus_unregister (bus, 0x60, &b));
  g_assert_false (vmm_bus_unregister (bus, 0x61, &a));
  g_assert_false (vmm_bus_unregister (bus, 0x200, &a));
  g_assert_true (vmm_bus_unregister (bus, 0x60, &a));
  g_assert_false (vmm_bus_unregister (bus, 0x60, &a));

  uint64_t v = 0;
  g_assert_false (vmm_bus_read (bus, 0x60, 1, 0, &v));
  g_assert_cmphex (v, ==, 0xff);
  g_assert_cmpuint (a.reads, ==, 0);
  g_assert_true (vmm_bus_read (bus, 0x64, 1, 0, &v));
  g_assert_cmpuint (b.reads, ==, 1);

  /* The range is free again. */
  g_assert_true (vmm_bus_register (bus, 0x5f, 2, &b.dev, &rec_ops, &b, NULL));
  g_assert_true (vmm_bus_read (bus, 0x60, 1, 0, &v));
  g_assert_cmpuint (b.reads, ==, 2);
  g_assert_cmpuint (b.last.offset, ==, 1);

  rec_clear (&a);
  rec_clear (&b);
  vmm_bus_free (bus);
}

static void
test_unclaimed (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_MMIO);
  uint64_t v = 0;
  static const struct { unsigned size; uint64_t ones; } cases[] = {
    { 1, 0xff }, { 2, 0xffff }, { 4, 0xffffffff }, { 8, UINT64_MAX },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      v = 0;
      g_assert_false (vmm_bus_read (bus, 0xfee00000 + i, cases[i].size, 0,
                                    &v));
      g_assert_cmphex (v, ==, cases[i].ones);
    }
  g_assert_false (vmm_bus_write (bus, 0x1234, 4, 0, 0));
  /* Many distinct unclaimed addresses: the log stays bounded, no crash. */
  for (uint64_t a = 0; a < 5000; a++)
    g_assert_false (vmm_bus_read (bus, a * 16, 1, 0, &v));
  vmm_bus_free (bus);
}

static void
test_straddle (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_PIO);
  rec a, b;
  rec_init (&a, "a");
  rec_init (&b, "b");
  g_assert_true (vmm_bus_register (bus, 0x200, 2, &a.dev, &rec_ops, &a, NULL));
  uint64_t v = 0;

  /* 4 bytes at 0x201: one byte of a, three unclaimed. */
  g_assert_true (vmm_bus_read (bus, 0x201, 4, 0, &v));
  g_assert_cmphex (v, ==, 0xffffff11);
  g_assert_cmpuint (a.reads, ==, 1);
  g_assert_cmpuint (a.last.size, ==, 1);
  g_assert_cmpuint (a.last.offset, ==, 1);

  /* Adjacent region: the split access reaches both, byte-wise. */
  g_assert_true (vmm_bus_register (bus, 0x202, 2, &b.dev, &rec_ops, &b, NULL));
  g_assert_true (vmm_bus_read (bus, 0x201, 2, 0, &v));
  g_assert_cmphex (v, ==, 0x1011);
  g_assert_cmpuint (b.reads, ==, 1);
  g_assert_cmpuint (b.last.size, ==, 1);
  g_assert_cmpuint (b.last.offset, ==, 0);

  g_assert_true (vmm_bus_read (bus, 0x200, 4, 0, &v));
  g_assert_cmphex (v, ==, 0x11101110);

  /* Writes split the same way, little-endian. */
  g_assert_true (vmm_bus_write (bus, 0x201, 4, 0, 0xaabbccdd));
  g_assert_cmphex (a.bytes[1], ==, 0xdd);
  g_assert_cmphex (b.bytes[0], ==, 0xcc);
  g_assert_cmphex (b.bytes[1], ==, 0xbb);
  g_assert_cmpuint (b.last.size, ==, 1);
  g_assert_cmphex (b.last_value, ==, 0xbb);
  /* Bytes untouched outside. */
  g_assert_cmphex (a.bytes[0], ==, 0x10);

  rec_clear (&a);
  rec_clear (&b);
  vmm_bus_free (bus);
}

static void
test_lock_held (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_MMIO);
  rec a, n;
  rec_init (&a, "locked");
  rec_init (&n, "unlocked");
  g_assert_true (vmm_bus_register (bus, 0x10000, 0x10, &a.dev, &rec_ops, &a,
                                   NULL));
  /* Registered without a device: the bus does not lock. */
  g_assert_true (vmm_bus_register (bus, 0x20000, 0x10, NULL, &rec_ops, &n,
                                   NULL));
  uint64_t v;
  vmm_bus_read (bus, 0x10000, 4, 0, &v);
  g_assert_true (a.lock_held_in_handler);
  a.lock_held_in_handler = false;
  vmm_bus_write (bus, 0x10004, 4, 0, 1);
  g_assert_true (a.lock_held_in_handler);
  /* And released afterwards. */
  g_assert_true (g_mutex_trylock (&a.dev.lock));
  g_mutex_unlock (&a.dev.lock);

  n.lock_held_in_handler = true;
  vmm_bus_read (bus, 0x20000, 4, 0, &v);
  g_assert_false (n.lock_held_in_handler);

  rec_clear (&a);
  rec_clear (&n);
  vmm_bus_free (bus);
}

/* Handlers may be NULL: reads give all-ones, writes vanish. */
static void
test_null_handlers (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_PIO);
  static const vmm_region_ops none = { NULL, NULL };
  g_assert_true (vmm_bus_register (bus, 0x80, 1, NULL, &none, NULL, NULL));
  uint64_t v = 0;
  g_assert_true (vmm_bus_read (bus, 0x80, 1, 0, &v));
  g_assert_cmphex (v, ==, 0xff);
  g_assert_true (vmm_bus_write (bus, 0x80, 1, 0, 0x12));
  vmm_bus_free (bus);
}

/* Many regions inserted out of order: each address finds its own. */
static void
test_many_regions (void)
{
  vmm_bus *bus = vmm_bus_new (VMM_BUS_MMIO);
  static rec r[64];
  for (unsigned i = 0; i < 64; i++)
    {
      unsigned k = (i * 37) % 64; /* a permutation */
      rec_init (&r[k], "r");
      g_assert_true (vmm_bus_register (bus, 0x1000 + k * 0x20, 0x10,
                                       &r[k].dev, &rec_ops, &r[k], NULL));
    }
  for (unsigned k = 0; k < 64; k++)
    {
      uint64_t v;
      g_assert_true (vmm_bus_read (bus, 0x1000 + k * 0x20 + 0xf, 1, 0, &v));
      g_assert_cmpuint (r[k].reads, ==, 1);
      g_assert_false (vmm_bus_read (bus, 0x1000 + k * 0x20 + 0x10, 1, 0, &v));
    }
  for (unsigned k = 0; k < 64; k += 2)
    g_assert_true (vmm_bus_unregister (bus, 0x1000 + k * 0x20, &r[k]));
  for (unsigned k = 0; k < 64; k++)
    {
      uint64_t v;
      g_assert_cmpint (vmm_bus_read (bus, 0x1000 + k * 0x20, 1, 0, &v), ==,
                       k & 1);
    }
  for (unsigned k = 0; k < 64; k++)
    rec_clear (&r[k]);
  vmm_bus_free (bus);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/bus/register-dispatch", test_register_dispatch);
  g_test_add_func ("/bus/overlap-refused", test_overlap_refused);
  g_test_add_func ("/bus/unregister", test_unregister);
  g_test_add_func ("/bus/unclaimed", test_unclaimed);
  g_test_add_func ("/bus/straddle", test_straddle);
  g_test_add_func ("/bus/lock-held", test_lock_held);
  g_test_add_func ("/bus/null-handlers", test_null_handlers);
  g_test_add_func ("/bus/many-regions", test_many_regions);
  return g_test_run ();
}
