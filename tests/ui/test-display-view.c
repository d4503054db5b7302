/* VesselDisplayView under Xvfb: a surface with a known pattern in a 400x400
 * window, the window rendered to a texture with its own renderer and its
 * pixels checked (letterbox, partial updates, a resize, 1:1), the
 * coordinate mapping, keys through the real key path, the screenshot, and
 * that the view lets go of the surface and is finalized.
 *
 * VESSEL_DISPLAY_EXPECT=gl|software makes the test insist on one drawing
 * path (meson runs it once as is and once with GDK_DEBUG=gl-disable). */
#include <glib/gstdio.h>
#include <gtk/gtk.h>

#include "display/vessel-display-view-private.h"

#define WIN_W 400
#define WIN_H 400
#define FRAME_TIMEOUT_S 20

#define RED 0xff0000u
#define GREEN 0x00ff00u
#define BLUE 0x0000ffu
#define WHITE 0xffffffu
#define BLACK 0x000000u
#define MAGENTA 0xff00ffu
#define YELLOW 0xffff00u
#define CYAN 0x00ffffu

typedef struct {
  GtkWidget *window;
  GtkWidget *view;
  GtkWidget *other; /* something else to focus */
  display_surface *surface;
  display_input *input;
  GByteArray *keyboard; /* set 2 bytes the guest got */
  int size_changes;
  int last_w, last_h;
} Fixture;

static void
record_keyboard (void *opaque, const uint8_t *set2, size_t n)
{
  Fixture *f = opaque;
  g_byte_array_append (f->keyboard, set2, n);
}

/* Pixels are written without the X byte (0x00RRGGBB): the view must draw
 * them opaque anyway. */
static void
fill (display_surface *s, int x, int y, int w, int h, guint32 rgb)
{
  guint8 *pixels = display_surface_pixels (s);
  int stride = display_surface_stride (s);
  for (int row = y; row < y + h; row++)
    for (int col = x; col < x + w; col++)
      ((guint32 *) (pixels + (gsize) row * stride))[col] = rgb;
}

static void
fill_quadrants (display_surface *s)
{
  int w = display_surface_width (s), h = display_surface_height (s);
  fill (s, 0, 0, w / 2, h / 2, RED);
  fill (s, w / 2, 0, w - w / 2, h / 2, GREEN);
  fill (s, 0, h / 2, w / 2, h - h / 2, BLUE);
  fill (s, w / 2, h / 2, w - w / 2, h - h / 2, WHITE);
}

static gpointer
flush_thread (gpointer data)
{
  display_surface_flush (data);
  return NULL;
}

/* Delivers the damage from another thread, as the engine does. */
static void
flush_from_engine_thread (display_surface *s)
{
  GThread *thread = g_thread_new ("fake-engine", flush_thread, s);
  g_thread_join (thread);
}

static void
after_paint (GdkFrameClock *clock, gboolean *painted)
{
  *painted = TRUE;
}

static gboolean
wake_up (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

/* Iterates the main context until the window has painted a frame that
 * began after the call (and so after everything queued before it). */
static void
wait_for_frame (Fixture *f)
{
  GdkFrameClock *clock = gtk_widget_get_frame_clock (f->window);
  g_assert_nonnull (clock);
  gboolean painted = FALSE;
  gulong id = g_signal_connect (clock, "after-paint", G_CALLBACK (after_paint),
                                &painted);
  guint tick = g_timeout_add (50, wake_up, NULL);
  gtk_widget_queue_draw (f->view);
  gint64 deadline = g_get_monotonic_time () + FRAME_TIMEOUT_S * G_USEC_PER_SEC;
  while (!painted)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("no frame painted in %d s", FRAME_TIMEOUT_S);
      g_main_context_iteration (NULL, TRUE);
    }
  g_source_remove (tick);
  g_signal_handler_disconnect (clock, id);
}

/* Waits until the view has its full size in a painted window. */
static void
wait_for_layout (Fixture *f)
{
  for (int i = 0; i < 100; i++)
    {
      wait_for_frame (f);
      if (gtk_widget_get_width (f->view) == WIN_W
          && gtk_widget_get_height (f->view) == WIN_H)
        return;
    }
  g_error ("the view is %dx%d, not %dx%d", gtk_widget_get_width (f->view),
           gtk_widget_get_height (f->view), WIN_W, WIN_H);
}

typedef struct {
  int width, height;
  guint32 *pixels; /* 0xAARRGGBB */
} Shot;

static void
shot_free (Shot *shot)
{
  g_free (shot->pixels);
  g_free (shot);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Shot, shot_free)

/* The window through its own renderer, cropped to the view. */
static Shot *
render_view (Fixture *f)
{
  int ww = gtk_widget_get_width (f->window);
  int wh = gtk_widget_get_height (f->window);
  GdkPaintable *paintable = gtk_widget_paintable_new (f->window);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  gdk_paintable_snapshot (paintable, snapshot, ww, wh);
  GskRenderNode *node = gtk_snapshot_free_to_node (snapshot);
  g_assert_nonnull (node);
  GskRenderer *renderer = gtk_native_get_renderer (GTK_NATIVE (f->window));
  GdkTexture *texture = gsk_renderer_render_texture (
      renderer, node, &GRAPHENE_RECT_INIT (0, 0, ww, wh));
  gsk_render_node_unref (node);
  g_object_unref (paintable);

  int tw = gdk_texture_get_width (texture);
  int th = gdk_texture_get_height (texture);
  g_autofree guint32 *all = g_new (guint32, (gsize) tw * th);
  gdk_texture_download (texture, (guchar *) all, (gsize) tw * 4);
  g_object_unref (texture);

  graphene_point_t origin;
  g_assert_true (gtk_widget_compute_point (f->view, f->window,
                                           &GRAPHENE_POINT_INIT (0, 0),
                                           &origin));
  Shot *shot = g_new0 (Shot, 1);
  shot->width = gtk_widget_get_width (f->view);
  shot->height = gtk_widget_get_height (f->view);
  g_assert_cmpint ((int) origin.x + shot->width, <=, tw);
  g_assert_cmpint ((int) origin.y + shot->height, <=, th);
  shot->pixels = g_new (guint32, (gsize) shot->width * shot->height);
  for (int y = 0; y < shot->height; y++)
    memcpy (shot->pixels + (gsize) y * shot->width,
            all + (gsize) (y + (int) origin.y) * tw + (int) origin.x,
            (gsize) shot->width * 4);
  return shot;
}

static guint32
shot_rgb (const Shot *shot, int x, int y)
{
  g_assert_cmpint (x, >=, 0);
  g_assert_cmpint (y, >=, 0);
  g_assert_cmpint (x, <, shot->width);
  g_assert_cmpint (y, <, shot->height);
  guint32 p = shot->pixels[(gsize) y * shot->width + x];
  g_assert_cmphex (p >> 24, ==, 0xff);
  return p & 0xffffff;
}

static gboolean
rgb_close (guint32 a, guint32 b)
{
  for (int shift = 0; shift < 24; shift += 8)
    if (ABS ((int) ((a >> shift) & 0xff) - (int) ((b >> shift) & 0xff)) > 2)
      return FALSE;
  return TRUE;
}

#define assert_pixel(shot, x, y, rgb)                                         \
  G_STMT_START                                                                \
  {                                                                           \
    guint32 got_ = shot_rgb ((shot), (x), (y));                               \
    if (!rgb_close (got_, (rgb)))                                             \
      g_error ("pixel (%d, %d) is %06x, not %06x", (int) (x), (int) (y),      \
               got_, (guint32) (rgb));                                        \
  }                                                                           \
  G_STMT_END

static void
on_guest_size_changed (VesselDisplayView *view, int w, int h, Fixture *f)
{
  f->size_changes++;
  f->last_w = w;
  f->last_h = h;
}

static void
fixture_set_up (Fixture *f, gconstpointer data)
{
  f->keyboard = g_byte_array_new ();
  display_input_backend backend = { .opaque = f,
                                    .keyboard = record_keyboard };
  f->input = display_input_new (&backend);
  f->surface = display_surface_new (320, 200);
  fill_quadrants (f->surface);

  f->window = gtk_window_new ();
  gtk_window_set_decorated (GTK_WINDOW (f->window), FALSE);
  gtk_window_set_default_size (GTK_WINDOW (f->window), WIN_W, WIN_H);
  GtkWidget *overlay = gtk_overlay_new ();
  f->view = vessel_display_view_new ();
  gtk_overlay_set_child (GTK_OVERLAY (overlay), f->view);
  /* A focusable neighbour, drawn invisibly in a corner of the bars. */
  f->other = gtk_button_new ();
  gtk_widget_set_opacity (f->other, 0);
  gtk_widget_set_halign (f->other, GTK_ALIGN_START);
  gtk_widget_set_valign (f->other, GTK_ALIGN_START);
  gtk_overlay_add_overlay (GTK_OVERLAY (overlay), f->other);
  gtk_window_set_child (GTK_WINDOW (f->window), overlay);
  g_signal_connect (f->view, "guest-size-changed",
                    G_CALLBACK (on_guest_size_changed), f);

  vessel_display_view_set_source (VESSEL_DISPLAY_VIEW (f->view), f->surface,
                                  f->input);
  gtk_window_present (GTK_WINDOW (f->window));
  wait_for_layout (f);

  const char *expect = g_getenv ("VESSEL_DISPLAY_EXPECT");
  gboolean gl = vessel_display_view_is_accelerated (VESSEL_DISPLAY_VIEW (f->view));
  g_test_message ("drawing through %s, renderer %s", gl ? "GL" : "software",
                  G_OBJECT_TYPE_NAME (
                      gtk_native_get_renderer (GTK_NATIVE (f->window))));
  if (g_strcmp0 (expect, "gl") == 0)
    g_assert_true (gl);
  else if (g_strcmp0 (expect, "software") == 0)
    g_assert_false (gl);
}

static void
fixture_tear_down (Fixture *f, gconstpointer data)
{
  GtkWidget *view = f->view;
  g_object_add_weak_pointer (G_OBJECT (view), (gpointer *) &view);
  gtk_window_destroy (GTK_WINDOW (f->window));
  gint64 deadline = g_get_monotonic_time () + FRAME_TIMEOUT_S * G_USEC_PER_SEC;
  while (view)
    {
      if (g_get_monotonic_time () > deadline)
        g_error ("the view was not finalized");
      g_main_context_iteration (NULL, FALSE);
    }
  /* Warns (fatally here) if the view kept its listener. */
  display_surface_free (f->surface);
  display_input_free (f->input);
  g_byte_array_unref (f->keyboard);
}

/* 320x200 (16:10) in 400x400: full width, 250 rows, bars of 75 above and
 * below. */
static void
check_letterboxed_quadrants (const Shot *shot)
{
  assert_pixel (shot, 200, 30, BLACK);
  assert_pixel (shot, 200, 73, BLACK);
  assert_pixel (shot, 200, 326, BLACK);
  assert_pixel (shot, 200, 370, BLACK);
  assert_pixel (shot, 100, 137, RED);
  assert_pixel (shot, 300, 137, GREEN);
  assert_pixel (shot, 100, 262, BLUE);
  assert_pixel (shot, 300, 262, WHITE);
  /* The picture's first and last rows and columns. */
  assert_pixel (shot, 100, 76, RED);
  assert_pixel (shot, 100, 323, BLUE);
  assert_pixel (shot, 1, 137, RED);
  assert_pixel (shot, 398, 262, WHITE);
}

static void
test_letterbox (Fixture *f, gconstpointer data)
{
  g_assert_cmpint (vessel_display_view_get_guest_width (VESSEL_DISPLAY_VIEW (f->view)), ==, 320);
  g_assert_cmpint (vessel_display_view_get_guest_height (VESSEL_DISPLAY_VIEW (f->view)), ==, 200);
  g_autoptr (Shot) shot = render_view (f);
  g_assert_cmpint (shot->width, ==, WIN_W);
  g_assert_cmpint (shot->height, ==, WIN_H);
  check_letterboxed_quadrants (shot);
}

/* Guest rectangle → the view's pixels it covers (scale 1.25, 75 down). */
static gboolean
in_projection (int x, int y, int gx, int gy, int gw, int gh, int margin)
{
  double x0 = gx * 1.25, y0 = 75 + gy * 1.25;
  double x1 = (gx + gw) * 1.25, y1 = 75 + (gy + gh) * 1.25;
  return x >= x0 - margin && x < x1 + margin && y >= y0 - margin
         && y < y1 + margin;
}

static void
test_partial_update (Fixture *f, gconstpointer data)
{
  g_autoptr (Shot) before = render_view (f);
  check_letterboxed_quadrants (before);

  /* A dirtied rectangle, and a change nobody reported. */
  fill (f->surface, 40, 40, 80, 60, MAGENTA);
  display_surface_dirty (f->surface, 40, 40, 80, 60);
  fill (f->surface, 200, 120, 100, 60, YELLOW);
  flush_from_engine_thread (f->surface);
  wait_for_frame (f);

  g_autoptr (Shot) after = render_view (f);
  assert_pixel (after, 100, 162, MAGENTA); /* guest (80, 70) */
  assert_pixel (after, 52, 127, MAGENTA);  /* near its corners */
  assert_pixel (after, 147, 197, MAGENTA);
  assert_pixel (after, 312, 262, WHITE); /* the unreported change */
  int changed = 0;
  for (int y = 0; y < after->height; y++)
    for (int x = 0; x < after->width; x++)
      {
        guint32 a = before->pixels[(gsize) y * WIN_W + x];
        guint32 b = after->pixels[(gsize) y * WIN_W + x];
        if (in_projection (x, y, 40, 40, 80, 60, 2))
          changed += a != b;
        else if (a != b)
          g_error ("pixel (%d, %d) changed from %08x to %08x outside the "
                   "damage", x, y, a, b);
      }
  g_assert_cmpint (changed, >=, 100 * 75);

  /* Reported now, it shows. */
  display_surface_dirty (f->surface, 200, 120, 100, 60);
  flush_from_engine_thread (f->surface);
  wait_for_frame (f);
  g_autoptr (Shot) last = render_view (f);
  assert_pixel (last, 312, 262, YELLOW);
  assert_pixel (last, 100, 162, MAGENTA);
  assert_pixel (last, 300, 137, GREEN);
}

static void
count_notify (GObject *object, GParamSpec *pspec, int *count)
{
  (*count)++;
}

static void
test_resize (Fixture *f, gconstpointer data)
{
  int notified = 0;
  g_signal_connect (f->view, "notify::guest-width", G_CALLBACK (count_notify),
                    &notified);
  f->size_changes = 0;

  /* Portrait now: full height, 200 wide, bars of 100 left and right. */
  display_surface_resize (f->surface, 200, 400);
  fill (f->surface, 0, 0, 200, 200, CYAN);
  fill (f->surface, 0, 200, 200, 200, RED);
  display_surface_dirty (f->surface, 0, 0, 200, 400);
  flush_from_engine_thread (f->surface);
  wait_for_frame (f);

  VesselDisplayView *view = VESSEL_DISPLAY_VIEW (f->view);
  g_assert_cmpint (vessel_display_view_get_guest_width (view), ==, 200);
  g_assert_cmpint (vessel_display_view_get_guest_height (view), ==, 400);
  int gw = 0, gh = 0;
  g_object_get (view, "guest-width", &gw, "guest-height", &gh, NULL);
  g_assert_cmpint (gw, ==, 200);
  g_assert_cmpint (gh, ==, 400);
  g_assert_cmpint (notified, ==, 1);
  g_assert_cmpint (f->size_changes, ==, 1);
  g_assert_cmpint (f->last_w, ==, 200);
  g_assert_cmpint (f->last_h, ==, 400);

  g_autoptr (Shot) shot = render_view (f);
  assert_pixel (shot, 50, 200, BLACK);
  assert_pixel (shot, 98, 200, BLACK);
  assert_pixel (shot, 302, 200, BLACK);
  assert_pixel (shot, 350, 200, BLACK);
  assert_pixel (shot, 200, 100, CYAN);
  assert_pixel (shot, 200, 300, RED);
  assert_pixel (shot, 101, 2, CYAN);
  assert_pixel (shot, 298, 397, RED);

  /* And back: a resize without damage still shows the (black) new image. */
  display_surface_resize (f->surface, 320, 200);
  wait_for_frame (f);
  g_autoptr (Shot) black = render_view (f);
  assert_pixel (black, 200, 200, BLACK);
  assert_pixel (black, 200, 100, BLACK);
  g_assert_cmpint (f->size_changes, ==, 2);
}

static guint32
one_to_one_pattern (int x, int y)
{
  return (guint32) (x & 0xff) << 16 | (guint32) (y & 0xff) << 8
         | ((x + y) & 1 ? 0xff : 0x40);
}

static void
test_one_to_one (Fixture *f, gconstpointer data)
{
  for (int y = 0; y < 200; y++)
    for (int x = 0; x < 320; x++)
      fill (f->surface, x, y, 1, 1, one_to_one_pattern (x, y));
  display_surface_dirty (f->surface, 0, 0, 320, 200);
  flush_from_engine_thread (f->surface);
  g_object_set (f->view, "scale-mode", VESSEL_DISPLAY_SCALE_ONE_TO_ONE, NULL);
  wait_for_frame (f);

  /* Centred: 40 columns and 100 rows of bars. Every pixel exact. */
  g_autoptr (Shot) shot = render_view (f);
  for (int y = 0; y < 200; y++)
    for (int x = 0; x < 320; x++)
      {
        guint32 got = shot_rgb (shot, 40 + x, 100 + y);
        if (got != one_to_one_pattern (x, y))
          g_error ("guest pixel (%d, %d) shows as %06x, not %06x", x, y, got,
                   one_to_one_pattern (x, y));
      }
  assert_pixel (shot, 39, 150, BLACK);
  assert_pixel (shot, 360, 150, BLACK);
  assert_pixel (shot, 200, 99, BLACK);
  assert_pixel (shot, 200, 300, BLACK);

  int gx, gy;
  g_assert_true (vessel_display_view_widget_to_guest (
      VESSEL_DISPLAY_VIEW (f->view), 40, 100, &gx, &gy));
  g_assert_cmpint (gx, ==, 0);
  g_assert_cmpint (gy, ==, 0);
  g_assert_true (vessel_display_view_widget_to_guest (
      VESSEL_DISPLAY_VIEW (f->view), 359.5, 299.5, &gx, &gy));
  g_assert_cmpint (gx, ==, 319);
  g_assert_cmpint (gy, ==, 199);
  g_assert_false (vessel_display_view_widget_to_guest (
      VESSEL_DISPLAY_VIEW (f->view), 39.5, 100, &gx, &gy));

  /* Back to fit. */
  vessel_display_view_set_scale_mode (VESSEL_DISPLAY_VIEW (f->view),
                                      VESSEL_DISPLAY_SCALE_FIT);
  fill_quadrants (f->surface);
  display_surface_dirty (f->surface, 0, 0, 320, 200);
  flush_from_engine_thread (f->surface);
  wait_for_frame (f);
  g_autoptr (Shot) fit = render_view (f);
  check_letterboxed_quadrants (fit);
}

static void
test_widget_to_guest (Fixture *f, gconstpointer data)
{
  VesselDisplayView *view = VESSEL_DISPLAY_VIEW (f->view);
  int gx = -1, gy = -1;

  g_assert_true (vessel_display_view_widget_to_guest (view, 200, 200, &gx, &gy));
  g_assert_cmpint (gx, ==, 160);
  g_assert_cmpint (gy, ==, 100);
  g_assert_true (vessel_display_view_widget_to_guest (view, 0, 75, &gx, &gy));
  g_assert_cmpint (gx, ==, 0);
  g_assert_cmpint (gy, ==, 0);
  g_assert_true (vessel_display_view_widget_to_guest (view, 399.9, 324.9, &gx, &gy));
  g_assert_cmpint (gx, ==, 319);
  g_assert_cmpint (gy, ==, 199);
  g_assert_true (vessel_display_view_widget_to_guest (view, 125, 137.5, &gx, &gy));
  g_assert_cmpint (gx, ==, 100);
  g_assert_cmpint (gy, ==, 50);

  /* The bars: FALSE, with the nearest pixel. */
  g_assert_false (vessel_display_view_widget_to_guest (view, 200, 10, &gx, &gy));
  g_assert_cmpint (gx, ==, 160);
  g_assert_cmpint (gy, ==, 0);
  g_assert_false (vessel_display_view_widget_to_guest (view, 200, 325, &gx, &gy));
  g_assert_cmpint (gy, ==, 199);
  g_assert_false (vessel_display_view_widget_to_guest (view, 200, 74.9, NULL, NULL));

  /* Without a surface nothing maps. */
  vessel_display_view_set_source (view, NULL, NULL);
  g_assert_cmpint (vessel_display_view_get_guest_width (view), ==, 0);
  g_assert_false (vessel_display_view_widget_to_guest (view, 200, 200, &gx, &gy));
  g_assert_cmpint (gx, ==, 0);
  g_assert_cmpint (gy, ==, 0);
  wait_for_frame (f);
  g_autoptr (Shot) shot = render_view (f);
  assert_pixel (shot, 200, 200, BLACK);
  vessel_display_view_set_source (view, f->surface, f->input);
  g_assert_cmpint (vessel_display_view_get_guest_width (view), ==, 320);
}

static void
append_key (GByteArray *expected, unsigned xt, gboolean down)
{
  guint8 bytes[8];
  gsize n = display_input_xt_to_set2 (xt, down, bytes);
  g_assert_cmpuint (n, >, 0);
  g_byte_array_append (expected, bytes, n);
}

static void
assert_keyboard (Fixture *f, GByteArray *expected)
{
  g_assert_cmpmem (f->keyboard->data, f->keyboard->len, expected->data,
                   expected->len);
  g_byte_array_set_size (f->keyboard, 0);
  g_byte_array_set_size (expected, 0);
}

/* X11 keycodes: evdev + 8. */
#define KC_A (30 + 8)
#define KC_LCTRL (29 + 8)
#define KC_LALT (56 + 8)
#define KC_DELETE (111 + 8)

static void
test_keys (Fixture *f, gconstpointer data)
{
  VesselDisplayView *view = VESSEL_DISPLAY_VIEW (f->view);
  g_autoptr (GByteArray) expected = g_byte_array_new ();
  int notified = 0;
  g_signal_connect (view, "notify::grabbed", G_CALLBACK (count_notify),
                    &notified);

  g_autofree char *release_keys = NULL;
  g_object_get (view, "release-keys", &release_keys, NULL);
  g_assert_cmpstr (release_keys, ==, "Ctrl+Alt");

  /* Not grabbed: keys stay with the desktop. */
  g_assert_false (vessel_display_view_process_key (view, KC_A, GDK_KEY_a, TRUE));
  g_assert_cmpuint (f->keyboard->len, ==, 0);

  vessel_display_view_grab (view);
  g_assert_true (vessel_display_view_get_grabbed (view));
  g_assert_cmpint (notified, ==, 1);
  g_assert_true (gtk_widget_has_focus (f->view));

  /* By scan code, and by keysym when the keycode means nothing. */
  g_assert_true (vessel_display_view_process_key (view, KC_A, GDK_KEY_a, TRUE));
  g_assert_true (vessel_display_view_process_key (view, KC_A, GDK_KEY_a, FALSE));
  append_key (expected, 0x1e, TRUE);
  append_key (expected, 0x1e, FALSE);
  assert_keyboard (f, expected);
  g_assert_true (vessel_display_view_process_key (view, 0, GDK_KEY_b, TRUE));
  g_assert_true (vessel_display_view_process_key (view, 0, GDK_KEY_b, FALSE));
  append_key (expected, 0x30, TRUE);
  append_key (expected, 0x30, FALSE);
  assert_keyboard (f, expected);

  /* Ctrl+Alt+Del goes to the guest and keeps the grab. */
  vessel_display_view_process_key (view, KC_LCTRL, GDK_KEY_Control_L, TRUE);
  vessel_display_view_process_key (view, KC_LALT, GDK_KEY_Alt_L, TRUE);
  vessel_display_view_process_key (view, KC_DELETE, GDK_KEY_Delete, TRUE);
  vessel_display_view_process_key (view, KC_DELETE, GDK_KEY_Delete, FALSE);
  vessel_display_view_process_key (view, KC_LALT, GDK_KEY_Alt_L, FALSE);
  vessel_display_view_process_key (view, KC_LCTRL, GDK_KEY_Control_L, FALSE);
  g_assert_true (vessel_display_view_get_grabbed (view));
  append_key (expected, 0x1d, TRUE);
  append_key (expected, 0x38, TRUE);
  append_key (expected, 0xe053, TRUE);
  append_key (expected, 0xe053, FALSE);
  append_key (expected, 0x38, FALSE);
  append_key (expected, 0x1d, FALSE);
  assert_keyboard (f, expected);

  /* Ctrl+Alt alone releases, once both are up. */
  vessel_display_view_process_key (view, KC_LCTRL, GDK_KEY_Control_L, TRUE);
  vessel_display_view_process_key (view, KC_LALT, GDK_KEY_Alt_L, TRUE);
  vessel_display_view_process_key (view, KC_LALT, GDK_KEY_Alt_L, FALSE);
  g_assert_true (vessel_display_view_get_grabbed (view));
  vessel_display_view_process_key (view, KC_LCTRL, GDK_KEY_Control_L, FALSE);
  g_assert_false (vessel_display_view_get_grabbed (view));
  g_assert_cmpint (notified, ==, 2);
  append_key (expected, 0x1d, TRUE);
  append_key (expected, 0x38, TRUE);
  append_key (expected, 0x38, FALSE);
  append_key (expected, 0x1d, FALSE);
  assert_keyboard (f, expected);

  /* The menu's key combinations need no grab. */
  static const unsigned ctrl_alt_f1[] = { 0x1d, 0x38, 0x3b };
  vessel_display_view_send_keys (view, ctrl_alt_f1, G_N_ELEMENTS (ctrl_alt_f1));
  append_key (expected, 0x1d, TRUE);
  append_key (expected, 0x38, TRUE);
  append_key (expected, 0x3b, TRUE);
  append_key (expected, 0x3b, FALSE);
  append_key (expected, 0x38, FALSE);
  append_key (expected, 0x1d, FALSE);
  assert_keyboard (f, expected);

  /* Losing focus releases the grab and the keys the guest holds. */
  vessel_display_view_grab (view);
  vessel_display_view_process_key (view, KC_LCTRL, GDK_KEY_Control_L, TRUE);
  append_key (expected, 0x1d, TRUE);
  assert_keyboard (f, expected);
  gtk_widget_grab_focus (f->other);
  g_assert_false (vessel_display_view_get_grabbed (view));
  append_key (expected, 0x1d, FALSE);
  assert_keyboard (f, expected);

  /* So does detaching. */
  vessel_display_view_grab (view);
  vessel_display_view_process_key (view, KC_A, GDK_KEY_a, TRUE);
  append_key (expected, 0x1e, TRUE);
  assert_keyboard (f, expected);
  vessel_display_view_set_source (view, NULL, NULL);
  g_assert_false (vessel_display_view_get_grabbed (view));
  append_key (expected, 0x1e, FALSE);
  assert_keyboard (f, expected);
  vessel_display_view_grab (view); /* nothing to grab */
  g_assert_false (vessel_display_view_get_grabbed (view));
}

static void
test_screenshot (Fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vessel-view-XXXXXX", &error);
  g_assert_no_error (error);
  g_autofree char *path = g_build_filename (dir, "screen.png", NULL);

  g_assert_true (vessel_display_view_save_screenshot (
      VESSEL_DISPLAY_VIEW (f->view), path, &error));
  g_assert_no_error (error);
  g_autoptr (GdkTexture) texture = gdk_texture_new_from_filename (path, &error);
  g_assert_no_error (error);
  g_assert_cmpint (gdk_texture_get_width (texture), ==, 320);
  g_assert_cmpint (gdk_texture_get_height (texture), ==, 200);
  g_autofree guint32 *pixels = g_new (guint32, 320 * 200);
  gdk_texture_download (texture, (guchar *) pixels, 320 * 4);
  g_assert_cmphex (pixels[50 * 320 + 80], ==, 0xff000000u | RED);
  g_assert_cmphex (pixels[50 * 320 + 240], ==, 0xff000000u | GREEN);
  g_assert_cmphex (pixels[150 * 320 + 80], ==, 0xff000000u | BLUE);
  g_assert_cmphex (pixels[150 * 320 + 240], ==, 0xff000000u | WHITE);
  g_unlink (path);
  g_rmdir (dir);

  /* A path that cannot be written, and a view with nothing to save. */
  g_autofree char *bad = g_build_filename (dir, "missing", "screen.png", NULL);
  g_assert_false (vessel_display_view_save_screenshot (
      VESSEL_DISPLAY_VIEW (f->view), bad, &error));
  g_assert_error (error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
  g_clear_error (&error);
  vessel_display_view_set_source (VESSEL_DISPLAY_VIEW (f->view), NULL, NULL);
  g_assert_null (vessel_display_view_get_texture_snapshot (
      VESSEL_DISPLAY_VIEW (f->view)));
  g_assert_false (vessel_display_view_save_screenshot (
      VESSEL_DISPLAY_VIEW (f->view), path, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED);
}

/* The view disposed with the source still attached lets go of it (the
 * tear-down frees the surface, which warns about a leftover listener). */
static void
test_dispose_attached (Fixture *f, gconstpointer data)
{
  fill (f->surface, 0, 0, 10, 10, MAGENTA);
  display_surface_dirty (f->surface, 0, 0, 10, 10);
  /* An idle is queued when the window goes. */
  flush_from_engine_thread (f->surface);
}

int
main (int argc, char **argv)
{
  gtk_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                         \
  g_test_add ("/display-view/" name, Fixture, NULL, fixture_set_up, fn,       \
              fixture_tear_down)
  ADD ("letterbox", test_letterbox);
  ADD ("partial-update", test_partial_update);
  ADD ("resize", test_resize);
  ADD ("one-to-one", test_one_to_one);
  ADD ("widget-to-guest", test_widget_to_guest);
  ADD ("keys", test_keys);
  ADD ("screenshot", test_screenshot);
  ADD ("dispose-attached", test_dispose_attached);
#undef ADD
  return g_test_run ();
}
