/* ATAPI CD/DVD-ROM: the packet commands. References: SCSI Primary Commands
 * 3 (SPC-3: INQUIRY, REQUEST SENSE, TEST UNIT READY, fixed sense format),
 * Multi-Media Commands 5 (MMC-5: READ CAPACITY, READ(10/12), READ TOC/PMA/
 * ATIP, GET CONFIGURATION, GET EVENT STATUS NOTIFICATION, MODE SENSE(10)
 * pages 01h/0Dh/2Ah, START STOP UNIT, PREVENT ALLOW MEDIUM REMOVAL, READ DISC
 * INFORMATION, READ TRACK INFORMATION, MECHANISM STATUS, SET CD SPEED,
 * SEEK(10)). One data track starting at LBA 0; the disc is a DVD-ROM when it
 * is larger than an 80-minute CD, else a CD-ROM. */
#include "vmm-core/devices/atapi.h"

#include <gio/gio.h>

#include "vmm-core/devices/devstate.h"

/* Sense keys and additional sense codes (SPC-3 4.5.6, annex D). */
enum {
  SENSE_NONE = 0x00,
  SENSE_NOT_READY = 0x02,
  SENSE_MEDIUM_ERROR = 0x03,
  SENSE_ILLEGAL_REQUEST = 0x05,
  SENSE_UNIT_ATTENTION = 0x06,
  SENSE_ABORTED_COMMAND = 0x0b,
  ASC_INVALID_COMMAND = 0x20,
  ASC_LBA_OUT_OF_RANGE = 0x21,
  ASC_INVALID_FIELD = 0x24,
  ASC_MEDIUM_MAY_HAVE_CHANGED = 0x28,
  ASC_SAVING_NOT_SUPPORTED = 0x39,
  ASC_MEDIUM_NOT_PRESENT = 0x3a,
  ASC_MEDIUM_REMOVAL_PREVENTED = 0x53,
};

/* Operation codes. */
enum {
  CMD_TEST_UNIT_READY = 0x00,
  CMD_REQUEST_SENSE = 0x03,
  CMD_INQUIRY = 0x12,
  CMD_START_STOP_UNIT = 0x1b,
  CMD_PREVENT_ALLOW = 0x1e,
  CMD_READ_CAPACITY = 0x25,
  CMD_READ_10 = 0x28,
  CMD_SEEK_10 = 0x2b,
  CMD_READ_TOC = 0x43,
  CMD_GET_CONFIGURATION = 0x46,
  CMD_GET_EVENT_STATUS = 0x4a,
  CMD_READ_DISC_INFO = 0x51,
  CMD_READ_TRACK_INFO = 0x52,
  CMD_MODE_SENSE_10 = 0x5a,
  CMD_READ_12 = 0xa8,
  CMD_SET_CD_SPEED = 0xbb,
  CMD_MECHANISM_STATUS = 0xbd,
};

/* MMC profiles (MMC-5 table 89) and media events (table 146). */
enum {
  PROFILE_NONE = 0x0000,
  PROFILE_CD_ROM = 0x0008,
  PROFILE_DVD_ROM = 0x0010,
  EVENT_NONE = 0,
  EVENT_EJECT_REQUEST = 1,
  EVENT_NEW_MEDIA = 2,
  EVENT_MEDIA_REMOVAL = 3,
};

/* An 80-minute CD: 80 * 60 * 75 sectors. */
#define CD_MAX_SECTORS (80u * 60 * 75)

struct atapi_cdrom {
  GMutex *lock;
  GMainContext *close_context;
  VmmBlock *media;
  uint64_t sectors;
  GPtrArray *retired; /* ejected media still in use by a request */
  unsigned in_flight;
  atapi_tray_fn tray_fn;
  void *tray_opaque;
  /* Guest-visible state. */
  uint8_t sense_key, asc, ascq;
  bool unit_attention;
  bool locked;
  uint8_t event;
};

static void
put_be16 (uint8_t *p, uint16_t v)
{
  p[0] = v >> 8;
  p[1] = v & 0xff;
}

static void
put_be32 (uint8_t *p, uint32_t v)
{
  p[0] = v >> 24;
  p[1] = (v >> 16) & 0xff;
  p[2] = (v >> 8) & 0xff;
  p[3] = v & 0xff;
}

static uint16_t
get_be16 (const uint8_t *p)
{
  return (uint16_t) (p[0] << 8 | p[1]);
}

static uint32_t
get_be32 (const uint8_t *p)
{
  return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8
         | p[3];
}

/* Time code of an LBA: the first track starts 2 seconds (150 frames) in. */
static void
lba_to_msf (uint8_t *p, uint64_t lba)
{
  lba += 150;
  p[0] = 0;
  p[1] = (uint8_t) MIN (lba / (60 * 75), 255);
  p[2] = (lba / 75) % 60;
  p[3] = lba % 75;
}

static void
set_media (atapi_cdrom *cd, VmmBlock *media)
{
  cd->media = media;
  cd->sectors = media ? vmm_block_size (media) / ATAPI_SECTOR_SIZE : 0;
  /* READ CAPACITY reports the last LBA in 32 bits. */
  cd->sectors = MIN (cd->sectors, (uint64_t) UINT32_MAX);
}

static void
retire_media (atapi_cdrom *cd)
{
  if (!cd->media)
    return;
  if (cd->in_flight)
    g_ptr_array_add (cd->retired, cd->media);
  else
    {
      g_autoptr (GError) error = NULL;
      if (!vmm_block_close (cd->media, &error))
        g_info ("atapi: closing the ejected medium: %s", error->message);
    }
  set_media (cd, NULL);
}

static void
close_media (GPtrArray *media)
{
  for (guint i = 0; i < media->len; i++)
    {
      g_autoptr (GError) error = NULL;
      if (!vmm_block_close (media->pdata[i], &error))
        g_info ("atapi: closing the ejected medium: %s", error->message);
    }
  g_ptr_array_unref (media);
}

static gboolean
close_media_idle (gpointer data)
{
  close_media (data);
  return G_SOURCE_REMOVE;
}

static gpointer
close_media_thread (gpointer data)
{
  close_media (data);
  return NULL;
}

/* The last request on an ejected medium has ended. Its completion is still
 * running (and vmm_block_close waits for it), so the close happens later,
 * on the I/O context (or a short-lived thread without one). */
static void
close_retired_later (atapi_cdrom *cd)
{
  if (!cd->retired->len)
    return;
  GPtrArray *media = cd->retired;
  cd->retired = g_ptr_array_new ();
  if (cd->close_context)
    {
      GSource *src = g_idle_source_new ();
      g_source_set_callback (src, close_media_idle, media, NULL);
      g_source_attach (src, cd->close_context);
      g_source_unref (src);
    }
  else
    g_thread_unref (g_thread_new ("atapi-close", close_media_thread, media));
}

gboolean
atapi_insert (atapi_cdrom *cd, VmmBlock *media, GError **error)
{
  g_return_val_if_fail (media != NULL, FALSE);
  g_mutex_lock (cd->lock);
  if (cd->media)
    {
      g_mutex_unlock (cd->lock);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   "the CD-ROM drive already holds a disc; eject it first");
      return FALSE;
    }
  set_media (cd, media);
  cd->unit_attention = true;
  cd->event = EVENT_NEW_MEDIA;
  g_mutex_unlock (cd->lock);
  return TRUE;
}

gboolean
atapi_eject (atapi_cdrom *cd, gboolean force, GError **error)
{
  g_mutex_lock (cd->lock);
  if (cd->locked && !force)
    {
      /* Like a press of the eject button on a locked drive: the guest
       * learns of it through GET EVENT STATUS NOTIFICATION (MMC-5 6.6,
       * media event 1h EjectRequest in table 146) and may unlock and
       * eject itself. */
      cd->event = EVENT_EJECT_REQUEST;
      g_mutex_unlock (cd->lock);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   "the guest has locked the CD-ROM tray");
      return FALSE;
    }
  /* A forced eject drops the guest's lock with the medium, as QEMU's does:
   * otherwise the next insert could never be taken out without force. */
  cd->locked = false;
  if (cd->media)
    cd->event = EVENT_MEDIA_REMOVAL;
  retire_media (cd);
  g_mutex_unlock (cd->lock);
  return TRUE;
}

bool
atapi_is_locked (atapi_cdrom *cd)
{
  g_mutex_lock (cd->lock);
  bool locked = cd->locked;
  g_mutex_unlock (cd->lock);
  return locked;
}

bool
atapi_has_media (atapi_cdrom *cd)
{
  g_mutex_lock (cd->lock);
  bool present = cd->media != NULL;
  g_mutex_unlock (cd->lock);
  return present;
}

void
atapi_set_tray_callback (atapi_cdrom *cd, atapi_tray_fn fn, void *opaque)
{
  g_mutex_lock (cd->lock);
  cd->tray_fn = fn;
  cd->tray_opaque = opaque;
  g_mutex_unlock (cd->lock);
}

atapi_cdrom *
atapi_cdrom_new (GMutex *lock, GMainContext *close_context, VmmBlock *media)
{
  atapi_cdrom *cd = g_new0 (atapi_cdrom, 1);
  cd->lock = lock;
  cd->close_context = close_context;
  cd->retired = g_ptr_array_new ();
  set_media (cd, media);
  return cd;
}

void
atapi_cdrom_free (atapi_cdrom *cd)
{
  if (!cd)
    return;
  cd->in_flight = 0;
  retire_media (cd);
  close_media (cd->retired);
  g_free (cd);
}

VmmBlock *
atapi_begin_io (atapi_cdrom *cd)
{
  if (!cd->media)
    return NULL;
  cd->in_flight++;
  return cd->media;
}

void
atapi_end_io (atapi_cdrom *cd, VmmBlock *media)
{
  g_return_if_fail (cd->in_flight > 0);
  if (--cd->in_flight == 0)
    close_retired_later (cd);
}

void
atapi_set_sense (atapi_cdrom *cd, uint8_t key, uint8_t asc, uint8_t ascq)
{
  cd->sense_key = key;
  cd->asc = asc;
  cd->ascq = ascq;
}

uint8_t
atapi_sense_key (atapi_cdrom *cd)
{
  return cd->sense_key;
}

void
atapi_reset (atapi_cdrom *cd, bool power_on)
{
  atapi_set_sense (cd, SENSE_NONE, 0, 0);
  cd->locked = false;
  if (power_on && cd->media)
    cd->unit_attention = true;
}

/* ---- command helpers ---- */

static void
fail (atapi_cdrom *cd, atapi_reply *r, uint8_t key, uint8_t asc)
{
  atapi_set_sense (cd, key, asc, 0);
  r->kind = ATAPI_REPLY_ERROR;
}

/* Copies a built response, trimmed to the allocation length. */
static void
reply_data (atapi_reply *r, uint32_t built, uint32_t alloc, size_t buf_size)
{
  r->kind = ATAPI_REPLY_DATA;
  r->len = (uint32_t) MIN ((size_t) MIN (built, alloc), buf_size);
}

static bool
media_is_dvd (const atapi_cdrom *cd)
{
  return cd->sectors > CD_MAX_SECTORS;
}

/* A scratch area larger than any response, so builders need no bounds
 * checks; the result is then trimmed into the caller's buffer. */
#define SCRATCH_SIZE 512

static uint32_t
build_inquiry (uint8_t *b)
{
  b[0] = 0x05; /* CD/DVD device */
  b[1] = 0x80; /* removable */
  b[2] = 0x05; /* SPC-3 */
  b[3] = 0x02; /* response data format 2 */
  b[4] = 31;
  memcpy (b + 8, "Vessel  ", 8);
  memcpy (b + 16, "DVD-ROM         ", 16);
  memcpy (b + 32, "1.0 ", 4);
  return 36;
}

static uint32_t
build_sense (const atapi_cdrom *cd, uint8_t *b)
{
  b[0] = 0x70; /* current error, fixed format */
  b[2] = cd->sense_key;
  b[7] = 10;
  b[12] = cd->asc;
  b[13] = cd->ascq;
  return 18;
}

static uint32_t
toc_descriptor (uint8_t *p, uint8_t track, uint64_t lba, bool msf)
{
  p[0] = 0;
  p[1] = 0x14; /* ADR 1, data track recorded uninterrupted */
  p[2] = track;
  p[3] = 0;
  if (msf)
    lba_to_msf (p + 4, lba);
  else
    put_be32 (p + 4, (uint32_t) lba);
  return 8;
}

static bool
build_toc (const atapi_cdrom *cd, const uint8_t *cdb, uint8_t *b,
           uint32_t *len)
{
  bool msf = cdb[1] & 0x02;
  unsigned format = cdb[2] & 0x0f;
  unsigned track = cdb[6];
  uint32_t n = 4;
  if (format == 0 && cdb[9] >> 6)
    format = cdb[9] >> 6; /* the pre-MMC place of the format field */
  switch (format)
    {
    case 0:
      if (track > 1 && track != 0xaa)
        return false;
      if (track <= 1)
        n += toc_descriptor (b + n, 1, 0, msf);
      n += toc_descriptor (b + n, 0xaa, cd->sectors, msf);
      b[2] = 1;
      b[3] = 1;
      break;
    case 1: /* session information */
      n += toc_descriptor (b + n, 1, 0, msf);
      b[2] = 1;
      b[3] = 1;
      break;
    default:
      return false;
    }
  put_be16 (b, (uint16_t) (n - 2));
  *len = n;
  return true;
}

/* One feature descriptor: code, version/persistent/current, data. */
static uint32_t
feature (uint8_t *p, uint16_t code, uint8_t flags, const uint8_t *data,
         uint8_t data_len)
{
  put_be16 (p, code);
  p[2] = flags;
  p[3] = data_len;
  memcpy (p + 4, data, data_len);
  return 4u + data_len;
}

static bool
build_configuration (const atapi_cdrom *cd, const uint8_t *cdb, uint8_t *b,
                     uint32_t *len)
{
  unsigned rt = cdb[1] & 0x03;
  unsigned start = get_be16 (cdb + 2);
  uint16_t profile = PROFILE_NONE;
  if (cd->media)
    profile = media_is_dvd (cd) ? PROFILE_DVD_ROM : PROFILE_CD_ROM;
  if (rt == 3)
    return false;

  struct
  {
    uint16_t code;
    bool current;
    uint8_t flags; /* version << 2 | persistent */
    uint8_t data[12];
    uint8_t len;
  } feats[] = {
    { 0x0000, true, 0x02,
      { PROFILE_DVD_ROM >> 8, PROFILE_DVD_ROM & 0xff,
        profile == PROFILE_DVD_ROM, 0, PROFILE_CD_ROM >> 8,
        PROFILE_CD_ROM & 0xff, profile == PROFILE_CD_ROM, 0 },
      8 },
    /* Core: ATAPI interface (2), DBE. */
    { 0x0001, true, 0x0a, { 0, 0, 0, 2, 1, 0, 0, 0 }, 8 },
    /* Morphing: OCEvent (polled event status). */
    { 0x0002, true, 0x06, { 0x02, 0, 0, 0 }, 4 },
    /* Removable medium: tray, eject, lock. */
    { 0x0003, true, 0x02, { 0x29, 0, 0, 0 }, 4 },
    /* Random readable: 2048-byte blocks, blocking 1. */
    { 0x0010, profile != PROFILE_NONE, 0x00,
      { 0, 0, ATAPI_SECTOR_SIZE >> 8, 0, 0, 1, 0, 0 }, 8 },
    /* DVD read. */
    { 0x001f, profile == PROFILE_DVD_ROM, 0x00, { 0 }, 0 },
  };

  uint32_t n = 8;
  for (unsigned i = 0; i < G_N_ELEMENTS (feats); i++)
    {
      if (feats[i].code < start)
        continue;
      if (rt == 1 && !feats[i].current)
        continue;
      if (rt == 2 && feats[i].code != start)
        continue;
      n += feature (b + n, feats[i].code,
                    feats[i].flags | (feats[i].current ? 1 : 0),
                    feats[i].data, feats[i].len);
    }
  put_be32 (b, n - 4);
  put_be16 (b + 6, profile);
  *len = n;
  return true;
}

static bool
build_event_status (atapi_cdrom *cd, const uint8_t *cdb, uint8_t *b,
                    uint32_t *len)
{
  if (!(cdb[1] & 0x01)) /* only polled operation */
    return false;
  b[3] = 0x10; /* supported: media class */
  if (!(cdb[4] & 0x10))
    {
      put_be16 (b, 2);
      b[2] = 0x80; /* no event available */
      *len = 4;
      return true;
    }
  put_be16 (b, 6);
  b[2] = 0x04; /* media class */
  b[4] = cd->event;
  b[5] = cd->media ? 0x02 : 0x00; /* media present */
  cd->event = EVENT_NONE;
  *len = 8;
  return true;
}

static uint32_t
mode_page (const atapi_cdrom *cd, unsigned page, bool changeable, uint8_t *p)
{
  switch (page)
    {
    case 0x01: /* read error recovery */
      p[0] = 0x01;
      p[1] = 0x0a;
      if (!changeable)
        p[3] = 5; /* read retry count */
      return 12;
    case 0x0d: /* CD device parameters */
      p[0] = 0x0d;
      p[1] = 0x06;
      if (!changeable)
        {
          p[5] = 60; /* S units per M unit */
          p[7] = 75; /* F units per S unit */
        }
      return 8;
    case 0x2a: /* CD/DVD capabilities and mechanical status */
      p[0] = 0x2a;
      p[1] = 0x14;
      if (changeable)
        return 22;
      p[2] = 0x3b; /* reads CD-R, CD-RW, method 2, DVD-ROM, DVD-R */
      p[3] = 0x00; /* writes nothing */
      p[4] = 0x71; /* audio play, composite, ports, multi-session */
      p[5] = 0x03; /* CD-DA commands, accurate stream */
      p[6] = 0x29 | (cd->locked ? 0x02 : 0); /* tray, eject, lock (+state) */
      p[7] = 0x00;
      put_be16 (p + 8, 8 * 176);  /* max speed, kB/s (obsolete) */
      put_be16 (p + 10, 2);       /* volume levels */
      put_be16 (p + 12, 512);     /* buffer, KiB */
      put_be16 (p + 14, 8 * 176); /* current speed (obsolete) */
      return 22;
    }
  return 0;
}

static bool
build_mode_sense (const atapi_cdrom *cd, const uint8_t *cdb, uint8_t *b,
                  uint32_t *len, uint8_t *asc)
{
  unsigned pc = cdb[2] >> 6;
  unsigned page = cdb[2] & 0x3f;
  uint32_t n = 8;
  *asc = ASC_INVALID_FIELD;
  if (pc == 3)
    {
      *asc = ASC_SAVING_NOT_SUPPORTED;
      return false;
    }
  if (page == 0x3f)
    {
      static const unsigned all[] = { 0x01, 0x0d, 0x2a };
      for (unsigned i = 0; i < G_N_ELEMENTS (all); i++)
        n += mode_page (cd, all[i], pc == 1, b + n);
    }
  else
    {
      uint32_t m = mode_page (cd, page, pc == 1, b + n);
      if (!m)
        return false;
      n += m;
    }
  put_be16 (b, (uint16_t) (n - 2));
  /* Medium type: 0x70 "door closed, no disc", else unknown (0). */
  b[2] = cd->media ? 0x00 : 0x70;
  *len = n;
  return true;
}

static uint32_t
build_disc_info (const atapi_cdrom *cd, uint8_t *b)
{
  put_be16 (b, 32);
  b[2] = 0x0e; /* last session complete, disc finalized */
  b[3] = 1;    /* first track */
  b[4] = 1;    /* sessions (LSB) */
  b[5] = 1;    /* first track in last session */
  b[6] = 1;    /* last track in last session */
  b[7] = 0x20; /* unrestricted use */
  b[8] = 0x00; /* CD-DA or CD-ROM disc */
  return 34;
}

static bool
build_track_info (const atapi_cdrom *cd, const uint8_t *cdb, uint8_t *b,
                  uint32_t *len)
{
  uint32_t number = get_be32 (cdb + 2);
  switch (cdb[1] & 0x03)
    {
    case 0: /* LBA */
      if (number >= cd->sectors)
        return false;
      break;
    case 1: /* track */
    case 2: /* session */
      if (number != 1)
        return false;
      break;
    default:
      return false;
    }
  put_be16 (b, 34);
  b[2] = 1;    /* track number (LSB) */
  b[3] = 1;    /* session number (LSB) */
  b[5] = 0x04; /* data track, uninterrupted */
  b[6] = 0x01; /* data mode 1 */
  put_be32 (b + 8, 0);                         /* track start */
  put_be32 (b + 24, (uint32_t) cd->sectors);   /* track size */
  put_be32 (b + 28, (uint32_t) cd->sectors);   /* last recorded address */
  *len = 36;
  return true;
}

static uint32_t
build_mechanism_status (const atapi_cdrom *cd, uint8_t *b)
{
  b[1] = cd->media ? 0x00 : 0x10; /* idle; door open when empty */
  return 8;
}

/* Commands that report a pending UNIT ATTENTION instead of running (all but
 * these, SPC-3 5.9.5 and MMC-5 6.6/6.8). */
static bool
reports_unit_attention (uint8_t op)
{
  return op != CMD_INQUIRY && op != CMD_REQUEST_SENSE
         && op != CMD_GET_CONFIGURATION && op != CMD_GET_EVENT_STATUS;
}

static bool
needs_media (uint8_t op)
{
  switch (op)
    {
    case CMD_TEST_UNIT_READY:
    case CMD_READ_CAPACITY:
    case CMD_READ_10:
    case CMD_READ_12:
    case CMD_SEEK_10:
    case CMD_READ_TOC:
    case CMD_READ_DISC_INFO:
    case CMD_READ_TRACK_INFO:
      return true;
    }
  return false;
}

void
atapi_execute (atapi_cdrom *cd, const uint8_t cdb[ATAPI_CDB_SIZE],
               uint8_t *buf, size_t buf_size, atapi_reply *r)
{
  uint8_t s[SCRATCH_SIZE] = { 0 };
  uint32_t n = 0;
  uint8_t op = cdb[0];
  uint8_t asc = ASC_INVALID_FIELD;

  *r = (atapi_reply){ .kind = ATAPI_REPLY_STATUS };
  if (op != CMD_REQUEST_SENSE)
    atapi_set_sense (cd, SENSE_NONE, 0, 0);
  if (cd->unit_attention && reports_unit_attention (op))
    {
      cd->unit_attention = false;
      fail (cd, r, SENSE_UNIT_ATTENTION, ASC_MEDIUM_MAY_HAVE_CHANGED);
      return;
    }
  if (!cd->media && needs_media (op))
    {
      fail (cd, r, SENSE_NOT_READY, ASC_MEDIUM_NOT_PRESENT);
      return;
    }

  switch (op)
    {
    case CMD_TEST_UNIT_READY:
    case CMD_SET_CD_SPEED:
      return;

    case CMD_REQUEST_SENSE:
      n = build_sense (cd, s);
      atapi_set_sense (cd, SENSE_NONE, 0, 0);
      reply_data (r, n, cdb[4], buf_size);
      break;

    case CMD_INQUIRY:
      if (cdb[1] & 0x01) /* EVPD: no vital product data pages */
        goto invalid_field;
      n = build_inquiry (s);
      reply_data (r, n, get_be16 (cdb + 3), buf_size);
      break;

    case CMD_READ_CAPACITY:
      put_be32 (s, (uint32_t) (cd->sectors ? cd->sectors - 1 : 0));
      put_be32 (s + 4, ATAPI_SECTOR_SIZE);
      reply_data (r, 8, 8, buf_size);
      break;

    case CMD_READ_10:
    case CMD_READ_12:
      {
        uint64_t lba = get_be32 (cdb + 2);
        uint32_t count = op == CMD_READ_10 ? get_be16 (cdb + 7)
                                           : get_be32 (cdb + 6);
        if (lba > cd->sectors || count > cd->sectors - lba)
          {
            fail (cd, r, SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
            return;
          }
        if (count == 0)
          return;
        r->kind = ATAPI_REPLY_READ;
        r->lba = lba;
        r->sectors = count;
        return;
      }

    case CMD_SEEK_10:
      if (get_be32 (cdb + 2) >= cd->sectors)
        {
          fail (cd, r, SENSE_ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE);
          return;
        }
      return;

    case CMD_READ_TOC:
      if (!build_toc (cd, cdb, s, &n))
        goto invalid_field;
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_GET_CONFIGURATION:
      if (!build_configuration (cd, cdb, s, &n))
        goto invalid_field;
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_GET_EVENT_STATUS:
      if (!build_event_status (cd, cdb, s, &n))
        goto invalid_field;
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_MODE_SENSE_10:
      if (!build_mode_sense (cd, cdb, s, &n, &asc))
        {
          fail (cd, r, SENSE_ILLEGAL_REQUEST, asc);
          return;
        }
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_START_STOP_UNIT:
      if ((cdb[4] & 0x03) == 0x02) /* LoEj without Start: eject */
        {
          if (cd->locked)
            {
              atapi_set_sense (cd, SENSE_ILLEGAL_REQUEST,
                               ASC_MEDIUM_REMOVAL_PREVENTED, 0x02);
              r->kind = ATAPI_REPLY_ERROR;
              return;
            }
          if (cd->media)
            {
              cd->event = EVENT_MEDIA_REMOVAL;
              retire_media (cd);
              if (cd->tray_fn)
                cd->tray_fn (cd->tray_opaque, cd);
            }
        }
      return;

    case CMD_PREVENT_ALLOW:
      cd->locked = cdb[4] & 0x01;
      return;

    case CMD_READ_DISC_INFO:
      if (cdb[1] & 0x07) /* only standard disc information */
        goto invalid_field;
      n = build_disc_info (cd, s);
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_READ_TRACK_INFO:
      if (!build_track_info (cd, cdb, s, &n))
        goto invalid_field;
      reply_data (r, n, get_be16 (cdb + 7), buf_size);
      break;

    case CMD_MECHANISM_STATUS:
      n = build_mechanism_status (cd, s);
      reply_data (r, n, get_be16 (cdb + 8), buf_size);
      break;

    default:
      fail (cd, r, SENSE_ILLEGAL_REQUEST, ASC_INVALID_COMMAND);
      return;
    }
  g_assert (n <= sizeof s);
  if (r->len == 0)
    r->kind = ATAPI_REPLY_STATUS;
  else
    memcpy (buf, s, r->len);
  return;

invalid_field:
  fail (cd, r, SENSE_ILLEGAL_REQUEST, ASC_INVALID_FIELD);
}

/* ---- state ---- */

void
atapi_save (atapi_cdrom *cd, GByteArray *out)
{
  vmm_state_put_u8 (out, cd->sense_key);
  vmm_state_put_u8 (out, cd->asc);
  vmm_state_put_u8 (out, cd->ascq);
  vmm_state_put_bool (out, cd->unit_attention);
  vmm_state_put_bool (out, cd->locked);
  vmm_state_put_u8 (out, cd->event);
}

void
atapi_load (vmm_state_reader *r, atapi_saved *s)
{
  s->sense_key = vmm_state_get_u8 (r);
  s->asc = vmm_state_get_u8 (r);
  s->ascq = vmm_state_get_u8 (r);
  s->unit_attention = vmm_state_get_bool (r);
  s->locked = vmm_state_get_bool (r);
  s->event = vmm_state_get_u8 (r);
  vmm_state_check (r, s->sense_key <= 0x0f, "ATAPI sense key");
  vmm_state_check (r, s->event <= EVENT_MEDIA_REMOVAL, "ATAPI media event");
}

void
atapi_commit (atapi_cdrom *cd, const atapi_saved *s)
{
  atapi_set_sense (cd, s->sense_key, s->asc, s->ascq);
  /* The medium may differ from the one at save time: tell the guest. */
  cd->unit_attention = s->unit_attention;
  cd->locked = s->locked;
  cd->event = s->event;
}
