/* Two small host services that fast devices (virtio) use through eventfds,
 * so that neither notifications nor interrupts leave the kernel when KVM
 * can do the work:
 *
 *  - ioeventfd: a guest write to an address signals an eventfd without an
 *    exit to user space (KVM_IOEVENTFD);
 *  - MSI vectors: writing an eventfd raises an MSI message (KVM_IRQFD on a
 *    GSI routed to the message).
 *
 * The board implements them on the KVM VM; unit tests substitute stubs. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct vmm_ioeventfd_host {
  gboolean (*add) (void *opaque, bool pio, uint64_t addr, unsigned len,
                   int fd, GError **error);
  void (*remove) (void *opaque, bool pio, uint64_t addr, unsigned len,
                  int fd);
  void *opaque;
} vmm_ioeventfd_host;

typedef struct vmm_msi_host {
  /* Binds @fd to the message; returns a handle (>= 0) or -1 with @error. */
  int (*vector_add) (void *opaque, uint64_t addr, uint32_t data, int fd,
                     GError **error);
  void (*vector_update) (void *opaque, int handle, uint64_t addr,
                         uint32_t data);
  void (*vector_remove) (void *opaque, int handle);
  void *opaque;
} vmm_msi_host;
