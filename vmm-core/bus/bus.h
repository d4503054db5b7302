/* The bus: address ranges that devices claim, and dispatch of trapped
 * accesses to them. One instance for port I/O, one for MMIO.
 *
 * Registration refuses overlaps. A read nobody claims returns all-ones and is
 * logged once per address; a write nobody claims is dropped the same way.
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_ACCESS_NO_CPU UINT32_MAX

typedef struct vmm_access {
  uint64_t addr;   /* absolute: port number or guest-physical address */
  uint64_t offset; /* from the start of the region */
  unsigned size;   /* 1, 2, 4 or 8 bytes */
  unsigned cpu;    /* vCPU index, or VMM_ACCESS_NO_CPU */
} vmm_access;

typedef struct vmm_region_ops {
  uint64_t (*read) (void *opaque, const vmm_access *access);
  void (*write) (void *opaque, const vmm_access *access, uint64_t value);
} vmm_region_ops;

/* A device's lifecycle, apart from the regions it claims. Every op is
 * optional. */
typedef struct vmm_device vmm_device;
typedef struct vmm_device_ops {
  void (*reset) (vmm_device *dev);
  /* Guest-visible state as plain bytes, versioned by the device itself. */
  void (*save_state) (vmm_device *dev, GByteArray *out);
  gboolean (*load_state) (vmm_device *dev, const uint8_t *data, size_t len,
                          GError **error);
  void (*destroy) (vmm_device *dev);
} vmm_device_ops;

struct vmm_device {
  const char *name;
  const vmm_device_ops *ops;
  /* Taken by the bus around every region handler of this device and by the
   * device itself around timer and back-end callbacks. */
  GMutex lock;
};

void vmm_device_init (vmm_device *dev, const char *name,
                      const vmm_device_ops *ops);
void vmm_device_reset (vmm_device *dev);
void vmm_device_destroy (vmm_device *dev);

typedef enum { VMM_BUS_PIO, VMM_BUS_MMIO } vmm_bus_kind;

typedef struct vmm_bus vmm_bus;

vmm_bus *vmm_bus_new (vmm_bus_kind kind);
void vmm_bus_free (vmm_bus *bus);

/* Claims [base, base + len). @dev's lock is held around @ops calls; pass a
 * NULL @dev for a region whose handlers synchronise themselves. */
gboolean vmm_bus_register (vmm_bus *bus, uint64_t base, uint64_t len,
                           vmm_device *dev, const vmm_region_ops *ops,
                           void *opaque, GError **error);
/* Removes the region registered at exactly @base with @opaque. */
gboolean vmm_bus_unregister (vmm_bus *bus, uint64_t base, void *opaque);

/* Dispatch. Returns false (and all-ones for reads) when nothing claims the
 * address. Accesses that straddle a region's end are split byte-wise. */
bool vmm_bus_read (vmm_bus *bus, uint64_t addr, unsigned size, unsigned cpu,
                   uint64_t *value);
bool vmm_bus_write (vmm_bus *bus, uint64_t addr, unsigned size, unsigned cpu,
                    uint64_t value);

G_END_DECLS
