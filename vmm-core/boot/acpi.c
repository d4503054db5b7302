/* ACPI table builder; see acpi.h for the two consumers.
 *
 * Everything is built into two blobs, "tables" (FACS first, for its 64-byte
 * alignment, then DSDT, FADT, MADT, HPET, RSDT, XSDT) and "rsdp", with two
 * lists beside them: pointer fields (whose stored value is an offset within
 * the target blob) and checksum fields (stored as zero). The fw_cfg table
 * loader is those lists encoded as commands; direct boot applies the same
 * lists with real addresses.
 *
 * DSDT contents:
 *  \PICM, \_PIC(mode)   the interrupt model the OS picked (0 PIC, 1 APIC)
 *  \_S5                 Package {0, 0, 0, 0}: SLP_TYP 0 in PM1a_CNT is
 *                       soft-off, as on the PIIX4
 *  \_SB.PCI0            PNP0A03, _UID 0; _CRS: bus 0-255, I/O 0-0xCF7 and
 *                       0xD00-0xFFFF, config ports 0xCF8-0xCFF consumed, VGA
 *                       memory 0xA0000-0xBFFFF, the 32-bit window
 *                       [pci_hole_start, 0xFEBFFFFF], and a 64-bit window
 *                       when there is RAM above 4 GiB (or one was given)
 *  \_SB.PCI0._PRT       slots 1-31, pins A-D -> GSI 16 + ((slot + pin) & 3).
 *                       I/O APIC routing only: the board has no PIRQ router
 *                       to the 8259s, so there are no link devices and no
 *                       PIC-mode table; an OS that stays in PIC mode gets
 *                       the same GSIs and will find no working PCI INTx.
 *                       (\PICM is kept so a PIC-mode table can be added by
 *                       branching on it if the board ever grows a router.)
 *  \_SB.PCI0.ISA_       the PIIX ISA bridge (_ADR 0x00010000) holding RTC
 *                       (PNP0B00), keyboard (PNP0303), mouse (PNP0F13), COM1
 *                       (PNP0501), PIC (PNP0000) and PIT (PNP0100)
 *  \_SB.HPET            PNP0103 at 0xFED00000, when cfg->hpet
 *  \_SB.Cxxx            one processor device (ACPI0007) per vCPU, _UID =
 *                       index = the MADT's ACPI processor UID
 * The power button is the fixed-feature one (FADT PWR_BUTTON clear): the PM
 * model raises PWRBTN_STS in PM1a_EVT and an SCI.
 */
#include "vmm-core/boot/acpi.h"
#include "vmm-core/boot/table-bytes.h"

#include <gio/gio.h>
#include <string.h>

#include "vmm-core/boot/aml.h"

#define ACPI_OEM_ID "VESSEL"            /* 6 bytes */
#define ACPI_OEM_TABLE_ID "VESSELPC"    /* 8 bytes */
#define ACPI_OEM_REVISION 1
#define ACPI_CREATOR_ID "VSSL"
#define ACPI_CREATOR_REVISION 1

#define GiB (UINT64_C (1) << 30)
#define FOUR_GIB (UINT64_C (4) << 30)
#define HOLE64_DEFAULT_SIZE (32 * GiB)

/* System description table header (5.2.6). */
#define SDT_HEADER_SIZE 36
#define SDT_LENGTH 4
#define SDT_CHECKSUM 9

/* RSDP (5.2.5.3). */
#define RSDP_CHECKSUM 8
#define RSDP_OEMID 9
#define RSDP_REVISION 15
#define RSDP_RSDT_ADDR 16
#define RSDP_LENGTH 20
#define RSDP_XSDT_ADDR 24
#define RSDP_EXT_CHECKSUM 32
#define RSDP_V1_SIZE 20

/* FACS (5.2.10). */
#define FACS_SIZE 64
#define FACS_VERSION 32

/* FADT revision 6 (5.2.9, Table 5-34 in ACPI 6.3). */
#define FADT_REVISION 6
#define FADT_MINOR_REVISION 0
#define FADT_SIZE 276
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_PM_PROFILE 45
#define FADT_SCI_INT 46
#define FADT_SMI_CMD 48
#define FADT_PM1A_EVT_BLK 56
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM_TMR_BLK 76
#define FADT_GPE0_BLK 80
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_PM_TMR_LEN 91
#define FADT_GPE0_BLK_LEN 92
#define FADT_P_LVL2_LAT 96
#define FADT_P_LVL3_LAT 98
#define FADT_CENTURY 108
#define FADT_IAPC_BOOT_ARCH 109
#define FADT_FLAGS 112
#define FADT_RESET_REG 116
#define FADT_RESET_VALUE 128
#define FADT_MINOR_VERSION 131
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT 140
#define FADT_X_PM1A_EVT_BLK 148
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_X_PM_TMR_BLK 208
#define FADT_X_GPE0_BLK 220

#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_SLP_BUTTON (1u << 5)     /* no sleep button */
#define FADT_F_TMR_VAL_EXT (1u << 8)
#define FADT_F_RESET_REG_SUP (1u << 10)

#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042 (1u << 1)

#define PM1_EVT_LEN 4
#define PM1_CNT_LEN 2
#define PM_TMR_LEN 4
#define GPE0_LEN 4
#define PM1_CNT_OFFSET 0x04
#define PM_TMR_OFFSET 0x08
#define GPE0_OFFSET 0x0C
#define PM_IO_SPAN 0x10

/* Generic Address Structure (5.2.3.2). */
#define GAS_SIZE 12
#define GAS_SYSTEM_MEMORY 0
#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_UNDEFINED 0
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3
#define GAS_ACCESS_QWORD 4

/* MADT (5.2.12). */
#define MADT_REVISION 5
#define MADT_LAPIC_ADDR 36
#define MADT_FLAGS 40
#define MADT_PCAT_COMPAT (1u << 0)
#define MADT_LOCAL_APIC 0
#define MADT_IO_APIC 1
#define MADT_INT_OVERRIDE 2
#define MADT_LOCAL_APIC_NMI 4
#define MADT_LOCAL_X2APIC 9
#define MADT_LOCAL_X2APIC_NMI 10
#define MADT_ENABLED (1u << 0)
#define MPS_INTI_POLARITY_HIGH 0x1
#define MPS_INTI_TRIGGER_EDGE (0x1 << 2)
#define MPS_INTI_TRIGGER_LEVEL (0x3 << 2)
#define XAPIC_MAX_ID 254                /* 255 is the xAPIC broadcast ID */

/* HPET description table (IA-PC HPET spec 1.0a, 3.2.4). */
#define HPET_TABLE_REVISION 1
#define HPET_BLOCK_ID 36
#define HPET_BASE 40
#define HPET_NUMBER 52
#define HPET_MIN_TICK 53
#define HPET_PAGE_PROTECTION 55
#define HPET_TABLE_SIZE 56
#define HPET_MMIO_SIZE 0x400
#define HPET_DEFAULT_BLOCK_ID 0x8086A201u

#define DSDT_REVISION 2                 /* 64-bit integers */
#define RSDT_REVISION 1
#define XSDT_REVISION 1

/* Loader command layout. */
#define LOADER_CMD 0
#define LOADER_FILE 4
#define LOADER_ALLOC_ALIGN 60
#define LOADER_ALLOC_ZONE 64
#define LOADER_PTR_SRC_FILE 60
#define LOADER_PTR_OFFSET 116
#define LOADER_PTR_SIZE 120
#define LOADER_CSUM_RESULT 60
#define LOADER_CSUM_START 64
#define LOADER_CSUM_LENGTH 68
#define RSDP_ALIGN 16

typedef enum {
  BLOB_TABLES,
  BLOB_RSDP,
  N_BLOBS,
} blob_id;

static const char *const blob_names[N_BLOBS] = {
  [BLOB_TABLES] = VMM_ACPI_FWCFG_TABLES,
  [BLOB_RSDP] = VMM_ACPI_FWCFG_RSDP,
};

typedef struct {
  blob_id dest;
  uint32_t offset;     /* of the field in dest */
  uint8_t size;        /* 4 or 8 */
  blob_id src;         /* the blob whose address is added */
} acpi_pointer;

typedef struct {
  blob_id file;
  uint32_t result;     /* offset of the checksum byte */
  uint32_t start;
  uint32_t length;
} acpi_checksum;

struct vmm_acpi_tables {
  GByteArray *blob[N_BLOBS];
  GArray *pointers;    /* acpi_pointer, in command order */
  GArray *checksums;   /* acpi_checksum, in command order */
  GBytes *loader;
};

/* ---- little-endian field access ---- */

static size_t
reserve (GByteArray *b, size_t len)
{
  size_t at = b->len;

  g_byte_array_set_size (b, b->len + len);
  memset (b->data + at, 0, len);
  return at;
}





static void
set_bytes (GByteArray *b, size_t off, const char *s, size_t len)
{
  memcpy (b->data + off, s, len);
}

static uint64_t
get_le (const uint8_t *p, unsigned size)
{
  uint64_t v = 0;

  for (unsigned i = 0; i < size; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

static void
put_le (uint8_t *p, unsigned size, uint64_t v)
{
  for (unsigned i = 0; i < size; i++)
    p[i] = (uint8_t) (v >> (8 * i));
}


/* ---- building blocks ---- */

static void
add_pointer (vmm_acpi_tables *t, blob_id dest, size_t field, uint8_t size,
             blob_id src, uint64_t src_offset)
{
  acpi_pointer p = { dest, (uint32_t) field, size, src };

  put_le (t->blob[dest]->data + field, size, src_offset);
  g_array_append_val (t->pointers, p);
}

static void
add_checksum (vmm_acpi_tables *t, blob_id file, size_t result, size_t start,
              size_t length)
{
  acpi_checksum c = { file, (uint32_t) result, (uint32_t) start,
                      (uint32_t) length };

  t->blob[file]->data[result] = 0;
  g_array_append_val (t->checksums, c);
}

static size_t
table_begin (vmm_acpi_tables *t, const char *sig, uint8_t revision)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t at = reserve (b, SDT_HEADER_SIZE);

  set_bytes (b, at, sig, 4);
  set8 (b, at + 8, revision);
  set_bytes (b, at + 10, ACPI_OEM_ID, 6);
  set_bytes (b, at + 16, ACPI_OEM_TABLE_ID, 8);
  set32 (b, at + 24, ACPI_OEM_REVISION);
  set_bytes (b, at + 28, ACPI_CREATOR_ID, 4);
  set32 (b, at + 32, ACPI_CREATOR_REVISION);
  return at;
}

static void
table_end (vmm_acpi_tables *t, size_t at)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t len = b->len - at;

  set32 (b, at + SDT_LENGTH, (uint32_t) len);
  add_checksum (t, BLOB_TABLES, at + SDT_CHECKSUM, at, len);
}

static void
set_gas (GByteArray *b, size_t off, uint8_t space, uint8_t bit_width,
         uint8_t access, uint64_t addr)
{
  set8 (b, off, space);
  set8 (b, off + 1, bit_width);
  set8 (b, off + 2, 0);                /* bit offset */
  set8 (b, off + 3, access);
  set64 (b, off + 4, addr);
}

/* ---- config ---- */

void
vmm_acpi_config_init (vmm_acpi_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->ncpus = 1;
  cfg->pm_base = 0x600;
  cfg->sci_irq = 9;
  cfg->ioapic_id = -1;
  cfg->hpet_block_id = HPET_DEFAULT_BLOCK_ID;
}

uint8_t
vmm_acpi_ioapic_id (const vmm_acpi_config *cfg)
{
  if (cfg->ioapic_id >= 0)
    return (uint8_t) cfg->ioapic_id;
  /* With 255 or more CPUs every 8-bit ID belongs to a CPU; the I/O APIC ID
   * space is separate in practice, so 0 is as good as any. */
  return cfg->ncpus <= XAPIC_MAX_ID ? (uint8_t) cfg->ncpus : 0;
}

typedef struct {
  uint64_t hole_start;     /* 32-bit window */
  bool hole64;
  uint64_t hole64_start;
  uint64_t hole64_end;     /* inclusive */
} pci_windows;

static gboolean
check_config (const vmm_acpi_config *cfg, pci_windows *w, GError **error)
{
  if (cfg->ncpus < 1 || cfg->ncpus > VMM_ACPI_MAX_CPUS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: %u CPUs is out of range (1-%u)", cfg->ncpus,
                   VMM_ACPI_MAX_CPUS);
      return FALSE;
    }
  if (cfg->ram_below_4g > VMM_ACPI_PCI_HOLE_END)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: RAM below 4 GiB (%#" G_GINT64_MODIFIER "x bytes) "
                   "runs into the PCI hole at %#x",
                   cfg->ram_below_4g, VMM_ACPI_PCI_HOLE_END + 1);
      return FALSE;
    }
  w->hole_start = cfg->pci_hole_start ? cfg->pci_hole_start : cfg->ram_below_4g;
  if (w->hole_start < cfg->ram_below_4g || w->hole_start > VMM_ACPI_PCI_HOLE_END)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: the 32-bit PCI window start %#" G_GINT64_MODIFIER
                   "x must lie between the end of low RAM and %#x",
                   w->hole_start, VMM_ACPI_PCI_HOLE_END);
      return FALSE;
    }
  if (cfg->sci_irq >= 16 || cfg->sci_irq == 0 || cfg->sci_irq == 2)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: SCI IRQ %u is not a usable ISA IRQ", cfg->sci_irq);
      return FALSE;
    }
  if (cfg->pm_base == 0 || cfg->pm_base > 0x10000 - PM_IO_SPAN)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: PM I/O base %#x is not usable", cfg->pm_base);
      return FALSE;
    }
  if (cfg->ioapic_id > 255)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: I/O APIC ID %d does not fit in 8 bits",
                   cfg->ioapic_id);
      return FALSE;
    }

  w->hole64 = cfg->ram_above_4g > 0 || cfg->pci_hole64_start > 0;
  if (w->hole64)
    {
      uint64_t ram_end = FOUR_GIB + cfg->ram_above_4g;
      uint64_t size = cfg->pci_hole64_size ? cfg->pci_hole64_size
                                           : HOLE64_DEFAULT_SIZE;

      if (cfg->ram_above_4g > (UINT64_C (1) << 52))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "ACPI: RAM above 4 GiB is too large");
          return FALSE;
        }
      w->hole64_start = cfg->pci_hole64_start
                          ? cfg->pci_hole64_start
                          : (ram_end + GiB - 1) & ~(GiB - 1);
      if (w->hole64_start < ram_end || w->hole64_start + size < w->hole64_start
          || w->hole64_start + size > (UINT64_C (1) << 52))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "ACPI: the 64-bit PCI window [%#" G_GINT64_MODIFIER
                       "x, +%#" G_GINT64_MODIFIER "x) overlaps RAM or is "
                       "out of range", w->hole64_start, size);
          return FALSE;
        }
      w->hole64_end = w->hole64_start + size - 1;
    }
  return TRUE;
}

/* ---- the tables ---- */

static size_t
build_facs (vmm_acpi_tables *t)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t at;

  g_assert (b->len % VMM_ACPI_TABLES_ALIGN == 0);
  at = reserve (b, FACS_SIZE);
  set_bytes (b, at, "FACS", 4);
  set32 (b, at + 4, FACS_SIZE);
  set8 (b, at + FACS_VERSION, 2);
  /* The FACS has no checksum; the hardware signature, waking vectors,
   * global lock and flags all start at zero. */
  return at;
}

static vmm_aml *
isa_device (const char *name, const char *hid, vmm_aml *crs)
{
  vmm_aml *dev = vmm_aml_device (name);

  vmm_aml_append (dev, vmm_aml_name ("_HID", vmm_aml_eisaid (hid)));
  if (crs)
    vmm_aml_append (dev, vmm_aml_name ("_CRS", crs));
  return dev;
}

static vmm_aml *
build_isa (void)
{
  vmm_aml *isa = vmm_aml_device ("ISA");
  vmm_aml *crs;
  vmm_aml *dev;

  vmm_aml_append (isa, vmm_aml_name ("_ADR", vmm_aml_int (VMM_ACPI_ISA_ADR)));

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_io (0x70, 0x70, 1, 2));
  vmm_aml_append (crs, vmm_aml_irq_noflags (8));
  vmm_aml_append (isa, isa_device ("RTC", "PNP0B00", crs));

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_io (0x60, 0x60, 1, 1));
  vmm_aml_append (crs, vmm_aml_io (0x64, 0x64, 1, 1));
  vmm_aml_append (crs, vmm_aml_irq_noflags (1));
  vmm_aml_append (isa, isa_device ("KBD", "PNP0303", crs));

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_irq_noflags (12));
  vmm_aml_append (isa, isa_device ("MOU", "PNP0F13", crs));

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_io (0x3F8, 0x3F8, 1, 8));
  vmm_aml_append (crs, vmm_aml_irq_noflags (4));
  dev = isa_device ("COM1", "PNP0501", NULL);
  vmm_aml_append (dev, vmm_aml_name ("_UID", vmm_aml_int (1)));
  vmm_aml_append (dev, vmm_aml_name ("_CRS", crs));
  vmm_aml_append (isa, dev);

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_io (0x20, 0x20, 1, 2));
  vmm_aml_append (crs, vmm_aml_io (0xA0, 0xA0, 1, 2));
  vmm_aml_append (crs, vmm_aml_irq_noflags (2));
  vmm_aml_append (isa, isa_device ("PIC", "PNP0000", crs));

  crs = vmm_aml_resource_template ();
  vmm_aml_append (crs, vmm_aml_io (0x40, 0x40, 1, 4));
  vmm_aml_append (crs, vmm_aml_irq_noflags (0));
  vmm_aml_append (isa, isa_device ("PIT", "PNP0100", crs));

  return isa;
}

static vmm_aml *
build_pci0 (const pci_windows *w)
{
  vmm_aml *pci = vmm_aml_device ("PCI0");
  vmm_aml *crs = vmm_aml_resource_template ();
  vmm_aml *prt = vmm_aml_package ();

  vmm_aml_append (pci, vmm_aml_name ("_HID", vmm_aml_eisaid ("PNP0A03")));
  vmm_aml_append (pci, vmm_aml_name ("_UID", vmm_aml_int (0)));

  vmm_aml_append (crs, vmm_aml_word_bus_number (VMM_AML_PRODUCER, 0, 0xFF));
  vmm_aml_append (crs, vmm_aml_io (0xCF8, 0xCF8, 1, 8));
  vmm_aml_append (crs, vmm_aml_dword_io (VMM_AML_PRODUCER, 0x0000, 0x0CF7));
  vmm_aml_append (crs, vmm_aml_dword_io (VMM_AML_PRODUCER, 0x0D00, 0xFFFF));
  vmm_aml_append (crs, vmm_aml_dword_memory (VMM_AML_PRODUCER,
                                             VMM_AML_CACHEABLE, true,
                                             0xA0000, 0xBFFFF));
  if (w->hole_start <= VMM_ACPI_PCI_HOLE_END)
    vmm_aml_append (crs, vmm_aml_dword_memory (VMM_AML_PRODUCER,
                                               VMM_AML_NON_CACHEABLE, true,
                                               (uint32_t) w->hole_start,
                                               VMM_ACPI_PCI_HOLE_END));
  if (w->hole64)
    vmm_aml_append (crs, vmm_aml_qword_memory (VMM_AML_PRODUCER,
                                               VMM_AML_NON_CACHEABLE, true,
                                               w->hole64_start,
                                               w->hole64_end));
  vmm_aml_append (pci, vmm_aml_name ("_CRS", crs));

  /* _PRT entries: {Address (slot << 16 | 0xFFFF: any function), Pin (0 =
   * INTA), Source (0: a GSI), Source Index (the GSI)} (6.2.13). */
  for (unsigned slot = 1; slot < 32; slot++)
    for (unsigned pin = 0; pin < 4; pin++)
      {
        vmm_aml *e = vmm_aml_package ();

        vmm_aml_append (e, vmm_aml_int (((uint64_t) slot << 16) | 0xFFFF));
        vmm_aml_append (e, vmm_aml_int (pin));
        vmm_aml_append (e, vmm_aml_int (0));
        vmm_aml_append (e, vmm_aml_int (VMM_ACPI_PCI_GSI_BASE
                                        + ((slot + pin) & 3)));
        vmm_aml_append (prt, e);
      }
  vmm_aml_append (pci, vmm_aml_name ("_PRT", prt));

  vmm_aml_append (pci, build_isa ());
  return pci;
}

static GByteArray *
build_dsdt_aml (const vmm_acpi_config *cfg, const pci_windows *w)
{
  vmm_aml *root = vmm_aml_block ();
  vmm_aml *sb;
  vmm_aml *m;
  vmm_aml *s5;

  vmm_aml_append (root, vmm_aml_name ("\\PICM", vmm_aml_int (0)));
  m = vmm_aml_method ("\\_PIC", 1, false);
  vmm_aml_append (m, vmm_aml_store (vmm_aml_arg (0),
                                    vmm_aml_name_string ("\\PICM")));
  vmm_aml_append (root, m);

  s5 = vmm_aml_package ();
  for (int i = 0; i < 4; i++)
    vmm_aml_append (s5, vmm_aml_int (0));
  vmm_aml_append (root, vmm_aml_name ("\\_S5", s5));

  sb = vmm_aml_scope ("\\_SB");
  vmm_aml_append (sb, build_pci0 (w));

  if (cfg->hpet)
    {
      vmm_aml *hpet = vmm_aml_device ("HPET");
      vmm_aml *crs = vmm_aml_resource_template ();

      vmm_aml_append (hpet, vmm_aml_name ("_HID", vmm_aml_eisaid ("PNP0103")));
      vmm_aml_append (hpet, vmm_aml_name ("_UID", vmm_aml_int (0)));
      vmm_aml_append (crs, vmm_aml_memory32_fixed (VMM_ACPI_HPET_ADDR,
                                                   HPET_MMIO_SIZE, false));
      vmm_aml_append (hpet, vmm_aml_name ("_CRS", crs));
      vmm_aml_append (sb, hpet);
    }

  for (unsigned i = 0; i < cfg->ncpus; i++)
    {
      g_autofree char *name = g_strdup_printf ("C%03X", i);
      vmm_aml *cpu = vmm_aml_device (name);

      vmm_aml_append (cpu, vmm_aml_name ("_HID", vmm_aml_string ("ACPI0007")));
      vmm_aml_append (cpu, vmm_aml_name ("_UID", vmm_aml_int (i)));
      vmm_aml_append (sb, cpu);
    }
  vmm_aml_append (root, sb);

  return vmm_aml_finish (root);
}

static size_t
build_dsdt (vmm_acpi_tables *t, const vmm_acpi_config *cfg,
            const pci_windows *w)
{
  g_autoptr (GByteArray) aml = build_dsdt_aml (cfg, w);
  size_t at = table_begin (t, "DSDT", DSDT_REVISION);

  g_byte_array_append (t->blob[BLOB_TABLES], aml->data, aml->len);
  table_end (t, at);
  return at;
}

static size_t
build_fadt (vmm_acpi_tables *t, const vmm_acpi_config *cfg, size_t facs,
            size_t dsdt)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t at = table_begin (t, "FACP", FADT_REVISION);
  uint32_t flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON
                   | FADT_F_RESET_REG_SUP;
  uint16_t pm = cfg->pm_base;

  if (cfg->pm_timer_32bit)
    flags |= FADT_F_TMR_VAL_EXT;

  reserve (b, FADT_SIZE - SDT_HEADER_SIZE);
  add_pointer (t, BLOB_TABLES, at + FADT_FIRMWARE_CTRL, 4, BLOB_TABLES, facs);
  add_pointer (t, BLOB_TABLES, at + FADT_DSDT, 4, BLOB_TABLES, dsdt);
  set8 (b, at + FADT_PM_PROFILE, 0);   /* unspecified */
  set16 (b, at + FADT_SCI_INT, cfg->sci_irq);
  /* SMI_CMD 0: no SMM and no ACPI enable/disable handshake; the OS takes
   * the hardware to be in ACPI mode already, so the PM model must come out
   * of reset with SCI_EN set in PM1a_CNT. ACPI_ENABLE, ACPI_DISABLE,
   * S4BIOS_REQ and PSTATE_CNT stay 0 with it. */
  set32 (b, at + FADT_SMI_CMD, 0);
  set32 (b, at + FADT_PM1A_EVT_BLK, pm);
  set32 (b, at + FADT_PM1A_CNT_BLK, pm + PM1_CNT_OFFSET);
  set32 (b, at + FADT_PM_TMR_BLK, pm + PM_TMR_OFFSET);
  set32 (b, at + FADT_GPE0_BLK, pm + GPE0_OFFSET);
  set8 (b, at + FADT_PM1_EVT_LEN, PM1_EVT_LEN);
  set8 (b, at + FADT_PM1_CNT_LEN, PM1_CNT_LEN);
  set8 (b, at + FADT_PM_TMR_LEN, PM_TMR_LEN);
  set8 (b, at + FADT_GPE0_BLK_LEN, GPE0_LEN);
  /* Latencies over 100 and 1000 us say C2 and C3 are not supported. */
  set16 (b, at + FADT_P_LVL2_LAT, 0x0FFF);
  set16 (b, at + FADT_P_LVL3_LAT, 0xFFFF);
  set8 (b, at + FADT_CENTURY, VMM_ACPI_RTC_CENTURY);
  set16 (b, at + FADT_IAPC_BOOT_ARCH, IAPC_LEGACY_DEVICES | IAPC_8042);
  set32 (b, at + FADT_FLAGS, flags);
  set_gas (b, at + FADT_RESET_REG, GAS_SYSTEM_IO, 8, GAS_ACCESS_BYTE,
           VMM_ACPI_RESET_PORT);
  set8 (b, at + FADT_RESET_VALUE, VMM_ACPI_RESET_VALUE);
  set8 (b, at + FADT_MINOR_VERSION, FADT_MINOR_REVISION);
  /* The 64-bit forms carry the same addresses; ACPICA only objects when the
   * two disagree. */
  add_pointer (t, BLOB_TABLES, at + FADT_X_FIRMWARE_CTRL, 8, BLOB_TABLES, facs);
  add_pointer (t, BLOB_TABLES, at + FADT_X_DSDT, 8, BLOB_TABLES, dsdt);
  set_gas (b, at + FADT_X_PM1A_EVT_BLK, GAS_SYSTEM_IO, PM1_EVT_LEN * 8,
           GAS_ACCESS_WORD, pm);
  set_gas (b, at + FADT_X_PM1A_CNT_BLK, GAS_SYSTEM_IO, PM1_CNT_LEN * 8,
           GAS_ACCESS_WORD, pm + PM1_CNT_OFFSET);
  set_gas (b, at + FADT_X_PM_TMR_BLK, GAS_SYSTEM_IO, PM_TMR_LEN * 8,
           GAS_ACCESS_DWORD, pm + PM_TMR_OFFSET);
  set_gas (b, at + FADT_X_GPE0_BLK, GAS_SYSTEM_IO, GPE0_LEN * 8,
           GAS_ACCESS_BYTE, pm + GPE0_OFFSET);
  table_end (t, at);
  return at;
}

static size_t
madt_entry (GByteArray *b, uint8_t type, uint8_t len)
{
  size_t at = reserve (b, len);

  set8 (b, at, type);
  set8 (b, at + 1, len);
  return at;
}

static size_t
build_madt (vmm_acpi_tables *t, const vmm_acpi_config *cfg)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t at = table_begin (t, "APIC", MADT_REVISION);
  size_t e;
  bool any_x2apic = false;

  reserve (b, 8);
  set32 (b, at + MADT_LAPIC_ADDR, VMM_ACPI_LAPIC_ADDR);
  set32 (b, at + MADT_FLAGS, MADT_PCAT_COMPAT);

  for (unsigned i = 0; i < cfg->ncpus; i++)
    {
      if (i <= XAPIC_MAX_ID)
        {
          /* Processor Local APIC (5.2.12.2): UID, APIC ID, flags. */
          e = madt_entry (b, MADT_LOCAL_APIC, 8);
          set8 (b, e + 2, (uint8_t) i);
          set8 (b, e + 3, (uint8_t) i);
          set32 (b, e + 4, MADT_ENABLED);
        }
      else
        {
          /* Processor Local x2APIC (5.2.12.12): reserved, x2APIC ID,
           * flags, UID. */
          e = madt_entry (b, MADT_LOCAL_X2APIC, 16);
          set32 (b, e + 4, i);
          set32 (b, e + 8, MADT_ENABLED);
          set32 (b, e + 12, i);
          any_x2apic = true;
        }
    }

  /* I/O APIC (5.2.12.3): ID, reserved, address, GSI base. */
  e = madt_entry (b, MADT_IO_APIC, 12);
  set8 (b, e + 2, vmm_acpi_ioapic_id (cfg));
  set32 (b, e + 4, VMM_ACPI_IOAPIC_ADDR);
  set32 (b, e + 8, 0);

  /* Interrupt Source Overrides (5.2.12.5): bus 0 (ISA), source IRQ, GSI,
   * MPS INTI flags. The PIT's IRQ0 arrives on pin 2; the SCI is level,
   * active high. */
  e = madt_entry (b, MADT_INT_OVERRIDE, 10);
  set8 (b, e + 2, 0);
  set8 (b, e + 3, 0);
  set32 (b, e + 4, 2);
  set16 (b, e + 8, MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_EDGE);

  e = madt_entry (b, MADT_INT_OVERRIDE, 10);
  set8 (b, e + 2, 0);
  set8 (b, e + 3, cfg->sci_irq);
  set32 (b, e + 4, cfg->sci_irq);
  set16 (b, e + 8, MPS_INTI_POLARITY_HIGH | MPS_INTI_TRIGGER_LEVEL);

  /* Local APIC NMI (5.2.12.7): all processors (UID 0xFF), flags, LINT1. */
  e = madt_entry (b, MADT_LOCAL_APIC_NMI, 6);
  set8 (b, e + 2, 0xFF);
  set16 (b, e + 3, 0);
  set8 (b, e + 5, 1);

  if (any_x2apic)
    {
      /* Local x2APIC NMI (5.2.12.13): flags, UID 0xFFFFFFFF = all, LINT1. */
      e = madt_entry (b, MADT_LOCAL_X2APIC_NMI, 12);
      set16 (b, e + 2, 0);
      set32 (b, e + 4, 0xFFFFFFFFu);
      set8 (b, e + 8, 1);
    }

  table_end (t, at);
  return at;
}

static size_t
build_hpet (vmm_acpi_tables *t, const vmm_acpi_config *cfg)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  size_t at = table_begin (t, "HPET", HPET_TABLE_REVISION);

  reserve (b, HPET_TABLE_SIZE - SDT_HEADER_SIZE);
  set32 (b, at + HPET_BLOCK_ID, cfg->hpet_block_id);
  set_gas (b, at + HPET_BASE, GAS_SYSTEM_MEMORY, 64, GAS_ACCESS_UNDEFINED,
           VMM_ACPI_HPET_ADDR);
  set8 (b, at + HPET_NUMBER, 0);
  set16 (b, at + HPET_MIN_TICK, 0);
  set8 (b, at + HPET_PAGE_PROTECTION, 0);
  table_end (t, at);
  return at;
}

static size_t
build_rsdt (vmm_acpi_tables *t, const size_t *entries, unsigned n,
            bool extended)
{
  GByteArray *b = t->blob[BLOB_TABLES];
  unsigned width = extended ? 8 : 4;
  size_t at = table_begin (t, extended ? "XSDT" : "RSDT",
                           extended ? XSDT_REVISION : RSDT_REVISION);
  size_t first = reserve (b, (size_t) n * width);

  for (unsigned i = 0; i < n; i++)
    add_pointer (t, BLOB_TABLES, first + (size_t) i * width, (uint8_t) width,
                 BLOB_TABLES, entries[i]);
  table_end (t, at);
  return at;
}

static void
build_rsdp (vmm_acpi_tables *t, size_t rsdt, size_t xsdt)
{
  GByteArray *b = t->blob[BLOB_RSDP];

  reserve (b, VMM_ACPI_RSDP_SIZE);
  set_bytes (b, 0, "RSD PTR ", 8);
  set_bytes (b, RSDP_OEMID, ACPI_OEM_ID, 6);
  set8 (b, RSDP_REVISION, 2);
  add_pointer (t, BLOB_RSDP, RSDP_RSDT_ADDR, 4, BLOB_TABLES, rsdt);
  set32 (b, RSDP_LENGTH, VMM_ACPI_RSDP_SIZE);
  add_pointer (t, BLOB_RSDP, RSDP_XSDT_ADDR, 8, BLOB_TABLES, xsdt);
}

/* ---- the loader ---- */

static void
loader_file (uint8_t *cmd, size_t off, blob_id id)
{
  g_assert (strlen (blob_names[id]) < VMM_ACPI_LOADER_FILE_SIZE);
  memcpy (cmd + off, blob_names[id], strlen (blob_names[id]));
}

static uint8_t *
loader_command (GByteArray *out, uint32_t type)
{
  size_t at = reserve (out, VMM_ACPI_LOADER_ENTRY_SIZE);
  uint8_t *cmd = out->data + at;

  put_le (cmd + LOADER_CMD, 4, type);
  return cmd;
}

static GBytes *
encode_loader (const vmm_acpi_tables *t)
{
  g_autoptr (GByteArray) out = g_byte_array_new ();
  uint8_t *cmd;

  cmd = loader_command (out, VMM_ACPI_LOADER_ALLOCATE);
  loader_file (cmd, LOADER_FILE, BLOB_TABLES);
  put_le (cmd + LOADER_ALLOC_ALIGN, 4, VMM_ACPI_TABLES_ALIGN);
  cmd[LOADER_ALLOC_ZONE] = VMM_ACPI_LOADER_ZONE_HIGH;

  cmd = loader_command (out, VMM_ACPI_LOADER_ALLOCATE);
  loader_file (cmd, LOADER_FILE, BLOB_RSDP);
  put_le (cmd + LOADER_ALLOC_ALIGN, 4, RSDP_ALIGN);
  cmd[LOADER_ALLOC_ZONE] = VMM_ACPI_LOADER_ZONE_FSEG;

  for (guint i = 0; i < t->pointers->len; i++)
    {
      const acpi_pointer *p = &g_array_index (t->pointers, acpi_pointer, i);

      cmd = loader_command (out, VMM_ACPI_LOADER_ADD_POINTER);
      loader_file (cmd, LOADER_FILE, p->dest);
      loader_file (cmd, LOADER_PTR_SRC_FILE, p->src);
      put_le (cmd + LOADER_PTR_OFFSET, 4, p->offset);
      cmd[LOADER_PTR_SIZE] = p->size;
    }

  for (guint i = 0; i < t->checksums->len; i++)
    {
      const acpi_checksum *c = &g_array_index (t->checksums, acpi_checksum, i);

      cmd = loader_command (out, VMM_ACPI_LOADER_ADD_CHECKSUM);
      loader_file (cmd, LOADER_FILE, c->file);
      put_le (cmd + LOADER_CSUM_RESULT, 4, c->result);
      put_le (cmd + LOADER_CSUM_START, 4, c->start);
      put_le (cmd + LOADER_CSUM_LENGTH, 4, c->length);
    }

  return g_byte_array_free_to_bytes (g_steal_pointer (&out));
}

vmm_acpi_tables *
vmm_acpi_build (const vmm_acpi_config *cfg, GError **error)
{
  vmm_acpi_tables *t;
  pci_windows w;
  size_t facs, dsdt, entries[3], rsdt, xsdt;
  unsigned n = 0;

  g_return_val_if_fail (cfg != NULL, NULL);
  if (!check_config (cfg, &w, error))
    return NULL;

  t = g_new0 (vmm_acpi_tables, 1);
  t->blob[BLOB_TABLES] = g_byte_array_new ();
  t->blob[BLOB_RSDP] = g_byte_array_new ();
  t->pointers = g_array_new (FALSE, FALSE, sizeof (acpi_pointer));
  t->checksums = g_array_new (FALSE, FALSE, sizeof (acpi_checksum));

  facs = build_facs (t);
  dsdt = build_dsdt (t, cfg, &w);
  entries[n++] = build_fadt (t, cfg, facs, dsdt);
  entries[n++] = build_madt (t, cfg);
  if (cfg->hpet)
    entries[n++] = build_hpet (t, cfg);
  rsdt = build_rsdt (t, entries, n, false);
  xsdt = build_rsdt (t, entries, n, true);
  build_rsdp (t, rsdt, xsdt);
  /* The first checksum covers the ACPI 1.0 part, the extended one all of
   * it, including the first: this order. */
  add_checksum (t, BLOB_RSDP, RSDP_CHECKSUM, 0, RSDP_V1_SIZE);
  add_checksum (t, BLOB_RSDP, RSDP_EXT_CHECKSUM, 0, VMM_ACPI_RSDP_SIZE);

  t->loader = encode_loader (t);
  return t;
}

void
vmm_acpi_tables_free (vmm_acpi_tables *t)
{
  if (!t)
    return;
  for (int i = 0; i < N_BLOBS; i++)
    g_byte_array_unref (t->blob[i]);
  g_array_unref (t->pointers);
  g_array_unref (t->checksums);
  g_bytes_unref (t->loader);
  g_free (t);
}

GBytes *
vmm_acpi_tables_get_tables_blob (const vmm_acpi_tables *t)
{
  return g_bytes_new (t->blob[BLOB_TABLES]->data, t->blob[BLOB_TABLES]->len);
}

GBytes *
vmm_acpi_tables_get_rsdp_blob (const vmm_acpi_tables *t)
{
  return g_bytes_new (t->blob[BLOB_RSDP]->data, t->blob[BLOB_RSDP]->len);
}

GBytes *
vmm_acpi_tables_get_loader (const vmm_acpi_tables *t)
{
  return g_bytes_ref (t->loader);
}

size_t
vmm_acpi_tables_get_size (const vmm_acpi_tables *t)
{
  return t->blob[BLOB_TABLES]->len;
}

/* ---- direct boot ---- */

static bool
ranges_overlap (uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
  return a < b + blen && b < a + alen;
}

gboolean
vmm_acpi_write_to_memory (const vmm_acpi_tables *t,
                          vmm_gpa_to_host_fn gpa_to_host, void *opaque,
                          uint64_t rsdp_addr, uint64_t tables_addr,
                          GError **error)
{
  g_autoptr (GByteArray) tables = NULL;
  g_autoptr (GByteArray) rsdp = NULL;
  GByteArray *copy[N_BLOBS];
  uint64_t base[N_BLOBS];
  size_t tables_len = t->blob[BLOB_TABLES]->len;
  void *host[N_BLOBS];

  if (rsdp_addr % RSDP_ALIGN != 0 || rsdp_addr < VMM_ACPI_RSDP_WINDOW_START
      || rsdp_addr + VMM_ACPI_RSDP_SIZE > VMM_ACPI_RSDP_WINDOW_END)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: the RSDP address %#" G_GINT64_MODIFIER "x must be "
                   "16-byte aligned within %#x-%#x", rsdp_addr,
                   VMM_ACPI_RSDP_WINDOW_START, VMM_ACPI_RSDP_WINDOW_END - 1);
      return FALSE;
    }
  if (tables_addr % VMM_ACPI_TABLES_ALIGN != 0
      || tables_addr + tables_len > FOUR_GIB
      || tables_addr + tables_len < tables_addr)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: the tables address %#" G_GINT64_MODIFIER "x must "
                   "be %u-byte aligned with %zu bytes below 4 GiB",
                   tables_addr, VMM_ACPI_TABLES_ALIGN, tables_len);
      return FALSE;
    }
  if (ranges_overlap (rsdp_addr, VMM_ACPI_RSDP_SIZE, tables_addr, tables_len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "ACPI: the RSDP at %#" G_GINT64_MODIFIER "x overlaps the "
                   "tables at %#" G_GINT64_MODIFIER "x", rsdp_addr,
                   tables_addr);
      return FALSE;
    }

  /* What the firmware does with the loader commands, on copies. */
  tables = g_byte_array_new ();
  g_byte_array_append (tables, t->blob[BLOB_TABLES]->data, tables_len);
  rsdp = g_byte_array_new ();
  g_byte_array_append (rsdp, t->blob[BLOB_RSDP]->data,
                       t->blob[BLOB_RSDP]->len);
  copy[BLOB_TABLES] = tables;
  copy[BLOB_RSDP] = rsdp;
  base[BLOB_TABLES] = tables_addr;
  base[BLOB_RSDP] = rsdp_addr;

  for (guint i = 0; i < t->pointers->len; i++)
    {
      const acpi_pointer *p = &g_array_index (t->pointers, acpi_pointer, i);
      uint8_t *field = copy[p->dest]->data + p->offset;

      put_le (field, p->size, get_le (field, p->size) + base[p->src]);
    }
  for (guint i = 0; i < t->checksums->len; i++)
    {
      const acpi_checksum *c = &g_array_index (t->checksums, acpi_checksum, i);
      uint8_t *data = copy[c->file]->data;

      data[c->result] -= byte_sum (data + c->start, c->length);
    }

  /* Resolve both ranges before writing either. */
  for (int i = 0; i < N_BLOBS; i++)
    {
      host[i] = gpa_to_host (opaque, base[i], copy[i]->len);
      if (!host[i])
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "ACPI: guest memory at %#" G_GINT64_MODIFIER "x "
                       "(%u bytes) is not RAM", base[i], copy[i]->len);
          return FALSE;
        }
    }
  for (int i = 0; i < N_BLOBS; i++)
    memcpy (host[i], copy[i]->data, copy[i]->len);
  return TRUE;
}
