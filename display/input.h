/* The input router: the one API every display consumer (VNC, SPICE, the GTK
 * view) feeds the guest's keyboard and pointer through. The machine owns one
 * and wires it to its devices: the i8042's PS/2 keyboard and mouse, and a
 * virtio tablet that takes absolute positions once the guest drives it.
 *
 * Keys are named by their PC scan code set 1 ("xt") make code: 0x01-0x7f,
 * or 0xE0nn for the 0xE0-prefixed keys (right Ctrl 0xE01D, Up 0xE048, ...),
 * or by X11 keysym through a US-layout table. The router converts to scan
 * code set 2, which is what a PS/2 keyboard sends; the i8042 translates back
 * to set 1 when the guest enables translation.
 *
 * Every function may be called from any thread; calls are serialized by the
 * router's lock and the backend's functions run under it. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Scan code set 1 codes of keys that need a name. */
#define DISPLAY_XT_ESC 0x01
#define DISPLAY_XT_ENTER 0x1c
#define DISPLAY_XT_LSHIFT 0x2a
#define DISPLAY_XT_PRINT 0xe037 /* sent as E0 2A E0 37 */
#define DISPLAY_XT_PAUSE 0xe11d /* Pause: E1 1D 45 E1 9D C5, make only */
#define DISPLAY_XT_MAX 0xe1ff

/* Pointer buttons (the PS/2 mouse's bit order). */
enum {
  DISPLAY_BUTTON_LEFT = 1u << 0,
  DISPLAY_BUTTON_RIGHT = 1u << 1,
  DISPLAY_BUTTON_MIDDLE = 1u << 2,
  DISPLAY_BUTTON_SIDE = 1u << 3,
  DISPLAY_BUTTON_EXTRA = 1u << 4,
};

/* The range of absolute pointer coordinates (both axes). */
#define DISPLAY_ABS_MAX 32767

/* Where input goes; the machine provides it. Any function may be NULL.
 * @keyboard gets scan code set 2 bytes (make, or 0xF0-prefixed break).
 * @mouse gets PS/2 relative motion: dy positive is up, dz positive is
 * towards the user (wheel down).
 * @absolute gets an absolute position (a virtio tablet): @x and @y in
 * 0..DISPLAY_ABS_MAX (0 the left or top pixel, DISPLAY_ABS_MAX the right or
 * bottom one), wheel steps @dz as for @mouse, and the buttons held. It
 * returns false when no absolute device can take it now (the guest has no
 * driver for it yet); the router then sends relative motion to @mouse. */
typedef struct display_input_backend {
  void *opaque;
  void (*keyboard) (void *opaque, const uint8_t *set2, size_t n);
  void (*mouse) (void *opaque, int dx, int dy, int dz, unsigned buttons);
  bool (*absolute) (void *opaque, unsigned x, unsigned y, int dz,
                    unsigned buttons);
} display_input_backend;

typedef struct display_input display_input;

display_input *display_input_new (const display_input_backend *backend);
void display_input_free (display_input *in);

/* A key by its set 1 code. Unknown codes are ignored (returns false). A
 * key already down may be pressed again (typematic repeat). */
bool display_input_key (display_input *in, unsigned xt, bool down);
/* A key by X11 keysym (US layout; shifted symbols map to their key, the
 * client sends Shift itself). Returns false for keysyms not in the table. */
bool display_input_keysym (display_input *in, uint32_t keysym, bool down);
/* Releases every key the router believes is down (a client went away). */
void display_input_release_all (display_input *in);
/* The table on its own: the set 1 code for @keysym, 0 when unknown. */
unsigned display_input_keysym_to_xt (uint32_t keysym);
/* The set 2 bytes for a set 1 code: writes at most 8 bytes to @out and
 * returns how many (0 for an unknown code). */
size_t display_input_xt_to_set2 (unsigned xt, bool down, uint8_t out[8]);
/* A key by QEMU's QKeyCode name ("a", "ctrl", "alt_r", "kp_enter",
 * "delete", "f12", ... as QMP's send-key takes them): its set 1 code, or 0
 * for a name not in the table. */
unsigned display_input_qcode_to_xt (const char *qcode);

/* Relative motion in screen orientation (dy positive is down), wheel
 * steps (dz positive is down, towards the user), and the buttons now held.
 * A wheel turn or button change without motion (dx = dy = 0) while the
 * absolute device has the pointer goes to it, at the last position. */
void display_input_pointer_rel (display_input *in, int dx, int dy, int dz,
                                unsigned buttons);
/* An absolute position on a screen of @width x @height. It goes to the
 * backend's absolute device scaled to 0..DISPLAY_ABS_MAX: x * MAX / (width
 * - 1), rounded to nearest (likewise y), so the first and last pixels map to
 * the ends of the range. Without an absolute device (or before the guest
 * drives it) it becomes relative motion from the last position (the guest's
 * pointer acceleration may make it drift). */
void display_input_pointer_abs (display_input *in, int x, int y, int width,
                                int height, unsigned buttons);
/* Forget the last absolute position (a new client). */
void display_input_pointer_reset (display_input *in);

G_END_DECLS
