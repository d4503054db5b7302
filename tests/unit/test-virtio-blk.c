/* virtio-blk on the virtio PCI transport, driven like a guest driver would
 * through config space and the MMIO bus, with fake RAM, a raw image in a
 * temporary directory, and stub MSI / ioeventfd hosts. No KVM. */
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm-core/devices/virtio-blk.h"

#define RAM_SIZE (4u << 20)
#define IMG_SIZE (1u << 20)
#define DEVFN VMM_PCI_DEVFN (3, 0)
#define BAR4_ADDR UINT64_C (0xfe000000)
#define BAR1_ADDR UINT64_C (0xfe100000)
#define QS 256
#define RING_BASE 0x100000 /* queue q's rings at RING_BASE + q * 0x10000 */
#define HDR_GPA 0x200000
#define STATUS_GPA 0x200100
#define TABLE_GPA 0x201000
#define DATA_GPA 0x210000
#define FEATURES_DEFAULT                                                       \
  (VIRTIO_BIT (VIRTIO_F_VERSION_1) | VIRTIO_BIT (VIRTIO_BLK_F_FLUSH)          \
   | VIRTIO_BIT (VIRTIO_BLK_F_DISCARD) | VIRTIO_BIT (VIRTIO_BLK_F_WRITE_ZEROES) \
   | VIRTIO_BIT (VIRTIO_F_RING_INDIRECT_DESC) | VIRTIO_BIT (VIRTIO_BLK_F_MQ))

typedef struct stub_vec {
  int fd;
  uint64_t addr;
  uint32_t data;
  bool live;
} stub_vec;

typedef struct T {
  vmm_guest_memory mem;
  vmm_bus *pio, *mmio;
  vmm_pci_host *host;
  GMainContext *ctx;
  char *dir, *path;
  VmmBlock *bs;
  virtio_blk *blk;
  vmm_msi_host msi;
  stub_vec vecs[64];
  int n_vecs;
  vmm_ioeventfd_host ioev;
  GArray *ioevs; /* uint64_t addresses registered */
  unsigned intx_changes;
  bool intx;
  uint16_t avail_idx[4];
  uint16_t used_seen[4];
  bool read_only;
} T;

/* ---- stubs ---- */

static int
stub_vector_add (void *opaque, uint64_t addr, uint32_t data, int fd,
                 GError **error)
{
  T *t = opaque;
  for (int i = 0; i < t->n_vecs; i++)
    if (!t->vecs[i].live)
      {
        t->vecs[i] = (stub_vec){ fd, addr, data, true };
        return i;
      }
  g_assert_cmpint (t->n_vecs, <, 64);
  t->vecs[t->n_vecs] = (stub_vec){ fd, addr, data, true };
  return t->n_vecs++;
}

static void
stub_vector_update (void *opaque, int handle, uint64_t addr, uint32_t data)
{
  T *t = opaque;
  g_assert_true (t->vecs[handle].live);
  t->vecs[handle].addr = addr;
  t->vecs[handle].data = data;
}

static void
stub_vector_remove (void *opaque, int handle)
{
  T *t = opaque;
  g_assert_true (t->vecs[handle].live);
  t->vecs[handle].live = false;
}

static gboolean
stub_ioev_add (void *opaque, bool pio, uint64_t addr, unsigned len, int fd,
               GError **error)
{
  T *t = opaque;
  g_assert_false (pio);
  for (guint i = 0; i < t->ioevs->len; i++)
    g_assert_cmpuint (g_array_index (t->ioevs, uint64_t, i), !=, addr);
  g_array_append_val (t->ioevs, addr);
  return TRUE;
}

static void
stub_ioev_remove (void *opaque, bool pio, uint64_t addr, unsigned len, int fd)
{
  T *t = opaque;
  for (guint i = 0; i < t->ioevs->len; i++)
    if (g_array_index (t->ioevs, uint64_t, i) == addr)
      {
        g_array_remove_index_fast (t->ioevs, i);
        return;
      }
  g_assert_not_reached ();
}

static void
route_intx (void *opaque, unsigned devfn, unsigned pin, bool level)
{
  T *t = opaque;
  t->intx = level;
  t->intx_changes++;
}

/* Interrupts sent on the MSI message with @data since the last call. */
static unsigned
msi_count (T *t, uint32_t data)
{
  unsigned n = 0;
  for (int i = 0; i < t->n_vecs; i++)
    if (t->vecs[i].live && t->vecs[i].data == data)
      {
        uint64_t v;
        if (read (t->vecs[i].fd, &v, sizeof v) == sizeof v)
          n += (unsigned) v;
      }
  return n;
}

/* ---- guest-side access ---- */

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

static uint64_t
desc_gpa (unsigned q)
{
  return RING_BASE + q * 0x10000;
}
#define AVAIL_GPA(q) (desc_gpa (q) + 0x1000)
#define USED_GPA(q) (desc_gpa (q) + 0x2000)

static void
put_desc_at (T *t, uint64_t table, unsigned i, uint64_t addr, uint32_t len,
             uint16_t flags, uint16_t next)
{
  put64 (t, table + 16 * i, addr);
  put32 (t, table + 16 * i + 8, len);
  put16 (t, table + 16 * i + 12, flags);
  put16 (t, table + 16 * i + 14, next);
}

static unsigned
find_cap (T *t, uint8_t id, uint8_t vndr_type)
{
  unsigned c = vmm_pci_config_read (t->host, 0, DEVFN, PCI_CFG_CAPABILITIES, 1);
  while (c)
    {
      uint8_t cid = vmm_pci_config_read (t->host, 0, DEVFN, c, 1);
      if (cid == id
          && (id != 0x09
              || vmm_pci_config_read (t->host, 0, DEVFN, c + 3, 1) == vndr_type))
        return c;
      c = vmm_pci_config_read (t->host, 0, DEVFN, c + 1, 1);
    }
  return 0;
}

static void
place_bars (T *t)
{
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 16, 4,
                        (uint32_t) BAR4_ADDR);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 20, 4, 0);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 4, 4,
                        (uint32_t) BAR1_ADDR);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void
make_device (T *t, unsigned nq)
{
  g_autoptr (GError) error = NULL;
  t->blk = virtio_blk_create (&t->mem, t->ctx, &t->msi, &t->ioev, t->bs, nq,
                              &error);
  g_assert_no_error (error);
  g_assert_true (virtio_blk_attach (t->blk, t->host, DEVFN, &error));
  virtio_blk_set_serial (t->blk, "VESSEL-SERIAL-0123456789");
  place_bars (t);
}

static void
setup_with (T *t, bool read_only, unsigned nq)
{
  memset (t, 0, sizeof *t);
  t->mem = (vmm_guest_memory){ .host = g_malloc0 (RAM_SIZE),
                               .size = RAM_SIZE,
                               .below_4g = RAM_SIZE };
  t->pio = vmm_bus_new (VMM_BUS_PIO);
  t->mmio = vmm_bus_new (VMM_BUS_MMIO);
  t->host = vmm_pci_host_new (t->pio, t->mmio, route_intx, t, NULL);
  t->ctx = g_main_context_new ();
  t->msi = (vmm_msi_host){ stub_vector_add, stub_vector_update,
                           stub_vector_remove, t };
  t->ioev = (vmm_ioeventfd_host){ stub_ioev_add, stub_ioev_remove, t };
  t->ioevs = g_array_new (FALSE, FALSE, sizeof (uint64_t));
  g_autoptr (GError) error = NULL;
  t->dir = g_dir_make_tmp ("vessel-virtio-XXXXXX", &error);
  g_assert_no_error (error);
  t->path = g_build_filename (t->dir, "disk.raw", NULL);
  VmmBlockCreateOptions opts = { .format = "raw", .size = IMG_SIZE };
  g_assert_true (vmm_block_create (t->path, &opts, &error));
  g_assert_no_error (error);
  t->read_only = read_only;
  t->bs = vmm_block_open (t->path, "raw",
                          read_only ? VMM_BLOCK_OPEN_READ_ONLY : 0, &error);
  g_assert_no_error (error);
  make_device (t, nq);
}

static void
setup (T *t, gconstpointer data)
{
  setup_with (t, false, data ? GPOINTER_TO_UINT (data) : 1);
}

static void
teardown (T *t, gconstpointer data)
{
  vmm_device_destroy (virtio_blk_device (t->blk));
  vmm_block_drain (t->bs);
  while (g_main_context_iteration (t->ctx, FALSE))
    ;
  g_assert_true (vmm_block_close (t->bs, NULL));
  g_assert_cmpuint (t->ioevs->len, ==, 0);
  g_unlink (t->path);
  g_rmdir (t->dir);
  g_free (t->path);
  g_free (t->dir);
  g_array_unref (t->ioevs);
  vmm_pci_host_free (t->host);
  vmm_bus_free (t->pio);
  vmm_bus_free (t->mmio);
  g_main_context_unref (t->ctx);
  g_free (t->mem.host);
}

/* The driver's start-up (3.1.1); returns the status read back. */
static uint8_t
drv_init (T *t, uint64_t features, unsigned nq)
{
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  memset (t->avail_idx, 0, sizeof t->avail_idx);
  memset (t->used_seen, 0, sizeof t->used_seen);
  for (unsigned q = 0; q < 4; q++)
    memset (t->mem.host + desc_gpa (q), 0, 0x3000);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  uint64_t dev = 0;
  for (unsigned i = 0; i < 2; i++)
    {
      wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, i);
      dev |= rd (t, VIRTIO_PCI_COMMON_DF, 4) << (32 * i);
    }
  features &= dev;
  for (unsigned i = 0; i < 2; i++)
    {
      wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, i);
      wr (t, VIRTIO_PCI_COMMON_GF, 4, (uint32_t) (features >> (32 * i)));
    }
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
          | VIRTIO_STATUS_FEATURES_OK);
  uint8_t st = rd (t, VIRTIO_PCI_COMMON_STATUS, 1);
  if (!(st & VIRTIO_STATUS_FEATURES_OK))
    return st;
  for (unsigned q = 0; q < nq; q++)
    {
      wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, QS);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_NOFF, 2), ==, q);
      wr (t, VIRTIO_PCI_COMMON_Q_MSIX, 2, q + 1);
      wr (t, VIRTIO_PCI_COMMON_Q_DESC, 4, (uint32_t) desc_gpa (q));
      wr (t, VIRTIO_PCI_COMMON_Q_DESC + 4, 4, 0);
      wr (t, VIRTIO_PCI_COMMON_Q_DRIVER, 8, AVAIL_GPA (q));
      wr (t, VIRTIO_PCI_COMMON_Q_DEVICE, 4, (uint32_t) USED_GPA (q));
      wr (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 1);
    }
  wr (t, VIRTIO_PCI_COMMON_MSIX, 2, 0);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
          | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
  return rd (t, VIRTIO_PCI_COMMON_STATUS, 1);
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
}

static uint8_t
status_now (T *t)
{
  return rd (t, VIRTIO_PCI_COMMON_STATUS, 1);
}

/* Runs the I/O loop until queue @q's used index reaches the driver's
 * avail index, or the device gives up. Returns false on timeout. */
static bool
wait_used (T *t, unsigned q)
{
  gint64 end = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  while (g_get_monotonic_time () < end)
    {
      if (get16 (t, USED_GPA (q) + 2) == t->avail_idx[q])
        {
          t->used_seen[q] = t->avail_idx[q];
          return true;
        }
      if (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
        return false;
      if (!g_main_context_iteration (t->ctx, FALSE))
        g_usleep (100);
    }
  return false;
}

/* Runs the loop for a moment (a request that will not complete). */
static void
spin (T *t)
{
  for (unsigned i = 0; i < 50; i++)
    if (!g_main_context_iteration (t->ctx, FALSE))
      g_usleep (200);
}

static uint32_t
used_len (T *t, unsigned q, uint16_t idx)
{
  uint64_t e = USED_GPA (q) + 4 + 8 * (idx % QS);
  return get16 (t, e + 4) | (uint32_t) get16 (t, e + 6) << 16;
}

static void
put_header (T *t, uint32_t type, uint64_t sector)
{
  put32 (t, HDR_GPA, type);
  put32 (t, HDR_GPA + 4, 0);
  put64 (t, HDR_GPA + 8, sector);
}

/* One request: header, @nseg data descriptors of len/nseg bytes at
 * DATA_GPA (spread 64 KiB apart), status. Returns the status byte. */
static uint8_t
request (T *t, unsigned q, uint32_t type, uint64_t sector, uint32_t len,
         unsigned nseg, bool indirect)
{
  uint64_t table = indirect ? TABLE_GPA : desc_gpa (q);
  bool in = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
  unsigned n = 0;
  put_header (t, type, sector);
  t->mem.host[STATUS_GPA] = 0xee;
  put_desc_at (t, table, n, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, n + 1);
  n++;
  for (unsigned s = 0; len && s < nseg; s++, n++)
    put_desc_at (t, table, n, DATA_GPA + s * 0x10000, len / nseg,
                 VIRTQ_DESC_F_NEXT | (in ? VIRTQ_DESC_F_WRITE : 0), n + 1);
  put_desc_at (t, table, n, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
  n++;
  if (indirect)
    put_desc_at (t, desc_gpa (q), 0, TABLE_GPA, 16 * n, VIRTQ_DESC_F_INDIRECT,
                 0);
  offer (t, q, 0);
  kick (t, q);
  g_assert_true (wait_used (t, q));
  return t->mem.host[STATUS_GPA];
}

static uint8_t *
data_seg (T *t, unsigned s)
{
  return t->mem.host + DATA_GPA + s * 0x10000;
}

/* ---- tests ---- */

static void
test_identity (T *t, gconstpointer data)
{
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0, 4), ==,
                   0x10421af4);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 8, 4), ==,
                   0x01800001);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0x2c, 4), ==,
                   0x11001af4);
  for (uint8_t type = 1; type <= 5; type++)
    g_assert_cmpuint (find_cap (t, 0x09, type), !=, 0);
  unsigned n = find_cap (t, 0x09, VIRTIO_PCI_CAP_NOTIFY_CFG);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, n + 4, 1), ==, 4);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, n + 16, 4), ==,
                    VIRTIO_PCI_NOTIFY_MULT);
  unsigned m = find_cap (t, 0x11, 0);
  g_assert_cmpuint (m, !=, 0);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, m + 2, 2) & 0x7ff,
                    ==, 1); /* two vectors: config and one queue */
  /* Config: capacity in sectors, blk_size, seg_max, num_queues. */
  g_assert_cmpuint (rd (t, VIRTIO_PCI_DEVICE_OFF, 8), ==, IMG_SIZE / 512);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_BLK_SIZE, 4),
                    ==, 512);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_SEG_MAX, 4),
                    ==, QS - 2);
  g_assert_cmpuint (
      rd (t, VIRTIO_PCI_DEVICE_OFF + VIRTIO_BLK_CFG_NUM_QUEUES, 2), ==, 1);
  /* The PCI_CFG window reads the BAR: num_queues through config space. */
  unsigned w = find_cap (t, 0x09, VIRTIO_PCI_CAP_PCI_CFG);
  vmm_pci_config_write (t->host, 0, DEVFN, w + 4, 1, VIRTIO_PCI_BAR);
  vmm_pci_config_write (t->host, 0, DEVFN, w + 8, 4, VIRTIO_PCI_COMMON_NUMQ);
  vmm_pci_config_write (t->host, 0, DEVFN, w + 12, 4, 2);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, w + 16, 2), ==, 1);
  vmm_pci_config_write (t->host, 0, DEVFN, w + 8, 4, VIRTIO_PCI_COMMON_Q_SELECT);
  vmm_pci_config_write (t->host, 0, DEVFN, w + 16, 2, 7);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SELECT, 2), ==, 7);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, 0);
}

static void
test_features (T *t, gconstpointer data)
{
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_DF, 4) & 3, ==, 1); /* VERSION_1 */
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
  uint32_t lo = rd (t, VIRTIO_PCI_COMMON_DF, 4);
  g_assert_true (lo & (1u << VIRTIO_F_RING_EVENT_IDX));
  g_assert_true (lo & (1u << VIRTIO_BLK_F_FLUSH));
  g_assert_false (lo & (1u << VIRTIO_BLK_F_RO));
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 2);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_DF, 4), ==, 0);
  /* Without VERSION_1, FEATURES_OK does not stick. */
  uint8_t st = drv_init (t, VIRTIO_BIT (VIRTIO_BLK_F_FLUSH), 1);
  g_assert_false (st & VIRTIO_STATUS_FEATURES_OK);
  /* Nor with a bit the device did not offer. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
  wr (t, VIRTIO_PCI_COMMON_GF, 4, 1 | 2); /* VERSION_1 | ACCESS_PLATFORM */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_FEATURES_OK);
  g_assert_cmpuint (status_now (t), ==, 0);
  st = drv_init (t, FEATURES_DEFAULT, 1);
  g_assert_cmpuint (st, ==, 0x0f);
  /* Features are frozen after FEATURES_OK. */
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
  wr (t, VIRTIO_PCI_COMMON_GF, 4, 0);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_GF, 4), !=, 0);
}

static void
test_queue_setup (T *t, gconstpointer data)
{
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_NUMQ, 2), ==, 2);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 2), ==, 0x0f);
  g_assert_cmpuint (t->ioevs->len, ==, 2);
  g_assert_cmpuint (g_array_index (t->ioevs, uint64_t, 0), ==,
                    BAR4_ADDR + VIRTIO_PCI_NOTIFY_OFF);
  wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_DESC, 8), ==, desc_gpa (1));
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_DEVICE, 4), ==, USED_GPA (1));
  /* Writes to an enabled queue's registers are ignored. */
  wr (t, VIRTIO_PCI_COMMON_Q_DESC, 4, 0x5000);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_DESC, 8), ==, desc_gpa (1));
  /* Out-of-range MSI-X vector reads back as NO_VECTOR. */
  wr (t, VIRTIO_PCI_COMMON_Q_MSIX, 2, 40);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, 0xffff);
  /* Moving the BAR moves the ioeventfds; disabling memory drops them. */
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 16, 4, 0xfd000000);
  g_assert_cmpuint (t->ioevs->len, ==, 2);
  for (guint i = 0; i < 2; i++)
    g_assert_cmphex (g_array_index (t->ioevs, uint64_t, i) >> 24, ==, 0xfd);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2, 0);
  g_assert_cmpuint (t->ioevs->len, ==, 0);
  place_bars (t);
  g_assert_cmpuint (t->ioevs->len, ==, 2);
  /* Both queues work; a notification through the ioeventfd path is the
   * same eventfd, so the MMIO kick stands for both. */
  memset (data_seg (t, 0), 0x5a, 4096);
  g_assert_cmpuint (request (t, 1, VIRTIO_BLK_T_OUT, 8, 4096, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  memset (data_seg (t, 0), 0, 4096);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 8, 4096, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpuint (data_seg (t, 0)[4095], ==, 0x5a);
  /* Reset drops them. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_assert_cmpuint (t->ioevs->len, ==, 0);
}

static void
test_round_trips (T *t, gconstpointer data)
{
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  for (unsigned i = 0; i < 8192; i++)
    data_seg (t, 0)[i] = (uint8_t) (i * 7 + 1);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_OUT, 100, 8192, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpuint (used_len (t, 0, 0), ==, 1);
  memset (data_seg (t, 0), 0, 8192);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 100, 8192, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpuint (used_len (t, 0, 1), ==, 8193);
  for (unsigned i = 0; i < 8192; i++)
    g_assert_cmpuint (data_seg (t, 0)[i], ==, (uint8_t) (i * 7 + 1));
  /* The image holds it. */
  uint8_t buf[512];
  g_assert_true (vmm_block_read (t->bs, 100 * 512, buf, 512, NULL));
  g_assert_cmpuint (buf[1], ==, 8);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_GET_ID, 0, 20, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpmem (data_seg (t, 0), 20, "VESSEL-SERIAL-012345", 20);
  g_assert_cmpuint (used_len (t, 0, 3), ==, 21);
  /* DISCARD and WRITE_ZEROES: two ranges, then read back zeroes. */
  put64 (t, DATA_GPA, 100);
  put32 (t, DATA_GPA + 8, 4);
  put32 (t, DATA_GPA + 12, 0);
  put64 (t, DATA_GPA + 16, 108);
  put32 (t, DATA_GPA + 24, 8);
  put32 (t, DATA_GPA + 28, 0);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_DISCARD, 0, 32, 1, false),
                    ==, VIRTIO_BLK_S_OK);
  put64 (t, DATA_GPA, 104);
  put32 (t, DATA_GPA + 8, 4);
  put32 (t, DATA_GPA + 12, VIRTIO_BLK_WZ_F_UNMAP);
  g_assert_cmpuint (
      request (t, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, 1, false), ==,
      VIRTIO_BLK_S_OK);
  memset (data_seg (t, 0), 0xff, 8192);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 100, 8192, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  for (unsigned i = 0; i < 8192; i++)
    g_assert_cmpuint (data_seg (t, 0)[i], ==, 0);
  /* Flags the device does not know, or unmap on discard: UNSUPP. */
  put32 (t, DATA_GPA + 12, 2);
  g_assert_cmpuint (
      request (t, 0, VIRTIO_BLK_T_WRITE_ZEROES, 0, 16, 1, false), ==,
      VIRTIO_BLK_S_UNSUPP);
  put32 (t, DATA_GPA + 12, VIRTIO_BLK_WZ_F_UNMAP);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_DISCARD, 0, 16, 1, false),
                    ==, VIRTIO_BLK_S_UNSUPP);
  /* Errors the device answers. */
  g_assert_cmpuint (request (t, 0, 99, 0, 0, 0, false), ==,
                    VIRTIO_BLK_S_UNSUPP);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 512 - 1, 1024,
                             1, false),
                    ==, VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, UINT64_MAX - 1, 1024, 1,
                             false),
                    ==, VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_OUT, 0, 100, 1, false), ==,
                    VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_GET_ID, 0, 8, 1, false), ==,
                    VIRTIO_BLK_S_IOERR);
  put64 (t, DATA_GPA, IMG_SIZE / 512 - 1);
  put32 (t, DATA_GPA + 8, 2);
  put32 (t, DATA_GPA + 12, 0);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_DISCARD, 0, 16, 1, false),
                    ==, VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_DISCARD, 0, 24, 1, false),
                    ==, VIRTIO_BLK_S_IOERR);
  /* The last sector is fine. */
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 512 - 1, 512,
                             1, false),
                    ==, VIRTIO_BLK_S_OK);
  g_assert_cmpuint (status_now (t), ==, 0x0f);
}

static void
test_multi_segment (T *t, gconstpointer data)
{
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  /* 4 segments of 1536 bytes: sector boundaries fall inside segments. */
  for (unsigned s = 0; s < 4; s++)
    memset (data_seg (t, s), 0x10 + s, 1536);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_OUT, 20, 6144, 4, false), ==,
                    VIRTIO_BLK_S_OK);
  /* Read it back as 3 indirect segments of 2048. */
  for (unsigned s = 0; s < 4; s++)
    memset (data_seg (t, s), 0, 2048);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 20, 6144, 3, true), ==,
                    VIRTIO_BLK_S_OK);
  for (unsigned i = 0; i < 6144; i++)
    g_assert_cmpuint (data_seg (t, i / 2048)[i % 2048], ==, 0x10 + i / 1536);
  /* A header split over two descriptors, status sharing the last data
   * descriptor: no framing assumed. */
  put_header (t, VIRTIO_BLK_T_IN, 20);
  put_desc_at (t, desc_gpa (0), 0, HDR_GPA, 5, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, desc_gpa (0), 1, HDR_GPA + 5, 11, VIRTQ_DESC_F_NEXT, 2);
  put_desc_at (t, desc_gpa (0), 2, DATA_GPA, 513, VIRTQ_DESC_F_WRITE, 0);
  t->mem.host[DATA_GPA + 512] = 0xee;
  offer (t, 0, 0);
  kick (t, 0);
  g_assert_true (wait_used (t, 0));
  g_assert_cmpuint (t->mem.host[DATA_GPA + 512], ==, VIRTIO_BLK_S_OK);
  g_assert_cmpuint (t->mem.host[DATA_GPA], ==, 0x10);
  /* A large request goes through the bounce buffer in chunks. */
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 0, IMG_SIZE, 1, false), ==,
                    VIRTIO_BLK_S_OK);
  g_assert_cmpuint (t->mem.host[DATA_GPA + 20 * 512], ==, 0x10);
}

static void
test_many_in_flight (T *t, gconstpointer data)
{
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  /* 64 writes at once, each its own chain of 3, all on the ring. */
  for (unsigned r = 0; r < 64; r++)
    {
      uint64_t hdr = HDR_GPA + 0x400 + 16 * r;
      put32 (t, hdr, VIRTIO_BLK_T_OUT);
      put64 (t, hdr + 8, r);
      memset (t->mem.host + DATA_GPA + 512 * r, r, 512);
      put_desc_at (t, desc_gpa (0), 3 * r, hdr, 16, VIRTQ_DESC_F_NEXT, 3 * r + 1);
      put_desc_at (t, desc_gpa (0), 3 * r + 1, DATA_GPA + 512 * r, 512,
                   VIRTQ_DESC_F_NEXT, 3 * r + 2);
      put_desc_at (t, desc_gpa (0), 3 * r + 2, STATUS_GPA + 1 + r, 1,
                   VIRTQ_DESC_F_WRITE, 0);
      offer (t, 0, 3 * r);
    }
  kick (t, 0);
  g_assert_true (wait_used (t, 0));
  for (unsigned r = 0; r < 64; r++)
    {
      uint8_t b;
      g_assert_cmpuint (t->mem.host[STATUS_GPA + 1 + r], ==, 0);
      g_assert_true (vmm_block_read (t->bs, 512 * r + 7, &b, 1, NULL));
      g_assert_cmpuint (b, ==, r);
    }
}

static void
enable_msix (T *t)
{
  unsigned m = find_cap (t, 0x11, 0);
  for (unsigned v = 0; v < 3; v++)
    {
      vmm_bus_write (t->mmio, BAR1_ADDR + 16 * v, 4, 0, 0xfee00000);
      vmm_bus_write (t->mmio, BAR1_ADDR + 16 * v + 4, 4, 0, 0);
      vmm_bus_write (t->mmio, BAR1_ADDR + 16 * v + 8, 4, 0, 0x40 + v);
      vmm_bus_write (t->mmio, BAR1_ADDR + 16 * v + 12, 4, 0, 0);
    }
  vmm_pci_config_write (t->host, 0, DEVFN, m + 2, 2, 0x8000);
}

static void
test_msix (T *t, gconstpointer data)
{
  enable_msix (t);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x41), ==, 1);
  g_assert_false (t->intx);
  /* Masked: the PBA bit is set, nothing sent; unmasking sends it. */
  vmm_bus_write (t->mmio, BAR1_ADDR + 16 + 12, 4, 0, 1);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x41), ==, 0);
  uint64_t pba;
  vmm_bus_read (t->mmio, BAR1_ADDR + VIRTIO_PCI_MSIX_PBA_OFF, 8, 0, &pba);
  g_assert_cmphex (pba, ==, 2);
  /* Re-programming the message while masked updates the binding. */
  vmm_bus_write (t->mmio, BAR1_ADDR + 16 + 8, 4, 0, 0x51);
  vmm_bus_write (t->mmio, BAR1_ADDR + 16 + 12, 4, 0, 0);
  g_assert_cmpuint (msi_count (t, 0x51), ==, 1);
  vmm_bus_read (t->mmio, BAR1_ADDR + VIRTIO_PCI_MSIX_PBA_OFF, 8, 0, &pba);
  g_assert_cmphex (pba, ==, 0);
  /* Function mask: the same through the capability. */
  unsigned m = find_cap (t, 0x11, 0);
  vmm_pci_config_write (t->host, 0, DEVFN, m + 2, 2, 0xc000);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x51), ==, 0);
  vmm_pci_config_write (t->host, 0, DEVFN, m + 2, 2, 0x8000);
  g_assert_cmpuint (msi_count (t, 0x51), ==, 1);
  /* NO_VECTOR: no interrupt at all. */
  wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
  wr (t, VIRTIO_PCI_COMMON_Q_MSIX, 2, VIRTIO_MSI_NO_VECTOR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x51), ==, 0);
  g_assert_false (t->intx);
  /* Disabling MSI-X releases the vectors. */
  vmm_pci_config_write (t->host, 0, DEVFN, m + 2, 2, 0);
  for (int i = 0; i < t->n_vecs; i++)
    g_assert_false (t->vecs[i].live);
}

static void
test_intx (T *t, gconstpointer data)
{
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  g_assert_false (t->intx);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_true (t->intx);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_ISR_OFF, 1), ==, VIRTIO_ISR_QUEUE);
  g_assert_false (t->intx);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_ISR_OFF, 1), ==, 0);
  /* NO_INTERRUPT suppresses it. */
  put16 (t, AVAIL_GPA (0), VIRTQ_AVAIL_F_NO_INTERRUPT);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_false (t->intx);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_ISR_OFF, 1), ==, 0);
  /* INTx disable in the command register holds the line down. */
  put16 (t, AVAIL_GPA (0), 0);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_MEMORY | PCI_COMMAND_INTX_DISABLE);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_false (t->intx);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_ISR_OFF, 1), ==, VIRTIO_ISR_QUEUE);
}

static void
test_event_idx (T *t, gconstpointer data)
{
  enable_msix (t);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT
                                     | VIRTIO_BIT (VIRTIO_F_RING_EVENT_IDX),
                              1),
                    ==, 0x0f);
  const uint64_t used_event = AVAIL_GPA (0) + 4 + 2 * QS;
  const uint64_t avail_event = USED_GPA (0) + 4 + 8 * QS;
  put16 (t, AVAIL_GPA (0), VIRTQ_AVAIL_F_NO_INTERRUPT); /* ignored */
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x41), ==, 1);
  g_assert_cmpuint (get16 (t, avail_event), ==, 1);
  put16 (t, used_event, 3); /* an interrupt once used passes 3 */
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x41), ==, 0);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_assert_cmpuint (msi_count (t, 0x41), ==, 1);
  g_assert_cmpuint (get16 (t, avail_event), ==, 4);
}

static void
test_config_change (T *t, gconstpointer data)
{
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  uint8_t gen = rd (t, VIRTIO_PCI_COMMON_CFGGENERATION, 1);
  g_assert_true (vmm_block_resize (t->bs, 2 * IMG_SIZE, FALSE, NULL));
  virtio_blk_resize_notify (t->blk);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_DEVICE_OFF, 8), ==, 2 * IMG_SIZE / 512);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_CFGGENERATION, 1), ==,
                    (uint8_t) (gen + 1));
  g_assert_true (t->intx);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_ISR_OFF, 1), ==, VIRTIO_ISR_CONFIG);
  g_assert_false (t->intx);
  /* The new sectors are usable. */
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, IMG_SIZE / 512, 512, 1,
                             false),
                    ==, VIRTIO_BLK_S_OK);
  /* With MSI-X: the config vector. */
  enable_msix (t);
  wr (t, VIRTIO_PCI_COMMON_MSIX, 2, 0);
  g_assert_true (vmm_block_resize (t->bs, 3 * IMG_SIZE, FALSE, NULL));
  virtio_blk_resize_notify (t->blk);
  g_assert_cmpuint (msi_count (t, 0x40), ==, 1);
}

static void
test_reset (T *t, gconstpointer data)
{
  enable_msix (t);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_assert_cmpuint (status_now (t), ==, 0);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_MSIX, 2), ==, 0xffff);
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_GF, 4), ==, 0);
  wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 0);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, QS);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_MSIX, 2), ==, 0xffff);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_DESC, 8), ==, 0);
  /* A request in flight at reset: its data (read straight into the
   * guest's buffer) has landed when the reset returns, and nothing of it
   * touches guest memory after: no data, no status, no used entry. */
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  put_header (t, VIRTIO_BLK_T_IN, 0);
  put_desc_at (t, desc_gpa (0), 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, desc_gpa (0), 1, DATA_GPA, 65536,
               VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 2);
  put_desc_at (t, desc_gpa (0), 2, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
  uint8_t sector0[512];
  memset (sector0, 0x5a, sizeof sector0);
  g_assert_true (vmm_block_write (t->bs, 0, sector0, sizeof sector0, NULL));
  memset (data_seg (t, 0), 0xcc, 65536);
  t->mem.host[STATUS_GPA] = 0xee;
  offer (t, 0, 0);
  kick (t, 0);
  /* Let the I/O thread take the request, then reset before completion. */
  g_main_context_iteration (t->ctx, FALSE);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_assert_cmphex (data_seg (t, 0)[0], ==, 0x5a);
  memset (data_seg (t, 0), 0xcc, 65536);
  vmm_block_drain (t->bs);
  spin (t);
  g_assert_cmpuint (t->mem.host[STATUS_GPA], ==, 0xee);
  g_assert_cmpuint (data_seg (t, 0)[0], ==, 0xcc);
  g_assert_cmpuint (get16 (t, USED_GPA (0) + 2), ==, 0);
  /* Machine reset: MSI-X table masked, vectors released, BARs gone. */
  vmm_device_reset (virtio_blk_device (t->blk));
  for (int i = 0; i < t->n_vecs; i++)
    g_assert_false (t->vecs[i].live);
  g_assert_cmpuint (vmm_pci_config_read (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2),
                    ==, 0);
  place_bars (t);
  uint64_t ctrl;
  vmm_bus_read (t->mmio, BAR1_ADDR + 12, 4, 0, &ctrl);
  g_assert_cmpuint (ctrl, ==, 1);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
}

static void
test_read_only (T *t, gconstpointer data)
{
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
  uint32_t f = rd (t, VIRTIO_PCI_COMMON_DF, 4);
  g_assert_true (f & (1u << VIRTIO_BLK_F_RO));
  g_assert_false (f & (1u << VIRTIO_BLK_F_DISCARD));
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT
                                     | VIRTIO_BIT (VIRTIO_BLK_F_RO),
                              1),
                    ==, 0x0f);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_OUT, 0, 512, 1, false), ==,
                    VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_DISCARD, 0, 16, 1, false),
                    ==, VIRTIO_BLK_S_UNSUPP);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_IN, 0, 512, 1, false), ==,
                    VIRTIO_BLK_S_OK);
}

static void
setup_ro (T *t, gconstpointer data)
{
  setup_with (t, true, 1);
}

/* One malformed chain: the device must set DEVICE_NEEDS_RESET (and raise
 * the config interrupt), and work again after a reset. */
static void
expect_needs_reset (T *t, const char *what)
{
  g_test_message ("hostile: %s", what);
  offer (t, 0, 0);
  kick (t, 0);
  spin (t);
  uint8_t st = status_now (t);
  if (!(st & VIRTIO_STATUS_DEVICE_NEEDS_RESET))
    g_error ("%s: status 0x%02x", what, st);
  g_assert_true (rd (t, VIRTIO_PCI_ISR_OFF, 1) & VIRTIO_ISR_CONFIG);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
}

static void
test_hostile (T *t, gconstpointer data)
{
  const uint64_t d = desc_gpa (0);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  put_header (t, VIRTIO_BLK_T_IN, 0);

  put_desc_at (t, d, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, d, 1, DATA_GPA, 512, VIRTQ_DESC_F_NEXT, 0);
  expect_needs_reset (t, "looping chain");

  put_desc_at (t, d, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, QS);
  expect_needs_reset (t, "next out of range");

  put_desc_at (t, d, 0, RAM_SIZE - 8, 16, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, d, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
  expect_needs_reset (t, "buffer outside RAM");

  put_desc_at (t, d, 0, UINT64_MAX - 7, 16, VIRTQ_DESC_F_NEXT, 1);
  expect_needs_reset (t, "wrapping buffer");

  put_desc_at (t, d, 0, HDR_GPA, UINT32_MAX, VIRTQ_DESC_F_NEXT, 1);
  expect_needs_reset (t, "huge length");

  put_desc_at (t, TABLE_GPA, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
  put_desc_at (t, d, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
  expect_needs_reset (t, "nested indirect");

  put_desc_at (t, d, 0, TABLE_GPA, 24, VIRTQ_DESC_F_INDIRECT, 0);
  expect_needs_reset (t, "indirect table of a bad size");

  put_desc_at (t, TABLE_GPA, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, TABLE_GPA, 1, STATUS_GPA, 1, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
  put_desc_at (t, d, 0, TABLE_GPA, 32, VIRTQ_DESC_F_INDIRECT, 0);
  expect_needs_reset (t, "indirect loop");

  put_desc_at (t, d, 0, HDR_GPA, 16, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
  put_desc_at (t, d, 1, DATA_GPA, 16, 0, 0);
  expect_needs_reset (t, "readable after writable");

  put_desc_at (t, d, 0, HDR_GPA, 16, 0, 0);
  expect_needs_reset (t, "no status byte");

  put_desc_at (t, d, 0, HDR_GPA, 0, 0, 0);
  expect_needs_reset (t, "one zero-length descriptor");

  /* The avail ring names a head out of range. */
  put16 (t, AVAIL_GPA (0) + 4, QS + 3);
  put16 (t, AVAIL_GPA (0) + 2, ++t->avail_idx[0]);
  kick (t, 0);
  spin (t);
  g_assert_true (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);

  /* The avail index jumps by more than the queue size. */
  put16 (t, AVAIL_GPA (0) + 2, QS + 1);
  kick (t, 0);
  spin (t);
  g_assert_true (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);

  /* Rings outside RAM, misaligned, or a bad size: refused at enable. */
  struct {
    uint16_t size;
    uint64_t desc, avail, used;
  } bad[] = {
    { QS, RAM_SIZE - 64, AVAIL_GPA (0), USED_GPA (0) },
    { QS, d, UINT64_C (1) << 40, USED_GPA (0) },
    { QS, d, AVAIL_GPA (0), RAM_SIZE },
    { QS, d + 2, AVAIL_GPA (0), USED_GPA (0) },
    { 100, d, AVAIL_GPA (0), USED_GPA (0) },
    { 1024, d, AVAIL_GPA (0), USED_GPA (0) },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
      wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 0);
      wr (t, VIRTIO_PCI_COMMON_Q_SIZE, 2, bad[i].size);
      wr (t, VIRTIO_PCI_COMMON_Q_DESC, 8, bad[i].desc);
      wr (t, VIRTIO_PCI_COMMON_Q_DRIVER, 8, bad[i].avail);
      wr (t, VIRTIO_PCI_COMMON_Q_DEVICE, 8, bad[i].used);
      wr (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_ENABLE, 2), ==, 0);
      g_assert_true (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
    }
  /* Requests the device answers with an error: short or zero-length
   * header. */
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  put_desc_at (t, d, 0, HDR_GPA, 8, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (t, d, 1, STATUS_GPA, 1, VIRTQ_DESC_F_WRITE, 0);
  offer (t, 0, 0);
  kick (t, 0);
  g_assert_true (wait_used (t, 0));
  g_assert_cmpuint (t->mem.host[STATUS_GPA], ==, VIRTIO_BLK_S_IOERR);
  put_desc_at (t, d, 0, HDR_GPA, 0, VIRTQ_DESC_F_NEXT, 1);
  offer (t, 0, 0);
  kick (t, 0);
  g_assert_true (wait_used (t, 0));
  g_assert_cmpuint (t->mem.host[STATUS_GPA], ==, VIRTIO_BLK_S_IOERR);
  g_assert_cmpuint (status_now (t), ==, 0x0f);
}

/* A driver writing random values everywhere: registers, config space, the
 * MSI-X table, random rings and descriptors; the device must stay sane. */
static void
test_fuzz (T *t, gconstpointer data)
{
  GRand *rand = g_rand_new_with_seed (0x7e55e1);
  static const unsigned sizes[] = { 1, 2, 4, 8 };
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  for (unsigned op = 0; op < 120000; op++)
    {
      unsigned size = sizes[g_rand_int_range (rand, 0, 4)];
      uint64_t v = (uint64_t) g_rand_int (rand) << 32 | g_rand_int (rand);
      unsigned kind = g_rand_int_range (rand, 0, 100);
      if (kind < 8)
        v = g_rand_int_range (rand, 0, 16); /* small values matter */
      else if (kind < 16)
        v = RING_BASE + g_rand_int_range (rand, 0, 0x30000);
      uint64_t off;
      switch (g_rand_int_range (rand, 0, 12))
        {
        case 0:
        case 1:
        case 2:
        case 3:
          off = g_rand_int_range (rand, 0, VIRTIO_PCI_COMMON_LEN + 8);
          break;
        case 4:
          off = VIRTIO_PCI_ISR_OFF + g_rand_int_range (rand, 0, 4);
          break;
        case 5:
          off = VIRTIO_PCI_DEVICE_OFF + g_rand_int_range (rand, 0, 80);
          break;
        case 6:
          off = VIRTIO_PCI_NOTIFY_OFF + g_rand_int_range (rand, 0, 16);
          break;
        case 7:
          off = g_rand_int_range (rand, 0, VIRTIO_PCI_BAR_SIZE);
          break;
        case 8:
          {
            uint64_t a = BAR1_ADDR + g_rand_int_range (rand, 0, 0x900);
            if (g_rand_boolean (rand))
              vmm_bus_write (t->mmio, a, size, 0, v);
            else
              vmm_bus_read (t->mmio, a, size, 0, &v);
            continue;
          }
        case 9:
          {
            unsigned o = g_rand_int_range (rand, 0x40, 0x100);
            unsigned s = size > 4 ? 4 : size;
            o &= ~(s - 1);
            if (g_rand_boolean (rand))
              vmm_pci_config_write (t->host, 0, DEVFN, o, s, (uint32_t) v);
            else
              vmm_pci_config_read (t->host, 0, DEVFN, o, s);
            continue;
          }
        case 10:
          {
            /* Scribble on the rings and descriptors. */
            uint64_t gpa = RING_BASE + g_rand_int_range (rand, 0, 0x30000);
            memcpy (t->mem.host + gpa, &v, size);
            continue;
          }
        default:
          if (g_rand_int_range (rand, 0, 50) == 0)
            {
              place_bars (t);
              drv_init (t, v | FEATURES_DEFAULT, 1);
            }
          g_main_context_iteration (t->ctx, FALSE);
          continue;
        }
      if (g_rand_boolean (rand))
        wr (t, off, size, v);
      else
        rd (t, off, size);
    }
  place_bars (t);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT, 1), ==, 0x0f);
  g_assert_cmpuint (request (t, 0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  g_rand_free (rand);
}

static GBytes *
save (T *t)
{
  vmm_device *dev = virtio_blk_device (t->blk);
  GByteArray *out = g_byte_array_new ();
  g_mutex_lock (&dev->lock);
  dev->ops->save_state (dev, out);
  g_mutex_unlock (&dev->lock);
  return g_byte_array_free_to_bytes (out);
}

static gboolean
load (T *t, const uint8_t *p, size_t len, GError **error)
{
  vmm_device *dev = virtio_blk_device (t->blk);
  g_mutex_lock (&dev->lock);
  gboolean ok = dev->ops->load_state (dev, p, len, error);
  g_mutex_unlock (&dev->lock);
  return ok;
}

static void
test_state (T *t, gconstpointer data)
{
  enable_msix (t);
  g_assert_cmpuint (drv_init (t, FEATURES_DEFAULT
                                     | VIRTIO_BIT (VIRTIO_F_RING_EVENT_IDX),
                              2),
                    ==, 0x0f);
  memset (data_seg (t, 0), 0x77, 512);
  g_assert_cmpuint (request (t, 1, VIRTIO_BLK_T_OUT, 3, 512, 1, false), ==, 0);
  g_assert_cmpuint (request (t, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
  wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, 1);
  g_autoptr (GBytes) a = save (t);

  /* Reset and load: the same state, and the queue goes on where it was. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_autoptr (GError) error = NULL;
  gsize len;
  const uint8_t *p = g_bytes_get_data (a, &len);
  g_assert_true (load (t, p, len, &error));
  g_assert_no_error (error);
  g_autoptr (GBytes) b = save (t);
  g_assert_true (g_bytes_equal (a, b));
  g_assert_cmpuint (status_now (t), ==, 0x0f);
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SELECT, 2), ==, 1);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_Q_DESC, 8), ==, desc_gpa (1));
  memset (data_seg (t, 0), 0, 512);
  g_assert_cmpuint (request (t, 1, VIRTIO_BLK_T_IN, 3, 512, 1, false), ==, 0);
  g_assert_cmpuint (data_seg (t, 0)[100], ==, 0x77);
  g_assert_cmpuint (get16 (t, USED_GPA (1) + 2), ==, 3);

  /* Garbage: every truncation, foreign tags, random flips. A failed load
   * leaves the device as it was. */
  g_autoptr (GBytes) before = save (t);
  for (gsize n = 0; n < len; n++)
    {
      g_autoptr (GError) e = NULL;
      g_assert_false (load (t, p, n, &e));
      g_assert_nonnull (e);
    }
  g_autoptr (GBytes) after = save (t);
  g_assert_true (g_bytes_equal (before, after));
  g_assert_false (load (t, (const uint8_t *) "garbage!", 8, NULL));
  g_assert_false (load (t, NULL, 0, NULL));
  GRand *rand = g_rand_new_with_seed (99);
  g_autofree uint8_t *copy = g_memdup2 (p, len);
  for (unsigned round = 0; round < 3000; round++)
    {
      memcpy (copy, p, len);
      unsigned flips = g_rand_int_range (rand, 1, 4);
      for (unsigned f = 0; f < flips; f++)
        copy[g_rand_int_range (rand, 6, (gint32) len)] = g_rand_int (rand);
      g_autoptr (GError) e = NULL;
      if (!load (t, copy, len, &e))
        g_assert_nonnull (e);
      while (g_main_context_iteration (t->ctx, FALSE))
        ;
    }
  g_rand_free (rand);
  /* Back to the good state; it still works. */
  g_assert_true (load (t, p, len, NULL));
  g_assert_cmpuint (request (t, 1, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn, d)                                                       \
  g_test_add ("/virtio-blk/" name, T, d, setup, fn, teardown)
  ADD ("identity", test_identity, NULL);
  ADD ("features", test_features, NULL);
  ADD ("queue-setup", test_queue_setup, GUINT_TO_POINTER (2));
  ADD ("round-trips", test_round_trips, NULL);
  ADD ("multi-segment", test_multi_segment, NULL);
  ADD ("many-in-flight", test_many_in_flight, NULL);
  ADD ("msix", test_msix, NULL);
  ADD ("intx-isr", test_intx, NULL);
  ADD ("event-idx", test_event_idx, NULL);
  ADD ("config-change", test_config_change, NULL);
  ADD ("reset", test_reset, NULL);
  g_test_add ("/virtio-blk/read-only", T, NULL, setup_ro, test_read_only,
              teardown);
  ADD ("hostile", test_hostile, NULL);
  ADD ("fuzz", test_fuzz, NULL);
  ADD ("state", test_state, GUINT_TO_POINTER (2));
  return g_test_run ();
}
