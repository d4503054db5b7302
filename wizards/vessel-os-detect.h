/* What an installation medium is: libosinfo identifies an ISO against
 * osinfo-db and gives the operating system's name and the resources it
 * recommends; media it does not know get safe defaults. No GTK here: it is
 * tested on its own (tests/unit/test-os-detect.c). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Safe defaults for media nobody recognised. */
#define VESSEL_OS_DEFAULT_MEMORY (G_GUINT64_CONSTANT (2) << 30)
#define VESSEL_OS_DEFAULT_CPUS 2
#define VESSEL_OS_DEFAULT_DISK (G_GUINT64_CONSTANT (20) << 30)

typedef struct {
  gboolean recognised;
  char *os_id;    /* osinfo-db's id (a URI), or NULL */
  char *short_id; /* "debian11", or NULL */
  char *name;     /* "Debian 11", or NULL */
  char *logo;     /* a logo URI from osinfo-db, or NULL */
  char *volume_id; /* the ISO's volume label, or NULL */
  guint64 memory;  /* bytes */
  guint cpus;
  guint64 disk; /* bytes */
} VesselOsInfo;

void vessel_os_info_free (VesselOsInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VesselOsInfo, vessel_os_info_free)

/* Safe defaults, recognised FALSE. */
VesselOsInfo *vessel_os_info_new_default (void);

/* Identifies the ISO at @path. A readable ISO that osinfo-db does not know
 * is no error (recognised FALSE, defaults); a file that is no ISO 9660
 * image is (G_IO_ERROR_INVALID_DATA, with a message a user can act on).
 * Blocking: reads the image and loads osinfo-db. */
VesselOsInfo *vessel_os_detect (const char *path, GError **error);

G_END_DECLS
