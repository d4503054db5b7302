/* An interrupt-line recorder for unit tests: the level and the number of
 * rising edges per GSI, behind vmm_irq. */
#pragma once

#include <glib.h>
#include <stdbool.h>

#include "vmm-core/bus/irq.h"

#define FAKE_IRQ_LINES 32

typedef struct fake_irq {
  bool level[FAKE_IRQ_LINES];
  unsigned raised[FAKE_IRQ_LINES]; /* rising edges */
  unsigned sets[FAKE_IRQ_LINES];   /* set_level calls */
} fake_irq;

/* A vmm_irq that records into @rec on @gsi. */
vmm_irq fake_irq_line (fake_irq *rec, unsigned gsi);
void fake_irq_clear_counts (fake_irq *rec);

/* A chardev that appends to a GByteArray. */
#include "vmm-core/devices/chardev.h"
vmm_chardev fake_chardev (GByteArray *sink);
