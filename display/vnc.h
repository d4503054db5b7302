/* A VNC server (libvncserver) that shows a display surface and feeds the
 * clients' keys and pointer into an input router.
 *
 * The server runs on a thread of its own: it takes the surface's damage
 * (recorded by a listener on the producer's thread), copies the changed rows
 * of the current image into its framebuffer, marks them modified and serves
 * every client from that thread (one select loop, no thread per client).
 * Nothing runs on the engine's I/O thread but the listener's bookkeeping.
 *
 * Writing to a client that went away raises SIGPIPE: the program must
 * ignore it (vessel-run does). */
#pragma once

#include "display/input.h"
#include "display/surface.h"

#include <glib.h>

G_BEGIN_DECLS

#define DISPLAY_VNC_DEFAULT_HOST "127.0.0.1"
#define DISPLAY_VNC_BASE_PORT 5900

/* What --vnc says: ADDR:PORT[,password-file=F], or :N for port 5900 + N on
 * the loopback address. An IPv6 address goes in brackets: [::1]:5901. */
typedef struct display_vnc_spec {
  char *host;
  int port;
  char *password_file; /* NULL: no authentication */
} display_vnc_spec;

gboolean display_vnc_spec_parse (const char *text, display_vnc_spec *spec,
                                 GError **error);
void display_vnc_spec_clear (display_vnc_spec *spec);

/* The options both --vnc and --spice take after the address:
 * ADDR[,password-file=F]. Sets *@addr (a copy) and *@password_file (NULL
 * when absent); on error neither is set. */
gboolean display_listen_spec_split (const char *text, char **addr,
                                    char **password_file, GError **error);

/* The password: the file's first line (without its line end); must not be
 * empty. VNC authentication uses its first 8 bytes. */
char *display_vnc_read_password (const char *path, GError **error);

typedef struct display_vnc display_vnc;

/* Listens on @host:@port (host NULL: the loopback address); @password NULL
 * or "" for no authentication. @input may be NULL (view only). */
display_vnc *display_vnc_new (display_surface *surface, display_input *input,
                              const char *host, int port,
                              const char *password, GError **error);
/* Disconnects the clients, stops the thread, removes the listener. Before
 * the surface and the input router go away. */
void display_vnc_free (display_vnc *v);

typedef struct display_vnc_client_info {
  char *host;
  char *service; /* the client's port */
  char *family;  /* "ipv4" or "ipv6" */
} display_vnc_client_info;

typedef struct display_vnc_info {
  char *host;
  char *service; /* the listening port */
  char *family;
  char *auth; /* "none" or "vnc" */
  GPtrArray *clients; /* display_vnc_client_info */
} display_vnc_info;

/* A snapshot, from any thread. */
display_vnc_info *display_vnc_query (display_vnc *v);
void display_vnc_info_free (display_vnc_info *info);

G_END_DECLS
