/* The VNC server (see vnc.h), after libvncserver's examples/server/example.c:
 * rfbMarkRectAsModified per damaged area, rfbNewFramebuffer on a mode
 * change, input through kbdAddEvent/ptrAddEvent, the event loop polled with
 * rfbProcessEvents on the server's own thread. */
#include "display/vnc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gio/gio.h>
#include <netdb.h>
#include <netinet/in.h>
#include <rfb/rfb.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How long the server thread waits in select for client traffic before it
 * looks at the surface's damage again (the surface changes at 30 Hz). */
#define VNC_POLL_USEC 10000
/* The same with no client: nothing to send, so it only watches the
 * listening socket (a connection ends the wait at once) and the stop flag,
 * which display_vnc_free therefore waits at most this long for. */
#define VNC_IDLE_POLL_USEC 200000
/* RFB button mask bits. */
#define RFB_BUTTON_LEFT 0x01
#define RFB_BUTTON_MIDDLE 0x02
#define RFB_BUTTON_RIGHT 0x04
#define RFB_WHEEL_UP 0x08
#define RFB_WHEEL_DOWN 0x10
#define RFB_BUTTON_SIDE 0x80
#define RFB_BUTTON_EXTRA 0x100

typedef struct vnc_client {
  display_vnc *v;
  display_vnc_client_info info;
  int last_buttons;
} vnc_client;

struct display_vnc {
  display_surface *surface;
  display_input *input;
  display_listener *listener;
  rfbScreenInfoPtr screen;
  /* The rfb framebuffer is the surface's image itself (held by a
   * reference), served in its own pixel format: no copy. */
  display_image *img;
  int fb_width, fb_height;
  char *passwords[2];
  GThread *thread;
  gint stop;

  /* The listener's side (producer thread) → the server thread. */
  GMutex lock;
  display_damage damage;
  bool resized;
  /* For display_vnc_query (any thread). */
  char *host, *service, *family;
  GPtrArray *clients; /* vnc_client *, not owned */
};

/* libvncserver logs through two global functions; its chatter is debug
 * output here. */
static void
vnc_log (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_debug ("vnc: %s", g_strchomp (msg));
}

/* --- spec and password --------------------------------------------------- */

gboolean
display_listen_spec_split (const char *text, char **addr,
                           char **password_file, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  g_autofree char *file = NULL;
  for (guint i = 1; parts[0] && parts[i]; i++)
    {
      if (g_str_has_prefix (parts[i], "password-file=")
          && parts[i][strlen ("password-file=")])
        {
          g_free (file);
          file = g_strdup (parts[i] + strlen ("password-file="));
        }
      else
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "'%s' is not password-file=FILE", parts[i]);
          return FALSE;
        }
    }
  *addr = g_strdup (parts[0] ? parts[0] : "");
  *password_file = g_steal_pointer (&file);
  return TRUE;
}

gboolean
display_vnc_spec_parse (const char *text, display_vnc_spec *spec,
                        GError **error)
{
  memset (spec, 0, sizeof *spec);
  g_autofree char *addr = NULL;
  if (!display_listen_spec_split (text, &addr, &spec->password_file, error))
    return FALSE;
  const char *colon = strrchr (addr, ':');
  if (!colon)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s' is not ADDR:PORT or :DISPLAY", addr);
      goto fail;
    }
  char *end = NULL;
  errno = 0;
  long n = strtol (colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || errno || n < 0 || n > 65535)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s' is not a port number", colon + 1);
      goto fail;
    }
  if (colon == addr)
    {
      /* :N, a display number. */
      if (n > 65535 - DISPLAY_VNC_BASE_PORT)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "display :%ld is out of range", n);
          goto fail;
        }
      spec->host = g_strdup (DISPLAY_VNC_DEFAULT_HOST);
      spec->port = DISPLAY_VNC_BASE_PORT + (int) n;
      return TRUE;
    }
  if (n == 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "port 0 is not a port to listen on");
      goto fail;
    }
  spec->host = g_strndup (addr, (gsize) (colon - addr));
  size_t len = strlen (spec->host);
  if (len >= 2 && spec->host[0] == '[' && spec->host[len - 1] == ']')
    {
      memmove (spec->host, spec->host + 1, len - 2);
      spec->host[len - 2] = '\0';
    }
  spec->port = (int) n;
  return TRUE;

fail:
  display_vnc_spec_clear (spec);
  return FALSE;
}

void
display_vnc_spec_clear (display_vnc_spec *spec)
{
  g_clear_pointer (&spec->host, g_free);
  g_clear_pointer (&spec->password_file, g_free);
  spec->port = 0;
}

char *
display_vnc_read_password (const char *path, GError **error)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, error))
    return NULL;
  text[strcspn (text, "\r\n")] = '\0';
  if (!*text)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: the first line (the password) is empty", path);
      return NULL;
    }
  return g_steal_pointer (&text);
}

/* --- the surface's side -------------------------------------------------- */

static void
vnc_on_update (void *opaque, display_surface *s, const display_rect *rects,
               unsigned n_rects)
{
  display_vnc *v = opaque;
  g_mutex_lock (&v->lock);
  for (unsigned i = 0; i < n_rects; i++)
    display_damage_add (&v->damage, rects[i].x, rects[i].y, rects[i].w,
                        rects[i].h);
  g_mutex_unlock (&v->lock);
}

static void
vnc_on_resize (void *opaque, display_surface *s, int width, int height,
               uint64_t generation)
{
  display_vnc *v = opaque;
  g_mutex_lock (&v->lock);
  v->resized = true;
  display_damage_clear (&v->damage);
  g_mutex_unlock (&v->lock);
}

static const display_listener_ops vnc_listener_ops = {
  .on_update = vnc_on_update,
  .on_resize = vnc_on_resize,
};

/* The server's pixel format is the surface's, 0xXXRRGGBB host words, so
 * that the surface's image is the framebuffer and a client asking for that
 * format (depth 24 in 32 bits: most do, and QEMU's is the same) gets it
 * untranslated. rfbGetScreen and rfbNewFramebuffer set depth 32 and R, G, B
 * byte order: put depth and shifts back and give every client the matching
 * translation. */
static void
vnc_native_format (display_vnc *v)
{
  rfbPixelFormat *f = &v->screen->serverFormat;
  if (f->depth == 24 && f->redShift == 16 && f->greenShift == 8
      && f->blueShift == 0)
    return;
  v->screen->depth = 24;
  f->depth = 24;
  f->redShift = 16;
  f->greenShift = 8;
  f->blueShift = 0;
  rfbClientIteratorPtr it = rfbGetClientIterator (v->screen);
  rfbClientPtr cl;
  while ((cl = rfbClientIteratorNext (it)) != NULL)
    v->screen->setTranslateFunction (cl);
  rfbReleaseClientIterator (it);
}

/* On the server thread: bring the framebuffer up to date with the
 * surface. */
static void
vnc_refresh (display_vnc *v)
{
  display_damage damage;
  g_mutex_lock (&v->lock);
  bool resized = v->resized;
  damage = v->damage;
  v->resized = false;
  display_damage_clear (&v->damage);
  g_mutex_unlock (&v->lock);
  if (!resized && damage.n == 0)
    return;

  /* libvncserver reads the image while the renderer writes it, as a copy
   * would: a torn rectangle is damaged again and sent again. */
  display_image *img = display_surface_acquire (v->surface);
  if (img != v->img)
    {
      display_image *old = v->img;
      v->img = img; /* the acquired reference */
      v->fb_width = img->width;
      v->fb_height = img->height;
      rfbNewFramebuffer (v->screen, (char *) img->pixels, img->width,
                         img->height, 8, 3, 4);
      vnc_native_format (v);
      display_image_release (old);
      return;
    }
  if (resized)
    rfbMarkRectAsModified (v->screen, 0, 0, img->width, img->height);
  else
    for (unsigned i = 0; i < damage.n; i++)
      {
        const display_rect *r = &damage.rects[i];
        int x0 = CLAMP (r->x, 0, img->width), y0 = CLAMP (r->y, 0, img->height);
        int x1 = CLAMP (r->x + r->w, 0, img->width);
        int y1 = CLAMP (r->y + r->h, 0, img->height);
        if (x1 > x0 && y1 > y0)
          rfbMarkRectAsModified (v->screen, x0, y0, x1, y1);
      }
  display_image_release (img);
}

/* --- clients and input (server thread) ----------------------------------- */

static void
vnc_client_gone (rfbClientPtr cl)
{
  vnc_client *c = cl->clientData;
  if (!c)
    return;
  display_vnc *v = c->v;
  g_mutex_lock (&v->lock);
  g_ptr_array_remove (v->clients, c);
  g_mutex_unlock (&v->lock);
  /* Keys held by a client that went away would repeat forever. */
  if (v->input)
    display_input_release_all (v->input);
  g_free (c->info.host);
  g_free (c->info.service);
  g_free (c->info.family);
  g_free (c);
  cl->clientData = NULL;
}

static enum rfbNewClientAction
vnc_new_client (rfbClientPtr cl)
{
  display_vnc *v = cl->screen->screenData;
  vnc_client *c = g_new0 (vnc_client, 1);
  c->v = v;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  char host[NI_MAXHOST] = "", serv[NI_MAXSERV] = "";
  if (getpeername (cl->sock, (struct sockaddr *) &ss, &len) == 0)
    getnameinfo ((struct sockaddr *) &ss, len, host, sizeof host, serv,
                 sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV);
  c->info.host = g_strdup (host);
  c->info.service = g_strdup (serv);
  c->info.family = g_strdup (ss.ss_family == AF_INET6 ? "ipv6" : "ipv4");
  cl->clientData = c;
  cl->clientGoneHook = vnc_client_gone;
  g_mutex_lock (&v->lock);
  g_ptr_array_add (v->clients, c);
  g_mutex_unlock (&v->lock);
  if (v->input)
    display_input_pointer_reset (v->input);
  return RFB_CLIENT_ACCEPT;
}

static void
vnc_key (rfbBool down, rfbKeySym keysym, rfbClientPtr cl)
{
  display_vnc *v = cl->screen->screenData;
  if (v->input && !display_input_keysym (v->input, keysym, down))
    g_debug ("vnc: keysym 0x%x has no PC key", (unsigned) keysym);
}

static void
vnc_pointer (int mask, int x, int y, rfbClientPtr cl)
{
  display_vnc *v = cl->screen->screenData;
  vnc_client *c = cl->clientData;
  if (!v->input || !c)
    return;
  unsigned buttons = 0;
  if (mask & RFB_BUTTON_LEFT)
    buttons |= DISPLAY_BUTTON_LEFT;
  if (mask & RFB_BUTTON_MIDDLE)
    buttons |= DISPLAY_BUTTON_MIDDLE;
  if (mask & RFB_BUTTON_RIGHT)
    buttons |= DISPLAY_BUTTON_RIGHT;
  if (mask & RFB_BUTTON_SIDE)
    buttons |= DISPLAY_BUTTON_SIDE;
  if (mask & RFB_BUTTON_EXTRA)
    buttons |= DISPLAY_BUTTON_EXTRA;
  display_input_pointer_abs (v->input, x, y, v->fb_width, v->fb_height,
                             buttons);
  /* Wheel "buttons" click on press. */
  int pressed = mask & ~c->last_buttons;
  int dz = ((pressed & RFB_WHEEL_DOWN) ? 1 : 0)
           - ((pressed & RFB_WHEEL_UP) ? 1 : 0);
  if (dz)
    display_input_pointer_rel (v->input, 0, 0, dz, buttons);
  c->last_buttons = mask;
}

static gpointer
vnc_thread (gpointer data)
{
  display_vnc *v = data;
  while (!g_atomic_int_get (&v->stop))
    {
      vnc_refresh (v);
      /* v->clients changes only in hooks on this thread */
      rfbProcessEvents (v->screen, v->clients->len ? VNC_POLL_USEC
                                                   : VNC_IDLE_POLL_USEC);
    }
  return NULL;
}

/* --- server -------------------------------------------------------------- */

static int
vnc_listen (const char *host, int port, char **family, GError **error)
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
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%s: %s", host, gai_strerror (rc));
      return -1;
    }
  int fd = -1, err = 0;
  for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
    {
      fd = socket (ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
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
      if (bind (fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen (fd, 8) == 0)
        {
          *family = g_strdup (ai->ai_family == AF_INET6 ? "ipv6" : "ipv4");
          break;
        }
      err = errno;
      close (fd);
      fd = -1;
    }
  freeaddrinfo (res);
  if (fd < 0)
    g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                 "cannot listen on %s:%d: %s", host, port, g_strerror (err));
  return fd;
}

display_vnc *
display_vnc_new (display_surface *surface, display_input *input,
                 const char *host, int port, const char *password,
                 GError **error)
{
  if (!host)
    host = DISPLAY_VNC_DEFAULT_HOST;
  g_autofree char *family = NULL;
  int fd = vnc_listen (host, port, &family, error);
  if (fd < 0)
    return NULL;

  rfbLog = vnc_log;
  rfbErr = vnc_log;
  display_vnc *v = g_new0 (display_vnc, 1);
  v->surface = surface;
  v->input = input;
  g_mutex_init (&v->lock);
  v->clients = g_ptr_array_new ();
  v->host = g_strdup (host);
  v->service = g_strdup_printf ("%d", port);
  v->family = g_steal_pointer (&family);

  v->img = display_surface_acquire (surface);
  v->fb_width = v->img->width;
  v->fb_height = v->img->height;

  /* No argv: nothing from the command line reaches libvncserver. */
  int argc = 0;
  v->screen = rfbGetScreen (&argc, NULL, v->fb_width, v->fb_height, 8, 3, 4);
  v->screen->frameBuffer = (char *) v->img->pixels;
  vnc_native_format (v);
  v->screen->desktopName = "Vessel";
  v->screen->screenData = v;
  v->screen->alwaysShared = TRUE;
  v->screen->cursor = NULL; /* the guest draws its own */
  v->screen->port = 0;      /* we listen ourselves (any address family) */
  v->screen->ipv6port = 0;
  v->screen->httpPort = 0;
  v->screen->httpDir = NULL;
  v->screen->newClientHook = vnc_new_client;
  v->screen->kbdAddEvent = vnc_key;
  v->screen->ptrAddEvent = vnc_pointer;
  if (password && *password)
    {
      v->passwords[0] = g_strdup (password);
      v->passwords[1] = NULL;
      v->screen->authPasswdData = v->passwords;
      v->screen->passwordCheck = rfbCheckPasswordByList;
    }
  rfbInitServer (v->screen);
  v->screen->listenSock = fd;
  FD_SET (fd, &v->screen->allFds);
  v->screen->maxFd = MAX (v->screen->maxFd, fd);

  v->listener = display_surface_add_listener (surface, &vnc_listener_ops, v);
  v->thread = g_thread_new ("vnc", vnc_thread, v);
  return v;
}

void
display_vnc_free (display_vnc *v)
{
  if (!v)
    return;
  g_atomic_int_set (&v->stop, 1);
  g_thread_join (v->thread);
  display_surface_remove_listener (v->surface, v->listener);
  rfbShutdownServer (v->screen, TRUE);
  /* Clients' gone hooks ran in rfbShutdownServer/rfbScreenCleanup. */
  rfbScreenCleanup (v->screen);
  display_image_release (v->img);
  g_free (v->passwords[0]);
  g_ptr_array_unref (v->clients);
  g_free (v->host);
  g_free (v->service);
  g_free (v->family);
  g_mutex_clear (&v->lock);
  g_free (v);
}

display_vnc_info *
display_vnc_query (display_vnc *v)
{
  display_vnc_info *info = g_new0 (display_vnc_info, 1);
  info->host = g_strdup (v->host);
  info->service = g_strdup (v->service);
  info->family = g_strdup (v->family);
  info->auth = g_strdup (v->passwords[0] ? "vnc" : "none");
  info->clients = g_ptr_array_new ();
  g_mutex_lock (&v->lock);
  for (guint i = 0; i < v->clients->len; i++)
    {
      vnc_client *c = v->clients->pdata[i];
      display_vnc_client_info *ci = g_new0 (display_vnc_client_info, 1);
      ci->host = g_strdup (c->info.host);
      ci->service = g_strdup (c->info.service);
      ci->family = g_strdup (c->info.family);
      g_ptr_array_add (info->clients, ci);
    }
  g_mutex_unlock (&v->lock);
  return info;
}

void
display_vnc_info_free (display_vnc_info *info)
{
  if (!info)
    return;
  for (guint i = 0; i < info->clients->len; i++)
    {
      display_vnc_client_info *ci = info->clients->pdata[i];
      g_free (ci->host);
      g_free (ci->service);
      g_free (ci->family);
      g_free (ci);
    }
  g_ptr_array_unref (info->clients);
  g_free (info->host);
  g_free (info->service);
  g_free (info->family);
  g_free (info->auth);
  g_free (info);
}
