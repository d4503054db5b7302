#include "vmm-core/machine/pc-board.h"

#include <string.h>

gboolean
pc_board_init (pc_board *b, vmm_bus *pio, vmm_pci_host *pci, vmm_clock *clock,
               const pc_board_callbacks *cb, uint16_t pm_base,
               bool direct_boot, GError **error)
{
  memset (b, 0, sizeof *b);
  b->cb = *cb;
  b->pci = pci;
  return TRUE;
}

void
pc_board_reset (pc_board *b)
{
}

void
pc_board_destroy (pc_board *b)
{
}

void
pc_board_route_intx (pc_board *b, unsigned devfn, unsigned pin, bool level)
{
}

void
pc_board_power_button (pc_board *b)
{
}
