/* The PC chipset wiring: which device sits where, and the signals between
 * them and the board (reset, power-off, PAM, interrupts). */
#include "vmm-core/machine/pc-board.h"

#include "vmm-core/devices/i440fx.h"
#include "vmm-core/devices/i8042.h"
#include "vmm-core/devices/piix3.h"
#include "vmm-core/devices/piix4-pm.h"
#include "vmm-core/devices/port92.h"

#include <string.h>

/* PIRQ lines of the PIIX3 also drive I/O APIC pins 16-19, which is what the
 * DSDT's _PRT tells an APIC-mode OS (slot S pin P: 16 + ((S + P) & 3)). */
#define PC_PIRQ_GSI_BASE 16

static void
board_pam_changed (void *opaque, unsigned segment, i440fx_pam_mode mode)
{
  pc_board *b = opaque;
  b->cb.pam_changed (b->cb.opaque, segment, (unsigned) mode);
}

static void
board_poweroff (void *opaque)
{
  pc_board *b = opaque;
  b->cb.poweroff_request (b->cb.opaque);
}

/* Every reset source (0xCF9, the keyboard controller's pulse, port 0x92)
 * resets the whole machine: firmware expects that of a PC in practice. */
static void
board_reset_request (void *opaque, vmm_reset_kind kind)
{
  pc_board *b = opaque;
  b->cb.reset_request (b->cb.opaque);
}

/* KVM keeps A20 enabled; the gate's state is only recorded by the devices. */
static void
board_a20_changed (void *opaque, bool enabled)
{
}

static void
board_set_gsi (void *opaque, unsigned gsi, bool level)
{
  pc_board *b = opaque;
  b->cb.set_gsi (b->cb.opaque, gsi, level);
}

/* What firmware would have programmed before a directly booted kernel runs:
 * the PM block at its base, its I/O space enabled. */
static void
board_program_like_firmware (pc_board *b)
{
  vmm_pci_config_write (b->pci, 0, PIIX4_PM_DEVFN, 0x40, 4,
                        (uint32_t) b->pm_base | 1);
  vmm_pci_config_write (b->pci, 0, PIIX4_PM_DEVFN, 0x80, 1, 1);
  vmm_pci_config_write (b->pci, 0, PIIX4_PM_DEVFN, PCI_CFG_INTERRUPT_LINE, 1,
                        PIIX4_PM_SCI_IRQ);
}

gboolean
pc_board_init (pc_board *b, vmm_bus *pio, vmm_pci_host *pci, vmm_clock *clock,
               const pc_board_callbacks *cb, uint16_t pm_base,
               bool direct_boot, GError **error)
{
  memset (b, 0, sizeof *b);
  g_mutex_init (&b->pirq_lock);
  b->cb = *cb;
  b->pci = pci;
  b->pm_base = pm_base;
  b->direct_boot = direct_boot;

  b->i440fx = i440fx_create (board_pam_changed, b);
  if (!i440fx_attach (b->i440fx, pci, error))
    return FALSE;

  b->piix3 = piix3_create (board_reset_request, NULL, b);
  if (!piix3_attach (b->piix3, pci, pio, error))
    return FALSE;

  vmm_irq sci = { board_set_gsi, b, PIIX4_PM_SCI_IRQ };
  b->pm = piix4_pm_create (pio, clock, &sci, board_poweroff, b);
  if (!piix4_pm_attach (b->pm, pci, PIIX4_PM_DEVFN, error))
    return FALSE;

  vmm_irq kbd = { board_set_gsi, b, I8042_KBD_IRQ };
  vmm_irq aux = { board_set_gsi, b, I8042_AUX_IRQ };
  b->i8042 = i8042_create (&kbd, &aux, board_reset_request, board_a20_changed,
                           b);
  if (!i8042_attach (b->i8042, pio, I8042_DEFAULT_BASE, error))
    return FALSE;
  b->port92 = port92_create (board_reset_request, board_a20_changed, b);
  if (!port92_attach (b->port92, pio, PORT92_PORT, error))
    return FALSE;

  if (direct_boot)
    board_program_like_firmware (b);
  return TRUE;
}

void
pc_board_reset (pc_board *b)
{
  vmm_device_reset (i440fx_device (b->i440fx));
  vmm_device_reset (piix3_device (b->piix3));
  vmm_device_reset (piix4_pm_device (b->pm));
  vmm_device_reset (i8042_device (b->i8042));
  vmm_device_reset (port92_device (b->port92));
  g_mutex_lock (&b->pirq_lock);
  memset (b->pirq_level, 0, sizeof b->pirq_level);
  g_mutex_unlock (&b->pirq_lock);
  if (b->direct_boot)
    board_program_like_firmware (b);
}

void
pc_board_destroy (pc_board *b)
{
  if (b->port92)
    vmm_device_destroy (port92_device (b->port92));
  if (b->i8042)
    vmm_device_destroy (i8042_device (b->i8042));
  if (b->pm)
    vmm_device_destroy (piix4_pm_device (b->pm));
  if (b->piix3)
    vmm_device_destroy (piix3_device (b->piix3));
  if (b->i440fx)
    vmm_device_destroy (i440fx_device (b->i440fx));
  g_mutex_clear (&b->pirq_lock);
  memset (b, 0, sizeof *b);
}

void
pc_board_route_intx (pc_board *b, unsigned devfn, unsigned pin, bool level)
{
  if (pin < 1 || pin > 4)
    return;
  unsigned pirq = ((devfn >> 3) + (pin - 1)) & 3;
  g_mutex_lock (&b->pirq_lock);
  bool was = b->pirq_level[pirq] > 0;
  if (level)
    b->pirq_level[pirq]++;
  else if (b->pirq_level[pirq])
    b->pirq_level[pirq]--;
  bool now = b->pirq_level[pirq] > 0;
  if (was != now)
    b->cb.set_gsi (b->cb.opaque, PC_PIRQ_GSI_BASE + pirq, now);
  g_mutex_unlock (&b->pirq_lock);
}

void
pc_board_power_button (pc_board *b)
{
  piix4_pm_power_button (b->pm);
}
