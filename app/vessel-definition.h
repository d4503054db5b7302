/* A machine's definition: a libvirt domain XML document, read and written
 * through libvirt-gconfig, and its translation into the engine's config.
 *
 * What libvirt knows (name, memory, vCPUs, disks, the CD-ROM, boot order,
 * VNC and SPICE graphics) lives where libvirt puts it, so the file is a
 * valid domain another libvirt host could run; what only Vessel knows (the
 * operating system's name, when the machine was made) lives under
 * <metadata> in Vessel's own namespace. No GTK here: the definitions are
 * tested without a display. */
#pragma once

#include "vmm-core/machine/machine.h"

#include <glib.h>
#include <libvirt-gconfig/libvirt-gconfig.h>

G_BEGIN_DECLS

/* libvirt-gconfig 4.0 declares no autoptr cleanups of its own. */
#ifndef VESSEL_GVIR_AUTOPTR_DEFINED
#define VESSEL_GVIR_AUTOPTR_DEFINED
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GVirConfigDomain, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GVirConfigDomainOs, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GVirConfigDomainDiskDriver, g_object_unref)
#endif

#define VESSEL_XMLNS_URI "https://vessel-vm.org/xmlns/machine/1"
#define VESSEL_XMLNS_PREFIX "vessel"

#define VESSEL_DEFINITION_ERROR (vessel_definition_error_quark ())
GQuark vessel_definition_error_quark (void);

typedef enum {
  VESSEL_DEFINITION_ERROR_INVALID,     /* not a domain we can run */
  VESSEL_DEFINITION_ERROR_UNSUPPORTED, /* a device Vessel does not have */
} VesselDefinitionError;

/* A remote display export (<graphics type="vnc|spice">). */
typedef struct {
  gboolean enabled;
  char *address; /* listen address; NULL means loopback */
  int port;      /* 0: not chosen yet */
  char *password; /* NULL: no authentication */
} VesselExport;

void vessel_export_clear (VesselExport *e);

typedef enum {
  VESSEL_EXPORT_VNC,
  VESSEL_EXPORT_SPICE,
} VesselExportKind;

/* A new machine: KVM, x86_64 "pc", the std VGA, a virtio tablet, COM1 and
 * an empty CD-ROM drive; CD-ROM first in the boot order. @name must be a
 * valid libvirt name (vessel_definition_make_name makes one from a title). */
GVirConfigDomain *vessel_definition_new (const char *name, const char *title,
                                         guint64 memory_bytes, guint cpus);
/* A libvirt-safe name from what the user typed: letters, digits, '-', '_'
 * and '.', never empty. */
char *vessel_definition_make_name (const char *title);

/* Reads and checks a definition (a domain we can run). */
GVirConfigDomain *vessel_definition_load (const char *path, GError **error);
/* Writes atomically (a temporary file renamed over the old one). */
gboolean vessel_definition_save (GVirConfigDomain *domain, const char *path,
                                 GError **error);

/* The title when set, else the name. */
const char *vessel_definition_get_title (GVirConfigDomain *domain);
guint64 vessel_definition_get_memory (GVirConfigDomain *domain); /* bytes */
void vessel_definition_set_memory (GVirConfigDomain *domain, guint64 bytes);
guint vessel_definition_get_cpus (GVirConfigDomain *domain);
void vessel_definition_set_cpus (GVirConfigDomain *domain, guint cpus);

/* The ISO in the CD-ROM drive (a copy), or NULL when it is empty. */
char *vessel_definition_get_cdrom (GVirConfigDomain *domain);
/* Puts @iso (NULL: nothing) in the drive, adding the drive if missing. */
void vessel_definition_set_cdrom (GVirConfigDomain *domain, const char *iso);
/* Adds a hard disk: @format "qcow2" or "raw", @virtio or IDE. */
void vessel_definition_add_disk (GVirConfigDomain *domain, const char *path,
                                 const char *format, gboolean virtio);
/* The hard disks' image paths, in definition order. */
GStrv vessel_definition_get_disks (GVirConfigDomain *domain);

/* Whether the CD-ROM comes before the disks in the boot order. */
gboolean vessel_definition_get_boot_cdrom_first (GVirConfigDomain *domain);
void vessel_definition_set_boot_cdrom_first (GVirConfigDomain *domain,
                                             gboolean cdrom_first);

/* UEFI firmware in libvirt's split-flash form: <os firmware='efi'> with
 * <loader readonly='yes' type='pflash'>@code</loader> and
 * <nvram>@vars</nvram> (the machine's own variable store). A NULL @code
 * goes back to BIOS (SeaBIOS): the three are removed. */
void vessel_definition_set_uefi (GVirConfigDomain *domain, const char *code,
                                 const char *vars);
/* Whether the machine boots UEFI; @code and @vars (copies, NULL when not
 * set) may be NULL. */
gboolean vessel_definition_get_uefi (GVirConfigDomain *domain, char **code,
                                     char **vars);

/* Remote display exports. */
void vessel_definition_get_export (GVirConfigDomain *domain,
                                   VesselExportKind kind, VesselExport *out);
void vessel_definition_set_export (GVirConfigDomain *domain,
                                   VesselExportKind kind,
                                   const VesselExport *e);
/* A remote-viewer URI (vnc://host:port or spice://host:port), or NULL when
 * the export is off. */
char *vessel_export_uri (VesselExportKind kind, const VesselExport *e);

/* Vessel's own settings under <metadata>: simple string values by key
 * ("os", "created", ...). NULL removes. */
char *vessel_definition_get_meta (GVirConfigDomain *domain, const char *key);
void vessel_definition_set_meta (GVirConfigDomain *domain, const char *key,
                                 const char *value);

/* The engine's view of a definition; strings owned by the struct. */
typedef struct {
  vmm_machine_config machine;
  vmm_disk_config disks[VMM_MACHINE_MAX_DISKS];
  vmm_nic_config nics[VMM_MACHINE_MAX_NICS]; /* from <interface type='user'> */
  VesselExport vnc;
  VesselExport spice;
  GPtrArray *strings; /* private */
  guint n_cdroms;     /* private */
} VesselEngineConfig;

gboolean vessel_definition_to_engine (GVirConfigDomain *domain,
                                      VesselEngineConfig *out, GError **error);
void vessel_engine_config_clear (VesselEngineConfig *cfg);

G_END_DECLS
