/* Common steps of firmware-less boot: read the kernel, pick the protocol,
 * place the command line and initrd, write the GDT. */
#include "vmm-core/boot/direct-boot.h"

#include <gio/gio.h>
#include <string.h>

/* Flat 4 GiB segments: null, unused, code at 0x10, data at 0x18 — the
 * selectors Linux's 32-bit boot protocol names __BOOT_CS and __BOOT_DS. */
static const uint64_t boot_gdt[] = {
  0,
  0,
  0x00cf9b000000ffffull, /* code: present, DPL0, exec/read, 32-bit, 4K gran */
  0x00cf93000000ffffull, /* data: present, DPL0, read/write, 32-bit, 4K gran */
};

gboolean
vmm_boot_put_cmdline (const vmm_direct_boot *boot, const vmm_guest_memory *mem,
                      uint32_t *addr, GError **error)
{
  const char *cmdline = boot->cmdline ? boot->cmdline : "";
  size_t n = strlen (cmdline) + 1;
  if (n > VMM_BOOT_CMDLINE_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "the kernel command line is %zu bytes; at most %d fit", n,
                   VMM_BOOT_CMDLINE_MAX - 1);
      return FALSE;
    }
  uint8_t *p = vmm_guest_memory_ptr (mem, VMM_BOOT_CMDLINE_ADDR, n);
  if (!p)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "guest memory too small for the command line");
      return FALSE;
    }
  memcpy (p, cmdline, n);
  *addr = VMM_BOOT_CMDLINE_ADDR;
  return TRUE;
}

gboolean
vmm_boot_put_initrd (const vmm_direct_boot *boot, const vmm_guest_memory *mem,
                     uint64_t max_end, uint64_t min_addr, uint32_t *addr,
                     uint32_t *size, GError **error)
{
  *addr = 0;
  *size = 0;
  if (!boot->initrd)
    return TRUE;
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (boot->initrd, &data, &len, error))
    return FALSE;
  if (len == 0)
    return TRUE; /* an empty file: no initrd (placing it would fail) */
  uint64_t top = MIN (max_end, mem->below_4g);
  /* Page alignment moves it down: it must still clear @min_addr. */
  if (len > UINT32_MAX || len + min_addr > top
      || ((top - len) & ~UINT64_C (0xfff)) < min_addr)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "%s (%" G_GSIZE_FORMAT " MiB) does not fit in guest memory "
                   "below %" G_GUINT64_FORMAT " MiB; give the guest more memory",
                   boot->initrd, len >> 20, top >> 20);
      return FALSE;
    }
  uint64_t at = (top - len) & ~UINT64_C (0xfff);
  uint8_t *p = vmm_guest_memory_ptr (mem, at, len);
  if (!p)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "no room for %s in guest memory", boot->initrd);
      return FALSE;
    }
  memcpy (p, data, len);
  *addr = (uint32_t) at;
  *size = (uint32_t) len;
  return TRUE;
}

gboolean
vmm_direct_boot_load (const vmm_direct_boot *boot, const vmm_guest_memory *mem,
                      vmm_boot_entry *entry, GError **error)
{
  g_autofree uint8_t *kernel = NULL;
  gsize len = 0;
  if (!g_file_get_contents (boot->kernel, (char **) &kernel, &len, error))
    return FALSE;

  memset (entry, 0, sizeof *entry);
  uint8_t *gdt = vmm_guest_memory_ptr (mem, VMM_BOOT_GDT_ADDR, sizeof boot_gdt);
  if (!gdt)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "guest memory too small");
      return FALSE;
    }
  memcpy (gdt, boot_gdt, sizeof boot_gdt);
  entry->gdt_base = VMM_BOOT_GDT_ADDR;
  entry->gdt_limit = sizeof boot_gdt - 1;

  vmm_kernel_protocol p = boot->protocol;
  if (p == VMM_KERNEL_AUTO)
    {
      size_t note_len;
      if (vmm_boot_is_bzimage (kernel, len))
        p = VMM_KERNEL_LINUX;
      else if (vmm_elf_is_elf (kernel, len)
               && vmm_elf_find_note (kernel, len, "Xen", 18, &note_len))
        p = VMM_KERNEL_PVH;
      else if (vmm_boot_has_multiboot_header (kernel, len))
        p = VMM_KERNEL_MULTIBOOT;
      else
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                       "%s is not a kernel Vessel can boot directly (a Linux "
                       "bzImage, a PVH ELF or a multiboot kernel)",
                       boot->kernel);
          return FALSE;
        }
    }
  entry->protocol = p;
  gboolean ok;
  switch (p)
    {
    case VMM_KERNEL_LINUX:
      ok = vmm_boot_linux (kernel, len, boot, mem, entry, error);
      break;
    case VMM_KERNEL_PVH:
      ok = vmm_boot_pvh (kernel, len, boot, mem, entry, error);
      break;
    default:
      ok = vmm_boot_multiboot (kernel, len, boot, mem, entry, error);
      break;
    }
  if (!ok && error && *error)
    g_prefix_error (error, "%s: ", boot->kernel);
  return ok;
}
