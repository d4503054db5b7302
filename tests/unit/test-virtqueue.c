/* The split virtqueue and its descriptor-chain iterator, against fake guest
 * RAM: well-formed chains, indirect tables, suppression, and every kind of
 * malformed chain a hostile driver can build. */
#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/virtqueue.h"

#define RAM_SIZE (1u << 20)
#define QSIZE 16
#define DESC_GPA 0x1000
#define AVAIL_GPA 0x2000
#define USED_GPA 0x3000

typedef struct fixture {
  vmm_guest_memory mem;
  vmm_virtqueue vq;
} fixture;

static void
put16 (fixture *f, uint64_t gpa, uint16_t v)
{
  f->mem.host[gpa] = v & 0xff;
  f->mem.host[gpa + 1] = v >> 8;
}

static uint16_t
get16 (fixture *f, uint64_t gpa)
{
  return (uint16_t) (f->mem.host[gpa] | f->mem.host[gpa + 1] << 8);
}

static uint32_t
get32 (fixture *f, uint64_t gpa)
{
  return get16 (f, gpa) | (uint32_t) get16 (f, gpa + 2) << 16;
}

static void
put_desc_at (fixture *f, uint64_t table, unsigned i, uint64_t addr,
             uint32_t len, uint16_t flags, uint16_t next)
{
  uint8_t *p = f->mem.host + table + 16 * i;
  for (int b = 0; b < 8; b++)
    p[b] = (addr >> (8 * b)) & 0xff;
  for (int b = 0; b < 4; b++)
    p[8 + b] = (len >> (8 * b)) & 0xff;
  p[12] = flags & 0xff;
  p[13] = flags >> 8;
  p[14] = next & 0xff;
  p[15] = next >> 8;
}

static void
put_desc (fixture *f, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
          uint16_t next)
{
  put_desc_at (f, DESC_GPA, i, addr, len, flags, next);
}

/* Makes @head available. */
static void
offer (fixture *f, uint16_t head)
{
  uint16_t idx = get16 (f, AVAIL_GPA + 2);
  put16 (f, AVAIL_GPA + 4 + 2 * (idx % QSIZE), head);
  put16 (f, AVAIL_GPA + 2, idx + 1);
}

static void
setup (fixture *f, gconstpointer data)
{
  (void) data;
  f->mem = (vmm_guest_memory){ .host = g_malloc0 (RAM_SIZE),
                               .size = RAM_SIZE,
                               .below_4g = RAM_SIZE };
  vmm_vq_init (&f->vq, &f->mem);
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_vq_setup (&f->vq, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA,
                               false, 0, 0, &error));
  g_assert_no_error (error);
}

static void
teardown (fixture *f, gconstpointer data)
{
  (void) data;
  g_free (f->mem.host);
}

/* Collects @head's chain; returns the number of segments or -1. */
static int
collect (fixture *f, uint16_t head, vmm_vq_seg *out, unsigned max)
{
  g_autoptr (GArray) segs = g_array_new (FALSE, FALSE, sizeof (vmm_vq_seg));
  g_autoptr (GError) error = NULL;
  if (!vmm_vq_chain_collect (&f->vq, head, segs, &error))
    {
      g_assert_nonnull (error);
      g_test_message ("chain error: %s", error->message);
      return -1;
    }
  g_assert_no_error (error);
  for (unsigned i = 0; i < segs->len && i < max; i++)
    out[i] = g_array_index (segs, vmm_vq_seg, i);
  return (int) segs->len;
}

static void
test_setup_checks (fixture *f, gconstpointer data)
{
  (void) data;
  vmm_virtqueue vq;
  vmm_vq_init (&vq, &f->mem);
  struct {
    uint16_t size;
    uint64_t d, a, u;
  } bad[] = {
    { 0, DESC_GPA, AVAIL_GPA, USED_GPA },
    { 3, DESC_GPA, AVAIL_GPA, USED_GPA },
    { 100, DESC_GPA, AVAIL_GPA, USED_GPA },
    { 16, DESC_GPA + 8, AVAIL_GPA, USED_GPA },
    { 16, DESC_GPA, AVAIL_GPA + 1, USED_GPA },
    { 16, DESC_GPA, AVAIL_GPA, USED_GPA + 2 },
    { 16, RAM_SIZE - 16, AVAIL_GPA, USED_GPA },
    { 16, DESC_GPA, RAM_SIZE - 2, USED_GPA },
    { 16, DESC_GPA, AVAIL_GPA, RAM_SIZE - 4 },
    { 16, UINT64_MAX - 15, AVAIL_GPA, USED_GPA },
    { 16, DESC_GPA, AVAIL_GPA, UINT64_C (1) << 40 },
  };
  for (unsigned i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;
      g_assert_false (vmm_vq_setup (&vq, bad[i].size, bad[i].d, bad[i].a,
                                    bad[i].u, false, 0, 0, &error));
      g_assert_nonnull (error);
      g_assert_false (vq.ready);
    }
  /* The largest size fits when RAM allows it. */
  g_assert_true (vmm_vq_setup (&vq, VIRTQ_MAX_SIZE, 0x10000, 0x90000,
                               0xb0000, true, 5, 7, NULL));
  g_assert_cmpuint (vq.last_avail, ==, 5);
  g_assert_cmpuint (vq.used_idx, ==, 7);
}

static void
test_simple_chain (fixture *f, gconstpointer data)
{
  (void) data;
  put_desc (f, 3, 0x10000, 16, VIRTQ_DESC_F_NEXT, 7);
  put_desc (f, 7, 0x11000, 512, VIRTQ_DESC_F_NEXT, 2);
  put_desc (f, 2, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
  offer (f, 3);

  uint16_t head;
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 1);
  g_assert_cmpuint (head, ==, 3);
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 0);

  vmm_vq_seg s[4];
  g_assert_cmpint (collect (f, head, s, 4), ==, 3);
  g_assert_true (s[0].host == f->mem.host + 0x10000);
  g_assert_cmpuint (s[0].len, ==, 16);
  g_assert_false (s[0].writable);
  g_assert_cmpuint (s[1].gpa, ==, 0x11000);
  g_assert_cmpuint (s[1].len, ==, 512);
  g_assert_true (s[2].writable);

  vmm_vq_push (&f->vq, head, 1);
  g_assert_cmpuint (get16 (f, USED_GPA + 2), ==, 1);
  g_assert_cmpuint (get32 (f, USED_GPA + 4), ==, 3);
  g_assert_cmpuint (get32 (f, USED_GPA + 8), ==, 1);
}

static void
test_indirect (fixture *f, gconstpointer data)
{
  (void) data;
  const uint64_t table = 0x8000;
  put_desc_at (f, table, 0, 0x10000, 16, VIRTQ_DESC_F_NEXT, 2);
  put_desc_at (f, table, 2, 0x11000, 4096, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
  put_desc_at (f, table, 1, 0x12000, 1, VIRTQ_DESC_F_WRITE, 0);
  /* WRITE on the indirect descriptor itself is ignored. */
  put_desc (f, 0, 0x20000, 64, VIRTQ_DESC_F_NEXT, 5);
  put_desc (f, 5, table, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
  vmm_vq_seg s[5];
  g_assert_cmpint (collect (f, 0, s, 5), ==, 4);
  g_assert_cmpuint (s[0].gpa, ==, 0x20000);
  g_assert_cmpuint (s[1].gpa, ==, 0x10000);
  g_assert_cmpuint (s[2].gpa, ==, 0x11000);
  g_assert_true (s[2].writable);
  g_assert_cmpuint (s[3].gpa, ==, 0x12000);
}

static void
test_zero_length (fixture *f, gconstpointer data)
{
  (void) data;
  /* A zero-length descriptor is followed, not yielded, wherever it points. */
  put_desc (f, 0, UINT64_MAX, 0, VIRTQ_DESC_F_NEXT, 1);
  put_desc (f, 1, 0x10000, 8, 0, 0);
  vmm_vq_seg s[2];
  g_assert_cmpint (collect (f, 0, s, 2), ==, 1);
  g_assert_cmpuint (s[0].gpa, ==, 0x10000);
}

static void
test_hostile_chains (fixture *f, gconstpointer data)
{
  (void) data;
  vmm_vq_seg s[QSIZE + 2];
  const uint64_t table = 0x8000;

  /* A loop: 0 -> 1 -> 0. */
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 1);
  put_desc (f, 1, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* A descriptor pointing at itself. */
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* The longest legal chain uses every descriptor once. */
  for (unsigned i = 0; i < QSIZE; i++)
    put_desc (f, i, 0x10000, 8, i + 1 < QSIZE ? VIRTQ_DESC_F_NEXT : 0, i + 1);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, QSIZE);
  /* next out of range. */
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, QSIZE);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0xffff);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* Buffers outside RAM, or whose length wraps. */
  put_desc (f, 0, RAM_SIZE - 4, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc (f, 0, UINT64_MAX - 3, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc (f, 0, 0x10, UINT32_MAX, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc (f, 0, UINT64_C (1) << 32, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* Readable after writable. */
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
  put_desc (f, 1, 0x10000, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* Indirect: bad sizes, outside RAM, with NEXT, nested, looping. */
  uint32_t bad_len[] = { 0, 8, 17, 40, (VIRTQ_MAX_SIZE + 1) * 16 };
  for (unsigned i = 0; i < G_N_ELEMENTS (bad_len); i++)
    {
      put_desc (f, 0, table, bad_len[i], VIRTQ_DESC_F_INDIRECT, 0);
      g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
    }
  put_desc (f, 0, RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc_at (f, table, 0, 0x10000, 8, 0, 0);
  put_desc (f, 0, table, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
  put_desc (f, 1, 0x10000, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc_at (f, table, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (f, table, 1, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
  put_desc (f, 0, table, 32, VIRTQ_DESC_F_INDIRECT, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc_at (f, table, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT, 1);
  put_desc_at (f, table, 1, 0x10000, 8, VIRTQ_DESC_F_NEXT, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  put_desc_at (f, table, 1, 0x10000, 8, VIRTQ_DESC_F_NEXT, 2);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
  /* Indirect after a writable descriptor must not make a readable one
   * legal. */
  put_desc (f, 0, 0x10000, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 1);
  put_desc (f, 1, table, 16, VIRTQ_DESC_F_INDIRECT, 0);
  put_desc_at (f, table, 0, 0x10000, 8, 0, 0);
  g_assert_cmpint (collect (f, 0, s, G_N_ELEMENTS (s)), ==, -1);
}

static void
test_hostile_avail (fixture *f, gconstpointer data)
{
  (void) data;
  uint16_t head;
  g_autoptr (GError) e1 = NULL;
  g_autoptr (GError) e2 = NULL;
  put16 (f, AVAIL_GPA + 2, QSIZE + 1);
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, &e1), ==, -1);
  g_assert_nonnull (e1);
  put16 (f, AVAIL_GPA + 2, 1);
  put16 (f, AVAIL_GPA + 4, QSIZE);
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, &e2), ==, -1);
  g_assert_nonnull (e2);
  /* Exactly a full ring is fine. */
  put16 (f, AVAIL_GPA + 2, QSIZE);
  put16 (f, AVAIL_GPA + 4, 2);
  for (unsigned i = 0; i < QSIZE; i++)
    g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 1);
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 0);
}

static void
test_suppression (fixture *f, gconstpointer data)
{
  (void) data;
  /* Without EVENT_IDX: the NO_INTERRUPT flag. */
  vmm_vq_push (&f->vq, 0, 0);
  g_assert_true (vmm_vq_should_interrupt (&f->vq));
  put16 (f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
  vmm_vq_push (&f->vq, 0, 0);
  g_assert_false (vmm_vq_should_interrupt (&f->vq));
  vmm_vq_set_notify (&f->vq, false);
  g_assert_cmpuint (get16 (f, USED_GPA), ==, VIRTQ_USED_F_NO_NOTIFY);
  vmm_vq_set_notify (&f->vq, true);
  g_assert_cmpuint (get16 (f, USED_GPA), ==, 0);

  /* With EVENT_IDX: used_event and avail_event. */
  memset (f->mem.host, 0, 0x4000);
  g_assert_true (vmm_vq_setup (&f->vq, QSIZE, DESC_GPA, AVAIL_GPA, USED_GPA,
                               true, 0, 0, NULL));
  const uint64_t used_event = AVAIL_GPA + 4 + 2 * QSIZE;
  const uint64_t avail_event = USED_GPA + 4 + 8 * QSIZE;
  put16 (f, AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT); /* ignored now */
  vmm_vq_push (&f->vq, 0, 0);                        /* used 1 */
  g_assert_true (vmm_vq_should_interrupt (&f->vq)); /* first one */
  put16 (f, used_event, 3); /* interrupt when used passes 3 */
  vmm_vq_push (&f->vq, 0, 0); /* used 2 */
  g_assert_false (vmm_vq_should_interrupt (&f->vq));
  vmm_vq_push (&f->vq, 0, 0); /* used 3 */
  g_assert_false (vmm_vq_should_interrupt (&f->vq));
  vmm_vq_push (&f->vq, 0, 0); /* used 4: crossed 3 */
  g_assert_true (vmm_vq_should_interrupt (&f->vq));
  vmm_vq_push (&f->vq, 0, 0); /* used 5 */
  g_assert_false (vmm_vq_should_interrupt (&f->vq));
  /* Batches: two pushes crossing the event in one go. */
  put16 (f, used_event, 5);
  vmm_vq_push (&f->vq, 0, 0);
  vmm_vq_push (&f->vq, 0, 0);
  g_assert_true (vmm_vq_should_interrupt (&f->vq));
  /* avail_event follows last_avail when notifications are enabled. */
  offer (f, 1);
  offer (f, 2);
  uint16_t head;
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 1);
  g_assert_cmpint (vmm_vq_pop (&f->vq, &head, NULL), ==, 1);
  vmm_vq_set_notify (&f->vq, true);
  g_assert_cmpuint (get16 (f, avail_event), ==, 2);
  g_assert_false (vmm_vq_has_avail (&f->vq));
  offer (f, 3);
  g_assert_true (vmm_vq_has_avail (&f->vq));
}

/* Random descriptor tables, heads and indirect tables: every yielded
 * segment must lie in RAM and the walk must end. */
static void
test_fuzz (fixture *f, gconstpointer data)
{
  (void) data;
  GRand *rand = g_rand_new_with_seed (42);
  g_autoptr (GArray) segs = g_array_new (FALSE, FALSE, sizeof (vmm_vq_seg));
  for (unsigned round = 0; round < 20000; round++)
    {
      for (unsigned i = 0; i < QSIZE; i++)
        {
          uint64_t addr = g_rand_boolean (rand)
                              ? (uint64_t) g_rand_int_range (rand, 0, RAM_SIZE + 64)
                              : ((uint64_t) g_rand_int (rand) << 32
                                 | g_rand_int (rand));
          uint32_t len = g_rand_boolean (rand) ? (uint32_t) g_rand_int_range (rand, 0, 64)
                                               : g_rand_int (rand);
          if (g_rand_int_range (rand, 0, 4) == 0)
            {
              addr = 0x8000 + 16 * g_rand_int_range (rand, 0, 8);
              len = 16 * g_rand_int_range (rand, 0, 8);
            }
          put_desc (f, i, addr, len, g_rand_int_range (rand, 0, 8),
                    g_rand_int_range (rand, 0, QSIZE + 2));
        }
      for (unsigned i = 0; i < 8; i++)
        put_desc_at (f, 0x8000, i, g_rand_int_range (rand, 0, RAM_SIZE),
                     g_rand_int_range (rand, 0, 128),
                     g_rand_int_range (rand, 0, 8),
                     g_rand_int_range (rand, 0, 10));
      g_array_set_size (segs, 0);
      g_autoptr (GError) error = NULL;
      vmm_vq_chain_collect (&f->vq, g_rand_int_range (rand, 0, QSIZE), segs,
                            &error);
      g_assert_cmpuint (segs->len, <=, QSIZE + 8 * 1);
      for (guint i = 0; i < segs->len; i++)
        {
          vmm_vq_seg *s = &g_array_index (segs, vmm_vq_seg, i);
          g_assert_cmpuint (s->gpa + s->len, <=, RAM_SIZE);
          g_assert_true ((uint8_t *) s->host == f->mem.host + s->gpa);
        }
    }
  g_rand_free (rand);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/virtqueue/" name, fixture, NULL, setup, fn, teardown)
  ADD ("setup-checks", test_setup_checks);
  ADD ("simple-chain", test_simple_chain);
  ADD ("indirect", test_indirect);
  ADD ("zero-length", test_zero_length);
  ADD ("hostile-chains", test_hostile_chains);
  ADD ("hostile-avail", test_hostile_avail);
  ADD ("suppression", test_suppression);
  ADD ("fuzz", test_fuzz);
  return g_test_run ();
}
