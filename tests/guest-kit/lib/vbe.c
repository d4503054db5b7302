/* Vessel guest kit: the Bochs/std VGA (PCI 1234:1111) in a VBE DISPI
 * linear-framebuffer mode. DISPI registers through the index/data ports
 * 0x1CE/0x1CF (Bochs vbe.h: ID, XRES, YRES, BPP, ENABLE with LFB_ENABLED,
 * VIRT_WIDTH); the framebuffer is BAR0; the attribute controller's palette
 * address source bit (0x20 written to port 0x3C0 after the flip-flop reset
 * by reading 0x3DA) turns the display on; the DAC (0x3C8 index, 0x3C9 R, G,
 * B, 6 bits each) holds the 8 bpp palette. */
#include "kit.h"

#define DISPI_INDEX 0x1ce
#define DISPI_DATA 0x1cf
enum {
    DISPI_ID = 0, DISPI_XRES = 1, DISPI_YRES = 2, DISPI_BPP = 3, DISPI_ENABLE = 4,
    DISPI_VIRT_WIDTH = 6,
};
#define DISPI_ENABLED 0x01
#define DISPI_LFB_ENABLED 0x40
#define DISPI_ID_MIN 0xb0c0

static void dispi_write(uint16_t index, uint16_t v)
{
    outw(DISPI_INDEX, index);
    outw(DISPI_DATA, v);
}

static uint16_t dispi_read(uint16_t index)
{
    outw(DISPI_INDEX, index);
    return inw(DISPI_DATA);
}

static bool find_cb(const struct kit_pci_dev *d, void *ctx)
{
    if (d->vendor != 0x1234 || d->device != 0x1111)
        return true;
    *(struct kit_pci_dev *)ctx = *d;
    return false;
}

int kit_vbe_find(struct kit_vbe *v)
{
    memset(v, 0, sizeof(*v));
    struct kit_pci_dev d = { .vendor = 0 };
    kit_pci_scan(find_cb, &d);
    if (d.vendor != 0x1234)
        return -1;
    v->pci = d;
    uint16_t cmd = kit_pci_read16(d.bus, d.dev, d.fn, 0x04);
    kit_pci_write16(d.bus, d.dev, d.fn, 0x04, (uint16_t)(cmd | 0x0003));
    uint32_t bar0 = kit_pci_read32(d.bus, d.dev, d.fn, 0x10);
    if (bar0 & 1)
        return -2;
    v->lfb = bar0 & ~0xfu;
    if (((bar0 >> 1) & 3) == 2)
        v->lfb |= (uint64_t)kit_pci_read32(d.bus, d.dev, d.fn, 0x14) << 32;
    if (!v->lfb)
        return -3;
    if (dispi_read(DISPI_ID) < DISPI_ID_MIN)
        return -4;
    return 0;
}

int kit_vbe_set_mode(struct kit_vbe *v, uint32_t width, uint32_t height, uint32_t bpp)
{
    dispi_write(DISPI_ENABLE, 0);
    dispi_write(DISPI_XRES, (uint16_t)width);
    dispi_write(DISPI_YRES, (uint16_t)height);
    dispi_write(DISPI_BPP, (uint16_t)bpp);
    dispi_write(DISPI_ENABLE, DISPI_ENABLED | DISPI_LFB_ENABLED);
    if (dispi_read(DISPI_XRES) != width || dispi_read(DISPI_YRES) != height ||
        dispi_read(DISPI_BPP) != bpp || !(dispi_read(DISPI_ENABLE) & DISPI_ENABLED))
        return -1;
    /* Display on: palette address source (attribute index bit 5). */
    (void)inb(0x3da);
    outb(0x3c0, 0x20);
    v->width = width;
    v->height = height;
    v->bpp = bpp;
    v->bytes_pp = (bpp + 7) / 8;
    v->pitch = (uint32_t)dispi_read(DISPI_VIRT_WIDTH) * v->bytes_pp;
    if (v->pitch < width * v->bytes_pp)
        return -2;
    uint64_t end = v->lfb + (uint64_t)v->pitch * height;
    if (end > kit_mapped_end() && kit_map_identity((end + 0x1fffff) & ~0x1fffffULL) < end)
        return -3;
    return 0;
}

void kit_vbe_dac_set(uint8_t index, uint8_t r6, uint8_t g6, uint8_t b6)
{
    outb(0x3c8, index);
    outb(0x3c9, r6 & 0x3f);
    outb(0x3c9, g6 & 0x3f);
    outb(0x3c9, b6 & 0x3f);
}

uint32_t kit_vbe_pixel(const struct kit_vbe *v, uint8_t r, uint8_t g, uint8_t b)
{
    switch (v->bpp) {
    case 15:
        return (uint32_t)(r >> 3) << 10 | (uint32_t)(g >> 3) << 5 | (b >> 3);
    case 16:
        return (uint32_t)(r >> 3) << 11 | (uint32_t)(g >> 2) << 5 | (b >> 3);
    default:
        return (uint32_t)r << 16 | (uint32_t)g << 8 | b;
    }
}

static bool parse_uint(const char **p, uint32_t *out)
{
    uint32_t v = 0;
    const char *s = *p;
    if (*s < '0' || *s > '9')
        return false;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (uint32_t)(*s++ - '0');
    *p = s;
    *out = v;
    return true;
}

bool kit_vbe_parse_mode(const char *cmdline, uint32_t *w, uint32_t *h, uint32_t *bpp)
{
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        if (!strncmp(p, "mode=", 5)) {
            p += 5;
            return parse_uint(&p, w) && *p++ == 'x' && parse_uint(&p, h) && *p++ == 'x' &&
                   parse_uint(&p, bpp) && (*p == ' ' || *p == 0);
        }
        while (*p && *p != ' ')
            p++;
    }
    return false;
}
