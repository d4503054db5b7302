/* PIIX3 IDE: the controller, the ATA command set and the ATAPI transport.
 * References: Intel 82371FB/SB PIIX/PIIX3 datasheet (290550-002) 2.4 "IDE
 * configuration registers" and 2.7.9 "Bus master IDE I/O registers";
 * ATA/ATAPI-6 (T13/1410D) for the task file, the protocols (PIO data-in/
 * data-out, DMA, PACKET, device reset) and the commands; the Programming
 * Interface for Bus Master IDE Controller 1.0 (SFF-8038i) for PRD tables.
 *
 * Per channel both devices latch every task-file write (ATA-6 7.1); the
 * selected one (DEV bit) executes commands and drives INTRQ. PIO data moves
 * through a per-device buffer one DRQ block at a time with synchronous block
 * I/O; DMA hands the PRDs' guest buffers to the block layer (which moves
 * the data straight through the kernel, or through its own bounce buffer
 * on a worker), submitted asynchronously and completed on the I/O context. */
#include "vmm-core/devices/ide.h"

#include <gio/gio.h>
#include <sys/uio.h>

#include "vmm-core/devices/devstate.h"

/* Status, error, device control (ATA-6 7.x). */
enum {
  ST_ERR = 0x01,
  ST_DRQ = 0x08,
  ST_DSC = 0x10,
  ST_DRDY = 0x40,
  ST_BSY = 0x80,
  ER_ABRT = 0x04,
  ER_IDNF = 0x10,
  ER_UNC = 0x40,
  DC_NIEN = 0x02,
  DC_SRST = 0x04,
  DC_HOB = 0x80,
  DH_LBA = 0x40,
  DH_DEV = 0x10,
  /* ATAPI interrupt reason in the sector count register. */
  IR_COD = 0x01,
  IR_IO = 0x02,
};

/* Bus-master IDE registers (PIIX3 2.7.9). */
enum {
  BM_CMD_START = 0x01,
  BM_CMD_TO_MEMORY = 0x08,
  BM_ST_ACTIVE = 0x01,
  BM_ST_ERROR = 0x02,
  BM_ST_INTR = 0x04,
  BM_ST_DRV_DMA = 0x60, /* drive 0/1 DMA capable: plain storage */
};

/* Commands (ATA-6 clause 8). */
enum {
  CMD_DEVICE_RESET = 0x08,
  CMD_READ_SECTORS = 0x20,
  CMD_READ_SECTORS_NR = 0x21,
  CMD_READ_SECTORS_EXT = 0x24,
  CMD_READ_DMA_EXT = 0x25,
  CMD_READ_NATIVE_MAX_EXT = 0x27,
  CMD_READ_MULTIPLE_EXT = 0x29,
  CMD_WRITE_SECTORS = 0x30,
  CMD_WRITE_SECTORS_NR = 0x31,
  CMD_WRITE_SECTORS_EXT = 0x34,
  CMD_WRITE_DMA_EXT = 0x35,
  CMD_WRITE_MULTIPLE_EXT = 0x39,
  CMD_READ_VERIFY = 0x40,
  CMD_READ_VERIFY_NR = 0x41,
  CMD_READ_VERIFY_EXT = 0x42,
  CMD_SEEK = 0x70,
  CMD_EXECUTE_DIAGNOSTIC = 0x90,
  CMD_INITIALIZE_PARAMS = 0x91,
  CMD_PACKET = 0xa0,
  CMD_IDENTIFY_PACKET = 0xa1,
  CMD_READ_MULTIPLE = 0xc4,
  CMD_WRITE_MULTIPLE = 0xc5,
  CMD_SET_MULTIPLE = 0xc6,
  CMD_READ_DMA = 0xc8,
  CMD_READ_DMA_NR = 0xc9,
  CMD_WRITE_DMA = 0xca,
  CMD_WRITE_DMA_NR = 0xcb,
  CMD_STANDBY_IMMEDIATE = 0xe0,
  CMD_IDLE_IMMEDIATE = 0xe1,
  CMD_STANDBY = 0xe2,
  CMD_IDLE = 0xe3,
  CMD_CHECK_POWER_MODE = 0xe5,
  CMD_SLEEP = 0xe6,
  CMD_FLUSH_CACHE = 0xe7,
  CMD_FLUSH_CACHE_EXT = 0xea,
  CMD_IDENTIFY = 0xec,
  CMD_SET_FEATURES = 0xef,
  CMD_READ_NATIVE_MAX = 0xf8,
};

#define IDE_BUF_SIZE (16 * ATAPI_SECTOR_SIZE)
#define MAX_MULTIPLE 16
#define ATAPI_PIO_SECTORS (IDE_BUF_SIZE / ATAPI_SECTOR_SIZE)
/* A PRD table may not cross a 64 KiB boundary: at most 8192 entries. */
#define PRD_MAX_ENTRIES 8192
#define LBA28_MAX (UINT64_C (1) << 28)
#define LBA48_MAX (UINT64_C (1) << 48)

typedef enum { KIND_NONE, KIND_DISK, KIND_CDROM } drive_kind;

typedef enum {
  XFER_NONE,
  XFER_PIO_IN,  /* the guest reads buf[pos, end) */
  XFER_PIO_OUT, /* the guest writes buf[pos, end) */
  XFER_DMA,     /* waiting for the bus master, or in flight */
  XFER_BUSY,    /* a flush in flight */
  XFER_LAST = XFER_BUSY,
} xfer_state;

/* What ends a PIO block. */
typedef enum {
  PIO_SIMPLE,     /* IDENTIFY: the command ends */
  PIO_ATA_READ,
  PIO_ATA_WRITE,
  PIO_PACKET,     /* the 12 command bytes */
  PIO_ATAPI_DATA, /* a data-in chunk */
  PIO_LAST = PIO_ATAPI_DATA,
} pio_kind;

typedef struct ide_channel ide_channel;

typedef struct ide_drive {
  ide_channel *ch;
  unsigned unit;
  drive_kind kind;
  VmmBlock *bs;
  atapi_cdrom *cd;
  uint64_t sectors;
  bool read_only;
  char serial[21];

  /* Task file (this device's latch of it). */
  uint8_t feature, nsect, lbal, lbam, lbah;
  uint8_t hob_feature, hob_nsect, hob_lbal, hob_lbam, hob_lbah;
  uint8_t select;
  uint8_t status, error;
  bool intrq;
  /* Settings. */
  uint8_t mult;     /* sectors per READ/WRITE MULTIPLE block, 0 = off */
  bool write_cache;
  uint8_t xfer_mode; /* SET FEATURES 03h value */
  uint8_t heads, sects; /* CHS translation */
  /* The current transfer. */
  uint8_t cmd;
  uint8_t xfer;
  uint8_t pio;
  uint32_t pos, end, filled;
  uint64_t lba;       /* next sector */
  uint32_t remaining; /* sectors, including the current block */
  uint32_t block;     /* sectors in the current block */
  uint32_t per_block; /* sectors per DRQ block for this command */
  bool lba48;
  unsigned flush_gen; /* bumped to disown an in-flight flush */
  /* DMA command waiting for or using the bus master. */
  uint64_t dma_lba;
  uint32_t dma_sectors; /* ATA 512-byte or ATAPI 2048-byte sectors */
  uint32_t dma_bytes;   /* ATAPI data reply in buf */
  bool dma_write;
  /* ATAPI. */
  uint8_t packet[ATAPI_CDB_SIZE];
  bool atapi_dma;
  uint16_t byte_limit;
  uint32_t atapi_left; /* sectors not yet loaded into buf */
  uint8_t buf[IDE_BUF_SIZE];
} ide_drive;

struct ide_channel {
  ide_controller *ide;
  unsigned index;
  vmm_irq irq;
  bool irq_level;
  uint8_t ctl;
  unsigned sel;
  uint8_t bm_cmd, bm_status;
  uint32_t prd_addr;
  int dma_unit;  /* drive with a DMA command, or -1 */
  bool dma_busy; /* a request of it is in flight */
  unsigned gen;  /* bumped to disown in-flight requests (dma_disown) */
  /* The image a DMA read of the current generation is reading into guest
   * memory, while it is in flight (dma_disown waits for it). */
  VmmBlock *reading_bs;
  bool logged_prd_error;
  ide_drive drive[IDE_NUM_UNITS];
};

struct ide_controller {
  vmm_device dev;
  vmm_pci_device pci;
  const vmm_guest_memory *mem;
  GMainContext *io_context;
  vmm_bus *pio;
  bool attached;
  /* Where the bus-master block is claimed on @pio. The BAR is declared to
   * the PCI core without handlers and claimed here, so that a loaded state
   * can re-decode it from config space. */
  uint64_t bm_at;
  unsigned in_flight;
  GCond idle;
  ide_channel ch[IDE_NUM_CHANNELS];
};

static const uint16_t legacy_base[IDE_NUM_CHANNELS] = { 0x1f0, 0x170 };
static const uint16_t legacy_ctl[IDE_NUM_CHANNELS] = { 0x3f6, 0x376 };

/* ---- interrupts and status ---- */

static bool
channel_empty (const ide_channel *ch)
{
  return ch->drive[0].kind == KIND_NONE && ch->drive[1].kind == KIND_NONE;
}

static ide_drive *
selected (ide_channel *ch)
{
  return &ch->drive[ch->sel];
}

static void
update_irq (ide_channel *ch)
{
  bool level = selected (ch)->intrq && !(ch->ctl & DC_NIEN);
  if (level != ch->irq_level)
    {
      ch->irq_level = level;
      vmm_irq_set (&ch->irq, level);
    }
}

static void
raise_irq (ide_drive *d)
{
  ide_channel *ch = d->ch;
  d->intrq = true;
  if (!(ch->ctl & DC_NIEN) && d == selected (ch))
    ch->bm_status |= BM_ST_INTR;
  update_irq (ch);
}

static void
set_signature (ide_drive *d)
{
  d->nsect = d->lbal = 1;
  d->lbam = d->kind == KIND_CDROM ? 0x14 : 0x00;
  d->lbah = d->kind == KIND_CDROM ? 0xeb : 0x00;
  d->hob_nsect = d->hob_lbal = d->hob_lbam = d->hob_lbah = 0;
  d->select &= 0xf0;
}

/* Disowns the channel's DMA request in flight: its completion will find a
 * newer generation and drop it. A read lands in guest memory as it
 * completes and cannot be dropped, so this waits until its data has landed: after a
 * reset or a cancelled command the guest's memory no longer changes under
 * it (as on hardware, where the bus master stops). */
static void
dma_disown (ide_channel *ch)
{
  if (ch->reading_bs)
    {
      vmm_block_wait_transfers (ch->reading_bs);
      ch->reading_bs = NULL;
    }
  ch->gen++;
}

static void
end_transfer (ide_drive *d)
{
  if (d->xfer == XFER_BUSY)
    d->flush_gen++;
  d->xfer = XFER_NONE;
  d->pos = d->end = d->filled = 0;
  if (d->ch->dma_unit == (int) d->unit)
    {
      d->ch->dma_unit = -1;
      d->ch->dma_busy = false;
      dma_disown (d->ch);
    }
}

static void
command_ok (ide_drive *d)
{
  end_transfer (d);
  d->status = ST_DRDY | ST_DSC;
  d->error = 0;
  raise_irq (d);
}

static void
command_error (ide_drive *d, uint8_t error)
{
  end_transfer (d);
  d->status = ST_DRDY | ST_ERR;
  d->error = error;
  raise_irq (d);
}

/* ---- task file addressing ---- */

static uint32_t
tf_count (const ide_drive *d, bool lba48)
{
  if (lba48)
    {
      uint32_t n = d->nsect | (uint32_t) d->hob_nsect << 8;
      return n ? n : 65536;
    }
  return d->nsect ? d->nsect : 256;
}

/* The starting sector, or UINT64_MAX for a CHS address outside the
 * geometry. */
static uint64_t
tf_lba (const ide_drive *d, bool lba48)
{
  if (lba48)
    return d->lbal | (uint64_t) d->lbam << 8 | (uint64_t) d->lbah << 16
           | (uint64_t) d->hob_lbal << 24 | (uint64_t) d->hob_lbam << 32
           | (uint64_t) d->hob_lbah << 40;
  if (d->select & DH_LBA)
    return d->lbal | (uint64_t) d->lbam << 8 | (uint64_t) d->lbah << 16
           | (uint64_t) (d->select & 0x0f) << 24;
  unsigned cyl = d->lbam | d->lbah << 8;
  unsigned head = d->select & 0x0f;
  unsigned sect = d->lbal;
  if (sect == 0 || sect > d->sects || head >= d->heads)
    return UINT64_MAX;
  return ((uint64_t) cyl * d->heads + head) * d->sects + sect - 1;
}

/* Leaves the address of @lba in the task file (the last sector transferred
 * or the one in error). */
static void
tf_set_lba (ide_drive *d, uint64_t lba, bool lba48)
{
  if (lba48)
    {
      d->lbal = lba & 0xff;
      d->lbam = (lba >> 8) & 0xff;
      d->lbah = (lba >> 16) & 0xff;
      d->hob_lbal = (lba >> 24) & 0xff;
      d->hob_lbam = (lba >> 32) & 0xff;
      d->hob_lbah = (lba >> 40) & 0xff;
    }
  else if (d->select & DH_LBA)
    {
      d->lbal = lba & 0xff;
      d->lbam = (lba >> 8) & 0xff;
      d->lbah = (lba >> 16) & 0xff;
      d->select = (d->select & 0xf0) | ((lba >> 24) & 0x0f);
    }
  else
    {
      uint64_t per_cyl = (uint64_t) d->heads * d->sects;
      uint64_t cyl = MIN (lba / per_cyl, 0xffff);
      unsigned rest = (unsigned) (lba - cyl * per_cyl);
      d->lbam = cyl & 0xff;
      d->lbah = (cyl >> 8) & 0xff;
      d->select = (d->select & 0xf0) | ((rest / d->sects) & 0x0f);
      d->lbal = rest % d->sects + 1;
    }
}

static void
default_geometry (ide_drive *d)
{
  d->heads = 16;
  d->sects = 63;
}

static unsigned
geometry_cyls (const ide_drive *d, unsigned max)
{
  uint64_t c = d->sectors / ((uint64_t) d->heads * d->sects);
  return (unsigned) MIN (c, max);
}

/* ---- IDENTIFY ---- */

static void
id_string (uint16_t *w, unsigned word, unsigned words, const char *s)
{
  /* Two characters per word, the first in the high byte, space padded. */
  size_t n = strlen (s);
  for (unsigned i = 0; i < words * 2; i++)
    {
      uint8_t c = i < n ? (uint8_t) s[i] : ' ';
      if (i & 1)
        w[word + i / 2] |= c;
      else
        w[word + i / 2] = (uint16_t) (c << 8);
    }
}

static void
id_finish (ide_drive *d, const uint16_t *w)
{
  for (unsigned i = 0; i < 256; i++)
    vmm_pci_put16 (d->buf + 2 * i, w[i]);
}

static uint16_t
dma_mode_word (uint8_t supported, uint8_t mode_base, uint8_t xfer_mode)
{
  uint16_t w = supported;
  if ((xfer_mode & 0xf8) == mode_base)
    w |= (uint16_t) (1u << (8 + (xfer_mode & 7)));
  return w;
}

static void
identify_disk (ide_drive *d)
{
  uint16_t w[256] = { 0 };
  uint64_t lba28 = MIN (d->sectors, LBA28_MAX - 1);
  unsigned cyls = geometry_cyls (d, 16383);

  w[0] = 0x0040; /* fixed device */
  w[1] = (uint16_t) MIN (d->sectors / (16 * 63), 16383);
  w[3] = 16;
  w[6] = 63;
  id_string (w, 10, 10, d->serial);
  id_string (w, 23, 4, "1.0");
  id_string (w, 27, 20, "Vessel HARDDISK");
  w[47] = 0x8000 | MAX_MULTIPLE;
  w[49] = 0x0f00; /* IORDY, IORDY may be disabled, LBA, DMA */
  w[50] = 0x4000;
  w[51] = w[52] = 0x0200;
  w[53] = 0x0007; /* words 54-58, 64-70 and 88 are valid */
  w[54] = (uint16_t) cyls;
  w[55] = d->heads;
  w[56] = d->sects;
  uint32_t chs = (uint32_t) cyls * d->heads * d->sects;
  w[57] = chs & 0xffff;
  w[58] = chs >> 16;
  w[59] = d->mult ? 0x0100 | d->mult : 0;
  w[60] = lba28 & 0xffff;
  w[61] = (uint16_t) (lba28 >> 16);
  w[63] = dma_mode_word (0x07, 0x20, d->xfer_mode);
  w[64] = 0x0003; /* PIO 3 and 4 */
  w[65] = w[66] = w[67] = w[68] = 120;
  w[80] = 0x00f0; /* ATA-4 to ATA-7 */
  w[82] = 0x4068; /* power management, write cache, look-ahead */
  w[83] = 0x7400; /* LBA48, FLUSH CACHE, FLUSH CACHE EXT */
  w[84] = 0x4000;
  w[85] = 0x4048 | (d->write_cache ? 0x0020 : 0);
  w[86] = 0x3400;
  w[87] = 0x4000;
  w[88] = dma_mode_word (0x3f, 0x40, d->xfer_mode);
  w[93] = 0x6001; /* 80-conductor cable detected, device 0 passed */
  w[100] = d->sectors & 0xffff;
  w[101] = (d->sectors >> 16) & 0xffff;
  w[102] = (d->sectors >> 32) & 0xffff;
  w[103] = 0;
  id_finish (d, w);
}

static void
identify_packet (ide_drive *d)
{
  uint16_t w[256] = { 0 };
  /* ATAPI, CD-ROM class, removable, DRQ within 50 us, 12-byte packets. */
  w[0] = 0x85c0;
  id_string (w, 10, 10, d->serial);
  id_string (w, 23, 4, "1.0");
  id_string (w, 27, 20, "Vessel DVD-ROM");
  w[49] = 0x0f00;
  w[53] = 0x0007;
  w[63] = dma_mode_word (0x07, 0x20, d->xfer_mode);
  w[64] = 0x0003;
  w[65] = w[66] = w[67] = w[68] = 120;
  w[71] = 30;
  w[72] = 30;
  w[80] = 0x001e; /* ATA/ATAPI-1 to -4 */
  w[88] = dma_mode_word (0x3f, 0x40, d->xfer_mode);
  w[93] = 0x6001;
  id_finish (d, w);
}

/* ---- PIO ---- */

static void
pio_start (ide_drive *d, xfer_state dir, pio_kind kind, uint32_t len,
           bool irq)
{
  d->xfer = dir;
  d->pio = kind;
  d->pos = 0;
  d->end = len;
  d->status = ST_DRDY | ST_DSC | ST_DRQ;
  if (irq)
    raise_irq (d);
}

static bool
disk_io (ide_drive *d, bool write, uint64_t lba, uint32_t n, uint8_t *buf)
{
  g_autoptr (GError) error = NULL;
  if (lba > d->sectors || n > d->sectors - lba)
    return false;
  uint64_t off = lba * IDE_SECTOR_SIZE;
  size_t len = (size_t) n * IDE_SECTOR_SIZE;
  bool ok = write ? vmm_block_write (d->bs, off, buf, len, &error)
                  : vmm_block_read (d->bs, off, buf, len, &error);
  if (ok && write && !d->write_cache)
    ok = vmm_block_flush (d->bs, &error);
  if (!ok)
    g_debug ("ide: %s at sector %" G_GUINT64_FORMAT ": %s",
             write ? "write" : "read", lba, error->message);
  return ok;
}

static void
ata_read_block (ide_drive *d)
{
  uint32_t n = MIN (d->remaining, d->per_block);
  if (!disk_io (d, false, d->lba, n, d->buf))
    {
      tf_set_lba (d, d->lba, d->lba48);
      command_error (d, ER_UNC | ER_ABRT);
      return;
    }
  d->block = n;
  pio_start (d, XFER_PIO_IN, PIO_ATA_READ, n * IDE_SECTOR_SIZE, true);
}

static void
ata_write_block_start (ide_drive *d, bool irq)
{
  d->block = MIN (d->remaining, d->per_block);
  pio_start (d, XFER_PIO_OUT, PIO_ATA_WRITE, d->block * IDE_SECTOR_SIZE, irq);
}

static void atapi_start_chunk (ide_drive *d);
static void atapi_run_packet (ide_drive *d);

/* The guest has moved the whole of buf[.., end). */
static void
pio_block_done (ide_drive *d)
{
  switch (d->pio)
    {
    case PIO_SIMPLE:
      end_transfer (d);
      d->status = ST_DRDY | ST_DSC;
      break;
    case PIO_ATA_READ:
      d->lba += d->block;
      d->remaining -= d->block;
      if (d->remaining)
        ata_read_block (d);
      else
        {
          tf_set_lba (d, d->lba - 1, d->lba48);
          end_transfer (d);
          d->status = ST_DRDY | ST_DSC;
        }
      break;
    case PIO_ATA_WRITE:
      if (!disk_io (d, true, d->lba, d->block, d->buf))
        {
          tf_set_lba (d, d->lba, d->lba48);
          command_error (d, ER_ABRT);
          return;
        }
      d->lba += d->block;
      d->remaining -= d->block;
      if (d->remaining)
        ata_write_block_start (d, true);
      else
        {
          tf_set_lba (d, d->lba - 1, d->lba48);
          command_ok (d);
        }
      break;
    case PIO_PACKET:
      atapi_run_packet (d);
      break;
    case PIO_ATAPI_DATA:
      if (d->pos < d->filled || d->atapi_left)
        atapi_start_chunk (d);
      else
        {
          end_transfer (d);
          d->status = ST_DRDY | ST_DSC;
          d->nsect = IR_IO | IR_COD;
          d->error = 0;
          raise_irq (d);
        }
      break;
    }
}

static uint64_t
data_read (ide_channel *ch, unsigned size)
{
  ide_drive *d = selected (ch);
  uint64_t v = 0;
  if (d->xfer != XFER_PIO_IN)
    return 0;
  for (unsigned i = 0; i < size; i++)
    if (d->pos < d->end)
      v |= (uint64_t) d->buf[d->pos++] << (8 * i);
  if (d->pos >= d->end)
    pio_block_done (d);
  return v;
}

static void
data_write (ide_channel *ch, unsigned size, uint64_t v)
{
  ide_drive *d = selected (ch);
  if (d->xfer != XFER_PIO_OUT)
    return;
  for (unsigned i = 0; i < size; i++)
    if (d->pos < d->end)
      d->buf[d->pos++] = (v >> (8 * i)) & 0xff;
  if (d->pos >= d->end)
    pio_block_done (d);
}

/* ---- bus-master DMA ---- */

typedef struct dma_seg {
  uint8_t *host;
  uint32_t len;
} dma_seg;

typedef struct dma_request {
  ide_channel *ch;
  ide_drive *d;
  unsigned gen;
  VmmBlock *bs;
  bool atapi;
  bool write;
  bool flushing;
  bool prd_longer; /* the PRDs describe more than the transfer */
  uint64_t disk_off;
  uint64_t len;
  GArray *segs;
} dma_request;

/* Walks the PRD table for @bytes, every entry and buffer through the one
 * guest-memory check. False on a table or buffer outside RAM, or PRDs that
 * end (or never end) before the transfer does. */
static bool
prd_walk (ide_channel *ch, uint64_t bytes, GArray *segs, bool *longer)
{
  const vmm_guest_memory *mem = ch->ide->mem;
  uint64_t table = ch->prd_addr & ~UINT32_C (3);
  uint64_t done = 0;
  *longer = false;
  for (unsigned i = 0; i < PRD_MAX_ENTRIES; i++)
    {
      const uint8_t *e = mem ? vmm_guest_memory_ptr (mem, table + 8 * i, 8)
                             : NULL;
      if (!e)
        return false;
      uint32_t base = vmm_pci_get32 (e) & ~UINT32_C (1);
      uint32_t flags = vmm_pci_get32 (e + 4);
      uint32_t count = flags & 0xfffe;
      if (!count)
        count = 65536;
      uint64_t take = MIN (count, bytes - done);
      if (take)
        {
          uint8_t *p = vmm_guest_memory_ptr (mem, base, take);
          if (!p)
            return false;
          dma_seg s = { p, (uint32_t) take };
          g_array_append_val (segs, s);
          done += take;
        }
      if (take < count)
        *longer = true;
      if (done == bytes)
        {
          if (!(flags & 0x80000000u))
            *longer = true;
          return true;
        }
      if (flags & 0x80000000u)
        return false;
    }
  return false;
}

/* The segments as host buffers, each run that continues in host memory
 * merged into one; returns how many (*iov is g_malloc'd). */
static unsigned
dma_segs_iovec (GArray *segs, struct iovec **iov)
{
  *iov = g_new (struct iovec, MAX (segs->len, 1));
  unsigned n = 0;
  for (guint i = 0; i < segs->len; i++)
    {
      const dma_seg *s = &g_array_index (segs, dma_seg, i);
      if (n && (uint8_t *) (*iov)[n - 1].iov_base + (*iov)[n - 1].iov_len
                   == s->host)
        (*iov)[n - 1].iov_len += s->len;
      else
        (*iov)[n++] = (struct iovec){ s->host, s->len };
    }
  return n;
}

static void
dma_request_free (dma_request *req)
{
  if (req->atapi && req->bs)
    atapi_end_io (req->d->cd, req->bs);
  g_array_unref (req->segs);
  g_free (req);
}

/* The DMA transfer of the channel's command has ended. A failed ATAPI
 * transfer that is not a PRD error has its sense set by the caller. */
static void
dma_finish (ide_channel *ch, ide_drive *d, bool ok, bool prd_longer,
            bool prd_error)
{
  ch->dma_busy = false;
  if (prd_error)
    ch->bm_status |= BM_ST_ERROR;
  if (!prd_longer || !ok)
    ch->bm_status &= ~BM_ST_ACTIVE;
  if (d->kind == KIND_CDROM)
    {
      end_transfer (d);
      d->nsect = IR_IO | IR_COD;
      if (ok)
        {
          d->status = ST_DRDY | ST_DSC;
          d->error = 0;
        }
      else
        {
          if (prd_error)
            atapi_set_sense (d->cd, 0x0b, 0x00, 0x00); /* aborted command */
          d->status = ST_DRDY | ST_ERR;
          d->error = (uint8_t) (atapi_sense_key (d->cd) << 4) | ER_ABRT;
        }
      raise_irq (d);
      return;
    }
  if (ok)
    {
      tf_set_lba (d, d->dma_lba + d->dma_sectors - 1, d->lba48);
      command_ok (d);
    }
  else
    {
      tf_set_lba (d, d->dma_lba, d->lba48);
      command_error (d, prd_error || d->dma_write ? ER_ABRT
                                                  : ER_UNC | ER_ABRT);
    }
}

static void dma_complete (VmmBlock *bs, gboolean ok, const GError *error,
                          gpointer user_data);

/* Submits the transfer, or the flush after a write with the write cache
 * off. The block layer moves the data between the image and the guest's
 * buffers itself: straight through the kernel where it can (O_DIRECT when
 * aligned), else through its bounce buffer on its worker thread. */
static void
dma_submit (dma_request *req, VmmBlockOp op)
{
  ide_controller *ide = req->ch->ide;
  ide->in_flight++;
  vmm_block_set_completion_context (req->bs, ide->io_context);
  if (op == VMM_BLOCK_OP_FLUSH)
    {
      vmm_block_submit (req->bs, op, 0, NULL, 0, dma_complete, req);
      return;
    }
  if (op == VMM_BLOCK_OP_READ)
    req->ch->reading_bs = req->bs;
  g_autofree struct iovec *iov = NULL;
  unsigned n = dma_segs_iovec (req->segs, &iov);
  vmm_block_submitv (req->bs, op, req->disk_off, iov, n, dma_complete, req);
}

static void
dma_complete (VmmBlock *bs, gboolean ok, const GError *error,
              gpointer user_data)
{
  dma_request *req = user_data;
  ide_channel *ch = req->ch;
  ide_controller *ide = ch->ide;

  g_mutex_lock (&ide->dev.lock);
  ide->in_flight--;
  if (!ok)
    g_debug ("%s: DMA %s failed: %s", ide->dev.name,
             req->write ? "write" : "read", error ? error->message : "?");
  if (req->gen == ch->gen && !req->write)
    ch->reading_bs = NULL;
  if (req->gen != ch->gen)
    dma_request_free (req); /* reset or cancelled meanwhile */
  else if (!ok)
    {
      if (req->atapi)
        atapi_set_sense (req->d->cd, 0x03, 0x11, 0x00); /* read error */
      dma_finish (ch, req->d, false, false, false);
      dma_request_free (req);
    }
  else if (!req->flushing)
    {
      if (req->write && !req->d->write_cache)
        {
          req->flushing = true;
          dma_submit (req, VMM_BLOCK_OP_FLUSH);
        }
      else
        {
          dma_finish (ch, req->d, true, req->prd_longer, false);
          dma_request_free (req);
        }
    }
  else
    {
      dma_finish (ch, req->d, true, req->prd_longer, false);
      dma_request_free (req);
    }
  if (ide->in_flight == 0)
    g_cond_broadcast (&ide->idle);
  g_mutex_unlock (&ide->dev.lock);
}

static void
dma_prd_error (ide_channel *ch, ide_drive *d)
{
  if (!ch->logged_prd_error)
    {
      ch->logged_prd_error = true;
      g_info ("%s: channel %u: PRD table at 0x%x is outside guest RAM or "
              "shorter than the transfer; failing the command",
              ch->ide->dev.name, ch->index, ch->prd_addr);
    }
  dma_finish (ch, d, false, false, true);
}

/* Runs the channel's DMA command once the guest has also set START. */
static void
dma_try_start (ide_channel *ch)
{
  if (ch->dma_unit < 0 || ch->dma_busy || !(ch->bm_cmd & BM_CMD_START))
    return;
  ide_drive *d = &ch->drive[ch->dma_unit];
  bool atapi = d->kind == KIND_CDROM;
  unsigned sector = atapi ? ATAPI_SECTOR_SIZE : IDE_SECTOR_SIZE;
  uint64_t len = atapi && !d->dma_sectors
                     ? d->dma_bytes
                     : (uint64_t) d->dma_sectors * sector;
  g_autoptr (GArray) segs = g_array_new (FALSE, FALSE, sizeof (dma_seg));
  bool longer;

  if (!prd_walk (ch, len, segs, &longer))
    {
      dma_prd_error (ch, d);
      return;
    }
  if (atapi && !d->dma_sectors)
    {
      /* A command's reply, already built: no disk I/O. */
      uint64_t off = 0;
      for (guint i = 0; i < segs->len; i++)
        {
          dma_seg *s = &g_array_index (segs, dma_seg, i);
          memcpy (s->host, d->buf + off, s->len);
          off += s->len;
        }
      dma_finish (ch, d, true, longer, false);
      return;
    }

  VmmBlock *bs = atapi ? atapi_begin_io (d->cd) : d->bs;
  uint64_t limit = atapi ? (bs ? vmm_block_size (bs) / sector : 0)
                         : d->sectors;
  if (!bs || d->dma_lba > limit || d->dma_sectors > limit - d->dma_lba)
    {
      if (atapi && bs)
        atapi_end_io (d->cd, bs);
      if (atapi)
        atapi_set_sense (d->cd, bs ? 0x05 : 0x02, bs ? 0x21 : 0x3a, 0x00);
      dma_finish (ch, d, false, false, false);
      return;
    }
  dma_request *req = g_new0 (dma_request, 1);
  req->ch = ch;
  req->d = d;
  req->gen = ch->gen;
  req->bs = bs;
  req->atapi = atapi;
  req->write = d->dma_write;
  req->prd_longer = longer;
  req->disk_off = d->dma_lba * sector;
  req->len = len;
  req->segs = g_steal_pointer (&segs);
  ch->dma_busy = true;
  dma_submit (req, req->write ? VMM_BLOCK_OP_WRITE : VMM_BLOCK_OP_READ);
}

/* A DMA command was issued to @d: waits for the bus master's START. */
static void
dma_begin (ide_drive *d, uint64_t lba, uint32_t sectors, uint32_t bytes,
           bool write)
{
  ide_channel *ch = d->ch;
  if (ch->dma_unit >= 0 && ch->dma_unit != (int) d->unit)
    end_transfer (&ch->drive[ch->dma_unit]);
  d->dma_lba = lba;
  d->dma_sectors = sectors;
  d->dma_bytes = bytes;
  d->dma_write = write;
  d->xfer = XFER_DMA;
  d->status = ST_DRDY | ST_DSC | ST_BSY;
  ch->dma_unit = (int) d->unit;
  ch->dma_busy = false;
  dma_try_start (ch);
}

/* ---- flush ---- */

typedef struct flush_request {
  ide_channel *ch;
  ide_drive *d;
  unsigned gen; /* the drive's flush_gen */
} flush_request;

static void
flush_done (VmmBlock *bs, gboolean ok, const GError *error,
            gpointer user_data)
{
  flush_request *req = user_data;
  ide_controller *ide = req->ch->ide;
  g_mutex_lock (&ide->dev.lock);
  ide->in_flight--;
  if (req->gen == req->d->flush_gen && req->d->xfer == XFER_BUSY)
    {
      if (ok)
        command_ok (req->d);
      else
        command_error (req->d, ER_ABRT);
    }
  if (ide->in_flight == 0)
    g_cond_broadcast (&ide->idle);
  g_mutex_unlock (&ide->dev.lock);
  g_free (req);
}

static void
ata_flush (ide_drive *d)
{
  ide_controller *ide = d->ch->ide;
  flush_request *req = g_new0 (flush_request, 1);
  req->ch = d->ch;
  req->d = d;
  req->gen = d->flush_gen;
  d->xfer = XFER_BUSY;
  d->status = ST_DRDY | ST_BSY;
  ide->in_flight++;
  vmm_block_set_completion_context (d->bs, ide->io_context);
  vmm_block_submit (d->bs, VMM_BLOCK_OP_FLUSH, 0, NULL, 0, flush_done, req);
}

/* ---- ATAPI transport ---- */

static void
atapi_error (ide_drive *d)
{
  end_transfer (d);
  d->status = ST_DRDY | ST_ERR;
  d->error = (uint8_t) (atapi_sense_key (d->cd) << 4) | ER_ABRT;
  d->nsect = IR_IO | IR_COD;
  raise_irq (d);
}

static void
atapi_start_chunk (ide_drive *d)
{
  if (d->pos >= d->filled && d->atapi_left)
    {
      uint32_t n = MIN (d->atapi_left, ATAPI_PIO_SECTORS);
      VmmBlock *media = atapi_begin_io (d->cd);
      g_autoptr (GError) error = NULL;
      uint64_t size = media ? vmm_block_size (media) / ATAPI_SECTOR_SIZE : 0;
      bool ok = media && d->lba <= size && n <= size - d->lba
                && vmm_block_read (media, d->lba * ATAPI_SECTOR_SIZE, d->buf,
                                   (size_t) n * ATAPI_SECTOR_SIZE, &error);
      if (media)
        atapi_end_io (d->cd, media);
      if (!ok)
        {
          if (media)
            atapi_set_sense (d->cd, 0x03, 0x11, 0x00);
          else
            atapi_set_sense (d->cd, 0x02, 0x3a, 0x00);
          atapi_error (d);
          return;
        }
      d->lba += n;
      d->atapi_left -= n;
      d->pos = 0;
      d->filled = n * ATAPI_SECTOR_SIZE;
    }
  uint32_t chunk = MIN (d->byte_limit, d->filled - d->pos);
  d->lbam = chunk & 0xff;
  d->lbah = chunk >> 8;
  d->nsect = IR_IO;
  d->xfer = XFER_PIO_IN;
  d->pio = PIO_ATAPI_DATA;
  d->end = d->pos + chunk;
  d->status = ST_DRDY | ST_DSC | ST_DRQ;
  raise_irq (d);
}

static void
atapi_run_packet (ide_drive *d)
{
  atapi_reply r;
  bool dma = d->atapi_dma;
  memcpy (d->packet, d->buf, ATAPI_CDB_SIZE);
  atapi_execute (d->cd, d->packet, d->buf, sizeof d->buf, &r);
  switch (r.kind)
    {
    case ATAPI_REPLY_STATUS:
      end_transfer (d);
      d->status = ST_DRDY | ST_DSC;
      d->error = 0;
      d->nsect = IR_IO | IR_COD;
      raise_irq (d);
      return;
    case ATAPI_REPLY_ERROR:
      atapi_error (d);
      return;
    case ATAPI_REPLY_DATA:
      if (dma)
        {
          dma_begin (d, 0, 0, r.len, false);
          return;
        }
      d->pos = 0;
      d->filled = r.len;
      d->atapi_left = 0;
      atapi_start_chunk (d);
      return;
    case ATAPI_REPLY_READ:
      if (dma)
        {
          dma_begin (d, r.lba, r.sectors, 0, false);
          return;
        }
      d->lba = r.lba;
      d->atapi_left = r.sectors;
      d->pos = d->filled = 0;
      atapi_start_chunk (d);
      return;
    }
}

static void
atapi_packet_command (ide_drive *d)
{
  uint32_t limit = d->lbam | d->lbah << 8;
  if (limit == 0 || limit == 0xffff)
    limit = 0xfffe;
  limit = MAX (limit & ~1u, 2);
  d->byte_limit = (uint16_t) limit;
  d->atapi_dma = d->feature & 0x01;
  d->nsect = IR_COD;
  d->error = 0;
  pio_start (d, XFER_PIO_OUT, PIO_PACKET, ATAPI_CDB_SIZE, false);
}

/* ---- ATA commands ---- */

static void
reset_drive (ide_drive *d)
{
  end_transfer (d);
  set_signature (d);
  d->error = 0x01; /* diagnostic passed */
  d->status = d->kind == KIND_DISK ? ST_DRDY | ST_DSC : 0;
  d->intrq = false;
  if (d->cd)
    atapi_reset (d->cd, false);
}

static void
ata_rw (ide_drive *d, bool write, bool lba48, bool dma, uint32_t per_block)
{
  uint64_t lba = tf_lba (d, lba48);
  uint32_t count = tf_count (d, lba48);
  d->lba48 = lba48;
  if (write && d->read_only)
    {
      command_error (d, ER_ABRT);
      return;
    }
  if (lba == UINT64_MAX || lba > d->sectors || count > d->sectors - lba)
    {
      command_error (d, ER_IDNF);
      return;
    }
  if (dma)
    {
      dma_begin (d, lba, count, 0, write);
      return;
    }
  d->lba = lba;
  d->remaining = count;
  d->per_block = per_block;
  if (write)
    ata_write_block_start (d, false);
  else
    ata_read_block (d);
}

static void
ata_verify (ide_drive *d, bool lba48)
{
  uint64_t lba = tf_lba (d, lba48);
  uint32_t count = tf_count (d, lba48);
  if (lba == UINT64_MAX || lba > d->sectors || count > d->sectors - lba)
    command_error (d, ER_IDNF);
  else
    command_ok (d);
}

static void
ata_set_features (ide_drive *d)
{
  switch (d->feature)
    {
    case 0x02: /* enable write cache */
      d->write_cache = true;
      break;
    case 0x82:
      d->write_cache = false;
      break;
    case 0x03: /* set transfer mode */
      {
        uint8_t mode = d->nsect;
        bool valid = mode <= 0x01 || (mode >= 0x08 && mode <= 0x0c)
                     || (mode >= 0x20 && mode <= 0x22)
                     || (mode >= 0x40 && mode <= 0x45);
        if (!valid)
          {
            command_error (d, ER_ABRT);
            return;
          }
        d->xfer_mode = mode;
        break;
      }
    case 0x55: /* look-ahead off/on, reverting to defaults: accepted */
    case 0xaa:
    case 0x66:
    case 0xcc:
      break;
    default:
      command_error (d, ER_ABRT);
      return;
    }
  command_ok (d);
}

static void
ata_native_max (ide_drive *d, bool lba48)
{
  uint64_t max = d->sectors ? d->sectors - 1 : 0;
  if (!lba48)
    max = MIN (max, LBA28_MAX - 1);
  d->select |= DH_LBA;
  tf_set_lba (d, max, lba48);
  command_ok (d);
}

/* Commands an ATAPI device takes (ATA-6 6.21.2); all others abort with the
 * signature in the task file. */
static void
atapi_command (ide_drive *d, uint8_t cmd)
{
  switch (cmd)
    {
    case CMD_PACKET:
      atapi_packet_command (d);
      return;
    case CMD_IDENTIFY_PACKET:
      identify_packet (d);
      d->error = 0;
      pio_start (d, XFER_PIO_IN, PIO_SIMPLE, 512, true);
      return;
    case CMD_DEVICE_RESET:
      reset_drive (d);
      return;
    case CMD_CHECK_POWER_MODE:
      d->nsect = 0xff;
      command_ok (d);
      return;
    case CMD_SET_FEATURES:
      ata_set_features (d);
      return;
    case CMD_IDLE_IMMEDIATE:
    case CMD_STANDBY_IMMEDIATE:
    case CMD_SLEEP:
      command_ok (d);
      return;
    }
  set_signature (d);
  command_error (d, ER_ABRT);
}

static void
execute_diagnostic (ide_channel *ch)
{
  for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
    if (ch->drive[u].kind != KIND_NONE)
      reset_drive (&ch->drive[u]);
  ide_drive *d = selected (ch);
  if (d->kind == KIND_DISK)
    d->status = ST_DRDY | ST_DSC;
  raise_irq (d);
}

static void
ata_command (ide_channel *ch, uint8_t cmd)
{
  ide_drive *d = selected (ch);
  if (d->kind == KIND_NONE)
    return;
  /* A device that is busy ignores commands (ATA-6 9.x); DEVICE RESET is
   * how ATAPI devices are unstuck. */
  if ((d->status & ST_BSY)
      && !(d->kind == KIND_CDROM && cmd == CMD_DEVICE_RESET))
    return;
  d->intrq = false;
  update_irq (ch);
  d->cmd = cmd;
  end_transfer (d);
  if (cmd == CMD_EXECUTE_DIAGNOSTIC)
    {
      execute_diagnostic (ch);
      return;
    }
  if (d->kind == KIND_CDROM)
    {
      atapi_command (d, cmd);
      return;
    }

  switch (cmd)
    {
    case CMD_IDENTIFY:
      identify_disk (d);
      d->error = 0;
      pio_start (d, XFER_PIO_IN, PIO_SIMPLE, 512, true);
      return;
    case CMD_READ_SECTORS:
    case CMD_READ_SECTORS_NR:
      ata_rw (d, false, false, false, 1);
      return;
    case CMD_READ_SECTORS_EXT:
      ata_rw (d, false, true, false, 1);
      return;
    case CMD_WRITE_SECTORS:
    case CMD_WRITE_SECTORS_NR:
      ata_rw (d, true, false, false, 1);
      return;
    case CMD_WRITE_SECTORS_EXT:
      ata_rw (d, true, true, false, 1);
      return;
    case CMD_READ_MULTIPLE:
    case CMD_READ_MULTIPLE_EXT:
    case CMD_WRITE_MULTIPLE:
    case CMD_WRITE_MULTIPLE_EXT:
      if (!d->mult)
        {
          command_error (d, ER_ABRT);
          return;
        }
      ata_rw (d, cmd == CMD_WRITE_MULTIPLE || cmd == CMD_WRITE_MULTIPLE_EXT,
              cmd == CMD_READ_MULTIPLE_EXT || cmd == CMD_WRITE_MULTIPLE_EXT,
              false, d->mult);
      return;
    case CMD_READ_DMA:
    case CMD_READ_DMA_NR:
      ata_rw (d, false, false, true, 0);
      return;
    case CMD_READ_DMA_EXT:
      ata_rw (d, false, true, true, 0);
      return;
    case CMD_WRITE_DMA:
    case CMD_WRITE_DMA_NR:
      ata_rw (d, true, false, true, 0);
      return;
    case CMD_WRITE_DMA_EXT:
      ata_rw (d, true, true, true, 0);
      return;
    case CMD_READ_VERIFY:
    case CMD_READ_VERIFY_NR:
      ata_verify (d, false);
      return;
    case CMD_READ_VERIFY_EXT:
      ata_verify (d, true);
      return;
    case CMD_FLUSH_CACHE:
    case CMD_FLUSH_CACHE_EXT:
      ata_flush (d);
      return;
    case CMD_SET_FEATURES:
      ata_set_features (d);
      return;
    case CMD_SET_MULTIPLE:
      if (d->nsect > MAX_MULTIPLE || (d->nsect & (d->nsect - 1)))
        {
          command_error (d, ER_ABRT);
          return;
        }
      d->mult = d->nsect;
      command_ok (d);
      return;
    case CMD_INITIALIZE_PARAMS:
      if (!d->nsect)
        {
          command_error (d, ER_ABRT);
          return;
        }
      d->sects = d->nsect;
      d->heads = (d->select & 0x0f) + 1;
      command_ok (d);
      return;
    case CMD_READ_NATIVE_MAX:
      ata_native_max (d, false);
      return;
    case CMD_READ_NATIVE_MAX_EXT:
      ata_native_max (d, true);
      return;
    case CMD_CHECK_POWER_MODE:
    case 0x98:
      d->nsect = 0xff; /* active or idle */
      command_ok (d);
      return;
    case CMD_STANDBY_IMMEDIATE:
    case CMD_IDLE_IMMEDIATE:
    case CMD_STANDBY:
    case CMD_IDLE:
    case CMD_SLEEP:
    case 0x94: /* the ATA-1 encodings of the power commands */
    case 0x95:
    case 0x96:
    case 0x97:
    case 0x99:
    case CMD_SEEK:
      command_ok (d);
      return;
    }
  if (cmd >= 0x10 && cmd <= 0x1f) /* RECALIBRATE */
    {
      command_ok (d);
      return;
    }
  command_error (d, ER_ABRT);
}

/* ---- legacy task-file ports ---- */

static void
soft_reset (ide_channel *ch)
{
  for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
    {
      ide_drive *d = &ch->drive[u];
      if (d->kind == KIND_NONE)
        continue;
      reset_drive (d);
      d->select = 0xa0 | (u ? DH_DEV : 0);
    }
  ch->sel = 0;
  update_irq (ch);
}

static void
ctl_write (ide_channel *ch, uint8_t v)
{
  uint8_t old = ch->ctl;
  ch->ctl = v & (DC_NIEN | DC_SRST | DC_HOB);
  if (channel_empty (ch))
    return;
  if ((v & DC_SRST) && !(old & DC_SRST))
    {
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        {
          ide_drive *d = &ch->drive[u];
          if (d->kind != KIND_NONE)
            {
              end_transfer (d);
              d->status = ST_BSY;
            }
        }
    }
  else if (!(v & DC_SRST) && (old & DC_SRST))
    soft_reset (ch);
  update_irq (ch);
}

static uint8_t
status_of (ide_channel *ch)
{
  if (channel_empty (ch))
    return 0xff;
  ide_drive *d = selected (ch);
  if (d->kind == KIND_NONE)
    return 0x00;
  return d->status;
}

static uint8_t
taskfile_read (ide_channel *ch, unsigned reg)
{
  if (channel_empty (ch))
    return 0xff;
  ide_drive *d = selected (ch);
  bool hob = ch->ctl & DC_HOB;
  if (d->kind == KIND_NONE && reg != 6)
    return 0x00;
  switch (reg)
    {
    case 1:
      return hob ? d->hob_feature : d->error;
    case 2:
      return hob ? d->hob_nsect : d->nsect;
    case 3:
      return hob ? d->hob_lbal : d->lbal;
    case 4:
      return hob ? d->hob_lbam : d->lbam;
    case 5:
      return hob ? d->hob_lbah : d->lbah;
    case 6:
      return d->select;
    case 7:
      d->intrq = false;
      update_irq (ch);
      return d->status;
    }
  return 0xff;
}

static void
taskfile_write (ide_channel *ch, unsigned reg, uint8_t v)
{
  ch->ctl &= ~DC_HOB; /* any task-file write clears HOB (ATA-6 7.9) */
  for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
    {
      ide_drive *d = &ch->drive[u];
      switch (reg)
        {
        case 1:
          d->hob_feature = d->feature;
          d->feature = v;
          break;
        case 2:
          d->hob_nsect = d->nsect;
          d->nsect = v;
          break;
        case 3:
          d->hob_lbal = d->lbal;
          d->lbal = v;
          break;
        case 4:
          d->hob_lbam = d->lbam;
          d->lbam = v;
          break;
        case 5:
          d->hob_lbah = d->lbah;
          d->lbah = v;
          break;
        case 6:
          d->select = (v & ~DH_DEV) | 0xa0 | (u ? DH_DEV : 0);
          break;
        }
    }
  if (reg == 6)
    {
      ch->sel = (v & DH_DEV) ? 1 : 0;
      update_irq (ch);
    }
  else if (reg == 7)
    ata_command (ch, v);
}

static uint64_t
cmd_block_read (void *opaque, const vmm_access *a)
{
  ide_channel *ch = opaque;
  if (a->offset == 0)
    {
      if (channel_empty (ch))
        return ~UINT64_C (0) >> (64 - 8 * a->size);
      return data_read (ch, a->size);
    }
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && a->offset + i < 8; i++)
    v |= (uint64_t) taskfile_read (ch, (unsigned) a->offset + i) << (8 * i);
  return v;
}

static void
cmd_block_write (void *opaque, const vmm_access *a, uint64_t value)
{
  ide_channel *ch = opaque;
  if (a->offset == 0)
    {
      data_write (ch, a->size, value);
      return;
    }
  for (unsigned i = 0; i < a->size && a->offset + i < 8; i++)
    taskfile_write (ch, (unsigned) a->offset + i, (value >> (8 * i)) & 0xff);
}

static const vmm_region_ops cmd_block_ops = {
  .read = cmd_block_read,
  .write = cmd_block_write,
};

static uint64_t
ctl_block_read (void *opaque, const vmm_access *a)
{
  return status_of (opaque); /* alternate status: INTRQ untouched */
}

static void
ctl_block_write (void *opaque, const vmm_access *a, uint64_t value)
{
  ctl_write (opaque, value & 0xff);
}

static const vmm_region_ops ctl_block_ops = {
  .read = ctl_block_read,
  .write = ctl_block_write,
};

/* ---- bus-master registers (BAR4) ---- */

static void
bm_cmd_write (ide_channel *ch, uint8_t v)
{
  uint8_t old = ch->bm_cmd;
  ch->bm_cmd = v & (BM_CMD_START | BM_CMD_TO_MEMORY);
  if ((v & BM_CMD_START) && !(old & BM_CMD_START))
    {
      ch->bm_status |= BM_ST_ACTIVE;
      dma_try_start (ch);
    }
  else if (!(v & BM_CMD_START) && (old & BM_CMD_START))
    {
      ch->bm_status &= ~BM_ST_ACTIVE;
      if (ch->dma_busy && ch->dma_unit >= 0)
        {
          /* Stopped mid-transfer: disown the request, abort the command. */
          ide_drive *d = &ch->drive[ch->dma_unit];
          end_transfer (d);
          d->status = ST_DRDY | ST_ERR;
          d->error = ER_ABRT;
        }
    }
}

static uint8_t
bm_read_byte (void *opaque, unsigned off)
{
  ide_controller *ide = opaque;
  ide_channel *ch = &ide->ch[(off >> 3) & 1];
  switch (off & 7)
    {
    case 0:
      return ch->bm_cmd;
    case 2:
      return ch->bm_status;
    case 4:
    case 5:
    case 6:
    case 7:
      return (ch->prd_addr >> (8 * ((off & 7) - 4))) & 0xff;
    }
  return 0;
}

static void
bm_write_byte (void *opaque, unsigned off, uint8_t v)
{
  ide_controller *ide = opaque;
  ide_channel *ch = &ide->ch[(off >> 3) & 1];
  switch (off & 7)
    {
    case 0:
      bm_cmd_write (ch, v);
      break;
    case 2:
      ch->bm_status = (ch->bm_status & ~(BM_ST_DRV_DMA | (v & (BM_ST_ERROR
                                                                | BM_ST_INTR))))
                      | (v & BM_ST_DRV_DMA);
      break;
    case 4:
    case 5:
    case 6:
    case 7:
      {
        unsigned shift = 8 * ((off & 7) - 4);
        uint32_t mask = shift ? 0xffu : 0xfcu;
        ch->prd_addr = (ch->prd_addr & ~(0xffu << shift))
                       | ((v & mask) << shift);
        break;
      }
    }
}

static uint64_t
bm_read (void *opaque, const vmm_access *a)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    v |= (uint64_t) bm_read_byte (opaque, ((unsigned) a->offset + i) & 15)
         << (8 * i);
  return v;
}

static void
bm_write (void *opaque, const vmm_access *a, uint64_t value)
{
  for (unsigned i = 0; i < a->size && i < 8; i++)
    bm_write_byte (opaque, ((unsigned) a->offset + i) & 15,
                   (value >> (8 * i)) & 0xff);
}

static const vmm_region_ops bm_ops = {
  .read = bm_read,
  .write = bm_write,
};

/* Claims the bus-master block where BAR4 and the command register say. */
static void
bm_sync (ide_controller *ide)
{
  const uint8_t *cfg = ide->pci.config;
  uint32_t bar = vmm_pci_get32 (cfg + PCI_CFG_BAR0 + 16) & ~UINT32_C (3);
  uint64_t want = VMM_PCI_UNMAPPED;
  if ((vmm_pci_get16 (cfg + PCI_CFG_COMMAND) & PCI_COMMAND_IO) && bar
      && bar + IDE_BMDMA_SIZE <= 0x10000)
    want = bar & ~(uint32_t) (IDE_BMDMA_SIZE - 1);
  ide->pci.bars[4].mapped_at = want;
  if (want == ide->bm_at)
    return;
  if (ide->bm_at != VMM_PCI_UNMAPPED)
    vmm_bus_unregister (ide->pio, ide->bm_at, ide);
  ide->bm_at = VMM_PCI_UNMAPPED;
  if (want == VMM_PCI_UNMAPPED || !ide->pio)
    return;
  g_autoptr (GError) error = NULL;
  if (vmm_bus_register (ide->pio, want, IDE_BMDMA_SIZE, &ide->dev, &bm_ops,
                        ide, &error))
    ide->bm_at = want;
  else
    g_info ("%s: bus-master registers not decoded: %s", ide->dev.name,
            error->message);
}

/* ---- device lifecycle ---- */

static void
drive_power_on (ide_drive *d)
{
  reset_drive (d);
  d->select = 0xa0 | (d->unit ? DH_DEV : 0);
  d->feature = d->hob_feature = 0;
  d->mult = 0;
  d->write_cache = true;
  d->xfer_mode = 0;
  default_geometry (d);
  d->cmd = 0;
  d->byte_limit = 0;
  if (d->cd)
    atapi_reset (d->cd, true);
  d->status = d->kind == KIND_DISK ? ST_DRDY | ST_DSC : 0;
}

static void
ide_config_defaults (ide_controller *ide)
{
  /* IDETIM/SIDETIM: power-on 0 (PIIX3 2.4.6/2.4.7). */
  for (unsigned i = 0x40; i <= 0x44; i++)
    ide->pci.config[i] = 0;
}

static void
ide_reset (vmm_device *dev)
{
  ide_controller *ide = (ide_controller *) dev;
  vmm_pci_device_reset (&ide->pci);
  ide_config_defaults (ide);
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      ide_channel *ch = &ide->ch[c];
      dma_disown (ch);
      ch->dma_unit = -1;
      ch->dma_busy = false;
      ch->ctl = 0;
      ch->sel = 0;
      ch->bm_cmd = 0;
      ch->bm_status = 0;
      ch->prd_addr = 0;
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        drive_power_on (&ch->drive[u]);
      update_irq (ch);
    }
}

#define IDE_STATE_TAG VMM_STATE_TAG ('I', 'D', 'E', '3')
#define IDE_STATE_VERSION 1

static void
save_drive (ide_drive *d, GByteArray *out)
{
  vmm_state_put_u8 (out, d->kind);
  uint8_t regs[] = { d->feature,     d->nsect,     d->lbal,     d->lbam,
                     d->lbah,        d->hob_feature, d->hob_nsect,
                     d->hob_lbal,    d->hob_lbam,  d->hob_lbah, d->select,
                     d->status,      d->error,     d->mult,     d->xfer_mode,
                     d->heads,       d->sects,     d->cmd,      d->xfer,
                     d->pio };
  vmm_state_put_bytes (out, regs, sizeof regs);
  vmm_state_put_bool (out, d->intrq);
  vmm_state_put_bool (out, d->write_cache);
  vmm_state_put_bool (out, d->lba48);
  vmm_state_put_bool (out, d->dma_write);
  vmm_state_put_bool (out, d->atapi_dma);
  vmm_state_put_u32 (out, d->pos);
  vmm_state_put_u32 (out, d->end);
  vmm_state_put_u32 (out, d->filled);
  vmm_state_put_u64 (out, d->lba);
  vmm_state_put_u32 (out, d->remaining);
  vmm_state_put_u32 (out, d->block);
  vmm_state_put_u32 (out, d->per_block);
  vmm_state_put_u64 (out, d->dma_lba);
  vmm_state_put_u32 (out, d->dma_sectors);
  vmm_state_put_u32 (out, d->dma_bytes);
  vmm_state_put_bytes (out, d->packet, sizeof d->packet);
  vmm_state_put_u16 (out, d->byte_limit);
  vmm_state_put_u32 (out, d->atapi_left);
  uint32_t used = MAX (d->end, d->filled);
  if (d->xfer == XFER_DMA)
    used = MAX (used, d->dma_bytes);
  used = MIN (used, (uint32_t) sizeof d->buf);
  vmm_state_put_u32 (out, used);
  vmm_state_put_bytes (out, d->buf, used);
  if (d->kind == KIND_CDROM)
    atapi_save (d->cd, out);
}

static void
ide_save_state (vmm_device *dev, GByteArray *out)
{
  ide_controller *ide = (ide_controller *) dev;
  vmm_state_put_header (out, IDE_STATE_TAG, IDE_STATE_VERSION);
  vmm_state_put_bytes (out, ide->pci.config, VMM_PCI_CONFIG_SIZE);
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      ide_channel *ch = &ide->ch[c];
      vmm_state_put_u8 (out, ch->ctl);
      vmm_state_put_u8 (out, (uint8_t) ch->sel);
      vmm_state_put_u8 (out, ch->bm_cmd);
      vmm_state_put_u8 (out, ch->bm_status);
      vmm_state_put_u32 (out, ch->prd_addr);
      vmm_state_put_u8 (out, (uint8_t) (ch->dma_unit + 1));
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        save_drive (&ch->drive[u], out);
    }
}

typedef struct saved_channel {
  uint8_t ctl, sel, bm_cmd, bm_status;
  uint32_t prd_addr;
  int dma_unit;
  ide_drive drive[IDE_NUM_UNITS];
  atapi_saved cd[IDE_NUM_UNITS];
} saved_channel;

static void
load_drive (vmm_state_reader *r, const ide_drive *live, ide_drive *d,
            atapi_saved *cd)
{
  uint8_t regs[20];
  uint8_t kind = vmm_state_get_u8 (r);
  vmm_state_check (r, kind == live->kind, "drive kind");
  vmm_state_get_bytes (r, regs, sizeof regs);
  d->feature = regs[0];
  d->nsect = regs[1];
  d->lbal = regs[2];
  d->lbam = regs[3];
  d->lbah = regs[4];
  d->hob_feature = regs[5];
  d->hob_nsect = regs[6];
  d->hob_lbal = regs[7];
  d->hob_lbam = regs[8];
  d->hob_lbah = regs[9];
  d->select = regs[10];
  d->status = regs[11];
  d->error = regs[12];
  d->mult = regs[13];
  d->xfer_mode = regs[14];
  d->heads = regs[15];
  d->sects = regs[16];
  d->cmd = regs[17];
  d->xfer = regs[18];
  d->pio = regs[19];
  d->intrq = vmm_state_get_bool (r);
  d->write_cache = vmm_state_get_bool (r);
  d->lba48 = vmm_state_get_bool (r);
  d->dma_write = vmm_state_get_bool (r);
  d->atapi_dma = vmm_state_get_bool (r);
  d->pos = vmm_state_get_u32 (r);
  d->end = vmm_state_get_u32 (r);
  d->filled = vmm_state_get_u32 (r);
  d->lba = vmm_state_get_u64 (r);
  d->remaining = vmm_state_get_u32 (r);
  d->block = vmm_state_get_u32 (r);
  d->per_block = vmm_state_get_u32 (r);
  d->dma_lba = vmm_state_get_u64 (r);
  d->dma_sectors = vmm_state_get_u32 (r);
  d->dma_bytes = vmm_state_get_u32 (r);
  vmm_state_get_bytes (r, d->packet, sizeof d->packet);
  d->byte_limit = vmm_state_get_u16 (r);
  d->atapi_left = vmm_state_get_u32 (r);
  uint32_t used = vmm_state_get_u32 (r);
  vmm_state_check (r, used <= sizeof d->buf, "buffer length");
  if (used <= sizeof d->buf)
    vmm_state_get_bytes (r, d->buf, used);
  if (kind == KIND_CDROM && live->kind == KIND_CDROM)
    atapi_load (r, cd);

  vmm_state_check (r, d->xfer <= XFER_LAST, "transfer state");
  vmm_state_check (r, d->pio <= PIO_LAST, "PIO phase");
  vmm_state_check (r, d->pos <= d->end && d->end <= sizeof d->buf
                          && d->filled <= sizeof d->buf,
                   "PIO buffer position");
  vmm_state_check (r, d->mult <= MAX_MULTIPLE && !(d->mult & (d->mult - 1)),
                   "multiple count");
  vmm_state_check (r, d->heads >= 1 && d->heads <= 16 && d->sects >= 1,
                   "geometry");
  vmm_state_check (r, d->dma_bytes <= sizeof d->buf, "DMA reply length");
  vmm_state_check (r, d->byte_limit % 2 == 0, "byte count limit");
  vmm_state_check (r, kind != KIND_NONE || d->xfer == XFER_NONE,
                   "transfer on an absent drive");
  if (d->xfer == XFER_PIO_IN || d->xfer == XFER_PIO_OUT)
    vmm_state_check (r, d->pos < d->end, "PIO transfer");
  if (d->xfer == XFER_PIO_IN && d->pio == PIO_ATAPI_DATA)
    vmm_state_check (r, d->end <= d->filled && d->byte_limit >= 2,
                     "ATAPI chunk");
  if ((d->xfer == XFER_PIO_IN || d->xfer == XFER_PIO_OUT)
      && (d->pio == PIO_ATA_READ || d->pio == PIO_ATA_WRITE))
    vmm_state_check (r, d->per_block <= MAX_MULTIPLE && d->block >= 1
                            && d->block <= d->per_block
                            && d->block <= d->remaining
                            && d->block * IDE_SECTOR_SIZE == d->end,
                     "ATA PIO block");
}

static gboolean
ide_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                GError **error)
{
  ide_controller *ide = (ide_controller *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  g_autofree saved_channel *sc = g_new0 (saved_channel, IDE_NUM_CHANNELS);

  if (!vmm_state_begin (&rd, data, len, IDE_STATE_TAG, IDE_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, config, sizeof config);
  vmm_state_check (&rd, !memcmp (config, ide->pci.config, 4), "PCI ID");
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      saved_channel *s = &sc[c];
      s->ctl = vmm_state_get_u8 (&rd);
      s->sel = vmm_state_get_u8 (&rd);
      s->bm_cmd = vmm_state_get_u8 (&rd);
      s->bm_status = vmm_state_get_u8 (&rd);
      s->prd_addr = vmm_state_get_u32 (&rd);
      s->dma_unit = (int) vmm_state_get_u8 (&rd) - 1;
      vmm_state_check (&rd, s->sel <= 1, "selected drive");
      vmm_state_check (&rd, s->dma_unit >= -1 && s->dma_unit <= 1,
                       "DMA drive");
      vmm_state_check (&rd, !(s->ctl & ~(DC_NIEN | DC_SRST | DC_HOB)),
                       "device control");
      vmm_state_check (&rd, !(s->bm_cmd & ~(BM_CMD_START | BM_CMD_TO_MEMORY)),
                       "bus-master command");
      vmm_state_check (&rd, !(s->prd_addr & 3), "PRD pointer");
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        load_drive (&rd, &ide->ch[c].drive[u], &s->drive[u], &s->cd[u]);
      if (s->dma_unit >= 0 && s->dma_unit < IDE_NUM_UNITS)
        vmm_state_check (&rd, s->drive[s->dma_unit].xfer == XFER_DMA,
                         "DMA drive state");
    }
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  memcpy (ide->pci.config, config, sizeof config);
  bm_sync (ide);
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      ide_channel *ch = &ide->ch[c];
      saved_channel *s = &sc[c];
      dma_disown (ch); /* anything in flight belongs to the old state */
      ch->ctl = s->ctl;
      ch->sel = s->sel;
      ch->bm_cmd = s->bm_cmd;
      ch->bm_status = s->bm_status;
      ch->prd_addr = s->prd_addr;
      ch->dma_unit = s->dma_unit;
      ch->dma_busy = false;
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        {
          ide_drive *d = &ch->drive[u];
          ide_drive *n = &s->drive[u];
          /* Copy the guest-visible fields; keep the back end. */
          n->ch = d->ch;
          n->unit = d->unit;
          n->kind = d->kind;
          n->bs = d->bs;
          n->cd = d->cd;
          n->sectors = d->sectors;
          n->read_only = d->read_only;
          memcpy (n->serial, d->serial, sizeof n->serial);
          bool reflush = n->xfer == XFER_BUSY;
          if (reflush)
            n->xfer = XFER_NONE;
          n->flush_gen = d->flush_gen + 1;
          *d = *n;
          if (d->cd)
            atapi_commit (d->cd, &s->cd[u]);
          if (reflush && d->kind == KIND_DISK)
            ata_flush (d); /* a flush was in flight: run it again */
          else if (d->xfer != XFER_DMA && ch->dma_unit == (int) u)
            ch->dma_unit = -1;
        }
      /* The IRQ line is the board's: re-drive it from the loaded state. */
      ch->irq_level = !(selected (ch)->intrq && !(ch->ctl & DC_NIEN));
      update_irq (ch);
      dma_try_start (ch);
    }
  return TRUE;
}

/* Waits until nothing is in flight; called without the lock. */
static void
wait_idle (ide_controller *ide)
{
  for (;;)
    {
      g_mutex_lock (&ide->dev.lock);
      unsigned n = ide->in_flight;
      g_mutex_unlock (&ide->dev.lock);
      if (!n)
        return;
      if (ide->io_context && g_main_context_acquire (ide->io_context))
        {
          g_main_context_iteration (ide->io_context, TRUE);
          g_main_context_release (ide->io_context);
          continue;
        }
      g_mutex_lock (&ide->dev.lock);
      if (ide->in_flight)
        g_cond_wait (&ide->idle, &ide->dev.lock);
      g_mutex_unlock (&ide->dev.lock);
    }
}

void
ide_drain (ide_controller *ide)
{
  wait_idle (ide);
}

static void
ide_destroy (vmm_device *dev)
{
  ide_controller *ide = (ide_controller *) dev;
  if (ide->attached)
    for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
      {
        vmm_bus_unregister (ide->pio, legacy_base[c], &ide->ch[c]);
        vmm_bus_unregister (ide->pio, legacy_ctl[c], &ide->ch[c]);
      }
  if (ide->bm_at != VMM_PCI_UNMAPPED)
    vmm_bus_unregister (ide->pio, ide->bm_at, ide);
  wait_idle (ide);
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
      {
        ide_drive *d = &ide->ch[c].drive[u];
        if (d->bs)
          {
            g_autoptr (GError) error = NULL;
            if (!vmm_block_close (d->bs, &error))
              g_warning ("%s: closing the disk: %s", dev->name,
                         error->message);
          }
        atapi_cdrom_free (d->cd);
      }
  g_cond_clear (&ide->idle);
  g_mutex_clear (&dev->lock);
  g_free (ide);
}

static const vmm_device_ops ide_device_ops = {
  .reset = ide_reset,
  .save_state = ide_save_state,
  .load_state = ide_load_state,
  .destroy = ide_destroy,
};

static void
ide_bar_mapped (vmm_pci_device *pci, unsigned bar, uint64_t addr)
{
  if (bar == 4)
    bm_sync (pci->opaque);
}

static const vmm_pci_device_ops ide_pci_ops = {
  .bar_mapped = ide_bar_mapped,
};

ide_controller *
ide_create (const vmm_guest_memory *mem, GMainContext *io_context,
            const vmm_irq *irq14, const vmm_irq *irq15)
{
  ide_controller *ide = g_new0 (ide_controller, 1);
  vmm_device_init (&ide->dev, "piix3-ide", &ide_device_ops);
  g_cond_init (&ide->idle);
  ide->mem = mem;
  ide->io_context = io_context;
  for (unsigned c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      ide_channel *ch = &ide->ch[c];
      ch->ide = ide;
      ch->index = c;
      ch->dma_unit = -1;
      const vmm_irq *irq = c == 0 ? irq14 : irq15;
      if (irq)
        ch->irq = *irq;
      for (unsigned u = 0; u < IDE_NUM_UNITS; u++)
        {
          ide_drive *d = &ch->drive[u];
          d->ch = ch;
          d->unit = u;
          drive_power_on (d);
        }
    }

  vmm_pci_device_init (&ide->pci, &ide->dev, &ide_pci_ops, ide, 0x8086,
                       0x7010, 0x010180, 0x00);
  ide->bm_at = VMM_PCI_UNMAPPED;
  vmm_pci_set_bar (&ide->pci, 4, VMM_PCI_BAR_IO, false, IDE_BMDMA_SIZE, NULL,
                   NULL);
  for (unsigned i = 0x40; i <= 0x44; i++)
    ide->pci.wmask[i] = 0xff;
  ide_config_defaults (ide);
  return ide;
}

vmm_device *
ide_device (ide_controller *ide)
{
  return &ide->dev;
}

vmm_pci_device *
ide_pci (ide_controller *ide)
{
  return &ide->pci;
}

gboolean
ide_attach (ide_controller *ide, vmm_pci_host *host, vmm_bus *pio,
            unsigned devfn, GError **error)
{
  unsigned c;
  g_return_val_if_fail (!ide->attached, FALSE);
  ide->pio = pio;
  for (c = 0; c < IDE_NUM_CHANNELS; c++)
    {
      if (!vmm_bus_register (pio, legacy_base[c], 8, &ide->dev,
                             &cmd_block_ops, &ide->ch[c], error))
        goto unwind;
      if (!vmm_bus_register (pio, legacy_ctl[c], 1, &ide->dev,
                             &ctl_block_ops, &ide->ch[c], error))
        {
          vmm_bus_unregister (pio, legacy_base[c], &ide->ch[c]);
          goto unwind;
        }
    }
  if (!vmm_pci_host_attach (host, &ide->pci, devfn, error))
    goto unwind;
  ide->attached = true;
  return TRUE;

unwind:
  while (c-- > 0)
    {
      vmm_bus_unregister (pio, legacy_base[c], &ide->ch[c]);
      vmm_bus_unregister (pio, legacy_ctl[c], &ide->ch[c]);
    }
  return FALSE;
}

static ide_drive *
free_slot (ide_controller *ide, unsigned channel, unsigned unit,
           GError **error)
{
  if (channel >= IDE_NUM_CHANNELS || unit >= IDE_NUM_UNITS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "IDE has channels 0-1 with units 0-1, not %u:%u", channel,
                   unit);
      return NULL;
    }
  ide_drive *d = &ide->ch[channel].drive[unit];
  if (d->kind != KIND_NONE)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "IDE %s %s already has a drive",
                   channel ? "secondary" : "primary",
                   unit ? "slave" : "master");
      return NULL;
    }
  return d;
}

static void
drive_added (ide_drive *d, drive_kind kind)
{
  d->kind = kind;
  g_snprintf (d->serial, sizeof d->serial, "VS%02u%014u",
              d->ch->index * 2 + d->unit, 0x5eed0 + d->ch->index * 2 + d->unit);
  drive_power_on (d);
  /* The bus master reports which drives can do DMA (firmware sets these). */
  d->ch->bm_status |= d->unit ? 0x40 : 0x20;
}

gboolean
ide_attach_disk (ide_controller *ide, unsigned channel, unsigned unit,
                 VmmBlock *bs, GError **error)
{
  g_return_val_if_fail (bs != NULL, FALSE);
  g_mutex_lock (&ide->dev.lock);
  ide_drive *d = free_slot (ide, channel, unit, error);
  if (d)
    {
      uint64_t sectors = vmm_block_size (bs) / IDE_SECTOR_SIZE;
      if (sectors == 0 || sectors >= LBA48_MAX)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "the disk %s is too %s for IDE",
                       vmm_block_filename (bs), sectors ? "large" : "small");
          d = NULL;
        }
      else
        {
          d->bs = bs;
          d->sectors = sectors;
          d->read_only = vmm_block_is_read_only (bs);
          drive_added (d, KIND_DISK);
        }
    }
  g_mutex_unlock (&ide->dev.lock);
  return d != NULL;
}

atapi_cdrom *
ide_attach_cdrom (ide_controller *ide, unsigned channel, unsigned unit,
                  VmmBlock *media, GError **error)
{
  g_mutex_lock (&ide->dev.lock);
  ide_drive *d = free_slot (ide, channel, unit, error);
  if (d)
    {
      d->cd = atapi_cdrom_new (&ide->dev.lock, ide->io_context, media);
      drive_added (d, KIND_CDROM);
    }
  g_mutex_unlock (&ide->dev.lock);
  return d ? d->cd : NULL;
}
