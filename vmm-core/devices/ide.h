/* PIIX3 IDE (PCI 8086:7010, function 00:01.1): two legacy channels
 * (0x1F0-0x1F7 + 0x3F6 on IRQ 14, 0x170-0x177 + 0x376 on IRQ 15), each with
 * a master and a slave that are ATA disks or ATAPI CD/DVD-ROM drives, and
 * bus-master IDE DMA through BAR4.
 *
 * Disk I/O: PIO transfers read or write one DRQ block (a sector, a READ/
 * WRITE MULTIPLE block, or an ATAPI chunk of at most 32 KiB) synchronously on
 * the vCPU thread when the block starts (reads) or ends (writes). DMA
 * transfers and FLUSH CACHE are submitted to the block layer and complete on
 * @io_context (the engine's I/O thread); the device shows BSY meanwhile. */
#pragma once

#include "vmm-core/block/block.h"
#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/irq.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/devices/atapi.h"
#include "vmm-core/kvm/memory.h"

G_BEGIN_DECLS

#define IDE_DEVFN VMM_PCI_DEVFN (1, 1)
#define IDE_PRIMARY_IRQ 14
#define IDE_SECONDARY_IRQ 15
#define IDE_NUM_CHANNELS 2
#define IDE_NUM_UNITS 2
#define IDE_BMDMA_SIZE 16
#define IDE_SECTOR_SIZE 512

typedef struct ide_controller ide_controller;

/* @mem: guest RAM for bus-master DMA (must outlive the controller).
 * @io_context: where block completions run. @irq14/@irq15 are copied. */
ide_controller *ide_create (const vmm_guest_memory *mem,
                            GMainContext *io_context, const vmm_irq *irq14,
                            const vmm_irq *irq15);
vmm_device *ide_device (ide_controller *ide);
vmm_pci_device *ide_pci (ide_controller *ide);
/* Places the function at @devfn (IDE_DEVFN) and claims the legacy ports on
 * @pio. */
gboolean ide_attach (ide_controller *ide, vmm_pci_host *host, vmm_bus *pio,
                     unsigned devfn, GError **error);

/* Before the machine starts. The controller takes ownership of @bs on
 * success (it is drained and closed when the controller is destroyed). A
 * read-only image makes a write-protected disk. */
gboolean ide_attach_disk (ide_controller *ide, unsigned channel,
                          unsigned unit, VmmBlock *bs, GError **error);
/* A CD/DVD-ROM drive, empty when @media is NULL (ownership of @media as for
 * ide_attach_disk). Returns the drive for atapi_insert/atapi_eject, owned
 * by the controller; NULL on error. */
atapi_cdrom *ide_attach_cdrom (ide_controller *ide, unsigned channel,
                               unsigned unit, VmmBlock *media,
                               GError **error);

/* Waits until no DMA or flush is in flight (iterating @io_context when this
 * thread can own it). Call with the vCPUs paused, before saving state. */
void ide_drain (ide_controller *ide);

G_END_DECLS
