/* Booting a kernel without firmware (vessel-run --kernel): Linux bzImage
 * through the 32-bit boot protocol, PVH ELF kernels through the Xen PVH entry
 * note, and multiboot (v1) kernels. Each starts in flat 32-bit protected
 * mode with paging off; what differs is where the kernel goes and which
 * structure describes the machine to it. */
#pragma once

#include "vmm-core/kvm/memory.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

enum {
  VMM_E820_RAM = 1,
  VMM_E820_RESERVED = 2,
  VMM_E820_ACPI = 3,
};

typedef struct vmm_e820_entry {
  uint64_t addr;
  uint64_t len;
  uint32_t type;
} vmm_e820_entry;

typedef enum {
  VMM_KERNEL_AUTO,      /* bzImage, else PVH note, else multiboot */
  VMM_KERNEL_LINUX,
  VMM_KERNEL_PVH,
  VMM_KERNEL_MULTIBOOT,
} vmm_kernel_protocol;

typedef struct vmm_direct_boot {
  const char *kernel;
  const char *initrd;  /* NULL for none */
  const char *cmdline; /* NULL for empty */
  vmm_kernel_protocol protocol;
  const vmm_e820_entry *e820;
  size_t n_e820;
  uint64_t rsdp_addr;
} vmm_direct_boot;

/* The boot CPU's registers at the kernel's entry (32-bit flat segments
 * __BOOT_CS 0x10 and __BOOT_DS 0x18 from a GDT the loader writes). */
typedef struct vmm_boot_entry {
  uint32_t eip;
  uint32_t eax;
  uint32_t ebx;
  uint32_t esi;
  uint32_t gdt_base;
  uint16_t gdt_limit;
  vmm_kernel_protocol protocol; /* what was found */
} vmm_boot_entry;

/* Where the loaders put things in low memory. */
#define VMM_BOOT_GDT_ADDR 0x500
#define VMM_BOOT_INFO_ADDR 0x7000   /* zero page / start_info / mb info */
#define VMM_BOOT_MEMMAP_ADDR 0x9000 /* PVH and multiboot memory maps */
#define VMM_BOOT_CMDLINE_ADDR 0x20000
#define VMM_BOOT_CMDLINE_MAX 0x10000
#define VMM_BOOT_MODULES_ADDR 0x30000
#define VMM_BOOT_KERNEL_ADDR 0x100000

gboolean vmm_direct_boot_load (const vmm_direct_boot *boot,
                               const vmm_guest_memory *mem,
                               vmm_boot_entry *entry, GError **error);

/* Shared by the loaders. */
typedef struct vmm_elf_image vmm_elf_image;
gboolean vmm_elf_load (const uint8_t *file, size_t len,
                       const vmm_guest_memory *mem, uint64_t *entry,
                       uint64_t *end, GError **error);
/* The descriptor of note @type with @name, or NULL. */
const uint8_t *vmm_elf_find_note (const uint8_t *file, size_t len,
                                  const char *name, uint32_t type,
                                  size_t *desc_len);
bool vmm_elf_is_elf (const uint8_t *file, size_t len);

gboolean vmm_boot_linux (const uint8_t *kernel, size_t len,
                         const vmm_direct_boot *boot,
                         const vmm_guest_memory *mem, vmm_boot_entry *entry,
                         GError **error);
gboolean vmm_boot_pvh (const uint8_t *kernel, size_t len,
                       const vmm_direct_boot *boot,
                       const vmm_guest_memory *mem, vmm_boot_entry *entry,
                       GError **error);
gboolean vmm_boot_multiboot (const uint8_t *kernel, size_t len,
                             const vmm_direct_boot *boot,
                             const vmm_guest_memory *mem,
                             vmm_boot_entry *entry, GError **error);
bool vmm_boot_is_bzimage (const uint8_t *kernel, size_t len);
/* The bzImage's kernel, decompressed on the host (gzip, xz, zstd); NULL
 * without @error set when there is none Vessel can decompress. */
GBytes *vmm_boot_linux_payload (const uint8_t *kernel, size_t len,
                                GError **error);
bool vmm_boot_has_multiboot_header (const uint8_t *kernel, size_t len);

/* Copies the command line (or an empty one) and returns its address. */
gboolean vmm_boot_put_cmdline (const vmm_direct_boot *boot,
                               const vmm_guest_memory *mem, uint32_t *addr,
                               GError **error);
/* Loads the initrd at the top of low RAM under @max_end; 0 size if none. */
gboolean vmm_boot_put_initrd (const vmm_direct_boot *boot,
                              const vmm_guest_memory *mem, uint64_t max_end,
                              uint64_t min_addr, uint32_t *addr,
                              uint32_t *size, GError **error);

G_END_DECLS
