/* The PC chipset and legacy devices the board wires together: the i440FX
 * host bridge (PAM), the PIIX3 ISA bridge (PIRQ routing, reset control at
 * 0xCF9), the PIIX4 power-management function (ACPI PM block, SCI), the
 * i8042 keyboard controller and System Control Port A. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/kvm/clock.h"

typedef struct pc_board_callbacks {
  void *opaque;
  void (*reset_request) (void *opaque);
  void (*poweroff_request) (void *opaque);
  void (*pam_changed) (void *opaque, unsigned segment, unsigned mode);
  void (*set_gsi) (void *opaque, unsigned gsi, bool level);
} pc_board_callbacks;

typedef struct pc_board {
  pc_board_callbacks cb;
  vmm_pci_host *pci;
  struct i440fx *i440fx;
  struct piix3 *piix3;
  struct piix4_pm *pm;
  struct i8042 *i8042;
  struct port92 *port92;
  uint16_t pm_base;
  bool direct_boot;
  /* How many functions assert each PIRQ. Devices raise and lower INTx from
   * vCPU threads and the I/O thread at once: under pirq_lock, which also
   * keeps the GSI changes in the order the counts changed. */
  GMutex pirq_lock;
  uint8_t pirq_level[4];
} pc_board;

/* @direct_boot: no firmware will run, so the board programs what firmware
 * would (the PM block's base address, SCI enable). */
gboolean pc_board_init (pc_board *b, vmm_bus *pio, vmm_pci_host *pci,
                        vmm_clock *clock, const pc_board_callbacks *cb,
                        uint16_t pm_base, bool direct_boot, GError **error);
void pc_board_reset (pc_board *b);
void pc_board_destroy (pc_board *b);
/* A PCI function's INTx, swizzled onto the PIRQ lines. */
void pc_board_route_intx (pc_board *b, unsigned devfn, unsigned pin,
                          bool level);
void pc_board_power_button (pc_board *b);
