#include "fake-irq.h"

static void
fake_irq_set_level (void *opaque, unsigned gsi, bool level)
{
  fake_irq *rec = opaque;
  g_assert_cmpuint (gsi, <, FAKE_IRQ_LINES);
  rec->sets[gsi]++;
  if (level && !rec->level[gsi])
    rec->raised[gsi]++;
  rec->level[gsi] = level;
}

vmm_irq
fake_irq_line (fake_irq *rec, unsigned gsi)
{
  return (vmm_irq){ .set_level = fake_irq_set_level, .opaque = rec,
                    .gsi = gsi };
}

void
fake_irq_clear_counts (fake_irq *rec)
{
  for (unsigned i = 0; i < FAKE_IRQ_LINES; i++)
    rec->raised[i] = rec->sets[i] = 0;
}

static void
fake_chardev_write (void *opaque, const uint8_t *buf, size_t len)
{
  g_byte_array_append (opaque, buf, (guint) len);
}

vmm_chardev
fake_chardev (GByteArray *sink)
{
  return (vmm_chardev){ .write = fake_chardev_write, .opaque = sink };
}
