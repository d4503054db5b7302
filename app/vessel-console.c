/* The serial console (see vessel-console.h). */
#include "app/vessel-console.h"

struct _VesselConsole {
  VteTerminal parent_instance;
  gboolean last_was_cr;
};

G_DEFINE_FINAL_TYPE (VesselConsole, vessel_console, VTE_TYPE_TERMINAL)

enum { SIGNAL_INPUT, N_SIGNALS };
static guint signals[N_SIGNALS];

static void
vessel_console_commit (VteTerminal *terminal, const char *text, guint size)
{
  g_autoptr (GBytes) bytes = g_bytes_new (text, size);
  g_signal_emit (terminal, signals[SIGNAL_INPUT], 0, bytes);
}

static void
vessel_console_class_init (VesselConsoleClass *klass)
{
  VTE_TERMINAL_CLASS (klass)->commit = vessel_console_commit;
  signals[SIGNAL_INPUT] = g_signal_new ("input", G_TYPE_FROM_CLASS (klass),
                                        G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                                        NULL, G_TYPE_NONE, 1, G_TYPE_BYTES);
}

static void
vessel_console_init (VesselConsole *self)
{
  vte_terminal_set_scrollback_lines (VTE_TERMINAL (self), 10000);
  vte_terminal_set_scroll_on_output (VTE_TERMINAL (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);
}

VesselConsole *
vessel_console_new (void)
{
  return g_object_new (VESSEL_TYPE_CONSOLE, NULL);
}

/* Guests often end lines with a bare LF (a serial port is not a tty with
 * onlcr): the terminal needs CR LF not to draw a staircase. */
void
vessel_console_feed (VesselConsole *self, GBytes *bytes)
{
  gsize n;
  const guint8 *p = g_bytes_get_data (bytes, &n);
  GString *out = g_string_sized_new (n + n / 16);
  for (gsize i = 0; i < n; i++)
    {
      if (p[i] == '\n' && !self->last_was_cr)
        g_string_append_c (out, '\r');
      g_string_append_c (out, (char) p[i]);
      self->last_was_cr = p[i] == '\r';
    }
  vte_terminal_feed (VTE_TERMINAL (self), out->str, (gssize) out->len);
  g_string_free (out, TRUE);
}

void
vessel_console_reset (VesselConsole *self)
{
  vte_terminal_reset (VTE_TERMINAL (self), TRUE, TRUE);
  self->last_was_cr = FALSE;
}
