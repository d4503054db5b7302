/* An interrupt line as a device sees it: a level it raises and lowers.
 * The board connects it to a GSI of the in-kernel irqchip (or a test stub). */
#pragma once

#include <stdbool.h>

typedef struct vmm_irq {
  void (*set_level) (void *opaque, unsigned gsi, bool level);
  void *opaque;
  unsigned gsi;
} vmm_irq;

static inline void
vmm_irq_set (const vmm_irq *irq, bool level)
{
  if (irq && irq->set_level)
    irq->set_level (irq->opaque, irq->gsi, level);
}

/* For edge-triggered sources: a rising edge, then the line back low. */
static inline void
vmm_irq_pulse (const vmm_irq *irq)
{
  vmm_irq_set (irq, true);
  vmm_irq_set (irq, false);
}
