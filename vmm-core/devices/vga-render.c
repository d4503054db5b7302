/* The VGA renderer: text modes (font from plane 2, attributes, blink, the
 * hardware cursor), planar 16-colour modes, 256-colour chain-4 modes and
 * the DISPI linear modes at every depth, into an XRGB8888 surface.
 *
 * Only what changed is redrawn and reported: text by comparing each cell
 * (character, attribute, cursor, blink, glyph bytes) with the last frame;
 * graphics by the VRAM pages written since the last frame (window writes,
 * BAR0 writes seen by the bus, and vga_mark_vram_dirty from KVM's dirty
 * log). A change of mode or palette redraws everything.
 *
 * Scan-out geometry follows the CRTC, as QEMU's VGA does: mode 13h comes
 * out as 640x400 (each pixel doubled, each line twice), mode 0Dh too,
 * mode 12h as 640x480, 80x25 text with 9-dot characters as 720x400. */
#include "vmm-core/devices/vga-int.h"

#include <string.h>

typedef enum {
  KIND_BLANK = 1,
  KIND_TEXT,
  KIND_PLANAR, /* 4 bits per pixel over four planes */
  KIND_256,    /* legacy 256-colour, one byte per pixel */
  KIND_VBE,    /* DISPI packed pixels: 8, 15, 16, 24, 32 bpp */
} mode_kind;

/* Everything that, when it changes, makes every pixel suspect. */
typedef struct vga_mode {
  mode_kind kind;
  int width; /* surface size */
  int height;
  unsigned bpp; /* KIND_VBE */
  bool dot_double;
  uint32_t start;       /* bytes into VRAM */
  uint32_t line_offset; /* bytes */
  int multi_scan;
  int line_compare;
  unsigned crtc17;
  unsigned plane_enable;
  /* Text. */
  int cols;
  int rows;
  int cw;
  int cheight;
  uint32_t font_off[2]; /* plane-2 addresses of character maps A/B */
  bool line_graphics;
  bool blink_enable;
} vga_mode;

#define FONT_BYTES (256 * 32)

struct vga_render_state {
  bool valid;
  vga_mode mode;
  display_surface *surface;
  uint64_t surface_gen;
  uint32_t pal16[16];
  uint32_t pal256[256];
  uint32_t *cells;
  size_t n_cells;
  uint8_t font[2][FONT_BYTES];
  unsigned long *dirty;
  size_t dirty_words;
  uint8_t *line; /* a wrapped scan line, gathered */
  size_t line_len;
};

vga_render_state *
vga_render_state_new (void)
{
  return g_new0 (vga_render_state, 1);
}

void
vga_render_state_free (vga_render_state *rs)
{
  if (!rs)
    return;
  g_free (rs->cells);
  g_free (rs->dirty);
  g_free (rs->line);
  g_free (rs);
}

static inline uint32_t
rgb (unsigned r, unsigned g, unsigned b)
{
  return 0xff000000u | (r & 0xff) << 16 | (g & 0xff) << 8 | (b & 0xff);
}

static inline unsigned
c6to8 (uint8_t c)
{
  c &= 0x3f;
  return (unsigned) (c << 2 | c >> 4);
}

static void
compute_palettes (const vga_regs *r, bool dac8, uint32_t pal16[16],
                  uint32_t pal256[256])
{
  for (unsigned i = 0; i < 256; i++)
    {
      const uint8_t *p = &r->palette[i * 3];
      pal256[i] = dac8 ? rgb (p[0], p[1], p[2])
                       : rgb (c6to8 (p[0]), c6to8 (p[1]), c6to8 (p[2]));
    }
  /* Attribute palette, then the colour select register (P7:P4). */
  for (unsigned i = 0; i < 16; i++)
    {
      unsigned v = r->ar[i];
      if (r->ar[0x10] & 0x80)
        v = ((r->ar[0x14] & 0x0f) << 4) | (v & 0x0f);
      else
        v = ((r->ar[0x14] & 0x0c) << 4) | (v & 0x3f);
      const uint8_t *p = &r->palette[v * 3];
      pal16[i] = rgb (c6to8 (p[0]), c6to8 (p[1]), c6to8 (p[2]));
    }
}

static int
clamp_size (int v, int max)
{
  return v < 1 ? 1 : v > max ? max : v;
}

static void
compute_mode (const vga_regs *r, const vga_vbe_geom *vbe, display_surface *s,
              vga_mode *m)
{
  memset (m, 0, sizeof *m);
  const uint8_t *cr = r->crtc;
  if (!(r->ar_index & 0x20) || (r->seq[1] & 0x20))
    {
      m->kind = KIND_BLANK;
      m->width = display_surface_width (s);
      m->height = display_surface_height (s);
      return;
    }
  m->line_compare = -1;
  m->crtc17 = 3;
  if (vbe->enabled)
    {
      m->kind = vbe->bpp == 4 ? KIND_PLANAR : KIND_VBE;
      m->bpp = vbe->bpp;
      m->width = (int) vbe->width;
      m->height = (int) vbe->height;
      m->start = vbe->start;
      m->line_offset = vbe->line_offset;
      m->plane_enable = 0xf;
    }
  else
    {
      int vde = cr[0x12] | (cr[7] & 0x02) << 7 | (cr[7] & 0x40) << 3;
      m->start = (uint32_t) (cr[0x0c] << 8 | cr[0x0d]) * 4;
      m->line_offset = (uint32_t) cr[0x13] * 8;
      if (!(r->gr[6] & 1))
        {
          m->kind = KIND_TEXT;
          m->cols = cr[1] + 1;
          m->cheight = (cr[9] & 0x1f) + 1;
          m->cw = (r->seq[1] & 1) ? 8 : 9;
          m->dot_double = r->seq[1] & 0x08;
          m->rows = (vde + 1) / m->cheight;
          if (m->rows < 1)
            m->rows = 1;
          m->width = m->cols * m->cw * (m->dot_double ? 2 : 1);
          m->height = m->rows * m->cheight;
          /* Map B for attribute bit 3 clear (bits 4,1,0), map A for set
           * (bits 5,3,2); map n at 8K * {0,2,4,6,1,3,5,7}[n]. */
          unsigned sr3 = r->seq[3];
          unsigned b = ((sr3 >> 4) & 1) | ((sr3 << 1) & 6);
          unsigned a = ((sr3 >> 5) & 1) | ((sr3 >> 1) & 6);
          m->font_off[0] = b * 8192;
          m->font_off[1] = a * 8192;
          m->line_graphics = r->ar[0x10] & 0x04;
          m->blink_enable = r->ar[0x10] & 0x08;
        }
      else
        {
          unsigned shift = (r->gr[5] >> 5) & 3;
          int double_scan = cr[9] >> 7;
          m->width = (cr[1] + 1) * 8;
          m->height = vde + 1;
          m->multi_scan = (((cr[9] & 0x1f) + 1) << double_scan) - 1;
          m->line_compare = cr[0x18] | (cr[7] & 0x10) << 4
                            | (cr[9] & 0x40) << 3;
          m->crtc17 = cr[0x17] & 3;
          m->plane_enable = r->ar[0x12] & 0x0f;
          if (shift <= 1)
            {
              /* CGA's interleaved 2-bit shift mode (shift 1) is shown as
               * planar: close enough for the boot screens that use it. */
              m->kind = KIND_PLANAR;
              if (shift == 1)
                m->multi_scan = 0;
              if (r->seq[1] & 0x08)
                {
                  m->width *= 2;
                  m->dot_double = true;
                }
            }
          else
            {
              m->kind = KIND_256;
              m->dot_double = true;
            }
        }
    }
  m->width = clamp_size (m->width, DISPLAY_MAX_WIDTH);
  m->height = clamp_size (m->height, DISPLAY_MAX_HEIGHT);
}

/* ---- Text --------------------------------------------------------------- */

static unsigned
render_text (vga *v, vga_render_state *rs, const vga_regs *r,
             const vga_mode *m, display_surface *s, bool full,
             uint64_t frame)
{
  const uint8_t *vram = v->vram;
  size_t mask = v->vram_size - 1;
  size_t n = (size_t) m->cols * (size_t) m->rows;
  unsigned redrawn = 0;

  if (rs->n_cells != n)
    {
      g_free (rs->cells);
      rs->cells = g_new0 (uint32_t, n);
      rs->n_cells = n;
      full = true;
    }

  /* The glyphs as they are now; a changed glyph redraws its cells. */
  uint8_t font[2][FONT_BYTES];
  bool glyph_changed[2][256];
  for (int map = 0; map < 2; map++)
    {
      for (unsigned i = 0; i < FONT_BYTES; i++)
        font[map][i] = vram[((size_t) (m->font_off[map] + i) * 4 + 2) & mask];
      for (unsigned ch = 0; ch < 256; ch++)
        glyph_changed[map][ch]
            = full || memcmp (&font[map][ch * 32], &rs->font[map][ch * 32], 32);
    }
  memcpy (rs->font, font, sizeof font);

  const uint8_t *cr = r->crtc;
  bool cursor_on = !(cr[0x0a] & 0x20) && !((frame >> 3) & 1);
  size_t cursor_addr = ((size_t) (cr[0x0e] << 8 | cr[0x0f]) * 4) & mask;
  int cs = cr[0x0a] & 0x1f;
  int ce = MIN (cr[0x0b] & 0x1f, m->cheight - 1);
  bool blink_on = !((frame >> 4) & 1);
  int dd = m->dot_double ? 2 : 1;
  int cell_w = m->cw * dd;
  uint8_t *pixels = display_surface_pixels (s);
  int stride = display_surface_stride (s);

  for (int row = 0; row < m->rows; row++)
    {
      int min_col = -1, max_col = -1;
      for (int col = 0; col < m->cols; col++)
        {
          size_t a = (m->start + (size_t) row * m->line_offset
                      + (size_t) col * 4)
                     & mask;
          uint8_t ch = vram[a];
          uint8_t attr = vram[(a + 1) & mask];
          int map = (attr >> 3) & 1;
          bool is_cursor = cursor_on && a == cursor_addr;
          bool blink_hide = m->blink_enable && (attr & 0x80) && !blink_on;
          uint32_t sig = ch | (uint32_t) attr << 8 | (uint32_t) is_cursor << 16
                         | (uint32_t) blink_hide << 17 | 1u << 18;
          uint32_t *cell = &rs->cells[(size_t) row * m->cols + col];
          if (!full && *cell == sig && !glyph_changed[map][ch])
            continue;
          *cell = sig;
          if (min_col < 0)
            min_col = col;
          max_col = col;

          uint32_t bg = rs->pal16[(attr >> 4) & (m->blink_enable ? 7 : 15)];
          uint32_t fg = blink_hide ? bg : rs->pal16[attr & 0x0f];
          const uint8_t *glyph = &font[map][ch * 32];
          bool dup9 = m->line_graphics && ch >= 0xc0 && ch <= 0xdf;
          for (int y = 0; y < m->cheight; y++)
            {
              uint32_t *d = (uint32_t *) (pixels
                                          + (size_t) (row * m->cheight + y)
                                                * stride)
                            + (size_t) col * cell_w;
              unsigned bits = glyph[y];
              if (m->cw == 9)
                bits = bits << 1 | (dup9 ? bits & 1 : 0);
              else
                bits <<= 1;
              if (is_cursor && cs <= ce && y >= cs && y <= ce)
                bits = 0x1ff;
              for (int x = 0; x < m->cw; x++)
                {
                  uint32_t c = (bits >> (8 - x)) & 1 ? fg : bg;
                  for (int k = 0; k < dd; k++)
                    *d++ = c;
                }
            }
        }
      if (min_col >= 0)
        {
          display_surface_dirty (s, min_col * cell_w, row * m->cheight,
                                 (max_col - min_col + 1) * cell_w,
                                 m->cheight);
          redrawn++;
        }
    }
  return redrawn;
}

/* ---- Graphics ----------------------------------------------------------- */

static size_t
line_bytes (const vga_mode *m)
{
  int src_px = m->dot_double ? (m->width + 1) / 2 : m->width;
  switch (m->kind)
    {
    case KIND_PLANAR:
      return (size_t) (src_px + 7) / 8 * 4;
    case KIND_256:
      return (size_t) src_px;
    default:
      return (size_t) src_px * ((m->bpp + 7) / 8);
    }
}

static bool
range_dirty (const vga_render_state *rs, size_t vram_size, size_t a,
             size_t len)
{
  if (a + len > vram_size)
    return true; /* wraps: rare, just draw */
  size_t bits = 8 * sizeof (unsigned long);
  for (size_t p = a / VGA_PAGE_SIZE; p <= (a + len - 1) / VGA_PAGE_SIZE; p++)
    if (rs->dirty[p / bits] & (1ul << (p % bits)))
      return true;
  return false;
}

/* The bytes of a scan line, gathered when it wraps past the end of VRAM. */
static const uint8_t *
line_source (vga *v, vga_render_state *rs, size_t a, size_t len)
{
  if (a + len <= v->vram_size)
    return v->vram + a;
  if (rs->line_len < len)
    {
      g_free (rs->line);
      rs->line = g_malloc (len);
      rs->line_len = len;
    }
  for (size_t i = 0; i < len; i++)
    rs->line[i] = v->vram[(a + i) & (v->vram_size - 1)];
  return rs->line;
}

/* 32 bpp (B, G, R, X in memory) is the busiest mode and the surface's own
 * layout on a little-endian host: whole pixels with the X byte forced,
 * four at a time, instead of three byte loads each (the line loop was the
 * renderer's hottest code at 1920x1080). */
static void
draw_line_32 (const uint8_t *src, uint32_t *d, int w)
{
  int x = 0;
#if G_BYTE_ORDER == G_LITTLE_ENDIAN && defined(__GNUC__)
  typedef uint32_t px4 __attribute__ ((vector_size (16)));
  const px4 opaque = { 0xff000000u, 0xff000000u, 0xff000000u, 0xff000000u };
  for (; x + 4 <= w; x += 4)
    {
      px4 v;
      memcpy (&v, src + 4 * (size_t) x, sizeof v);
      v |= opaque;
      memcpy (d + x, &v, sizeof v);
    }
#endif
  for (; x < w; x++)
    d[x] = rgb (src[4 * x + 2], src[4 * x + 1], src[4 * x]);
}

static void
draw_line (const vga_render_state *rs, const vga_mode *m, const uint8_t *src,
           uint32_t *d)
{
  int w = m->width;
  int dd = m->dot_double ? 2 : 1;
  int x = 0;
  switch (m->kind)
    {
    case KIND_PLANAR:
      {
        uint32_t pmask = 0;
        for (int p = 0; p < 4; p++)
          if (m->plane_enable & (1u << p))
            pmask |= 0xffu << (8 * p);
        for (size_t i = 0; x < w; i += 4)
          {
            uint32_t data = ((uint32_t) src[i] | (uint32_t) src[i + 1] << 8
                             | (uint32_t) src[i + 2] << 16
                             | (uint32_t) src[i + 3] << 24)
                            & pmask;
            for (int bit = 7; bit >= 0 && x < w; bit--)
              {
                unsigned idx = ((data >> bit) & 1) | ((data >> (bit + 7)) & 2)
                               | ((data >> (bit + 14)) & 4)
                               | ((data >> (bit + 21)) & 8);
                for (int k = 0; k < dd && x < w; k++)
                  d[x++] = rs->pal16[idx];
              }
          }
        break;
      }
    case KIND_256:
      for (size_t i = 0; x < w; i++)
        for (int k = 0; k < dd && x < w; k++)
          d[x++] = rs->pal256[src[i]];
      break;
    default:
      switch (m->bpp)
        {
        case 8:
          for (; x < w; x++)
            d[x] = rs->pal256[src[x]];
          break;
        case 15:
          for (; x < w; x++)
            {
              unsigned p = src[2 * x] | src[2 * x + 1] << 8;
              unsigned r5 = (p >> 10) & 0x1f, g5 = (p >> 5) & 0x1f,
                       b5 = p & 0x1f;
              d[x] = rgb (r5 << 3 | r5 >> 2, g5 << 3 | g5 >> 2,
                          b5 << 3 | b5 >> 2);
            }
          break;
        case 16:
          for (; x < w; x++)
            {
              unsigned p = src[2 * x] | src[2 * x + 1] << 8;
              unsigned r5 = p >> 11, g6 = (p >> 5) & 0x3f, b5 = p & 0x1f;
              d[x] = rgb (r5 << 3 | r5 >> 2, g6 << 2 | g6 >> 4,
                          b5 << 3 | b5 >> 2);
            }
          break;
        case 24:
          for (; x < w; x++)
            d[x] = rgb (src[3 * x + 2], src[3 * x + 1], src[3 * x]);
          break;
        default:
          draw_line_32 (src, d, w);
          break;
        }
      break;
    }
}

static unsigned
render_graphics (vga *v, vga_render_state *rs, const vga_mode *m,
                 display_surface *s, bool full)
{
  size_t mask = v->vram_size - 1;
  size_t bytes = line_bytes (m);
  uint8_t *pixels = display_surface_pixels (s);
  int stride = display_surface_stride (s);
  uint32_t addr1 = m->start;
  int multi_run = m->multi_scan;
  unsigned y1 = 0, redrawn = 0;

  for (int y = 0; y < m->height; y++)
    {
      size_t addr = addr1;
      /* CGA and Hercules scan-line interleave (CR17 bits 0 and 1). */
      if (!(m->crtc17 & 1))
        addr = (addr & ~(size_t) 0x8000) | (size_t) (y1 & 1) << 15;
      if (!(m->crtc17 & 2))
        addr = (addr & ~(size_t) 0x10000) | (size_t) (y1 & 2) << 15;
      addr &= mask;
      if (full || range_dirty (rs, v->vram_size, addr, bytes))
        {
          const uint8_t *src = line_source (v, rs, addr, bytes);
          draw_line (rs, m, src, (uint32_t *) (pixels + (size_t) y * stride));
          display_surface_dirty (s, 0, y, m->width, 1);
          redrawn++;
        }
      if (!multi_run)
        {
          unsigned cga = (m->crtc17 & 3) ^ 3;
          if ((y1 & cga) == cga)
            addr1 += m->line_offset;
          y1++;
          multi_run = m->multi_scan;
        }
      else
        multi_run--;
      if (y == m->line_compare)
        addr1 = 0;
    }
  return redrawn;
}

static void
fill_black (display_surface *s)
{
  uint8_t *pixels = display_surface_pixels (s);
  int w = display_surface_width (s), h = display_surface_height (s);
  int stride = display_surface_stride (s);
  for (int y = 0; y < h; y++)
    {
      uint32_t *d = (uint32_t *) (pixels + (size_t) y * stride);
      for (int x = 0; x < w; x++)
        d[x] = 0xff000000u;
    }
  display_surface_dirty (s, 0, 0, w, h);
}

bool
vga_render (vga *v, display_surface *s, uint64_t frame)
{
  g_mutex_lock (&v->render_lock);
  vga_render_state *rs = v->rs;
  size_t bits = 8 * sizeof (unsigned long);
  size_t words = (v->n_pages + bits - 1) / bits;
  if (!rs->dirty)
    {
      rs->dirty = g_new0 (unsigned long, words);
      rs->dirty_words = words;
    }

  /* Snapshot the registers and take the dirty pages; the guest goes on
   * writing VRAM meanwhile, and its next writes show up next frame. */
  vga_regs r;
  vga_vbe_geom vbe;
  g_mutex_lock (&v->dev.lock);
  r = v->r;
  vbe = v->vbe;
  memcpy (rs->dirty, v->dirty, words * sizeof (unsigned long));
  memset (v->dirty, 0, words * sizeof (unsigned long));
  g_mutex_unlock (&v->dev.lock);

  vga_mode m;
  compute_mode (&r, &vbe, s, &m);
  bool full = !rs->valid || memcmp (&m, &rs->mode, sizeof m)
              || rs->surface != s
              || rs->surface_gen != display_surface_generation (s);

  uint32_t pal16[16], pal256[256];
  bool dac8 = vbe.enabled
              && (r.vbe[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_8BIT_DAC);
  compute_palettes (&r, dac8, pal16, pal256);
  bool palettized = m.kind == KIND_TEXT || m.kind == KIND_PLANAR
                    || m.kind == KIND_256 || (m.kind == KIND_VBE && m.bpp == 8);
  if (palettized && (memcmp (pal16, rs->pal16, sizeof pal16)
                     || memcmp (pal256, rs->pal256, sizeof pal256)))
    full = true;
  memcpy (rs->pal16, pal16, sizeof pal16);
  memcpy (rs->pal256, pal256, sizeof pal256);

  if (display_surface_width (s) != m.width
      || display_surface_height (s) != m.height)
    {
      display_surface_resize (s, m.width, m.height);
      full = true;
    }

  unsigned redrawn = 0;
  switch (m.kind)
    {
    case KIND_BLANK:
      if (full)
        {
          fill_black (s);
          redrawn = 1;
        }
      break;
    case KIND_TEXT:
      redrawn = render_text (v, rs, &r, &m, s, full, frame);
      break;
    default:
      redrawn = render_graphics (v, rs, &m, s, full);
      break;
    }

  memcpy (&rs->mode, &m, sizeof m);
  rs->valid = true;
  rs->surface = s;
  rs->surface_gen = display_surface_generation (s);
  display_surface_flush (s);
  g_mutex_unlock (&v->render_lock);
  return redrawn > 0;
}
