/* Bochs/std VGA: registers, the legacy memory window, VBE DISPI, PCI.
 *
 * Register semantics: IBM VGA Technical Reference (sequencer, CRTC,
 * graphics and attribute controllers, DAC), FreeVGA's descriptions of the
 * read/write modes; DISPI: Bochs' vbe.h and what SeaBIOS' vgabios
 * (bochsvga.c) and Linux's bochs-drm (bochs.c) program. Every value a guest
 * can write is stored masked or clamped, so the renderer never needs to
 * trust a register. */
#include "vmm-core/devices/vga-int.h"

#include <sys/mman.h>

#include "vmm-core/devices/devstate.h"

#define VGA_PORT_BASE 0x3b0
#define VGA_PORT_LEN 0x30
#define VGA_WINDOW_BASE 0xa0000
#define VGA_WINDOW_LEN 0x20000
#define VBE_PORT_LEN 3 /* 0x1ce index, 0x1cf data, 0x1d0 data (alias) */

#define QEXT_SIZE 8
#define QEXT_LITTLE_ENDIAN 0x1e1e1e1eu
#define QEXT_BIG_ENDIAN 0xbebebebeu

#define ST01_DISP_ENABLE 0x01
#define ST01_V_RETRACE 0x08

/* Writable bits per register (IBM VGA reference). */
static const uint8_t seq_wmask[VGA_SEQ_N] = {
  0x03, 0x3d, 0x0f, 0x3f, 0x0e, 0x00, 0x00, 0xff,
};
static const uint8_t gr_wmask[VGA_GR_N] = {
  0x0f, 0x0f, 0x0f, 0x1f, 0x03, 0x7b, 0x0f, 0x0f, 0xff,
};

/* Four bits to four byte lanes. */
static const uint32_t mask16[16] = {
  0x00000000, 0x000000ff, 0x0000ff00, 0x0000ffff, 0x00ff0000, 0x00ff00ff,
  0x00ffff00, 0x00ffffff, 0xff000000, 0xff0000ff, 0xff00ff00, 0xff00ffff,
  0xffff0000, 0xffff00ff, 0xffffff00, 0xffffffff,
};

static inline size_t
vram_mask (const vga *v)
{
  return v->vram_size - 1;
}

void
vga_mark_dirty_locked (vga *v, uint64_t offset, uint64_t len)
{
  if (!len || offset >= v->vram_size)
    return;
  uint64_t end = MIN (offset + len, (uint64_t) v->vram_size);
  if (end < offset)
    end = v->vram_size;
  size_t bits = 8 * sizeof (unsigned long);
  for (uint64_t p = offset / VGA_PAGE_SIZE; p <= (end - 1) / VGA_PAGE_SIZE;
       p++)
    v->dirty[p / bits] |= 1ul << (p % bits);
}

void
vga_mark_vram_dirty_bitmap (vga *v, const unsigned long *bitmap,
                            size_t n_pages)
{
  size_t bits = 8 * sizeof (unsigned long);
  size_t words = (MIN (n_pages, v->n_pages) + bits - 1) / bits;
  g_mutex_lock (&v->dev.lock);
  for (size_t i = 0; i < words; i++)
    v->dirty[i] |= bitmap[i];
  /* Bits past the last page in the last word are never looked at. */
  g_mutex_unlock (&v->dev.lock);
}

void
vga_mark_vram_dirty (vga *v, uint64_t offset, uint64_t len)
{
  g_mutex_lock (&v->dev.lock);
  vga_mark_dirty_locked (v, offset, len);
  g_mutex_unlock (&v->dev.lock);
}

/* ---- VBE DISPI ---------------------------------------------------------- */

void
vga_vbe_fixup (vga *v)
{
  uint16_t *r = v->r.vbe;
  uint32_t bank_mask = (uint32_t) (v->vram_size >> 16) - 1;
  r[VBE_DISPI_INDEX_BANK] &= bank_mask;
  v->bank_offset = (uint32_t) r[VBE_DISPI_INDEX_BANK] << 16;
  if (!(r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED))
    {
      v->vbe = (vga_vbe_geom){ 0 };
      return;
    }

  unsigned bits;
  switch (r[VBE_DISPI_INDEX_BPP])
    {
    case 4:
    case 8:
    case 16:
    case 24:
    case 32:
      bits = r[VBE_DISPI_INDEX_BPP];
      break;
    case 15:
      bits = 16;
      break;
    default:
      r[VBE_DISPI_INDEX_BPP] = 8;
      bits = 8;
      break;
    }

  unsigned xres = r[VBE_DISPI_INDEX_XRES] & ~7u;
  xres = CLAMP (xres, 8u, (unsigned) VBE_DISPI_MAX_XRES);
  unsigned vw = r[VBE_DISPI_INDEX_VIRT_WIDTH] & ~7u;
  vw = CLAMP (vw, xres, (unsigned) VBE_DISPI_MAX_XRES);
  uint32_t line = vw * bits / 8;
  uint64_t maxy = MIN (v->vram_size / line, 0xffffu);
  unsigned yres = r[VBE_DISPI_INDEX_YRES];
  yres = CLAMP (yres, 1u, (unsigned) VBE_DISPI_MAX_YRES);
  yres = MIN (yres, (unsigned) maxy);

  unsigned xoff = MIN (r[VBE_DISPI_INDEX_X_OFFSET], VBE_DISPI_MAX_XRES);
  unsigned yoff = MIN (r[VBE_DISPI_INDEX_Y_OFFSET], VBE_DISPI_MAX_YRES);
  uint64_t frame = (uint64_t) yres * line;
  uint64_t start = (uint64_t) xoff * bits / 8 + (uint64_t) yoff * line;
  if (start + frame > v->vram_size)
    {
      yoff = 0;
      start = (uint64_t) xoff * bits / 8;
      if (start + frame > v->vram_size)
        {
          xoff = 0;
          start = 0;
        }
    }

  r[VBE_DISPI_INDEX_XRES] = (uint16_t) xres;
  r[VBE_DISPI_INDEX_YRES] = (uint16_t) yres;
  r[VBE_DISPI_INDEX_VIRT_WIDTH] = (uint16_t) vw;
  r[VBE_DISPI_INDEX_VIRT_HEIGHT] = (uint16_t) maxy;
  r[VBE_DISPI_INDEX_X_OFFSET] = (uint16_t) xoff;
  r[VBE_DISPI_INDEX_Y_OFFSET] = (uint16_t) yoff;
  v->vbe = (vga_vbe_geom){
    .enabled = true,
    .bpp = r[VBE_DISPI_INDEX_BPP],
    .width = xres,
    .height = yres,
    .line_offset = line,
    .start = (uint32_t) start,
  };
}

static uint16_t
vbe_read (vga *v, unsigned index)
{
  const uint16_t *r = v->r.vbe;
  if (index >= VBE_DISPI_INDEX_NB)
    return 0;
  if (r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_GETCAPS)
    {
      switch (index)
        {
        case VBE_DISPI_INDEX_XRES:
          return VBE_DISPI_MAX_XRES;
        case VBE_DISPI_INDEX_YRES:
          return VBE_DISPI_MAX_YRES;
        case VBE_DISPI_INDEX_BPP:
          return VBE_DISPI_MAX_BPP;
        }
    }
  if (index == VBE_DISPI_INDEX_VIDEO_MEMORY_64K)
    return (uint16_t) (v->vram_size >> 16);
  return r[index];
}

/* What the legacy registers say once DISPI is on, so that the window and
 * read-back look like a graphics mode. */
static void
vbe_set_legacy_regs (vga *v)
{
  vga_regs *r = &v->r;
  r->gr[6] = (r->gr[6] & ~0x0c) | 0x05; /* graphics, A0000 64K */
  r->gr[5] = (r->gr[5] & ~0x60) | (v->vbe.bpp == 4 ? 0x00 : 0x40);
  if (v->vbe.bpp != 4)
    r->seq[4] |= 0x08; /* chain 4 */
  r->crtc[0x17] |= 0x03;
  r->ar[0x10] |= 0x01;
}

static void
vbe_write (vga *v, unsigned index, uint16_t val)
{
  uint16_t *r = v->r.vbe;
  switch (index)
    {
    case VBE_DISPI_INDEX_ID:
      if (val >= VBE_DISPI_ID0 && val <= VBE_DISPI_ID5)
        r[index] = val;
      return;
    case VBE_DISPI_INDEX_XRES:
    case VBE_DISPI_INDEX_YRES:
    case VBE_DISPI_INDEX_BPP:
    case VBE_DISPI_INDEX_VIRT_WIDTH:
    case VBE_DISPI_INDEX_X_OFFSET:
    case VBE_DISPI_INDEX_Y_OFFSET:
    case VBE_DISPI_INDEX_BANK:
      r[index] = val;
      vga_vbe_fixup (v);
      break;
    case VBE_DISPI_INDEX_ENABLE:
      {
        bool was = r[index] & VBE_DISPI_ENABLED;
        r[index] = val & (VBE_DISPI_ENABLED | VBE_DISPI_GETCAPS
                          | VBE_DISPI_8BIT_DAC | VBE_DISPI_LFB_ENABLED
                          | VBE_DISPI_NOCLEARMEM);
        vga_vbe_fixup (v);
        if (v->vbe.enabled && !was)
          {
            if (!(val & VBE_DISPI_NOCLEARMEM))
              {
                size_t n = MIN ((size_t) v->vbe.height * v->vbe.line_offset,
                                v->vram_size);
                memset (v->vram, 0, n);
                vga_mark_dirty_locked (v, 0, n);
              }
            vbe_set_legacy_regs (v);
          }
        break;
      }
    default: /* VIRT_HEIGHT, VIDEO_MEMORY_64K: read-only */
      return;
    }
}

/* ---- Legacy ports ------------------------------------------------------- */

/* Ports 0x3Bx answer in monochrome emulation, 0x3Dx in colour (MISC bit 0). */
static bool
port_decoded (const vga *v, uint16_t port)
{
  if (port >= 0x3b0 && port <= 0x3bf)
    return !(v->r.misc & 0x01);
  if (port >= 0x3d0 && port <= 0x3df)
    return v->r.misc & 0x01;
  return true;
}

static uint8_t
vga_port_read (vga *v, uint16_t port)
{
  vga_regs *r = &v->r;
  if (!port_decoded (v, port))
    return 0xff;
  switch (port)
    {
    case 0x3c0:
      return r->ar_flip_flop ? 0 : r->ar_index;
    case 0x3c1:
      {
        unsigned i = r->ar_index & 0x1f;
        return i < VGA_AR_N ? r->ar[i] : 0;
      }
    case 0x3c2:
      return 0x10; /* input status 0: switch sense */
    case 0x3c4:
      return r->seq_index;
    case 0x3c5:
      return r->seq[r->seq_index & 7];
    case 0x3c6:
      return r->dac_mask;
    case 0x3c7:
      return r->dac_state;
    case 0x3c8:
      return r->dac_write_index;
    case 0x3c9:
      {
        uint8_t val = r->palette[r->dac_read_index * 3 + r->dac_sub_index];
        if (++r->dac_sub_index == 3)
          {
            r->dac_sub_index = 0;
            r->dac_read_index++;
          }
        return val;
      }
    case 0x3ca:
      return r->fcr;
    case 0x3cc:
      return r->misc;
    case 0x3ce:
      return r->gr_index;
    case 0x3cf:
      return r->gr_index < VGA_GR_N ? r->gr[r->gr_index] : 0;
    case 0x3b4:
    case 0x3d4:
      return r->crtc_index;
    case 0x3b5:
    case 0x3d5:
      return r->crtc_index < VGA_CRTC_N ? r->crtc[r->crtc_index] : 0;
    case 0x3ba:
    case 0x3da:
      /* No real timing: every read flips retrace and display enable, which
       * is what a BIOS polling for the next retrace needs. */
      r->st01 ^= ST01_V_RETRACE | ST01_DISP_ENABLE;
      r->ar_flip_flop = false;
      return r->st01;
    default:
      return 0xff;
    }
}

static void
vga_port_write (vga *v, uint16_t port, uint8_t val)
{
  vga_regs *r = &v->r;
  if (!port_decoded (v, port))
    return;
  switch (port)
    {
    case 0x3c0:
      if (!r->ar_flip_flop)
        {
          r->ar_index = val & 0x3f;
        }
      else
        {
          unsigned i = r->ar_index & 0x1f;
          static const uint8_t ar_wmask[VGA_AR_N] = {
            0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f,
            0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0xef, 0xff, 0x3f, 0x0f, 0x0f,
          };
          if (i < VGA_AR_N)
            r->ar[i] = val & ar_wmask[i];
        }
      r->ar_flip_flop = !r->ar_flip_flop;
      break;
    case 0x3c2:
      r->misc = val & ~0x10;
      break;
    case 0x3c4:
      r->seq_index = val & 7;
      break;
    case 0x3c5:
      r->seq[r->seq_index & 7] = val & seq_wmask[r->seq_index & 7];
      break;
    case 0x3c6:
      r->dac_mask = val;
      break;
    case 0x3c7:
      r->dac_read_index = val;
      r->dac_sub_index = 0;
      r->dac_state = 3;
      break;
    case 0x3c8:
      r->dac_write_index = val;
      r->dac_sub_index = 0;
      r->dac_state = 0;
      break;
    case 0x3c9:
      r->dac_cache[r->dac_sub_index] = val;
      if (++r->dac_sub_index == 3)
        {
          memcpy (&r->palette[r->dac_write_index * 3], r->dac_cache, 3);
          r->dac_sub_index = 0;
          r->dac_write_index++;
        }
      break;
    case 0x3ce:
      r->gr_index = val & 0x0f;
      break;
    case 0x3cf:
      if (r->gr_index < VGA_GR_N)
        r->gr[r->gr_index] = val & gr_wmask[r->gr_index];
      break;
    case 0x3b4:
    case 0x3d4:
      r->crtc_index = val & 0x3f;
      break;
    case 0x3b5:
    case 0x3d5:
      {
        unsigned i = r->crtc_index;
        if (i >= VGA_CRTC_N)
          break;
        /* CR11 bit 7 write-protects CR0-CR7, except CR7's line compare
         * bit 8. */
        if ((r->crtc[0x11] & 0x80) && i <= 7)
          {
            if (i == 7)
              r->crtc[7] = (r->crtc[7] & ~0x10) | (val & 0x10);
            break;
          }
        r->crtc[i] = val;
        break;
      }
    case 0x3ba:
    case 0x3da:
      r->fcr = val & 0x10;
      break;
    default:
      break;
    }
}

static uint64_t
vga_ports_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  uint64_t val = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    val |= (uint64_t) vga_port_read (v, (uint16_t) (a->addr + i)) << (8 * i);
  return val;
}

static void
vga_ports_write (void *opaque, const vmm_access *a, uint64_t val)
{
  vga *v = opaque;
  /* outw to an index port writes index then data. */
  for (unsigned i = 0; i < a->size && i < 8; i++)
    vga_port_write (v, (uint16_t) (a->addr + i), (val >> (8 * i)) & 0xff);
}

static const vmm_region_ops vga_ports_ops = {
  .read = vga_ports_read,
  .write = vga_ports_write,
};

static uint64_t
vbe_ports_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  if (a->offset == 0)
    return v->r.vbe_index;
  return vbe_read (v, v->r.vbe_index);
}

static void
vbe_ports_write (void *opaque, const vmm_access *a, uint64_t val)
{
  vga *v = opaque;
  if (a->offset == 0)
    v->r.vbe_index = (uint16_t) val;
  else
    vbe_write (v, v->r.vbe_index, (uint16_t) val);
}

static const vmm_region_ops vbe_ports_ops = {
  .read = vbe_ports_read,
  .write = vbe_ports_write,
};

/* ---- The 0xA0000 window ------------------------------------------------- */

static inline uint32_t
load32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

static inline void
store32 (uint8_t *p, uint32_t val)
{
  p[0] = val & 0xff;
  p[1] = (val >> 8) & 0xff;
  p[2] = (val >> 16) & 0xff;
  p[3] = val >> 24;
}

/* Window offset to the address the memory map mode decodes, or -1. */
static int64_t
window_decode (const vga *v, uint32_t off)
{
  switch ((v->r.gr[6] >> 2) & 3)
    {
    case 0:
      return off;
    case 1:
      if (off >= 0x10000)
        return -1;
      return v->vbe.enabled ? (int64_t) off + v->bank_offset : off;
    case 2:
      if (off < 0x10000 || off >= 0x18000)
        return -1;
      return off - 0x10000;
    default:
      if (off < 0x18000)
        return -1;
      return off - 0x18000;
    }
}

static bool
window_is_banked_linear (const vga *v)
{
  return v->vbe.enabled && v->vbe.bpp != 4;
}

static uint8_t
vga_mem_readb (vga *v, uint32_t off)
{
  vga_regs *r = &v->r;
  size_t mask = vram_mask (v);
  if (window_is_banked_linear (v))
    return off < 0x10000 ? v->vram[(v->bank_offset + off) & mask] : 0xff;
  int64_t addr = window_decode (v, off);
  if (addr < 0)
    return 0xff;
  if (r->seq[4] & 0x08) /* chain 4 */
    return v->vram[addr & mask];
  if (r->gr[5] & 0x10) /* odd/even */
    {
      unsigned plane = (r->gr[4] & 2) | (addr & 1);
      return v->vram[(((addr & ~1) << 1) | plane) & mask];
    }
  r->latch = load32 (&v->vram[(addr * 4) & mask & ~(size_t) 3]);
  if (!(r->gr[5] & 0x08)) /* read mode 0 */
    return (r->latch >> ((r->gr[4] & 3) * 8)) & 0xff;
  /* Read mode 1: colour compare with don't-care planes. */
  uint32_t diff = (r->latch ^ mask16[r->gr[2] & 0xf]) & mask16[r->gr[7] & 0xf];
  diff |= diff >> 16;
  diff |= diff >> 8;
  return (~diff) & 0xff;
}

static void
vga_mem_writeb (vga *v, uint32_t off, uint8_t val8)
{
  vga_regs *r = &v->r;
  size_t mask = vram_mask (v);
  if (window_is_banked_linear (v))
    {
      if (off < 0x10000)
        {
          size_t a = (v->bank_offset + off) & mask;
          v->vram[a] = val8;
          vga_mark_dirty_locked (v, a, 1);
        }
      return;
    }
  int64_t addr = window_decode (v, off);
  if (addr < 0)
    return;
  if (r->seq[4] & 0x08)
    {
      unsigned plane = addr & 3;
      if (r->seq[2] & (1u << plane))
        {
          v->vram[addr & mask] = val8;
          vga_mark_dirty_locked (v, addr & mask, 1);
        }
      return;
    }
  if (!(r->seq[4] & 0x04)) /* odd/even */
    {
      unsigned plane = (r->gr[4] & 2) | (addr & 1);
      if (r->seq[2] & (1u << plane))
        {
          size_t a = (((addr & ~1) << 1) | plane) & mask;
          v->vram[a] = val8;
          vga_mark_dirty_locked (v, a, 1);
        }
      return;
    }

  uint32_t val = val8, bit_mask;
  unsigned rot = r->gr[3] & 7;
  switch (r->gr[5] & 3)
    {
    case 0:
      val = ((val >> rot) | (val << (8 - rot))) & 0xff;
      val *= 0x01010101u;
      {
        uint32_t set_mask = mask16[r->gr[1] & 0xf];
        val = (val & ~set_mask) | (mask16[r->gr[0] & 0xf] & set_mask);
      }
      bit_mask = r->gr[8];
      break;
    case 1:
      val = r->latch;
      goto store;
    case 2:
      val = mask16[val & 0xf];
      bit_mask = r->gr[8];
      break;
    default:
      val = ((val >> rot) | (val << (8 - rot))) & 0xff;
      bit_mask = r->gr[8] & val;
      val = mask16[r->gr[0] & 0xf];
      break;
    }
  switch ((r->gr[3] >> 3) & 3)
    {
    case 1:
      val &= r->latch;
      break;
    case 2:
      val |= r->latch;
      break;
    case 3:
      val ^= r->latch;
      break;
    default:
      break;
    }
  bit_mask *= 0x01010101u;
  val = (val & bit_mask) | (r->latch & ~bit_mask);

store:;
  uint32_t plane_mask = mask16[r->seq[2] & 0xf];
  size_t a = (addr * 4) & mask & ~(size_t) 3;
  uint32_t old = load32 (&v->vram[a]);
  store32 (&v->vram[a], (old & ~plane_mask) | (val & plane_mask));
  vga_mark_dirty_locked (v, a, 4);
}

static uint64_t
window_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  uint64_t val = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    val |= (uint64_t) vga_mem_readb (v, (uint32_t) (a->offset + i)) << (8 * i);
  return val;
}

static void
window_write (void *opaque, const vmm_access *a, uint64_t val)
{
  vga *v = opaque;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    vga_mem_writeb (v, (uint32_t) (a->offset + i), (val >> (8 * i)) & 0xff);
}

static const vmm_region_ops window_ops = {
  .read = window_read,
  .write = window_write,
};

/* ---- PCI BARs ----------------------------------------------------------- */

static uint64_t
lfb_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  uint64_t val = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    val |= (uint64_t) v->vram[(a->offset + i) & vram_mask (v)] << (8 * i);
  return val;
}

static void
lfb_write (void *opaque, const vmm_access *a, uint64_t val)
{
  vga *v = opaque;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    v->vram[(a->offset + i) & vram_mask (v)] = (val >> (8 * i)) & 0xff;
  vga_mark_dirty_locked (v, a->offset & vram_mask (v), a->size);
}

static const vmm_region_ops lfb_ops = {
  .read = lfb_read,
  .write = lfb_write,
};

static uint64_t
mmio_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  uint64_t off = a->offset;
  if (off >= VGA_MMIO_VGA_PORTS && off + a->size <= VGA_MMIO_VGA_PORTS + 0x20)
    {
      uint64_t val = 0;
      for (unsigned i = 0; i < a->size; i++)
        val |= (uint64_t) vga_port_read (
                   v, (uint16_t) (0x3c0 + off - VGA_MMIO_VGA_PORTS + i))
               << (8 * i);
      return val;
    }
  if (off >= VGA_MMIO_DISPI && off < VGA_MMIO_DISPI + 2 * VBE_DISPI_INDEX_NB)
    {
      uint16_t reg = vbe_read (v, (unsigned) (off - VGA_MMIO_DISPI) / 2);
      return (off & 1) ? reg >> 8 : (a->size == 1 ? reg & 0xff : reg);
    }
  if (off == VGA_MMIO_QEXT)
    return QEXT_SIZE;
  if (off == VGA_MMIO_QEXT + 4)
    return v->r.qext_byteorder;
  return a->size >= 8 ? UINT64_MAX : (1ull << (8 * a->size)) - 1;
}

static void
mmio_write (void *opaque, const vmm_access *a, uint64_t val)
{
  vga *v = opaque;
  uint64_t off = a->offset;
  if (off >= VGA_MMIO_VGA_PORTS && off + a->size <= VGA_MMIO_VGA_PORTS + 0x20)
    {
      for (unsigned i = 0; i < a->size; i++)
        vga_port_write (v, (uint16_t) (0x3c0 + off - VGA_MMIO_VGA_PORTS + i),
                        (val >> (8 * i)) & 0xff);
      return;
    }
  if (off >= VGA_MMIO_DISPI && off < VGA_MMIO_DISPI + 2 * VBE_DISPI_INDEX_NB)
    {
      unsigned index = (unsigned) (off - VGA_MMIO_DISPI) / 2;
      uint16_t reg = v->r.vbe[index];
      if (a->size == 1)
        val = (off & 1) ? (reg & 0x00ff) | (val & 0xff) << 8
                        : (reg & 0xff00) | (val & 0xff);
      else if (off & 1)
        return;
      vbe_write (v, index, (uint16_t) val);
      return;
    }
  if (off == VGA_MMIO_QEXT + 4 && a->size == 4)
    {
      /* Only a little-endian framebuffer is offered. */
      if (val == QEXT_LITTLE_ENDIAN)
        v->r.qext_byteorder = (uint32_t) val;
    }
}

static const vmm_region_ops mmio_ops = {
  .read = mmio_read,
  .write = mmio_write,
};

static uint64_t
rom_read (void *opaque, const vmm_access *a)
{
  vga *v = opaque;
  uint64_t val = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    {
      uint64_t o = a->offset + i;
      val |= (uint64_t) (o < v->rom_len ? v->rom[o] : 0) << (8 * i);
    }
  return val;
}

static void
rom_write (void *opaque, const vmm_access *a, uint64_t val)
{
}

static const vmm_region_ops rom_ops = {
  .read = rom_read,
  .write = rom_write,
};

static void
vga_bar_mapped (vmm_pci_device *pci, unsigned bar, uint64_t addr)
{
  vga *v = pci->opaque;
  if (bar == 0 && v->lfb_fn)
    v->lfb_fn (v->lfb_opaque, addr, v->vram, v->vram_size);
  if (bar == VMM_PCI_ROM_SLOT && v->rom_fn && v->rom_bar_size >= 4096)
    v->rom_fn (v->rom_opaque, addr, v->rom, v->rom_bar_size);
}

static const vmm_pci_device_ops vga_pci_ops = {
  .bar_mapped = vga_bar_mapped,
};

/* ---- Device ------------------------------------------------------------- */

static void
vga_regs_defaults (vga *v)
{
  v->r = (vga_regs){
    .dac_mask = 0xff,
    .qext_byteorder = QEXT_LITTLE_ENDIAN,
  };
  v->r.vbe[VBE_DISPI_INDEX_ID] = VBE_DISPI_ID5;
  vga_vbe_fixup (v);
}

static void
vga_reset (vmm_device *dev)
{
  vga *v = (vga *) dev;
  vmm_pci_device_reset (&v->pci);
  vga_regs_defaults (v);
}

#define VGA_STATE_TAG VMM_STATE_TAG ('V', 'G', 'A', 'S')
#define VGA_STATE_VERSION 1

static void
vga_save_state (vmm_device *dev, GByteArray *out)
{
  vga *v = (vga *) dev;
  const vga_regs *r = &v->r;
  vmm_state_put_header (out, VGA_STATE_TAG, VGA_STATE_VERSION);
  vmm_state_put_bytes (out, v->pci.config, VMM_PCI_CONFIG_SIZE);
  vmm_state_put_u8 (out, r->misc);
  vmm_state_put_u8 (out, r->fcr);
  vmm_state_put_u8 (out, r->st01);
  vmm_state_put_u8 (out, r->seq_index);
  vmm_state_put_bytes (out, r->seq, VGA_SEQ_N);
  vmm_state_put_u8 (out, r->crtc_index);
  vmm_state_put_bytes (out, r->crtc, VGA_CRTC_N);
  vmm_state_put_u8 (out, r->gr_index);
  vmm_state_put_bytes (out, r->gr, VGA_GR_N);
  vmm_state_put_u8 (out, r->ar_index);
  vmm_state_put_bool (out, r->ar_flip_flop);
  vmm_state_put_bytes (out, r->ar, VGA_AR_N);
  vmm_state_put_u8 (out, r->dac_mask);
  vmm_state_put_u8 (out, r->dac_state);
  vmm_state_put_u8 (out, r->dac_read_index);
  vmm_state_put_u8 (out, r->dac_write_index);
  vmm_state_put_u8 (out, r->dac_sub_index);
  vmm_state_put_bytes (out, r->dac_cache, 3);
  vmm_state_put_bytes (out, r->palette, VGA_PAL_N);
  vmm_state_put_u32 (out, r->latch);
  vmm_state_put_u16 (out, r->vbe_index);
  for (unsigned i = 0; i < VBE_DISPI_INDEX_NB; i++)
    vmm_state_put_u16 (out, r->vbe[i]);
  vmm_state_put_u32 (out, r->qext_byteorder);
  /* VRAM up to its last page that is not all zeros. */
  size_t used = v->vram_size;
  while (used)
    {
      const uint8_t *p = v->vram + used - VGA_PAGE_SIZE;
      if (p[0] || memcmp (p, p + 1, VGA_PAGE_SIZE - 1))
        break;
      used -= VGA_PAGE_SIZE;
    }
  vmm_state_put_u32 (out, (uint32_t) v->vram_size);
  vmm_state_put_u32 (out, (uint32_t) used);
  vmm_state_put_bytes (out, v->vram, used);
}

static gboolean
vga_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                GError **error)
{
  vga *v = (vga *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  vga_regs r;

  if (!vmm_state_begin (&rd, data, len, VGA_STATE_TAG, VGA_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, config, sizeof config);
  r.misc = vmm_state_get_u8 (&rd);
  r.fcr = vmm_state_get_u8 (&rd);
  r.st01 = vmm_state_get_u8 (&rd);
  r.seq_index = vmm_state_get_u8 (&rd);
  vmm_state_get_bytes (&rd, r.seq, VGA_SEQ_N);
  r.crtc_index = vmm_state_get_u8 (&rd);
  vmm_state_get_bytes (&rd, r.crtc, VGA_CRTC_N);
  r.gr_index = vmm_state_get_u8 (&rd);
  vmm_state_get_bytes (&rd, r.gr, VGA_GR_N);
  r.ar_index = vmm_state_get_u8 (&rd);
  r.ar_flip_flop = vmm_state_get_bool (&rd);
  vmm_state_get_bytes (&rd, r.ar, VGA_AR_N);
  r.dac_mask = vmm_state_get_u8 (&rd);
  r.dac_state = vmm_state_get_u8 (&rd);
  r.dac_read_index = vmm_state_get_u8 (&rd);
  r.dac_write_index = vmm_state_get_u8 (&rd);
  r.dac_sub_index = vmm_state_get_u8 (&rd);
  vmm_state_get_bytes (&rd, r.dac_cache, 3);
  vmm_state_get_bytes (&rd, r.palette, VGA_PAL_N);
  r.latch = vmm_state_get_u32 (&rd);
  r.vbe_index = vmm_state_get_u16 (&rd);
  for (unsigned i = 0; i < VBE_DISPI_INDEX_NB; i++)
    r.vbe[i] = vmm_state_get_u16 (&rd);
  r.qext_byteorder = vmm_state_get_u32 (&rd);
  uint32_t vram_size = vmm_state_get_u32 (&rd);
  uint32_t used = vmm_state_get_u32 (&rd);
  vmm_state_check (&rd, !memcmp (config, v->pci.config, 4), "PCI ID");
  vmm_state_check (&rd, r.seq_index < VGA_SEQ_N, "sequencer index");
  vmm_state_check (&rd, r.crtc_index < 0x40, "CRTC index");
  vmm_state_check (&rd, r.gr_index < 0x10, "graphics index");
  vmm_state_check (&rd, r.ar_index < 0x40, "attribute index");
  vmm_state_check (&rd, r.dac_sub_index < 3, "DAC sub-index");
  vmm_state_check (&rd, r.dac_state == 0 || r.dac_state == 3, "DAC state");
  vmm_state_check (&rd, r.qext_byteorder == QEXT_LITTLE_ENDIAN, "byte order");
  vmm_state_check (&rd, vram_size == v->vram_size, "VRAM size");
  vmm_state_check (&rd, used <= v->vram_size && used % VGA_PAGE_SIZE == 0,
                   "VRAM length");
  for (unsigned i = 0; i < VGA_SEQ_N; i++)
    vmm_state_check (&rd, !(r.seq[i] & ~seq_wmask[i]), "sequencer register");
  for (unsigned i = 0; i < VGA_GR_N; i++)
    vmm_state_check (&rd, !(r.gr[i] & ~gr_wmask[i]), "graphics register");
  const uint8_t *vram = rd.invalid ? NULL : vmm_state_take (&rd, used);
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  memcpy (v->pci.config, config, sizeof config);
  v->r = r;
  if (used)
    memcpy (v->vram, vram, used);
  memset (v->vram + used, 0, v->vram_size - used);
  vga_vbe_fixup (v);
  vga_mark_dirty_locked (v, 0, v->vram_size);
  return TRUE;
}

static void
vga_destroy (vmm_device *dev)
{
  vga *v = (vga *) dev;
  if (v->pio_attached)
    {
      vmm_bus_unregister (v->pio, VGA_PORT_BASE, v);
      vmm_bus_unregister (v->pio, VBE_DISPI_IOPORT_INDEX, v);
    }
  if (v->window_attached)
    vmm_bus_unregister (v->mmio, VGA_WINDOW_BASE, v);
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    if (v->pci.bars[i].ops && v->pci.bars[i].mapped_at != VMM_PCI_UNMAPPED)
      vmm_bus_unregister (v->mmio, v->pci.bars[i].mapped_at, v);
  vga_render_state_free (v->rs);
  g_mutex_clear (&v->render_lock);
  munmap (v->vram, v->vram_size);
  if (v->rom_bar_size >= 4096)
    g_aligned_free (v->rom);
  else
    g_free (v->rom);
  g_free (v->dirty);
  g_mutex_clear (&dev->lock);
  g_free (v);
}

static const vmm_device_ops vga_device_ops = {
  .reset = vga_reset,
  .save_state = vga_save_state,
  .load_state = vga_load_state,
  .destroy = vga_destroy,
};

vga *
vga_create (vmm_bus *pio, vmm_bus *mmio, const uint8_t *rom, size_t rom_len,
            size_t vram_size, GError **error)
{
  if (!vram_size)
    vram_size = VGA_DEFAULT_VRAM_SIZE;
  if (vram_size < VGA_MIN_VRAM_SIZE || vram_size > VGA_MAX_VRAM_SIZE
      || (vram_size & (vram_size - 1)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "VGA memory of %zu bytes: it must be a power of two from "
                   "1 MiB to 256 MiB",
                   vram_size);
      return NULL;
    }
  if (rom && (rom_len < 3 || rom_len > (16u << 20) || rom[0] != 0x55
              || rom[1] != 0xaa))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the VGA option ROM is not an option ROM (no 55 AA "
                   "signature, or a size of %zu bytes)",
                   rom_len);
      return NULL;
    }
  void *vram = mmap (NULL, vram_size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (vram == MAP_FAILED)
    {
      int err = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (err),
                   "cannot allocate %zu bytes of VGA memory: %s", vram_size,
                   g_strerror (err));
      return NULL;
    }

  vga *v = g_new0 (vga, 1);
  vmm_device_init (&v->dev, "vga", &vga_device_ops);
  g_mutex_init (&v->render_lock);
  v->pio = pio;
  v->mmio = mmio;
  v->vram = vram;
  v->vram_size = vram_size;
  v->n_pages = vram_size / VGA_PAGE_SIZE;
  size_t bits = 8 * sizeof (unsigned long);
  v->dirty = g_new0 (unsigned long, (v->n_pages + bits - 1) / bits);
  v->rs = vga_render_state_new ();

  vmm_pci_device_init (&v->pci, &v->dev, &vga_pci_ops, v, VGA_PCI_VENDOR,
                       VGA_PCI_DEVICE, 0x030000, 0x02);
  vmm_pci_set_subsystem (&v->pci, 0x1af4, 0x1100);
  vmm_pci_set_bar (&v->pci, 0, VMM_PCI_BAR_MEM32, true, vram_size, &lfb_ops,
                   v);
  vmm_pci_set_bar (&v->pci, 2, VMM_PCI_BAR_MEM32, false, VGA_MMIO_BAR_SIZE,
                   &mmio_ops, v);
  if (rom)
    {
      size_t size = 2048;
      while (size < rom_len)
        size <<= 1;
      /* Page aligned and padded to the BAR, so that it can be a memory
       * slot (vga_set_rom_handler). */
      if (size >= 4096)
        v->rom = g_aligned_alloc0 (1, size, 4096);
      else
        v->rom = g_malloc0 (size);
      memcpy (v->rom, rom, rom_len);
      v->rom_len = rom_len;
      v->rom_bar_size = size;
      vmm_pci_set_bar (&v->pci, VMM_PCI_ROM_SLOT, VMM_PCI_BAR_MEM32, false,
                       size, &rom_ops, v);
    }
  vga_regs_defaults (v);
  return v;
}

vmm_device *
vga_device (vga *v)
{
  return &v->dev;
}

vmm_pci_device *
vga_pci (vga *v)
{
  return &v->pci;
}

gboolean
vga_attach (vga *v, vmm_pci_host *host, unsigned devfn, GError **error)
{
  g_return_val_if_fail (!v->pio_attached, FALSE);
  if (!vmm_bus_register (v->pio, VGA_PORT_BASE, VGA_PORT_LEN, &v->dev,
                         &vga_ports_ops, v, error))
    return FALSE;
  if (!vmm_bus_register (v->pio, VBE_DISPI_IOPORT_INDEX, VBE_PORT_LEN,
                         &v->dev, &vbe_ports_ops, v, error))
    goto fail_vbe;
  if (!vmm_bus_register (v->mmio, VGA_WINDOW_BASE, VGA_WINDOW_LEN, &v->dev,
                         &window_ops, v, error))
    goto fail_window;
  if (!vmm_pci_host_attach (host, &v->pci, devfn, error))
    goto fail_pci;
  v->pio_attached = true;
  v->window_attached = true;
  return TRUE;

fail_pci:
  vmm_bus_unregister (v->mmio, VGA_WINDOW_BASE, v);
fail_window:
  vmm_bus_unregister (v->pio, VBE_DISPI_IOPORT_INDEX, v);
fail_vbe:
  vmm_bus_unregister (v->pio, VGA_PORT_BASE, v);
  return FALSE;
}

void
vga_set_rom_handler (vga *v, vga_lfb_fn fn, void *opaque)
{
  g_mutex_lock (&v->dev.lock);
  v->rom_fn = fn;
  v->rom_opaque = opaque;
  g_mutex_unlock (&v->dev.lock);
}

void
vga_set_lfb_handler (vga *v, vga_lfb_fn fn, void *opaque)
{
  g_mutex_lock (&v->dev.lock);
  v->lfb_fn = fn;
  v->lfb_opaque = opaque;
  g_mutex_unlock (&v->dev.lock);
}

uint8_t *
vga_vram (vga *v, size_t *size)
{
  if (size)
    *size = v->vram_size;
  return v->vram;
}
