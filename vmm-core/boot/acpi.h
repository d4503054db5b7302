/* ACPI tables for the PC board (i440FX + PIIX4-style PM), built once and
 * handed to either consumer:
 *
 *  - firmware boot: three fw_cfg files SeaBIOS (and OVMF) know,
 *      "etc/acpi/tables"  every table except the RSDP, pointer fields holding
 *                         offsets within their target blob, checksums zero;
 *      "etc/acpi/rsdp"    the 36-byte RSDP, same convention;
 *      "etc/table-loader" 128-byte commands: allocate both blobs (RSDP in
 *                         the F segment, tables high), add the allocated
 *                         addresses to the pointer fields, fill checksums.
 *  - direct boot (no firmware): vmm_acpi_write_to_memory() runs the same
 *    commands itself with addresses the caller picked and copies the result
 *    into guest memory.
 *
 * Tables: RSDP (rev 2), RSDT, XSDT, FADT (rev 6), FACS, DSDT, MADT, and HPET
 * when asked for. Layouts from the ACPI 6.x spec; the DSDT's contents are
 * described in acpi.c.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_ACPI_FWCFG_TABLES "etc/acpi/tables"
#define VMM_ACPI_FWCFG_RSDP "etc/acpi/rsdp"
#define VMM_ACPI_FWCFG_LOADER "etc/table-loader"

#define VMM_ACPI_MAX_CPUS 4096          /* processor objects C000..CFFF */
#define VMM_ACPI_RSDP_SIZE 36
#define VMM_ACPI_TABLES_ALIGN 64        /* the FACS is first in the blob */

/* Fixed addresses the tables describe; the board must put its devices
 * there. */
#define VMM_ACPI_LAPIC_ADDR 0xFEE00000u
#define VMM_ACPI_IOAPIC_ADDR 0xFEC00000u
#define VMM_ACPI_HPET_ADDR 0xFED00000u
#define VMM_ACPI_PCI_HOLE_END 0xFEBFFFFFu  /* last byte of the 32-bit window */
#define VMM_ACPI_RESET_PORT 0xCF9
#define VMM_ACPI_RESET_VALUE 0x06
#define VMM_ACPI_RTC_CENTURY 0x32       /* CMOS index of the century byte */
#define VMM_ACPI_PCI_GSI_BASE 16        /* slot S pin P -> 16 + ((S + P) & 3) */
#define VMM_ACPI_ISA_ADR 0x00010000u    /* the PIIX ISA bridge at 00:01.0 */

/* The direct-boot RSDP window (ACPI 6.x, 5.2.5.1). */
#define VMM_ACPI_RSDP_WINDOW_START 0xE0000u
#define VMM_ACPI_RSDP_WINDOW_END 0x100000u  /* exclusive */

/* Table-loader command format ("etc/table-loader"). */
#define VMM_ACPI_LOADER_ENTRY_SIZE 128
#define VMM_ACPI_LOADER_FILE_SIZE 56
enum {
  VMM_ACPI_LOADER_ALLOCATE = 1,
  VMM_ACPI_LOADER_ADD_POINTER = 2,
  VMM_ACPI_LOADER_ADD_CHECKSUM = 3,
};
enum {
  VMM_ACPI_LOADER_ZONE_HIGH = 1,
  VMM_ACPI_LOADER_ZONE_FSEG = 2,
};

typedef struct vmm_acpi_config {
  unsigned ncpus;               /* 1..VMM_ACPI_MAX_CPUS; APIC ID = index */
  uint64_t ram_below_4g;        /* bytes of RAM from 0 */
  uint64_t ram_above_4g;        /* bytes of RAM from 4 GiB */
  uint64_t pci_hole_start;      /* 0: ram_below_4g; window ends at 0xFEBFFFFF */
  uint64_t pci_hole64_start;    /* 0: above RAM, 1 GiB aligned (only with
                                 * ram_above_4g) */
  uint64_t pci_hole64_size;     /* 0: 32 GiB */
  uint16_t pm_base;             /* PIIX4 PM I/O base (0x600) */
  uint8_t sci_irq;              /* 9 */
  int ioapic_id;                /* < 0: vmm_acpi_ioapic_id() picks */
  bool hpet;                    /* HPET table and \_SB.HPET at 0xFED00000 */
  uint32_t hpet_block_id;       /* low half of the HPET's capabilities
                                 * register (0x8086A201: 3 timers, legacy
                                 * replacement capable, 32-bit counter) */
  bool pm_timer_32bit;          /* FADT TMR_VAL_EXT; PIIX4's is 24-bit */
} vmm_acpi_config;

/* Defaults: pm_base 0x600, SCI 9, ioapic_id -1, no HPET (block id preset),
 * 24-bit PM timer; the caller sets ncpus and RAM. */
void vmm_acpi_config_init (vmm_acpi_config *cfg);

/* The I/O APIC ID the MADT uses: cfg->ioapic_id when >= 0, otherwise ncpus
 * (the first ID no CPU has) or 0 when ncpus >= 255. The I/O APIC model's ID
 * register must report the same. */
uint8_t vmm_acpi_ioapic_id (const vmm_acpi_config *cfg);

typedef struct vmm_acpi_tables vmm_acpi_tables;

/* Fails with G_IO_ERROR_INVALID_ARGUMENT on an impossible config. */
vmm_acpi_tables *vmm_acpi_build (const vmm_acpi_config *cfg, GError **error);
void vmm_acpi_tables_free (vmm_acpi_tables *tables);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (vmm_acpi_tables, vmm_acpi_tables_free)

/* The fw_cfg file contents (new references; unref when done). */
GBytes *vmm_acpi_tables_get_tables_blob (const vmm_acpi_tables *tables);
GBytes *vmm_acpi_tables_get_rsdp_blob (const vmm_acpi_tables *tables);
GBytes *vmm_acpi_tables_get_loader (const vmm_acpi_tables *tables);

/* Bytes the tables take in guest memory (direct boot): reserve this much,
 * VMM_ACPI_TABLES_ALIGN-aligned, as ACPI memory (the FACS lives in it, so
 * E820 type 4, ACPI NVS, is the safe choice for the whole area). */
size_t vmm_acpi_tables_get_size (const vmm_acpi_tables *tables);

/* Host pointer for @len bytes of guest-physical memory at @gpa, or NULL when
 * that range is not plain RAM. */
typedef void *(*vmm_gpa_to_host_fn) (void *opaque, uint64_t gpa, size_t len);

/* Direct boot: the RSDP at @rsdp_addr (16-byte aligned, inside
 * 0xE0000-0xFFFFF) and the other tables at @tables_addr (64-byte aligned,
 * below 4 GiB, not overlapping the RSDP), with real pointers and
 * checksums. */
gboolean vmm_acpi_write_to_memory (const vmm_acpi_tables *tables,
                                   vmm_gpa_to_host_fn gpa_to_host,
                                   void *opaque, uint64_t rsdp_addr,
                                   uint64_t tables_addr, GError **error);

G_END_DECLS
