/* Port-I/O and MMIO dispatch over a sorted array of claimed ranges. */
#include "vmm-core/bus/bus.h"

#include <gio/gio.h>

#include <string.h>

typedef struct bus_region {
  uint64_t base;
  uint64_t len;
  vmm_device *dev;
  const vmm_region_ops *ops;
  void *opaque;
} bus_region;

struct vmm_bus {
  vmm_bus_kind kind;
  GRWLock lock;
  GArray *regions; /* bus_region, sorted by base, never overlapping */
  GMutex log_lock;
  GHashTable *logged; /* addresses already reported as unclaimed */
};

void
vmm_device_init (vmm_device *dev, const char *name, const vmm_device_ops *ops)
{
  dev->name = name;
  dev->ops = ops;
  g_mutex_init (&dev->lock);
}

void
vmm_device_reset (vmm_device *dev)
{
  if (dev->ops && dev->ops->reset)
    {
      g_mutex_lock (&dev->lock);
      dev->ops->reset (dev);
      g_mutex_unlock (&dev->lock);
    }
}

void
vmm_device_destroy (vmm_device *dev)
{
  if (!dev)
    return;
  if (dev->ops && dev->ops->destroy)
    dev->ops->destroy (dev);
}

vmm_bus *
vmm_bus_new (vmm_bus_kind kind)
{
  vmm_bus *bus = g_new0 (vmm_bus, 1);
  bus->kind = kind;
  g_rw_lock_init (&bus->lock);
  g_mutex_init (&bus->log_lock);
  bus->regions = g_array_new (FALSE, FALSE, sizeof (bus_region));
  bus->logged = g_hash_table_new (g_int64_hash, g_int64_equal);
  return bus;
}

void
vmm_bus_free (vmm_bus *bus)
{
  if (!bus)
    return;
  g_array_unref (bus->regions);
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, bus->logged);
  while (g_hash_table_iter_next (&it, &key, NULL))
    g_free (key);
  g_hash_table_unref (bus->logged);
  g_rw_lock_clear (&bus->lock);
  g_mutex_clear (&bus->log_lock);
  g_free (bus);
}

static const char *
bus_name (const vmm_bus *bus)
{
  return bus->kind == VMM_BUS_PIO ? "port" : "MMIO address";
}

/* Index of the first region whose end lies above @addr. */
static guint
bus_lower_bound (const vmm_bus *bus, uint64_t addr)
{
  guint lo = 0, hi = bus->regions->len;
  while (lo < hi)
    {
      guint mid = lo + (hi - lo) / 2;
      const bus_region *r = &g_array_index (bus->regions, bus_region, mid);
      if (r->base + r->len <= addr)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo;
}

gboolean
vmm_bus_register (vmm_bus *bus, uint64_t base, uint64_t len, vmm_device *dev,
                  const vmm_region_ops *ops, void *opaque, GError **error)
{
  if (len == 0 || base + len < base)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "invalid %s range 0x%" G_GINT64_MODIFIER "x+0x%"
                   G_GINT64_MODIFIER "x", bus_name (bus), base, len);
      return FALSE;
    }
  g_rw_lock_writer_lock (&bus->lock);
  guint i = bus_lower_bound (bus, base);
  if (i < bus->regions->len)
    {
      const bus_region *r = &g_array_index (bus->regions, bus_region, i);
      if (r->base < base + len)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                       "%s range 0x%" G_GINT64_MODIFIER "x+0x%"
                       G_GINT64_MODIFIER "x of %s overlaps %s",
                       bus_name (bus), base, len,
                       dev ? dev->name : "a region",
                       r->dev ? r->dev->name : "another region");
          g_rw_lock_writer_unlock (&bus->lock);
          return FALSE;
        }
    }
  bus_region nr = { base, len, dev, ops, opaque };
  g_array_insert_val (bus->regions, i, nr);
  g_rw_lock_writer_unlock (&bus->lock);
  return TRUE;
}

gboolean
vmm_bus_unregister (vmm_bus *bus, uint64_t base, void *opaque)
{
  gboolean found = FALSE;
  g_rw_lock_writer_lock (&bus->lock);
  guint i = bus_lower_bound (bus, base);
  if (i < bus->regions->len)
    {
      const bus_region *r = &g_array_index (bus->regions, bus_region, i);
      if (r->base == base && r->opaque == opaque)
        {
          g_array_remove_index (bus->regions, i);
          found = TRUE;
        }
    }
  g_rw_lock_writer_unlock (&bus->lock);
  return found;
}

/* Copies out the region containing @addr. Handlers run without the bus lock
 * so that they may move regions (BAR programming) without deadlock. */
static bool
bus_find (vmm_bus *bus, uint64_t addr, bus_region *out)
{
  bool found = false;
  g_rw_lock_reader_lock (&bus->lock);
  guint i = bus_lower_bound (bus, addr);
  if (i < bus->regions->len)
    {
      const bus_region *r = &g_array_index (bus->regions, bus_region, i);
      if (r->base <= addr)
        {
          *out = *r;
          found = true;
        }
    }
  g_rw_lock_reader_unlock (&bus->lock);
  return found;
}

static void
bus_log_unclaimed (vmm_bus *bus, uint64_t addr, const char *what)
{
  g_mutex_lock (&bus->log_lock);
  if (g_hash_table_size (bus->logged) < 4096
      && !g_hash_table_contains (bus->logged, &addr))
    {
      gint64 *key = g_new (gint64, 1);
      *key = (gint64) addr;
      g_hash_table_add (bus->logged, key);
      g_debug ("unclaimed %s of %s 0x%" G_GINT64_MODIFIER "x", what,
               bus_name (bus), addr);
    }
  g_mutex_unlock (&bus->log_lock);
}

static uint64_t
region_read (const bus_region *r, uint64_t addr, unsigned size, unsigned cpu)
{
  vmm_access a = { addr, addr - r->base, size, cpu };
  uint64_t v;
  if (!r->ops->read)
    return ~0ull;
  if (r->dev)
    g_mutex_lock (&r->dev->lock);
  v = r->ops->read (r->opaque, &a);
  if (r->dev)
    g_mutex_unlock (&r->dev->lock);
  return v;
}

static void
region_write (const bus_region *r, uint64_t addr, unsigned size, unsigned cpu,
              uint64_t value)
{
  vmm_access a = { addr, addr - r->base, size, cpu };
  if (!r->ops->write)
    return;
  if (r->dev)
    g_mutex_lock (&r->dev->lock);
  r->ops->write (r->opaque, &a, value);
  if (r->dev)
    g_mutex_unlock (&r->dev->lock);
}

static inline uint64_t
size_mask (unsigned size)
{
  return size >= 8 ? ~0ull : (1ull << (size * 8)) - 1;
}

bool
vmm_bus_read (vmm_bus *bus, uint64_t addr, unsigned size, unsigned cpu,
              uint64_t *value)
{
  bus_region r;
  if (!bus_find (bus, addr, &r))
    {
      bus_log_unclaimed (bus, addr, "read");
      *value = size_mask (size);
      return false;
    }
  if (addr + size <= r.base + r.len)
    {
      *value = region_read (&r, addr, size, cpu) & size_mask (size);
      return true;
    }
  /* Straddles the end of the region: byte by byte, little-endian. */
  uint64_t v = 0;
  for (unsigned i = 0; i < size; i++)
    {
      uint64_t b;
      vmm_bus_read (bus, addr + i, 1, cpu, &b);
      v |= (b & 0xff) << (8 * i);
    }
  *value = v;
  return true;
}

bool
vmm_bus_write (vmm_bus *bus, uint64_t addr, unsigned size, unsigned cpu,
               uint64_t value)
{
  bus_region r;
  if (!bus_find (bus, addr, &r))
    {
      bus_log_unclaimed (bus, addr, "write");
      return false;
    }
  value &= size_mask (size);
  if (addr + size <= r.base + r.len)
    {
      region_write (&r, addr, size, cpu, value);
      return true;
    }
  for (unsigned i = 0; i < size; i++)
    vmm_bus_write (bus, addr + i, 1, cpu, (value >> (8 * i)) & 0xff);
  return true;
}
