/* virtio over PCI, modern (1.x) only: the transport every virtio device sits
 * on (virtio 1.2, 4.1). The device model (virtio-blk, …) supplies its
 * config space and queue processing through vmm_virtio_device_ops; the
 * transport owns the PCI function, the common configuration, the queues'
 * rings, notifications and interrupts.
 *
 * PCI function: vendor 0x1AF4, device 0x1040 + type, revision 1, subsystem
 * 1AF4:1100 (the value QEMU uses for every device; drivers match on the
 * device ID), class chosen by the device, INTA#.
 *
 * BAR 4, 64-bit prefetchable memory, 16 KiB, one 4 KiB page per structure
 * (as QEMU lays it out):
 *   0x0000 common configuration (4.1.4.3)
 *   0x1000 ISR status (4.1.4.5): reading clears it and lowers INTx
 *   0x2000 device configuration
 *   0x3000 notifications: queue N at 0x3000 + 4 * N (notify_off N,
 *          notify_off_multiplier 4)
 * BAR 1, 32-bit memory, 4 KiB: the MSI-X table at 0 and the PBA at 0x800
 * (PCI 3.0 6.8.2; kept apart from the prefetchable BAR as QEMU does).
 * One MSI-X vector per queue plus one for configuration changes.
 *
 * Capabilities: vendor-specific (0x09) COMMON_CFG, NOTIFY_CFG, ISR_CFG,
 * DEVICE_CFG and PCI_CFG (the config-space window onto the BARs), then
 * MSI-X (0x11) when an MSI host is given.
 *
 * Features: the device's own plus VIRTIO_F_VERSION_1 (required: FEATURES_OK
 * is refused without it), VIRTIO_F_RING_INDIRECT_DESC and
 * VIRTIO_F_RING_EVENT_IDX; never VIRTIO_F_ACCESS_PLATFORM.
 *
 * Threads and locks: every guest access arrives with the owner device's
 * lock held (the bus and the PCI host take it). A write to a notify address
 * only signals the queue's eventfd, which is also registered as an
 * ioeventfd while BAR 4 is mapped and the queue enabled, so with KVM the
 * vCPU does not even exit. The eventfds are watched on the I/O thread's
 * GMainContext; there the transport takes the lock and calls the device's
 * queue_notify. Interrupts: with MSI-X enabled, writing the vector's
 * eventfd, which vmm_msi_host binds to the message (KVM irqfd); masked
 * vectors set their PBA bit and fire on unmask. Without MSI-X, the ISR bit
 * and INTx. */
#pragma once

#include "vmm-core/bus/eventfd.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/devices/virtqueue.h"

G_BEGIN_DECLS

#define VIRTIO_PCI_VENDOR_ID 0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_ID 0x1100
#define VIRTIO_PCI_BAR 4
#define VIRTIO_PCI_BAR_SIZE 0x4000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_BAR 1
#define VIRTIO_PCI_MSIX_BAR_SIZE 0x1000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x800
#define VIRTIO_PCI_MAX_QUEUES 63 /* plus one vector for config: 64 */

/* virtio_pci_cap cfg_type (4.1.4). */
enum {
  VIRTIO_PCI_CAP_COMMON_CFG = 1,
  VIRTIO_PCI_CAP_NOTIFY_CFG = 2,
  VIRTIO_PCI_CAP_ISR_CFG = 3,
  VIRTIO_PCI_CAP_DEVICE_CFG = 4,
  VIRTIO_PCI_CAP_PCI_CFG = 5,
};

/* Common configuration offsets (4.1.4.3). */
enum {
  VIRTIO_PCI_COMMON_DFSELECT = 0x00,
  VIRTIO_PCI_COMMON_DF = 0x04,
  VIRTIO_PCI_COMMON_GFSELECT = 0x08,
  VIRTIO_PCI_COMMON_GF = 0x0c,
  VIRTIO_PCI_COMMON_MSIX = 0x10,
  VIRTIO_PCI_COMMON_NUMQ = 0x12,
  VIRTIO_PCI_COMMON_STATUS = 0x14,
  VIRTIO_PCI_COMMON_CFGGENERATION = 0x15,
  VIRTIO_PCI_COMMON_Q_SELECT = 0x16,
  VIRTIO_PCI_COMMON_Q_SIZE = 0x18,
  VIRTIO_PCI_COMMON_Q_MSIX = 0x1a,
  VIRTIO_PCI_COMMON_Q_ENABLE = 0x1c,
  VIRTIO_PCI_COMMON_Q_NOFF = 0x1e,
  VIRTIO_PCI_COMMON_Q_DESC = 0x20,
  VIRTIO_PCI_COMMON_Q_DRIVER = 0x28,
  VIRTIO_PCI_COMMON_Q_DEVICE = 0x30,
};

typedef struct vmm_virtio_pci vmm_virtio_pci;

/* What a device model gives the transport. Every op runs with the owner's
 * lock held. */
typedef struct vmm_virtio_device_ops {
  /* Fills the device configuration (config_len bytes) as it reads now. */
  void (*get_config) (void *opaque, uint8_t *buf);
  /* The driver wrote [offset, offset + len) of it. Optional. */
  void (*set_config) (void *opaque, unsigned offset, const uint8_t *data,
                      unsigned len);
  /* Queue @index has new buffers (on the I/O thread). */
  void (*queue_notify) (void *opaque, unsigned index);
  /* The driver wrote 0 to device_status, or the machine reset: forget
   * in-flight requests; nothing of theirs may reach guest memory after. */
  void (*reset) (void *opaque);
} vmm_virtio_device_ops;

typedef struct vmm_virtio_pci_info {
  uint16_t device_type; /* VIRTIO_ID_* */
  uint32_t class_code;  /* 24 bits */
  uint64_t features;    /* device-specific bits (0..23, 50..127) */
  unsigned num_queues;  /* 1..VIRTIO_PCI_MAX_QUEUES */
  uint16_t queue_size;  /* maximum, a power of two */
  unsigned config_len;  /* bytes of device configuration, up to 4 KiB */
} vmm_virtio_pci_info;

/* @dev is the owner whose lock guards everything; @msi may be NULL (no
 * MSI-X capability, INTx only) and so may @ioev (notifications always exit
 * to the bus handler). */
vmm_virtio_pci *vmm_virtio_pci_new (vmm_device *dev,
                                    const vmm_guest_memory *mem,
                                    GMainContext *io, const vmm_msi_host *msi,
                                    const vmm_ioeventfd_host *ioev,
                                    const vmm_virtio_pci_info *info,
                                    const vmm_virtio_device_ops *ops,
                                    void *opaque, GError **error);
/* Call with the lock not held; removes the I/O-thread watches. */
void vmm_virtio_pci_free (vmm_virtio_pci *vp);

vmm_pci_device *vmm_virtio_pci_pci (vmm_virtio_pci *vp);
gboolean vmm_virtio_pci_attach (vmm_virtio_pci *vp, vmm_pci_host *host,
                                unsigned devfn, GError **error);

/* The machine's reset (lock held): PCI function, MSI-X table, virtio state. */
void vmm_virtio_pci_reset (vmm_virtio_pci *vp);

/* For the device model, lock held. */
uint64_t vmm_virtio_pci_driver_features (vmm_virtio_pci *vp);
unsigned vmm_virtio_pci_num_queues (vmm_virtio_pci *vp);
/* The queue if the driver has enabled it and the device is running
 * (DRIVER_OK, not DEVICE_NEEDS_RESET); NULL otherwise. */
vmm_virtqueue *vmm_virtio_pci_queue (vmm_virtio_pci *vp, unsigned index);
/* After pushing used buffers: interrupt unless the driver suppressed it. */
void vmm_virtio_pci_queue_interrupt (vmm_virtio_pci *vp, unsigned index);
/* The device configuration changed: bump config_generation, interrupt. */
void vmm_virtio_pci_config_changed (vmm_virtio_pci *vp);
/* A fatal guest error: DEVICE_NEEDS_RESET (and a config interrupt once the
 * driver is running); logs one line. Queue processing stops until reset. */
void vmm_virtio_pci_needs_reset (vmm_virtio_pci *vp, const char *fmt, ...)
    G_GNUC_PRINTF (2, 3);
uint8_t vmm_virtio_pci_status (vmm_virtio_pci *vp);

/* Transport state (common config, queues' addresses and indices, MSI-X
 * table, PCI config space) as a tagged, versioned blob; load validates all
 * of it before changing anything. Lock held. */
void vmm_virtio_pci_save (vmm_virtio_pci *vp, GByteArray *out);
gboolean vmm_virtio_pci_load (vmm_virtio_pci *vp, const uint8_t *data,
                              size_t len, GError **error);

G_END_DECLS
