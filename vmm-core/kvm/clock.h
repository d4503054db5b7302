/* Time as device models see it: a monotonic clock and one-shot timers whose
 * callbacks run on the engine's I/O thread. Unit tests substitute a manual
 * clock (tests/unit/fake-clock.h) and advance it by hand. */
#pragma once

#include <stdint.h>

typedef struct vmm_clock vmm_clock;
typedef struct vmm_timer vmm_timer;
typedef void (*vmm_timer_fn) (void *opaque);

typedef struct vmm_clock_ops {
  uint64_t (*now_ns) (vmm_clock *clock);
  vmm_timer *(*timer_new) (vmm_clock *clock, vmm_timer_fn fn, void *opaque);
  /* Fires once at @deadline_ns (on this clock); re-arming replaces. */
  void (*timer_arm) (vmm_timer *timer, uint64_t deadline_ns);
  void (*timer_cancel) (vmm_timer *timer);
  void (*timer_free) (vmm_timer *timer);
} vmm_clock_ops;

struct vmm_clock {
  const vmm_clock_ops *ops;
};

static inline uint64_t
vmm_clock_now (vmm_clock *clock)
{
  return clock->ops->now_ns (clock);
}

static inline vmm_timer *
vmm_timer_new (vmm_clock *clock, vmm_timer_fn fn, void *opaque)
{
  return clock->ops->timer_new (clock, fn, opaque);
}

/* Timers carry their clock's ops as their first member. */
struct vmm_timer_base {
  const vmm_clock_ops *ops;
};

static inline void
vmm_timer_arm (vmm_timer *timer, uint64_t deadline_ns)
{
  ((struct vmm_timer_base *) timer)->ops->timer_arm (timer, deadline_ns);
}

static inline void
vmm_timer_cancel (vmm_timer *timer)
{
  ((struct vmm_timer_base *) timer)->ops->timer_cancel (timer);
}

static inline void
vmm_timer_free (vmm_timer *timer)
{
  if (timer)
    ((struct vmm_timer_base *) timer)->ops->timer_free (timer);
}
