/* The NIC ↔ back-end port. Behaviour: see net.h. */
#include "vmm-core/net/net.h"

#include <string.h>

typedef struct net_frame {
  size_t len;
  uint8_t data[];
} net_frame;

struct vmm_net_wake {
  GSource base;
  gint pending;
  GMainContext *io;
  void (*fn) (void *opaque);
  void *opaque;
};

static gboolean
wake_prepare (GSource *source, gint *timeout)
{
  *timeout = -1;
  return g_atomic_int_get (&((vmm_net_wake *) source)->pending);
}

static gboolean
wake_check (GSource *source)
{
  return g_atomic_int_get (&((vmm_net_wake *) source)->pending);
}

static gboolean
wake_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  vmm_net_wake *w = (vmm_net_wake *) source;
  g_atomic_int_set (&w->pending, 0);
  w->fn (w->opaque);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs wake_funcs = {
  .prepare = wake_prepare,
  .check = wake_check,
  .dispatch = wake_dispatch,
};

vmm_net_wake *
vmm_net_wake_new (GMainContext *io, void (*fn) (void *opaque), void *opaque)
{
  vmm_net_wake *w = (vmm_net_wake *) g_source_new (&wake_funcs,
                                                   sizeof (vmm_net_wake));
  w->io = io;
  w->fn = fn;
  w->opaque = opaque;
  g_source_set_name (&w->base, "vmm net wake");
  g_source_attach (&w->base, io);
  return w;
}

void
vmm_net_wake_raise (vmm_net_wake *w)
{
  if (!g_atomic_int_compare_and_exchange (&w->pending, 0, 1))
    return;
  /* On the I/O thread the next prepare sees the flag; from elsewhere the
   * loop may be asleep in poll(). */
  if (!g_main_context_is_owner (w->io))
    g_main_context_wakeup (w->io);
}

void
vmm_net_wake_free (vmm_net_wake *w)
{
  if (!w)
    return;
  g_source_destroy (&w->base);
  g_source_unref (&w->base);
}

struct vmm_net_port {
  GMutex lock; /* guards queue, stats and blocked */
  GQueue queue; /* net_frame *, oldest first */
  bool blocked; /* the NIC had no buffers for the head frame */
  vmm_net_port_stats stats;
  vmm_net_receive_fn receive;
  void *opaque;
  vmm_net_backend *backend;
  vmm_net_wake *wake; /* delivery, on the I/O thread */
};

static void
port_wake (vmm_net_port *port)
{
  if (port->wake)
    vmm_net_wake_raise (port->wake);
}

static void
port_run (void *opaque)
{
  vmm_net_port_process (opaque);
}

vmm_net_port *
vmm_net_port_new (GMainContext *io, vmm_net_receive_fn receive, void *opaque)
{
  vmm_net_port *port = g_new0 (vmm_net_port, 1);
  g_mutex_init (&port->lock);
  g_queue_init (&port->queue);
  port->receive = receive;
  port->opaque = opaque;
  if (io)
    port->wake = vmm_net_wake_new (io, port_run, port);
  return port;
}

void
vmm_net_port_free (vmm_net_port *port)
{
  if (!port)
    return;
  vmm_net_wake_free (port->wake);
  if (port->backend)
    port->backend->ops->free (port->backend);
  g_queue_clear_full (&port->queue, g_free);
  g_mutex_clear (&port->lock);
  g_free (port);
}

void
vmm_net_port_set_backend (vmm_net_port *port, vmm_net_backend *be)
{
  if (port->backend)
    port->backend->ops->free (port->backend);
  port->backend = be;
  if (be)
    be->port = port;
}

vmm_net_backend *
vmm_net_port_backend (vmm_net_port *port)
{
  return port->backend;
}

void
vmm_net_port_send (vmm_net_port *port, const uint8_t *frame, size_t len)
{
  g_mutex_lock (&port->lock);
  port->stats.tx_frames++;
  g_mutex_unlock (&port->lock);
  if (port->backend)
    port->backend->ops->send (port->backend, frame, len);
}

void
vmm_net_port_deliver (vmm_net_port *port, const uint8_t *frame, size_t len)
{
  if (len > VMM_NET_FRAME_MAX)
    len = VMM_NET_FRAME_MAX;
  g_mutex_lock (&port->lock);
  if (port->queue.length >= VMM_NET_PORT_QUEUE_MAX)
    {
      port->stats.rx_queue_dropped++;
      g_mutex_unlock (&port->lock);
      return;
    }
  net_frame *f = g_malloc (sizeof *f + len);
  f->len = len;
  memcpy (f->data, frame, len);
  g_queue_push_tail (&port->queue, f);
  bool wake = !port->blocked;
  g_mutex_unlock (&port->lock);
  if (wake)
    port_wake (port);
}

void
vmm_net_port_rx_ready (vmm_net_port *port)
{
  /* Always wake: a delivery running now may be about to give up. */
  g_mutex_lock (&port->lock);
  port->blocked = false;
  g_mutex_unlock (&port->lock);
  port_wake (port);
}

void
vmm_net_port_flush_queue (vmm_net_port *port)
{
  g_mutex_lock (&port->lock);
  g_queue_clear_full (&port->queue, g_free);
  g_queue_init (&port->queue);
  port->blocked = false;
  g_mutex_unlock (&port->lock);
}

void
vmm_net_port_process (vmm_net_port *port)
{
  for (;;)
    {
      g_mutex_lock (&port->lock);
      net_frame *f = g_queue_pop_head (&port->queue);
      port->blocked = false;
      g_mutex_unlock (&port->lock);
      if (!f)
        return;
      /* No lock held: the NIC takes its own. */
      if (!port->receive (port->opaque, f->data, f->len))
        {
          g_mutex_lock (&port->lock);
          g_queue_push_head (&port->queue, f);
          port->blocked = true;
          g_mutex_unlock (&port->lock);
          return;
        }
      g_mutex_lock (&port->lock);
      port->stats.rx_frames++;
      g_mutex_unlock (&port->lock);
      g_free (f);
    }
}

unsigned
vmm_net_port_queued (vmm_net_port *port)
{
  g_mutex_lock (&port->lock);
  unsigned n = port->queue.length;
  g_mutex_unlock (&port->lock);
  return n;
}

void
vmm_net_port_get_stats (vmm_net_port *port, vmm_net_port_stats *out)
{
  g_mutex_lock (&port->lock);
  *out = port->stats;
  g_mutex_unlock (&port->lock);
}

uint32_t
vmm_net_csum_add (uint32_t sum, const uint8_t *p, size_t len)
{
  uint64_t s = sum;
  size_t i = 0;
  for (; i + 1 < len; i += 2)
    s += (uint32_t) p[i] << 8 | p[i + 1];
  if (i < len)
    s += (uint32_t) p[i] << 8;
  while (s >> 32)
    s = (s & 0xffffffff) + (s >> 32);
  return (uint32_t) s;
}

uint16_t
vmm_net_csum_fold (uint32_t sum)
{
  while (sum >> 16)
    sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t) sum;
}
