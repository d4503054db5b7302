/* PIIX4 power management: config space, PM1 registers, SCI, timer. */
#include "fake-clock.h"
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/piix4-pm.h"

#define NS 1000000000ull
#define DEVFN PIIX4_PM_DEVFN
#define SCI PIIX4_PM_SCI_IRQ

typedef struct {
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  fake_clock *fc;
  fake_irq irq;
  piix4_pm *pm;
  unsigned poweroffs;
} fixture;

static void
on_poweroff (void *opaque)
{
  ((fixture *) opaque)->poweroffs++;
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->host = vmm_pci_host_new (f->pio, f->mmio, NULL, NULL, &error);
  g_assert_no_error (error);
  f->fc = fake_clock_new (123456789);
  vmm_irq sci = fake_irq_line (&f->irq, SCI);
  f->pm = piix4_pm_create (f->pio, fake_clock_get (f->fc), &sci, on_poweroff,
                           f);
  g_assert_true (piix4_pm_attach (f->pm, f->host, DEVFN, &error));
  g_assert_no_error (error);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_pci_host_free (f->host);
  vmm_device_destroy (piix4_pm_device (f->pm));
  fake_clock_free (f->fc);
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
}

static uint32_t
cfg_read (fixture *f, unsigned off, unsigned size)
{
  return vmm_pci_config_read (f->host, 0, DEVFN, off, size);
}

static void
cfg_write (fixture *f, unsigned off, unsigned size, uint32_t v)
{
  vmm_pci_config_write (f->host, 0, DEVFN, off, size, v);
}

/* What firmware does: PMBASE 0x600, then PMIOSE. */
static void
enable_pm_io (fixture *f, uint16_t base)
{
  cfg_write (f, 0x40, 4, base | 1);
  cfg_write (f, 0x80, 1, 0x01);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, base);
}

static void
test_config (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cfg_read (f, 0x00, 4), ==, 0x71138086);
  g_assert_cmphex (cfg_read (f, 0x08, 4), ==, 0x06800003);
  g_assert_cmphex (cfg_read (f, 0x0e, 1), ==, 0x00);
  g_assert_cmphex (cfg_read (f, 0x3d, 1), ==, 0x01);
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0x00000001);
  g_assert_cmphex (cfg_read (f, 0x5b, 1), ==, 0x02);
  g_assert_cmphex (cfg_read (f, 0x58, 4), ==, 0x02000000);
  /* PMBASE: 64-byte aligned, bit 0 always 1, upper half reserved. */
  cfg_write (f, 0x40, 4, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0x0000ffc1);
  cfg_write (f, 0x40, 4, 0x0600);
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0x00000601);
  cfg_write (f, 0x80, 1, 0xff);
  g_assert_cmphex (cfg_read (f, 0x80, 1), ==, 0x01);
  /* DEVACTB is read-only here: APMC_EN stays set. */
  cfg_write (f, 0x58, 4, 0);
  g_assert_cmphex (cfg_read (f, 0x5b, 1), ==, 0x02);
}

static void
test_pmbase_relocation (fixture *f, gconstpointer data)
{
  /* Nothing decoded until both PMBASE and PMIOSE are set. */
  g_assert_cmphex (tu_inw (f->pio, 0x600), ==, 0xffff);
  cfg_write (f, 0x40, 4, 0x601);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0);
  g_assert_cmphex (tu_inw (f->pio, 0x600), ==, 0xffff);
  cfg_write (f, 0x80, 1, 0x01);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0x600);
  tu_outw (f->pio, 0x602, 0x0100);
  g_assert_cmphex (tu_inw (f->pio, 0x602), ==, 0x0100);
  /* Moving PMBASE moves the block and keeps its registers. */
  cfg_write (f, 0x40, 2, 0xb001);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0xb000);
  g_assert_cmphex (tu_inw (f->pio, 0x602), ==, 0xffff);
  g_assert_cmphex (tu_inw (f->pio, 0xb002), ==, 0x0100);
  /* PMIOSE off: gone. */
  cfg_write (f, 0x80, 1, 0x00);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0);
  g_assert_cmphex (tu_inw (f->pio, 0xb002), ==, 0xffff);
  /* A PMBASE over another device's ports is not decoded, and recovers. */
  g_assert_true (vmm_bus_register (f->pio, 0xc000, 1, NULL,
                                   &(vmm_region_ops){ 0 }, f, NULL));
  cfg_write (f, 0x40, 4, 0xc001);
  cfg_write (f, 0x80, 1, 0x01);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0);
  cfg_write (f, 0x40, 4, 0x0601);
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0x600);
  vmm_bus_unregister (f->pio, 0xc000, f);
  /* Reset puts PMBASE back and stops decoding. */
  vmm_device_reset (piix4_pm_device (f->pm));
  g_assert_cmpuint (piix4_pm_io_base (f->pm), ==, 0);
  g_assert_cmphex (cfg_read (f, 0x40, 4), ==, 0x00000001);
  g_assert_cmphex (cfg_read (f, 0x80, 1), ==, 0x00);
}

static void
test_pm1_and_sci (fixture *f, gconstpointer data)
{
  enable_pm_io (f, 0x600);
  /* Out of reset SCI_EN is set (the FADT says "always ACPI mode"). */
  g_assert_cmphex (tu_inw (f->pio, 0x604) & 1, ==, 1);
  /* With ACPI disabled through SMI_CMD, the power button sets its status
   * but raises no SCI. */
  tu_outb (f->pio, 0xb2, PIIX4_PM_ACPI_DISABLE);
  g_assert_cmphex (tu_inw (f->pio, 0x604) & 1, ==, 0);
  piix4_pm_power_button (f->pm);
  g_assert_cmphex (tu_inw (f->pio, 0x600) & 0x0100, ==, 0x0100);
  tu_outw (f->pio, 0x602, 0x0100);
  g_assert_false (f->irq.level[SCI]);
  /* ACPI_ENABLE through SMI_CMD sets SCI_EN (no SMM to do it). */
  tu_outb (f->pio, 0xb2, PIIX4_PM_ACPI_ENABLE);
  g_assert_cmphex (tu_inb (f->pio, 0xb2), ==, PIIX4_PM_ACPI_ENABLE);
  g_assert_cmphex (tu_inw (f->pio, 0x604) & 1, ==, 1);
  g_assert_true (f->irq.level[SCI]);
  /* Write-1-to-clear: writing 0 changes nothing, 1 clears. */
  tu_outw (f->pio, 0x600, 0x0000);
  g_assert_true (f->irq.level[SCI]);
  tu_outw (f->pio, 0x600, 0x0100);
  g_assert_false (f->irq.level[SCI]);
  g_assert_cmphex (tu_inw (f->pio, 0x600) & 0x0100, ==, 0);
  /* Status with the enable off: no SCI until enabled. */
  tu_outw (f->pio, 0x602, 0x0000);
  piix4_pm_power_button (f->pm);
  g_assert_false (f->irq.level[SCI]);
  tu_outb (f->pio, 0x603, 0x01);
  g_assert_true (f->irq.level[SCI]);
  /* SCI_EN off masks it. */
  tu_outb (f->pio, 0xb2, PIIX4_PM_ACPI_DISABLE);
  g_assert_false (f->irq.level[SCI]);
  tu_outw (f->pio, 0x604, 0x0001);
  g_assert_true (f->irq.level[SCI]);
  tu_outb (f->pio, 0x601, 0x01); /* byte-wide W1C of PWRBTN_STS */
  g_assert_false (f->irq.level[SCI]);
  /* WAK_STS is W1C too. */
  tu_outw (f->pio, 0x600, 0xffff);
  g_assert_cmphex (tu_inw (f->pio, 0x600) & 0x8100, ==, 0);
  /* GPE0: status W1C, enable, SCI. */
  piix4_pm_set_gpe (f->pm, 1);
  g_assert_cmphex (tu_inw (f->pio, 0x60c), ==, 0x0002);
  g_assert_false (f->irq.level[SCI]);
  tu_outw (f->pio, 0x60e, 0x0002);
  g_assert_cmphex (tu_inw (f->pio, 0x60e), ==, 0x0002);
  g_assert_true (f->irq.level[SCI]);
  tu_outw (f->pio, 0x60c, 0x0002);
  g_assert_false (f->irq.level[SCI]);
  /* APMS is a plain register. */
  tu_outb (f->pio, 0xb3, 0x5a);
  g_assert_cmphex (tu_inb (f->pio, 0xb3), ==, 0x5a);
  /* Reset clears PM1/GPE and lowers the SCI. */
  piix4_pm_set_gpe (f->pm, 1);
  g_assert_true (f->irq.level[SCI]);
  vmm_device_reset (piix4_pm_device (f->pm));
  g_assert_false (f->irq.level[SCI]);
}

static void
test_sleep (fixture *f, gconstpointer data)
{
  enable_pm_io (f, 0x600);
  /* SLP_TYP alone does nothing; SLP_EN reads back as 0. */
  tu_outw (f->pio, 0x604, 0x0001 | (5 << 10));
  g_assert_cmphex (tu_inw (f->pio, 0x604), ==, 0x0001 | (5 << 10));
  g_assert_cmpuint (f->poweroffs, ==, 0);
  /* Another sleep type with SLP_EN: logged and ignored. */
  tu_outw (f->pio, 0x604, 0x0001 | (1 << 10) | (1 << 13));
  g_assert_cmpuint (f->poweroffs, ==, 0);
  g_assert_cmphex (tu_inw (f->pio, 0x604) & (1 << 13), ==, 0);
  /* S5 as Vessel's DSDT defines it: SLP_TYP 0 with SLP_EN. */
  tu_outw (f->pio, 0x604, 0x0001 | (1 << 13));
  g_assert_cmpuint (f->poweroffs, ==, 1);
  /* Byte-wide write of the high byte works too. */
  tu_outb (f->pio, 0x605, 0x20);
  g_assert_cmpuint (f->poweroffs, ==, 2);
}

static void
test_pm_timer (fixture *f, gconstpointer data)
{
  enable_pm_io (f, 0x600);
  uint32_t t0 = tu_inl (f->pio, 0x608);
  g_assert_cmphex (t0 & 0xff000000, ==, 0);
  /* 3.579545 MHz: one second is 3579545 ticks. */
  fake_clock_advance (f->fc, NS);
  uint32_t t1 = tu_inl (f->pio, 0x608);
  g_assert_cmpuint ((t1 - t0) & 0xffffff, >=, 3579544);
  g_assert_cmpuint ((t1 - t0) & 0xffffff, <=, 3579546);
  fake_clock_advance (f->fc, 1000);
  g_assert_cmpuint ((tu_inl (f->pio, 0x608) - t1) & 0xffffff, >=, 3);
  g_assert_cmpuint ((tu_inl (f->pio, 0x608) - t1) & 0xffffff, <=, 4);
  /* Read-only. */
  tu_outl (f->pio, 0x608, 0);
  g_assert_cmpuint (tu_inl (f->pio, 0x608), ==,
                    tu_inl (f->pio, 0x608));
  g_assert_cmpuint (tu_inl (f->pio, 0x608), !=, 0);

  /* TMR_STS on bit 23 toggles; with TMR_EN and SCI_EN, an SCI. */
  tu_outw (f->pio, 0x600, 0x0001);
  g_assert_cmphex (tu_inw (f->pio, 0x600) & 1, ==, 0);
  tu_outb (f->pio, 0xb2, PIIX4_PM_ACPI_ENABLE);
  tu_outw (f->pio, 0x602, 0x0001);
  uint32_t now = tu_inl (f->pio, 0x608);
  uint64_t to_toggle = 0x800000 - (now & 0x7fffff);
  uint64_t ns = to_toggle * NS / PIIX4_PM_TIMER_HZ;
  fake_clock_advance (f->fc, ns - 1000);
  g_assert_false (f->irq.level[SCI]);
  fake_clock_advance (f->fc, 2000);
  g_assert_true (f->irq.level[SCI]);
  g_assert_cmphex (tu_inw (f->pio, 0x600) & 1, ==, 1);
  tu_outw (f->pio, 0x600, 0x0001);
  g_assert_false (f->irq.level[SCI]);
  /* The next one ~2.34 s later. */
  fake_clock_advance (f->fc, 2343 * 1000000ull);
  g_assert_false (f->irq.level[SCI]);
  fake_clock_advance (f->fc, 2 * 1000000ull);
  g_assert_true (f->irq.level[SCI]);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/piix4-pm/" name, fixture, NULL, setup, fn, teardown)
  ADD ("config", test_config);
  ADD ("pmbase-relocation", test_pmbase_relocation);
  ADD ("pm1-and-sci", test_pm1_and_sci);
  ADD ("sleep", test_sleep);
  ADD ("pm-timer", test_pm_timer);
  return g_test_run ();
}
