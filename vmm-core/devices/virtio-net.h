/* virtio-net (virtio 1.2, 5.1) on the modern virtio PCI transport: PCI
 * 1AF4:1041 (0x1040 + device ID 1), class 0x020000 (Ethernet).
 *
 * Feature bits offered (5.1.3): VIRTIO_NET_F_CSUM (the driver may leave
 * TCP/UDP checksums to us: we compute them host-side), GUEST_CSUM (frames
 * we hand over carry VIRTIO_NET_HDR_F_DATA_VALID: slirp's checksums are
 * always right), MAC, MRG_RXBUF, STATUS (link up, always). No TSO/UFO: the
 * user-mode back end takes frames one by one, see the note in virtio-net.c.
 *
 * Queues (5.1.2): 0 receiveq1, 1 transmitq1; no control queue. Every frame
 * is preceded by struct virtio_net_hdr (5.1.6), 12 bytes with VERSION_1.
 *
 * Device configuration (5.1.4), 10 bytes: mac[6], le16 status
 * (VIRTIO_NET_S_LINK_UP), le16 max_virtqueue_pairs (1).
 *
 * Transmit runs on the I/O thread (the transmit queue's notification is an
 * ioeventfd watched there). Receive: frames from the back end reach the
 * device through its vmm_net_port on the I/O thread; with MRG_RXBUF a frame
 * spans as many posted buffers as it needs (num_buffers in the header),
 * without it one buffer must hold it all.
 *
 * Guest errors are dropped and counted, the host carries on: a transmit
 * chain that is malformed (loops, out of RAM, device-writable buffers,
 * shorter than the header), a frame over VIRTIO_NET_MAX_FRAME or under an
 * Ethernet header, a bad checksum request or a GSO type we never offered;
 * a receive buffer too small (no MRG_RXBUF) or device-readable. Each is
 * returned to the driver as used with length 0. A bogus avail index sets
 * DEVICE_NEEDS_RESET, as for every virtio device. The first few drops of
 * each kind are logged with the running count; virtio_net_get_stats()
 * gives the counters. */
#pragma once

#include "vmm-core/devices/virtio-pci.h"
#include "vmm-core/net/net.h"

G_BEGIN_DECLS

#define VIRTIO_NET_CLASS 0x020000
#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_CONFIG_LEN 10
#define VIRTIO_NET_HDR_LEN 12
/* An Ethernet frame with a VLAN tag, no FCS: what an MTU of 1500 allows. */
#define VIRTIO_NET_MAX_FRAME 1518
#define VIRTIO_NET_MIN_FRAME 14

/* Feature bits (5.1.3). */
#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16

#define VIRTIO_NET_S_LINK_UP 1
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE 0

enum {
  VIRTIO_NET_RXQ = 0,
  VIRTIO_NET_TXQ = 1,
};

typedef struct virtio_net_stats {
  uint64_t tx_frames;
  uint64_t rx_frames;
  uint64_t tx_malformed;  /* bad chains, bad headers, bad checksum requests */
  uint64_t tx_oversized;  /* frames over VIRTIO_NET_MAX_FRAME or too short */
  uint64_t tx_csum;       /* checksums we computed for the guest */
  uint64_t rx_dropped;    /* no usable buffer, or the driver not running */
} virtio_net_stats;

typedef struct virtio_net virtio_net;

/* @msi and @ioev as for vmm_virtio_pci_new; @rom (may be NULL) is an
 * option ROM for the PCI expansion ROM BAR; @backend (owned, may be NULL)
 * gets the guest's frames. */
virtio_net *virtio_net_create (const char *name, const vmm_guest_memory *mem,
                               GMainContext *io, const vmm_msi_host *msi,
                               const vmm_ioeventfd_host *ioev,
                               const uint8_t mac[6], const uint8_t *rom,
                               size_t rom_len, vmm_net_backend *backend,
                               GError **error);
/* Destroy with vmm_device_destroy(). */
vmm_device *virtio_net_device (virtio_net *n);
vmm_pci_device *virtio_net_pci (virtio_net *n);
vmm_net_port *virtio_net_port (virtio_net *n);
gboolean virtio_net_attach (virtio_net *n, vmm_pci_host *host, unsigned devfn,
                            GError **error);
void virtio_net_get_stats (virtio_net *n, virtio_net_stats *out);

G_END_DECLS
