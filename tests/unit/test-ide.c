/* PIIX3 IDE with ATA disks, driven through the port bus as a guest would:
 * config space, IDENTIFY, PIO (LBA28, CHS, LBA48, MULTIPLE), bus-master
 * DMA, flush, errors, hostile PRD tables, a register fuzz loop, and state. */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/ide.h"

#define DEVFN IDE_DEVFN
#define P 0x1f0
#define CTL 0x3f6
#define S 0x170
#define SCTL 0x376
#define BM 0xc000
#define RAM_SIZE (4u << 20)
#define DISK_SECTORS 2048u /* 1 MiB */

enum {
  BSY = 0x80, DRDY = 0x40, DRQ = 0x08, ERR = 0x01,
  ABRT = 0x04, IDNF = 0x10,
};

typedef struct {
  char *dir;
  char *path;
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  GMainContext *ctx;
  vmm_guest_memory mem;
  fake_irq irq;
  ide_controller *ide;
} fixture;

static uint8_t
pattern (uint64_t sector, unsigned i)
{
  return (uint8_t) ((sector * 7 + i) ^ (sector >> 8) ^ (i >> 8));
}

static char *
make_image (const char *dir, const char *name, uint64_t sectors, bool fill)
{
  char *path = g_build_filename (dir, name, NULL);
  int fd = g_open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, (off_t) (sectors * 512)), ==, 0);
  if (fill)
    {
      uint8_t buf[512];
      for (uint64_t s = 0; s < sectors; s++)
        {
          for (unsigned i = 0; i < 512; i++)
            buf[i] = pattern (s, i);
          g_assert_cmpint (pwrite (fd, buf, 512, (off_t) (s * 512)), ==, 512);
        }
    }
  close (fd);
  return path;
}

static VmmBlock *
open_image (const char *path, bool ro)
{
  g_autoptr (GError) error = NULL;
  VmmBlock *bs = vmm_block_open (path, "raw", ro ? VMM_BLOCK_OPEN_READ_ONLY
                                                 : 0, &error);
  g_assert_no_error (error);
  return bs;
}

static void
cfg_write (fixture *f, unsigned off, unsigned size, uint32_t v)
{
  vmm_pci_config_write (f->host, 0, DEVFN, off, size, v);
}

static uint32_t
cfg_read (fixture *f, unsigned off, unsigned size)
{
  return vmm_pci_config_read (f->host, 0, DEVFN, off, size);
}

static ide_controller *
new_controller (fixture *f)
{
  vmm_irq i14 = fake_irq_line (&f->irq, 14), i15 = fake_irq_line (&f->irq, 15);
  return ide_create (&f->mem, f->ctx, &i14, &i15);
}

static void
setup_common (fixture *f, bool ro)
{
  g_autoptr (GError) error = NULL;
  f->dir = g_dir_make_tmp ("vessel-ide-XXXXXX", &error);
  g_assert_no_error (error);
  f->path = make_image (f->dir, "disk.img", DISK_SECTORS, true);
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  g_assert_no_error (error);
  f->ctx = g_main_context_new ();
  f->mem = (vmm_guest_memory){ .host = g_malloc0 (RAM_SIZE), .size = RAM_SIZE,
                               .below_4g = RAM_SIZE };
  f->ide = new_controller (f);
  g_assert_true (ide_attach (f->ide, f->host, f->pio, DEVFN, &error));
  g_assert_no_error (error);
  g_assert_true (ide_attach_disk (f->ide, 0, 0, open_image (f->path, ro),
                                  &error));
  g_assert_no_error (error);
  /* What firmware does: BAR4, I/O and bus-master enable. */
  cfg_write (f, 0x20, 4, BM);
  cfg_write (f, 0x04, 2, 0x0005);
}

static void
setup (fixture *f, gconstpointer data)
{
  setup_common (f, false);
}

static void
setup_ro (fixture *f, gconstpointer data)
{
  setup_common (f, true);
}

static void
rm_rf (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name (d)))
    {
      g_autofree char *p = g_build_filename (dir, name, NULL);
      g_unlink (p);
    }
  if (d)
    g_dir_close (d);
  g_rmdir (dir);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_pci_host_free (f->host);
  vmm_device_destroy (ide_device (f->ide));
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
  g_main_context_unref (f->ctx);
  g_free (f->mem.host);
  rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->path);
}

/* Runs block completions until the device is not busy. */
static uint8_t
wait_ready (fixture *f, uint16_t ctl)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  uint8_t st;
  while ((st = tu_inb (f->pio, ctl)) & BSY)
    {
      if (!g_main_context_iteration (f->ctx, FALSE))
        g_usleep (200);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    }
  return st;
}

static void
lba28 (fixture *f, unsigned unit, uint32_t lba, uint8_t count)
{
  tu_outb (f->pio, P + 6, 0xe0 | (unit << 4) | ((lba >> 24) & 0xf));
  tu_outb (f->pio, P + 2, count);
  tu_outb (f->pio, P + 3, lba & 0xff);
  tu_outb (f->pio, P + 4, (lba >> 8) & 0xff);
  tu_outb (f->pio, P + 5, (lba >> 16) & 0xff);
}

static void
lba48 (fixture *f, uint64_t lba, uint16_t count)
{
  tu_outb (f->pio, P + 6, 0x40);
  tu_outb (f->pio, P + 2, count >> 8);
  tu_outb (f->pio, P + 3, (lba >> 24) & 0xff);
  tu_outb (f->pio, P + 4, (lba >> 32) & 0xff);
  tu_outb (f->pio, P + 5, (lba >> 40) & 0xff);
  tu_outb (f->pio, P + 2, count & 0xff);
  tu_outb (f->pio, P + 3, lba & 0xff);
  tu_outb (f->pio, P + 4, (lba >> 8) & 0xff);
  tu_outb (f->pio, P + 5, (lba >> 16) & 0xff);
}

static void
read_data (fixture *f, uint8_t *buf, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i += 2)
    {
      uint16_t w = tu_inw (f->pio, P);
      buf[i] = w & 0xff;
      buf[i + 1] = w >> 8;
    }
}

static void
write_data (fixture *f, const uint8_t *buf, unsigned bytes)
{
  for (unsigned i = 0; i < bytes; i += 2)
    tu_outw (f->pio, P, (uint16_t) (buf[i] | buf[i + 1] << 8));
}

static void
check_pattern (const uint8_t *buf, uint64_t sector, unsigned n)
{
  for (unsigned s = 0; s < n; s++)
    for (unsigned i = 0; i < 512; i++)
      if (buf[s * 512 + i] != pattern (sector + s, i))
        g_error ("sector %" G_GUINT64_FORMAT " byte %u: %02x, want %02x",
                 sector + s, i, buf[s * 512 + i], pattern (sector + s, i));
}

static void
identify (fixture *f, uint16_t *w)
{
  tu_outb (f->pio, P + 6, 0xa0);
  tu_outb (f->pio, P + 7, 0xec);
  g_assert_cmphex (tu_inb (f->pio, CTL), ==, DRDY | 0x10 | DRQ);
  for (unsigned i = 0; i < 256; i++)
    w[i] = tu_inw (f->pio, P);
  g_assert_cmphex (tu_inb (f->pio, P + 7) & (BSY | DRQ | ERR), ==, 0);
}

static void
id_string (const uint16_t *w, unsigned word, unsigned words, char *out)
{
  for (unsigned i = 0; i < words; i++)
    {
      out[2 * i] = (char) (w[word + i] >> 8);
      out[2 * i + 1] = (char) (w[word + i] & 0xff);
    }
  out[2 * words] = 0;
  g_strchomp (out);
}

/* ---- tests ---- */

static void
test_config (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x70108086);
  g_assert_cmphex (cfg_read (f, 0x08, 4) >> 8, ==, 0x010180);
  for (unsigned bar = 0; bar < 4; bar++)
    {
      cfg_write (f, 0x10 + 4 * bar, 4, 0xffffffff);
      g_assert_cmphex (cfg_read (f, 0x10 + 4 * bar, 4), ==, 0);
    }
  cfg_write (f, 0x20, 4, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 0x20, 4), ==, 0xfffffff1);
  cfg_write (f, 0x20, 4, BM);
  g_assert_cmphex (cfg_read (f, 0x20, 4), ==, BM | 1);
  cfg_write (f, 0x40, 4, 0xa307e307);
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0xa307e307);
  /* BM registers: DMA-capable bit of the attached master, PRD pointer. */
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x60, ==, 0x20);
  tu_outl (f->pio, BM + 4, 0x12345677);
  g_assert_cmphex (tu_inl (f->pio, BM + 4), ==, 0x12345674);
  vmm_device_reset (ide_device (f->ide));
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0);
  g_assert_cmphex (cfg_read (f, 0x20, 4), ==, 1);
}

static void
test_absent (fixture *f, gconstpointer data)
{
  /* No drive on the secondary channel: a floating bus. */
  g_assert_cmphex (tu_inb (f->pio, S + 7), ==, 0xff);
  g_assert_cmphex (tu_inb (f->pio, SCTL), ==, 0xff);
  tu_outb (f->pio, S + 2, 0x55);
  g_assert_cmphex (tu_inb (f->pio, S + 2), ==, 0xff);
  tu_outb (f->pio, S + 7, 0xec);
  g_assert_cmpuint (f->irq.raised[15], ==, 0);
  /* The primary's slave is absent: status 0, registers 0. */
  tu_outb (f->pio, P + 6, 0xb0);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, 0x00);
  tu_outb (f->pio, P + 2, 0x55);
  g_assert_cmphex (tu_inb (f->pio, P + 2), ==, 0x00);
  g_assert_cmphex (tu_inb (f->pio, P + 6), ==, 0xb0);
  tu_outb (f->pio, P + 7, 0xec);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, 0x00);
  /* The master answers. */
  tu_outb (f->pio, P + 6, 0xa0);
  g_assert_cmphex (tu_inb (f->pio, P + 2), ==, 0x55);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
}

static void
test_identify (fixture *f, gconstpointer data)
{
  uint16_t w[256];
  char s[41];
  identify (f, w);
  g_assert_cmpuint (f->irq.raised[14], ==, 1);
  g_assert_false (f->irq.level[14]); /* status read cleared INTRQ */
  id_string (w, 27, 20, s);
  g_assert_cmpstr (s, ==, "Vessel HARDDISK");
  id_string (w, 23, 4, s);
  g_assert_cmpstr (s, ==, "1.0");
  id_string (w, 10, 10, s);
  g_assert_cmpuint (strlen (s), >, 0);
  g_assert_cmphex (w[0], ==, 0x0040);
  g_assert_cmpuint (w[60] | (uint32_t) w[61] << 16, ==, DISK_SECTORS);
  g_assert_cmpuint (w[100] | (uint64_t) w[101] << 16, ==, DISK_SECTORS);
  g_assert_cmphex (w[47] & 0xff, ==, 16);
  g_assert_true (w[49] & (1 << 9));  /* LBA */
  g_assert_true (w[49] & (1 << 8));  /* DMA */
  g_assert_true (w[83] & (1 << 10)); /* LBA48 */
  g_assert_cmphex (w[63] & 0xff, ==, 0x07);
  g_assert_cmphex (w[88] & 0xff, ==, 0x3f);
  g_assert_cmphex (w[93] & 0xe000, ==, 0x6000);
  g_assert_cmpuint (w[1], ==, DISK_SECTORS / (16 * 63));
  /* SET FEATURES: UDMA 5, then MWDMA 2, shows up as selected. */
  tu_outb (f->pio, P + 1, 0x03);
  tu_outb (f->pio, P + 2, 0x45);
  tu_outb (f->pio, P + 7, 0xef);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  identify (f, w);
  g_assert_cmphex (w[88], ==, 0x203f);
  g_assert_cmphex (w[63] & 0xff00, ==, 0);
  tu_outb (f->pio, P + 1, 0x03);
  tu_outb (f->pio, P + 2, 0x22);
  tu_outb (f->pio, P + 7, 0xef);
  identify (f, w);
  g_assert_cmphex (w[63], ==, 0x0407);
  /* Write cache off, then an invalid mode. */
  tu_outb (f->pio, P + 1, 0x82);
  tu_outb (f->pio, P + 7, 0xef);
  identify (f, w);
  g_assert_false (w[85] & 0x20);
  tu_outb (f->pio, P + 1, 0x03);
  tu_outb (f->pio, P + 2, 0x47);
  tu_outb (f->pio, P + 7, 0xef);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, ABRT);
}

static void
test_signature (fixture *f, gconstpointer data)
{
  tu_outb (f->pio, P + 2, 0x77);
  tu_outb (f->pio, CTL, 0x04 | 0x02); /* SRST with nIEN */
  g_assert_true (tu_inb (f->pio, CTL) & BSY);
  tu_outb (f->pio, CTL, 0x02);
  g_assert_cmphex (tu_inb (f->pio, P + 2), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, P + 3), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, P + 4), ==, 0x00);
  g_assert_cmphex (tu_inb (f->pio, P + 5), ==, 0x00);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  /* EXECUTE DEVICE DIAGNOSTIC, interrupt enabled. */
  tu_outb (f->pio, CTL, 0x00);
  fake_irq_clear_counts (&f->irq);
  tu_outb (f->pio, P + 7, 0x90);
  g_assert_cmpuint (f->irq.raised[14], ==, 1);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, 0x01);
  /* DEVICE RESET is for ATAPI devices only. */
  tu_outb (f->pio, P + 7, 0x08);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, ABRT);
}

static void
test_pio_lba28 (fixture *f, gconstpointer data)
{
  uint8_t buf[8 * 512];
  fake_irq_clear_counts (&f->irq);
  lba28 (f, 0, 100, 3);
  tu_outb (f->pio, P + 7, 0x20);
  for (unsigned s = 0; s < 3; s++)
    {
      g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10 | DRQ);
      read_data (f, buf + s * 512, 512);
    }
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  g_assert_cmpuint (f->irq.raised[14], ==, 3);
  check_pattern (buf, 100, 3);
  /* The task file names the last sector. */
  g_assert_cmpuint (tu_inb (f->pio, P + 3), ==, 102);

  /* Write two sectors with 32-bit accesses, read them back. */
  for (unsigned i = 0; i < 1024; i++)
    buf[i] = pattern (5000, i);
  lba28 (f, 0, 7, 2);
  tu_outb (f->pio, P + 7, 0x30);
  g_assert_cmphex (tu_inb (f->pio, CTL), ==, DRDY | 0x10 | DRQ);
  for (unsigned i = 0; i < 1024; i += 4)
    {
      uint32_t v;
      memcpy (&v, buf + i, 4);
      tu_outl (f->pio, P, GUINT32_FROM_LE (v));
    }
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  memset (buf, 0, sizeof buf);
  lba28 (f, 0, 7, 2);
  tu_outb (f->pio, P + 7, 0x21);
  read_data (f, buf, 512);
  read_data (f, buf + 512, 512);
  for (unsigned i = 0; i < 1024; i++)
    g_assert_cmpuint (buf[i], ==, pattern (5000, i));
  /* The neighbours are untouched. */
  lba28 (f, 0, 9, 1);
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  check_pattern (buf, 9, 1);
}

static void
test_pio_chs (fixture *f, gconstpointer data)
{
  uint8_t buf[512];
  /* Default translation 16 heads x 63 sectors: C/H/S 1/2/3 is LBA
   * (1*16+2)*63+2. */
  tu_outb (f->pio, P + 6, 0xa2);
  tu_outb (f->pio, P + 2, 1);
  tu_outb (f->pio, P + 3, 3);
  tu_outb (f->pio, P + 4, 1);
  tu_outb (f->pio, P + 5, 0);
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  check_pattern (buf, (1 * 16 + 2) * 63 + 2, 1);
  /* Sector 0 does not exist. */
  tu_outb (f->pio, P + 3, 0);
  tu_outb (f->pio, P + 7, 0x20);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, IDNF);
  /* INITIALIZE DEVICE PARAMETERS: 4 heads, 17 sectors. */
  tu_outb (f->pio, P + 6, 0xa3);
  tu_outb (f->pio, P + 2, 17);
  tu_outb (f->pio, P + 7, 0x91);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  tu_outb (f->pio, P + 6, 0xa1);
  tu_outb (f->pio, P + 2, 1);
  tu_outb (f->pio, P + 3, 5);
  tu_outb (f->pio, P + 4, 2);
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  check_pattern (buf, (2 * 4 + 1) * 17 + 4, 1);
}

static void
test_pio_lba48 (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  uint8_t buf[1024];
  uint64_t sectors = (UINT64_C (1) << 28) + 4096; /* 128 GiB + 2 MiB */
  g_autofree char *path = make_image (f->dir, "big.img", sectors, false);
  g_assert_true (ide_attach_disk (f->ide, 0, 1, open_image (path, false),
                                  &error));
  g_assert_no_error (error);
  uint64_t lba = (UINT64_C (1) << 28) + 1000;
  for (unsigned i = 0; i < sizeof buf; i++)
    buf[i] = pattern (lba, i);
  tu_outb (f->pio, P + 6, 0xb0);
  uint16_t w[256];
  tu_outb (f->pio, P + 7, 0xec);
  for (unsigned i = 0; i < 256; i++)
    w[i] = tu_inw (f->pio, P);
  g_assert_cmpuint (w[100] | (uint64_t) w[101] << 16 | (uint64_t) w[102] << 32,
                    ==, sectors);
  g_assert_cmpuint (w[60] | (uint32_t) w[61] << 16, ==, (1u << 28) - 1);

  lba48 (f, lba, 2);
  tu_outb (f->pio, P + 6, 0x50);
  tu_outb (f->pio, P + 7, 0x34);
  write_data (f, buf, 1024);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  memset (buf, 0, sizeof buf);
  lba48 (f, lba, 2);
  tu_outb (f->pio, P + 6, 0x50);
  tu_outb (f->pio, P + 7, 0x24);
  read_data (f, buf, 1024);
  for (unsigned i = 0; i < sizeof buf; i++)
    g_assert_cmpuint (buf[i], ==, pattern (lba, i));
  /* The high bytes through HOB. */
  tu_outb (f->pio, CTL, 0x80);
  g_assert_cmpuint (tu_inb (f->pio, P + 3), ==, (lba >> 24) & 0xff);
  tu_outb (f->pio, CTL, 0x00);
  g_assert_cmpuint (tu_inb (f->pio, P + 3), ==, (lba + 1) & 0xff);
  /* READ NATIVE MAX ADDRESS EXT and the LBA28 one. */
  tu_outb (f->pio, P + 6, 0x50);
  tu_outb (f->pio, P + 7, 0x27);
  tu_outb (f->pio, CTL, 0x80);
  g_assert_cmpuint (tu_inb (f->pio, P + 3), ==, ((sectors - 1) >> 24) & 0xff);
  tu_outb (f->pio, CTL, 0x00);
  g_assert_cmpuint (tu_inb (f->pio, P + 3), ==, (sectors - 1) & 0xff);
  tu_outb (f->pio, P + 7, 0xf8);
  g_assert_cmphex (tu_inb (f->pio, P + 6) & 0x0f, ==, 0x0f);
  g_assert_cmphex (tu_inb (f->pio, P + 5), ==, 0xff);
  /* LBA28 commands cannot reach it; past the end is IDNF. */
  lba48 (f, sectors - 1, 2);
  tu_outb (f->pio, P + 6, 0x50);
  tu_outb (f->pio, P + 7, 0x24);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, IDNF);
}

static void
test_multiple (fixture *f, gconstpointer data)
{
  uint8_t buf[20 * 512];
  /* Without SET MULTIPLE MODE the command aborts. */
  lba28 (f, 0, 0, 20);
  tu_outb (f->pio, P + 7, 0xc4);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  /* 3 is not a power of two; 8 is fine. */
  tu_outb (f->pio, P + 2, 3);
  tu_outb (f->pio, P + 7, 0xc6);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  tu_outb (f->pio, P + 2, 8);
  tu_outb (f->pio, P + 7, 0xc6);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);

  fake_irq_clear_counts (&f->irq);
  lba28 (f, 0, 300, 20);
  tu_outb (f->pio, P + 7, 0xc4);
  unsigned blocks = 0;
  for (unsigned done = 0; done < 20; done += MIN (8u, 20 - done), blocks++)
    {
      g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10 | DRQ);
      read_data (f, buf + done * 512, MIN (8u, 20 - done) * 512);
    }
  g_assert_cmpuint (blocks, ==, 3);
  g_assert_cmpuint (f->irq.raised[14], ==, 3);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  check_pattern (buf, 300, 20);

  /* WRITE MULTIPLE EXT: 10 sectors in blocks of 8 and 2. */
  for (unsigned s = 0; s < 10; s++)
    for (unsigned i = 0; i < 512; i++)
      buf[s * 512 + i] = pattern (s + 900, i);
  fake_irq_clear_counts (&f->irq);
  lba48 (f, 1500, 10);
  tu_outb (f->pio, P + 7, 0x39);
  write_data (f, buf, 8 * 512);
  g_assert_cmpuint (f->irq.raised[14], ==, 1);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10 | DRQ);
  write_data (f, buf + 8 * 512, 2 * 512);
  g_assert_cmpuint (f->irq.raised[14], ==, 2);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  memset (buf, 0, sizeof buf);
  lba28 (f, 0, 1500, 10);
  tu_outb (f->pio, P + 7, 0xc4);
  read_data (f, buf, 8 * 512);
  read_data (f, buf + 8 * 512, 2 * 512);
  for (unsigned s = 0; s < 10; s++)
    for (unsigned i = 0; i < 512; i++)
      g_assert_cmpuint (buf[s * 512 + i], ==, pattern (s + 900, i));
}

/* One PRD entry per @n-byte piece at @addr, the table at @table. */
static void
make_prd (fixture *f, uint32_t table, uint32_t addr, uint32_t bytes,
          uint32_t piece)
{
  uint8_t *t = f->mem.host + table;
  unsigned i = 0;
  for (uint32_t off = 0; off < bytes; off += piece, i++)
    {
      uint32_t n = MIN (piece, bytes - off);
      uint32_t flags = (n & 0xffff) | (off + n >= bytes ? 0x80000000u : 0);
      vmm_pci_put32 (t + 8 * i, addr + off);
      vmm_pci_put32 (t + 8 * i + 4, flags);
    }
}

static void
dma_command (fixture *f, uint8_t cmd, uint32_t lba, uint8_t count,
             bool start_first, bool to_memory)
{
  tu_outl (f->pio, BM + 4, 0x1000);
  tu_outb (f->pio, BM + 2, 0x06); /* clear interrupt and error */
  if (start_first)
    tu_outb (f->pio, BM, (to_memory ? 0x08 : 0) | 0x01);
  else
    tu_outb (f->pio, BM, to_memory ? 0x08 : 0);
  lba28 (f, 0, lba, count);
  tu_outb (f->pio, P + 7, cmd);
  if (!start_first)
    tu_outb (f->pio, BM, (to_memory ? 0x08 : 0) | 0x01);
}

static void
test_dma (fixture *f, gconstpointer data)
{
  /* READ DMA of 16 sectors into two buffers, command before START. */
  make_prd (f, 0x1000, 0x20000, 16 * 512, 4096);
  fake_irq_clear_counts (&f->irq);
  dma_command (f, 0xc8, 40, 16, false, true);
  uint8_t st = wait_ready (f, CTL);
  g_assert_cmphex (st, ==, DRDY | 0x10);
  g_assert_cmpuint (f->irq.raised[14], ==, 1);
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x07, ==, 0x04);
  check_pattern (f->mem.host + 0x20000, 40, 16);
  tu_outb (f->pio, BM, 0x08);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);

  /* WRITE DMA from guest memory, START first; then read it back. */
  for (unsigned i = 0; i < 4 * 512; i++)
    f->mem.host[0x30000 + i] = pattern (7777, i);
  make_prd (f, 0x1000, 0x30000, 4 * 512, 1000);
  dma_command (f, 0xca, 60, 4, true, false);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x07, ==, 0x04);
  tu_outb (f->pio, BM, 0);
  memset (f->mem.host + 0x40000, 0, 4 * 512);
  make_prd (f, 0x1000, 0x40000, 4 * 512, 2048);
  dma_command (f, 0xc8, 60, 4, false, true);
  wait_ready (f, CTL);
  g_assert_cmpmem (f->mem.host + 0x40000, 4 * 512, f->mem.host + 0x30000,
                   4 * 512);

  /* READ DMA EXT with a PRD table larger than the transfer: Active stays. */
  tu_outb (f->pio, BM, 0);
  make_prd (f, 0x1000, 0x50000, 8 * 512, 8 * 512);
  tu_outl (f->pio, BM + 4, 0x1000);
  tu_outb (f->pio, BM + 2, 0x06);
  lba48 (f, 200, 2);
  tu_outb (f->pio, P + 7, 0x25);
  tu_outb (f->pio, BM, 0x09);
  wait_ready (f, CTL);
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x07, ==, 0x05);
  check_pattern (f->mem.host + 0x50000, 200, 2);
  tu_outb (f->pio, BM, 0x08);
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x07, ==, 0x04);

  /* With write cache off, a DMA write is flushed before it completes. */
  tu_outb (f->pio, P + 1, 0x82);
  tu_outb (f->pio, P + 7, 0xef);
  make_prd (f, 0x1000, 0x30000, 512, 512);
  dma_command (f, 0xca, 61, 1, false, false);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
  tu_outb (f->pio, BM, 0);
}

static void
test_large_dma (fixture *f, gconstpointer data)
{
  /* 2048 sectors (1 MiB, every sector of the disk) with 64 KiB PRDs (count
   * 0): once as one run of guest memory (one buffer for the block layer),
   * once with a 4 KiB gap after every buffer (a vectored request). */
  for (unsigned gap = 0; gap <= 4096; gap += 4096)
    {
      uint8_t *t = f->mem.host + 0x1000;
      uint32_t stride = 65536 + gap;
      for (unsigned i = 0; i < 16; i++)
        {
          vmm_pci_put32 (t + 8 * i, 0x100000 + i * stride);
          vmm_pci_put32 (t + 8 * i + 4, i == 15 ? 0x80000000u : 0);
        }
      memset (f->mem.host + 0x100000, 0, 16 * stride);
      tu_outl (f->pio, BM + 4, 0x1000);
      tu_outb (f->pio, BM, 0x08);
      lba48 (f, 0, 2048);
      tu_outb (f->pio, P + 7, 0x25);
      tu_outb (f->pio, BM, 0x09);
      g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
      for (unsigned s = 0; s < 2048; s++)
        check_pattern (f->mem.host + 0x100000 + (s / 128) * stride
                           + (s % 128) * 512,
                       s, 1);
      tu_outb (f->pio, BM, 0x08);
    }
}

static void
test_reset_in_flight (fixture *f, gconstpointer data)
{
  /* A READ DMA in flight when the controller is reset: its data (read
   * straight into guest memory) has landed when the reset returns, and
   * nothing of it reaches the guest after: no memory write, no
   * interrupt. */
  make_prd (f, 0x1000, 0x20000, 16 * 512, 16 * 512);
  memset (f->mem.host + 0x20000, 0xcc, 16 * 512);
  fake_irq_clear_counts (&f->irq);
  dma_command (f, 0xc8, 40, 16, false, true);
  vmm_device_reset (ide_device (f->ide));
  check_pattern (f->mem.host + 0x20000, 40, 16);
  memset (f->mem.host + 0x20000, 0xcc, 16 * 512);
  ide_drain (f->ide);
  g_assert_cmphex (f->mem.host[0x20000], ==, 0xcc);
  g_assert_cmpuint (f->irq.raised[14], ==, 0);
}

static void
test_flush (fixture *f, gconstpointer data)
{
  fake_irq_clear_counts (&f->irq);
  tu_outb (f->pio, P + 7, 0xe7);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
  tu_outb (f->pio, P + 7, 0xea);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
  g_assert_cmpuint (f->irq.raised[14], >=, 1);
  /* Power management: accepted, CHECK POWER MODE says active. */
  static const uint8_t pm[] = { 0xe0, 0xe1, 0xe2, 0xe3, 0xe6, 0x40, 0x10 };
  for (unsigned i = 0; i < G_N_ELEMENTS (pm); i++)
    {
      lba28 (f, 0, 0, 1);
      tu_outb (f->pio, P + 7, pm[i]);
      g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
    }
  tu_outb (f->pio, P + 7, 0xe5);
  g_assert_cmphex (tu_inb (f->pio, P + 2), ==, 0xff);
}

static void
test_errors (fixture *f, gconstpointer data)
{
  uint8_t buf[512];
  /* Past the end of the disk. */
  lba28 (f, 0, DISK_SECTORS - 1, 2);
  tu_outb (f->pio, P + 7, 0x20);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, IDNF);
  lba28 (f, 0, 0x0fffffff, 0);
  tu_outb (f->pio, P + 7, 0xc8);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  lba28 (f, 0, DISK_SECTORS, 1);
  tu_outb (f->pio, P + 7, 0x40);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, IDNF);
  lba28 (f, 0, DISK_SECTORS - 1, 1);
  tu_outb (f->pio, P + 7, 0x40);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  /* The last sector reads. */
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  check_pattern (buf, DISK_SECTORS - 1, 1);
  /* Unknown and ATAPI-only commands abort. */
  static const uint8_t bogus[] = { 0x00, 0xa0, 0xa1, 0xff, 0x50, 0xb0, 0x87 };
  for (unsigned i = 0; i < G_N_ELEMENTS (bogus); i++)
    {
      fake_irq_clear_counts (&f->irq);
      tu_outb (f->pio, P + 7, bogus[i]);
      g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
      g_assert_cmphex (tu_inb (f->pio, P + 1), ==, ABRT);
      g_assert_cmpuint (f->irq.raised[14], ==, 1);
    }
  /* nIEN keeps the line low. */
  tu_outb (f->pio, CTL, 0x02);
  fake_irq_clear_counts (&f->irq);
  tu_outb (f->pio, P + 7, 0xff);
  g_assert_cmpuint (f->irq.raised[14], ==, 0);
  tu_outb (f->pio, CTL, 0x00);
  g_assert_cmpuint (f->irq.raised[14], ==, 1);
}

static void
test_read_only (fixture *f, gconstpointer data)
{
  uint8_t buf[512];
  lba28 (f, 0, 3, 1);
  tu_outb (f->pio, P + 7, 0x30);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, P + 1), ==, ABRT);
  make_prd (f, 0x1000, 0x20000, 512, 512);
  dma_command (f, 0xca, 3, 1, false, false);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | ERR);
  tu_outb (f->pio, BM, 0);
  lba28 (f, 0, 3, 1);
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  check_pattern (buf, 3, 1);
}

static void
expect_dma_error (fixture *f)
{
  uint8_t st = wait_ready (f, CTL);
  g_assert_cmphex (st, ==, DRDY | ERR);
  g_assert_cmphex (tu_inb (f->pio, BM + 2) & 0x07, ==, 0x06);
  g_assert_cmphex (tu_inb (f->pio, P + 1) & ABRT, ==, ABRT);
  tu_outb (f->pio, BM, 0);
  tu_outb (f->pio, BM + 2, 0x06);
}

static void
test_prd_hostile (fixture *f, gconstpointer data)
{
  uint8_t *t = f->mem.host + 0x1000;
  /* A table outside RAM. */
  tu_outl (f->pio, BM + 4, 0xfffffff0);
  tu_outb (f->pio, BM, 0x08);
  lba28 (f, 0, 0, 1);
  tu_outb (f->pio, P + 7, 0xc8);
  tu_outb (f->pio, BM, 0x09);
  expect_dma_error (f);
  /* A buffer that runs past the end of RAM. */
  make_prd (f, 0x1000, RAM_SIZE - 256, 512, 512);
  dma_command (f, 0xc8, 0, 1, false, true);
  expect_dma_error (f);
  /* A buffer in the PCI hole (4 GiB - 64 KiB). */
  make_prd (f, 0x1000, 0xffff0000u, 512, 512);
  dma_command (f, 0xca, 0, 1, false, false);
  expect_dma_error (f);
  /* PRDs shorter than the transfer. */
  make_prd (f, 0x1000, 0x20000, 1024, 512);
  dma_command (f, 0xc8, 0, 4, false, true);
  expect_dma_error (f);
  /* A table that never ends: 2-byte entries without EOT filling the
   * 64 KiB table limit and beyond. */
  for (unsigned i = 0; i < 8192 + 16 && 0x1000 + 8 * i + 8 <= RAM_SIZE; i++)
    {
      vmm_pci_put32 (t + 8 * i, 0x200000);
      vmm_pci_put32 (t + 8 * i + 4, 2);
    }
  dma_command (f, 0xc8, 0, 0, false, true); /* 256 sectors */
  expect_dma_error (f);
  /* A table that runs off the end of RAM without EOT. */
  uint32_t last = RAM_SIZE - 64;
  for (unsigned i = 0; i < 8; i++)
    {
      vmm_pci_put32 (f->mem.host + last + 8 * i, 0x200000);
      vmm_pci_put32 (f->mem.host + last + 8 * i + 4, 2);
    }
  tu_outl (f->pio, BM + 4, last);
  tu_outb (f->pio, BM, 0x08);
  lba28 (f, 0, 0, 1);
  tu_outb (f->pio, P + 7, 0xc8);
  tu_outb (f->pio, BM, 0x09);
  expect_dma_error (f);
  /* The controller still works. */
  make_prd (f, 0x1000, 0x20000, 512, 512);
  dma_command (f, 0xc8, 77, 1, false, true);
  g_assert_cmphex (wait_ready (f, CTL), ==, DRDY | 0x10);
  check_pattern (f->mem.host + 0x20000, 77, 1);
  /* BM START cleared mid-flight aborts without harm. */
  tu_outb (f->pio, BM, 0);
  make_prd (f, 0x1000, 0x20000, 128 * 512, 65536);
  dma_command (f, 0xc8, 0, 128, false, true);
  tu_outb (f->pio, BM, 0);
  wait_ready (f, CTL);
  ide_drain (f->ide);
}

static void
test_fuzz (fixture *f, gconstpointer data)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (0x1de);
  static const uint16_t ports[] = { P, P + 1, P + 2, P + 3, P + 4, P + 5,
                                    P + 6, P + 7, CTL, S + 7, SCTL, BM,
                                    BM + 2, BM + 4, BM + 8, BM + 10, BM + 12 };
  static const uint8_t cmds[] = { 0x20, 0x24, 0x30, 0x34, 0xc4, 0xc5, 0x29,
                                  0x39, 0xc8, 0x25, 0xca, 0x35, 0xe7, 0xea,
                                  0xec, 0xef, 0xc6, 0x91, 0x40, 0xf8, 0x27,
                                  0x90, 0x08, 0xa0, 0xe5 };
  /* Random PRD tables and data in the first MiB. */
  for (unsigned i = 0; i < 0x100000; i += 4)
    vmm_pci_put32 (f->mem.host + i, g_rand_int (rand) & 0x3ffffe);
  for (unsigned op = 0; op < 150000; op++)
    {
      uint16_t port = ports[g_rand_int_range (rand, 0, G_N_ELEMENTS (ports))];
      unsigned size = 1u << g_rand_int_range (rand, 0, 3);
      uint32_t v = g_rand_int (rand);
      switch (g_rand_int_range (rand, 0, 8))
        {
        case 0:
          tu_outb (f->pio, P + 7,
                   cmds[g_rand_int_range (rand, 0, G_N_ELEMENTS (cmds))]);
          break;
        case 1:
        case 2:
          {
            uint64_t dummy;
            vmm_bus_read (f->pio, port, size, 0, &dummy);
            break;
          }
        case 3:
          if (port == P + 7 || port == CTL)
            v &= ~0x04u; /* keep SRST short */
          vmm_bus_write (f->pio, port, size, 0, v);
          break;
        case 4:
          vmm_bus_write (f->pio, P + 2, 1, 0, v & 0x0f);
          break;
        case 5:
          tu_outb (f->pio, BM, (v & 0x09));
          break;
        default:
          tu_inw (f->pio, P);
          break;
        }
      if (op % 64 == 0)
        while (g_main_context_iteration (f->ctx, FALSE))
          ;
    }
  tu_outb (f->pio, BM, 0);
  ide_drain (f->ide);
  /* Back to sanity after a reset. */
  vmm_device_reset (ide_device (f->ide));
  cfg_write (f, 0x20, 4, BM);
  cfg_write (f, 0x04, 2, 0x0005);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);
  uint16_t w[256];
  identify (f, w);
  g_assert_cmphex (w[0], ==, 0x0040);
}

static void
test_state (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  uint8_t buf[4 * 512];
  /* Mid-transfer: a 4-sector READ, 1.5 sectors read. */
  lba28 (f, 0, 500, 4);
  tu_outb (f->pio, P + 7, 0x20);
  read_data (f, buf, 512);
  read_data (f, buf + 512, 256);
  g_autoptr (GByteArray) blob = g_byte_array_new ();
  vmm_device *dev = ide_device (f->ide);
  dev->ops->save_state (dev, blob);

  /* A second controller over the same image takes the state. */
  vmm_pci_host_free (f->host);
  vmm_device_destroy (dev);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  f->ide = new_controller (f);
  dev = ide_device (f->ide);
  g_assert_true (ide_attach (f->ide, f->host, f->pio, DEVFN, &error));
  g_assert_true (ide_attach_disk (f->ide, 0, 0, open_image (f->path, false),
                                  &error));
  dev->ops->load_state (dev, blob->data, blob->len, &error);
  g_assert_no_error (error);
  g_assert_cmphex (cfg_read (f, 0x20, 4), ==, BM | 1);
  read_data (f, buf + 768, 256);
  read_data (f, buf + 1024, 1024);
  check_pattern (buf, 500, 4);
  g_assert_cmphex (tu_inb (f->pio, P + 7), ==, DRDY | 0x10);

  /* Round trip: the same bytes again. */
  g_autoptr (GByteArray) again = g_byte_array_new ();
  g_byte_array_set_size (blob, 0);
  dev->ops->save_state (dev, blob);
  dev->ops->load_state (dev, blob->data, blob->len, &error);
  g_assert_no_error (error);
  dev->ops->save_state (dev, again);
  g_assert_cmpmem (blob->data, blob->len, again->data, again->len);

  /* Garbage: truncations, flipped bytes, random blobs. Never a crash; a
   * load either fails or leaves a working device. */
  g_autoptr (GRand) rand = g_rand_new_with_seed (42);
  for (guint len = 0; len < blob->len; len += 1 + len / 8)
    {
      g_assert_false (dev->ops->load_state (dev, blob->data, len, &error));
      g_clear_error (&error);
    }
  for (unsigned i = 0; i < 3000; i++)
    {
      g_autoptr (GByteArray) bad = g_byte_array_new ();
      g_byte_array_append (bad, blob->data, blob->len);
      unsigned flips = g_rand_int_range (rand, 1, 4);
      for (unsigned k = 0; k < flips; k++)
        bad->data[g_rand_int_range (rand, 6, (gint32) bad->len)]
            = (uint8_t) g_rand_int (rand);
      if (dev->ops->load_state (dev, bad->data, bad->len, &error))
        {
          for (unsigned k = 0; k < 64; k++)
            {
              tu_inw (f->pio, P);
              tu_inb (f->pio, P + 7);
              tu_outb (f->pio, BM, 0x09);
            }
          tu_outb (f->pio, BM, 0);
          ide_drain (f->ide);
        }
      g_clear_error (&error);
    }
  for (unsigned i = 0; i < 200; i++)
    {
      uint8_t junk[256];
      for (unsigned k = 0; k < sizeof junk; k++)
        junk[k] = (uint8_t) g_rand_int (rand);
      g_assert_false (dev->ops->load_state (dev, junk, sizeof junk, &error));
      g_clear_error (&error);
    }
  g_assert_false (dev->ops->load_state (dev, NULL, 0, &error));
  g_clear_error (&error);
  vmm_device_reset (dev);
  cfg_write (f, 0x20, 4, BM);
  uint16_t w[256];
  identify (f, w);
}

static void
test_attach_errors (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  VmmBlock *bs = open_image (f->path, true);
  g_assert_false (ide_attach_disk (f->ide, 0, 0, bs, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_false (ide_attach_disk (f->ide, 2, 0, bs, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_assert_true (vmm_block_close (bs, NULL));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) \
  g_test_add ("/ide/" name, fixture, NULL, setup, fn, teardown)
  ADD ("config", test_config);
  ADD ("absent", test_absent);
  ADD ("identify", test_identify);
  ADD ("signature", test_signature);
  ADD ("pio-lba28", test_pio_lba28);
  ADD ("pio-chs", test_pio_chs);
  ADD ("pio-lba48", test_pio_lba48);
  ADD ("multiple", test_multiple);
  ADD ("dma", test_dma);
  ADD ("dma-large", test_large_dma);
  ADD ("dma-reset-in-flight", test_reset_in_flight);
  ADD ("flush-and-power", test_flush);
  ADD ("errors", test_errors);
  g_test_add ("/ide/read-only", fixture, NULL, setup_ro, test_read_only,
              teardown);
  ADD ("prd-hostile", test_prd_hostile);
  ADD ("fuzz", test_fuzz);
  ADD ("state", test_state);
  ADD ("attach-errors", test_attach_errors);
  return g_test_run ();
}
