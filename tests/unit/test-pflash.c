/* The CFI parallel flash: commands, status, the CFI table, program and
 * erase semantics and their write-back to the file, read-only flashes, the
 * read-array mapping callback, bad input and the saved state. */
#include "vmm-core/devices/pflash.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <unistd.h>

#define BASE UINT64_C (0xffc00000)
/* OVMF_VARS_4M.fd's size: 132 blocks of 4 KiB. */
#define VARS_SIZE (132 * 4096)

typedef struct fixture {
  char *dir;
  char *path;
  uint8_t *orig; /* what the file held at the start */
  size_t size;
  vmm_bus *mmio;
  pflash *p;
  unsigned to_array, from_array;
} fixture;

static void
on_array (void *opaque, pflash *p, bool array)
{
  fixture *f = opaque;
  if (array)
    f->to_array++;
  else
    f->from_array++;
}

static char *
write_image (const char *dir, const char *name, size_t size, uint8_t **copy)
{
  char *path = g_build_filename (dir, name, NULL);
  uint8_t *data = g_malloc (size);
  for (size_t i = 0; i < size; i++)
    data[i] = (uint8_t) (i * 7 + (i >> 12));
  g_assert_true (g_file_set_contents (path, (char *) data, (gssize) size,
                                      NULL));
  if (copy)
    *copy = data;
  else
    g_free (data);
  return path;
}

static void
fixture_open (fixture *f, size_t size, bool readonly)
{
  f->dir = g_dir_make_tmp ("pflash-XXXXXX", NULL);
  g_assert_nonnull (f->dir);
  f->size = size;
  f->path = write_image (f->dir, "vars.fd", size, &f->orig);
  g_autoptr (GError) error = NULL;
  f->p = pflash_open ("pflash-test", f->path, readonly, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->p);
  pflash_set_array_handler (f->p, on_array, f);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  g_assert_true (pflash_attach (f->p, f->mmio, BASE, &error));
  g_assert_no_error (error);
}

static void
fixture_close (fixture *f)
{
  if (f->p)
    vmm_device_destroy (pflash_device (f->p));
  vmm_bus_free (f->mmio);
  g_unlink (f->path);
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
  g_free (f->orig);
}

static uint8_t
rd (fixture *f, uint64_t off)
{
  uint64_t v;
  g_assert_true (vmm_bus_read (f->mmio, BASE + off, 1, 0, &v));
  return (uint8_t) v;
}

static void
wr (fixture *f, uint64_t off, uint8_t v)
{
  g_assert_true (vmm_bus_write (f->mmio, BASE + off, 1, 0, v));
}

static uint8_t *
file_bytes (fixture *f)
{
  char *data = NULL;
  gsize len = 0;
  g_assert_true (g_file_get_contents (f->path, &data, &len, NULL));
  g_assert_cmpuint (len, ==, f->size);
  return (uint8_t *) data;
}

static void
test_open_errors (void)
{
  g_autofree char *dir = g_dir_make_tmp ("pflash-XXXXXX", NULL);
  g_autoptr (GError) error = NULL;
  g_autofree char *missing = g_build_filename (dir, "missing.fd", NULL);
  g_assert_null (pflash_open ("f", missing, false, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND);
  g_assert_nonnull (strstr (error->message, missing));
  g_clear_error (&error);

  struct {
    const char *name;
    size_t size;
  } bad[] = { { "empty.fd", 0 }, { "odd.fd", 4096 + 512 },
              { "big.fd", PFLASH_MAX_SIZE + 4096 } };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autofree char *path = g_build_filename (dir, bad[i].name, NULL);
      FILE *fp = fopen (path, "w");
      g_assert_nonnull (fp);
      g_assert_cmpint (ftruncate (fileno (fp), (off_t) bad[i].size), ==, 0);
      fclose (fp);
      g_assert_null (pflash_open ("f", path, false, &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
      g_assert_nonnull (strstr (error->message, "multiple of 4 KiB"));
      g_assert_null (strchr (error->message, '\n'));
      g_clear_error (&error);
      g_unlink (path);
    }
  g_rmdir (dir);
}

static void
test_read_array_and_cfi (void)
{
  fixture f = { 0 };
  fixture_open (&f, VARS_SIZE, false);
  g_assert_true (pflash_in_array_mode (f.p));
  g_assert_cmpuint (pflash_size (f.p), ==, VARS_SIZE);
  g_assert_cmpmem (pflash_array (f.p), VARS_SIZE, f.orig, VARS_SIZE);
  g_assert_cmphex (rd (&f, 0x1234), ==, f.orig[0x1234]);
  /* Wider reads are byte cycles, lowest address first. */
  uint64_t v;
  vmm_bus_read (f.mmio, BASE + 8, 4, 0, &v);
  g_assert_cmphex (v, ==, f.orig[8] | f.orig[9] << 8 | f.orig[10] << 16
                              | (uint32_t) f.orig[11] << 24);

  wr (&f, 0x55, 0x98);
  g_assert_cmpuint (f.from_array, ==, 1);
  g_assert_false (pflash_in_array_mode (f.p));
  g_assert_cmphex (rd (&f, 0x10), ==, 'Q');
  g_assert_cmphex (rd (&f, 0x11), ==, 'R');
  g_assert_cmphex (rd (&f, 0x12), ==, 'Y');
  g_assert_cmphex (rd (&f, 0x13), ==, 0x01); /* Intel/Sharp */
  g_assert_cmphex (rd (&f, 0x14), ==, 0x00);
  g_assert_cmphex (rd (&f, 0x15), ==, 0x31); /* P */
  g_assert_cmphex (rd (&f, 0x17), ==, 0x00); /* no alternate set */
  g_assert_cmphex (rd (&f, 0x27), ==, 20); /* 528 KiB rounds up to 1 MiB */
  g_assert_cmphex (rd (&f, 0x28), ==, 0x00); /* x8 */
  g_assert_cmphex (rd (&f, 0x2c), ==, 1);
  g_assert_cmphex (rd (&f, 0x2d), ==, 131); /* 132 blocks */
  g_assert_cmphex (rd (&f, 0x2e), ==, 0);
  g_assert_cmphex (rd (&f, 0x2f), ==, 0x10); /* 16 x 256 = 4 KiB */
  g_assert_cmphex (rd (&f, 0x30), ==, 0x00);
  g_assert_cmphex (rd (&f, 0x31), ==, 'P');
  g_assert_cmphex (rd (&f, 0x32), ==, 'R');
  g_assert_cmphex (rd (&f, 0x33), ==, 'I');
  g_assert_cmphex (rd (&f, 0x34), ==, '1');
  g_assert_cmphex (rd (&f, 0x00), ==, 0x89); /* below 10h: the IDs */
  g_assert_cmphex (rd (&f, 0x01), ==, 0x18);
  g_assert_cmphex (rd (&f, 0x40), ==, 0x00); /* past the table */

  wr (&f, 0, 0x90);
  g_assert_cmphex (rd (&f, 0), ==, 0x89);
  g_assert_cmphex (rd (&f, 1), ==, 0x18);
  g_assert_cmphex (rd (&f, 0x3002), ==, 0x00); /* block 3 unlocked */
  g_assert_cmpuint (f.from_array, ==, 1); /* no slot churn between modes */

  wr (&f, 0x77, 0xff);
  g_assert_cmpuint (f.to_array, ==, 1);
  g_assert_cmphex (rd (&f, 0x10), ==, f.orig[0x10]);
  wr (&f, 0x77, 0x90);
  wr (&f, 0x77, 0x00); /* 0x00 is read array too */
  g_assert_cmpuint (f.to_array, ==, 2);
  g_assert_cmphex (rd (&f, 0x10), ==, f.orig[0x10]);
  fixture_close (&f);
}

/* OVMF's QemuFlashDetected: Clear Status, read (array data, not 0x50),
 * Read Status, read 0x00, then Read Array. */
static void
test_ovmf_detection (void)
{
  fixture f = { 0 };
  fixture_open (&f, VARS_SIZE, false);
  uint64_t probe = 0x20; /* orig[0x20] is neither 0x00, 0x50 nor 0x70 */
  uint8_t original = rd (&f, probe);
  wr (&f, probe, 0x50);
  g_assert_cmphex (rd (&f, probe), ==, original);
  g_assert_true (pflash_in_array_mode (f.p));
  wr (&f, probe, 0x70);
  g_assert_cmphex (rd (&f, probe), ==, 0x00);
  wr (&f, probe, 0xff);
  g_assert_cmphex (rd (&f, probe), ==, original);
  g_assert_cmpuint (f.from_array, ==, 1);
  g_assert_cmpuint (f.to_array, ==, 1);
  g_autofree uint8_t *disk = file_bytes (&f);
  g_assert_cmpmem (disk, f.size, f.orig, f.size);
  fixture_close (&f);
}

static void
test_program_and_erase (void)
{
  fixture f = { 0 };
  fixture_open (&f, VARS_SIZE, false);
  uint64_t at = 0x5123;
  uint8_t before = rd (&f, at);
  /* Program only clears bits. */
  wr (&f, at, 0x10);
  g_assert_cmphex (rd (&f, 0), ==, 0x80); /* reads give status meanwhile */
  wr (&f, at, 0x3c);
  g_assert_cmphex (rd (&f, at), ==, 0x80); /* status: ready, no error */
  wr (&f, at, 0xff);
  g_assert_cmphex (rd (&f, at), ==, before & 0x3c);
  /* 0x40 is program too. */
  wr (&f, at + 1, 0x40);
  wr (&f, at + 1, 0x00);
  wr (&f, 0, 0xff);
  g_assert_cmphex (rd (&f, at + 1), ==, 0x00);

  /* Erase: block 7 reads 0xFF, its neighbours are untouched. */
  wr (&f, 7 * 4096 + 100, 0x20);
  wr (&f, 7 * 4096 + 200, 0xd0);
  g_assert_cmphex (rd (&f, 0), ==, 0x80);
  wr (&f, 0, 0xff);
  for (size_t i = 0; i < 4096; i++)
    g_assert_cmphex (rd (&f, 7 * 4096 + i), ==, 0xff);
  g_assert_cmphex (rd (&f, 7 * 4096 - 1), ==, f.orig[7 * 4096 - 1]);
  g_assert_cmphex (rd (&f, 8 * 4096), ==, f.orig[8 * 4096]);
  /* Program after erase. */
  wr (&f, 7 * 4096 + 5, 0x10);
  wr (&f, 7 * 4096 + 5, 0xa5);
  wr (&f, 7 * 4096 + 5, 0xff);

  /* The file changed exactly there, and is synced by now. */
  g_autofree uint8_t *disk = file_bytes (&f);
  uint8_t *want = g_memdup2 (f.orig, f.size);
  want[at] = before & 0x3c;
  want[at + 1] = 0;
  memset (want + 7 * 4096, 0xff, 4096);
  want[7 * 4096 + 5] = 0xa5;
  g_assert_cmpmem (disk, f.size, want, f.size);
  g_assert_cmpmem (pflash_array (f.p), f.size, want, f.size);
  g_autoptr (GError) error = NULL;
  g_assert_true (pflash_flush (f.p, &error));
  g_assert_no_error (error);

  /* Reopened: the data persisted. */
  vmm_device_destroy (pflash_device (f.p));
  vmm_bus_free (f.mmio);
  f.p = pflash_open ("again", f.path, false, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (pflash_array (f.p), f.size, want, f.size);
  f.mmio = vmm_bus_new (VMM_BUS_MMIO);
  g_free (want);
  fixture_close (&f);
}

static void
test_status_errors (void)
{
  fixture f = { 0 };
  fixture_open (&f, 16 * 4096, false);
  /* Erase setup not followed by confirm: improper sequence, nothing
   * erased. */
  wr (&f, 4096, 0x20);
  wr (&f, 4096, 0x55);
  g_assert_cmphex (rd (&f, 4096), ==, 0xb0);
  wr (&f, 0, 0xff);
  g_assert_cmphex (rd (&f, 4096), ==, f.orig[4096]);
  /* The error stays until Clear Status. */
  wr (&f, 0, 0x70);
  g_assert_cmphex (rd (&f, 0), ==, 0xb0);
  wr (&f, 0, 0x50);
  g_assert_cmphex (rd (&f, 0), ==, 0x00);
  /* Unknown commands and a lone confirm are ignored. */
  wr (&f, 0, 0xff);
  unsigned flips = f.from_array;
  wr (&f, 3, 0xd0);
  wr (&f, 3, 0x60);
  wr (&f, 3, 0xe8);
  g_assert_cmpuint (f.from_array, ==, flips);
  g_assert_cmphex (rd (&f, 3), ==, f.orig[3]);
  /* Accesses past the end are dropped (the bus splits a straddling one). */
  uint64_t v = 0;
  vmm_bus_read (f.mmio, BASE + f.size - 2, 4, 0, &v);
  g_assert_cmphex (v & 0xffff, ==, f.orig[f.size - 2]
                                       | f.orig[f.size - 1] << 8);
  fixture_close (&f);
}

static void
test_readonly (void)
{
  fixture f = { 0 };
  fixture_open (&f, 8 * 4096, true);
  wr (&f, 10, 0x10);
  wr (&f, 10, 0x00);
  g_assert_cmphex (rd (&f, 10), ==, 0x92); /* program error, locked */
  wr (&f, 0, 0x50);
  wr (&f, 4096, 0x20);
  wr (&f, 4096, 0xd0);
  g_assert_cmphex (rd (&f, 0), ==, 0xa2); /* erase error, locked */
  wr (&f, 0, 0x90);
  g_assert_cmphex (rd (&f, 2), ==, 0x01);
  wr (&f, 0, 0xff);
  g_assert_cmpmem (pflash_array (f.p), f.size, f.orig, f.size);
  g_autofree uint8_t *disk = file_bytes (&f);
  g_assert_cmpmem (disk, f.size, f.orig, f.size);
  fixture_close (&f);
}

static void
test_reset_and_state (void)
{
  fixture f = { 0 };
  fixture_open (&f, 8 * 4096, false);
  vmm_device *dev = pflash_device (f.p);
  wr (&f, 0, 0x20);
  wr (&f, 0, 0x00); /* sequence error: status 0xb0, read status mode */
  g_autoptr (GByteArray) saved = g_byte_array_new ();
  dev->ops->save_state (dev, saved);

  vmm_device_reset (dev);
  g_assert_true (pflash_in_array_mode (f.p));
  g_assert_cmpuint (f.to_array, ==, 1);
  g_assert_cmphex (rd (&f, 1), ==, f.orig[1]);

  g_autoptr (GError) error = NULL;
  g_assert_true (dev->ops->load_state (dev, saved->data, saved->len, &error));
  g_assert_no_error (error);
  g_assert_false (pflash_in_array_mode (f.p));
  g_assert_cmphex (rd (&f, 1), ==, 0xb0);
  g_autoptr (GByteArray) again = g_byte_array_new ();
  dev->ops->save_state (dev, again);
  g_assert_cmpmem (saved->data, saved->len, again->data, again->len);

  /* Bad blobs are refused and change nothing. */
  g_assert_false (dev->ops->load_state (dev, saved->data, saved->len - 1,
                                        &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_clear_error (&error);
  g_autoptr (GByteArray) bad = g_byte_array_new ();
  g_byte_array_append (bad, saved->data, saved->len);
  bad->data[6] = 42; /* mode */
  g_assert_false (dev->ops->load_state (dev, bad->data, bad->len, &error));
  g_assert_nonnull (strstr (error->message, "mode"));
  g_clear_error (&error);
  bad->data[6] = 0;
  bad->data[7] = 0x41; /* status bits that do not exist */
  g_assert_false (dev->ops->load_state (dev, bad->data, bad->len, &error));
  g_clear_error (&error);
  g_assert_cmphex (rd (&f, 1), ==, 0xb0);
  fixture_close (&f);
}

/* Random commands, values, sizes and addresses: no crash, no access out of
 * the array, and whatever was done, 0xFF brings back read-array mode with
 * the file and the array agreeing. */
static void
test_fuzz (void)
{
  fixture f = { 0 };
  fixture_open (&f, 16 * 4096, false);
  GRand *rand = g_rand_new_with_seed (0x9f1a54);
  static const uint8_t cmds[] = { 0xff, 0x00, 0x10, 0x40, 0x20, 0xd0, 0x50,
                                  0x70, 0x90, 0x98, 0x60, 0xe8, 0xb0, 0x01 };
  static const unsigned sizes[] = { 1, 2, 4, 8 };
  for (unsigned i = 0; i < 60000; i++)
    {
      unsigned size = sizes[g_rand_int_range (rand, 0, 4)];
      uint64_t off = g_rand_int_range (rand, 0, (gint32) f.size + 64);
      uint64_t value = g_rand_boolean (rand)
                           ? cmds[g_rand_int_range (rand, 0,
                                                    G_N_ELEMENTS (cmds))]
                           : ((uint64_t) g_rand_int (rand) << 32
                              | g_rand_int (rand));
      uint64_t v;
      switch (g_rand_int_range (rand, 0, 8))
        {
        case 0:
          vmm_bus_read (f.mmio, BASE + off, size, 0, &v);
          break;
        case 1:
          if (g_rand_int_range (rand, 0, 1000) == 0)
            vmm_device_reset (pflash_device (f.p));
          break;
        default:
          vmm_bus_write (f.mmio, BASE + off, size, 0, value);
          break;
        }
    }
  g_rand_free (rand);
  wr (&f, 0, 0xff);
  g_assert_true (pflash_in_array_mode (f.p));
  g_assert_cmpuint (f.to_array, ==, f.from_array);
  g_autofree uint8_t *disk = file_bytes (&f);
  g_assert_cmpmem (disk, f.size, pflash_array (f.p), f.size);
  fixture_close (&f);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/pflash/open-errors", test_open_errors);
  g_test_add_func ("/pflash/read-array-and-cfi", test_read_array_and_cfi);
  g_test_add_func ("/pflash/ovmf-detection", test_ovmf_detection);
  g_test_add_func ("/pflash/program-and-erase", test_program_and_erase);
  g_test_add_func ("/pflash/status-errors", test_status_errors);
  g_test_add_func ("/pflash/readonly", test_readonly);
  g_test_add_func ("/pflash/reset-and-state", test_reset_and_state);
  g_test_add_func ("/pflash/fuzz", test_fuzz);
  return g_test_run ();
}
