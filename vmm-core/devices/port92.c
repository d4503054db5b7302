/* System Control Port A. Semantics: IBM PS/2 Hardware Interface Technical
 * Reference, "System Control Port A (hex 0092)": bit 0 alternate hot reset
 * (writing 1 pulses the CPU reset), bit 1 alternate gate A20, bit 3
 * CMOS/password lock, bits 6-7 fixed disk activity light. */
#include "vmm-core/devices/port92.h"

#include "vmm-core/devices/devstate.h"

enum {
  P92_RESET = 0x01,
  P92_A20 = 0x02,
};

struct port92 {
  vmm_device dev;
  vmm_reset_request_fn reset_request;
  vmm_a20_changed_fn a20_changed;
  void *opaque;
  vmm_bus *pio;
  uint16_t port;
  bool attached;
  uint8_t value; /* guest-visible state: bits 7:1 as written */
};

static uint64_t
port92_read (void *opaque, const vmm_access *a)
{
  return ((port92 *) opaque)->value | (a->size > 1 ? ~0ull << 8 : 0);
}

static void
port92_write (void *opaque, const vmm_access *a, uint64_t value)
{
  port92 *p = opaque;
  uint8_t old = p->value;
  p->value = value & 0xff & ~P92_RESET;
  if (((old ^ p->value) & P92_A20) && p->a20_changed)
    p->a20_changed (p->opaque, p->value & P92_A20);
  if ((value & P92_RESET) && p->reset_request)
    p->reset_request (p->opaque, VMM_RESET_CPU);
}

static const vmm_region_ops port92_region_ops = {
  .read = port92_read,
  .write = port92_write,
};

static void
port92_reset (vmm_device *dev)
{
  /* Power-on: 0; the board owns the A20 state across reset. */
  ((port92 *) dev)->value = 0;
}

#define PORT92_STATE_TAG VMM_STATE_TAG ('P', '9', '2', ' ')
#define PORT92_STATE_VERSION 1

static void
port92_save_state (vmm_device *dev, GByteArray *out)
{
  vmm_state_put_header (out, PORT92_STATE_TAG, PORT92_STATE_VERSION);
  vmm_state_put_u8 (out, ((port92 *) dev)->value);
}

static gboolean
port92_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                   GError **error)
{
  vmm_state_reader rd;
  if (!vmm_state_begin (&rd, data, len, PORT92_STATE_TAG, PORT92_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  uint8_t v = vmm_state_get_u8 (&rd);
  vmm_state_check (&rd, !(v & P92_RESET), "value");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;
  ((port92 *) dev)->value = v;
  return TRUE;
}

static void
port92_destroy (vmm_device *dev)
{
  port92 *p = (port92 *) dev;
  if (p->attached)
    vmm_bus_unregister (p->pio, p->port, p);
  g_mutex_clear (&dev->lock);
  g_free (p);
}

static const vmm_device_ops port92_device_ops = {
  .reset = port92_reset,
  .save_state = port92_save_state,
  .load_state = port92_load_state,
  .destroy = port92_destroy,
};

port92 *
port92_create (vmm_reset_request_fn reset_request,
               vmm_a20_changed_fn a20_changed, void *opaque)
{
  port92 *p = g_new0 (port92, 1);
  vmm_device_init (&p->dev, "port92", &port92_device_ops);
  p->reset_request = reset_request;
  p->a20_changed = a20_changed;
  p->opaque = opaque;
  return p;
}

vmm_device *
port92_device (port92 *p)
{
  return &p->dev;
}

gboolean
port92_attach (port92 *p, vmm_bus *pio, uint16_t port, GError **error)
{
  g_return_val_if_fail (!p->attached, FALSE);
  if (!vmm_bus_register (pio, port, 1, &p->dev, &port92_region_ops, p, error))
    return FALSE;
  p->pio = pio;
  p->port = port;
  p->attached = true;
  return TRUE;
}

bool
port92_a20 (port92 *p)
{
  g_mutex_lock (&p->dev.lock);
  bool on = p->value & P92_A20;
  g_mutex_unlock (&p->dev.lock);
  return on;
}
