/* display/spice.c: the --spice parser and password file; and the server on
 * its own (no guest): a surface drawn here, captured by Debian's SPICE
 * client (spicy-screenshot) after the first frame, a resize, partial damage
 * and a flood of damage that overflows the drawable queue. */
#include "display/spice.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PASSWORD "t1cket"
#define CAPTURE_DEADLINE_US (60 * G_USEC_PER_SEC)

static void
test_spec (void)
{
  display_spice_spec spec;
  g_autoptr (GError) error = NULL;
  g_assert_true (display_spice_spec_parse ("127.0.0.1:5930", &spec, &error));
  g_assert_cmpstr (spec.host, ==, "127.0.0.1");
  g_assert_cmpint (spec.port, ==, 5930);
  g_assert_null (spec.password_file);
  display_spice_spec_clear (&spec);
  g_assert_true (display_spice_spec_parse (":5931,password-file=/tmp/pw",
                                           &spec, &error));
  g_assert_cmpstr (spec.host, ==, DISPLAY_SPICE_DEFAULT_HOST);
  g_assert_cmpint (spec.port, ==, 5931);
  g_assert_cmpstr (spec.password_file, ==, "/tmp/pw");
  display_spice_spec_clear (&spec);
  g_assert_true (display_spice_spec_parse ("[::1]:6000", &spec, &error));
  g_assert_cmpstr (spec.host, ==, "::1");
  g_assert_cmpint (spec.port, ==, 6000);
  display_spice_spec_clear (&spec);
  g_assert_true (display_spice_spec_parse ("0.0.0.0:65535", &spec, &error));
  g_assert_cmpstr (spec.host, ==, "0.0.0.0");
  display_spice_spec_clear (&spec);
  const char *bad[] = { "",          "127.0.0.1",    ":0",
                        ":65536",    "host:",        "host:5x",
                        "::1:5930",  "[::1:5930",    "[]:5930",
                        ":5930,tls", ":5930,password-file=", NULL };
  for (unsigned i = 0; bad[i]; i++)
    {
      g_assert_false (display_spice_spec_parse (bad[i], &spec, &error));
      g_assert_nonnull (error);
      g_assert_null (spec.host);
      g_clear_error (&error);
    }
}

static void
test_password (void)
{
  g_autofree char *dir = g_dir_make_tmp ("vessel-spice-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "pw", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, "secret\r\nmore\n", -1, NULL));
  g_autofree char *pw = display_spice_read_password (path, &error);
  g_assert_cmpstr (pw, ==, "secret");
  g_assert_true (g_file_set_contents (path, "\nsecret\n", -1, NULL));
  g_assert_null (display_spice_read_password (path, &error));
  g_clear_error (&error);
  g_autofree char *longer = g_strnfill (DISPLAY_SPICE_MAX_PASSWORD + 1, 'x');
  g_assert_true (g_file_set_contents (path, longer, -1, NULL));
  g_assert_null (display_spice_read_password (path, &error));
  g_clear_error (&error);
  g_unlink (path);
  g_assert_null (display_spice_read_password (path, &error));
  g_rmdir (dir);
}

/* --- the server with a real client --------------------------------------- */

typedef struct io_thread {
  GMainContext *context;
  GMainLoop *loop;
  GThread *thread;
} io_thread;

static gpointer
io_main (gpointer data)
{
  io_thread *io = data;
  g_main_context_push_thread_default (io->context);
  g_main_loop_run (io->loop);
  g_main_context_pop_thread_default (io->context);
  return NULL;
}

static gboolean
io_quit (gpointer data)
{
  g_main_loop_quit (data);
  return G_SOURCE_REMOVE;
}

static int
free_port (void)
{
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof sin;
  g_assert_cmpint (bind (fd, (struct sockaddr *) &sin, sizeof sin), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &sin, &len), ==, 0);
  close (fd);
  return ntohs (sin.sin_port);
}

/* Flat blocks of colour: what a text screen or a desktop looks like, and
 * what spice-server sends losslessly. */
static uint32_t
pattern (int variant, int x, int y)
{
  static const uint32_t colours[] = { 0x000000, 0xaa0000, 0x00aa00,
                                      0x0000aa, 0xaaaa00, 0xffffff,
                                      0x5555ff, 0x123456 };
  return 0xff000000u | colours[(x / 40 + y / 30 + variant) % 8];
}

static void
paint (display_surface *s, int x0, int y0, int w, int h, int variant)
{
  uint8_t *px = display_surface_pixels (s);
  int stride = display_surface_stride (s);
  for (int y = y0; y < y0 + h; y++)
    for (int x = x0; x < x0 + w; x++)
      ((uint32_t *) (px + (size_t) y * stride))[x] = pattern (variant, x, y);
  display_surface_dirty (s, x0, y0, w, h);
}

/* Whether @ppm (spicy-screenshot's P6) shows exactly the surface's pixels. */
static bool
ppm_matches (const char *ppm, display_surface *s, char **why)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (ppm, &data, &len, NULL))
    {
      *why = g_strdup ("no capture");
      return false;
    }
  int w = 0, h = 0, maxval = 0, n = 0;
  if (sscanf (data, "P6 %d %d %d%n", &w, &h, &maxval, &n) != 3
      || maxval != 255 || (gsize) n + 1 + (gsize) w * h * 3 > len)
    {
      *why = g_strdup ("not a P6 PPM");
      return false;
    }
  if (w != display_surface_width (s) || h != display_surface_height (s))
    {
      *why = g_strdup_printf ("%dx%d, not %dx%d", w, h,
                              display_surface_width (s),
                              display_surface_height (s));
      return false;
    }
  const uint8_t *rgb = (const uint8_t *) data + n + 1;
  const uint8_t *px = display_surface_pixels (s);
  int stride = display_surface_stride (s);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      {
        uint32_t want = ((const uint32_t *) (px + (size_t) y * stride))[x];
        const uint8_t *got = rgb + ((size_t) y * w + x) * 3;
        if (got[0] != ((want >> 16) & 0xff) || got[1] != ((want >> 8) & 0xff)
            || got[2] != (want & 0xff))
          {
            *why = g_strdup_printf ("pixel (%d, %d) is %02x%02x%02x, not "
                                    "%06x", x, y, got[0], got[1], got[2],
                                    want & 0xffffff);
            return false;
          }
      }
  return true;
}

/* Captures until the client shows what the surface holds (the drawables
 * reach spice-server's worker asynchronously). */
static void
expect_capture (int port, const char *dir, display_surface *s,
                const char *password)
{
  g_autofree char *ppm = g_build_filename (dir, "capture.ppm", NULL);
  g_autofree char *port_s = g_strdup_printf ("%d", port);
  gint64 deadline = g_get_monotonic_time () + CAPTURE_DEADLINE_US;
  for (unsigned tries = 1;; tries++)
    {
      g_unlink (ppm);
      const char *argv[] = { "spicy-screenshot", "-h", "127.0.0.1", "-p",
                             port_s, "-w", password, "-o", ppm, NULL };
      g_autoptr (GError) error = NULL;
      g_autofree char *err = NULL;
      int status = 0;
      g_assert_true (g_spawn_sync (NULL, (char **) argv, NULL,
                                   G_SPAWN_SEARCH_PATH
                                       | G_SPAWN_STDOUT_TO_DEV_NULL,
                                   NULL, NULL, NULL, &err, &status, &error));
      g_assert_no_error (error);
      if (!g_spawn_check_wait_status (status, NULL))
        g_error ("spicy-screenshot failed: %s", err);
      g_autofree char *why = NULL;
      if (ppm_matches (ppm, s, &why))
        {
          g_test_message ("capture matched after %u tries", tries);
          return;
        }
      if (g_get_monotonic_time () > deadline)
        g_error ("the capture never matched: %s", why);
      g_usleep (50 * 1000);
    }
}

/* spice-server warns when a client hangs up; that is no test failure. */
static gboolean
spice_warnings_not_fatal (const char *domain, GLogLevelFlags level,
                          const char *message, gpointer data)
{
  return g_strcmp0 (domain, "Spice") != 0;
}

static void
spice_log (const char *domain, GLogLevelFlags level, const char *message,
           gpointer data)
{
  if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
    g_test_message ("spice-server: %s", message);
}

static void
test_server (void)
{
  g_autofree char *client = g_find_program_in_path ("spicy-screenshot");
  if (!client)
    {
      g_test_fail_printf ("spicy-screenshot is missing (spice-client-gtk): "
                          "tools/install-deps.sh --test");
      return;
    }
  g_test_log_set_fatal_handler (spice_warnings_not_fatal, NULL);
  g_log_set_handler ("Spice", G_LOG_LEVEL_MASK | G_LOG_FLAG_FATAL, spice_log,
                     NULL);
  g_autofree char *dir = g_dir_make_tmp ("vessel-spice-XXXXXX", NULL);
  io_thread io = { .context = g_main_context_new () };
  io.loop = g_main_loop_new (io.context, FALSE);
  io.thread = g_thread_new ("test-io", io_main, &io);

  display_surface *s = display_surface_new (640, 480);
  paint (s, 0, 0, 640, 480, 0);
  display_surface_flush (s);
  int port = free_port ();
  g_autoptr (GError) error = NULL;
  display_spice *sp = display_spice_new (s, NULL, io.context, NULL, port,
                                         PASSWORD, &error);
  g_assert_no_error (error);
  g_assert_nonnull (sp);
  expect_capture (port, dir, s, PASSWORD);

  /* A mode change: a new primary surface. */
  display_surface_resize (s, 800, 600);
  paint (s, 0, 0, 800, 600, 3);
  display_surface_flush (s);
  expect_capture (port, dir, s, PASSWORD);

  /* Partial damage, at odd places. */
  paint (s, 33, 17, 101, 51, 5);
  paint (s, 799, 0, 1, 600, 1);
  paint (s, 0, 599, 800, 1, 2);
  display_surface_flush (s);
  expect_capture (port, dir, s, PASSWORD);

  /* In the bottom row and corner, away from the left edge. */
  paint (s, 500, 590, 40, 10, 7);
  paint (s, 799, 599, 1, 1, 4);
  display_surface_flush (s);
  expect_capture (port, dir, s, PASSWORD);

  /* A flood: far more drawables than the queue keeps. */
  for (int round = 0; round < 40; round++)
    {
      for (int i = 0; i < DISPLAY_MAX_RECTS; i++)
        paint (s, (i * 37 + round * 11) % 780, (i * 53 + round * 7) % 590, 20,
               10, round + i);
      display_surface_flush (s);
    }
  expect_capture (port, dir, s, PASSWORD);

  /* Two mode changes back to back, with drawables of the first still
   * queued or held by the worker. */
  display_surface_resize (s, 1024, 768);
  paint (s, 0, 0, 1024, 768, 2);
  display_surface_flush (s);
  display_surface_resize (s, 640, 480);
  paint (s, 0, 0, 640, 480, 4);
  display_surface_flush (s);
  expect_capture (port, dir, s, PASSWORD);

  /* Smaller again. */
  display_surface_resize (s, 720, 400);
  paint (s, 0, 0, 720, 400, 6);
  display_surface_flush (s);
  expect_capture (port, dir, s, PASSWORD);

  display_spice_free (sp);
  display_surface_free (s);
  g_main_context_invoke (io.context, io_quit, io.loop);
  g_thread_join (io.thread);
  g_main_loop_unref (io.loop);
  g_main_context_unref (io.context);
  g_autofree char *ppm = g_build_filename (dir, "capture.ppm", NULL);
  g_unlink (ppm);
  g_rmdir (dir);
}

/* A port already taken: one error naming it, nothing left running. */
static void
test_port_taken (void)
{
  io_thread io = { .context = g_main_context_new () };
  io.loop = g_main_loop_new (io.context, FALSE);
  io.thread = g_thread_new ("test-io", io_main, &io);
  int fd = socket (AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sin = { .sin_family = AF_INET,
                             .sin_addr.s_addr = htonl (INADDR_LOOPBACK) };
  socklen_t len = sizeof sin;
  g_assert_cmpint (bind (fd, (struct sockaddr *) &sin, sizeof sin), ==, 0);
  g_assert_cmpint (listen (fd, 1), ==, 0);
  g_assert_cmpint (getsockname (fd, (struct sockaddr *) &sin, &len), ==, 0);
  display_surface *s = display_surface_new (640, 480);
  g_autoptr (GError) error = NULL;
  display_spice *sp = display_spice_new (s, NULL, io.context, "127.0.0.1",
                                         ntohs (sin.sin_port), NULL, &error);
  g_assert_null (sp);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_ADDRESS_IN_USE);
  close (fd);
  display_surface_free (s);
  g_main_context_invoke (io.context, io_quit, io.loop);
  g_thread_join (io.thread);
  g_main_loop_unref (io.loop);
  g_main_context_unref (io.context);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/spice/spec", test_spec);
  g_test_add_func ("/spice/password", test_password);
  g_test_add_func ("/spice/port-taken", test_port_taken);
  g_test_add_func ("/spice/server", test_server);
  return g_test_run ();
}
