/* PCI configuration mechanism #1 and the generic config-space behaviour. */
#include "vmm-core/bus/pci.h"

#include <gio/gio.h>
#include <string.h>

#define PCI_HOST_CONFIG_ADDRESS 0xcf8
#define PCI_HOST_CONFIG_DATA 0xcfc
#define PCI_MAX_DEVFN 256

struct vmm_pci_host {
  vmm_bus *pio;
  vmm_bus *mmio;
  GMutex lock; /* the address latch and the device table */
  uint32_t config_address;
  vmm_pci_device *devices[PCI_MAX_DEVFN];
  vmm_pci_intx_fn route_intx;
  void *route_opaque;
  /* Byte accesses to 0xCF9 belong to the south bridge's reset control
   * register, not to the address latch (PIIX3 datasheet, 2.7.7). */
  const vmm_region_ops *cf9_ops;
  void *cf9_opaque;
  vmm_device *cf9_dev;
};

static uint64_t pci_host_address_read (void *opaque, const vmm_access *a);
static void pci_host_address_write (void *opaque, const vmm_access *a,
                                    uint64_t value);
static uint64_t pci_host_data_read (void *opaque, const vmm_access *a);
static void pci_host_data_write (void *opaque, const vmm_access *a,
                                 uint64_t value);

static const vmm_region_ops pci_host_address_ops = {
  .read = pci_host_address_read,
  .write = pci_host_address_write,
};

static const vmm_region_ops pci_host_data_ops = {
  .read = pci_host_data_read,
  .write = pci_host_data_write,
};

vmm_pci_host *
vmm_pci_host_new (vmm_bus *pio, vmm_bus *mmio, vmm_pci_intx_fn route_intx,
                  void *route_opaque, GError **error)
{
  vmm_pci_host *host = g_new0 (vmm_pci_host, 1);
  host->pio = pio;
  host->mmio = mmio;
  host->route_intx = route_intx;
  host->route_opaque = route_opaque;
  g_mutex_init (&host->lock);
  if (!vmm_bus_register (pio, PCI_HOST_CONFIG_ADDRESS, 4, NULL,
                         &pci_host_address_ops, host, error))
    goto fail;
  if (!vmm_bus_register (pio, PCI_HOST_CONFIG_DATA, 4, NULL,
                         &pci_host_data_ops, host, error))
    goto fail_address;
  return host;

fail_address:
  vmm_bus_unregister (pio, PCI_HOST_CONFIG_ADDRESS, host);
fail:
  g_mutex_clear (&host->lock);
  g_free (host);
  return NULL;
}

void
vmm_pci_host_free (vmm_pci_host *host)
{
  if (!host)
    return;
  vmm_bus_unregister (host->pio, PCI_HOST_CONFIG_ADDRESS, host);
  vmm_bus_unregister (host->pio, PCI_HOST_CONFIG_DATA, host);
  g_mutex_clear (&host->lock);
  g_free (host);
}

void
vmm_pci_host_set_cf9_handler (vmm_pci_host *host, vmm_device *dev,
                              const vmm_region_ops *ops, void *opaque)
{
  host->cf9_dev = dev;
  host->cf9_ops = ops;
  host->cf9_opaque = opaque;
}

void
vmm_pci_device_init (vmm_pci_device *pci, vmm_device *dev,
                     const vmm_pci_device_ops *ops, void *opaque,
                     uint16_t vendor, uint16_t device, uint32_t class_code,
                     uint8_t revision)
{
  memset (pci, 0, sizeof *pci);
  pci->dev = dev;
  pci->ops = ops;
  pci->opaque = opaque;
  vmm_pci_put16 (pci->config + PCI_CFG_VENDOR_ID, vendor);
  vmm_pci_put16 (pci->config + PCI_CFG_DEVICE_ID, device);
  pci->config[PCI_CFG_REVISION] = revision;
  pci->config[PCI_CFG_CLASS_PROG] = class_code & 0xff;
  pci->config[PCI_CFG_CLASS_PROG + 1] = (class_code >> 8) & 0xff;
  pci->config[PCI_CFG_CLASS_PROG + 2] = (class_code >> 16) & 0xff;
  vmm_pci_put16 (pci->wmask + PCI_CFG_COMMAND,
                 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER
                     | PCI_COMMAND_INTX_DISABLE);
  /* Master/target abort and parity status bits are write-one-to-clear. */
  vmm_pci_put16 (pci->w1cmask + PCI_CFG_STATUS, 0xf900);
  pci->wmask[PCI_CFG_INTERRUPT_LINE] = 0xff;
  pci->wmask[0x0c] = 0xff; /* cache line size */
  pci->wmask[0x0d] = 0xff; /* latency timer */
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    pci->bars[i].mapped_at = VMM_PCI_UNMAPPED;
}

void
vmm_pci_set_subsystem (vmm_pci_device *pci, uint16_t vendor, uint16_t device)
{
  vmm_pci_put16 (pci->config + PCI_CFG_SUBSYS_VENDOR_ID, vendor);
  vmm_pci_put16 (pci->config + PCI_CFG_SUBSYS_ID, device);
}

void
vmm_pci_set_interrupt_pin (vmm_pci_device *pci, unsigned pin)
{
  pci->config[PCI_CFG_INTERRUPT_PIN] = pin;
}

static unsigned
bar_offset (unsigned bar)
{
  return bar == VMM_PCI_ROM_SLOT ? PCI_CFG_ROM_ADDRESS : PCI_CFG_BAR0 + 4 * bar;
}

static uint32_t
bar_type_bits (const vmm_pci_bar *b)
{
  switch (b->type)
    {
    case VMM_PCI_BAR_IO:
      return 0x1;
    case VMM_PCI_BAR_MEM64:
      return 0x4 | (b->prefetchable ? 0x8 : 0);
    case VMM_PCI_BAR_MEM32:
      return b->prefetchable ? 0x8 : 0;
    default:
      return 0;
    }
}

void
vmm_pci_set_bar (vmm_pci_device *pci, unsigned bar, vmm_pci_bar_type type,
                 bool prefetchable, uint64_t size, const vmm_region_ops *ops,
                 void *opaque)
{
  g_return_if_fail (bar <= VMM_PCI_NUM_BARS);
  g_return_if_fail (size && (size & (size - 1)) == 0);
  vmm_pci_bar *b = &pci->bars[bar];
  b->type = type;
  b->prefetchable = prefetchable;
  b->size = size;
  b->ops = ops;
  b->opaque = opaque;
  b->mapped_at = VMM_PCI_UNMAPPED;
  unsigned off = bar_offset (bar);
  if (bar == VMM_PCI_ROM_SLOT)
    {
      vmm_pci_put32 (pci->wmask + off, (uint32_t) ~(size - 1) | 1u);
      vmm_pci_put32 (pci->config + off, 0);
      return;
    }
  uint64_t mask = ~(size - 1);
  uint32_t low_mask = (uint32_t) mask & (type == VMM_PCI_BAR_IO ? ~0x3u : ~0xfu);
  vmm_pci_put32 (pci->wmask + off, low_mask);
  vmm_pci_put32 (pci->config + off, bar_type_bits (b));
  if (type == VMM_PCI_BAR_MEM64)
    {
      g_return_if_fail (bar + 1 < VMM_PCI_NUM_BARS);
      vmm_pci_put32 (pci->wmask + off + 4, (uint32_t) (mask >> 32));
      vmm_pci_put32 (pci->config + off + 4, 0);
    }
}

unsigned
vmm_pci_add_capability (vmm_pci_device *pci, uint8_t id, unsigned size)
{
  /* Capabilities are laid out upwards from 0x40, dword aligned, and linked
   * in the order they were added (PCI 3.0, 6.7). */
  unsigned off = pci->cap_end ? pci->cap_end : 0x40;
  g_return_val_if_fail (size >= 2 && off + size <= VMM_PCI_CONFIG_SIZE, 0);
  uint8_t *link = &pci->config[PCI_CFG_CAPABILITIES];
  while (*link)
    link = &pci->config[*link + 1];
  pci->config[off] = id;
  pci->config[off + 1] = 0;
  *link = (uint8_t) off;
  pci->cap_end = (off + size + 3) & ~3u;
  uint16_t status = vmm_pci_get16 (pci->config + PCI_CFG_STATUS);
  vmm_pci_put16 (pci->config + PCI_CFG_STATUS, status | PCI_STATUS_CAP_LIST);
  return off;
}

gboolean
vmm_pci_host_attach (vmm_pci_host *host, vmm_pci_device *pci, unsigned devfn,
                     GError **error)
{
  if (devfn >= PCI_MAX_DEVFN)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "PCI device number %u is out of range", devfn);
      return FALSE;
    }
  g_mutex_lock (&host->lock);
  if (host->devices[devfn])
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "PCI slot %02x.%x is already taken by %s", devfn >> 3,
                   devfn & 7, host->devices[devfn]->dev->name);
      g_mutex_unlock (&host->lock);
      return FALSE;
    }
  pci->host = host;
  pci->devfn = devfn;
  host->devices[devfn] = pci;
  g_mutex_unlock (&host->lock);
  return TRUE;
}

vmm_pci_device *
vmm_pci_host_find (vmm_pci_host *host, unsigned devfn)
{
  if (devfn >= PCI_MAX_DEVFN)
    return NULL;
  g_mutex_lock (&host->lock);
  vmm_pci_device *pci = host->devices[devfn];
  g_mutex_unlock (&host->lock);
  return pci;
}

/* Where the guest has placed @bar now, or VMM_PCI_UNMAPPED. */
static uint64_t
bar_decoded_address (const vmm_pci_device *pci, unsigned bar)
{
  const vmm_pci_bar *b = &pci->bars[bar];
  uint16_t command = vmm_pci_get16 (pci->config + PCI_CFG_COMMAND);
  unsigned off = bar_offset (bar);
  uint64_t addr;

  if (b->type == VMM_PCI_BAR_NONE || !b->size)
    return VMM_PCI_UNMAPPED;
  if (bar == VMM_PCI_ROM_SLOT)
    {
      uint32_t v = vmm_pci_get32 (pci->config + off);
      if (!(command & PCI_COMMAND_MEMORY) || !(v & 1))
        return VMM_PCI_UNMAPPED;
      addr = v & ~(uint32_t) (b->size - 1) & ~0x7ffu;
      /* Sized with all-ones and left so: it would end at 4 GiB. */
      if (addr + b->size >= 1ull << 32)
        return VMM_PCI_UNMAPPED;
    }
  else if (b->type == VMM_PCI_BAR_IO)
    {
      if (!(command & PCI_COMMAND_IO))
        return VMM_PCI_UNMAPPED;
      addr = vmm_pci_get32 (pci->config + off) & ~0x3u;
      if (addr + b->size > 0x10000)
        return VMM_PCI_UNMAPPED;
    }
  else
    {
      if (!(command & PCI_COMMAND_MEMORY))
        return VMM_PCI_UNMAPPED;
      addr = vmm_pci_get32 (pci->config + off) & ~0xfu;
      if (b->type == VMM_PCI_BAR_MEM64)
        addr |= (uint64_t) vmm_pci_get32 (pci->config + off + 4) << 32;
      /* While firmware sizes a BAR it holds all-ones: not a placement.
       * A 32-bit BAR so left ends exactly at 4 GiB, a 64-bit one wraps. */
      uint64_t end = addr + b->size;
      if (b->type == VMM_PCI_BAR_MEM64 ? end < addr || end > 1ull << 52
                                       : end >= 1ull << 32)
        return VMM_PCI_UNMAPPED;
    }
  if (addr == 0)
    return VMM_PCI_UNMAPPED;
  return addr;
}

static void
pci_update_mappings (vmm_pci_device *pci)
{
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    {
      vmm_pci_bar *b = &pci->bars[i];
      uint64_t addr = bar_decoded_address (pci, i);
      if (addr == b->mapped_at)
        continue;
      vmm_bus *bus = b->type == VMM_PCI_BAR_IO ? pci->host->pio
                                               : pci->host->mmio;
      if (b->mapped_at != VMM_PCI_UNMAPPED && b->ops)
        vmm_bus_unregister (bus, b->mapped_at, b->opaque);
      b->mapped_at = VMM_PCI_UNMAPPED;
      if (addr != VMM_PCI_UNMAPPED && b->ops)
        {
          g_autoptr (GError) error = NULL;
          /* The bus takes the owner's lock around handlers. */
          if (!vmm_bus_register (bus, addr, b->size, pci->dev, b->ops,
                                 b->opaque, &error))
            g_warning ("%s: BAR %u not mapped: %s", pci->dev->name, i,
                       error->message);
          else
            b->mapped_at = addr;
        }
      else if (addr != VMM_PCI_UNMAPPED)
        b->mapped_at = addr;
      if (pci->ops && pci->ops->bar_mapped)
        pci->ops->bar_mapped (pci, i, b->mapped_at);
    }
}

void
vmm_pci_device_reset (vmm_pci_device *pci)
{
  vmm_pci_put16 (pci->config + PCI_CFG_COMMAND, 0);
  vmm_pci_put16 (pci->config + PCI_CFG_STATUS,
                 vmm_pci_get16 (pci->config + PCI_CFG_STATUS)
                     & PCI_STATUS_CAP_LIST);
  pci->config[PCI_CFG_INTERRUPT_LINE] = 0;
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    {
      vmm_pci_bar *b = &pci->bars[i];
      if (b->type == VMM_PCI_BAR_NONE)
        continue;
      unsigned off = bar_offset (i);
      vmm_pci_put32 (pci->config + off,
                     i == VMM_PCI_ROM_SLOT ? 0 : bar_type_bits (b));
      if (b->type == VMM_PCI_BAR_MEM64)
        vmm_pci_put32 (pci->config + off + 4, 0);
    }
  if (pci->host)
    pci_update_mappings (pci);
  if (pci->intx_level)
    vmm_pci_set_intx (pci, false);
}

void
vmm_pci_set_intx (vmm_pci_device *pci, bool level)
{
  uint16_t status = vmm_pci_get16 (pci->config + PCI_CFG_STATUS);
  uint16_t command = vmm_pci_get16 (pci->config + PCI_CFG_COMMAND);
  unsigned pin = pci->config[PCI_CFG_INTERRUPT_PIN];
  bool was = pci->intx_level && !(command & PCI_COMMAND_INTX_DISABLE);
  pci->intx_level = level;
  status = level ? (status | PCI_STATUS_INTERRUPT)
                 : (status & ~PCI_STATUS_INTERRUPT);
  vmm_pci_put16 (pci->config + PCI_CFG_STATUS, status);
  bool now = level && !(command & PCI_COMMAND_INTX_DISABLE);
  if (pin && was != now && pci->host && pci->host->route_intx)
    pci->host->route_intx (pci->host->route_opaque, pci->devfn, pin, now);
}

static uint32_t
pci_device_config_read (vmm_pci_device *pci, unsigned offset, unsigned size)
{
  if (pci->ops && pci->ops->config_read)
    return pci->ops->config_read (pci, offset, size);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint32_t) pci->config[offset + i] << (8 * i);
  return v;
}

static void
pci_device_config_write (vmm_pci_device *pci, unsigned offset, unsigned size,
                         uint32_t value)
{
  uint16_t old_command = vmm_pci_get16 (pci->config + PCI_CFG_COMMAND);
  for (unsigned i = 0; i < size; i++)
    {
      uint8_t b = (value >> (8 * i)) & 0xff;
      unsigned o = offset + i;
      pci->config[o] = (pci->config[o] & ~pci->wmask[o]) | (b & pci->wmask[o]);
      pci->config[o] &= ~(b & pci->w1cmask[o]);
    }
  bool touches_bars = (offset < 0x28 && offset + size > PCI_CFG_BAR0)
                      || (offset < 0x34 && offset + size > PCI_CFG_ROM_ADDRESS);
  bool touches_command = offset < 0x06 && offset + size > PCI_CFG_COMMAND;
  if (touches_bars || touches_command)
    pci_update_mappings (pci);
  uint16_t command = vmm_pci_get16 (pci->config + PCI_CFG_COMMAND);
  if ((old_command ^ command) & PCI_COMMAND_INTX_DISABLE && pci->intx_level
      && pci->host && pci->host->route_intx
      && pci->config[PCI_CFG_INTERRUPT_PIN])
    pci->host->route_intx (pci->host->route_opaque, pci->devfn,
                           pci->config[PCI_CFG_INTERRUPT_PIN],
                           !(command & PCI_COMMAND_INTX_DISABLE));
  if (pci->ops && pci->ops->config_written)
    pci->ops->config_written (pci, offset, size, value);
}

static bool
config_access_ok (unsigned offset, unsigned size)
{
  return (size == 1 || size == 2 || size == 4) && (offset & (size - 1)) == 0
         && offset + size <= VMM_PCI_CONFIG_SIZE;
}

uint32_t
vmm_pci_config_read (vmm_pci_host *host, unsigned bus, unsigned devfn,
                     unsigned offset, unsigned size)
{
  uint32_t ones = size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
  if (bus != 0 || !config_access_ok (offset, size) || devfn >= PCI_MAX_DEVFN)
    return ones;
  g_mutex_lock (&host->lock);
  vmm_pci_device *pci = host->devices[devfn];
  uint32_t v = ones;
  if (pci)
    {
      g_mutex_lock (&pci->dev->lock);
      v = pci_device_config_read (pci, offset, size);
      g_mutex_unlock (&pci->dev->lock);
    }
  g_mutex_unlock (&host->lock);
  return v;
}

void
vmm_pci_config_write (vmm_pci_host *host, unsigned bus, unsigned devfn,
                      unsigned offset, unsigned size, uint32_t value)
{
  if (bus != 0 || !config_access_ok (offset, size) || devfn >= PCI_MAX_DEVFN)
    return;
  g_mutex_lock (&host->lock);
  vmm_pci_device *pci = host->devices[devfn];
  if (pci)
    {
      g_mutex_lock (&pci->dev->lock);
      pci_device_config_write (pci, offset, size, value);
      g_mutex_unlock (&pci->dev->lock);
    }
  g_mutex_unlock (&host->lock);
}

static uint64_t
pci_host_address_read (void *opaque, const vmm_access *a)
{
  vmm_pci_host *host = opaque;
  if (a->size == 4 && a->offset == 0)
    {
      g_mutex_lock (&host->lock);
      uint32_t v = host->config_address;
      g_mutex_unlock (&host->lock);
      return v;
    }
  if (a->size == 1 && a->addr == 0xcf9 && host->cf9_ops
      && host->cf9_ops->read)
    {
      vmm_access sub = { a->addr, 0, 1, a->cpu };
      if (host->cf9_dev)
        g_mutex_lock (&host->cf9_dev->lock);
      uint64_t v = host->cf9_ops->read (host->cf9_opaque, &sub);
      if (host->cf9_dev)
        g_mutex_unlock (&host->cf9_dev->lock);
      return v;
    }
  return ~0ull;
}

static void
pci_host_address_write (void *opaque, const vmm_access *a, uint64_t value)
{
  vmm_pci_host *host = opaque;
  if (a->size == 4 && a->offset == 0)
    {
      g_mutex_lock (&host->lock);
      /* Bits 1:0 are reserved and read as zero (PCI 3.0, 3.2.2.3.2). */
      host->config_address = (uint32_t) value & ~0x7f000003u;
      g_mutex_unlock (&host->lock);
      return;
    }
  if (a->size == 1 && a->addr == 0xcf9 && host->cf9_ops
      && host->cf9_ops->write)
    {
      vmm_access sub = { a->addr, 0, 1, a->cpu };
      if (host->cf9_dev)
        g_mutex_lock (&host->cf9_dev->lock);
      host->cf9_ops->write (host->cf9_opaque, &sub, value);
      if (host->cf9_dev)
        g_mutex_unlock (&host->cf9_dev->lock);
    }
}

static bool
pci_host_decode (vmm_pci_host *host, const vmm_access *a, unsigned *bus,
                 unsigned *devfn, unsigned *offset)
{
  g_mutex_lock (&host->lock);
  uint32_t addr = host->config_address;
  g_mutex_unlock (&host->lock);
  if (!(addr & 0x80000000u))
    return false;
  *bus = (addr >> 16) & 0xff;
  *devfn = (addr >> 8) & 0xff;
  *offset = (addr & 0xfc) + (unsigned) a->offset;
  return true;
}

static uint64_t
pci_host_data_read (void *opaque, const vmm_access *a)
{
  vmm_pci_host *host = opaque;
  unsigned bus, devfn, offset;
  if (!pci_host_decode (host, a, &bus, &devfn, &offset))
    return ~0ull;
  return vmm_pci_config_read (host, bus, devfn, offset, a->size);
}

static void
pci_host_data_write (void *opaque, const vmm_access *a, uint64_t value)
{
  vmm_pci_host *host = opaque;
  unsigned bus, devfn, offset;
  if (pci_host_decode (host, a, &bus, &devfn, &offset))
    vmm_pci_config_write (host, bus, devfn, offset, a->size, (uint32_t) value);
}

typedef struct pci_bar_ref {
  unsigned devfn;
  unsigned bar;
  uint64_t size;
  vmm_pci_bar_type type;
} pci_bar_ref;

static gint
bar_ref_larger_first (gconstpointer a, gconstpointer b)
{
  const pci_bar_ref *x = a, *y = b;
  return x->size < y->size ? 1 : x->size > y->size ? -1 : 0;
}

gboolean
vmm_pci_host_assign_resources (vmm_pci_host *host, uint32_t io_start,
                               uint32_t io_end, uint64_t mem_start,
                               uint64_t mem_end, GError **error)
{
  g_autoptr (GArray) bars = g_array_new (FALSE, FALSE, sizeof (pci_bar_ref));
  g_mutex_lock (&host->lock);
  for (unsigned devfn = 0; devfn < PCI_MAX_DEVFN; devfn++)
    {
      vmm_pci_device *pci = host->devices[devfn];
      if (!pci)
        continue;
      for (unsigned i = 0; i < VMM_PCI_NUM_BARS; i++)
        if (pci->bars[i].type != VMM_PCI_BAR_NONE && pci->bars[i].size)
          {
            pci_bar_ref r = { devfn, i, pci->bars[i].size, pci->bars[i].type };
            g_array_append_val (bars, r);
          }
    }
  g_mutex_unlock (&host->lock);
  g_array_sort (bars, bar_ref_larger_first);

  uint64_t io = io_start, mem = mem_start;
  for (guint i = 0; i < bars->len; i++)
    {
      pci_bar_ref *r = &g_array_index (bars, pci_bar_ref, i);
      uint64_t *next = r->type == VMM_PCI_BAR_IO ? &io : &mem;
      uint64_t end = r->type == VMM_PCI_BAR_IO ? io_end : mem_end;
      uint64_t at = (*next + r->size - 1) & ~(r->size - 1);
      if (at + r->size > end || at + r->size < at)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       "PCI device %02x.%x: BAR %u (%" G_GUINT64_FORMAT
                       " bytes) does not fit in the %s window",
                       r->devfn >> 3, r->devfn & 7, r->bar, r->size,
                       r->type == VMM_PCI_BAR_IO ? "I/O" : "memory");
          return FALSE;
        }
      *next = at + r->size;
      unsigned off = PCI_CFG_BAR0 + 4 * r->bar;
      uint32_t low = vmm_pci_config_read (host, 0, r->devfn, off, 4);
      vmm_pci_config_write (host, 0, r->devfn, off, 4,
                            (uint32_t) at | (low & (r->type == VMM_PCI_BAR_IO
                                                        ? 0x3u : 0xfu)));
      if (r->type == VMM_PCI_BAR_MEM64)
        vmm_pci_config_write (host, 0, r->devfn, off + 4, 4,
                              (uint32_t) (at >> 32));
    }
  for (unsigned devfn = 0; devfn < PCI_MAX_DEVFN; devfn++)
    if (vmm_pci_host_find (host, devfn))
      {
        uint32_t cmd = vmm_pci_config_read (host, 0, devfn, PCI_CFG_COMMAND, 2);
        vmm_pci_config_write (host, 0, devfn, PCI_CFG_COMMAND, 2,
                              cmd | PCI_COMMAND_IO | PCI_COMMAND_MEMORY
                                  | PCI_COMMAND_MASTER);
      }
  return TRUE;
}
