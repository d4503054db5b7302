/* virtio-input (virtio 1.2, 5.8) as an absolute pointer, a "tablet", on the
 * virtio PCI transport: PCI 1AF4:1052 (0x1040 + device ID 18), revision 1,
 * subsystem 1AF4:1100 (4.1.2.1: a non-transitional device's subsystem
 * device ID is 0x40 or higher), class 0x098000 (input device controller,
 * other). No device feature bits (5.8.3).
 *
 * Queues (5.8.2): 0 eventq (device → driver: one virtio_input_event per
 * buffer), 1 statusq (driver → device: LED and similar feedback, taken and
 * returned unread).
 *
 * Device configuration (5.8.4), 136 bytes: select (u8), subsel (u8), size
 * (u8, read-only), 5 reserved bytes, then a 128-byte union. The driver
 * writes select and subsel; size and the union then describe:
 *   ID_NAME     "Vessel Tablet"
 *   ID_SERIAL   "vessel-tablet"
 *   ID_DEVIDS   bustype BUS_VIRTUAL (6), vendor 0x0627, product 0x0003,
 *               version 1 (the IDs Linux's HID tablets of this kind use)
 *   PROP_BITS   none (size 0): not INPUT_PROP_DIRECT, so guests treat it
 *               as an absolute mouse, not a touchscreen
 *   EV_BITS     subsel EV_KEY: BTN_LEFT, BTN_RIGHT, BTN_MIDDLE, BTN_SIDE,
 *               BTN_EXTRA; EV_REL: REL_WHEEL; EV_ABS: ABS_X, ABS_Y; other
 *               types size 0
 *   ABS_INFO    subsel ABS_X or ABS_Y: min 0, max 32767, fuzz, flat and
 *               res 0
 * Anything else reads size 0. Writes to other bytes are ignored.
 *
 * Events (5.8.6): each host pointer event becomes one batch of
 * virtio_input_event {le16 type, le16 code, le32 value}: EV_ABS ABS_X,
 * EV_ABS ABS_Y, an EV_KEY per button that changed (1 down, 0 up), EV_REL
 * REL_WHEEL when the wheel turned (positive is away from the user), then
 * EV_SYN SYN_REPORT. Batches wait in a bounded queue of
 * VIRTIO_INPUT_PENDING_MAX events while the driver has posted no buffers;
 * on overflow the oldest whole batches are dropped.
 *
 * Guest errors: a malformed eventq or statusq chain, a read-only or
 * shorter-than-8-byte event buffer set DEVICE_NEEDS_RESET; events then stop
 * until the driver resets the device (the host falls back to PS/2). */
#pragma once

#include "vmm-core/devices/virtio-pci.h"

G_BEGIN_DECLS

#define VIRTIO_INPUT_CLASS 0x098000
#define VIRTIO_INPUT_QUEUE_SIZE 64
#define VIRTIO_INPUT_CONFIG_LEN 136
#define VIRTIO_INPUT_CONFIG_PAYLOAD 8 /* offset of the union */
#define VIRTIO_INPUT_EVENT_BYTES 8
#define VIRTIO_INPUT_ABS_MAX 32767
#define VIRTIO_INPUT_PENDING_MAX 256

enum {
  VIRTIO_INPUT_EVENTQ = 0,
  VIRTIO_INPUT_STATUSQ = 1,
};

/* Configuration selectors (5.8.4). */
enum {
  VIRTIO_INPUT_CFG_UNSET = 0x00,
  VIRTIO_INPUT_CFG_ID_NAME = 0x01,
  VIRTIO_INPUT_CFG_ID_SERIAL = 0x02,
  VIRTIO_INPUT_CFG_ID_DEVIDS = 0x03,
  VIRTIO_INPUT_CFG_PROP_BITS = 0x10,
  VIRTIO_INPUT_CFG_EV_BITS = 0x11,
  VIRTIO_INPUT_CFG_ABS_INFO = 0x12,
};

/* Event types and codes: Linux's include/uapi/linux/input-event-codes.h,
 * which 5.8.6 refers to. */
enum {
  VIRTIO_INPUT_EV_SYN = 0x00,
  VIRTIO_INPUT_EV_KEY = 0x01,
  VIRTIO_INPUT_EV_REL = 0x02,
  VIRTIO_INPUT_EV_ABS = 0x03,
  VIRTIO_INPUT_SYN_REPORT = 0,
  VIRTIO_INPUT_BTN_LEFT = 0x110,
  VIRTIO_INPUT_BTN_RIGHT = 0x111,
  VIRTIO_INPUT_BTN_MIDDLE = 0x112,
  VIRTIO_INPUT_BTN_SIDE = 0x113,
  VIRTIO_INPUT_BTN_EXTRA = 0x114,
  VIRTIO_INPUT_REL_WHEEL = 0x08,
  VIRTIO_INPUT_ABS_X = 0x00,
  VIRTIO_INPUT_ABS_Y = 0x01,
  VIRTIO_INPUT_BUS_VIRTUAL = 0x06,
};

/* Buttons as the host passes them (the PS/2 bit order of display/input.h). */
enum {
  VIRTIO_INPUT_BUTTON_LEFT = 1u << 0,
  VIRTIO_INPUT_BUTTON_RIGHT = 1u << 1,
  VIRTIO_INPUT_BUTTON_MIDDLE = 1u << 2,
  VIRTIO_INPUT_BUTTON_SIDE = 1u << 3,
  VIRTIO_INPUT_BUTTON_EXTRA = 1u << 4,
};

typedef struct virtio_input virtio_input;

/* @msi and @ioev as for vmm_virtio_pci_new. */
virtio_input *virtio_input_tablet_create (const vmm_guest_memory *mem,
                                          GMainContext *io,
                                          const vmm_msi_host *msi,
                                          const vmm_ioeventfd_host *ioev,
                                          GError **error);
/* Destroy with vmm_device_destroy(). */
vmm_device *virtio_input_device (virtio_input *vi);
vmm_pci_device *virtio_input_pci (virtio_input *vi);
gboolean virtio_input_attach (virtio_input *vi, vmm_pci_host *host,
                              unsigned devfn, GError **error);

/* Host side, any thread (takes the device's lock). */

/* The driver is running (DRIVER_OK, eventq enabled, no DEVICE_NEEDS_RESET). */
bool virtio_input_ready (virtio_input *vi);
/* The pointer at (@x, @y), each 0..VIRTIO_INPUT_ABS_MAX (clamped), @wheel
 * steps (positive: towards the user, as display/input.h counts; sent as a
 * negative REL_WHEEL) and the buttons now held. Queues one batch; the I/O
 * thread then delivers what the posted buffers take. Returns false,
 * queueing nothing, when the driver is not running. */
bool virtio_input_tablet_event (virtio_input *vi, unsigned x, unsigned y,
                                int wheel, unsigned buttons);
/* Events waiting for buffers (for tests). */
unsigned virtio_input_pending (virtio_input *vi);

G_END_DECLS
