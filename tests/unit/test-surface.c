/* The display surface: damage merging, listeners, resizes that consumers on
 * other threads never see torn. */
#include "display/surface.h"

typedef struct {
  unsigned updates;
  unsigned rects;
  display_rect last[DISPLAY_MAX_RECTS];
  unsigned resizes;
  int w, h;
  uint64_t gen;
  unsigned cursor_defines, cursor_moves;
  int cx, cy;
} recorder;

static void
rec_update (void *opaque, display_surface *s, const display_rect *rects,
            unsigned n)
{
  recorder *r = opaque;
  r->updates++;
  r->rects = n;
  memcpy (r->last, rects, n * sizeof *rects);
}

static void
rec_resize (void *opaque, display_surface *s, int w, int h, uint64_t gen)
{
  recorder *r = opaque;
  r->resizes++;
  r->w = w;
  r->h = h;
  r->gen = gen;
}

static void
rec_cursor_define (void *opaque, display_surface *s, const display_cursor *c)
{
  recorder *r = opaque;
  r->cursor_defines++;
  g_assert_cmpint (c->width, ==, 2);
  g_assert_cmphex (c->argb[3], ==, 0xff00ff00);
}

static void
rec_cursor_move (void *opaque, display_surface *s, int x, int y, bool vis)
{
  recorder *r = opaque;
  r->cursor_moves++;
  r->cx = x;
  r->cy = y;
}

static const display_listener_ops rec_ops = {
  .on_update = rec_update,
  .on_resize = rec_resize,
  .on_cursor_define = rec_cursor_define,
  .on_cursor_move = rec_cursor_move,
};

static void
test_basics (void)
{
  display_surface *s = display_surface_new (640, 480);
  g_assert_cmpint (display_surface_width (s), ==, 640);
  g_assert_cmpint (display_surface_height (s), ==, 480);
  g_assert_cmpint (display_surface_stride (s), ==, 640 * 4);
  g_assert_cmpint (display_surface_format (s), ==, DISPLAY_FORMAT_XRGB8888);
  g_assert_nonnull (display_surface_pixels (s));
  /* Absurd sizes are clamped. */
  display_surface_resize (s, -5, 1 << 30);
  g_assert_cmpint (display_surface_width (s), ==, 1);
  g_assert_cmpint (display_surface_height (s), ==, DISPLAY_MAX_HEIGHT);
  display_surface_free (s);
}

static void
test_damage (void)
{
  display_surface *s = display_surface_new (100, 100);
  recorder rec = { 0 };
  display_listener *l = display_surface_add_listener (s, &rec_ops, &rec);
  g_assert_cmpuint (rec.resizes, ==, 1); /* the current size, at once */
  g_assert_cmpint (rec.w, ==, 100);

  /* Nothing dirty: nobody is called. */
  g_assert_cmpuint (display_surface_flush (s), ==, 0);
  g_assert_cmpuint (rec.updates, ==, 0);

  /* Rows merge into one strip; a contained rect adds nothing. */
  for (int y = 10; y < 20; y++)
    display_surface_dirty (s, 0, y, 100, 1);
  display_surface_dirty (s, 5, 12, 10, 2);
  /* Clipped to the image; empty ones ignored. */
  display_surface_dirty (s, 90, 90, 50, 50);
  display_surface_dirty (s, 200, 200, 5, 5);
  display_surface_dirty (s, 0, 0, 0, 10);
  display_surface_dirty (s, 0, 0, INT32_MAX, -1);
  g_assert_cmpuint (display_surface_flush (s), ==, 2);
  g_assert_cmpuint (rec.updates, ==, 1);
  g_assert_cmpint (rec.last[0].y, ==, 10);
  g_assert_cmpint (rec.last[0].h, ==, 10);
  g_assert_cmpint (rec.last[0].w, ==, 100);
  g_assert_cmpint (rec.last[1].x, ==, 90);
  g_assert_cmpint (rec.last[1].w, ==, 10);
  g_assert_cmpint (rec.last[1].h, ==, 10);
  g_assert_cmpuint (display_surface_flush (s), ==, 0);

  /* Too many scattered rects collapse into their bounding box. */
  for (int i = 0; i < DISPLAY_MAX_RECTS + 5; i++)
    display_surface_dirty (s, (i * 7) % 90, (i * 13) % 90, 1, 1);
  unsigned n = display_surface_flush (s);
  g_assert_cmpuint (n, <=, DISPLAY_MAX_RECTS);
  g_assert_cmpuint (n, >=, 1);

  /* A resize drops pending damage and tells the listener. */
  display_surface_dirty (s, 0, 0, 10, 10);
  uint64_t gen = display_surface_generation (s);
  display_surface_resize (s, 320, 200);
  g_assert_cmpuint (rec.resizes, ==, 2);
  g_assert_cmpint (rec.w, ==, 320);
  g_assert_cmpint (rec.h, ==, 200);
  g_assert_cmpuint (rec.gen, ==, gen + 1);
  g_assert_cmpuint (display_surface_pending (s, NULL, 0), ==, 0);
  /* The same size again: nothing. */
  display_surface_resize (s, 320, 200);
  g_assert_cmpuint (rec.resizes, ==, 2);

  /* Cursor. */
  uint32_t argb[4] = { 0, 0, 0, 0xff00ff00 };
  display_cursor c = { 2, 2, 0, 0, argb };
  display_surface_cursor_define (s, &c);
  display_surface_cursor_move (s, 5, 6, true);
  g_assert_cmpuint (rec.cursor_defines, ==, 1);
  g_assert_cmpuint (rec.cursor_moves, ==, 1);
  g_assert_cmpint (rec.cx, ==, 5);

  /* A late listener gets the size and the cursor. */
  recorder late = { 0 };
  display_listener *l2 = display_surface_add_listener (s, &rec_ops, &late);
  g_assert_cmpuint (late.resizes, ==, 1);
  g_assert_cmpint (late.w, ==, 320);
  g_assert_cmpuint (late.cursor_defines, ==, 1);

  unsigned before = rec.updates;
  display_surface_remove_listener (s, l);
  display_surface_dirty (s, 0, 0, 1, 1);
  display_surface_flush (s);
  g_assert_cmpuint (late.updates, ==, 1);
  g_assert_cmpuint (rec.updates, ==, before); /* not called after removal */
  display_surface_remove_listener (s, l2);
  display_surface_free (s);
}

/* A consumer thread reads whole images while the producer resizes and
 * draws: every image it holds is self-consistent (each pixel encodes the
 * image's own width and height). */
typedef struct {
  display_surface *s;
  gint stop;
  unsigned checked;
} consumer;

static uint32_t
stamp (int w, int h)
{
  return 0xff000000u | (uint32_t) (w & 0xfff) << 12 | (uint32_t) (h & 0xfff);
}

static gpointer
consumer_thread (gpointer data)
{
  consumer *c = data;
  while (!g_atomic_int_get (&c->stop))
    {
      display_image *img = display_surface_acquire (c->s);
      uint32_t want = stamp (img->width, img->height);
      const uint32_t *last = (const uint32_t *) (img->pixels
                                                 + (size_t) (img->height - 1)
                                                       * img->stride)
                             + img->width - 1;
      uint32_t got = *last;
      /* 0: the producer has not drawn this image yet. */
      g_assert_true (got == 0 || got == want);
      c->checked++;
      display_image_release (img);
    }
  return NULL;
}

static void
test_threads (void)
{
  consumer c = { .s = display_surface_new (64, 64) };
  GThread *t = g_thread_new ("consumer", consumer_thread, &c);
  GRand *rand = g_rand_new_with_seed (7);
  for (int i = 0; i < 2000; i++)
    {
      int w = g_rand_int_range (rand, 1, 300);
      int h = g_rand_int_range (rand, 1, 300);
      display_surface_resize (c.s, w, h);
      uint32_t *p = (uint32_t *) display_surface_pixels (c.s);
      int stride = display_surface_stride (c.s) / 4;
      for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
          p[y * stride + x] = stamp (w, h);
      display_surface_dirty (c.s, 0, 0, w, h);
      display_surface_flush (c.s);
    }
  g_atomic_int_set (&c.stop, 1);
  g_thread_join (t);
  g_assert_cmpuint (c.checked, >, 0);
  g_rand_free (rand);
  display_surface_free (c.s);
}

/* Listeners come and go on other threads while the producer flushes. */
static gpointer
churn_thread (gpointer data)
{
  consumer *c = data;
  while (!g_atomic_int_get (&c->stop))
    {
      recorder rec = { 0 };
      display_listener *l = display_surface_add_listener (c->s, &rec_ops, &rec);
      g_thread_yield ();
      display_surface_remove_listener (c->s, l);
      c->checked++;
    }
  return NULL;
}

static void
test_listener_churn (void)
{
  consumer c = { .s = display_surface_new (32, 32) };
  GThread *t = g_thread_new ("churn", churn_thread, &c);
  for (int i = 0; i < 20000; i++)
    {
      display_surface_dirty (c.s, i % 32, 0, 1, 1);
      display_surface_flush (c.s);
      if (i % 1000 == 0)
        display_surface_resize (c.s, 32 + i / 1000, 32);
    }
  g_atomic_int_set (&c.stop, 1);
  g_thread_join (t);
  display_surface_free (c.s);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/surface/basics", test_basics);
  g_test_add_func ("/surface/damage", test_damage);
  g_test_add_func ("/surface/threads", test_threads);
  g_test_add_func ("/surface/listener-churn", test_listener_churn);
  return g_test_run ();
}
