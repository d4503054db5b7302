/* The control socket (see qmp.h): the listening socket, its clients and
 * the machine's events, all on the machine's I/O thread. Bytes go through
 * a vmm_qmp_session per client (qmp-protocol.c); the commands are in
 * qmp-commands.c. Nothing here blocks: sockets are non-blocking, a client
 * that sends too much or reads too little is disconnected. */
#include "vmm-core/control/qmp-private.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* Bytes read from one client per dispatch, so that one busy client cannot
 * starve the others or the engine's timers. */
#define QMP_READ_CHUNK 65536
/* Clients at once; one more is told so and hung up on. */
#define QMP_MAX_CLIENTS 64

typedef struct qmp_client {
  vmm_qmp_server *server;
  int fd;
  vmm_qmp_session *session;
  GSource *in_source;
  GSource *out_source;
} qmp_client;

static vmm_qmp_server *
server_ref (vmm_qmp_server *s)
{
  g_atomic_ref_count_inc (&s->ref);
  return s;
}

static void
server_unref (gpointer data)
{
  vmm_qmp_server *s = data;
  if (!g_atomic_ref_count_dec (&s->ref))
    return;
  for (size_t i = 0; i < s->n_disks; i++)
    {
      g_free (s->disks[i].device);
      g_free (s->disks[i].path);
      g_free (s->disks[i].format);
    }
  g_free (s->disks);
  g_free (s->path);
  g_queue_clear_full (&s->notices, g_free);
  g_mutex_clear (&s->notice_lock);
  g_free (s);
}

static void
client_close (qmp_client *c)
{
  vmm_qmp_server *s = c->server;
  s->clients = g_list_remove (s->clients, c);
  if (c->in_source)
    {
      g_source_destroy (c->in_source);
      g_source_unref (c->in_source);
    }
  if (c->out_source)
    {
      g_source_destroy (c->out_source);
      g_source_unref (c->out_source);
    }
  close (c->fd);
  vmm_qmp_session_free (c->session);
  g_free (c);
}

static gboolean client_on_out (gint fd, GIOCondition cond, gpointer data);

/* Writes what the socket takes now; the rest waits for G_IO_OUT. FALSE:
 * the client is gone or does not read, close it. */
static bool
client_flush (qmp_client *c)
{
  GString *out = vmm_qmp_session_output (c->session);
  size_t done = 0;
  while (done < out->len)
    {
      ssize_t n = send (c->fd, out->str + done, out->len - done,
                        MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        break;
      if (n <= 0)
        return false;
      done += (size_t) n;
    }
  g_string_erase (out, 0, (gssize) done);
  if (vmm_qmp_session_overflowed (c->session))
    {
      g_debug ("control: a client does not read its replies; closing it");
      return false;
    }
  if (out->len && !c->out_source)
    {
      c->out_source = g_unix_fd_source_new (c->fd, G_IO_OUT);
      g_source_set_callback (c->out_source, G_SOURCE_FUNC (client_on_out), c,
                             NULL);
      g_source_attach (c->out_source, c->server->ctx);
    }
  else if (!out->len && c->out_source)
    {
      g_source_destroy (c->out_source);
      g_clear_pointer (&c->out_source, g_source_unref);
    }
  return true;
}

static gboolean
client_on_out (gint fd, GIOCondition cond, gpointer data)
{
  qmp_client *c = data;
  GSource *self = c->out_source;
  g_source_ref (self);
  if (!client_flush (c))
    client_close (c);
  /* client_flush drops the source once everything is written. */
  gboolean keep = !g_source_is_destroyed (self);
  g_source_unref (self);
  return keep ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* After a client's quit has been answered: end the machine once. */
static void
server_quit (vmm_qmp_server *s)
{
  if (s->quitting)
    return;
  s->quitting = true;
  JsonObject *data = json_object_new ();
  json_object_set_boolean_member (data, "guest", FALSE);
  json_object_set_string_member (data, "reason", "host-qmp-quit");
  qmp_server_broadcast (s, "SHUTDOWN", data);
  if (s->quit_fn)
    s->quit_fn (s->quit_opaque);
  else
    vmm_machine_poweroff (s->machine);
}

static gboolean
client_on_in (gint fd, GIOCondition cond, gpointer data)
{
  qmp_client *c = data;
  vmm_qmp_server *s = c->server;
  g_autofree char *buf = g_malloc (QMP_READ_CHUNK);
  ssize_t n = recv (fd, buf, QMP_READ_CHUNK, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      /* The client went away, perhaps in the middle of a message. */
      g_clear_pointer (&c->in_source, g_source_unref);
      client_close (c);
      return G_SOURCE_REMOVE;
    }
  bool alive = vmm_qmp_session_input (c->session, buf, (size_t) n);
  if (!client_flush (c) || !alive)
    {
      if (!alive)
        g_debug ("control: closing a client after a bad message");
      g_clear_pointer (&c->in_source, g_source_unref);
      client_close (c);
      if (s->quit_requested)
        server_quit (s);
      return G_SOURCE_REMOVE;
    }
  if (s->quit_requested)
    server_quit (s);
  return G_SOURCE_CONTINUE;
}

static gboolean
server_on_accept (gint fd, GIOCondition cond, gpointer data)
{
  vmm_qmp_server *s = data;
  for (;;)
    {
      int cfd = accept4 (fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd < 0)
        {
          if (errno == EINTR)
            continue;
          if (errno != EAGAIN && errno != EWOULDBLOCK)
            g_debug ("control: accept: %s", g_strerror (errno));
          return G_SOURCE_CONTINUE;
        }
      if (g_list_length (s->clients) >= QMP_MAX_CLIENTS)
        {
          static const char busy[]
              = "{\"error\": {\"class\": \"GenericError\", \"desc\": "
                "\"Too many control clients\"}}\n";
          if (send (cfd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT)
              < 0)
            g_debug ("control: %s", g_strerror (errno));
          close (cfd);
          continue;
        }
      qmp_client *c = g_new0 (qmp_client, 1);
      c->server = s;
      c->fd = cfd;
      c->session = vmm_qmp_session_new (vmm_qmp_commands, s);
      s->clients = g_list_append (s->clients, c);
      c->in_source = g_unix_fd_source_new (cfd, G_IO_IN | G_IO_HUP
                                                     | G_IO_ERR);
      g_source_set_callback (c->in_source, G_SOURCE_FUNC (client_on_in), c,
                             NULL);
      g_source_attach (c->in_source, s->ctx);
      if (!client_flush (c))
        client_close (c);
    }
}

void
qmp_server_broadcast (vmm_qmp_server *s, const char *name, JsonObject *data)
{
  g_autofree char *line = vmm_qmp_format_event (name, data);
  for (GList *l = s->clients; l;)
    {
      qmp_client *c = l->data;
      l = l->next;
      vmm_qmp_session_event (c->session, line);
      if (!client_flush (c))
        client_close (c);
    }
}

/* A state change or machine event, carried to the I/O thread. */
typedef struct qmp_notice {
  bool is_state;
  vmm_machine_state state;
  vmm_machine_event event;
} qmp_notice;

static void
notice_state (vmm_qmp_server *s, vmm_machine_state state)
{
  switch (state)
    {
    case VMM_MACHINE_RUNNING:
      qmp_server_broadcast (s, "RESUME", NULL);
      break;
    case VMM_MACHINE_PAUSED:
    case VMM_MACHINE_ERROR:
      qmp_server_broadcast (s, "STOP", NULL);
      break;
    case VMM_MACHINE_POWERED_OFF:
      if (!s->quitting)
        {
          JsonObject *data = json_object_new ();
          json_object_set_boolean_member (data, "guest", TRUE);
          json_object_set_string_member (data, "reason", "guest-shutdown");
          qmp_server_broadcast (s, "SHUTDOWN", data);
        }
      break;
    case VMM_MACHINE_STOPPED:
      break;
    }
}

static void
notice_tray (vmm_qmp_server *s, bool open)
{
  JsonObject *data = json_object_new ();
  json_object_set_string_member (data, "device", QMP_CD_DEVICE);
  json_object_set_string_member (data, "id", QMP_CD_ID);
  json_object_set_boolean_member (data, "tray-open", open);
  qmp_server_broadcast (s, "DEVICE_TRAY_MOVED", data);
  s->tray_open = open;
}

static void
notice_event (vmm_qmp_server *s, vmm_machine_event event)
{
  switch (event)
    {
    case VMM_MACHINE_EVENT_RESET:
      {
        bool host = s->host_resets > 0;
        if (host)
          s->host_resets--;
        JsonObject *data = json_object_new ();
        json_object_set_boolean_member (data, "guest", !host);
        json_object_set_string_member (data, "reason",
                                       host ? "host-qmp-system-reset"
                                            : "guest-reset");
        qmp_server_broadcast (s, "RESET", data);
        break;
      }
    case VMM_MACHINE_EVENT_POWERDOWN:
      qmp_server_broadcast (s, "POWERDOWN", NULL);
      break;
    case VMM_MACHINE_EVENT_TRAY_MOVED:
      {
        /* The engine says that the tray moved, the drive says whether it
         * holds a medium now: a change opens and closes it. */
        g_autofree char *path = vmm_machine_cdrom_path (s->machine);
        if (!path)
          notice_tray (s, true);
        else
          {
            if (!s->tray_open)
              notice_tray (s, true);
            notice_tray (s, false);
          }
        break;
      }
    }
}

/* On the I/O thread: every queued notice, in order. */
static void
notices_drain (vmm_qmp_server *s)
{
  for (;;)
    {
      g_mutex_lock (&s->notice_lock);
      qmp_notice *n = g_queue_pop_head (&s->notices);
      g_mutex_unlock (&s->notice_lock);
      if (!n)
        return;
      if (!s->closed)
        {
          if (n->is_state)
            notice_state (s, n->state);
          else
            notice_event (s, n->event);
        }
      g_free (n);
    }
}

static gboolean
notices_dispatch (gpointer data)
{
  notices_drain (data);
  return G_SOURCE_REMOVE;
}

/* Listener callbacks run on any thread with the machine's listener lock
 * held: queue, never run inline (that could re-enter a client's command).
 * The queue is the server's, so that its teardown still delivers what the
 * machine said last (a power-off's SHUTDOWN). */
static void
notice_post (vmm_qmp_server *s, qmp_notice *n)
{
  g_mutex_lock (&s->notice_lock);
  bool first = g_queue_is_empty (&s->notices);
  g_queue_push_tail (&s->notices, n);
  g_mutex_unlock (&s->notice_lock);
  if (!first)
    return; /* a dispatch is already on its way */
  GSource *src = g_idle_source_new ();
  g_source_set_priority (src, G_PRIORITY_DEFAULT);
  g_source_set_callback (src, notices_dispatch, server_ref (s),
                         server_unref);
  g_source_attach (src, s->ctx);
  g_source_unref (src);
}

static void
on_state (vmm_machine *m, vmm_machine_state state, void *opaque)
{
  qmp_notice *n = g_new0 (qmp_notice, 1);
  n->is_state = true;
  n->state = state;
  notice_post (opaque, n);
}

static void
on_event (vmm_machine *m, vmm_machine_event event, void *opaque)
{
  qmp_notice *n = g_new0 (qmp_notice, 1);
  n->event = event;
  notice_post (opaque, n);
}

/* The path is free, holds a stale socket (removed), or is refused. */
static bool
prepare_path (const char *path, GError **error)
{
  struct stat st;
  if (lstat (path, &st) < 0)
    {
      if (errno == ENOENT)
        return true;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "%s: %s", path, g_strerror (errno));
      return false;
    }
  if (!S_ISSOCK (st.st_mode))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "%s exists and is not a socket", path);
      return false;
    }
  /* Is anybody listening? Non-blocking: a full backlog says yes. */
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "socket: %s", g_strerror (errno));
      return false;
    }
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  strcpy (addr.sun_path, path);
  int r = connect (fd, (struct sockaddr *) &addr, sizeof addr);
  int err = errno;
  close (fd);
  if (r == 0 || err != ECONNREFUSED)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE,
                   "%s is in use by another program", path);
      return false;
    }
  if (unlink (path) < 0 && errno != ENOENT)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno),
                   "%s: %s", path, g_strerror (errno));
      return false;
    }
  return true;
}

static int
listen_on (const char *path, struct stat *st, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (!path[0] || strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s: a socket path must be 1 to %zu bytes long", path,
                   sizeof addr.sun_path - 1);
      return -1;
    }
  if (!prepare_path (path, error))
    return -1;
  strcpy (addr.sun_path, path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0)
    goto fail;
  if (bind (fd, (struct sockaddr *) &addr, sizeof addr) < 0)
    goto fail_close;
  /* Nobody can connect before listen(): set the mode first. */
  if (chmod (path, 0600) < 0 || lstat (path, st) < 0
      || listen (fd, 16) < 0)
    goto fail_unlink;
  return fd;

fail_unlink:;
  int err = errno;
  unlink (path);
  errno = err;
fail_close:
  err = errno;
  close (fd);
  errno = err;
fail:
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (errno), "%s: %s",
               path, g_strerror (errno));
  return -1;
}

static char *
disk_device_name (const vmm_disk_config *d, unsigned *n_ide,
                  unsigned *n_virtio)
{
  /* As the board places them: primary master, primary slave, secondary
   * slave; virtio in order. */
  static const char *const ide[] = { "ide0-hd0", "ide0-hd1", "ide1-hd1" };
  if (d->interface == VMM_DISK_IDE)
    {
      unsigned i = (*n_ide)++;
      return i < G_N_ELEMENTS (ide) ? g_strdup (ide[i])
                                    : g_strdup_printf ("ide-hd%u", i);
    }
  return g_strdup_printf ("virtio%u", (*n_virtio)++);
}

static char *
disk_format (const vmm_disk_config *d)
{
  if (d->format)
    return g_strdup (d->format);
  char magic[4] = { 0 };
  int fd = open (d->path, O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    {
      if (read (fd, magic, sizeof magic) != (ssize_t) sizeof magic)
        memset (magic, 0, sizeof magic);
      close (fd);
    }
  return g_strdup (memcmp (magic, "QFI\xfb", 4) == 0 ? "qcow2" : "raw");
}

vmm_qmp_server *
vmm_qmp_server_new (vmm_machine *m, const char *path,
                    const vmm_machine_config *cfg, vmm_qmp_quit_fn quit_fn,
                    void *opaque, GError **error)
{
  struct stat st;
  int fd = listen_on (path, &st, error);
  if (fd < 0)
    return NULL;
  vmm_qmp_server *s = g_new0 (vmm_qmp_server, 1);
  g_atomic_ref_count_init (&s->ref);
  g_mutex_init (&s->notice_lock);
  g_queue_init (&s->notices);
  s->machine = m;
  s->ctx = vmm_machine_io_context (m);
  s->path = g_strdup (path);
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->listen_fd = fd;
  s->quit_fn = quit_fn;
  s->quit_opaque = opaque;
  if (cfg && cfg->n_disks)
    {
      unsigned n_ide = 0, n_virtio = 0;
      s->disks = g_new0 (qmp_disk, cfg->n_disks);
      s->n_disks = cfg->n_disks;
      for (size_t i = 0; i < cfg->n_disks; i++)
        {
          const vmm_disk_config *d = &cfg->disks[i];
          s->disks[i].device = disk_device_name (d, &n_ide, &n_virtio);
          s->disks[i].path = g_strdup (d->path);
          s->disks[i].format = disk_format (d);
          s->disks[i].readonly = d->readonly;
        }
    }
  s->listener_id = vmm_machine_add_listener (m, on_state, on_event, s);
  s->listen_source = g_unix_fd_source_new (fd, G_IO_IN);
  g_source_set_callback (s->listen_source, G_SOURCE_FUNC (server_on_accept),
                         s, NULL);
  g_source_attach (s->listen_source, s->ctx);
  return s;
}

/* On the I/O thread: nothing of the server runs after this. */
static void
server_teardown (vmm_qmp_server *s)
{
  notices_drain (s);
  s->closed = true;
  g_source_destroy (s->listen_source);
  g_source_unref (s->listen_source);
  close (s->listen_fd);
  while (s->clients)
    {
      qmp_client *c = s->clients->data;
      client_flush (c); /* a last reply (quit's), if the socket takes it */
      client_close (c);
    }
}

typedef struct qmp_sync {
  vmm_qmp_server *server;
  GMutex lock;
  GCond cond;
  bool done;
} qmp_sync;

static gboolean
teardown_on_io (gpointer data)
{
  qmp_sync *sync = data;
  server_teardown (sync->server);
  g_mutex_lock (&sync->lock);
  sync->done = true;
  g_cond_signal (&sync->cond);
  g_mutex_unlock (&sync->lock);
  return G_SOURCE_REMOVE;
}

void
vmm_qmp_server_free (vmm_qmp_server *s)
{
  if (!s)
    return;
  /* After this no listener callback runs; queued notices see closed. */
  vmm_machine_remove_listener (s->machine, s->listener_id);
  if (g_main_context_acquire (s->ctx))
    {
      /* The I/O thread is not running it (or this is the I/O thread). */
      server_teardown (s);
      g_main_context_release (s->ctx);
    }
  else
    {
      qmp_sync sync = { .server = s };
      g_mutex_init (&sync.lock);
      g_cond_init (&sync.cond);
      GSource *src = g_idle_source_new ();
      g_source_set_priority (src, G_PRIORITY_HIGH);
      g_source_set_callback (src, teardown_on_io, &sync, NULL);
      g_source_attach (src, s->ctx);
      g_source_unref (src);
      g_mutex_lock (&sync.lock);
      while (!sync.done)
        g_cond_wait (&sync.cond, &sync.lock);
      g_mutex_unlock (&sync.lock);
      g_mutex_clear (&sync.lock);
      g_cond_clear (&sync.cond);
    }
  /* Remove the socket file only if it is still ours. */
  struct stat st;
  if (lstat (s->path, &st) == 0 && st.st_dev == s->dev
      && st.st_ino == s->ino)
    unlink (s->path);
  server_unref (s);
}
