/* Multiboot (version 0.6.96 of the specification): a header in the first
 * 8 KiB of the image, the kernel loaded from its ELF segments or from the
 * header's address fields, EAX = 0x2BADB002 and EBX = the info structure. */
#include "vmm-core/boot/direct-boot.h"

#include <gio/gio.h>
#include <string.h>

#define MB_HEADER_MAGIC 0x1badb002u
#define MB_BOOTLOADER_MAGIC 0x2badb002u
#define MB_SEARCH 8192
#define MB_FLAG_AOUT_KLUDGE (1u << 16)
#define MB_INFO_MEMORY (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)
#define MB_INFO_MODS (1u << 3)
#define MB_INFO_MMAP (1u << 6)
#define MB_INFO_LOADER_NAME (1u << 9)
#define MB_LOADER_NAME "Vessel"

struct mb_header {
  uint32_t magic, flags, checksum;
  uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
};

struct mb_info {
  uint32_t flags;
  uint32_t mem_lower, mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count, mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length, mmap_addr;
  uint32_t drives_length, drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;
};

struct mb_module {
  uint32_t mod_start, mod_end, string, reserved;
};

struct __attribute__ ((packed)) mb_mmap_entry {
  uint32_t size; /* of the rest of the entry: 20 */
  uint64_t addr;
  uint64_t len;
  uint32_t type;
};

static const struct mb_header *
mb_find_header (const uint8_t *kernel, size_t len, size_t *offset,
                struct mb_header *out)
{
  size_t limit = MIN (len, (size_t) MB_SEARCH);
  for (size_t o = 0; o + 12 <= limit; o += 4)
    {
      uint32_t w[3];
      memcpy (w, kernel + o, 12);
      if (w[0] == MB_HEADER_MAGIC && (uint32_t) (w[0] + w[1] + w[2]) == 0)
        {
          memset (out, 0, sizeof *out);
          memcpy (out, kernel + o, MIN (sizeof *out, len - o));
          *offset = o;
          return out;
        }
    }
  return NULL;
}

bool
vmm_boot_has_multiboot_header (const uint8_t *kernel, size_t len)
{
  size_t off;
  struct mb_header h;
  return mb_find_header (kernel, len, &off, &h) != NULL;
}

/* The a.out kludge: the header says where the image goes. */
static gboolean
mb_load_by_address (const uint8_t *kernel, size_t len, size_t hdr_off,
                    const struct mb_header *h, const vmm_guest_memory *mem,
                    uint64_t *end, GError **error)
{
  if (len - hdr_off < sizeof *h)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the multiboot header's address fields are cut off by "
                   "the end of the file");
      return FALSE;
    }
  if (h->header_addr < h->load_addr
      || h->header_addr - h->load_addr > hdr_off)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "multiboot header addresses are inconsistent");
      return FALSE;
    }
  size_t file_off = hdr_off - (h->header_addr - h->load_addr);
  uint64_t load_len = h->load_end_addr ? (uint64_t) h->load_end_addr
                                             - h->load_addr
                                       : len - file_off;
  if (h->load_end_addr && h->load_end_addr < h->load_addr)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "multiboot load_end_addr lies before load_addr");
      return FALSE;
    }
  if (load_len > len - file_off)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "multiboot load range is larger than the file");
      return FALSE;
    }
  uint64_t bss_end = h->bss_end_addr ? h->bss_end_addr
                                     : h->load_addr + load_len;
  if (bss_end < h->load_addr + load_len)
    bss_end = h->load_addr + load_len;
  uint8_t *dst = vmm_guest_memory_ptr (mem, h->load_addr,
                                       bss_end - h->load_addr);
  if (!dst)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "multiboot image at 0x%x does not fit in guest RAM",
                   h->load_addr);
      return FALSE;
    }
  memcpy (dst, kernel + file_off, load_len);
  memset (dst + load_len, 0, bss_end - h->load_addr - load_len);
  *end = bss_end;
  return TRUE;
}

gboolean
vmm_boot_multiboot (const uint8_t *kernel, size_t len,
                    const vmm_direct_boot *boot, const vmm_guest_memory *mem,
                    vmm_boot_entry *entry, GError **error)
{
  size_t hdr_off;
  struct mb_header h;
  if (!mb_find_header (kernel, len, &hdr_off, &h))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "no multiboot header in the first 8 KiB");
      return FALSE;
    }
  uint64_t entry_addr, end;
  if (h.flags & MB_FLAG_AOUT_KLUDGE)
    {
      if (!mb_load_by_address (kernel, len, hdr_off, &h, mem, &end, error))
        return FALSE;
      entry_addr = h.entry_addr;
    }
  else if (!vmm_elf_load (kernel, len, mem, &entry_addr, &end, error))
    return FALSE;
  if (entry_addr >= VMM_4G)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "multiboot entry point is above 4 GiB");
      return FALSE;
    }

  uint32_t cmdline, initrd, initrd_size;
  if (!vmm_boot_put_cmdline (boot, mem, &cmdline, error)
      || !vmm_boot_put_initrd (boot, mem, mem->below_4g, end, &initrd,
                               &initrd_size, error))
    return FALSE;

  struct mb_info *mbi
      = vmm_guest_memory_ptr (mem, VMM_BOOT_INFO_ADDR, sizeof *mbi + 64);
  size_t map_bytes = boot->n_e820 * sizeof (struct mb_mmap_entry);
  uint8_t *map = vmm_guest_memory_ptr (mem, VMM_BOOT_MEMMAP_ADDR, map_bytes);
  struct mb_module *mod
      = vmm_guest_memory_ptr (mem, VMM_BOOT_MODULES_ADDR, sizeof *mod);
  if (!mbi || !map || !mod)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "guest memory too small");
      return FALSE;
    }
  memset (mbi, 0, sizeof *mbi);
  uint64_t upper = 0;
  for (size_t i = 0; i < boot->n_e820; i++)
    {
      const vmm_e820_entry *e = &boot->e820[i];
      struct mb_mmap_entry me = { 20, e->addr, e->len, e->type };
      memcpy (map + i * sizeof me, &me, sizeof me);
      if (e->type == VMM_E820_RAM && e->addr == VMM_BOOT_KERNEL_ADDR)
        upper = e->len;
    }
  mbi->flags = MB_INFO_MEMORY | MB_INFO_CMDLINE | MB_INFO_MMAP
               | MB_INFO_LOADER_NAME;
  mbi->mem_lower = 639;
  mbi->mem_upper = (uint32_t) MIN (upper >> 10, (uint64_t) UINT32_MAX);
  mbi->cmdline = cmdline;
  mbi->mmap_length = (uint32_t) map_bytes;
  mbi->mmap_addr = VMM_BOOT_MEMMAP_ADDR;
  /* The loader name sits right after the structure. */
  char *name = (char *) (mbi + 1);
  g_strlcpy (name, MB_LOADER_NAME, 64);
  mbi->boot_loader_name = VMM_BOOT_INFO_ADDR + sizeof *mbi;
  if (initrd_size)
    {
      *mod = (struct mb_module) { initrd, initrd + initrd_size, cmdline, 0 };
      mbi->flags |= MB_INFO_MODS;
      mbi->mods_count = 1;
      mbi->mods_addr = VMM_BOOT_MODULES_ADDR;
    }
  entry->eip = (uint32_t) entry_addr;
  entry->eax = MB_BOOTLOADER_MAGIC;
  entry->ebx = VMM_BOOT_INFO_ADDR;
  return TRUE;
}
