/* The new-machine assistant: a window of pages.
 *
 *   source     an ISO or a disk image (file chooser, drag and drop, the
 *              ISOs in the Downloads folder), or a blank machine
 *   resources  the OS libosinfo recognised (or that it did not), name,
 *              memory, processors, disk size, firmware; bounded by what
 *              the host has
 *   disk       a disk image: its format and size; keep it untouched (an
 *              overlay) or copy it
 *   review     then "Create": the machine is made (vessel-creator.h),
 *              started, and "created" is emitted
 *
 * Actions ("assistant."): next, back, choose-file, blank. */
#pragma once

#include "app/vessel-library.h"

#include <adwaita.h>

G_BEGIN_DECLS

#define VESSEL_TYPE_ASSISTANT (vessel_assistant_get_type ())
G_DECLARE_FINAL_TYPE (VesselAssistant, vessel_assistant, VESSEL, ASSISTANT,
                      AdwWindow)

VesselAssistant *vessel_assistant_new (GtkWindow *parent,
                                       VesselLibrary *library);

/* As if the user picked @path (NULL: a blank machine): looks at it on a
 * worker thread, then shows the resources page, or a message on the source
 * page. */
void vessel_assistant_choose (VesselAssistant *self, const char *path);

/* For tests and the app: the visible page's name, whether the assistant
 * is working (probing, creating), the message shown on the visible page
 * (an error or a warning) or NULL, the OS it recognised or NULL. */
const char *vessel_assistant_get_page (VesselAssistant *self);
gboolean vessel_assistant_is_busy (VesselAssistant *self);
const char *vessel_assistant_get_message (VesselAssistant *self);
const char *vessel_assistant_get_os_name (VesselAssistant *self);
/* Whether the next step may be taken now. */
gboolean vessel_assistant_can_go_next (VesselAssistant *self);
void vessel_assistant_set_machine_title (VesselAssistant *self,
                                         const char *title);
/* Memory and disk in bytes (rounded to MiB and GiB); 0 leaves a value. */
void vessel_assistant_set_resources (VesselAssistant *self, guint64 memory,
                                     guint cpus, guint64 disk);
void vessel_assistant_set_keep_original (VesselAssistant *self,
                                         gboolean keep);
/* Whether UEFI is offered (OVMF is installed), and whether it is chosen
 * (BIOS is the default); choosing it where it is not offered does
 * nothing. */
gboolean vessel_assistant_offers_uefi (VesselAssistant *self);
gboolean vessel_assistant_get_uefi (VesselAssistant *self);
void vessel_assistant_set_uefi (VesselAssistant *self, gboolean uefi);

G_END_DECLS
