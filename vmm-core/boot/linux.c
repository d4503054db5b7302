/* Linux bzImage through the 32-bit boot protocol (the kernel's
 * Documentation/arch/x86/boot.rst): the setup header copied into a zero
 * page, the protected-mode kernel at 1 MiB, ESI = the zero page. */
#include "vmm-core/boot/direct-boot.h"

#include <gio/gio.h>
#include <string.h>

/* Setup header fields (offsets into the image and the zero page). */
#define LX_SETUP_SECTS 0x1f1
#define LX_VID_MODE 0x1fa
#define LX_BOOT_FLAG 0x1fe
#define LX_JUMP 0x200
#define LX_HEADER 0x202
#define LX_VERSION 0x206
#define LX_TYPE_OF_LOADER 0x210
#define LX_LOADFLAGS 0x211
#define LX_CODE32_START 0x214
#define LX_RAMDISK_IMAGE 0x218
#define LX_RAMDISK_SIZE 0x21c
#define LX_CMD_LINE_PTR 0x228
#define LX_INITRD_ADDR_MAX 0x22c
#define LX_CMDLINE_SIZE 0x238
#define LX_INIT_SIZE 0x260
/* Zero-page fields outside the setup header. */
#define ZP_ACPI_RSDP_ADDR 0x070
#define ZP_E820_ENTRIES 0x1e8
#define ZP_E820_TABLE 0x2d0
#define ZP_E820_MAX 128
#define ZP_SIZE 4096

#define LOADED_HIGH 0x01
#define KEEP_SEGMENTS 0x40
#define MIN_VERSION 0x0202 /* the 32-bit protocol needs 2.02 */

static uint32_t
get32 (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static uint16_t
get16 (const uint8_t *p)
{
  uint16_t v;
  memcpy (&v, p, 2);
  return GUINT16_FROM_LE (v);
}

static void
put32 (uint8_t *p, uint32_t v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static void
put16 (uint8_t *p, uint16_t v)
{
  v = GUINT16_TO_LE (v);
  memcpy (p, &v, 2);
}

bool
vmm_boot_is_bzimage (const uint8_t *kernel, size_t len)
{
  return len > 0x264 && get16 (kernel + LX_BOOT_FLAG) == 0xaa55
         && memcmp (kernel + LX_HEADER, "HdrS", 4) == 0;
}

gboolean
vmm_boot_linux (const uint8_t *kernel, size_t len, const vmm_direct_boot *boot,
                const vmm_guest_memory *mem, vmm_boot_entry *entry,
                GError **error)
{
  if (!vmm_boot_is_bzimage (kernel, len))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "not a Linux bzImage (no HdrS setup header)");
      return FALSE;
    }
  /* Decompressed on the host and entered through PVH when the kernel has
   * that entry point (see linux-payload.c); otherwise the 32-bit protocol. */
  g_autoptr (GError) payload_error = NULL;
  g_autoptr (GBytes) vmlinux = vmm_boot_linux_payload (kernel, len,
                                                       &payload_error);
  if (payload_error)
    {
      g_propagate_error (error, g_steal_pointer (&payload_error));
      return FALSE;
    }
  if (vmlinux)
    {
      gsize vlen;
      const uint8_t *v = g_bytes_get_data (vmlinux, &vlen);
      size_t note_len;
      if (vmm_elf_is_elf (v, vlen)
          && vmm_elf_find_note (v, vlen, "Xen", 18, &note_len))
        {
          entry->protocol = VMM_KERNEL_PVH;
          return vmm_boot_pvh (v, vlen, boot, mem, entry, error);
        }
    }

  uint16_t version = get16 (kernel + LX_VERSION);
  if (version < MIN_VERSION || !(kernel[LX_LOADFLAGS] & LOADED_HIGH))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "Linux boot protocol %u.%02u without a high load is too "
                   "old; Vessel needs a bzImage of protocol 2.02 or newer",
                   version >> 8, version & 0xff);
      return FALSE;
    }
  unsigned setup_sects = kernel[LX_SETUP_SECTS] ? kernel[LX_SETUP_SECTS] : 4;
  size_t setup_size = (size_t) (setup_sects + 1) * 512;
  if (setup_size >= len)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the setup code claims more than the whole file");
      return FALSE;
    }
  size_t pm_size = len - setup_size;
  uint64_t need = pm_size;
  if (version >= 0x020a)
    need = MAX (need, (uint64_t) get32 (kernel + LX_INIT_SIZE));
  uint8_t *dst = vmm_guest_memory_ptr (mem, VMM_BOOT_KERNEL_ADDR, need);
  if (!dst)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "the kernel needs %" G_GUINT64_FORMAT " MiB above 1 MiB; "
                   "give the guest more memory", need >> 20);
      return FALSE;
    }
  memcpy (dst, kernel + setup_size, pm_size);

  uint8_t *zp = vmm_guest_memory_ptr (mem, VMM_BOOT_INFO_ADDR, ZP_SIZE);
  if (!zp)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "guest memory too small");
      return FALSE;
    }
  memset (zp, 0, ZP_SIZE);
  size_t hdr_end = LX_HEADER + kernel[LX_JUMP + 1];
  hdr_end = MIN (hdr_end, (size_t) ZP_E820_TABLE);
  memcpy (zp + LX_SETUP_SECTS, kernel + LX_SETUP_SECTS,
          hdr_end - LX_SETUP_SECTS);

  uint32_t cmdline, initrd, initrd_size;
  uint64_t cmdline_max = version >= 0x0206 ? get32 (kernel + LX_CMDLINE_SIZE)
                                           : 255;
  if (boot->cmdline && strlen (boot->cmdline) > cmdline_max)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "the command line is longer than this kernel's %"
                   G_GUINT64_FORMAT " bytes", cmdline_max);
      return FALSE;
    }
  uint64_t initrd_max = version >= 0x0203
                            ? (uint64_t) get32 (kernel + LX_INITRD_ADDR_MAX) + 1
                            : 0x38000000;
  if (!vmm_boot_put_cmdline (boot, mem, &cmdline, error)
      || !vmm_boot_put_initrd (boot, mem, initrd_max,
                               VMM_BOOT_KERNEL_ADDR + need, &initrd,
                               &initrd_size, error))
    return FALSE;

  zp[LX_TYPE_OF_LOADER] = 0xff; /* an unregistered boot loader */
  zp[LX_LOADFLAGS] &= ~KEEP_SEGMENTS;
  put16 (zp + LX_VID_MODE, 0xffff); /* "normal" */
  put32 (zp + LX_CODE32_START, VMM_BOOT_KERNEL_ADDR);
  put32 (zp + LX_CMD_LINE_PTR, cmdline);
  put32 (zp + LX_RAMDISK_IMAGE, initrd);
  put32 (zp + LX_RAMDISK_SIZE, initrd_size);
  uint64_t rsdp = GUINT64_TO_LE (boot->rsdp_addr);
  memcpy (zp + ZP_ACPI_RSDP_ADDR, &rsdp, 8);
  size_t n = MIN (boot->n_e820, (size_t) ZP_E820_MAX);
  zp[ZP_E820_ENTRIES] = (uint8_t) n;
  for (size_t i = 0; i < n; i++)
    {
      uint8_t *e = zp + ZP_E820_TABLE + 20 * i;
      uint64_t a = GUINT64_TO_LE (boot->e820[i].addr);
      uint64_t l = GUINT64_TO_LE (boot->e820[i].len);
      memcpy (e, &a, 8);
      memcpy (e + 8, &l, 8);
      put32 (e + 16, boot->e820[i].type);
    }
  entry->eip = VMM_BOOT_KERNEL_ADDR;
  entry->esi = VMM_BOOT_INFO_ADDR;
  return TRUE;
}
