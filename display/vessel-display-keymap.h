/* Host key codes to PC scan code set 1 ("xt") for the GTK display view.
 *
 * GDK reports a key's hardware keycode; on Linux (X11 through the evdev
 * driver, Wayland) that is the kernel's evdev code (linux/input-event-codes.h)
 * plus 8. The table maps evdev codes to the set 1 codes the input router
 * (display/input.h) takes: the main block 1..83 is the same number in both,
 * the rest (arrows, right-hand modifiers, the keypad's Enter and /, media
 * keys, ...) are 0xE0-prefixed or scattered. No GTK here: a pure table. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The set 1 code of evdev key @evdev (0xE0nn for extended keys,
 * DISPLAY_XT_PAUSE for Pause), or 0 when the key has none. */
unsigned vessel_display_keycode_to_xt (guint evdev);

/* The evdev code of a GDK/X11 hardware keycode (keycode - 8; 0 below 8). */
static inline guint
vessel_display_hardware_keycode_to_evdev (guint keycode)
{
  return keycode >= 8 ? keycode - 8 : 0;
}

G_END_DECLS
