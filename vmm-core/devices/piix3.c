/* PIIX3 function 0. Register semantics: Intel 82371FB/SB PIIX/PIIX3
 * datasheet (290550-002): 2.2.9 PIRQRC[A:D], 2.7.7 RC (Reset Control,
 * 0xCF9), and the 8259 ELCR (edge/level control, 0x4D0/0x4D1) as the
 * PIIX3's interrupt controller documents it. */
#include "vmm-core/devices/piix3.h"

#include "vmm-core/devices/devstate.h"

enum {
  PIIX3_CFG_PIRQRC = 0x60,
};

enum {
  PIRQ_DISABLE = 0x80,
  PIRQ_IRQ_MASK = 0x0f,
  /* IRQ 0, 1, 2 (ELCR1) and 8, 13 (ELCR2) are always edge. */
  ELCR1_MASK = 0xf8,
  ELCR2_MASK = 0xde,
  RC_SYS_RST = 0x02,
  RC_RST_CPU = 0x04,
  RC_STORED = 0x0e,
};

/* Reset values of the other config registers (datasheet 2.2), kept as
 * plain storage: I/O recovery, X-bus chip select, top of memory, mother-
 * board IRQ/DMA, APIC base, SMI control. */
static const struct {
  uint8_t offset, value;
} piix3_defaults[] = {
  { 0x4c, 0x4d }, { 0x4e, 0x03 }, { 0x4f, 0x00 }, { 0x69, 0x02 },
  { 0x6a, 0x00 }, { 0x70, 0x80 }, { 0x76, 0x0c }, { 0x77, 0x0c },
  { 0x78, 0x02 }, { 0x79, 0x00 }, { 0x80, 0x00 }, { 0x82, 0x00 },
  { 0xa0, 0x08 }, { 0xa2, 0x00 }, { 0xa3, 0x00 }, { 0xa4, 0x00 },
  { 0xa5, 0x00 }, { 0xa6, 0x00 }, { 0xa7, 0x00 }, { 0xa8, 0x0f },
  { 0xaa, 0x00 }, { 0xab, 0x00 }, { 0xac, 0x00 }, { 0xae, 0x00 },
};

struct piix3 {
  vmm_device dev;
  vmm_pci_device pci;
  vmm_reset_request_fn reset_request;
  piix3_pirq_changed_fn pirq_changed;
  void *opaque;
  vmm_bus *pio;
  bool elcr_attached;
  /* Guest-visible state besides config space. */
  uint8_t elcr[2];
  uint8_t rc;
  /* The routing the board was last told about. */
  int8_t routed[PIIX3_NUM_PIRQS];
};

static int
pirq_decode (uint8_t v)
{
  if (v & PIRQ_DISABLE)
    return -1;
  unsigned irq = v & PIRQ_IRQ_MASK;
  /* 0-2, 8 and 13 are reserved values (2.2.9). */
  if (irq <= 2 || irq == 8 || irq == 13)
    return -1;
  return (int) irq;
}

static void
piix3_update_pirqs (piix3 *p)
{
  for (unsigned i = 0; i < PIIX3_NUM_PIRQS; i++)
    {
      int irq = pirq_decode (p->pci.config[PIIX3_CFG_PIRQRC + i]);
      if (irq == p->routed[i])
        continue;
      p->routed[i] = (int8_t) irq;
      if (p->pirq_changed)
        p->pirq_changed (p->opaque, i, irq);
    }
}

static void
piix3_config_written (vmm_pci_device *pci, unsigned offset, unsigned size,
                      uint32_t value)
{
  if (offset < PIIX3_CFG_PIRQRC + PIIX3_NUM_PIRQS
      && offset + size > PIIX3_CFG_PIRQRC)
    piix3_update_pirqs (pci->opaque);
}

static const vmm_pci_device_ops piix3_pci_ops = {
  .config_written = piix3_config_written,
};

static uint64_t
elcr_read (void *opaque, const vmm_access *a)
{
  piix3 *p = opaque;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && a->offset + i < 2; i++)
    v |= (uint64_t) p->elcr[a->offset + i] << (8 * i);
  return v;
}

static void
elcr_write (void *opaque, const vmm_access *a, uint64_t value)
{
  piix3 *p = opaque;
  for (unsigned i = 0; i < a->size && a->offset + i < 2; i++)
    {
      unsigned n = (unsigned) a->offset + i;
      p->elcr[n] = ((value >> (8 * i)) & 0xff) & (n ? ELCR2_MASK : ELCR1_MASK);
    }
}

static const vmm_region_ops elcr_ops = {
  .read = elcr_read,
  .write = elcr_write,
};

static uint64_t
rc_read (void *opaque, const vmm_access *a)
{
  return ((piix3 *) opaque)->rc;
}

/* RC (2.7.7): RST_CPU set with SYS_RST requests a hard (system) reset;
 * without it, a soft reset of the CPU. */
static void
rc_write (void *opaque, const vmm_access *a, uint64_t value)
{
  piix3 *p = opaque;
  p->rc = value & RC_STORED;
  if ((value & RC_RST_CPU) && p->reset_request)
    p->reset_request (p->opaque, (value & RC_SYS_RST) ? VMM_RESET_SYSTEM
                                                      : VMM_RESET_CPU);
}

static const vmm_region_ops rc_ops = {
  .read = rc_read,
  .write = rc_write,
};

static void
piix3_config_defaults (piix3 *p)
{
  uint8_t *cfg = p->pci.config;
  vmm_pci_put16 (cfg + PCI_CFG_COMMAND, 0x0007); /* hard-wired on */
  vmm_pci_put16 (cfg + PCI_CFG_STATUS, 0x0200);  /* medium DEVSEL */
  for (unsigned i = 0; i < PIIX3_NUM_PIRQS; i++)
    cfg[PIIX3_CFG_PIRQRC + i] = PIRQ_DISABLE;
  for (unsigned i = 0; i < G_N_ELEMENTS (piix3_defaults); i++)
    cfg[piix3_defaults[i].offset] = piix3_defaults[i].value;
}

static void
piix3_reset (vmm_device *dev)
{
  piix3 *p = (piix3 *) dev;
  vmm_pci_device_reset (&p->pci);
  piix3_config_defaults (p);
  p->elcr[0] = p->elcr[1] = 0;
  p->rc = 0;
  piix3_update_pirqs (p);
}

#define PIIX3_STATE_TAG VMM_STATE_TAG ('P', 'X', '3', 'B')
#define PIIX3_STATE_VERSION 1

static void
piix3_save_state (vmm_device *dev, GByteArray *out)
{
  piix3 *p = (piix3 *) dev;
  vmm_state_put_header (out, PIIX3_STATE_TAG, PIIX3_STATE_VERSION);
  vmm_state_put_bytes (out, p->pci.config, VMM_PCI_CONFIG_SIZE);
  vmm_state_put_u8 (out, p->elcr[0]);
  vmm_state_put_u8 (out, p->elcr[1]);
  vmm_state_put_u8 (out, p->rc);
}

static gboolean
piix3_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                  GError **error)
{
  piix3 *p = (piix3 *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  uint8_t elcr[2], rc;

  if (!vmm_state_begin (&rd, data, len, PIIX3_STATE_TAG, PIIX3_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, config, sizeof config);
  elcr[0] = vmm_state_get_u8 (&rd);
  elcr[1] = vmm_state_get_u8 (&rd);
  rc = vmm_state_get_u8 (&rd);
  vmm_state_check (&rd, !memcmp (config, p->pci.config, 4), "PCI ID");
  vmm_state_check (&rd, !(elcr[0] & ~ELCR1_MASK) && !(elcr[1] & ~ELCR2_MASK),
                   "ELCR");
  vmm_state_check (&rd, !(rc & ~RC_STORED), "reset control register");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  memcpy (p->pci.config, config, sizeof config);
  p->elcr[0] = elcr[0];
  p->elcr[1] = elcr[1];
  p->rc = rc;
  piix3_update_pirqs (p);
  return TRUE;
}

static void
piix3_destroy (vmm_device *dev)
{
  piix3 *p = (piix3 *) dev;
  if (p->elcr_attached)
    vmm_bus_unregister (p->pio, PIIX3_ELCR_PORT, p);
  g_mutex_clear (&dev->lock);
  g_free (p);
}

static const vmm_device_ops piix3_device_ops = {
  .reset = piix3_reset,
  .save_state = piix3_save_state,
  .load_state = piix3_load_state,
  .destroy = piix3_destroy,
};

piix3 *
piix3_create (vmm_reset_request_fn reset_request,
              piix3_pirq_changed_fn pirq_changed, void *opaque)
{
  piix3 *p = g_new0 (piix3, 1);
  vmm_device_init (&p->dev, "piix3", &piix3_device_ops);
  p->reset_request = reset_request;
  p->pirq_changed = pirq_changed;
  p->opaque = opaque;
  vmm_pci_device_init (&p->pci, &p->dev, &piix3_pci_ops, p, 0x8086, 0x7000,
                       0x060100, 0x00);
  p->pci.config[PCI_CFG_HEADER_TYPE] = 0x80; /* multi-function */
  p->pci.wmask[PCI_CFG_COMMAND] = 0;
  p->pci.wmask[PCI_CFG_COMMAND + 1] = 0;
  for (unsigned i = 0; i < PIIX3_NUM_PIRQS; i++)
    p->pci.wmask[PIIX3_CFG_PIRQRC + i] = PIRQ_DISABLE | PIRQ_IRQ_MASK;
  for (unsigned i = 0; i < G_N_ELEMENTS (piix3_defaults); i++)
    p->pci.wmask[piix3_defaults[i].offset] = 0xff;
  piix3_config_defaults (p);
  for (unsigned i = 0; i < PIIX3_NUM_PIRQS; i++)
    p->routed[i] = -1;
  return p;
}

vmm_device *
piix3_device (piix3 *p)
{
  return &p->dev;
}

vmm_pci_device *
piix3_pci (piix3 *p)
{
  return &p->pci;
}

gboolean
piix3_attach (piix3 *p, vmm_pci_host *host, vmm_bus *pio, GError **error)
{
  g_return_val_if_fail (!p->elcr_attached, FALSE);
  if (!vmm_bus_register (pio, PIIX3_ELCR_PORT, 2, &p->dev, &elcr_ops, p,
                         error))
    return FALSE;
  if (!vmm_pci_host_attach (host, &p->pci, PIIX3_DEVFN, error))
    {
      vmm_bus_unregister (pio, PIIX3_ELCR_PORT, p);
      return FALSE;
    }
  p->pio = pio;
  p->elcr_attached = true;
  vmm_pci_host_set_cf9_handler (host, &p->dev, &rc_ops, p);
  return TRUE;
}

int
piix3_pirq_to_irq (piix3 *p, unsigned pirq)
{
  if (pirq >= PIIX3_NUM_PIRQS)
    return -1;
  g_mutex_lock (&p->dev.lock);
  int irq = pirq_decode (p->pci.config[PIIX3_CFG_PIRQRC + pirq]);
  g_mutex_unlock (&p->dev.lock);
  return irq;
}

bool
piix3_irq_is_level (piix3 *p, unsigned irq)
{
  if (irq >= 16)
    return false;
  g_mutex_lock (&p->dev.lock);
  bool level = p->elcr[irq / 8] & (1u << (irq % 8));
  g_mutex_unlock (&p->dev.lock);
  return level;
}
