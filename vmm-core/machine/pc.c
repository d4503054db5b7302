/* The PC board, assembled in one readable place: memory, KVM, buses, then
 * each device in a fixed order, then firmware or a kernel. The machine owns
 * everything it creates and nothing here is file-static, so several
 * machines can live in one process. */
#include "vmm-core/machine/machine.h"

#include "vmm-core/boot/acpi.h"
#include "vmm-core/boot/smbios.h"
#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/devices/debugcon.h"
#include "vmm-core/devices/e1000.h"
#include "vmm-core/devices/fw-cfg.h"
#include "vmm-core/devices/i8042.h"
#include "vmm-core/devices/ide.h"
#include "vmm-core/devices/pflash.h"
#include "vmm-core/devices/rtc.h"
#include "display/input.h"
#include "display/screendump.h"
#include "display/surface.h"
#include "vmm-core/devices/uart16550.h"
#include "vmm-core/devices/vga.h"
#include "vmm-core/devices/virtio-blk.h"
#include "vmm-core/devices/virtio-input.h"
#include "vmm-core/devices/virtio-net.h"
#include "vmm-core/kvm/iothread.h"
#include "vmm-core/kvm/memory.h"
#include "vmm-core/kvm/vm.h"
#include "vmm-core/machine/pc-board.h"
#include "vmm-core/net/slirp.h"

#include <gio/gio.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/mman.h>

/* Low memory (PC/AT layout). */
#define PC_VGA_HOLE_START 0xa0000
#define PC_SHADOW_START 0xc0000
#define PC_SHADOW_END 0x100000
#define PC_ISA_BIOS_SIZE 0x20000 /* the last 128 KiB of the BIOS image */
#define PC_BIOS_MAX (16u << 20)
#define PC_EBDA_START 0x9fc00
/* Direct boot: the RSDP and tables in the F/E segments, reserved in e820. */
#define PC_DIRECT_RSDP_ADDR 0xe0000
#define PC_DIRECT_ACPI_ADDR 0xe0040
/* Where firmware puts the PIIX4 PM block: SeaBIOS at 0x600; OVMF programs
 * 0xB000 on i440FX (OvmfPkg/Include/OvmfPlatforms.h PIIX4_PMBA_VALUE, and
 * its ResetSystemLib writes S5 there without looking), so the FADT must
 * say the same for UEFI firmware. */
#define PC_PM_BASE 0x600
#define PC_PM_BASE_OVMF 0xb000
/* A UEFI firmware image starts with a firmware volume: the header's
 * signature "_FVH" at byte 40 (PI spec vol. 3, EFI_FIRMWARE_VOLUME_HEADER). */
#define PC_FV_SIGNATURE_OFFSET 0x28
/* Firmware-less boot: where the board places BARs (SeaBIOS's choices). */
#define PC_PCI_IO_START 0xc000
#define PC_PCI_IO_END 0x10000
#define PC_PCI_MEM_END UINT64_C (0xfec00000)
/* The first PCI slot for virtio disks (00:02 is for the display, 00:03 for
 * the first NIC). */
#define PC_VIRTIO_DISK_SLOT 4
#define PC_VGA_SLOT 2
/* The virtio tablet: the first slot after the virtio disks' (00:14.0). */
#define PC_TABLET_SLOT (PC_VIRTIO_DISK_SLOT + VMM_MACHINE_MAX_DISKS)
G_STATIC_ASSERT (PC_TABLET_SLOT < 32);
/* NICs: the first at 00:03.0 (where QEMU puts it too), the others from
 * 00:15.0 up, after the tablet. */
#define PC_FIRST_NIC_SLOT 3
#define PC_MORE_NICS_SLOT (PC_TABLET_SLOT + 1)
G_STATIC_ASSERT (PC_MORE_NICS_SLOT + VMM_MACHINE_MAX_NICS - 1 < 32);
#define PC_IPXE_DIR "/usr/lib/ipxe/qemu"

/* Screen refresh: KVM's dirty log of the framebuffer, then the renderer
 * redraws only rows that changed. */
#define PC_DISPLAY_REFRESH_NS (G_GUINT64_CONSTANT (1000000000) / 30)

/* PAM segments (i440FX datasheet 3.2.18): 0xF0000-0xFFFFF is one 64 KiB
 * segment (PAM0 high nibble), 0xC0000-0xEFFFF twelve of 16 KiB. */
#define PC_PAM_SEGMENTS 13

struct vmm_machine {
  vmm_machine_config cfg;
  char *firmware_path;
  char *kernel, *initrd, *cmdline, *cdrom_path;
  vmm_disk_config *disks; /* deep copy of the config's */
  GPtrArray *bootorder;   /* char *: fw_cfg "bootorder" lines */

  vmm_guest_memory mem;
  uint8_t *bios; /* page-aligned copy of the firmware image */
  size_t bios_size;
  bool uefi;        /* the firmware is OVMF (a firmware volume) */
  uint16_t pm_base; /* PC_PM_BASE or PC_PM_BASE_OVMF */
  pflash *vars;     /* the UEFI variable store, or NULL */
  uint64_t vars_gpa;
  vmm_vm *vm;
  vmm_iothread *io;
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *pci;
  pc_board board; /* the chipset and legacy devices */
  uart16550 *com1;
  debugcon *dbg;
  rtc *rtc;
  fw_cfg *fw_cfg;
  vmm_acpi_tables *acpi;
  vmm_smbios_tables *smbios;
  vmm_msi_host msi_host;
  vmm_ioeventfd_host ioeventfd_host;
  ide_controller *ide;
  atapi_cdrom *cdrom;
  vga *vga;
  display_surface *display;
  display_input *input; /* keyboard and pointer from viewers */
  virtio_input *tablet; /* absolute pointer; NULL without a display */
  vmm_timer *refresh;
  uint64_t frame;
  uint64_t lfb_gpa; /* VMM_PCI_UNMAPPED when the framebuffer has no slot */
  uint64_t vga_rom_gpa; /* the same for the VGA option ROM */
  unsigned long *dirty_bitmap;
  vmm_nic_config *nics; /* deep copy of the config's */
  vmm_device *nic_dev[VMM_MACHINE_MAX_NICS];
  unsigned n_nic_dev;
  virtio_blk *vblk[VMM_MACHINE_MAX_DISKS];
  VmmBlock *vblk_image[VMM_MACHINE_MAX_DISKS];
  unsigned n_vblk;
  VmmBlock *disk_image[VMM_MACHINE_MAX_DISKS]; /* every disk, not owned */
  unsigned n_disk_image;
  uint8_t pam_mode[PC_PAM_SEGMENTS];

  GMutex state_lock;
  vmm_machine_state state;
  char *error;
  unsigned resets;
  bool event_pending; /* a reset/poweroff/error is queued for the I/O thread */
  vmm_machine_state_fn state_fn;
  void *state_opaque;
  vmm_machine_serial_ready_fn serial_ready_fn;
  void *serial_ready_opaque;
  vmm_machine_event_fn event_fn;
  void *event_opaque;
  /* vmm_machine_add_listener: called with listener_lock held. */
  GMutex listener_lock;
  GArray *listeners; /* pc_listener */
  unsigned next_listener_id;
};

typedef struct pc_listener {
  unsigned id;
  vmm_machine_state_fn state_fn;
  vmm_machine_event_fn event_fn;
  void *opaque;
} pc_listener;

const char *
vmm_machine_state_name (vmm_machine_state state)
{
  switch (state)
    {
    case VMM_MACHINE_STOPPED:
      return "stopped";
    case VMM_MACHINE_RUNNING:
      return "running";
    case VMM_MACHINE_PAUSED:
      return "paused";
    case VMM_MACHINE_POWERED_OFF:
      return "powered off";
    case VMM_MACHINE_ERROR:
      return "error";
    }
  return "unknown";
}

char *
vmm_machine_find_firmware (void)
{
  const char *env = g_getenv ("VESSEL_FIRMWARE");
  if (env && *env)
    return g_strdup (env);
  static const char *const candidates[] = {
    "/usr/share/seabios/bios-256k.bin",
    "/usr/share/qemu/bios-256k.bin",
    "/usr/share/seabios/bios.bin",
    "/app/share/seabios/bios.bin", /* the Flatpak */
  };
  for (size_t i = 0; i < G_N_ELEMENTS (candidates); i++)
    if (g_file_test (candidates[i], G_FILE_TEST_IS_REGULAR))
      return g_strdup (candidates[i]);
  return NULL;
}

gboolean
vmm_machine_find_ovmf (char **code, char **vars_template)
{
  const char *env = g_getenv ("VESSEL_OVMF_DIR");
  const char *const dirs[] = {
    env && *env ? env : "/usr/share/OVMF",
    env && *env ? NULL : "/app/share/OVMF", /* the Flatpak */
  };
  for (size_t i = 0; i < G_N_ELEMENTS (dirs) && dirs[i]; i++)
    {
      g_autofree char *c = g_build_filename (dirs[i], "OVMF_CODE_4M.fd", NULL);
      g_autofree char *v = g_build_filename (dirs[i], "OVMF_VARS_4M.fd", NULL);
      if (g_file_test (c, G_FILE_TEST_IS_REGULAR)
          && g_file_test (v, G_FILE_TEST_IS_REGULAR))
        {
          *code = g_steal_pointer (&c);
          *vars_template = g_steal_pointer (&v);
          return TRUE;
        }
    }
  *code = *vars_template = NULL;
  return FALSE;
}

/* --- memory: RAM, BIOS and the PAM-controlled shadow area ------------- */

static uint64_t
pam_segment_start (unsigned seg)
{
  return seg == 0 ? 0xf0000 : PC_SHADOW_START + (uint64_t) (seg - 1) * 0x4000;
}

static uint64_t
pam_segment_size (unsigned seg)
{
  return seg == 0 ? 0x10000 : 0x4000;
}

/* The ROM that answers reads in the segment while shadowing is off: the
 * BIOS image's last 128 KiB appear at 0xE0000-0xFFFFF. */
static void *
pam_segment_rom (vmm_machine *m, unsigned seg)
{
  uint64_t start = pam_segment_start (seg);
  uint64_t isa_base = PC_SHADOW_END - PC_ISA_BIOS_SIZE;
  if (!m->bios || start < isa_base || m->bios_size < PC_ISA_BIOS_SIZE)
    return NULL;
  return m->bios + m->bios_size - PC_ISA_BIOS_SIZE + (start - isa_base);
}

/* Modes: bit 0 reads from RAM, bit 1 writes to RAM. A read-only KVM slot
 * sends writes to the MMIO path, where mode 2 (writes to RAM, reads from
 * ROM) is completed by hand. */
static void
pam_apply (vmm_machine *m, unsigned seg, unsigned mode)
{
  uint64_t start = pam_segment_start (seg), size = pam_segment_size (seg);
  g_autoptr (GError) error = NULL;
  gboolean ok;
  m->pam_mode[seg] = mode & 3;
  if (mode & 1)
    ok = vmm_vm_map (m->vm, start, size, m->mem.host + start, !(mode & 2),
                     &error);
  else if (pam_segment_rom (m, seg))
    ok = vmm_vm_map (m->vm, start, size, pam_segment_rom (m, seg), true,
                     &error);
  else
    {
      vmm_vm_unmap (m->vm, start);
      ok = TRUE;
    }
  if (!ok)
    g_warning ("shadow segment 0x%" G_GINT64_MODIFIER "x: %s", start,
               error->message);
}

static void
pc_pam_changed (void *opaque, unsigned segment, unsigned mode)
{
  vmm_machine *m = opaque;
  if (segment < PC_PAM_SEGMENTS && m->pam_mode[segment] != (mode & 3))
    pam_apply (m, segment, mode);
}

static gboolean
pc_map_memory (vmm_machine *m, GError **error)
{
  vmm_guest_memory *mem = &m->mem;
  if (!vmm_vm_map (m->vm, 0, PC_VGA_HOLE_START, mem->host, false, error)
      || !vmm_vm_map (m->vm, PC_SHADOW_END, mem->below_4g - PC_SHADOW_END,
                      mem->host + PC_SHADOW_END, false, error))
    return FALSE;
  if (mem->above_4g
      && !vmm_vm_map (m->vm, VMM_4G, mem->above_4g, mem->host + mem->below_4g,
                      false, error))
    return FALSE;
  if (m->bios
      && !vmm_vm_map (m->vm, VMM_4G - m->bios_size, m->bios_size, m->bios,
                      true, error))
    return FALSE;
  if (m->vars && pflash_in_array_mode (m->vars)
      && !vmm_vm_map (m->vm, m->vars_gpa, pflash_size (m->vars),
                      pflash_array (m->vars), true, error))
    return FALSE;
  /* Firmware starts with shadowing off; a direct boot finds it on, as
   * firmware would have left it. */
  for (unsigned s = 0; s < PC_PAM_SEGMENTS; s++)
    pam_apply (m, s, m->bios ? 0 : 3);
  return TRUE;
}

static int
pam_segment_of (uint64_t addr)
{
  if (addr < PC_SHADOW_START || addr >= PC_SHADOW_END)
    return -1;
  if (addr >= 0xf0000)
    return 0;
  return 1 + (int) ((addr - PC_SHADOW_START) / 0x4000);
}

/* --- vCPU exits --------------------------------------------------------- */

static uint64_t
pc_pio_read (void *opaque, unsigned cpu, uint16_t port, unsigned size)
{
  vmm_machine *m = opaque;
  uint64_t v;
  vmm_bus_read (m->pio, port, size, cpu, &v);
  return v;
}

static void
pc_pio_write (void *opaque, unsigned cpu, uint16_t port, unsigned size,
              uint64_t value)
{
  vmm_machine *m = opaque;
  vmm_bus_write (m->pio, port, size, cpu, value);
}

static uint64_t
pc_mmio_read (void *opaque, unsigned cpu, uint64_t addr, unsigned size)
{
  vmm_machine *m = opaque;
  uint64_t v;
  vmm_bus_read (m->mmio, addr, size, cpu, &v);
  return v;
}

static void
pc_mmio_write (void *opaque, unsigned cpu, uint64_t addr, unsigned size,
               uint64_t value)
{
  vmm_machine *m = opaque;
  int seg = pam_segment_of (addr);
  if (seg >= 0)
    {
      /* A write to read-only shadow memory: mode 2 lands in RAM, other
       * modes drop it as the chipset would. */
      if (m->pam_mode[seg] == 2 && addr + size <= PC_SHADOW_END)
        memcpy (m->mem.host + addr, &value, size);
      return;
    }
  if (addr >= VMM_4G - m->bios_size && addr < VMM_4G)
    return; /* writes to the firmware image (a ROM) are ignored */
  vmm_bus_write (m->mmio, addr, size, cpu, value);
}

static void pc_post_event (vmm_machine *m, vmm_vcpu_event event,
                           const char *message);

static void
pc_vcpu_event (void *opaque, unsigned cpu, vmm_vcpu_event event,
               const char *message)
{
  pc_post_event (opaque, event, message);
}

static const vmm_vcpu_handlers pc_vcpu_handlers = {
  .pio_read = pc_pio_read,
  .pio_write = pc_pio_write,
  .mmio_read = pc_mmio_read,
  .mmio_write = pc_mmio_write,
  .event = pc_vcpu_event,
};

/* --- state changes on the I/O thread ----------------------------------- */

static void
pc_set_state (vmm_machine *m, vmm_machine_state state)
{
  g_mutex_lock (&m->state_lock);
  bool changed = m->state != state;
  m->state = state;
  g_mutex_unlock (&m->state_lock);
  if (!changed)
    return;
  /* Listeners first: the front end's callback may end the program, and
   * they should hear of it (a power-off) before they are removed. */
  g_mutex_lock (&m->listener_lock);
  for (guint i = 0; i < m->listeners->len; i++)
    {
      pc_listener *l = &g_array_index (m->listeners, pc_listener, i);
      if (l->state_fn)
        l->state_fn (m, state, l->opaque);
    }
  g_mutex_unlock (&m->listener_lock);
  if (m->state_fn)
    m->state_fn (m, state, m->state_opaque);
}

typedef struct pc_event {
  vmm_machine *m;
  vmm_vcpu_event event;
  char *message;
} pc_event;

static gboolean pc_load_boot_state (vmm_machine *m, GError **error);

static void
pc_fail (vmm_machine *m, const char *message)
{
  vmm_vm_pause (m->vm);
  g_mutex_lock (&m->state_lock);
  if (!m->error)
    m->error = g_strdup (message);
  g_mutex_unlock (&m->state_lock);
  pc_set_state (m, VMM_MACHINE_ERROR);
}

static void
pc_emit (vmm_machine *m, vmm_machine_event event)
{
  if (m->event_fn)
    m->event_fn (m, event, m->event_opaque);
  g_mutex_lock (&m->listener_lock);
  for (guint i = 0; i < m->listeners->len; i++)
    {
      pc_listener *l = &g_array_index (m->listeners, pc_listener, i);
      if (l->event_fn)
        l->event_fn (m, event, l->opaque);
    }
  g_mutex_unlock (&m->listener_lock);
}

static void
pc_do_reset (vmm_machine *m)
{
  g_autoptr (GError) error = NULL;
  vmm_vm_pause (m->vm);
  if (!vmm_vm_rebuild (m->vm, &error) || !pc_map_memory (m, &error))
    {
      g_autofree char *msg = g_strdup_printf ("reset failed: %s",
                                              error->message);
      pc_fail (m, msg);
      return;
    }
  pc_board_reset (&m->board);
  if (m->ide)
    vmm_device_reset (ide_device (m->ide));
  for (unsigned i = 0; i < m->n_vblk; i++)
    vmm_device_reset (virtio_blk_device (m->vblk[i]));
  if (m->vga)
    vmm_device_reset (vga_device (m->vga));
  if (m->tablet)
    vmm_device_reset (virtio_input_device (m->tablet));
  for (unsigned i = 0; i < m->n_nic_dev; i++)
    vmm_device_reset (m->nic_dev[i]);
  vmm_device_reset (uart16550_device (m->com1));
  vmm_device_reset (debugcon_device (m->dbg));
  vmm_device_reset (rtc_device (m->rtc));
  vmm_device_reset (fw_cfg_device (m->fw_cfg));
  if (m->vars)
    vmm_device_reset (pflash_device (m->vars));
  if (!pc_load_boot_state (m, &error))
    {
      g_autofree char *msg = g_strdup_printf ("reset failed: %s",
                                              error->message);
      pc_fail (m, msg);
      return;
    }
  g_mutex_lock (&m->state_lock);
  m->resets++;
  m->event_pending = false;
  bool paused = m->state == VMM_MACHINE_PAUSED;
  g_mutex_unlock (&m->state_lock);
  if (!paused)
    vmm_vm_resume (m->vm);
  pc_emit (m, VMM_MACHINE_EVENT_RESET);
}

static gboolean
pc_handle_event (gpointer data)
{
  pc_event *e = data;
  vmm_machine *m = e->m;
  vmm_machine_state state = vmm_machine_get_state (m);
  if (state == VMM_MACHINE_POWERED_OFF || state == VMM_MACHINE_ERROR)
    return G_SOURCE_REMOVE;
  switch (e->event)
    {
    case VMM_VCPU_EVENT_RESET:
      g_debug ("machine reset (%s)", e->message ? e->message : "request");
      pc_do_reset (m);
      break;
    case VMM_VCPU_EVENT_POWEROFF:
      vmm_vm_pause (m->vm);
      pc_set_state (m, VMM_MACHINE_POWERED_OFF);
      break;
    case VMM_VCPU_EVENT_ERROR:
      pc_fail (m, e->message ? e->message : "unknown error");
      break;
    }
  return G_SOURCE_REMOVE;
}

static void
pc_event_free (gpointer data)
{
  pc_event *e = data;
  g_free (e->message);
  g_free (e);
}

static void
pc_post_event (vmm_machine *m, vmm_vcpu_event event, const char *message)
{
  g_mutex_lock (&m->state_lock);
  /* One reset at a time: several vCPUs may hit the same triple fault. */
  bool dup = m->event_pending && event == VMM_VCPU_EVENT_RESET;
  if (event != VMM_VCPU_EVENT_ERROR)
    m->event_pending = true;
  g_mutex_unlock (&m->state_lock);
  if (dup)
    return;
  pc_event *e = g_new0 (pc_event, 1);
  e->m = m;
  e->event = event;
  e->message = g_strdup (message);
  vmm_iothread_call (m->io, pc_handle_event, e, pc_event_free);
}

/* Device requests (0xCF9, the keyboard controller, S5) come from a vCPU
 * thread with the device's lock held: stop this vCPU and queue the work. */
static void
pc_board_reset_request (void *opaque)
{
  vmm_machine *m = opaque;
  vmm_vm_stall_current ();
  pc_post_event (m, VMM_VCPU_EVENT_RESET, "reset request");
}

static void
pc_board_poweroff_request (void *opaque)
{
  vmm_machine *m = opaque;
  vmm_vm_stall_current ();
  pc_post_event (m, VMM_VCPU_EVENT_POWEROFF, "ACPI S5");
}

/* --- interrupts ----------------------------------------------------------- */

static void
pc_set_gsi (void *opaque, unsigned gsi, bool level)
{
  vmm_machine *m = opaque;
  vmm_vm_set_irq (m->vm, gsi, level);
}

static vmm_irq
pc_irq (vmm_machine *m, unsigned gsi)
{
  return (vmm_irq) { pc_set_gsi, m, gsi };
}

/* --- firmware tables --------------------------------------------------- */

static void
pc_build_e820 (vmm_machine *m, GArray *e820, bool direct)
{
  vmm_e820_entry e;
  if (direct)
    {
      e = (vmm_e820_entry) { 0, PC_EBDA_START, VMM_E820_RAM };
      g_array_append_val (e820, e);
      e = (vmm_e820_entry) { PC_EBDA_START, PC_VGA_HOLE_START - PC_EBDA_START,
                             VMM_E820_RESERVED };
      g_array_append_val (e820, e);
      e = (vmm_e820_entry) { 0xe0000, PC_SHADOW_END - 0xe0000,
                             VMM_E820_RESERVED };
      g_array_append_val (e820, e);
      e = (vmm_e820_entry) { PC_SHADOW_END, m->mem.below_4g - PC_SHADOW_END,
                             VMM_E820_RAM };
      g_array_append_val (e820, e);
    }
  else
    {
      /* Firmware carves out its own low areas from plain RAM ranges. */
      e = (vmm_e820_entry) { 0, m->mem.below_4g, VMM_E820_RAM };
      g_array_append_val (e820, e);
    }
  if (m->mem.above_4g)
    {
      e = (vmm_e820_entry) { VMM_4G, m->mem.above_4g, VMM_E820_RAM };
      g_array_append_val (e820, e);
    }
}

static gboolean
pc_build_acpi (vmm_machine *m, GError **error)
{
  vmm_acpi_config ac;
  vmm_acpi_config_init (&ac);
  ac.ncpus = m->cfg.cpus;
  ac.ram_below_4g = m->mem.below_4g;
  ac.ram_above_4g = m->mem.above_4g;
  ac.pm_base = m->pm_base;
  m->acpi = vmm_acpi_build (&ac, error);
  if (!m->acpi
      || !vmm_vm_set_ioapic_id (m->vm, vmm_acpi_ioapic_id (&ac), error))
    return FALSE;

  vmm_smbios_config sc = {
    .ncpus = m->cfg.cpus,
    .ram_below_4g = m->mem.below_4g,
    .ram_above_4g = m->mem.above_4g,
  };
  m->smbios = vmm_smbios_build (&sc, error);
  return m->smbios != NULL;
}

static gboolean
pc_fill_fw_cfg (vmm_machine *m, GError **error)
{
  fw_cfg *c = m->fw_cfg;
  fw_cfg_add_u64 (c, FW_CFG_RAM_SIZE, m->mem.size);
  fw_cfg_add_u16 (c, FW_CFG_NB_CPUS, m->cfg.cpus);
  fw_cfg_add_u16 (c, FW_CFG_MAX_CPUS, m->cfg.cpus);
  fw_cfg_add_u16 (c, FW_CFG_BOOT_MENU, m->cfg.boot_menu ? 1 : 0);
  fw_cfg_add_u16 (c, FW_CFG_NOGRAPHIC, 0);
  fw_cfg_add_u32 (c, FW_CFG_IRQ0_OVERRIDE, 1);

  g_autoptr (GArray) e820 = g_array_new (FALSE, FALSE, sizeof (vmm_e820_entry));
  pc_build_e820 (m, e820, false);
  GByteArray *raw = g_byte_array_new ();
  for (guint i = 0; i < e820->len; i++)
    {
      vmm_e820_entry *e = &g_array_index (e820, vmm_e820_entry, i);
      uint64_t a = GUINT64_TO_LE (e->addr), l = GUINT64_TO_LE (e->len);
      uint32_t t = GUINT32_TO_LE (e->type);
      g_byte_array_append (raw, (guint8 *) &a, 8);
      g_byte_array_append (raw, (guint8 *) &l, 8);
      g_byte_array_append (raw, (guint8 *) &t, 4);
    }
  g_autoptr (GBytes) e820_bytes = g_byte_array_free_to_bytes (raw);
  if (!fw_cfg_add_file (c, "etc/e820", e820_bytes, error))
    return FALSE;

  g_autoptr (GBytes) tables = vmm_acpi_tables_get_tables_blob (m->acpi);
  g_autoptr (GBytes) rsdp = vmm_acpi_tables_get_rsdp_blob (m->acpi);
  g_autoptr (GBytes) loader = vmm_acpi_tables_get_loader (m->acpi);
  if (!fw_cfg_add_file (c, VMM_ACPI_FWCFG_TABLES, tables, error)
      || !fw_cfg_add_file (c, VMM_ACPI_FWCFG_RSDP, rsdp, error)
      || !fw_cfg_add_file (c, VMM_ACPI_FWCFG_LOADER, loader, error))
    return FALSE;

  g_autoptr (GBytes) anchor = vmm_smbios_tables_get_anchor (m->smbios);
  g_autoptr (GBytes) structures = vmm_smbios_tables_get_tables (m->smbios);
  if (!fw_cfg_add_file (c, "etc/smbios/smbios-anchor", anchor, error)
      || !fw_cfg_add_file (c, "etc/smbios/smbios-tables", structures, error))
    return FALSE;

  if (m->bootorder->len)
    {
      g_ptr_array_add (m->bootorder, NULL);
      g_autofree char *joined = g_strjoinv ("\n", (char **) m->bootorder->pdata);
      g_ptr_array_remove_index (m->bootorder, m->bootorder->len - 1);
      g_autoptr (GBytes) b = g_bytes_new (joined, strlen (joined) + 1);
      if (!fw_cfg_add_file (c, "bootorder", b, error))
        return FALSE;
    }
  if (m->cfg.boot_menu_wait_ms)
    {
      uint16_t ms = GUINT16_TO_LE ((uint16_t) MIN (m->cfg.boot_menu_wait_ms,
                                                   0xffffu));
      g_autoptr (GBytes) b = g_bytes_new (&ms, 2);
      if (!fw_cfg_add_file (c, "etc/boot-menu-wait", b, error))
        return FALSE;
    }
  if (m->cfg.firmware_serial_console)
    {
      uint16_t port = GUINT16_TO_LE (UART16550_COM1_BASE);
      g_autoptr (GBytes) b = g_bytes_new (&port, 2);
      if (!fw_cfg_add_file (c, "etc/sercon-port", b, error))
        return FALSE;
    }
  return TRUE;
}

/* The kernel, initrd and command line as fw_cfg items, the interface
 * firmware-side kernel loaders (OVMF's, SeaBIOS's option ROMs) read; a
 * bzImage is split into its setup part and the rest, as they expect. */
static gboolean
pc_fill_fw_cfg_kernel (vmm_machine *m, GError **error)
{
  fw_cfg *c = m->fw_cfg;
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (m->kernel, &data, &len, error))
    return FALSE;
  const uint8_t *k = (const uint8_t *) data;
  size_t setup = 0;
  if (vmm_boot_is_bzimage (k, len))
    setup = MIN ((size_t) ((k[0x1f1] ? k[0x1f1] : 4) + 1) * 512, len);
  g_autoptr (GBytes) setup_b = g_bytes_new (k, setup);
  g_autoptr (GBytes) kernel_b = g_bytes_new (k + setup, len - setup);
  fw_cfg_add_u32 (c, FW_CFG_SETUP_SIZE, (uint32_t) setup);
  fw_cfg_add_bytes (c, FW_CFG_SETUP_DATA, setup_b);
  fw_cfg_add_u32 (c, FW_CFG_KERNEL_SIZE, (uint32_t) (len - setup));
  fw_cfg_add_bytes (c, FW_CFG_KERNEL_DATA, kernel_b);
  const char *cmdline = m->cmdline ? m->cmdline : "";
  g_autoptr (GBytes) cmd_b = g_bytes_new (cmdline, strlen (cmdline) + 1);
  fw_cfg_add_u32 (c, FW_CFG_CMDLINE_SIZE, (uint32_t) strlen (cmdline) + 1);
  fw_cfg_add_bytes (c, FW_CFG_CMDLINE_DATA, cmd_b);
  if (m->initrd)
    {
      g_autofree char *rd = NULL;
      gsize rd_len = 0;
      if (!g_file_get_contents (m->initrd, &rd, &rd_len, error))
        return FALSE;
      g_autoptr (GBytes) rd_b = g_bytes_new_take (g_steal_pointer (&rd),
                                                  rd_len);
      fw_cfg_add_u32 (c, FW_CFG_INITRD_SIZE, (uint32_t) rd_len);
      fw_cfg_add_bytes (c, FW_CFG_INITRD_DATA, rd_b);
    }
  return TRUE;
}

/* CMOS fields PC firmware reads (the IBM AT layout and its extensions). */
static void
pc_fill_cmos (vmm_machine *m)
{
  uint64_t below = m->mem.below_4g;
  uint64_t ext_kb = below > PC_SHADOW_END ? (below - PC_SHADOW_END) >> 10 : 0;
  ext_kb = MIN (ext_kb, (uint64_t) 0xffff);
  uint64_t over16m = below > (16u << 20) ? (below - (16u << 20)) >> 16 : 0;
  over16m = MIN (over16m, (uint64_t) 0xffff);
  uint64_t high64k = m->mem.above_4g >> 16;
  rtc_nvram_set (m->rtc, 0x15, 640 & 0xff); /* base memory in KiB */
  rtc_nvram_set (m->rtc, 0x16, 640 >> 8);
  rtc_nvram_set (m->rtc, 0x17, ext_kb & 0xff);
  rtc_nvram_set (m->rtc, 0x18, ext_kb >> 8);
  rtc_nvram_set (m->rtc, 0x30, ext_kb & 0xff);
  rtc_nvram_set (m->rtc, 0x31, ext_kb >> 8);
  rtc_nvram_set (m->rtc, 0x34, over16m & 0xff);
  rtc_nvram_set (m->rtc, 0x35, over16m >> 8);
  rtc_nvram_set (m->rtc, 0x5b, high64k & 0xff);
  rtc_nvram_set (m->rtc, 0x5c, (high64k >> 8) & 0xff);
  rtc_nvram_set (m->rtc, 0x5d, (high64k >> 16) & 0xff);
  rtc_nvram_set (m->rtc, 0x5f, (uint8_t) (m->cfg.cpus - 1));
  rtc_nvram_set (m->rtc, 0x10, 0x00); /* no floppy drives */
  rtc_nvram_set (m->rtc, 0x14, 0x06); /* equipment: FPU, VGA-class display */
}

/* --- boot ------------------------------------------------------------- */

static void
seg32 (struct kvm_segment *s, uint16_t selector, uint8_t type)
{
  *s = (struct kvm_segment) {
    .base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
    .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
  };
}

static gboolean
pc_load_direct_boot (vmm_machine *m, GError **error)
{
  uint64_t mem_start = (m->mem.below_4g + 0xfffffff) & ~UINT64_C (0xfffffff);
  if (!vmm_pci_host_assign_resources (m->pci, PC_PCI_IO_START, PC_PCI_IO_END,
                                      mem_start, PC_PCI_MEM_END, error))
    return FALSE;
  g_autoptr (GArray) e820 = g_array_new (FALSE, FALSE, sizeof (vmm_e820_entry));
  pc_build_e820 (m, e820, true);
  if (!vmm_acpi_write_to_memory (m->acpi,
                                 (vmm_gpa_to_host_fn) vmm_guest_memory_ptr_cb,
                                 &m->mem, PC_DIRECT_RSDP_ADDR,
                                 PC_DIRECT_ACPI_ADDR, error))
    return FALSE;
  vmm_direct_boot boot = {
    .kernel = m->kernel,
    .initrd = m->initrd,
    .cmdline = m->cmdline,
    .protocol = m->cfg.kernel_protocol,
    .e820 = (vmm_e820_entry *) e820->data,
    .n_e820 = e820->len,
    .rsdp_addr = PC_DIRECT_RSDP_ADDR,
  };
  vmm_boot_entry entry;
  if (!vmm_direct_boot_load (&boot, &m->mem, &entry, error))
    return FALSE;

  struct kvm_regs regs;
  struct kvm_sregs sregs;
  if (!vmm_vm_get_regs (m->vm, 0, &regs, &sregs, error))
    return FALSE;
  memset (&regs, 0, sizeof regs);
  regs.rflags = 0x2;
  regs.rip = entry.eip;
  regs.rax = entry.eax;
  regs.rbx = entry.ebx;
  regs.rsi = entry.esi;
  seg32 (&sregs.cs, 0x10, 0xb);
  seg32 (&sregs.ds, 0x18, 0x3);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  sregs.gdt.base = entry.gdt_base;
  sregs.gdt.limit = entry.gdt_limit;
  sregs.idt.base = 0;
  sregs.idt.limit = 0;
  sregs.cr0 = 0x11; /* PE, ET */
  sregs.cr4 = 0;
  sregs.efer = 0;
  return vmm_vm_set_regs (m->vm, 0, &regs, &sregs, error);
}

/* What a reset re-establishes beyond device state. Firmware boot needs
 * nothing: the new vCPUs start at the reset vector. */
static gboolean
pc_load_boot_state (vmm_machine *m, GError **error)
{
  if (m->kernel)
    return pc_load_direct_boot (m, error);
  return TRUE;
}

static gboolean
pc_load_firmware (vmm_machine *m, GError **error)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (m->firmware_path, &data, &len, error))
    return FALSE;
  /* OVMF_CODE_4M.fd is 3568 KiB: whole pages, not 64 KiB units. */
  if (len < 0x10000 || len > PC_BIOS_MAX || (len & 0xfff))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s is not a firmware image (its size must be a multiple "
                   "of 4 KiB, from 64 KiB up to 16 MiB)", m->firmware_path);
      return FALSE;
    }
  m->uefi = memcmp (data + PC_FV_SIGNATURE_OFFSET, "_FVH", 4) == 0;
  m->bios = mmap (NULL, len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m->bios == MAP_FAILED)
    {
      m->bios = NULL;
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "cannot allocate memory for the firmware");
      return FALSE;
    }
  memcpy (m->bios, data, len);
  m->bios_size = len;
  return TRUE;
}

/* The variable store left or entered read-array mode: its slot goes away
 * so that status and query reads reach the device, and comes back so that
 * array reads cost no exit. (Called with the flash's lock held; mapping
 * takes only the VM's slot lock.) */
static void
pc_vars_array (void *opaque, pflash *p, bool array)
{
  vmm_machine *m = opaque;
  if (!array)
    {
      vmm_vm_unmap (m->vm, m->vars_gpa);
      return;
    }
  g_autoptr (GError) error = NULL;
  if (!vmm_vm_map (m->vm, m->vars_gpa, pflash_size (p), pflash_array (p),
                   true, &error))
    g_debug ("UEFI variable store at 0x%" G_GINT64_MODIFIER "x stays "
             "emulated: %s", m->vars_gpa, error->message);
}

/* OVMF's split layout: the code image ends at 4 GiB, the variable store
 * sits directly below it (OvmfPkg's FD: PcdOvmfFdBaseAddress is the store's
 * base, the code follows). */
static gboolean
pc_open_vars (vmm_machine *m, const char *path, GError **error)
{
  m->vars = pflash_open ("pflash-vars", path, false, error);
  if (!m->vars)
    {
      g_prefix_error (error, "variable store ");
      return FALSE;
    }
  size_t size = pflash_size (m->vars);
  if (m->bios_size + size > PC_BIOS_MAX)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the firmware and the variable store %s together take "
                   "%zu KiB; at most 16 MiB fit below 4 GiB", path,
                   (m->bios_size + size) >> 10);
      return FALSE;
    }
  m->vars_gpa = VMM_4G - m->bios_size - size;
  pflash_set_array_handler (m->vars, pc_vars_array, m);
  return TRUE;
}

/* --- assembly ---------------------------------------------------------- */

static void
pc_com1_rx_ready (void *opaque)
{
  vmm_machine *m = opaque;
  if (m->serial_ready_fn)
    m->serial_ready_fn (m->serial_ready_opaque);
}

static void
pc_route_intx (void *opaque, unsigned devfn, unsigned pin, bool level)
{
  vmm_machine *m = opaque;
  pc_board_route_intx (&m->board, devfn, pin, level);
}

/* --- display ------------------------------------------------------------ */

/* Moves the memory slot that backs a BAR from *@at to @gpa (or removes it,
 * for VMM_PCI_UNMAPPED). A framebuffer is mapped as RAM with dirty logging,
 * so guest drawing costs no exit and the refresh finds changed pages in
 * KVM's log; a ROM as a read-only slot (writes still reach the device and
 * are dropped). Called with the VGA's lock held; mapping takes only the
 * VM's slot lock. */
static void
pc_move_bar_slot (vmm_machine *m, uint64_t *at, uint64_t gpa, uint8_t *host,
                  size_t size, bool rom)
{
  if (*at != VMM_PCI_UNMAPPED)
    vmm_vm_unmap (m->vm, *at);
  *at = VMM_PCI_UNMAPPED;
  if (gpa == VMM_PCI_UNMAPPED)
    return;
  g_autoptr (GError) error = NULL;
  bool ok = rom ? vmm_vm_map (m->vm, gpa, size, host, true, &error)
                : vmm_vm_map_logged (m->vm, gpa, size, host, &error);
  if (ok)
    *at = gpa;
  else if (rom) /* the device still answers reads, only slower */
    g_debug ("VGA ROM at 0x%" G_GINT64_MODIFIER "x stays emulated: %s", gpa,
             error->message);
  else
    g_warning ("framebuffer at 0x%" G_GINT64_MODIFIER "x: %s", gpa,
               error->message);
}

static void
pc_vga_lfb (void *opaque, uint64_t gpa, uint8_t *vram, size_t size)
{
  vmm_machine *m = opaque;
  pc_move_bar_slot (m, &m->lfb_gpa, gpa, vram, size, false);
}

static void
pc_vga_rom (void *opaque, uint64_t gpa, uint8_t *rom, size_t size)
{
  vmm_machine *m = opaque;
  pc_move_bar_slot (m, &m->vga_rom_gpa, gpa, rom, size, true);
}

static void
pc_display_refresh (void *opaque)
{
  vmm_machine *m = opaque;
  size_t vram_size;
  vga_vram (m->vga, &vram_size);
  size_t pages = vram_size / VGA_PAGE_SIZE;
  uint64_t gpa = m->lfb_gpa;
  if (gpa != VMM_PCI_UNMAPPED && vmm_vm_get_dirty_log (m->vm, gpa,
                                                       m->dirty_bitmap))
    vga_mark_vram_dirty_bitmap (m->vga, m->dirty_bitmap, pages);
  vga_render (m->vga, m->display, m->frame++);
  vmm_timer_arm (m->refresh, vmm_clock_now (vmm_iothread_clock (m->io))
                                 + PC_DISPLAY_REFRESH_NS);
}

static char *
pc_find_vga_rom (vmm_machine *m)
{
  if (m->cfg.vga_rom)
    return g_strdup (m->cfg.vga_rom);
  if (m->firmware_path)
    {
      g_autofree char *dir = g_path_get_dirname (m->firmware_path);
      char *p = g_build_filename (dir, "vgabios-stdvga.bin", NULL);
      if (g_file_test (p, G_FILE_TEST_IS_REGULAR))
        return p;
      g_free (p);
    }
  const char *installed = "/usr/share/seabios/vgabios-stdvga.bin";
  return g_file_test (installed, G_FILE_TEST_IS_REGULAR) ? g_strdup (installed)
                                                         : NULL;
}

static gboolean
pc_attach_display (vmm_machine *m, GError **error)
{
  m->lfb_gpa = VMM_PCI_UNMAPPED;
  m->vga_rom_gpa = VMM_PCI_UNMAPPED;
  if (m->cfg.display == VMM_DISPLAY_NONE)
    return TRUE;
  g_autofree char *rom = NULL;
  gsize rom_len = 0;
  if (!m->kernel)
    {
      g_autofree char *path = pc_find_vga_rom (m);
      /* OVMF drives the std VGA with its own QemuVideoDxe and runs no
       * legacy option ROM, so UEFI machines do without one. */
      if (!path && !m->uefi)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                       "no VGA BIOS found: install Debian's seabios package "
                       "or run without a display");
          return FALSE;
        }
      if (path && !g_file_get_contents (path, &rom, &rom_len, error))
        return FALSE;
    }
  m->vga = vga_create (m->pio, m->mmio, (const uint8_t *) rom, rom_len, 0,
                       error);
  if (!m->vga)
    return FALSE;
  vga_set_lfb_handler (m->vga, pc_vga_lfb, m);
  vga_set_rom_handler (m->vga, pc_vga_rom, m);
  if (!vga_attach (m->vga, m->pci, VMM_PCI_DEVFN (PC_VGA_SLOT, 0), error))
    return FALSE;
  size_t vram_size;
  vga_vram (m->vga, &vram_size);
  size_t pages = vram_size / VGA_PAGE_SIZE;
  m->dirty_bitmap = g_new0 (unsigned long, (pages + 63) / 64);
  m->display = display_surface_new (640, 480);
  m->refresh = vmm_timer_new (vmm_iothread_clock (m->io), pc_display_refresh,
                              m);
  vmm_timer_arm (m->refresh, vmm_clock_now (vmm_iothread_clock (m->io))
                                 + PC_DISPLAY_REFRESH_NS);
  return TRUE;
}

struct display_surface *
vmm_machine_display (vmm_machine *m)
{
  return m->display;
}

/* Viewer input → the i8042's PS/2 keyboard and mouse, and the virtio
 * tablet once the guest drives it (each takes its device's lock). */
static void
pc_input_keyboard (void *opaque, const uint8_t *set2, size_t n)
{
  vmm_machine *m = opaque;
  i8042_keyboard_put (m->board.i8042, set2, n);
}

static void
pc_input_mouse (void *opaque, int dx, int dy, int dz, unsigned buttons)
{
  vmm_machine *m = opaque;
  i8042_mouse_put_motion (m->board.i8042, dx, dy, dz, buttons);
}

/* display/input.h's buttons and scale are the tablet's. */
G_STATIC_ASSERT (DISPLAY_ABS_MAX == VIRTIO_INPUT_ABS_MAX);
G_STATIC_ASSERT ((unsigned) DISPLAY_BUTTON_LEFT == VIRTIO_INPUT_BUTTON_LEFT
                 && (unsigned) DISPLAY_BUTTON_RIGHT == VIRTIO_INPUT_BUTTON_RIGHT
                 && (unsigned) DISPLAY_BUTTON_MIDDLE
                        == VIRTIO_INPUT_BUTTON_MIDDLE
                 && (unsigned) DISPLAY_BUTTON_SIDE == VIRTIO_INPUT_BUTTON_SIDE
                 && (unsigned) DISPLAY_BUTTON_EXTRA
                        == VIRTIO_INPUT_BUTTON_EXTRA);

static bool
pc_input_absolute (void *opaque, unsigned x, unsigned y, int dz,
                   unsigned buttons)
{
  vmm_machine *m = opaque;
  return m->tablet && virtio_input_tablet_event (m->tablet, x, y, dz, buttons);
}

/* The virtio tablet, with the std display unless the config leaves it out:
 * how a viewer's pointer lines up with the guest's. */
static gboolean
pc_attach_tablet (vmm_machine *m, GError **error)
{
  if (m->cfg.display == VMM_DISPLAY_NONE || m->cfg.disable_tablet)
    return TRUE;
  m->tablet = virtio_input_tablet_create (&m->mem, vmm_iothread_context (m->io),
                                          &m->msi_host, &m->ioeventfd_host,
                                          error);
  return m->tablet
         && virtio_input_attach (m->tablet, m->pci,
                                 VMM_PCI_DEVFN (PC_TABLET_SLOT, 0), error);
}

struct display_input *
vmm_machine_input (vmm_machine *m)
{
  return m->input;
}

gboolean
vmm_machine_screendump (vmm_machine *m, const char *path, GError **error)
{
  if (!m->display)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "this machine has no display");
      return FALSE;
    }
  display_image *img = display_surface_acquire (m->display);
  gboolean ok = display_image_write_png (img, path, error);
  display_image_release (img);
  return ok;
}

/* --- storage ------------------------------------------------------------ */

static gboolean
pc_ioeventfd_add (void *opaque, bool pio, uint64_t addr, unsigned len, int fd,
                  GError **error)
{
  vmm_machine *m = opaque;
  return vmm_vm_add_ioeventfd (m->vm, pio, addr, len, fd, error);
}

static void
pc_ioeventfd_remove (void *opaque, bool pio, uint64_t addr, unsigned len,
                     int fd)
{
  vmm_machine *m = opaque;
  vmm_vm_remove_ioeventfd (m->vm, pio, addr, len, fd);
}

static int
pc_msi_add (void *opaque, uint64_t addr, uint32_t data, int fd, GError **error)
{
  vmm_machine *m = opaque;
  return vmm_vm_add_msi_irqfd (m->vm, addr, data, fd, error);
}

static void
pc_msi_update (void *opaque, int handle, uint64_t addr, uint32_t data)
{
  vmm_machine *m = opaque;
  vmm_vm_update_msi (m->vm, handle, addr, data);
}

static void
pc_msi_remove (void *opaque, int handle)
{
  vmm_machine *m = opaque;
  vmm_vm_remove_msi_irqfd (m->vm, handle);
}

static VmmBlock *
pc_open_disk (const vmm_disk_config *d, GError **error)
{
  unsigned flags = (d->readonly ? VMM_BLOCK_OPEN_READ_ONLY : 0)
                   | (d->direct ? VMM_BLOCK_OPEN_DIRECT : 0);
  VmmBlock *bs = vmm_block_open (d->path, d->format, flags, error);
  if (!bs && error && *error)
    g_prefix_error (error, "disk %s: ", d->path);
  return bs;
}

/* IDE: the CD-ROM drive is the secondary master (where PC firmware and
 * installers look first); disks take the other three places. */
static const struct {
  unsigned channel, unit;
} pc_ide_disk_places[] = { { 0, 0 }, { 0, 1 }, { 1, 1 } };

static void pc_cdrom_tray (void *opaque, atapi_cdrom *cd);

static gboolean
pc_attach_storage (vmm_machine *m, GPtrArray *disk_boot, GError **error)
{
  GMainContext *io = vmm_iothread_context (m->io);
  vmm_irq irq14 = pc_irq (m, IDE_PRIMARY_IRQ);
  vmm_irq irq15 = pc_irq (m, IDE_SECONDARY_IRQ);
  m->ide = ide_create (&m->mem, io, &irq14, &irq15);
  if (!ide_attach (m->ide, m->pci, m->pio, IDE_DEVFN, error))
    return FALSE;

  unsigned n_ide = 0;
  for (size_t i = 0; i < m->cfg.n_disks; i++)
    {
      const vmm_disk_config *d = &m->disks[i];
      if (d->interface == VMM_DISK_IDE)
        {
          if (n_ide == G_N_ELEMENTS (pc_ide_disk_places))
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                           "disk %s: the IDE controller has room for %zu "
                           "disks beside the CD-ROM; use if=virtio",
                           d->path, G_N_ELEMENTS (pc_ide_disk_places));
              return FALSE;
            }
          VmmBlock *bs = pc_open_disk (d, error);
          if (!bs)
            return FALSE;
          unsigned ch = pc_ide_disk_places[n_ide].channel;
          unsigned unit = pc_ide_disk_places[n_ide].unit;
          if (!ide_attach_disk (m->ide, ch, unit, bs, error))
            {
              vmm_block_close (bs, NULL);
              return FALSE;
            }
          n_ide++;
          m->disk_image[m->n_disk_image++] = bs;
          g_ptr_array_add (disk_boot,
                           g_strdup_printf ("/pci@i0cf8/*@1,1/drive@%u/disk@%u",
                                            ch, unit));
        }
      else
        {
          unsigned slot = PC_VIRTIO_DISK_SLOT + m->n_vblk;
          VmmBlock *bs = pc_open_disk (d, error);
          if (!bs)
            return FALSE;
          virtio_blk *blk = virtio_blk_create (&m->mem, io, &m->msi_host,
                                               &m->ioeventfd_host, bs, 1,
                                               error);
          if (!blk)
            {
              vmm_block_close (bs, NULL);
              return FALSE;
            }
          m->vblk[m->n_vblk] = blk;
          m->vblk_image[m->n_vblk] = bs;
          m->n_vblk++;
          m->disk_image[m->n_disk_image++] = bs;
          if (!virtio_blk_attach (blk, m->pci, VMM_PCI_DEVFN (slot, 0), error))
            return FALSE;
          g_ptr_array_add (disk_boot, g_strdup_printf ("/pci@i0cf8/*@%x", slot));
        }
    }

  VmmBlock *media = NULL;
  if (m->cdrom_path)
    {
      media = vmm_block_open (m->cdrom_path, "raw", VMM_BLOCK_OPEN_READ_ONLY,
                              error);
      if (!media)
        {
          g_prefix_error (error, "CD-ROM %s: ", m->cdrom_path);
          return FALSE;
        }
    }
  m->cdrom = ide_attach_cdrom (m->ide, 1, 0, media, error);
  if (!m->cdrom)
    {
      if (media)
        vmm_block_close (media, NULL);
      return FALSE;
    }
  atapi_set_tray_callback (m->cdrom, pc_cdrom_tray, m);
  return TRUE;
}

/* --- network ------------------------------------------------------------ */

/* The boot ROM a NIC carries: the config's, none for "", else Debian's
 * iPXE for the model when installed (firmware boots only). */
static gboolean
pc_load_nic_rom (vmm_machine *m, const vmm_nic_config *nc, char **rom,
                 gsize *rom_len, GError **error)
{
  g_autofree char *path = NULL;
  *rom = NULL;
  *rom_len = 0;
  if (nc->romfile)
    {
      if (!nc->romfile[0])
        return TRUE;
      path = g_strdup (nc->romfile);
    }
  else
    {
      if (m->kernel)
        return TRUE;
      /* UEFI firmware runs only EFI drivers from ROM BARs: Debian's
       * ipxe-qemu ships efi-*.rom (legacy and EFI images in one) for it. */
      const char *model = nc->model == VMM_NIC_E1000 ? "e1000" : "virtio";
      if (m->uefi)
        {
          g_autofree char *name = g_strdup_printf ("efi-%s.rom", model);
          path = g_build_filename (PC_IPXE_DIR, name, NULL);
          if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
            g_clear_pointer (&path, g_free);
        }
      if (!path)
        {
          g_autofree char *name = g_strdup_printf ("pxe-%s.rom", model);
          path = g_build_filename (PC_IPXE_DIR, name, NULL);
        }
      if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return TRUE;
    }
  if (!g_file_get_contents (path, rom, rom_len, error))
    {
      g_prefix_error (error, "NIC boot ROM: ");
      return FALSE;
    }
  return TRUE;
}

static gboolean
pc_attach_nics (vmm_machine *m, GError **error)
{
  GMainContext *io = vmm_iothread_context (m->io);
  for (size_t i = 0; i < m->cfg.n_nics; i++)
    {
      const vmm_nic_config *nc = &m->nics[i];
      unsigned slot = i == 0 ? PC_FIRST_NIC_SLOT
                             : PC_MORE_NICS_SLOT + (unsigned) i - 1;
      uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, (uint8_t) (0x56 + i) };
      if (nc->has_mac)
        memcpy (mac, nc->mac, 6);
      g_autofree char *rom = NULL;
      gsize rom_len = 0;
      if (!pc_load_nic_rom (m, nc, &rom, &rom_len, error))
        return FALSE;
      vmm_net_backend *be = vmm_net_slirp_new (io, nc, error);
      if (!be)
        return FALSE;
      g_autofree char *name = g_strdup_printf ("%s%zu",
                                               nc->model == VMM_NIC_E1000
                                                   ? "e1000-" : "virtio-net",
                                               i);
      gboolean ok;
      if (nc->model == VMM_NIC_E1000)
        {
          e1000 *e = e1000_create (name, &m->mem, io, mac,
                                   (const uint8_t *) rom, rom_len, be, error);
          if (!e)
            {
              be->ops->free (be);
              return FALSE;
            }
          m->nic_dev[m->n_nic_dev++] = e1000_device (e);
          ok = e1000_attach (e, m->pci, VMM_PCI_DEVFN (slot, 0), error);
        }
      else
        {
          virtio_net *n = virtio_net_create (name, &m->mem, io, &m->msi_host,
                                             &m->ioeventfd_host, mac,
                                             (const uint8_t *) rom, rom_len,
                                             be, error);
          if (!n)
            {
              be->ops->free (be);
              return FALSE;
            }
          m->nic_dev[m->n_nic_dev++] = virtio_net_device (n);
          ok = virtio_net_attach (n, m->pci, VMM_PCI_DEVFN (slot, 0), error);
        }
      if (!ok)
        return FALSE;
    }
  return TRUE;
}

static void
pc_build_bootorder (vmm_machine *m, GPtrArray *disk_boot)
{
  const char *cd = "/pci@i0cf8/*@1,1/drive@1/disk@0";
  if (m->cfg.boot == VMM_BOOT_CDROM)
    g_ptr_array_add (m->bootorder, g_strdup (cd));
  for (guint i = 0; i < disk_boot->len; i++)
    g_ptr_array_add (m->bootorder, g_strdup (disk_boot->pdata[i]));
  if (m->cfg.boot != VMM_BOOT_CDROM)
    g_ptr_array_add (m->bootorder, g_strdup (cd));
}

vmm_machine *
vmm_machine_new (const vmm_machine_config *cfg, GError **error)
{
  g_autoptr (GPtrArray) disk_boot = NULL;
  if (cfg->memory < VMM_MACHINE_MIN_MEMORY)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%" G_GUINT64_FORMAT " MiB of memory is too little; a "
                   "machine needs at least %" G_GUINT64_FORMAT " MiB",
                   cfg->memory >> 20, VMM_MACHINE_MIN_MEMORY >> 20);
      return NULL;
    }
  vmm_machine *m = g_new0 (vmm_machine, 1);
  m->cfg = *cfg;
  m->kernel = g_strdup (cfg->kernel);
  m->initrd = g_strdup (cfg->initrd);
  m->cmdline = g_strdup (cfg->cmdline);
  m->bootorder = g_ptr_array_new_with_free_func (g_free);
  m->cdrom_path = g_strdup (cfg->cdrom);
  if (cfg->n_disks > VMM_MACHINE_MAX_DISKS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%zu disks asked for; a machine takes at most %d",
                   cfg->n_disks, VMM_MACHINE_MAX_DISKS);
      g_ptr_array_unref (m->bootorder);
      g_free (m->cdrom_path);
      g_free (m->kernel);
      g_free (m->initrd);
      g_free (m->cmdline);
      g_free (m);
      return NULL;
    }
  if (cfg->n_nics > VMM_MACHINE_MAX_NICS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%zu NICs asked for; a machine takes at most %d",
                   cfg->n_nics, VMM_MACHINE_MAX_NICS);
      g_ptr_array_unref (m->bootorder);
      g_free (m->cdrom_path);
      g_free (m->kernel);
      g_free (m->initrd);
      g_free (m->cmdline);
      g_free (m);
      return NULL;
    }
  m->nics = g_new0 (vmm_nic_config, cfg->n_nics + 1);
  for (size_t i = 0; i < cfg->n_nics; i++)
    vmm_nic_config_copy (&m->nics[i], &cfg->nics[i]);
  m->cfg.nics = m->nics;
  m->disks = g_new0 (vmm_disk_config, cfg->n_disks + 1);
  for (size_t i = 0; i < cfg->n_disks; i++)
    {
      m->disks[i] = cfg->disks[i];
      m->disks[i].path = g_strdup (cfg->disks[i].path);
      m->disks[i].format = g_strdup (cfg->disks[i].format);
    }
  m->cfg.kernel = m->kernel;
  m->cfg.initrd = m->initrd;
  m->cfg.cmdline = m->cmdline;
  m->cfg.cpu_model = NULL; /* applied once, at creation */
  m->cfg.disks = m->disks;
  m->cfg.cdrom = m->cdrom_path;
  g_mutex_init (&m->state_lock);
  m->state = VMM_MACHINE_STOPPED;
  g_mutex_init (&m->listener_lock);
  m->listeners = g_array_new (FALSE, FALSE, sizeof (pc_listener));

  if (!m->kernel)
    {
      m->firmware_path = cfg->firmware ? g_strdup (cfg->firmware)
                                       : vmm_machine_find_firmware ();
      if (!m->firmware_path)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                       "no firmware found: install Debian's seabios package "
                       "or pass --firmware PATH");
          goto fail;
        }
      if (!pc_load_firmware (m, error))
        goto fail;
    }
  else if (!g_file_test (m->kernel, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "kernel %s: no such file", m->kernel);
      goto fail;
    }
  if (m->initrd && !g_file_test (m->initrd, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   "initrd %s: no such file", m->initrd);
      goto fail;
    }
  if (cfg->firmware_vars && !pc_open_vars (m, cfg->firmware_vars, error))
    goto fail;
  m->pm_base = m->uefi ? PC_PM_BASE_OVMF : PC_PM_BASE;

  if (!vmm_guest_memory_init (&m->mem, cfg->memory, error))
    goto fail;
  vmm_vcpu_handlers h = pc_vcpu_handlers;
  h.opaque = m;
  m->vm = vmm_vm_new (cfg->cpus, &h, error);
  if (!m->vm)
    goto fail;
  if (cfg->cpu_model && !vmm_vm_set_cpu_model (m->vm, cfg->cpu_model, error))
    goto fail;
  if (!pc_map_memory (m, error))
    goto fail;
  m->io = vmm_iothread_new ("vessel-io");
  vmm_clock *clock = vmm_iothread_clock (m->io);

  m->pio = vmm_bus_new (VMM_BUS_PIO);
  m->mmio = vmm_bus_new (VMM_BUS_MMIO);
  m->pci = vmm_pci_host_new (m->pio, m->mmio, pc_route_intx, m, error);
  if (!m->pci)
    goto fail;
  if (m->vars && !pflash_attach (m->vars, m->mmio, m->vars_gpa, error))
    goto fail;

  m->msi_host = (vmm_msi_host) { pc_msi_add, pc_msi_update, pc_msi_remove, m };
  m->ioeventfd_host = (vmm_ioeventfd_host) { pc_ioeventfd_add,
                                             pc_ioeventfd_remove, m };
  pc_board_callbacks cb = {
    .opaque = m,
    .reset_request = pc_board_reset_request,
    .poweroff_request = pc_board_poweroff_request,
    .pam_changed = pc_pam_changed,
    .set_gsi = pc_set_gsi,
  };
  if (!pc_board_init (&m->board, m->pio, m->pci, clock, &cb, m->pm_base,
                      m->kernel != NULL, error))
    goto fail;
  m->input = display_input_new (&(display_input_backend) {
      .opaque = m,
      .keyboard = pc_input_keyboard,
      .mouse = pc_input_mouse,
      .absolute = pc_input_absolute,
  });

  vmm_irq irq4 = pc_irq (m, UART16550_COM1_IRQ);
  m->com1 = uart16550_create ("COM1", &irq4, &cfg->serial, clock,
                              pc_com1_rx_ready, m);
  if (!uart16550_attach (m->com1, m->pio, UART16550_COM1_BASE, error))
    goto fail;
  m->dbg = debugcon_create (&cfg->debugcon);
  if (!debugcon_attach (m->dbg, m->pio, DEBUGCON_DEFAULT_PORT, error))
    goto fail;
  vmm_irq irq8 = pc_irq (m, RTC_IRQ);
  m->rtc = rtc_create (clock, &irq8, 0);
  if (!rtc_attach (m->rtc, m->pio, RTC_DEFAULT_BASE, error))
    goto fail;
  pc_fill_cmos (m);

  if (!pc_attach_display (m, error))
    goto fail;
  if (!pc_attach_tablet (m, error))
    goto fail;
  disk_boot = g_ptr_array_new_with_free_func (g_free);
  if (!pc_attach_storage (m, disk_boot, error))
    goto fail;
  if (!pc_attach_nics (m, error))
    goto fail;
  pc_build_bootorder (m, disk_boot);

  if (!pc_build_acpi (m, error))
    goto fail;
  m->fw_cfg = fw_cfg_create (&m->mem);
  if (!pc_fill_fw_cfg (m, error) || !fw_cfg_attach (m->fw_cfg, m->pio, error))
    goto fail;
  if (m->kernel && !pc_fill_fw_cfg_kernel (m, error))
    goto fail;
  if (!pc_load_boot_state (m, error))
    goto fail;
  return m;

fail:
  vmm_machine_free (m);
  return NULL;
}

void
vmm_machine_free (vmm_machine *m)
{
  if (!m)
    return;
  if (m->vm)
    vmm_vm_stop (m->vm);
  /* The I/O thread stops before the devices whose timers it runs; its
   * context lives on until the disks' last completions are drained. */
  vmm_iothread_stop (m->io);
  if (m->ide)
    {
      ide_drain (m->ide);
      vmm_device_destroy (ide_device (m->ide));
    }
  vmm_timer_free (m->refresh);
  if (m->vga)
    vmm_device_destroy (vga_device (m->vga));
  if (m->display)
    display_surface_free (m->display);
  g_free (m->dirty_bitmap);
  for (unsigned i = 0; i < m->n_vblk; i++)
    {
      vmm_block_drain (m->vblk_image[i]);
      vmm_device_destroy (virtio_blk_device (m->vblk[i]));
      vmm_block_close (m->vblk_image[i], NULL);
    }
  display_input_free (m->input);
  if (m->tablet)
    vmm_device_destroy (virtio_input_device (m->tablet));
  for (unsigned i = 0; i < m->n_nic_dev; i++)
    vmm_device_destroy (m->nic_dev[i]);
  pc_board_destroy (&m->board);
  vmm_iothread_free (m->io);
  m->io = NULL;
  if (m->com1)
    vmm_device_destroy (uart16550_device (m->com1));
  if (m->dbg)
    vmm_device_destroy (debugcon_device (m->dbg));
  if (m->rtc)
    vmm_device_destroy (rtc_device (m->rtc));
  fw_cfg_free (m->fw_cfg);
  if (m->vars)
    vmm_device_destroy (pflash_device (m->vars));
  vmm_pci_host_free (m->pci);
  vmm_bus_free (m->pio);
  vmm_bus_free (m->mmio);
  vmm_vm_free (m->vm);
  if (m->acpi)
    vmm_acpi_tables_free (m->acpi);
  if (m->smbios)
    vmm_smbios_tables_free (m->smbios);
  vmm_guest_memory_clear (&m->mem);
  if (m->bios)
    munmap (m->bios, m->bios_size);
  g_free (m->firmware_path);
  g_free (m->kernel);
  g_free (m->initrd);
  g_free (m->cmdline);
  if (m->bootorder)
    g_ptr_array_unref (m->bootorder);
  for (size_t i = 0; m->disks && i < m->cfg.n_disks; i++)
    {
      g_free ((char *) m->disks[i].path);
      g_free ((char *) m->disks[i].format);
    }
  g_free (m->disks);
  for (size_t i = 0; m->nics && i < m->cfg.n_nics; i++)
    vmm_nic_config_clear (&m->nics[i]);
  g_free (m->nics);
  g_free (m->cdrom_path);
  g_free (m->error);
  g_mutex_clear (&m->state_lock);
  g_array_unref (m->listeners);
  g_mutex_clear (&m->listener_lock);
  g_free (m);
}

void
vmm_machine_set_state_callback (vmm_machine *m, vmm_machine_state_fn fn,
                                void *opaque)
{
  m->state_fn = fn;
  m->state_opaque = opaque;
}

unsigned
vmm_machine_add_listener (vmm_machine *m, vmm_machine_state_fn state_fn,
                          vmm_machine_event_fn event_fn, void *opaque)
{
  g_mutex_lock (&m->listener_lock);
  pc_listener l = { ++m->next_listener_id, state_fn, event_fn, opaque };
  g_array_append_val (m->listeners, l);
  g_mutex_unlock (&m->listener_lock);
  return l.id;
}

void
vmm_machine_remove_listener (vmm_machine *m, unsigned id)
{
  g_mutex_lock (&m->listener_lock);
  for (guint i = 0; i < m->listeners->len; i++)
    if (g_array_index (m->listeners, pc_listener, i).id == id)
      {
        g_array_remove_index (m->listeners, i);
        break;
      }
  g_mutex_unlock (&m->listener_lock);
}

void
vmm_machine_set_serial_ready_callback (vmm_machine *m,
                                       vmm_machine_serial_ready_fn fn,
                                       void *opaque)
{
  m->serial_ready_fn = fn;
  m->serial_ready_opaque = opaque;
}

gboolean
vmm_machine_start (vmm_machine *m, GError **error)
{
  if (!vmm_vm_start (m->vm, error))
    return FALSE;
  pc_set_state (m, VMM_MACHINE_RUNNING);
  return TRUE;
}

void
vmm_machine_pause (vmm_machine *m)
{
  if (vmm_machine_get_state (m) != VMM_MACHINE_RUNNING)
    return;
  vmm_vm_pause (m->vm);
  pc_set_state (m, VMM_MACHINE_PAUSED);
}

void
vmm_machine_resume (vmm_machine *m)
{
  if (vmm_machine_get_state (m) != VMM_MACHINE_PAUSED)
    return;
  pc_set_state (m, VMM_MACHINE_RUNNING);
  vmm_vm_resume (m->vm);
}

void
vmm_machine_reset (vmm_machine *m)
{
  pc_post_event (m, VMM_VCPU_EVENT_RESET, "reset from the host");
}

static gboolean
pc_emit_powerdown (gpointer data)
{
  pc_emit (data, VMM_MACHINE_EVENT_POWERDOWN);
  return G_SOURCE_REMOVE;
}

void
vmm_machine_powerdown (vmm_machine *m)
{
  pc_board_power_button (&m->board);
  vmm_iothread_call (m->io, pc_emit_powerdown, m, NULL);
}

static gboolean
pc_poweroff_now (gpointer data)
{
  vmm_machine *m = data;
  vmm_vm_pause (m->vm);
  pc_set_state (m, VMM_MACHINE_POWERED_OFF);
  return G_SOURCE_REMOVE;
}

void
vmm_machine_poweroff (vmm_machine *m)
{
  vmm_iothread_call (m->io, pc_poweroff_now, m, NULL);
}

vmm_machine_state
vmm_machine_get_state (vmm_machine *m)
{
  g_mutex_lock (&m->state_lock);
  vmm_machine_state s = m->state;
  g_mutex_unlock (&m->state_lock);
  return s;
}

char *
vmm_machine_get_error (vmm_machine *m)
{
  g_mutex_lock (&m->state_lock);
  char *e = g_strdup (m->error);
  g_mutex_unlock (&m->state_lock);
  return e;
}

unsigned
vmm_machine_get_reset_count (vmm_machine *m)
{
  g_mutex_lock (&m->state_lock);
  unsigned n = m->resets;
  g_mutex_unlock (&m->state_lock);
  return n;
}

void
vmm_machine_set_event_callback (vmm_machine *m, vmm_machine_event_fn fn,
                                void *opaque)
{
  m->event_fn = fn;
  m->event_opaque = opaque;
}

GMainContext *
vmm_machine_io_context (vmm_machine *m)
{
  return vmm_iothread_context (m->io);
}

static gboolean
pc_emit_tray (gpointer data)
{
  pc_emit (data, VMM_MACHINE_EVENT_TRAY_MOVED);
  return G_SOURCE_REMOVE;
}

/* The guest opened the tray (START STOP UNIT): the medium is gone. Called
 * with the controller's lock held, so only record and queue. */
static void
pc_cdrom_tray (void *opaque, atapi_cdrom *cd)
{
  vmm_machine *m = opaque;
  g_mutex_lock (&m->state_lock);
  g_clear_pointer (&m->cdrom_path, g_free);
  g_mutex_unlock (&m->state_lock);
  vmm_iothread_call (m->io, pc_emit_tray, m, NULL);
}

gboolean
vmm_machine_cdrom_eject (vmm_machine *m, gboolean force, GError **error)
{
  if (!atapi_eject (m->cdrom, force, error))
    return FALSE;
  g_mutex_lock (&m->state_lock);
  g_clear_pointer (&m->cdrom_path, g_free);
  g_mutex_unlock (&m->state_lock);
  vmm_iothread_call (m->io, pc_emit_tray, m, NULL);
  return TRUE;
}

gboolean
vmm_machine_cdrom_change (vmm_machine *m, const char *path, gboolean force,
                          GError **error)
{
  VmmBlock *media = vmm_block_open (path, "raw", VMM_BLOCK_OPEN_READ_ONLY,
                                    error);
  if (!media)
    return FALSE;
  if (!atapi_eject (m->cdrom, force, error)
      || !atapi_insert (m->cdrom, media, error))
    {
      vmm_block_close (media, NULL);
      return FALSE;
    }
  g_mutex_lock (&m->state_lock);
  g_free (m->cdrom_path);
  m->cdrom_path = g_strdup (path);
  g_mutex_unlock (&m->state_lock);
  vmm_iothread_call (m->io, pc_emit_tray, m, NULL);
  return TRUE;
}

char *
vmm_machine_cdrom_path (vmm_machine *m)
{
  g_mutex_lock (&m->state_lock);
  char *p = g_strdup (m->cdrom_path);
  g_mutex_unlock (&m->state_lock);
  return p;
}

bool
vmm_machine_cdrom_locked (vmm_machine *m)
{
  return atapi_is_locked (m->cdrom);
}

char *
vmm_machine_describe_cpus (vmm_machine *m)
{
  GString *out = g_string_new (NULL);
  bool running = vmm_machine_get_state (m) == VMM_MACHINE_RUNNING;
  if (running)
    vmm_vm_pause (m->vm);
  for (unsigned i = 0; i < m->cfg.cpus; i++)
    {
      struct kvm_regs r;
      struct kvm_sregs s;
      g_autoptr (GError) error = NULL;
      if (!vmm_vm_get_regs (m->vm, i, &r, &s, &error))
        {
          g_string_append_printf (out, "cpu%u: %s\n", i, error->message);
          continue;
        }
      g_string_append_printf (out,
                              "cpu%u: cs=%04x rip=%016llx rsp=%016llx "
                              "cr0=%08llx cr3=%016llx cr4=%08llx efer=%llx "
                              "rflags=%llx\n",
                              i, s.cs.selector, r.rip, r.rsp, s.cr0, s.cr3,
                              s.cr4, s.efer, r.rflags);
    }
  if (running)
    vmm_vm_resume (m->vm);
  return g_string_free (out, FALSE);
}

size_t
vmm_machine_serial_receive (vmm_machine *m, const uint8_t *buf, size_t len)
{
  return uart16550_receive (m->com1, buf, len);
}

uint64_t
vmm_machine_disk_writes (vmm_machine *m)
{
  uint64_t n = 0;
  for (unsigned i = 0; i < m->n_disk_image; i++)
    n += vmm_block_write_count (m->disk_image[i]);
  return n;
}
