/* A machine: its definition and, while it runs, the in-process engine. */
#include "app/vessel-machine.h"

#include "display/spice.h"
#include "display/vnc.h"

#include <glib/gi18n.h>
#include <string.h>

#define SERIAL_HISTORY_MAX (256 * 1024)
#define THUMBNAIL_WIDTH 320
#define THUMBNAIL_INTERVAL_MS 1000

G_DEFINE_ENUM_TYPE (VesselMachineState, vessel_machine_state,
                    G_DEFINE_ENUM_VALUE (VESSEL_MACHINE_STATE_STOPPED,
                                         "stopped"),
                    G_DEFINE_ENUM_VALUE (VESSEL_MACHINE_STATE_RUNNING,
                                         "running"),
                    G_DEFINE_ENUM_VALUE (VESSEL_MACHINE_STATE_PAUSED, "paused"),
                    G_DEFINE_ENUM_VALUE (VESSEL_MACHINE_STATE_STOPPING,
                                         "stopping"),
                    G_DEFINE_ENUM_VALUE (VESSEL_MACHINE_STATE_ERROR, "error"))

/* The running engine and what hangs off it; freed as one on a worker
 * thread, since tearing down waits for the vCPU and I/O threads (and a
 * stalled disk can keep those busy). */
typedef struct {
  VesselMachine *owner; /* not a reference: the engine dies first */
  guint serial;         /* which start of the machine this is */
  vmm_machine *vm;
  VesselEngineConfig cfg;
  display_vnc *vnc;
  int vnc_port;
  display_spice *spice;
  int spice_port;
  unsigned listener;
  display_listener *thumb_listener;
} Engine;

struct _VesselMachine {
  GObject parent_instance;

  GVirConfigDomain *domain;
  char *path;
  char *os_name;
  VesselMachineState state;
  char *error;
  Engine *engine;
  guint engine_serial;
  gboolean restart_after_stop; /* the install finished with a power-off */
  GdkTexture *thumbnail;
  guint thumbnail_timer;
  gint thumbnail_dirty; /* atomic: the surface changed since the last one */

  GMutex serial_lock; /* guards serial_new: the vCPU threads append */
  GByteArray *serial_new;
  gboolean serial_scheduled;
  GByteArray *serial_history;
  GByteArray *serial_pending; /* input the guest's FIFO did not take yet */
};

enum {
  PROP_0,
  PROP_TITLE,
  PROP_OS_NAME,
  PROP_STATE,
  PROP_ERROR,
  PROP_THUMBNAIL,
  PROP_ACTIVE,
  N_PROPS
};
static GParamSpec *props[N_PROPS];

enum {
  SIGNAL_SERIAL_OUTPUT,
  SIGNAL_DISPLAY_CHANGED,
  SIGNAL_INSTALL_FINISHED,
  N_SIGNALS
};
static guint signals[N_SIGNALS];

G_DEFINE_FINAL_TYPE (VesselMachine, vessel_machine, G_TYPE_OBJECT)

static void engine_free (Engine *e);

static void
vessel_machine_dispose (GObject *object)
{
  VesselMachine *self = VESSEL_MACHINE (object);
  vessel_machine_stop_now (self);
  g_clear_handle_id (&self->thumbnail_timer, g_source_remove);
  g_clear_object (&self->thumbnail);
  G_OBJECT_CLASS (vessel_machine_parent_class)->dispose (object);
}

static void
vessel_machine_finalize (GObject *object)
{
  VesselMachine *self = VESSEL_MACHINE (object);
  g_clear_object (&self->domain);
  g_free (self->path);
  g_free (self->os_name);
  g_free (self->error);
  g_mutex_clear (&self->serial_lock);
  g_byte_array_unref (self->serial_new);
  g_byte_array_unref (self->serial_history);
  g_byte_array_unref (self->serial_pending);
  G_OBJECT_CLASS (vessel_machine_parent_class)->finalize (object);
}

static void
vessel_machine_get_property (GObject *object, guint prop_id, GValue *value,
                             GParamSpec *pspec)
{
  VesselMachine *self = VESSEL_MACHINE (object);
  switch (prop_id)
    {
    case PROP_TITLE:
      g_value_set_string (value, vessel_machine_get_title (self));
      break;
    case PROP_OS_NAME:
      g_value_set_string (value, self->os_name);
      break;
    case PROP_STATE:
      g_value_set_enum (value, self->state);
      break;
    case PROP_ERROR:
      g_value_set_string (value, self->error);
      break;
    case PROP_THUMBNAIL:
      g_value_set_object (value, self->thumbnail);
      break;
    case PROP_ACTIVE:
      g_value_set_boolean (value, vessel_machine_is_active (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vessel_machine_class_init (VesselMachineClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  object_class->dispose = vessel_machine_dispose;
  object_class->finalize = vessel_machine_finalize;
  object_class->get_property = vessel_machine_get_property;

  props[PROP_TITLE] = g_param_spec_string ("title", NULL, NULL, NULL,
                                           G_PARAM_READABLE
                                               | G_PARAM_STATIC_STRINGS);
  props[PROP_OS_NAME] = g_param_spec_string ("os-name", NULL, NULL, NULL,
                                             G_PARAM_READABLE
                                                 | G_PARAM_STATIC_STRINGS);
  props[PROP_STATE] = g_param_spec_enum (
      "state", NULL, NULL, VESSEL_TYPE_MACHINE_STATE,
      VESSEL_MACHINE_STATE_STOPPED, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  props[PROP_ERROR] = g_param_spec_string ("error", NULL, NULL, NULL,
                                           G_PARAM_READABLE
                                               | G_PARAM_STATIC_STRINGS);
  props[PROP_THUMBNAIL] = g_param_spec_object ("thumbnail", NULL, NULL,
                                               GDK_TYPE_PAINTABLE,
                                               G_PARAM_READABLE
                                                   | G_PARAM_STATIC_STRINGS);
  props[PROP_ACTIVE] = g_param_spec_boolean ("active", NULL, NULL, FALSE,
                                             G_PARAM_READABLE
                                                 | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);

  signals[SIGNAL_SERIAL_OUTPUT] = g_signal_new (
      "serial-output", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
      NULL, NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
  signals[SIGNAL_DISPLAY_CHANGED] = g_signal_new (
      "display-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 0);
  signals[SIGNAL_INSTALL_FINISHED] = g_signal_new (
      "install-finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 0);
}

static void
vessel_machine_init (VesselMachine *self)
{
  g_mutex_init (&self->serial_lock);
  self->serial_new = g_byte_array_new ();
  self->serial_history = g_byte_array_new ();
  self->serial_pending = g_byte_array_new ();
}

VesselMachine *
vessel_machine_new (GVirConfigDomain *domain, const char *path)
{
  VesselMachine *self = g_object_new (VESSEL_TYPE_MACHINE, NULL);
  self->domain = g_object_ref (domain);
  self->path = g_strdup (path);
  self->os_name = vessel_definition_get_meta (domain, "os");
  return self;
}

VesselMachine *
vessel_machine_load (const char *path, GError **error)
{
  g_autoptr (GVirConfigDomain) d = vessel_definition_load (path, error);
  return d ? vessel_machine_new (d, path) : NULL;
}

GVirConfigDomain *
vessel_machine_get_domain (VesselMachine *self)
{
  return self->domain;
}

const char *
vessel_machine_get_path (VesselMachine *self)
{
  return self->path;
}

const char *
vessel_machine_get_uuid (VesselMachine *self)
{
  return gvir_config_domain_get_uuid (self->domain);
}

const char *
vessel_machine_get_title (VesselMachine *self)
{
  return vessel_definition_get_title (self->domain);
}

const char *
vessel_machine_get_os_name (VesselMachine *self)
{
  return self->os_name;
}

VesselMachineState
vessel_machine_get_state (VesselMachine *self)
{
  return self->state;
}

const char *
vessel_machine_state_label (VesselMachineState state)
{
  switch (state)
    {
    case VESSEL_MACHINE_STATE_STOPPED:
      return _("Stopped");
    case VESSEL_MACHINE_STATE_RUNNING:
      return _("Running");
    case VESSEL_MACHINE_STATE_PAUSED:
      return _("Paused");
    case VESSEL_MACHINE_STATE_STOPPING:
      return _("Stopping");
    case VESSEL_MACHINE_STATE_ERROR:
      return _("Failed");
    }
  return "";
}

const char *
vessel_machine_get_error (VesselMachine *self)
{
  return self->error;
}

GdkPaintable *
vessel_machine_get_thumbnail (VesselMachine *self)
{
  return self->thumbnail ? GDK_PAINTABLE (self->thumbnail) : NULL;
}

gboolean
vessel_machine_is_active (VesselMachine *self)
{
  return self->state == VESSEL_MACHINE_STATE_RUNNING
         || self->state == VESSEL_MACHINE_STATE_PAUSED;
}

gboolean
vessel_machine_save (VesselMachine *self, GError **error)
{
  return vessel_definition_save (self->domain, self->path, error);
}

void
vessel_machine_definition_changed (VesselMachine *self)
{
  g_free (self->os_name);
  self->os_name = vessel_definition_get_meta (self->domain, "os");
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_TITLE]);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_OS_NAME]);
}

void
vessel_machine_set_title (VesselMachine *self, const char *title)
{
  gvir_config_domain_set_title (self->domain, title);
  vessel_machine_definition_changed (self);
}

static void
set_state (VesselMachine *self, VesselMachineState state)
{
  if (self->state == state)
    return;
  gboolean was_active = vessel_machine_is_active (self);
  self->state = state;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_STATE]);
  if (was_active != vessel_machine_is_active (self))
    g_object_notify_by_pspec (G_OBJECT (self), props[PROP_ACTIVE]);
}

static void
set_error (VesselMachine *self, const char *message)
{
  g_free (self->error);
  self->error = g_strdup (message);
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_ERROR]);
}

/* ---- COM1 ---------------------------------------------------------- */

static gboolean
serial_deliver (gpointer data)
{
  VesselMachine *self = data;
  g_mutex_lock (&self->serial_lock);
  GBytes *bytes = g_bytes_new (self->serial_new->data, self->serial_new->len);
  g_byte_array_set_size (self->serial_new, 0);
  self->serial_scheduled = FALSE;
  g_mutex_unlock (&self->serial_lock);

  gsize n;
  const guint8 *p = g_bytes_get_data (bytes, &n);
  g_byte_array_append (self->serial_history, p, (guint) n);
  if (self->serial_history->len > SERIAL_HISTORY_MAX)
    g_byte_array_remove_range (self->serial_history, 0,
                               self->serial_history->len
                                   - SERIAL_HISTORY_MAX);
  if (n)
    g_signal_emit (self, signals[SIGNAL_SERIAL_OUTPUT], 0, bytes);
  g_bytes_unref (bytes);
  return G_SOURCE_REMOVE;
}

/* A vCPU thread writes to COM1: queue it for the UI thread, one wake-up per
 * batch. */
static void
serial_write (void *opaque, const uint8_t *buf, size_t len)
{
  VesselMachine *self = opaque;
  g_mutex_lock (&self->serial_lock);
  if (self->serial_new->len < 4 * SERIAL_HISTORY_MAX)
    g_byte_array_append (self->serial_new, buf, (guint) len);
  gboolean schedule = !self->serial_scheduled;
  self->serial_scheduled = TRUE;
  g_mutex_unlock (&self->serial_lock);
  if (schedule)
    g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, serial_deliver,
                                g_object_ref (self), g_object_unref);
}

GBytes *
vessel_machine_get_serial_history (VesselMachine *self)
{
  return g_bytes_new (self->serial_history->data, self->serial_history->len);
}

static void
serial_flush_pending (VesselMachine *self)
{
  if (!self->engine || !self->serial_pending->len)
    return;
  size_t took = vmm_machine_serial_receive (self->engine->vm,
                                            self->serial_pending->data,
                                            self->serial_pending->len);
  g_byte_array_remove_range (self->serial_pending, 0, (guint) took);
}

static gboolean
serial_ready_main (gpointer data)
{
  serial_flush_pending (data);
  return G_SOURCE_REMOVE;
}

static void
serial_ready (void *opaque)
{
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, serial_ready_main,
                              g_object_ref (opaque), g_object_unref);
}

void
vessel_machine_send_serial (VesselMachine *self, const guint8 *data,
                            gsize len)
{
  if (!self->engine)
    return;
  /* Bounded: a user pasting megabytes into a stopped guest loses the
   * tail rather than the app's memory. */
  if (self->serial_pending->len + len > 64 * 1024)
    len = 64 * 1024 - MIN (self->serial_pending->len, 64 * 1024);
  g_byte_array_append (self->serial_pending, data, (guint) len);
  serial_flush_pending (self);
}

/* ---- thumbnails ---------------------------------------------------- */

static void
thumb_on_update (void *opaque, display_surface *s, const display_rect *r,
                 unsigned n)
{
  VesselMachine *self = opaque;
  g_atomic_int_set (&self->thumbnail_dirty, 1);
}

static void
thumb_on_resize (void *opaque, display_surface *s, int w, int h, uint64_t gen)
{
  VesselMachine *self = opaque;
  g_atomic_int_set (&self->thumbnail_dirty, 1);
}

static const display_listener_ops thumb_ops = {
  .on_update = thumb_on_update,
  .on_resize = thumb_on_resize,
};

/* Box-filtered downscale of the current image to THUMBNAIL_WIDTH wide. */
static GdkTexture *
thumbnail_from_surface (display_surface *s)
{
  display_image *img = display_surface_acquire (s);
  if (!img || img->width <= 0 || img->height <= 0)
    {
      if (img)
        display_image_release (img);
      return NULL;
    }
  int tw = MIN (THUMBNAIL_WIDTH, img->width);
  int th = MAX (1, (int) ((gint64) img->height * tw / img->width));
  guint8 *out = g_malloc ((gsize) tw * th * 4);
  for (int ty = 0; ty < th; ty++)
    {
      int y0 = (int) ((gint64) ty * img->height / th);
      int y1 = MAX (y0 + 1, (int) ((gint64) (ty + 1) * img->height / th));
      for (int tx = 0; tx < tw; tx++)
        {
          int x0 = (int) ((gint64) tx * img->width / tw);
          int x1 = MAX (x0 + 1, (int) ((gint64) (tx + 1) * img->width / tw));
          guint r = 0, g = 0, b = 0, n = 0;
          /* Sample at most 4x4 points per box: enough for a thumbnail. */
          int sy = MAX (1, (y1 - y0) / 4), sx = MAX (1, (x1 - x0) / 4);
          for (int y = y0; y < y1; y += sy)
            {
              const guint32 *row
                  = (const guint32 *) (img->pixels + (gsize) y * img->stride);
              for (int x = x0; x < x1; x += sx)
                {
                  guint32 p = row[x];
                  r += (p >> 16) & 0xff;
                  g += (p >> 8) & 0xff;
                  b += p & 0xff;
                  n++;
                }
            }
          guint8 *o = out + ((gsize) ty * tw + tx) * 4;
          o[0] = (guint8) (r / n);
          o[1] = (guint8) (g / n);
          o[2] = (guint8) (b / n);
          o[3] = 0xff;
        }
    }
  display_image_release (img);
  GBytes *bytes = g_bytes_new_take (out, (gsize) tw * th * 4);
  GdkTexture *t = gdk_memory_texture_new (tw, th, GDK_MEMORY_R8G8B8A8, bytes,
                                          (gsize) tw * 4);
  g_bytes_unref (bytes);
  return t;
}

static gboolean
thumbnail_tick (gpointer data)
{
  VesselMachine *self = data;
  display_surface *s = vessel_machine_get_surface (self);
  if (s && g_atomic_int_compare_and_exchange (&self->thumbnail_dirty, 1, 0))
    {
      g_clear_object (&self->thumbnail);
      self->thumbnail = thumbnail_from_surface (s);
      g_object_notify_by_pspec (G_OBJECT (self), props[PROP_THUMBNAIL]);
    }
  return G_SOURCE_CONTINUE;
}

/* ---- the engine ---------------------------------------------------- */

/* What an engine thread tells the UI thread: a state change or an event,
 * stamped with the engine's serial so that news of an engine already gone
 * is dropped. */
typedef struct {
  VesselMachine *self;
  guint serial;
  vmm_machine_state state;  /* for state_msg_dispatch */
  vmm_machine_event event;  /* for event_msg_dispatch */
} EngineMsg;

static void
engine_msg_free (gpointer data)
{
  EngineMsg *msg = data;
  g_object_unref (msg->self);
  g_free (msg);
}

/* On an engine thread: queues @dispatch with @msg on the UI thread. */
static void
engine_msg_post (Engine *e, EngineMsg *msg, GSourceFunc dispatch)
{
  msg->self = g_object_ref (e->owner);
  msg->serial = e->serial;
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, dispatch, msg,
                              engine_msg_free);
}

static void
engine_teardown_done (GObject *source, GAsyncResult *res, gpointer data)
{
  VesselMachine *self = VESSEL_MACHINE (source);
  if (self->state == VESSEL_MACHINE_STATE_STOPPING)
    set_state (self, self->error ? VESSEL_MACHINE_STATE_ERROR
                                 : VESSEL_MACHINE_STATE_STOPPED);
  if (self->restart_after_stop && !self->engine)
    {
      /* The installer powered off: boot what it installed. */
      self->restart_after_stop = FALSE;
      g_autoptr (GError) error = NULL;
      if (!vessel_machine_start (self, &error))
        {
          set_error (self, error->message);
          set_state (self, VESSEL_MACHINE_STATE_ERROR);
        }
    }
}

static void
engine_teardown_thread (GTask *task, gpointer source, gpointer data,
                        GCancellable *cancellable)
{
  engine_free (data);
  g_task_return_boolean (task, TRUE);
}

/* The guest powered off or failed: views let go of the screen first, then
 * the engine goes away off the UI thread. */
static void
engine_release (VesselMachine *self, const char *error)
{
  Engine *e = g_steal_pointer (&self->engine);
  if (!e)
    return;
  if (error)
    set_error (self, error);
  set_state (self, VESSEL_MACHINE_STATE_STOPPING);
  g_clear_handle_id (&self->thumbnail_timer, g_source_remove);
  g_signal_emit (self, signals[SIGNAL_DISPLAY_CHANGED], 0);
  if (e->thumb_listener)
    {
      display_surface_remove_listener (vmm_machine_display (e->vm),
                                       e->thumb_listener);
      e->thumb_listener = NULL;
    }
  g_byte_array_set_size (self->serial_pending, 0);
  GTask *task = g_task_new (self, NULL, engine_teardown_done, NULL);
  g_task_set_task_data (task, e, NULL);
  g_task_run_in_thread (task, engine_teardown_thread);
  g_object_unref (task);
}

/* ---- the install flow ---------------------------------------------- */

gboolean
vessel_machine_is_installing (VesselMachine *self)
{
  g_autofree char *v = vessel_definition_get_meta (self->domain,
                                                   "installing");
  return !g_strcmp0 (v, "yes");
}

void
vessel_machine_finish_install (VesselMachine *self)
{
  if (!vessel_machine_is_installing (self))
    return;
  vessel_definition_set_cdrom (self->domain, NULL);
  vessel_definition_set_boot_cdrom_first (self->domain, FALSE);
  vessel_definition_set_meta (self->domain, "installing", NULL);
  g_autoptr (GError) error = NULL;
  if (!vessel_machine_save (self, &error))
    g_warning ("%s", error->message);
  vessel_machine_definition_changed (self);
  g_signal_emit (self, signals[SIGNAL_INSTALL_FINISHED], 0);
}

/* The guest restarts (a reset or a power-off): if it was installing and
 * wrote to its disk, the install is over. */
static gboolean
install_done (VesselMachine *self)
{
  if (!self->engine || !vessel_machine_is_installing (self)
      || !vmm_machine_disk_writes (self->engine->vm))
    return FALSE;
  vessel_machine_finish_install (self);
  return TRUE;
}

static gboolean
event_msg_dispatch (gpointer data)
{
  EngineMsg *msg = data;
  VesselMachine *self = msg->self;
  if (!self->engine || self->engine->serial != msg->serial)
    return G_SOURCE_REMOVE;
  if (msg->event == VMM_MACHINE_EVENT_RESET && install_done (self))
    {
      /* The firmware may have started on the CD already: take it out and
       * reset once more, so that the guest boots from its disk. */
      g_autoptr (GError) error = NULL;
      if (!vmm_machine_cdrom_eject (self->engine->vm, TRUE, &error))
        g_warning ("%s", error->message);
      vmm_machine_reset (self->engine->vm);
    }
  return G_SOURCE_REMOVE;
}

/* On an engine thread, with the listener lock held: queue only. */
static void
listener_event (vmm_machine *m, vmm_machine_event event, void *opaque)
{
  Engine *e = opaque;
  if (event != VMM_MACHINE_EVENT_RESET)
    return;
  EngineMsg *msg = g_new0 (EngineMsg, 1);
  msg->event = event;
  engine_msg_post (e, msg, event_msg_dispatch);
}

static gboolean
state_msg_dispatch (gpointer data)
{
  EngineMsg *msg = data;
  VesselMachine *self = msg->self;
  if (!self->engine || self->engine->serial != msg->serial)
    return G_SOURCE_REMOVE; /* about an engine already gone */
  switch (msg->state)
    {
    case VMM_MACHINE_RUNNING:
      set_state (self, VESSEL_MACHINE_STATE_RUNNING);
      break;
    case VMM_MACHINE_PAUSED:
      set_state (self, VESSEL_MACHINE_STATE_PAUSED);
      break;
    case VMM_MACHINE_POWERED_OFF:
      self->restart_after_stop = install_done (self);
      engine_release (self, NULL);
      break;
    case VMM_MACHINE_ERROR:
      {
        g_autofree char *why = vmm_machine_get_error (self->engine->vm);
        g_autofree char *text = g_strdup_printf (
            _("The machine stopped: %s"),
            why ? why : _("the engine failed"));
        engine_release (self, text);
      }
      break;
    case VMM_MACHINE_STOPPED:
      break;
    }
  return G_SOURCE_REMOVE;
}

static void
engine_free (Engine *e)
{
  if (!e)
    return;
  if (e->vnc)
    display_vnc_free (e->vnc);
  if (e->spice)
    display_spice_free (e->spice);
  if (e->vm)
    {
      if (e->listener)
        vmm_machine_remove_listener (e->vm, e->listener);
      vmm_machine_free (e->vm);
    }
  vessel_engine_config_clear (&e->cfg);
  g_free (e);
}

/* An engine thread changed the machine's state: tell the UI thread. */
static void
listener_state (vmm_machine *m, vmm_machine_state state, void *opaque)
{
  Engine *e = opaque;
  EngineMsg *msg = g_new0 (EngineMsg, 1);
  msg->state = state;
  engine_msg_post (e, msg, state_msg_dispatch);
}

/* One export on the first free port from @e's port (autoport: from the
 * protocol's usual base up, as libvirt does). */
static gboolean
engine_start_export (Engine *e, VesselExportKind kind, GError **error)
{
  const VesselExport *x = kind == VESSEL_EXPORT_VNC ? &e->cfg.vnc
                                                    : &e->cfg.spice;
  display_surface *s = vmm_machine_display (e->vm);
  if (!s)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   kind == VESSEL_EXPORT_VNC
                       ? _("VNC needs a display: this machine has no video "
                           "device")
                       : _("SPICE needs a display: this machine has no "
                           "video device"));
      return FALSE;
    }
  int base = kind == VESSEL_EXPORT_VNC ? DISPLAY_VNC_BASE_PORT : 5930;
  int first = x->port > 0 ? x->port : base;
  int last = x->port > 0 ? first : first + 99;
  for (int port = first; port <= last; port++)
    {
      g_autoptr (GError) local = NULL;
      gboolean ok;
      if (kind == VESSEL_EXPORT_VNC)
        {
          e->vnc = display_vnc_new (s, vmm_machine_input (e->vm), x->address,
                                    port, x->password, &local);
          ok = e->vnc != NULL;
          e->vnc_port = ok ? port : 0;
        }
      else
        {
          e->spice = display_spice_new (s, vmm_machine_input (e->vm),
                                        vmm_machine_io_context (e->vm),
                                        x->address, port, x->password,
                                        &local);
          ok = e->spice != NULL;
          e->spice_port = ok ? port : 0;
        }
      if (ok)
        return TRUE;
      if (port == last)
        {
          g_propagate_error (error, g_steal_pointer (&local));
          return FALSE;
        }
    }
  return FALSE;
}

static gboolean
engine_start_exports (VesselMachine *self, Engine *e, GError **error)
{
  return (!e->cfg.vnc.enabled
          || engine_start_export (e, VESSEL_EXPORT_VNC, error))
         && (!e->cfg.spice.enabled
             || engine_start_export (e, VESSEL_EXPORT_SPICE, error));
}

static gboolean start_engine (VesselMachine *self, GError **error);

/* Starts the engine; a failure is also kept as the machine's error, so its
 * page says why. */
gboolean
vessel_machine_start (VesselMachine *self, GError **error)
{
  GError *local = NULL;
  gboolean was_down = !self->engine
                      && self->state != VESSEL_MACHINE_STATE_STOPPING;
  if (start_engine (self, &local))
    return TRUE;
  if (was_down)
    {
      set_error (self, local->message);
      /* Stopped and failed read the same to the buttons; the page shows
       * the message. */
      set_state (self, VESSEL_MACHINE_STATE_ERROR);
    }
  g_propagate_error (error, local);
  return FALSE;
}

/* Takes @local: the engine's reason, prefixed with the machine's name. */
static void
start_failed (VesselMachine *self, GError *local, GError **error)
{
  g_set_error (error, local->domain, local->code, _("“%s” cannot start: %s"),
               vessel_machine_get_title (self), local->message);
  g_error_free (local);
}

static gboolean
start_engine (VesselMachine *self, GError **error)
{
  if (self->engine || self->state == VESSEL_MACHINE_STATE_STOPPING)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY,
                   _("“%s” is already running"),
                   vessel_machine_get_title (self));
      return FALSE;
    }
  Engine *e = g_new0 (Engine, 1);
  if (!vessel_definition_to_engine (self->domain, &e->cfg, error))
    {
      engine_free (e);
      return FALSE;
    }
  e->cfg.machine.serial.write = serial_write;
  e->cfg.machine.serial.opaque = self;
  GError *local = NULL;
  e->vm = vmm_machine_new (&e->cfg.machine, &local);
  if (!e->vm)
    {
      start_failed (self, local, error);
      engine_free (e);
      return FALSE;
    }
  if (!engine_start_exports (self, e, &local))
    {
      start_failed (self, local, error);
      engine_free (e);
      return FALSE;
    }
  e->owner = self;
  e->serial = ++self->engine_serial;
  e->listener = vmm_machine_add_listener (e->vm, listener_state,
                                          listener_event, e);
  vmm_machine_set_serial_ready_callback (e->vm, serial_ready, self);
  self->engine = e;
  set_error (self, NULL);
  g_byte_array_set_size (self->serial_history, 0);
  if (vmm_machine_display (e->vm))
    {
      e->thumb_listener = display_surface_add_listener (
          vmm_machine_display (e->vm), &thumb_ops, self);
      self->thumbnail_timer
          = g_timeout_add (THUMBNAIL_INTERVAL_MS, thumbnail_tick, self);
    }
  if (!vmm_machine_start (e->vm, &local))
    {
      start_failed (self, local, error);
      self->engine = NULL;
      g_clear_handle_id (&self->thumbnail_timer, g_source_remove);
      if (e->thumb_listener)
        display_surface_remove_listener (vmm_machine_display (e->vm),
                                         e->thumb_listener);
      engine_free (e);
      return FALSE;
    }
  set_state (self, VESSEL_MACHINE_STATE_RUNNING);
  g_signal_emit (self, signals[SIGNAL_DISPLAY_CHANGED], 0);
  return TRUE;
}

void
vessel_machine_pause (VesselMachine *self)
{
  if (self->engine)
    vmm_machine_pause (self->engine->vm);
}

void
vessel_machine_resume (VesselMachine *self)
{
  if (self->engine)
    vmm_machine_resume (self->engine->vm);
}

void
vessel_machine_shutdown (VesselMachine *self)
{
  if (self->engine)
    vmm_machine_powerdown (self->engine->vm);
}

void
vessel_machine_force_off (VesselMachine *self)
{
  /* Pulling the plug needs nothing from the guest: release at once rather
   * than waiting for the engine's own powered-off report. */
  if (self->engine)
    engine_release (self, NULL);
}

void
vessel_machine_reset (VesselMachine *self)
{
  if (self->engine)
    vmm_machine_reset (self->engine->vm);
}

void
vessel_machine_stop_now (VesselMachine *self)
{
  self->restart_after_stop = FALSE;
  Engine *e = g_steal_pointer (&self->engine);
  if (!e)
    return;
  g_clear_handle_id (&self->thumbnail_timer, g_source_remove);
  g_signal_emit (self, signals[SIGNAL_DISPLAY_CHANGED], 0);
  if (e->thumb_listener)
    display_surface_remove_listener (vmm_machine_display (e->vm),
                                     e->thumb_listener);
  engine_free (e);
  set_state (self, VESSEL_MACHINE_STATE_STOPPED);
}

display_surface *
vessel_machine_get_surface (VesselMachine *self)
{
  return self->engine ? vmm_machine_display (self->engine->vm) : NULL;
}

display_input *
vessel_machine_get_input (VesselMachine *self)
{
  return self->engine ? vmm_machine_input (self->engine->vm) : NULL;
}

gboolean
vessel_machine_screenshot (VesselMachine *self, const char *path,
                           GError **error)
{
  if (!self->engine)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_CONNECTED,
                   _("“%s” is not running"), vessel_machine_get_title (self));
      return FALSE;
    }
  return vmm_machine_screendump (self->engine->vm, path, error);
}

gboolean
vessel_machine_set_cdrom (VesselMachine *self, const char *iso, GError **error)
{
  if (self->engine)
    {
      gboolean ok = iso ? vmm_machine_cdrom_change (self->engine->vm, iso,
                                                    FALSE, error)
                        : vmm_machine_cdrom_eject (self->engine->vm, FALSE,
                                                   error);
      if (!ok)
        return FALSE;
    }
  vessel_definition_set_cdrom (self->domain, iso);
  return vessel_machine_save (self, error);
}

char *
vessel_machine_get_export_uri (VesselMachine *self, VesselExportKind kind)
{
  if (!self->engine)
    return NULL;
  if (kind == VESSEL_EXPORT_VNC && self->engine->vnc)
    {
      VesselExport e = self->engine->cfg.vnc;
      e.port = self->engine->vnc_port;
      return vessel_export_uri (kind, &e);
    }
  if (kind == VESSEL_EXPORT_SPICE && self->engine->spice)
    {
      VesselExport e = self->engine->cfg.spice;
      e.port = self->engine->spice_port;
      return vessel_export_uri (kind, &e);
    }
  return NULL;
}
