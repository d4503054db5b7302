/* PVH boot: the ELF note XEN_ELFNOTE_PHYS32_ENTRY (18, owner "Xen") gives a
 * 32-bit entry point; EBX holds the physical address of an hvm_start_info
 * (Xen public header arch-x86/hvm/start_info.h, version 1 with a memory
 * map). */
#include "vmm-core/boot/direct-boot.h"

#include <gio/gio.h>
#include <string.h>

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u

struct hvm_start_info {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};

struct hvm_modlist_entry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};

struct hvm_memmap_entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};

gboolean
vmm_boot_pvh (const uint8_t *kernel, size_t len, const vmm_direct_boot *boot,
              const vmm_guest_memory *mem, vmm_boot_entry *entry,
              GError **error)
{
  size_t dlen = 0;
  const uint8_t *desc = vmm_elf_find_note (kernel, len, "Xen",
                                           XEN_ELFNOTE_PHYS32_ENTRY, &dlen);
  if (!desc || (dlen != 4 && dlen != 8))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)");
      return FALSE;
    }
  uint64_t pvh_entry = 0;
  memcpy (&pvh_entry, desc, dlen);
  if (pvh_entry >= VMM_4G)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "PVH entry point 0x%" G_GINT64_MODIFIER "x is above 4 GiB",
                   pvh_entry);
      return FALSE;
    }
  uint64_t elf_entry, end;
  if (!vmm_elf_load (kernel, len, mem, &elf_entry, &end, error))
    return FALSE;

  uint32_t cmdline, initrd, initrd_size;
  if (!vmm_boot_put_cmdline (boot, mem, &cmdline, error)
      || !vmm_boot_put_initrd (boot, mem, mem->below_4g, end, &initrd,
                               &initrd_size, error))
    return FALSE;

  size_t map_bytes = boot->n_e820 * sizeof (struct hvm_memmap_entry);
  struct hvm_start_info *si
      = vmm_guest_memory_ptr (mem, VMM_BOOT_INFO_ADDR, sizeof *si);
  uint8_t *map = vmm_guest_memory_ptr (mem, VMM_BOOT_MEMMAP_ADDR, map_bytes);
  struct hvm_modlist_entry *mod
      = vmm_guest_memory_ptr (mem, VMM_BOOT_MODULES_ADDR, sizeof *mod);
  if (!si || !map || !mod)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "guest memory too small");
      return FALSE;
    }
  for (size_t i = 0; i < boot->n_e820; i++)
    {
      struct hvm_memmap_entry e = { boot->e820[i].addr, boot->e820[i].len,
                                    boot->e820[i].type, 0 };
      memcpy (map + i * sizeof e, &e, sizeof e);
    }
  memset (si, 0, sizeof *si);
  si->magic = HVM_START_MAGIC;
  si->version = 1;
  si->cmdline_paddr = cmdline;
  si->rsdp_paddr = boot->rsdp_addr;
  si->memmap_paddr = VMM_BOOT_MEMMAP_ADDR;
  si->memmap_entries = (uint32_t) boot->n_e820;
  if (initrd_size)
    {
      *mod = (struct hvm_modlist_entry) { initrd, initrd_size, 0, 0 };
      si->nr_modules = 1;
      si->modlist_paddr = VMM_BOOT_MODULES_ADDR;
    }
  entry->eip = (uint32_t) pvh_entry;
  entry->ebx = VMM_BOOT_INFO_ADDR;
  return TRUE;
}
