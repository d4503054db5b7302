/* A manual vmm_clock for unit tests: time moves only through
 * fake_clock_advance(), which fires due timers in deadline order (ties in
 * arming order) on the calling thread. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm-core/kvm/clock.h"

typedef struct fake_clock fake_clock;

fake_clock *fake_clock_new (uint64_t start_ns);
void fake_clock_free (fake_clock *fc);
vmm_clock *fake_clock_get (fake_clock *fc);
uint64_t fake_clock_now (fake_clock *fc);
/* Moves time forward by @ns, firing every timer whose deadline falls in
 * (now, now + ns] with the clock reading that deadline. Returns how many
 * timer callbacks ran. */
unsigned fake_clock_advance (fake_clock *fc, uint64_t ns);
/* Timers currently armed. */
unsigned fake_clock_armed (fake_clock *fc);
