/* SMBIOS 2.8 tables for the firmware to publish, as two fw_cfg files:
 *
 *   "etc/smbios/smbios-anchor"  the 31-byte 2.1-style (32-bit) entry point;
 *                               table address 0 (the firmware fills it and
 *                               redoes both checksums)
 *   "etc/smbios/smbios-tables"  the structures, ending with type 127
 *
 * Structures: 1 (system), 3 (chassis), 4 (one per socket), 16 (one memory
 * array), 17 (one device per 16 GiB of RAM or part of it), 19 (one per RAM
 * range: below and above 4 GiB), 32 (boot status), 127 (end). No type 0:
 * SeaBIOS writes its own BIOS information when the tables lack one (with
 * handle 0, so ours start at 0x0100).
 */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_SMBIOS_FWCFG_ANCHOR "etc/smbios/smbios-anchor"
#define VMM_SMBIOS_FWCFG_TABLES "etc/smbios/smbios-tables"

#define VMM_SMBIOS_ANCHOR_SIZE 31
#define VMM_SMBIOS_MEMORY_DEVICE_MAX (UINT64_C (16) << 30)  /* per type 17 */
#define VMM_SMBIOS_FIRST_HANDLE 0x0100

typedef struct vmm_smbios_config {
  /* Type 1 strings; NULL takes the default, "" leaves the field empty. */
  const char *manufacturer;     /* "Vessel" */
  const char *product;          /* "Vessel Virtual Machine" */
  const char *version;          /* "1.0" */
  const char *serial;           /* none */
  const char *sku;              /* none */
  const char *family;           /* "Virtual Machine" */
  /* The machine's UUID as text ("6a1d...-..."), NULL for all zeros. Stored
   * with its first three fields little-endian, as SMBIOS 2.6+ asks. */
  const char *uuid;

  unsigned ncpus;               /* 1..4096 */
  unsigned sockets;             /* 0: one socket per CPU; must divide ncpus */
  uint32_t cpuid_signature;     /* CPUID.1:EAX, type 4 Processor ID */
  uint32_t cpuid_features;      /* CPUID.1:EDX */
  uint16_t cpu_mhz;             /* 0: 2000 */

  uint64_t ram_below_4g;        /* bytes from 0 */
  uint64_t ram_above_4g;        /* bytes from 4 GiB */
} vmm_smbios_config;

typedef struct vmm_smbios_tables vmm_smbios_tables;

/* Fails with G_IO_ERROR_INVALID_ARGUMENT on an impossible config. */
vmm_smbios_tables *vmm_smbios_build (const vmm_smbios_config *cfg,
                                     GError **error);
void vmm_smbios_tables_free (vmm_smbios_tables *tables);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (vmm_smbios_tables, vmm_smbios_tables_free)

/* The fw_cfg file contents (new references). */
GBytes *vmm_smbios_tables_get_anchor (const vmm_smbios_tables *tables);
GBytes *vmm_smbios_tables_get_tables (const vmm_smbios_tables *tables);

G_END_DECLS
