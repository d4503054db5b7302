/* System Control Port A (port 0x92): fast A20 gate and fast reset. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/devices/isa.h"

G_BEGIN_DECLS

#define PORT92_PORT 0x92

typedef struct port92 port92;

/* @reset_request (VMM_RESET_CPU) when bit 0 is written 1; @a20_changed
 * when bit 1 changes. Both with the lock held (see isa.h); may be NULL. */
port92 *port92_create (vmm_reset_request_fn reset_request,
                       vmm_a20_changed_fn a20_changed, void *opaque);
vmm_device *port92_device (port92 *p);
gboolean port92_attach (port92 *p, vmm_bus *pio, uint16_t port,
                        GError **error);
bool port92_a20 (port92 *p);

G_END_DECLS
