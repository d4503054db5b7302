/* The control socket's commands: each checks its (already typed) arguments
 * and calls the engine API on the I/O thread. Names, arguments and replies
 * follow QMP so that existing scripts work unchanged. */
#include "vmm-core/control/qmp-private.h"

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

static JsonNode *
cmd_eject (void *opaque, JsonObject *args, GError **error)
{
  vmm_qmp_server *s = opaque;
  if (find_cdrom (s, args, error))
    vmm_machine_cdrom_eject (s->machine, arg_force (args), error);
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
  vmm_machine_cdrom_change (s->machine, filename, arg_force (args), error);
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
  { "query-vnc", cmd_query_vnc, NULL },
  { "query-spice", cmd_query_spice, NULL },
  { "query-commands", cmd_query_commands, NULL },
  { "query-version", cmd_query_version, NULL },
  { NULL },
};
