/* QMP's wire protocol: the splitter, the envelope, argument checks and
 * replies (see qmp-protocol.h). */
#include "vmm-core/control/qmp-protocol.h"

#include <string.h>

G_DEFINE_QUARK (vmm-qmp-error-quark, vmm_qmp_error)

typedef enum {
  SPLIT_IDLE,   /* between messages: whitespace is skipped */
  SPLIT_NESTED, /* inside an object or array: ends when the depth is 0 */
  SPLIT_LINE,   /* anything else (a scalar, garbage): ends at a newline */
} split_mode;

struct vmm_qmp_session {
  const vmm_qmp_command *commands;
  void *opaque;
  bool negotiated;
  bool over;

  GString *msg; /* the message being collected */
  split_mode mode;
  unsigned depth;
  bool in_string;
  bool escape;

  GString *out;
};

static void
queue_node (vmm_qmp_session *s, JsonNode *node)
{
  g_autofree char *text = json_to_string (node, FALSE);
  g_string_append (s->out, text);
  g_string_append_c (s->out, '\n');
}

static const char *
error_class (const GError *error)
{
  if (error->domain == VMM_QMP_ERROR)
    switch ((vmm_qmp_error_code) error->code)
      {
      case VMM_QMP_ERROR_COMMAND_NOT_FOUND:
        return "CommandNotFound";
      case VMM_QMP_ERROR_DEVICE_NOT_FOUND:
        return "DeviceNotFound";
      case VMM_QMP_ERROR_GENERIC:
        break;
      }
  return "GenericError";
}

/* {"error": {"class", "desc"}, "id"}; @id is borrowed and may be NULL. */
static void
queue_error (vmm_qmp_session *s, JsonNode *id, const GError *error)
{
  g_autoptr (JsonObject) err = json_object_new ();
  json_object_set_string_member (err, "class", error_class (error));
  json_object_set_string_member (err, "desc", error->message);
  g_autoptr (JsonObject) reply = json_object_new ();
  json_object_set_object_member (reply, "error", g_steal_pointer (&err));
  if (id)
    json_object_set_member (reply, "id", json_node_copy (id));
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (),
                                                     reply);
  queue_node (s, node);
}

static void G_GNUC_PRINTF (4, 5)
queue_error_printf (vmm_qmp_session *s, JsonNode *id, vmm_qmp_error_code code,
                    const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autoptr (GError) error = g_error_new_valist (VMM_QMP_ERROR, code, fmt,
                                                 ap);
  va_end (ap);
  queue_error (s, id, error);
}

/* {"return": @ret or {}, "id"}; takes @ret. */
static void
queue_return (vmm_qmp_session *s, JsonNode *id, JsonNode *ret)
{
  if (!ret)
    {
      g_autoptr (JsonObject) empty = json_object_new ();
      ret = json_node_init_object (json_node_alloc (), empty);
    }
  g_autoptr (JsonObject) reply = json_object_new ();
  json_object_set_member (reply, "return", ret);
  if (id)
    json_object_set_member (reply, "id", json_node_copy (id));
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (),
                                                     reply);
  queue_node (s, node);
}

static void
queue_greeting (vmm_qmp_session *s)
{
  g_string_append (s->out,
                   "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
                   "\"minor\": 0, \"major\": 0}, \"package\": \"vessel "
                   "0.1\"}, \"capabilities\": []}}\n");
}

static const char *
arg_type_name (vmm_qmp_arg_type type)
{
  switch (type)
    {
    case VMM_QMP_ARG_STRING:
      return "string";
    case VMM_QMP_ARG_BOOL:
      return "boolean";
    case VMM_QMP_ARG_INT:
      return "integer";
    case VMM_QMP_ARG_STRING_LIST:
      return "array of strings";
    case VMM_QMP_ARG_OBJECT_LIST:
      return "array of objects";
    }
  return "?";
}

static bool
arg_has_type (JsonNode *node, vmm_qmp_arg_type type)
{
  switch (type)
    {
    case VMM_QMP_ARG_STRING:
      return JSON_NODE_HOLDS_VALUE (node)
             && json_node_get_value_type (node) == G_TYPE_STRING;
    case VMM_QMP_ARG_BOOL:
      return JSON_NODE_HOLDS_VALUE (node)
             && json_node_get_value_type (node) == G_TYPE_BOOLEAN;
    case VMM_QMP_ARG_INT:
      return JSON_NODE_HOLDS_VALUE (node)
             && json_node_get_value_type (node) == G_TYPE_INT64;
    case VMM_QMP_ARG_STRING_LIST:
      {
        if (!JSON_NODE_HOLDS_ARRAY (node))
          return false;
        JsonArray *a = json_node_get_array (node);
        for (guint i = 0; i < json_array_get_length (a); i++)
          if (!arg_has_type (json_array_get_element (a, i),
                             VMM_QMP_ARG_STRING))
            return false;
        return true;
      }
    case VMM_QMP_ARG_OBJECT_LIST:
      {
        if (!JSON_NODE_HOLDS_ARRAY (node))
          return false;
        JsonArray *a = json_node_get_array (node);
        for (guint i = 0; i < json_array_get_length (a); i++)
          if (!JSON_NODE_HOLDS_OBJECT (json_array_get_element (a, i)))
            return false;
        return true;
      }
    }
  return false;
}

/* QEMU's wording, so that scripts matching on it keep working. */
static bool
check_args (const vmm_qmp_arg *spec, JsonObject *args, GError **error)
{
  g_autoptr (GList) members = json_object_get_members (args);
  for (GList *l = members; l; l = l->next)
    {
      const vmm_qmp_arg *a = spec;
      while (a && a->name && strcmp (a->name, l->data) != 0)
        a++;
      if (!a || !a->name)
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "Parameter '%s' is unexpected", (char *) l->data);
          return false;
        }
      if (!arg_has_type (json_object_get_member (args, a->name), a->type))
        {
          g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                       "Invalid parameter type for '%s', expected: %s",
                       a->name, arg_type_name (a->type));
          return false;
        }
    }
  for (const vmm_qmp_arg *a = spec; a && a->name; a++)
    if (!a->optional && !json_object_has_member (args, a->name))
      {
        g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_GENERIC,
                     "Parameter '%s' is missing", a->name);
        return false;
      }
  return true;
}

static const vmm_qmp_arg capabilities_args[] = {
  { "enable", VMM_QMP_ARG_STRING_LIST, true },
  { NULL },
};

static void
run_capabilities (vmm_qmp_session *s, JsonNode *id, JsonObject *args)
{
  g_autoptr (GError) error = NULL;
  if (!check_args (capabilities_args, args, &error))
    {
      queue_error (s, id, error);
      return;
    }
  if (json_object_has_member (args, "enable"))
    {
      JsonArray *a = json_object_get_array_member (args, "enable");
      if (json_array_get_length (a) > 0)
        {
          queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                              "Capability '%s' not available",
                              json_array_get_string_element (a, 0));
          return;
        }
    }
  s->negotiated = true;
  queue_return (s, id, NULL);
}

static void
run_command (vmm_qmp_session *s, JsonNode *id, const char *name,
             JsonObject *args)
{
  if (strcmp (name, "qmp_capabilities") == 0)
    {
      if (s->negotiated)
        queue_error_printf (s, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND,
                            "Capabilities negotiation is already complete, "
                            "command ignored");
      else
        run_capabilities (s, id, args);
      return;
    }
  if (!s->negotiated)
    {
      queue_error_printf (s, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND,
                          "Expecting capabilities negotiation with "
                          "'qmp_capabilities'");
      return;
    }
  const vmm_qmp_command *c = s->commands;
  while (c->name && strcmp (c->name, name) != 0)
    c++;
  if (!c->name)
    {
      queue_error_printf (s, id, VMM_QMP_ERROR_COMMAND_NOT_FOUND,
                          "The command %s has not been found", name);
      return;
    }
  g_autoptr (GError) error = NULL;
  if (!check_args (c->args, args, &error))
    {
      queue_error (s, id, error);
      return;
    }
  JsonNode *ret = c->fn (s->opaque, args, &error);
  if (error)
    {
      if (ret)
        json_node_unref (ret);
      queue_error (s, id, error);
      return;
    }
  queue_return (s, id, ret);
}

/* One complete message from the splitter. */
static void
handle_message (vmm_qmp_session *s, const char *text, size_t len)
{
  g_autoptr (JsonParser) parser = json_parser_new_immutable ();
  g_autoptr (GError) error = NULL;
  if (!json_parser_load_from_data (parser, text, (gssize) len, &error))
    {
      queue_error_printf (s, NULL, VMM_QMP_ERROR_GENERIC,
                          "JSON parse error, %s", error->message);
      return;
    }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root))
    {
      queue_error_printf (s, NULL, VMM_QMP_ERROR_GENERIC,
                          "QMP input must be a JSON object");
      return;
    }
  JsonObject *msg = json_node_get_object (root);
  JsonNode *id = json_object_get_member (msg, "id");
  const char *name = NULL;
  JsonObject *args = NULL;
  g_autoptr (GList) members = json_object_get_members (msg);
  for (GList *l = members; l; l = l->next)
    {
      const char *key = l->data;
      JsonNode *value = json_object_get_member (msg, key);
      if (strcmp (key, "execute") == 0)
        {
          if (!arg_has_type (value, VMM_QMP_ARG_STRING))
            {
              queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                                  "QMP input member 'execute' must be a "
                                  "string");
              return;
            }
          name = json_node_get_string (value);
        }
      else if (strcmp (key, "arguments") == 0)
        {
          if (!JSON_NODE_HOLDS_OBJECT (value))
            {
              queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                                  "QMP input member 'arguments' must be an "
                                  "object");
              return;
            }
          args = json_node_get_object (value);
        }
      else if (strcmp (key, "exec-oob") == 0)
        {
          queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                              "Out-of-band execution is not supported");
          return;
        }
      else if (strcmp (key, "id") != 0)
        {
          queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                              "QMP input member '%s' is unexpected", key);
          return;
        }
    }
  if (!name)
    {
      queue_error_printf (s, id, VMM_QMP_ERROR_GENERIC,
                          "QMP input lacks member 'execute'");
      return;
    }
  g_autoptr (JsonObject) empty = NULL;
  if (!args)
    args = empty = json_object_new ();
  run_command (s, id, name, args);
}

static void
split_reset (vmm_qmp_session *s)
{
  g_string_truncate (s->msg, 0);
  s->mode = SPLIT_IDLE;
  s->depth = 0;
  s->in_string = false;
  s->escape = false;
}

static bool
session_end (vmm_qmp_session *s, const char *why)
{
  queue_error_printf (s, NULL, VMM_QMP_ERROR_GENERIC, "%s", why);
  s->over = true;
  split_reset (s);
  return false;
}

bool
vmm_qmp_session_input (vmm_qmp_session *s, const char *buf, size_t len)
{
  if (s->over)
    return false;
  for (size_t i = 0; i < len; i++)
    {
      char c = buf[i];
      switch (s->mode)
        {
        case SPLIT_IDLE:
          if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
          if (c == '{' || c == '[')
            {
              s->mode = SPLIT_NESTED;
              s->depth = 1;
            }
          else
            s->mode = SPLIT_LINE;
          g_string_append_c (s->msg, c);
          break;
        case SPLIT_LINE:
          if (c == '\n')
            {
              handle_message (s, s->msg->str, s->msg->len);
              split_reset (s);
              continue;
            }
          g_string_append_c (s->msg, c);
          break;
        case SPLIT_NESTED:
          g_string_append_c (s->msg, c);
          if (s->in_string)
            {
              if (s->escape)
                s->escape = false;
              else if (c == '\\')
                s->escape = true;
              else if (c == '"')
                s->in_string = false;
            }
          else if (c == '"')
            s->in_string = true;
          else if (c == '{' || c == '[')
            {
              if (++s->depth > VMM_QMP_MAX_DEPTH)
                return session_end (s, "JSON nesting too deep");
            }
          else if (c == '}' || c == ']')
            {
              if (--s->depth == 0)
                {
                  handle_message (s, s->msg->str, s->msg->len);
                  split_reset (s);
                  continue;
                }
            }
          break;
        }
      if (s->msg->len > VMM_QMP_MAX_MESSAGE)
        return session_end (s, "Message exceeds the limit of 1 MiB");
    }
  return true;
}

vmm_qmp_session *
vmm_qmp_session_new (const vmm_qmp_command *commands, void *opaque)
{
  vmm_qmp_session *s = g_new0 (vmm_qmp_session, 1);
  s->commands = commands;
  s->opaque = opaque;
  s->msg = g_string_new (NULL);
  s->out = g_string_new (NULL);
  queue_greeting (s);
  return s;
}

void
vmm_qmp_session_free (vmm_qmp_session *s)
{
  if (!s)
    return;
  g_string_free (s->msg, TRUE);
  g_string_free (s->out, TRUE);
  g_free (s);
}

GString *
vmm_qmp_session_output (vmm_qmp_session *s)
{
  return s->out;
}

bool
vmm_qmp_session_overflowed (vmm_qmp_session *s)
{
  return s->out->len > VMM_QMP_MAX_OUTPUT;
}

bool
vmm_qmp_session_negotiated (vmm_qmp_session *s)
{
  return s->negotiated;
}

char *
vmm_qmp_format_event (const char *name, JsonObject *data)
{
  gint64 now = g_get_real_time ();
  g_autoptr (JsonObject) ts = json_object_new ();
  json_object_set_int_member (ts, "seconds", now / G_USEC_PER_SEC);
  json_object_set_int_member (ts, "microseconds", now % G_USEC_PER_SEC);
  g_autoptr (JsonObject) ev = json_object_new ();
  json_object_set_string_member (ev, "event", name);
  if (data)
    json_object_set_object_member (ev, "data", data);
  json_object_set_object_member (ev, "timestamp", g_steal_pointer (&ts));
  g_autoptr (JsonNode) node = json_node_init_object (json_node_alloc (), ev);
  g_autofree char *text = json_to_string (node, FALSE);
  return g_strconcat (text, "\n", NULL);
}

void
vmm_qmp_session_event (vmm_qmp_session *s, const char *line)
{
  if (s->negotiated && !s->over)
    g_string_append (s->out, line);
}

JsonNode *
vmm_qmp_list_commands (const vmm_qmp_command *commands)
{
  g_autoptr (JsonArray) list = json_array_new ();
  g_autoptr (JsonObject) caps = json_object_new ();
  json_object_set_string_member (caps, "name", "qmp_capabilities");
  json_array_add_object_element (list, g_steal_pointer (&caps));
  for (const vmm_qmp_command *c = commands; c->name; c++)
    {
      JsonObject *o = json_object_new ();
      json_object_set_string_member (o, "name", c->name);
      json_array_add_object_element (list, o);
    }
  return json_node_init_array (json_node_alloc (), list);
}
