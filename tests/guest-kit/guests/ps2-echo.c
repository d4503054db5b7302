/* ps2-echo: the i8042 keyboard with translation on (set 1, as a guest sees
 * it after SeaBIOS), IRQ 1 through the IOAPIC; prints every byte the
 * keyboard sends as "scancode XX" on COM1 (e.g. "scancode 1e" and
 * "scancode 9e" for A). Prints "KIT: ps2-echo ready" once listening and
 * runs until the machine is stopped. */
#include "kit.h"

KIT_GUEST("ps2-echo");

/* Command byte: keyboard IRQ, system flag, mouse interface off,
 * translation. */
#define KBC_COMMAND_BYTE 0x65
#define RING 256

static volatile uint8_t ring[RING];
static volatile uint32_t ring_head, ring_tail;

static void kbd_irq(struct kit_frame *f)
{
    (void)f;
    while (inb(0x64) & 0x01) {
        uint8_t b = inb(0x60);
        if (ring_head - ring_tail < RING)
            ring[ring_head++ % RING] = b;
    }
    kit_irq_eoi(1);
}

void kit_main(void)
{
    int r = kit_ps2_init_keyboard(KBC_COMMAND_BYTE);
    if (r)
        kit_fail("keyboard did not come up (%d)", r);
    kit_irq_route(1, kbd_irq);
    kit_printf("KIT: ps2-echo ready\n");
    for (;;) {
        sti_hlt();
        cli();
        while (ring_tail != ring_head)
            kit_printf("scancode %02x\n", ring[ring_tail++ % RING]);
    }
}
