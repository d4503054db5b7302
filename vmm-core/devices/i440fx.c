/* i440FX PMC. Register semantics: Intel 440FX PCIset datasheet
 * (290549-001), 3.2 "PCI configuration registers": 3.2.18 PAM0-PAM6,
 * 3.2.19 SMRAM. */
#include "vmm-core/devices/i440fx.h"

#include "vmm-core/devices/devstate.h"

enum {
  FX_CFG_PAM0 = 0x59,
  FX_CFG_PAM_LAST = 0x5f,
  FX_CFG_SMRAM = 0x72,
};

/* SMRAM bits (3.2.19). */
enum {
  SMRAM_C_BASE_SEG = 0x07, /* hard-wired 010: 0xA0000 */
  SMRAM_G_SMRAME = 0x08,
  SMRAM_D_LCK = 0x10,
  SMRAM_D_CLS = 0x20,
  SMRAM_D_OPEN = 0x40,
  SMRAM_RESET = 0x02,
  SMRAM_WMASK = SMRAM_G_SMRAME | SMRAM_D_LCK | SMRAM_D_CLS | SMRAM_D_OPEN,
  /* With D_LCK set, D_OPEN is forced to 0, and D_LCK and G_SMRAME become
   * read-only until the next power-on reset. */
  SMRAM_WMASK_LOCKED = SMRAM_D_CLS,
};

struct i440fx {
  vmm_device dev;
  vmm_pci_device pci;
  i440fx_pam_changed_fn pam_changed;
  void *opaque;
  /* The attributes the board was last told about. */
  uint8_t pam[I440FX_PAM_SEGMENTS];
};

/* Where segment @i's two bits live: PAM0 bits 5:4 for 0xF0000; then each
 * register PAM1..PAM6 holds two segments, low nibble first. */
static unsigned
pam_attr (const uint8_t *config, unsigned segment)
{
  if (segment == 0)
    return (config[FX_CFG_PAM0] >> 4) & 3;
  unsigned reg = FX_CFG_PAM0 + 1 + (segment - 1) / 2;
  unsigned shift = (segment - 1) % 2 ? 4 : 0;
  return (config[reg] >> shift) & 3;
}

void
i440fx_pam_segment_range (unsigned segment, uint64_t *base, uint64_t *size)
{
  if (segment == 0)
    {
      *base = 0xf0000;
      *size = 0x10000;
      return;
    }
  *base = 0xc0000 + (uint64_t) (segment - 1) * 0x4000;
  *size = 0x4000;
}

static void
fx_update_pam (i440fx *fx)
{
  for (unsigned i = 0; i < I440FX_PAM_SEGMENTS; i++)
    {
      unsigned mode = pam_attr (fx->pci.config, i);
      if (mode == fx->pam[i])
        continue;
      fx->pam[i] = (uint8_t) mode;
      if (fx->pam_changed)
        fx->pam_changed (fx->opaque, i, (i440fx_pam_mode) mode);
    }
}

static void
fx_update_smram (i440fx *fx)
{
  uint8_t *smram = &fx->pci.config[FX_CFG_SMRAM];
  if (*smram & SMRAM_D_LCK)
    {
      *smram &= ~SMRAM_D_OPEN;
      fx->pci.wmask[FX_CFG_SMRAM] = SMRAM_WMASK_LOCKED;
    }
  else
    fx->pci.wmask[FX_CFG_SMRAM] = SMRAM_WMASK;
}

static void
fx_config_written (vmm_pci_device *pci, unsigned offset, unsigned size,
                   uint32_t value)
{
  i440fx *fx = pci->opaque;
  if (offset <= FX_CFG_PAM_LAST && offset + size > FX_CFG_PAM0)
    fx_update_pam (fx);
  if (offset <= FX_CFG_SMRAM && offset + size > FX_CFG_SMRAM)
    fx_update_smram (fx);
}

static const vmm_pci_device_ops fx_pci_ops = {
  .config_written = fx_config_written,
};

static void
fx_config_defaults (i440fx *fx)
{
  for (unsigned r = FX_CFG_PAM0; r <= FX_CFG_PAM_LAST; r++)
    fx->pci.config[r] = 0;
  fx->pci.config[FX_CFG_SMRAM] = SMRAM_RESET;
  fx_update_smram (fx);
}

static void
fx_reset (vmm_device *dev)
{
  i440fx *fx = (i440fx *) dev;
  vmm_pci_device_reset (&fx->pci);
  fx_config_defaults (fx);
  fx_update_pam (fx);
}

#define FX_STATE_TAG VMM_STATE_TAG ('I', '4', '4', '0')
#define FX_STATE_VERSION 1

static void
fx_save_state (vmm_device *dev, GByteArray *out)
{
  i440fx *fx = (i440fx *) dev;
  vmm_state_put_header (out, FX_STATE_TAG, FX_STATE_VERSION);
  vmm_state_put_bytes (out, fx->pci.config, VMM_PCI_CONFIG_SIZE);
}

static gboolean
fx_load_state (vmm_device *dev, const uint8_t *data, size_t len,
               GError **error)
{
  i440fx *fx = (i440fx *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];

  if (!vmm_state_begin (&rd, data, len, FX_STATE_TAG, FX_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, config, sizeof config);
  vmm_state_check (&rd, !memcmp (config, fx->pci.config, 4), "PCI ID");
  vmm_state_check (&rd,
                   (config[FX_CFG_SMRAM] & SMRAM_C_BASE_SEG) == SMRAM_RESET,
                   "SMRAM register");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  memcpy (fx->pci.config, config, sizeof config);
  fx_update_smram (fx);
  fx_update_pam (fx);
  return TRUE;
}

static void
fx_destroy (vmm_device *dev)
{
  g_mutex_clear (&dev->lock);
  g_free (dev);
}

static const vmm_device_ops fx_device_ops = {
  .reset = fx_reset,
  .save_state = fx_save_state,
  .load_state = fx_load_state,
  .destroy = fx_destroy,
};

i440fx *
i440fx_create (i440fx_pam_changed_fn pam_changed, void *opaque)
{
  i440fx *fx = g_new0 (i440fx, 1);
  vmm_device_init (&fx->dev, "i440fx", &fx_device_ops);
  fx->pam_changed = pam_changed;
  fx->opaque = opaque;
  vmm_pci_device_init (&fx->pci, &fx->dev, &fx_pci_ops, fx, 0x8086, 0x1237,
                       0x060000, 0x02);
  /* Firmware recognises a virtual i440FX board by this subsystem. */
  vmm_pci_set_subsystem (&fx->pci, 0x1af4, 0x1100);
  fx->pci.wmask[FX_CFG_PAM0] = 0x30;
  for (unsigned r = FX_CFG_PAM0 + 1; r <= FX_CFG_PAM_LAST; r++)
    fx->pci.wmask[r] = 0x33;
  fx_config_defaults (fx);
  return fx;
}

vmm_device *
i440fx_device (i440fx *fx)
{
  return &fx->dev;
}

vmm_pci_device *
i440fx_pci (i440fx *fx)
{
  return &fx->pci;
}

gboolean
i440fx_attach (i440fx *fx, vmm_pci_host *host, GError **error)
{
  return vmm_pci_host_attach (host, &fx->pci, I440FX_DEVFN, error);
}

i440fx_pam_mode
i440fx_pam_mode_get (i440fx *fx, unsigned segment)
{
  g_return_val_if_fail (segment < I440FX_PAM_SEGMENTS, I440FX_PAM_DISABLED);
  g_mutex_lock (&fx->dev.lock);
  unsigned mode = fx->pam[segment];
  g_mutex_unlock (&fx->dev.lock);
  return (i440fx_pam_mode) mode;
}

uint8_t
i440fx_smram (i440fx *fx)
{
  g_mutex_lock (&fx->dev.lock);
  uint8_t v = fx->pci.config[FX_CFG_SMRAM];
  g_mutex_unlock (&fx->dev.lock);
  return v;
}
