/* The app's own cost: resident memory beyond the guests' RAM with one and
 * with four running machines, and the time from Start to the first guest
 * frame in the window. Runs the real app (under xvfb-run) on the test ISO;
 * QEMU's figures for the same guests are measured by bench-app.py around
 * this program.
 *
 *   bench-app ISO [MACHINES]
 *
 * Prints "key value" lines: rss_base_kib, rss_beyond_guests_1_kib,
 * rss_beyond_guests_N_kib, first_frame_ms (one per machine). */
#include "app/vessel-application.h"
#include "display/vessel-display-view.h"

#include <stdio.h>
#include <string.h>

#define GUEST_MIB 128

static gboolean
wake (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

static void
spin_ms (int ms)
{
  gint64 until = g_get_monotonic_time () + (gint64) ms * 1000;
  guint tick = g_timeout_add (20, wake, NULL);
  while (g_get_monotonic_time () < until)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
}

static gboolean
wait_for (gboolean (*cond) (gpointer), gpointer data, int seconds)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) seconds * G_USEC_PER_SEC;
  guint tick = g_timeout_add (5, wake, NULL);
  gboolean ok;
  while (!(ok = cond (data)) && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  g_source_remove (tick);
  return ok;
}

/* kB of a field of /proc/self/status. */
static long
status_kib (const char *field)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return -1;
  const char *p = strstr (text, field);
  return p ? strtol (p + strlen (field) + 1, NULL, 10) : -1;
}

/* Resident kB of the guests' RAM: the anonymous mappings of exactly a
 * guest's size (each machine maps its RAM below 4 GiB in one piece). */
static long
guest_rss_kib (void)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/self/smaps", &text, NULL, NULL))
    return -1;
  long total = 0;
  gboolean in_guest = FALSE;
  for (char *line = strtok (text, "\n"); line; line = strtok (NULL, "\n"))
    {
      unsigned long lo, hi;
      if (sscanf (line, "%lx-%lx ", &lo, &hi) == 2 && strchr (line, '-')
          && line[0] != ' ')
        in_guest = (hi - lo) == (unsigned long) GUEST_MIB << 20;
      else if (in_guest && g_str_has_prefix (line, "Rss:"))
        total += strtol (line + 4, NULL, 10);
    }
  return total;
}

typedef struct {
  VesselMachine *m;
  GtkWidget *window;
  gint64 painted_after;
} FrameWait;

/* The guest's own first screen: the 720x400 text mode (SeaBIOS's banner)
 * with a lit pixel, not the blank screen a display starts with. */
static gboolean
surface_lit (VesselMachine *m)
{
  display_surface *s = vessel_machine_get_surface (m);
  if (!s)
    return FALSE;
  display_image *img = display_surface_acquire (s);
  gboolean lit = FALSE;
  if (img && (img->width != 720 || img->height != 400))
    {
      display_image_release (img);
      return FALSE;
    }
  for (int y = 0; img && y < img->height && !lit; y += 2)
    {
      const guint32 *row = (const guint32 *) (img->pixels
                                              + (gsize) y * img->stride);
      for (int x = 0; x < img->width && !lit; x++)
        lit = (row[x] & 0xffffff) != 0;
    }
  if (img)
    display_image_release (img);
  return lit;
}

static gboolean
first_frame_shown (gpointer data)
{
  FrameWait *w = data;
  GdkFrameClock *clock = gtk_widget_get_frame_clock (w->window);
  if (!w->painted_after)
    {
      if (surface_lit (w->m))
        {
          /* The view paints it in the window's next frame. */
          w->painted_after = gdk_frame_clock_get_frame_counter (clock);
          gtk_widget_queue_draw (w->window);
        }
      return FALSE;
    }
  return gdk_frame_clock_get_frame_counter (clock) > w->painted_after;
}

static char *
write_definition (const char *dir, int i, const char *iso)
{
  g_autofree char *title = g_strdup_printf ("Bench %d", i);
  g_autofree char *name = vessel_definition_make_name (title);
  g_autoptr (GVirConfigDomain) d = vessel_definition_new (
      name, title, (guint64) GUEST_MIB << 20, 1);
  vessel_definition_set_cdrom (d, iso);
  g_autofree char *file = g_strdup_printf ("%s.xml", name);
  char *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  if (!vessel_definition_save (d, path, &error))
    g_error ("%s", error->message);
  return path;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    {
      fprintf (stderr, "usage: bench-app ISO [MACHINES]\n");
      return 2;
    }
  const char *iso = argv[1];
  int n = argc > 2 ? atoi (argv[2]) : 4;
  g_autofree char *tmp = g_dir_make_tmp ("vessel-bench-app-XXXXXX", NULL);
  g_autofree char *data = g_build_filename (tmp, "data", NULL);
  g_setenv ("XDG_DATA_HOME", data, TRUE);
  g_setenv ("GSETTINGS_BACKEND", "memory", TRUE);

  g_autoptr (VesselApplication) app = vessel_application_new ();
  g_application_set_flags (G_APPLICATION (app), G_APPLICATION_NON_UNIQUE);
  if (!g_application_register (G_APPLICATION (app), NULL, NULL))
    return 1;
  g_object_set (gtk_settings_get_default (), "gtk-enable-animations", FALSE,
                NULL);
  g_application_activate (G_APPLICATION (app));
  GtkWidget *window = GTK_WIDGET (vessel_application_get_window (app));
  VesselWindow *vw = VESSEL_WINDOW (window);
  GtkWidget *page = GTK_WIDGET (vessel_window_get_machine_page (vw));
  /* Let the window settle before the baseline. */
  spin_ms (2000);
  printf ("rss_base_kib %ld\n", status_kib ("VmRSS:"));

  VesselLibrary *lib = vessel_application_get_library (app);
  for (int i = 1; i <= n; i++)
    {
      g_autofree char *def = write_definition (tmp, i, iso);
      g_action_group_activate_action (G_ACTION_GROUP (app), "import-file",
                                      g_variant_new_string (def));
      VesselMachine *m = vessel_machine_page_get_machine (
          VESSEL_MACHINE_PAGE (page));
      /* Click Start, as a user does, and wait for the first frame. */
      gint64 t0 = g_get_monotonic_time ();
      gtk_widget_activate_action (page, "machine.start", NULL);
      FrameWait w = { m, window, 0 };
      if (!wait_for (first_frame_shown, &w, 120))
        g_error ("machine %d never showed a frame", i);
      printf ("first_frame_ms %.1f\n", (g_get_monotonic_time () - t0) / 1000.0);
      /* Let it settle (SeaBIOS into GRUB) before measuring. */
      spin_ms (5000);
      if (i == 1 || i == n)
        {
          long rss = status_kib ("VmRSS:"), guest = guest_rss_kib ();
          printf ("rss_total_%d_kib %ld\nguest_rss_%d_kib %ld\n"
                  "rss_beyond_guests_%d_kib %ld\n",
                  i, rss, i, guest, i, rss - guest);
        }
      fflush (stdout);
    }
  GListModel *model = vessel_library_get_model (lib);
  for (guint i = 0; i < g_list_model_get_n_items (model); i++)
    {
      g_autoptr (VesselMachine) m = g_list_model_get_item (model, i);
      vessel_machine_stop_now (m);
    }
  g_autofree char *cmd = g_strdup_printf ("rm -rf '%s'", tmp);
  if (system (cmd) != 0)
    fprintf (stderr, "could not remove %s\n", tmp);
  return 0;
}
