/* PIIX4 power management (PCI 8086:7113, function 00:01.3): the ACPI fixed
 * hardware block at PMBASE (PM1 event/control, PM timer, GPE0), the SCI on
 * IRQ 9, and the APM control/status ports 0xB2/0xB3. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/irq.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/kvm/clock.h"

G_BEGIN_DECLS

#define PIIX4_PM_DEVFN VMM_PCI_DEVFN (1, 3)
#define PIIX4_PM_SCI_IRQ 9
#define PIIX4_PM_IO_SIZE 64
#define PIIX4_PM_APM_PORT 0xb2 /* APMC; APMS at 0xb3 */
/* SMI_CMD values for the FADT: with no SMM, writing these to APMC sets or
 * clears SCI_EN directly (what a chipset's SMI handler would do). */
#define PIIX4_PM_ACPI_ENABLE 0xf1
#define PIIX4_PM_ACPI_DISABLE 0xf0
/* Offsets in the PM I/O block, for the ACPI tables. */
#define PIIX4_PM_PM1_EVT 0x00 /* 4 bytes: PM1_STS, PM1_EN */
#define PIIX4_PM_PM1_CNT 0x04 /* 2 bytes */
#define PIIX4_PM_PM_TMR 0x08  /* 4 bytes, 24-bit counter */
#define PIIX4_PM_GPE0 0x0c    /* 4 bytes: GPE0_STS, GPE0_EN */
#define PIIX4_PM_TIMER_HZ 3579545

typedef struct piix4_pm piix4_pm;

/* The guest wrote SLP_EN with SLP_TYP 0 (soft off, S5). Called with the
 * device's lock held; see isa.h on board callbacks. */
typedef void (*piix4_pm_poweroff_fn) (void *opaque);

/* @pio is where PMBASE places the PM block (and the APM ports go). */
piix4_pm *piix4_pm_create (vmm_bus *pio, vmm_clock *clock,
                           const vmm_irq *sci, piix4_pm_poweroff_fn poweroff,
                           void *opaque);
vmm_device *piix4_pm_device (piix4_pm *pm);
vmm_pci_device *piix4_pm_pci (piix4_pm *pm);
/* Places the function at @devfn (PIIX4_PM_DEVFN) and claims 0xB2/0xB3. */
gboolean piix4_pm_attach (piix4_pm *pm, vmm_pci_host *host, unsigned devfn,
                          GError **error);

/* Host side (take the lock): press the power button (PWRBTN_STS, SCI);
 * raise a general-purpose event (GPE0_STS bit 0..15). */
void piix4_pm_power_button (piix4_pm *pm);
void piix4_pm_set_gpe (piix4_pm *pm, unsigned bit);
/* Where the PM block is decoded now, or 0 when it is not. */
uint16_t piix4_pm_io_base (piix4_pm *pm);

G_END_DECLS
