/* ACPI table builder: the AML encoder, the table-loader commands (checked by
 * a small firmware stand-in that allocates, patches and checksums), the
 * resulting tables field by field, direct boot into a plain buffer, and --
 * when iasl is installed -- a disassembly of every table by ACPICA. */
#include <gio/gio.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <string.h>

#include "vmm-core/boot/acpi.h"
#include "vmm-core/boot/aml.h"

/* ---- helpers ---- */

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

static void
assert_bytes (GByteArray *got, const uint8_t *want, size_t n)
{
  g_assert_cmpmem (got->data, got->len, want, n);
}

/* ---- AML ---- */

static void
test_aml_pkglength (void)
{
  uint8_t b[4];

  g_assert_cmpuint (vmm_aml_encode_pkglength (0, b), ==, 1);
  g_assert_cmphex (b[0], ==, 0x01);
  g_assert_cmpuint (vmm_aml_encode_pkglength (62, b), ==, 1);
  g_assert_cmphex (b[0], ==, 0x3F);
  /* 63 + 2 = 65 = 0x041: lead byte 0x40 | 0x1, then 0x04. */
  g_assert_cmpuint (vmm_aml_encode_pkglength (63, b), ==, 2);
  g_assert_cmphex (b[0], ==, 0x41);
  g_assert_cmphex (b[1], ==, 0x04);
  /* The largest two-byte length: 0xFFF. */
  g_assert_cmpuint (vmm_aml_encode_pkglength (0xFFF - 2, b), ==, 2);
  g_assert_cmphex (b[0], ==, 0x4F);
  g_assert_cmphex (b[1], ==, 0xFF);
  /* One more needs three bytes: 0xFFE + 3 = 0x1001. */
  g_assert_cmpuint (vmm_aml_encode_pkglength (0xFFE, b), ==, 3);
  g_assert_cmphex (b[0], ==, 0x81);
  g_assert_cmphex (b[1], ==, 0x00);
  g_assert_cmphex (b[2], ==, 0x01);
  /* Four bytes up to 2^28 - 1. */
  g_assert_cmpuint (vmm_aml_encode_pkglength (0xFFFFF, b), ==, 4);
  g_assert_cmphex (b[0], ==, 0xC3);
  g_assert_cmphex (b[1], ==, 0x00);
  g_assert_cmphex (b[2], ==, 0x00);
  g_assert_cmphex (b[3], ==, 0x01);
  g_assert_cmpuint (vmm_aml_encode_pkglength ((1u << 28) - 5, b), ==, 4);
  g_assert_cmpuint (vmm_aml_encode_pkglength ((1u << 28) - 4, b), ==, 0);
}

static void
check_int (uint64_t v, const uint8_t *want, size_t n)
{
  g_autoptr (GByteArray) got = vmm_aml_finish (vmm_aml_int (v));

  assert_bytes (got, want, n);
}

static void
test_aml_integers (void)
{
  check_int (0, (const uint8_t[]) { 0x00 }, 1);
  check_int (1, (const uint8_t[]) { 0x01 }, 1);
  check_int (2, (const uint8_t[]) { 0x0A, 0x02 }, 2);
  check_int (0xFF, (const uint8_t[]) { 0x0A, 0xFF }, 2);
  check_int (0x100, (const uint8_t[]) { 0x0B, 0x00, 0x01 }, 3);
  check_int (0xFFFF, (const uint8_t[]) { 0x0B, 0xFF, 0xFF }, 3);
  check_int (0x10000, (const uint8_t[]) { 0x0C, 0x00, 0x00, 0x01, 0x00 }, 5);
  check_int (0xFFFFFFFF, (const uint8_t[]) { 0x0C, 0xFF, 0xFF, 0xFF, 0xFF },
             5);
  check_int (UINT64_C (0x100000000),
             (const uint8_t[]) { 0x0E, 0, 0, 0, 0, 1, 0, 0, 0 }, 9);
  check_int (UINT64_MAX, (const uint8_t[]) { 0xFF }, 1);
}

static void
test_aml_names (void)
{
  g_autoptr (GByteArray) a = vmm_aml_finish (vmm_aml_name_string ("\\_SB.PCI0"));
  g_autoptr (GByteArray) b = vmm_aml_finish (vmm_aml_name_string ("^ISA"));
  g_autoptr (GByteArray) c = vmm_aml_finish (vmm_aml_name_string ("A.B.C"));
  g_autoptr (GByteArray) d = vmm_aml_finish (vmm_aml_name_string ("\\"));
  g_autoptr (GByteArray) e = vmm_aml_finish (vmm_aml_eisaid ("PNP0A03"));
  g_autoptr (GByteArray) f = vmm_aml_finish (vmm_aml_string ("AB"));

  assert_bytes (a, (const uint8_t *) "\\\x2E_SB_PCI0", 10);
  assert_bytes (b, (const uint8_t *) "^ISA_", 5);
  assert_bytes (c, (const uint8_t *) "\x2F\x03" "A___B___C___", 14);
  assert_bytes (d, (const uint8_t[]) { 0x5C, 0x00 }, 2);
  /* EISAID("PNP0A03") is the well-known 0x030AD041. */
  assert_bytes (e, (const uint8_t[]) { 0x0C, 0x41, 0xD0, 0x0A, 0x03 }, 5);
  assert_bytes (f, (const uint8_t[]) { 0x0D, 'A', 'B', 0x00 }, 4);
}

static void
test_aml_containers (void)
{
  vmm_aml *scope = vmm_aml_scope ("\\_SB");
  vmm_aml *pkg = vmm_aml_package ();
  vmm_aml *rt = vmm_aml_resource_template ();
  vmm_aml *m = vmm_aml_method ("_PIC", 1, false);
  g_autoptr (GByteArray) out = NULL;
  g_autoptr (GByteArray) pk = NULL;
  g_autoptr (GByteArray) res = NULL;
  g_autoptr (GByteArray) meth = NULL;

  /* 20 names of 6 bytes each make a body over 63 bytes. */
  for (int i = 0; i < 20; i++)
    {
      g_autofree char *n = g_strdup_printf ("N%03d", i);
      vmm_aml_append (scope, vmm_aml_name (n, vmm_aml_int (0)));
    }
  out = vmm_aml_finish (scope);
  /* ScopeOp, 2-byte PkgLength (5 + 120 + 2 = 127), '\' "_SB_". */
  g_assert_cmpuint (out->len, ==, 1 + 2 + 5 + 20 * 6);
  g_assert_cmphex (out->data[0], ==, 0x10);
  g_assert_cmphex (out->data[1], ==, 0x40 | (127 & 0xF));
  g_assert_cmphex (out->data[2], ==, 127 >> 4);
  g_assert_cmpmem (out->data + 3, 5, "\\_SB_", 5);

  vmm_aml_append (pkg, vmm_aml_int (0));
  vmm_aml_append (pkg, vmm_aml_int (5));
  pk = vmm_aml_finish (pkg);
  assert_bytes (pk, (const uint8_t[]) { 0x12, 0x05, 0x02, 0x00, 0x0A, 0x05 },
                6);

  vmm_aml_append (rt, vmm_aml_irq_noflags (4));
  res = vmm_aml_finish (rt);
  /* Buffer(5) { IRQ 4, End Tag }. */
  assert_bytes (res, (const uint8_t[]) { 0x11, 0x08, 0x0A, 0x05, 0x22, 0x10,
                                         0x00, 0x79, 0x00 }, 9);

  vmm_aml_append (m, vmm_aml_store (vmm_aml_arg (0),
                                    vmm_aml_name_string ("\\PICM")));
  meth = vmm_aml_finish (m);
  assert_bytes (meth, (const uint8_t[]) { 0x14, 0x0D, '_', 'P', 'I', 'C',
                                          0x01, 0x70, 0x68, '\\', 'P', 'I',
                                          'C', 'M' }, 14);
}

static void
test_aml_statements (void)
{
  vmm_aml *block = vmm_aml_block ();
  vmm_aml *cond = vmm_aml_if (vmm_aml_lequal (vmm_aml_arg (0), vmm_aml_int (1)));
  vmm_aml *otherwise = vmm_aml_else ();
  g_autoptr (GByteArray) out = NULL;
  g_autoptr (GByteArray) buf = NULL;
  static const uint8_t data[3] = { 1, 2, 3 };

  vmm_aml_append (cond, vmm_aml_return (vmm_aml_int (0)));
  vmm_aml_append (otherwise, vmm_aml_store (vmm_aml_int (UINT64_MAX),
                                            vmm_aml_local (2)));
  vmm_aml_append (block, cond);
  vmm_aml_append (block, otherwise);
  out = vmm_aml_finish (block);
  /* If (LEqual (Arg0, One)) { Return (Zero) } Else { Local2 = Ones } */
  assert_bytes (out, (const uint8_t[]) { 0xA0, 0x06, 0x93, 0x68, 0x01, 0xA4,
                                         0x00, 0xA1, 0x04, 0x70, 0xFF, 0x62 },
                12);

  buf = vmm_aml_finish (vmm_aml_buffer (data, sizeof data));
  assert_bytes (buf, (const uint8_t[]) { 0x11, 0x06, 0x0A, 0x03, 1, 2, 3 }, 7);
}

static void
test_aml_resources (void)
{
  g_autoptr (GByteArray) io = vmm_aml_finish (vmm_aml_io (0x3F8, 0x3F8, 1, 8));
  g_autoptr (GByteArray) mem = vmm_aml_finish (
    vmm_aml_memory32_fixed (0xFED00000, 0x400, false));
  g_autoptr (GByteArray) bus = vmm_aml_finish (
    vmm_aml_word_bus_number (VMM_AML_PRODUCER, 0, 0xFF));
  g_autoptr (GByteArray) dio = vmm_aml_finish (
    vmm_aml_dword_io (VMM_AML_PRODUCER, 0xD00, 0xFFFF));
  g_autoptr (GByteArray) dmem = vmm_aml_finish (
    vmm_aml_dword_memory (VMM_AML_PRODUCER, VMM_AML_CACHEABLE, true,
                          0xA0000, 0xBFFFF));
  g_autoptr (GByteArray) qmem = vmm_aml_finish (
    vmm_aml_qword_memory (VMM_AML_PRODUCER, VMM_AML_NON_CACHEABLE, true,
                          UINT64_C (0x800000000), UINT64_C (0xFFFFFFFFF)));

  assert_bytes (io, (const uint8_t[]) { 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03,
                                        0x01, 0x08 }, 8);
  assert_bytes (mem, (const uint8_t[]) { 0x86, 0x09, 0x00, 0x00, 0x00, 0x00,
                                         0xD0, 0xFE, 0x00, 0x04, 0x00, 0x00 },
                12);
  /* Word, bus range: MinFixed | MaxFixed, producer; length 0x100. */
  assert_bytes (bus, (const uint8_t[]) { 0x88, 0x0D, 0x00, 0x02, 0x0C, 0x00,
                                         0x00, 0x00, 0x00, 0x00, 0xFF, 0x00,
                                         0x00, 0x00, 0x00, 0x01 }, 16);
  g_assert_cmpuint (dio->len, ==, 26);
  g_assert_cmphex (dio->data[0], ==, 0x87);
  g_assert_cmphex (dio->data[3], ==, 0x01);      /* I/O */
  g_assert_cmphex (dio->data[5], ==, 0x03);      /* entire range */
  g_assert_cmphex (LE32 (dio->data + 10), ==, 0xD00);
  g_assert_cmphex (LE32 (dio->data + 14), ==, 0xFFFF);
  g_assert_cmphex (LE32 (dio->data + 22), ==, 0xF300);
  g_assert_cmphex (dmem->data[3], ==, 0x00);     /* memory */
  g_assert_cmphex (dmem->data[5], ==, 0x03);     /* cacheable, read-write */
  g_assert_cmpuint (qmem->len, ==, 46);
  g_assert_cmphex (qmem->data[0], ==, 0x8A);
  g_assert_cmphex (qmem->data[5], ==, 0x01);     /* non-cacheable, RW */
  g_assert_cmphex (LE64 (qmem->data + 14), ==, UINT64_C (0x800000000));
  g_assert_cmphex (LE64 (qmem->data + 22), ==, UINT64_C (0xFFFFFFFFF));
  g_assert_cmphex (LE64 (qmem->data + 38), ==, UINT64_C (0x800000000));
}

/* ---- a firmware stand-in for the table loader ---- */

#define MEM_SIZE (16u << 20)
#define FSEG_START 0xF0000u
#define FSEG_END 0x100000u
#define HIGH_TOP 0xF00000u             /* allocations grow down from here */

typedef struct {
  char name[VMM_ACPI_LOADER_FILE_SIZE];
  GBytes *contents;
  uint64_t addr;
  bool allocated;
} fw_file;

typedef struct {
  uint8_t *mem;                        /* guest memory, gpa 0..MEM_SIZE */
  fw_file files[2];
  uint64_t fseg_next;
  uint64_t high_next;
  uint64_t rsdp;
} fw;

static fw_file *
fw_lookup (fw *f, const uint8_t *field)
{
  char name[VMM_ACPI_LOADER_FILE_SIZE];

  /* A file name is NUL-terminated inside its 56 bytes and padded with
   * zeros. */
  g_assert_nonnull (memchr (field, 0, VMM_ACPI_LOADER_FILE_SIZE));
  memcpy (name, field, sizeof name);
  for (size_t i = strlen (name); i < sizeof name; i++)
    g_assert_cmpuint (name[i], ==, 0);
  for (int i = 0; i < 2; i++)
    if (strcmp (f->files[i].name, name) == 0)
      return &f->files[i];
  g_error ("loader names unknown file \"%s\"", name);
  return NULL;
}

static uint8_t *
fw_data (fw *f, fw_file *file)
{
  g_assert_true (file->allocated);
  return f->mem + file->addr;
}

static void
assert_zero (const uint8_t *p, size_t from, size_t to)
{
  for (size_t i = from; i < to; i++)
    g_assert_cmpuint (p[i], ==, 0);
}

/* Runs the loader as SeaBIOS would; checks every command's shape. */
static void
fw_run (fw *f, const vmm_acpi_tables *t)
{
  g_autoptr (GBytes) loader = vmm_acpi_tables_get_loader (t);
  gsize len;
  const uint8_t *cmds = g_bytes_get_data (loader, &len);
  unsigned n_alloc = 0, n_ptr = 0, n_csum = 0;

  memset (f, 0, sizeof *f);
  f->mem = g_malloc0 (MEM_SIZE);
  f->fseg_next = FSEG_START;
  f->high_next = HIGH_TOP;
  g_strlcpy (f->files[0].name, VMM_ACPI_FWCFG_TABLES, sizeof f->files[0].name);
  f->files[0].contents = vmm_acpi_tables_get_tables_blob (t);
  g_strlcpy (f->files[1].name, VMM_ACPI_FWCFG_RSDP, sizeof f->files[1].name);
  f->files[1].contents = vmm_acpi_tables_get_rsdp_blob (t);
  g_assert_cmpuint (g_bytes_get_size (f->files[1].contents), ==,
                    VMM_ACPI_RSDP_SIZE);

  g_assert_cmpuint (len % VMM_ACPI_LOADER_ENTRY_SIZE, ==, 0);
  g_assert_cmpuint (len, >, 0);
  for (gsize off = 0; off < len; off += VMM_ACPI_LOADER_ENTRY_SIZE)
    {
      const uint8_t *c = cmds + off;
      uint32_t type = LE32 (c);

      switch (type)
        {
        case VMM_ACPI_LOADER_ALLOCATE:
          {
            fw_file *file = fw_lookup (f, c + 4);
            uint32_t align = LE32 (c + 60);
            uint8_t zone = c[64];
            gsize size = g_bytes_get_size (file->contents);

            g_assert_false (file->allocated);
            g_assert_cmpuint (n_ptr + n_csum, ==, 0);
            g_assert_true (align && (align & (align - 1)) == 0);
            assert_zero (c, 65, VMM_ACPI_LOADER_ENTRY_SIZE);
            if (file == &f->files[1])
              {
                /* RSDP: F segment, 16-byte aligned. */
                g_assert_cmpuint (zone, ==, VMM_ACPI_LOADER_ZONE_FSEG);
                g_assert_cmpuint (align, >=, 16);
                file->addr = (f->fseg_next + align - 1) & ~(uint64_t) (align - 1);
                f->fseg_next = file->addr + size;
                g_assert_cmpuint (f->fseg_next, <=, FSEG_END);
                f->rsdp = file->addr;
              }
            else
              {
                g_assert_cmpuint (zone, ==, VMM_ACPI_LOADER_ZONE_HIGH);
                g_assert_cmpuint (align, >=, 64);  /* the FACS */
                file->addr = (f->high_next - size) & ~(uint64_t) (align - 1);
                f->high_next = file->addr;
              }
            file->allocated = true;
            memcpy (f->mem + file->addr,
                    g_bytes_get_data (file->contents, NULL), size);
            n_alloc++;
          }
          break;

        case VMM_ACPI_LOADER_ADD_POINTER:
          {
            fw_file *dest = fw_lookup (f, c + 4);
            fw_file *src = fw_lookup (f, c + 60);
            uint32_t offset = LE32 (c + 116);
            uint8_t size = c[120];
            uint8_t *field;
            uint64_t v;

            g_assert_cmpuint (n_csum, ==, 0);  /* pointers before checksums */
            g_assert_true (size == 1 || size == 2 || size == 4 || size == 8);
            g_assert_cmpuint ((uint64_t) offset + size, <=,
                              g_bytes_get_size (dest->contents));
            assert_zero (c, 121, VMM_ACPI_LOADER_ENTRY_SIZE);
            field = fw_data (f, dest) + offset;
            v = le (field, size);
            /* The stored value is an offset inside the source blob. */
            g_assert_cmpuint (v, <, g_bytes_get_size (src->contents));
            v += src->addr;
            g_assert_true (size == 8 || v < (UINT64_C (1) << (8 * size)));
            for (unsigned i = 0; i < size; i++)
              field[i] = (uint8_t) (v >> (8 * i));
            (void) fw_data (f, src);
            n_ptr++;
          }
          break;

        case VMM_ACPI_LOADER_ADD_CHECKSUM:
          {
            fw_file *file = fw_lookup (f, c + 4);
            uint32_t result = LE32 (c + 60);
            uint32_t start = LE32 (c + 64);
            uint32_t length = LE32 (c + 68);
            uint8_t *data = fw_data (f, file);

            g_assert_cmpuint ((uint64_t) start + length, <=,
                              g_bytes_get_size (file->contents));
            g_assert_cmpuint (result, >=, start);
            g_assert_cmpuint (result, <, start + length);
            assert_zero (c, 72, VMM_ACPI_LOADER_ENTRY_SIZE);
            data[result] -= sum8 (data + start, length);
            n_csum++;
          }
          break;

        default:
          g_error ("loader command %u at %zu", type, (size_t) off);
        }
    }
  g_assert_cmpuint (n_alloc, ==, 2);
  g_assert_cmpuint (n_ptr, >, 0);
  g_assert_cmpuint (n_csum, >, 0);
}

static void
fw_clear (fw *f)
{
  g_free (f->mem);
  for (int i = 0; i < 2; i++)
    g_bytes_unref (f->files[i].contents);
}

/* ---- walking the tables in guest memory ---- */

typedef struct {
  const uint8_t *mem;
  uint64_t rsdp, rsdt, xsdt, fadt, facs, dsdt, madt, hpet;
} acpi_view;

static const uint8_t *
at (const acpi_view *v, uint64_t gpa)
{
  g_assert_cmpuint (gpa, <, MEM_SIZE);
  return v->mem + gpa;
}

static void
check_sdt (const acpi_view *v, uint64_t gpa, const char *sig)
{
  const uint8_t *p = at (v, gpa);
  uint32_t len = LE32 (p + 4);

  g_assert_cmpmem (p, 4, sig, 4);
  g_assert_cmpuint (len, >=, 36);
  g_assert_cmpuint (gpa + len, <=, MEM_SIZE);
  g_assert_cmpuint (sum8 (p, len), ==, 0);
  g_assert_cmpmem (p + 10, 6, "VESSEL", 6);
}

static void
walk (acpi_view *v, const uint8_t *mem, uint64_t rsdp)
{
  const uint8_t *r;
  const uint8_t *x;
  const uint8_t *rs;
  uint32_t nx, nr;

  memset (v, 0, sizeof *v);
  v->mem = mem;
  v->rsdp = rsdp;
  g_assert_cmpuint (rsdp % 16, ==, 0);
  g_assert_cmpuint (rsdp, >=, 0xE0000);
  g_assert_cmpuint (rsdp + 36, <=, 0x100000);

  r = at (v, rsdp);
  g_assert_cmpmem (r, 8, "RSD PTR ", 8);
  g_assert_cmpuint (sum8 (r, 20), ==, 0);
  g_assert_cmpuint (r[15], ==, 2);
  g_assert_cmpuint (LE32 (r + 20), ==, 36);
  g_assert_cmpuint (sum8 (r, 36), ==, 0);
  v->rsdt = LE32 (r + 16);
  v->xsdt = LE64 (r + 24);
  check_sdt (v, v->rsdt, "RSDT");
  check_sdt (v, v->xsdt, "XSDT");

  /* The RSDT and XSDT list the same tables in the same order. */
  x = at (v, v->xsdt);
  rs = at (v, v->rsdt);
  nx = (LE32 (x + 4) - 36) / 8;
  nr = (LE32 (rs + 4) - 36) / 4;
  g_assert_cmpuint (LE32 (x + 4), ==, 36 + 8 * nx);
  g_assert_cmpuint (nx, ==, nr);
  for (uint32_t i = 0; i < nx; i++)
    {
      uint64_t t = LE64 (x + 36 + 8 * i);
      const uint8_t *p;

      g_assert_cmpuint (t, ==, LE32 (rs + 36 + 4 * i));
      p = at (v, t);
      check_sdt (v, t, (const char *) p);
      if (memcmp (p, "FACP", 4) == 0)
        v->fadt = t;
      else if (memcmp (p, "APIC", 4) == 0)
        v->madt = t;
      else if (memcmp (p, "HPET", 4) == 0)
        v->hpet = t;
      else
        g_error ("unexpected table %.4s", (const char *) p);
    }
  g_assert_cmpuint (v->fadt, !=, 0);
  g_assert_cmpuint (v->madt, !=, 0);

  /* FADT -> DSDT and FACS, both the 32- and 64-bit forms. */
  {
    const uint8_t *f = at (v, v->fadt);
    const uint8_t *facs;

    v->dsdt = LE32 (f + 40);
    g_assert_cmpuint (LE64 (f + 140), ==, v->dsdt);
    check_sdt (v, v->dsdt, "DSDT");
    v->facs = LE32 (f + 36);
    g_assert_cmpuint (LE64 (f + 132), ==, v->facs);
    g_assert_cmpuint (v->facs % 64, ==, 0);
    facs = at (v, v->facs);
    g_assert_cmpmem (facs, 4, "FACS", 4);
    g_assert_cmpuint (LE32 (facs + 4), ==, 64);
  }
}

static void
check_gas (const uint8_t *g, uint8_t space, uint8_t width, uint64_t addr)
{
  g_assert_cmpuint (g[0], ==, space);
  g_assert_cmpuint (g[1], ==, width);
  g_assert_cmpuint (g[2], ==, 0);
  g_assert_cmphex (LE64 (g + 4), ==, addr);
}

static void
check_fadt (const acpi_view *v, const vmm_acpi_config *cfg)
{
  const uint8_t *f = at (v, v->fadt);
  uint16_t pm = cfg->pm_base;
  uint32_t flags = LE32 (f + 112);

  g_assert_cmpuint (LE32 (f + 4), ==, 276);
  g_assert_cmpuint (f[8], ==, 6);
  g_assert_cmpuint (LE16 (f + 46), ==, cfg->sci_irq);
  g_assert_cmpuint (LE32 (f + 48), ==, 0);     /* SMI_CMD */
  g_assert_cmpuint (f[52], ==, 0);              /* ACPI_ENABLE */
  g_assert_cmpuint (f[53], ==, 0);              /* ACPI_DISABLE */
  g_assert_cmphex (LE32 (f + 56), ==, pm);       /* PM1a_EVT_BLK */
  g_assert_cmphex (LE32 (f + 60), ==, 0);
  g_assert_cmphex (LE32 (f + 64), ==, pm + 4);   /* PM1a_CNT_BLK */
  g_assert_cmphex (LE32 (f + 68), ==, 0);
  g_assert_cmphex (LE32 (f + 72), ==, 0);        /* PM2_CNT_BLK */
  g_assert_cmphex (LE32 (f + 76), ==, pm + 8);   /* PM_TMR_BLK */
  g_assert_cmphex (LE32 (f + 80), ==, pm + 12);  /* GPE0_BLK */
  g_assert_cmphex (LE32 (f + 84), ==, 0);
  g_assert_cmpuint (f[88], ==, 4);
  g_assert_cmpuint (f[89], ==, 2);
  g_assert_cmpuint (f[90], ==, 0);
  g_assert_cmpuint (f[91], ==, 4);
  g_assert_cmpuint (f[92], ==, 4);
  g_assert_cmpuint (f[93], ==, 0);
  g_assert_cmphex (LE16 (f + 109), ==, 0x3);     /* LEGACY_DEVICES | 8042 */
  g_assert_true (flags & (1u << 0));             /* WBINVD */
  g_assert_true (flags & (1u << 2));             /* PROC_C1 */
  g_assert_false (flags & (1u << 4));            /* fixed power button */
  g_assert_true (flags & (1u << 5));             /* no sleep button */
  g_assert_cmpuint (!!(flags & (1u << 8)), ==, cfg->pm_timer_32bit);
  g_assert_true (flags & (1u << 10));            /* RESET_REG_SUP */
  g_assert_false (flags & (1u << 20));           /* not HW-reduced */
  check_gas (f + 116, 1, 8, 0xCF9);
  g_assert_cmphex (f[128], ==, 0x06);
  check_gas (f + 148, 1, 32, pm);
  check_gas (f + 160, 0, 0, 0);
  check_gas (f + 172, 1, 16, pm + 4);
  check_gas (f + 184, 0, 0, 0);
  check_gas (f + 196, 0, 0, 0);
  check_gas (f + 208, 1, 32, pm + 8);
  check_gas (f + 220, 1, 32, pm + 12);
  check_gas (f + 232, 0, 0, 0);
}

static void
check_madt (const acpi_view *v, const vmm_acpi_config *cfg)
{
  const uint8_t *m = at (v, v->madt);
  uint32_t len = LE32 (m + 4);
  unsigned n_lapic = 0, n_x2apic = 0, n_ioapic = 0, n_iso = 0, n_nmi = 0,
           n_x2nmi = 0;
  g_autofree bool *seen = g_new0 (bool, cfg->ncpus);

  g_assert_cmphex (LE32 (m + 36), ==, 0xFEE00000);
  g_assert_cmphex (LE32 (m + 40), ==, 1);        /* PCAT_COMPAT */
  for (uint32_t off = 44; off < len;)
    {
      const uint8_t *e = m + off;

      g_assert_cmpuint (off + 2, <=, len);
      g_assert_cmpuint (e[1], >=, 2);
      g_assert_cmpuint (off + e[1], <=, len);
      switch (e[0])
        {
        case 0:
          g_assert_cmpuint (e[1], ==, 8);
          /* UID = APIC ID = index, in order. */
          g_assert_cmpuint (e[2], ==, n_lapic);
          g_assert_cmpuint (e[3], ==, n_lapic);
          g_assert_cmpuint (e[3], <, 255);
          g_assert_cmphex (LE32 (e + 4), ==, 1);
          g_assert_false (seen[e[3]]);
          seen[e[3]] = true;
          n_lapic++;
          break;
        case 9:
          g_assert_cmpuint (e[1], ==, 16);
          g_assert_cmpuint (LE32 (e + 4), >=, 255);
          g_assert_cmpuint (LE32 (e + 4), <, cfg->ncpus);
          g_assert_cmpuint (LE32 (e + 12), ==, LE32 (e + 4));
          g_assert_cmphex (LE32 (e + 8), ==, 1);
          g_assert_false (seen[LE32 (e + 4)]);
          seen[LE32 (e + 4)] = true;
          n_x2apic++;
          break;
        case 1:
          g_assert_cmpuint (e[1], ==, 12);
          g_assert_cmpuint (e[2], ==, vmm_acpi_ioapic_id (cfg));
          g_assert_cmphex (LE32 (e + 4), ==, 0xFEC00000);
          g_assert_cmpuint (LE32 (e + 8), ==, 0);
          n_ioapic++;
          break;
        case 2:
          g_assert_cmpuint (e[1], ==, 10);
          g_assert_cmpuint (e[2], ==, 0);
          if (e[3] == 0)
            {
              g_assert_cmpuint (LE32 (e + 4), ==, 2);
              g_assert_cmphex (LE16 (e + 8), ==, 0x5);   /* edge, high */
            }
          else
            {
              g_assert_cmpuint (e[3], ==, cfg->sci_irq);
              g_assert_cmpuint (LE32 (e + 4), ==, cfg->sci_irq);
              g_assert_cmphex (LE16 (e + 8), ==, 0xD);   /* level, high */
            }
          n_iso++;
          break;
        case 4:
          g_assert_cmpuint (e[1], ==, 6);
          g_assert_cmpuint (e[2], ==, 0xFF);
          g_assert_cmpuint (e[5], ==, 1);
          n_nmi++;
          break;
        case 10:
          g_assert_cmpuint (e[1], ==, 12);
          g_assert_cmphex (LE32 (e + 4), ==, 0xFFFFFFFF);
          g_assert_cmpuint (e[8], ==, 1);
          n_x2nmi++;
          break;
        default:
          g_error ("unexpected MADT entry type %u", e[0]);
        }
      off += e[1];
    }
  g_assert_cmpuint (n_lapic, ==, MIN (cfg->ncpus, 255u));
  g_assert_cmpuint (n_x2apic, ==, cfg->ncpus > 255 ? cfg->ncpus - 255 : 0);
  for (unsigned i = 0; i < cfg->ncpus; i++)
    g_assert_true (seen[i]);
  g_assert_cmpuint (n_ioapic, ==, 1);
  g_assert_cmpuint (n_iso, ==, 2);
  g_assert_cmpuint (n_nmi, ==, 1);
  g_assert_cmpuint (n_x2nmi, ==, cfg->ncpus > 255 ? 1 : 0);
}

static void
check_hpet (const acpi_view *v, const vmm_acpi_config *cfg)
{
  const uint8_t *h;

  if (!cfg->hpet)
    {
      g_assert_cmpuint (v->hpet, ==, 0);
      return;
    }
  g_assert_cmpuint (v->hpet, !=, 0);
  h = at (v, v->hpet);
  g_assert_cmpuint (LE32 (h + 4), ==, 56);
  g_assert_cmphex (LE32 (h + 36), ==, cfg->hpet_block_id);
  check_gas (h + 40, 0, 64, 0xFED00000);
}

static gboolean
mem_contains (const uint8_t *hay, size_t n, const void *needle, size_t m)
{
  return memmem (hay, n, needle, m) != NULL;
}

static void
check_dsdt (const acpi_view *v, const vmm_acpi_config *cfg)
{
  const uint8_t *d = at (v, v->dsdt);
  uint32_t len = LE32 (d + 4);
  g_autofree char *last_cpu = g_strdup_printf ("C%03X", cfg->ncpus - 1);

  g_assert_cmpuint (d[8], ==, 2);
  /* \_S5 = Package (4) {0, 0, 0, 0}, as the guest kit reads it. */
  g_assert_true (mem_contains (d, len, "\x08\\_S5_\x12\x06\x04\x00\x00\x00\x00",
                               11));
  g_assert_true (mem_contains (d, len, "PCI0", 4));
  g_assert_true (mem_contains (d, len, last_cpu, 4));
  g_assert_true (mem_contains (d, len, "ACPI0007", 8));
  g_assert_cmpuint (mem_contains (d, len, "HPET", 4), ==, cfg->hpet);
}

/* ---- iasl (optional) ---- */

static void
run_iasl (const char *dir, const char *const *argv, const char *what)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *out = NULL;
  g_autofree char *err = NULL;
  int status = 0;

  if (!g_spawn_sync (dir, (char **) argv, NULL, G_SPAWN_SEARCH_PATH, NULL,
                     NULL, &out, &err, &status, &error))
    g_error ("iasl: %s", error->message);
  /* A diagnostic line reads "Error    6126 - ..." or "Warning  3046 - ...";
   * the summary line "0 Errors, 0 Warnings" does not match. */
  if (!g_spawn_check_wait_status (status, NULL)
      || g_regex_match_simple ("^\\s*(Error|Warning)\\s+[0-9]+", out,
                               G_REGEX_MULTILINE, 0)
      || g_regex_match_simple ("^\\s*(Error|Warning)\\s+[0-9]+", err,
                               G_REGEX_MULTILINE, 0))
    g_error ("iasl %s failed:\n%s\n%s", what, out, err);
  if (g_test_verbose ())
    g_test_message ("iasl %s:\n%s%s", what, out, err);
}

static void
iasl_check (const acpi_view *v, const char *label)
{
  g_autofree char *iasl = g_find_program_in_path ("iasl");
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = NULL;
  const struct { const char *name; uint64_t gpa; } tables[] = {
    { "dsdt", v->dsdt }, { "facp", v->fadt }, { "apic", v->madt },
    { "hpet", v->hpet }, { "rsdt", v->rsdt }, { "xsdt", v->xsdt },
  };

  if (!iasl)
    {
      g_test_message ("iasl not installed; skipping the ACPICA checks");
      return;
    }
  dir = g_dir_make_tmp ("vessel-acpi-XXXXXX", &error);
  g_assert_no_error (error);

  for (size_t i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *file = NULL;
      g_autofree char *path = NULL;
      g_autofree char *dsl = NULL;
      const uint8_t *p;

      if (!tables[i].gpa)
        continue;
      p = at (v, tables[i].gpa);
      file = g_strdup_printf ("%s.dat", tables[i].name);
      path = g_build_filename (dir, file, NULL);
      g_assert_true (g_file_set_contents (path, (const char *) p,
                                          LE32 (p + 4), &error));
      g_assert_no_error (error);
      {
        const char *argv[] = { iasl, "-d", file, NULL };
        run_iasl (dir, argv, file);
      }
      /* The DSDT's disassembly must compile again. */
      if (strcmp (tables[i].name, "dsdt") == 0)
        {
          const char *argv[] = { iasl, "-p", "recompiled", "dsdt.dsl", NULL };
          run_iasl (dir, argv, "dsdt.dsl");
        }
      /* The disassembler notes what it disagrees with in the output. */
      dsl = g_strdup_printf ("%s/%s.dsl", dir, tables[i].name);
      {
        g_autofree char *text = NULL;

        g_assert_true (g_file_get_contents (dsl, &text, NULL, &error));
        g_assert_no_error (error);
        if (strstr (text, "Incorrect") || strstr (text, "Invalid")
            || strstr (text, "Unknown") || strstr (text, "Error")
            || strstr (text, "Warning"))
          g_error ("%s: iasl reports a problem:\n%s", file, text);
        if (g_getenv ("VESSEL_ACPI_KEEP"))
          continue;
      }
      g_unlink (dsl);
      g_unlink (path);
    }
  {
    g_autofree char *aml = g_build_filename (dir, "recompiled.aml", NULL);
    g_unlink (aml);
  }
  if (g_getenv ("VESSEL_ACPI_KEEP"))
    g_test_message ("%s: tables and disassembly kept in %s", label, dir);
  else
    g_assert_cmpint (g_rmdir (dir), ==, 0);
  g_test_message ("%s: iasl disassembled every table", label);
}

/* ---- the tests ---- */

static void
make_config (vmm_acpi_config *cfg, unsigned ncpus, bool hpet)
{
  vmm_acpi_config_init (cfg);
  cfg->ncpus = ncpus;
  cfg->ram_below_4g = UINT64_C (0x80000000);
  cfg->ram_above_4g = ncpus >= 64 ? (UINT64_C (6) << 30) : 0;
  cfg->hpet = hpet;
}

static void
test_firmware (gconstpointer data)
{
  unsigned ncpus = GPOINTER_TO_UINT (data);
  vmm_acpi_config cfg;
  g_autoptr (GError) error = NULL;
  g_autoptr (vmm_acpi_tables) t = NULL;
  fw f;
  acpi_view v;

  make_config (&cfg, ncpus, ncpus % 2 == 0);
  t = vmm_acpi_build (&cfg, &error);
  g_assert_no_error (error);
  g_assert_nonnull (t);

  fw_run (&f, t);
  walk (&v, f.mem, f.rsdp);
  check_fadt (&v, &cfg);
  check_madt (&v, &cfg);
  check_hpet (&v, &cfg);
  check_dsdt (&v, &cfg);
  if (ncpus == 4 || ncpus == 300)
    iasl_check (&v, ncpus == 4 ? "4 CPUs" : "300 CPUs");
  fw_clear (&f);
}

typedef struct {
  uint8_t *mem;
  size_t size;
} plain_ram;

static void *
plain_gpa_to_host (void *opaque, uint64_t gpa, size_t len)
{
  plain_ram *ram = opaque;

  if (gpa > ram->size || len > ram->size - gpa)
    return NULL;
  return ram->mem + gpa;
}

/* Direct boot writes exactly what the firmware would have built at the
 * same addresses. */
static void
test_direct_boot (void)
{
  vmm_acpi_config cfg;
  g_autoptr (GError) error = NULL;
  g_autoptr (vmm_acpi_tables) t = NULL;
  plain_ram ram = { g_malloc0 (MEM_SIZE), MEM_SIZE };
  size_t size;
  fw f;
  acpi_view v;

  make_config (&cfg, 4, true);
  cfg.pm_timer_32bit = true;
  cfg.pm_base = 0xB000;
  t = vmm_acpi_build (&cfg, &error);
  g_assert_no_error (error);

  fw_run (&f, t);
  size = vmm_acpi_tables_get_size (t);
  g_assert_cmpuint (size, ==, g_bytes_get_size (f.files[0].contents));
  g_assert_true (vmm_acpi_write_to_memory (t, plain_gpa_to_host, &ram, f.rsdp,
                                           f.files[0].addr, &error));
  g_assert_no_error (error);
  g_assert_cmpmem (ram.mem + f.rsdp, VMM_ACPI_RSDP_SIZE, f.mem + f.rsdp,
                   VMM_ACPI_RSDP_SIZE);
  g_assert_cmpmem (ram.mem + f.files[0].addr, size, f.mem + f.files[0].addr,
                   size);

  /* And on its own, at other addresses. */
  memset (ram.mem, 0, MEM_SIZE);
  g_assert_true (vmm_acpi_write_to_memory (t, plain_gpa_to_host, &ram,
                                           0xE0000, 0x9F000 - (size + 63) / 64 * 64,
                                           &error));
  g_assert_no_error (error);
  walk (&v, ram.mem, 0xE0000);
  check_fadt (&v, &cfg);
  check_madt (&v, &cfg);
  check_hpet (&v, &cfg);
  check_dsdt (&v, &cfg);
  iasl_check (&v, "direct boot");

  fw_clear (&f);
  g_free (ram.mem);
}

static void
test_direct_boot_errors (void)
{
  vmm_acpi_config cfg;
  g_autoptr (vmm_acpi_tables) t = NULL;
  plain_ram ram = { g_malloc0 (MEM_SIZE), MEM_SIZE };
  const struct { uint64_t rsdp, tables; } bad[] = {
    { 0xE0008, 0x100000 },             /* RSDP not 16-byte aligned */
    { 0xD0000, 0x100000 },             /* RSDP below the window */
    { 0xFFFF0, 0x100000 },             /* RSDP runs past 1 MiB */
    { 0xE0000, 0x100010 },             /* tables not 64-byte aligned */
    { 0xE0000, 0xDFFC0 },              /* tables overlap the RSDP */
    { 0xE0000, UINT64_C (0xFFFFFFC0) },  /* tables cross 4 GiB */
    { 0xE0000, UINT64_C (0x2000000) },   /* not RAM (beyond the buffer) */
  };

  make_config (&cfg, 2, false);
  t = vmm_acpi_build (&cfg, NULL);
  g_assert_nonnull (t);
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_false (vmm_acpi_write_to_memory (t, plain_gpa_to_host, &ram,
                                                bad[i].rsdp, bad[i].tables,
                                                &error));
      g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
    }
  g_free (ram.mem);
}

static void
test_config_errors (void)
{
  vmm_acpi_config cfg;
  g_autoptr (GError) error = NULL;

  make_config (&cfg, 0, false);
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  make_config (&cfg, VMM_ACPI_MAX_CPUS + 1, false);
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg, 1, false);
  cfg.ram_below_4g = UINT64_C (0xFF000000);
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg, 1, false);
  cfg.pci_hole_start = 0x1000;         /* below the end of RAM */
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg, 1, false);
  cfg.sci_irq = 16;
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_clear_error (&error);

  make_config (&cfg, 1, false);
  cfg.ram_above_4g = UINT64_C (1) << 30;
  cfg.pci_hole64_start = UINT64_C (4) << 30;   /* on top of that RAM */
  g_assert_null (vmm_acpi_build (&cfg, &error));
  g_clear_error (&error);
}

static void
test_ioapic_id (void)
{
  vmm_acpi_config cfg;

  make_config (&cfg, 4, false);
  g_assert_cmpuint (vmm_acpi_ioapic_id (&cfg), ==, 4);
  make_config (&cfg, 300, false);
  g_assert_cmpuint (vmm_acpi_ioapic_id (&cfg), ==, 0);
  cfg.ioapic_id = 7;
  g_assert_cmpuint (vmm_acpi_ioapic_id (&cfg), ==, 7);
}

int
main (int argc, char **argv)
{
  static const unsigned cpu_counts[] = { 1, 2, 4, 64, 254, 255, 256, 300 };

  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/acpi/aml/pkglength", test_aml_pkglength);
  g_test_add_func ("/acpi/aml/integers", test_aml_integers);
  g_test_add_func ("/acpi/aml/names", test_aml_names);
  g_test_add_func ("/acpi/aml/containers", test_aml_containers);
  g_test_add_func ("/acpi/aml/statements", test_aml_statements);
  g_test_add_func ("/acpi/aml/resources", test_aml_resources);
  for (size_t i = 0; i < G_N_ELEMENTS (cpu_counts); i++)
    {
      g_autofree char *path = g_strdup_printf ("/acpi/firmware/cpus-%u",
                                               cpu_counts[i]);
      g_test_add_data_func (path, GUINT_TO_POINTER (cpu_counts[i]),
                            test_firmware);
    }
  g_test_add_func ("/acpi/direct-boot/tables", test_direct_boot);
  g_test_add_func ("/acpi/direct-boot/errors", test_direct_boot_errors);
  g_test_add_func ("/acpi/config-errors", test_config_errors);
  g_test_add_func ("/acpi/ioapic-id", test_ioapic_id);
  return g_test_run ();
}
