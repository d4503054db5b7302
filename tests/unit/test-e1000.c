/* The Intel 82540EM model driven through PCI config space, BAR0 and BAR1
 * like a driver would, with fake RAM, INTx and a fake back end that records
 * frames; transmit is processed at the TDT write (no I/O thread), receive
 * when the test runs the port. Bad rings, buffers and registers are dropped
 * and counted. No KVM. */
#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/e1000.h"

#define RAM_SIZE (4u << 20)
#define DEVFN VMM_PCI_DEVFN (3, 0)
#define BAR0 UINT64_C (0xfe000000)
#define BAR1 0xc000
#define TX_RING 0x100000
#define RX_RING 0x110000
#define BUFS 0x200000

typedef struct fake_be {
  vmm_net_backend be;
  GPtrArray *frames;
} fake_be;

typedef struct T {
  vmm_guest_memory mem;
  vmm_bus *pio, *mmio;
  vmm_pci_host *host;
  e1000 *e;
  fake_be *be;
  bool intx;
} T;

static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x57 };

static void
be_send (vmm_net_backend *be, const uint8_t *frame, size_t len)
{
  g_ptr_array_add (((fake_be *) be)->frames, g_bytes_new (frame, len));
}

static void
be_free (vmm_net_backend *be)
{
  g_ptr_array_unref (((fake_be *) be)->frames);
  g_free (be);
}

static const vmm_net_backend_ops be_ops = { be_send, be_free };

static void
route_intx (void *opaque, unsigned devfn, unsigned pin, bool level)
{
  ((T *) opaque)->intx = level;
}

static uint32_t
rd (T *t, uint32_t reg)
{
  uint64_t v;
  vmm_bus_read (t->mmio, BAR0 + reg, 4, 0, &v);
  return (uint32_t) v;
}

static void
wr (T *t, uint32_t reg, uint32_t v)
{
  vmm_bus_write (t->mmio, BAR0 + reg, 4, 0, v);
}

static void
setup (T *t, gconstpointer data)
{
  memset (t, 0, sizeof *t);
  t->mem = (vmm_guest_memory){ .host = g_malloc0 (RAM_SIZE),
                               .size = RAM_SIZE,
                               .below_4g = RAM_SIZE };
  t->pio = vmm_bus_new (VMM_BUS_PIO);
  t->mmio = vmm_bus_new (VMM_BUS_MMIO);
  t->host = vmm_pci_host_new (t->pio, t->mmio, route_intx, t, NULL);
  t->be = g_new0 (fake_be, 1);
  t->be->be.ops = &be_ops;
  t->be->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  g_autoptr (GError) error = NULL;
  static const uint8_t rom[4096] = { 0x55, 0xaa, 8 };
  t->e = e1000_create ("e1000-0", &t->mem, NULL, mac, rom, sizeof rom,
                       &t->be->be, &error);
  g_assert_no_error (error);
  g_assert_true (e1000_attach (t->e, t->host, DEVFN, &error));
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0, 4, (uint32_t) BAR0);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 4, 4, BAR1);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_IO | PCI_COMMAND_MEMORY
                            | PCI_COMMAND_MASTER);
}

static void
teardown (T *t, gconstpointer data)
{
  vmm_device_destroy (e1000_device (t->e));
  vmm_pci_host_free (t->host);
  vmm_bus_free (t->pio);
  vmm_bus_free (t->mmio);
  g_free (t->mem.host);
}

static void
put64 (T *t, uint64_t gpa, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    t->mem.host[gpa + i] = (uint8_t) (v >> (8 * i));
}

static void
rings (T *t, unsigned n)
{
  wr (t, E1000_TDBAL, TX_RING);
  wr (t, E1000_TDBAH, 0);
  wr (t, E1000_TDLEN, n * 16);
  wr (t, E1000_TDH, 0);
  wr (t, E1000_TDT, 0);
  wr (t, E1000_TCTL, 2);
  wr (t, E1000_RDBAL, RX_RING);
  wr (t, E1000_RDBAH, 0);
  wr (t, E1000_RDLEN, n * 16);
  wr (t, E1000_RDH, 0);
  wr (t, E1000_RDT, 0);
  for (unsigned i = 0; i < n; i++)
    put64 (t, RX_RING + 16 * i, BUFS + 0x1000 * i);
}

/* Legacy transmit descriptor @i. */
static void
tx_legacy (T *t, unsigned i, uint64_t addr, uint16_t len, uint8_t cmd,
           uint8_t cso, uint8_t css)
{
  uint64_t d = TX_RING + 16 * i;
  put64 (t, d, addr);
  put64 (t, d + 8, len | (uint64_t) cso << 16 | (uint64_t) cmd << 24
                       | (uint64_t) css << 40);
}

static size_t
n_sent (T *t)
{
  return t->be->frames->len;
}

static const uint8_t *
sent (T *t, unsigned i, size_t *len)
{
  GBytes *b = t->be->frames->pdata[i];
  *len = g_bytes_get_size (b);
  return g_bytes_get_data (b, NULL);
}

/* An IPv4 frame of @proto with @payload bytes; the transport checksum left
 * as the pseudo-header sum (without the length when @tso), the IPv4
 * checksum zero. Returns the length. */
static size_t
make_ip (uint8_t *f, uint8_t proto, size_t payload, bool tso)
{
  size_t l4 = proto == 6 ? 20 : 8;
  size_t len = 34 + l4 + payload;
  memset (f, 0, len);
  memcpy (f, "\x52\x55\x0a\x00\x02\x02\x52\x54\x00\x12\x34\x57\x08\x00", 14);
  uint8_t *ip = f + 14, *u = ip + 20;
  ip[0] = 0x45;
  ip[2] = (uint8_t) ((len - 14) >> 8);
  ip[3] = (uint8_t) (len - 14);
  ip[4] = 0x12;
  ip[5] = 0x34;
  ip[8] = 64;
  ip[9] = proto;
  memcpy (ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
  u[0] = 0x9c; u[1] = 0x40; u[2] = 0x1f; u[3] = 0x40;
  unsigned ck;
  if (proto == 6)
    {
      u[4] = 0x01; u[5] = 0x02; u[6] = 0x03; u[7] = 0x04; /* seq */
      u[12] = 5 << 4;
      u[13] = 0x18 | 0x01; /* PSH ACK FIN */
      ck = 16;
    }
  else
    {
      u[4] = (uint8_t) ((8 + payload) >> 8);
      u[5] = (uint8_t) (8 + payload);
      ck = 6;
    }
  for (size_t i = 0; i < payload; i++)
    u[l4 + i] = (uint8_t) (i * 13 + 1);
  size_t tl = tso ? 0 : l4 + payload;
  uint8_t ph[12] = { 10, 0, 2, 15, 10, 0, 2, 2, 0, proto,
                     (uint8_t) (tl >> 8), (uint8_t) tl };
  uint16_t s = vmm_net_csum_fold (vmm_net_csum_add (0, ph, 12));
  u[ck] = s >> 8;
  u[ck + 1] = s & 0xff;
  return len;
}

static bool
csums_ok (const uint8_t *f, size_t len)
{
  const uint8_t *ip = f + 14, *u = ip + 20;
  if (vmm_net_csum_fold (vmm_net_csum_add (0, ip, 20)) != 0xffff)
    return false;
  size_t ll = len - 34;
  if ((size_t) (ip[2] << 8 | ip[3]) != len - 14)
    return false;
  uint8_t ph[12] = { 0 };
  memcpy (ph, ip + 12, 8);
  ph[9] = ip[9];
  ph[10] = (uint8_t) (ll >> 8);
  ph[11] = (uint8_t) ll;
  return vmm_net_csum_fold (vmm_net_csum_add (vmm_net_csum_add (0, ph, 12),
                                              u, ll)) == 0xffff;
}

/* ---- tests ---- */

static void
test_identity (T *t, gconstpointer data)
{
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0, 4), ==,
                   0x100e8086);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 8, 4), ==,
                   0x02000003);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0x2c, 4), ==,
                   0x001e8086);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, 0x3d, 1), ==, 1);
  /* BAR sizes: 128 KiB of memory, 64 bytes of I/O, a 4 KiB ROM. */
  vmm_pci_config_write (t->host, 0, DEVFN, 0x30, 4, 0xfffff800);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0x30, 4), ==,
                   0xfffff000);
  vmm_pci_config_write (t->host, 0, DEVFN, 0x30, 4, 0xfebf0001);
  uint64_t v = 0;
  vmm_bus_read (t->mmio, 0xfebf0000, 2, 0, &v);
  g_assert_cmphex (v, ==, 0xaa55);
  g_assert_cmphex (rd (t, E1000_STATUS) & 3, ==, 3); /* FD, LU */
  g_assert_cmphex (rd (t, E1000_RAL0), ==, 0x12005452);
  g_assert_cmphex (rd (t, E1000_RAH0), ==, 0x80005734);
  /* IOADDR / IODATA reach the same registers. */
  vmm_bus_write (t->pio, BAR1, 4, 0, E1000_RAL0);
  vmm_bus_read (t->pio, BAR1 + 4, 4, 0, &v);
  g_assert_cmphex (v, ==, 0x12005452);
}

static int
microwire (T *t, unsigned addr)
{
  uint32_t e = rd (t, E1000_EECD) | (1u << 6);
  wr (t, E1000_EECD, e);
  g_assert_cmphex (rd (t, E1000_EECD) & (3u << 7), ==, 3u << 7); /* GNT PRES */
  e = (e & ~0xfu) | 2;
  unsigned bits = 6u << 6 | addr;
  for (int i = 8; i >= 0; i--)
    {
      e = (e & ~4u) | (((bits >> i) & 1) ? 4u : 0);
      wr (t, E1000_EECD, e);
      wr (t, E1000_EECD, e | 1);
      wr (t, E1000_EECD, e);
    }
  int w = 0;
  for (int i = 0; i < 16; i++)
    {
      wr (t, E1000_EECD, e | 1);
      w = w << 1 | ((rd (t, E1000_EECD) >> 3) & 1);
      wr (t, E1000_EECD, e);
    }
  wr (t, E1000_EECD, 0);
  return w;
}

static void
test_eeprom_phy (T *t, gconstpointer data)
{
  uint16_t sum = 0, w[64];
  for (unsigned i = 0; i < 64; i++)
    {
      wr (t, E1000_EERD, i << 8 | 1);
      uint32_t v = rd (t, E1000_EERD);
      g_assert_cmphex (v & 0x10, ==, 0x10);
      w[i] = (uint16_t) (v >> 16);
      sum += w[i];
    }
  g_assert_cmphex (sum, ==, 0xbaba);
  g_assert_cmphex (w[0], ==, 0x5452);
  g_assert_cmphex (w[1], ==, 0x1200);
  g_assert_cmphex (w[2], ==, 0x5734);
  for (unsigned i = 0; i < 64; i += 9)
    g_assert_cmphex (microwire (t, i), ==, w[i]);
  /* PHY 1 through MDIC: the Marvell IDs and link up; another address has
   * no PHY. */
  wr (t, E1000_MDIC, 2u << 16 | 1u << 21 | 2u << 26);
  g_assert_cmphex (rd (t, E1000_MDIC), ==, 0x10000000u | 2u << 16 | 1u << 21
                                               | 2u << 26 | 0x0141);
  wr (t, E1000_MDIC, 1u << 16 | 1u << 21 | 2u << 26);
  g_assert_cmphex (rd (t, E1000_MDIC) & 0x4, ==, 0x4);
  wr (t, E1000_MDIC, 1u << 16 | 2u << 21 | 2u << 26);
  g_assert_cmphex (rd (t, E1000_MDIC) & (1u << 30), !=, 0);
  wr (t, E1000_MDIC, 4u << 16 | 1u << 21 | 1u << 26 | 0x01e1);
  wr (t, E1000_MDIC, 4u << 16 | 1u << 21 | 2u << 26);
  g_assert_cmphex (rd (t, E1000_MDIC) & 0xffff, ==, 0x01e1);
}

static void
test_interrupts (T *t, gconstpointer data)
{
  /* The link came up with the reset; masked, so no INTx. */
  g_assert_false (t->intx);
  g_assert_cmphex (rd (t, E1000_ICR), ==, E1000_ICR_LSC);
  g_assert_cmphex (rd (t, E1000_ICR), ==, 0);
  wr (t, E1000_ICS, E1000_ICR_LSC);
  g_assert_false (t->intx);
  wr (t, E1000_IMS, E1000_ICR_LSC | E1000_ICR_RXT0);
  g_assert_true (t->intx);
  g_assert_cmphex (rd (t, E1000_IMS), ==, E1000_ICR_LSC | E1000_ICR_RXT0);
  wr (t, E1000_IMC, E1000_ICR_LSC);
  g_assert_false (t->intx);
  wr (t, E1000_ICS, E1000_ICR_RXT0);
  g_assert_true (t->intx);
  g_assert_cmphex (rd (t, E1000_ICR), ==, E1000_ICR_LSC | E1000_ICR_RXT0);
  g_assert_false (t->intx);
  g_assert_cmphex (rd (t, E1000_ICR), ==, 0);
  /* CTRL.RST: back to defaults. */
  wr (t, E1000_ICS, E1000_ICR_RXT0);
  wr (t, E1000_CTRL, 1u << 26);
  g_assert_false (t->intx);
  g_assert_cmphex (rd (t, E1000_IMS), ==, 0);
  g_assert_cmphex (rd (t, E1000_CTRL) & (1u << 26), ==, 0);
}

static void
test_tx (T *t, gconstpointer data)
{
  rings (t, 8);
  wr (t, E1000_IMS, E1000_ICR_TXDW);
  uint8_t f[4000];
  size_t len = make_ip (f, 17, 100, false);
  /* A UDP frame over two legacy descriptors, the checksum inserted (IC). */
  memcpy (t->mem.host + BUFS, f, 40);
  memcpy (t->mem.host + BUFS + 0x1000, f + 40, len - 40);
  tx_legacy (t, 0, BUFS, 40, 0x02, 0, 0);
  tx_legacy (t, 1, BUFS + 0x1000, (uint16_t) (len - 40), 0x0b | 0x04, 40, 34);
  /* IPv4 checksum filled by hand for the legacy path. */
  uint16_t ic = ~vmm_net_csum_fold (vmm_net_csum_add (0, f + 14, 20));
  t->mem.host[BUFS + 24] = ic >> 8;
  t->mem.host[BUFS + 25] = ic & 0xff;
  wr (t, E1000_TDT, 2);
  g_assert_cmpuint (rd (t, E1000_TDH), ==, 2);
  g_assert_cmpuint (n_sent (t), ==, 1);
  size_t sl;
  const uint8_t *s = sent (t, 0, &sl);
  g_assert_cmpuint (sl, ==, len);
  g_assert_true (csums_ok (s, sl));
  g_assert_cmphex (t->mem.host[TX_RING + 16 + 12] & 1, ==, 1); /* DD */
  g_assert_true (t->intx);
  g_assert_cmphex (rd (t, E1000_ICR) & 3, ==, 3); /* TXDW TXQE */

  /* Context + data descriptors: IXSM and TXSM. */
  len = make_ip (f, 17, 333, false);
  memcpy (t->mem.host + BUFS + 0x2000, f, len);
  uint64_t c = TX_RING + 32;
  put64 (t, c, 14 | 24 << 8 | (uint64_t) 33 << 16 | (uint64_t) 34 << 32
                   | (uint64_t) 40 << 40);
  put64 (t, c + 8, (uint64_t) (0x20 | 0x02) << 24);
  put64 (t, c + 16, BUFS + 0x2000);
  put64 (t, c + 24, len | 1u << 20 | (uint64_t) 0x2b << 24 | (uint64_t) 3 << 40);
  wr (t, E1000_TDT, 4);
  g_assert_cmpuint (n_sent (t), ==, 2);
  s = sent (t, 1, &sl);
  g_assert_true (csums_ok (s, sl));

  /* TSO: 3000 bytes of TCP payload in segments of 1000. */
  len = make_ip (f, 6, 3000, true);
  memcpy (t->mem.host + BUFS + 0x3000, f, len);
  c = TX_RING + 64;
  put64 (t, c, 14 | 24 << 8 | (uint64_t) 33 << 16 | (uint64_t) 34 << 32
                   | (uint64_t) 50 << 40);
  put64 (t, c + 8, 3000 | (uint64_t) (0x20 | 0x04 | 0x02 | 0x01) << 24
                       | (uint64_t) 54 << 40 | (uint64_t) 1000 << 48);
  put64 (t, c + 16, BUFS + 0x3000);
  put64 (t, c + 24, len | 1u << 20 | (uint64_t) 0x2f << 24 | (uint64_t) 3 << 40);
  wr (t, E1000_TDT, 6);
  g_assert_cmpuint (n_sent (t), ==, 5);
  for (unsigned i = 0; i < 3; i++)
    {
      s = sent (t, 2 + i, &sl);
      g_assert_cmpuint (sl, ==, 54 + 1000);
      g_assert_true (csums_ok (s, sl));
      uint32_t seq = (uint32_t) s[38] << 24 | s[39] << 16 | s[40] << 8 | s[41];
      g_assert_cmphex (seq, ==, 0x01020304u + 1000 * i);
      g_assert_cmphex (s[47] & 0x09, ==, i == 2 ? 0x09 : 0); /* FIN PSH */
      g_assert_cmpuint (s[18] << 8 | s[19], ==, 0x1234 + i); /* IP id */
      g_assert_cmpmem (s + 54, 1000, f + 54 + 1000 * i, 1000);
    }
  e1000_stats st;
  e1000_get_stats (t->e, &st);
  g_assert_cmpuint (st.tx_frames, ==, 5);
  g_assert_cmpuint (st.tx_dropped, ==, 0);
}

static void
test_rx (T *t, gconstpointer data)
{
  rings (t, 8);
  wr (t, E1000_RDT, 7);
  wr (t, E1000_RCTL, (1u << 1) | (1u << 15) | (1u << 26)); /* EN BAM SECRC */
  wr (t, E1000_IMS, E1000_ICR_RXT0);
  vmm_net_port *p = e1000_port (t->e);
  uint8_t f[1600];
  size_t len = make_ip (f, 17, 10, false);
  memcpy (f, mac, 6);
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  g_assert_cmpuint (rd (t, E1000_RDH), ==, 1);
  const uint8_t *d = t->mem.host + RX_RING;
  g_assert_cmpuint (d[8] | d[9] << 8, ==, 60); /* padded */
  g_assert_cmphex (d[12] & 3, ==, 3);          /* DD EOP */
  g_assert_cmpmem (t->mem.host + BUFS, len, f, len);
  g_assert_true (t->intx);
  /* Not for us: dropped silently. Broadcast: taken. */
  f[0] = 0x02;
  vmm_net_port_deliver (p, f, len);
  memset (f, 0xff, 6);
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  g_assert_cmpuint (rd (t, E1000_RDH), ==, 2);
  /* Without SECRC an FCS follows; with 256-byte buffers a long frame
   * spans descriptors. */
  wr (t, E1000_RCTL, (1u << 1) | (1u << 15) | (3u << 16));
  len = make_ip (f, 17, 600, false);
  memset (f, 0xff, 6);
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  g_assert_cmpuint (rd (t, E1000_RDH), ==, 5); /* 642 + 4 = 3 buffers */
  d = t->mem.host + RX_RING + 16 * 4;
  g_assert_cmpuint (d[8] | d[9] << 8, ==, len + 4 - 512);
  g_assert_cmphex (d[12] & 3, ==, 3);
  /* The ring is full (RDT 7): the next frame waits for an RDT write. */
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  g_assert_cmpuint (vmm_net_port_queued (p), ==, 1);
  wr (t, E1000_RDT, 4);
  vmm_net_port_process (p);
  g_assert_cmpuint (vmm_net_port_queued (p), ==, 0);
  g_assert_cmpuint (rd (t, E1000_RDH), ==, 0);
  g_assert_cmpuint (rd (t, E1000_GPRC), ==, 4);
  g_assert_cmpuint (rd (t, E1000_GPRC), ==, 0); /* clear on read */
}

static void
test_hostile (T *t, gconstpointer data)
{
  GRand *r = g_rand_new_with_seed (8254);
  /* Every register: all ones, zero, random, and reads; through BAR0 with
   * every access size and through BAR1. */
  for (uint32_t off = 0; off < E1000_MMIO_SIZE; off += 4)
    {
      wr (t, off, 0xffffffff);
      rd (t, off);
      wr (t, off, g_rand_int (r));
      vmm_bus_write (t->mmio, BAR0 + off + 1, 1, 0, 0xff);
      vmm_bus_write (t->mmio, BAR0 + off + 2, 2, 0, 0xffff);
      uint64_t v;
      vmm_bus_read (t->mmio, BAR0 + off + 3, 1, 0, &v);
      wr (t, off, 0);
    }
  vmm_bus_write (t->mmio, BAR0 + E1000_MMIO_SIZE - 4, 8, 0, UINT64_MAX);
  for (unsigned i = 0; i < 1000; i++)
    {
      uint64_t v;
      vmm_bus_write (t->pio, BAR1, 4, 0, g_rand_int (r));
      vmm_bus_write (t->pio, BAR1 + 4, 4, 0, g_rand_int (r));
      vmm_bus_read (t->pio, BAR1 + g_rand_int_range (r, 0, 64), 1 << g_rand_int_range (r, 0, 3), 0, &v);
    }
  wr (t, E1000_CTRL, 1u << 26);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_IO | PCI_COMMAND_MEMORY
                            | PCI_COMMAND_MASTER);
  e1000_stats st0;
  e1000_get_stats (t->e, &st0);

  /* Rings: outside RAM, running off its end, absurd length, tail past it. */
  wr (t, E1000_TCTL, 2);
  wr (t, E1000_TDBAL, 0xfffff000);
  wr (t, E1000_TDBAH, 0xffff);
  wr (t, E1000_TDLEN, 128);
  wr (t, E1000_TDT, 1);
  wr (t, E1000_TDBAL, RAM_SIZE - 64);
  wr (t, E1000_TDBAH, 0);
  wr (t, E1000_TDT, 2);
  wr (t, E1000_TDBAL, RAM_SIZE - 4096); /* 1 MiB of ring, mostly past RAM */
  wr (t, E1000_TDLEN, 0xfff80);
  wr (t, E1000_TDT, 3);
  wr (t, E1000_TDBAL, TX_RING);
  wr (t, E1000_TDLEN, 128);
  wr (t, E1000_TDT, 100);
  e1000_stats st;
  e1000_get_stats (t->e, &st);
  g_assert_cmpuint (st.ring_errors, >=, st0.ring_errors + 4);

  /* Descriptors: a buffer outside RAM, an unknown type, a packet over
   * 64 KiB, a TSO context that does not fit, a runt. */
  wr (t, E1000_TDT, 0);
  wr (t, E1000_TDH, 0);
  wr (t, E1000_TDLEN, 64 * 16);
  memset (t->mem.host + TX_RING, 0, 64 * 16);
  unsigned i = 0;
  tx_legacy (t, i++, UINT64_C (0xfff0000000000), 0xffff, 0x0b, 0, 0);
  put64 (t, TX_RING + 16 * i, BUFS);
  put64 (t, TX_RING + 16 * i + 8, 64 | 0xfULL << 20 | 0x29ULL << 24);
  i++;
  for (int k = 0; k < 20; k++)
    tx_legacy (t, i++, BUFS, 4000, k == 19 ? 0x0b : 0x02, 0, 0);
  put64 (t, TX_RING + 16 * i, 0);
  put64 (t, TX_RING + 16 * i + 8, 0x24ULL << 24 | 14ULL << 40);
  i++;
  put64 (t, TX_RING + 16 * i, BUFS);
  put64 (t, TX_RING + 16 * i + 8, 100 | 1ULL << 20 | 0x2dULL << 24 | 3ULL << 40);
  i++;
  tx_legacy (t, i++, BUFS, 6, 0x0b, 0, 0);
  tx_legacy (t, i++, BUFS, 64, 0x0b | 0x04, 200, 10); /* IC past the end */
  wr (t, E1000_TDT, i);
  g_assert_cmpuint (rd (t, E1000_TDH), ==, i);
  e1000_get_stats (t->e, &st);
  g_assert_cmpuint (st.tx_dropped, >=, st0.tx_dropped + 6);
  g_assert_cmpuint (n_sent (t), ==, 0);

  /* Receive into a ring outside RAM and buffers outside RAM. */
  vmm_net_port *p = e1000_port (t->e);
  uint8_t f[100];
  size_t len = make_ip (f, 17, 20, false);
  memset (f, 0xff, 6);
  wr (t, E1000_RCTL, (1u << 1) | (1u << 15));
  wr (t, E1000_RDBAL, 0xfffff000);
  wr (t, E1000_RDBAH, 0x7fff);
  wr (t, E1000_RDLEN, 128);
  wr (t, E1000_RDT, 5);
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  wr (t, E1000_RDBAL, RX_RING);
  wr (t, E1000_RDBAH, 0);
  wr (t, E1000_RDH, 0);
  for (unsigned k = 0; k < 8; k++)
    put64 (t, RX_RING + 16 * k, UINT64_C (0xfff0000000000));
  vmm_net_port_deliver (p, f, len);
  vmm_net_port_process (p);
  g_assert_cmpuint (vmm_net_port_queued (p), ==, 0);
  e1000_get_stats (t->e, &st);
  g_assert_cmpuint (st.rx_dropped, >=, st0.rx_dropped + 2);
  g_assert_cmphex (t->mem.host[RX_RING + 13], ==, 0x80); /* RXE */

  /* After a reset, a good frame goes out. */
  wr (t, E1000_CTRL, 1u << 26);
  rings (t, 8);
  len = make_ip (f, 17, 20, false);
  memcpy (t->mem.host + BUFS, f, len);
  tx_legacy (t, 0, BUFS, (uint16_t) len, 0x0b, 0, 0);
  wr (t, E1000_TDT, 1);
  g_assert_cmpuint (n_sent (t), ==, 1);
  g_rand_free (r);
}

static void
test_state (T *t, gconstpointer data)
{
  rings (t, 8);
  wr (t, E1000_IMS, E1000_ICR_TXDW | E1000_ICR_RXT0);
  wr (t, E1000_ICS, E1000_ICR_RXT0);
  wr (t, E1000_MTA + 8, 0x1234);
  vmm_bus_write (t->pio, BAR1, 4, 0, E1000_RDLEN);
  /* Half a packet gathered (no EOP yet), and the EEPROM mid-read. */
  tx_legacy (t, 0, BUFS, 30, 0x02, 0, 0);
  wr (t, E1000_TDT, 1);
  wr (t, E1000_EECD, (1u << 6) | 2);
  g_autoptr (GByteArray) a = g_byte_array_new ();
  vmm_device *dev = e1000_device (t->e);
  dev->ops->save_state (dev, a);

  g_autoptr (GError) error = NULL;
  e1000 *e2 = e1000_create ("e1000-1", &t->mem, NULL, mac, NULL, 0, NULL,
                            &error);
  g_assert_no_error (error);
  vmm_device *dev2 = e1000_device (e2);
  g_assert_true (dev2->ops->load_state (dev2, a->data, a->len, &error));
  g_assert_no_error (error);
  g_autoptr (GByteArray) b = g_byte_array_new ();
  dev2->ops->save_state (dev2, b);
  g_assert_cmpmem (a->data, a->len, b->data, b->len);
  /* Truncated, or with a bad field: refused, nothing changed. */
  g_assert_false (dev2->ops->load_state (dev2, a->data, a->len - 10, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_autofree uint8_t *bad = g_memdup2 (a->data, a->len);
  bad[a->len - 30 - 1] = 0xff; /* tx_len's top byte (little-endian) */
  g_assert_false (dev2->ops->load_state (dev2, bad, a->len, &error));
  g_clear_error (&error);
  g_autoptr (GByteArray) c = g_byte_array_new ();
  dev2->ops->save_state (dev2, c);
  g_assert_cmpmem (a->data, a->len, c->data, c->len);
  vmm_device_destroy (dev2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_log_set_handler (NULL, G_LOG_LEVEL_MESSAGE, g_log_default_handler, NULL);
#define ADD(name, fn) g_test_add (name, T, NULL, setup, fn, teardown)
  ADD ("/e1000/identity", test_identity);
  ADD ("/e1000/eeprom-phy", test_eeprom_phy);
  ADD ("/e1000/interrupts", test_interrupts);
  ADD ("/e1000/tx", test_tx);
  ADD ("/e1000/rx", test_rx);
  ADD ("/e1000/hostile", test_hostile);
  ADD ("/e1000/state", test_state);
  return g_test_run ();
}
