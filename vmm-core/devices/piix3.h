/* PIIX3 PCI-to-ISA bridge (PCI 8086:7000, function 00:01.0): PIRQ routing,
 * the ELCR edge/level registers at 0x4D0/0x4D1 and the Reset Control
 * register at 0xCF9. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/devices/isa.h"

G_BEGIN_DECLS

#define PIIX3_DEVFN VMM_PCI_DEVFN (1, 0)
#define PIIX3_ELCR_PORT 0x4d0
#define PIIX3_NUM_PIRQS 4

typedef struct piix3 piix3;

/* The guest rerouted PIRQ @pirq (0 = PIRQA#) to ISA IRQ @irq, or -1 for
 * disabled. Called with the bridge's lock held: move any asserted level
 * with the value given, without calling back into the bridge. */
typedef void (*piix3_pirq_changed_fn) (void *opaque, unsigned pirq, int irq);

/* @reset_request: 0xCF9 writes (VMM_RESET_SYSTEM with SYS_RST,
 * VMM_RESET_CPU without). @pirq_changed may be NULL. */
piix3 *piix3_create (vmm_reset_request_fn reset_request,
                     piix3_pirq_changed_fn pirq_changed, void *opaque);
vmm_device *piix3_device (piix3 *p);
vmm_pci_device *piix3_pci (piix3 *p);
/* Places the bridge at PIIX3_DEVFN, claims the ELCR ports on @pio and takes
 * the 0xCF9 byte from the PCI host's 0xCF8 dword. */
gboolean piix3_attach (piix3 *p, vmm_pci_host *host, vmm_bus *pio,
                       GError **error);

/* The ISA IRQ that PIRQ @pirq (0..3) is routed to, or -1 when routing is
 * disabled (bit 7) or names a reserved IRQ. Takes the lock. */
int piix3_pirq_to_irq (piix3 *p, unsigned pirq);
/* ELCR: whether the guest marked ISA IRQ @irq level-triggered. */
bool piix3_irq_is_level (piix3 *p, unsigned irq);

G_END_DECLS
