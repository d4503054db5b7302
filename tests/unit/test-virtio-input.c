/* The virtio-input tablet on the virtio PCI transport, driven like a guest
 * driver would through config space and the MMIO bus, with fake RAM and
 * INTx only (no MSI-X, no ioeventfd). No KVM. */
#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/virtio-input.h"

#define RAM_SIZE (2u << 20)
#define DEVFN VMM_PCI_DEVFN (5, 0)
#define BAR4_ADDR UINT64_C (0xfe000000)
#define QS VIRTIO_INPUT_QUEUE_SIZE
#define RING_BASE 0x100000 /* queue q's rings at RING_BASE + q * 0x10000 */
#define EVENT_GPA 0x180000 /* eventq buffer i at EVENT_GPA + 16 * i */
#define STATUS_GPA 0x190000
#define CFG(off) (VIRTIO_PCI_DEVICE_OFF + (off))

typedef struct T {
  vmm_guest_memory mem;
  vmm_bus *pio, *mmio;
  vmm_pci_host *host;
  GMainContext *ctx;
  virtio_input *vi;
  unsigned intx_raised;
  uint16_t avail_idx[2];
  uint16_t used_seen[2];
} T;

typedef struct ev {
  uint16_t type, code;
  int32_t value;
} ev;

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
  g_autoptr (GError) error = NULL;
  t->vi = virtio_input_tablet_create (&t->mem, t->ctx, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (virtio_input_attach (t->vi, t->host, DEVFN, &error));
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 16, 4,
                        (uint32_t) BAR4_ADDR);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_BAR0 + 20, 4, 0);
  vmm_pci_config_write (t->host, 0, DEVFN, PCI_CFG_COMMAND, 2,
                        PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static void
teardown (T *t, gconstpointer data)
{
  vmm_device_destroy (virtio_input_device (t->vi));
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

/* The driver's start-up (3.1.1) with both queues; returns the status. */
static uint8_t
drv_init (T *t)
{
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  memset (t->avail_idx, 0, sizeof t->avail_idx);
  memset (t->used_seen, 0, sizeof t->used_seen);
  for (unsigned q = 0; q < 2; q++)
    memset (t->mem.host + DESC_GPA (q), 0, 0x3000);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE);
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
  wr (t, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
  wr (t, VIRTIO_PCI_COMMON_GF, 4, 1); /* VERSION_1 */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1,
      VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
          | VIRTIO_STATUS_FEATURES_OK);
  for (unsigned q = 0; q < 2; q++)
    {
      wr (t, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
      g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_Q_SIZE, 2), ==, QS);
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

/* Notifies queue @q and runs the I/O loop until nothing is left to do. */
static void
kick (T *t, unsigned q)
{
  wr (t, VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * q, 2, q);
  for (unsigned i = 0; i < 20; i++)
    while (g_main_context_iteration (t->ctx, FALSE))
      ;
}

/* Posts @n one-event buffers on the eventq (descriptor i → buffer i). */
static void
post_event_buffers (T *t, unsigned first, unsigned n)
{
  for (unsigned i = first; i < first + n; i++)
    {
      unsigned d = i % QS;
      memset (t->mem.host + EVENT_GPA + 16 * d, 0xee, 16);
      put_desc (t, 0, d, EVENT_GPA + 16 * d, VIRTIO_INPUT_EVENT_BYTES,
                VIRTQ_DESC_F_WRITE, 0);
      offer (t, 0, (uint16_t) d);
    }
}

/* A host pointer event, then the I/O loop that delivers it. */
static bool
tablet_event (T *t, unsigned x, unsigned y, int wheel, unsigned buttons)
{
  bool ok = virtio_input_tablet_event (t->vi, x, y, wheel, buttons);
  while (g_main_context_iteration (t->ctx, FALSE))
    ;
  return ok;
}

/* Used eventq entries since the last call, as events. */
static unsigned
take_events (T *t, ev *out, unsigned max)
{
  unsigned n = 0;
  uint16_t used = get16 (t, USED_GPA (0) + 2);
  while (t->used_seen[0] != used && n < max)
    {
      uint64_t e = USED_GPA (0) + 4 + 8 * (t->used_seen[0] % QS);
      uint32_t id = get32 (t, e);
      g_assert_cmpuint (get32 (t, e + 4), ==, VIRTIO_INPUT_EVENT_BYTES);
      uint64_t b = EVENT_GPA + 16 * id;
      out[n].type = get16 (t, b);
      out[n].code = get16 (t, b + 2);
      out[n].value = (int32_t) get32 (t, b + 4);
      n++;
      t->used_seen[0]++;
    }
  return n;
}

static void
assert_ev (const ev *e, uint16_t type, uint16_t code, int32_t value)
{
  g_assert_cmphex (e->type, ==, type);
  g_assert_cmphex (e->code, ==, code);
  g_assert_cmpint (e->value, ==, value);
}

/* Reads the configuration union for @select/@subsel; returns its size. */
static unsigned
cfg_query (T *t, uint8_t select, uint8_t subsel, uint8_t *u)
{
  wr (t, CFG (0), 1, select);
  wr (t, CFG (1), 1, subsel);
  g_assert_cmpuint (rd (t, CFG (0), 1), ==, select);
  g_assert_cmpuint (rd (t, CFG (1), 1), ==, subsel);
  for (unsigned i = 0; i < 128; i++)
    u[i] = (uint8_t) rd (t, CFG (8 + i), 1);
  return (unsigned) rd (t, CFG (2), 1);
}

/* ---- tests ---- */

static void
test_identity (T *t, gconstpointer data)
{
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 0, 4), ==,
                   0x10521af4);
  g_assert_cmphex (vmm_pci_config_read (t->host, 0, DEVFN, 8, 4), ==,
                   0x09800001);
  uint32_t subsys = vmm_pci_config_read (t->host, 0, DEVFN, 0x2c, 4);
  g_assert_cmphex (subsys & 0xffff, ==, 0x1af4);
  g_assert_cmphex (subsys >> 16, >=, 0x40); /* 4.1.2.1 */
  g_assert_cmpuint (rd (t, VIRTIO_PCI_COMMON_NUMQ, 2), ==, 2);
  /* No device features: only the transport's (bits 28, 29, 32). */
  wr (t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
  g_assert_cmphex (rd (t, VIRTIO_PCI_COMMON_DF, 4) & 0x00ffffff, ==, 0);
}

static void
test_config (T *t, gconstpointer data)
{
  uint8_t u[128];
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_ID_NAME, 0, u), ==,
                    strlen ("Vessel Tablet"));
  g_assert_cmpmem (u, strlen ("Vessel Tablet"), "Vessel Tablet",
                   strlen ("Vessel Tablet"));
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_ID_SERIAL, 0, u), ==,
                    strlen ("vessel-tablet"));
  g_assert_cmpmem (u, 13, "vessel-tablet", 13);
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_ID_DEVIDS, 0, u), ==, 8);
  g_assert_cmphex (u[0] | u[1] << 8, ==, VIRTIO_INPUT_BUS_VIRTUAL);
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_PROP_BITS, 0, u), ==, 0);

  /* EV_KEY: the five buttons, nothing else. */
  unsigned n = cfg_query (t, VIRTIO_INPUT_CFG_EV_BITS, VIRTIO_INPUT_EV_KEY, u);
  g_assert_cmpuint (n, ==, 0x114 / 8 + 1);
  for (unsigned bit = 0; bit < 8 * n; bit++)
    g_assert_cmpuint ((u[bit / 8] >> (bit % 8)) & 1, ==,
                      bit >= 0x110 && bit <= 0x114);
  n = cfg_query (t, VIRTIO_INPUT_CFG_EV_BITS, VIRTIO_INPUT_EV_REL, u);
  g_assert_cmpuint (n, ==, 2);
  g_assert_cmphex (u[0], ==, 0);
  g_assert_cmphex (u[1], ==, 0x01); /* REL_WHEEL */
  n = cfg_query (t, VIRTIO_INPUT_CFG_EV_BITS, VIRTIO_INPUT_EV_ABS, u);
  g_assert_cmpuint (n, ==, 1);
  g_assert_cmphex (u[0], ==, 0x03); /* ABS_X, ABS_Y */
  for (uint8_t type = 4; type < 0x20; type++)
    g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_EV_BITS, type, u), ==, 0);
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_EV_BITS, 0, u), ==, 0);

  for (uint8_t axis = 0; axis < 2; axis++)
    {
      g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_ABS_INFO, axis, u), ==,
                        20);
      uint32_t min = u[0] | u[1] << 8 | u[2] << 16 | (uint32_t) u[3] << 24;
      uint32_t max = u[4] | u[5] << 8 | u[6] << 16 | (uint32_t) u[7] << 24;
      g_assert_cmpuint (min, ==, 0);
      g_assert_cmpuint (max, ==, 32767);
      for (unsigned i = 8; i < 20; i++)
        g_assert_cmpuint (u[i], ==, 0);
    }
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_ABS_INFO, 2, u), ==, 0);
  g_assert_cmpuint (cfg_query (t, VIRTIO_INPUT_CFG_UNSET, 0, u), ==, 0);
  g_assert_cmpuint (cfg_query (t, 0x7f, 0x33, u), ==, 0);

  /* size and the union are the device's: writes there change nothing. */
  cfg_query (t, VIRTIO_INPUT_CFG_ID_NAME, 0, u);
  wr (t, CFG (2), 1, 0x55);
  wr (t, CFG (8), 4, 0xdeadbeef);
  wr (t, CFG (0), 4, VIRTIO_INPUT_CFG_ID_NAME); /* select, subsel 0 */
  g_assert_cmpuint (rd (t, CFG (2), 1), ==, 13);
  g_assert_cmphex (rd (t, CFG (8), 1), ==, 'V');
}

static void
test_not_ready (T *t, gconstpointer data)
{
  g_assert_false (virtio_input_ready (t->vi));
  g_assert_false (tablet_event (t, 1, 2, 0, 0));
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 0);
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  g_assert_true (virtio_input_ready (t->vi));
  /* A driver reset: not ready again. */
  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  g_assert_false (virtio_input_ready (t->vi));
}

static void
test_events (T *t, gconstpointer data)
{
  ev e[64];
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  post_event_buffers (t, 0, 32);
  kick (t, 0);
  g_assert_cmpuint (take_events (t, e, 64), ==, 0);
  unsigned irqs = t->intx_raised;

  /* Press: position, BTN_LEFT down, SYN_REPORT. */
  g_assert_true (tablet_event (t, 100, 32767, 0,
                               VIRTIO_INPUT_BUTTON_LEFT));
  g_assert_cmpuint (take_events (t, e, 64), ==, 4);
  assert_ev (&e[0], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X, 100);
  assert_ev (&e[1], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_Y, 32767);
  assert_ev (&e[2], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_LEFT, 1);
  assert_ev (&e[3], VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT, 0);
  g_assert_cmpuint (t->intx_raised, >, irqs);

  /* Motion only: no key events. Coordinates are clamped. */
  g_assert_true (tablet_event (t, 40000, 7, 0,
                               VIRTIO_INPUT_BUTTON_LEFT));
  g_assert_cmpuint (take_events (t, e, 64), ==, 3);
  assert_ev (&e[0], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X, 32767);
  assert_ev (&e[1], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_Y, 7);
  assert_ev (&e[2], VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT, 0);

  /* Left up and right and middle down in one batch, with a wheel step
   * towards the user (REL_WHEEL -1). */
  g_assert_true (tablet_event (
      t, 5, 6, 1, VIRTIO_INPUT_BUTTON_RIGHT | VIRTIO_INPUT_BUTTON_MIDDLE));
  g_assert_cmpuint (take_events (t, e, 64), ==, 7);
  assert_ev (&e[2], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_LEFT, 0);
  assert_ev (&e[3], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_RIGHT, 1);
  assert_ev (&e[4], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_MIDDLE, 1);
  assert_ev (&e[5], VIRTIO_INPUT_EV_REL, VIRTIO_INPUT_REL_WHEEL, -1);
  assert_ev (&e[6], VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT, 0);

  /* Side and extra; a wheel step away from the user. */
  g_assert_true (tablet_event (
      t, 5, 6, -2, VIRTIO_INPUT_BUTTON_SIDE | VIRTIO_INPUT_BUTTON_EXTRA));
  g_assert_cmpuint (take_events (t, e, 64), ==, 8);
  assert_ev (&e[2], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_RIGHT, 0);
  assert_ev (&e[3], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_MIDDLE, 0);
  assert_ev (&e[4], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_SIDE, 1);
  assert_ev (&e[5], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_EXTRA, 1);
  assert_ev (&e[6], VIRTIO_INPUT_EV_REL, VIRTIO_INPUT_REL_WHEEL, 2);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 0);

  /* The statusq: buffers come back unread. */
  put_desc (t, 1, 0, STATUS_GPA, 8, 0, 0);
  offer (t, 1, 0);
  kick (t, 1);
  g_assert_cmpuint (get16 (t, USED_GPA (1) + 2), ==, 1);
  g_assert_cmpuint (get32 (t, USED_GPA (1) + 8), ==, 0);
}

/* A batch split over the buffers that are there waits for the rest. */
static void
test_partial_batch (T *t, gconstpointer data)
{
  ev e[64];
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  post_event_buffers (t, 0, 2);
  kick (t, 0);
  g_assert_true (tablet_event (t, 1, 2, 0,
                               VIRTIO_INPUT_BUTTON_LEFT));
  g_assert_cmpuint (take_events (t, e, 64), ==, 2);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 2);
  post_event_buffers (t, 2, 8);
  kick (t, 0);
  g_assert_cmpuint (take_events (t, e, 64), ==, 2);
  assert_ev (&e[0], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_LEFT, 1);
  assert_ev (&e[1], VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT, 0);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 0);
}

/* With no buffers, events wait in a bounded queue; the oldest whole
 * batches go first. */
static void
test_bounded_queue (T *t, gconstpointer data)
{
  ev e[QS];
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  const unsigned batches = 200; /* 600 events of motion, 3 each */
  for (unsigned i = 0; i < batches; i++)
    g_assert_true (tablet_event (t, i, 1000 + i, 0, 0));
  unsigned pending = virtio_input_pending (t->vi);
  g_assert_cmpuint (pending, <=, VIRTIO_INPUT_PENDING_MAX);
  g_assert_cmpuint (pending, >, VIRTIO_INPUT_PENDING_MAX - 3);
  g_assert_cmpuint (pending % 3, ==, 0);
  unsigned kept = pending / 3;

  /* Drain in rounds of QS buffers: whole batches, newest last. */
  unsigned got = 0;
  unsigned next_batch = batches - kept;
  while (got < pending)
    {
      post_event_buffers (t, got, QS);
      kick (t, 0);
      unsigned n = take_events (t, e, QS);
      g_assert_cmpuint (n, >, 0);
      for (unsigned i = 0; i < n; i++)
        {
          unsigned k = (got + i) % 3;
          if (k == 0)
            assert_ev (&e[i], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X,
                       (int32_t) next_batch);
          else if (k == 1)
            assert_ev (&e[i], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_Y,
                       (int32_t) (1000 + next_batch));
          else
            {
              assert_ev (&e[i], VIRTIO_INPUT_EV_SYN, VIRTIO_INPUT_SYN_REPORT,
                         0);
              next_batch++;
            }
        }
      got += n;
    }
  g_assert_cmpuint (next_batch, ==, batches);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 0);
}

typedef enum {
  BAD_READ_ONLY,
  BAD_SHORT,
  BAD_OUTSIDE_RAM,
  BAD_HEAD,
  BAD_LOOP,
  BAD_AVAIL_IDX,
  BAD_STATUS_CHAIN,
} bad_kind;

/* A hostile driver: each bad buffer gives DEVICE_NEEDS_RESET, never a
 * crash; after a reset the device works again. */
static void
test_bad_descriptors (T *t, gconstpointer data)
{
  for (bad_kind kind = BAD_READ_ONLY; kind <= BAD_STATUS_CHAIN; kind++)
    {
      g_test_message ("bad kind %d", kind);
      g_assert_cmphex (drv_init (t), ==, 0x0f);
      switch (kind)
        {
        case BAD_READ_ONLY:
          put_desc (t, 0, 0, EVENT_GPA, 8, 0, 0);
          offer (t, 0, 0);
          break;
        case BAD_SHORT:
          put_desc (t, 0, 0, EVENT_GPA, 4, VIRTQ_DESC_F_WRITE, 0);
          offer (t, 0, 0);
          break;
        case BAD_OUTSIDE_RAM:
          put_desc (t, 0, 0, RAM_SIZE - 4, 8, VIRTQ_DESC_F_WRITE, 0);
          offer (t, 0, 0);
          break;
        case BAD_HEAD:
          offer (t, 0, QS + 3);
          break;
        case BAD_LOOP:
          put_desc (t, 0, 0, EVENT_GPA, 0, VIRTQ_DESC_F_WRITE
                                             | VIRTQ_DESC_F_NEXT, 1);
          put_desc (t, 0, 1, EVENT_GPA, 0, VIRTQ_DESC_F_WRITE
                                             | VIRTQ_DESC_F_NEXT, 0);
          offer (t, 0, 0);
          break;
        case BAD_AVAIL_IDX:
          put16 (t, AVAIL_GPA (0) + 2, QS * 3);
          break;
        case BAD_STATUS_CHAIN:
          put_desc (t, 1, 0, 0xffffffff00ull, 8, 0, 0);
          offer (t, 1, 0);
          kick (t, 1);
          break;
        }
      kick (t, 0);
      tablet_event (t, 1, 2, 0, VIRTIO_INPUT_BUTTON_LEFT);
      kick (t, 0);
      g_assert_true (status_now (t) & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
      g_assert_false (virtio_input_ready (t->vi));
      g_assert_false (tablet_event (t, 1, 2, 0, 0));
    }
  /* A reset and a proper start: events flow again. */
  ev e[8];
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  post_event_buffers (t, 0, 8);
  kick (t, 0);
  g_assert_true (tablet_event (t, 3, 4, 0, 0));
  g_assert_cmpuint (take_events (t, e, 8), ==, 3);
  assert_ev (&e[0], VIRTIO_INPUT_EV_ABS, VIRTIO_INPUT_ABS_X, 3);
}

/* Random writes anywhere in the device's BAR and configuration. */
static void
test_random_writes (T *t, gconstpointer data)
{
  GRand *rand = g_rand_new_with_seed (18);
  static const unsigned sizes[] = { 1, 2, 4, 8 };
  for (unsigned i = 0; i < 20000; i++)
    {
      uint64_t off = g_rand_int_range (rand, 0, VIRTIO_PCI_BAR_SIZE);
      unsigned size = sizes[g_rand_int_range (rand, 0, 4)];
      uint64_t v = (uint64_t) g_rand_int (rand) << 32 | g_rand_int (rand);
      if (g_rand_boolean (rand))
        wr (t, off, size, v);
      else
        rd (t, off, size);
      if (i % 64 == 0)
        {
          tablet_event (t, g_rand_int (rand) & 0xffff,
                        g_rand_int (rand) & 0xffff,
                        g_rand_int_range (rand, -3, 3),
                        g_rand_int (rand) & 0x1f);
          while (g_main_context_iteration (t->ctx, FALSE))
            ;
        }
    }
  g_rand_free (rand);
  g_assert_cmpuint (virtio_input_pending (t->vi), <=,
                    VIRTIO_INPUT_PENDING_MAX);
}

/* Saved state: the transport, select/subsel and the pending events. */
static void
test_state (T *t, gconstpointer data)
{
  ev e[16];
  g_assert_cmphex (drv_init (t), ==, 0x0f);
  wr (t, CFG (0), 1, VIRTIO_INPUT_CFG_ABS_INFO);
  g_assert_true (tablet_event (t, 11, 12, 0,
                               VIRTIO_INPUT_BUTTON_LEFT));
  g_autoptr (GByteArray) blob = g_byte_array_new ();
  vmm_device *dev = virtio_input_device (t->vi);
  g_mutex_lock (&dev->lock);
  dev->ops->save_state (dev, blob);
  g_mutex_unlock (&dev->lock);

  wr (t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
  wr (t, CFG (0), 1, 0);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 0);
  g_autoptr (GError) error = NULL;
  g_mutex_lock (&dev->lock);
  g_assert_true (dev->ops->load_state (dev, blob->data, blob->len, &error));
  g_mutex_unlock (&dev->lock);
  g_assert_no_error (error);
  g_assert_cmpuint (rd (t, CFG (0), 1), ==, VIRTIO_INPUT_CFG_ABS_INFO);
  g_assert_cmpuint (status_now (t), ==, 0x0f);
  g_assert_cmpuint (virtio_input_pending (t->vi), ==, 4);
  post_event_buffers (t, 0, 8);
  kick (t, 0);
  g_assert_cmpuint (take_events (t, e, 16), ==, 4);
  assert_ev (&e[2], VIRTIO_INPUT_EV_KEY, VIRTIO_INPUT_BTN_LEFT, 1);

  /* A truncated blob is refused. */
  g_mutex_lock (&dev->lock);
  g_assert_false (dev->ops->load_state (dev, blob->data, blob->len - 3,
                                        &error));
  g_mutex_unlock (&dev->lock);
  g_assert_nonnull (error);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) g_test_add ("/virtio-input/" name, T, NULL, setup, fn, \
                                  teardown)
  ADD ("identity", test_identity);
  ADD ("config", test_config);
  ADD ("not-ready", test_not_ready);
  ADD ("events", test_events);
  ADD ("partial-batch", test_partial_batch);
  ADD ("bounded-queue", test_bounded_queue);
  ADD ("bad-descriptors", test_bad_descriptors);
  ADD ("random-writes", test_random_writes);
  ADD ("state", test_state);
  return g_test_run ();
}
