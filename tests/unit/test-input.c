/* display/input.c: set 1 codes and keysyms to set 2 bytes, pointer events
 * to PS/2 motion, release of held keys; and display/vnc.c's --vnc parser. */
#include "display/input.h"
#include "display/vnc.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct sink {
  GByteArray *keys;
  int n_moves;
  int dx, dy, dz; /* sums */
  unsigned buttons;
} sink;

static void
sink_key (void *opaque, const uint8_t *set2, size_t n)
{
  sink *s = opaque;
  g_byte_array_append (s->keys, set2, (guint) n);
}

static void
sink_mouse (void *opaque, int dx, int dy, int dz, unsigned buttons)
{
  sink *s = opaque;
  g_assert_cmpint (dx, >=, -256);
  g_assert_cmpint (dx, <=, 255);
  g_assert_cmpint (dy, >=, -256);
  g_assert_cmpint (dy, <=, 255);
  s->n_moves++;
  s->dx += dx;
  s->dy += dy;
  s->dz += dz;
  s->buttons = buttons;
}

static display_input *
new_router (sink *s)
{
  memset (s, 0, sizeof *s);
  s->keys = g_byte_array_new ();
  display_input_backend be = { s, sink_key, sink_mouse };
  return display_input_new (&be);
}

static void
expect_keys (sink *s, const uint8_t *want, size_t n)
{
  g_assert_cmpmem (s->keys->data, s->keys->len, want, n);
  g_byte_array_set_size (s->keys, 0);
}

static void
test_xt (void)
{
  sink s;
  display_input *in = new_router (&s);
  static const struct {
    unsigned xt;
    uint8_t make[4];
    size_t n;
  } cases[] = {
    { 0x1e, { 0x1c }, 1 },       /* A */
    { 0x1c, { 0x5a }, 1 },       /* Enter */
    { 0x01, { 0x76 }, 1 },       /* Esc */
    { 0x41, { 0x83 }, 1 },       /* F7 */
    { 0x57, { 0x78 }, 1 },       /* F11 */
    { 0x58, { 0x07 }, 1 },       /* F12 */
    { 0x54, { 0x84 }, 1 },       /* SysRq */
    { 0xe048, { 0xe0, 0x75 }, 2 }, /* Up */
    { 0xe01d, { 0xe0, 0x14 }, 2 }, /* right Ctrl */
    { 0xe035, { 0xe0, 0x4a }, 2 }, /* keypad / */
    { 0xe05b, { 0xe0, 0x1f }, 2 }, /* left GUI */
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_assert_true (display_input_key (in, cases[i].xt, true));
      expect_keys (&s, cases[i].make, cases[i].n);
      g_assert_true (display_input_key (in, cases[i].xt, false));
      uint8_t brk[4];
      size_t n = 0;
      if (cases[i].n == 2)
        brk[n++] = 0xe0;
      brk[n++] = 0xf0;
      brk[n++] = cases[i].make[cases[i].n - 1];
      expect_keys (&s, brk, n);
    }
  static const uint8_t print_make[] = { 0xe0, 0x12, 0xe0, 0x7c };
  static const uint8_t print_break[] = { 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12 };
  display_input_key (in, DISPLAY_XT_PRINT, true);
  expect_keys (&s, print_make, sizeof print_make);
  display_input_key (in, DISPLAY_XT_PRINT, false);
  expect_keys (&s, print_break, sizeof print_break);
  static const uint8_t pause[] = { 0xe1, 0x14, 0x77, 0xe1,
                                   0xf0, 0x14, 0xf0, 0x77 };
  display_input_key (in, DISPLAY_XT_PAUSE, true);
  expect_keys (&s, pause, sizeof pause);
  display_input_key (in, DISPLAY_XT_PAUSE, false);
  expect_keys (&s, NULL, 0);
  /* Unknown codes. */
  g_assert_false (display_input_key (in, 0x00, true));
  g_assert_false (display_input_key (in, 0x80, true));
  g_assert_false (display_input_key (in, 0x1e1e, true));
  g_assert_false (display_input_key (in, 0xe0ff, true));
  expect_keys (&s, NULL, 0);
  display_input_free (in);
  g_byte_array_unref (s.keys);
}

static void
test_keysym (void)
{
  static const struct {
    uint32_t keysym;
    unsigned xt;
  } cases[] = {
    { 'a', 0x1e }, { 'A', 0x1e }, { 'z', 0x2c }, { 'Q', 0x10 },
    { '1', 0x02 }, { '!', 0x02 }, { '0', 0x0b }, { ')', 0x0b },
    { '@', 0x03 }, { ' ', 0x39 }, { '-', 0x0c }, { '_', 0x0c },
    { '=', 0x0d }, { '[', 0x1a }, { '}', 0x1b }, { ';', 0x27 },
    { '"', 0x28 }, { '`', 0x29 }, { '~', 0x29 }, { '|', 0x2b },
    { ',', 0x33 }, { '>', 0x34 }, { '?', 0x35 },
    { 0xff1b, 0x01 }, { 0xff0d, 0x1c }, { 0xff09, 0x0f }, { 0xff08, 0x0e },
    { 0xffbe, 0x3b }, { 0xffc9, 0x58 }, { 0xff52, 0xe048 },
    { 0xff51, 0xe04b }, { 0xffe1, 0x2a }, { 0xffe4, 0xe01d },
    { 0xffea, 0xe038 }, { 0xff8d, 0xe01c }, { 0xffb7, 0x47 },
    { 0xffaf, 0xe035 }, { 0xffff, 0xe053 },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmphex (display_input_keysym_to_xt (cases[i].keysym), ==,
                     cases[i].xt);
  g_assert_cmpuint (display_input_keysym_to_xt (0x20ac), ==, 0); /* € */
  /* Every keysym in the table converts to set 2. */
  for (uint32_t k = 0x20; k < 0x7f; k++)
    {
      uint8_t out[8];
      g_assert_cmpuint (display_input_xt_to_set2 (
                            display_input_keysym_to_xt (k), true, out),
                        >, 0);
    }

  sink s;
  display_input *in = new_router (&s);
  g_assert_true (display_input_keysym (in, 0xffe1, true)); /* Shift_L */
  g_assert_true (display_input_keysym (in, 'A', true));
  g_assert_false (display_input_keysym (in, 0x20ac, true));
  static const uint8_t held[] = { 0x12, 0x1c };
  expect_keys (&s, held, sizeof held);
  /* A client went away: both are released. */
  display_input_release_all (in);
  g_assert_cmpuint (s.keys->len, ==, 4);
  g_assert_true (memmem (s.keys->data, 4, "\xf0\x12", 2));
  g_assert_true (memmem (s.keys->data, 4, "\xf0\x1c", 2));
  g_byte_array_set_size (s.keys, 0);
  display_input_release_all (in);
  expect_keys (&s, NULL, 0);
  display_input_free (in);
  g_byte_array_unref (s.keys);
}

static void
test_pointer (void)
{
  sink s;
  display_input *in = new_router (&s);
  /* Screen down is PS/2 negative. */
  display_input_pointer_rel (in, 5, 7, 0, DISPLAY_BUTTON_LEFT);
  g_assert_cmpint (s.dx, ==, 5);
  g_assert_cmpint (s.dy, ==, -7);
  g_assert_cmpuint (s.buttons, ==, DISPLAY_BUTTON_LEFT);
  /* Large motion is split into packets a PS/2 mouse can carry. */
  memset (&s.n_moves, 0, sizeof s - offsetof (sink, n_moves));
  display_input_pointer_rel (in, 1000, -600, 1, 0);
  g_assert_cmpint (s.dx, ==, 1000);
  g_assert_cmpint (s.dy, ==, 600);
  g_assert_cmpint (s.dz, ==, 1);
  g_assert_cmpint (s.n_moves, >, 1);
  /* Absolute → relative from the last position. */
  memset (&s.n_moves, 0, sizeof s - offsetof (sink, n_moves));
  display_input_pointer_abs (in, 100, 100, 640, 480, 0);
  g_assert_cmpint (s.n_moves, ==, 0); /* first position: nothing to move */
  display_input_pointer_abs (in, 110, 90, 640, 480, 0);
  g_assert_cmpint (s.dx, ==, 10);
  g_assert_cmpint (s.dy, ==, 10);
  display_input_pointer_abs (in, 110, 90, 640, 480, DISPLAY_BUTTON_RIGHT);
  g_assert_cmpuint (s.buttons, ==, DISPLAY_BUTTON_RIGHT);
  display_input_pointer_abs (in, 5000, 90, 640, 480, DISPLAY_BUTTON_RIGHT);
  g_assert_cmpint (s.dx, ==, 10 + 639 - 110); /* clamped to the screen */
  display_input_pointer_reset (in);
  int moves = s.n_moves;
  display_input_pointer_abs (in, 0, 0, 640, 480, DISPLAY_BUTTON_RIGHT);
  g_assert_cmpint (s.n_moves, ==, moves);
  /* Releasing everything lets go of the buttons too. */
  display_input_release_all (in);
  g_assert_cmpuint (s.buttons, ==, 0);
  display_input_free (in);
  g_byte_array_unref (s.keys);
}

/* QMP send-key's QKeyCode names. */
static void
test_qcode (void)
{
  static const struct {
    const char *name;
    unsigned xt;
  } cases[] = {
    { "a", 0x1e }, { "z", 0x2c }, { "q", 0x10 }, { "m", 0x32 },
    { "1", 0x02 }, { "0", 0x0b }, { "9", 0x0a },
    { "f1", 0x3b }, { "f10", 0x44 }, { "f11", 0x57 }, { "f12", 0x58 },
    { "esc", 0x01 }, { "ret", 0x1c }, { "spc", 0x39 }, { "tab", 0x0f },
    { "backspace", 0x0e }, { "shift", 0x2a }, { "shift_r", 0x36 },
    { "ctrl", 0x1d }, { "ctrl_r", 0xe01d }, { "alt", 0x38 },
    { "alt_r", 0xe038 }, { "meta_l", 0xe05b }, { "meta_r", 0xe05c },
    { "up", 0xe048 }, { "down", 0xe050 }, { "left", 0xe04b },
    { "right", 0xe04d }, { "home", 0xe047 }, { "end", 0xe04f },
    { "pgup", 0xe049 }, { "pgdn", 0xe051 }, { "insert", 0xe052 },
    { "delete", 0xe053 }, { "minus", 0x0c }, { "equal", 0x0d },
    { "bracket_left", 0x1a }, { "bracket_right", 0x1b },
    { "semicolon", 0x27 }, { "apostrophe", 0x28 }, { "grave_accent", 0x29 },
    { "backslash", 0x2b }, { "comma", 0x33 }, { "dot", 0x34 },
    { "slash", 0x35 }, { "caps_lock", 0x3a }, { "kp_0", 0x52 },
    { "kp_5", 0x4c }, { "kp_9", 0x49 }, { "kp_enter", 0xe01c },
    { "print", DISPLAY_XT_PRINT }, { "pause", DISPLAY_XT_PAUSE },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_test_message ("qcode %s", cases[i].name);
      g_assert_cmphex (display_input_qcode_to_xt (cases[i].name), ==,
                       cases[i].xt);
    }
  /* Every letter and digit, and every code sends something. */
  for (char c = 'a'; c <= 'z'; c++)
    {
      char name[2] = { c, 0 };
      g_assert_cmphex (display_input_qcode_to_xt (name), ==,
                       display_input_keysym_to_xt ((uint32_t) c));
    }
  for (char c = '0'; c <= '9'; c++)
    {
      char name[2] = { c, 0 };
      g_assert_cmphex (display_input_qcode_to_xt (name), ==,
                       display_input_keysym_to_xt ((uint32_t) c));
    }
  for (unsigned n = 1; n <= 12; n++)
    {
      g_autofree char *name = g_strdup_printf ("f%u", n);
      unsigned xt = display_input_qcode_to_xt (name);
      uint8_t out[8];
      g_assert_cmpuint (display_input_xt_to_set2 (xt, true, out), >, 0);
    }
  g_assert_cmphex (display_input_qcode_to_xt ("nosuchkey"), ==, 0);
  g_assert_cmphex (display_input_qcode_to_xt (""), ==, 0);
  g_assert_cmphex (display_input_qcode_to_xt ("A"), ==, 0);
  g_assert_cmphex (display_input_qcode_to_xt (NULL), ==, 0);
}

typedef struct tablet_sink {
  sink s;
  bool ready;
  unsigned n, x, y, buttons;
  int dz;
} tablet_sink;

static bool
sink_absolute (void *opaque, unsigned x, unsigned y, int dz, unsigned buttons)
{
  tablet_sink *t = opaque;
  if (!t->ready)
    return false;
  g_assert_cmpuint (x, <=, DISPLAY_ABS_MAX);
  g_assert_cmpuint (y, <=, DISPLAY_ABS_MAX);
  t->n++;
  t->x = x;
  t->y = y;
  t->dz += dz;
  t->buttons = buttons;
  return true;
}

static void
tablet_key (void *opaque, const uint8_t *set2, size_t n)
{
  sink_key (&((tablet_sink *) opaque)->s, set2, n);
}

static void
tablet_mouse (void *opaque, int dx, int dy, int dz, unsigned buttons)
{
  sink_mouse (&((tablet_sink *) opaque)->s, dx, dy, dz, buttons);
}

/* Absolute positions go to the tablet once it takes them, scaled to
 * 0..DISPLAY_ABS_MAX; before that, relative PS/2 motion. */
static void
test_tablet (void)
{
  tablet_sink t = { 0 };
  t.s.keys = g_byte_array_new ();
  display_input_backend be = { &t, tablet_key, tablet_mouse, sink_absolute };
  display_input *in = display_input_new (&be);

  /* No driver yet: the PS/2 fallback. */
  display_input_pointer_abs (in, 10, 10, 800, 600, 0);
  display_input_pointer_abs (in, 30, 5, 800, 600, 0);
  g_assert_cmpint (t.s.dx, ==, 20);
  g_assert_cmpint (t.s.dy, ==, 5); /* PS/2 dy is up */
  g_assert_cmpuint (t.n, ==, 0);

  t.ready = true;
  int moves = t.s.n_moves;
  display_input_pointer_abs (in, 0, 0, 800, 600, 0);
  g_assert_cmpuint (t.x, ==, 0);
  g_assert_cmpuint (t.y, ==, 0);
  display_input_pointer_abs (in, 799, 599, 800, 600, DISPLAY_BUTTON_LEFT);
  g_assert_cmpuint (t.x, ==, DISPLAY_ABS_MAX);
  g_assert_cmpuint (t.y, ==, DISPLAY_ABS_MAX);
  g_assert_cmpuint (t.buttons, ==, DISPLAY_BUTTON_LEFT);
  /* x * 32767 / (w - 1), rounded. */
  static const int xs[] = { 1, 100, 399, 400, 798 };
  for (size_t i = 0; i < G_N_ELEMENTS (xs); i++)
    {
      display_input_pointer_abs (in, xs[i], xs[i] / 2, 800, 600, 0);
      double want_x = xs[i] * 32767.0 / 799;
      double want_y = (xs[i] / 2) * 32767.0 / 599;
      g_assert_cmpfloat (fabs (t.x - want_x), <=, 0.5);
      g_assert_cmpfloat (fabs (t.y - want_y), <=, 0.5);
    }
  /* Off-screen positions are clamped. */
  display_input_pointer_abs (in, -5, 5000, 800, 600, 0);
  g_assert_cmpuint (t.x, ==, 0);
  g_assert_cmpuint (t.y, ==, DISPLAY_ABS_MAX);
  /* A wheel turn without motion goes to the tablet at the last position. */
  display_input_pointer_rel (in, 0, 0, 1, DISPLAY_BUTTON_RIGHT);
  g_assert_cmpint (t.dz, ==, 1);
  g_assert_cmpuint (t.x, ==, 0);
  g_assert_cmpuint (t.buttons, ==, DISPLAY_BUTTON_RIGHT);
  g_assert_cmpint (t.s.n_moves, ==, moves);
  /* Held buttons are released on the tablet. */
  display_input_release_all (in);
  g_assert_cmpuint (t.buttons, ==, 0);
  g_assert_cmpint (t.s.n_moves, ==, moves);

  /* The driver went away: PS/2 again, from the last position. */
  t.ready = false;
  display_input_pointer_abs (in, 10, 590, 800, 600, 0);
  g_assert_cmpint (t.s.n_moves, >, moves);
  display_input_free (in);
  g_byte_array_unref (t.s.keys);
}

static void
test_vnc_spec (void)
{
  display_vnc_spec spec;
  g_autoptr (GError) error = NULL;
  g_assert_true (display_vnc_spec_parse ("127.0.0.1:5901", &spec, &error));
  g_assert_cmpstr (spec.host, ==, "127.0.0.1");
  g_assert_cmpint (spec.port, ==, 5901);
  g_assert_null (spec.password_file);
  display_vnc_spec_clear (&spec);
  g_assert_true (display_vnc_spec_parse (":3,password-file=/tmp/pw", &spec,
                                         &error));
  g_assert_cmpstr (spec.host, ==, "127.0.0.1");
  g_assert_cmpint (spec.port, ==, 5903);
  g_assert_cmpstr (spec.password_file, ==, "/tmp/pw");
  display_vnc_spec_clear (&spec);
  g_assert_true (display_vnc_spec_parse ("[::1]:6000", &spec, &error));
  g_assert_cmpstr (spec.host, ==, "::1");
  g_assert_cmpint (spec.port, ==, 6000);
  display_vnc_spec_clear (&spec);
  const char *bad[] = { "", "5901", "host:", "host:x", "host:0", "host:70000",
                        ":60000", "h:1,password=x", "h:1,password-file=" };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_assert_false (display_vnc_spec_parse (bad[i], &spec, &error));
      g_assert_nonnull (error);
      g_assert_null (spec.host);
      g_clear_error (&error);
    }
}

static void
test_vnc_password (void)
{
  g_autofree char *dir = g_dir_make_tmp ("vessel-input-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "pw", NULL);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, "hunter2\r\nmore\n", -1, NULL));
  g_autofree char *pw = display_vnc_read_password (path, &error);
  g_assert_cmpstr (pw, ==, "hunter2");
  g_assert_true (g_file_set_contents (path, "\nx\n", -1, NULL));
  g_assert_null (display_vnc_read_password (path, &error));
  g_clear_error (&error);
  g_unlink (path);
  g_assert_null (display_vnc_read_password (path, &error));
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/input/xt", test_xt);
  g_test_add_func ("/input/keysym", test_keysym);
  g_test_add_func ("/input/pointer", test_pointer);
  g_test_add_func ("/input/qcode", test_qcode);
  g_test_add_func ("/input/tablet", test_tablet);
  g_test_add_func ("/vnc/spec", test_vnc_spec);
  g_test_add_func ("/vnc/password", test_vnc_password);
  return g_test_run ();
}
