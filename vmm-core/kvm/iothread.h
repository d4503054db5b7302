/* The engine's I/O thread: a GMainContext of its own for block completions,
 * timers, back ends and the control socket. It also provides the real
 * vmm_clock (CLOCK_MONOTONIC) whose timers fire on this thread. */
#pragma once

#include "vmm-core/kvm/clock.h"

#include <glib.h>

typedef struct vmm_iothread vmm_iothread;

vmm_iothread *vmm_iothread_new (const char *name);
/* Stops the loop and joins the thread; the context stays usable, so that
 * pending completions can be drained by iterating it on this thread. */
void vmm_iothread_stop (vmm_iothread *io);
/* Stops (if needed) and frees the thread and its context. */
void vmm_iothread_free (vmm_iothread *io);
GMainContext *vmm_iothread_context (vmm_iothread *io);
vmm_clock *vmm_iothread_clock (vmm_iothread *io);
/* Runs @fn on the I/O thread, soon. Callable from any thread. */
void vmm_iothread_call (vmm_iothread *io, GSourceFunc fn, gpointer data,
                        GDestroyNotify destroy);
