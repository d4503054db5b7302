/* fw_cfg: how firmware (SeaBIOS) learns about the machine. The selector at
 * port 0x510, the data port at 0x511 and the DMA address at 0x514 (big-endian,
 * the write of the low half starts the transfer). Item numbers and the DMA
 * control layout are the interface documented for QEMU's fw_cfg device, which
 * SeaBIOS speaks. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/kvm/memory.h"

G_BEGIN_DECLS

enum {
  FW_CFG_SIGNATURE = 0x00,
  FW_CFG_ID = 0x01,
  FW_CFG_UUID = 0x02,
  FW_CFG_RAM_SIZE = 0x03,
  FW_CFG_NOGRAPHIC = 0x04,
  FW_CFG_NB_CPUS = 0x05,
  FW_CFG_KERNEL_ADDR = 0x07,
  FW_CFG_KERNEL_SIZE = 0x08,
  FW_CFG_KERNEL_CMDLINE = 0x09,
  FW_CFG_INITRD_ADDR = 0x0a,
  FW_CFG_INITRD_SIZE = 0x0b,
  FW_CFG_BOOT_DEVICE = 0x0c,
  FW_CFG_BOOT_MENU = 0x0e,
  FW_CFG_MAX_CPUS = 0x0f,
  FW_CFG_KERNEL_DATA = 0x11,
  FW_CFG_INITRD_DATA = 0x12,
  FW_CFG_CMDLINE_ADDR = 0x13,
  FW_CFG_CMDLINE_SIZE = 0x14,
  FW_CFG_CMDLINE_DATA = 0x15,
  FW_CFG_SETUP_ADDR = 0x16,
  FW_CFG_SETUP_SIZE = 0x17,
  FW_CFG_SETUP_DATA = 0x18,
  FW_CFG_FILE_DIR = 0x19,
  FW_CFG_FILE_FIRST = 0x20,
  FW_CFG_IRQ0_OVERRIDE = 0x8002,
};

#define FW_CFG_PORT_SELECTOR 0x510
#define FW_CFG_PORT_DMA 0x514
#define FW_CFG_MAX_FILES 256
#define FW_CFG_FILE_NAME_MAX 56

typedef struct fw_cfg fw_cfg;

fw_cfg *fw_cfg_create (const vmm_guest_memory *mem);
vmm_device *fw_cfg_device (fw_cfg *cfg);
gboolean fw_cfg_attach (fw_cfg *cfg, vmm_bus *pio, GError **error);

/* Items; the data is copied (or referenced for GBytes). */
void fw_cfg_add_bytes (fw_cfg *cfg, uint16_t key, GBytes *data);
void fw_cfg_add_u16 (fw_cfg *cfg, uint16_t key, uint16_t value);
void fw_cfg_add_u32 (fw_cfg *cfg, uint16_t key, uint32_t value);
void fw_cfg_add_u64 (fw_cfg *cfg, uint16_t key, uint64_t value);
/* A named file in the directory; replaces one of the same name. */
gboolean fw_cfg_add_file (fw_cfg *cfg, const char *name, GBytes *data,
                          GError **error);
void fw_cfg_free (fw_cfg *cfg);

G_END_DECLS
