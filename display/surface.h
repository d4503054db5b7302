/* A display surface: the guest's screen as host pixels, with damage and
 * listeners. One producer (the VGA renderer, later virtio-gpu) draws into
 * it; any number of consumers (the GTK view, VNC, SPICE, thumbnails,
 * screendump) on any thread are told what changed.
 *
 * Producer side (one thread at a time): draw into display_surface_pixels(),
 * report damage with display_surface_dirty(), deliver it with
 * display_surface_flush(); change the size with display_surface_resize().
 *
 * Consumer side (any thread): display_surface_acquire() returns the current
 * image with a reference. An image never changes its size or moves its
 * pixels, so a consumer reading it while the producer resizes sees the old
 * image whole and is told about the new one through on_resize; a resize
 * bumps the surface's generation. Pixels within an image may be rewritten
 * while a consumer reads them (the damage that follows says where).
 *
 * Listener callbacks run on the producer's thread (on_update, on_resize,
 * on_cursor_*) or on the thread that adds the listener (the initial
 * on_resize), with the surface's listener lock held: they must be quick
 * (record the damage, wake the consumer's own thread) and must not add or
 * remove listeners of the same surface. Once display_surface_remove_listener
 * returns, no callback of that listener is running or will run. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef enum {
  /* 32 bits per pixel, host-endian 0xXXRRGGBB (X is written as 0xff). */
  DISPLAY_FORMAT_XRGB8888 = 1,
} display_format;

#define DISPLAY_BYTES_PER_PIXEL 4
/* Sizes beyond these are refused (clamped); no guest mode comes near. */
#define DISPLAY_MAX_WIDTH 16384
#define DISPLAY_MAX_HEIGHT 16384
/* Damage kept per flush before it collapses into its bounding box. */
#define DISPLAY_MAX_RECTS 64

typedef struct display_rect {
  int x, y, w, h;
} display_rect;

/* A frame's pixels with a fixed geometry; reference counted. */
typedef struct display_image {
  display_format format;
  int width;
  int height;
  int stride; /* bytes per row */
  uint8_t *pixels;
  uint64_t generation; /* the surface's generation when it was made */
  gint refcount;       /* private */
} display_image;

/* A pointer cursor (for devices that have one); @argb is width * height
 * pixels, premultiplied 0xAARRGGBB. */
typedef struct display_cursor {
  int width;
  int height;
  int hot_x;
  int hot_y;
  const uint32_t *argb;
} display_cursor;

typedef struct display_surface display_surface;
typedef struct display_listener display_listener;

typedef struct display_listener_ops {
  /* @rects lie inside the current image; none empty. */
  void (*on_update) (void *opaque, display_surface *s,
                     const display_rect *rects, unsigned n_rects);
  /* A new image of @width x @height; acquire it and repaint everything. */
  void (*on_resize) (void *opaque, display_surface *s, int width, int height,
                     uint64_t generation);
  void (*on_cursor_define) (void *opaque, display_surface *s,
                            const display_cursor *cursor);
  void (*on_cursor_move) (void *opaque, display_surface *s, int x, int y,
                          bool visible);
} display_listener_ops;

display_surface *display_surface_new (int width, int height);
/* Every listener must have been removed. */
void display_surface_free (display_surface *s);

/* Producer side. The accessors describe the current image; its pixels stay
 * put until the producer itself resizes. */
display_format display_surface_format (display_surface *s);
int display_surface_width (display_surface *s);
int display_surface_height (display_surface *s);
int display_surface_stride (display_surface *s);
uint8_t *display_surface_pixels (display_surface *s);
/* Replaces the image with a black one of the new size (clamped to at least
 * 1x1 and at most DISPLAY_MAX_*), drops pending damage and calls every
 * on_resize. Does nothing when the size is unchanged. */
void display_surface_resize (display_surface *s, int width, int height);
/* Adds a rectangle (clipped to the image) to the pending damage. */
void display_surface_dirty (display_surface *s, int x, int y, int w, int h);
/* Hands the pending damage to every on_update and clears it. Returns the
 * number of rectangles delivered (0: nothing changed, nobody called). */
unsigned display_surface_flush (display_surface *s);
/* Pending damage, for tests and pollers: copies up to @max rectangles. */
unsigned display_surface_pending (display_surface *s, display_rect *rects,
                                  unsigned max);
void display_surface_cursor_define (display_surface *s,
                                    const display_cursor *cursor);
void display_surface_cursor_move (display_surface *s, int x, int y,
                                  bool visible);

/* Consumer side, any thread. */
display_image *display_surface_acquire (display_surface *s);
void display_image_release (display_image *img);
uint64_t display_surface_generation (display_surface *s);

/* Adds a listener; its on_resize (and on_cursor_define, when a cursor is
 * defined) is called at once with the current state. */
display_listener *display_surface_add_listener (display_surface *s,
                                                const display_listener_ops *ops,
                                                void *opaque);
void display_surface_remove_listener (display_surface *s,
                                      display_listener *listener);

/* Damage bookkeeping on its own, for consumers that accumulate rectangles
 * between their own frames: merges row strips, collapses to the bounding
 * box past DISPLAY_MAX_RECTS. */
typedef struct display_damage {
  display_rect rects[DISPLAY_MAX_RECTS];
  unsigned n;
} display_damage;

void display_damage_add (display_damage *d, int x, int y, int w, int h);
void display_damage_clear (display_damage *d);

G_END_DECLS
