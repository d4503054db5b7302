/* PCI configuration mechanism #1 and the generic config-space behaviour:
 * BAR sizing and decoding, command/status, INTx, capabilities, 0xCF9. */
#include <gio/gio.h>

#include "test-util.h"
#include "vmm-core/bus/pci.h"

#define CFG_ADDR 0xcf8
#define CFG_DATA 0xcfc
#define TEST_DEVFN VMM_PCI_DEVFN (3, 0)

typedef struct intx_event {
  unsigned devfn, pin;
  bool level;
} intx_event;

typedef struct tdev {
  vmm_device dev;
  vmm_pci_device pci;
  /* bar_mapped hook */
  unsigned mapped_calls;
  unsigned last_bar;
  uint64_t last_addr;
  /* BAR handlers */
  unsigned bar_reads, bar_writes;
  vmm_access last_access;
  bool lock_held;
  /* config_written hook */
  unsigned written_calls;
} tdev;

typedef struct fixture {
  vmm_bus *pio, *mmio;
  vmm_pci_host *host;
  tdev d;
  GArray *intx; /* intx_event */
  /* 0xCF9 */
  unsigned cf9_reads, cf9_writes;
  uint64_t cf9_value;
  bool cf9_lock_held;
} fixture;

static bool
lock_is_held (vmm_device *dev)
{
  if (g_mutex_trylock (&dev->lock))
    {
      g_mutex_unlock (&dev->lock);
      return false;
    }
  return true;
}

static uint64_t
bar_read (void *opaque, const vmm_access *a)
{
  tdev *d = opaque;
  d->bar_reads++;
  d->last_access = *a;
  d->lock_held = lock_is_held (&d->dev);
  return 0xa0 + a->offset;
}

static void
bar_write (void *opaque, const vmm_access *a, uint64_t value)
{
  tdev *d = opaque;
  d->bar_writes++;
  d->last_access = *a;
  d->lock_held = lock_is_held (&d->dev);
}

static const vmm_region_ops bar_ops = { bar_read, bar_write };

static void
on_bar_mapped (vmm_pci_device *pci, unsigned bar, uint64_t addr)
{
  tdev *d = pci->opaque;
  d->mapped_calls++;
  d->last_bar = bar;
  d->last_addr = addr;
}

static void
on_config_written (vmm_pci_device *pci, unsigned offset, unsigned size,
                   uint32_t value)
{
  tdev *d = pci->opaque;
  d->written_calls++;
}

static const vmm_pci_device_ops tdev_ops = {
  .bar_mapped = on_bar_mapped,
  .config_written = on_config_written,
};

static void
route_intx (void *opaque, unsigned devfn, unsigned pin, bool level)
{
  fixture *f = opaque;
  intx_event e = { devfn, pin, level };
  g_array_append_val (f->intx, e);
}

static void
fixture_setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->mmio = vmm_bus_new (VMM_BUS_MMIO);
  f->intx = g_array_new (FALSE, FALSE, sizeof (intx_event));
  f->host = vmm_pci_host_new (f->pio, f->mmio, route_intx, f, &error);
  g_assert_no_error (error);
  g_assert_nonnull (f->host);

  vmm_device_init (&f->d.dev, "testdev", NULL);
  vmm_pci_device_init (&f->d.pci, &f->d.dev, &tdev_ops, &f->d, 0x1af4,
                       0x1234, 0x020000, 0x05);
  vmm_pci_set_subsystem (&f->d.pci, 0x1af4, 0x0001);
  vmm_pci_set_bar (&f->d.pci, 0, VMM_PCI_BAR_IO, false, 0x100, &bar_ops,
                   &f->d);
  vmm_pci_set_bar (&f->d.pci, 1, VMM_PCI_BAR_MEM32, false, 0x1000, &bar_ops,
                   &f->d);
  vmm_pci_set_bar (&f->d.pci, 2, VMM_PCI_BAR_MEM64, true, 0x100000, &bar_ops,
                   &f->d);
  vmm_pci_set_bar (&f->d.pci, 4, VMM_PCI_BAR_MEM32, true, 0x10, &bar_ops,
                   &f->d);
  vmm_pci_set_bar (&f->d.pci, VMM_PCI_ROM_SLOT, VMM_PCI_BAR_MEM32, false,
                   0x10000, &bar_ops, &f->d);
  g_assert_true (vmm_pci_host_attach (f->host, &f->d.pci, TEST_DEVFN,
                                      &error));
  g_assert_no_error (error);
}

static void
fixture_teardown (fixture *f, gconstpointer data)
{
  vmm_pci_host_free (f->host);
  g_mutex_clear (&f->d.dev.lock);
  vmm_bus_free (f->pio);
  vmm_bus_free (f->mmio);
  g_array_unref (f->intx);
}

static uint32_t
cfg_address (unsigned bus, unsigned devfn, unsigned off)
{
  return 0x80000000u | bus << 16 | devfn << 8 | (off & 0xfc);
}

static uint32_t
cfg_read (fixture *f, unsigned bus, unsigned devfn, unsigned off,
          unsigned size)
{
  tu_outl (f->pio, CFG_ADDR, cfg_address (bus, devfn, off));
  switch (size)
    {
    case 1:
      return tu_inb (f->pio, CFG_DATA + (off & 3));
    case 2:
      return tu_inw (f->pio, CFG_DATA + (off & 3));
    default:
      return tu_inl (f->pio, CFG_DATA + (off & 3));
    }
}

static void
cfg_write (fixture *f, unsigned bus, unsigned devfn, unsigned off,
           unsigned size, uint32_t v)
{
  tu_outl (f->pio, CFG_ADDR, cfg_address (bus, devfn, off));
  switch (size)
    {
    case 1:
      tu_outb (f->pio, CFG_DATA + (off & 3), v);
      break;
    case 2:
      tu_outw (f->pio, CFG_DATA + (off & 3), v);
      break;
    default:
      tu_outl (f->pio, CFG_DATA + (off & 3), v);
      break;
    }
}

#define RD(off, size) cfg_read (f, 0, TEST_DEVFN, off, size)
#define WR(off, size, v) cfg_write (f, 0, TEST_DEVFN, off, size, v)

static bool
claimed (vmm_bus *bus, uint64_t addr)
{
  uint64_t v;
  return vmm_bus_read (bus, addr, 1, 0, &v);
}

static void
test_mechanism1 (fixture *f, gconstpointer data)
{
  /* The latch: dword accesses only, reserved bits read as zero. */
  tu_outl (f->pio, CFG_ADDR, 0x80001804);
  g_assert_cmphex (tu_inl (f->pio, CFG_ADDR), ==, 0x80001804);
  tu_outl (f->pio, CFG_ADDR, 0xff00ff07);
  g_assert_cmphex (tu_inl (f->pio, CFG_ADDR), ==, 0x8000ff04);
  tu_outb (f->pio, CFG_ADDR, 0x00);
  tu_outw (f->pio, CFG_ADDR, 0x0000);
  tu_outb (f->pio, CFG_ADDR + 3, 0x00);
  g_assert_cmphex (tu_inl (f->pio, CFG_ADDR), ==, 0x8000ff04);
  g_assert_cmphex (tu_inb (f->pio, CFG_ADDR), ==, 0xff);

  /* IDs with dword, word and byte reads at every offset. */
  g_assert_cmphex (RD (0x00, 4), ==, 0x12341af4);
  g_assert_cmphex (RD (0x00, 2), ==, 0x1af4);
  g_assert_cmphex (RD (0x02, 2), ==, 0x1234);
  g_assert_cmphex (RD (0x00, 1), ==, 0xf4);
  g_assert_cmphex (RD (0x01, 1), ==, 0x1a);
  g_assert_cmphex (RD (0x02, 1), ==, 0x34);
  g_assert_cmphex (RD (0x03, 1), ==, 0x12);
  g_assert_cmphex (RD (0x08, 4), ==, 0x02000005);
  g_assert_cmphex (RD (0x0b, 1), ==, 0x02);
  g_assert_cmphex (RD (0x2c, 4), ==, 0x00011af4);
  /* Same through the direct accessor. */
  g_assert_cmphex (vmm_pci_config_read (f->host, 0, TEST_DEVFN, 2, 2), ==,
                   0x1234);
  /* Misaligned direct accesses read all-ones. */
  g_assert_cmphex (vmm_pci_config_read (f->host, 0, TEST_DEVFN, 1, 2), ==,
                   0xffff);
  g_assert_cmphex (vmm_pci_config_read (f->host, 0, TEST_DEVFN, 0xfe, 4), ==,
                   0xffffffff);
  g_assert_cmphex (vmm_pci_config_read (f->host, 0, TEST_DEVFN, 0, 3), ==,
                   0xffffff);

  /* Enable bit clear: no config cycle. */
  tu_outl (f->pio, CFG_ADDR, TEST_DEVFN << 8);
  g_assert_cmphex (tu_inl (f->pio, CFG_DATA), ==, 0xffffffff);
  tu_outl (f->pio, CFG_DATA, 0);
  /* Bus 1 does not exist. */
  g_assert_cmphex (cfg_read (f, 1, TEST_DEVFN, 0, 4), ==, 0xffffffff);
  g_assert_cmphex (cfg_read (f, 1, TEST_DEVFN, 0, 2), ==, 0xffff);
  cfg_write (f, 1, TEST_DEVFN, 0x04, 2, 0x7);
  g_assert_cmphex (RD (0x04, 2), ==, 0);
  /* Absent function: vendor 0xFFFF. */
  g_assert_cmphex (cfg_read (f, 0, VMM_PCI_DEVFN (4, 0), 0, 2), ==, 0xffff);
  g_assert_cmphex (cfg_read (f, 0, VMM_PCI_DEVFN (3, 1), 0, 4), ==,
                   0xffffffff);
  g_assert_cmphex (cfg_read (f, 0, VMM_PCI_DEVFN (3, 1), 0x0e, 1), ==, 0xff);

  /* Read-only registers stay. */
  WR (0x00, 4, 0);
  WR (0x08, 4, 0);
  g_assert_cmphex (RD (0x00, 4), ==, 0x12341af4);
  g_assert_cmphex (RD (0x08, 4), ==, 0x02000005);
  /* Writable: command (masked), interrupt line, cache line, latency. */
  WR (0x04, 2, 0xffff);
  g_assert_cmphex (RD (0x04, 2), ==, 0x0407);
  WR (0x04, 2, 0);
  WR (0x3c, 1, 0x0b);
  g_assert_cmphex (RD (0x3c, 1), ==, 0x0b);
  WR (0x0c, 2, 0x4010);
  g_assert_cmphex (RD (0x0c, 2), ==, 0x4010);
  g_assert_cmpuint (f->d.written_calls, >, 0);

  /* Attaching twice to one slot, and out of range, are refused. */
  g_autoptr (GError) e1 = NULL, e2 = NULL;
  tdev other;
  vmm_device_init (&other.dev, "other", NULL);
  vmm_pci_device_init (&other.pci, &other.dev, NULL, NULL, 1, 2, 0, 0);
  g_assert_false (vmm_pci_host_attach (f->host, &other.pci, TEST_DEVFN, &e1));
  g_assert_error (e1, G_IO_ERROR, G_IO_ERROR_EXISTS);
  g_assert_nonnull (strstr (e1->message, "testdev"));
  g_assert_false (vmm_pci_host_attach (f->host, &other.pci, 256, &e2));
  g_assert_error (e2, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT);
  g_assert_true (vmm_pci_host_find (f->host, TEST_DEVFN) == &f->d.pci);
  g_assert_null (vmm_pci_host_find (f->host, 1000));
  g_mutex_clear (&other.dev.lock);
}

static void
test_bar_sizing (fixture *f, gconstpointer data)
{
  /* Power-on values: only the type bits. */
  g_assert_cmphex (RD (0x10, 4), ==, 0x1);
  g_assert_cmphex (RD (0x14, 4), ==, 0x0);
  g_assert_cmphex (RD (0x18, 4), ==, 0xc);
  g_assert_cmphex (RD (0x1c, 4), ==, 0x0);
  g_assert_cmphex (RD (0x20, 4), ==, 0x8);
  g_assert_cmphex (RD (0x24, 4), ==, 0x0);
  g_assert_cmphex (RD (0x30, 4), ==, 0x0);

  for (unsigned off = 0x10; off <= 0x24; off += 4)
    WR (off, 4, 0xffffffff);
  WR (0x30, 4, 0xfffffffe);
  g_assert_cmphex (RD (0x10, 4), ==, 0xffffff01); /* I/O, 256 bytes */
  g_assert_cmphex (RD (0x14, 4), ==, 0xfffff000); /* mem32, 4 KiB */
  g_assert_cmphex (RD (0x18, 4), ==, 0xfff0000c); /* mem64 pref, 1 MiB */
  g_assert_cmphex (RD (0x1c, 4), ==, 0xffffffff); /* its upper dword */
  g_assert_cmphex (RD (0x20, 4), ==, 0xfffffff8); /* mem32 pref, 16 B */
  g_assert_cmphex (RD (0x24, 4), ==, 0x00000000); /* unimplemented */
  g_assert_cmphex (RD (0x30, 4), ==, 0xffff0000); /* ROM, 64 KiB */
  WR (0x30, 4, 0xffffffff);
  g_assert_cmphex (RD (0x30, 4), ==, 0xffff0001); /* with the enable bit */
  /* Byte writes into a BAR keep the type bits too. */
  WR (0x10, 1, 0xff);
  g_assert_cmphex (RD (0x10, 1), ==, 0x01);
  WR (0x14, 2, 0xffff);
  g_assert_cmphex (RD (0x14, 2), ==, 0xf000);
  /* Nothing was decoded: command is still 0. */
  g_assert_cmpuint (f->d.mapped_calls, ==, 0);

  /* A 64-bit BAR larger than 4 GiB sizes through its upper dword. */
  vmm_pci_set_bar (&f->d.pci, 4, VMM_PCI_BAR_MEM64, false,
                   UINT64_C (0x200000000), &bar_ops, &f->d);
  WR (0x20, 4, 0xffffffff);
  WR (0x24, 4, 0xffffffff);
  g_assert_cmphex (RD (0x20, 4), ==, 0x00000004);
  g_assert_cmphex (RD (0x24, 4), ==, 0xfffffffe);
}

static void
test_bar_decode (fixture *f, gconstpointer data)
{
  WR (0x10, 4, 0xc000);
  WR (0x14, 4, 0xfebf0000);
  WR (0x18, 4, 0x00000000);
  WR (0x1c, 4, 0x00000001); /* 4 GiB */
  WR (0x20, 4, 0xfebf1010);
  WR (0x30, 4, 0xfeb80001);
  /* Command 0: nothing decoded. */
  g_assert_false (claimed (f->pio, 0xc000));
  g_assert_false (claimed (f->mmio, 0xfebf0000));
  g_assert_cmpuint (f->d.mapped_calls, ==, 0);

  /* I/O only. */
  WR (0x04, 2, PCI_COMMAND_IO);
  g_assert_true (claimed (f->pio, 0xc000));
  g_assert_true (claimed (f->pio, 0xc0ff));
  g_assert_false (claimed (f->pio, 0xc100));
  g_assert_false (claimed (f->mmio, 0xfebf0000));
  g_assert_cmpuint (f->d.mapped_calls, ==, 1);
  g_assert_cmpuint (f->d.last_bar, ==, 0);
  g_assert_cmphex (f->d.last_addr, ==, 0xc000);
  g_assert_cmphex (f->d.pci.bars[0].mapped_at, ==, 0xc000);

  /* The handler sees offsets into the BAR and runs under the lock. */
  g_assert_cmphex (tu_inb (f->pio, 0xc010), ==, 0xb0);
  g_assert_cmpuint (f->d.last_access.offset, ==, 0x10);
  g_assert_true (f->d.lock_held);

  /* Memory too. */
  WR (0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  g_assert_true (claimed (f->mmio, 0xfebf0000));
  g_assert_true (claimed (f->mmio, 0xfebf0fff));
  g_assert_true (claimed (f->mmio, UINT64_C (0x100000000)));
  g_assert_true (claimed (f->mmio, UINT64_C (0x1000fffff)));
  g_assert_false (claimed (f->mmio, UINT64_C (0x100100000)));
  g_assert_true (claimed (f->mmio, 0xfebf1010));
  g_assert_true (claimed (f->mmio, 0xfeb80000));
  g_assert_true (claimed (f->mmio, 0xfeb8ffff));
  g_assert_cmphex (f->d.pci.bars[2].mapped_at, ==, UINT64_C (0x100000000));
  g_assert_cmphex (f->d.pci.bars[4].mapped_at, ==, 0xfebf1010);
  g_assert_cmphex (f->d.pci.bars[VMM_PCI_ROM_SLOT].mapped_at, ==, 0xfeb80000);
  uint64_t v;
  vmm_bus_write (f->mmio, 0xfebf0004, 4, 1, 0x55);
  g_assert_cmpuint (f->d.bar_writes, ==, 1);
  g_assert_cmpuint (f->d.last_access.offset, ==, 4);
  g_assert_true (f->d.lock_held);
  vmm_bus_read (f->mmio, 0xfebf0008, 4, 0, &v);
  g_assert_cmphex (v, ==, 0xa8);

  /* ROM: clearing the enable bit unmaps it alone. */
  unsigned calls = f->d.mapped_calls;
  WR (0x30, 4, 0xfeb80000);
  g_assert_false (claimed (f->mmio, 0xfeb80000));
  g_assert_cmpuint (f->d.mapped_calls, ==, calls + 1);
  g_assert_cmpuint (f->d.last_bar, ==, VMM_PCI_ROM_SLOT);
  g_assert_cmphex (f->d.last_addr, ==, VMM_PCI_UNMAPPED);
  g_assert_true (claimed (f->mmio, 0xfebf0000));

  /* Moving a BAR: old address free, new one claimed, hook told. */
  calls = f->d.mapped_calls;
  WR (0x14, 4, 0xfebe0000);
  g_assert_false (claimed (f->mmio, 0xfebf0000));
  g_assert_true (claimed (f->mmio, 0xfebe0000));
  g_assert_cmpuint (f->d.mapped_calls, ==, calls + 1);
  g_assert_cmpuint (f->d.last_bar, ==, 1);
  g_assert_cmphex (f->d.last_addr, ==, 0xfebe0000);
  /* Rewriting the same value is no change. */
  WR (0x14, 4, 0xfebe0000);
  g_assert_cmpuint (f->d.mapped_calls, ==, calls + 1);
  /* Byte-wise moving of an I/O BAR. */
  WR (0x11, 1, 0xd0);
  g_assert_false (claimed (f->pio, 0xc000));
  g_assert_true (claimed (f->pio, 0xd000));
  /* Moving the upper dword of a 64-bit BAR. */
  WR (0x1c, 4, 0x2);
  g_assert_false (claimed (f->mmio, UINT64_C (0x100000000)));
  g_assert_true (claimed (f->mmio, UINT64_C (0x200000000)));
  /* Address 0 is not a placement. */
  WR (0x20, 4, 0);
  g_assert_false (claimed (f->mmio, 0xfebf1010));
  g_assert_cmphex (f->d.pci.bars[4].mapped_at, ==, VMM_PCI_UNMAPPED);

  /* Memory decode off: every memory BAR unmapped, I/O stays. */
  WR (0x04, 2, PCI_COMMAND_IO);
  g_assert_false (claimed (f->mmio, 0xfebe0000));
  g_assert_false (claimed (f->mmio, UINT64_C (0x200000000)));
  g_assert_true (claimed (f->pio, 0xd000));
  g_assert_cmphex (f->d.pci.bars[1].mapped_at, ==, VMM_PCI_UNMAPPED);
  WR (0x04, 2, 0);
  g_assert_false (claimed (f->pio, 0xd000));
  g_assert_cmphex (f->d.last_addr, ==, VMM_PCI_UNMAPPED);
  g_assert_cmpuint (f->d.last_bar, ==, 0);

  /* An I/O BAR that would run past 64 KiB is not decoded. */
  WR (0x10, 4, 0xffff00);
  WR (0x04, 2, PCI_COMMAND_IO);
  g_assert_cmphex (f->d.pci.bars[0].mapped_at, ==, VMM_PCI_UNMAPPED);
  WR (0x10, 4, 0xff00);
  g_assert_cmphex (f->d.pci.bars[0].mapped_at, ==, 0xff00);
  g_assert_true (claimed (f->pio, 0xffff));
}

/* Firmware sizes BARs by writing all-ones; a BAR left like that (no address
 * assigned) must not be decoded even while decoding is enabled. */
static void
test_bar_all_ones_unmapped (fixture *f, gconstpointer data)
{
  WR (0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  /* The 64-bit BAR's upper dword first: with the lower one all-ones and the
   * upper still 0 it would sit legitimately just below 4 GiB. */
  WR (0x1c, 4, 0xffffffff);
  for (unsigned off = 0x10; off <= 0x24; off += 4)
    WR (off, 4, 0xffffffff);
  WR (0x30, 4, 0xffffffff);
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    {
      if (g_test_verbose ())
        g_test_message ("BAR %u mapped at 0x%" G_GINT64_MODIFIER "x", i,
                        f->d.pci.bars[i].mapped_at);
      g_assert_cmphex (f->d.pci.bars[i].mapped_at, ==, VMM_PCI_UNMAPPED);
    }
  g_assert_cmpuint (f->d.mapped_calls, ==, 0);
  g_assert_false (claimed (f->mmio, 0xfffff000));
  g_assert_false (claimed (f->mmio, 0xffff0000));
  g_assert_false (claimed (f->pio, 0xff00));

  /* Sizing with decoding off, then enabling without assigning. */
  WR (0x04, 2, 0);
  WR (0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    g_assert_cmphex (f->d.pci.bars[i].mapped_at, ==, VMM_PCI_UNMAPPED);

  /* A proper assignment afterwards maps. */
  WR (0x14, 4, 0xfe000000);
  g_assert_true (claimed (f->mmio, 0xfe000000));
}

static void
test_status_w1c (fixture *f, gconstpointer data)
{
  uint16_t st = 0xf900 | PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT;
  vmm_pci_put16 (f->d.pci.config + PCI_CFG_STATUS, st);
  g_assert_cmphex (RD (0x06, 2), ==, st);
  /* Writing zeros changes nothing. */
  WR (0x06, 2, 0);
  g_assert_cmphex (RD (0x06, 2), ==, st);
  /* Writing one clears that bit only. */
  WR (0x06, 2, 0x8000);
  g_assert_cmphex (RD (0x06, 2), ==, st & ~0x8000);
  /* Read-only bits are not cleared by ones. */
  WR (0x06, 2, PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
  g_assert_cmphex (RD (0x06, 2), ==, st & ~0x8000);
  /* A byte write to the upper half. */
  WR (0x07, 1, 0x01);
  g_assert_cmphex (RD (0x06, 2), ==, st & ~0x8100);
  /* A dword write to command+status: command set, status bits cleared. */
  WR (0x04, 4, 0xffff0000 | PCI_COMMAND_MASTER);
  g_assert_cmphex (RD (0x04, 2), ==, PCI_COMMAND_MASTER);
  g_assert_cmphex (RD (0x06, 2), ==,
                   PCI_STATUS_CAP_LIST | PCI_STATUS_INTERRUPT);
}

static void
test_intx (fixture *f, gconstpointer data)
{
  /* No pin: nothing routed. */
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_set_intx (&f->d.pci, true);
  vmm_pci_set_intx (&f->d.pci, false);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmpuint (f->intx->len, ==, 0);

  vmm_pci_set_interrupt_pin (&f->d.pci, 2);
  g_assert_cmphex (RD (0x3d, 1), ==, 2);
  WR (0x3d, 1, 4); /* read-only */
  g_assert_cmphex (RD (0x3d, 1), ==, 2);

  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_set_intx (&f->d.pci, true);
  vmm_pci_set_intx (&f->d.pci, true); /* no change, no call */
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmpuint (f->intx->len, ==, 1);
  intx_event *e = &g_array_index (f->intx, intx_event, 0);
  g_assert_cmpuint (e->devfn, ==, TEST_DEVFN);
  g_assert_cmpuint (e->pin, ==, 2);
  g_assert_true (e->level);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_INTERRUPT, !=, 0);

  /* INTX_DISABLE masks the line but the status bit still shows it. */
  WR (0x04, 2, PCI_COMMAND_INTX_DISABLE);
  g_assert_cmpuint (f->intx->len, ==, 2);
  e = &g_array_index (f->intx, intx_event, 1);
  g_assert_false (e->level);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_INTERRUPT, !=, 0);
  /* Changes while masked are not routed. */
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_set_intx (&f->d.pci, false);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmpuint (f->intx->len, ==, 2);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_INTERRUPT, ==, 0);
  /* Unmasking with the line low: nothing. */
  WR (0x04, 2, 0);
  g_assert_cmpuint (f->intx->len, ==, 2);
  /* Raised while masked, then unmasked: the line goes up then. */
  WR (0x04, 2, PCI_COMMAND_INTX_DISABLE);
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_set_intx (&f->d.pci, true);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmpuint (f->intx->len, ==, 2);
  WR (0x04, 2, 0);
  g_assert_cmpuint (f->intx->len, ==, 3);
  e = &g_array_index (f->intx, intx_event, 2);
  g_assert_true (e->level);
  /* Rewriting command without touching INTX_DISABLE: no call. */
  WR (0x04, 2, PCI_COMMAND_MASTER);
  g_assert_cmpuint (f->intx->len, ==, 3);

  /* Reset lowers the line. */
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_device_reset (&f->d.pci);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmpuint (f->intx->len, ==, 4);
  e = &g_array_index (f->intx, intx_event, 3);
  g_assert_false (e->level);
  g_assert_false (f->d.pci.intx_level);
}

static void
test_capabilities (fixture *f, gconstpointer data)
{
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_CAP_LIST, ==, 0);
  g_assert_cmphex (RD (0x34, 1), ==, 0);
  unsigned c1 = vmm_pci_add_capability (&f->d.pci, 0x05, 10);
  g_assert_cmphex (c1, ==, 0x40);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_CAP_LIST, !=, 0);
  g_assert_cmphex (RD (0x34, 1), ==, 0x40);
  g_assert_cmphex (RD (0x40, 1), ==, 0x05);
  g_assert_cmphex (RD (0x41, 1), ==, 0x00);

  unsigned c2 = vmm_pci_add_capability (&f->d.pci, 0x11, 12);
  g_assert_cmphex (c2, ==, 0x4c); /* dword aligned after 10 bytes */
  unsigned c3 = vmm_pci_add_capability (&f->d.pci, 0x09, 2);
  g_assert_cmphex (c3, ==, 0x58);
  /* Walk the list as a guest does. */
  unsigned ids[8], n = 0;
  for (unsigned p = RD (0x34, 1); p && n < 8; p = RD (p + 1, 1))
    {
      g_assert_cmpuint (p & 3, ==, 0);
      g_assert_cmpuint (p, >=, 0x40);
      ids[n++] = RD (p, 1);
    }
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmphex (ids[0], ==, 0x05);
  g_assert_cmphex (ids[1], ==, 0x11);
  g_assert_cmphex (ids[2], ==, 0x09);
  /* The chain is read-only to the guest. */
  WR (0x34, 1, 0x80);
  WR (0x41, 1, 0x80);
  g_assert_cmphex (RD (0x34, 1), ==, 0x40);
  g_assert_cmphex (RD (0x41, 1), ==, 0x4c);
  /* CAP_LIST survives a status write and a reset. */
  WR (0x06, 2, 0xffff);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_CAP_LIST, !=, 0);
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_device_reset (&f->d.pci);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_cmphex (RD (0x06, 2) & PCI_STATUS_CAP_LIST, !=, 0);

  /* One that does not fit is refused with a critical. */
  if (g_test_undefined ())
    {
      g_test_expect_message (G_LOG_DOMAIN, G_LOG_LEVEL_CRITICAL, "*");
      g_assert_cmpuint (vmm_pci_add_capability (&f->d.pci, 0x10, 0x100), ==,
                        0);
      g_test_assert_expected_messages ();
    }
}

static uint64_t
cf9_read (void *opaque, const vmm_access *a)
{
  fixture *f = opaque;
  f->cf9_reads++;
  f->cf9_lock_held = lock_is_held (&f->d.dev);
  return 0x0a;
}

static void
cf9_write (void *opaque, const vmm_access *a, uint64_t value)
{
  fixture *f = opaque;
  f->cf9_writes++;
  f->cf9_value = value;
  f->cf9_lock_held = lock_is_held (&f->d.dev);
}

static const vmm_region_ops cf9_ops = { cf9_read, cf9_write };

static void
test_cf9 (fixture *f, gconstpointer data)
{
  /* No handler: byte access to 0xCF9 is harmless and reads all-ones. */
  tu_outb (f->pio, 0xcf9, 0x06);
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0xff);

  vmm_pci_host_set_cf9_handler (f->host, &f->d.dev, &cf9_ops, f);
  tu_outl (f->pio, CFG_ADDR, 0x80001800);
  g_assert_cmpuint (f->cf9_writes, ==, 0);
  tu_outb (f->pio, 0xcf9, 0x06);
  g_assert_cmpuint (f->cf9_writes, ==, 1);
  g_assert_cmphex (f->cf9_value, ==, 0x06);
  g_assert_true (f->cf9_lock_held);
  g_assert_cmphex (tu_inb (f->pio, 0xcf9), ==, 0x0a);
  g_assert_cmpuint (f->cf9_reads, ==, 1);
  g_assert_true (f->cf9_lock_held);
  /* The latch is unaffected by the byte access, and dword accesses do not
   * reach the handler. */
  g_assert_cmphex (tu_inl (f->pio, CFG_ADDR), ==, 0x80001800);
  g_assert_cmpuint (f->cf9_reads, ==, 1);
  g_assert_cmpuint (f->cf9_writes, ==, 1);
  /* Word access at 0xCF8 and byte at 0xCF8/0xCFA: neither latch nor CF9. */
  tu_outw (f->pio, 0xcf8, 0x0606);
  tu_outb (f->pio, 0xcfa, 0x06);
  g_assert_cmpuint (f->cf9_writes, ==, 1);
  g_assert_cmphex (tu_inl (f->pio, CFG_ADDR), ==, 0x80001800);
  /* Config accesses keep working. */
  g_assert_cmphex (RD (0x00, 2), ==, 0x1af4);
}

static void
test_reset_unmaps (fixture *f, gconstpointer data)
{
  WR (0x10, 4, 0xc000);
  WR (0x14, 4, 0xfebf0000);
  WR (0x18, 4, 0xe0000000);
  WR (0x30, 4, 0xfeb80001);
  WR (0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  WR (0x3c, 1, 11);
  g_assert_true (claimed (f->pio, 0xc000));
  g_assert_true (claimed (f->mmio, 0xfebf0000));
  g_assert_true (claimed (f->mmio, 0xe0000000));
  g_assert_true (claimed (f->mmio, 0xfeb80000));
  unsigned calls = f->d.mapped_calls;

  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_device_reset (&f->d.pci);
  g_mutex_unlock (&f->d.dev.lock);
  g_assert_false (claimed (f->pio, 0xc000));
  g_assert_false (claimed (f->mmio, 0xfebf0000));
  g_assert_false (claimed (f->mmio, 0xe0000000));
  g_assert_false (claimed (f->mmio, 0xfeb80000));
  g_assert_cmpuint (f->d.mapped_calls, ==, calls + 4);
  for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
    g_assert_cmphex (f->d.pci.bars[i].mapped_at, ==, VMM_PCI_UNMAPPED);
  g_assert_cmphex (RD (0x04, 2), ==, 0);
  g_assert_cmphex (RD (0x3c, 1), ==, 0);
  g_assert_cmphex (RD (0x10, 4), ==, 0x1);
  g_assert_cmphex (RD (0x14, 4), ==, 0x0);
  g_assert_cmphex (RD (0x18, 4), ==, 0xc);
  g_assert_cmphex (RD (0x30, 4), ==, 0x0);
  /* IDs survive. */
  g_assert_cmphex (RD (0x00, 4), ==, 0x12341af4);

  /* Re-programming after reset works (the old regions are gone). */
  WR (0x10, 4, 0xc000);
  WR (0x04, 2, PCI_COMMAND_IO);
  g_assert_true (claimed (f->pio, 0xc000));
}

/* Guest-triggered warnings about BARs that overlap something else are
 * expected while fuzzing; everything else goes to the default writer. */
static gboolean fuzzing;
static unsigned fuzz_warnings;

static GLogWriterOutput
test_log_writer (GLogLevelFlags level, const GLogField *fields, gsize n,
                 gpointer user_data)
{
  if (fuzzing && (level & G_LOG_LEVEL_WARNING))
    {
      for (gsize i = 0; i < n; i++)
        if (g_strcmp0 (fields[i].key, "MESSAGE") == 0 && fields[i].length < 0
            && strstr (fields[i].value, "not mapped"))
          {
            fuzz_warnings++;
            return G_LOG_WRITER_HANDLED;
          }
    }
  return g_log_writer_default (level, fields, n, user_data);
}

/* A BAR placed over something already on the bus (here the host bridge's
 * own ports) is left unmapped with a warning; config access keeps working. */
static void
test_bar_overlap (fixture *f, gconstpointer data)
{
  fuzzing = TRUE;
  unsigned warnings = fuzz_warnings;
  WR (0x10, 4, 0xc00); /* 0xc00-0xcff covers 0xcf8-0xcff */
  WR (0x04, 2, PCI_COMMAND_IO);
  g_assert_cmpuint (fuzz_warnings, ==, warnings + 1);
  g_assert_cmphex (f->d.pci.bars[0].mapped_at, ==, VMM_PCI_UNMAPPED);
  g_assert_cmphex (RD (0x00, 4), ==, 0x12341af4);
  /* Moving it away maps it. */
  WR (0x10, 4, 0xc000);
  g_assert_cmphex (f->d.pci.bars[0].mapped_at, ==, 0xc000);
  /* Two BARs of one device on top of each other: the second is refused. */
  WR (0x14, 4, 0xfe000000);
  WR (0x20, 4, 0xfe000010);
  WR (0x04, 2, PCI_COMMAND_IO | PCI_COMMAND_MEMORY);
  g_assert_cmpuint (fuzz_warnings, ==, warnings + 2);
  g_assert_cmphex (f->d.pci.bars[1].mapped_at, ==, 0xfe000000);
  g_assert_cmphex (f->d.pci.bars[4].mapped_at, ==, VMM_PCI_UNMAPPED);
  fuzzing = FALSE;
}

static void
test_config_fuzz (fixture *f, gconstpointer data)
{
  /* A second function with a capability, both fuzzed at once. */
  vmm_pci_add_capability (&f->d.pci, 0x05, 24);
  vmm_pci_set_interrupt_pin (&f->d.pci, 1);
  fuzzing = TRUE;
  static const unsigned sizes[] = { 1, 2, 4 };
  for (unsigned iter = 0; iter < 20000; iter++)
    {
      unsigned off = g_test_rand_int_range (0, 256);
      unsigned size = sizes[g_test_rand_int_range (0, 3)];
      uint32_t value = (uint32_t) g_test_rand_int ();
      switch (g_test_rand_int_range (0, 8))
        {
        case 0: /* favour the interesting registers with extreme values */
          value = g_test_rand_bit () ? 0xffffffff : 0;
          /* fall through */
        case 1:
          off = g_test_rand_bit () ? 0x04 : 0x10 + 4 * g_test_rand_int_range (0, 9);
          /* fall through */
        case 2:
        case 3:
          /* Through the ports, at any data port offset and size. */
          tu_outl (f->pio, CFG_ADDR,
                   cfg_address (0, g_test_rand_bit () ? TEST_DEVFN
                                                      : g_test_rand_int_range (0, 256),
                                off));
          {
            unsigned port = CFG_DATA + g_test_rand_int_range (0, 4);
            if (g_test_rand_bit ())
              vmm_bus_write (f->pio, port, size, 0, value);
            else
              {
                uint64_t v;
                vmm_bus_read (f->pio, port, size, 0, &v);
              }
          }
          break;
        case 4:
          /* Directly, including misaligned and oversized accesses. */
          vmm_pci_config_write (f->host, 0, TEST_DEVFN, off,
                                g_test_rand_int_range (0, 9), value);
          break;
        case 5:
          (void) vmm_pci_config_read (f->host, g_test_rand_int_range (0, 3),
                                      g_test_rand_int_range (0, 300),
                                      g_test_rand_int_range (0, 300),
                                      g_test_rand_int_range (0, 9));
          break;
        case 6:
          {
            /* Touch whatever is decoded now. */
            uint64_t v;
            for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
              if (f->d.pci.bars[i].mapped_at != VMM_PCI_UNMAPPED)
                vmm_bus_read (f->d.pci.bars[i].type == VMM_PCI_BAR_IO
                                  ? f->pio
                                  : f->mmio,
                              f->d.pci.bars[i].mapped_at, 4, 0, &v);
            g_mutex_lock (&f->d.dev.lock);
            vmm_pci_set_intx (&f->d.pci, g_test_rand_bit ());
            g_mutex_unlock (&f->d.dev.lock);
          }
          break;
        default:
          /* Random port accesses around the host bridge. */
          {
            unsigned port = 0xcf8 + g_test_rand_int_range (0, 8);
            if (g_test_rand_bit ())
              vmm_bus_write (f->pio, port, size, 0, value);
            else
              {
                uint64_t v;
                vmm_bus_read (f->pio, port, size, 0, &v);
              }
          }
          break;
        }
      /* Invariants: the IDs never change, mapped BARs are really there. */
      g_assert_cmphex (vmm_pci_get32 (f->d.pci.config), ==, 0x12341af4);
      for (unsigned i = 0; i <= VMM_PCI_NUM_BARS; i++)
        {
          const vmm_pci_bar *b = &f->d.pci.bars[i];
          if (b->mapped_at == VMM_PCI_UNMAPPED)
            continue;
          g_assert_cmpuint (b->mapped_at & (b->size - 1), ==, 0);
          g_assert_cmpuint (b->mapped_at + b->size, >, b->mapped_at);
        }
    }
  /* The host bridge ports are still the host bridge's. */
  g_mutex_lock (&f->d.dev.lock);
  vmm_pci_device_reset (&f->d.pci);
  g_mutex_unlock (&f->d.dev.lock);
  fuzzing = FALSE;
  g_assert_cmphex (RD (0x00, 4), ==, 0x12341af4);
  if (g_test_verbose ())
    g_test_message ("%u BAR (un)mappings, %u BAR-overlap warnings",
                    f->d.mapped_calls, fuzz_warnings);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_writer_func (test_log_writer, NULL, NULL);
#define ADD(name, fn)                                                         \
  g_test_add ("/pci/" name, fixture, NULL, fixture_setup, fn,                 \
              fixture_teardown)
  ADD ("mechanism1", test_mechanism1);
  ADD ("bar-sizing", test_bar_sizing);
  ADD ("bar-decode", test_bar_decode);
  ADD ("bar-all-ones-unmapped", test_bar_all_ones_unmapped);
  ADD ("status-w1c", test_status_w1c);
  ADD ("intx", test_intx);
  ADD ("capabilities", test_capabilities);
  ADD ("cf9", test_cf9);
  ADD ("reset-unmaps", test_reset_unmaps);
  ADD ("bar-overlap", test_bar_overlap);
  ADD ("config-fuzz", test_config_fuzz);
  return g_test_run ();
}
