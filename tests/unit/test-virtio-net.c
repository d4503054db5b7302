/* virtio-net on the virtio PCI transport, driven like a guest driver would
 * through config space and the MMIO bus, with fake RAM, INTx only and a
 * fake back end that records frames. Hostile descriptors and frames are
 * dropped and counted; a good frame works after them. No KVM. */
#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/virtio-net.h"

#define RAM_SIZE (4u << 20)
#define DEVFN VMM_PCI_DEVFN (3, 0)
#define BAR4_ADDR UINT64_C (0xfe000000)
#define QS 16 /* what the test's driver uses */
#define RING_BASE 0x100000 /* queue q's rings at RING_BASE + q * 0x10000 */
#define BUF_GPA 0x200000   /* buffers */
#define CFG(off) (VIRTIO_PCI_DEVICE_OFF + (off))
#define F(bit) (UINT64_C (1) << (bit))

typedef struct fake_be {
  vmm_net_backend be;
  GPtrArray *frames; /* GBytes */
} fake_be;

typedef struct T {
  vmm_guest_memory mem;
  vmm_bus *pio, *mmio;
  vmm_pci_host *host;
  GMainContext *ctx;
  virtio_net *n;
  fake_be *be;
  unsigned intx_raised;
  uint16_t avail_idx[2];
  uint16_t used_seen[2];
} T;

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
  T *t = opaque;
  if (level)
    t->intx_raised++;
}

static uint64_t
rd (T *t, uint64_t off, unsigned size)
{
  uint64_t v;
  vmm_bus_read (t->mmio, BAR4_ADDR + off, size, 0, &v);
  return v;
}

static void
wr (T *t, uint64_t off, unsigned size, uint64_t v)
{
  vmm_bus_write (t->mmio, BAR4_ADDR + off, size, 0, v);
}

static void
put16 (T *t, uint64_t gpa, uint16_t v)
{
  t->mem.host[gpa] = v & 0xff;
  t->mem.host[gpa + 1] = v >> 8;
}

static uint16_t
get16 (T *t, uint64_t gpa)
{
  return (uint16_t) (t->mem.host[gpa] | t->mem.host[gpa + 1] << 8);
}

static uint32_t
get32 (T *t, uint64_t gpa)
{
  return get16 (t, gpa) | (uint32_t) get16 (t, gpa + 2) << 16;
}

static void
put32 (T *t, uint64_t gpa, uint32_t v)
{
  put16 (t, gpa, v & 0xffff);
  put16 (t, gpa + 2, v >> 16);
}

static void
put64 (T *t, uint64_t gpa, uint64_t v)
{
  put32 (t, gpa, (uint32_t) v);
  put32 (t, gpa + 4, (uint32_t) (v >> 32));
}

#define DESC_GPA(q) (RING_BASE + (q) * 0x10000)
#define AVAIL_GPA(q) (DESC_GPA (q) + 0x1000)
#define USED_GPA(q) (DESC_GPA (q) + 0x2000)

static void
put_desc (T *t, unsigned q, unsigned i, uint64_t addr, uint32_t len,
          uint16_t flags, uint16_t next)
{
  uint64_t d = DESC_GPA (q) + 16 * i;
  put64 (t, d, addr);
  put32 (t, d + 8, len);
  put16 (t, d + 12, flags);
  put16 (t, d + 14, next);
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
  t->ctx = g_main_context_new ();
  t->be = g_new0 (fake_be, 1);
  t->be->be.ops = &be_ops;
  t->be->frames = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
  g_autoptr (GError) error = NULL;
  t->n = virtio_net_create ("virtio-net0", &t->mem, t->ctx, NULL, NULL, mac,
                            NULL, 0, &t->be->be, &error);
  g_assert_no_error (error);
  g_assert_true (virtio_net_attach (t->n, t->host, DEVFN, &error));
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 16, 4,
                        (uint32_t) BAR4_ADDR);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 20, 4, 0);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void
teardown (T *t, gconstpointer data)
{
  vmm_device_destroy (virtio_net_device (t->n));
  while (g_main_context_iteration (t->ctx, FALSE))
    ;
  vmm_pci_host_free (t->host);
  vmm_bus_free (t->pio);
  vmm_bus_free (t->mmio);
  g_main_context_unref (t->ctx);
  g_free (t->mem.host);
}

static uint8_t
status_now (T *t)
{
  return rd (t, VIRTIO_PCI_COMMON_STATUS, 1);
}

static void
run_loop (T *t)
{
  for (unsigned i = 0; i < 20; i++)
    while (g_main_context_iteration (t->ctx, FALSE))
      ;
}

/* The driver's start-up (3.1.1) with @features and both queues. */
static uint8_t
drv_init (T *t, uint64_t features)
{
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  memset (t->avail_idx, 0, sizeof t->avail_idx);
  memset (t->used_seen, 0, sizeof t->used_seen);
  for (unsigned q = 0; q < 2; q++)
    memset (t->mem.host + DESC_GPA (q), 0, 0x3000);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
  wr (t, VIRTIO_PCI_COMMON_GF, 4, (uint32_t) features);
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
  wr (t, VIRTIO_PCI_COMMON_GF, 4, 1); /* VERSION_1 */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
          | VIRTIO_STATUS_FEATURES_OK);
  for (unsigned q = 0; q < 2; q++)
    {
      wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SIZE, 2), ==,
                        VIRTIO_NET_QUEUE_SIZE);
      wr (t, VIRTIO_PCI_COMMON_Q_SIZE, 2, QS);
      wr (t, VIRTIO_PCI_COMMON_Q_DESC, 8, DESC_GPA (q));
      wr (t, VIRTIO_PCI_COMMON_Q_DRIVER, 8, AVAIL_GPA (q));
      wr (t, VIRTIO_PCI_COMMON_Q_DEVICE, 8, USED_GPA (q));
      wr (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
    }
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
          | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
  return status_now (t);
}

static void
offer (T *t, unsigned q, uint16_t head)
{
  uint16_t i = t->avail_idx[q]++;
  put16 (t, AVAIL_GPA (q) + 4 + 2 * (i % QS), head);
  put16 (t, AVAIL_GPA (q) + 2, t->avail_idx[q]);
}

static void
kick (T *t, unsigned q)
{
  wr (t, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, 2, q);
  run_loop (t);
}

/* The next used element of queue @q: its id and length; false when none. */
static bool
take_used (T *t, unsigned q, uint32_t *id, uint32_t *len)
{
  if (get16 (t, USED_GPA (q) + 2) == t->used_seen[q])
    return false;
  uint64_t e = USED_GPA (q) + 4 + 8 * (t->used_seen[q] % QS);
  *id = get32 (t, e);
  *len = get32 (t, e + 4);
  t->used_seen[q]++;
  return true;
}

/* A UDP/IPv4 frame of @payload bytes from 10.0.2.15 to 10.0.2.2, the UDP
 * checksum field holding the pseudo-header sum (what a driver leaves for
 * NEEDS_CSUM) when @partial, else the full checksum. */
static size_t
make_udp (uint8_t *f, size_t payload, bool partial)
{
  size_t len = 14 + 20 + 8 + payload;
  memset (f, 0, len);
  memcpy (f, "\x52\x55\x0a\x00\x02\x02\x52\x54\x00\x12\x34\x56\x08\x00", 14);
  uint8_t *ip = f + 14;
  ip[0] = 0x45;
  ip[2] = (uint8_t) ((20 + 8 + payload) >> 8);
  ip[3] = (uint8_t) (20 + 8 + payload);
  ip[8] = 64;
  ip[9] = 17;
  memcpy (ip + 12, "\x0a\x00\x02\x0f\x0a\x00\x02\x02", 8);
  uint16_t ic = ~vmm_net_csum_fold (vmm_net_csum_add (0, ip, 20));
  ip[10] = ic >> 8;
  ip[11] = ic & 0xff;
  uint8_t *u = ip + 20;
  u[0] = 0x9c; u[1] = 0x40; u[2] = 0x1f; u[3] = 0x40;
  u[4] = (uint8_t) ((8 + payload) >> 8);
  u[5] = (uint8_t) (8 + payload);
  for (size_t i = 0; i < payload; i++)
    u[8 + i] = (uint8_t) (i * 7 + 3);
  uint8_t ph[12] = { 10, 0, 2, 15, 10, 0, 2, 2, 0, 17,
                     (uint8_t) ((8 + payload) >> 8), (uint8_t) (8 + payload) };
  uint32_t sum = vmm_net_csum_add (0, ph, 12);
  uint16_t c = partial ? vmm_net_csum_fold (sum)
                       : ~vmm_net_csum_fold (vmm_net_csum_add (sum, u,
                                                               8 + payload));
  u[6] = c >> 8;
  u[7] = c & 0xff;
  return len;
}

/* Whether the UDP checksum of @f checks out. */
static bool
udp_ok (const uint8_t *f, size_t len)
{
  const uint8_t *ip = f + 14, *u = ip + 20;
  size_t ulen = len - 34;
  uint8_t ph[12] = { 0 };
  memcpy (ph, ip + 12, 8);
  ph[9] = 17;
  ph[10] = (uint8_t) (ulen >> 8);
  ph[11] = (uint8_t) ulen;
  uint32_t sum = vmm_net_csum_add (vmm_net_csum_add (0, ph, 12), u, ulen);
  return vmm_net_csum_fold (sum) == 0xffff;
}

/* Puts a header and @frame at @gpa and sends it as descriptor @d. */
static void
send_frame (T *t, unsigned d, uint64_t gpa, const uint8_t *hdr,
            const uint8_t *frame, size_t len)
{
  memcpy (t->mem.host + gpa, hdr, VIRTIO_NET_HDR_LEN);
  memcpy (t->mem.host + gpa + VIRTIO_NET_HDR_LEN, frame, len);
  put_desc (t, 1, d, gpa, VIRTIO_NET_HDR_LEN + (uint32_t) len, 0, 0);
  offer (t, 1, (uint16_t) d);
}

static unsigned
n_sent (T *t)
{
  return t->be->frames->len;
}

/* ---- tests ---- */

static void
test_identity (T *t, gconstpointer data)
{
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0, 4), ==,
                   0x10411af4);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 8, 4) >> 8, ==,
                   0x020000);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_NUMQ, 2), ==, 2);
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
  uint32_t f = (uint32_t) rd (t, VIRTIO_PCI_COMMON_DF, 4) & 0x00ffffff;
  g_assert_cmphex (f, ==, F (VIRTIO_NET_F_CSUM) | F (VIRTIO_NET_F_GUEST_CSUM)
                              | F (VIRTIO_NET_F_MAC)
                              | F (VIRTIO_NET_F_MRG_RXBUF)
                              | F (VIRTIO_NET_F_STATUS));
  static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
  for (unsigned i = 0; i < 6; i++)
    g_assert_cmphex (rd (t, CFG (i), 1), ==, mac[i]);
  g_assert_cmphex (rd (t, CFG (6), 2), ==, VIRTIO_NET_S_LINK_UP);
  g_assert_cmphex (rd (t, CFG (8), 2), ==, 1);
  /* The configuration is read-only. */
  wr (t, CFG (0), 4, 0xffffffff);
  g_assert_cmphex (rd (t, CFG (0), 1), ==, 0x52);
}

static void
test_tx (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_CSUM)) & 0x40, ==, 0);
  uint8_t f[200], hdr[VIRTIO_NET_HDR_LEN] = { 0 };
  size_t len = make_udp (f, 100, false);
  send_frame (t, 0, BUF_GPA, hdr, f, len);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 1);
  GBytes *b = t->be->frames->pdata[0];
  g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b), f, len);
  uint32_t id, ulen;
  g_assert_true (take_used (t, 1, &id, &ulen));
  g_assert_cmpuint (id, ==, 0);
  g_assert_cmpuint (ulen, ==, 0);
  g_assert_cmpuint (t->intx_raised, >, 0);

  /* Checksum offload: the device completes the UDP checksum. */
  len = make_udp (f, 101, true);
  g_assert_false (udp_ok (f, len));
  hdr[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
  hdr[6] = 34; /* csum_start: the UDP header */
  hdr[8] = 6;  /* csum_offset: its checksum field */
  send_frame (t, 1, BUF_GPA + 0x1000, hdr, f, len);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 2);
  b = t->be->frames->pdata[1];
  g_assert_cmpuint (g_bytes_get_size (b), ==, len);
  g_assert_true (udp_ok (g_bytes_get_data (b, NULL), len));
  virtio_net_stats st;
  virtio_net_get_stats (t->n, &st);
  g_assert_cmpuint (st.tx_frames, ==, 2);
  g_assert_cmpuint (st.tx_csum, ==, 1);

  /* A frame split over three descriptors. */
  len = make_udp (f, 150, false);
  memset (t->mem.host + BUF_GPA + 0x2000, 0, VIRTIO_NET_HDR_LEN);
  memcpy (t->mem.host + BUF_GPA + 0x3000, f, 20);
  memcpy (t->mem.host + BUF_GPA + 0x4000, f + 20, len - 20);
  put_desc (t, 1, 2, BUF_GPA + 0x2000, VIRTIO_NET_HDR_LEN, VIRTQ_DESC_F_NEXT, 3);
  put_desc (t, 1, 3, BUF_GPA + 0x3000, 20, VIRTQ_DESC_F_NEXT, 4);
  put_desc (t, 1, 4, BUF_GPA + 0x4000, (uint32_t) len - 20, 0, 0);
  offer (t, 1, 2);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 3);
  b = t->be->frames->pdata[2];
  g_assert_cmpmem (g_bytes_get_data (b, NULL), g_bytes_get_size (b), f, len);
}

static void
test_tx_hostile (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_CSUM)) & 0x40, ==, 0);
  uint8_t f[3000], hdr[VIRTIO_NET_HDR_LEN] = { 0 };
  size_t len = make_udp (f, 64, false);
  /* 0: a chain that loops. */
  put_desc (t, 1, 0, BUF_GPA, 64, VIRTQ_DESC_F_NEXT, 0);
  offer (t, 1, 0);
  /* 1: a buffer outside RAM; 2: one straddling its end. */
  put_desc (t, 1, 1, UINT64_C (0xfffffff00000), 64, 0, 0);
  offer (t, 1, 1);
  put_desc (t, 1, 2, RAM_SIZE - 16, 64, 0, 0);
  offer (t, 1, 2);
  /* 3: device-writable. */
  put_desc (t, 1, 3, BUF_GPA, 64, VIRTQ_DESC_F_WRITE, 0);
  offer (t, 1, 3);
  /* 4: oversized (2000 bytes), 5: a runt (a header and 4 bytes), 6: a
   * lone header. */
  size_t big = make_udp (f, 2000 - 42, false);
  send_frame (t, 4, BUF_GPA + 0x1000, hdr, f, big);
  send_frame (t, 5, BUF_GPA + 0x2000, hdr, f, 4);
  put_desc (t, 1, 6, BUF_GPA, VIRTIO_NET_HDR_LEN, 0, 0);
  offer (t, 1, 6);
  /* 7: a checksum past the frame, 8: csum_offset + 2 past its end, 9: GSO
   * never offered, 10: next index out of range. */
  len = make_udp (f, 64, true);
  uint8_t bad[VIRTIO_NET_HDR_LEN] = { VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0,
                                      0, 0, 0xff, 0x7f, 6, 0 };
  send_frame (t, 7, BUF_GPA + 0x3000, bad, f, len);
  bad[6] = 34;
  bad[7] = 0;
  bad[8] = (uint8_t) (len - 34 - 1);
  send_frame (t, 8, BUF_GPA + 0x4000, bad, f, len);
  uint8_t gso[VIRTIO_NET_HDR_LEN] = { 0, 1 };
  send_frame (t, 9, BUF_GPA + 0x5000, gso, f, len);
  put_desc (t, 1, 10, BUF_GPA, 64, VIRTQ_DESC_F_NEXT, 999);
  offer (t, 1, 10);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 0);
  virtio_net_stats st;
  virtio_net_get_stats (t->n, &st);
  g_assert_cmpuint (st.tx_malformed + st.tx_oversized, ==, 11);
  g_assert_cmpuint (st.tx_oversized, ==, 3);
  uint32_t id, ulen;
  for (unsigned i = 0; i < 11; i++)
    {
      g_assert_true (take_used (t, 1, &id, &ulen));
      g_assert_cmpuint (id, ==, i);
      g_assert_cmpuint (ulen, ==, 0);
    }
  g_assert_cmphex (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
  /* And a good frame still goes out. */
  len = make_udp (f, 64, false);
  memset (hdr, 0, sizeof hdr);
  send_frame (t, 11, BUF_GPA + 0x6000, hdr, f, len);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 1);

  /* A bogus avail index is fatal for the queue: DEVICE_NEEDS_RESET. */
  put16 (t, AVAIL_GPA (1) + 2, (uint16_t) (t->avail_idx[1] + 1000));
  kick (t, 1);
  g_assert_cmphex (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, !=, 0);
  g_assert_cmphex (drv_init (t, 0) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
  send_frame (t, 0, BUF_GPA + 0x6000, hdr, f, len);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 2);
}

static void
deliver (T *t, const uint8_t *f, size_t len)
{
  vmm_net_port_deliver (virtio_net_port (t->n), f, len);
  run_loop (t);
}

static void
post_rx (T *t, unsigned d, uint64_t gpa, uint32_t len)
{
  memset (t->mem.host + gpa, 0xee, len);
  put_desc (t, 0, d, gpa, len, VIRTQ_DESC_F_WRITE, 0);
  offer (t, 0, (uint16_t) d);
}

static void
test_rx (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_GUEST_CSUM)) & 0x40, ==, 0);
  uint8_t f[1600];
  size_t len = make_udp (f, 200, false);
  /* No buffers yet: the frame waits in the port. */
  deliver (t, f, len);
  g_assert_cmpuint (vmm_net_port_queued (virtio_net_port (t->n)), ==, 1);
  post_rx (t, 0, BUF_GPA, 2048);
  kick (t, 0);
  g_assert_cmpuint (vmm_net_port_queued (virtio_net_port (t->n)), ==, 0);
  uint32_t id, ulen;
  g_assert_true (take_used (t, 0, &id, &ulen));
  g_assert_cmpuint (id, ==, 0);
  g_assert_cmpuint (ulen, ==, VIRTIO_NET_HDR_LEN + len);
  const uint8_t *b = t->mem.host + BUF_GPA;
  g_assert_cmphex (b[0], ==, VIRTIO_NET_HDR_F_DATA_VALID);
  g_assert_cmpuint (b[10] | b[11] << 8, ==, 1);
  g_assert_cmpmem (b + VIRTIO_NET_HDR_LEN, len, f, len);

  /* Without MRG_RXBUF a buffer too small drops the frame (returned empty). */
  post_rx (t, 1, BUF_GPA + 0x1000, 100);
  deliver (t, f, len);
  g_assert_true (take_used (t, 0, &id, &ulen));
  g_assert_cmpuint (id, ==, 1);
  g_assert_cmpuint (ulen, ==, 0);
  virtio_net_stats st;
  virtio_net_get_stats (t->n, &st);
  g_assert_cmpuint (st.rx_frames, ==, 1);
  g_assert_cmpuint (st.rx_dropped, ==, 1);
}

static void
test_rx_mergeable (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_MRG_RXBUF)) & 0x40, ==, 0);
  uint8_t f[1600];
  size_t len = make_udp (f, 258, false); /* 300 bytes: 312 with the header */
  for (unsigned i = 0; i < 3; i++)
    post_rx (t, i, BUF_GPA + 0x1000 * i, 100);
  /* Three buffers of 100 are not enough: nothing is used yet. */
  deliver (t, f, len);
  uint32_t id, ulen;
  g_assert_false (take_used (t, 0, &id, &ulen));
  post_rx (t, 3, BUF_GPA + 0x3000, 100);
  kick (t, 0);
  uint8_t got[400];
  size_t n = 0;
  for (unsigned i = 0; i < 4; i++)
    {
      g_assert_true (take_used (t, 0, &id, &ulen));
      g_assert_cmpuint (id, ==, i);
      g_assert_cmpuint (ulen, ==, i < 3 ? 100 : 12);
      memcpy (got + n, t->mem.host + BUF_GPA + 0x1000 * id, ulen);
      n += ulen;
    }
  g_assert_cmpuint (n, ==, VIRTIO_NET_HDR_LEN + len);
  g_assert_cmpuint (got[10] | got[11] << 8, ==, 4); /* num_buffers */
  g_assert_cmpmem (got + VIRTIO_NET_HDR_LEN, len, f, len);
}

static void
test_rx_hostile (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_MRG_RXBUF)) & 0x40, ==, 0);
  uint8_t f[1600];
  size_t len = make_udp (f, 100, false);
  /* Outside RAM, device-readable, looping, shorter than a header. */
  put_desc (t, 0, 0, UINT64_C (0xfffffff00000), 2048, VIRTQ_DESC_F_WRITE, 0);
  offer (t, 0, 0);
  put_desc (t, 0, 1, BUF_GPA, 2048, 0, 0);
  offer (t, 0, 1);
  put_desc (t, 0, 2, BUF_GPA, 2048, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
  offer (t, 0, 2);
  put_desc (t, 0, 3, BUF_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
  offer (t, 0, 3);
  kick (t, 0);
  for (unsigned i = 0; i < 4; i++)
    deliver (t, f, len);
  uint32_t id, ulen;
  for (unsigned i = 0; i < 4; i++)
    {
      g_assert_true (take_used (t, 0, &id, &ulen));
      g_assert_cmpuint (id, ==, i);
      g_assert_cmpuint (ulen, ==, 0);
    }
  virtio_net_stats st;
  virtio_net_get_stats (t->n, &st);
  g_assert_cmpuint (st.rx_dropped, ==, 4);
  g_assert_cmphex (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, ==, 0);
  /* A good buffer then takes a good frame. */
  post_rx (t, 4, BUF_GPA + 0x4000, 2048);
  kick (t, 0);
  deliver (t, f, len);
  g_assert_true (take_used (t, 0, &id, &ulen));
  g_assert_cmpuint (id, ==, 4);
  g_assert_cmpuint (ulen, ==, VIRTIO_NET_HDR_LEN + len);
  /* Frames for a driver that has not started are dropped, not queued. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  deliver (t, f, len);
  g_assert_cmpuint (vmm_net_port_queued (virtio_net_port (t->n)), ==, 0);
}

static void
test_port_overflow (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, 0) & 0x40, ==, 0);
  uint8_t f[64] = { 0 };
  for (unsigned i = 0; i < VMM_NET_PORT_QUEUE_MAX + 100; i++)
    vmm_net_port_deliver (virtio_net_port (t->n), f, sizeof f);
  /* Frames over the maximum are cut, not trusted. */
  g_autofree uint8_t *huge = g_malloc0 (VMM_NET_FRAME_MAX + 100);
  vmm_net_port_deliver (virtio_net_port (t->n), huge, VMM_NET_FRAME_MAX + 100);
  run_loop (t);
  vmm_net_port_stats ps;
  vmm_net_port_get_stats (virtio_net_port (t->n), &ps);
  g_assert_cmpuint (ps.rx_queue_dropped, ==, 101);
  g_assert_cmpuint (vmm_net_port_queued (virtio_net_port (t->n)), ==,
                    VMM_NET_PORT_QUEUE_MAX);
  /* A reset forgets them. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_assert_cmpuint (vmm_net_port_queued (virtio_net_port (t->n)), ==, 0);
}

static void
test_state (T *t, gconstpointer data)
{
  g_assert_cmphex (drv_init (t, F (VIRTIO_NET_F_MRG_RXBUF)) & 0x40, ==, 0);
  uint8_t f[200], hdr[VIRTIO_NET_HDR_LEN] = { 0 };
  size_t len = make_udp (f, 50, false);
  send_frame (t, 0, BUF_GPA, hdr, f, len);
  kick (t, 1);
  g_autoptr (GByteArray) a = g_byte_array_new ();
  vmm_device *dev = virtio_net_device (t->n);
  g_mutex_lock (&dev->lock);
  dev->ops->save_state (dev, a);
  g_mutex_unlock (&dev->lock);
  /* Into the same device after a reset: the same bytes come out. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_autoptr (GError) error = NULL;
  g_mutex_lock (&dev->lock);
  g_assert_true (dev->ops->load_state (dev, a->data, a->len, &error));
  g_mutex_unlock (&dev->lock);
  g_assert_no_error (error);
  g_autoptr (GByteArray) b = g_byte_array_new ();
  g_mutex_lock (&dev->lock);
  dev->ops->save_state (dev, b);
  g_mutex_unlock (&dev->lock);
  g_assert_cmpmem (a->data, a->len, b->data, b->len);
  /* The queues carry on where they were. */
  send_frame (t, 1, BUF_GPA + 0x1000, hdr, f, len);
  kick (t, 1);
  g_assert_cmpuint (n_sent (t), ==, 2);
  /* Another MAC address, or a truncated blob: refused. */
  g_autofree uint8_t *bad = g_memdup2 (a->data, a->len);
  bad[6 + 5] ^= 1; /* after the 6-byte header */
  g_mutex_lock (&dev->lock);
  g_assert_false (dev->ops->load_state (dev, bad, a->len, &error));
  g_clear_error (&error);
  g_assert_false (dev->ops->load_state (dev, a->data, a->len / 2, &error));
  g_mutex_unlock (&dev->lock);
  g_clear_error (&error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  /* Drops are logged with g_message; keep test output readable. */
  g_log_set_handler (NULL, G_LOG_LEVEL_MESSAGE, g_log_default_handler, NULL);
#define ADD(name, fn) g_test_add (name, T, NULL, setup, fn, teardown)
  ADD ("/virtio-net/identity", test_identity);
  ADD ("/virtio-net/tx", test_tx);
  ADD ("/virtio-net/tx-hostile", test_tx_hostile);
  ADD ("/virtio-net/rx", test_rx);
  ADD ("/virtio-net/rx-mergeable", test_rx_mergeable);
  ADD ("/virtio-net/rx-hostile", test_rx_hostile);
  ADD ("/virtio-net/port-overflow", test_port_overflow);
  ADD ("/virtio-net/state", test_state);
  return g_test_run ();
}
