/* Networking: how a NIC model and a network back end meet.
 *
 * A NIC (virtio-net, e1000) owns one vmm_net_port. Frames from the guest go
 * through vmm_net_port_send() to the port's back end (libslirp, or a test's
 * fake); frames for the guest come from the back end through
 * vmm_net_port_deliver(), wait in the port's bounded queue and reach the
 * NIC's receive function from a GSource on the engine's I/O thread.
 *
 * Threads and locks. Back ends run on the I/O thread only: the NIC calls
 * vmm_net_port_send() there (virtio queues are processed there; the e1000
 * defers its transmit ring to it). A back end may deliver frames from
 * inside send() (slirp answers ARP at once), so delivery never calls into
 * the NIC directly: it queues (under the port's own mutex) and wakes the
 * port's source, which calls the NIC's receive function with no lock held;
 * the NIC takes its own. When the guest has posted no receive buffers,
 * receive returns false: the frame stays queued until the NIC calls
 * vmm_net_port_rx_ready() (any thread). A full queue drops the newest frame
 * and counts it. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_NET_ETH_ALEN 6
#define VMM_NET_PORT_QUEUE_MAX 1024 /* frames waiting for guest buffers */
#define VMM_NET_FRAME_MAX 65550     /* the largest frame a port carries */

typedef struct vmm_net_port vmm_net_port;
typedef struct vmm_net_backend vmm_net_backend;

typedef struct vmm_net_backend_ops {
  /* A frame from the guest, on the I/O thread. */
  void (*send) (vmm_net_backend *be, const uint8_t *frame, size_t len);
  void (*free) (vmm_net_backend *be);
} vmm_net_backend_ops;

struct vmm_net_backend {
  const vmm_net_backend_ops *ops;
  vmm_net_port *port; /* set by vmm_net_port_set_backend */
};

/* The NIC's side: take @frame into guest buffers (or drop it, counting it)
 * and return true; false when no buffers are posted (the port keeps it). */
typedef bool (*vmm_net_receive_fn) (void *opaque, const uint8_t *frame,
                                    size_t len);

typedef struct vmm_net_port_stats {
  uint64_t tx_frames; /* guest → back end */
  uint64_t rx_frames; /* back end → guest, taken by the NIC */
  uint64_t rx_queue_dropped; /* the queue was full */
} vmm_net_port_stats;

vmm_net_port *vmm_net_port_new (GMainContext *io, vmm_net_receive_fn receive,
                                void *opaque);
/* Frees the back end too; the I/O thread must not be running it. */
void vmm_net_port_free (vmm_net_port *port);
/* Takes ownership of @be (NULL: frames from the guest are dropped). */
void vmm_net_port_set_backend (vmm_net_port *port, vmm_net_backend *be);
vmm_net_backend *vmm_net_port_backend (vmm_net_port *port);

/* Guest → back end (I/O thread). */
void vmm_net_port_send (vmm_net_port *port, const uint8_t *frame, size_t len);
/* Back end → guest: copies @frame into the queue (any thread). */
void vmm_net_port_deliver (vmm_net_port *port, const uint8_t *frame,
                           size_t len);
/* The guest posted receive buffers (any thread). */
void vmm_net_port_rx_ready (vmm_net_port *port);
/* Forgets queued frames (a NIC reset). */
void vmm_net_port_flush_queue (vmm_net_port *port);
/* Runs the delivery now on the calling thread (tests drive it so). */
void vmm_net_port_process (vmm_net_port *port);
unsigned vmm_net_port_queued (vmm_net_port *port);
void vmm_net_port_get_stats (vmm_net_port *port, vmm_net_port_stats *out);

/* A GSource that runs @fn once after one or more vmm_net_wake_raise()
 * calls, from any thread. Unlike a ready time, raising it on its own
 * context's thread costs no wake-up of the loop (GLib signals the
 * context's eventfd at every g_source_set_ready_time()). */
typedef struct vmm_net_wake vmm_net_wake;
vmm_net_wake *vmm_net_wake_new (GMainContext *io, void (*fn) (void *opaque),
                                void *opaque);
void vmm_net_wake_raise (vmm_net_wake *w);
void vmm_net_wake_free (vmm_net_wake *w);

/* The Internet checksum (RFC 1071) of @len bytes, folded, not inverted,
 * starting from @sum. */
uint32_t vmm_net_csum_add (uint32_t sum, const uint8_t *p, size_t len);
uint16_t vmm_net_csum_fold (uint32_t sum);

G_END_DECLS
