/* Bochs/std VGA (PCI 1234:1111): the legacy VGA (ports 0x3B0-0x3DF, the
 * 0xA0000-0xBFFFF window), VBE DISPI on ports 0x1CE/0x1CF, and the PCI
 * function with BAR0 the linear framebuffer (VRAM), BAR2 the MMIO block
 * Linux's bochs-drm uses and the option ROM (Debian's vgabios-stdvga.bin).
 *
 * VRAM is a page-aligned host mapping. Under KVM the board maps it as a
 * memory slot wherever the guest places BAR0 (see vga_set_lfb_handler) and
 * feeds KVM's dirty log for that slot to vga_mark_vram_dirty(); without a
 * slot BAR0 is also decoded on the MMIO bus, which is what unit tests use.
 *
 * vga_render() turns the guest's view into XRGB8888 on a display_surface and
 * reports only the rows (text: cells) that changed. */
#pragma once

#include "display/surface.h"
#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/pci.h"

G_BEGIN_DECLS

#define VGA_DEFAULT_VRAM_SIZE (16u << 20) /* 2560x1600x32 fits */
#define VGA_MIN_VRAM_SIZE (1u << 20)
#define VGA_MAX_VRAM_SIZE (256u << 20)
#define VGA_PAGE_SIZE 4096u

#define VGA_PCI_VENDOR 0x1234
#define VGA_PCI_DEVICE 0x1111
#define VGA_MMIO_BAR_SIZE 0x1000

/* Bochs VBE DISPI (Bochs vbe.h, also QEMU's and bochs-drm's). */
#define VBE_DISPI_IOPORT_INDEX 0x01ce
#define VBE_DISPI_IOPORT_DATA 0x01cf
enum {
  VBE_DISPI_INDEX_ID = 0x0,
  VBE_DISPI_INDEX_XRES = 0x1,
  VBE_DISPI_INDEX_YRES = 0x2,
  VBE_DISPI_INDEX_BPP = 0x3,
  VBE_DISPI_INDEX_ENABLE = 0x4,
  VBE_DISPI_INDEX_BANK = 0x5,
  VBE_DISPI_INDEX_VIRT_WIDTH = 0x6,
  VBE_DISPI_INDEX_VIRT_HEIGHT = 0x7,
  VBE_DISPI_INDEX_X_OFFSET = 0x8,
  VBE_DISPI_INDEX_Y_OFFSET = 0x9,
  VBE_DISPI_INDEX_VIDEO_MEMORY_64K = 0xa,
  VBE_DISPI_INDEX_NB = 0xb,
};
#define VBE_DISPI_ID0 0xb0c0
#define VBE_DISPI_ID5 0xb0c5
#define VBE_DISPI_DISABLED 0x00
#define VBE_DISPI_ENABLED 0x01
#define VBE_DISPI_GETCAPS 0x02
#define VBE_DISPI_8BIT_DAC 0x20
#define VBE_DISPI_LFB_ENABLED 0x40
#define VBE_DISPI_NOCLEARMEM 0x80
#define VBE_DISPI_MAX_XRES 16000
#define VBE_DISPI_MAX_YRES 12000
#define VBE_DISPI_MAX_BPP 32

/* BAR2 layout (QEMU's stdvga MMIO, what bochs-drm expects). */
#define VGA_MMIO_VGA_PORTS 0x400 /* 0x400-0x41f: ports 0x3c0-0x3df */
#define VGA_MMIO_DISPI 0x500     /* 0x500-0x515: DISPI index n at 2n */
#define VGA_MMIO_QEXT 0x600      /* size (8), byte order */

typedef struct vga vga;

/* The guest placed (or removed, @gpa VMM_PCI_UNMAPPED) the framebuffer BAR:
 * map @vram (@size bytes) there as a memory slot with dirty logging.
 * Called with the device's lock held: record or queue the work. */
typedef void (*vga_lfb_fn) (void *opaque, uint64_t gpa, uint8_t *vram,
                            size_t size);

/* @rom, @rom_len: the option ROM (copied; NULL for none). @vram_size: 0 for
 * VGA_DEFAULT_VRAM_SIZE, else a power of two within the limits above. */
vga *vga_create (vmm_bus *pio, vmm_bus *mmio, const uint8_t *rom,
                 size_t rom_len, size_t vram_size, GError **error);
vmm_device *vga_device (vga *v);
vmm_pci_device *vga_pci (vga *v);
/* Claims ports 0x3B0-0x3DF and 0x1CE-0x1D0, the 0xA0000-0xBFFFF window,
 * and places the function at @devfn. */
gboolean vga_attach (vga *v, vmm_pci_host *host, unsigned devfn,
                     GError **error);
void vga_set_lfb_handler (vga *v, vga_lfb_fn fn, void *opaque);
/* The same for the option ROM BAR: map the ROM (@size bytes, page aligned)
 * there read-only, so that the firmware copying it out costs no exit per
 * read (thousands of them, slow under nested virtualization). Not called
 * for a ROM BAR smaller than a page. */
void vga_set_rom_handler (vga *v, vga_lfb_fn fn, void *opaque);

/* The VRAM mapping (page aligned, stays put for the device's life). */
uint8_t *vga_vram (vga *v, size_t *size);
/* Something wrote VRAM behind the device's back (KVM's dirty log, a host
 * side copy): the next render looks at those pages again. Any thread. */
void vga_mark_vram_dirty (vga *v, uint64_t offset, uint64_t len);
/* The same for a whole log: bit n of @bitmap (KVM_GET_DIRTY_LOG's layout,
 * 64-bit words, page n of the slot) marks VRAM page n. */
void vga_mark_vram_dirty_bitmap (vga *v, const unsigned long *bitmap,
                                 size_t n_pages);

/* Renders the current mode into @s (resizing it, which calls on_resize),
 * marks changed rows or cells dirty and flushes the damage to the
 * surface's listeners. @frame drives text blink (cursor every 16 frames,
 * characters every 32): pass a counter bumped at the refresh rate. Call
 * from one thread at a time; the device lock is held only to snapshot the
 * registers. Returns true when anything was redrawn. */
bool vga_render (vga *v, display_surface *s, uint64_t frame);

G_END_DECLS
