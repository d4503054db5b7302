/* i440FX host bridge (PCI 8086:1237, 00:00.0): the PAM registers that
 * shadow the BIOS areas below 1 MiB, and SMRAM control. */
#pragma once

#include "vmm-core/bus/pci.h"

G_BEGIN_DECLS

#define I440FX_DEVFN VMM_PCI_DEVFN (0, 0)
/* Segment 0 is 0xF0000-0xFFFFF (64 KiB); segments 1..12 are the 16 KiB
 * blocks of 0xC0000-0xEFFFF in address order. */
#define I440FX_PAM_SEGMENTS 13

typedef enum {
  I440FX_PAM_DISABLED = 0,   /* reads and writes go to ROM/PCI */
  I440FX_PAM_READ_ONLY = 1,  /* reads from RAM, writes to ROM/PCI */
  I440FX_PAM_WRITE_ONLY = 2, /* reads from ROM/PCI, writes to RAM */
  I440FX_PAM_READ_WRITE = 3, /* RAM */
} i440fx_pam_mode;

typedef struct i440fx i440fx;

/* A segment's attribute changed: remap that range of guest memory. Called
 * with the bridge's lock held (see isa.h on board callbacks; remapping
 * memory from it is fine, calling back into the bridge is not). */
typedef void (*i440fx_pam_changed_fn) (void *opaque, unsigned segment,
                                       i440fx_pam_mode mode);

i440fx *i440fx_create (i440fx_pam_changed_fn pam_changed, void *opaque);
vmm_device *i440fx_device (i440fx *fx);
vmm_pci_device *i440fx_pci (i440fx *fx);
/* Places the bridge at 00:00.0. */
gboolean i440fx_attach (i440fx *fx, vmm_pci_host *host, GError **error);

/* The range a segment covers. */
void i440fx_pam_segment_range (unsigned segment, uint64_t *base,
                               uint64_t *size);
/* Current attribute and SMRAM register (take the lock). */
i440fx_pam_mode i440fx_pam_mode_get (i440fx *fx, unsigned segment);
uint8_t i440fx_smram (i440fx *fx);

G_END_DECLS
