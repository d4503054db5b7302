/* The SPICE server (see spice.h), after spice-server's own
 * server/tests/test-display-base.c (a fake QXL device: a memslot spanning
 * host memory, a primary surface, one draw-copy per damaged area, resources
 * freed in release_resource) and basic-event-loop.c (the core interface on
 * a GMainContext).
 *
 * Threads:
 * - the surface's producer (the engine's I/O thread) runs the listener: it
 *   records damage and wakes the refresh source, nothing more;
 * - the I/O thread runs everything of spice-server's main side: the
 *   listening socket, the main and inputs channels, our core interface's
 *   watches and timers, the refresh source (which turns damage into
 *   drawables and re-creates the primary surface) and set-up and teardown;
 * - spice-server's display worker (its own thread) calls the QXL callbacks:
 *   it takes drawables from the queue and releases them when done. The
 *   queue and the set of drawables it holds are under sp->lock.
 *
 * spice-server's core interface carries no instance pointer, so the server
 * a watch, timer or channel event belongs to is the one whose code is
 * running on this thread: every entry from our side into spice-server
 * (set-up, a watch or timer firing, the refresh, teardown) names itself in
 * a thread-private slot first. */
#include "display/spice.h"
#include "display/vnc.h"

#include <errno.h>
#include <gio/gio.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <spice.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SPICE_MEMSLOT_GROUP 0
#define SPICE_MEMSLOT_ID 0
#define SPICE_PRIMARY_ID 0
/* Drawables waiting for the worker beyond this (a stopped or stalled
 * worker) collapse into one copy of the whole screen. */
#define SPICE_MAX_QUEUED 64
/* Released drawables kept for reuse, in screens' worth of pixels: a busy
 * screen cycles through a few buffers instead of having the allocator map,
 * zero and unmap megabytes per refresh; more than this (after a burst, or
 * at a smaller mode) goes back to the allocator. */
#define SPICE_SPARE_SCREENS 2

/* A drawable and everything it points to, in one block; its address is the
 * release id. The pixels are a copy: spice-server's encoders read a bitmap
 * more than once (QUIC's context, LZ's matches) and GLZ matches later
 * images against earlier ones it still holds, so a bitmap must not change
 * while the worker has it, and the surface's pixels do (surface.h). */
typedef struct spice_update {
  QXLCommandExt ext;
  QXLDrawable drawable;
  QXLImage image;
  struct spice_update *next; /* on the spare list */
  size_t capacity;           /* bytes of pixels[] */
  uint32_t pixels[];         /* the copied rectangle, 0xXXRRGGBB, top-down */
} spice_update;

/* A watch or timer of spice-server's, a GSource on the server's context. */
struct SpiceWatch {
  GSource source;
  display_spice *owner;
  int fd;
  int mask; /* SPICE_WATCH_EVENT_* */
  gpointer tag;
  SpiceWatchFunc func;
  void *opaque;
};

struct SpiceTimer {
  GSource source;
  display_spice *owner;
  SpiceTimerFunc func;
  void *opaque;
};

typedef struct spice_channel {
  const SpiceChannelEventInfo *key; /* spice-server's, stable per channel */
  display_spice_channel_info info;
} spice_channel;

struct display_spice {
  display_surface *surface;
  display_input *input;
  GMainContext *context;
  display_listener *listener;
  SpiceServer *server;
  SpiceCoreInterface core;
  QXLInstance qxl;
  SpiceKbdInstance kbd;
  SpiceMouseInstance mouse;
  SpiceTabletInstance tablet;
  char *host;
  int port;
  bool auth;

  /* I/O thread only. */
  GSource *refresh;
  GHashTable *sources; /* SpiceWatch / SpiceTimer not yet removed */
  uint8_t *primary;    /* the primary surface's memory (the worker's) */
  int width, height;   /* of the primary surface */
  int tablet_width, tablet_height;
  int tablet_x, tablet_y; /* the client-mode pointer's last position */
  unsigned kbd_prefix; /* 0xe0 after an E0 byte */
  unsigned kbd_e1_left; /* bytes of an E1 (Pause) sequence still to come */
  bool kbd_e1_break;
  uint32_t image_unique;

  GMutex lock;
  /* The listener → the refresh source. */
  display_damage damage;
  bool resized;
  /* The refresh source → the worker. */
  GQueue queue;       /* spice_update, not yet taken */
  GHashTable *issued; /* spice_update taken and not yet released */
  spice_update *spare; /* released, for reuse (update_get) */
  size_t spare_bytes;  /* their capacity */
  size_t spare_limit;  /* SPICE_SPARE_SCREENS of the primary surface */
  /* channel_event → query. */
  GPtrArray *channels; /* spice_channel */
};

/* Which server's code runs on this thread (see the top of the file). Not
 * machine state: a per-thread pointer set around each call into
 * spice-server. */
static GPrivate spice_current;

static display_spice *
spice_enter (display_spice *sp)
{
  display_spice *prev = g_private_get (&spice_current);
  g_private_set (&spice_current, sp);
  return prev;
}

static void
spice_leave (display_spice *prev)
{
  g_private_set (&spice_current, prev);
}

/* --- spec and password --------------------------------------------------- */

gboolean
display_spice_spec_parse (const char *text, display_spice_spec *spec,
                          GError **error)
{
  memset (spec, 0, sizeof *spec);
  g_autofree char *addr = NULL;
  if (!display_listen_spec_split (text, &addr, &spec->password_file, error))
    return FALSE;
  const char *colon = strrchr (addr, ':');
  if (!colon || (colon != addr && addr[0] != '[' && memchr (addr, ':',
                                                  (size_t) (colon - addr))))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s' is not ADDR:PORT (an IPv6 address goes in "
                   "brackets)", addr);
      goto fail;
    }
  char *end = NULL;
  errno = 0;
  long n = strtol (colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || errno || n < 1 || n > 65535)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s' is not a port number (1 to 65535)", colon + 1);
      goto fail;
    }
  if (colon == addr)
    spec->host = g_strdup (DISPLAY_SPICE_DEFAULT_HOST);
  else
    {
      spec->host = g_strndup (addr, (gsize) (colon - addr));
      size_t len = strlen (spec->host);
      if (spec->host[0] == '[')
        {
          if (len < 3 || spec->host[len - 1] != ']')
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "'%s' is not an address in brackets", spec->host);
              goto fail;
            }
          memmove (spec->host, spec->host + 1, len - 2);
          spec->host[len - 2] = '\0';
        }
    }
  spec->port = (int) n;
  return TRUE;

fail:
  display_spice_spec_clear (spec);
  return FALSE;
}

void
display_spice_spec_clear (display_spice_spec *spec)
{
  g_clear_pointer (&spec->host, g_free);
  g_clear_pointer (&spec->password_file, g_free);
  spec->port = 0;
}

char *
display_spice_read_password (const char *path, GError **error)
{
  /* The same file format as VNC's, with SPICE's length limit. */
  g_autofree char *text = display_vnc_read_password (path, error);
  if (!text)
    return NULL;
  if (strlen (text) > DISPLAY_SPICE_MAX_PASSWORD)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: the password is longer than SPICE's %d bytes", path,
                   DISPLAY_SPICE_MAX_PASSWORD);
      return NULL;
    }
  return g_steal_pointer (&text);
}

/* --- the core interface: timers and watches on our GMainContext ---------- */

static gboolean
timer_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  SpiceTimer *t = (SpiceTimer *) source;
  g_source_set_ready_time (source, -1);
  /* The callback may remove this timer: GLib keeps the source alive until
   * dispatch returns, and nothing of it is touched afterwards. */
  display_spice *prev = spice_enter (t->owner);
  t->func (t->opaque);
  spice_leave (prev);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs timer_funcs = {
  .dispatch = timer_dispatch,
};

/* Core: spice-server wants a timer (ping, key-modifier sync, ...). */
static SpiceTimer *
core_timer_add (SpiceTimerFunc func, void *opaque)
{
  display_spice *sp = g_private_get (&spice_current);
  g_return_val_if_fail (sp != NULL, NULL);
  SpiceTimer *t = (SpiceTimer *) g_source_new (&timer_funcs,
                                                sizeof (SpiceTimer));
  t->owner = sp;
  t->func = func;
  t->opaque = opaque;
  g_source_set_name (&t->source, "spice timer");
  g_source_set_ready_time (&t->source, -1);
  g_source_attach (&t->source, sp->context);
  g_hash_table_add (sp->sources, t);
  return t;
}

/* Core: (re)arm a timer @ms from now. */
static void
core_timer_start (SpiceTimer *t, uint32_t ms)
{
  g_source_set_ready_time (&t->source,
                           g_get_monotonic_time () + (gint64) ms * 1000);
}

/* Core: disarm a timer. */
static void
core_timer_cancel (SpiceTimer *t)
{
  g_source_set_ready_time (&t->source, -1);
}

/* Core: a timer is no longer wanted. */
static void
core_timer_remove (SpiceTimer *t)
{
  g_hash_table_remove (t->owner->sources, t);
  g_source_destroy (&t->source);
  g_source_unref (&t->source);
}

static GIOCondition
watch_condition (int mask)
{
  return ((mask & SPICE_WATCH_EVENT_READ) ? G_IO_IN : 0)
         | ((mask & SPICE_WATCH_EVENT_WRITE) ? G_IO_OUT : 0);
}

static gboolean
watch_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  SpiceWatch *w = (SpiceWatch *) source;
  if (!w->tag)
    return G_SOURCE_CONTINUE;
  GIOCondition got = g_source_query_unix_fd (source, w->tag);
  /* A hang-up or error is news to whichever direction is watched: the
   * read or write that follows fails and spice-server drops the client. */
  int events = 0;
  if (got & (G_IO_IN | G_IO_HUP | G_IO_ERR | G_IO_NVAL))
    events |= w->mask & SPICE_WATCH_EVENT_READ;
  if (got & (G_IO_OUT | G_IO_HUP | G_IO_ERR | G_IO_NVAL))
    events |= w->mask & SPICE_WATCH_EVENT_WRITE;
  if (events)
    {
      display_spice *prev = spice_enter (w->owner);
      w->func (w->fd, events, w->opaque);
      spice_leave (prev);
    }
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs watch_funcs = {
  .dispatch = watch_dispatch,
};

/* An fd watched for nothing is left out of the poll altogether: poll
 * reports a hang-up even to an empty event mask, which would spin. */
static void
watch_set_mask (SpiceWatch *w, int mask)
{
  GIOCondition cond = watch_condition (mask);
  w->mask = mask;
  if (w->tag && cond)
    g_source_modify_unix_fd (&w->source, w->tag, cond);
  else if (w->tag)
    {
      g_source_remove_unix_fd (&w->source, w->tag);
      w->tag = NULL;
    }
  else if (cond)
    w->tag = g_source_add_unix_fd (&w->source, w->fd, cond);
}

/* Core: spice-server watches a socket (the listener, a client, its
 * dispatcher's pipe). */
static SpiceWatch *
core_watch_add (int fd, int event_mask, SpiceWatchFunc func, void *opaque)
{
  display_spice *sp = g_private_get (&spice_current);
  g_return_val_if_fail (sp != NULL, NULL);
  SpiceWatch *w = (SpiceWatch *) g_source_new (&watch_funcs,
                                                sizeof (SpiceWatch));
  w->owner = sp;
  w->fd = fd;
  w->func = func;
  w->opaque = opaque;
  g_source_set_name (&w->source, "spice watch");
  watch_set_mask (w, event_mask);
  g_source_attach (&w->source, sp->context);
  g_hash_table_add (sp->sources, w);
  return w;
}

/* Core: watch for other events (writable while output is queued). */
static void
core_watch_update_mask (SpiceWatch *w, int event_mask)
{
  watch_set_mask (w, event_mask);
}

/* Core: the socket is going away. */
static void
core_watch_remove (SpiceWatch *w)
{
  g_hash_table_remove (w->owner->sources, w);
  g_source_destroy (&w->source);
  g_source_unref (&w->source);
}

static void
channel_info_clear (display_spice_channel_info *ci)
{
  g_free (ci->host);
  g_free (ci->port);
  g_free (ci->family);
}

static void
spice_channel_free (gpointer data)
{
  spice_channel *c = data;
  channel_info_clear (&c->info);
  g_free (c);
}

/* Core: a client's channel connected, finished its handshake or went away;
 * kept for query-spice. */
static void
core_channel_event (int event, SpiceChannelEventInfo *info)
{
  display_spice *sp = g_private_get (&spice_current);
  if (!sp || !info)
    return;
  if (event == SPICE_CHANNEL_EVENT_INITIALIZED)
    {
      spice_channel *c = g_new0 (spice_channel, 1);
      c->key = info;
      c->info.connection_id = info->connection_id;
      c->info.channel_type = info->type;
      c->info.channel_id = info->id;
      char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "";
      const struct sockaddr_storage *ss = &info->paddr_ext;
      if ((info->flags & SPICE_CHANNEL_EVENT_FLAG_ADDR_EXT)
          && info->plen_ext > 0)
        getnameinfo ((const struct sockaddr *) ss, info->plen_ext, host,
                     sizeof host, serv, sizeof serv,
                     NI_NUMERICHOST | NI_NUMERICSERV);
      c->info.host = g_strdup (host);
      c->info.port = g_strdup (serv);
      c->info.family = g_strdup (ss->ss_family == AF_INET6  ? "ipv6"
                                 : ss->ss_family == AF_UNIX ? "unix"
                                                            : "ipv4");
      g_mutex_lock (&sp->lock);
      g_ptr_array_add (sp->channels, c);
      g_mutex_unlock (&sp->lock);
      /* A new client's pointer starts afresh. */
      if (info->type == SPICE_CHANNEL_INPUTS && sp->input)
        display_input_pointer_reset (sp->input);
    }
  else if (event == SPICE_CHANNEL_EVENT_DISCONNECTED)
    {
      g_mutex_lock (&sp->lock);
      for (guint i = 0; i < sp->channels->len; i++)
        if (((spice_channel *) sp->channels->pdata[i])->key == info)
          {
            g_ptr_array_remove_index (sp->channels, i);
            break;
          }
      g_mutex_unlock (&sp->lock);
    }
}

static const SpiceCoreInterface core_interface = {
  .base = {
    .type = SPICE_INTERFACE_CORE,
    .description = "vessel core",
    .major_version = SPICE_INTERFACE_CORE_MAJOR,
    .minor_version = SPICE_INTERFACE_CORE_MINOR,
  },
  .timer_add = core_timer_add,
  .timer_start = core_timer_start,
  .timer_cancel = core_timer_cancel,
  .timer_remove = core_timer_remove,
  .watch_add = core_watch_add,
  .watch_update_mask = core_watch_update_mask,
  .watch_remove = core_watch_remove,
  .channel_event = core_channel_event,
};

/* --- drawables ------------------------------------------------------------ */

/* A drawable for @bytes of pixels: a spare one large enough, or a new one
 * (not zeroed: update_new writes every byte it sends). */
static spice_update *
update_get (display_spice *sp, size_t bytes)
{
  g_mutex_lock (&sp->lock);
  spice_update **link = &sp->spare;
  while (*link && (*link)->capacity < bytes)
    link = &(*link)->next;
  spice_update *u = *link;
  if (u)
    {
      *link = u->next;
      sp->spare_bytes -= u->capacity;
    }
  g_mutex_unlock (&sp->lock);
  if (!u)
    {
      u = g_malloc (sizeof *u + bytes);
      u->capacity = bytes;
    }
  return u;
}

/* Keeps @u for reuse when the spare list has room (caller holds sp->lock);
 * returns it when not, for the caller to free once unlocked. */
static spice_update *
update_put_locked (display_spice *sp, spice_update *u)
{
  if (sp->spare_bytes + u->capacity > sp->spare_limit)
    return u;
  u->next = sp->spare;
  sp->spare = u;
  sp->spare_bytes += u->capacity;
  return NULL;
}

/* A QXL_DRAW_COPY of a copy of @img's rectangle onto the primary
 * surface. */
static spice_update *
update_new (display_spice *sp, const display_image *img, int x, int y, int w,
            int h)
{
  size_t row_bytes = (size_t) w * DISPLAY_BYTES_PER_PIXEL;
  spice_update *u = update_get (sp, row_bytes * h);
  memset (u, 0, offsetof (spice_update, next));
  for (int row = 0; row < h; row++)
    memcpy (u->pixels + (size_t) row * w,
            img->pixels + (size_t) (y + row) * img->stride
                + (size_t) x * DISPLAY_BYTES_PER_PIXEL,
            row_bytes);

  QXLImage *image = &u->image;
  image->descriptor.id = ((uint64_t) ++sp->image_unique << 32)
                         | QXL_IMAGE_GROUP_DEVICE;
  image->descriptor.type = SPICE_IMAGE_TYPE_BITMAP;
  image->descriptor.flags = 0; /* not cached: every copy is new */
  image->descriptor.width = (uint32_t) w;
  image->descriptor.height = (uint32_t) h;
  image->bitmap.format = SPICE_BITMAP_FMT_32BIT;
  image->bitmap.flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
  image->bitmap.x = (uint32_t) w;
  image->bitmap.y = (uint32_t) h;
  image->bitmap.stride = (uint32_t) row_bytes;
  image->bitmap.palette = 0;
  image->bitmap.data = (QXLPHYSICAL) (uintptr_t) u->pixels;

  QXLDrawable *d = &u->drawable;
  d->release_info.id = (uint64_t) (uintptr_t) u;
  d->surface_id = SPICE_PRIMARY_ID;
  d->effect = QXL_EFFECT_OPAQUE;
  d->type = QXL_DRAW_COPY;
  d->bbox = (QXLRect) { .left = x, .top = y, .right = x + w, .bottom = y + h };
  d->clip.type = SPICE_CLIP_TYPE_NONE;
  d->surfaces_dest[0] = d->surfaces_dest[1] = d->surfaces_dest[2] = -1;
  d->u.copy.src_bitmap = (QXLPHYSICAL) (uintptr_t) image;
  d->u.copy.src_area = (QXLRect) { .right = w, .bottom = h };
  d->u.copy.rop_descriptor = SPICE_ROPD_OP_PUT;

  u->ext.cmd.type = QXL_CMD_DRAW;
  u->ext.cmd.data = (QXLPHYSICAL) (uintptr_t) d;
  u->ext.group_id = SPICE_MEMSLOT_GROUP;
  return u;
}

/* Moves the drawables the worker has not taken to the spare list (caller
 * holds sp->lock); returns those it has no room for, linked, to be freed
 * once unlocked. */
static spice_update *
queue_drop_locked (display_spice *sp)
{
  spice_update *u, *spill = NULL;
  while ((u = g_queue_pop_head (&sp->queue)))
    if (update_put_locked (sp, u))
      {
        u->next = spill;
        spill = u;
      }
  return spill;
}

static void
updates_free (spice_update *u)
{
  while (u)
    {
      spice_update *next = u->next;
      g_free (u);
      u = next;
    }
}

static void
queue_push (display_spice *sp, spice_update *u)
{
  g_mutex_lock (&sp->lock);
  g_queue_push_tail (&sp->queue, u);
  g_mutex_unlock (&sp->lock);
}

/* Queues copies of @rects of @img (which the caller has clipped to it), or
 * of all of it when the worker has fallen behind. */
static void
queue_rects (display_spice *sp, const display_image *img,
             const display_rect *rects, unsigned n)
{
  g_mutex_lock (&sp->lock);
  bool full = g_queue_get_length (&sp->queue) + n > SPICE_MAX_QUEUED;
  spice_update *spill = full ? queue_drop_locked (sp) : NULL;
  g_mutex_unlock (&sp->lock);
  updates_free (spill);
  if (full)
    {
      queue_push (sp, update_new (sp, img, 0, 0, img->width, img->height));
      return;
    }
  for (unsigned i = 0; i < n; i++)
    queue_push (sp, update_new (sp, img, rects[i].x, rects[i].y, rects[i].w,
                                rects[i].h));
}

/* (Re)creates the primary surface at @img's size; the worker runs the
 * destroy and create synchronously, and the client is told of the new
 * mode. The new surface's content arrives as a full-screen drawable. */
static void
primary_recreate (display_spice *sp, const display_image *img)
{
  g_mutex_lock (&sp->lock);
  spice_update *spill = queue_drop_locked (sp); /* they draw at the old size */
  sp->spare_limit = SPICE_SPARE_SCREENS * (size_t) img->width * img->height
                    * DISPLAY_BYTES_PER_PIXEL;
  while (sp->spare_bytes > sp->spare_limit)
    {
      spice_update *u = sp->spare;
      sp->spare = u->next;
      sp->spare_bytes -= u->capacity;
      u->next = spill;
      spill = u;
    }
  g_mutex_unlock (&sp->lock);
  updates_free (spill);
  if (sp->primary)
    {
      spice_qxl_destroy_primary_surface (&sp->qxl, SPICE_PRIMARY_ID);
      g_clear_pointer (&sp->primary, g_free);
    }
  sp->width = img->width;
  sp->height = img->height;
  sp->primary = g_malloc0 ((size_t) img->width * img->height * 4);
  QXLDevSurfaceCreate create = {
    .width = (uint32_t) img->width,
    .height = (uint32_t) img->height,
    .stride = img->width * 4, /* positive: top-down */
    .format = SPICE_SURFACE_FMT_32_xRGB,
    .mouse_mode = TRUE, /* a tablet is there: clients may use client mode */
    .type = QXL_SURF_TYPE_PRIMARY,
    .mem = (uint64_t) (uintptr_t) sp->primary,
    .group_id = SPICE_MEMSLOT_GROUP,
  };
  spice_qxl_create_primary_surface (&sp->qxl, SPICE_PRIMARY_ID, &create);
}

/* On the I/O thread: turn the recorded damage into drawables. */
static void
spice_refresh (display_spice *sp)
{
  g_mutex_lock (&sp->lock);
  bool resized = sp->resized;
  /* Paced to the worker: while it has not taken what was queued (its pipe
   * to a slow client is full, or no client takes anything), new damage
   * waits here, merged, instead of being copied into drawables that would
   * only replace each other; taking the last one wakes the refresh again
   * (qxl_get_command), which then copies the latest pixels. */
  if (!resized && !g_queue_is_empty (&sp->queue))
    {
      g_mutex_unlock (&sp->lock);
      return;
    }
  display_damage damage = sp->damage;
  sp->resized = false;
  display_damage_clear (&sp->damage);
  g_mutex_unlock (&sp->lock);
  if (!resized && damage.n == 0)
    return;

  display_image *img = display_surface_acquire (sp->surface);
  if (!sp->primary || img->width != sp->width || img->height != sp->height)
    primary_recreate (sp, img);
  /* Damage recorded before a resize the refresh has not heard of yet may
   * lie outside this image: clipped (the resize repaints it all anyway). */
  unsigned n = 0;
  if (resized || damage.n == 0)
    damage.rects[n++] = (display_rect) { 0, 0, img->width, img->height };
  else
    for (unsigned i = 0; i < damage.n; i++)
      {
        const display_rect *r = &damage.rects[i];
        int x0 = CLAMP (r->x, 0, img->width);
        int y0 = CLAMP (r->y, 0, img->height);
        int x1 = CLAMP (r->x + r->w, 0, img->width);
        int y1 = CLAMP (r->y + r->h, 0, img->height);
        if (x1 > x0 && y1 > y0)
          damage.rects[n++] = (display_rect) { x0, y0, x1 - x0, y1 - y0 };
      }
  queue_rects (sp, img, damage.rects, n);
  display_image_release (img);
  spice_qxl_wakeup (&sp->qxl);
}

static gboolean
refresh_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  display_spice *sp = data;
  g_source_set_ready_time (source, -1);
  display_spice *prev = spice_enter (sp);
  spice_refresh (sp);
  spice_leave (prev);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs refresh_funcs = {
  .dispatch = refresh_dispatch,
};

/* --- the surface's listener (producer thread, surface lock held) --------- */

static void
spice_on_update (void *opaque, display_surface *s, const display_rect *rects,
                 unsigned n_rects)
{
  display_spice *sp = opaque;
  g_mutex_lock (&sp->lock);
  for (unsigned i = 0; i < n_rects; i++)
    display_damage_add (&sp->damage, rects[i].x, rects[i].y, rects[i].w,
                        rects[i].h);
  g_mutex_unlock (&sp->lock);
  g_source_set_ready_time (sp->refresh, 0);
}

static void
spice_on_resize (void *opaque, display_surface *s, int width, int height,
                 uint64_t generation)
{
  display_spice *sp = opaque;
  g_mutex_lock (&sp->lock);
  sp->resized = true;
  display_damage_clear (&sp->damage);
  g_mutex_unlock (&sp->lock);
  g_source_set_ready_time (sp->refresh, 0);
}

static const display_listener_ops spice_listener_ops = {
  .on_update = spice_on_update,
  .on_resize = spice_on_resize,
};

/* --- the QXL interface (spice-server's display worker thread) ------------ */

/* QXL: the worker exists; the memslot and primary surface are set up by
 * display_spice_new once spice_server_add_interface returns. */
static void
qxl_attached_worker (QXLInstance *qin)
{
}

/* QXL: the client's bandwidth changed the image compression; nothing of
 * ours depends on it. */
static void
qxl_set_compression_level (QXLInstance *qin, int level)
{
}

/* QXL: the device's limits: one memslot spanning host memory, one
 * surface (the primary). */
static void
qxl_get_init_info (QXLInstance *qin, QXLDevInitInfo *info)
{
  memset (info, 0, sizeof *info);
  info->num_memslots_groups = 1;
  info->num_memslots = 1;
  info->memslot_gen_bits = 1;
  info->memslot_id_bits = 1;
  info->n_surfaces = 1;
}

/* QXL: the worker takes the next drawable, if any (non-blocking). */
static int
qxl_get_command (QXLInstance *qin, QXLCommandExt *ext)
{
  display_spice *sp = SPICE_CONTAINEROF (qin, display_spice, qxl);
  g_mutex_lock (&sp->lock);
  spice_update *u = g_queue_pop_head (&sp->queue);
  if (u)
    g_hash_table_add (sp->issued, u);
  /* The refresh held damage back while the queue was full (see
   * spice_refresh): now it may go. */
  bool wake = u && g_queue_is_empty (&sp->queue)
              && (sp->damage.n > 0 || sp->resized);
  g_mutex_unlock (&sp->lock);
  if (wake)
    g_source_set_ready_time (sp->refresh, 0);
  if (!u)
    return 0;
  *ext = u->ext;
  return 1;
}

/* QXL: the queue ran dry; answer 0 if it has filled meanwhile, else 1 (the
 * refresh calls spice_qxl_wakeup after queueing). */
static int
qxl_req_cmd_notification (QXLInstance *qin)
{
  display_spice *sp = SPICE_CONTAINEROF (qin, display_spice, qxl);
  g_mutex_lock (&sp->lock);
  bool empty = g_queue_is_empty (&sp->queue);
  g_mutex_unlock (&sp->lock);
  return empty;
}

/* QXL: the worker is done with a drawable. */
static void
qxl_release_resource (QXLInstance *qin, QXLReleaseInfoExt release_info)
{
  display_spice *sp = SPICE_CONTAINEROF (qin, display_spice, qxl);
  spice_update *u = (spice_update *) (uintptr_t) release_info.info->id;
  spice_update *spill = NULL;
  g_mutex_lock (&sp->lock);
  if (g_hash_table_remove (sp->issued, u))
    spill = update_put_locked (sp, u);
  g_mutex_unlock (&sp->lock);
  g_free (spill);
}

/* QXL: cursor commands; the guest draws its own pointer. */
static int
qxl_get_cursor_command (QXLInstance *qin, QXLCommandExt *ext)
{
  return 0;
}

/* QXL: no cursor commands will ever come; nothing to notify. */
static int
qxl_req_cursor_notification (QXLInstance *qin)
{
  return 1;
}

/* QXL: an old (qxl-1) update-area completion; unused. */
static void
qxl_notify_update (QXLInstance *qin, uint32_t update_id)
{
}

/* QXL: the worker is short of memory and asks for released resources;
 * ours are released one by one, nothing is pending. */
static int
qxl_flush_resources (QXLInstance *qin)
{
  return 0;
}

/* QXL: completion of an *_async call; we make none. */
static void
qxl_async_complete (QXLInstance *qin, uint64_t cookie)
{
}

/* QXL: completion of spice_qxl_update_area; we make none. */
static void
qxl_update_area_complete (QXLInstance *qin, uint32_t surface_id,
                          QXLRect *updated_rects, uint32_t num_updated_rects)
{
}

/* QXL: a client came or went with its capabilities; nothing to adapt. */
static void
qxl_set_client_capabilities (QXLInstance *qin, uint8_t client_present,
                             uint8_t caps[SPICE_CAPABILITIES_SIZE])
{
}

/* QXL: a client asks for other monitor sizes; the guest picks its mode. */
static int
qxl_client_monitors_config (QXLInstance *qin,
                            VDAgentMonitorsConfig *monitors_config)
{
  return 0;
}

static const QXLInterface qxl_interface = {
  .base = {
    .type = SPICE_INTERFACE_QXL,
    .description = "vessel display",
    .major_version = SPICE_INTERFACE_QXL_MAJOR,
    .minor_version = SPICE_INTERFACE_QXL_MINOR,
  },
  .attached_worker = qxl_attached_worker,
  .set_compression_level = qxl_set_compression_level,
  .get_init_info = qxl_get_init_info,
  .get_command = qxl_get_command,
  .req_cmd_notification = qxl_req_cmd_notification,
  .release_resource = qxl_release_resource,
  .get_cursor_command = qxl_get_cursor_command,
  .req_cursor_notification = qxl_req_cursor_notification,
  .notify_update = qxl_notify_update,
  .flush_resources = qxl_flush_resources,
  .async_complete = qxl_async_complete,
  .update_area_complete = qxl_update_area_complete,
  .set_client_capabilities = qxl_set_client_capabilities,
  .client_monitors_config = qxl_client_monitors_config,
};

/* --- the inputs channel (I/O thread) -------------------------------------- */

/* Keyboard: one byte of a set 1 scan code sequence (E0-prefixed keys come
 * as two calls, Pause as E1 1D 45 / E1 9D C5). */
static void
kbd_push_scan_freg (SpiceKbdInstance *sin, uint8_t frag)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, kbd);
  if (sp->kbd_e1_left)
    {
      if (sp->kbd_e1_left == 2)
        sp->kbd_e1_break = frag & 0x80;
      if (--sp->kbd_e1_left == 0 && !sp->kbd_e1_break && sp->input)
        display_input_key (sp->input, DISPLAY_XT_PAUSE, true);
      return;
    }
  if (frag == 0xe0)
    {
      sp->kbd_prefix = 0xe0;
      return;
    }
  if (frag == 0xe1)
    {
      sp->kbd_e1_left = 2;
      return;
    }
  unsigned xt = (sp->kbd_prefix << 8) | (frag & 0x7f);
  sp->kbd_prefix = 0;
  if (sp->input && !display_input_key (sp->input, xt, !(frag & 0x80)))
    g_debug ("spice: scan code 0x%x has no PC key", xt);
}

/* Keyboard: the LEDs for the client's lock-key sync; not tracked. */
static uint8_t
kbd_get_leds (SpiceKbdInstance *sin)
{
  return 0;
}

static const SpiceKbdInterface kbd_interface = {
  .base = {
    .type = SPICE_INTERFACE_KEYBOARD,
    .description = "vessel keyboard",
    .major_version = SPICE_INTERFACE_KEYBOARD_MAJOR,
    .minor_version = SPICE_INTERFACE_KEYBOARD_MINOR,
  },
  .push_scan_freg = kbd_push_scan_freg,
  .get_leds = kbd_get_leds,
};

/* spice-server hands buttons over in PS/2 order (left 1, right 2, middle
 * 4), which is the router's. */
#define SPICE_LOCAL_BUTTONS                                                   \
  (DISPLAY_BUTTON_LEFT | DISPLAY_BUTTON_RIGHT | DISPLAY_BUTTON_MIDDLE)

/* Mouse (server mode): relative motion, wheel steps (dz > 0 is down). */
static void
mouse_motion (SpiceMouseInstance *sin, int dx, int dy, int dz,
              uint32_t buttons_state)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, mouse);
  if (sp->input)
    display_input_pointer_rel (sp->input, dx, dy, dz,
                               buttons_state & SPICE_LOCAL_BUTTONS);
}

/* Mouse (server mode): a button went down or up. */
static void
mouse_buttons (SpiceMouseInstance *sin, uint32_t buttons_state)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, mouse);
  if (sp->input)
    display_input_pointer_rel (sp->input, 0, 0, 0,
                               buttons_state & SPICE_LOCAL_BUTTONS);
}

static const SpiceMouseInterface mouse_interface = {
  .base = {
    .type = SPICE_INTERFACE_MOUSE,
    .description = "vessel mouse",
    .major_version = SPICE_INTERFACE_MOUSE_MAJOR,
    .minor_version = SPICE_INTERFACE_MOUSE_MINOR,
  },
  .motion = mouse_motion,
  .buttons = mouse_buttons,
};

/* Tablet (client mode): the size positions are given in (the primary
 * surface's). */
static void
tablet_set_logical_size (SpiceTabletInstance *sin, int width, int height)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, tablet);
  sp->tablet_width = width;
  sp->tablet_height = height;
}

static void
tablet_abs (display_spice *sp, int x, int y, uint32_t buttons_state)
{
  int w = sp->tablet_width > 0 ? sp->tablet_width : sp->width;
  int h = sp->tablet_height > 0 ? sp->tablet_height : sp->height;
  if (sp->input && w > 0 && h > 0)
    display_input_pointer_abs (sp->input, x, y, w, h,
                               buttons_state & SPICE_LOCAL_BUTTONS);
}

/* Tablet (client mode): the pointer is at (x, y). */
static void
tablet_position (SpiceTabletInstance *sin, int x, int y,
                 uint32_t buttons_state)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, tablet);
  sp->tablet_x = x;
  sp->tablet_y = y;
  tablet_abs (sp, x, y, buttons_state);
}

/* Tablet (client mode): wheel steps (> 0 is down). */
static void
tablet_wheel (SpiceTabletInstance *sin, int wheel_motion,
              uint32_t buttons_state)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, tablet);
  if (sp->input)
    display_input_pointer_rel (sp->input, 0, 0, wheel_motion,
                               buttons_state & SPICE_LOCAL_BUTTONS);
}

/* Tablet (client mode): a button went down or up where the pointer is. */
static void
tablet_buttons (SpiceTabletInstance *sin, uint32_t buttons_state)
{
  display_spice *sp = SPICE_CONTAINEROF (sin, display_spice, tablet);
  tablet_abs (sp, sp->tablet_x, sp->tablet_y, buttons_state);
}

static const SpiceTabletInterface tablet_interface = {
  .base = {
    .type = SPICE_INTERFACE_TABLET,
    .description = "vessel tablet",
    .major_version = SPICE_INTERFACE_TABLET_MAJOR,
    .minor_version = SPICE_INTERFACE_TABLET_MINOR,
  },
  .set_logical_size = tablet_set_logical_size,
  .position = tablet_position,
  .wheel = tablet_wheel,
  .buttons = tablet_buttons,
};

/* --- set-up and teardown on the context's thread ------------------------- */

typedef struct spice_call {
  GSourceFunc fn;
  gpointer data;
  GMutex lock;
  GCond cond;
  bool done;
} spice_call;

static gboolean
spice_call_dispatch (gpointer data)
{
  spice_call *call = data;
  call->fn (call->data);
  g_mutex_lock (&call->lock);
  call->done = true;
  g_cond_signal (&call->cond);
  g_mutex_unlock (&call->lock);
  return G_SOURCE_REMOVE;
}

/* Runs @fn on @context's thread and waits for it: at once when this is that
 * thread; otherwise from a source on the context. With @if_idle, inline
 * when nobody runs the context (its thread has stopped). spice-server binds
 * its main side to the thread spice_server_init runs on, so set-up never
 * runs inline on another thread: a context whose thread is starting may
 * still be free to acquire. */
static void
spice_call_on (GMainContext *context, GSourceFunc fn, gpointer data,
               bool if_idle)
{
  if (g_main_context_is_owner (context))
    {
      fn (data);
      return;
    }
  if (if_idle && g_main_context_acquire (context))
    {
      fn (data);
      g_main_context_release (context);
      return;
    }
  spice_call call = { .fn = fn, .data = data };
  g_mutex_init (&call.lock);
  g_cond_init (&call.cond);
  GSource *src = g_idle_source_new ();
  g_source_set_priority (src, G_PRIORITY_HIGH);
  g_source_set_callback (src, spice_call_dispatch, &call, NULL);
  g_source_attach (src, context);
  g_source_unref (src);
  g_mutex_lock (&call.lock);
  while (!call.done)
    g_cond_wait (&call.cond, &call.lock);
  g_mutex_unlock (&call.lock);
  g_mutex_clear (&call.lock);
  g_cond_clear (&call.cond);
}

/* Whether spice-server will be able to listen on @host:@port: it binds the
 * first address that works, as this does, but says why not only in log
 * lines of its own. */
static gboolean
spice_probe_listen (const char *host, int port, GError **error)
{
  struct addrinfo hints = {
    .ai_family = AF_UNSPEC,
    .ai_socktype = SOCK_STREAM,
    .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
  };
  struct addrinfo *res = NULL;
  char serv[16];
  g_snprintf (serv, sizeof serv, "%d", port);
  int rc = getaddrinfo (host, serv, &hints, &res);
  if (rc != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT, "%s: %s",
                   host, gai_strerror (rc));
      return FALSE;
    }
  int err = 0;
  gboolean ok = FALSE;
  for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next)
    {
      int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                       ai->ai_protocol);
      if (fd < 0)
        {
          err = errno;
          continue;
        }
      int one = 1;
      setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (ai->ai_family == AF_INET6)
        setsockopt (fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
      ok = bind (fd, ai->ai_addr, ai->ai_addrlen) == 0;
      if (!ok)
        err = errno;
      close (fd);
    }
  freeaddrinfo (res);
  if (!ok)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                 "cannot listen on %s:%d: %s", host, port, g_strerror (err));
  return ok;
}

typedef struct spice_setup {
  display_spice *sp;
  const char *password;
  GError *error;
} spice_setup;

static gboolean
spice_setup_on_context (gpointer data)
{
  spice_setup *setup = data;
  display_spice *sp = setup->sp;
  display_spice *prev = spice_enter (sp);
  sp->server = spice_server_new ();
  spice_server_set_addr (sp->server, sp->host, 0);
  spice_server_set_port (sp->server, sp->port);
  if (setup->password)
    spice_server_set_ticket (sp->server, setup->password, 0, 0, 0);
  else
    spice_server_set_noauth (sp->server);
  spice_server_set_name (sp->server, "Vessel");
  /* Lossless updates: no lossy video streams of busy areas. */
  spice_server_set_streaming_video (sp->server, SPICE_STREAM_VIDEO_OFF);
  if (spice_server_init (sp->server, &sp->core) != 0)
    {
      g_set_error (&setup->error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "cannot listen on %s:%d", sp->host, sp->port);
      spice_server_destroy (sp->server);
      sp->server = NULL;
      spice_leave (prev);
      return G_SOURCE_REMOVE;
    }
  spice_server_add_interface (sp->server, &sp->kbd.base);
  spice_server_add_interface (sp->server, &sp->mouse.base);
  spice_server_add_interface (sp->server, &sp->tablet.base);
  spice_server_add_interface (sp->server, &sp->qxl.base);
  QXLDevMemSlot slot = {
    .slot_group_id = SPICE_MEMSLOT_GROUP,
    .slot_id = SPICE_MEMSLOT_ID,
    .virt_start = 0,
    .virt_end = UINTPTR_MAX, /* all of host memory: pointers are addresses */
    .addr_delta = 0,
    .qxl_ram_size = UINT32_MAX,
  };
  spice_qxl_add_memslot (&sp->qxl, &slot);
  sp->refresh = g_source_new (&refresh_funcs, sizeof (GSource));
  g_source_set_name (sp->refresh, "spice refresh");
  g_source_set_callback (sp->refresh, NULL, sp, NULL);
  g_source_attach (sp->refresh, sp->context);
  /* The listener's first on_resize asks for the primary surface. */
  sp->listener = display_surface_add_listener (sp->surface,
                                               &spice_listener_ops, sp);
  spice_refresh (sp);
  spice_server_vm_start (sp->server);
  spice_leave (prev);
  return G_SOURCE_REMOVE;
}

static void
spice_free_memory (display_spice *sp)
{
  /* Drawables the worker never released (it is gone now). */
  g_mutex_lock (&sp->lock);
  updates_free (queue_drop_locked (sp));
  GHashTableIter it;
  gpointer u;
  g_hash_table_iter_init (&it, sp->issued);
  while (g_hash_table_iter_next (&it, &u, NULL))
    g_free (u);
  updates_free (sp->spare);
  sp->spare = NULL;
  g_mutex_unlock (&sp->lock);
  g_hash_table_unref (sp->issued);
  g_hash_table_unref (sp->sources);
  g_ptr_array_unref (sp->channels);
  g_free (sp->primary);
  g_free (sp->host);
  g_mutex_clear (&sp->lock);
  g_free (sp);
}

display_spice *
display_spice_new (display_surface *surface, display_input *input,
                   GMainContext *context, const char *host, int port,
                   const char *password, GError **error)
{
  display_spice *sp = g_new0 (display_spice, 1);
  sp->surface = surface;
  sp->input = input;
  sp->context = context;
  sp->host = g_strdup (host ? host : DISPLAY_SPICE_DEFAULT_HOST);
  sp->port = port;
  sp->auth = password && *password;
  sp->core = core_interface;
  sp->qxl.base.sif = &qxl_interface.base;
  sp->qxl.id = 0;
  sp->kbd.base.sif = &kbd_interface.base;
  sp->mouse.base.sif = &mouse_interface.base;
  sp->tablet.base.sif = &tablet_interface.base;
  g_mutex_init (&sp->lock);
  g_queue_init (&sp->queue);
  sp->issued = g_hash_table_new (NULL, NULL);
  sp->sources = g_hash_table_new (NULL, NULL);
  sp->channels = g_ptr_array_new_with_free_func (spice_channel_free);

  if (!spice_probe_listen (sp->host, port, error))
    {
      spice_free_memory (sp);
      return NULL;
    }
  spice_setup setup = { .sp = sp, .password = sp->auth ? password : NULL };
  spice_call_on (context, spice_setup_on_context, &setup, false);
  if (setup.error)
    {
      g_propagate_error (error, setup.error);
      spice_free_memory (sp);
      return NULL;
    }
  return sp;
}

static gboolean
spice_teardown_on_context (gpointer data)
{
  display_spice *sp = data;
  display_spice *prev = spice_enter (sp);
  /* Disconnects the clients, stops the worker (which releases what it
   * still holds or leaves it to us: sp->issued frees the rest). */
  spice_server_destroy (sp->server);
  sp->server = NULL;
#if SPICE_SERVER_VERSION <= 0x000f01
  /* spice-server 0.15 allocates the keyboard's and the mouse's state in
   * add_interface, has no remove for them, and does not free them on
   * destroy: they are ours to free once it is gone. */
  g_clear_pointer (&sp->kbd.st, g_free);
  g_clear_pointer (&sp->mouse.st, g_free);
#endif
  spice_leave (prev);
  /* Whatever spice-server did not remove must not fire on freed state. */
  GHashTableIter it;
  gpointer key;
  g_hash_table_iter_init (&it, sp->sources);
  while (g_hash_table_iter_next (&it, &key, NULL))
    {
      g_source_destroy (key);
      g_source_unref (key);
      g_hash_table_iter_remove (&it);
    }
  g_source_destroy (sp->refresh);
  g_source_unref (sp->refresh);
  sp->refresh = NULL;
  return G_SOURCE_REMOVE;
}

void
display_spice_free (display_spice *sp)
{
  if (!sp)
    return;
  /* After this no listener callback runs: the refresh source is not woken
   * again. */
  display_surface_remove_listener (sp->surface, sp->listener);
  spice_call_on (sp->context, spice_teardown_on_context, sp, true);
  spice_free_memory (sp);
}

display_spice_info *
display_spice_query (display_spice *sp)
{
  display_spice_info *info = g_new0 (display_spice_info, 1);
  info->host = g_strdup (sp->host);
  info->port = sp->port;
  info->auth = g_strdup (sp->auth ? "spice" : "none");
  info->mouse_mode = g_strdup (spice_server_is_server_mouse (sp->server)
                                   ? "server"
                                   : "client");
  info->compiled_version = g_strdup_printf (
      "%d.%d.%d", (SPICE_SERVER_VERSION >> 16) & 0xff,
      (SPICE_SERVER_VERSION >> 8) & 0xff, SPICE_SERVER_VERSION & 0xff);
  info->channels = g_ptr_array_new ();
  g_mutex_lock (&sp->lock);
  for (guint i = 0; i < sp->channels->len; i++)
    {
      const spice_channel *c = sp->channels->pdata[i];
      display_spice_channel_info *ci = g_new0 (display_spice_channel_info, 1);
      *ci = c->info;
      ci->host = g_strdup (c->info.host);
      ci->port = g_strdup (c->info.port);
      ci->family = g_strdup (c->info.family);
      g_ptr_array_add (info->channels, ci);
    }
  g_mutex_unlock (&sp->lock);
  return info;
}

void
display_spice_info_free (display_spice_info *info)
{
  if (!info)
    return;
  for (guint i = 0; i < info->channels->len; i++)
    {
      display_spice_channel_info *ci = info->channels->pdata[i];
      channel_info_clear (ci);
      g_free (ci);
    }
  g_ptr_array_unref (info->channels);
  g_free (info->host);
  g_free (info->auth);
  g_free (info->mouse_mode);
  g_free (info->compiled_version);
  g_free (info);
}
