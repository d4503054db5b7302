/* SMBIOS builder: the entry point, a walk over every structure, the fields
 * the guest reads (UUID byte order, CPU sockets, memory devices and ranges)
 * and -- when dmidecode is installed -- dmidecode's reading of a dump. */
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "vmm-core/boot/smbios.h"

#define GiB (UINT64_C (1) << 30)
#define MiB (UINT64_C (1) << 20)

static uint8_t
sum8 (const uint8_t *p, size_t n)
{
  uint8_t s = 0;

  while (n--)
    s += *p++;
  return s;
}

static uint64_t
le (const uint8_t *p, unsigned n)
{
  uint64_t v = 0;

  for (unsigned i = 0; i < n; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

#define LE16(p) ((uint16_t) le ((p), 2))
#define LE32(p) ((uint32_t) le ((p), 4))
#define LE64(p) le ((p), 8)

#define MAX_STRUCTS 1024

typedef struct {
  const uint8_t *s[MAX_STRUCTS];     /* formatted areas */
  size_t n;
  const uint8_t *data;
  size_t len;
} smbios_walk;

/* String @index (1-based) of structure @p, or NULL for 0. */
static const char *
sm_string (const uint8_t *p, uint8_t index)
{
  const char *s = (const char *) p + p[1];

  if (index == 0)
    return NULL;
  for (uint8_t i = 1; i < index; i++)
    {
      g_assert_cmpuint (*s, !=, 0);
      s += strlen (s) + 1;
    }
  g_assert_cmpuint (*s, !=, 0);
  return s;
}

static void
check_entry_point (GBytes *anchor, GBytes *tables, unsigned count,
                   size_t largest)
{
  gsize n;
  const uint8_t *ep = g_bytes_get_data (anchor, &n);

  g_assert_cmpuint (n, ==, VMM_SMBIOS_ANCHOR_SIZE);
  g_assert_cmpmem (ep, 4, "_SM_", 4);
  g_assert_cmpuint (sum8 (ep, ep[5]), ==, 0);
  g_assert_cmpuint (ep[5], ==, 0x1F);
  g_assert_cmpuint (ep[6], ==, 2);
  g_assert_cmpuint (ep[7], ==, 8);
  g_assert_cmpuint (LE16 (ep + 8), ==, largest);
  g_assert_cmpuint (ep[10], ==, 0);
  g_assert_cmpmem (ep + 16, 5, "_DMI_", 5);
  g_assert_cmpuint (sum8 (ep + 16, 15), ==, 0);
  g_assert_cmpuint (LE16 (ep + 22), ==, g_bytes_get_size (tables));
  g_assert_cmpuint (LE32 (ep + 24), ==, 0);
  g_assert_cmpuint (LE16 (ep + 28), ==, count);
  g_assert_cmphex (ep[30], ==, 0x28);
}

/* Walks the structures; checks the framing and handle uniqueness. */
static void
walk (smbios_walk *w, const vmm_smbios_tables *t)
{
  g_autoptr (GBytes) tables = vmm_smbios_tables_get_tables (t);
  g_autoptr (GBytes) anchor = vmm_smbios_tables_get_anchor (t);
  g_autoptr (GHashTable) handles = g_hash_table_new (NULL, NULL);
  size_t off = 0, largest = 0;

  memset (w, 0, sizeof *w);
  w->data = g_bytes_get_data (tables, &w->len);
  while (off < w->len)
    {
      const uint8_t *p = w->data + off;
      size_t str_end;
      uint16_t handle;

      g_assert_cmpuint (off + 4, <=, w->len);
      g_assert_cmpuint (p[1], >=, 4);
      g_assert_cmpuint (off + p[1] + 2, <=, w->len);
      handle = LE16 (p + 2);
      g_assert_cmpuint (handle, >=, VMM_SMBIOS_FIRST_HANDLE);
      g_assert_cmpuint (handle, <, 0xFEFF);
      g_assert_false (g_hash_table_contains (handles,
                                             GUINT_TO_POINTER (handle)));
      g_hash_table_add (handles, GUINT_TO_POINTER (handle));

      /* The string set ends with a double NUL. */
      str_end = off + p[1];
      while (w->data[str_end] != 0 || w->data[str_end + 1] != 0)
        {
          str_end++;
          g_assert_cmpuint (str_end + 1, <, w->len);
        }
      str_end += 2;
      largest = MAX (largest, str_end - off);

      g_assert_cmpuint (w->n, <, MAX_STRUCTS);
      w->s[w->n++] = p;
      off = str_end;
      if (p[0] == 127)
        break;
    }
  g_assert_cmpuint (off, ==, w->len);
  g_assert_cmpuint (w->s[w->n - 1][0], ==, 127);
  check_entry_point (anchor, tables, (unsigned) w->n, largest);
  /* w->data stays valid: @t holds its own reference to the bytes. */
}

static unsigned
count_type (const smbios_walk *w, uint8_t type)
{
  unsigned n = 0;

  for (size_t i = 0; i < w->n; i++)
    n += w->s[i][0] == type;
  return n;
}

static const uint8_t *
find_type (const smbios_walk *w, uint8_t type, unsigned nth)
{
  for (size_t i = 0; i < w->n; i++)
    if (w->s[i][0] == type && nth-- == 0)
      return w->s[i];
  return NULL;
}

static void
make_config (vmm_smbios_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->ncpus = 4;
  cfg->sockets = 2;
  cfg->uuid = "00112233-4455-6677-8899-aabbccddeeff";
  cfg->serial = "VSL-0001";
  cfg->cpuid_signature = 0x000906EA;
  cfg->cpuid_features = 0x078BFBFF;
  cfg->ram_below_4g = 3 * GiB;
  cfg->ram_above_4g = 30 * GiB;
}

static void
check_memory (const smbios_walk *w, const vmm_smbios_config *cfg)
{
  uint64_t total = cfg->ram_below_4g + cfg->ram_above_4g;
  unsigned ndev = (unsigned) ((total + 16 * GiB - 1) / (16 * GiB));
  const uint8_t *t16 = find_type (w, 16, 0);
  uint64_t sum_mib = 0;

  g_assert_nonnull (t16);
  g_assert_cmpuint (count_type (w, 16), ==, 1);
  g_assert_cmpuint (t16[1], ==, 0x17);
  g_assert_cmpuint (t16[5], ==, 0x03);
  if (LE32 (t16 + 7) == 0x80000000u)
    g_assert_cmpuint (LE64 (t16 + 0x0F), ==, total);
  else
    g_assert_cmpuint ((uint64_t) LE32 (t16 + 7) * 1024, ==, total);
  g_assert_cmpuint (LE16 (t16 + 0x0D), ==, ndev);

  g_assert_cmpuint (count_type (w, 17), ==, ndev);
  for (unsigned i = 0; i < ndev; i++)
    {
      const uint8_t *d = find_type (w, 17, i);
      uint16_t size = LE16 (d + 0x0C);
      uint64_t mib = size == 0x7FFF ? LE32 (d + 0x1C) : size;
      g_autofree char *loc = g_strdup_printf ("DIMM %u", i);

      g_assert_cmpuint (d[1], ==, 0x28);
      g_assert_cmpuint (LE16 (d + 4), ==, LE16 (t16 + 2));
      g_assert_cmpuint (size & 0x8000, ==, 0);   /* MiB units */
      g_assert_cmpuint (mib, <=, 16 * 1024);
      g_assert_cmpuint (mib, >, 0);
      g_assert_cmpstr (sm_string (d, d[0x10]), ==, loc);
      sum_mib += mib;
    }
  g_assert_cmpuint (sum_mib, ==, total / MiB);

  g_assert_cmpuint (count_type (w, 19), ==, cfg->ram_above_4g ? 2 : 1);
  for (unsigned i = 0; i < count_type (w, 19); i++)
    {
      const uint8_t *m = find_type (w, 19, i);
      uint64_t start = i ? UINT64_C (4) << 30 : 0;
      uint64_t size = i ? cfg->ram_above_4g : cfg->ram_below_4g;

      g_assert_cmpuint (m[1], ==, 0x1F);
      g_assert_cmpuint (LE16 (m + 0x0C), ==, LE16 (t16 + 2));
      if (LE32 (m + 4) == 0xFFFFFFFFu)
        {
          g_assert_cmphex (LE64 (m + 0x0F), ==, start);
          g_assert_cmphex (LE64 (m + 0x17), ==, start + size - 1);
        }
      else
        {
          g_assert_cmphex ((uint64_t) LE32 (m + 4) * 1024, ==, start);
          g_assert_cmphex ((uint64_t) LE32 (m + 8) * 1024 + 1023, ==,
                           start + size - 1);
        }
    }
}

static void
test_structures (void)
{
  vmm_smbios_config cfg;
  g_autoptr (GError) error = NULL;
  g_autoptr (vmm_smbios_tables) t = NULL;
  smbios_walk w;
  const uint8_t *p;
  static const uint8_t uuid[16] = {
    0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66,
    0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
  };

  make_config (&cfg);
  t = vmm_smbios_build (&cfg, &error);
  g_assert_no_error (error);
  walk (&w, t);

  g_assert_cmpuint (count_type (&w, 0), ==, 0);  /* SeaBIOS adds type 0 */
  g_assert_cmpuint (count_type (&w, 1), ==, 1);
  g_assert_cmpuint (count_type (&w, 3), ==, 1);
  g_assert_cmpuint (count_type (&w, 4), ==, 2);
  g_assert_cmpuint (count_type (&w, 32), ==, 1);
  g_assert_cmpuint (count_type (&w, 127), ==, 1);

  p = find_type (&w, 1, 0);
  g_assert_cmpuint (p[1], ==, 0x1B);
  g_assert_cmpstr (sm_string (p, p[4]), ==, "Vessel");
  g_assert_cmpstr (sm_string (p, p[5]), ==, "Vessel Virtual Machine");
  g_assert_cmpstr (sm_string (p, p[6]), ==, "1.0");
  g_assert_cmpstr (sm_string (p, p[7]), ==, "VSL-0001");
  g_assert_cmpmem (p + 8, 16, uuid, 16);
  g_assert_cmpuint (p[0x18], ==, 0x06);
  g_assert_null (sm_string (p, p[0x19]));
  g_assert_cmpstr (sm_string (p, p[0x1A]), ==, "Virtual Machine");

  p = find_type (&w, 3, 0);
  g_assert_cmpuint (p[1], ==, 0x16);
  g_assert_cmpuint (p[5], ==, 0x01);             /* other */

  for (unsigned i = 0; i < 2; i++)
    {
      g_autofree char *name = g_strdup_printf ("CPU %u", i);

      p = find_type (&w, 4, i);
      g_assert_cmpuint (p[1], ==, 0x2A);
      g_assert_cmpstr (sm_string (p, p[4]), ==, name);
      g_assert_cmpuint (p[5], ==, 0x03);
      g_assert_cmphex (LE32 (p + 8), ==, cfg.cpuid_signature);
      g_assert_cmphex (LE32 (p + 12), ==, cfg.cpuid_features);
      g_assert_cmpuint (LE16 (p + 0x16), ==, 2000);
      g_assert_cmphex (p[0x18], ==, 0x41);
      g_assert_cmpuint (p[0x23], ==, 2);         /* cores per socket */
      g_assert_cmpuint (p[0x24], ==, 2);
      g_assert_cmpuint (p[0x25], ==, 2);
    }

  check_memory (&w, &cfg);

  p = find_type (&w, 32, 0);
  g_assert_cmpuint (p[1], ==, 0x0B);
  g_assert_cmpuint (p[0x0A], ==, 0);
}

static void
test_defaults (void)
{
  vmm_smbios_config cfg = { 0 };
  g_autoptr (vmm_smbios_tables) t = NULL;
  smbios_walk w;
  const uint8_t *p;
  static const uint8_t zero[16] = { 0 };

  cfg.ncpus = 3;
  cfg.ram_below_4g = 512 * MiB;
  t = vmm_smbios_build (&cfg, NULL);
  g_assert_nonnull (t);
  walk (&w, t);
  p = find_type (&w, 1, 0);
  g_assert_cmpmem (p + 8, 16, zero, 16);
  g_assert_null (sm_string (p, p[7]));
  g_assert_cmpuint (count_type (&w, 4), ==, 3);  /* a socket per CPU */
  g_assert_cmpuint (find_type (&w, 4, 2)[0x23], ==, 1);
  check_memory (&w, &cfg);
}

/* Over 2 TiB: the extended capacity; over 4 TiB: extended addresses. */
static void
test_large_memory (void)
{
  vmm_smbios_config cfg;
  g_autoptr (vmm_smbios_tables) t = NULL;
  smbios_walk w;

  make_config (&cfg);
  cfg.ram_above_4g = UINT64_C (5) << 40;
  t = vmm_smbios_build (&cfg, NULL);
  g_assert_nonnull (t);
  walk (&w, t);
  g_assert_cmphex (LE32 (find_type (&w, 16, 0) + 7), ==, 0x80000000u);
  g_assert_cmphex (LE32 (find_type (&w, 19, 1) + 4), ==, 0xFFFFFFFFu);
  check_memory (&w, &cfg);
}

static void
test_errors (void)
{
  vmm_smbios_config cfg;
  g_autoptr (GError) error = NULL;

  make_config (&cfg);
  cfg.ncpus = 0;
  g_assert_null (vmm_smbios_build (&cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  make_config (&cfg);
  cfg.sockets = 3;                     /* 4 CPUs */
  g_assert_null (vmm_smbios_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg);
  cfg.uuid = "not-a-uuid";
  g_assert_null (vmm_smbios_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg);
  cfg.ram_below_4g = 0;
  g_assert_null (vmm_smbios_build (&cfg, &error));
  g_clear_error (&error);

  /* 4096 sockets do not fit a 2.x table (64 KiB). */
  make_config (&cfg);
  cfg.ncpus = 4096;
  cfg.sockets = 0;
  g_assert_null (vmm_smbios_build (&cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
}

/* dmidecode --from-dump reads a file holding the entry point at 0 and the
 * table at 0x20, with the entry point's table address set to 0x20. */
static void
test_dmidecode (void)
{
  g_autofree char *dmidecode = g_find_program_in_path ("dmidecode");
  vmm_smbios_config cfg;
  g_autoptr (vmm_smbios_tables) t = NULL;
  g_autoptr (GBytes) anchor = NULL;
  g_autoptr (GBytes) tables = NULL;
  g_autoptr (GByteArray) dump = g_byte_array_new ();
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;
  g_autofree char *path = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status;
  uint8_t *ep;

  if (!dmidecode && g_file_test ("/usr/sbin/dmidecode", G_FILE_TEST_IS_EXECUTABLE))
    dmidecode = g_strdup ("/usr/sbin/dmidecode");
  if (!dmidecode)
    {
      g_test_skip ("dmidecode not installed");
      return;
    }

  make_config (&cfg);
  t = vmm_smbios_build (&cfg, NULL);
  anchor = vmm_smbios_tables_get_anchor (t);
  tables = vmm_smbios_tables_get_tables (t);
  g_byte_array_append (dump, g_bytes_get_data (anchor, NULL),
                       VMM_SMBIOS_ANCHOR_SIZE);
  g_byte_array_set_size (dump, 0x20);
  dump->data[VMM_SMBIOS_ANCHOR_SIZE] = 0;
  g_byte_array_append (dump, g_bytes_get_data (tables, NULL),
                       g_bytes_get_size (tables));
  /* As the firmware does: set the address, redo both checksums. */
  ep = dump->data;
  ep[24] = 0x20;
  ep[21] = 0;
  ep[21] = (uint8_t) -sum8 (ep + 16, 15);
  ep[4] = 0;
  ep[4] = (uint8_t) -sum8 (ep, 31);

  dir = g_dir_make_tmp ("vessel-smbios-XXXXXX", &error);
  g_assert_no_error (error);
  path = g_build_filename (dir, "smbios.bin", NULL);
  g_assert_true (g_file_set_contents (path, (const char *) dump->data,
                                      dump->len, &error));
  {
    const char *argv[] = { dmidecode, "--from-dump", path, NULL };

    g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL,
                                 &out, &err, &status, &error));
  }
  g_assert_no_error (error);
  g_unlink (path);
  g_rmdir (dir);
  if (g_test_verbose ())
    g_test_message ("%s%s", out, err);

  g_assert_true (g_spawn_check_wait_status (status, NULL));
  g_assert_nonnull (strstr (out, "SMBIOS 2.8 present."));
  g_assert_nonnull (strstr (out, "Manufacturer: Vessel"));
  g_assert_nonnull (strstr (out, "Product Name: Vessel Virtual Machine"));
  g_assert_nonnull (strstr (out, "UUID: 00112233-4455-6677-8899-aabbccddeeff"));
  g_assert_nonnull (strstr (out, "Socket Designation: CPU 1"));
  g_assert_nonnull (strstr (out, "Size: 16 GB"));
  g_assert_nonnull (strstr (out, "Size: 1 GB"));
  g_assert_nonnull (strstr (out, "Maximum Capacity: 33 GB"));
  g_assert_nonnull (strstr (out, "End Of Table"));
  g_assert_null (strstr (out, "OUT OF SPEC"));
  g_assert_null (strstr (out, "Invalid"));
  g_assert_null (strstr (out, "Wrong"));
  g_assert_null (strstr (out, "<BAD INDEX>"));
  g_assert_cmpstr (err, ==, "");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/smbios/structures", test_structures);
  g_test_add_func ("/smbios/defaults", test_defaults);
  g_test_add_func ("/smbios/large-memory", test_large_memory);
  g_test_add_func ("/smbios/errors", test_errors);
  g_test_add_func ("/smbios/dmidecode", test_dmidecode);
  return g_test_run ();
}
