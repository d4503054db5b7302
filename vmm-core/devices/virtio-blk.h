/* virtio-blk (virtio 1.2, 5.2) on the virtio PCI transport: PCI 1AF4:1042,
 * class 0x018000 (mass storage, other).
 *
 * Features offered: SEG_MAX, BLK_SIZE (512), FLUSH, MQ (when more than one
 * queue), and DISCARD and WRITE_ZEROES on a writable image or RO on a
 * read-only one; with the transport's VERSION_1, INDIRECT_DESC, EVENT_IDX.
 * Requests: IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES (with the unmap
 * flag); anything else completes with VIRTIO_BLK_S_UNSUPP. The device does
 * not assume any framing (5.2.6.4): the header is the first 16 readable
 * bytes, the status the last writable byte.
 *
 * Data moves between the image and the guest's buffers in the block layer
 * (vmm_block_submit / vmm_block_submitv): straight through the kernel where
 * the image and alignment allow, else through the block layer's bounce
 * buffer on its worker thread; no copy on the I/O thread. Reads land in
 * guest memory as they complete, so a reset waits until the reads in flight
 * have landed (vmm_block_wait_transfers) and then forgets them: nothing of
 * theirs (data, status, used entry) reaches the guest after. At most
 * queue-size requests are in flight per queue; more wait in the ring.
 *
 * Guest errors: a request the device can answer (short header, bad length,
 * range past the capacity, write to a read-only disk) gets IOERR or UNSUPP;
 * a chain it cannot answer (malformed, or no writable status byte) sets
 * DEVICE_NEEDS_RESET. */
#pragma once

#include "vmm-core/block/block.h"
#include "vmm-core/devices/virtio-pci.h"

G_BEGIN_DECLS

#define VIRTIO_BLK_CLASS 0x018000
#define VIRTIO_BLK_QUEUE_SIZE 256
#define VIRTIO_BLK_MAX_QUEUES 4
#define VIRTIO_BLK_SECTOR 512
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_CONFIG_LEN 60
#define VIRTIO_BLK_MAX_DISCARD_SECTORS (1u << 22)
#define VIRTIO_BLK_MAX_DISCARD_SEG 8

/* Feature bits (5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* Request types and status (5.2.6). */
enum {
  VIRTIO_BLK_T_IN = 0,
  VIRTIO_BLK_T_OUT = 1,
  VIRTIO_BLK_T_FLUSH = 4,
  VIRTIO_BLK_T_GET_ID = 8,
  VIRTIO_BLK_T_DISCARD = 11,
  VIRTIO_BLK_T_WRITE_ZEROES = 13,
  VIRTIO_BLK_S_OK = 0,
  VIRTIO_BLK_S_IOERR = 1,
  VIRTIO_BLK_S_UNSUPP = 2,
  VIRTIO_BLK_WZ_F_UNMAP = 1,
};

/* Device configuration offsets (5.2.4). */
enum {
  VIRTIO_BLK_CFG_CAPACITY = 0,
  VIRTIO_BLK_CFG_SIZE_MAX = 8,
  VIRTIO_BLK_CFG_SEG_MAX = 12,
  VIRTIO_BLK_CFG_BLK_SIZE = 20,
  VIRTIO_BLK_CFG_NUM_QUEUES = 34,
  VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS = 36,
  VIRTIO_BLK_CFG_MAX_DISCARD_SEG = 40,
  VIRTIO_BLK_CFG_DISCARD_ALIGNMENT = 44,
  VIRTIO_BLK_CFG_MAX_WZ_SECTORS = 48,
  VIRTIO_BLK_CFG_MAX_WZ_SEG = 52,
  VIRTIO_BLK_CFG_WZ_MAY_UNMAP = 56,
};

typedef struct virtio_blk virtio_blk;

/* @bs stays the caller's; its completions are posted to @io (this sets
 * vmm_block_set_completion_context). @num_queues 1..VIRTIO_BLK_MAX_QUEUES.
 * @msi and @ioev as for vmm_virtio_pci_new. */
virtio_blk *virtio_blk_create (const vmm_guest_memory *mem, GMainContext *io,
                               const vmm_msi_host *msi,
                               const vmm_ioeventfd_host *ioev, VmmBlock *bs,
                               unsigned num_queues, GError **error);
/* Destroy with vmm_device_destroy(); in-flight completions still pending on
 * @io are dropped safely, but close @bs only after vmm_block_drain(). */
vmm_device *virtio_blk_device (virtio_blk *blk);
vmm_pci_device *virtio_blk_pci (virtio_blk *blk);
gboolean virtio_blk_attach (virtio_blk *blk, vmm_pci_host *host,
                            unsigned devfn, GError **error);

/* Host side (takes the lock). GET_ID answers with @serial, NUL-padded to
 * 20 bytes (longer is cut). Default: empty. */
void virtio_blk_set_serial (virtio_blk *blk, const char *serial);
/* After vmm_block_resize(): new capacity, config-change interrupt. */
void virtio_blk_resize_notify (virtio_blk *blk);

G_END_DECLS
