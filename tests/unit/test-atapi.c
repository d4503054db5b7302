/* ATAPI CD/DVD-ROM on the PIIX3 IDE secondary channel, driven as a guest
 * would: the PACKET protocol (PIO chunks of the byte count limit, DMA), the
 * MMC commands, sense data, media change, the tray lock, hostile packets and
 * state. */
#include <fcntl.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/ide.h"

#define DEVFN IDE_DEVFN
#define S 0x170
#define SCTL 0x376
#define BM 0xc000
#define BM2 (BM + 8)
#define RAM_SIZE (2u << 20)
#define ISO_SECTORS 64u

enum {
  BSY = 0x80, DRDY = 0x40, DRQ = 0x08, ERR = 0x01,
};

typedef struct {
  char *dir;
  char *iso;
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  GMainContext *ctx;
  vmm_guest_memory mem;
  fake_irq irq;
  ide_controller *ide;
  atapi_cdrom *cd;
  unsigned tray_events;
} fixture;

static uint8_t
pattern (uint64_t sector, unsigned i)
{
  return (uint8_t) ((sector * 13 + i) ^ (i >> 8));
}

static char *
make_iso (const char *dir, const char *name, uint64_t sectors, bool fill)
{
  char *path = g_build_filename (dir, name, NULL);
  int fd = g_open (path, O_RDWR | O_CREAT | O_TRUNC, 0600);
  g_assert_cmpint (fd, >=, 0);
  g_assert_cmpint (ftruncate (fd, (off_t) (sectors * 2048)), ==, 0);
  for (uint64_t s = 0; fill && s < sectors; s++)
    {
      uint8_t buf[2048];
      for (unsigned i = 0; i < 2048; i++)
        buf[i] = pattern (s, i);
      g_assert_cmpint (pwrite (fd, buf, 2048, (off_t) (s * 2048)), ==, 2048);
    }
  close (fd);
  return path;
}

static VmmBlock *
open_iso (const char *path)
{
  g_autoptr (GError) error = NULL;
  VmmBlock *bs = vmm_block_open (path, "raw", VMM_BLOCK_OPEN_READ_ONLY,
                                 &error);
  g_assert_no_error (error);
  return bs;
}

static void
on_tray (void *opaque, atapi_cdrom *cd)
{
  ((fixture *) opaque)->tray_events++;
}

static void
attach (fixture *f, bool with_media)
{
  g_autoptr (GError) error = NULL;
  vmm_irq i14 = fake_irq_line (&f->irq, 14), i15 = fake_irq_line (&f->irq, 15);
  f->ide = ide_create (&f->mem, f->ctx, &i14, &i15);
  g_assert_true (ide_attach (f->ide, f->host, f->pio, DEVFN, &error));
  f->cd = ide_attach_cdrom (f->ide, 1, 0, with_media ? open_iso (f->iso)
                                                     : NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->cd);
  atapi_set_tray_callback (f->cd, on_tray, f);
  vmm_pci_config_write (f->host, 0, DEVFN, 0x20, 4, BM);
  vmm_pci_config_write (f->host, 0, DEVFN, 0x04, 2, 0x0005);
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->dir = g_dir_make_tmp ("vessel-atapi-XXXXXX", &error);
  g_assert_no_error (error);
  f->iso = make_iso (f->dir, "disc.iso", ISO_SECTORS, true);
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  f->ctx = g_main_context_new ();
  f->mem = (vmm_guest_memory){ .host = g_malloc0 (RAM_SIZE), .size = RAM_SIZE,
                               .below_4g = RAM_SIZE };
  attach (f, data == NULL);
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
  /* Ejected media closed on the I/O context after their last request. */
  while (g_main_context_iteration (f->ctx, FALSE))
    ;
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
  g_main_context_unref (f->ctx);
  g_free (f->mem.host);
  rm_rf (f->dir);
  g_free (f->dir);
  g_free (f->iso);
}

static uint8_t
wait_ready (fixture *f)
{
  gint64 deadline = g_get_monotonic_time () + 10 * G_USEC_PER_SEC;
  uint8_t st;
  while ((st = tu_inb (f->pio, SCTL)) & BSY)
    {
      if (!g_main_context_iteration (f->ctx, FALSE))
        g_usleep (200);
      g_assert_cmpint (g_get_monotonic_time (), <, deadline);
    }
  return st;
}

/* Sends a 12-byte packet; returns the status after it. */
static uint8_t
packet (fixture *f, const uint8_t *cdb, uint16_t limit, bool dma)
{
  tu_outb (f->pio, S + 6, 0xa0);
  tu_outb (f->pio, S + 1, dma ? 1 : 0);
  tu_outb (f->pio, S + 4, limit & 0xff);
  tu_outb (f->pio, S + 5, limit >> 8);
  tu_outb (f->pio, S + 7, 0xa0);
  g_assert_cmphex (tu_inb (f->pio, SCTL) & (BSY | DRQ), ==, DRQ);
  g_assert_cmphex (tu_inb (f->pio, S + 2) & 3, ==, 1); /* CoD, to device */
  for (unsigned i = 0; i < 12; i += 2)
    tu_outw (f->pio, S, (uint16_t) (cdb[i] | cdb[i + 1] << 8));
  /* A DMA command stays busy until the bus master starts. */
  return dma ? tu_inb (f->pio, SCTL) : wait_ready (f);
}

/* Reads the data-in phase; returns the byte count, *chunks the DRQ blocks. */
static unsigned
read_reply (fixture *f, uint8_t *buf, unsigned max, unsigned *chunks)
{
  unsigned total = 0, n_chunks = 0;
  while (tu_inb (f->pio, S + 7) & DRQ) /* the status read clears INTRQ */
    {
      g_assert_cmphex (tu_inb (f->pio, S + 2) & 3, ==, 2); /* I/O, data */
      unsigned n = tu_inb (f->pio, S + 4) | tu_inb (f->pio, S + 5) << 8;
      g_assert_cmpuint (n, >, 0);
      for (unsigned i = 0; i < n; i += 2)
        {
          uint16_t w = tu_inw (f->pio, S);
          if (total + i < max)
            buf[total + i] = w & 0xff;
          if (total + i + 1 < max && i + 1 < n)
            buf[total + i + 1] = w >> 8;
        }
      total += n;
      n_chunks++;
    }
  if (chunks)
    *chunks = n_chunks;
  uint8_t st = tu_inb (f->pio, S + 7);
  g_assert_cmphex (st & (BSY | DRQ), ==, 0);
  g_assert_cmphex (tu_inb (f->pio, S + 2) & 3, ==, 3);
  return total;
}

/* Runs a command; returns the sense key (0 for good status) and fills
 * @buf with the data. */
static unsigned
run (fixture *f, const uint8_t *cdb, uint8_t *buf, unsigned max,
     unsigned *len)
{
  uint8_t st = packet (f, cdb, 0xfffe, false);
  unsigned n = 0;
  if (st & DRQ)
    n = read_reply (f, buf, max, NULL);
  else
    st = tu_inb (f->pio, S + 7);
  if (len)
    *len = n;
  if (st & ERR)
    return tu_inb (f->pio, S + 1) >> 4;
  return 0;
}

typedef struct {
  unsigned key, asc;
} sense;

static sense
request_sense (fixture *f)
{
  uint8_t cdb[12] = { 0x03, 0, 0, 0, 18 };
  uint8_t b[18] = { 0 };
  unsigned len;
  g_assert_cmpuint (run (f, cdb, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 18);
  g_assert_cmphex (b[0], ==, 0x70);
  return (sense){ b[2] & 0x0f, b[12] };
}

static void
expect_sense (fixture *f, const uint8_t *cdb, unsigned key, unsigned asc)
{
  uint8_t b[64];
  g_assert_cmpuint (run (f, cdb, b, sizeof b, NULL), ==, key);
  sense s = request_sense (f);
  g_assert_cmphex (s.key, ==, key);
  g_assert_cmphex (s.asc, ==, asc);
}

static void
clear_unit_attention (fixture *f)
{
  static const uint8_t tur[12] = { 0 };
  expect_sense (f, tur, 6, 0x28);
  expect_sense (f, tur, 0, 0);
}

static void
check_sectors (const uint8_t *buf, uint64_t lba, unsigned n)
{
  for (unsigned s = 0; s < n; s++)
    for (unsigned i = 0; i < 2048; i++)
      if (buf[s * 2048 + i] != pattern (lba + s, i))
        g_error ("sector %" G_GUINT64_FORMAT " byte %u differs", lba + s, i);
}

/* ---- tests ---- */

static void
test_identify (fixture *f, gconstpointer data)
{
  /* IDENTIFY DEVICE aborts and leaves the ATAPI signature. */
  tu_outb (f->pio, S + 6, 0xa0);
  tu_outb (f->pio, S + 7, 0xec);
  g_assert_cmphex (tu_inb (f->pio, S + 7) & ERR, ==, ERR);
  g_assert_cmphex (tu_inb (f->pio, S + 1), ==, 0x04);
  g_assert_cmphex (tu_inb (f->pio, S + 4), ==, 0x14);
  g_assert_cmphex (tu_inb (f->pio, S + 5), ==, 0xeb);
  /* IDENTIFY PACKET DEVICE. */
  tu_outb (f->pio, S + 7, 0xa1);
  g_assert_cmphex (tu_inb (f->pio, S + 7), ==, DRDY | 0x10 | DRQ);
  uint16_t w[256];
  for (unsigned i = 0; i < 256; i++)
    w[i] = tu_inw (f->pio, S);
  g_assert_cmphex (w[0], ==, 0x85c0);
  char model[41];
  for (unsigned i = 0; i < 20; i++)
    {
      model[2 * i] = (char) (w[27 + i] >> 8);
      model[2 * i + 1] = (char) (w[27 + i] & 0xff);
    }
  model[40] = 0;
  g_strchomp (model);
  g_assert_cmpstr (model, ==, "Vessel DVD-ROM");
  g_assert_true (w[49] & (1 << 8));
  /* SRST: the signature, status 0 for a packet device. */
  tu_outb (f->pio, SCTL, 0x06);
  tu_outb (f->pio, SCTL, 0x02);
  g_assert_cmphex (tu_inb (f->pio, S + 2), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, S + 3), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, S + 4), ==, 0x14);
  g_assert_cmphex (tu_inb (f->pio, S + 5), ==, 0xeb);
  g_assert_cmphex (tu_inb (f->pio, S + 7), ==, 0x00);
  /* DEVICE RESET as well; disk commands abort. */
  tu_outb (f->pio, S + 4, 0);
  tu_outb (f->pio, S + 7, 0x08);
  g_assert_cmphex (tu_inb (f->pio, S + 4), ==, 0x14);
  tu_outb (f->pio, S + 7, 0x20);
  g_assert_cmphex (tu_inb (f->pio, S + 7) & ERR, ==, ERR);
  /* The absent slave reads 0; the primary channel floats. */
  tu_outb (f->pio, S + 6, 0xb0);
  g_assert_cmphex (tu_inb (f->pio, S + 7), ==, 0x00);
  g_assert_cmphex (tu_inb (f->pio, 0x1f7), ==, 0xff);
}

static void
test_inquiry (fixture *f, gconstpointer data)
{
  uint8_t b[96];
  unsigned len;
  static const uint8_t tur[12] = { 0 };
  /* INQUIRY answers despite the pending unit attention. */
  uint8_t inq[12] = { 0x12, 0, 0, 0, 96 };
  g_assert_cmpuint (run (f, inq, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 36);
  g_assert_cmphex (b[0], ==, 0x05);
  g_assert_cmphex (b[1], ==, 0x80);
  g_assert_cmpmem (b + 8, 8, "Vessel  ", 8);
  g_assert_cmpmem (b + 16, 7, "DVD-ROM", 7);
  /* Allocation length trims. */
  inq[4] = 5;
  g_assert_cmpuint (run (f, inq, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 5);
  inq[1] = 1; /* EVPD */
  expect_sense (f, inq, 5, 0x24);
  /* The unit attention is still there for TEST UNIT READY. */
  expect_sense (f, tur, 6, 0x28);
  expect_sense (f, tur, 0, 0);
}

static void
test_tur_and_capacity (fixture *f, gconstpointer data)
{
  static const uint8_t tur[12] = { 0 };
  clear_unit_attention (f);
  expect_sense (f, tur, 0, 0);
  uint8_t cap[12] = { 0x25 };
  uint8_t b[8];
  unsigned len;
  g_assert_cmpuint (run (f, cap, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8);
  g_assert_cmpuint ((uint32_t) b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3], ==,
                    ISO_SECTORS - 1);
  g_assert_cmpuint (b[6] << 8 | b[7], ==, 2048);
  /* Unknown opcode, and MODE SENSE(6) which is not offered. */
  uint8_t bad[12] = { 0xff };
  expect_sense (f, bad, 5, 0x20);
  bad[0] = 0x1a;
  expect_sense (f, bad, 5, 0x20);
}

static void
test_read_pio (fixture *f, gconstpointer data)
{
  g_autofree uint8_t *buf = g_malloc0 (40 * 2048);
  unsigned chunks, len;
  clear_unit_attention (f);
  /* READ(10) of 5 sectors with a 4 KiB byte count limit. */
  uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 3, 0, 0, 5 };
  fake_irq_clear_counts (&f->irq);
  g_assert_true (packet (f, cdb, 4096, false) & DRQ);
  len = read_reply (f, buf, 40 * 2048, &chunks);
  g_assert_cmpuint (len, ==, 5 * 2048);
  g_assert_cmpuint (chunks, ==, 3);
  g_assert_cmpuint (f->irq.raised[15], ==, 4); /* each chunk and the end */
  check_sectors (buf, 3, 5);
  /* A byte count limit that splits sectors (odd: rounded down). */
  g_assert_true (packet (f, cdb, 1001, false) & DRQ);
  memset (buf, 0, 40 * 2048);
  len = read_reply (f, buf, 40 * 2048, &chunks);
  g_assert_cmpuint (len, ==, 5 * 2048);
  g_assert_cmpuint (chunks, ==, (5 * 2048 + 999) / 1000);
  check_sectors (buf, 3, 5);
  /* READ(12) of 40 sectors: more than one buffer load. */
  uint8_t r12[12] = { 0xa8, 0, 0, 0, 0, 20, 0, 0, 0, 40 };
  g_assert_true (packet (f, r12, 0xfffe, false) & DRQ);
  len = read_reply (f, buf, 40 * 2048, NULL);
  g_assert_cmpuint (len, ==, 40 * 2048);
  check_sectors (buf, 20, 40);
  /* Zero sectors: good status, no data. */
  cdb[8] = 0;
  g_assert_cmpuint (run (f, cdb, buf, 16, &len), ==, 0);
  g_assert_cmpuint (len, ==, 0);
  /* Out of range. */
  uint8_t oor[12] = { 0x28, 0, 0, 0, 0, ISO_SECTORS - 1, 0, 0, 2 };
  expect_sense (f, oor, 5, 0x21);
  uint8_t far[12] = { 0xa8, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  expect_sense (f, far, 5, 0x21);
  uint8_t seek[12] = { 0x2b, 0, 0, 0, 0, ISO_SECTORS };
  expect_sense (f, seek, 5, 0x21);
  seek[5] = 1;
  expect_sense (f, seek, 0, 0);
}

static void
make_prd (fixture *f, uint32_t table, uint32_t addr, uint32_t bytes)
{
  vmm_pci_put32 (f->mem.host + table, addr);
  vmm_pci_put32 (f->mem.host + table + 4, (bytes & 0xffff) | 0x80000000u);
}

static void
test_read_dma (fixture *f, gconstpointer data)
{
  clear_unit_attention (f);
  make_prd (f, 0x1000, 0x10000, 8 * 2048);
  tu_outl (f->pio, BM2 + 4, 0x1000);
  tu_outb (f->pio, BM2, 0x08);
  uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 10, 0, 0, 8 };
  fake_irq_clear_counts (&f->irq);
  packet (f, cdb, 0, true);
  tu_outb (f->pio, BM2, 0x09);
  uint8_t st = wait_ready (f);
  g_assert_cmphex (st & (ERR | DRQ), ==, 0);
  g_assert_cmphex (tu_inb (f->pio, BM2 + 2) & 0x07, ==, 0x04);
  g_assert_cmpuint (f->irq.raised[15], ==, 1);
  g_assert_cmphex (tu_inb (f->pio, S + 2) & 3, ==, 3);
  check_sectors (f->mem.host + 0x10000, 10, 8);
  tu_outb (f->pio, BM2, 0x08);
  tu_outb (f->pio, BM2 + 2, 0x06);

  /* A reply by DMA: INQUIRY. */
  uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
  make_prd (f, 0x1000, 0x30000, 36);
  packet (f, inq, 0, true);
  tu_outb (f->pio, BM2, 0x09);
  wait_ready (f);
  g_assert_cmpmem (f->mem.host + 0x30008, 8, "Vessel  ", 8);
  tu_outb (f->pio, BM2, 0x08);

  /* PRD outside RAM: bus-master error, ABORTED COMMAND sense. */
  tu_outl (f->pio, BM2 + 4, 0xfff00000);
  tu_outb (f->pio, BM2 + 2, 0x06);
  packet (f, cdb, 0, true);
  tu_outb (f->pio, BM2, 0x09);
  st = wait_ready (f);
  g_assert_cmphex (st & ERR, ==, ERR);
  g_assert_cmphex (tu_inb (f->pio, BM2 + 2) & 0x07, ==, 0x06);
  g_assert_cmphex (tu_inb (f->pio, S + 1) >> 4, ==, 0x0b);
  tu_outb (f->pio, BM2, 0x08);
  tu_outb (f->pio, BM2 + 2, 0x06);
  /* PRD shorter than the data. */
  make_prd (f, 0x1000, 0x10000, 2048);
  tu_outl (f->pio, BM2 + 4, 0x1000);
  packet (f, cdb, 0, true);
  tu_outb (f->pio, BM2, 0x09);
  st = wait_ready (f);
  g_assert_cmphex (st & ERR, ==, ERR);
  g_assert_cmphex (tu_inb (f->pio, BM2 + 2) & 0x02, ==, 0x02);
  tu_outb (f->pio, BM2, 0x08);
}

static void
test_toc (fixture *f, gconstpointer data)
{
  uint8_t b[64];
  unsigned len;
  clear_unit_attention (f);
  /* Format 0, LBA: track 1 at 0, lead-out at the end. */
  uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 64 };
  g_assert_cmpuint (run (f, toc, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 20);
  g_assert_cmpuint (b[0] << 8 | b[1], ==, 18);
  g_assert_cmpuint (b[2], ==, 1);
  g_assert_cmpuint (b[3], ==, 1);
  g_assert_cmphex (b[5], ==, 0x14);
  g_assert_cmpuint (b[6], ==, 1);
  g_assert_cmpuint (b[8] << 24 | b[9] << 16 | b[10] << 8 | b[11], ==, 0);
  g_assert_cmphex (b[14], ==, 0xaa);
  g_assert_cmpuint (b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19], ==,
                    ISO_SECTORS);
  /* MSF: track 1 at 00:02:00, lead-out at 64 + 150 frames = 00:02:64. */
  toc[1] = 0x02;
  g_assert_cmpuint (run (f, toc, b, sizeof b, &len), ==, 0);
  g_assert_cmpmem (b + 8, 4, ((uint8_t[]){ 0, 0, 2, 0 }), 4);
  g_assert_cmpmem (b + 16, 4, ((uint8_t[]){ 0, 0, 2, 64 }), 4);
  /* Only the lead-out; a track that does not exist. */
  toc[1] = 0;
  toc[6] = 0xaa;
  g_assert_cmpuint (run (f, toc, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 12);
  toc[6] = 2;
  expect_sense (f, toc, 5, 0x24);
  /* Format 1: session information. */
  toc[6] = 0;
  toc[2] = 1;
  g_assert_cmpuint (run (f, toc, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 12);
  g_assert_cmpuint (b[1], ==, 10);
  /* Formats 2+ are not offered. */
  toc[2] = 5;
  expect_sense (f, toc, 5, 0x24);
}

static unsigned
current_profile (fixture *f)
{
  uint8_t cfg[12] = { 0x46, 0, 0, 0, 0, 0, 0, 0x01, 0x00 };
  uint8_t b[256];
  unsigned len;
  g_assert_cmpuint (run (f, cfg, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, >=, 8 + 12);
  g_assert_cmpuint ((uint32_t) b[0] << 24 | b[1] << 16 | b[2] << 8 | b[3], ==,
                    len - 4);
  /* Feature 0: the profile list with DVD-ROM and CD-ROM. */
  g_assert_cmpuint (b[8] << 8 | b[9], ==, 0x0000);
  g_assert_cmpuint (b[11], ==, 8);
  g_assert_cmpuint (b[12] << 8 | b[13], ==, 0x0010);
  g_assert_cmpuint (b[16] << 8 | b[17], ==, 0x0008);
  g_assert_cmpuint (b[20] << 8 | b[21], ==, 0x0001); /* core */
  return b[6] << 8 | b[7];
}

static unsigned
media_event (fixture *f, bool *present)
{
  uint8_t gesn[12] = { 0x4a, 0x01, 0, 0, 0x10, 0, 0, 0, 8 };
  uint8_t b[8];
  unsigned len;
  g_assert_cmpuint (run (f, gesn, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8);
  g_assert_cmphex (b[2], ==, 0x04);
  *present = b[5] & 0x02;
  return b[4] & 0x0f;
}

static void
test_config_and_events (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  bool present;
  /* Neither command reports the unit attention. */
  g_assert_cmphex (current_profile (f), ==, 0x0008); /* a small disc: CD */
  g_assert_cmpuint (media_event (f, &present), ==, 0);
  g_assert_true (present);
  /* Asynchronous GESN is not offered; no class requested: NEA. */
  uint8_t gesn[12] = { 0x4a, 0x00, 0, 0, 0x10, 0, 0, 0, 8 };
  expect_sense (f, gesn, 5, 0x24);
  clear_unit_attention (f);
  uint8_t b[8];
  gesn[1] = 1;
  gesn[4] = 0x02;
  g_assert_cmpuint (run (f, gesn, b, sizeof b, NULL), ==, 0);
  g_assert_cmphex (b[2], ==, 0x80);

  /* Host eject: a removal event, then NOT READY. */
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
  g_assert_false (atapi_has_media (f->cd));
  g_assert_cmpuint (media_event (f, &present), ==, 3);
  g_assert_false (present);
  g_assert_cmpuint (media_event (f, &present), ==, 0);
  g_assert_cmphex (current_profile (f), ==, 0x0000);
  static const uint8_t tur[12] = { 0 };
  expect_sense (f, tur, 2, 0x3a);
  /* A DVD-sized image: new media, UNIT ATTENTION once, DVD-ROM profile. */
  g_autofree char *dvd = make_iso (f->dir, "dvd.iso", 400000, false);
  g_assert_true (atapi_insert (f->cd, open_iso (dvd), &error));
  g_assert_no_error (error);
  VmmBlock *again = open_iso (f->iso);
  g_assert_false (atapi_insert (f->cd, again, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_clear_error (&error);
  g_assert_true (vmm_block_close (again, NULL));
  g_assert_cmpuint (media_event (f, &present), ==, 2);
  g_assert_true (present);
  g_assert_cmphex (current_profile (f), ==, 0x0010);
  expect_sense (f, tur, 6, 0x28);
  expect_sense (f, tur, 0, 0);
  uint8_t cap[12] = { 0x25 };
  uint8_t c[8];
  g_assert_cmpuint (run (f, cap, c, sizeof c, NULL), ==, 0);
  g_assert_cmpuint ((uint32_t) c[0] << 24 | c[1] << 16 | c[2] << 8 | c[3], ==,
                    399999);
  /* GET CONFIGURATION RT=2 for one feature; RT=3 is invalid. */
  uint8_t one[12] = { 0x46, 0x02, 0x00, 0x03, 0, 0, 0, 0, 64 };
  uint8_t r[64];
  unsigned len;
  g_assert_cmpuint (run (f, one, r, sizeof r, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8 + 8);
  g_assert_cmpuint (r[8] << 8 | r[9], ==, 0x0003);
  one[1] = 3;
  expect_sense (f, one, 5, 0x24);
}

static void
test_mode_sense (fixture *f, gconstpointer data)
{
  uint8_t b[128];
  unsigned len;
  clear_unit_attention (f);
  uint8_t ms[12] = { 0x5a, 0, 0x2a, 0, 0, 0, 0, 0, 128 };
  g_assert_cmpuint (run (f, ms, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8 + 22);
  g_assert_cmpuint (b[0] << 8 | b[1], ==, len - 2);
  g_assert_cmphex (b[8], ==, 0x2a);
  g_assert_cmphex (b[9], ==, 0x14);
  g_assert_cmphex (b[14] & 0x03, ==, 0x01); /* lock supported, unlocked */
  ms[2] = 0x3f;
  g_assert_cmpuint (run (f, ms, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8 + 12 + 8 + 22);
  ms[2] = 0x01;
  g_assert_cmpuint (run (f, ms, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 20);
  ms[2] = 0x0d;
  g_assert_cmpuint (run (f, ms, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 16);
  ms[2] = 0x05;
  expect_sense (f, ms, 5, 0x24);
  ms[2] = 0xea; /* saved values */
  expect_sense (f, ms, 5, 0x39);
  /* Locked shows in page 2A. */
  uint8_t lock[12] = { 0x1e, 0, 0, 0, 1 };
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 0);
  ms[2] = 0x2a;
  g_assert_cmpuint (run (f, ms, b, sizeof b, &len), ==, 0);
  g_assert_cmphex (b[14] & 0x03, ==, 0x03);
}

static void
test_lock_and_eject (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  clear_unit_attention (f);
  uint8_t lock[12] = { 0x1e, 0, 0, 0, 1 };
  uint8_t b[8];
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 0);
  g_assert_true (atapi_is_locked (f->cd));
  g_assert_false (atapi_eject (f->cd, FALSE, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_BUSY);
  g_assert_cmpstr (error->message, ==, "the guest has locked the CD-ROM tray");
  g_clear_error (&error);
  g_assert_true (atapi_has_media (f->cd));
  /* The refused eject reaches the guest as an eject request (MMC-5 media
   * event 1h), once. */
  bool present;
  g_assert_cmpuint (media_event (f, &present), ==, 1);
  g_assert_true (present);
  g_assert_cmpuint (media_event (f, &present), ==, 0);
  /* The guest cannot eject a tray it locked either. */
  uint8_t eject[12] = { 0x1b, 0, 0, 0, 0x02 };
  expect_sense (f, eject, 5, 0x53);
  g_assert_cmpuint (f->tray_events, ==, 0);
  /* Unlocked, the guest ejects. */
  lock[4] = 0;
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 0);
  g_assert_false (atapi_is_locked (f->cd));
  g_assert_cmpuint (run (f, eject, b, sizeof b, NULL), ==, 0);
  g_assert_false (atapi_has_media (f->cd));
  g_assert_cmpuint (f->tray_events, ==, 1);
  static const uint8_t tur[12] = { 0 };
  expect_sense (f, tur, 2, 0x3a);
  /* Load (LoEj + Start) with nothing in it: accepted. */
  eject[4] = 0x03;
  g_assert_cmpuint (run (f, eject, b, sizeof b, NULL), ==, 0);
  /* Host insert: unit attention once, then readable. */
  g_assert_true (atapi_insert (f->cd, open_iso (f->iso), &error));
  expect_sense (f, tur, 6, 0x28);
  expect_sense (f, tur, 0, 0);
  /* Force overrides the lock (the board's "eject -f"). */
  lock[4] = 1;
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 0);
  g_assert_true (atapi_eject (f->cd, TRUE, &error));
  g_assert_false (atapi_has_media (f->cd));
  /* ... and takes the lock with it: the next disc comes out unforced. */
  g_assert_false (atapi_is_locked (f->cd));
  g_assert_true (atapi_insert (f->cd, open_iso (f->iso), &error));
  expect_sense (f, tur, 6, 0x28);
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
  g_assert_no_error (error);
  /* A reset unlocks. */
  g_assert_true (atapi_insert (f->cd, open_iso (f->iso), &error));
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 6); /* the unit attention */
  g_assert_cmpuint (run (f, lock, b, sizeof b, NULL), ==, 0);
  g_assert_true (atapi_is_locked (f->cd));
  vmm_device_reset (ide_device (f->ide));
  g_assert_false (atapi_is_locked (f->cd));
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
}

static void
test_misc (fixture *f, gconstpointer data)
{
  uint8_t b[64];
  unsigned len;
  clear_unit_attention (f);
  uint8_t di[12] = { 0x51, 0, 0, 0, 0, 0, 0, 0, 64 };
  g_assert_cmpuint (run (f, di, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 34);
  g_assert_cmphex (b[2], ==, 0x0e);
  di[1] = 1;
  expect_sense (f, di, 5, 0x24);
  uint8_t ti[12] = { 0x52, 1, 0, 0, 0, 1, 0, 0, 64 };
  g_assert_cmpuint (run (f, ti, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 36);
  g_assert_cmpuint ((uint32_t) b[24] << 24 | b[25] << 16 | b[26] << 8 | b[27],
                    ==, ISO_SECTORS);
  ti[5] = 2;
  expect_sense (f, ti, 5, 0x24);
  uint8_t mech[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8 };
  g_assert_cmpuint (run (f, mech, b, sizeof b, &len), ==, 0);
  g_assert_cmpuint (len, ==, 8);
  uint8_t speed[12] = { 0xbb, 0, 0xff, 0xff };
  g_assert_cmpuint (run (f, speed, b, sizeof b, &len), ==, 0);
  /* CHECK POWER MODE, SET FEATURES transfer mode, IDLE IMMEDIATE. */
  tu_outb (f->pio, S + 7, 0xe5);
  g_assert_cmphex (tu_inb (f->pio, S + 2), ==, 0xff);
  tu_outb (f->pio, S + 1, 0x03);
  tu_outb (f->pio, S + 2, 0x22);
  tu_outb (f->pio, S + 7, 0xef);
  g_assert_cmphex (tu_inb (f->pio, S + 7) & ERR, ==, 0);
  tu_outb (f->pio, S + 7, 0xe1);
  g_assert_cmphex (tu_inb (f->pio, S + 7) & ERR, ==, 0);
}

static void
test_empty_drive (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  static const uint8_t tur[12] = { 0 };
  uint8_t b[64];
  unsigned len;
  expect_sense (f, tur, 2, 0x3a);
  uint8_t r10[12] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 1 };
  expect_sense (f, r10, 2, 0x3a);
  uint8_t toc[12] = { 0x43, 0, 0, 0, 0, 0, 0, 0, 64 };
  expect_sense (f, toc, 2, 0x3a);
  uint8_t inq[12] = { 0x12, 0, 0, 0, 36 };
  g_assert_cmpuint (run (f, inq, b, sizeof b, &len), ==, 0);
  uint8_t mech[12] = { 0xbd, 0, 0, 0, 0, 0, 0, 0, 0, 8 };
  g_assert_cmpuint (run (f, mech, b, sizeof b, &len), ==, 0);
  g_assert_cmphex (b[1] & 0x10, ==, 0x10);
  /* DMA READ of an empty drive fails cleanly. */
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
  g_assert_true (atapi_insert (f->cd, open_iso (f->iso), &error));
  clear_unit_attention (f);
  make_prd (f, 0x1000, 0x10000, 2048);
  tu_outl (f->pio, BM2 + 4, 0x1000);
  tu_outb (f->pio, BM2, 0x08);
  packet (f, r10, 0, true);
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
  tu_outb (f->pio, BM2, 0x09);
  g_assert_cmphex (wait_ready (f) & ERR, ==, ERR);
  tu_outb (f->pio, BM2, 0x08);
  g_assert_cmpuint (request_sense (f).asc, ==, 0x3a);
}

static void
test_eject_in_flight (fixture *f, gconstpointer data)
{
  /* The host ejects while a DMA read is in flight: the request keeps the
   * medium until it completes. */
  g_autoptr (GError) error = NULL;
  clear_unit_attention (f);
  make_prd (f, 0x1000, 0x10000, 32 * 2048);
  tu_outl (f->pio, BM2 + 4, 0x1000);
  tu_outb (f->pio, BM2, 0x08);
  uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 0, 0, 0, 32 };
  packet (f, cdb, 0, true);
  tu_outb (f->pio, BM2, 0x09);
  g_assert_true (atapi_eject (f->cd, FALSE, &error));
  wait_ready (f);
  ide_drain (f->ide);
  tu_outb (f->pio, BM2, 0x08);
}

static void
test_fuzz (fixture *f, gconstpointer data)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (0xa7a);
  static const uint8_t ops[] = { 0x00, 0x03, 0x12, 0x1b, 0x1e, 0x25, 0x28,
                                 0x2b, 0x43, 0x46, 0x4a, 0x51, 0x52, 0x5a,
                                 0xa8, 0xbb, 0xbd, 0xff, 0x1a, 0xad };
  g_autofree uint8_t *buf = g_malloc (1 << 20);
  make_prd (f, 0x1000, 0x10000, 0); /* 64 KiB */
  tu_outl (f->pio, BM2 + 4, 0x1000);
  for (unsigned i = 0; i < 20000; i++)
    {
      uint8_t cdb[12];
      for (unsigned k = 0; k < 12; k++)
        cdb[k] = (uint8_t) g_rand_int (rand);
      cdb[0] = ops[g_rand_int_range (rand, 0, G_N_ELEMENTS (ops))];
      if (g_rand_boolean (rand))
        cdb[2] = cdb[3] = cdb[4] = cdb[6] = cdb[7] = 0; /* in range more */
      if (cdb[0] == 0x1b)
        cdb[4] &= ~0x02; /* keep the disc in */
      bool dma = g_rand_int_range (rand, 0, 4) == 0;
      uint16_t limit = (uint16_t) g_rand_int (rand);
      tu_outb (f->pio, S + 6, 0xa0);
      tu_outb (f->pio, S + 1, dma);
      tu_outb (f->pio, S + 4, limit & 0xff);
      tu_outb (f->pio, S + 5, limit >> 8);
      tu_outb (f->pio, S + 7, 0xa0);
      for (unsigned k = 0; k < 12; k += 2)
        tu_outw (f->pio, S, (uint16_t) (cdb[k] | cdb[k + 1] << 8));
      if (dma)
        {
          tu_outb (f->pio, BM2, 0x09);
          wait_ready (f);
          tu_outb (f->pio, BM2, 0x08);
        }
      /* Read some of the data, sometimes all, sometimes abandon it. */
      unsigned reads = g_rand_int_range (rand, 0, 3) == 0
                           ? 1u << 20
                           : (unsigned) g_rand_int_range (rand, 0, 64);
      for (unsigned k = 0; k < reads && (tu_inb (f->pio, SCTL) & DRQ); k++)
        tu_inl (f->pio, S);
      if (g_rand_int_range (rand, 0, 50) == 0)
        {
          tu_outb (f->pio, S + 7, 0x08); /* DEVICE RESET */
          tu_outb (f->pio, S + 7, 0x08);
        }
      if (g_rand_int_range (rand, 0, 200) == 0)
        {
          g_autoptr (GError) error = NULL;
          atapi_eject (f->cd, TRUE, NULL);
          g_assert_true (atapi_insert (f->cd, open_iso (f->iso), &error));
        }
    }
  tu_outb (f->pio, BM2, 0);
  ide_drain (f->ide);
  tu_outb (f->pio, S + 7, 0x08);
  static const uint8_t tur[12] = { 0 };
  unsigned tries = 0;
  while (run (f, tur, buf, 16, NULL) != 0)
    g_assert_cmpuint (++tries, <, 3);
  uint8_t r10[12] = { 0x28, 0, 0, 0, 0, 1, 0, 0, 2 };
  g_assert_true (packet (f, r10, 0xfffe, false) & DRQ);
  g_assert_cmpuint (read_reply (f, buf, 1 << 20, NULL), ==, 4096);
  check_sectors (buf, 1, 2);
}

static void
test_state (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree uint8_t *buf = g_malloc0 (4 * 2048);
  clear_unit_attention (f);
  uint8_t lock[12] = { 0x1e, 0, 0, 0, 1 };
  g_assert_cmpuint (run (f, lock, buf, 8, NULL), ==, 0);
  /* Mid-chunk of a 4-sector READ(10) with 2 KiB chunks. */
  uint8_t cdb[12] = { 0x28, 0, 0, 0, 0, 7, 0, 0, 4 };
  g_assert_true (packet (f, cdb, 2048, false) & DRQ);
  for (unsigned i = 0; i < 2048 + 1000; i += 2)
    {
      uint16_t w = tu_inw (f->pio, S);
      buf[i] = w & 0xff;
      buf[i + 1] = w >> 8;
    }
  g_autoptr (GByteArray) blob = g_byte_array_new ();
  vmm_device *dev = ide_device (f->ide);
  dev->ops->save_state (dev, blob);

  vmm_pci_host_free (f->host);
  vmm_device_destroy (dev);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  attach (f, true);
  dev = ide_device (f->ide);
  dev->ops->load_state (dev, blob->data, blob->len, &error);
  g_assert_no_error (error);
  g_assert_true (atapi_is_locked (f->cd));
  for (unsigned i = 2048 + 1000; i < 4096; i += 2)
    {
      uint16_t w = tu_inw (f->pio, S);
      buf[i] = w & 0xff;
      buf[i + 1] = w >> 8;
    }
  unsigned len = read_reply (f, buf + 4096, 4096, NULL);
  g_assert_cmpuint (len, ==, 4096);
  check_sectors (buf, 7, 4);

  /* Garbage. */
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);
  for (guint n = 0; n < blob->len; n += 1 + n / 4)
    {
      g_assert_false (dev->ops->load_state (dev, blob->data, n, &error));
      g_clear_error (&error);
    }
  for (unsigned i = 0; i < 2000; i++)
    {
      g_autoptr (GByteArray) bad = g_byte_array_new ();
      g_byte_array_append (bad, blob->data, blob->len);
      for (unsigned k = 0; k < 3; k++)
        bad->data[g_rand_int_range (rand, 6, (gint32) bad->len)]
            = (uint8_t) g_rand_int (rand);
      if (dev->ops->load_state (dev, bad->data, bad->len, &error))
        {
          for (unsigned k = 0; k < 4096; k++)
            tu_inw (f->pio, S);
          tu_outb (f->pio, BM2, 0x09);
          tu_outb (f->pio, BM2, 0x00);
          ide_drain (f->ide);
        }
      g_clear_error (&error);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) \
  g_test_add ("/atapi/" name, fixture, NULL, setup, fn, teardown)
  ADD ("identify", test_identify);
  ADD ("inquiry", test_inquiry);
  ADD ("tur-capacity", test_tur_and_capacity);
  ADD ("read-pio", test_read_pio);
  ADD ("read-dma", test_read_dma);
  ADD ("toc", test_toc);
  ADD ("config-events-media-change", test_config_and_events);
  ADD ("mode-sense", test_mode_sense);
  ADD ("lock-eject", test_lock_and_eject);
  ADD ("misc", test_misc);
  g_test_add ("/atapi/empty-drive", fixture, "empty", setup,
              test_empty_drive, teardown);
  ADD ("eject-in-flight", test_eject_in_flight);
  ADD ("fuzz", test_fuzz);
  ADD ("state", test_state);
  return g_test_run ();
}
