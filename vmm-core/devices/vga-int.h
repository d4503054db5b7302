/* Private to vga.c (registers, memory, PCI) and vga-render.c. */
#pragma once

#include "vmm-core/devices/vga.h"

/* VRAM layout of the legacy planes, as QEMU's VGA lays it out: plane p of
 * plane address a is VRAM byte 4a + p. Chain-4 byte address a is then
 * VRAM byte a, and odd/even byte address a is plane (a & 1), address
 * a >> 1 … which keeps every mode a linear view of one buffer. */

#define VGA_SEQ_N 8
#define VGA_CRTC_N 0x19
#define VGA_GR_N 9
#define VGA_AR_N 0x15
#define VGA_PAL_N 768

/* Guest-visible state; save/load walk it field by field. */
typedef struct vga_regs {
  uint8_t misc;    /* 0x3C2 write, 0x3CC read */
  uint8_t fcr;     /* feature control */
  uint8_t st01;    /* input status 1: retrace bits toggle on reads */
  uint8_t seq_index;
  uint8_t seq[VGA_SEQ_N];
  uint8_t crtc_index;
  uint8_t crtc[VGA_CRTC_N];
  uint8_t gr_index;
  uint8_t gr[VGA_GR_N];
  uint8_t ar_index; /* with PAS (0x20) */
  bool ar_flip_flop;
  uint8_t ar[VGA_AR_N];
  uint8_t dac_mask;
  uint8_t dac_state; /* 0x3C7 read: 0 after a write index, 3 after read */
  uint8_t dac_read_index;
  uint8_t dac_write_index;
  uint8_t dac_sub_index; /* 0..2 */
  uint8_t dac_cache[3];
  uint8_t palette[VGA_PAL_N];
  uint32_t latch;
  uint16_t vbe_index;
  uint16_t vbe[VBE_DISPI_INDEX_NB];
  uint32_t qext_byteorder;
} vga_regs;

/* Values derived from the DISPI registers (vga_vbe_fixup). */
typedef struct vga_vbe_geom {
  bool enabled;
  unsigned bpp;          /* 4, 8, 15, 16, 24, 32 */
  unsigned width;
  unsigned height;
  uint32_t line_offset;  /* bytes */
  uint32_t start;        /* bytes */
} vga_vbe_geom;

typedef struct vga_render_state vga_render_state;

struct vga {
  vmm_device dev;
  vmm_pci_device pci;
  vmm_bus *pio;
  vmm_bus *mmio;
  uint8_t *vram;
  size_t vram_size;
  uint8_t *rom;      /* page aligned, rom_bar_size bytes (zero padded) */
  size_t rom_len;
  size_t rom_bar_size;
  bool pio_attached;
  bool window_attached;
  vga_lfb_fn lfb_fn;
  void *lfb_opaque;
  vga_lfb_fn rom_fn;
  void *rom_opaque;

  vga_regs r;
  vga_vbe_geom vbe;     /* derived from r.vbe */
  uint32_t bank_offset; /* derived from r.vbe[BANK] */

  /* Pages of VRAM written since the last render; under dev.lock. */
  unsigned long *dirty;
  size_t n_pages;

  GMutex render_lock;
  vga_render_state *rs;
};

/* Recomputes vga->vbe from the registers, clamping them to what fits. */
void vga_vbe_fixup (vga *v);
void vga_mark_dirty_locked (vga *v, uint64_t offset, uint64_t len);

vga_render_state *vga_render_state_new (void);
void vga_render_state_free (vga_render_state *rs);
