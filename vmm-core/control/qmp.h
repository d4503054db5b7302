/* The control socket: QMP over a UNIX socket for one machine, so that QMP
 * scripts and clients (socat, python's qemu.qmp) drive a Vessel machine.
 * The socket and every client live on the machine's I/O thread; commands
 * call the engine API there and events reach every client that has sent
 * qmp_capabilities. Several clients may be connected at once. */
#pragma once

#include "vmm-core/machine/machine.h"

#include <glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct vmm_qmp_server vmm_qmp_server;

/* A client sent "quit" (its reply is sent): the front end should end the
 * machine. Called on the I/O thread. */
typedef void (*vmm_qmp_quit_fn) (void *opaque);

/* Listens on @path (mode 0600). A stale socket there is replaced; anything
 * else, or a socket someone still listens on, is refused. @cfg (may be
 * NULL) names the disks for query-block; it is copied. Without @quit_fn,
 * "quit" powers the machine off. Call from any thread while the machine's
 * I/O thread runs. */
vmm_qmp_server *vmm_qmp_server_new (vmm_machine *m, const char *path,
                                    const vmm_machine_config *cfg,
                                    vmm_qmp_quit_fn quit_fn, void *opaque,
                                    GError **error);
/* Disconnects every client, removes the socket file. Before
 * vmm_machine_free; not from the I/O thread's callbacks. */
void vmm_qmp_server_free (vmm_qmp_server *s);

/* A reply the engine cannot give by itself, from the front end that runs
 * the service (a VNC server lives in display/, outside vmm-core): @fn
 * returns a new object, called on the I/O thread. */
typedef JsonObject *(*vmm_qmp_query_fn) (void *opaque);
/* query-vnc (QMP's VncInfo: enabled, host, service, family, auth,
 * clients). Without it query-vnc answers {"enabled": false}. Any thread. */
void vmm_qmp_server_set_query_vnc (vmm_qmp_server *s, vmm_qmp_query_fn fn,
                                   void *opaque);
/* query-spice (QMP's SpiceInfo: enabled, migrated, host, port, auth,
 * compiled-version, mouse-mode, channels). Without it query-spice answers
 * {"enabled": false}. Any thread. */
void vmm_qmp_server_set_query_spice (vmm_qmp_server *s, vmm_qmp_query_fn fn,
                                     void *opaque);

G_END_DECLS
