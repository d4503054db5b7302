/* The input router (see input.h): set 1 codes and keysyms to set 2 bytes
 * for a PS/2 keyboard, pointer events to PS/2 mouse packets. */
#include "display/input.h"

#include <string.h>

/* Set 1 make code (0x00-0x7f) → set 2, the inverse of the 8042's
 * translation table (vmm-core/devices/i8042.c). The same table serves the
 * byte after 0xE0. */
static const uint8_t set1_to_set2[128] = {
  0x00, 0x76, 0x16, 0x1e, 0x26, 0x25, 0x2e, 0x36, 0x3d, 0x3e, 0x46, 0x45,
  0x4e, 0x55, 0x66, 0x0d, 0x15, 0x1d, 0x24, 0x2d, 0x2c, 0x35, 0x3c, 0x43,
  0x44, 0x4d, 0x54, 0x5b, 0x5a, 0x14, 0x1c, 0x1b, 0x23, 0x2b, 0x34, 0x33,
  0x3b, 0x42, 0x4b, 0x4c, 0x52, 0x0e, 0x12, 0x5d, 0x1a, 0x22, 0x21, 0x2a,
  0x32, 0x31, 0x3a, 0x41, 0x49, 0x4a, 0x59, 0x7c, 0x11, 0x29, 0x58, 0x05,
  0x06, 0x04, 0x0c, 0x03, 0x0b, 0x83, 0x0a, 0x01, 0x09, 0x77, 0x7e, 0x6c,
  0x75, 0x7d, 0x7b, 0x6b, 0x73, 0x74, 0x79, 0x69, 0x72, 0x7a, 0x70, 0x71,
  0x84, 0x60, 0x61, 0x78, 0x07, 0x0f, 0x17, 0x1f, 0x27, 0x2f, 0x37, 0x3f,
  0x47, 0x4f, 0x56, 0x5e, 0x08, 0x10, 0x18, 0x20, 0x28, 0x30, 0x38, 0x40,
  0x48, 0x50, 0x57, 0x6f, 0x13, 0x19, 0x39, 0x51, 0x53, 0x5c, 0x5f, 0x62,
  0x63, 0x64, 0x65, 0x67, 0x68, 0x6a, 0x6d, 0x6e,
};

/* X11 keysyms (X11/keysymdef.h) → set 1, US layout. Latin-1 printables are
 * their ASCII codes. */
typedef struct keysym_entry {
  uint32_t keysym;
  uint16_t xt;
} keysym_entry;

static const keysym_entry keysym_table[] = {
  /* Editing and control */
  { 0xff08, 0x0e },   /* BackSpace */
  { 0xff09, 0x0f },   /* Tab */
  { 0xfe20, 0x0f },   /* ISO_Left_Tab (Shift+Tab) */
  { 0xff0d, 0x1c },   /* Return */
  { 0xff1b, 0x01 },   /* Escape */
  { 0xff13, DISPLAY_XT_PAUSE }, /* Pause */
  { 0xff14, 0x46 },   /* Scroll_Lock */
  { 0xff15, 0x54 },   /* Sys_Req */
  { 0xff61, DISPLAY_XT_PRINT }, /* Print */
  { 0xff6b, 0xe046 }, /* Break (Ctrl+Pause) */
  { 0xff67, 0xe05d }, /* Menu */
  /* Cursor block */
  { 0xff50, 0xe047 }, /* Home */
  { 0xff51, 0xe04b }, /* Left */
  { 0xff52, 0xe048 }, /* Up */
  { 0xff53, 0xe04d }, /* Right */
  { 0xff54, 0xe050 }, /* Down */
  { 0xff55, 0xe049 }, /* Prior (Page Up) */
  { 0xff56, 0xe051 }, /* Next (Page Down) */
  { 0xff57, 0xe04f }, /* End */
  { 0xff63, 0xe052 }, /* Insert */
  { 0xffff, 0xe053 }, /* Delete */
  /* Modifiers and locks */
  { 0xffe1, 0x2a },   /* Shift_L */
  { 0xffe2, 0x36 },   /* Shift_R */
  { 0xffe3, 0x1d },   /* Control_L */
  { 0xffe4, 0xe01d }, /* Control_R */
  { 0xffe5, 0x3a },   /* Caps_Lock */
  { 0xffe7, 0xe05b }, /* Meta_L */
  { 0xffe8, 0xe05c }, /* Meta_R */
  { 0xffe9, 0x38 },   /* Alt_L */
  { 0xffea, 0xe038 }, /* Alt_R */
  { 0xfe03, 0xe038 }, /* ISO_Level3_Shift (AltGr) */
  { 0xffeb, 0xe05b }, /* Super_L */
  { 0xffec, 0xe05c }, /* Super_R */
  { 0xff7f, 0x45 },   /* Num_Lock */
  /* Function keys */
  { 0xffbe, 0x3b }, { 0xffbf, 0x3c }, { 0xffc0, 0x3d }, { 0xffc1, 0x3e },
  { 0xffc2, 0x3f }, { 0xffc3, 0x40 }, { 0xffc4, 0x41 }, { 0xffc5, 0x42 },
  { 0xffc6, 0x43 }, { 0xffc7, 0x44 }, { 0xffc8, 0x57 }, { 0xffc9, 0x58 },
  /* Keypad, with and without Num Lock */
  { 0xff80, 0x39 },   /* KP_Space */
  { 0xff89, 0x0f },   /* KP_Tab */
  { 0xff8d, 0xe01c }, /* KP_Enter */
  { 0xff95, 0x47 },   /* KP_Home */
  { 0xff96, 0x4b },   /* KP_Left */
  { 0xff97, 0x48 },   /* KP_Up */
  { 0xff98, 0x4d },   /* KP_Right */
  { 0xff99, 0x50 },   /* KP_Down */
  { 0xff9a, 0x49 },   /* KP_Prior */
  { 0xff9b, 0x51 },   /* KP_Next */
  { 0xff9c, 0x4f },   /* KP_End */
  { 0xff9d, 0x4c },   /* KP_Begin */
  { 0xff9e, 0x52 },   /* KP_Insert */
  { 0xff9f, 0x53 },   /* KP_Delete */
  { 0xffaa, 0x37 },   /* KP_Multiply */
  { 0xffab, 0x4e },   /* KP_Add */
  { 0xffac, 0x53 },   /* KP_Separator */
  { 0xffad, 0x4a },   /* KP_Subtract */
  { 0xffae, 0x53 },   /* KP_Decimal */
  { 0xffaf, 0xe035 }, /* KP_Divide */
  { 0xffb0, 0x52 }, { 0xffb1, 0x4f }, { 0xffb2, 0x50 }, { 0xffb3, 0x51 },
  { 0xffb4, 0x4b }, { 0xffb5, 0x4c }, { 0xffb6, 0x4d }, { 0xffb7, 0x47 },
  { 0xffb8, 0x48 }, { 0xffb9, 0x49 }, /* KP_0 .. KP_9 */
  { 0xffbd, 0x59 },   /* KP_Equal */
};

/* ASCII 0x20-0x7e on a US keyboard (shifted symbols share their key). */
static const uint8_t ascii_to_xt[0x7f - 0x20] = {
  /* space ! " # $ % & ' */
  0x39, 0x02, 0x28, 0x04, 0x05, 0x06, 0x08, 0x28,
  /* ( ) * + , - . / */
  0x0a, 0x0b, 0x09, 0x0d, 0x33, 0x0c, 0x34, 0x35,
  /* 0-9 */
  0x0b, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
  /* : ; < = > ? @ */
  0x27, 0x27, 0x33, 0x0d, 0x34, 0x35, 0x03,
  /* A-Z */
  0x1e, 0x30, 0x2e, 0x20, 0x12, 0x21, 0x22, 0x23, 0x17, 0x24, 0x25, 0x26,
  0x32, 0x31, 0x18, 0x19, 0x10, 0x13, 0x1f, 0x14, 0x16, 0x2f, 0x11, 0x2d,
  0x15, 0x2c,
  /* [ \ ] ^ _ ` */
  0x1a, 0x2b, 0x1b, 0x07, 0x0c, 0x29,
  /* a-z */
  0x1e, 0x30, 0x2e, 0x20, 0x12, 0x21, 0x22, 0x23, 0x17, 0x24, 0x25, 0x26,
  0x32, 0x31, 0x18, 0x19, 0x10, 0x13, 0x1f, 0x14, 0x16, 0x2f, 0x11, 0x2d,
  0x15, 0x2c,
  /* { | } ~ */
  0x1a, 0x2b, 0x1b, 0x29,
};

/* QEMU's QKeyCode names (qapi/ui.json, the names QMP's send-key takes) →
 * set 1. */
typedef struct qcode_entry {
  const char *name;
  uint16_t xt;
} qcode_entry;

static const qcode_entry qcode_table[] = {
  /* Modifiers and locks */
  { "shift", 0x2a }, { "shift_r", 0x36 }, { "ctrl", 0x1d },
  { "ctrl_r", 0xe01d }, { "alt", 0x38 }, { "alt_r", 0xe038 },
  { "meta_l", 0xe05b }, { "meta_r", 0xe05c }, { "menu", 0xe05d },
  { "caps_lock", 0x3a }, { "num_lock", 0x45 }, { "scroll_lock", 0x46 },
  /* The main block, row by row */
  { "esc", 0x01 }, { "1", 0x02 }, { "2", 0x03 }, { "3", 0x04 },
  { "4", 0x05 }, { "5", 0x06 }, { "6", 0x07 }, { "7", 0x08 }, { "8", 0x09 },
  { "9", 0x0a }, { "0", 0x0b }, { "minus", 0x0c }, { "equal", 0x0d },
  { "backspace", 0x0e }, { "tab", 0x0f },
  { "q", 0x10 }, { "w", 0x11 }, { "e", 0x12 }, { "r", 0x13 }, { "t", 0x14 },
  { "y", 0x15 }, { "u", 0x16 }, { "i", 0x17 }, { "o", 0x18 }, { "p", 0x19 },
  { "bracket_left", 0x1a }, { "bracket_right", 0x1b }, { "ret", 0x1c },
  { "a", 0x1e }, { "s", 0x1f }, { "d", 0x20 }, { "f", 0x21 }, { "g", 0x22 },
  { "h", 0x23 }, { "j", 0x24 }, { "k", 0x25 }, { "l", 0x26 },
  { "semicolon", 0x27 }, { "apostrophe", 0x28 }, { "grave_accent", 0x29 },
  { "backslash", 0x2b },
  { "z", 0x2c }, { "x", 0x2d }, { "c", 0x2e }, { "v", 0x2f }, { "b", 0x30 },
  { "n", 0x31 }, { "m", 0x32 }, { "comma", 0x33 }, { "dot", 0x34 },
  { "slash", 0x35 }, { "spc", 0x39 }, { "less", 0x56 },
  /* Function keys */
  { "f1", 0x3b }, { "f2", 0x3c }, { "f3", 0x3d }, { "f4", 0x3e },
  { "f5", 0x3f }, { "f6", 0x40 }, { "f7", 0x41 }, { "f8", 0x42 },
  { "f9", 0x43 }, { "f10", 0x44 }, { "f11", 0x57 }, { "f12", 0x58 },
  /* Cursor block */
  { "print", DISPLAY_XT_PRINT }, { "sysrq", 0x54 },
  { "pause", DISPLAY_XT_PAUSE }, { "insert", 0xe052 }, { "delete", 0xe053 },
  { "home", 0xe047 }, { "end", 0xe04f }, { "pgup", 0xe049 },
  { "pgdn", 0xe051 }, { "up", 0xe048 }, { "down", 0xe050 },
  { "left", 0xe04b }, { "right", 0xe04d },
  /* Keypad */
  { "kp_0", 0x52 }, { "kp_1", 0x4f }, { "kp_2", 0x50 }, { "kp_3", 0x51 },
  { "kp_4", 0x4b }, { "kp_5", 0x4c }, { "kp_6", 0x4d }, { "kp_7", 0x47 },
  { "kp_8", 0x48 }, { "kp_9", 0x49 }, { "kp_enter", 0xe01c },
  { "kp_add", 0x4e }, { "kp_subtract", 0x4a }, { "kp_multiply", 0x37 },
  { "asterisk", 0x37 }, { "kp_divide", 0xe035 }, { "kp_decimal", 0x53 },
  { "kp_equals", 0x59 }, { "kp_comma", 0x7e },
};

/* Which keys are down: set 1 codes, 0x80 + n for 0xE0-prefixed ones. */
#define KEY_SLOTS 256

struct display_input {
  GMutex lock;
  display_input_backend backend;
  uint32_t down[KEY_SLOTS / 32];
  unsigned buttons;
  bool have_abs;
  int abs_x, abs_y;
  /* The absolute device took the last absolute event, at this position
   * (0..DISPLAY_ABS_MAX). */
  bool tablet;
  unsigned tablet_x, tablet_y;
};

display_input *
display_input_new (const display_input_backend *backend)
{
  display_input *in = g_new0 (display_input, 1);
  g_mutex_init (&in->lock);
  if (backend)
    in->backend = *backend;
  return in;
}

void
display_input_free (display_input *in)
{
  if (!in)
    return;
  g_mutex_clear (&in->lock);
  g_free (in);
}

unsigned
display_input_keysym_to_xt (uint32_t keysym)
{
  if (keysym >= 0x20 && keysym < 0x7f)
    return ascii_to_xt[keysym - 0x20];
  for (size_t i = 0; i < G_N_ELEMENTS (keysym_table); i++)
    if (keysym_table[i].keysym == keysym)
      return keysym_table[i].xt;
  return 0;
}

unsigned
display_input_qcode_to_xt (const char *qcode)
{
  if (!qcode)
    return 0;
  for (size_t i = 0; i < G_N_ELEMENTS (qcode_table); i++)
    if (strcmp (qcode_table[i].name, qcode) == 0)
      return qcode_table[i].xt;
  return 0;
}

size_t
display_input_xt_to_set2 (unsigned xt, bool down, uint8_t out[8])
{
  size_t n = 0;
  if (xt == DISPLAY_XT_PAUSE)
    {
      /* No break code: the make sequence is E1 14 77 E1 F0 14 F0 77. */
      if (!down)
        return 0;
      static const uint8_t pause[8] = { 0xe1, 0x14, 0x77, 0xe1,
                                        0xf0, 0x14, 0xf0, 0x77 };
      memcpy (out, pause, sizeof pause);
      return sizeof pause;
    }
  if (xt == DISPLAY_XT_PRINT)
    {
      static const uint8_t make[4] = { 0xe0, 0x12, 0xe0, 0x7c };
      static const uint8_t brk[6] = { 0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12 };
      memcpy (out, down ? make : brk, down ? sizeof make : sizeof brk);
      return down ? sizeof make : sizeof brk;
    }
  bool ext = (xt & 0xff00) == 0xe000;
  if ((!ext && xt > 0x7f) || (xt & 0x7f) != (xt & 0xff))
    return 0;
  uint8_t code = set1_to_set2[xt & 0x7f];
  if (!code)
    return 0;
  if (ext)
    out[n++] = 0xe0;
  if (!down)
    out[n++] = 0xf0;
  out[n++] = code;
  return n;
}

static unsigned
key_slot (unsigned xt)
{
  return (xt & 0x7f) | ((xt & 0xff00) == 0xe000 ? 0x80 : 0);
}

static void
send_key_locked (display_input *in, unsigned xt, bool down)
{
  uint8_t bytes[8];
  size_t n = display_input_xt_to_set2 (xt, down, bytes);
  if (n == 0)
    return;
  if (xt != DISPLAY_XT_PAUSE)
    {
      unsigned slot = key_slot (xt);
      if (down)
        in->down[slot / 32] |= 1u << (slot % 32);
      else
        in->down[slot / 32] &= ~(1u << (slot % 32));
    }
  if (in->backend.keyboard)
    in->backend.keyboard (in->backend.opaque, bytes, n);
}

bool
display_input_key (display_input *in, unsigned xt, bool down)
{
  uint8_t scratch[8];
  if (display_input_xt_to_set2 (xt, true, scratch) == 0)
    return false;
  g_mutex_lock (&in->lock);
  send_key_locked (in, xt, down);
  g_mutex_unlock (&in->lock);
  return true;
}

bool
display_input_keysym (display_input *in, uint32_t keysym, bool down)
{
  unsigned xt = display_input_keysym_to_xt (keysym);
  return xt && display_input_key (in, xt, down);
}

void
display_input_release_all (display_input *in)
{
  g_mutex_lock (&in->lock);
  for (unsigned slot = 0; slot < KEY_SLOTS; slot++)
    if (in->down[slot / 32] & (1u << (slot % 32)))
      send_key_locked (in, slot >= 0x80 ? 0xe000 | (slot & 0x7f) : slot,
                       false);
  if (in->buttons)
    {
      bool done = in->tablet && in->backend.absolute
                  && in->backend.absolute (in->backend.opaque, in->tablet_x,
                                           in->tablet_y, 0, 0);
      if (!done && in->backend.mouse)
        in->backend.mouse (in->backend.opaque, 0, 0, 0, 0);
    }
  in->buttons = 0;
  g_mutex_unlock (&in->lock);
}

/* One PS/2 packet moves at most -256..255; split larger motion. */
#define PS2_STEP 127

static void
pointer_rel_locked (display_input *in, int dx, int dy, int dz,
                    unsigned buttons)
{
  in->buttons = buttons & 0x1f;
  if (!in->backend.mouse)
    return;
  do
    {
      int sx = CLAMP (dx, -PS2_STEP, PS2_STEP);
      int sy = CLAMP (dy, -PS2_STEP, PS2_STEP);
      in->backend.mouse (in->backend.opaque, sx, -sy, dz, in->buttons);
      dx -= sx;
      dy -= sy;
      dz = 0;
    }
  while (dx != 0 || dy != 0);
}

void
display_input_pointer_rel (display_input *in, int dx, int dy, int dz,
                           unsigned buttons)
{
  g_mutex_lock (&in->lock);
  if (dx == 0 && dy == 0 && in->tablet && in->backend.absolute
      && in->backend.absolute (in->backend.opaque, in->tablet_x,
                               in->tablet_y, dz, buttons & 0x1f))
    in->buttons = buttons & 0x1f;
  else
    pointer_rel_locked (in, dx, dy, dz, buttons);
  g_mutex_unlock (&in->lock);
}

/* 0..size-1 → 0..DISPLAY_ABS_MAX, rounded to nearest. */
static unsigned
scale_abs (int v, int size)
{
  if (size <= 1)
    return 0;
  return (unsigned) (((uint64_t) v * DISPLAY_ABS_MAX + (uint64_t) (size - 1) / 2)
                     / (uint64_t) (size - 1));
}

void
display_input_pointer_abs (display_input *in, int x, int y, int width,
                           int height, unsigned buttons)
{
  x = CLAMP (x, 0, MAX (width, 1) - 1);
  y = CLAMP (y, 0, MAX (height, 1) - 1);
  g_mutex_lock (&in->lock);
  if (in->backend.absolute)
    {
      unsigned ax = scale_abs (x, width), ay = scale_abs (y, height);
      if (in->backend.absolute (in->backend.opaque, ax, ay, 0,
                                buttons & 0x1f))
        {
          in->tablet = true;
          in->tablet_x = ax;
          in->tablet_y = ay;
          in->buttons = buttons & 0x1f;
          in->have_abs = true;
          in->abs_x = x;
          in->abs_y = y;
          g_mutex_unlock (&in->lock);
          return;
        }
    }
  in->tablet = false;
  int dx = in->have_abs ? x - in->abs_x : 0;
  int dy = in->have_abs ? y - in->abs_y : 0;
  in->have_abs = true;
  in->abs_x = x;
  in->abs_y = y;
  if (dx || dy || (buttons & 0x1f) != in->buttons)
    pointer_rel_locked (in, dx, dy, 0, buttons);
  g_mutex_unlock (&in->lock);
}

void
display_input_pointer_reset (display_input *in)
{
  g_mutex_lock (&in->lock);
  in->have_abs = false;
  g_mutex_unlock (&in->lock);
}
