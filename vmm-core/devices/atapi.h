/* An ATAPI CD/DVD-ROM drive: the MMC-5 / SPC-3 packet command set, the
 * medium (a VmmBlock of 2048-byte sectors), sense data, the tray lock and
 * media events. Transport-agnostic: ide.c carries the packets over the ATA
 * PACKET protocol (PIO or bus-master DMA) and moves the sector data.
 *
 * Locking: the drive lives inside its controller and shares the
 * controller's device lock. The atapi_insert/eject/is_locked/has_media
 * calls are the host side and take that lock; everything below the
 * "transport" line is called by the controller with the lock held. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm-core/block/block.h"

G_BEGIN_DECLS

#define ATAPI_SECTOR_SIZE 2048
#define ATAPI_CDB_SIZE 12

typedef struct atapi_cdrom atapi_cdrom;

/* ---- host side (takes the controller's lock) ---- */

/* Puts @media in the drive, closing the tray. The drive takes ownership of
 * @media on success (it is closed on eject or when the controller is
 * destroyed); on failure the caller keeps it. Fails when a medium is
 * already inserted. The guest sees UNIT ATTENTION (06/28) once and a "new
 * media" event. */
gboolean atapi_insert (atapi_cdrom *cd, VmmBlock *media, GError **error);
/* Removes the medium (closing its VmmBlock once no request uses it).
 * Refused with G_IO_ERROR_BUSY "the guest has locked the CD-ROM tray" when
 * the guest has prevented medium removal, unless @force; the guest then sees
 * an eject request event. A forced eject also unlocks the tray. Ejecting an
 * empty drive succeeds. */
gboolean atapi_eject (atapi_cdrom *cd, gboolean force, GError **error);
bool atapi_is_locked (atapi_cdrom *cd);
bool atapi_has_media (atapi_cdrom *cd);

/* Called (with the controller's lock held) when the guest ejects the medium
 * with START STOP UNIT; record and act later, as for board callbacks. */
typedef void (*atapi_tray_fn) (void *opaque, atapi_cdrom *cd);
void atapi_set_tray_callback (atapi_cdrom *cd, atapi_tray_fn fn,
                              void *opaque);

/* ---- transport (controller's lock held) ---- */

/* @close_context: where ejected media still in use by a request are closed
 * once it ends (the I/O context that runs block completions). */
atapi_cdrom *atapi_cdrom_new (GMutex *lock, GMainContext *close_context,
                              VmmBlock *media);
/* Closes the medium and any retired one; the caller has drained I/O. */
void atapi_cdrom_free (atapi_cdrom *cd);

typedef enum {
  ATAPI_REPLY_STATUS, /* good status, no data */
  ATAPI_REPLY_DATA,   /* @len bytes of data-in in the caller's buffer */
  ATAPI_REPLY_READ,   /* data-in of @sectors sectors from @lba */
  ATAPI_REPLY_ERROR,  /* CHECK CONDITION: the sense is set */
} atapi_reply_kind;

typedef struct atapi_reply {
  atapi_reply_kind kind;
  uint32_t len;
  uint64_t lba;
  uint32_t sectors;
} atapi_reply;

/* Runs one command. Replies of kind DATA are written to @buf (at most
 * @buf_size bytes, never more than the CDB's allocation length). */
void atapi_execute (atapi_cdrom *cd, const uint8_t cdb[ATAPI_CDB_SIZE],
                    uint8_t *buf, size_t buf_size, atapi_reply *reply);

/* The medium for a data transfer, with a use count held until
 * atapi_end_io (so an eject does not close it under a request); NULL when
 * the drive is empty. */
VmmBlock *atapi_begin_io (atapi_cdrom *cd);
void atapi_end_io (atapi_cdrom *cd, VmmBlock *media);
/* A read of the medium failed or the transport failed (03/11/00 unrecovered
 * read error, 0B/00/00 aborted command, …). */
void atapi_set_sense (atapi_cdrom *cd, uint8_t key, uint8_t asc,
                      uint8_t ascq);
uint8_t atapi_sense_key (atapi_cdrom *cd);
/* Guest-visible state apart from the medium, and a reset (DEVICE RESET,
 * SRST, the board's reset: the lock is released, sense cleared). */
void atapi_reset (atapi_cdrom *cd, bool power_on);
void atapi_save (atapi_cdrom *cd, GByteArray *out);
/* Parses into a copy; commits with atapi_commit only when the whole blob of
 * the controller is valid. */
typedef struct atapi_saved {
  uint8_t sense_key, asc, ascq;
  bool unit_attention;
  bool locked;
  uint8_t event; /* pending media event code */
} atapi_saved;
struct vmm_state_reader;
void atapi_load (struct vmm_state_reader *r, atapi_saved *s);
void atapi_commit (atapi_cdrom *cd, const atapi_saved *s);

G_END_DECLS
