/* The 8042 keyboard controller (ports 0x60 and 0x64, IRQ 1 and 12) with a
 * PS/2 keyboard and a PS/2 mouse behind it. */
#pragma once

#include <stddef.h>

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/irq.h"
#include "vmm-core/devices/isa.h"

G_BEGIN_DECLS

#define I8042_DEFAULT_BASE 0x60 /* data at base, status/command at base + 4 */
#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12

/* Mouse buttons for i8042_mouse_put_motion(). */
enum {
  I8042_BUTTON_LEFT = 1u << 0,
  I8042_BUTTON_RIGHT = 1u << 1,
  I8042_BUTTON_MIDDLE = 1u << 2,
  I8042_BUTTON_SIDE = 1u << 3,  /* button 4: IntelliMouse Explorer only */
  I8042_BUTTON_EXTRA = 1u << 4, /* button 5: IntelliMouse Explorer only */
};

typedef struct i8042 i8042;

/* @reset_request: output port bit 0 pulsed or written low (VMM_RESET_CPU).
 * @a20_changed: output port bit 1 changed. Both with the lock held (see
 * isa.h); either may be NULL. */
i8042 *i8042_create (const vmm_irq *kbd_irq, const vmm_irq *aux_irq,
                     vmm_reset_request_fn reset_request,
                     vmm_a20_changed_fn a20_changed, void *opaque);
vmm_device *i8042_device (i8042 *kbc);
/* Claims @base (data) and @base + 4 (status/command). */
gboolean i8042_attach (i8042 *kbc, vmm_bus *pio, uint16_t base,
                       GError **error);

/* Host input (take the lock). Keys are scan code set 2 bytes, make and
 * break (0xF0 prefix) as a PS/2 keyboard sends them; the keyboard converts
 * to set 1 when the guest selected it and the controller translates when its
 * command byte says so. Dropped while scanning is disabled or the queue is
 * full. Mouse motion: dy positive is up, dz positive is towards the user
 * (wheel down), as PS/2 counts them. */
void i8042_keyboard_put (i8042 *kbc, const uint8_t *scancodes, size_t n);
void i8042_mouse_put_motion (i8042 *kbc, int dx, int dy, int dz,
                             unsigned buttons);

/* The A20 gate as the output port has it. */
bool i8042_a20 (i8042 *kbc);

G_END_DECLS
