/* QMP's wire protocol without a socket or a machine: one session per
 * client, bytes in and bytes out. A session splits the input into JSON
 * values as QEMU's streamer does (a newline is not needed after an object),
 * parses each, checks the envelope and the arguments against the command
 * table, and queues one reply per message. The caller (qmp.c) moves the
 * bytes and ends a session that asks to be ended. */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <stdbool.h>

G_BEGIN_DECLS

/* A message still incomplete after this many bytes ends the session. */
#define VMM_QMP_MAX_MESSAGE (1u << 20)
/* Nesting deeper than this ends the session (QEMU's limit too). */
#define VMM_QMP_MAX_DEPTH 1024
/* Output the client has not read: past this the session ends. */
#define VMM_QMP_MAX_OUTPUT (1u << 20)

/* The error classes QMP clients switch on. */
#define VMM_QMP_ERROR (vmm_qmp_error_quark ())
GQuark vmm_qmp_error_quark (void);
typedef enum {
  VMM_QMP_ERROR_GENERIC,
  VMM_QMP_ERROR_COMMAND_NOT_FOUND,
  VMM_QMP_ERROR_DEVICE_NOT_FOUND,
} vmm_qmp_error_code;

typedef enum {
  VMM_QMP_ARG_STRING,
  VMM_QMP_ARG_BOOL,
  VMM_QMP_ARG_INT,
  VMM_QMP_ARG_STRING_LIST,
  VMM_QMP_ARG_OBJECT_LIST, /* an array of objects the handler checks */
} vmm_qmp_arg_type;

typedef struct vmm_qmp_arg {
  const char *name;
  vmm_qmp_arg_type type;
  bool optional;
} vmm_qmp_arg;

/* Returns the "return" value (owned; NULL means {}), or NULL with @error
 * set. @args has been checked against the command's table: every member
 * is known, of its type, and the required ones are there. Errors outside
 * VMM_QMP_ERROR become GenericError. */
typedef JsonNode *(*vmm_qmp_handler) (void *opaque, JsonObject *args,
                                      GError **error);

typedef struct vmm_qmp_command {
  const char *name;
  vmm_qmp_handler fn;
  const vmm_qmp_arg *args; /* ends with a NULL name; NULL for none */
} vmm_qmp_command;

typedef struct vmm_qmp_session vmm_qmp_session;

/* @commands (ending with a NULL name) must outlive the session; they are
 * called with @opaque. qmp_capabilities is the session's own. The greeting
 * is queued at once. */
vmm_qmp_session *vmm_qmp_session_new (const vmm_qmp_command *commands,
                                      void *opaque);
void vmm_qmp_session_free (vmm_qmp_session *s);

/* Bytes from the client: every complete message is answered. FALSE: the
 * session is over (an oversized or too deeply nested message); a last
 * error is queued, send it and close. */
bool vmm_qmp_session_input (vmm_qmp_session *s, const char *buf, size_t len);
/* What to send; the caller erases what it wrote (g_string_erase). */
GString *vmm_qmp_session_output (vmm_qmp_session *s);
/* Past VMM_QMP_MAX_OUTPUT: the client does not read, end it. */
bool vmm_qmp_session_overflowed (vmm_qmp_session *s);
/* After qmp_capabilities: commands run and events are delivered. */
bool vmm_qmp_session_negotiated (vmm_qmp_session *s);

/* One event line, formatted once for every session: {"event", "data",
 * "timestamp"} with the current wall-clock time. Takes @data (NULL: no
 * "data" member). */
char *vmm_qmp_format_event (const char *name, JsonObject *data);
/* Queues a line from vmm_qmp_format_event when the session is negotiated. */
void vmm_qmp_session_event (vmm_qmp_session *s, const char *line);

/* The command names the session accepts, for query-commands. */
JsonNode *vmm_qmp_list_commands (const vmm_qmp_command *commands);

G_END_DECLS
