/* The evdev → set 1 table of the GTK display view (no display needed). */
#include <glib.h>
#include <linux/input-event-codes.h>

#include "display/input.h"
#include "display/vessel-display-keymap.h"

static void
test_main_block (void)
{
  /* KEY_ESC .. KEY_KPDOT carry their set 1 code. */
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_ESC), ==, 0x01);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_A), ==, 0x1e);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_LEFTCTRL), ==, 0x1d);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_LEFTALT), ==, 0x38);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_F1), ==, 0x3b);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_F10), ==, 0x44);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_KPDOT), ==, 0x53);
  for (guint code = KEY_ESC; code <= KEY_KPDOT; code++)
    g_assert_cmpuint (vessel_display_keycode_to_xt (code), ==, code);
}

static void
test_extended (void)
{
  static const struct {
    guint evdev;
    unsigned xt;
  } cases[] = {
    { KEY_F11, 0x57 },        { KEY_F12, 0x58 },
    { KEY_102ND, 0x56 },      { KEY_KPENTER, 0xe01c },
    { KEY_RIGHTCTRL, 0xe01d }, { KEY_KPSLASH, 0xe035 },
    { KEY_SYSRQ, DISPLAY_XT_PRINT }, { KEY_RIGHTALT, 0xe038 },
    { KEY_HOME, 0xe047 },     { KEY_UP, 0xe048 },
    { KEY_PAGEUP, 0xe049 },   { KEY_LEFT, 0xe04b },
    { KEY_RIGHT, 0xe04d },    { KEY_END, 0xe04f },
    { KEY_DOWN, 0xe050 },     { KEY_PAGEDOWN, 0xe051 },
    { KEY_INSERT, 0xe052 },   { KEY_DELETE, 0xe053 },
    { KEY_PAUSE, DISPLAY_XT_PAUSE }, { KEY_LEFTMETA, 0xe05b },
    { KEY_RIGHTMETA, 0xe05c }, { KEY_COMPOSE, 0xe05d },
    { KEY_KPEQUAL, 0x59 },    { KEY_MUTE, 0xe020 },
    { KEY_VOLUMEDOWN, 0xe02e }, { KEY_VOLUMEUP, 0xe030 },
    { KEY_POWER, 0xe05e },    { KEY_RO, 0x73 },
    { KEY_YEN, 0x7d },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    g_assert_cmphex (vessel_display_keycode_to_xt (cases[i].evdev), ==,
                     cases[i].xt);
}

static void
test_unmapped (void)
{
  g_assert_cmpuint (vessel_display_keycode_to_xt (0), ==, 0);
  g_assert_cmpuint (vessel_display_keycode_to_xt (84), ==, 0);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_LINEFEED), ==, 0);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_MACRO), ==, 0);
  g_assert_cmpuint (vessel_display_keycode_to_xt (KEY_MAX), ==, 0);
  g_assert_cmpuint (vessel_display_keycode_to_xt (G_MAXUINT), ==, 0);
}

/* Every code in the table is one the input router can send, and no two
 * keys share a code (except where the PC keyboard itself does). */
static void
test_router_knows_every_code (void)
{
  unsigned seen[KEY_MAX + 1] = { 0 };
  for (guint code = 0; code <= KEY_MAX; code++)
    {
      unsigned xt = vessel_display_keycode_to_xt (code);
      if (!xt)
        continue;
      uint8_t bytes[8];
      g_assert_cmpuint (display_input_xt_to_set2 (xt, true, bytes), >, 0);
      for (guint other = 0; other < code; other++)
        if (seen[other] == xt)
          g_error ("evdev %u and %u both map to 0x%x", other, code, xt);
      seen[code] = xt;
    }
}

static void
test_hardware_keycode (void)
{
  /* X11 and Wayland keycodes are evdev + 8. */
  g_assert_cmpuint (vessel_display_hardware_keycode_to_evdev (9), ==,
                    KEY_ESC);
  g_assert_cmpuint (vessel_display_hardware_keycode_to_evdev (111), ==,
                    KEY_UP);
  g_assert_cmpuint (vessel_display_hardware_keycode_to_evdev (3), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/display-keymap/main-block", test_main_block);
  g_test_add_func ("/display-keymap/extended", test_extended);
  g_test_add_func ("/display-keymap/unmapped", test_unmapped);
  g_test_add_func ("/display-keymap/router-knows-every-code",
                   test_router_knows_every_code);
  g_test_add_func ("/display-keymap/hardware-keycode",
                   test_hardware_keycode);
  return g_test_run ();
}
