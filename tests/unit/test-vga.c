/* Bochs/std VGA: PCI function, registers, the memory window's read/write
 * modes, DISPI, and the renderer, driven through the port and MMIO buses as
 * a guest (the VGA BIOS, bochs-drm) would. Rendered surfaces are checked
 * pixel by pixel at named probes and as a whole against SHA-256 references
 * in vga-references.txt; VESSEL_UPDATE_REFERENCES=1 rewrites that file. */
#include <gio/gio.h>
#include <string.h>

#include "test-util.h"
#include "vmm-core/devices/vga.h"

#define DEVFN VMM_PCI_DEVFN (2, 0)
#define LFB_BASE 0xe0000000u
#define MMIO_BASE 0xfebf0000u
#define ROM_BASE 0xfeb00000u

typedef struct {
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  vga *vga;
  display_surface *s;
  GBytes *rom;
} fixture;

typedef struct {
  unsigned updates;
  unsigned resizes;
  int w, h;
  display_damage damage; /* everything reported since the last clear */
} recorder;

static void
rec_update (void *opaque, display_surface *s, const display_rect *rects,
            unsigned n)
{
  recorder *r = opaque;
  r->updates++;
  for (unsigned i = 0; i < n; i++)
    display_damage_add (&r->damage, rects[i].x, rects[i].y, rects[i].w,
                        rects[i].h);
}

static void
rec_resize (void *opaque, display_surface *s, int w, int h, uint64_t gen)
{
  recorder *r = opaque;
  r->resizes++;
  r->w = w;
  r->h = h;
}

static const display_listener_ops rec_ops = {
  .on_update = rec_update,
  .on_resize = rec_resize,
};

/* ---- References --------------------------------------------------------- */

static GHashTable *references; /* name -> "WxH sha256" */
static bool references_dirty;

static const char *
reference_path (void)
{
  static char *path;
  if (!path)
    {
      const char *dir = g_getenv ("VESSEL_REFERENCE_DIR");
      path = g_build_filename (dir ? dir : ".", "vga-references.txt", NULL);
    }
  return path;
}

static bool
updating_references (void)
{
  const char *u = g_getenv ("VESSEL_UPDATE_REFERENCES");
  return u && *u && strcmp (u, "0");
}

static void
load_references (void)
{
  references = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autofree char *text = NULL;
  if (!g_file_get_contents (reference_path (), &text, NULL, NULL))
    return;
  g_auto (GStrv) lines = g_strsplit (text, "\n", -1);
  for (char **l = lines; *l; l++)
    {
      if (!**l || **l == '#')
        continue;
      char *sp = strchr (*l, ' ');
      if (sp)
        g_hash_table_insert (references, g_strndup (*l, sp - *l),
                             g_strdup (sp + 1));
    }
}

static void
save_references (void)
{
  if (!references_dirty)
    return;
  GString *out = g_string_new (
      "# Rendered VGA surfaces: name, size, SHA-256 of the XRGB8888 pixels\n"
      "# (rows of width * 4 little-endian bytes). Written by test-vga with\n"
      "# VESSEL_UPDATE_REFERENCES=1; check the probes before committing.\n");
  GList *keys = g_list_sort (g_hash_table_get_keys (references),
                             (GCompareFunc) strcmp);
  for (GList *k = keys; k; k = k->next)
    g_string_append_printf (out, "%s %s\n", (char *) k->data,
                            (char *) g_hash_table_lookup (references, k->data));
  g_list_free (keys);
  g_autoptr (GError) error = NULL;
  if (!g_file_set_contents (reference_path (), out->str, -1, &error))
    g_printerr ("cannot write %s: %s\n", reference_path (), error->message);
  g_string_free (out, TRUE);
}

static char *
surface_digest (display_surface *s)
{
  display_image *img = display_surface_acquire (s);
  GChecksum *sum = g_checksum_new (G_CHECKSUM_SHA256);
  uint8_t *row = g_malloc ((size_t) img->width * 4);
  for (int y = 0; y < img->height; y++)
    {
      const uint32_t *p = (const uint32_t *) (img->pixels
                                              + (size_t) y * img->stride);
      for (int x = 0; x < img->width; x++)
        for (int b = 0; b < 4; b++)
          row[4 * x + b] = (p[x] >> (8 * b)) & 0xff;
      g_checksum_update (sum, row, (gssize) img->width * 4);
    }
  char *d = g_strdup_printf ("%dx%d %s", img->width, img->height,
                             g_checksum_get_string (sum));
  g_free (row);
  g_checksum_free (sum);
  display_image_release (img);
  return d;
}

static void
check_reference (display_surface *s, const char *name)
{
  g_autofree char *d = surface_digest (s);
  if (updating_references ())
    {
      const char *old = g_hash_table_lookup (references, name);
      if (!old || strcmp (old, d))
        {
          g_hash_table_insert (references, g_strdup (name), g_strdup (d));
          references_dirty = true;
        }
      return;
    }
  const char *want = g_hash_table_lookup (references, name);
  if (!want)
    {
      g_test_message ("no reference for %s in %s (have %s); run with "
                      "VESSEL_UPDATE_REFERENCES=1",
                      name, reference_path (), d);
      g_test_fail ();
      return;
    }
  if (strcmp (want, d))
    {
      g_test_message ("%s: rendered %s, reference %s", name, d, want);
      g_test_fail ();
    }
}

/* ---- Fixture and guest-side helpers ------------------------------------- */

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  g_assert_no_error (error);
  const char *rom_path = g_getenv ("VESSEL_VGABIOS");
  g_autofree char *rom = NULL;
  gsize rom_len = 0;
  if (rom_path && g_file_get_contents (rom_path, &rom, &rom_len, NULL))
    f->rom = g_bytes_new (rom, rom_len);
  f->vga = vga_create (f->pio, f->mmio, (const uint8_t *) rom, rom_len, 0,
                       &error);
  g_assert_no_error (error);
  g_assert_true (vga_attach (f->vga, f->host, DEVFN, &error));
  g_assert_no_error (error);
  f->s = display_surface_new (640, 480);
}

static void
teardown (fixture *f, gconstpointer data)
{
  display_surface_free (f->s);
  vmm_device_destroy (vga_device (f->vga));
  vmm_pci_host_free (f->host);
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
  if (f->rom)
    g_bytes_unref (f->rom);
}

static uint32_t
pixel (display_surface *s, int x, int y)
{
  g_assert_cmpint (x, <, display_surface_width (s));
  g_assert_cmpint (y, <, display_surface_height (s));
  return ((uint32_t *) (display_surface_pixels (s)
                        + (size_t) y * display_surface_stride (s)))[x];
}

static void
memw (fixture *f, uint32_t addr, uint8_t v)
{
  g_assert_true (vmm_bus_write (f->mmio, addr, 1, 0, v));
}

static uint8_t
memr (fixture *f, uint32_t addr)
{
  uint64_t v;
  g_assert_true (vmm_bus_read (f->mmio, addr, 1, 0, &v));
  return (uint8_t) v;
}

static void
seq (fixture *f, uint8_t i, uint8_t v)
{
  tu_outb (f->pio, 0x3c4, i);
  tu_outb (f->pio, 0x3c5, v);
}

static void
gr (fixture *f, uint8_t i, uint8_t v)
{
  tu_outb (f->pio, 0x3ce, i);
  tu_outb (f->pio, 0x3cf, v);
}

static void
crtc (fixture *f, uint8_t i, uint8_t v)
{
  tu_outb (f->pio, 0x3d4, i);
  tu_outb (f->pio, 0x3d5, v);
}

static void
dac (fixture *f, uint8_t index, uint8_t r, uint8_t g, uint8_t b)
{
  tu_outb (f->pio, 0x3c8, index);
  tu_outb (f->pio, 0x3c9, r);
  tu_outb (f->pio, 0x3c9, g);
  tu_outb (f->pio, 0x3c9, b);
}

/* The EGA colours in DAC entries 0-63, as the VGA BIOS loads them. */
static void
ega_palette (fixture *f)
{
  for (unsigned i = 0; i < 64; i++)
    dac (f, i, ((i >> 2) & 1) * 0x2a + ((i >> 5) & 1) * 0x15,
         ((i >> 1) & 1) * 0x2a + ((i >> 4) & 1) * 0x15,
         (i & 1) * 0x2a + ((i >> 3) & 1) * 0x15);
}

static uint32_t
dac_rgb (uint8_t r, uint8_t g, uint8_t b)
{
  return 0xff000000u | (uint32_t) ((r << 2) | (r >> 4)) << 16
         | (uint32_t) ((g << 2) | (g >> 4)) << 8 | ((b << 2) | (b >> 4));
}

static uint32_t
ega_rgb (unsigned i)
{
  return dac_rgb (((i >> 2) & 1) * 0x2a + ((i >> 5) & 1) * 0x15,
                  ((i >> 1) & 1) * 0x2a + ((i >> 4) & 1) * 0x15,
                  (i & 1) * 0x2a + ((i >> 3) & 1) * 0x15);
}

/* A standard mode's registers, what the VGA BIOS's mode table holds. */
typedef struct {
  uint8_t misc;
  uint8_t seq[4]; /* SR1-SR4 */
  uint8_t crtc[25];
  uint8_t ar[20];
  uint8_t gr[9];
} mode_regs;

static const mode_regs mode_03 = {
  0x67,
  { 0x00, 0x03, 0x00, 0x02 },
  { 0x5f, 0x4f, 0x50, 0x82, 0x55, 0x81, 0xbf, 0x1f, 0x00, 0x4f, 0x0d, 0x0e,
    0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x1f, 0x96, 0xb9, 0xa3,
    0xff },
  { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b,
    0x3c, 0x3d, 0x3e, 0x3f, 0x0c, 0x00, 0x0f, 0x08 },
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x0e, 0x0f, 0xff },
};

static const mode_regs mode_13 = {
  0x63,
  { 0x01, 0x0f, 0x00, 0x0e },
  { 0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0xbf, 0x1f, 0x00, 0x41, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x28, 0x40, 0x96, 0xb9, 0xa3,
    0xff },
  { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b,
    0x0c, 0x0d, 0x0e, 0x0f, 0x41, 0x00, 0x0f, 0x00 },
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0f, 0xff },
};

static const mode_regs mode_12 = {
  0xe3,
  { 0x01, 0x0f, 0x00, 0x06 },
  { 0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0x0b, 0x3e, 0x00, 0x40, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xea, 0x8c, 0xdf, 0x28, 0x00, 0xe7, 0x04, 0xe3,
    0xff },
  { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x14, 0x07, 0x38, 0x39, 0x3a, 0x3b,
    0x3c, 0x3d, 0x3e, 0x3f, 0x01, 0x00, 0x0f, 0x00 },
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0f, 0xff },
};

static const mode_regs mode_0d = {
  0x63,
  { 0x09, 0x0f, 0x00, 0x06 },
  { 0x2d, 0x27, 0x28, 0x90, 0x2b, 0x80, 0xbf, 0x1f, 0x00, 0xc0, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x9c, 0x8e, 0x8f, 0x14, 0x00, 0x96, 0xb9, 0xe3,
    0xff },
  { 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x10, 0x11, 0x12, 0x13,
    0x14, 0x15, 0x16, 0x17, 0x01, 0x00, 0x0f, 0x00 },
  { 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x0f, 0xff },
};

static void
set_mode (fixture *f, const mode_regs *m)
{
  tu_inb (f->pio, 0x3da);
  tu_outb (f->pio, 0x3c0, 0x00); /* blank while programming */
  tu_outb (f->pio, 0x3c2, m->misc);
  seq (f, 0, 0x01);
  for (unsigned i = 0; i < 4; i++)
    seq (f, i + 1, m->seq[i]);
  seq (f, 0, 0x03);
  crtc (f, 0x11, 0x00); /* lift the CR0-7 write protection */
  for (unsigned i = 0; i < 25; i++)
    crtc (f, i, m->crtc[i]);
  tu_inb (f->pio, 0x3da);
  for (unsigned i = 0; i < 20; i++)
    {
      tu_outb (f->pio, 0x3c0, i);
      tu_outb (f->pio, 0x3c0, m->ar[i]);
    }
  tu_outb (f->pio, 0x3c0, 0x14);
  tu_outb (f->pio, 0x3c0, 0x00);
  for (unsigned i = 0; i < 9; i++)
    gr (f, i, m->gr[i]);
  tu_inb (f->pio, 0x3da);
  tu_outb (f->pio, 0x3c0, 0x20); /* PAS: show it */
}

/* A made-up font, distinctive per character and row; 0x20 blank, 0xDB a
 * full block. */
static uint8_t
glyph_row (unsigned ch, unsigned row)
{
  if (ch == 0x20)
    return 0;
  if (ch == 0xdb)
    return 0xff;
  return (uint8_t) ((ch * 37u + row * 11u) ^ (row << 4) ^ ch);
}

/* What the BIOS does to load a font: plane 2 only, sequential addressing,
 * the window at A0000. */
static void
load_font (fixture *f, unsigned height)
{
  seq (f, 2, 0x04);
  seq (f, 4, 0x07);
  gr (f, 4, 0x02);
  gr (f, 5, 0x00);
  gr (f, 6, 0x04);
  for (unsigned ch = 0; ch < 256; ch++)
    for (unsigned r = 0; r < 32; r++)
      memw (f, 0xa0000 + ch * 32 + r, r < height ? glyph_row (ch, r) : 0);
  seq (f, 2, 0x03);
  seq (f, 4, 0x02);
  gr (f, 4, 0x00);
  gr (f, 5, 0x10);
  gr (f, 6, 0x0e);
}

static void
put_char (fixture *f, unsigned col, unsigned row, uint8_t ch, uint8_t attr)
{
  uint32_t a = 0xb8000 + (row * 80 + col) * 2;
  memw (f, a, ch);
  memw (f, a + 1, attr);
}

static void
text_mode (fixture *f)
{
  set_mode (f, &mode_03);
  ega_palette (f);
  load_font (f, 16);
  for (unsigned row = 0; row < 25; row++)
    for (unsigned col = 0; col < 80; col++)
      put_char (f, col, row, 0x20, 0x07);
  const char *msg = "Vessel VGA text mode";
  for (unsigned i = 0; msg[i]; i++)
    put_char (f, 10 + i, 3, (uint8_t) msg[i], 0x1e);
  put_char (f, 0, 0, 0xdb, 0x1f);
  put_char (f, 1, 0, 0x41, 0x4e);
  put_char (f, 2, 0, 0xdb, 0x8f); /* blinking */
  put_char (f, 3, 0, 0x41, 0x07);
  /* Cursor at row 1, column 1, scan lines 13-14. */
  crtc (f, 0x0a, 0x0d);
  crtc (f, 0x0b, 0x0e);
  crtc (f, 0x0e, 0x00);
  crtc (f, 0x0f, 81);
}

/* ---- PCI ---------------------------------------------------------------- */

static uint32_t
cfg_read (fixture *f, unsigned off, unsigned size)
{
  return vmm_pci_config_read (f->host, 0, DEVFN, off, size);
}

static void
cfg_write (fixture *f, unsigned off, unsigned size, uint32_t v)
{
  vmm_pci_config_write (f->host, 0, DEVFN, off, size, v);
}

typedef struct {
  unsigned calls;
  uint64_t gpa;
  uint8_t *vram;
  size_t size;
} lfb_record;

static void
on_lfb (void *opaque, uint64_t gpa, uint8_t *vram, size_t size)
{
  lfb_record *r = opaque;
  r->calls++;
  r->gpa = gpa;
  r->vram = vram;
  r->size = size;
}

static void
map_bars (fixture *f)
{
  cfg_write (f, 0x10, 4, LFB_BASE);
  cfg_write (f, 0x18, 4, MMIO_BASE);
  cfg_write (f, 0x30, 4, ROM_BASE | 1);
  cfg_write (f, 0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
}

static void
test_pci (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x11111234);
  g_assert_cmphex (cfg_read (f, 0x08, 4) >> 8, ==, 0x030000);
  g_assert_cmphex (cfg_read (f, 0x2c, 4), ==, 0x11001af4);
  /* BAR sizing: 16 MiB prefetchable framebuffer, 4 KiB MMIO. */
  cfg_write (f, 0x10, 4, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 0x10, 4), ==, 0xff000008);
  cfg_write (f, 0x18, 4, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 0x18, 4), ==, 0xfffff000);
  cfg_write (f, 0x14, 4, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 0x14, 4), ==, 0);

  lfb_record lfb = { 0 };
  vga_set_lfb_handler (f->vga, on_lfb, &lfb);
  map_bars (f);
  size_t size;
  uint8_t *vram = vga_vram (f->vga, &size);
  g_assert_cmpuint (size, ==, VGA_DEFAULT_VRAM_SIZE);
  g_assert_cmpuint ((uintptr_t) vram % 4096, ==, 0);
  g_assert_cmpuint (lfb.calls, ==, 1);
  g_assert_cmphex (lfb.gpa, ==, LFB_BASE);
  g_assert_true (lfb.vram == vram);
  g_assert_cmpuint (lfb.size, ==, size);
  /* Without a memory slot, BAR0 is VRAM through the bus. */
  vmm_bus_write (f->mmio, LFB_BASE + 0x123458, 4, 0, 0xdeadbeef);
  g_assert_cmphex (vram[0x123458], ==, 0xef);
  uint64_t v;
  vmm_bus_read (f->mmio, LFB_BASE + 0x123458, 2, 0, &v);
  g_assert_cmphex (v, ==, 0xbeef);
  /* MMIO BAR: DISPI ID and VRAM size, the qemu extension registers. */
  vmm_bus_read (f->mmio, MMIO_BASE + 0x500, 2, 0, &v);
  g_assert_cmphex (v, ==, VBE_DISPI_ID5);
  vmm_bus_read (f->mmio, MMIO_BASE + 0x500 + 2 * VBE_DISPI_INDEX_VIDEO_MEMORY_64K,
                2, 0, &v);
  g_assert_cmpuint (v, ==, 256);
  vmm_bus_read (f->mmio, MMIO_BASE + 0x600, 4, 0, &v);
  g_assert_cmpuint (v, ==, 8);
  vmm_bus_read (f->mmio, MMIO_BASE + 0x604, 4, 0, &v);
  g_assert_cmphex (v, ==, 0x1e1e1e1e);
  /* Disabling memory decode unmaps the framebuffer. */
  cfg_write (f, 0x04, 2, 0);
  g_assert_cmpuint (lfb.calls, ==, 2);
  g_assert_cmphex (lfb.gpa, ==, VMM_PCI_UNMAPPED);
  vga_set_lfb_handler (f->vga, NULL, NULL);
}

static void
test_rom (fixture *f, gconstpointer data)
{
  if (!f->rom)
    {
      g_test_skip ("vgabios-stdvga.bin is not in the media cache");
      return;
    }
  map_bars (f);
  gsize len;
  const uint8_t *rom = g_bytes_get_data (f->rom, &len);
  g_assert_cmphex (memr (f, ROM_BASE), ==, 0x55);
  g_assert_cmphex (memr (f, ROM_BASE + 1), ==, 0xaa);
  /* The ROM's PCI data structure names this device. */
  unsigned pcir = rom[0x18] | rom[0x19] << 8;
  uint64_t v;
  vmm_bus_read (f->mmio, ROM_BASE + pcir, 4, 0, &v);
  g_assert_cmphex (v, ==, 0x52494350); /* "PCIR" */
  vmm_bus_read (f->mmio, ROM_BASE + pcir + 4, 4, 0, &v);
  g_assert_cmphex (v, ==, 0x11111234);
  for (gsize i = 0; i < len; i += 97)
    g_assert_cmphex (memr (f, ROM_BASE + i), ==, rom[i]);
  /* The ROM BAR's size covers the image. */
  cfg_write (f, 0x30, 4, 0xfffff800);
  uint32_t mask = cfg_read (f, 0x30, 4) & ~0x7ffu;
  g_assert_cmpuint ((uint32_t) -mask, >=, len);

  /* A file that is not an option ROM is refused with a message. */
  g_autoptr (GError) error = NULL;
  uint8_t junk[16] = { 0 };
  g_assert_null (vga_create (f->pio, f->mmio, junk, sizeof junk, 0, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
}

/* ---- Registers and the window -------------------------------------------- */

static void
test_registers (fixture *f, gconstpointer data)
{
  /* Colour/mono decode follows MISC bit 0. */
  tu_outb (f->pio, 0x3c2, 0x67);
  g_assert_cmphex (tu_inb (f->pio, 0x3cc), ==, 0x67);
  crtc (f, 0x0e, 0x12);
  g_assert_cmphex (tu_inb (f->pio, 0x3d5), ==, 0x12);
  g_assert_cmphex (tu_inb (f->pio, 0x3b5), ==, 0xff);
  /* CR11 bit 7 protects CR0-7 but not CR7's line compare bit. */
  crtc (f, 0x01, 0x4f);
  crtc (f, 0x07, 0x00);
  crtc (f, 0x11, 0x80);
  crtc (f, 0x01, 0x27);
  crtc (f, 0x07, 0xff);
  tu_outb (f->pio, 0x3d4, 0x01);
  g_assert_cmphex (tu_inb (f->pio, 0x3d5), ==, 0x4f);
  tu_outb (f->pio, 0x3d4, 0x07);
  g_assert_cmphex (tu_inb (f->pio, 0x3d5), ==, 0x10);
  /* Word writes: index then data. */
  tu_outw (f->pio, 0x3c4, 0x0f02);
  tu_outb (f->pio, 0x3c4, 0x02);
  g_assert_cmphex (tu_inb (f->pio, 0x3c5), ==, 0x0f);
  /* Attribute flip-flop: reset by reading input status 1. */
  tu_inb (f->pio, 0x3da);
  tu_outb (f->pio, 0x3c0, 0x05);
  tu_outb (f->pio, 0x3c0, 0x2a);
  g_assert_cmphex (tu_inb (f->pio, 0x3c0), ==, 0x05);
  g_assert_cmphex (tu_inb (f->pio, 0x3c1), ==, 0x2a);
  /* Vertical retrace toggles. */
  uint8_t a = tu_inb (f->pio, 0x3da), b = tu_inb (f->pio, 0x3da);
  g_assert_cmphex ((a ^ b) & 0x08, ==, 0x08);
  /* DAC: write index auto-increments; read back. */
  dac (f, 0xff, 1, 2, 3);
  dac (f, 0x10, 0x3f, 0x20, 0x01);
  tu_outb (f->pio, 0x3c7, 0x10);
  g_assert_cmphex (tu_inb (f->pio, 0x3c7), ==, 3);
  g_assert_cmphex (tu_inb (f->pio, 0x3c9), ==, 0x3f);
  g_assert_cmphex (tu_inb (f->pio, 0x3c9), ==, 0x20);
  g_assert_cmphex (tu_inb (f->pio, 0x3c9), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, 0x3c8), ==, 0x11);
  /* DISPI over ports. */
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_ID);
  g_assert_cmphex (tu_inw (f->pio, 0x1cf), ==, VBE_DISPI_ID5);
  tu_outw (f->pio, 0x1cf, 0x1234);
  g_assert_cmphex (tu_inw (f->pio, 0x1cf), ==, VBE_DISPI_ID5);
  tu_outw (f->pio, 0x1cf, VBE_DISPI_ID0);
  g_assert_cmphex (tu_inw (f->pio, 0x1cf), ==, VBE_DISPI_ID0);
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_ENABLE);
  tu_outw (f->pio, 0x1cf, VBE_DISPI_GETCAPS);
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_XRES);
  g_assert_cmpuint (tu_inw (f->pio, 0x1cf), ==, VBE_DISPI_MAX_XRES);
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_BPP);
  g_assert_cmpuint (tu_inw (f->pio, 0x1cf), ==, 32);
}

static void
test_window_modes (fixture *f, gconstpointer data)
{
  set_mode (f, &mode_12);
  size_t size;
  uint8_t *vram = vga_vram (f->vga, &size);
  /* Write mode 0 with map mask: one plane per write. */
  for (unsigned p = 0; p < 4; p++)
    {
      seq (f, 2, 1u << p);
      memw (f, 0xa0010, 0x11 * (p + 1));
    }
  seq (f, 2, 0x0f);
  for (unsigned p = 0; p < 4; p++)
    g_assert_cmphex (vram[0x10 * 4 + p], ==, 0x11 * (p + 1));
  /* Read mode 0 picks gr4's plane; the read loads the latches. */
  gr (f, 4, 2);
  g_assert_cmphex (memr (f, 0xa0010), ==, 0x33);
  /* Write mode 1 copies the latches. */
  gr (f, 5, 0x01);
  memw (f, 0xa0020, 0x00);
  for (unsigned p = 0; p < 4; p++)
    g_assert_cmphex (vram[0x20 * 4 + p], ==, 0x11 * (p + 1));
  /* Set/reset: planes enabled in gr1 take gr0's bits. */
  gr (f, 5, 0x00);
  gr (f, 0, 0x05);
  gr (f, 1, 0x0f);
  memw (f, 0xa0030, 0x00);
  g_assert_cmphex (vram[0x30 * 4 + 0], ==, 0xff);
  g_assert_cmphex (vram[0x30 * 4 + 1], ==, 0x00);
  g_assert_cmphex (vram[0x30 * 4 + 2], ==, 0xff);
  g_assert_cmphex (vram[0x30 * 4 + 3], ==, 0x00);
  gr (f, 1, 0x00);
  /* Bit mask keeps latched bits; logical op XOR. */
  memr (f, 0xa0030);
  gr (f, 8, 0x0f);
  gr (f, 3, 0x18);
  memw (f, 0xa0030, 0xff);
  g_assert_cmphex (vram[0x30 * 4 + 0], ==, 0xf0);
  g_assert_cmphex (vram[0x30 * 4 + 1], ==, 0x0f);
  gr (f, 3, 0x00);
  gr (f, 8, 0xff);
  /* Write mode 3: rotated data ANDed with the bit mask, colour from gr0. */
  gr (f, 5, 0x03);
  gr (f, 0, 0x0a);
  memr (f, 0xa0040);
  memw (f, 0xa0040, 0x3c);
  g_assert_cmphex (vram[0x40 * 4 + 0], ==, 0x00);
  g_assert_cmphex (vram[0x40 * 4 + 1], ==, 0x3c);
  g_assert_cmphex (vram[0x40 * 4 + 3], ==, 0x3c);
  /* Read mode 1: colour compare. */
  gr (f, 5, 0x08);
  gr (f, 2, 0x0a);
  gr (f, 7, 0x0f);
  g_assert_cmphex (memr (f, 0xa0040), ==, 0x3c);
  gr (f, 7, 0x00); /* nothing cares: all match */
  g_assert_cmphex (memr (f, 0xa0040), ==, 0xff);
  /* Memory map modes: B8000 is not decoded with gr6 = A0000 64K. */
  g_assert_cmphex (memr (f, 0xb8000), ==, 0xff);
  /* Chain 4: byte address = VRAM byte. */
  set_mode (f, &mode_13);
  memw (f, 0xa0000 + 1234, 0x77);
  g_assert_cmphex (vram[1234], ==, 0x77);
  g_assert_cmphex (memr (f, 0xa0000 + 1234), ==, 0x77);
  /* Odd/even in text mode: characters in plane 0, attributes in plane 1. */
  set_mode (f, &mode_03);
  memw (f, 0xb8000 + 10, 'x');
  memw (f, 0xb8000 + 11, 0x1e);
  g_assert_cmphex (vram[5 * 4 + 0], ==, 'x');
  g_assert_cmphex (vram[5 * 4 + 1], ==, 0x1e);
  g_assert_cmphex (memr (f, 0xb8000 + 11), ==, 0x1e);
  g_assert_cmphex (memr (f, 0xa0000), ==, 0xff);
}

/* ---- Rendering ----------------------------------------------------------- */

static void
test_text (fixture *f, gconstpointer data)
{
  recorder rec = { 0 };
  display_listener *l = display_surface_add_listener (f->s, &rec_ops, &rec);
  text_mode (f);
  g_assert_true (vga_render (f->vga, f->s, 0));
  g_assert_cmpint (display_surface_width (f->s), ==, 720);
  g_assert_cmpint (display_surface_height (f->s), ==, 400);
  g_assert_cmpint (rec.w, ==, 720);
  uint32_t white = ega_rgb (0x3f), blue = ega_rgb (0x01), red = ega_rgb (0x04);
  uint32_t yellow = ega_rgb (0x3e), grey = ega_rgb (0x07), black = ega_rgb (0);
  /* Full block, white on blue; its ninth column repeats (line graphics). */
  g_assert_cmphex (pixel (f->s, 0, 0), ==, white);
  g_assert_cmphex (pixel (f->s, 8, 15), ==, white);
  /* 'A' yellow on red: glyph bits straight from plane 2. */
  for (int y = 0; y < 16; y++)
    for (int x = 0; x < 9; x++)
      {
        unsigned bits = glyph_row (0x41, y);
        bool on = x < 8 && (bits >> (7 - x)) & 1;
        g_assert_cmphex (pixel (f->s, 9 + x, y), ==, on ? yellow : red);
      }
  /* Blinking block shown in the first phase. */
  g_assert_cmphex (pixel (f->s, 18, 0), ==, white);
  /* Cursor: scan lines 13-14 of row 1, column 1, in the cell's fg. */
  g_assert_cmphex (pixel (f->s, 9, 16 + 13), ==, grey);
  g_assert_cmphex (pixel (f->s, 17, 16 + 14), ==, grey);
  g_assert_cmphex (pixel (f->s, 9, 16 + 12), ==, black);
  check_reference (f->s, "text-80x25");
  (void) blue;

  /* Nothing changed: nothing drawn, nobody told. */
  rec.updates = 0;
  g_assert_false (vga_render (f->vga, f->s, 1));
  g_assert_cmpuint (rec.updates, ==, 0);

  /* Frame 8: the cursor blinks off; only its cell is redrawn. */
  display_damage_clear (&rec.damage);
  g_assert_true (vga_render (f->vga, f->s, 8));
  g_assert_cmphex (pixel (f->s, 9, 16 + 13), ==, black);
  g_assert_cmpuint (rec.damage.n, ==, 1);
  g_assert_cmpint (rec.damage.rects[0].x, ==, 9);
  g_assert_cmpint (rec.damage.rects[0].y, ==, 16);
  g_assert_cmpint (rec.damage.rects[0].w, ==, 9);
  g_assert_cmpint (rec.damage.rects[0].h, ==, 16);
  check_reference (f->s, "text-80x25-cursor-off");

  /* Frame 16: blinking characters show their background. */
  display_damage_clear (&rec.damage);
  g_assert_true (vga_render (f->vga, f->s, 16));
  g_assert_cmphex (pixel (f->s, 18, 0), ==, black);
  g_assert_cmphex (pixel (f->s, 9, 16 + 13), ==, grey); /* cursor back */
  g_assert_cmpuint (rec.damage.n, ==, 2);

  /* One character written: one cell reported. */
  vga_render (f->vga, f->s, 0);
  display_damage_clear (&rec.damage);
  put_char (f, 40, 20, 'Z', 0x2f);
  g_assert_true (vga_render (f->vga, f->s, 0));
  g_assert_cmpuint (rec.damage.n, ==, 1);
  g_assert_cmpint (rec.damage.rects[0].x, ==, 40 * 9);
  g_assert_cmpint (rec.damage.rects[0].y, ==, 20 * 16);
  g_assert_cmpint (rec.damage.rects[0].w, ==, 9);

  /* A glyph changed in plane 2: every cell showing it is redrawn. */
  display_damage_clear (&rec.damage);
  seq (f, 2, 0x04);
  seq (f, 4, 0x07);
  gr (f, 4, 0x02);
  gr (f, 5, 0x00);
  gr (f, 6, 0x04);
  memw (f, 0xa0000 + 'Z' * 32 + 3, 0x81);
  seq (f, 2, 0x03);
  seq (f, 4, 0x02);
  gr (f, 5, 0x10);
  gr (f, 6, 0x0e);
  g_assert_true (vga_render (f->vga, f->s, 0));
  g_assert_cmpuint (rec.damage.n, ==, 1);
  g_assert_cmpint (rec.damage.rects[0].x, ==, 40 * 9);
  g_assert_cmphex (pixel (f->s, 40 * 9, 20 * 16 + 3), ==, white);

  /* Cursor disabled (CR0A bit 5). */
  crtc (f, 0x0a, 0x2d);
  vga_render (f->vga, f->s, 0);
  g_assert_cmphex (pixel (f->s, 9, 16 + 13), ==, black);
  display_surface_remove_listener (f->s, l);
}

static void
test_text_80x50 (fixture *f, gconstpointer data)
{
  set_mode (f, &mode_03);
  ega_palette (f);
  crtc (f, 0x09, 0x47); /* 8 scan lines per character */
  crtc (f, 0x0a, 0x06);
  crtc (f, 0x0b, 0x07);
  load_font (f, 8);
  for (unsigned i = 0; i < 80 * 50; i++)
    {
      memw (f, 0xb8000 + 2 * i, (uint8_t) (i * 7));
      memw (f, 0xb8000 + 2 * i + 1, (uint8_t) (i % 255 + 1) & 0x7f);
    }
  crtc (f, 0x0e, (80 * 49 + 79) >> 8);
  crtc (f, 0x0f, (80 * 49 + 79) & 0xff);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 720);
  g_assert_cmpint (display_surface_height (f->s), ==, 400);
  /* The last cell holds the cursor on lines 6-7. */
  unsigned i = 80 * 49 + 79;
  uint32_t fg = ega_rgb (mode_03.ar[((i % 255 + 1) & 0x7f) & 0x0f]);
  g_assert_cmphex (pixel (f->s, 719 - 4, 399), ==, fg);
  check_reference (f->s, "text-80x50");
  /* 8-dot characters. */
  seq (f, 1, 0x01);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 640);
  check_reference (f->s, "text-80x50-8dot");
}

static void
test_mode13 (fixture *f, gconstpointer data)
{
  set_mode (f, &mode_13);
  for (unsigned i = 0; i < 256; i++)
    dac (f, i, i & 63, (i * 3) & 63, (i * 7) & 63);
  for (unsigned y = 0; y < 200; y++)
    for (unsigned x = 0; x < 320; x++)
      memw (f, 0xa0000 + y * 320 + x, (uint8_t) (x ^ y));
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 640);
  g_assert_cmpint (display_surface_height (f->s), ==, 400);
  static const int probes[][2] = { { 0, 0 }, { 319, 199 }, { 17, 100 },
                                   { 200, 3 } };
  for (unsigned k = 0; k < G_N_ELEMENTS (probes); k++)
    {
      unsigned x = probes[k][0], y = probes[k][1], c = (x ^ y) & 0xff;
      uint32_t want = dac_rgb (c & 63, (c * 3) & 63, (c * 7) & 63);
      g_assert_cmphex (pixel (f->s, 2 * x, 2 * y), ==, want);
      g_assert_cmphex (pixel (f->s, 2 * x + 1, 2 * y + 1), ==, want);
    }
  check_reference (f->s, "mode-13h");

  /* A palette change redraws everything. */
  recorder rec = { 0 };
  display_listener *l = display_surface_add_listener (f->s, &rec_ops, &rec);
  dac (f, 0, 63, 0, 0);
  vga_render (f->vga, f->s, 0);
  g_assert_cmphex (pixel (f->s, 0, 0), ==, dac_rgb (63, 0, 0));
  g_assert_cmpuint (rec.damage.n, ==, 1);
  g_assert_cmpint (rec.damage.rects[0].h, ==, 400);
  /* One byte written: the rows of its page, nothing else. */
  display_damage_clear (&rec.damage);
  memw (f, 0xa0000 + 150 * 320 + 5, 0x42);
  g_assert_true (vga_render (f->vga, f->s, 0));
  g_assert_cmpuint (rec.damage.n, ==, 1);
  display_rect r = rec.damage.rects[0];
  g_assert_cmpint (r.y, <=, 300);
  g_assert_cmpint (r.y + r.h, >=, 302);
  g_assert_cmpint (r.h, <=, 2 * (4096 / 320 + 2));
  display_surface_remove_listener (f->s, l);
}

static void
test_mode12 (fixture *f, gconstpointer data)
{
  set_mode (f, &mode_12);
  ega_palette (f);
  /* Write mode 2 with the bit mask, pixel by pixel, as a BIOS plots. */
  gr (f, 5, 0x02);
  for (unsigned y = 0; y < 480; y += 1)
    for (unsigned x = 0; x < 640; x++)
      {
        if (y >= 48 && y < 432 && x >= 64 && x < 576 && (x + y) % 5)
          continue; /* leave most of the middle untouched, still black */
        uint32_t a = 0xa0000 + y * 80 + x / 8;
        gr (f, 8, 0x80 >> (x & 7));
        memr (f, a); /* latch */
        memw (f, a, (uint8_t) ((x >> 3) + (y >> 2)) & 0x0f);
      }
  gr (f, 8, 0xff);
  gr (f, 5, 0x00);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 640);
  g_assert_cmpint (display_surface_height (f->s), ==, 480);
  static const int probes[][2] = { { 0, 0 }, { 639, 479 }, { 5, 300 },
                                   { 320, 10 }, { 100, 100 } };
  for (unsigned k = 0; k < G_N_ELEMENTS (probes); k++)
    {
      unsigned x = probes[k][0], y = probes[k][1];
      bool plotted = !(y >= 48 && y < 432 && x >= 64 && x < 576 && (x + y) % 5);
      unsigned c = plotted ? ((x >> 3) + (y >> 2)) & 0x0f : 0;
      g_assert_cmphex (pixel (f->s, x, y), ==, ega_rgb (mode_12.ar[c]));
    }
  check_reference (f->s, "mode-12h");
}

static void
test_mode0d (fixture *f, gconstpointer data)
{
  set_mode (f, &mode_0d);
  ega_palette (f);
  /* Plane by plane through the map mask (write mode 0). */
  for (unsigned p = 0; p < 4; p++)
    {
      seq (f, 2, 1u << p);
      for (unsigned i = 0; i < 40 * 200; i++)
        memw (f, 0xa0000 + i, (uint8_t) (i * (p + 3) + (i >> 5) * p));
    }
  seq (f, 2, 0x0f);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 640);
  g_assert_cmpint (display_surface_height (f->s), ==, 400);
  static const int probes[][2] = { { 0, 0 }, { 319, 199 }, { 77, 123 } };
  for (unsigned k = 0; k < G_N_ELEMENTS (probes); k++)
    {
      unsigned x = probes[k][0], y = probes[k][1], i = y * 40 + x / 8;
      unsigned c = 0;
      for (unsigned p = 0; p < 4; p++)
        c |= ((uint8_t) (i * (p + 3) + (i >> 5) * p) >> (7 - x % 8) & 1) << p;
      uint32_t want = ega_rgb (mode_0d.ar[c]);
      g_assert_cmphex (pixel (f->s, 2 * x, 2 * y), ==, want);
      g_assert_cmphex (pixel (f->s, 2 * x + 1, 2 * y + 1), ==, want);
    }
  check_reference (f->s, "mode-0dh");
}

/* DISPI through the MMIO BAR, the way bochs-drm sets a mode. */
static void
dispi_mmio (fixture *f, unsigned index, uint16_t v)
{
  vmm_bus_write (f->mmio, MMIO_BASE + 0x500 + 2 * index, 2, 0, v);
}

static uint16_t
dispi_mmio_read (fixture *f, unsigned index)
{
  uint64_t v;
  vmm_bus_read (f->mmio, MMIO_BASE + 0x500 + 2 * index, 2, 0, &v);
  return (uint16_t) v;
}

static void
bochs_drm_set_mode (fixture *f, unsigned w, unsigned h, unsigned bpp)
{
  uint64_t v;
  vmm_bus_read (f->mmio, MMIO_BASE + 0x400 + 0x1a, 1, 0, &v); /* 0x3da */
  vmm_bus_write (f->mmio, MMIO_BASE + 0x400, 1, 0, 0x20);     /* unblank */
  dispi_mmio (f, VBE_DISPI_INDEX_ENABLE, 0);
  dispi_mmio (f, VBE_DISPI_INDEX_BPP, bpp);
  dispi_mmio (f, VBE_DISPI_INDEX_XRES, w);
  dispi_mmio (f, VBE_DISPI_INDEX_YRES, h);
  dispi_mmio (f, VBE_DISPI_INDEX_BANK, 0);
  dispi_mmio (f, VBE_DISPI_INDEX_VIRT_WIDTH, w);
  dispi_mmio (f, VBE_DISPI_INDEX_VIRT_HEIGHT, h);
  dispi_mmio (f, VBE_DISPI_INDEX_X_OFFSET, 0);
  dispi_mmio (f, VBE_DISPI_INDEX_Y_OFFSET, 0);
  dispi_mmio (f, VBE_DISPI_INDEX_ENABLE,
              VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED);
}

static uint8_t
pat (unsigned x, unsigned y, unsigned k)
{
  return (uint8_t) (x * (k + 1) + y * (k + 3) + (x ^ y) * k);
}

static void
fill_lfb (fixture *f, unsigned w, unsigned h, unsigned bytespp)
{
  size_t size;
  uint8_t *vram = vga_vram (f->vga, &size);
  for (unsigned y = 0; y < h; y++)
    for (unsigned x = 0; x < w; x++)
      for (unsigned k = 0; k < bytespp; k++)
        vram[((size_t) y * w + x) * bytespp + k] = pat (x, y, k);
  /* What KVM's dirty log would report. */
  vga_mark_vram_dirty (f->vga, 0, (uint64_t) w * h * bytespp);
}

static void
test_dispi_32 (fixture *f, gconstpointer data)
{
  map_bars (f);
  recorder rec = { 0 };
  display_listener *l = display_surface_add_listener (f->s, &rec_ops, &rec);
  text_mode (f);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (rec.w, ==, 720);
  unsigned resizes = rec.resizes;

  bochs_drm_set_mode (f, 640, 480, 32);
  g_assert_cmpuint (dispi_mmio_read (f, VBE_DISPI_INDEX_XRES), ==, 640);
  fill_lfb (f, 640, 480, 4);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpuint (rec.resizes, ==, resizes + 1);
  g_assert_cmpint (rec.w, ==, 640);
  g_assert_cmpint (rec.h, ==, 480);
  for (unsigned y = 0; y < 480; y += 53)
    for (unsigned x = 0; x < 640; x += 71)
      g_assert_cmphex (pixel (f->s, x, y), ==,
                       0xff000000u | pat (x, y, 2) << 16 | pat (x, y, 1) << 8
                           | pat (x, y, 0));
  check_reference (f->s, "dispi-640x480x32");

  /* Idle: no pixel copied, no update. */
  rec.updates = 0;
  g_assert_false (vga_render (f->vga, f->s, 1));
  g_assert_cmpuint (rec.updates, ==, 0);

  /* One pixel through BAR0: only the rows of its page. */
  display_damage_clear (&rec.damage);
  vmm_bus_write (f->mmio, LFB_BASE + (300 * 640 + 10) * 4, 4, 0, 0x00123456);
  g_assert_true (vga_render (f->vga, f->s, 2));
  g_assert_cmphex (pixel (f->s, 10, 300), ==, 0xff123456);
  g_assert_cmpuint (rec.damage.n, ==, 1);
  display_rect r = rec.damage.rects[0];
  g_assert_cmpint (r.x, ==, 0);
  g_assert_cmpint (r.w, ==, 640);
  g_assert_cmpint (r.y, <=, 300);
  g_assert_cmpint (r.y + r.h, >, 300);
  g_assert_cmpint (r.h, <=, 3);

  /* Written behind the device's back (a KVM memory slot): invisible until
   * the dirty log says so. */
  size_t size;
  uint8_t *vram = vga_vram (f->vga, &size);
  size_t off = (400 * 640 + 20) * 4;
  vram[off] = 0x99;
  g_assert_false (vga_render (f->vga, f->s, 3));
  unsigned long log[VGA_DEFAULT_VRAM_SIZE / VGA_PAGE_SIZE / 64 + 1] = { 0 };
  size_t page = off / VGA_PAGE_SIZE, bits = 8 * sizeof (unsigned long);
  log[page / bits] |= 1ul << (page % bits);
  vga_mark_vram_dirty_bitmap (f->vga, log, size / VGA_PAGE_SIZE);
  display_damage_clear (&rec.damage);
  g_assert_true (vga_render (f->vga, f->s, 3));
  g_assert_cmphex (pixel (f->s, 20, 400) & 0xff, ==, 0x99);
  g_assert_cmpuint (rec.damage.n, ==, 1);
  g_assert_cmpint (rec.damage.rects[0].h, <=, 3);

  /* Panning through the offsets (a new start address: everything). */
  dispi_mmio (f, VBE_DISPI_INDEX_Y_OFFSET, 10);
  vga_render (f->vga, f->s, 3);
  g_assert_cmphex (pixel (f->s, 0, 0), ==,
                   0xff000000u | pat (0, 10, 2) << 16 | pat (0, 10, 1) << 8
                       | pat (0, 10, 0));
  display_surface_remove_listener (f->s, l);
}

static void
test_dispi_16 (fixture *f, gconstpointer data)
{
  /* Over the I/O ports this time, as the VGA BIOS does. */
  static const uint16_t regs[][2] = {
    { VBE_DISPI_INDEX_ENABLE, 0 }, { VBE_DISPI_INDEX_XRES, 800 },
    { VBE_DISPI_INDEX_YRES, 600 }, { VBE_DISPI_INDEX_BPP, 16 },
    { VBE_DISPI_INDEX_ENABLE, VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED },
  };
  tu_inb (f->pio, 0x3da);
  tu_outb (f->pio, 0x3c0, 0x20);
  for (unsigned i = 0; i < G_N_ELEMENTS (regs); i++)
    {
      tu_outw (f->pio, 0x1ce, regs[i][0]);
      tu_outw (f->pio, 0x1cf, regs[i][1]);
    }
  fill_lfb (f, 800, 600, 2);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 800);
  g_assert_cmpint (display_surface_height (f->s), ==, 600);
  for (unsigned y = 0; y < 600; y += 37)
    for (unsigned x = 0; x < 800; x += 41)
      {
        unsigned p = pat (x, y, 0) | pat (x, y, 1) << 8;
        unsigned r5 = p >> 11, g6 = (p >> 5) & 63, b5 = p & 31;
        uint32_t want = 0xff000000u | (r5 << 3 | r5 >> 2) << 16
                        | (g6 << 2 | g6 >> 4) << 8 | (b5 << 3 | b5 >> 2);
        g_assert_cmphex (pixel (f->s, x, y), ==, want);
      }
  check_reference (f->s, "dispi-800x600x16");

  /* 15 and 24 bpp, same pattern. */
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_BPP);
  tu_outw (f->pio, 0x1cf, 15);
  vga_render (f->vga, f->s, 0);
  unsigned p = pat (5, 7, 0) | pat (5, 7, 1) << 8;
  unsigned r5 = (p >> 10) & 31, g5 = (p >> 5) & 31, b5 = p & 31;
  g_assert_cmphex (pixel (f->s, 5, 7), ==,
                   0xff000000u | (r5 << 3 | r5 >> 2) << 16
                       | (g5 << 3 | g5 >> 2) << 8 | (b5 << 3 | b5 >> 2));
  check_reference (f->s, "dispi-800x600x15");
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_BPP);
  tu_outw (f->pio, 0x1cf, 24);
  fill_lfb (f, 800, 600, 3);
  vga_render (f->vga, f->s, 0);
  g_assert_cmphex (pixel (f->s, 33, 44), ==,
                   0xff000000u | pat (33, 44, 2) << 16 | pat (33, 44, 1) << 8
                       | pat (33, 44, 0));
  check_reference (f->s, "dispi-800x600x24");
}

static void
test_dispi_8 (fixture *f, gconstpointer data)
{
  map_bars (f);
  for (unsigned i = 0; i < 256; i++)
    dac (f, i, (i * 5) & 63, (i * 11) & 63, (i * 13) & 63);
  bochs_drm_set_mode (f, 1024, 768, 8);
  fill_lfb (f, 1024, 768, 1);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 1024);
  g_assert_cmpint (display_surface_height (f->s), ==, 768);
  for (unsigned y = 0; y < 768; y += 61)
    for (unsigned x = 0; x < 1024; x += 67)
      {
        unsigned c = pat (x, y, 0);
        g_assert_cmphex (pixel (f->s, x, y), ==,
                         dac_rgb ((c * 5) & 63, (c * 11) & 63, (c * 13) & 63));
      }
  check_reference (f->s, "dispi-1024x768x8");
  /* 8-bit DAC. */
  dispi_mmio (f, VBE_DISPI_INDEX_ENABLE,
              VBE_DISPI_ENABLED | VBE_DISPI_LFB_ENABLED | VBE_DISPI_8BIT_DAC
                  | VBE_DISPI_NOCLEARMEM);
  dac (f, pat (0, 0, 0), 0x80, 0x81, 0xfe);
  vga_render (f->vga, f->s, 0);
  g_assert_cmphex (pixel (f->s, 0, 0), ==, 0xff8081fe);

  /* The banked window with the LFB off: bank 3, offset 0x100. */
  dispi_mmio (f, VBE_DISPI_INDEX_ENABLE,
              VBE_DISPI_ENABLED | VBE_DISPI_NOCLEARMEM);
  dispi_mmio (f, VBE_DISPI_INDEX_BANK, 3);
  memw (f, 0xa0100, 0x5a);
  size_t size;
  uint8_t *vram = vga_vram (f->vga, &size);
  g_assert_cmphex (vram[3 * 65536 + 0x100], ==, 0x5a);
  g_assert_cmphex (memr (f, 0xa0100), ==, 0x5a);
}

static void
test_dispi_2560 (fixture *f, gconstpointer data)
{
  map_bars (f);
  bochs_drm_set_mode (f, 2560, 1600, 32);
  g_assert_cmpuint (dispi_mmio_read (f, VBE_DISPI_INDEX_XRES), ==, 2560);
  g_assert_cmpuint (dispi_mmio_read (f, VBE_DISPI_INDEX_YRES), ==, 1600);
  fill_lfb (f, 2560, 1600, 4);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_width (f->s), ==, 2560);
  g_assert_cmpint (display_surface_height (f->s), ==, 1600);
  static const int probes[][2] = { { 0, 0 }, { 2559, 1599 }, { 1280, 800 } };
  for (unsigned k = 0; k < G_N_ELEMENTS (probes); k++)
    {
      unsigned x = probes[k][0], y = probes[k][1];
      g_assert_cmphex (pixel (f->s, x, y), ==,
                       0xff000000u | pat (x, y, 2) << 16 | pat (x, y, 1) << 8
                           | pat (x, y, 0));
    }
  check_reference (f->s, "dispi-2560x1600x32");

  /* Too big for VRAM: YRES is clamped to what fits. */
  dispi_mmio (f, VBE_DISPI_INDEX_XRES, 4096);
  dispi_mmio (f, VBE_DISPI_INDEX_VIRT_WIDTH, 4096);
  dispi_mmio (f, VBE_DISPI_INDEX_YRES, 4096);
  unsigned yres = dispi_mmio_read (f, VBE_DISPI_INDEX_YRES);
  g_assert_cmpuint ((uint64_t) 4096 * yres * 4, <=, VGA_DEFAULT_VRAM_SIZE);
  vga_render (f->vga, f->s, 0);
  g_assert_cmpint (display_surface_height (f->s), ==, (int) yres);
}

/* ---- Bad input ----------------------------------------------------------- */

static uint16_t
interesting (GRand *rand)
{
  static const uint16_t v[] = { 0, 1, 4, 7, 8, 15, 16, 24, 32, 0xff, 0x100,
                                0x7fff, 0x8000, 0xffff, 16000, 12000,
                                0xb0c5, 0x41, 0xc1, 0xe1 };
  return g_rand_boolean (rand) ? v[g_rand_int_range (rand, 0, G_N_ELEMENTS (v))]
                               : (uint16_t) g_rand_int (rand);
}

static void
test_fuzz (fixture *f, gconstpointer data)
{
  map_bars (f);
  GRand *rand = g_rand_new_with_seed (0x76676121);
  unsigned renders = 0;
  for (unsigned i = 0; i < 200000; i++)
    {
      unsigned what = g_rand_int_range (rand, 0, 100);
      unsigned size = 1u << g_rand_int_range (rand, 0, 3);
      uint64_t v;
      if (what < 50)
        {
          uint16_t port = 0x3b0 + g_rand_int_range (rand, 0, 0x30);
          if (g_rand_boolean (rand))
            vmm_bus_write (f->pio, port, size, 0, g_rand_int (rand));
          else
            vmm_bus_read (f->pio, port, size, 0, &v);
        }
      else if (what < 70)
        {
          tu_outw (f->pio, 0x1ce, g_rand_int_range (rand, 0, 16));
          if (g_rand_boolean (rand))
            tu_outw (f->pio, 0x1cf, interesting (rand));
          else
            tu_inw (f->pio, 0x1cf);
        }
      else if (what < 85)
        {
          uint32_t a = 0xa0000 + g_rand_int_range (rand, 0, 0x20000);
          if (g_rand_boolean (rand))
            vmm_bus_write (f->mmio, a, size, 0, g_rand_int (rand));
          else
            vmm_bus_read (f->mmio, a, size, 0, &v);
        }
      else if (what < 97)
        {
          uint32_t a = MMIO_BASE + g_rand_int_range (rand, 0x3f0, 0x620);
          if (g_rand_boolean (rand))
            vmm_bus_write (f->mmio, a, size, 0, interesting (rand));
          else
            vmm_bus_read (f->mmio, a, size, 0, &v);
        }
      else
        vga_mark_vram_dirty (f->vga, g_rand_int (rand), g_rand_int (rand));
      if (i % 5000 == 4999)
        {
          /* Unblank now and then so that modes actually render. */
          if (g_rand_boolean (rand))
            {
              tu_inb (f->pio, 0x3da);
              tu_outb (f->pio, 0x3c0, 0x20);
            }
          vga_render (f->vga, f->s, g_rand_int (rand));
          renders++;
        }
    }
  g_assert_cmpuint (renders, ==, 40);
  g_rand_free (rand);
}

static void
test_state (fixture *f, gconstpointer data)
{
  map_bars (f);
  text_mode (f);
  vga_render (f->vga, f->s, 0);
  g_autofree char *before = surface_digest (f->s);

  vmm_device *dev = vga_device (f->vga);
  GByteArray *blob = g_byte_array_new ();
  dev->ops->save_state (dev, blob);

  /* Into a fresh device: the same picture, the same state. */
  g_autoptr (GError) error = NULL;
  vmm_bus *pio = vmm_bus_new (VMM_BUS_PIO), *mmio = vmm_bus_new (VMM_BUS_MMIO);
  vga *other = vga_create (pio, mmio, NULL, 0, 0, &error);
  g_assert_no_error (error);
  vmm_device *odev = vga_device (other);
  /* Its PCI ID matches; its config space (BARs) comes from the blob. */
  g_assert_true (odev->ops->load_state (odev, blob->data, blob->len, &error));
  g_assert_no_error (error);
  display_surface *s2 = display_surface_new (1, 1);
  vga_render (other, s2, 0);
  g_autofree char *after = surface_digest (s2);
  g_assert_cmpstr (before, ==, after);
  GByteArray *blob2 = g_byte_array_new ();
  odev->ops->save_state (odev, blob2);
  g_assert_cmpuint (blob->len, ==, blob2->len);
  g_assert_true (!memcmp (blob->data, blob2->data, blob->len));

  /* Garbage: truncations, flipped bytes, random blobs. Refused with an
   * error or accepted; either way, rendering stays safe. */
  GRand *rand = g_rand_new_with_seed (99);
  for (unsigned i = 0; i < 400; i++)
    {
      GByteArray *bad = g_byte_array_new ();
      g_byte_array_append (bad, blob->data, blob->len);
      switch (i % 4)
        {
        case 0:
          g_byte_array_set_size (bad, g_rand_int_range (rand, 0, bad->len));
          break;
        case 1:
        case 2:
          for (unsigned k = 0; k < 8; k++)
            bad->data[g_rand_int_range (rand, 6, MIN (bad->len, 1200))]
                ^= (uint8_t) g_rand_int_range (rand, 1, 256);
          break;
        default:
          g_byte_array_set_size (bad, g_rand_int_range (rand, 0, 2000));
          for (unsigned k = 0; k < bad->len; k++)
            bad->data[k] = (uint8_t) g_rand_int (rand);
          break;
        }
      g_autoptr (GError) e = NULL;
      if (!odev->ops->load_state (odev, bad->data, bad->len, &e))
        g_assert_nonnull (e);
      vga_render (other, s2, i);
      g_byte_array_unref (bad);
    }
  g_rand_free (rand);
  /* A truncated blob names the problem. */
  g_autoptr (GError) e = NULL;
  g_assert_false (odev->ops->load_state (odev, blob->data, blob->len - 1, &e));
  g_assert_error (e, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);

  display_surface_free (s2);
  vmm_device_destroy (odev);
  vmm_bus_free (pio);
  vmm_bus_free (mmio);
  g_byte_array_unref (blob);
  g_byte_array_unref (blob2);
}

static void
test_reset (fixture *f, gconstpointer data)
{
  bochs_drm_set_mode (f, 640, 480, 32);
  vmm_device_reset (vga_device (f->vga));
  tu_outw (f->pio, 0x1ce, VBE_DISPI_INDEX_ENABLE);
  g_assert_cmphex (tu_inw (f->pio, 0x1cf), ==, 0);
  /* Power-on: blanked (PAS clear); renders black at the current size. */
  g_assert_true (vga_render (f->vga, f->s, 0));
  g_assert_cmphex (pixel (f->s, 0, 0), ==, 0xff000000);
  g_assert_false (vga_render (f->vga, f->s, 1));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  load_references ();
#define ADD(path, fn)                                                          \
  g_test_add ("/vga/" path, fixture, NULL, setup, fn, teardown)
  ADD ("pci", test_pci);
  ADD ("rom", test_rom);
  ADD ("registers", test_registers);
  ADD ("window-modes", test_window_modes);
  ADD ("text", test_text);
  ADD ("text-80x50", test_text_80x50);
  ADD ("mode-13h", test_mode13);
  ADD ("mode-12h", test_mode12);
  ADD ("mode-0dh", test_mode0d);
  ADD ("dispi-640x480x32", test_dispi_32);
  ADD ("dispi-800x600x16", test_dispi_16);
  ADD ("dispi-1024x768x8", test_dispi_8);
  ADD ("dispi-2560x1600x32", test_dispi_2560);
  ADD ("fuzz", test_fuzz);
  ADD ("state", test_state);
  ADD ("reset", test_reset);
  int ret = g_test_run ();
  save_references ();
  g_hash_table_unref (references);
  return ret;
}
