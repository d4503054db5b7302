/* PCI expansion ROMs. Behaviour: see pci-rom.h. */
#include "vmm-core/devices/pci-rom.h"

#include <gio/gio.h>
#include <string.h>

static uint64_t
rom_read (void *opaque, const vmm_access *a)
{
  vmm_pci_rom *rom = opaque;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size; i++)
    {
      uint64_t o = a->offset + i;
      v |= (uint64_t) (o < rom->len ? rom->data[o] : 0) << (8 * i);
    }
  return v;
}

static void
rom_write (void *opaque, const vmm_access *a, uint64_t value)
{
}

static const vmm_region_ops rom_ops = {
  .read = rom_read,
  .write = rom_write,
};

gboolean
vmm_pci_rom_init (vmm_pci_rom *rom, const uint8_t *data, size_t len,
                  GError **error)
{
  memset (rom, 0, sizeof *rom);
  if (len < 3 || len > VMM_PCI_ROM_MAX || data[0] != 0x55 || data[1] != 0xaa)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "not an option ROM (%zu bytes, no 55 AA signature or "
                   "over 16 MiB)", len);
      return FALSE;
    }
  rom->data = g_memdup2 (data, len);
  rom->len = len;
  return TRUE;
}

void
vmm_pci_rom_set_bar (vmm_pci_rom *rom, vmm_pci_device *pci)
{
  if (!rom->data)
    return;
  uint64_t size = 2048;
  while (size < rom->len)
    size <<= 1;
  vmm_pci_set_bar (pci, VMM_PCI_ROM_SLOT, VMM_PCI_BAR_MEM32, false, size,
                   &rom_ops, rom);
}

void
vmm_pci_rom_clear (vmm_pci_rom *rom)
{
  g_clear_pointer (&rom->data, g_free);
  rom->len = 0;
}
