/* A SPICE server (spice-server) that shows a display surface and feeds the
 * clients' keys and pointer into an input router.
 *
 * spice-server sees a fake QXL device: a primary surface in memory of ours
 * (re-created when the surface changes size), and one QXL_DRAW_COPY
 * drawable per damaged rectangle, handed to its display worker (a thread of
 * spice-server's own) from a queue. The inputs channel feeds the router:
 * set 1 scan codes from the keyboard, relative motion in server mouse mode
 * and absolute positions (a tablet) in client mouse mode.
 *
 * Everything of spice-server's main side (the listening socket, the
 * clients' main and inputs channels, the core interface's watches and
 * timers) runs on the GMainContext given to display_spice_new, the engine's
 * I/O thread. The surface's listener only records damage and wakes a source
 * on that context.
 *
 * Writing to a client that went away raises SIGPIPE: the program must
 * ignore it (vessel-run does). */
#pragma once

#include "display/input.h"
#include "display/surface.h"

#include <glib.h>

G_BEGIN_DECLS

#define DISPLAY_SPICE_DEFAULT_HOST "127.0.0.1"
/* Longer tickets do not fit spice's RSA-encrypted password message. */
#define DISPLAY_SPICE_MAX_PASSWORD 60

/* What --spice says: [ADDR]:PORT[,password-file=F]; ADDR defaults to the
 * loopback address, an IPv6 address goes in brackets: [::1]:5930. */
typedef struct display_spice_spec {
  char *host;
  int port;
  char *password_file; /* NULL: no authentication */
} display_spice_spec;

gboolean display_spice_spec_parse (const char *text, display_spice_spec *spec,
                                   GError **error);
void display_spice_spec_clear (display_spice_spec *spec);

/* The ticket: the file's first line (without its line end); must not be
 * empty nor longer than DISPLAY_SPICE_MAX_PASSWORD. */
char *display_spice_read_password (const char *path, GError **error);

typedef struct display_spice display_spice;

/* Listens on @host:@port (host NULL: the loopback address); @password NULL
 * or "" for no authentication. @input may be NULL (view only). @context is
 * where spice-server's main side runs: a thread must be running it (the
 * engine's I/O thread does, from vmm_machine_new to vmm_machine_free). */
display_spice *display_spice_new (display_surface *surface,
                                  display_input *input, GMainContext *context,
                                  const char *host, int port,
                                  const char *password, GError **error);
/* Disconnects the clients and stops spice-server. Before the surface, the
 * input router and @context's thread go away. */
void display_spice_free (display_spice *sp);

typedef struct display_spice_channel_info {
  char *host;
  char *port;   /* the client's port */
  char *family; /* "ipv4", "ipv6" or "unix" */
  int connection_id;
  int channel_type; /* SPICE_CHANNEL_MAIN, _DISPLAY, _INPUTS, _CURSOR, ... */
  int channel_id;
} display_spice_channel_info;

typedef struct display_spice_info {
  char *host;
  int port;
  char *auth;       /* "none" or "spice" */
  char *mouse_mode; /* "client" or "server" */
  char *compiled_version;
  GPtrArray *channels; /* display_spice_channel_info */
} display_spice_info;

/* A snapshot; on @context's thread (QMP's query functions run there). */
display_spice_info *display_spice_query (display_spice *sp);
void display_spice_info_free (display_spice_info *info);

G_END_DECLS
