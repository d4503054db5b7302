#include "fake-clock.h"

struct vmm_timer {
  const vmm_clock_ops *ops; /* struct vmm_timer_base */
  fake_clock *fc;
  vmm_timer_fn fn;
  void *opaque;
  bool armed;
  uint64_t deadline;
  uint64_t seq;
};

struct fake_clock {
  vmm_clock clock; /* first: fake_clock * and vmm_clock * convert */
  uint64_t now;
  uint64_t seq;
  GPtrArray *timers;
};

static uint64_t
fc_now (vmm_clock *clock)
{
  return ((fake_clock *) clock)->now;
}

static const vmm_clock_ops fake_clock_ops;

static vmm_timer *
fc_timer_new (vmm_clock *clock, vmm_timer_fn fn, void *opaque)
{
  fake_clock *fc = (fake_clock *) clock;
  vmm_timer *t = g_new0 (vmm_timer, 1);
  t->ops = &fake_clock_ops;
  t->fc = fc;
  t->fn = fn;
  t->opaque = opaque;
  g_ptr_array_add (fc->timers, t);
  return t;
}

static void
fc_timer_arm (vmm_timer *t, uint64_t deadline)
{
  t->armed = true;
  t->deadline = deadline;
  t->seq = t->fc->seq++;
}

static void
fc_timer_cancel (vmm_timer *t)
{
  t->armed = false;
}

static void
fc_timer_free (vmm_timer *t)
{
  g_ptr_array_remove (t->fc->timers, t);
  g_free (t);
}

static const vmm_clock_ops fake_clock_ops = {
  .now_ns = fc_now,
  .timer_new = fc_timer_new,
  .timer_arm = fc_timer_arm,
  .timer_cancel = fc_timer_cancel,
  .timer_free = fc_timer_free,
};

fake_clock *
fake_clock_new (uint64_t start_ns)
{
  fake_clock *fc = g_new0 (fake_clock, 1);
  fc->clock.ops = &fake_clock_ops;
  fc->now = start_ns;
  fc->timers = g_ptr_array_new ();
  return fc;
}

void
fake_clock_free (fake_clock *fc)
{
  if (!fc)
    return;
  /* Devices free their timers; anything left is a leak in the test. */
  g_assert_cmpuint (fc->timers->len, ==, 0);
  g_ptr_array_unref (fc->timers);
  g_free (fc);
}

vmm_clock *
fake_clock_get (fake_clock *fc)
{
  return &fc->clock;
}

uint64_t
fake_clock_now (fake_clock *fc)
{
  return fc->now;
}

static vmm_timer *
fc_next_due (fake_clock *fc, uint64_t until)
{
  vmm_timer *best = NULL;
  for (guint i = 0; i < fc->timers->len; i++)
    {
      vmm_timer *t = g_ptr_array_index (fc->timers, i);
      if (!t->armed || t->deadline > until)
        continue;
      if (!best || t->deadline < best->deadline
          || (t->deadline == best->deadline && t->seq < best->seq))
        best = t;
    }
  return best;
}

unsigned
fake_clock_advance (fake_clock *fc, uint64_t ns)
{
  uint64_t until = fc->now + ns;
  unsigned fired = 0;
  vmm_timer *t;
  while ((t = fc_next_due (fc, until)))
    {
      if (t->deadline > fc->now)
        fc->now = t->deadline;
      t->armed = false;
      t->fn (t->opaque);
      fired++;
      g_assert_cmpuint (fired, <, 10000000); /* a timer re-arming in the past */
    }
  fc->now = until;
  return fired;
}

unsigned
fake_clock_armed (fake_clock *fc)
{
  unsigned n = 0;
  for (guint i = 0; i < fc->timers->len; i++)
    n += ((vmm_timer *) g_ptr_array_index (fc->timers, i))->armed;
  return n;
}
