/* vessel: the GTK application. */
#include "app/vessel-application.h"

#include <glib/gi18n.h>
#include <locale.h>
#include <signal.h>

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
  /* A VNC client that goes away must not kill every machine with it. */
  signal (SIGPIPE, SIG_IGN);
  g_autoptr (VesselApplication) app = vessel_application_new ();
  return g_application_run (G_APPLICATION (app), argc, argv);
}
