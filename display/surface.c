/* The display surface: images swapped whole on a resize, damage merged into
 * row strips, listeners called with a lock held for as long as they take to
 * record what happened. */
#include "display/surface.h"

#include <string.h>

struct display_listener {
  const display_listener_ops *ops;
  void *opaque;
};

struct display_surface {
  /* Guards image, generation and damage; held for microseconds. */
  GMutex lock;
  display_image *image;
  uint64_t generation;
  display_damage damage;

  /* Guards the listener list and every callback. */
  GMutex listeners_lock;
  GPtrArray *listeners;
  bool cursor_defined;
  display_cursor cursor; /* argb owned */
};

static display_image *
image_new (int width, int height, uint64_t generation)
{
  display_image *img = g_new0 (display_image, 1);
  img->format = DISPLAY_FORMAT_XRGB8888;
  img->width = width;
  img->height = height;
  img->stride = width * DISPLAY_BYTES_PER_PIXEL;
  img->pixels = g_malloc0 ((size_t) img->stride * (size_t) height);
  img->generation = generation;
  img->refcount = 1;
  return img;
}

void
display_image_release (display_image *img)
{
  if (img && g_atomic_int_dec_and_test (&img->refcount))
    {
      g_free (img->pixels);
      g_free (img);
    }
}

static int
clamp_dim (int v, int max)
{
  return v < 1 ? 1 : v > max ? max : v;
}

display_surface *
display_surface_new (int width, int height)
{
  display_surface *s = g_new0 (display_surface, 1);
  g_mutex_init (&s->lock);
  g_mutex_init (&s->listeners_lock);
  s->listeners = g_ptr_array_new_with_free_func (g_free);
  s->generation = 1;
  s->image = image_new (clamp_dim (width, DISPLAY_MAX_WIDTH),
                        clamp_dim (height, DISPLAY_MAX_HEIGHT), 1);
  return s;
}

void
display_surface_free (display_surface *s)
{
  if (!s)
    return;
  if (s->listeners->len)
    g_warning ("display surface freed with %u listeners", s->listeners->len);
  g_ptr_array_unref (s->listeners);
  display_image_release (s->image);
  g_free ((uint32_t *) s->cursor.argb);
  g_mutex_clear (&s->lock);
  g_mutex_clear (&s->listeners_lock);
  g_free (s);
}

display_format
display_surface_format (display_surface *s)
{
  return s->image->format;
}

int
display_surface_width (display_surface *s)
{
  return s->image->width;
}

int
display_surface_height (display_surface *s)
{
  return s->image->height;
}

int
display_surface_stride (display_surface *s)
{
  return s->image->stride;
}

uint8_t *
display_surface_pixels (display_surface *s)
{
  return s->image->pixels;
}

uint64_t
display_surface_generation (display_surface *s)
{
  g_mutex_lock (&s->lock);
  uint64_t gen = s->generation;
  g_mutex_unlock (&s->lock);
  return gen;
}

display_image *
display_surface_acquire (display_surface *s)
{
  g_mutex_lock (&s->lock);
  display_image *img = s->image;
  g_atomic_int_inc (&img->refcount);
  g_mutex_unlock (&s->lock);
  return img;
}

void
display_surface_resize (display_surface *s, int width, int height)
{
  width = clamp_dim (width, DISPLAY_MAX_WIDTH);
  height = clamp_dim (height, DISPLAY_MAX_HEIGHT);
  if (width == s->image->width && height == s->image->height)
    return;

  /* Allocate outside the lock; only the swap is under it. */
  display_image *img = image_new (width, height, s->generation + 1);
  g_mutex_lock (&s->lock);
  display_image *old = s->image;
  s->image = img;
  s->generation = img->generation;
  display_damage_clear (&s->damage);
  g_mutex_unlock (&s->lock);
  display_image_release (old);

  g_mutex_lock (&s->listeners_lock);
  for (guint i = 0; i < s->listeners->len; i++)
    {
      display_listener *l = s->listeners->pdata[i];
      if (l->ops->on_resize)
        l->ops->on_resize (l->opaque, s, width, height, img->generation);
    }
  g_mutex_unlock (&s->listeners_lock);
}

static bool
rect_contains (const display_rect *a, const display_rect *b)
{
  return b->x >= a->x && b->y >= a->y && b->x + b->w <= a->x + a->w
         && b->y + b->h <= a->y + a->h;
}

static void
rect_union (display_rect *a, const display_rect *b)
{
  int x0 = MIN (a->x, b->x), y0 = MIN (a->y, b->y);
  int x1 = MAX (a->x + a->w, b->x + b->w), y1 = MAX (a->y + a->h, b->y + b->h);
  *a = (display_rect){ x0, y0, x1 - x0, y1 - y0 };
}

void
display_damage_clear (display_damage *d)
{
  d->n = 0;
}

void
display_damage_add (display_damage *d, int x, int y, int w, int h)
{
  if (w <= 0 || h <= 0)
    return;
  display_rect nr = { x, y, w, h };
  for (unsigned i = 0; i < d->n; i++)
    {
      display_rect *r = &d->rects[i];
      if (rect_contains (r, &nr))
        return;
      /* Row strips: same columns, touching or overlapping rows. */
      bool same_cols = r->x == nr.x && r->w == nr.w;
      bool rows_touch = nr.y <= r->y + r->h && r->y <= nr.y + nr.h;
      /* Or the same rows, touching columns. */
      bool same_rows = r->y == nr.y && r->h == nr.h;
      bool cols_touch = nr.x <= r->x + r->w && r->x <= nr.x + nr.w;
      if ((same_cols && rows_touch) || (same_rows && cols_touch)
          || rect_contains (&nr, r))
        {
          rect_union (r, &nr);
          return;
        }
    }
  if (d->n < DISPLAY_MAX_RECTS)
    {
      d->rects[d->n++] = nr;
      return;
    }
  for (unsigned i = 0; i < d->n; i++)
    rect_union (&nr, &d->rects[i]);
  d->rects[0] = nr;
  d->n = 1;
}

void
display_surface_dirty (display_surface *s, int x, int y, int w, int h)
{
  g_mutex_lock (&s->lock);
  int iw = s->image->width, ih = s->image->height;
  int x0 = CLAMP (x, 0, iw), y0 = CLAMP (y, 0, ih);
  /* 64-bit ends: x + w may overflow an int. */
  int64_t x1 = CLAMP ((int64_t) x + MAX (w, 0), 0, iw);
  int64_t y1 = CLAMP ((int64_t) y + MAX (h, 0), 0, ih);
  display_damage_add (&s->damage, x0, y0, (int) (x1 - x0), (int) (y1 - y0));
  g_mutex_unlock (&s->lock);
}

unsigned
display_surface_pending (display_surface *s, display_rect *rects,
                         unsigned max)
{
  g_mutex_lock (&s->lock);
  unsigned n = MIN (max, s->damage.n);
  if (rects && n)
    memcpy (rects, s->damage.rects, n * sizeof *rects);
  n = s->damage.n;
  g_mutex_unlock (&s->lock);
  return n;
}

unsigned
display_surface_flush (display_surface *s)
{
  display_damage d;
  g_mutex_lock (&s->lock);
  d = s->damage;
  display_damage_clear (&s->damage);
  g_mutex_unlock (&s->lock);
  if (!d.n)
    return 0;

  g_mutex_lock (&s->listeners_lock);
  for (guint i = 0; i < s->listeners->len; i++)
    {
      display_listener *l = s->listeners->pdata[i];
      if (l->ops->on_update)
        l->ops->on_update (l->opaque, s, d.rects, d.n);
    }
  g_mutex_unlock (&s->listeners_lock);
  return d.n;
}

void
display_surface_cursor_define (display_surface *s,
                               const display_cursor *cursor)
{
  g_return_if_fail (cursor && cursor->width > 0 && cursor->height > 0
                    && cursor->width <= 512 && cursor->height <= 512);
  uint32_t *argb = g_memdup2 (cursor->argb, (gsize) cursor->width
                                                * (gsize) cursor->height
                                                * sizeof (uint32_t));
  g_mutex_lock (&s->listeners_lock);
  g_free ((uint32_t *) s->cursor.argb);
  s->cursor = *cursor;
  s->cursor.argb = argb;
  s->cursor_defined = true;
  for (guint i = 0; i < s->listeners->len; i++)
    {
      display_listener *l = s->listeners->pdata[i];
      if (l->ops->on_cursor_define)
        l->ops->on_cursor_define (l->opaque, s, &s->cursor);
    }
  g_mutex_unlock (&s->listeners_lock);
}

void
display_surface_cursor_move (display_surface *s, int x, int y, bool visible)
{
  g_mutex_lock (&s->listeners_lock);
  for (guint i = 0; i < s->listeners->len; i++)
    {
      display_listener *l = s->listeners->pdata[i];
      if (l->ops->on_cursor_move)
        l->ops->on_cursor_move (l->opaque, s, x, y, visible);
    }
  g_mutex_unlock (&s->listeners_lock);
}

display_listener *
display_surface_add_listener (display_surface *s,
                              const display_listener_ops *ops, void *opaque)
{
  g_return_val_if_fail (ops != NULL, NULL);
  display_listener *l = g_new0 (display_listener, 1);
  l->ops = ops;
  l->opaque = opaque;
  g_mutex_lock (&s->listeners_lock);
  g_ptr_array_add (s->listeners, l);
  if (ops->on_resize)
    {
      g_mutex_lock (&s->lock);
      int w = s->image->width, h = s->image->height;
      uint64_t gen = s->generation;
      g_mutex_unlock (&s->lock);
      ops->on_resize (opaque, s, w, h, gen);
    }
  if (s->cursor_defined && ops->on_cursor_define)
    ops->on_cursor_define (opaque, s, &s->cursor);
  g_mutex_unlock (&s->listeners_lock);
  return l;
}

void
display_surface_remove_listener (display_surface *s,
                                 display_listener *listener)
{
  g_mutex_lock (&s->listeners_lock);
  if (!g_ptr_array_remove (s->listeners, listener))
    g_warning ("display surface: removing a listener it does not have");
  g_mutex_unlock (&s->listeners_lock);
}
