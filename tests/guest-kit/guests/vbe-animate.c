/* vbe-animate: the std VGA in a VBE DISPI linear-framebuffer mode (command
 * line "mode=WxHx32", default 1920x1080x32) redrawn whole, over and over,
 * for display benchmarks (bench/display/). Frame n fills every pixel of the
 * visible screen with colours[n % 4]; the drawing runs at CPL3 (native speed
 * on a paravirtual KVM), FRAMES_PER_CALL frames per call, with nothing
 * between frames: the guest draws as fast as the CPU lets it, far faster
 * than any refresh. After each batch it prints
 * "KIT: animate frames=N" on COM1.
 *
 * "frames=K" on the command line draws K frames and then halts with the
 * last one on screen ("KIT: animate done frames=K"): an idle guest for
 * measuring what a still screen costs the host. Prints
 * "KIT: animate ready mode=WxHx32" once the mode is set. */
#include "kit.h"

KIT_GUEST("vbe-animate");

#define FRAMES_PER_CALL 64

static const uint32_t colours[4] = { 0x00c03020, 0x0020a040, 0x002040c0, 0x00e0e0e0 };

struct draw_job {
    uint64_t lfb;
    uint32_t width, height, pitch;
    uint64_t first, count; /* frames [first, first + count) */
};

static struct draw_job job;

static uint64_t user_draw(uint64_t arg)
{
    const struct draw_job *j = (const struct draw_job *)(uintptr_t)arg;
    for (uint64_t n = j->first; n < j->first + j->count; n++) {
        uint32_t px = colours[n % 4];
        for (uint32_t y = 0; y < j->height; y++) {
            volatile uint32_t *row =
                (volatile uint32_t *)(uintptr_t)(j->lfb + (uint64_t)y * j->pitch);
            for (uint32_t x = 0; x < j->width; x++)
                row[x] = px;
        }
    }
    return 0;
}

/* "frames=K" from the command line; 0 when absent (draw forever). */
static uint64_t cmdline_frames(void)
{
    const char *p = kit_boot.cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, "frames=", 7)) {
            uint64_t v = 0;
            for (p += 7; *p >= '0' && *p <= '9'; p++)
                v = v * 10 + (uint64_t)(*p - '0');
            return v;
        }
        while (*p && *p != ' ')
            p++;
    }
    return 0;
}

void kit_main(void)
{
    uint32_t w = 1920, h = 1080, bpp = 32;
    const char *mode = kit_boot.cmdline;
    while (*mode && strncmp(mode, "mode=", 5))
        mode++;
    if (*mode && !kit_vbe_parse_mode(mode, &w, &h, &bpp))
        kit_fail("bad command line \"%s\" (want mode=WxHx32)", kit_boot.cmdline);
    if (bpp != 32)
        kit_fail("vbe-animate draws at 32 bpp only");
    uint64_t limit = cmdline_frames();
    struct kit_vbe v;
    int r = kit_vbe_find(&v);
    if (r)
        kit_fail("no std VGA (%d)", r);
    r = kit_vbe_set_mode(&v, w, h, bpp);
    if (r)
        kit_fail("mode %ux%ux%u did not stick (%d)", w, h, bpp, r);
    kit_printf("KIT: animate ready mode=%ux%ux%u\n", w, h, bpp);
    job = (struct draw_job){ .lfb = v.lfb, .width = w, .height = h, .pitch = v.pitch };
    uint64_t done = 0;
    for (;;) {
        uint64_t n = FRAMES_PER_CALL;
        if (limit && limit - done < n)
            n = limit - done;
        job.first = done;
        job.count = n;
        kit_user_call(user_draw, (uint64_t)(uintptr_t)&job);
        done += n;
        if (limit && done >= limit) {
            kit_printf("KIT: animate done frames=%llu\n", (unsigned long long)done);
            kit_halt();
        }
        kit_printf("KIT: animate frames=%llu\n", (unsigned long long)done);
    }
}
