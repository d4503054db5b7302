/* What the user picked as the new machine's source: an installation
 * medium (an ISO 9660 image) or a disk image (qcow2, or raw), with the
 * disk image's format and virtual size. No GTK here (unit-tested with the
 * detection). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
  VESSEL_SOURCE_ISO,
  VESSEL_SOURCE_DISK,
} VesselSourceKind;

typedef struct {
  VesselSourceKind kind;
  char *format;         /* disks: "qcow2" or "raw" */
  guint64 virtual_size; /* disks: bytes the guest sees */
  guint64 file_size;    /* bytes on the host */
} VesselSource;

void vessel_source_clear (VesselSource *source);

/* Looks at the file: an ISO 9660 image (CD001 at sector 16), a qcow2 image
 * (opened and checked enough to know its size), or a raw disk image (named
 * .img/.raw/.bin and a whole number of 512-byte sectors). Anything else,
 * an unreadable file or a truncated or damaged image is an error whose
 * message says what is wrong. Blocking. */
gboolean vessel_source_probe (const char *path, VesselSource *out,
                              GError **error);

/* "2 GiB", "512 MiB": sizes as the assistant shows them (a copy). */
char *vessel_source_format_size (guint64 bytes);

G_END_DECLS
