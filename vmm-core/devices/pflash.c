/* A CFI parallel flash, x8, with the Intel/Sharp basic command set.
 *
 * Facts from: Intel 28F008SA FlashFile datasheet (290429) for the command
 * set and status register; Intel AP-646 "Common Flash Interface (CFI) and
 * Command Sets" and the CFI tables of Intel's J3/S5 datasheets for the
 * query structure; OvmfPkg/QemuFlashFvbServicesRuntimeDxe/QemuFlash.c for
 * what OVMF relies on (byte program 0x10, block erase 0x20/0xD0, read array
 * 0xFF, and its detection probe: Clear Status 0x50 then Read Status 0x70
 * must read 0x00).
 *
 * Programs and erases complete at once, so the device is never busy. Each
 * one is written to the file straight away (pwrite of the changed byte or
 * block: a Vessel crash loses nothing the guest was told is done), and the
 * file is synced (fdatasync) when the guest puts the flash back into
 * read-array mode, which OVMF does at the end of every variable write, and
 * on destroy: one sync per firmware operation rather than one per byte. */
#include "vmm-core/devices/pflash.h"

#include "vmm-core/devices/devstate.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Commands (28F008SA table 3; 0x00 read array as QEMU and OVMF accept). */
enum {
  CMD_READ_ARRAY = 0xff,
  CMD_READ_ARRAY_ALT = 0x00,
  CMD_PROGRAM = 0x10,
  CMD_PROGRAM_ALT = 0x40,
  CMD_ERASE_SETUP = 0x20,
  CMD_ERASE_CONFIRM = 0xd0,
  CMD_CLEAR_STATUS = 0x50,
  CMD_READ_STATUS = 0x70,
  CMD_READ_ID = 0x90,
  CMD_CFI_QUERY = 0x98,
};

/* Status register bits (28F008SA table 4). */
enum {
  SR_READY = 0x80,        /* SR.7 write state machine ready */
  SR_ERASE_ERROR = 0x20,  /* SR.5; with SR.4: improper command sequence */
  SR_PROGRAM_ERROR = 0x10, /* SR.4 */
  SR_BLOCK_LOCKED = 0x02, /* SR.1 the operation hit a locked block */
};

/* Identifier codes (read ID mode, and offsets 0-2 of the query). */
#define PFLASH_MANUFACTURER_INTEL 0x89
#define PFLASH_DEVICE_CODE 0x18
#define PFLASH_PRI_OFFSET 0x31
#define PFLASH_CFI_TABLE_SIZE 0x3f

typedef enum {
  PFLASH_MODE_READ_ARRAY,
  PFLASH_MODE_READ_STATUS,
  PFLASH_MODE_READ_ID,
  PFLASH_MODE_READ_QUERY,
  PFLASH_MODE_PROGRAM_SETUP, /* the next write is the byte to program */
  PFLASH_MODE_ERASE_SETUP,   /* the next write must be the confirm */
  PFLASH_MODE_COUNT,
} pflash_mode;

/* Guest-visible state beyond the array itself (which is the file). */
typedef struct pflash_regs {
  uint8_t mode; /* pflash_mode */
  uint8_t status;
} pflash_regs;

struct pflash {
  vmm_device dev;
  char *path;
  int fd;
  bool readonly;
  uint8_t *array; /* page-aligned copy of the file */
  size_t size;
  bool unsynced; /* written to the file since the last fdatasync */
  bool write_failed_logged;
  uint8_t cfi[PFLASH_CFI_TABLE_SIZE];
  pflash_array_fn array_fn;
  void *array_opaque;
  vmm_bus *mmio;
  uint64_t base;
  bool attached;
  pflash_regs regs;
};

/* CFI query structure for an x8 device of one erase region of 4 KiB blocks
 * (AP-646 section 4: identification string at 10h, system interface at
 * 1Bh, device geometry at 27h; Intel's primary extended table at P = 31h). */
static void
pflash_build_cfi (pflash *p)
{
  uint8_t *t = p->cfi;
  size_t blocks = p->size / PFLASH_BLOCK_SIZE;
  unsigned size_log2 = 0;
  while (((size_t) 1 << size_log2) < p->size)
    size_log2++;
  memset (t, 0, sizeof p->cfi);
  t[0x10] = 'Q';
  t[0x11] = 'R';
  t[0x12] = 'Y';
  t[0x13] = 0x01; /* primary command set 0001h: Intel/Sharp extended */
  t[0x15] = PFLASH_PRI_OFFSET;
  /* 17h-1Ah: no alternate command set. */
  t[0x1b] = 0x27; /* Vcc min 2.7 V (BCD volts, tenths) */
  t[0x1c] = 0x36; /* Vcc max 3.6 V */
  /* 1Dh-1Eh: no Vpp pin. */
  t[0x1f] = 4;    /* typical byte program 2^4 us */
  t[0x21] = 9;    /* typical block erase 2^9 ms */
  t[0x23] = 4;    /* maximum byte program 2^4 times typical */
  t[0x25] = 4;    /* maximum block erase 2^4 times typical */
  /* 20h/22h/24h/26h: no buffered write, no chip erase. */
  /* 27h: device size 2^n bytes. A size that is not a power of two (OVMF's
   * 528 KiB store) is rounded up here; the region below gives the exact
   * number of blocks. */
  t[0x27] = (uint8_t) size_log2;
  /* 28h-29h: interface 0000h, x8 asynchronous. 2Ah-2Bh: no multi-byte
   * write. */
  t[0x2c] = 1; /* one erase block region */
  t[0x2d] = (uint8_t) ((blocks - 1) & 0xff); /* blocks - 1 */
  t[0x2e] = (uint8_t) ((blocks - 1) >> 8);
  t[0x2f] = (uint8_t) ((PFLASH_BLOCK_SIZE / 256) & 0xff); /* size / 256 */
  t[0x30] = (uint8_t) ((PFLASH_BLOCK_SIZE / 256) >> 8);
  /* Primary extended query (Intel): "PRI", version 1.0, no optional
   * features (no chip erase, suspend or lock commands), block status
   * register bit 0 (locked) implemented, Vcc optimum 3.3 V. */
  t[0x31] = 'P';
  t[0x32] = 'R';
  t[0x33] = 'I';
  t[0x34] = '1';
  t[0x35] = '0';
  t[0x3b] = 0x01;
  t[0x3d] = 0x33;
}

static void
pflash_set_mode (pflash *p, pflash_mode mode)
{
  bool was_array = p->regs.mode == PFLASH_MODE_READ_ARRAY;
  bool is_array = mode == PFLASH_MODE_READ_ARRAY;
  p->regs.mode = mode;
  if (is_array && p->unsynced)
    {
      if (fdatasync (p->fd) == 0)
        p->unsynced = false;
      else if (!p->write_failed_logged)
        {
          p->write_failed_logged = true;
          g_warning ("%s: cannot sync %s: %s", p->dev.name, p->path,
                     g_strerror (errno));
        }
    }
  if (was_array != is_array && p->array_fn)
    p->array_fn (p->array_opaque, p, is_array);
}

/* Writes [off, off + len) of the array to the file; false on failure. */
static bool
pflash_write_back (pflash *p, size_t off, size_t len)
{
  while (len > 0)
    {
      ssize_t n = pwrite (p->fd, p->array + off, len, (off_t) off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (!p->write_failed_logged)
            {
              p->write_failed_logged = true;
              g_warning ("%s: cannot write %s: %s", p->dev.name, p->path,
                         n < 0 ? g_strerror (errno) : "short write");
            }
          return false;
        }
      off += (size_t) n;
      len -= (size_t) n;
    }
  p->unsynced = true;
  return true;
}

/* Starts a program or erase, which completes at once (SR.7): a read-only
 * flash refuses it with @error_bit (SR.4 or SR.5) and SR.1, every block of
 * it being locked. False when the array must stay as it is. */
static bool
pflash_may_change (pflash *p, uint8_t error_bit)
{
  p->regs.status |= SR_READY;
  if (!p->readonly)
    return true;
  p->regs.status |= error_bit | SR_BLOCK_LOCKED;
  return false;
}

/* Byte program: flash cells only go from 1 to 0. */
static void
pflash_program (pflash *p, size_t off, uint8_t value)
{
  if (!pflash_may_change (p, SR_PROGRAM_ERROR))
    return;
  p->array[off] &= value;
  if (!pflash_write_back (p, off, 1))
    p->regs.status |= SR_PROGRAM_ERROR;
}

/* Block erase: the whole block containing @off reads 0xFF. */
static void
pflash_erase (pflash *p, size_t off)
{
  if (!pflash_may_change (p, SR_ERASE_ERROR))
    return;
  size_t start = off & ~(size_t) (PFLASH_BLOCK_SIZE - 1);
  memset (p->array + start, 0xff, PFLASH_BLOCK_SIZE);
  if (!pflash_write_back (p, start, PFLASH_BLOCK_SIZE))
    p->regs.status |= SR_ERASE_ERROR;
}

/* Read ID mode: manufacturer at 00h, device at 01h, and each block's lock
 * status at its offset 02h (a read-only flash reports every block locked). */
static uint8_t
pflash_id_byte (pflash *p, size_t off)
{
  switch (off & (PFLASH_BLOCK_SIZE - 1))
    {
    case 0:
      return PFLASH_MANUFACTURER_INTEL;
    case 1:
      return PFLASH_DEVICE_CODE;
    case 2:
      return p->readonly ? 0x01 : 0x00;
    default:
      return 0;
    }
}

static uint8_t
pflash_read_byte (pflash *p, size_t off)
{
  switch ((pflash_mode) p->regs.mode)
    {
    case PFLASH_MODE_READ_ARRAY:
      return p->array[off];
    case PFLASH_MODE_READ_ID:
      return pflash_id_byte (p, off);
    case PFLASH_MODE_READ_QUERY:
      if (off < 0x10)
        return pflash_id_byte (p, off);
      return off < sizeof p->cfi ? p->cfi[off] : 0;
    case PFLASH_MODE_READ_STATUS:
    case PFLASH_MODE_PROGRAM_SETUP:
    case PFLASH_MODE_ERASE_SETUP:
    case PFLASH_MODE_COUNT:
      break;
    }
  /* Reads after a program or erase setup return status (28F008SA 4.4). */
  return p->regs.status;
}

static void
pflash_write_byte (pflash *p, size_t off, uint8_t value)
{
  switch ((pflash_mode) p->regs.mode)
    {
    case PFLASH_MODE_PROGRAM_SETUP:
      /* The second cycle is the data, at the address to program. */
      pflash_program (p, off, value);
      pflash_set_mode (p, PFLASH_MODE_READ_STATUS);
      return;
    case PFLASH_MODE_ERASE_SETUP:
      if (value == CMD_ERASE_CONFIRM)
        pflash_erase (p, off);
      else /* improper command sequence: SR.4 and SR.5 (28F008SA table 4) */
        p->regs.status |= SR_ERASE_ERROR | SR_PROGRAM_ERROR | SR_READY;
      pflash_set_mode (p, PFLASH_MODE_READ_STATUS);
      return;
    default:
      break;
    }
  switch (value)
    {
    case CMD_READ_ARRAY:
    case CMD_READ_ARRAY_ALT:
      pflash_set_mode (p, PFLASH_MODE_READ_ARRAY);
      break;
    case CMD_PROGRAM:
    case CMD_PROGRAM_ALT:
      pflash_set_mode (p, PFLASH_MODE_PROGRAM_SETUP);
      break;
    case CMD_ERASE_SETUP:
      pflash_set_mode (p, PFLASH_MODE_ERASE_SETUP);
      break;
    case CMD_CLEAR_STATUS:
      /* Clears SR.7 too, unlike a real chip: OVMF's QemuFlashDetected
       * takes the flash for one only if Read Status then reads 0x00. The
       * read mode is left as it was. */
      p->regs.status = 0;
      break;
    case CMD_READ_STATUS:
      pflash_set_mode (p, PFLASH_MODE_READ_STATUS);
      break;
    case CMD_READ_ID:
      pflash_set_mode (p, PFLASH_MODE_READ_ID);
      break;
    case CMD_CFI_QUERY:
      pflash_set_mode (p, PFLASH_MODE_READ_QUERY);
      break;
    default:
      /* Not a command of this set (a confirm without a setup, lock or
       * suspend commands, stray data): ignored, the mode stays. */
      break;
    }
}

/* Wider accesses reach an x8 part as byte cycles, lowest address first. */
static uint64_t
pflash_read (void *opaque, const vmm_access *a)
{
  pflash *p = opaque;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size; i++)
    if (a->offset + i < p->size)
      v |= (uint64_t) pflash_read_byte (p, a->offset + i) << (8 * i);
  return v;
}

static void
pflash_write (void *opaque, const vmm_access *a, uint64_t value)
{
  pflash *p = opaque;
  for (unsigned i = 0; i < a->size; i++)
    if (a->offset + i < p->size)
      pflash_write_byte (p, a->offset + i, (uint8_t) (value >> (8 * i)));
}

static const vmm_region_ops pflash_region_ops = {
  .read = pflash_read,
  .write = pflash_write,
};

static void
pflash_reset (vmm_device *dev)
{
  pflash *p = (pflash *) dev;
  p->regs.status = SR_READY;
  pflash_set_mode (p, PFLASH_MODE_READ_ARRAY);
}

#define PFLASH_STATE_TAG VMM_STATE_TAG ('P', 'F', 'L', 'S')
#define PFLASH_STATE_VERSION 1

static void
pflash_save_state (vmm_device *dev, GByteArray *out)
{
  pflash *p = (pflash *) dev;
  vmm_state_put_header (out, PFLASH_STATE_TAG, PFLASH_STATE_VERSION);
  vmm_state_put_u8 (out, p->regs.mode);
  vmm_state_put_u8 (out, p->regs.status);
}

static gboolean
pflash_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                   GError **error)
{
  pflash *p = (pflash *) dev;
  vmm_state_reader rd;
  if (!vmm_state_begin (&rd, data, len, PFLASH_STATE_TAG,
                        PFLASH_STATE_VERSION, dev->name, error))
    return FALSE;
  pflash_regs r;
  r.mode = vmm_state_get_u8 (&rd);
  r.status = vmm_state_get_u8 (&rd);
  vmm_state_check (&rd, r.mode < PFLASH_MODE_COUNT, "mode");
  vmm_state_check (&rd, !(r.status & ~(SR_READY | SR_ERASE_ERROR
                                       | SR_PROGRAM_ERROR | SR_BLOCK_LOCKED)),
                   "status");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;
  p->regs.status = r.status;
  pflash_set_mode (p, (pflash_mode) r.mode);
  return TRUE;
}

static void
pflash_destroy (vmm_device *dev)
{
  pflash *p = (pflash *) dev;
  if (p->attached)
    vmm_bus_unregister (p->mmio, p->base, p);
  if (p->fd >= 0)
    {
      if (p->unsynced && fdatasync (p->fd) != 0)
        g_warning ("%s: cannot sync %s: %s", dev->name, p->path,
                   g_strerror (errno));
      close (p->fd);
    }
  if (p->array)
    munmap (p->array, p->size);
  g_free (p->path);
  g_free ((char *) dev->name);
  g_mutex_clear (&dev->lock);
  g_free (p);
}

static const vmm_device_ops pflash_device_ops = {
  .reset = pflash_reset,
  .save_state = pflash_save_state,
  .load_state = pflash_load_state,
  .destroy = pflash_destroy,
};

/* The size of the open image @fd if it can be a flash, else an error naming
 * @path and what to do. */
static gboolean
pflash_check_fd (int fd, const char *path, size_t *size, GError **error)
{
  struct stat st;
  if (fstat (fd, &st) != 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "%s: %s", path, g_strerror (saved));
      return FALSE;
    }
  if (!S_ISREG (st.st_mode) || st.st_size <= 0
      || st.st_size % PFLASH_BLOCK_SIZE || st.st_size > PFLASH_MAX_SIZE)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s is not a flash image: its size (%" G_GINT64_FORMAT
                   " bytes) must be a multiple of 4 KiB, up to 8 MiB",
                   path, (gint64) st.st_size);
      return FALSE;
    }
  *size = (size_t) st.st_size;
  return TRUE;
}

static int
pflash_open_fd (const char *path, bool readonly, GError **error)
{
  int fd = open (path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
  if (fd < 0)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "%s: %s", path, g_strerror (saved));
    }
  return fd;
}

gboolean
pflash_check_file (const char *path, bool readonly, size_t *size,
                   GError **error)
{
  int fd = pflash_open_fd (path, readonly, error);
  if (fd < 0)
    return FALSE;
  size_t len = 0;
  gboolean ok = pflash_check_fd (fd, path, &len, error);
  close (fd);
  if (ok && size)
    *size = len;
  return ok;
}

static gboolean
pflash_read_file (pflash *p, GError **error)
{
  if (!pflash_check_fd (p->fd, p->path, &p->size, error))
    return FALSE;
  void *mem = mmap (NULL, p->size, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "cannot allocate memory for %s", p->path);
      return FALSE;
    }
  p->array = mem;
  size_t done = 0;
  while (done < p->size)
    {
      ssize_t n = pread (p->fd, p->array + done, p->size - done,
                         (off_t) done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          int saved = n < 0 ? errno : EIO;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                       "cannot read %s: %s", p->path, g_strerror (saved));
          return FALSE;
        }
      done += (size_t) n;
    }
  return TRUE;
}

pflash *
pflash_open (const char *name, const char *path, bool readonly,
             GError **error)
{
  pflash *p = g_new0 (pflash, 1);
  vmm_device_init (&p->dev, g_strdup (name), &pflash_device_ops);
  p->path = g_strdup (path);
  p->readonly = readonly;
  p->regs.status = SR_READY;
  p->regs.mode = PFLASH_MODE_READ_ARRAY;
  p->fd = pflash_open_fd (path, readonly, error);
  if (p->fd < 0 || !pflash_read_file (p, error))
    goto fail;
  pflash_build_cfi (p);
  return p;

fail:
  pflash_destroy (&p->dev);
  return NULL;
}

vmm_device *
pflash_device (pflash *p)
{
  return &p->dev;
}

void
pflash_set_array_handler (pflash *p, pflash_array_fn fn, void *opaque)
{
  p->array_fn = fn;
  p->array_opaque = opaque;
}

gboolean
pflash_attach (pflash *p, vmm_bus *mmio, uint64_t base, GError **error)
{
  g_return_val_if_fail (!p->attached, FALSE);
  if (!vmm_bus_register (mmio, base, p->size, &p->dev, &pflash_region_ops, p,
                         error))
    return FALSE;
  p->mmio = mmio;
  p->base = base;
  p->attached = true;
  return TRUE;
}

uint8_t *
pflash_array (pflash *p)
{
  return p->array;
}

size_t
pflash_size (pflash *p)
{
  return p->size;
}

bool
pflash_in_array_mode (pflash *p)
{
  g_mutex_lock (&p->dev.lock);
  bool array = p->regs.mode == PFLASH_MODE_READ_ARRAY;
  g_mutex_unlock (&p->dev.lock);
  return array;
}

gboolean
pflash_flush (pflash *p, GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&p->dev.lock);
  if (p->unsynced)
    {
      if (fdatasync (p->fd) == 0)
        p->unsynced = false;
      else
        {
          int saved = errno;
          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                       "cannot sync %s: %s", p->path, g_strerror (saved));
          ok = FALSE;
        }
    }
  g_mutex_unlock (&p->dev.lock);
  return ok;
}
