/* PCI: configuration space through mechanism #1 (ports 0xCF8/0xCFC), and the
 * generic part of every function's config space: IDs, command/status, BARs
 * decoded onto the port and memory buses, INTx.
 *
 * Register layout: PCI Local Bus Specification 3.0, section 6.1 and 6.2.5. */
#pragma once

#include "vmm-core/bus/bus.h"

G_BEGIN_DECLS

#define VMM_PCI_CONFIG_SIZE 256
#define VMM_PCI_NUM_BARS 6
#define VMM_PCI_ROM_SLOT 6 /* bars[6] is the expansion ROM */
#define VMM_PCI_DEVFN(slot, fn) (((slot) << 3) | (fn))
#define VMM_PCI_UNMAPPED UINT64_MAX

/* Config space offsets (PCI 3.0, figure 6-1). */
enum {
  PCI_CFG_VENDOR_ID = 0x00,
  PCI_CFG_DEVICE_ID = 0x02,
  PCI_CFG_COMMAND = 0x04,
  PCI_CFG_STATUS = 0x06,
  PCI_CFG_REVISION = 0x08,
  PCI_CFG_CLASS_PROG = 0x09,
  PCI_CFG_HEADER_TYPE = 0x0e,
  PCI_CFG_BAR0 = 0x10,
  PCI_CFG_SUBSYS_VENDOR_ID = 0x2c,
  PCI_CFG_SUBSYS_ID = 0x2e,
  PCI_CFG_ROM_ADDRESS = 0x30,
  PCI_CFG_CAPABILITIES = 0x34,
  PCI_CFG_INTERRUPT_LINE = 0x3c,
  PCI_CFG_INTERRUPT_PIN = 0x3d,
};

enum {
  PCI_COMMAND_IO = 1u << 0,
  PCI_COMMAND_MEMORY = 1u << 1,
  PCI_COMMAND_MASTER = 1u << 2,
  PCI_COMMAND_INTX_DISABLE = 1u << 10,
  PCI_STATUS_INTERRUPT = 1u << 3,
  PCI_STATUS_CAP_LIST = 1u << 4,
};

typedef enum {
  VMM_PCI_BAR_NONE,
  VMM_PCI_BAR_IO,
  VMM_PCI_BAR_MEM32,
  VMM_PCI_BAR_MEM64, /* takes this slot and the next */
} vmm_pci_bar_type;

typedef struct vmm_pci_bar {
  vmm_pci_bar_type type;
  bool prefetchable;
  uint64_t size; /* a power of two; I/O at least 4, memory at least 16 */
  const vmm_region_ops *ops;
  void *opaque;
  uint64_t mapped_at; /* VMM_PCI_UNMAPPED while not decoded */
} vmm_pci_bar;

typedef struct vmm_pci_host vmm_pci_host;
typedef struct vmm_pci_device vmm_pci_device;

typedef struct vmm_pci_device_ops {
  /* Computed registers; NULL reads the stored bytes. Called with the
   * device's lock held, like the hooks below. */
  uint32_t (*config_read) (vmm_pci_device *pci, unsigned offset,
                           unsigned size);
  /* Called after the generic handling of a write (writable bits stored,
   * BARs and command decoded). */
  void (*config_written) (vmm_pci_device *pci, unsigned offset,
                          unsigned size, uint32_t value);
  /* A BAR was moved, enabled or disabled (@addr VMM_PCI_UNMAPPED). */
  void (*bar_mapped) (vmm_pci_device *pci, unsigned bar, uint64_t addr);
} vmm_pci_device_ops;

struct vmm_pci_device {
  vmm_device *dev; /* the owner; its lock guards config accesses */
  const vmm_pci_device_ops *ops;
  void *opaque;
  vmm_pci_host *host;
  unsigned devfn;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  uint8_t wmask[VMM_PCI_CONFIG_SIZE];   /* bits the guest may write */
  uint8_t w1cmask[VMM_PCI_CONFIG_SIZE]; /* bits a write of 1 clears */
  vmm_pci_bar bars[VMM_PCI_NUM_BARS + 1];
  bool intx_level;
  unsigned cap_end; /* next free byte for a capability */
};

/* Routing of INTx to the interrupt controller (the board's PIRQ logic). */
typedef void (*vmm_pci_intx_fn) (void *opaque, unsigned devfn, unsigned pin,
                                 bool level);

vmm_pci_host *vmm_pci_host_new (vmm_bus *pio, vmm_bus *mmio,
                                vmm_pci_intx_fn route_intx,
                                void *route_opaque, GError **error);
void vmm_pci_host_free (vmm_pci_host *host);

/* Byte accesses to port 0xCF9 share the address latch's dword; the south
 * bridge's reset control register is hooked in here instead of on the bus. */
void vmm_pci_host_set_cf9_handler (vmm_pci_host *host, vmm_device *dev,
                                   const vmm_region_ops *ops, void *opaque);

/* Sets IDs and class, makes the standard registers writable.
 * @class_code is 24 bits: class, subclass, programming interface. */
void vmm_pci_device_init (vmm_pci_device *pci, vmm_device *dev,
                          const vmm_pci_device_ops *ops, void *opaque,
                          uint16_t vendor, uint16_t device,
                          uint32_t class_code, uint8_t revision);
void vmm_pci_set_subsystem (vmm_pci_device *pci, uint16_t vendor,
                            uint16_t device);
/* @pin: 1 = INTA# … 4 = INTD#, 0 for none. */
void vmm_pci_set_interrupt_pin (vmm_pci_device *pci, unsigned pin);
void vmm_pci_set_bar (vmm_pci_device *pci, unsigned bar,
                      vmm_pci_bar_type type, bool prefetchable, uint64_t size,
                      const vmm_region_ops *ops, void *opaque);
/* Adds a capability; returns its offset in config space. */
unsigned vmm_pci_add_capability (vmm_pci_device *pci, uint8_t id,
                                 unsigned size);

gboolean vmm_pci_host_attach (vmm_pci_host *host, vmm_pci_device *pci,
                              unsigned devfn, GError **error);
vmm_pci_device *vmm_pci_host_find (vmm_pci_host *host, unsigned devfn);

/* Back to power-on state: command cleared, BARs unmapped and zeroed.
 * Call from the owner's reset op (with its lock held). */
void vmm_pci_device_reset (vmm_pci_device *pci);

/* Raises or lowers the function's INTx (with its lock held). */
void vmm_pci_set_intx (vmm_pci_device *pci, bool level);

/* Config access by bus/devfn: what the 0xCF8/0xCFC pair does, also used by
 * firmware-less boot to place BARs and by tests. Takes the locks. */
uint32_t vmm_pci_config_read (vmm_pci_host *host, unsigned bus,
                              unsigned devfn, unsigned offset, unsigned size);
void vmm_pci_config_write (vmm_pci_host *host, unsigned bus, unsigned devfn,
                           unsigned offset, unsigned size, uint32_t value);

/* What firmware does before an OS runs, for firmware-less boot: every BAR
 * of every function placed, naturally aligned, in the I/O window
 * [io_start, io_end) and the memory window [mem_start, mem_end), largest
 * first; I/O, memory and bus mastering enabled. Fails when they do not
 * fit. */
gboolean vmm_pci_host_assign_resources (vmm_pci_host *host, uint32_t io_start,
                                        uint32_t io_end, uint64_t mem_start,
                                        uint64_t mem_end, GError **error);

/* Little-endian helpers over a config (or any) byte array. */
static inline void
vmm_pci_put16 (uint8_t *p, uint16_t v)
{
  p[0] = v & 0xff;
  p[1] = v >> 8;
}

static inline void
vmm_pci_put32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

static inline uint16_t
vmm_pci_get16 (const uint8_t *p)
{
  return (uint16_t) (p[0] | p[1] << 8);
}

static inline uint32_t
vmm_pci_get32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

G_END_DECLS
