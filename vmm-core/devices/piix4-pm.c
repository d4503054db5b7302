/* PIIX4 function 3, power management. Register semantics: Intel 82371AB
 * PIIX4 datasheet (290562-001), 3.3 "Power management PCI configuration"
 * and 3.4 "System I/O registers", with the ACPI 1.0 fixed hardware model
 * (ACPI spec 4.7-4.8). Vessel has no SMM: DEVACTB.APMC_EN reads set so
 * firmware skips SMM set-up, and APMC writes of ACPI_ENABLE/ACPI_DISABLE
 * switch SCI_EN themselves. */
#include "vmm-core/devices/piix4-pm.h"

#include "vmm-core/devices/devstate.h"
#include "vmm-core/devices/isa.h"

/* Config registers (PIIX4 3.3). */
enum {
  PM_CFG_PMBA = 0x40,      /* PMBASE, I/O space indicator in bit 0 */
  PM_CFG_DEVACTB = 0x5b,   /* byte 3 of DEVACTB (0x58) */
  PM_CFG_PMREGMISC = 0x80, /* bit 0 PMIOSE: PM I/O space enable */
};
#define DEVACTB_APMC_EN 0x02 /* bit 25 of the dword at 0x58 */

/* PM1 bits (ACPI 4.7.3.1, table 4-12/4-13/4-16). */
enum {
  PM1_TMR = 1u << 0,
  PM1_BM = 1u << 4,
  PM1_GBL = 1u << 5,
  PM1_PWRBTN = 1u << 8,
  PM1_RTC = 1u << 10,
  PM1_WAK = 1u << 15,
  PM1_EN_MASK = PM1_TMR | PM1_GBL | PM1_PWRBTN | PM1_RTC,
  PM1_SCI_SOURCES = PM1_TMR | PM1_PWRBTN,

  CNT_SCI_EN = 1u << 0,
  CNT_BM_RLD = 1u << 1,
  CNT_GBL_RLS = 1u << 2,
  CNT_SLP_TYP_SHIFT = 10,
  CNT_SLP_TYP = 7u << 10,
  CNT_SLP_EN = 1u << 13,
  CNT_STORED = CNT_SCI_EN | CNT_BM_RLD | CNT_SLP_TYP,
};

#define NS_PER_SEC G_GUINT64_CONSTANT (1000000000)
#define PM_TMR_MASK 0xffffffu

/* Guest-visible state apart from config space. */
typedef struct pm_regs {
  uint16_t pm1_sts;
  uint16_t pm1_en;
  uint16_t pm1_cnt;
  uint16_t gpe0_sts;
  uint16_t gpe0_en;
  uint8_t apmc;
  uint8_t apms;
} pm_regs;

struct piix4_pm {
  vmm_device dev;
  vmm_pci_device pci;
  vmm_bus *pio;
  vmm_clock *clock;
  vmm_irq sci;
  bool sci_level;
  piix4_pm_poweroff_fn poweroff;
  void *opaque;
  vmm_timer *tmr_timer;
  uint64_t tmr_epoch; /* PM_TMR >> 23 when TMR_STS was last brought up to date */
  uint16_t io_base;   /* 0: the PM block is not decoded */
  bool apm_attached;
  pm_regs r;
};

static uint64_t
pm_ticks_at (uint64_t ns)
{
  return ns / NS_PER_SEC * PIIX4_PM_TIMER_HZ
         + ns % NS_PER_SEC * PIIX4_PM_TIMER_HZ / NS_PER_SEC;
}

/* The first clock time at which the counter reads @ticks. */
static uint64_t
pm_ns_at (uint64_t ticks)
{
  return ticks / PIIX4_PM_TIMER_HZ * NS_PER_SEC
         + (ticks % PIIX4_PM_TIMER_HZ * NS_PER_SEC + PIIX4_PM_TIMER_HZ - 1)
               / PIIX4_PM_TIMER_HZ;
}

static uint64_t
pm_ticks (piix4_pm *pm)
{
  return pm_ticks_at (vmm_clock_now (pm->clock));
}

/* TMR_STS: set whenever bit 23 of the counter toggles (ACPI 4.7.2.1). */
static void
pm_sync_tmr_sts (piix4_pm *pm)
{
  uint64_t epoch = pm_ticks (pm) >> 23;
  if (epoch != pm->tmr_epoch)
    {
      pm->tmr_epoch = epoch;
      pm->r.pm1_sts |= PM1_TMR;
    }
}

static void
pm_update_sci (piix4_pm *pm)
{
  const pm_regs *r = &pm->r;
  bool level = (r->pm1_cnt & CNT_SCI_EN)
               && ((r->pm1_sts & r->pm1_en & PM1_SCI_SOURCES)
                   || (r->gpe0_sts & r->gpe0_en));
  if (level != pm->sci_level)
    {
      pm->sci_level = level;
      vmm_irq_set (&pm->sci, level);
    }
}

/* With TMR_EN set, a timer raises TMR_STS at the next bit-23 toggle. */
static void
pm_arm_tmr (piix4_pm *pm)
{
  if (!(pm->r.pm1_en & PM1_TMR))
    {
      vmm_timer_cancel (pm->tmr_timer);
      return;
    }
  uint64_t next = ((pm_ticks (pm) >> 23) + 1) << 23;
  vmm_timer_arm (pm->tmr_timer, pm_ns_at (next));
}

static void
pm_tmr_fired (void *opaque)
{
  piix4_pm *pm = opaque;
  g_mutex_lock (&pm->dev.lock);
  pm_sync_tmr_sts (pm);
  pm_update_sci (pm);
  pm_arm_tmr (pm);
  g_mutex_unlock (&pm->dev.lock);
}

static uint8_t
pm_read_byte (piix4_pm *pm, unsigned off, uint32_t tmr)
{
  const pm_regs *r = &pm->r;
  unsigned shift = 8 * (off & 1);
  switch (off)
    {
    case 0x00:
    case 0x01:
      return (r->pm1_sts >> shift) & 0xff;
    case 0x02:
    case 0x03:
      return (r->pm1_en >> shift) & 0xff;
    case 0x04:
    case 0x05:
      return (r->pm1_cnt >> shift) & 0xff;
    case 0x08:
    case 0x09:
    case 0x0a:
    case 0x0b:
      return (tmr >> (8 * (off - 8))) & 0xff;
    case 0x0c:
    case 0x0d:
      return (r->gpe0_sts >> shift) & 0xff;
    case 0x0e:
    case 0x0f:
      return (r->gpe0_en >> shift) & 0xff;
    }
  return 0;
}

static void
pm_sleep (piix4_pm *pm, unsigned slp_typ)
{
  if (slp_typ == 0)
    {
      /* PIIX4 SUS_TYP 000: soft off; Vessel's DSDT _S5 says 0. */
      if (pm->poweroff)
        pm->poweroff (pm->opaque);
      return;
    }
  g_info ("%s: guest asked for sleep type %u, which Vessel does not offer",
          pm->dev.name, slp_typ);
}

static void
pm_write_byte (piix4_pm *pm, unsigned off, uint8_t v)
{
  pm_regs *r = &pm->r;
  unsigned shift = 8 * (off & 1);
  switch (off)
    {
    case 0x00:
    case 0x01:
      pm_sync_tmr_sts (pm);
      r->pm1_sts &= ~(uint16_t) (v << shift); /* write 1 to clear */
      break;
    case 0x02:
    case 0x03:
      r->pm1_en = (r->pm1_en & ~(0xff << shift))
                  | ((v << shift) & PM1_EN_MASK);
      if (r->pm1_en & PM1_TMR)
        pm_sync_tmr_sts (pm);
      pm_arm_tmr (pm);
      break;
    case 0x04:
    case 0x05:
      {
        uint16_t val = (uint16_t) (v << shift);
        r->pm1_cnt = (r->pm1_cnt & ~(0xff << shift)) | (val & CNT_STORED);
        /* GBL_RLS would raise an SMI toward firmware: there is none. */
        if (val & CNT_SLP_EN)
          pm_sleep (pm, (val & CNT_SLP_TYP) >> CNT_SLP_TYP_SHIFT);
        break;
      }
    case 0x0c:
    case 0x0d:
      r->gpe0_sts &= ~(uint16_t) (v << shift);
      break;
    case 0x0e:
    case 0x0f:
      r->gpe0_en = (r->gpe0_en & ~(0xff << shift)) | (v << shift);
      break;
    }
  pm_update_sci (pm);
}

static uint64_t
pm_io_read (void *opaque, const vmm_access *a)
{
  piix4_pm *pm = opaque;
  /* One counter sample per access, so a 32-bit read is consistent. */
  uint32_t tmr = (uint32_t) (pm_ticks (pm) & PM_TMR_MASK);
  uint64_t v = 0;
  if (a->offset <= 1)
    pm_sync_tmr_sts (pm);
  for (unsigned i = 0; i < a->size && i < 8; i++)
    v |= (uint64_t) pm_read_byte (pm, (unsigned) a->offset + i, tmr) << (8 * i);
  return v;
}

static void
pm_io_write (void *opaque, const vmm_access *a, uint64_t value)
{
  piix4_pm *pm = opaque;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    pm_write_byte (pm, (unsigned) a->offset + i, (value >> (8 * i)) & 0xff);
}

static const vmm_region_ops pm_io_ops = {
  .read = pm_io_read,
  .write = pm_io_write,
};

/* Decodes the PM block where PMBASE says, when PMIOSE is set (3.3.1,
 * 3.3.21). */
static void
pm_update_io (piix4_pm *pm)
{
  const uint8_t *cfg = pm->pci.config;
  uint16_t want = 0;
  if (cfg[PM_CFG_PMREGMISC] & 1)
    want = vmm_pci_get32 (cfg + PM_CFG_PMBA) & 0xffc0;
  if (want == pm->io_base)
    return;
  if (pm->io_base)
    vmm_bus_unregister (pm->pio, pm->io_base, pm);
  pm->io_base = 0;
  if (want)
    {
      g_autoptr (GError) error = NULL;
      if (vmm_bus_register (pm->pio, want, PIIX4_PM_IO_SIZE, &pm->dev,
                            &pm_io_ops, pm, &error))
        pm->io_base = want;
      else
        g_debug ("%s: PM block not decoded: %s", pm->dev.name,
                 error->message);
    }
}

static void
pm_config_written (vmm_pci_device *pci, unsigned offset, unsigned size,
                   uint32_t value)
{
  piix4_pm *pm = pci->opaque;
  if ((offset < PM_CFG_PMBA + 4 && offset + size > PM_CFG_PMBA)
      || (offset <= PM_CFG_PMREGMISC && offset + size > PM_CFG_PMREGMISC))
    pm_update_io (pm);
}

static const vmm_pci_device_ops pm_pci_ops = {
  .config_written = pm_config_written,
};

static uint64_t
apm_read (void *opaque, const vmm_access *a)
{
  piix4_pm *pm = opaque;
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    v |= (uint64_t) (a->offset + i == 0 ? pm->r.apmc : pm->r.apms) << (8 * i);
  return v;
}

static void
apm_write (void *opaque, const vmm_access *a, uint64_t value)
{
  piix4_pm *pm = opaque;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    {
      uint8_t v = (value >> (8 * i)) & 0xff;
      if (a->offset + i != 0)
        {
          pm->r.apms = v;
          continue;
        }
      pm->r.apmc = v;
      if (v == PIIX4_PM_ACPI_ENABLE)
        pm->r.pm1_cnt |= CNT_SCI_EN;
      else if (v == PIIX4_PM_ACPI_DISABLE)
        pm->r.pm1_cnt &= ~CNT_SCI_EN;
    }
  pm_update_sci (pm);
}

static const vmm_region_ops apm_ops = {
  .read = apm_read,
  .write = apm_write,
};

static void
pm_config_defaults (piix4_pm *pm)
{
  uint8_t *cfg = pm->pci.config;
  vmm_pci_put32 (cfg + PM_CFG_PMBA, 0x00000001);
  cfg[PM_CFG_PMREGMISC] = 0;
  cfg[PM_CFG_DEVACTB] = DEVACTB_APMC_EN;
}

static void
pm_reset (vmm_device *dev)
{
  piix4_pm *pm = (piix4_pm *) dev;
  vmm_pci_device_reset (&pm->pci);
  pm_config_defaults (pm);
  /* Vessel's FADT has SMI_CMD 0 ("always in ACPI mode", ACPI 6.x 5.2.9),
   * so SCI_EN comes out of reset set; the APMC handshake below still works
   * for guests that try it. */
  pm->r = (pm_regs){ .pm1_cnt = CNT_SCI_EN };
  pm->tmr_epoch = pm_ticks (pm) >> 23;
  vmm_timer_cancel (pm->tmr_timer);
  pm_update_io (pm);
  pm_update_sci (pm);
}

#define PM_STATE_TAG VMM_STATE_TAG ('P', 'X', 'P', 'M')
#define PM_STATE_VERSION 1

static void
pm_save_state (vmm_device *dev, GByteArray *out)
{
  piix4_pm *pm = (piix4_pm *) dev;
  pm_sync_tmr_sts (pm);
  vmm_state_put_header (out, PM_STATE_TAG, PM_STATE_VERSION);
  vmm_state_put_bytes (out, pm->pci.config, VMM_PCI_CONFIG_SIZE);
  vmm_state_put_u16 (out, pm->r.pm1_sts);
  vmm_state_put_u16 (out, pm->r.pm1_en);
  vmm_state_put_u16 (out, pm->r.pm1_cnt);
  vmm_state_put_u16 (out, pm->r.gpe0_sts);
  vmm_state_put_u16 (out, pm->r.gpe0_en);
  vmm_state_put_u8 (out, pm->r.apmc);
  vmm_state_put_u8 (out, pm->r.apms);
}

static gboolean
pm_load_state (vmm_device *dev, const uint8_t *data, size_t len,
               GError **error)
{
  piix4_pm *pm = (piix4_pm *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  pm_regs r;

  if (!vmm_state_begin (&rd, data, len, PM_STATE_TAG, PM_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, config, sizeof config);
  r.pm1_sts = vmm_state_get_u16 (&rd);
  r.pm1_en = vmm_state_get_u16 (&rd);
  r.pm1_cnt = vmm_state_get_u16 (&rd);
  r.gpe0_sts = vmm_state_get_u16 (&rd);
  r.gpe0_en = vmm_state_get_u16 (&rd);
  r.apmc = vmm_state_get_u8 (&rd);
  r.apms = vmm_state_get_u8 (&rd);
  vmm_state_check (&rd, !memcmp (config, pm->pci.config, 4), "PCI ID");
  vmm_state_check (&rd, !(r.pm1_en & ~PM1_EN_MASK), "PM1_EN");
  vmm_state_check (&rd, !(r.pm1_cnt & ~CNT_STORED), "PM1_CNT");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  memcpy (pm->pci.config, config, sizeof config);
  pm->r = r;
  pm->tmr_epoch = pm_ticks (pm) >> 23;
  pm_update_io (pm);
  pm_arm_tmr (pm);
  pm_update_sci (pm);
  return TRUE;
}

static void
pm_destroy (vmm_device *dev)
{
  piix4_pm *pm = (piix4_pm *) dev;
  if (pm->io_base)
    vmm_bus_unregister (pm->pio, pm->io_base, pm);
  if (pm->apm_attached)
    vmm_bus_unregister (pm->pio, PIIX4_PM_APM_PORT, pm);
  vmm_timer_free (pm->tmr_timer);
  g_mutex_clear (&dev->lock);
  g_free (pm);
}

static const vmm_device_ops pm_device_ops = {
  .reset = pm_reset,
  .save_state = pm_save_state,
  .load_state = pm_load_state,
  .destroy = pm_destroy,
};

piix4_pm *
piix4_pm_create (vmm_bus *pio, vmm_clock *clock, const vmm_irq *sci,
                 piix4_pm_poweroff_fn poweroff, void *opaque)
{
  piix4_pm *pm = g_new0 (piix4_pm, 1);
  vmm_device_init (&pm->dev, "piix4-pm", &pm_device_ops);
  pm->pio = pio;
  pm->clock = clock;
  if (sci)
    pm->sci = *sci;
  pm->poweroff = poweroff;
  pm->opaque = opaque;
  pm->tmr_timer = vmm_timer_new (clock, pm_tmr_fired, pm);
  pm->tmr_epoch = pm_ticks (pm) >> 23;

  vmm_pci_device_init (&pm->pci, &pm->dev, &pm_pci_ops, pm, 0x8086, 0x7113,
                       0x068000, 0x03);
  vmm_pci_set_interrupt_pin (&pm->pci, 1); /* INTA#, as on the real part */
  /* PMBASE bits 15:6 (64-byte block), PMIOSE. */
  pm->pci.wmask[PM_CFG_PMBA] = 0xc0;
  pm->pci.wmask[PM_CFG_PMBA + 1] = 0xff;
  pm->pci.wmask[PM_CFG_PMREGMISC] = 0x01;
  pm_config_defaults (pm);
  pm->r.pm1_cnt = CNT_SCI_EN; /* as after reset: see pm_reset */
  return pm;
}

vmm_device *
piix4_pm_device (piix4_pm *pm)
{
  return &pm->dev;
}

vmm_pci_device *
piix4_pm_pci (piix4_pm *pm)
{
  return &pm->pci;
}

gboolean
piix4_pm_attach (piix4_pm *pm, vmm_pci_host *host, unsigned devfn,
                 GError **error)
{
  g_return_val_if_fail (!pm->apm_attached, FALSE);
  if (!vmm_bus_register (pm->pio, PIIX4_PM_APM_PORT, 2, &pm->dev, &apm_ops,
                         pm, error))
    return FALSE;
  if (!vmm_pci_host_attach (host, &pm->pci, devfn, error))
    {
      vmm_bus_unregister (pm->pio, PIIX4_PM_APM_PORT, pm);
      return FALSE;
    }
  pm->apm_attached = true;
  return TRUE;
}

void
piix4_pm_power_button (piix4_pm *pm)
{
  g_mutex_lock (&pm->dev.lock);
  pm->r.pm1_sts |= PM1_PWRBTN;
  pm_update_sci (pm);
  g_mutex_unlock (&pm->dev.lock);
}

void
piix4_pm_set_gpe (piix4_pm *pm, unsigned bit)
{
  g_return_if_fail (bit < 16);
  g_mutex_lock (&pm->dev.lock);
  pm->r.gpe0_sts |= 1u << bit;
  pm_update_sci (pm);
  g_mutex_unlock (&pm->dev.lock);
}

uint16_t
piix4_pm_io_base (piix4_pm *pm)
{
  g_mutex_lock (&pm->dev.lock);
  uint16_t base = pm->io_base;
  g_mutex_unlock (&pm->dev.lock);
  return base;
}
