/* virtio PCI transport, modern only (virtio 1.2, 4.1). Layout and threading:
 * see virtio-pci.h. */
#include "vmm-core/devices/virtio-pci.h"

#include <errno.h>
#include <glib-unix.h>
#include <gio/gio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm-core/devices/devstate.h"

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define MSIX_CTRL_ENABLE 0x80 /* in the high byte of message control */
#define MSIX_CTRL_MASKALL 0x40
#define MSIX_ENTRY_MASKED 1u

/* Features the transport adds to every device's. */
#define TRANSPORT_FEATURES                                                     \
  (VIRTIO_BIT (VIRTIO_F_VERSION_1) | VIRTIO_BIT (VIRTIO_F_RING_INDIRECT_DESC) \
   | VIRTIO_BIT (VIRTIO_F_RING_EVENT_IDX))

typedef struct vpci_queue {
  vmm_virtio_pci *vp;
  unsigned index;
  vmm_virtqueue vq;
  /* Common-config registers of this queue. */
  uint16_t size;
  uint16_t vector;
  bool enabled;
  uint64_t desc, driver, device;
  int fd; /* notifications: MMIO handler and ioeventfd both signal it */
  GSource *watch;
  bool ioeventfd; /* registered at ioeventfd_addr */
  uint64_t ioeventfd_addr;
} vpci_queue;

typedef struct vpci_vector {
  int fd;
  int handle; /* vmm_msi_host handle, -1 while unbound */
  uint64_t bound_addr;
  uint32_t bound_data;
} vpci_vector;

struct vmm_virtio_pci {
  vmm_device *dev;
  vmm_pci_device pci;
  const vmm_guest_memory *mem;
  GMainContext *io;
  const vmm_msi_host *msi;
  const vmm_ioeventfd_host *ioev;
  vmm_virtio_pci_info info;
  const vmm_virtio_device_ops *ops;
  void *opaque;
  uint64_t device_features;

  /* Guest-visible state. */
  uint32_t dfselect;
  uint32_t gfselect;
  uint64_t driver_features;
  uint8_t status;
  uint8_t config_gen;
  uint8_t isr;
  uint16_t msix_config;
  uint16_t queue_select;
  vpci_queue *queues;
  unsigned n_vectors; /* 0 without MSI-X */
  uint8_t *msix_table; /* n_vectors * 16 bytes */
  uint64_t msix_pba;
  vpci_vector *vectors;

  uint64_t bar_addr; /* where BAR 4 is mapped, or VMM_PCI_UNMAPPED */
  unsigned msix_cap;
  unsigned pcicfg_cap;
  bool logged; /* one guest error logged at message level */
};

/* ---- interrupts ---- */

static bool
msix_enabled (vmm_virtio_pci *vp)
{
  return vp->n_vectors
         && (vp->pci.config[vp->msix_cap + 3] & MSIX_CTRL_ENABLE);
}

static bool
msix_function_masked (vmm_virtio_pci *vp)
{
  return vp->pci.config[vp->msix_cap + 3] & MSIX_CTRL_MASKALL;
}

static uint8_t *
msix_entry (vmm_virtio_pci *vp, unsigned v)
{
  return vp->msix_table + 16 * v;
}

static bool
msix_vector_masked (vmm_virtio_pci *vp, unsigned v)
{
  return msix_function_masked (vp)
         || (vmm_pci_get32 (msix_entry (vp, v) + 12) & MSIX_ENTRY_MASKED);
}

static void
signal_fd (int fd)
{
  uint64_t one = 1;
  ssize_t r;
  do
    r = write (fd, &one, sizeof one);
  while (r < 0 && errno == EINTR);
  /* EAGAIN: the counter is saturated, a wake-up is pending anyway. */
}

static void
drain_fd (int fd)
{
  uint64_t v;
  ssize_t r;
  do
    r = read (fd, &v, sizeof v);
  while (r < 0 && errno == EINTR);
}

static void
vector_unbind (vmm_virtio_pci *vp, unsigned v)
{
  vpci_vector *vec = &vp->vectors[v];
  if (vec->handle >= 0 && vp->msi && vp->msi->vector_remove)
    vp->msi->vector_remove (vp->msi->opaque, vec->handle);
  vec->handle = -1;
  drain_fd (vec->fd);
}

static void
msix_fire (vmm_virtio_pci *vp, unsigned v)
{
  vpci_vector *vec = &vp->vectors[v];
  const uint8_t *e = msix_entry (vp, v);
  uint64_t addr = vmm_pci_get32 (e) | (uint64_t) vmm_pci_get32 (e + 4) << 32;
  uint32_t data = vmm_pci_get32 (e + 8);
  if (vec->handle < 0)
    {
      g_autoptr (GError) error = NULL;
      vec->handle = vp->msi->vector_add (vp->msi->opaque, addr, data, vec->fd,
                                         &error);
      if (vec->handle < 0)
        {
          g_message ("%s: MSI-X vector %u not routed: %s", vp->dev->name, v,
                     error ? error->message : "unknown error");
          return;
        }
    }
  else if (vec->bound_addr != addr || vec->bound_data != data)
    {
      if (vp->msi->vector_update)
        vp->msi->vector_update (vp->msi->opaque, vec->handle, addr, data);
    }
  vec->bound_addr = addr;
  vec->bound_data = data;
  signal_fd (vec->fd);
}

/* Sends what is pending on vectors that are no longer masked. */
static void
msix_deliver_pending (vmm_virtio_pci *vp)
{
  if (!msix_enabled (vp))
    return;
  for (unsigned v = 0; v < vp->n_vectors; v++)
    if ((vp->msix_pba >> v & 1) && !msix_vector_masked (vp, v))
      {
        vp->msix_pba &= ~(UINT64_C (1) << v);
        msix_fire (vp, v);
      }
}

static void
raise_interrupt (vmm_virtio_pci *vp, uint16_t vector, uint8_t isr_bit)
{
  if (isr_bit == VIRTIO_ISR_CONFIG)
    vp->isr |= isr_bit;
  if (msix_enabled (vp))
    {
      if (vector >= vp->n_vectors)
        return; /* VIRTIO_MSI_NO_VECTOR: the driver wants none */
      if (msix_vector_masked (vp, vector))
        vp->msix_pba |= UINT64_C (1) << vector;
      else
        msix_fire (vp, vector);
      return;
    }
  vp->isr |= isr_bit;
  vmm_pci_set_intx (&vp->pci, true);
}

/* ---- notifications ---- */

static uint64_t
notify_addr (vmm_virtio_pci *vp, unsigned q)
{
  return vp->bar_addr + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q;
}

static void
ioeventfd_remove (vmm_virtio_pci *vp, vpci_queue *q)
{
  if (!q->ioeventfd)
    return;
  vp->ioev->remove (vp->ioev->opaque, false, q->ioeventfd_addr, 2, q->fd);
  q->ioeventfd = false;
}

static void
ioeventfd_add (vmm_virtio_pci *vp, vpci_queue *q)
{
  if (q->ioeventfd || !vp->ioev || !q->enabled
      || vp->bar_addr == VMM_PCI_UNMAPPED)
    return;
  g_autoptr (GError) error = NULL;
  uint64_t addr = notify_addr (vp, q->index);
  /* The driver writes the 16-bit queue index (4.1.5.2). On failure the
   * write still reaches the bus handler, one exit slower. */
  if (vp->ioev->add (vp->ioev->opaque, false, addr, 2, q->fd, &error))
    {
      q->ioeventfd = true;
      q->ioeventfd_addr = addr;
    }
  else
    g_info ("%s: queue %u notifications exit to user space: %s",
            vp->dev->name, q->index, error ? error->message : "");
}

static bool
device_running (vmm_virtio_pci *vp)
{
  return (vp->status & VIRTIO_STATUS_DRIVER_OK)
         && !(vp->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static gboolean
queue_fd_ready (int fd, GIOCondition cond, gpointer data)
{
  vpci_queue *q = data;
  vmm_virtio_pci *vp = q->vp;
  drain_fd (fd);
  g_mutex_lock (&vp->dev->lock);
  if (q->enabled && device_running (vp) && vp->ops->queue_notify)
    vp->ops->queue_notify (vp->opaque, q->index);
  g_mutex_unlock (&vp->dev->lock);
  return G_SOURCE_CONTINUE;
}

/* ---- reset ---- */

static void
queue_reset (vmm_virtio_pci *vp, vpci_queue *q)
{
  ioeventfd_remove (vp, q);
  vmm_vq_reset (&q->vq);
  q->size = vp->info.queue_size;
  q->vector = VIRTIO_MSI_NO_VECTOR;
  q->enabled = false;
  q->desc = q->driver = q->device = 0;
}

/* Device reset (device_status 0, 4.1.4.3.1): everything but the PCI
 * function and its MSI-X table. */
static void
virtio_reset (vmm_virtio_pci *vp)
{
  if (vp->ops->reset)
    vp->ops->reset (vp->opaque);
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    queue_reset (vp, &vp->queues[i]);
  vp->dfselect = vp->gfselect = 0;
  vp->driver_features = 0;
  vp->status = 0;
  vp->isr = 0;
  vp->msix_config = VIRTIO_MSI_NO_VECTOR;
  vp->queue_select = 0;
  vmm_pci_set_intx (&vp->pci, false);
}

static void
msix_reset (vmm_virtio_pci *vp)
{
  for (unsigned v = 0; v < vp->n_vectors; v++)
    {
      vector_unbind (vp, v);
      memset (msix_entry (vp, v), 0, 16);
      vmm_pci_put32 (msix_entry (vp, v) + 12, MSIX_ENTRY_MASKED);
    }
  vp->msix_pba = 0;
  if (vp->n_vectors)
    vp->pci.config[vp->msix_cap + 3] = 0;
}

void
vmm_virtio_pci_reset (vmm_virtio_pci *vp)
{
  virtio_reset (vp);
  vmm_pci_device_reset (&vp->pci);
  msix_reset (vp);
}

void
vmm_virtio_pci_needs_reset (vmm_virtio_pci *vp, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (vp->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
    return;
  /* The first at message level; a driver that keeps failing stays quiet. */
  if (!vp->logged)
    g_message ("%s: guest error, device needs reset: %s", vp->dev->name, msg);
  else
    g_info ("%s: guest error, device needs reset: %s", vp->dev->name, msg);
  vp->logged = true;
  vp->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
  if (vp->status & VIRTIO_STATUS_DRIVER_OK)
    raise_interrupt (vp, vp->msix_config, VIRTIO_ISR_CONFIG);
}

/* ---- common configuration ---- */

static void
common_image (vmm_virtio_pci *vp, uint8_t *img)
{
  memset (img, 0, VIRTIO_PCI_COMMON_LEN);
  vmm_pci_put32 (img + VIRTIO_PCI_COMMON_DFSELECT, vp->dfselect);
  if (vp->dfselect < 2)
    vmm_pci_put32 (img + VIRTIO_PCI_COMMON_DF,
                   (uint32_t) (vp->device_features >> (32 * vp->dfselect)));
  vmm_pci_put32 (img + VIRTIO_PCI_COMMON_GFSELECT, vp->gfselect);
  if (vp->gfselect < 2)
    vmm_pci_put32 (img + VIRTIO_PCI_COMMON_GF,
                   (uint32_t) (vp->driver_features >> (32 * vp->gfselect)));
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_MSIX, vp->msix_config);
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_NUMQ, vp->info.num_queues);
  img[VIRTIO_PCI_COMMON_STATUS] = vp->status;
  img[VIRTIO_PCI_COMMON_CFGGENERATION] = vp->config_gen;
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_Q_SELECT, vp->queue_select);
  if (vp->queue_select >= vp->info.num_queues)
    return; /* size 0: no such queue */
  const vpci_queue *q = &vp->queues[vp->queue_select];
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_Q_SIZE, q->size);
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_Q_MSIX, q->vector);
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_Q_ENABLE, q->enabled);
  vmm_pci_put16 (img + VIRTIO_PCI_COMMON_Q_NOFF, vp->queue_select);
  for (unsigned i = 0; i < 2; i++)
    {
      vmm_pci_put32 (img + VIRTIO_PCI_COMMON_Q_DESC + 4 * i,
                     (uint32_t) (q->desc >> (32 * i)));
      vmm_pci_put32 (img + VIRTIO_PCI_COMMON_Q_DRIVER + 4 * i,
                     (uint32_t) (q->driver >> (32 * i)));
      vmm_pci_put32 (img + VIRTIO_PCI_COMMON_Q_DEVICE + 4 * i,
                     (uint32_t) (q->device >> (32 * i)));
    }
}

static void
kick_all (vmm_virtio_pci *vp)
{
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    if (vp->queues[i].enabled)
      signal_fd (vp->queues[i].fd);
}

static void
write_status (vmm_virtio_pci *vp, uint8_t v)
{
  if (v == 0)
    {
      virtio_reset (vp);
      return;
    }
  uint8_t old = vp->status;
  /* DEVICE_NEEDS_RESET belongs to the device; FEATURES_OK, once accepted,
   * stays until reset. */
  v = (v & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET)
      | (old & (VIRTIO_STATUS_DEVICE_NEEDS_RESET | VIRTIO_STATUS_FEATURES_OK));
  if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK))
    {
      /* 2.2.2, 6.1: only offered bits, and VERSION_1 for a modern device. */
      if ((vp->driver_features & ~vp->device_features)
          || !(vp->driver_features & VIRTIO_BIT (VIRTIO_F_VERSION_1)))
        v &= ~VIRTIO_STATUS_FEATURES_OK;
    }
  vp->status = v;
  if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK))
    kick_all (vp);
}

static void
enable_queue (vmm_virtio_pci *vp, vpci_queue *q)
{
  g_autoptr (GError) error = NULL;
  bool event_idx = vp->driver_features & VIRTIO_BIT (VIRTIO_F_RING_EVENT_IDX);
  if (q->size > vp->info.queue_size
      || !vmm_vq_setup (&q->vq, q->size, q->desc, q->driver, q->device,
                        event_idx, 0, 0, &error))
    {
      vmm_virtio_pci_needs_reset (vp, "queue %u: %s", q->index,
                                  error ? error->message
                                        : "size above the maximum");
      return;
    }
  q->enabled = true;
  ioeventfd_add (vp, q);
  if (device_running (vp))
    signal_fd (q->fd);
}

static void
common_write_field (vmm_virtio_pci *vp, unsigned field, uint64_t v)
{
  vpci_queue *q = vp->queue_select < vp->info.num_queues
                      ? &vp->queues[vp->queue_select]
                      : NULL;
  bool q_writable = q && !q->enabled;
  switch (field)
    {
    case VIRTIO_PCI_COMMON_DFSELECT:
      vp->dfselect = (uint32_t) v;
      break;
    case VIRTIO_PCI_COMMON_GFSELECT:
      vp->gfselect = (uint32_t) v;
      break;
    case VIRTIO_PCI_COMMON_GF:
      if (vp->gfselect < 2 && !(vp->status & VIRTIO_STATUS_FEATURES_OK))
        {
          unsigned shift = 32 * vp->gfselect;
          vp->driver_features = (vp->driver_features
                                 & ~(UINT64_C (0xffffffff) << shift))
                                | (v & 0xffffffffu) << shift;
        }
      break;
    case VIRTIO_PCI_COMMON_MSIX:
      vp->msix_config = v < vp->n_vectors ? v : VIRTIO_MSI_NO_VECTOR;
      break;
    case VIRTIO_PCI_COMMON_STATUS:
      write_status (vp, (uint8_t) v);
      break;
    case VIRTIO_PCI_COMMON_Q_SELECT:
      vp->queue_select = (uint16_t) v;
      break;
    case VIRTIO_PCI_COMMON_Q_SIZE:
      if (q_writable)
        q->size = (uint16_t) v;
      break;
    case VIRTIO_PCI_COMMON_Q_MSIX:
      if (q)
        q->vector = v < vp->n_vectors ? v : VIRTIO_MSI_NO_VECTOR;
      break;
    case VIRTIO_PCI_COMMON_Q_ENABLE:
      /* Writing 0 is not allowed without VIRTIO_F_RING_RESET (4.1.4.3.2). */
      if (q_writable && v == 1)
        enable_queue (vp, q);
      break;
    case VIRTIO_PCI_COMMON_Q_DESC:
      if (q_writable)
        q->desc = v;
      break;
    case VIRTIO_PCI_COMMON_Q_DRIVER:
      if (q_writable)
        q->driver = v;
      break;
    case VIRTIO_PCI_COMMON_Q_DEVICE:
      if (q_writable)
        q->device = v;
      break;
    }
}

static const struct {
  uint8_t off, size;
} common_fields[] = {
  { VIRTIO_PCI_COMMON_DFSELECT, 4 }, { VIRTIO_PCI_COMMON_GFSELECT, 4 },
  { VIRTIO_PCI_COMMON_GF, 4 },       { VIRTIO_PCI_COMMON_MSIX, 2 },
  { VIRTIO_PCI_COMMON_STATUS, 1 },   { VIRTIO_PCI_COMMON_Q_SELECT, 2 },
  { VIRTIO_PCI_COMMON_Q_SIZE, 2 },   { VIRTIO_PCI_COMMON_Q_MSIX, 2 },
  { VIRTIO_PCI_COMMON_Q_ENABLE, 2 }, { VIRTIO_PCI_COMMON_Q_DESC, 8 },
  { VIRTIO_PCI_COMMON_Q_DRIVER, 8 }, { VIRTIO_PCI_COMMON_Q_DEVICE, 8 },
};

/* Any width at any offset: each field the access touches is updated with
 * the bytes written, keeping the others (so 64-bit fields take two 32-bit
 * halves, as drivers write them). */
static void
common_write (vmm_virtio_pci *vp, unsigned off, unsigned size, uint64_t value)
{
  for (unsigned f = 0; f < G_N_ELEMENTS (common_fields); f++)
    {
      unsigned fo = common_fields[f].off, fs = common_fields[f].size;
      if (off >= fo + fs || off + size <= fo)
        continue;
      uint8_t img[VIRTIO_PCI_COMMON_LEN];
      common_image (vp, img);
      for (unsigned i = 0; i < size; i++)
        if (off + i >= fo && off + i < fo + fs)
          img[off + i] = (value >> (8 * i)) & 0xff;
      uint64_t v = 0;
      for (unsigned i = 0; i < fs; i++)
        v |= (uint64_t) img[fo + i] << (8 * i);
      common_write_field (vp, fo, v);
    }
}

/* ---- BAR 4 ---- */

static uint64_t
bar_read (vmm_virtio_pci *vp, uint64_t off, unsigned size)
{
  uint8_t buf[8] = { 0 };
  if (size > 8)
    return 0;
  if (off < VIRTIO_PCI_COMMON_LEN)
    {
      uint8_t img[VIRTIO_PCI_COMMON_LEN];
      common_image (vp, img);
      for (unsigned i = 0; i < size && off + i < VIRTIO_PCI_COMMON_LEN; i++)
        buf[i] = img[off + i];
    }
  else if (off == VIRTIO_PCI_ISR_OFF)
    {
      buf[0] = vp->isr;
      vp->isr = 0;
      if (!msix_enabled (vp))
        vmm_pci_set_intx (&vp->pci, false);
    }
  else if (off >= VIRTIO_PCI_DEVICE_OFF
           && off < VIRTIO_PCI_DEVICE_OFF + vp->info.config_len)
    {
      g_autofree uint8_t *cfg = g_malloc0 (vp->info.config_len);
      unsigned o = (unsigned) (off - VIRTIO_PCI_DEVICE_OFF);
      if (vp->ops->get_config)
        vp->ops->get_config (vp->opaque, cfg);
      for (unsigned i = 0; i < size && o + i < vp->info.config_len; i++)
        buf[i] = cfg[o + i];
    }
  uint64_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint64_t) buf[i] << (8 * i);
  return v;
}

static void
bar_write (vmm_virtio_pci *vp, uint64_t off, unsigned size, uint64_t value)
{
  if (size > 8)
    return;
  if (off < VIRTIO_PCI_COMMON_LEN)
    common_write (vp, (unsigned) off, size, value);
  else if (off >= VIRTIO_PCI_DEVICE_OFF
           && off < VIRTIO_PCI_DEVICE_OFF + vp->info.config_len)
    {
      unsigned o = (unsigned) (off - VIRTIO_PCI_DEVICE_OFF);
      uint8_t data[8];
      unsigned n = MIN (size, vp->info.config_len - o);
      for (unsigned i = 0; i < n; i++)
        data[i] = (value >> (8 * i)) & 0xff;
      if (vp->ops->set_config)
        vp->ops->set_config (vp->opaque, o, data, n);
    }
  else if (off >= VIRTIO_PCI_NOTIFY_OFF
           && off < VIRTIO_PCI_NOTIFY_OFF
                        + (uint64_t) VIRTIO_PCI_NOTIFY_MULT
                              * vp->info.num_queues)
    {
      /* The address names the queue; the value (its index) adds nothing
       * without VIRTIO_F_NOTIFICATION_DATA. */
      unsigned q = (unsigned) (off - VIRTIO_PCI_NOTIFY_OFF)
                   / VIRTIO_PCI_NOTIFY_MULT;
      if (vp->queues[q].enabled)
        signal_fd (vp->queues[q].fd);
    }
}

static uint64_t
bar_mmio_read (void *opaque, const vmm_access *a)
{
  return bar_read (opaque, a->offset, a->size);
}

static void
bar_mmio_write (void *opaque, const vmm_access *a, uint64_t value)
{
  bar_write (opaque, a->offset, a->size, value);
}

static const vmm_region_ops bar_ops = {
  .read = bar_mmio_read,
  .write = bar_mmio_write,
};

/* ---- BAR 1: MSI-X table and PBA ---- */

static uint64_t
msix_mmio_read (void *opaque, const vmm_access *a)
{
  vmm_virtio_pci *vp = opaque;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    {
      uint64_t o = a->offset + i;
      uint8_t b = 0;
      if (o < 16 * (uint64_t) vp->n_vectors)
        b = vp->msix_table[o];
      else if (o >= VIRTIO_PCI_MSIX_PBA_OFF && o < VIRTIO_PCI_MSIX_PBA_OFF + 8)
        b = (vp->msix_pba >> (8 * (o - VIRTIO_PCI_MSIX_PBA_OFF))) & 0xff;
      v |= (uint64_t) b << (8 * i);
    }
  return v;
}

static void
msix_mmio_write (void *opaque, const vmm_access *a, uint64_t value)
{
  vmm_virtio_pci *vp = opaque;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    {
      uint64_t o = a->offset + i;
      if (o >= 16 * (uint64_t) vp->n_vectors)
        continue; /* the PBA is read-only */
      vp->msix_table[o] = (value >> (8 * i)) & 0xff;
      if (o % 16 == 12) /* vector control: only the mask bit is RW */
        vp->msix_table[o] &= MSIX_ENTRY_MASKED;
      else if (o % 16 > 12)
        vp->msix_table[o] = 0;
    }
  /* A bound vector follows its entry; an unmasked one delivers what is
   * pending. */
  for (unsigned v = 0; v < vp->n_vectors; v++)
    {
      vpci_vector *vec = &vp->vectors[v];
      const uint8_t *e = msix_entry (vp, v);
      uint64_t addr = vmm_pci_get32 (e) | (uint64_t) vmm_pci_get32 (e + 4) << 32;
      uint32_t data = vmm_pci_get32 (e + 8);
      if (vec->handle >= 0
          && (addr != vec->bound_addr || data != vec->bound_data))
        {
          if (vp->msi->vector_update)
            vp->msi->vector_update (vp->msi->opaque, vec->handle, addr, data);
          vec->bound_addr = addr;
          vec->bound_data = data;
        }
    }
  msix_deliver_pending (vp);
}

static const vmm_region_ops msix_ops = {
  .read = msix_mmio_read,
  .write = msix_mmio_write,
};

/* ---- PCI config hooks ---- */

/* The VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9): bar, offset and length in
 * the capability select an access to the BAR through pci_cfg_data. */
static bool
pcicfg_window (vmm_virtio_pci *vp, unsigned offset, unsigned size,
               uint64_t *bar_off)
{
  unsigned data = vp->pcicfg_cap + 16;
  if (offset != data)
    return false;
  const uint8_t *c = vp->pci.config + vp->pcicfg_cap;
  uint32_t off = vmm_pci_get32 (c + 8);
  uint32_t len = vmm_pci_get32 (c + 12);
  if (c[4] != VIRTIO_PCI_BAR || len != size || (off & (len - 1))
      || off >= VIRTIO_PCI_BAR_SIZE)
    return false;
  *bar_off = off;
  return true;
}

static uint32_t
vp_config_read (vmm_pci_device *pci, unsigned offset, unsigned size)
{
  vmm_virtio_pci *vp = pci->opaque;
  uint64_t bar_off;
  if (pcicfg_window (vp, offset, size, &bar_off))
    return (uint32_t) bar_read (vp, bar_off, size);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; i++)
    v |= (uint32_t) pci->config[offset + i] << (8 * i);
  return v;
}

static void
vp_config_written (vmm_pci_device *pci, unsigned offset, unsigned size,
                   uint32_t value)
{
  vmm_virtio_pci *vp = pci->opaque;
  uint64_t bar_off;
  if (pcicfg_window (vp, offset, size, &bar_off))
    {
      bar_write (vp, bar_off, size, value);
      return;
    }
  if (vp->n_vectors && offset < vp->msix_cap + 4
      && offset + size > vp->msix_cap + 2)
    {
      if (msix_enabled (vp))
        {
          vmm_pci_set_intx (&vp->pci, false);
          msix_deliver_pending (vp);
        }
      else
        for (unsigned v = 0; v < vp->n_vectors; v++)
          vector_unbind (vp, v);
    }
}

static void
vp_bar_mapped (vmm_pci_device *pci, unsigned bar, uint64_t addr)
{
  vmm_virtio_pci *vp = pci->opaque;
  if (bar != VIRTIO_PCI_BAR)
    return;
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    ioeventfd_remove (vp, &vp->queues[i]);
  vp->bar_addr = addr;
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    ioeventfd_add (vp, &vp->queues[i]);
}

static const vmm_pci_device_ops vp_pci_ops = {
  .config_read = vp_config_read,
  .config_written = vp_config_written,
  .bar_mapped = vp_bar_mapped,
};

/* ---- creation ---- */

static unsigned
add_vndr_cap (vmm_virtio_pci *vp, uint8_t type, unsigned len, uint32_t off,
              uint32_t length)
{
  unsigned c = vmm_pci_add_capability (&vp->pci, PCI_CAP_ID_VNDR, len);
  uint8_t *p = vp->pci.config + c;
  p[2] = (uint8_t) len;
  p[3] = type;
  p[4] = VIRTIO_PCI_BAR;
  vmm_pci_put32 (p + 8, off);
  vmm_pci_put32 (p + 12, length);
  return c;
}

static int
new_eventfd (GError **error)
{
  int fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0)
    {
      int e = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (e),
                   "eventfd: %s", g_strerror (e));
    }
  return fd;
}

vmm_virtio_pci *
vmm_virtio_pci_new (vmm_device *dev, const vmm_guest_memory *mem,
                    GMainContext *io, const vmm_msi_host *msi,
                    const vmm_ioeventfd_host *ioev,
                    const vmm_virtio_pci_info *info,
                    const vmm_virtio_device_ops *ops, void *opaque,
                    GError **error)
{
  if (info->num_queues == 0 || info->num_queues > VIRTIO_PCI_MAX_QUEUES
      || info->queue_size == 0 || info->queue_size > VIRTQ_MAX_SIZE
      || (info->queue_size & (info->queue_size - 1))
      || info->config_len > 0x1000)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s: unsupported virtio queue or config layout",
                   dev->name);
      return NULL;
    }
  vmm_virtio_pci *vp = g_new0 (vmm_virtio_pci, 1);
  vp->dev = dev;
  vp->mem = mem;
  vp->io = io;
  vp->msi = msi && msi->vector_add ? msi : NULL;
  vp->ioev = ioev && ioev->add && ioev->remove ? ioev : NULL;
  vp->info = *info;
  vp->ops = ops;
  vp->opaque = opaque;
  vp->device_features = (info->features & ~VIRTIO_BIT (VIRTIO_F_ACCESS_PLATFORM))
                        | TRANSPORT_FEATURES;
  vp->bar_addr = VMM_PCI_UNMAPPED;
  vp->queues = g_new0 (vpci_queue, info->num_queues);
  for (unsigned i = 0; i < info->num_queues; i++)
    vp->queues[i].fd = -1;
  vp->n_vectors = vp->msi ? info->num_queues + 1 : 0;
  vp->vectors = g_new0 (vpci_vector, vp->n_vectors);
  vp->msix_table = g_malloc0 (16 * (size_t) vp->n_vectors + 1);
  for (unsigned v = 0; v < vp->n_vectors; v++)
    vp->vectors[v].fd = -1;

  for (unsigned v = 0; v < vp->n_vectors; v++)
    {
      vp->vectors[v].handle = -1;
      if ((vp->vectors[v].fd = new_eventfd (error)) < 0)
        goto fail;
    }
  for (unsigned i = 0; i < info->num_queues; i++)
    {
      vpci_queue *q = &vp->queues[i];
      q->vp = vp;
      q->index = i;
      vmm_vq_init (&q->vq, mem);
      if ((q->fd = new_eventfd (error)) < 0)
        goto fail;
      q->watch = g_unix_fd_source_new (q->fd, G_IO_IN);
      g_source_set_callback (q->watch, G_SOURCE_FUNC (queue_fd_ready), q,
                             NULL);
      g_source_attach (q->watch, io);
    }

  vmm_pci_device_init (&vp->pci, dev, &vp_pci_ops, vp, VIRTIO_PCI_VENDOR_ID,
                       VIRTIO_PCI_DEVICE_ID_BASE + info->device_type,
                       info->class_code, 1);
  vmm_pci_set_subsystem (&vp->pci, VIRTIO_PCI_VENDOR_ID, VIRTIO_PCI_SUBSYS_ID);
  vmm_pci_set_interrupt_pin (&vp->pci, 1);
  vmm_pci_set_bar (&vp->pci, VIRTIO_PCI_BAR, VMM_PCI_BAR_MEM64, true,
                   VIRTIO_PCI_BAR_SIZE, &bar_ops, vp);
  add_vndr_cap (vp, VIRTIO_PCI_CAP_COMMON_CFG, 16, VIRTIO_PCI_COMMON_OFF,
                VIRTIO_PCI_COMMON_LEN);
  unsigned n = add_vndr_cap (vp, VIRTIO_PCI_CAP_NOTIFY_CFG, 20,
                             VIRTIO_PCI_NOTIFY_OFF,
                             VIRTIO_PCI_NOTIFY_MULT * info->num_queues);
  vmm_pci_put32 (vp->pci.config + n + 16, VIRTIO_PCI_NOTIFY_MULT);
  add_vndr_cap (vp, VIRTIO_PCI_CAP_ISR_CFG, 16, VIRTIO_PCI_ISR_OFF, 1);
  if (info->config_len)
    add_vndr_cap (vp, VIRTIO_PCI_CAP_DEVICE_CFG, 16, VIRTIO_PCI_DEVICE_OFF,
                  info->config_len);
  vp->pcicfg_cap = add_vndr_cap (vp, VIRTIO_PCI_CAP_PCI_CFG, 20, 0, 0);
  /* The window's bar, offset and length are the driver's to set. */
  vp->pci.config[vp->pcicfg_cap + 4] = 0;
  vp->pci.wmask[vp->pcicfg_cap + 4] = 0xff;
  memset (vp->pci.wmask + vp->pcicfg_cap + 8, 0xff, 8);
  if (vp->n_vectors)
    {
      vmm_pci_set_bar (&vp->pci, VIRTIO_PCI_MSIX_BAR, VMM_PCI_BAR_MEM32, false,
                       VIRTIO_PCI_MSIX_BAR_SIZE, &msix_ops, vp);
      vp->msix_cap = vmm_pci_add_capability (&vp->pci, PCI_CAP_ID_MSIX, 12);
      uint8_t *m = vp->pci.config + vp->msix_cap;
      vmm_pci_put16 (m + 2, (uint16_t) (vp->n_vectors - 1));
      vmm_pci_put32 (m + 4, 0 | VIRTIO_PCI_MSIX_BAR);
      vmm_pci_put32 (m + 8, VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_MSIX_BAR);
      vp->pci.wmask[vp->msix_cap + 3] = MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL;
    }
  msix_reset (vp);
  virtio_reset (vp);
  return vp;

fail:
  vmm_virtio_pci_free (vp);
  return NULL;
}

void
vmm_virtio_pci_free (vmm_virtio_pci *vp)
{
  if (!vp)
    return;
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    {
      vpci_queue *q = &vp->queues[i];
      if (q->vp)
        ioeventfd_remove (vp, q);
      if (q->watch)
        {
          g_source_destroy (q->watch);
          g_source_unref (q->watch);
        }
      if (q->fd >= 0)
        close (q->fd);
    }
  for (unsigned v = 0; v < vp->n_vectors; v++)
    {
      if (vp->vectors[v].handle >= 0 && vp->msi->vector_remove)
        vp->msi->vector_remove (vp->msi->opaque, vp->vectors[v].handle);
      if (vp->vectors[v].fd >= 0)
        close (vp->vectors[v].fd);
    }
  g_free (vp->queues);
  g_free (vp->vectors);
  g_free (vp->msix_table);
  g_free (vp);
}

vmm_pci_device *
vmm_virtio_pci_pci (vmm_virtio_pci *vp)
{
  return &vp->pci;
}

gboolean
vmm_virtio_pci_attach (vmm_virtio_pci *vp, vmm_pci_host *host, unsigned devfn,
                       GError **error)
{
  return vmm_pci_host_attach (host, &vp->pci, devfn, error);
}

uint64_t
vmm_virtio_pci_driver_features (vmm_virtio_pci *vp)
{
  return vp->driver_features;
}

unsigned
vmm_virtio_pci_num_queues (vmm_virtio_pci *vp)
{
  return vp->info.num_queues;
}

uint8_t
vmm_virtio_pci_status (vmm_virtio_pci *vp)
{
  return vp->status;
}

vmm_virtqueue *
vmm_virtio_pci_queue (vmm_virtio_pci *vp, unsigned index)
{
  if (index >= vp->info.num_queues || !vp->queues[index].enabled
      || !device_running (vp))
    return NULL;
  return &vp->queues[index].vq;
}

void
vmm_virtio_pci_queue_interrupt (vmm_virtio_pci *vp, unsigned index)
{
  if (index >= vp->info.num_queues || !vp->queues[index].enabled)
    return;
  vpci_queue *q = &vp->queues[index];
  if (vmm_vq_should_interrupt (&q->vq))
    raise_interrupt (vp, q->vector, VIRTIO_ISR_QUEUE);
}

void
vmm_virtio_pci_config_changed (vmm_virtio_pci *vp)
{
  vp->config_gen++;
  if (vp->status & VIRTIO_STATUS_DRIVER_OK)
    raise_interrupt (vp, vp->msix_config, VIRTIO_ISR_CONFIG);
}

/* ---- saved state ---- */

#define VPCI_STATE_TAG VMM_STATE_TAG ('V', 'P', 'C', 'I')
#define VPCI_STATE_VERSION 1

void
vmm_virtio_pci_save (vmm_virtio_pci *vp, GByteArray *out)
{
  vmm_state_put_header (out, VPCI_STATE_TAG, VPCI_STATE_VERSION);
  vmm_state_put_bytes (out, vp->pci.config, VMM_PCI_CONFIG_SIZE);
  vmm_state_put_u32 (out, vp->dfselect);
  vmm_state_put_u32 (out, vp->gfselect);
  vmm_state_put_u64 (out, vp->driver_features);
  vmm_state_put_u8 (out, vp->status);
  vmm_state_put_u8 (out, vp->config_gen);
  vmm_state_put_u8 (out, vp->isr);
  vmm_state_put_u16 (out, vp->msix_config);
  vmm_state_put_u16 (out, vp->queue_select);
  vmm_state_put_u16 (out, (uint16_t) vp->info.num_queues);
  for (unsigned i = 0; i < vp->info.num_queues; i++)
    {
      const vpci_queue *q = &vp->queues[i];
      vmm_state_put_u16 (out, q->size);
      vmm_state_put_u16 (out, q->vector);
      vmm_state_put_bool (out, q->enabled);
      vmm_state_put_u64 (out, q->desc);
      vmm_state_put_u64 (out, q->driver);
      vmm_state_put_u64 (out, q->device);
      vmm_state_put_u16 (out, q->vq.last_avail);
      vmm_state_put_u16 (out, q->vq.used_idx);
      vmm_state_put_u16 (out, q->vq.signalled_used);
      vmm_state_put_bool (out, q->vq.signalled_used_valid);
    }
  vmm_state_put_u16 (out, (uint16_t) vp->n_vectors);
  vmm_state_put_bytes (out, vp->msix_table, 16 * (size_t) vp->n_vectors);
  vmm_state_put_u64 (out, vp->msix_pba);
}

typedef struct vpci_saved_queue {
  uint16_t size, vector;
  bool enabled;
  uint64_t desc, driver, device;
  vmm_virtqueue vq;
} vpci_saved_queue;

gboolean
vmm_virtio_pci_load (vmm_virtio_pci *vp, const uint8_t *data, size_t len,
                     GError **error)
{
  vmm_state_reader rd;
  const char *name = vp->dev->name;
  if (!vmm_state_begin (&rd, data, len, VPCI_STATE_TAG, VPCI_STATE_VERSION,
                        name, error))
    return FALSE;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  vmm_state_get_bytes (&rd, config, sizeof config);
  uint32_t dfselect = vmm_state_get_u32 (&rd);
  uint32_t gfselect = vmm_state_get_u32 (&rd);
  uint64_t driver_features = vmm_state_get_u64 (&rd);
  uint8_t status = vmm_state_get_u8 (&rd);
  uint8_t config_gen = vmm_state_get_u8 (&rd);
  uint8_t isr = vmm_state_get_u8 (&rd);
  uint16_t msix_config = vmm_state_get_u16 (&rd);
  uint16_t queue_select = vmm_state_get_u16 (&rd);
  uint16_t nq = vmm_state_get_u16 (&rd);
  vmm_state_check (&rd, nq == vp->info.num_queues, "queue count");
  vmm_state_check (&rd, !memcmp (config, vp->pci.config, 4), "PCI ID");
  vmm_state_check (&rd, !(isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG)),
                   "ISR");
  vmm_state_check (&rd, !(driver_features & ~vp->device_features),
                   "driver feature set");
  vmm_state_check (&rd, msix_config < vp->n_vectors
                            || msix_config == VIRTIO_MSI_NO_VECTOR,
                   "config vector");
  if (rd.bad || rd.invalid)
    return vmm_state_end (&rd, name, error);

  bool event_idx = driver_features & VIRTIO_BIT (VIRTIO_F_RING_EVENT_IDX);
  g_autofree vpci_saved_queue *qs = g_new0 (vpci_saved_queue, nq);
  for (unsigned i = 0; i < nq; i++)
    {
      vpci_saved_queue *s = &qs[i];
      s->size = vmm_state_get_u16 (&rd);
      s->vector = vmm_state_get_u16 (&rd);
      s->enabled = vmm_state_get_bool (&rd);
      s->desc = vmm_state_get_u64 (&rd);
      s->driver = vmm_state_get_u64 (&rd);
      s->device = vmm_state_get_u64 (&rd);
      uint16_t last_avail = vmm_state_get_u16 (&rd);
      uint16_t used_idx = vmm_state_get_u16 (&rd);
      uint16_t signalled = vmm_state_get_u16 (&rd);
      bool signalled_valid = vmm_state_get_bool (&rd);
      vmm_state_check (&rd, s->vector < vp->n_vectors
                                || s->vector == VIRTIO_MSI_NO_VECTOR,
                       "queue vector");
      vmm_state_check (&rd, s->size <= vp->info.queue_size, "queue size");
      vmm_vq_init (&s->vq, vp->mem);
      if (s->enabled && !rd.bad)
        vmm_state_check (&rd,
                         vmm_vq_setup (&s->vq, s->size, s->desc, s->driver,
                                       s->device, event_idx, last_avail,
                                       used_idx, NULL),
                         "queue ring address");
      s->vq.signalled_used = signalled;
      s->vq.signalled_used_valid = signalled_valid;
    }
  uint16_t nv = vmm_state_get_u16 (&rd);
  vmm_state_check (&rd, nv == vp->n_vectors, "MSI-X vector count");
  g_autofree uint8_t *table = g_malloc0 (16 * (size_t) vp->n_vectors + 1);
  if (nv == vp->n_vectors)
    vmm_state_get_bytes (&rd, table, 16 * (size_t) nv);
  uint64_t pba = vmm_state_get_u64 (&rd);
  vmm_state_check (&rd, nv >= 64 || !(pba >> nv), "MSI-X PBA");
  for (unsigned v = 0; v < nv && v < vp->n_vectors; v++)
    vmm_state_check (&rd, !(vmm_pci_get32 (table + 16 * v + 12)
                            & ~MSIX_ENTRY_MASKED),
                     "MSI-X vector control");
  if (!vmm_state_end (&rd, name, error))
    return FALSE;

  /* Commit: drop what the current state holds, then take the new one. */
  if (vp->ops->reset)
    vp->ops->reset (vp->opaque);
  for (unsigned i = 0; i < nq; i++)
    {
      vpci_queue *q = &vp->queues[i];
      ioeventfd_remove (vp, q);
      drain_fd (q->fd);
      q->size = qs[i].size;
      q->vector = qs[i].vector;
      q->enabled = qs[i].enabled;
      q->desc = qs[i].desc;
      q->driver = qs[i].driver;
      q->device = qs[i].device;
      q->vq = qs[i].vq;
    }
  for (unsigned v = 0; v < vp->n_vectors; v++)
    vector_unbind (vp, v);
  memcpy (vp->msix_table, table, 16 * (size_t) vp->n_vectors);
  vp->msix_pba = pba;
  /* BAR placement is PCI's: config space is restored as bytes and the
   * bus mapping follows the next decode (see the header of pci.h). */
  memcpy (vp->pci.config, config, sizeof config);
  vp->dfselect = dfselect;
  vp->gfselect = gfselect;
  vp->driver_features = driver_features;
  vp->status = status;
  vp->config_gen = config_gen;
  vp->isr = isr;
  vp->msix_config = msix_config;
  vp->queue_select = queue_select;
  for (unsigned i = 0; i < nq; i++)
    ioeventfd_add (vp, &vp->queues[i]);
  vmm_pci_set_intx (&vp->pci, !msix_enabled (vp) && vp->isr);
  if (device_running (vp))
    kick_all (vp);
  return TRUE;
}
