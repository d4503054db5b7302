/* Debug console port. It has no state of its own; save/load carry only a
 * header so that the generic state test treats it like every device. */
#include "vmm-core/devices/debugcon.h"

#include "vmm-core/devices/devstate.h"

struct debugcon {
  vmm_device dev;
  vmm_chardev chr;
  vmm_bus *pio;
  uint16_t port;
  bool attached;
};

static uint64_t
debugcon_read (void *opaque, const vmm_access *a)
{
  return DEBUGCON_READBACK;
}

static void
debugcon_write (void *opaque, const vmm_access *a, uint64_t value)
{
  debugcon *dc = opaque;
  uint8_t byte = value & 0xff; /* wider writes: the low byte, like QEMU */
  vmm_chardev_write (&dc->chr, &byte, 1);
}

static const vmm_region_ops debugcon_region_ops = {
  .read = debugcon_read,
  .write = debugcon_write,
};

#define DEBUGCON_STATE_TAG VMM_STATE_TAG ('D', 'C', 'O', 'N')
#define DEBUGCON_STATE_VERSION 1

static void
debugcon_save_state (vmm_device *dev, GByteArray *out)
{
  vmm_state_put_header (out, DEBUGCON_STATE_TAG, DEBUGCON_STATE_VERSION);
}

static gboolean
debugcon_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                     GError **error)
{
  vmm_state_reader rd;
  if (!vmm_state_begin (&rd, data, len, DEBUGCON_STATE_TAG,
                        DEBUGCON_STATE_VERSION, dev->name, error))
    return FALSE;
  return vmm_state_end (&rd, dev->name, error);
}

static void
debugcon_destroy (vmm_device *dev)
{
  debugcon *dc = (debugcon *) dev;
  if (dc->attached)
    vmm_bus_unregister (dc->pio, dc->port, dc);
  g_mutex_clear (&dev->lock);
  g_free (dc);
}

static const vmm_device_ops debugcon_device_ops = {
  .save_state = debugcon_save_state,
  .load_state = debugcon_load_state,
  .destroy = debugcon_destroy,
};

debugcon *
debugcon_create (const vmm_chardev *chr)
{
  debugcon *dc = g_new0 (debugcon, 1);
  vmm_device_init (&dc->dev, "debugcon", &debugcon_device_ops);
  if (chr)
    dc->chr = *chr;
  return dc;
}

vmm_device *
debugcon_device (debugcon *dc)
{
  return &dc->dev;
}

gboolean
debugcon_attach (debugcon *dc, vmm_bus *pio, uint16_t port, GError **error)
{
  g_return_val_if_fail (!dc->attached, FALSE);
  if (!vmm_bus_register (pio, port, 1, &dc->dev, &debugcon_region_ops, dc,
                         error))
    return FALSE;
  dc->pio = pio;
  dc->port = port;
  dc->attached = true;
  return TRUE;
}
