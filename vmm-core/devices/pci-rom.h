/* An option ROM in a PCI function's expansion ROM BAR (PCI 3.0, 6.3.1),
 * read-only, for NICs' boot ROMs (SeaBIOS copies and runs what it finds
 * there). The BAR is the image's size rounded up to a power of two (at
 * least 2 KiB); bytes past the image read as zero. */
#pragma once

#include "vmm-core/bus/pci.h"

G_BEGIN_DECLS

#define VMM_PCI_ROM_MAX (16u << 20)

typedef struct vmm_pci_rom {
  uint8_t *data;
  size_t len;
} vmm_pci_rom;

/* Checks the 0x55 0xAA signature and the size, copies the image. */
gboolean vmm_pci_rom_init (vmm_pci_rom *rom, const uint8_t *data, size_t len,
                           GError **error);
/* Sets @pci's ROM BAR over @rom (which must outlive @pci). */
void vmm_pci_rom_set_bar (vmm_pci_rom *rom, vmm_pci_device *pci);
void vmm_pci_rom_clear (vmm_pci_rom *rom);

G_END_DECLS
