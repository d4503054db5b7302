/* The firmware debug console (Bochs/QEMU "debugcon"): bytes written to one
 * port go to a chardev; a read returns 0xE9 so firmware can detect it. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/devices/chardev.h"

G_BEGIN_DECLS

#define DEBUGCON_DEFAULT_PORT 0x402 /* SeaBIOS and OVMF's choice */
#define DEBUGCON_READBACK 0xe9

typedef struct debugcon debugcon;

debugcon *debugcon_create (const vmm_chardev *chr);
vmm_device *debugcon_device (debugcon *dc);
gboolean debugcon_attach (debugcon *dc, vmm_bus *pio, uint16_t port,
                          GError **error);

G_END_DECLS
