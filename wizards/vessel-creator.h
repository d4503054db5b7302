/* Makes a new machine from the assistant's choices: the definition in the
 * library and its disk (a new qcow2 image, a qcow2 overlay on an image the
 * user keeps untouched, or a qcow2 copy of it). No widgets: the assistant
 * collects the choices, this makes the machine (GNOME Boxes' vm-creator).
 * A creation that fails removes what it made. */
#pragma once

#include "app/vessel-library.h"

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct {
  char *title;
  char *iso;         /* the installation medium, or NULL */
  char *disk_image;  /* an existing disk image, or NULL */
  char *disk_format; /* its format ("qcow2", "raw") */
  guint64 disk_image_size; /* its virtual size */
  gboolean copy;     /* copy the image instead of an overlay on it */
  char *os_name;     /* shown in the library; NULL: unknown */
  char *os_id;       /* osinfo-db's id, or NULL */
  guint64 memory;    /* bytes */
  guint cpus;
  guint64 disk_size; /* a new blank disk (no disk_image); 0: none */
  char *uefi_firmware; /* OVMF's code image for UEFI, NULL: BIOS */
  char *uefi_vars_template; /* OVMF_VARS_4M.fd: copied to the machine's
                             * own UUID_VARS.fd beside its definition */
} VesselCreateSpec;

void vessel_create_spec_clear (VesselCreateSpec *spec);

/* Whether a machine titled @title is in the library already. */
gboolean vessel_creator_title_taken (VesselLibrary *library,
                                     const char *title);

/* Writes the definition at once; the UEFI variable store and the disk are
 * made on a worker thread (a copy can take minutes); then the disk goes
 * into the definition.
 * Installing from an ISO: the CD first in the boot order and the machine
 * marked "installing" (see vessel_machine_finish_install). */
void vessel_creator_create_async (VesselLibrary *library,
                                  const VesselCreateSpec *spec,
                                  GCancellable *cancellable,
                                  GAsyncReadyCallback callback,
                                  gpointer user_data);
VesselMachine *vessel_creator_create_finish (VesselLibrary *library,
                                             GAsyncResult *result,
                                             GError **error);

/* The disk step alone (blocking): a new image, an overlay on
 * @spec->disk_image, or a copy of it, at @path. */
gboolean vessel_creator_make_disk (const VesselCreateSpec *spec,
                                   const char *path,
                                   GCancellable *cancellable,
                                   GError **error);

G_END_DECLS
