/* Shared between the control socket (qmp.c) and its commands
 * (qmp-commands.c). Everything here is touched on the I/O thread only,
 * except where a field says otherwise. */
#pragma once

#include "vmm-core/control/qmp-protocol.h"
#include "vmm-core/control/qmp.h"

#include <sys/types.h>

/* The CD-ROM drive is the IDE secondary master: QEMU calls it ide1-cd0;
 * "cd0" is its short name here. */
#define QMP_CD_DEVICE "ide1-cd0"
#define QMP_CD_ID "cd0"

typedef struct qmp_disk {
  char *device; /* ide0-hd0, virtio0, ... */
  char *path;
  char *format;
  bool readonly;
} qmp_disk;

struct vmm_qmp_server {
  gatomicrefcount ref; /* one per queued notice, one for the owner */
  vmm_machine *machine; /* set once */
  GMainContext *ctx;    /* set once */
  char *path;           /* set once */
  dev_t dev;
  ino_t ino;
  int listen_fd;
  GSource *listen_source;
  unsigned listener_id;
  vmm_qmp_quit_fn quit_fn;
  void *quit_opaque;
  qmp_disk *disks;
  size_t n_disks;

  /* qmp_notice from the machine's listener, on any thread. */
  GMutex notice_lock;
  GQueue notices;
  /* The front end's query-vnc and query-spice (under notice_lock). */
  vmm_qmp_query_fn query_vnc;
  void *query_vnc_opaque;
  vmm_qmp_query_fn query_spice;
  void *query_spice_opaque;

  GList *clients; /* qmp_client */
  bool closed;
  bool quit_requested; /* a client sent quit; acted on after its reply */
  bool quitting;
  unsigned host_resets; /* system_reset commands whose RESET is pending */
  bool tray_open;       /* as last reported in DEVICE_TRAY_MOVED */
};

/* Every command but qmp_capabilities; the opaque is the server. */
extern const vmm_qmp_command vmm_qmp_commands[];

/* Sends an event to every negotiated client; takes @data (may be NULL). */
void qmp_server_broadcast (vmm_qmp_server *s, const char *name,
                           JsonObject *data);
