/* QMP's wire protocol without a socket or a machine: the splitter, the
 * envelope, negotiation, argument checks, replies, events and the limits
 * (vmm-core/control/qmp-protocol.c). */
#include "vmm-core/control/qmp-protocol.h"

#include <string.h>

typedef struct fake {
  unsigned calls;
  char *last_name; /* the "name" argument of the last echo */
} fake;

static JsonNode *
fake_echo (void *opaque, JsonObject *args, GError **error)
{
  fake *f = opaque;
  f->calls++;
  g_free (f->last_name);
  f->last_name = g_strdup (json_object_get_string_member (args, "name"));
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "name", f->last_name);
  if (json_object_has_member (args, "count"))
    json_object_set_int_member (o, "count",
                                json_object_get_int_member (args, "count"));
  JsonNode *n = json_node_init_object (json_node_alloc (), o);
  json_object_unref (o);
  return n;
}

static JsonNode *
fake_missing (void *opaque, JsonObject *args, GError **error)
{
  g_set_error (error, VMM_QMP_ERROR, VMM_QMP_ERROR_DEVICE_NOT_FOUND,
               "Device 'x' not found");
  return NULL;
}

static JsonNode *
fake_io_error (void *opaque, JsonObject *args, GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_BUSY, "busy");
  return NULL;
}

static const vmm_qmp_arg echo_args[] = {
  { "name", VMM_QMP_ARG_STRING, false },
  { "count", VMM_QMP_ARG_INT, true },
  { "loud", VMM_QMP_ARG_BOOL, true },
  { "tags", VMM_QMP_ARG_STRING_LIST, true },
  { NULL },
};

static const vmm_qmp_command commands[] = {
  { "echo", fake_echo, echo_args },
  { "missing", fake_missing, NULL },
  { "io-error", fake_io_error, NULL },
  { NULL },
};

typedef struct fixture {
  fake f;
  vmm_qmp_session *s;
} fixture;

static void
fixture_set_up (fixture *fx, gconstpointer data)
{
  memset (&fx->f, 0, sizeof fx->f);
  fx->s = vmm_qmp_session_new (commands, &fx->f);
}

static void
fixture_tear_down (fixture *fx, gconstpointer data)
{
  vmm_qmp_session_free (fx->s);
  g_free (fx->f.last_name);
}

/* The next output line, parsed (NULL when there is none). */
static JsonNode *
next_msg (fixture *fx)
{
  GString *out = vmm_qmp_session_output (fx->s);
  const char *nl = memchr (out->str, '\n', out->len);
  if (!nl)
    return NULL;
  gsize len = (gsize) (nl - out->str);
  g_autoptr (JsonParser) p = json_parser_new ();
  g_autoptr (GError) error = NULL;
  g_assert_true (json_parser_load_from_data (p, out->str, (gssize) len,
                                             &error));
  g_assert_no_error (error);
  g_string_erase (out, 0, (gssize) len + 1);
  JsonNode *root = json_parser_steal_root (p);
  g_assert_true (JSON_NODE_HOLDS_OBJECT (root));
  return root;
}

static void
feed (fixture *fx, const char *text)
{
  g_assert_true (vmm_qmp_session_input (fx->s, text, strlen (text)));
}

static void
assert_no_output (fixture *fx)
{
  g_assert_cmpuint (vmm_qmp_session_output (fx->s)->len, ==, 0);
}

/* The next message is an error of @cls; returns its desc (a copy). */
static char *
expect_error (fixture *fx, const char *cls)
{
  g_autoptr (JsonNode) m = next_msg (fx);
  g_assert_nonnull (m);
  JsonObject *o = json_node_get_object (m);
  g_assert_true (json_object_has_member (o, "error"));
  JsonObject *e = json_object_get_object_member (o, "error");
  g_assert_cmpstr (json_object_get_string_member (e, "class"), ==, cls);
  const char *desc = json_object_get_string_member (e, "desc");
  g_assert_true (desc && *desc);
  return g_strdup (desc);
}

/* The next message is a return; returns it (a new reference). */
static JsonNode *
expect_return (fixture *fx)
{
  g_autoptr (JsonNode) m = next_msg (fx);
  g_assert_nonnull (m);
  JsonObject *o = json_node_get_object (m);
  g_assert_true (json_object_has_member (o, "return"));
  return json_node_ref (m);
}

static void
skip_greeting (fixture *fx)
{
  g_autoptr (JsonNode) g = next_msg (fx);
  g_assert_nonnull (g);
  g_assert_true (json_object_has_member (json_node_get_object (g), "QMP"));
}

static void
negotiate (fixture *fx)
{
  skip_greeting (fx);
  feed (fx, "{\"execute\": \"qmp_capabilities\"}\n");
  g_autoptr (JsonNode) r = expect_return (fx);
  g_assert_true (vmm_qmp_session_negotiated (fx->s));
}

static void
test_greeting (fixture *fx, gconstpointer data)
{
  GString *out = vmm_qmp_session_output (fx->s);
  g_assert_cmpstr (out->str, ==,
                   "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, "
                   "\"minor\": 0, \"major\": 0}, \"package\": \"vessel "
                   "0.1\"}, \"capabilities\": []}}\n");
}

static void
test_negotiation (fixture *fx, gconstpointer data)
{
  skip_greeting (fx);
  feed (fx, "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\"}}\n");
  g_autofree char *d1 = expect_error (fx, "CommandNotFound");
  g_assert_nonnull (strstr (d1, "qmp_capabilities"));
  g_assert_cmpuint (fx->f.calls, ==, 0);
  feed (fx, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
            "{\"enable\": [\"oob\"]}}\n");
  g_autofree char *d2 = expect_error (fx, "GenericError");
  g_assert_false (vmm_qmp_session_negotiated (fx->s));
  feed (fx, "{\"execute\": \"qmp_capabilities\", \"id\": 1}\n");
  g_autoptr (JsonNode) r = expect_return (fx);
  JsonObject *o = json_node_get_object (r);
  g_assert_cmpint (json_object_get_int_member (o, "id"), ==, 1);
  g_assert_cmpuint (json_object_get_size (
                        json_object_get_object_member (o, "return")),
                    ==, 0);
  g_assert_true (vmm_qmp_session_negotiated (fx->s));
  feed (fx, "{\"execute\": \"qmp_capabilities\"}\n");
  g_autofree char *d3 = expect_error (fx, "CommandNotFound");
}

static void
test_command (fixture *fx, gconstpointer data)
{
  negotiate (fx);
  feed (fx, "{\"execute\": \"echo\", \"arguments\": {\"name\": \"x\", "
            "\"count\": 3, \"loud\": true, \"tags\": [\"a\", \"b\"]}, "
            "\"id\": {\"n\": [1, \"two\"]}}\n");
  g_autoptr (JsonNode) r = expect_return (fx);
  JsonObject *o = json_node_get_object (r);
  JsonObject *ret = json_object_get_object_member (o, "return");
  g_assert_cmpstr (json_object_get_string_member (ret, "name"), ==, "x");
  g_assert_cmpint (json_object_get_int_member (ret, "count"), ==, 3);
  JsonObject *id = json_object_get_object_member (o, "id");
  JsonArray *n = json_object_get_array_member (id, "n");
  g_assert_cmpint (json_array_get_int_element (n, 0), ==, 1);
  g_assert_cmpstr (json_array_get_string_element (n, 1), ==, "two");
  assert_no_output (fx);
}

/* Messages split anywhere, glued together, or sent without a newline. */
static void
test_splitting (fixture *fx, gconstpointer data)
{
  negotiate (fx);
  const char *msg = "{\"execute\": \"echo\", \"arguments\": "
                    "{\"name\": \"}{\\\"]\"}}";
  for (const char *p = msg; *p; p++)
    {
      g_assert_true (vmm_qmp_session_input (fx->s, p, 1));
      if (p[1])
        assert_no_output (fx);
    }
  g_autoptr (JsonNode) r1 = expect_return (fx);
  g_assert_cmpstr (fx->f.last_name, ==, "}{\"]");
  g_autofree char *two = g_strdup_printf ("%s%s\r\n  \n%s", msg, msg, msg);
  feed (fx, two);
  for (int i = 0; i < 3; i++)
    {
      g_autoptr (JsonNode) r = expect_return (fx);
    }
  g_assert_cmpuint (fx->f.calls, ==, 4);
}

static void
test_malformed (fixture *fx, gconstpointer data)
{
  negotiate (fx);
  static const char *const bad[] = {
    "not json at all\n",
    "{\"execute\": \"echo\", }\n",
    "{\"execute\" \"echo\"}\n",
    "[1, 2]\n",
    "42\n",
    "\"echo\"\n",
    "null\n",
    "{}\n",
    "{\"execute\": 1}\n",
    "{\"execute\": \"echo\", \"arguments\": [1]}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\"}, \"x\": 1}\n",
    "{\"exec-oob\": \"echo\"}\n",
    "{\"execute\": \"echo\"}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": 1}}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\", \"count\": "
    "\"3\"}}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\", \"count\": "
    "1.5}}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\", \"loud\": "
    "1}}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\", \"tags\": "
    "[1]}}\n",
    "{\"execute\": \"echo\", \"arguments\": {\"name\": \"a\", \"bogus\": "
    "1}}\n",
    "{\"execute\": \"io-error\"}\n",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      feed (fx, bad[i]);
      g_autofree char *desc = expect_error (fx, "GenericError");
      assert_no_output (fx);
    }
  g_assert_cmpuint (fx->f.calls, ==, 0);
  feed (fx, "{\"execute\": \"echo\"}\n");
  g_autofree char *missing = expect_error (fx, "GenericError");
  g_assert_cmpstr (missing, ==, "Parameter 'name' is missing");
  feed (fx, "{\"execute\": \"nope\", \"id\": \"q\"}\n");
  g_autofree char *nf = expect_error (fx, "CommandNotFound");
  feed (fx, "{\"execute\": \"missing\"}\n");
  g_autofree char *dnf = expect_error (fx, "DeviceNotFound");
  /* Still answering. */
  feed (fx, "{\"execute\": \"echo\", \"arguments\": {\"name\": \"ok\"}}\n");
  g_autoptr (JsonNode) r = expect_return (fx);
}

static void
test_oversized (fixture *fx, gconstpointer data)
{
  negotiate (fx);
  g_autofree char *big = g_malloc (VMM_QMP_MAX_MESSAGE);
  memset (big, 'x', VMM_QMP_MAX_MESSAGE);
  const char *head = "{\"execute\": \"";
  g_assert_true (vmm_qmp_session_input (fx->s, head, strlen (head)));
  g_assert_false (vmm_qmp_session_input (fx->s, big, VMM_QMP_MAX_MESSAGE));
  g_autofree char *desc = expect_error (fx, "GenericError");
  g_assert_false (vmm_qmp_session_input (fx->s, "{}", 2));
  assert_no_output (fx);
}

static void
test_oversized_line (fixture *fx, gconstpointer data)
{
  skip_greeting (fx);
  g_autofree char *big = g_malloc (VMM_QMP_MAX_MESSAGE + 2);
  memset (big, 'y', VMM_QMP_MAX_MESSAGE + 1);
  big[VMM_QMP_MAX_MESSAGE + 1] = '\n';
  g_assert_false (vmm_qmp_session_input (fx->s, big,
                                         VMM_QMP_MAX_MESSAGE + 2));
  g_autofree char *desc = expect_error (fx, "GenericError");
}

static void
test_too_deep (fixture *fx, gconstpointer data)
{
  skip_greeting (fx);
  GString *deep = g_string_new (NULL);
  for (int i = 0; i <= VMM_QMP_MAX_DEPTH; i++)
    g_string_append_c (deep, '[');
  g_assert_false (vmm_qmp_session_input (fx->s, deep->str, deep->len));
  g_string_free (deep, TRUE);
  g_autofree char *desc = expect_error (fx, "GenericError");
}

static void
test_events (fixture *fx, gconstpointer data)
{
  skip_greeting (fx);
  JsonObject *d = json_object_new ();
  json_object_set_boolean_member (d, "guest", TRUE);
  g_autofree char *line = vmm_qmp_format_event ("SHUTDOWN", d);
  vmm_qmp_session_event (fx->s, line);
  assert_no_output (fx); /* not before qmp_capabilities */
  feed (fx, "{\"execute\": \"qmp_capabilities\"}\n");
  g_autoptr (JsonNode) r = expect_return (fx);
  vmm_qmp_session_event (fx->s, line);
  g_autoptr (JsonNode) e = next_msg (fx);
  JsonObject *o = json_node_get_object (e);
  g_assert_cmpstr (json_object_get_string_member (o, "event"), ==,
                   "SHUTDOWN");
  g_assert_true (json_object_get_boolean_member (
      json_object_get_object_member (o, "data"), "guest"));
  JsonObject *ts = json_object_get_object_member (o, "timestamp");
  g_assert_cmpint (json_object_get_int_member (ts, "seconds"), >,
                   1600000000);
  gint64 us = json_object_get_int_member (ts, "microseconds");
  g_assert_cmpint (us, >=, 0);
  g_assert_cmpint (us, <, 1000000);
  g_autofree char *bare = vmm_qmp_format_event ("STOP", NULL);
  g_assert_null (strstr (bare, "\"data\""));
  g_assert_true (g_str_has_suffix (bare, "}\n"));
}

static void
test_overflow (fixture *fx, gconstpointer data)
{
  negotiate (fx);
  g_autofree char *line = vmm_qmp_format_event ("STOP", NULL);
  size_t len = strlen (line);
  for (size_t n = 0; n <= VMM_QMP_MAX_OUTPUT; n += len)
    vmm_qmp_session_event (fx->s, line);
  g_assert_true (vmm_qmp_session_overflowed (fx->s));
}

static void
test_list_commands (void)
{
  g_autoptr (JsonNode) n = vmm_qmp_list_commands (commands);
  JsonArray *a = json_node_get_array (n);
  g_assert_cmpuint (json_array_get_length (a), ==, 4);
  g_assert_cmpstr (json_object_get_string_member (
                       json_array_get_object_element (a, 0), "name"),
                   ==, "qmp_capabilities");
  g_assert_cmpstr (json_object_get_string_member (
                       json_array_get_object_element (a, 3), "name"),
                   ==, "io-error");
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, fn)                                                         \
  g_test_add (path, fixture, NULL, fixture_set_up, fn, fixture_tear_down)
  ADD ("/qmp/greeting", test_greeting);
  ADD ("/qmp/negotiation", test_negotiation);
  ADD ("/qmp/command", test_command);
  ADD ("/qmp/splitting", test_splitting);
  ADD ("/qmp/malformed", test_malformed);
  ADD ("/qmp/oversized", test_oversized);
  ADD ("/qmp/oversized-line", test_oversized_line);
  ADD ("/qmp/too-deep", test_too_deep);
  ADD ("/qmp/events", test_events);
  ADD ("/qmp/overflow", test_overflow);
#undef ADD
  g_test_add_func ("/qmp/list-commands", test_list_commands);
  return g_test_run ();
}
