/* tablet: the virtio-input tablet. Sets the std VGA to the command line's
 * mode (default mode=800x600x32) so that viewers see a screen of a known
 * size, finds the virtio-input function, checks its configuration (a name,
 * ABS_X and ABS_Y with min 0 and max 32767, BTN_LEFT), posts event buffers
 * and prints each complete batch (ending in SYN_REPORT) as
 * "abs X Y buttons B" (X, Y in 0..32767; B bit 0 left, 1 right, 2 middle,
 * 3 side, 4 extra), with " wheel W" when the batch turned the wheel.
 * Prints "KIT: tablet ready ..." once listening; polls the used ring on a
 * 100 Hz PIT tick and halts in between; runs until the machine is
 * stopped. */
#include "kit.h"

KIT_GUEST("tablet");

#define ABS_MAX 32767

struct fill_job { uint64_t lfb; uint32_t pitch, height; };
static struct fill_job job;

static uint64_t user_fill(uint64_t arg)
{
    const struct fill_job *j = (const struct fill_job *)(uintptr_t)arg;
    for (uint32_t y = 0; y < j->height; y++) {
        uint32_t *row = (uint32_t *)(uintptr_t)(j->lfb + (uint64_t)y * j->pitch);
        for (uint32_t x = 0; x < j->pitch / 4; x++)
            row[x] = 0x00203060;
    }
    return 0;
}

static void pit_irq(struct kit_frame *f)
{
    (void)f;
    kit_irq_eoi(0);
}

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void kit_main(void)
{
    uint32_t w = 800, h = 600, bpp = 32;
    if (kit_boot.cmdline[0] && !kit_vbe_parse_mode(kit_boot.cmdline, &w, &h, &bpp))
        kit_fail("bad command line \"%s\" (want mode=WxHx32)", kit_boot.cmdline);
    if (bpp != 32)
        kit_fail("tablet draws at 32 bpp only");
    struct kit_vbe vbe;
    int r = kit_vbe_find(&vbe);
    if (r || (r = kit_vbe_set_mode(&vbe, w, h, bpp)))
        kit_fail("std VGA mode %ux%u: %d", w, h, r);
    job = (struct fill_job){ vbe.lfb, vbe.pitch, h };
    kit_user_call(user_fill, (uint64_t)(uintptr_t)&job);

    static struct kit_vinput v;
    r = kit_vinput_find(&v);
    if (r)
        kit_fail("no virtio-input device (%d)", r);
    uint8_t u[129];
    unsigned n = kit_vinput_config(&v, KIT_VINPUT_CFG_ID_NAME, 0, u);
    if (n == 0)
        kit_fail("no ID_NAME");
    u[n < 128 ? n : 128] = 0;
    char name[129];
    memcpy(name, u, sizeof(name));
    for (uint8_t axis = 0; axis < 2; axis++) {
        n = kit_vinput_config(&v, KIT_VINPUT_CFG_ABS_INFO, axis, u);
        if (n < 8 || le32(u) != 0 || le32(u + 4) != ABS_MAX)
            kit_fail("ABS_INFO axis %u: size %u min %u max %u", axis, n, le32(u), le32(u + 4));
    }
    n = kit_vinput_config(&v, KIT_VINPUT_CFG_EV_BITS, KIT_EV_ABS, u);
    if (n < 1 || (u[0] & 3) != 3)
        kit_fail("EV_ABS bits: size %u", n);
    n = kit_vinput_config(&v, KIT_VINPUT_CFG_EV_BITS, KIT_EV_KEY, u);
    if (n <= KIT_BTN_LEFT / 8 || !(u[KIT_BTN_LEFT / 8] & (1u << (KIT_BTN_LEFT % 8))))
        kit_fail("EV_KEY has no BTN_LEFT");
    r = kit_vinput_init(&v);
    if (r)
        kit_fail("virtio-input init: %d", r);

    kit_irq_route(0, pit_irq);
    kit_pit_periodic(100);
    kit_printf("KIT: tablet ready name=\"%s\" max=%u screen=%ux%u pci=%02x:%02x.%x\n", name,
               ABS_MAX, w, h, v.pci.bus, v.pci.dev, v.pci.fn);
    uint32_t x = 0, y = 0, buttons = 0;
    int32_t wheel = 0;
    for (;;) {
        sti_hlt();
        cli();
        struct kit_vinput_event e;
        bool took = false;
        while (kit_vinput_next(&v, &e)) {
            took = true;
            if (e.type == KIT_EV_ABS && e.code == 0)
                x = e.value;
            else if (e.type == KIT_EV_ABS && e.code == 1)
                y = e.value;
            else if (e.type == KIT_EV_KEY && e.code >= KIT_BTN_LEFT && e.code < KIT_BTN_LEFT + 5) {
                uint32_t bit = 1u << (e.code - KIT_BTN_LEFT);
                buttons = e.value ? buttons | bit : buttons & ~bit;
            } else if (e.type == KIT_EV_REL && e.code == KIT_REL_WHEEL)
                wheel += (int32_t)e.value;
            else if (e.type == KIT_EV_SYN) {
                if (wheel)
                    kit_printf("abs %u %u buttons %u wheel %d\n", x, y, buttons, wheel);
                else
                    kit_printf("abs %u %u buttons %u\n", x, y, buttons);
                wheel = 0;
            }
        }
        if (took)
            kit_vinput_kick(&v);
        if (kit_vinput_status(&v) & KIT_VIRTIO_S_NEEDS_RESET)
            kit_fail("the device needs a reset");
    }
}
