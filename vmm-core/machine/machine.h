/* A PC machine (i440FX + PIIX3/PIIX4 PM) built from a config: guest memory,
 * the KVM VM and its vCPUs, the device models, firmware or a directly booted
 * kernel. The engine API every front end (vessel-run, the GTK app) uses. */
#pragma once

#include "vmm-core/boot/direct-boot.h"
#include "vmm-core/devices/chardev.h"
#include "vmm-core/net/net-config.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_MACHINE_MIN_MEMORY (UINT64_C (16) << 20)

typedef enum {
  VMM_MACHINE_STOPPED,  /* built, not started */
  VMM_MACHINE_RUNNING,
  VMM_MACHINE_PAUSED,
  VMM_MACHINE_POWERED_OFF,
  VMM_MACHINE_ERROR,
} vmm_machine_state;

typedef enum {
  VMM_DISK_IDE,
  VMM_DISK_VIRTIO,
} vmm_disk_interface;

typedef struct vmm_disk_config {
  const char *path;
  const char *format; /* "raw", "qcow2" or NULL to detect */
  vmm_disk_interface interface;
  bool readonly;
  bool direct; /* cache=none: O_DIRECT, bypassing the host page cache */
} vmm_disk_config;

typedef enum {
  VMM_DISPLAY_STD,  /* Bochs/std VGA (PCI 00:02.0) */
  VMM_DISPLAY_NONE, /* headless: firmware talks to COM1 if asked */
} vmm_display_kind;

typedef enum {
  VMM_BOOT_DEFAULT, /* disks, then the CD-ROM */
  VMM_BOOT_CDROM,
  VMM_BOOT_DISK,
} vmm_boot_device;

#define VMM_MACHINE_MAX_DISKS 16
#define VMM_MACHINE_MAX_NICS 8

typedef struct vmm_machine_config {
  uint64_t memory; /* bytes */
  unsigned cpus;
  const char *cpu_model; /* "host[,-feature...]"; NULL: host */
  const char *firmware; /* SeaBIOS or OVMF (code) image; NULL: the
                         * installed SeaBIOS. Mapped read-only below 4 GiB. */
  /* The writable UEFI variable store (a copy of OVMF_VARS.fd): a CFI flash
   * directly below the firmware image (or below 4 GiB for a direct boot),
   * written back to this file. NULL: none, the image is all ROM. */
  const char *firmware_vars;
  /* Direct boot instead of firmware when set. */
  const char *kernel;
  const char *initrd;
  const char *cmdline;
  vmm_kernel_protocol kernel_protocol;
  vmm_chardev serial;   /* COM1 output; write NULL for none */
  vmm_chardev debugcon; /* port 0x402 output */
  /* Ask SeaBIOS to mirror its text console on COM1 (fw_cfg
   * etc/sercon-port). */
  bool firmware_serial_console;
  bool boot_menu;
  unsigned boot_menu_wait_ms; /* how long SeaBIOS offers it; 0: its default */
  /* Disks: IDE ones fill primary master, primary slave, secondary slave
   * (the secondary master is the CD-ROM drive, always present); virtio
   * ones take PCI slots from 00:04.0 up. */
  const vmm_disk_config *disks;
  size_t n_disks;
  const char *cdrom; /* an ISO in the drive, or NULL for an empty drive */
  vmm_boot_device boot;
  vmm_display_kind display;
  /* Leave out the virtio tablet (PCI 00:14.0), which the std display has by
   * default; viewers' pointers then reach the guest as relative PS/2
   * motion only. */
  bool disable_tablet;
  /* The VGA BIOS; NULL: vgabios-stdvga.bin next to the firmware, or the
   * installed one. Not used for a direct boot. */
  const char *vga_rom;
  /* NICs, each on a user-mode (libslirp) network of its own: the first at
   * PCI 00:03.0, the others from 00:15.0 up (after the tablet's 00:14.0).
   * MAC addresses default to 52:54:00:12:34:56, :57, … by position. */
  const vmm_nic_config *nics;
  size_t n_nics;
} vmm_machine_config;

typedef struct vmm_machine vmm_machine;

/* Called on the engine's I/O thread. */
typedef void (*vmm_machine_state_fn) (vmm_machine *m, vmm_machine_state state,
                                      void *opaque);
/* The guest read from COM1's receive FIFO: more input may be pushed. */
typedef void (*vmm_machine_serial_ready_fn) (void *opaque);

/* A default search for Debian's SeaBIOS image, or NULL. */
char *vmm_machine_find_firmware (void);
/* Where OVMF's split images are installed: OVMF_CODE_4M.fd and the
 * OVMF_VARS_4M.fd template side by side, in $VESSEL_OVMF_DIR when set,
 * else Debian's /usr/share/OVMF or the Flatpak's /app/share/OVMF. Both
 * paths (newly allocated) or FALSE. */
gboolean vmm_machine_find_ovmf (char **code, char **vars_template);

vmm_machine *vmm_machine_new (const vmm_machine_config *cfg, GError **error);
void vmm_machine_free (vmm_machine *m);

void vmm_machine_set_state_callback (vmm_machine *m, vmm_machine_state_fn fn,
                                     void *opaque);
void vmm_machine_set_serial_ready_callback (vmm_machine *m,
                                            vmm_machine_serial_ready_fn fn,
                                            void *opaque);

gboolean vmm_machine_start (vmm_machine *m, GError **error);
void vmm_machine_pause (vmm_machine *m);
void vmm_machine_resume (vmm_machine *m);
/* Asynchronous: done on the I/O thread. */
void vmm_machine_reset (vmm_machine *m);
/* Presses the ACPI power button: the guest decides. */
void vmm_machine_powerdown (vmm_machine *m);
/* Pulls the plug. */
void vmm_machine_poweroff (vmm_machine *m);

vmm_machine_state vmm_machine_get_state (vmm_machine *m);
/* The reason for VMM_MACHINE_ERROR (a copy). */
char *vmm_machine_get_error (vmm_machine *m);
unsigned vmm_machine_get_reset_count (vmm_machine *m);
const char *vmm_machine_state_name (vmm_machine_state state);

/* One line per vCPU with where it is (for debugging a stuck guest): pauses
 * the machine for a moment. */
char *vmm_machine_describe_cpus (vmm_machine *m);

/* The CD-ROM drive (IDE secondary master). Eject is refused while the
 * guest has locked the tray, unless @force. Change ejects what is in the
 * drive (same rule) and inserts the ISO at @path; the guest sees a media
 * change. */
gboolean vmm_machine_cdrom_eject (vmm_machine *m, gboolean force,
                                  GError **error);
gboolean vmm_machine_cdrom_change (vmm_machine *m, const char *path,
                                   gboolean force, GError **error);
/* The ISO in the drive (a copy), or NULL when it is empty. */
char *vmm_machine_cdrom_path (vmm_machine *m);
bool vmm_machine_cdrom_locked (vmm_machine *m);

/* Things that happen to a machine beyond its state (for the control
 * protocol's events). Called on the I/O thread. */
typedef enum {
  VMM_MACHINE_EVENT_RESET,      /* a reset completed */
  VMM_MACHINE_EVENT_POWERDOWN,  /* the power button was pressed */
  VMM_MACHINE_EVENT_TRAY_MOVED, /* the CD-ROM tray opened or closed */
} vmm_machine_event;
typedef void (*vmm_machine_event_fn) (vmm_machine *m, vmm_machine_event event,
                                      void *opaque);
void vmm_machine_set_event_callback (vmm_machine *m, vmm_machine_event_fn fn,
                                     void *opaque);
/* More parties may watch one machine (the front end, the control socket):
 * each listener gets every state change and event, either function may be
 * NULL. They are called on whichever thread made the change, with the
 * machine's listener lock held: record or queue work only, and never add or
 * remove a listener from inside one. Once remove returns, the listener's
 * functions are not running and will not run again. */
unsigned vmm_machine_add_listener (vmm_machine *m,
                                   vmm_machine_state_fn state_fn,
                                   vmm_machine_event_fn event_fn,
                                   void *opaque);
void vmm_machine_remove_listener (vmm_machine *m, unsigned id);
/* The engine's I/O thread context (the control socket runs there). */
GMainContext *vmm_machine_io_context (vmm_machine *m);

/* The guest's screen (NULL without a display device): a surface with
 * damage and listeners, refreshed on the I/O thread. */
struct display_surface;
struct display_surface *vmm_machine_display (vmm_machine *m);
/* The input router viewers send keys and pointer events through (always
 * present; display/input.h). */
struct display_input;
struct display_input *vmm_machine_input (vmm_machine *m);
/* Writes the current screen as a PNG file. */
gboolean vmm_machine_screendump (vmm_machine *m, const char *path,
                                 GError **error);

/* Write requests (writes, discards) the guest sent to its hard disks since
 * the machine was built: an installer has written when this is non-zero.
 * Any thread. */
uint64_t vmm_machine_disk_writes (vmm_machine *m);

/* Host → COM1; returns the bytes accepted. */
size_t vmm_machine_serial_receive (vmm_machine *m, const uint8_t *buf,
                                   size_t len);

G_END_DECLS
