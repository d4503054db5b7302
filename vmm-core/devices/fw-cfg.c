#include "vmm-core/devices/fw-cfg.h"

#include <gio/gio.h>
#include <string.h>

#define FW_CFG_ID_TRADITIONAL 0x1u
#define FW_CFG_ID_DMA 0x2u
/* Read back from the DMA address register: "QEMU CFG". */
#define FW_CFG_DMA_SIGNATURE UINT64_C (0x51454d5520434647)

enum {
  DMA_CTL_ERROR = 0x01,
  DMA_CTL_READ = 0x02,
  DMA_CTL_SKIP = 0x04,
  DMA_CTL_SELECT = 0x08,
  DMA_CTL_WRITE = 0x10,
};

typedef struct fw_cfg_item {
  uint16_t key;
  GBytes *data;
  char name[FW_CFG_FILE_NAME_MAX]; /* empty for numbered items */
} fw_cfg_item;

struct fw_cfg {
  vmm_device dev;
  const vmm_guest_memory *mem;
  GArray *items; /* fw_cfg_item */
  uint16_t next_file_key;
  /* Guest-visible state. */
  struct {
    uint16_t selector;
    uint32_t offset;
    uint32_t dma_high;
  } s;
};

static fw_cfg_item *
fw_cfg_find (fw_cfg *cfg, uint16_t key)
{
  for (guint i = 0; i < cfg->items->len; i++)
    if (g_array_index (cfg->items, fw_cfg_item, i).key == key)
      return &g_array_index (cfg->items, fw_cfg_item, i);
  return NULL;
}

static void
fw_cfg_set_item (fw_cfg *cfg, uint16_t key, GBytes *data, const char *name)
{
  fw_cfg_item *it = fw_cfg_find (cfg, key);
  if (!it)
    {
      fw_cfg_item n = { .key = key };
      g_array_append_val (cfg->items, n);
      it = &g_array_index (cfg->items, fw_cfg_item, cfg->items->len - 1);
    }
  if (it->data)
    g_bytes_unref (it->data);
  it->data = g_bytes_ref (data);
  if (name)
    g_strlcpy (it->name, name, sizeof it->name);
}

void
fw_cfg_add_bytes (fw_cfg *cfg, uint16_t key, GBytes *data)
{
  fw_cfg_set_item (cfg, key, data, NULL);
}

static void
fw_cfg_add_raw (fw_cfg *cfg, uint16_t key, const void *p, size_t n)
{
  g_autoptr (GBytes) b = g_bytes_new (p, n);
  fw_cfg_add_bytes (cfg, key, b);
}

void
fw_cfg_add_u16 (fw_cfg *cfg, uint16_t key, uint16_t value)
{
  uint16_t le = GUINT16_TO_LE (value);
  fw_cfg_add_raw (cfg, key, &le, sizeof le);
}

void
fw_cfg_add_u32 (fw_cfg *cfg, uint16_t key, uint32_t value)
{
  uint32_t le = GUINT32_TO_LE (value);
  fw_cfg_add_raw (cfg, key, &le, sizeof le);
}

void
fw_cfg_add_u64 (fw_cfg *cfg, uint16_t key, uint64_t value)
{
  uint64_t le = GUINT64_TO_LE (value);
  fw_cfg_add_raw (cfg, key, &le, sizeof le);
}

/* The directory: a big-endian count, then per file a big-endian size,
 * selector, reserved word and a 56-byte name, sorted by name. */
static gint
compare_names (gconstpointer a, gconstpointer b)
{
  const fw_cfg_item *x = *(fw_cfg_item *const *) a;
  const fw_cfg_item *y = *(fw_cfg_item *const *) b;
  return strcmp (x->name, y->name);
}

static void
fw_cfg_rebuild_dir (fw_cfg *cfg)
{
  g_autoptr (GPtrArray) files = g_ptr_array_new ();
  for (guint i = 0; i < cfg->items->len; i++)
    {
      fw_cfg_item *it = &g_array_index (cfg->items, fw_cfg_item, i);
      if (it->name[0])
        g_ptr_array_add (files, it);
    }
  g_ptr_array_sort (files, compare_names);
  GByteArray *dir = g_byte_array_new ();
  uint32_t count = GUINT32_TO_BE (files->len);
  g_byte_array_append (dir, (guint8 *) &count, 4);
  for (guint i = 0; i < files->len; i++)
    {
      fw_cfg_item *it = files->pdata[i];
      uint32_t size = GUINT32_TO_BE ((uint32_t) g_bytes_get_size (it->data));
      uint16_t sel = GUINT16_TO_BE (it->key);
      uint16_t reserved = 0;
      char name[FW_CFG_FILE_NAME_MAX] = { 0 };
      g_strlcpy (name, it->name, sizeof name);
      g_byte_array_append (dir, (guint8 *) &size, 4);
      g_byte_array_append (dir, (guint8 *) &sel, 2);
      g_byte_array_append (dir, (guint8 *) &reserved, 2);
      g_byte_array_append (dir, (guint8 *) name, sizeof name);
    }
  g_autoptr (GBytes) b = g_byte_array_free_to_bytes (dir);
  fw_cfg_set_item (cfg, FW_CFG_FILE_DIR, b, NULL);
}

gboolean
fw_cfg_add_file (fw_cfg *cfg, const char *name, GBytes *data, GError **error)
{
  if (!name[0] || strlen (name) >= FW_CFG_FILE_NAME_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "fw_cfg file name '%s' must be 1 to %d characters", name,
                   FW_CFG_FILE_NAME_MAX - 1);
      return FALSE;
    }
  for (guint i = 0; i < cfg->items->len; i++)
    {
      fw_cfg_item *it = &g_array_index (cfg->items, fw_cfg_item, i);
      if (it->name[0] && strcmp (it->name, name) == 0)
        {
          fw_cfg_set_item (cfg, it->key, data, name);
          fw_cfg_rebuild_dir (cfg);
          return TRUE;
        }
    }
  if (cfg->next_file_key >= FW_CFG_FILE_FIRST + FW_CFG_MAX_FILES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "too many fw_cfg files (at most %d)", FW_CFG_MAX_FILES);
      return FALSE;
    }
  fw_cfg_set_item (cfg, cfg->next_file_key++, data, name);
  fw_cfg_rebuild_dir (cfg);
  return TRUE;
}

static GBytes *
fw_cfg_current (fw_cfg *cfg)
{
  fw_cfg_item *it = fw_cfg_find (cfg, cfg->s.selector);
  return it ? it->data : NULL;
}

static uint8_t
fw_cfg_read_byte (fw_cfg *cfg)
{
  GBytes *b = fw_cfg_current (cfg);
  gsize n = 0;
  const uint8_t *p = b ? g_bytes_get_data (b, &n) : NULL;
  if (!p || cfg->s.offset >= n)
    return 0;
  return p[cfg->s.offset++];
}

static void
fw_cfg_select (fw_cfg *cfg, uint16_t key)
{
  cfg->s.selector = key;
  cfg->s.offset = 0;
}

/* Runs one DMA request (control, length, address: 16 bytes, big-endian) and
 * writes the result into its control word. Every guest address is checked
 * against RAM; a request that leaves RAM fails with the error bit. */
static void
fw_cfg_dma (fw_cfg *cfg, uint64_t desc_gpa)
{
  uint8_t *desc = vmm_guest_memory_ptr (cfg->mem, desc_gpa, 16);
  if (!desc)
    {
      g_debug ("fw_cfg: DMA descriptor at 0x%" G_GINT64_MODIFIER
               "x is outside RAM", desc_gpa);
      return;
    }
  uint32_t control, length;
  uint64_t addr;
  memcpy (&control, desc, 4);
  memcpy (&length, desc + 4, 4);
  memcpy (&addr, desc + 8, 8);
  control = GUINT32_FROM_BE (control);
  length = GUINT32_FROM_BE (length);
  addr = GUINT64_FROM_BE (addr);

  if (control & DMA_CTL_SELECT)
    fw_cfg_select (cfg, control >> 16);
  uint32_t result = 0;
  if (control & (DMA_CTL_READ | DMA_CTL_WRITE | DMA_CTL_SKIP))
    {
      GBytes *b = fw_cfg_current (cfg);
      gsize n = 0;
      const uint8_t *src = b ? g_bytes_get_data (b, &n) : NULL;
      if (control & DMA_CTL_WRITE)
        result = DMA_CTL_ERROR; /* no item is guest-writable */
      else if (control & DMA_CTL_READ)
        {
          uint8_t *dst = vmm_guest_memory_ptr (cfg->mem, addr, length);
          if (!dst && length)
            result = DMA_CTL_ERROR;
          else
            for (uint32_t i = 0; i < length; i++)
              {
                uint64_t o = (uint64_t) cfg->s.offset + i;
                dst[i] = src && o < n ? src[o] : 0;
              }
        }
      if (!result)
        cfg->s.offset = (uint32_t) MIN ((uint64_t) cfg->s.offset + length,
                                        (uint64_t) UINT32_MAX);
    }
  uint32_t out = GUINT32_TO_BE (result);
  memcpy (desc, &out, 4);
}

static uint64_t
fw_cfg_io_read (void *opaque, const vmm_access *a)
{
  fw_cfg *cfg = opaque;
  switch (a->offset)
    {
    case 1: /* data port: wider reads take consecutive bytes */
      {
        uint64_t v = 0;
        for (unsigned i = 0; i < a->size; i++)
          v |= (uint64_t) fw_cfg_read_byte (cfg) << (8 * i);
        return v;
      }
    default:
      return 0;
    }
}

static void
fw_cfg_io_write (void *opaque, const vmm_access *a, uint64_t value)
{
  fw_cfg *cfg = opaque;
  if (a->offset == 0 && a->size == 2)
    fw_cfg_select (cfg, (uint16_t) value);
}

static uint64_t
fw_cfg_dma_read (void *opaque, const vmm_access *a)
{
  /* The signature, big-endian across the eight ports. */
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size; i++)
    {
      unsigned o = (unsigned) a->offset + i;
      if (o < 8)
        v |= ((FW_CFG_DMA_SIGNATURE >> (8 * (7 - o))) & 0xff) << (8 * i);
    }
  return v;
}

static void
fw_cfg_dma_write (void *opaque, const vmm_access *a, uint64_t value)
{
  fw_cfg *cfg = opaque;
  if (a->size != 4)
    return;
  uint32_t be = GUINT32_FROM_BE ((uint32_t) value);
  if (a->offset == 0)
    cfg->s.dma_high = be;
  else if (a->offset == 4)
    {
      fw_cfg_dma (cfg, (uint64_t) cfg->s.dma_high << 32 | be);
      cfg->s.dma_high = 0;
    }
}

static const vmm_region_ops fw_cfg_io_ops = {
  .read = fw_cfg_io_read,
  .write = fw_cfg_io_write,
};

static const vmm_region_ops fw_cfg_dma_ops = {
  .read = fw_cfg_dma_read,
  .write = fw_cfg_dma_write,
};

static void
fw_cfg_reset (vmm_device *dev)
{
  fw_cfg *cfg = (fw_cfg *) dev;
  memset (&cfg->s, 0, sizeof cfg->s);
}

static void
fw_cfg_save (vmm_device *dev, GByteArray *out)
{
  fw_cfg *cfg = (fw_cfg *) dev;
  g_byte_array_append (out, (guint8 *) &cfg->s, sizeof cfg->s);
}

static gboolean
fw_cfg_load (vmm_device *dev, const uint8_t *data, size_t len, GError **error)
{
  fw_cfg *cfg = (fw_cfg *) dev;
  if (len != sizeof cfg->s)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "fw_cfg state is %zu bytes, expected %zu", len,
                   sizeof cfg->s);
      return FALSE;
    }
  memcpy (&cfg->s, data, len);
  return TRUE;
}

static const vmm_device_ops fw_cfg_ops = {
  .reset = fw_cfg_reset,
  .save_state = fw_cfg_save,
  .load_state = fw_cfg_load,
};

fw_cfg *
fw_cfg_create (const vmm_guest_memory *mem)
{
  fw_cfg *cfg = g_new0 (fw_cfg, 1);
  vmm_device_init (&cfg->dev, "fw_cfg", &fw_cfg_ops);
  cfg->mem = mem;
  cfg->items = g_array_new (FALSE, TRUE, sizeof (fw_cfg_item));
  cfg->next_file_key = FW_CFG_FILE_FIRST;
  fw_cfg_add_raw (cfg, FW_CFG_SIGNATURE, "QEMU", 4);
  fw_cfg_add_u32 (cfg, FW_CFG_ID, FW_CFG_ID_TRADITIONAL | FW_CFG_ID_DMA);
  fw_cfg_rebuild_dir (cfg);
  return cfg;
}

vmm_device *
fw_cfg_device (fw_cfg *cfg)
{
  return &cfg->dev;
}

gboolean
fw_cfg_attach (fw_cfg *cfg, vmm_bus *pio, GError **error)
{
  return vmm_bus_register (pio, FW_CFG_PORT_SELECTOR, 2, &cfg->dev,
                           &fw_cfg_io_ops, cfg, error)
         && vmm_bus_register (pio, FW_CFG_PORT_DMA, 8, &cfg->dev,
                              &fw_cfg_dma_ops, cfg, error);
}

void
fw_cfg_free (fw_cfg *cfg)
{
  if (!cfg)
    return;
  for (guint i = 0; i < cfg->items->len; i++)
    g_bytes_unref (g_array_index (cfg->items, fw_cfg_item, i).data);
  g_array_unref (cfg->items);
  g_mutex_clear (&cfg->dev.lock);
  g_free (cfg);
}
