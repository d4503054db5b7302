/* The control socket's commands: each checks its (already typed) arguments
 * and calls the engine API on the I/O thread. Names, arguments and replies
 * follow QMP so that existing scripts work unchanged. */
#include "vmm-core/control/qmp-private.h"

#include "display/input.h"

#include <string.h>
#include <sys/stat.h>

static JsonNode *
node_take_object (JsonObject *o)
{
  JsonNode *n = json_node_init_object (json_node_alloc (), o);
  json_object_unref (o);
  return n;
}

static const char *
status_name (vmm_machine_state state)
{
  switch (state)
    {
    case VMM_MACHINE_STOPPED:
      return "prelaunch";
    case VMM_MACHINE_RUNNING:
      return "running";
    case VMM_MACHINE_PAUSED:
      return "paused";
    case VMM_MACHINE_POWERED_OFF:
      return "shutdown";
    case VMM_MACHINE_ERROR:
      return "internal-error";
    }
  return "internal-error";
}

static JsonNode *
cmd_query_status (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  vmm_machine_state state = vmm_machine_get_state (s->machine);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "status", status_name (state));
  json_object_set_boolean_member (o, "running",
                                  state == VMM_MACHINE_RUNNING);
  json_object_set_boolean_member (o, "singlestep", FALSE);
  return node_take_object (o);
}

static JsonNode *
cmd_stop (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  vmm_machine_pause (s->machine);
  return NULL;
}

static JsonNode *
cmd_cont (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  switch (vmm_machine_get_state (s->machine))
    {
    case VMM_MACHINE_RUNNING:
    case VMM_MACHINE_PAUSED:
      vmm_machine_resume (s->machine);
      return NULL;
    case VMM_MACHINE_STOPPED:
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "The machine has not been started");
      return NULL;
    case VMM_MACHINE_POWERED_OFF:
    case VMM_MACHINE_ERROR:
      break;
    }
  g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
               "Resetting the Virtual Machine is required");
  return NULL;
}

static JsonNode *
cmd_system_reset (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  s->host_resets++;
  vmm_machine_reset (s->machine);
  return NULL;
}

static JsonNode *
cmd_system_powerdown (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  vmm_machine_powerdown (s->machine);
  return NULL;
}

static JsonNode *
cmd_quit (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  s->quit_requested = true; /* acted on once the reply is out */
  return NULL;
}

static JsonNode *
cmd_query_commands (void *opaque, JsonObject *args, GError **error)
{
  return vmm_qmp_list_commands (vmm_qmp_commands);
}

static JsonNode *
cmd_query_version (void *opaque, JsonObject *args, GError **error)
{
  JsonObject *qemu = json_object_new ();
  json_object_set_int_member (qemu, "micro", 0);
  json_object_set_int_member (qemu, "minor", 0);
  json_object_set_int_member (qemu, "major", 0);
  JsonObject *o = json_object_new ();
  json_object_set_object_member (o, "qemu", qemu);
  json_object_set_string_member (o, "package", "vessel 0.1");
  return node_take_object (o);
}

static JsonObject *
inserted_info (const char *path, const char *format, bool readonly)
{
  struct stat st;
  gint64 size = stat (path, &st) == 0 ? (gint64) st.st_size : 0;
  JsonObject *image = json_object_new ();
  json_object_set_string_member (image, "filename", path);
  json_object_set_string_member (image, "format", format);
  json_object_set_int_member (image, "virtual-size", size);
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "file", path);
  json_object_set_string_member (o, "node-name", "");
  json_object_set_boolean_member (o, "ro", readonly);
  json_object_set_string_member (o, "drv", format);
  json_object_set_boolean_member (o, "encrypted", FALSE);
  json_object_set_int_member (o, "backing_file_depth", 0);
  json_object_set_object_member (o, "image", image);
  return o;
}

static JsonNode *
cmd_query_block (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  JsonArray *list = json_array_new ();
  for (size_t i = 0; i < s->n_disks; i++)
    {
      const qmp_disk *d = &s->disks[i];
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, "device", d->device);
      json_object_set_boolean_member (o, "locked", FALSE);
      json_object_set_boolean_member (o, "removable", FALSE);
      json_object_set_string_member (o, "type", "unknown");
      json_object_set_string_member (o, "io-status", "ok");
      json_object_set_object_member (o, "inserted",
                                     inserted_info (d->path, d->format,
                                                    d->readonly));
      json_array_add_object_element (list, o);
    }
  g_autofree char *path = vmm_machine_cdrom_path (s->machine);
  JsonObject *cd = json_object_new ();
  json_object_set_string_member (cd, "device", QMP_CD_DEVICE);
  json_object_set_string_member (cd, "qdev", QMP_CD_ID);
  json_object_set_boolean_member (cd, "locked",
                                  vmm_machine_cdrom_locked (s->machine));
  json_object_set_boolean_member (cd, "removable", TRUE);
  json_object_set_boolean_member (cd, "tray_open", s->tray_open && !path);
  json_object_set_string_member (cd, "type", "unknown");
  json_object_set_string_member (cd, "io-status", "ok");
  if (path)
    json_object_set_object_member (cd, "inserted",
                                   inserted_info (path, "raw", true));
  json_array_add_object_element (list, cd);
  JsonNode *n = json_node_init_array (json_node_alloc (), list);
  json_array_unref (list);
  return n;
}

/* eject and blockdev-change-medium name the drive by "device" or "id":
 * the CD is ide1-cd0 (QEMU's name) or cd0. */
static bool
find_cdrom (vmm_qmp_server *s, JsonObject *args, GError **error)
{
  const char *name = NULL;
  if (json_object_has_member (args, "id"))
    name = json_object_get_string_member (args, "id");
  else if (json_object_has_member (args, "device"))
    name = json_object_get_string_member (args, "device");
  if (!name)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Parameter 'id' is missing");
      return false;
    }
  if (strcmp (name, QMP_CD_DEVICE) == 0 || strcmp (name, QMP_CD_ID) == 0)
    return true;
  for (size_t i = 0; i < s->n_disks; i++)
    if (strcmp (name, s->disks[i].device) == 0)
      {
        g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                     "Device '%s' is not removable", name);
        return false;
      }
  g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_DEVICE_NOT_FOUND,
               "Device '%s' not found", name);
  return false;
}

static bool
arg_force (JsonObject *args)
{
  return json_object_has_member (args, "force")
         && json_object_get_boolean_member (args, "force");
}

/* A tray the guest has locked is refused in QEMU's words (blockdev.c,
 * do_open_tray), naming the drive as the client did, so that scripts and
 * management tools that look for them keep working; QEMU also signals the
 * request to the guest, as the engine does. */
static void
tray_error (JsonObject *args, GError *local, GError **error)
{
  if (g_error_matches (local, G_IO_ERROR, G_IO_ERROR_BUSY))
    {
      const char *name = json_object_has_member (args, "id")
                             ? json_object_get_string_member (args, "id")
                             : json_object_get_string_member (args, "device");
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Device '%s' is locked and force was not specified, "
                   "wait for tray to open and try again", name);
      g_error_free (local);
    }
  else
    g_propagate_error (error, local);
}

static JsonNode *
cmd_eject (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  GError *local = NULL;
  if (find_cdrom (s, args, error)
      && !vmm_machine_cdrom_eject (s->machine, arg_force (args), &local))
    tray_error (args, local, error);
  return NULL;
}

static JsonNode *
cmd_screendump (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  if (json_object_has_member (args, "format")
      && strcmp (json_object_get_string_member (args, "format"), "png") != 0)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Vessel writes screendumps as png");
      return NULL;
    }
  const char *filename = json_object_get_string_member (args, "filename");
  g_autoptr (GError) local = NULL;
  if (!vmm_machine_screendump (s->machine, filename, &local))
    g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC, "%s",
                 local->message);
  return NULL;
}

static JsonNode *
cmd_blockdev_change_medium (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  if (!find_cdrom (s, args, error))
    return NULL;
  if (json_object_has_member (args, "format")
      && strcmp (json_object_get_string_member (args, "format"), "raw") != 0)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "A CD-ROM medium must be in the raw format");
      return NULL;
    }
  if (json_object_has_member (args, "read-only-mode"))
    {
      const char *mode = json_object_get_string_member (args,
                                                        "read-only-mode");
      if (strcmp (mode, "retain") != 0 && strcmp (mode, "read-only") != 0)
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "A CD-ROM medium is always read-only");
          return NULL;
        }
    }
  const char *filename = json_object_get_string_member (args, "filename");
  GError *local = NULL;
  if (!vmm_machine_cdrom_change (s->machine, filename, arg_force (args),
                                 &local))
    tray_error (args, local, error);
  return NULL;
}

static const vmm_qmp_arg eject_args[] = {
  { "device", VMM_QMP_ARG_STRING, true },
  { "id", VMM_QMP_ARG_STRING, true },
  { "force", VMM_QMP_ARG_BOOL, true },
  { NULL },
};

static const vmm_qmp_arg change_medium_args[] = {
  { "device", VMM_QMP_ARG_STRING, true },
  { "id", VMM_QMP_ARG_STRING, true },
  { "filename", VMM_QMP_ARG_STRING, false },
  { "format", VMM_QMP_ARG_STRING, true },
  { "force", VMM_QMP_ARG_BOOL, true },
  { "read-only-mode", VMM_QMP_ARG_STRING, true },
  { NULL },
};

static const vmm_qmp_arg screendump_args[] = {
  { "filename", VMM_QMP_ARG_STRING, false },
  { "format", VMM_QMP_ARG_STRING, true },
  { "device", VMM_QMP_ARG_STRING, true },
  { "head", VMM_QMP_ARG_INT, true },
  { NULL },
};

/* send-key (QEMU's KeyValue list): {"type": "qcode", "data": NAME} or
 * {"type": "number", "data": N} with N a set 1 code (0x01-0x7f, 0xE0nn for
 * the 0xE0-prefixed keys; QEMU's 0x80 | code for those is taken too).
 * Every key is pressed in order at once; after hold-time ms (default 100,
 * as QEMU's) they are released in reverse order on the I/O thread. */
#define SEND_KEY_MAX 16
#define SEND_KEY_HOLD_MS 100
#define SEND_KEY_HOLD_MAX_MS 10000

typedef struct send_key_release {
  display_input *input;
  unsigned n;
  unsigned xt[SEND_KEY_MAX];
} send_key_release;

static void
send_key_release_all (send_key_release *r)
{
  for (unsigned i = r->n; i-- > 0;)
    display_input_key (r->input, r->xt[i], false);
}

static gboolean
send_key_release_cb (gpointer data)
{
  send_key_release_all (data);
  return G_SOURCE_REMOVE;
}

/* The set 1 code of keys[@i], or 0 with @error set. */
static unsigned
send_key_code (JsonObject *key, unsigned i, GError **error)
{
  JsonNode *type = json_object_get_member (key, "type");
  JsonNode *data = json_object_get_member (key, "data");
  if (!type || !data)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Parameter 'keys[%u].%s' is missing", i,
                   type ? "data" : "type");
      return 0;
    }
  const char *kind = JSON_NODE_HOLDS_VALUE (type)
                             && json_node_get_value_type (type)
                                    == G_TYPE_STRING
                         ? json_node_get_string (type)
                         : NULL;
  bool is_string = JSON_NODE_HOLDS_VALUE (data)
                   && json_node_get_value_type (data) == G_TYPE_STRING;
  bool is_int = JSON_NODE_HOLDS_VALUE (data)
                && json_node_get_value_type (data) == G_TYPE_INT64;
  if (kind && strcmp (kind, "qcode") == 0)
    {
      if (!is_string)
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "Invalid parameter type for 'keys[%u].data', "
                       "expected: string", i);
          return 0;
        }
      const char *name = json_node_get_string (data);
      unsigned xt = display_input_qcode_to_xt (name);
      if (!xt)
        g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                     "Parameter 'keys[%u].data' does not accept value '%s'",
                     i, name);
      return xt;
    }
  if (kind && strcmp (kind, "number") == 0)
    {
      if (!is_int)
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "Invalid parameter type for 'keys[%u].data', "
                       "expected: integer", i);
          return 0;
        }
      gint64 n = json_node_get_int (data);
      unsigned xt = 0;
      if (n > 0 && n < 0x80)
        xt = (unsigned) n;
      else if (n >= 0x80 && n < 0x100)
        xt = 0xe000 | (unsigned) (n & 0x7f);
      else if (n > 0xe000 && n <= DISPLAY_XT_MAX)
        xt = (unsigned) n;
      uint8_t scratch[8];
      if (!xt || display_input_xt_to_set2 (xt, true, scratch) == 0)
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "Parameter 'keys[%u].data': no key has number %"
                       G_GINT64_FORMAT, i, n);
          return 0;
        }
      return xt;
    }
  g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
               "Parameter 'keys[%u].type' does not accept value '%s'", i,
               kind ? kind : "(not a string)");
  return 0;
}

static JsonNode *
cmd_send_key (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  JsonArray *keys = json_object_get_array_member (args, "keys");
  unsigned n = json_array_get_length (keys);
  if (n == 0 || n > SEND_KEY_MAX)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Parameter 'keys' takes 1 to %d keys, not %u",
                   SEND_KEY_MAX, n);
      return NULL;
    }
  gint64 hold = SEND_KEY_HOLD_MS;
  if (json_object_has_member (args, "hold-time"))
    hold = json_object_get_int_member (args, "hold-time");
  if (hold < 0 || hold > SEND_KEY_HOLD_MAX_MS)
    {
      g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                   "Parameter 'hold-time' must be 0 to %d ms",
                   SEND_KEY_HOLD_MAX_MS);
      return NULL;
    }
  send_key_release *r = g_new0 (send_key_release, 1);
  r->input = vmm_machine_input (s->machine);
  for (unsigned i = 0; i < n; i++)
    {
      r->xt[i] = send_key_code (json_array_get_object_element (keys, i), i,
                                error);
      if (!r->xt[i])
        {
          g_free (r);
          return NULL;
        }
    }
  r->n = n;
  for (unsigned i = 0; i < n; i++)
    display_input_key (r->input, r->xt[i], true);
  if (hold == 0)
    {
      send_key_release_all (r);
      g_free (r);
      return NULL;
    }
  /* The input router lives as long as the machine, whose I/O thread runs
   * this (or drops it, freeing @r) before the router goes. */
  GSource *src = g_timeout_source_new ((guint) hold);
  g_source_set_callback (src, send_key_release_cb, r, g_free);
  g_source_attach (src, s->ctx);
  g_source_unref (src);
  return NULL;
}

static const vmm_qmp_arg send_key_args[] = {
  { "keys", VMM_QMP_ARG_OBJECT_LIST, false },
  { "hold-time", VMM_QMP_ARG_INT, true },
  { NULL },
};

/* A reply the front end gives (query-vnc, query-spice), or
 * {"enabled": false} when it runs no such service. */
static JsonNode *
front_end_query (vmm_qmp_server *s, vmm_qmp_query_fn *fnp, void **opaquep)
{
  g_mutex_lock (&s->notice_lock);
  vmm_qmp_query_fn fn = *fnp;
  void *fn_opaque = *opaquep;
  g_mutex_unlock (&s->notice_lock);
  JsonObject *o = fn ? fn (fn_opaque) : NULL;
  if (!o)
    {
      o = json_object_new ();
      json_object_set_boolean_member (o, "enabled", FALSE);
    }
  return node_take_object (o);
}

static JsonNode *
cmd_query_vnc (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  return front_end_query (s, &s->query_vnc, &s->query_vnc_opaque);
}

static JsonNode *
cmd_query_spice (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  return front_end_query (s, &s->query_spice, &s->query_spice_opaque);
}

void
vmm_qmp_server_set_query_vnc (vmm_qmp_server *s, vmm_qmp_query_fn fn,
                              void *opaque)
{
  g_mutex_lock (&s->notice_lock);
  s->query_vnc = fn;
  s->query_vnc_opaque = opaque;
  g_mutex_unlock (&s->notice_lock);
}

void
vmm_qmp_server_set_query_spice (vmm_qmp_server *s, vmm_qmp_query_fn fn,
                                void *opaque)
{
  g_mutex_lock (&s->notice_lock);
  s->query_spice = fn;
  s->query_spice_opaque = opaque;
  g_mutex_unlock (&s->notice_lock);
}

const vmm_qmp_command vmm_qmp_commands[] = {
  { "query-status", cmd_query_status, NULL },
  { "stop", cmd_stop, NULL },
  { "cont", cmd_cont, NULL },
  { "system_reset", cmd_system_reset, NULL },
  { "system_powerdown", cmd_system_powerdown, NULL },
  { "quit", cmd_quit, NULL },
  { "query-block", cmd_query_block, NULL },
  { "eject", cmd_eject, eject_args },
  { "blockdev-change-medium", cmd_blockdev_change_medium,
    change_medium_args },
  { "screendump", cmd_screendump, screendump_args },
  { "send-key", cmd_send_key, send_key_args },
  { "query-vnc", cmd_query_vnc, NULL },
  { "query-spice", cmd_query_spice, NULL },
  { "query-commands", cmd_query_commands, NULL },
  { "query-version", cmd_query_version, NULL },
  { NULL },
};
