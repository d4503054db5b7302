#include "vmm-core/kvm/iothread.h"

#include <time.h>

typedef struct io_clock {
  vmm_clock base;
  GMainContext *context;
} io_clock;

struct vmm_iothread {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
  io_clock clock;
};

typedef struct io_timer {
  struct vmm_timer_base base;
  GSource *source;
  vmm_timer_fn fn;
  void *opaque;
} io_timer;

static uint64_t
io_clock_now (vmm_clock *clock)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * G_GUINT64_CONSTANT (1000000000) + ts.tv_nsec;
}

static gboolean
io_timer_dispatch (GSource *source, GSourceFunc callback, gpointer data)
{
  io_timer *t = data;
  g_source_set_ready_time (source, -1);
  t->fn (t->opaque);
  return G_SOURCE_CONTINUE;
}

static GSourceFuncs io_timer_funcs = {
  .dispatch = io_timer_dispatch,
};

static void io_timer_arm (vmm_timer *timer, uint64_t deadline_ns);
static void io_timer_cancel (vmm_timer *timer);
static void io_timer_free (vmm_timer *timer);
static vmm_timer *io_timer_new (vmm_clock *clock, vmm_timer_fn fn,
                                void *opaque);

static const vmm_clock_ops io_clock_ops = {
  .now_ns = io_clock_now,
  .timer_new = io_timer_new,
  .timer_arm = io_timer_arm,
  .timer_cancel = io_timer_cancel,
  .timer_free = io_timer_free,
};

static vmm_timer *
io_timer_new (vmm_clock *clock, vmm_timer_fn fn, void *opaque)
{
  io_clock *c = (io_clock *) clock;
  io_timer *t = g_new0 (io_timer, 1);
  t->base.ops = &io_clock_ops;
  t->fn = fn;
  t->opaque = opaque;
  t->source = g_source_new (&io_timer_funcs, sizeof (GSource));
  g_source_set_callback (t->source, NULL, t, NULL);
  g_source_set_name (t->source, "vmm timer");
  g_source_set_priority (t->source, G_PRIORITY_HIGH);
  g_source_attach (t->source, c->context);
  return (vmm_timer *) t;
}

/* The monotonic clocks of GLib and of clock_gettime agree (both
 * CLOCK_MONOTONIC), GLib's in microseconds. Round up so a timer never fires
 * before its deadline. */
static void
io_timer_arm (vmm_timer *timer, uint64_t deadline_ns)
{
  io_timer *t = (io_timer *) timer;
  g_source_set_ready_time (t->source, (gint64) ((deadline_ns + 999) / 1000));
}

static void
io_timer_cancel (vmm_timer *timer)
{
  io_timer *t = (io_timer *) timer;
  g_source_set_ready_time (t->source, -1);
}

static void
io_timer_free (vmm_timer *timer)
{
  io_timer *t = (io_timer *) timer;
  g_source_destroy (t->source);
  g_source_unref (t->source);
  g_free (t);
}

static gpointer
io_thread_main (gpointer data)
{
  vmm_iothread *io = data;
  g_main_context_push_thread_default (io->context);
  g_main_loop_run (io->loop);
  g_main_context_pop_thread_default (io->context);
  return NULL;
}

vmm_iothread *
vmm_iothread_new (const char *name)
{
  vmm_iothread *io = g_new0 (vmm_iothread, 1);
  io->context = g_main_context_new ();
  io->loop = g_main_loop_new (io->context, FALSE);
  io->clock.base.ops = &io_clock_ops;
  io->clock.context = io->context;
  io->thread = g_thread_new (name, io_thread_main, io);
  return io;
}

static gboolean
io_quit (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

void
vmm_iothread_stop (vmm_iothread *io)
{
  if (!io || !io->thread)
    return;
  vmm_iothread_call (io, io_quit, io->loop, NULL);
  g_thread_join (io->thread);
  io->thread = NULL;
}

void
vmm_iothread_free (vmm_iothread *io)
{
  if (!io)
    return;
  vmm_iothread_stop (io);
  g_main_loop_unref (io->loop);
  g_main_context_unref (io->context);
  g_free (io);
}

GMainContext *
vmm_iothread_context (vmm_iothread *io)
{
  return io->context;
}

vmm_clock *
vmm_iothread_clock (vmm_iothread *io)
{
  return &io->clock.base;
}

void
vmm_iothread_call (vmm_iothread *io, GSourceFunc fn, gpointer data,
                   GDestroyNotify destroy)
{
  GSource *s = g_idle_source_new ();
  g_source_set_priority (s, G_PRIORITY_DEFAULT);
  g_source_set_callback (s, fn, data, destroy);
  g_source_attach (s, io->context);
  g_source_unref (s);
}
