/* libslirp on the I/O thread's GMainContext. Behaviour: see slirp.h. */
#include "vmm-core/net/slirp.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <libslirp.h>
#include <string.h>

typedef struct net_slirp net_slirp;

typedef struct slirp_source {
  GSource base;
  net_slirp *ns;
} slirp_source;

struct net_slirp {
  vmm_net_backend be;
  Slirp *slirp;
  GMainContext *io;
  GSource *source;
  GArray *pollfds; /* GPollFD, added to @source */
  GArray *next;    /* GPollFD, what slirp asks for now */
  gint64 deadline; /* µs, monotonic: slirp's own timeouts */
  char *bootfile;
  unsigned guest_errors;
};

typedef struct slirp_timer {
  GSource *source;
  net_slirp *ns;
  SlirpTimerCb cb; /* timer_new */
  void *cb_opaque;
  SlirpTimerId id; /* timer_new_opaque, when cb is NULL */
} slirp_timer;

/* ---- SlirpCb ---- */

static ssize_t
cb_send_packet (const void *buf, size_t len, void *opaque)
{
  net_slirp *ns = opaque;
  if (ns->be.port)
    vmm_net_port_deliver (ns->be.port, buf, len);
  return (ssize_t) len;
}

static void
cb_guest_error (const char *msg, void *opaque)
{
  net_slirp *ns = opaque;
  if (ns->guest_errors++ < 16)
    g_info ("slirp: guest error: %s", msg);
}

static int64_t
cb_clock_get_ns (void *opaque)
{
  return g_get_monotonic_time () * 1000;
}

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  slirp_timer *t = data;
  g_source_set_ready_time (source, -1);
  if (t->cb)
    t->cb (t->cb_opaque);
  else
    slirp_handle_timer (t->ns->slirp, t->id, t->cb_opaque);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_funcs = {
  .dispatch = timer_dispatch,
};

static slirp_timer *
slirp_timer_create (net_slirp *ns)
{
  slirp_timer *t = g_new0 (slirp_timer, 1);
  t->ns = ns;
  t->source = g_source_new (&timer_funcs, sizeof (GSource));
  g_source_set_callback (t->source, NULL, t, NULL);
  g_source_set_name (t->source, "slirp timer");
  g_source_attach (t->source, ns->io);
  return t;
}

static void *
cb_timer_new (SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
  slirp_timer *t = slirp_timer_create (opaque);
  t->cb = cb;
  t->cb_opaque = cb_opaque;
  return t;
}

static void *
cb_timer_new_opaque (SlirpTimerId id, void *cb_opaque, void *opaque)
{
  slirp_timer *t = slirp_timer_create (opaque);
  t->id = id;
  t->cb_opaque = cb_opaque;
  return t;
}

static void
cb_timer_free (void *timer, void *opaque)
{
  slirp_timer *t = timer;
  g_source_destroy (t->source);
  g_source_unref (t->source);
  g_free (t);
}

/* @expire is in milliseconds of cb_clock_get_ns's clock. */
static void
cb_timer_mod (void *timer, int64_t expire, void *opaque)
{
  slirp_timer *t = timer;
  g_source_set_ready_time (t->source, MAX (expire, 0) * 1000);
}

static void
cb_register_poll_fd (int fd, void *opaque)
{
}

static void
cb_unregister_poll_fd (int fd, void *opaque)
{
}

static void
cb_notify (void *opaque)
{
  net_slirp *ns = opaque;
  g_main_context_wakeup (ns->io);
}

static const SlirpCb slirp_callbacks = {
  .send_packet = cb_send_packet,
  .guest_error = cb_guest_error,
  .clock_get_ns = cb_clock_get_ns,
  .timer_new = cb_timer_new,
  .timer_free = cb_timer_free,
  .timer_mod = cb_timer_mod,
  .register_poll_fd = cb_register_poll_fd,
  .unregister_poll_fd = cb_unregister_poll_fd,
  .notify = cb_notify,
  .timer_new_opaque = cb_timer_new_opaque,
};

/* ---- polling on the GMainContext ---- */

static int
add_poll (int fd, int events, void *opaque)
{
  net_slirp *ns = opaque;
  GPollFD p = { .fd = fd };
  if (events & SLIRP_POLL_IN)
    p.events |= G_IO_IN;
  if (events & SLIRP_POLL_OUT)
    p.events |= G_IO_OUT;
  if (events & SLIRP_POLL_PRI)
    p.events |= G_IO_PRI;
  if (events & SLIRP_POLL_ERR)
    p.events |= G_IO_ERR;
  if (events & SLIRP_POLL_HUP)
    p.events |= G_IO_HUP;
  g_array_append_val (ns->next, p);
  return (int) ns->next->len - 1;
}

static int
get_revents (int idx, void *opaque)
{
  net_slirp *ns = opaque;
  if (idx < 0 || (guint) idx >= ns->pollfds->len)
    return 0;
  unsigned r = g_array_index (ns->pollfds, GPollFD, idx).revents;
  int ev = 0;
  if (r & G_IO_IN)
    ev |= SLIRP_POLL_IN;
  if (r & G_IO_OUT)
    ev |= SLIRP_POLL_OUT;
  if (r & G_IO_PRI)
    ev |= SLIRP_POLL_PRI;
  if (r & G_IO_ERR)
    ev |= SLIRP_POLL_ERR;
  if (r & G_IO_HUP)
    ev |= SLIRP_POLL_HUP;
  return ev;
}

static gboolean
source_prepare (GSource *source, gint *timeout)
{
  net_slirp *ns = ((slirp_source *) source)->ns;
  g_array_set_size (ns->next, 0);
  uint32_t ms = UINT32_MAX;
  slirp_pollfds_fill (ns->slirp, &ms, add_poll, ns);
  /* Changing a source's polls wakes its context up, so they change only
   * when slirp's set of descriptors and events does; otherwise the loop
   * would spin. */
  bool same = ns->next->len == ns->pollfds->len;
  for (guint i = 0; same && i < ns->next->len; i++)
    {
      const GPollFD *a = &g_array_index (ns->next, GPollFD, i);
      const GPollFD *b = &g_array_index (ns->pollfds, GPollFD, i);
      same = a->fd == b->fd && a->events == b->events;
    }
  if (!same)
    {
      for (guint i = 0; i < ns->pollfds->len; i++)
        g_source_remove_poll (source,
                              &g_array_index (ns->pollfds, GPollFD, i));
      GArray *t = ns->pollfds;
      ns->pollfds = ns->next;
      ns->next = t;
      /* Complete: its elements stay put until the set changes again. */
      for (guint i = 0; i < ns->pollfds->len; i++)
        g_source_add_poll (source, &g_array_index (ns->pollfds, GPollFD, i));
    }
  if (ms == UINT32_MAX)
    {
      ns->deadline = G_MAXINT64;
      *timeout = -1;
    }
  else
    {
      ns->deadline = g_get_monotonic_time () + (gint64) ms * 1000;
      *timeout = (gint) MIN (ms, (uint32_t) G_MAXINT);
    }
  return ms == 0;
}

static gboolean
source_check (GSource *source)
{
  net_slirp *ns = ((slirp_source *) source)->ns;
  for (guint i = 0; i < ns->pollfds->len; i++)
    if (g_array_index (ns->pollfds, GPollFD, i).revents)
      return TRUE;
  return g_get_monotonic_time () >= ns->deadline;
}

static gboolean
source_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  net_slirp *ns = ((slirp_source *) source)->ns;
  slirp_pollfds_poll (ns->slirp, 0, get_revents, ns);
  for (guint i = 0; i < ns->pollfds->len; i++)
    g_array_index (ns->pollfds, GPollFD, i).revents = 0;
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs slirp_source_funcs = {
  .prepare = source_prepare,
  .check = source_check,
  .dispatch = source_dispatch,
};

/* ---- vmm_net_backend ---- */

static void
slirp_be_send (vmm_net_backend *be, const uint8_t *frame, size_t len)
{
  net_slirp *ns = (net_slirp *) be;
  slirp_input (ns->slirp, frame, (int) len);
}

static void
slirp_be_free (vmm_net_backend *be)
{
  net_slirp *ns = (net_slirp *) be;
  if (ns->source)
    {
      g_source_destroy (ns->source);
      g_source_unref (ns->source);
    }
  if (ns->slirp)
    slirp_cleanup (ns->slirp);
  g_array_unref (ns->pollfds);
  g_array_unref (ns->next);
  g_free (ns->bootfile);
  g_main_context_unref (ns->io);
  g_free (ns);
}

static const vmm_net_backend_ops slirp_be_ops = {
  .send = slirp_be_send,
  .free = slirp_be_free,
};

vmm_net_backend *
vmm_net_slirp_new (GMainContext *io, const vmm_nic_config *cfg,
                   GError **error)
{
  net_slirp *ns = g_new0 (net_slirp, 1);
  ns->be.ops = &slirp_be_ops;
  ns->io = g_main_context_ref (io);
  ns->pollfds = g_array_new (FALSE, FALSE, sizeof (GPollFD));
  ns->next = g_array_new (FALSE, FALSE, sizeof (GPollFD));
  ns->bootfile = g_strdup (cfg->bootfile);

  SlirpConfig sc = { 0 };
  sc.version = 4;
  sc.restricted = cfg->restricted;
  sc.in_enabled = true;
  inet_pton (AF_INET, VMM_NET_USER_NETWORK, &sc.vnetwork);
  inet_pton (AF_INET, "255.255.255.0", &sc.vnetmask);
  inet_pton (AF_INET, VMM_NET_USER_HOST, &sc.vhost);
  inet_pton (AF_INET, VMM_NET_USER_GUEST, &sc.vdhcp_start);
  inet_pton (AF_INET, VMM_NET_USER_DNS, &sc.vnameserver);
  sc.in6_enabled = false;
  sc.vhostname = "vessel";
  sc.bootfile = ns->bootfile;
  ns->slirp = slirp_new (&sc, &slirp_callbacks, ns);
  if (!ns->slirp)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "libslirp could not start the user network");
      slirp_be_free (&ns->be);
      return NULL;
    }
  for (unsigned i = 0; i < cfg->n_hostfwd; i++)
    {
      const vmm_net_hostfwd *f = &cfg->hostfwd[i];
      if (slirp_add_hostfwd (ns->slirp, f->udp, f->host_addr, f->host_port,
                             f->guest_addr, f->guest_port) < 0)
        {
          char host[INET_ADDRSTRLEN];
          inet_ntop (AF_INET, &f->host_addr, host, sizeof host);
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                       "hostfwd %s:%s:%u: the host port could not be bound "
                       "(in use?)", f->udp ? "udp" : "tcp", host,
                       f->host_port);
          slirp_be_free (&ns->be);
          return NULL;
        }
    }
  ns->source = g_source_new (&slirp_source_funcs, sizeof (slirp_source));
  ((slirp_source *) ns->source)->ns = ns;
  g_source_set_name (ns->source, "slirp");
  g_source_attach (ns->source, io);
  return &ns->be;
}
