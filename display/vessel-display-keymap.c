/* evdev → scan code set 1 (see vessel-display-keymap.h). Codes after the
 * Linux kernel's input-event-codes.h and the PC keyboard's set 1 table
 * (Microsoft's "Keyboard Scan Code Specification", appendix C). */
#include "display/vessel-display-keymap.h"

#include "display/input.h"

/* evdev codes past the main block that have a set 1 code. */
static const struct {
  guint16 evdev;
  guint16 xt;
} extra_keys[] = {
  { 85, 0x76 },              /* KEY_ZENKAKUHANKAKU */
  { 86, 0x56 },              /* KEY_102ND (the ISO key left of Z) */
  { 87, 0x57 },              /* KEY_F11 */
  { 88, 0x58 },              /* KEY_F12 */
  { 89, 0x73 },              /* KEY_RO */
  { 90, 0x78 },              /* KEY_KATAKANA */
  { 91, 0x77 },              /* KEY_HIRAGANA */
  { 92, 0x79 },              /* KEY_HENKAN */
  { 93, 0x70 },              /* KEY_KATAKANAHIRAGANA */
  { 94, 0x7b },              /* KEY_MUHENKAN */
  { 95, 0x5c },              /* KEY_KPJPCOMMA */
  { 96, 0xe01c },            /* KEY_KPENTER */
  { 97, 0xe01d },            /* KEY_RIGHTCTRL */
  { 98, 0xe035 },            /* KEY_KPSLASH */
  { 99, DISPLAY_XT_PRINT },  /* KEY_SYSRQ (Print Screen) */
  { 100, 0xe038 },           /* KEY_RIGHTALT */
  { 102, 0xe047 },           /* KEY_HOME */
  { 103, 0xe048 },           /* KEY_UP */
  { 104, 0xe049 },           /* KEY_PAGEUP */
  { 105, 0xe04b },           /* KEY_LEFT */
  { 106, 0xe04d },           /* KEY_RIGHT */
  { 107, 0xe04f },           /* KEY_END */
  { 108, 0xe050 },           /* KEY_DOWN */
  { 109, 0xe051 },           /* KEY_PAGEDOWN */
  { 110, 0xe052 },           /* KEY_INSERT */
  { 111, 0xe053 },           /* KEY_DELETE */
  { 113, 0xe020 },           /* KEY_MUTE */
  { 114, 0xe02e },           /* KEY_VOLUMEDOWN */
  { 115, 0xe030 },           /* KEY_VOLUMEUP */
  { 116, 0xe05e },           /* KEY_POWER */
  { 117, 0x59 },             /* KEY_KPEQUAL */
  { 119, DISPLAY_XT_PAUSE }, /* KEY_PAUSE */
  { 121, 0x7e },             /* KEY_KPCOMMA */
  { 124, 0x7d },             /* KEY_YEN */
  { 125, 0xe05b },           /* KEY_LEFTMETA */
  { 126, 0xe05c },           /* KEY_RIGHTMETA */
  { 127, 0xe05d },           /* KEY_COMPOSE (the Menu key) */
  { 128, 0xe068 },           /* KEY_STOP (browser) */
  { 140, 0xe021 },           /* KEY_CALC */
  { 142, 0xe05f },           /* KEY_SLEEP */
  { 143, 0xe063 },           /* KEY_WAKEUP */
  { 155, 0xe06c },           /* KEY_MAIL */
  { 156, 0xe066 },           /* KEY_BOOKMARKS */
  { 157, 0xe06b },           /* KEY_COMPUTER */
  { 158, 0xe06a },           /* KEY_BACK */
  { 159, 0xe069 },           /* KEY_FORWARD */
  { 163, 0xe019 },           /* KEY_NEXTSONG */
  { 164, 0xe022 },           /* KEY_PLAYPAUSE */
  { 165, 0xe010 },           /* KEY_PREVIOUSSONG */
  { 166, 0xe024 },           /* KEY_STOPCD */
  { 172, 0xe032 },           /* KEY_HOMEPAGE */
  { 173, 0xe067 },           /* KEY_REFRESH */
  { 183, 0x64 },             /* KEY_F13 */
  { 184, 0x65 },             /* KEY_F14 */
  { 185, 0x66 },             /* KEY_F15 */
  { 186, 0x67 },             /* KEY_F16 */
  { 187, 0x68 },             /* KEY_F17 */
  { 188, 0x69 },             /* KEY_F18 */
  { 189, 0x6a },             /* KEY_F19 */
  { 190, 0x6b },             /* KEY_F20 */
  { 191, 0x6c },             /* KEY_F21 */
  { 192, 0x6d },             /* KEY_F22 */
  { 193, 0x6e },             /* KEY_F23 */
  { 217, 0xe065 },           /* KEY_SEARCH */
  { 226, 0xe06d },           /* KEY_MEDIA */
};

/* KEY_ESC (1) .. KEY_KPDOT (83): the same number in set 1. */
#define EVDEV_MAIN_BLOCK_LAST 83

unsigned
vessel_display_keycode_to_xt (guint evdev)
{
  if (evdev >= 1 && evdev <= EVDEV_MAIN_BLOCK_LAST)
    return evdev;
  for (gsize i = 0; i < G_N_ELEMENTS (extra_keys); i++)
    if (extra_keys[i].evdev == evdev)
      return extra_keys[i].xt;
  return 0;
}
