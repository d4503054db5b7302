/* A CFI parallel flash (x8, Intel/Sharp command set) backed by a file: the
 * writable UEFI variable store (OVMF_VARS.fd) that OVMF's
 * QemuFlashFvbServicesRuntimeDxe drives, or a read-only code flash.
 *
 * In read-array mode the board maps pflash_array() as a read-only KVM slot,
 * so guest reads cost no exit and writes (commands) still come to the
 * device through the MMIO bus. When a command takes the device out of
 * read-array mode, the mapping callback asks the board to remove the slot
 * so that reads of status, ID and CFI data reach the device; it asks for the
 * slot again when the device returns to read-array mode. */
#pragma once

#include "vmm-core/bus/bus.h"

G_BEGIN_DECLS

/* The erase block size OVMF's flash driver assumes
 * (PcdOvmfFirmwareBlockSize). */
#define PFLASH_BLOCK_SIZE 4096u
/* The largest store accepted: QEMU's PC board takes 8 MiB of flash in all,
 * so no OVMF build has a bigger variable store. */
#define PFLASH_MAX_SIZE (8u << 20)

typedef struct pflash pflash;

/* The device left (@array false) or entered (@array true) read-array mode;
 * called with the device's lock held, from whichever thread wrote the
 * command (usually a vCPU thread). */
typedef void (*pflash_array_fn) (void *opaque, pflash *p, bool array);

/* Opens @path (read-write unless @readonly) and reads it into memory. The
 * size must be a non-zero multiple of PFLASH_BLOCK_SIZE up to
 * PFLASH_MAX_SIZE. Errors name the file and what is wrong with it. */
pflash *pflash_open (const char *name, const char *path, bool readonly,
                     GError **error);
/* The checks pflash_open makes, without keeping the file: for front ends
 * that report a bad image before building a machine. @size may be NULL. */
gboolean pflash_check_file (const char *path, bool readonly, size_t *size,
                            GError **error);
vmm_device *pflash_device (pflash *p);
void pflash_set_array_handler (pflash *p, pflash_array_fn fn, void *opaque);
/* Claims [base, base + size) on @mmio. */
gboolean pflash_attach (pflash *p, vmm_bus *mmio, uint64_t base,
                        GError **error);

/* The flash contents (page-aligned, pflash_size() bytes): what a read-array
 * slot maps. Programs and erases change it while the slot is away. */
uint8_t *pflash_array (pflash *p);
size_t pflash_size (pflash *p);
bool pflash_in_array_mode (pflash *p);

/* Pushes every change to the file to stable storage (fdatasync). */
gboolean pflash_flush (pflash *p, GError **error);

G_END_DECLS
