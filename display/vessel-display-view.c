/* VesselDisplayView (see vessel-display-view.h).
 *
 * The view is a plain GtkWidget holding a GtkGLArea child rather than a
 * GtkGLArea subclass: when GL cannot be realized the view draws the guest
 * through its own snapshot() instead of the area's (a subclass would
 * inherit GtkGLArea's snapshot, which draws an error text), and input,
 * focus and the cursor belong to the view whichever path draws.
 *
 * Threads: the surface's listener runs on the engine's thread with the
 * surface's lock held. It only records damage in a small bridge object
 * under the bridge's mutex and, once per batch, attaches an idle source to
 * the UI thread's main context. The idle copies the damage into the view,
 * takes the new image after a resize and queues a redraw; the GtkGLArea's
 * render uploads the dirty rectangles into the texture then. The bridge is
 * reference counted so that an idle still queued when the view goes away
 * finds it detached instead of a freed view. */
#include <epoxy/gl.h>

#include "display/vessel-display-view-private.h"

#include <glib/gi18n.h>
#include <math.h>
#include <string.h>

#include "display/vessel-display-keymap.h"

G_DEFINE_ENUM_TYPE (VesselDisplayScaleMode, vessel_display_scale_mode,
                    G_DEFINE_ENUM_VALUE (VESSEL_DISPLAY_SCALE_FIT, "fit"),
                    G_DEFINE_ENUM_VALUE (VESSEL_DISPLAY_SCALE_ONE_TO_ONE,
                                         "one-to-one"))

/* The engine thread's side of an attachment: damage and a resize flag
 * waiting for the UI thread. */
typedef struct view_bridge {
  gatomicrefcount ref;
  GMutex lock;
  GMainContext *context; /* the UI thread's */
  /* Guarded by lock. NULL once the view detached (set on the UI thread). */
  VesselDisplayView *view;
  display_damage damage;
  gboolean resized;
  gboolean pending; /* an idle is queued */
} view_bridge;

/* Modifier keys of the release combination, as bits. */
enum {
  MOD_CTRL_L = 1 << 0,
  MOD_CTRL_R = 1 << 1,
  MOD_ALT_L = 1 << 2,
  MOD_ALT_R = 1 << 3,
  MOD_CTRL = MOD_CTRL_L | MOD_CTRL_R,
  MOD_ALT = MOD_ALT_L | MOD_ALT_R,
};

struct _VesselDisplayView {
  GtkWidget parent_instance;

  VesselDisplayScaleMode scale_mode;

  /* The source. */
  display_surface *surface;
  display_input *input;
  display_listener *listener;
  view_bridge *bridge;

  /* The image on screen (UI thread) and what of it each path still has
   * to copy. */
  display_image *image;
  int guest_width, guest_height;
  display_damage gl_damage;
  gboolean gl_all;
  display_damage sw_damage;
  gboolean sw_all;

  /* GL path; area is NULL after dispose. */
  GtkWidget *area;
  gboolean gl_ready;
  gboolean gl_use_vao;
  gboolean gl_row_length; /* GL_UNPACK_ROW_LENGTH available */
  gboolean gl_es;
  GLint gl_max_texture;
  GLuint program, vbo, vao, texture;
  GLint u_tex;
  int tex_width, tex_height;

  /* Software path: the image with alpha forced opaque, updated by damage
   * only, and the texture made from it (NULL when stale). */
  guint32 *shadow;
  int shadow_width, shadow_height;
  GdkTexture *sw_texture;

  /* Input. */
  gboolean grabbed;
  unsigned buttons;    /* DISPLAY_BUTTON_* held */
  unsigned mods;       /* MOD_* held while grabbed */
  gboolean release_armed;
  GdkToplevel *inhibited; /* system shortcuts inhibited on it */
  GtkRoot *root;          /* watched for is-active while mapped */
  gulong root_active_id;
};

G_DEFINE_FINAL_TYPE (VesselDisplayView, vessel_display_view, GTK_TYPE_WIDGET)

enum {
  PROP_0,
  PROP_SCALE_MODE,
  PROP_GRABBED,
  PROP_GUEST_WIDTH,
  PROP_GUEST_HEIGHT,
  PROP_RELEASE_KEYS,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
  SIGNAL_GUEST_SIZE_CHANGED,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* --- the bridge (any thread) --------------------------------------------- */

static view_bridge *
bridge_new (VesselDisplayView *view)
{
  view_bridge *b = g_new0 (view_bridge, 1);
  g_atomic_ref_count_init (&b->ref);
  g_mutex_init (&b->lock);
  b->context = g_main_context_ref_thread_default ();
  b->view = view;
  return b;
}

static view_bridge *
bridge_ref (view_bridge *b)
{
  g_atomic_ref_count_inc (&b->ref);
  return b;
}

static void
bridge_unref (gpointer data)
{
  view_bridge *b = data;
  if (!g_atomic_ref_count_dec (&b->ref))
    return;
  g_main_context_unref (b->context);
  g_mutex_clear (&b->lock);
  g_free (b);
}

static void view_apply_changes (VesselDisplayView *self, gboolean resized,
                                const display_damage *damage);

/* UI thread: hands what the listener recorded to the view. */
static gboolean
bridge_dispatch (gpointer data)
{
  view_bridge *b = data;
  display_damage damage;

  g_mutex_lock (&b->lock);
  VesselDisplayView *self = b->view;
  damage = b->damage;
  gboolean resized = b->resized;
  display_damage_clear (&b->damage);
  b->resized = FALSE;
  b->pending = FALSE;
  g_mutex_unlock (&b->lock);

  if (self)
    view_apply_changes (self, resized, &damage);
  return G_SOURCE_REMOVE;
}

/* With b->lock held: makes sure an idle is queued on the UI thread. The
 * idle is always deferred, never run inline, even when the listener is
 * called on the UI thread (the initial on_resize): the surface's listener
 * lock is held here. */
static void
bridge_wake_locked (view_bridge *b)
{
  if (b->pending || !b->view)
    return;
  b->pending = TRUE;
  GSource *source = g_idle_source_new ();
  g_source_set_priority (source, G_PRIORITY_DEFAULT);
  g_source_set_static_name (source, "[vessel] display view damage");
  g_source_set_callback (source, bridge_dispatch, bridge_ref (b),
                         bridge_unref);
  g_source_attach (source, b->context);
  g_source_unref (source);
}

static void
listener_update (void *opaque, display_surface *s, const display_rect *rects,
                 unsigned n_rects)
{
  view_bridge *b = opaque;
  g_mutex_lock (&b->lock);
  for (unsigned i = 0; i < n_rects; i++)
    display_damage_add (&b->damage, rects[i].x, rects[i].y, rects[i].w,
                        rects[i].h);
  bridge_wake_locked (b);
  g_mutex_unlock (&b->lock);
}

static void
listener_resize (void *opaque, display_surface *s, int width, int height,
                 uint64_t generation)
{
  view_bridge *b = opaque;
  g_mutex_lock (&b->lock);
  /* Damage of the old image means nothing for the new one. */
  display_damage_clear (&b->damage);
  b->resized = TRUE;
  bridge_wake_locked (b);
  g_mutex_unlock (&b->lock);
}

static const display_listener_ops listener_ops = {
  .on_update = listener_update,
  .on_resize = listener_resize,
};

/* --- geometry ------------------------------------------------------------- */

/* Where the guest's picture lies, in device pixels of the widget (origin
 * top left). */
typedef struct view_layout {
  int scale;         /* device pixels per widget unit */
  int width, height; /* the widget */
  int x, y, w, h;    /* the picture; may extend past the widget at 1:1 */
} view_layout;

static gboolean
compute_layout (VesselDisplayView *self, view_layout *l)
{
  GtkWidget *widget = GTK_WIDGET (self);
  int gw = self->guest_width, gh = self->guest_height;

  l->scale = MAX (gtk_widget_get_scale_factor (widget), 1);
  l->width = gtk_widget_get_width (widget) * l->scale;
  l->height = gtk_widget_get_height (widget) * l->scale;
  if (gw <= 0 || gh <= 0 || l->width <= 0 || l->height <= 0)
    return FALSE;

  if (self->scale_mode == VESSEL_DISPLAY_SCALE_ONE_TO_ONE)
    {
      l->w = gw;
      l->h = gh;
    }
  else if ((gint64) l->width * gh <= (gint64) l->height * gw)
    {
      /* Wider than the widget: full width, bars above and below. */
      l->w = l->width;
      l->h = (int) (((gint64) gh * l->width + gw / 2) / gw);
    }
  else
    {
      l->h = l->height;
      l->w = (int) (((gint64) gw * l->height + gh / 2) / gh);
    }
  l->w = MAX (l->w, 1);
  l->h = MAX (l->h, 1);
  l->x = (int) floor ((l->width - l->w) / 2.0);
  l->y = (int) floor ((l->height - l->h) / 2.0);
  return TRUE;
}

gboolean
vessel_display_view_widget_to_guest (VesselDisplayView *self, double wx,
                                     double wy, int *gx, int *gy)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), FALSE);
  view_layout l;
  int x = 0, y = 0;
  gboolean inside = FALSE;

  if (compute_layout (self, &l))
    {
      double fx = (wx * l.scale - l.x) * self->guest_width / l.w;
      double fy = (wy * l.scale - l.y) * self->guest_height / l.h;
      inside = fx >= 0 && fx < self->guest_width && fy >= 0
               && fy < self->guest_height;
      x = (int) CLAMP (floor (fx), 0, self->guest_width - 1);
      y = (int) CLAMP (floor (fy), 0, self->guest_height - 1);
    }
  if (gx)
    *gx = x;
  if (gy)
    *gy = y;
  return inside;
}

/* --- the image (UI thread) ------------------------------------------------ */

static void
queue_redraw (VesselDisplayView *self)
{
  if (self->area && self->gl_ready)
    gtk_gl_area_queue_render (GTK_GL_AREA (self->area));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
set_guest_size (VesselDisplayView *self, int width, int height)
{
  if (width == self->guest_width && height == self->guest_height)
    return;
  self->guest_width = width;
  self->guest_height = height;
  g_object_freeze_notify (G_OBJECT (self));
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GUEST_WIDTH]);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GUEST_HEIGHT]);
  g_object_thaw_notify (G_OBJECT (self));
  g_signal_emit (self, signals[SIGNAL_GUEST_SIZE_CHANGED], 0, width, height);
  gtk_widget_queue_resize (GTK_WIDGET (self));
}

static void
drop_image (VesselDisplayView *self)
{
  g_clear_pointer (&self->image, display_image_release);
  g_clear_object (&self->sw_texture);
  display_damage_clear (&self->gl_damage);
  display_damage_clear (&self->sw_damage);
  self->gl_all = self->sw_all = TRUE;
}

/* Takes the surface's current image unless it is the one on screen. */
static void
take_current_image (VesselDisplayView *self)
{
  display_image *img = display_surface_acquire (self->surface);
  if (self->image && self->image->generation == img->generation)
    {
      display_image_release (img);
      return;
    }
  drop_image (self);
  self->image = img;
  set_guest_size (self, img->width, img->height);
}

static void
view_apply_changes (VesselDisplayView *self, gboolean resized,
                    const display_damage *damage)
{
  if (!self->surface)
    return;
  if (resized || !self->image)
    take_current_image (self);
  int iw = self->image->width, ih = self->image->height;
  for (unsigned i = 0; i < damage->n; i++)
    {
      const display_rect *r = &damage->rects[i];
      int x0 = CLAMP (r->x, 0, iw), y0 = CLAMP (r->y, 0, ih);
      int x1 = CLAMP (r->x + r->w, 0, iw), y1 = CLAMP (r->y + r->h, 0, ih);
      display_damage_add (&self->gl_damage, x0, y0, x1 - x0, y1 - y0);
      display_damage_add (&self->sw_damage, x0, y0, x1 - x0, y1 - y0);
    }
  if (damage->n)
    g_clear_object (&self->sw_texture);
  queue_redraw (self);
}

/* Copies a rectangle of @img into a buffer of @dst_stride pixels with the
 * X byte made opaque alpha. */
static void
copy_rect_opaque (guint32 *dst, int dst_stride, const display_image *img,
                  int x, int y, int w, int h)
{
  for (int row = y; row < y + h; row++)
    {
      const guint32 *s
          = (const guint32 *) (img->pixels + (gsize) row * img->stride) + x;
      guint32 *d = dst + (gsize) row * dst_stride + x;
      for (int i = 0; i < w; i++)
        d[i] = s[i] | 0xff000000u;
    }
}

/* A texture of a whole image: host-endian 0xAARRGGBB is GDK's default
 * (cairo's) memory format. */
static GdkTexture *
texture_from_pixels (guint32 *pixels, int width, int height)
{
  gsize size = (gsize) width * height * sizeof (guint32);
  GBytes *bytes = g_bytes_new_take (pixels, size);
  GdkTexture *texture = gdk_memory_texture_new (
      width, height, GDK_MEMORY_DEFAULT, bytes, (gsize) width * 4);
  g_bytes_unref (bytes);
  return texture;
}

GdkTexture *
vessel_display_view_get_texture_snapshot (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), NULL);
  if (!self->surface)
    return NULL;
  display_image *img = display_surface_acquire (self->surface);
  guint32 *pixels = g_new (guint32, (gsize) img->width * img->height);
  copy_rect_opaque (pixels, img->width, img, 0, 0, img->width, img->height);
  GdkTexture *texture = texture_from_pixels (pixels, img->width, img->height);
  display_image_release (img);
  return texture;
}

gboolean
vessel_display_view_save_screenshot (VesselDisplayView *self,
                                     const char *path, GError **error)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_autoptr (GdkTexture) texture
      = vessel_display_view_get_texture_snapshot (self);
  if (!texture)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NOT_INITIALIZED,
                           _("The machine has no screen to save"));
      return FALSE;
    }
  g_autoptr (GBytes) png = gdk_texture_save_to_png_bytes (texture);
  gsize size;
  const char *data = g_bytes_get_data (png, &size);
  return g_file_set_contents (path, data, (gssize) size, error);
}

/* --- the GL path ---------------------------------------------------------- */

/* One quad over the viewport, drawn as a triangle strip; the viewport is
 * the guest's picture. */
static const GLfloat quad[] = { -1, -1, 1, -1, -1, 1, 1, 1 };

static const char vertex_body[]
    = "ATTRIBUTE vec2 a_pos;\n"
      "VARYING_OUT vec2 v_uv;\n"
      "void main () {\n"
      "  v_uv = vec2 (a_pos.x + 1.0, 1.0 - a_pos.y) * 0.5;\n"
      "  gl_Position = vec4 (a_pos, 0.0, 1.0);\n"
      "}\n";

static const char fragment_body[]
    = "VARYING_IN vec2 v_uv;\n"
      "uniform sampler2D u_tex;\n"
      "void main () {\n"
      "  FRAG_COLOR = vec4 (TEXTURE (u_tex, v_uv).SWIZZLE, 1.0);\n"
      "}\n";

/* GLSL dialects: desktop 1.50 (GL 3.2 core), desktop 1.10 (legacy
 * contexts), ES 3.00, ES 1.00. */
static const char vertex_150[] = "#version 150\n"
                                 "#define ATTRIBUTE in\n"
                                 "#define VARYING_OUT out\n";
static const char fragment_150[] = "#version 150\n"
                                   "#define VARYING_IN in\n"
                                   "#define TEXTURE texture\n"
                                   "out vec4 frag_color;\n"
                                   "#define FRAG_COLOR frag_color\n";
static const char vertex_110[] = "#version 110\n"
                                 "#define ATTRIBUTE attribute\n"
                                 "#define VARYING_OUT varying\n";
static const char fragment_110[] = "#version 110\n"
                                   "#define VARYING_IN varying\n"
                                   "#define TEXTURE texture2D\n"
                                   "#define FRAG_COLOR gl_FragColor\n";
static const char vertex_300es[] = "#version 300 es\n"
                                   "#define ATTRIBUTE in\n"
                                   "#define VARYING_OUT out\n";
static const char fragment_300es[] = "#version 300 es\n"
                                     "precision highp float;\n"
                                     "#define VARYING_IN in\n"
                                     "#define TEXTURE texture\n"
                                     "out vec4 frag_color;\n"
                                     "#define FRAG_COLOR frag_color\n";
static const char vertex_100es[] = "#version 100\n"
                                   "#define ATTRIBUTE attribute\n"
                                   "#define VARYING_OUT varying\n";
static const char fragment_100es[] = "#version 100\n"
                                     "#ifdef GL_FRAGMENT_PRECISION_HIGH\n"
                                     "precision highp float;\n"
                                     "#else\n"
                                     "precision mediump float;\n"
                                     "#endif\n"
                                     "#define VARYING_IN varying\n"
                                     "#define TEXTURE texture2D\n"
                                     "#define FRAG_COLOR gl_FragColor\n";

static GLuint
compile_shader (GLenum type, const char *header, const char *swizzle,
                const char *body)
{
  const char *sources[] = { header, swizzle, body };
  GLuint shader = glCreateShader (type);
  glShaderSource (shader, G_N_ELEMENTS (sources), sources, NULL);
  glCompileShader (shader);
  GLint ok = GL_FALSE;
  glGetShaderiv (shader, GL_COMPILE_STATUS, &ok);
  if (!ok)
    {
      char log[1024] = "";
      glGetShaderInfoLog (shader, sizeof log, NULL, log);
      g_message ("display view: shader does not compile: %s", log);
      glDeleteShader (shader);
      return 0;
    }
  return shader;
}

static gboolean
gl_setup (VesselDisplayView *self, GdkGLContext *context)
{
  int major = 0, minor = 0;
  gdk_gl_context_get_version (context, &major, &minor);
  self->gl_es = gdk_gl_context_get_use_es (context);
  gboolean legacy = gdk_gl_context_is_legacy (context);

  const char *vertex_header, *fragment_header;
  if (self->gl_es)
    {
      vertex_header = major >= 3 ? vertex_300es : vertex_100es;
      fragment_header = major >= 3 ? fragment_300es : fragment_100es;
    }
  else if (legacy || major < 3 || (major == 3 && minor < 2))
    {
      vertex_header = vertex_110;
      fragment_header = fragment_110;
    }
  else
    {
      vertex_header = vertex_150;
      fragment_header = fragment_150;
    }
  self->gl_use_vao = major >= 3;
  self->gl_row_length = !self->gl_es || major >= 3
                        || epoxy_has_gl_extension ("GL_EXT_unpack_subimage");

  /* Desktop GL takes the pixels as they are: GL_BGRA with
   * GL_UNSIGNED_INT_8_8_8_8_REV reads a host-endian 0xXXRRGGBB word on
   * either byte order. GLES has no such pair without extensions, so the
   * bytes go in as RGBA and the shader puts the channels back: B G R X in
   * memory on little endian, X R G B on big endian. */
  const char *swizzle;
  if (!self->gl_es)
    swizzle = "#define SWIZZLE rgb\n";
  else if (G_BYTE_ORDER == G_LITTLE_ENDIAN)
    swizzle = "#define SWIZZLE bgr\n";
  else
    swizzle = "#define SWIZZLE gba\n";

  GLuint vs = compile_shader (GL_VERTEX_SHADER, vertex_header, swizzle,
                              vertex_body);
  GLuint fs = compile_shader (GL_FRAGMENT_SHADER, fragment_header, swizzle,
                              fragment_body);
  if (!vs || !fs)
    {
      if (vs)
        glDeleteShader (vs);
      if (fs)
        glDeleteShader (fs);
      return FALSE;
    }
  self->program = glCreateProgram ();
  glAttachShader (self->program, vs);
  glAttachShader (self->program, fs);
  glBindAttribLocation (self->program, 0, "a_pos");
  glLinkProgram (self->program);
  glDeleteShader (vs);
  glDeleteShader (fs);
  GLint ok = GL_FALSE;
  glGetProgramiv (self->program, GL_LINK_STATUS, &ok);
  if (!ok)
    {
      char log[1024] = "";
      glGetProgramInfoLog (self->program, sizeof log, NULL, log);
      g_message ("display view: shader program does not link: %s", log);
      glDeleteProgram (self->program);
      self->program = 0;
      return FALSE;
    }
  self->u_tex = glGetUniformLocation (self->program, "u_tex");

  glGenBuffers (1, &self->vbo);
  glBindBuffer (GL_ARRAY_BUFFER, self->vbo);
  glBufferData (GL_ARRAY_BUFFER, sizeof quad, quad, GL_STATIC_DRAW);
  if (self->gl_use_vao)
    {
      glGenVertexArrays (1, &self->vao);
      glBindVertexArray (self->vao);
      glEnableVertexAttribArray (0);
      glVertexAttribPointer (0, 2, GL_FLOAT, GL_FALSE, 0, NULL);
      glBindVertexArray (0);
    }
  glBindBuffer (GL_ARRAY_BUFFER, 0);

  glGenTextures (1, &self->texture);
  glBindTexture (GL_TEXTURE_2D, self->texture);
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_LINEAR);
  glBindTexture (GL_TEXTURE_2D, 0);
  self->tex_width = self->tex_height = 0;

  self->gl_max_texture = 0;
  glGetIntegerv (GL_MAX_TEXTURE_SIZE, &self->gl_max_texture);
  return TRUE;
}

static void
gl_teardown (VesselDisplayView *self)
{
  if (self->texture)
    glDeleteTextures (1, &self->texture);
  if (self->vao)
    glDeleteVertexArrays (1, &self->vao);
  if (self->vbo)
    glDeleteBuffers (1, &self->vbo);
  if (self->program)
    glDeleteProgram (self->program);
  self->texture = self->vao = self->vbo = self->program = 0;
  self->tex_width = self->tex_height = 0;
}

/* GtkGLArea 4.8 asks for desktop GL only; the view takes GLES too (GDK
 * picks what the display offers), the shaders come in both dialects. */
static GdkGLContext *
area_create_context (GtkGLArea *area, VesselDisplayView *self)
{
  GtkNative *native = gtk_widget_get_native (GTK_WIDGET (area));
  GError *error = NULL;
  GdkGLContext *context
      = gdk_surface_create_gl_context (gtk_native_get_surface (native), &error);
  if (context)
    {
      gdk_gl_context_set_allowed_apis (context, GDK_GL_API_GL | GDK_GL_API_GLES);
      if (!gdk_gl_context_realize (context, &error))
        g_clear_object (&context);
    }
  if (!context)
    {
      gtk_gl_area_set_error (area, error);
      g_error_free (error);
    }
  return context;
}

static void
area_realized (GtkGLArea *area, VesselDisplayView *self)
{
  self->gl_ready = FALSE;
  GError *error = gtk_gl_area_get_error (area);
  GdkGLContext *context = gtk_gl_area_get_context (area);
  if (error || !context)
    {
      g_message ("display view: no GL (%s), drawing in software",
               error ? error->message : "no context");
      gtk_widget_queue_draw (GTK_WIDGET (self));
      return;
    }
  gtk_gl_area_make_current (area);
  if (!gl_setup (self, context))
    {
      gl_teardown (self);
      gtk_widget_queue_draw (GTK_WIDGET (self));
      return;
    }
  self->gl_ready = TRUE;
  self->gl_all = TRUE;
  g_debug ("display view: GL%s %s", self->gl_es ? "ES" : "",
           (const char *) glGetString (GL_VERSION));
  queue_redraw (self);
}

static void
area_unrealize (GtkGLArea *area, VesselDisplayView *self)
{
  if (self->gl_ready)
    {
      gtk_gl_area_make_current (area);
      if (!gtk_gl_area_get_error (area))
        gl_teardown (self);
    }
  self->gl_ready = FALSE;
}

static void
gl_upload_rect (VesselDisplayView *self, int x, int y, int w, int h)
{
  const display_image *img = self->image;
  GLenum format = self->gl_es ? GL_RGBA : GL_BGRA;
  GLenum type = self->gl_es ? GL_UNSIGNED_BYTE : GL_UNSIGNED_INT_8_8_8_8_REV;
  const uint8_t *p = img->pixels + (gsize) y * img->stride
                     + (gsize) x * DISPLAY_BYTES_PER_PIXEL;

  if (w == img->width && img->stride == w * DISPLAY_BYTES_PER_PIXEL)
    glTexSubImage2D (GL_TEXTURE_2D, 0, x, y, w, h, format, type, p);
  else if (self->gl_row_length)
    {
      glPixelStorei (GL_UNPACK_ROW_LENGTH,
                     img->stride / DISPLAY_BYTES_PER_PIXEL);
      glTexSubImage2D (GL_TEXTURE_2D, 0, x, y, w, h, format, type, p);
      glPixelStorei (GL_UNPACK_ROW_LENGTH, 0);
    }
  else
    for (int row = 0; row < h; row++)
      glTexSubImage2D (GL_TEXTURE_2D, 0, x, y + row, w, 1, format, type,
                       p + (gsize) row * img->stride);
}

/* With the texture bound: brings it up to date with the image. */
static void
gl_upload (VesselDisplayView *self)
{
  const display_image *img = self->image;
  glPixelStorei (GL_UNPACK_ALIGNMENT, 4);
  if (self->tex_width != img->width || self->tex_height != img->height)
    {
      if (self->gl_es)
        glTexImage2D (GL_TEXTURE_2D, 0, GL_RGBA, img->width, img->height, 0,
                      GL_RGBA, GL_UNSIGNED_BYTE, NULL);
      else
        glTexImage2D (GL_TEXTURE_2D, 0, GL_RGBA8, img->width, img->height, 0,
                      GL_BGRA, GL_UNSIGNED_INT_8_8_8_8_REV, NULL);
      self->tex_width = img->width;
      self->tex_height = img->height;
      self->gl_all = TRUE;
    }
  if (self->gl_all)
    gl_upload_rect (self, 0, 0, img->width, img->height);
  else
    for (unsigned i = 0; i < self->gl_damage.n; i++)
      {
        const display_rect *r = &self->gl_damage.rects[i];
        gl_upload_rect (self, r->x, r->y, r->w, r->h);
      }
  self->gl_all = FALSE;
  display_damage_clear (&self->gl_damage);
}

static gboolean
area_render (GtkGLArea *area, GdkGLContext *context, VesselDisplayView *self)
{
  view_layout l;
  gboolean have_layout = compute_layout (self, &l);

  glDisable (GL_SCISSOR_TEST);
  glDisable (GL_BLEND);
  glDisable (GL_DEPTH_TEST);
  if (have_layout)
    glViewport (0, 0, l.width, l.height);
  glClearColor (0, 0, 0, 1);
  glClear (GL_COLOR_BUFFER_BIT);
  if (!self->gl_ready || !self->image || !have_layout)
    return TRUE;

  glActiveTexture (GL_TEXTURE0);
  glBindTexture (GL_TEXTURE_2D, self->texture);
  gl_upload (self);
  /* Sample exactly at one guest pixel per device pixel, smoothly when
   * scaled. */
  GLint filter = l.w == self->image->width && l.h == self->image->height
                     ? GL_NEAREST
                     : GL_LINEAR;
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, filter);
  glTexParameteri (GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, filter);

  /* GL's origin is the bottom left. */
  glViewport (l.x, l.height - l.y - l.h, l.w, l.h);
  glUseProgram (self->program);
  glUniform1i (self->u_tex, 0);
  if (self->gl_use_vao)
    glBindVertexArray (self->vao);
  else
    {
      glBindBuffer (GL_ARRAY_BUFFER, self->vbo);
      glEnableVertexAttribArray (0);
      glVertexAttribPointer (0, 2, GL_FLOAT, GL_FALSE, 0, NULL);
    }
  glDrawArrays (GL_TRIANGLE_STRIP, 0, 4);
  if (self->gl_use_vao)
    glBindVertexArray (0);
  else
    {
      glDisableVertexAttribArray (0);
      glBindBuffer (GL_ARRAY_BUFFER, 0);
    }
  glUseProgram (0);
  glBindTexture (GL_TEXTURE_2D, 0);
  return TRUE;
}

static gboolean
use_gl (VesselDisplayView *self)
{
  return self->area && self->gl_ready
         && (!self->image
             || (self->image->width <= self->gl_max_texture
                 && self->image->height <= self->gl_max_texture));
}

/* --- the software path ---------------------------------------------------- */

static void
sw_update (VesselDisplayView *self)
{
  const display_image *img = self->image;
  if (self->shadow_width != img->width || self->shadow_height != img->height)
    {
      g_free (self->shadow);
      self->shadow = g_new (guint32, (gsize) img->width * img->height);
      self->shadow_width = img->width;
      self->shadow_height = img->height;
      self->sw_all = TRUE;
    }
  if (self->sw_all)
    copy_rect_opaque (self->shadow, img->width, img, 0, 0, img->width,
                      img->height);
  else
    for (unsigned i = 0; i < self->sw_damage.n; i++)
      {
        const display_rect *r = &self->sw_damage.rects[i];
        copy_rect_opaque (self->shadow, img->width, img, r->x, r->y, r->w,
                          r->h);
      }
  if (self->sw_all || self->sw_damage.n || !self->sw_texture)
    {
      g_clear_object (&self->sw_texture);
      self->sw_texture = texture_from_pixels (
          g_memdup2 (self->shadow,
                     (gsize) img->width * img->height * sizeof (guint32)),
          img->width, img->height);
    }
  self->sw_all = FALSE;
  display_damage_clear (&self->sw_damage);
}

static void
sw_snapshot (VesselDisplayView *self, GtkSnapshot *snapshot)
{
  GtkWidget *widget = GTK_WIDGET (self);
  graphene_rect_t bounds = GRAPHENE_RECT_INIT (
      0, 0, gtk_widget_get_width (widget), gtk_widget_get_height (widget));
  gtk_snapshot_append_color (snapshot, &(GdkRGBA){ 0, 0, 0, 1 }, &bounds);

  view_layout l;
  if (!self->image || !compute_layout (self, &l))
    return;
  sw_update (self);
  graphene_rect_t picture = GRAPHENE_RECT_INIT (
      (float) l.x / l.scale, (float) l.y / l.scale, (float) l.w / l.scale,
      (float) l.h / l.scale);
  gtk_snapshot_push_clip (snapshot, &bounds);
  gtk_snapshot_append_texture (snapshot, self->sw_texture, &picture);
  gtk_snapshot_pop (snapshot);
}

/* --- GtkWidget ------------------------------------------------------------ */

static void
vessel_display_view_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (widget);
  if (use_gl (self))
    gtk_widget_snapshot_child (widget, self->area, snapshot);
  else
    sw_snapshot (self, snapshot);
}

static void
vessel_display_view_measure (GtkWidget *widget, GtkOrientation orientation,
                             int for_size, int *minimum, int *natural,
                             int *minimum_baseline, int *natural_baseline)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (widget);
  int scale = MAX (gtk_widget_get_scale_factor (widget), 1);
  int guest = orientation == GTK_ORIENTATION_HORIZONTAL ? self->guest_width
                                                        : self->guest_height;
  /* One guest pixel per device pixel. */
  int size = (guest + scale - 1) / scale;
  *minimum = self->scale_mode == VESSEL_DISPLAY_SCALE_ONE_TO_ONE ? size : 0;
  *natural = size;
}

static void
vessel_display_view_size_allocate (GtkWidget *widget, int width, int height,
                                   int baseline)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (widget);
  if (self->area)
    {
      /* GTK wants a child measured before it is allocated. */
      gtk_widget_measure (self->area, GTK_ORIENTATION_HORIZONTAL, -1, NULL,
                          NULL, NULL, NULL);
      gtk_widget_measure (self->area, GTK_ORIENTATION_VERTICAL, -1, NULL,
                          NULL, NULL, NULL);
      gtk_widget_allocate (self->area, width, height, baseline, NULL);
    }
}

static void
root_active_changed (GtkWindow *window, GParamSpec *pspec,
                     VesselDisplayView *self)
{
  if (!gtk_window_is_active (window))
    {
      vessel_display_view_ungrab (self);
      if (self->input)
        display_input_release_all (self->input);
    }
}

static void
vessel_display_view_map (GtkWidget *widget)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (widget);
  GTK_WIDGET_CLASS (vessel_display_view_parent_class)->map (widget);
  GtkRoot *root = gtk_widget_get_root (widget);
  if (GTK_IS_WINDOW (root))
    {
      self->root = root;
      self->root_active_id
          = g_signal_connect (root, "notify::is-active",
                              G_CALLBACK (root_active_changed), self);
    }
}

static void
vessel_display_view_unmap (GtkWidget *widget)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (widget);
  vessel_display_view_ungrab (self);
  if (self->root)
    g_clear_signal_handler (&self->root_active_id, self->root);
  self->root = NULL;
  GTK_WIDGET_CLASS (vessel_display_view_parent_class)->unmap (widget);
}

/* --- input ---------------------------------------------------------------- */

static unsigned
release_mod_bit (unsigned xt, guint keyval)
{
  switch (xt)
    {
    case 0x1d:
      return MOD_CTRL_L;
    case 0xe01d:
      return MOD_CTRL_R;
    case 0x38:
      return MOD_ALT_L;
    case 0xe038:
      return MOD_ALT_R;
    case 0:
      break;
    default:
      return 0;
    }
  switch (keyval)
    {
    case GDK_KEY_Control_L:
      return MOD_CTRL_L;
    case GDK_KEY_Control_R:
      return MOD_CTRL_R;
    case GDK_KEY_Alt_L:
    case GDK_KEY_Meta_L:
      return MOD_ALT_L;
    case GDK_KEY_Alt_R:
    case GDK_KEY_Meta_R:
      return MOD_ALT_R;
    default:
      return 0;
    }
}

gboolean
vessel_display_view_process_key (VesselDisplayView *self, guint keycode,
                                 guint keyval, gboolean down)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), FALSE);
  if (!self->grabbed)
    return FALSE;

  unsigned xt = vessel_display_keycode_to_xt (
      vessel_display_hardware_keycode_to_evdev (keycode));

  /* Ctrl+Alt: both down with nothing else pressed meanwhile, then both
   * up, releases the grab. The guest sees the keys too. */
  unsigned bit = release_mod_bit (xt, keyval);
  gboolean release = FALSE;
  if (down && bit)
    {
      self->mods |= bit;
      if ((self->mods & MOD_CTRL) && (self->mods & MOD_ALT))
        self->release_armed = TRUE;
    }
  else if (down)
    self->release_armed = FALSE;
  else if (bit)
    {
      self->mods &= ~bit;
      if (!(self->mods & (MOD_CTRL | MOD_ALT)) && self->release_armed)
        {
          release = TRUE;
          self->release_armed = FALSE;
        }
    }

  if (self->input)
    {
      if (!xt || !display_input_key (self->input, xt, down))
        display_input_keysym (self->input, keyval, down);
    }
  if (release)
    vessel_display_view_ungrab (self);
  return TRUE;
}

static gboolean
on_key_pressed (GtkEventControllerKey *controller, guint keyval,
                guint keycode, GdkModifierType state, VesselDisplayView *self)
{
  return vessel_display_view_process_key (self, keycode, keyval, TRUE);
}

static void
on_key_released (GtkEventControllerKey *controller, guint keyval,
                 guint keycode, GdkModifierType state,
                 VesselDisplayView *self)
{
  vessel_display_view_process_key (self, keycode, keyval, FALSE);
}

static void
on_focus_leave (GtkEventControllerFocus *controller, VesselDisplayView *self)
{
  vessel_display_view_ungrab (self);
  if (self->input)
    display_input_release_all (self->input);
}

/* An absolute position to the guest; outside the picture only while a
 * button is held (a drag) or when @force (a button changed). */
static void
send_pointer (VesselDisplayView *self, double wx, double wy, gboolean force)
{
  if (!self->input || !self->guest_width)
    return;
  int gx, gy;
  gboolean inside = vessel_display_view_widget_to_guest (self, wx, wy, &gx,
                                                         &gy);
  if (!inside && !self->buttons && !force)
    return;
  display_input_pointer_abs (self->input, gx, gy, self->guest_width,
                             self->guest_height, self->buttons);
}

static void
on_motion (GtkEventControllerMotion *controller, double x, double y,
           VesselDisplayView *self)
{
  if (self->grabbed)
    send_pointer (self, x, y, FALSE);
}

static gboolean
on_scroll (GtkEventControllerScroll *controller, double dx, double dy,
           VesselDisplayView *self)
{
  if (!self->grabbed)
    return FALSE;
  int dz = (int) dy;
  if (self->input && dz)
    display_input_pointer_rel (self->input, 0, 0, dz, self->buttons);
  return TRUE;
}

static unsigned
gdk_button_to_display (guint button)
{
  switch (button)
    {
    case GDK_BUTTON_PRIMARY:
      return DISPLAY_BUTTON_LEFT;
    case GDK_BUTTON_MIDDLE:
      return DISPLAY_BUTTON_MIDDLE;
    case GDK_BUTTON_SECONDARY:
      return DISPLAY_BUTTON_RIGHT;
    case 8:
      return DISPLAY_BUTTON_SIDE;
    case 9:
      return DISPLAY_BUTTON_EXTRA;
    default:
      return 0;
    }
}

/* Buttons come through the legacy controller rather than a GtkGestureClick:
 * a gesture follows one button at a time, a guest wants chords. */
static gboolean
on_legacy_event (GtkEventControllerLegacy *controller, GdkEvent *event,
                 VesselDisplayView *self)
{
  GdkEventType type = gdk_event_get_event_type (event);
  if (type != GDK_BUTTON_PRESS && type != GDK_BUTTON_RELEASE)
    return FALSE;

  if (!self->grabbed)
    {
      /* The click that grabs is not passed on. */
      if (type == GDK_BUTTON_PRESS && self->surface)
        {
          vessel_display_view_grab (self);
          return TRUE;
        }
      return FALSE;
    }

  unsigned bit = gdk_button_to_display (gdk_button_event_get_button (event));
  if (!bit)
    return TRUE;
  if (type == GDK_BUTTON_PRESS)
    self->buttons |= bit;
  else
    self->buttons &= ~bit;

  /* Event positions are the surface's; the view wants its own. */
  double sx, sy, nx, ny;
  GtkNative *native = gtk_widget_get_native (GTK_WIDGET (self));
  if (native && gdk_event_get_position (event, &sx, &sy))
    {
      gtk_native_get_surface_transform (native, &nx, &ny);
      graphene_point_t p;
      if (gtk_widget_compute_point (GTK_WIDGET (native), GTK_WIDGET (self),
                                    &GRAPHENE_POINT_INIT ((float) (sx - nx),
                                                          (float) (sy - ny)),
                                    &p))
        send_pointer (self, p.x, p.y, TRUE);
    }
  return TRUE;
}

static GdkToplevel *
view_toplevel (VesselDisplayView *self)
{
  GtkNative *native = gtk_widget_get_native (GTK_WIDGET (self));
  GdkSurface *surface = native ? gtk_native_get_surface (native) : NULL;
  return surface && GDK_IS_TOPLEVEL (surface) ? GDK_TOPLEVEL (surface) : NULL;
}

void
vessel_display_view_grab (VesselDisplayView *self)
{
  g_return_if_fail (VESSEL_IS_DISPLAY_VIEW (self));
  if (self->grabbed || !self->surface)
    return;
  gtk_widget_grab_focus (GTK_WIDGET (self));
  GdkToplevel *toplevel = view_toplevel (self);
  if (toplevel)
    {
      gdk_toplevel_inhibit_system_shortcuts (toplevel, NULL);
      self->inhibited = g_object_ref (toplevel);
    }
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), "none");
  self->mods = 0;
  self->release_armed = FALSE;
  self->buttons = 0;
  if (self->input)
    display_input_pointer_reset (self->input);
  self->grabbed = TRUE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GRABBED]);
}

void
vessel_display_view_ungrab (VesselDisplayView *self)
{
  g_return_if_fail (VESSEL_IS_DISPLAY_VIEW (self));
  if (!self->grabbed)
    return;
  if (self->inhibited)
    {
      gdk_toplevel_restore_system_shortcuts (self->inhibited);
      g_clear_object (&self->inhibited);
    }
  gtk_widget_set_cursor (GTK_WIDGET (self), NULL);
  if (self->input)
    {
      display_input_release_all (self->input);
      if (self->buttons)
        display_input_pointer_rel (self->input, 0, 0, 0, 0);
    }
  self->buttons = 0;
  self->mods = 0;
  self->release_armed = FALSE;
  self->grabbed = FALSE;
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_GRABBED]);
}

gboolean
vessel_display_view_get_grabbed (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), FALSE);
  return self->grabbed;
}

const char *
vessel_display_view_get_release_keys (VesselDisplayView *self)
{
  /* Translators: the key combination that gives the keyboard and pointer
   * back from the virtual machine to the desktop. */
  return _("Ctrl+Alt");
}

void
vessel_display_view_send_keys (VesselDisplayView *self,
                               const unsigned *xt_codes, size_t n)
{
  g_return_if_fail (VESSEL_IS_DISPLAY_VIEW (self));
  g_return_if_fail (xt_codes != NULL || n == 0);
  if (!self->input)
    return;
  for (size_t i = 0; i < n; i++)
    display_input_key (self->input, xt_codes[i], true);
  for (size_t i = n; i-- > 0;)
    display_input_key (self->input, xt_codes[i], false);
}

/* --- the source ------------------------------------------------------------ */

static void
detach (VesselDisplayView *self)
{
  if (self->listener)
    {
      /* After this no listener callback runs; a queued idle finds the
       * bridge detached. */
      display_surface_remove_listener (self->surface, self->listener);
      self->listener = NULL;
    }
  if (self->bridge)
    {
      g_mutex_lock (&self->bridge->lock);
      self->bridge->view = NULL;
      g_mutex_unlock (&self->bridge->lock);
      g_clear_pointer (&self->bridge, bridge_unref);
    }
  drop_image (self);
  self->surface = NULL;
}

void
vessel_display_view_set_source (VesselDisplayView *self,
                                display_surface *surface,
                                display_input *input)
{
  g_return_if_fail (VESSEL_IS_DISPLAY_VIEW (self));
  if (surface == self->surface && input == self->input)
    return;

  /* Keys held in the old guest are let go. */
  vessel_display_view_ungrab (self);
  if (self->input && self->input != input)
    display_input_release_all (self->input);
  self->input = input;

  if (surface != self->surface)
    {
      detach (self);
      self->surface = surface;
      if (surface)
        {
          self->bridge = bridge_new (self);
          self->listener = display_surface_add_listener (surface,
                                                         &listener_ops,
                                                         self->bridge);
          take_current_image (self);
        }
      else
        set_guest_size (self, 0, 0);
    }
  queue_redraw (self);
}

void
vessel_display_view_set_scale_mode (VesselDisplayView *self,
                                    VesselDisplayScaleMode mode)
{
  g_return_if_fail (VESSEL_IS_DISPLAY_VIEW (self));
  g_return_if_fail (mode == VESSEL_DISPLAY_SCALE_FIT
                    || mode == VESSEL_DISPLAY_SCALE_ONE_TO_ONE);
  if (self->scale_mode == mode)
    return;
  self->scale_mode = mode;
  gtk_widget_queue_resize (GTK_WIDGET (self));
  queue_redraw (self);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_SCALE_MODE]);
}

VesselDisplayScaleMode
vessel_display_view_get_scale_mode (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self),
                        VESSEL_DISPLAY_SCALE_FIT);
  return self->scale_mode;
}

int
vessel_display_view_get_guest_width (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), 0);
  return self->guest_width;
}

int
vessel_display_view_get_guest_height (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), 0);
  return self->guest_height;
}

gboolean
vessel_display_view_is_accelerated (VesselDisplayView *self)
{
  g_return_val_if_fail (VESSEL_IS_DISPLAY_VIEW (self), FALSE);
  return use_gl (self);
}

/* --- GObject --------------------------------------------------------------- */

static void
scale_factor_changed (GObject *object, GParamSpec *pspec, gpointer data)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (object);
  gtk_widget_queue_resize (GTK_WIDGET (self));
  queue_redraw (self);
}

static void
vessel_display_view_dispose (GObject *object)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (object);
  vessel_display_view_ungrab (self);
  vessel_display_view_set_source (self, NULL, NULL);
  g_clear_pointer (&self->area, gtk_widget_unparent);
  g_clear_object (&self->sw_texture);
  G_OBJECT_CLASS (vessel_display_view_parent_class)->dispose (object);
}

static void
vessel_display_view_finalize (GObject *object)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (object);
  g_free (self->shadow);
  G_OBJECT_CLASS (vessel_display_view_parent_class)->finalize (object);
}

static void
vessel_display_view_get_property (GObject *object, guint prop_id,
                                  GValue *value, GParamSpec *pspec)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (object);
  switch (prop_id)
    {
    case PROP_SCALE_MODE:
      g_value_set_enum (value, self->scale_mode);
      break;
    case PROP_GRABBED:
      g_value_set_boolean (value, self->grabbed);
      break;
    case PROP_GUEST_WIDTH:
      g_value_set_int (value, self->guest_width);
      break;
    case PROP_GUEST_HEIGHT:
      g_value_set_int (value, self->guest_height);
      break;
    case PROP_RELEASE_KEYS:
      g_value_set_string (value, vessel_display_view_get_release_keys (self));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vessel_display_view_set_property (GObject *object, guint prop_id,
                                  const GValue *value, GParamSpec *pspec)
{
  VesselDisplayView *self = VESSEL_DISPLAY_VIEW (object);
  switch (prop_id)
    {
    case PROP_SCALE_MODE:
      vessel_display_view_set_scale_mode (self, g_value_get_enum (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
vessel_display_view_class_init (VesselDisplayViewClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = vessel_display_view_dispose;
  object_class->finalize = vessel_display_view_finalize;
  object_class->get_property = vessel_display_view_get_property;
  object_class->set_property = vessel_display_view_set_property;

  widget_class->snapshot = vessel_display_view_snapshot;
  widget_class->measure = vessel_display_view_measure;
  widget_class->size_allocate = vessel_display_view_size_allocate;
  widget_class->map = vessel_display_view_map;
  widget_class->unmap = vessel_display_view_unmap;

  properties[PROP_SCALE_MODE] = g_param_spec_enum (
      "scale-mode", NULL, NULL, VESSEL_TYPE_DISPLAY_SCALE_MODE,
      VESSEL_DISPLAY_SCALE_FIT,
      G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  properties[PROP_GRABBED] = g_param_spec_boolean (
      "grabbed", NULL, NULL, FALSE, G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_GUEST_WIDTH]
      = g_param_spec_int ("guest-width", NULL, NULL, 0, G_MAXINT, 0,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_GUEST_HEIGHT]
      = g_param_spec_int ("guest-height", NULL, NULL, 0, G_MAXINT, 0,
                          G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  properties[PROP_RELEASE_KEYS]
      = g_param_spec_string ("release-keys", NULL, NULL, NULL,
                             G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, properties);

  /* The guest's resolution changed (after guest-width and guest-height
   * are notified). */
  signals[SIGNAL_GUEST_SIZE_CHANGED] = g_signal_new (
      "guest-size-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
      NULL, NULL, NULL, G_TYPE_NONE, 2, G_TYPE_INT, G_TYPE_INT);

  gtk_widget_class_set_css_name (widget_class, "vessel-display-view");
  gtk_widget_class_set_accessible_role (widget_class,
                                        GTK_ACCESSIBLE_ROLE_IMG);
}

static void
vessel_display_view_init (VesselDisplayView *self)
{
  GtkWidget *widget = GTK_WIDGET (self);
  GtkEventController *controller;

  self->gl_all = self->sw_all = TRUE;
  gtk_widget_set_focusable (widget, TRUE);
  gtk_widget_set_overflow (widget, GTK_OVERFLOW_HIDDEN);
  gtk_accessible_update_property (GTK_ACCESSIBLE (self),
                                  GTK_ACCESSIBLE_PROPERTY_LABEL,
                                  _("Machine screen"), -1);

  self->area = gtk_gl_area_new ();
  gtk_widget_set_can_target (self->area, FALSE);
  gtk_widget_set_focusable (self->area, FALSE);
  g_signal_connect (self->area, "create-context",
                    G_CALLBACK (area_create_context), self);
  g_signal_connect_after (self->area, "realize", G_CALLBACK (area_realized),
                          self);
  g_signal_connect (self->area, "unrealize", G_CALLBACK (area_unrealize),
                    self);
  g_signal_connect (self->area, "render", G_CALLBACK (area_render), self);
  gtk_widget_set_parent (self->area, widget);

  g_signal_connect (self, "notify::scale-factor",
                    G_CALLBACK (scale_factor_changed), NULL);

  controller = gtk_event_controller_key_new ();
  g_signal_connect (controller, "key-pressed", G_CALLBACK (on_key_pressed),
                    self);
  g_signal_connect (controller, "key-released", G_CALLBACK (on_key_released),
                    self);
  gtk_widget_add_controller (widget, controller);

  controller = gtk_event_controller_focus_new ();
  g_signal_connect (controller, "leave", G_CALLBACK (on_focus_leave), self);
  gtk_widget_add_controller (widget, controller);

  controller = gtk_event_controller_motion_new ();
  g_signal_connect (controller, "motion", G_CALLBACK (on_motion), self);
  gtk_widget_add_controller (widget, controller);

  controller = gtk_event_controller_scroll_new (
      GTK_EVENT_CONTROLLER_SCROLL_VERTICAL
      | GTK_EVENT_CONTROLLER_SCROLL_DISCRETE);
  g_signal_connect (controller, "scroll", G_CALLBACK (on_scroll), self);
  gtk_widget_add_controller (widget, controller);

  controller = gtk_event_controller_legacy_new ();
  g_signal_connect (controller, "event", G_CALLBACK (on_legacy_event), self);
  gtk_widget_add_controller (widget, controller);
}

GtkWidget *
vessel_display_view_new (void)
{
  return g_object_new (VESSEL_TYPE_DISPLAY_VIEW, NULL);
}
