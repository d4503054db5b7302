/* Constants shared by the virtio transport and devices (virtio 1.2,
 * OASIS Committee Specification 01). Only modern (1.x) devices: no legacy
 * I/O BAR, little-endian everywhere. */
#pragma once

#include <stdint.h>

/* Device status (2.1). */
enum {
  VIRTIO_STATUS_ACKNOWLEDGE = 1,
  VIRTIO_STATUS_DRIVER = 2,
  VIRTIO_STATUS_DRIVER_OK = 4,
  VIRTIO_STATUS_FEATURES_OK = 8,
  VIRTIO_STATUS_DEVICE_NEEDS_RESET = 64,
  VIRTIO_STATUS_FAILED = 128,
};

/* Reserved feature bits (6). */
#define VIRTIO_F_RING_INDIRECT_DESC 28
#define VIRTIO_F_RING_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32
#define VIRTIO_F_ACCESS_PLATFORM 33

#define VIRTIO_BIT(n) (UINT64_C (1) << (n))

/* Device types (5). */
enum {
  VIRTIO_ID_NET = 1,
  VIRTIO_ID_BLOCK = 2,
  VIRTIO_ID_CONSOLE = 3,
  VIRTIO_ID_INPUT = 18,
};

/* Split virtqueue (2.7). */
enum {
  VIRTQ_DESC_F_NEXT = 1,
  VIRTQ_DESC_F_WRITE = 2,
  VIRTQ_DESC_F_INDIRECT = 4,
  VIRTQ_USED_F_NO_NOTIFY = 1,
  VIRTQ_AVAIL_F_NO_INTERRUPT = 1,
};
#define VIRTQ_MAX_SIZE 32768
#define VIRTQ_DESC_SIZE 16
#define VIRTQ_ALIGN_DESC 16
#define VIRTQ_ALIGN_AVAIL 2
#define VIRTQ_ALIGN_USED 4

/* MSI-X "no vector" (4.1.4.3). */
#define VIRTIO_MSI_NO_VECTOR 0xffff

/* ISR status bits (4.1.4.5). */
enum {
  VIRTIO_ISR_QUEUE = 1,
  VIRTIO_ISR_CONFIG = 2,
};
