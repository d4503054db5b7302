/* vbe-pattern: the std VGA in a VBE DISPI linear-framebuffer mode chosen on
 * the command line ("mode=1024x768x32"; 8, 15, 16, 24 or 32 bpp), drawn with
 * a pattern a test can compute: a white border BORDER pixels wide, and
 * inside it eight vertical colour bars, bar i covering the columns
 * [i * W / 8, (i + 1) * W / 8) (the border drawn over their ends). Colours
 * (8-bit RGB): red, green, blue, yellow, cyan, magenta, grey (128), orange
 * (255, 128, 0); 15/16 bpp keep the top 5/6 bits, 8 bpp uses DAC entries
 * 1-8 (white 9) with the top 6 bits. Prints "KIT: pattern ready mode=WxHxB"
 * and halts with the picture on screen. The drawing runs at CPL3. */
#include "kit.h"

KIT_GUEST("vbe-pattern");

#define BORDER 4

static const uint8_t bars[8][3] = {
    { 255, 0, 0 }, { 0, 255, 0 }, { 0, 0, 255 }, { 255, 255, 0 },
    { 0, 255, 255 }, { 255, 0, 255 }, { 128, 128, 128 }, { 255, 128, 0 },
};

struct draw_job {
    uint64_t lfb;
    uint32_t width, height, pitch, bytes_pp;
    uint32_t bar[8], white;
};

static struct draw_job job;

static inline void put_pixel(uint8_t *row, uint32_t x, uint32_t bytes_pp, uint32_t px)
{
    uint8_t *p = row + (uint64_t)x * bytes_pp;
    for (uint32_t i = 0; i < bytes_pp; i++)
        p[i] = (uint8_t)(px >> (8 * i));
}

static uint64_t user_draw(uint64_t arg)
{
    const struct draw_job *j = (const struct draw_job *)(uintptr_t)arg;
    for (uint32_t y = 0; y < j->height; y++) {
        uint8_t *row = (uint8_t *)(uintptr_t)(j->lfb + (uint64_t)y * j->pitch);
        bool edge_row = y < BORDER || y >= j->height - BORDER;
        for (uint32_t x = 0; x < j->width; x++) {
            uint32_t px;
            if (edge_row || x < BORDER || x >= j->width - BORDER)
                px = j->white;
            else
                px = j->bar[(uint64_t)x * 8 / j->width];
            put_pixel(row, x, j->bytes_pp, px);
        }
    }
    return 0;
}

void kit_main(void)
{
    uint32_t w = 1024, h = 768, bpp = 32;
    if (kit_boot.cmdline[0] && !kit_vbe_parse_mode(kit_boot.cmdline, &w, &h, &bpp))
        kit_fail("bad command line \"%s\" (want mode=WxHxBPP)", kit_boot.cmdline);
    struct kit_vbe v;
    int r = kit_vbe_find(&v);
    if (r)
        kit_fail("no std VGA (%d)", r);
    r = kit_vbe_set_mode(&v, w, h, bpp);
    if (r)
        kit_fail("mode %ux%ux%u did not stick (%d)", w, h, bpp, r);
    kit_printf("kit: vbe lfb=0x%llx pitch=%u\n", (unsigned long long)v.lfb, v.pitch);
    job = (struct draw_job){ .lfb = v.lfb, .width = w, .height = h, .pitch = v.pitch,
                             .bytes_pp = v.bytes_pp };
    for (int i = 0; i < 8; i++) {
        if (bpp == 8) {
            kit_vbe_dac_set((uint8_t)(1 + i), bars[i][0] >> 2, bars[i][1] >> 2, bars[i][2] >> 2);
            job.bar[i] = (uint32_t)(1 + i);
        } else {
            job.bar[i] = kit_vbe_pixel(&v, bars[i][0], bars[i][1], bars[i][2]);
        }
    }
    if (bpp == 8) {
        kit_vbe_dac_set(9, 63, 63, 63);
        job.white = 9;
    } else {
        job.white = kit_vbe_pixel(&v, 255, 255, 255);
    }
    kit_user_call(user_draw, (uint64_t)(uintptr_t)&job);
    kit_printf("KIT: pattern ready mode=%ux%ux%u\n", w, h, bpp);
    kit_halt();
}
