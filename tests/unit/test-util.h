/* Port I/O helpers for device unit tests. */
#pragma once

#include <glib.h>

#include "vmm-core/bus/bus.h"

static inline uint8_t
tu_inb (vmm_bus *bus, uint16_t port)
{
  uint64_t v;
  vmm_bus_read (bus, port, 1, 0, &v);
  return (uint8_t) v;
}

static inline uint16_t
tu_inw (vmm_bus *bus, uint16_t port)
{
  uint64_t v;
  vmm_bus_read (bus, port, 2, 0, &v);
  return (uint16_t) v;
}

static inline uint32_t
tu_inl (vmm_bus *bus, uint16_t port)
{
  uint64_t v;
  vmm_bus_read (bus, port, 4, 0, &v);
  return (uint32_t) v;
}

static inline void
tu_outb (vmm_bus *bus, uint16_t port, uint8_t v)
{
  vmm_bus_write (bus, port, 1, 0, v);
}

static inline void
tu_outw (vmm_bus *bus, uint16_t port, uint16_t v)
{
  vmm_bus_write (bus, port, 2, 0, v);
}

static inline void
tu_outl (vmm_bus *bus, uint16_t port, uint32_t v)
{
  vmm_bus_write (bus, port, 4, 0, v);
}
