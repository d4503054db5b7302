/* The serial console of a machine (its COM1) in a terminal: the `virsh
 * console` of Vessel. */
#pragma once

#include <vte/vte.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_CONSOLE (vessel_console_get_type ())
G_DECLARE_FINAL_TYPE (VesselConsole, vessel_console, VESSEL, CONSOLE,
                      VteTerminal)

VesselConsole *vessel_console_new (void);
/* Shows what the guest wrote. */
void vessel_console_feed (VesselConsole *self, GBytes *bytes);
/* Clears the screen and the scrollback (another machine). */
void vessel_console_reset (VesselConsole *self);

/* Signal "input" (GBytes): what the user typed, for the guest. */

G_END_DECLS
