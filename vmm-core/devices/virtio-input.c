/* virtio-input tablet (virtio 1.2, 5.8). Behaviour: see virtio-input.h. */
#include "vmm-core/devices/virtio-input.h"

#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/devstate.h"

#define TABLET_NAME "Vessel Tablet"
#define TABLET_SERIAL "vessel-tablet"
#define TABLET_VENDOR 0x0627
#define TABLET_PRODUCT 0x0003
#define TABLET_VERSION 1
#define CFG_SELECT 0
#define CFG_SUBSEL 1
#define CFG_SIZE 2
#define CFG_UNION_BYTES 128
#define TABLET_BUTTONS 5

typedef struct input_event {
  uint16_t type;
  uint16_t code;
  int32_t value;
} input_event;

/* Guest-visible state: what save_state and load_state walk (the
 * transport's own is its blob). */
typedef struct input_regs {
  uint8_t select;
  uint8_t subsel;
  /* Host events not yet in a guest buffer: a ring of whole batches. */
  input_event pending[VIRTIO_INPUT_PENDING_MAX];
  unsigned head;
  unsigned count;
  unsigned buttons; /* as last reported to the driver */
} input_regs;

struct virtio_input {
  vmm_device dev;
  vmm_virtio_pci *vp;
  GMainContext *io;
  GSource *flush_source; /* a flush queued on @io, under the lock */
  input_regs r;
};

static const uint16_t button_codes[TABLET_BUTTONS] = {
  VIRTIO_INPUT_BTN_LEFT, VIRTIO_INPUT_BTN_RIGHT, VIRTIO_INPUT_BTN_MIDDLE,
  VIRTIO_INPUT_BTN_SIDE, VIRTIO_INPUT_BTN_EXTRA,
};

/* ---- configuration (5.8.4) ---- */

static void
set_bit (uint8_t *bitmap, unsigned bit)
{
  bitmap[bit / 8] |= (uint8_t) (1u << (bit % 8));
}

/* The union for the current select/subsel; returns its size. */
static uint8_t
config_payload (const input_regs *r, uint8_t *u)
{
  switch (r->select)
    {
    case VIRTIO_INPUT_CFG_ID_NAME:
      if (r->subsel)
        return 0;
      memcpy (u, TABLET_NAME, strlen (TABLET_NAME));
      return (uint8_t) strlen (TABLET_NAME);
    case VIRTIO_INPUT_CFG_ID_SERIAL:
      if (r->subsel)
        return 0;
      memcpy (u, TABLET_SERIAL, strlen (TABLET_SERIAL));
      return (uint8_t) strlen (TABLET_SERIAL);
    case VIRTIO_INPUT_CFG_ID_DEVIDS:
      if (r->subsel)
        return 0;
      vmm_pci_put16 (u, VIRTIO_INPUT_BUS_VIRTUAL);
      vmm_pci_put16 (u + 2, TABLET_VENDOR);
      vmm_pci_put16 (u + 4, TABLET_PRODUCT);
      vmm_pci_put16 (u + 6, TABLET_VERSION);
      return 8;
    case VIRTIO_INPUT_CFG_PROP_BITS:
      return 0;
    case VIRTIO_INPUT_CFG_EV_BITS:
      switch (r->subsel)
        {
        case VIRTIO_INPUT_EV_KEY:
          for (unsigned i = 0; i < TABLET_BUTTONS; i++)
            set_bit (u, button_codes[i]);
          return VIRTIO_INPUT_BTN_EXTRA / 8 + 1;
        case VIRTIO_INPUT_EV_REL:
          set_bit (u, VIRTIO_INPUT_REL_WHEEL);
          return VIRTIO_INPUT_REL_WHEEL / 8 + 1;
        case VIRTIO_INPUT_EV_ABS:
          set_bit (u, VIRTIO_INPUT_ABS_X);
          set_bit (u, VIRTIO_INPUT_ABS_Y);
          return 1;
        default:
          return 0;
        }
    case VIRTIO_INPUT_CFG_ABS_INFO:
      if (r->subsel != VIRTIO_INPUT_ABS_X && r->subsel != VIRTIO_INPUT_ABS_Y)
        return 0;
      /* virtio_input_absinfo: le32 min, max, fuzz, flat, res. */
      vmm_pci_put32 (u, 0);
      vmm_pci_put32 (u + 4, VIRTIO_INPUT_ABS_MAX);
      return 20;
    default:
      return 0;
    }
}

static void
input_get_config (void *opaque, uint8_t *c)
{
  virtio_input *vi = opaque;
  memset (c, 0, VIRTIO_INPUT_CONFIG_LEN);
  c[CFG_SELECT] = vi->r.select;
  c[CFG_SUBSEL] = vi->r.subsel;
  c[CFG_SIZE] = config_payload (&vi->r, c + VIRTIO_INPUT_CONFIG_PAYLOAD);
}

static void
input_set_config (void *opaque, unsigned offset, const uint8_t *data,
                  unsigned len)
{
  virtio_input *vi = opaque;
  for (unsigned i = 0; i < len; i++)
    {
      if (offset + i == CFG_SELECT)
        vi->r.select = data[i];
      else if (offset + i == CFG_SUBSEL)
        vi->r.subsel = data[i];
    }
}

/* ---- events (5.8.6) ---- */

static void
pending_drop_batch (input_regs *r)
{
  while (r->count)
    {
      input_event e = r->pending[r->head];
      r->head = (r->head + 1) % VIRTIO_INPUT_PENDING_MAX;
      r->count--;
      if (e.type == VIRTIO_INPUT_EV_SYN && e.code == VIRTIO_INPUT_SYN_REPORT)
        return;
    }
}

static void
pending_push_batch (input_regs *r, const input_event *batch, unsigned n)
{
  g_assert (n <= VIRTIO_INPUT_PENDING_MAX);
  while (VIRTIO_INPUT_PENDING_MAX - r->count < n)
    pending_drop_batch (r);
  for (unsigned i = 0; i < n; i++)
    {
      r->pending[(r->head + r->count) % VIRTIO_INPUT_PENDING_MAX] = batch[i];
      r->count++;
    }
}

/* Writes @e into the chain at @head; false (the device then needs a reset)
 * when the chain is malformed or has no room for an event. */
static bool
write_event (virtio_input *vi, vmm_virtqueue *vq, uint16_t head,
             const input_event *e)
{
  uint8_t bytes[VIRTIO_INPUT_EVENT_BYTES];
  vmm_pci_put16 (bytes, e->type);
  vmm_pci_put16 (bytes + 2, e->code);
  vmm_pci_put32 (bytes + 4, (uint32_t) e->value);

  g_autoptr (GError) error = NULL;
  vmm_vq_chain it;
  vmm_vq_seg seg;
  unsigned done = 0;
  int rc;
  vmm_vq_chain_init (&it, vq, head);
  while (done < sizeof bytes && (rc = vmm_vq_chain_next (&it, &seg, &error)) > 0)
    {
      if (!seg.writable)
        {
          vmm_virtio_pci_needs_reset (vi->vp, "eventq head %u: a "
                                      "device-readable buffer", head);
          return false;
        }
      unsigned n = MIN (seg.len, sizeof bytes - done);
      memcpy (seg.host, bytes + done, n);
      done += n;
    }
  if (error)
    {
      vmm_virtio_pci_needs_reset (vi->vp, "eventq head %u: %s", head,
                                  error->message);
      return false;
    }
  if (done < sizeof bytes)
    {
      vmm_virtio_pci_needs_reset (vi->vp, "eventq head %u: %u bytes, an "
                                  "event takes %u", head, done,
                                  VIRTIO_INPUT_EVENT_BYTES);
      return false;
    }
  vmm_vq_push (vq, head, sizeof bytes);
  return true;
}

/* Moves pending events into the buffers the driver has posted. */
static void
flush_events (virtio_input *vi)
{
  input_regs *r = &vi->r;
  vmm_virtqueue *vq = vmm_virtio_pci_queue (vi->vp, VIRTIO_INPUT_EVENTQ);
  if (!vq)
    return;
  bool pushed = false;
  while (r->count)
    {
      g_autoptr (GError) error = NULL;
      uint16_t head;
      int rc = vmm_vq_pop (vq, &head, &error);
      if (rc < 0)
        {
          vmm_virtio_pci_needs_reset (vi->vp, "eventq: %s", error->message);
          return;
        }
      if (rc == 0)
        break;
      if (!write_event (vi, vq, head, &r->pending[r->head]))
        return;
      pushed = true;
      r->head = (r->head + 1) % VIRTIO_INPUT_PENDING_MAX;
      r->count--;
    }
  if (pushed)
    vmm_virtio_pci_queue_interrupt (vi->vp, VIRTIO_INPUT_EVENTQ);
}

/* The driver's LED and similar feedback: returned unread. */
static void
drain_status (virtio_input *vi)
{
  vmm_virtqueue *vq = vmm_virtio_pci_queue (vi->vp, VIRTIO_INPUT_STATUSQ);
  if (!vq)
    return;
  bool pushed = false;
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      uint16_t head;
      int rc = vmm_vq_pop (vq, &head, &error);
      if (rc == 0)
        break;
      if (rc > 0)
        {
          g_autoptr (GArray) segs = g_array_new (FALSE, FALSE,
                                                 sizeof (vmm_vq_seg));
          if (vmm_vq_chain_collect (vq, head, segs, &error))
            {
              vmm_vq_push (vq, head, 0);
              pushed = true;
              continue;
            }
        }
      vmm_virtio_pci_needs_reset (vi->vp, "statusq: %s", error->message);
      return;
    }
  if (pushed)
    vmm_virtio_pci_queue_interrupt (vi->vp, VIRTIO_INPUT_STATUSQ);
}

static void
input_queue_notify (void *opaque, unsigned index)
{
  virtio_input *vi = opaque;
  if (index == VIRTIO_INPUT_EVENTQ)
    flush_events (vi);
  else if (index == VIRTIO_INPUT_STATUSQ)
    drain_status (vi);
}

static void
input_virtio_reset (void *opaque)
{
  virtio_input *vi = opaque;
  vi->r.head = vi->r.count = 0;
  vi->r.buttons = 0;
}

static const vmm_virtio_device_ops input_virtio_ops = {
  .get_config = input_get_config,
  .set_config = input_set_config,
  .queue_notify = input_queue_notify,
  .reset = input_virtio_reset,
};

/* ---- host side ---- */

/* Host events are delivered on the I/O thread, like every queue's work. */
static gboolean
flush_on_io_thread (gpointer data)
{
  virtio_input *vi = data;
  g_mutex_lock (&vi->dev.lock);
  g_clear_pointer (&vi->flush_source, g_source_unref);
  flush_events (vi);
  g_mutex_unlock (&vi->dev.lock);
  return G_SOURCE_REMOVE;
}

bool
virtio_input_ready (virtio_input *vi)
{
  g_mutex_lock (&vi->dev.lock);
  bool ready = vmm_virtio_pci_queue (vi->vp, VIRTIO_INPUT_EVENTQ) != NULL;
  g_mutex_unlock (&vi->dev.lock);
  return ready;
}

bool
virtio_input_tablet_event (virtio_input *vi, unsigned x, unsigned y,
                           int wheel, unsigned buttons)
{
  input_event batch[2 + TABLET_BUTTONS + 2];
  unsigned n = 0;
  batch[n++] = (input_event){ VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X,
                              (int32_t) MIN (x, VIRTIO_INPUT_ABS_MAX) };
  batch[n++] = (input_event){ VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_Y,
                              (int32_t) MIN (y, VIRTIO_INPUT_ABS_MAX) };

  g_mutex_lock (&vi->dev.lock);
  input_regs *r = &vi->r;
  if (!vmm_virtio_pci_queue (vi->vp, VIRTIO_INPUT_EVENTQ))
    {
      g_mutex_unlock (&vi->dev.lock);
      return false;
    }
  for (unsigned i = 0; i < TABLET_BUTTONS; i++)
    if ((buttons ^ r->buttons) & (1u << i))
      batch[n++] = (input_event){ VIRTIO_INPUT_EV_KEY, button_codes[i],
                                  (buttons >> i) & 1 };
  if (wheel)
    batch[n++] = (input_event){ VIRTIO_INPUT_EV_REL, VIRTIO_INPUT_REL_WHEEL,
                                -CLAMP (wheel, -127, 127) };
  batch[n++] = (input_event){ VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT,
                              0 };
  r->buttons = buttons & ((1u << TABLET_BUTTONS) - 1);
  pending_push_batch (r, batch, n);
  if (!vi->flush_source)
    {
      vi->flush_source = g_idle_source_new ();
      g_source_set_priority (vi->flush_source, G_PRIORITY_DEFAULT);
      g_source_set_callback (vi->flush_source, flush_on_io_thread, vi, NULL);
      g_source_attach (vi->flush_source, vi->io);
    }
  g_mutex_unlock (&vi->dev.lock);
  return true;
}

unsigned
virtio_input_pending (virtio_input *vi)
{
  g_mutex_lock (&vi->dev.lock);
  unsigned n = vi->r.count;
  g_mutex_unlock (&vi->dev.lock);
  return n;
}

/* ---- vmm_device ---- */

static void
input_reset (vmm_device *dev)
{
  virtio_input *vi = (virtio_input *) dev;
  vmm_virtio_pci_reset (vi->vp);
  vi->r.select = vi->r.subsel = 0;
}

#define INPUT_STATE_TAG VMM_STATE_TAG ('V', 'I', 'N', 'P')
#define INPUT_STATE_VERSION 1

static void
input_save_state (vmm_device *dev, GByteArray *out)
{
  virtio_input *vi = (virtio_input *) dev;
  const input_regs *r = &vi->r;
  g_autoptr (GByteArray) t = g_byte_array_new ();
  vmm_virtio_pci_save (vi->vp, t);
  vmm_state_put_header (out, INPUT_STATE_TAG, INPUT_STATE_VERSION);
  vmm_state_put_u32 (out, t->len);
  vmm_state_put_bytes (out, t->data, t->len);
  vmm_state_put_u8 (out, r->select);
  vmm_state_put_u8 (out, r->subsel);
  vmm_state_put_u8 (out, (uint8_t) r->buttons);
  vmm_state_put_u16 (out, (uint16_t) r->count);
  for (unsigned i = 0; i < r->count; i++)
    {
      const input_event *e
          = &r->pending[(r->head + i) % VIRTIO_INPUT_PENDING_MAX];
      vmm_state_put_u16 (out, e->type);
      vmm_state_put_u16 (out, e->code);
      vmm_state_put_u32 (out, (uint32_t) e->value);
    }
}

static gboolean
input_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                  GError **error)
{
  virtio_input *vi = (virtio_input *) dev;
  vmm_state_reader rd;
  if (!vmm_state_begin (&rd, data, len, INPUT_STATE_TAG, INPUT_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  uint32_t tlen = vmm_state_get_u32 (&rd);
  const uint8_t *tdata = vmm_state_take (&rd, tlen);
  input_regs r = { 0 };
  r.select = vmm_state_get_u8 (&rd);
  r.subsel = vmm_state_get_u8 (&rd);
  r.buttons = vmm_state_get_u8 (&rd);
  r.count = vmm_state_get_u16 (&rd);
  vmm_state_check (&rd, r.count <= VIRTIO_INPUT_PENDING_MAX, "event count");
  vmm_state_check (&rd, r.buttons < (1u << TABLET_BUTTONS), "buttons");
  for (unsigned i = 0; i < r.count && !rd.bad && !rd.invalid; i++)
    {
      r.pending[i].type = vmm_state_get_u16 (&rd);
      r.pending[i].code = vmm_state_get_u16 (&rd);
      r.pending[i].value = (int32_t) vmm_state_get_u32 (&rd);
    }
  if (!vmm_state_end (&rd, dev->name, error)
      || !vmm_virtio_pci_load (vi->vp, tdata, tlen, error))
    return FALSE;
  vi->r = r;
  return TRUE;
}

static void
input_destroy (vmm_device *dev)
{
  virtio_input *vi = (virtio_input *) dev;
  /* The I/O thread no longer runs (or is the caller's): a queued flush is
   * dropped with the device. */
  if (vi->flush_source)
    {
      g_source_destroy (vi->flush_source);
      g_source_unref (vi->flush_source);
    }
  vmm_virtio_pci_free (vi->vp);
  g_mutex_clear (&dev->lock);
  g_free (vi);
}

static const vmm_device_ops input_device_ops = {
  .reset = input_reset,
  .save_state = input_save_state,
  .load_state = input_load_state,
  .destroy = input_destroy,
};

virtio_input *
virtio_input_tablet_create (const vmm_guest_memory *mem, GMainContext *io,
                            const vmm_msi_host *msi,
                            const vmm_ioeventfd_host *ioev, GError **error)
{
  virtio_input *vi = g_new0 (virtio_input, 1);
  vmm_device_init (&vi->dev, "virtio-tablet", &input_device_ops);
  vi->io = io;
  vmm_virtio_pci_info info = {
    .device_type = VIRTIO_ID_INPUT,
    .class_code = VIRTIO_INPUT_CLASS,
    .features = 0,
    .num_queues = 2,
    .queue_size = VIRTIO_INPUT_QUEUE_SIZE,
    .config_len = VIRTIO_INPUT_CONFIG_LEN,
  };
  vi->vp = vmm_virtio_pci_new (&vi->dev, mem, io, msi, ioev, &info,
                               &input_virtio_ops, vi, error);
  if (!vi->vp)
    {
      g_mutex_clear (&vi->dev.lock);
      g_free (vi);
      return NULL;
    }
  return vi;
}

vmm_device *
virtio_input_device (virtio_input *vi)
{
  return &vi->dev;
}

vmm_pci_device *
virtio_input_pci (virtio_input *vi)
{
  return vmm_virtio_pci_pci (vi->vp);
}

gboolean
virtio_input_attach (virtio_input *vi, vmm_pci_host *host, unsigned devfn,
                     GError **error)
{
  return vmm_virtio_pci_attach (vi->vp, host, devfn, error);
}
