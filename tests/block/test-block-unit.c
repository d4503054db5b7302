/* tests/block/test-block-unit.c — the qcow2 spec helpers, refcount widths,
 * size parsing, probing, and the sync and async API on small images. */
#include "vmm-core/block/block.h"
#include "vmm-core/block/qcow2.h"

#include <fcntl.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static char *tmpdir;

static char *tmp_path(const char *name)
{
  return g_build_filename(tmpdir, name, NULL);
}

static void test_spec_helpers(void)
{
  /* 64 KiB clusters: 8192 L2 entries, one L2 table maps 512 MiB */
  g_assert_cmpuint(qcow2_l2_entries(16), ==, 8192);
  g_assert_cmpuint(qcow2_l1_index(0, 16), ==, 0);
  g_assert_cmpuint(qcow2_l2_index(0, 16), ==, 0);
  g_assert_cmpuint(qcow2_l2_index(65536, 16), ==, 1);
  g_assert_cmpuint(qcow2_l2_index(65535, 16), ==, 0);
  g_assert_cmpuint(qcow2_l1_index((UINT64_C(512) << 20) - 1, 16), ==, 0);
  g_assert_cmpuint(qcow2_l1_index(UINT64_C(512) << 20, 16), ==, 1);
  g_assert_cmpuint(qcow2_l2_index(UINT64_C(512) << 20, 16), ==, 0);
  g_assert_cmpuint(qcow2_offset_in_cluster(65536 + 123, 16), ==, 123);
  /* 512 B clusters: 64 entries, an L2 maps 32 KiB */
  g_assert_cmpuint(qcow2_l2_entries(9), ==, 64);
  g_assert_cmpuint(qcow2_l1_index(32768 + 512 * 3 + 5, 9), ==, 1);
  g_assert_cmpuint(qcow2_l2_index(32768 + 512 * 3 + 5, 9), ==, 3);
  /* 2 MiB clusters */
  g_assert_cmpuint(qcow2_l2_entries(21), ==, 262144);
  g_assert_cmpuint(qcow2_l1_size_for(0, 16), ==, 0);
  g_assert_cmpuint(qcow2_l1_size_for(1, 16), ==, 1);
  g_assert_cmpuint(qcow2_l1_size_for(UINT64_C(512) << 20, 16), ==, 1);
  g_assert_cmpuint(qcow2_l1_size_for((UINT64_C(512) << 20) + 1, 16), ==, 2);
  /* refcounts: 16 bits, 64 KiB clusters -> 32768 entries per block */
  g_assert_cmpuint(qcow2_refblock_entries(16, 16), ==, 32768);
  g_assert_cmpuint(qcow2_refblock_entries(16, 1), ==, 524288);
  g_assert_cmpuint(qcow2_refblock_entries(9, 64), ==, 64);
  g_assert_cmpuint(qcow2_refblock_index(UINT64_C(32768) * 65536 + 65536, 16, 16), ==, 1);
  g_assert_cmpuint(qcow2_reftable_index(UINT64_C(32768) * 65536 + 65536, 16, 16), ==, 1);
  g_assert_cmpuint(qcow2_reftable_index(UINT64_C(32767) * 65536, 16, 16), ==, 0);
}

static void test_compressed_desc(void)
{
  /* cluster_bits 16: x = 62 - 8 = 54 */
  uint64_t host = UINT64_C(0x123456789), nb = 5;
  uint64_t e = QCOW2_OFLAG_COMPRESSED | (nb << 54) | host;
  uint64_t h, n;
  qcow2_compressed_desc(e, 16, &h, &n);
  g_assert_cmphex(h, ==, host);
  g_assert_cmpuint(n, ==, nb);
  g_assert_cmpuint(qcow2_compressed_size(e, 16), ==, 6 * 512 - (host & 511));
  /* cluster_bits 9: x = 61, one bit of sector count */
  e = QCOW2_OFLAG_COMPRESSED | (UINT64_C(1) << 61) | 0x1000;
  qcow2_compressed_desc(e, 9, &h, &n);
  g_assert_cmphex(h, ==, 0x1000);
  g_assert_cmpuint(n, ==, 1);
  /* cluster_bits 21: x = 49 */
  e = QCOW2_OFLAG_COMPRESSED | (UINT64_C(4095) << 49) | 0x200;
  qcow2_compressed_desc(e, 21, &h, &n);
  g_assert_cmphex(h, ==, 0x200);
  g_assert_cmpuint(n, ==, 4095);
}

static void test_refcount_widths(void)
{
  uint8_t block[512];
  for (uint32_t order = 0; order <= 6; order++) {
    uint32_t bits = 1u << order;
    uint64_t max = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
    uint64_t n = 512 * 8 / bits;
    memset(block, 0, sizeof block);
    for (uint64_t i = 0; i < n; i++)
      qcow2_refcount_set(block, i, order, (i * 7 + 3) & max);
    for (uint64_t i = 0; i < n; i++)
      g_assert_cmpuint(qcow2_refcount_get(block, i, order), ==, (i * 7 + 3) & max);
    qcow2_refcount_set(block, 1, order, max);
    g_assert_cmpuint(qcow2_refcount_get(block, 1, order), ==, max);
    g_assert_cmpuint(qcow2_refcount_get(block, 0, order), ==, 3 & max);
  }
  /* bit order below 8 bits: entry 0 is the least significant bit */
  memset(block, 0, sizeof block);
  qcow2_refcount_set(block, 0, 0, 1);
  g_assert_cmphex(block[0], ==, 0x01);
  qcow2_refcount_set(block, 7, 0, 1);
  g_assert_cmphex(block[0], ==, 0x81);
  memset(block, 0, sizeof block);
  qcow2_refcount_set(block, 1, 2, 0xa);
  g_assert_cmphex(block[0], ==, 0xa0);
  memset(block, 0, sizeof block);
  qcow2_refcount_set(block, 1, 4, 0x1234);
  g_assert_cmphex(block[2], ==, 0x12);
  g_assert_cmphex(block[3], ==, 0x34);
}

static void test_parse_size(void)
{
  uint64_t v;
  g_assert_true(vmm_block_parse_size("512", &v) && v == 512);
  g_assert_true(vmm_block_parse_size("64K", &v) && v == 65536);
  g_assert_true(vmm_block_parse_size("1M", &v) && v == 1048576);
  g_assert_true(vmm_block_parse_size("1.5G", &v) && v == UINT64_C(1610612736));
  g_assert_true(vmm_block_parse_size("2T", &v) && v == UINT64_C(2) << 40);
  g_assert_true(vmm_block_parse_size("10GiB", &v) && v == UINT64_C(10) << 30);
  g_assert_false(vmm_block_parse_size("", &v));
  g_assert_false(vmm_block_parse_size("12Q", &v));
  g_assert_false(vmm_block_parse_size("-1", &v));
  g_assert_false(vmm_block_parse_size("0.3", &v));
}

static void test_probe(void)
{
  g_autofree char *p = tmp_path("probe.img");
  uint8_t hdr[512] = { 'Q', 'F', 'I', 0xfb, 0, 0, 0, 4 };
  g_assert_true(g_file_set_contents(p, (char *)hdr, sizeof hdr, NULL));
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(p, NULL, VMM_BLOCK_OPEN_READ_ONLY, &error);
  g_assert_null(bs);
  g_assert_nonnull(strstr(error->message, "version 4"));
  g_clear_error(&error);
  bs = vmm_block_open(p, "raw", VMM_BLOCK_OPEN_READ_ONLY, &error);
  g_assert_no_error(error);
  g_assert_cmpstr(vmm_block_format(bs), ==, "raw");
  vmm_block_close(bs, NULL);
  bs = vmm_block_open(p, "vmdk", VMM_BLOCK_OPEN_READ_ONLY, &error);
  g_assert_null(bs);
  g_assert_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_UNSUPPORTED);
  g_clear_error(&error);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    b[i] = (uint8_t)(i * 31 + seed * 17 + (i >> 9));
}

static void test_rw_reopen(void)
{
  static const struct { int compat; uint32_t cs; int rbits; } cfg[] = {
    { 3, 65536, 16 }, { 2, 512, 16 }, { 3, 4096, 1 }, { 3, 2 << 20, 64 },
    { 3, 1024, 2 }, { 3, 8192, 4 }, { 3, 16384, 8 }, { 3, 32768, 32 },
  };
  for (size_t c = 0; c < G_N_ELEMENTS(cfg); c++) {
    g_autofree char *p = tmp_path("rw.qcow2");
    VmmBlockCreateOptions o = { .format = "qcow2", .size = 8 << 20,
                                .cluster_size = cfg[c].cs, .compat = cfg[c].compat,
                                .refcount_bits = cfg[c].rbits };
    GError *error = NULL;
    g_assert_true(vmm_block_create(p, &o, &error));
    g_assert_no_error(error);
    VmmBlock *bs = vmm_block_open(p, NULL, 0, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(vmm_block_size(bs), ==, 8 << 20);
    size_t n = 300000;
    g_autofree uint8_t *w = g_malloc(n), *r = g_malloc(n);
    fill(w, n, (unsigned)c);
    g_assert_true(vmm_block_write(bs, 12345, w, n, &error));
    g_assert_true(vmm_block_read(bs, 12345, r, n, &error));
    g_assert_cmpmem(w, n, r, n);
    g_assert_true(vmm_block_close(bs, &error));
    bs = vmm_block_open(p, "qcow2", VMM_BLOCK_OPEN_READ_ONLY, &error);
    g_assert_no_error(error);
    memset(r, 0, n);
    g_assert_true(vmm_block_read(bs, 12345, r, n, &error));
    g_assert_cmpmem(w, n, r, n);
    uint8_t z[100];
    g_assert_true(vmm_block_read(bs, 0, z, sizeof z, &error));
    g_assert_true(z[0] == 0 && z[99] == 0);
    VmmBlockCheckResult res;
    g_assert_true(vmm_block_check(bs, VMM_BLOCK_REPAIR_NONE, &res, &error));
    g_assert_cmpint(res.corruptions, ==, 0);
    g_assert_cmpint(res.leaks, ==, 0);
    vmm_block_check_result_clear(&res);
    /* past the end is refused, read-only refuses writes */
    g_assert_false(vmm_block_read(bs, (8 << 20) - 10, z, 20, &error));
    g_assert_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(vmm_block_write(bs, 0, z, 20, &error));
    g_assert_error(error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_READ_ONLY);
    g_clear_error(&error);
    vmm_block_close(bs, NULL);
  }
}

typedef struct {
  int done;
  gboolean ok;
  GThread *thread;
} AsyncState;

static void async_done(VmmBlock *bs, gboolean ok, const GError *error,
                       gpointer data)
{
  AsyncState *s = data;
  s->done++;
  s->ok = ok;
  s->thread = g_thread_self();
}

static void test_async(void)
{
  g_autofree char *p = tmp_path("async.qcow2");
  VmmBlockCreateOptions o = { .format = "qcow2", .size = 4 << 20 };
  GError *error = NULL;
  g_assert_true(vmm_block_create(p, &o, &error));
  GMainContext *ctx = g_main_context_new();
  VmmBlock *bs = vmm_block_open_with_context(p, NULL, 0, ctx, &error);
  g_assert_no_error(error);
  uint8_t w[4096], r[4096];
  fill(w, sizeof w, 9);
  AsyncState s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
  vmm_block_submit(bs, VMM_BLOCK_OP_WRITE, 8192, w, sizeof w, async_done, &s1);
  while (!s1.done)
    g_main_context_iteration(ctx, TRUE);
  g_assert_true(s1.ok);
  g_assert_true(s1.thread == g_thread_self());
  vmm_block_submit(bs, VMM_BLOCK_OP_READ, 8192, r, sizeof r, async_done, &s2);
  vmm_block_submit(bs, VMM_BLOCK_OP_FLUSH, 0, NULL, 0, async_done, &s3);
  while (!s2.done || !s3.done)
    g_main_context_iteration(ctx, TRUE);
  g_assert_true(s2.ok && s3.ok);
  g_assert_cmpmem(w, sizeof w, r, sizeof r);
  /* a failing request reports through the callback */
  AsyncState s4 = { 0 };
  vmm_block_submit(bs, VMM_BLOCK_OP_READ, 5 << 20, r, sizeof r, async_done, &s4);
  while (!s4.done)
    g_main_context_iteration(ctx, TRUE);
  g_assert_false(s4.ok);
  /* without a context: callback on a worker thread, drain waits */
  vmm_block_set_completion_context(bs, NULL);
  AsyncState s5 = { 0 };
  vmm_block_submit(bs, VMM_BLOCK_OP_READ, 8192, r, sizeof r, async_done, &s5);
  vmm_block_drain(bs);
  g_assert_cmpint(s5.done, ==, 1);
  g_assert_true(s5.thread != g_thread_self());
  g_assert_true(vmm_block_close(bs, &error));
  g_main_context_unref(ctx);
}

typedef struct {
  GMutex lock;
  GCond cond;
  int done, failed;
} Counter;

static void count_done(VmmBlock *bs, gboolean ok, const GError *error,
                       gpointer data)
{
  Counter *c = data;
  g_mutex_lock(&c->lock);
  c->done++;
  c->failed += !ok;
  g_cond_signal(&c->cond);
  g_mutex_unlock(&c->lock);
}

/* Many requests in flight on both drivers: every one completes once, the
 * data lands where it should. */
static void test_async_parallel(void)
{
  static const char *fmts[] = { "raw", "qcow2" };
  for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++) {
    g_autofree char *p = tmp_path("par.img");
    VmmBlockCreateOptions o = { .format = fmts[f], .size = 4 << 20,
                                .cluster_size = 4096 };
    GError *error = NULL;
    g_assert_true(vmm_block_create(p, &o, &error));
    VmmBlock *bs = vmm_block_open(p, fmts[f], 0, &error);
    g_assert_no_error(error);
    enum { N = 256, SZ = 8192 };
    uint8_t *bufs = g_malloc((size_t)N * SZ);
    for (int i = 0; i < N; i++)
      fill(bufs + (size_t)i * SZ, SZ, (unsigned)i);
    Counter c = { 0 };
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    for (int i = 0; i < N; i++)
      vmm_block_submit(bs, VMM_BLOCK_OP_WRITE, (uint64_t)i * SZ * 2,
                       bufs + (size_t)i * SZ, SZ, count_done, &c);
    g_mutex_lock(&c.lock);
    while (c.done < N)
      g_cond_wait(&c.cond, &c.lock);
    g_mutex_unlock(&c.lock);
    g_assert_cmpint(c.failed, ==, 0);
    /* second round, all at once: overwrite in place, read, discard the gaps
     * (frees pending while unlocked I/O runs) and flush */
    uint8_t *rd = g_malloc((size_t)N * SZ);
    c.done = 0;
    int total = 0;
    for (int i = 0; i < N; i++) {
      fill(bufs + (size_t)i * SZ, SZ, (unsigned)(i + 1000));
      vmm_block_submit(bs, VMM_BLOCK_OP_WRITE, (uint64_t)i * SZ * 2,
                       bufs + (size_t)i * SZ, SZ, count_done, &c);
      vmm_block_submit(bs, VMM_BLOCK_OP_READ, (uint64_t)((i * 7) % N) * SZ * 2,
                       rd + (size_t)i * SZ, SZ, count_done, &c);
      vmm_block_submit(bs, VMM_BLOCK_OP_DISCARD, (uint64_t)i * SZ * 2 + SZ,
                       NULL, SZ, count_done, &c);
      total += 3;
      if (i % 32 == 0) {
        vmm_block_submit(bs, VMM_BLOCK_OP_FLUSH, 0, NULL, 0, count_done, &c);
        total++;
      }
    }
    g_mutex_lock(&c.lock);
    while (c.done < total)
      g_cond_wait(&c.cond, &c.lock);
    g_mutex_unlock(&c.lock);
    g_assert_cmpint(c.failed, ==, 0);
    g_free(rd);
    uint8_t *r = g_malloc(SZ);
    for (int i = 0; i < N; i++) {
      g_assert_true(vmm_block_read(bs, (uint64_t)i * SZ * 2, r, SZ, &error));
      g_assert_cmpmem(r, SZ, bufs + (size_t)i * SZ, SZ);
      g_assert_true(vmm_block_read(bs, (uint64_t)i * SZ * 2 + SZ, r, SZ, &error));
      g_assert_true(r[0] == 0 && r[SZ - 1] == 0);
    }
    if (g_str_equal(fmts[f], "qcow2")) {
      VmmBlockCheckResult res;
      g_assert_true(vmm_block_check(bs, VMM_BLOCK_REPAIR_NONE, &res, &error));
      g_assert_cmpint(res.corruptions + res.leaks, ==, 0);
      vmm_block_check_result_clear(&res);
    }
    g_assert_true(vmm_block_close(bs, &error));
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
    g_free(r);
    g_free(bufs);
  }
}

/* Waits for one request through a Counter. */
static void wait_count(Counter *c, int n)
{
  g_mutex_lock(&c->lock);
  while (c->done < n)
    g_cond_wait(&c->cond, &c->lock);
  g_mutex_unlock(&c->lock);
}

/* Vectored requests over scattered buffers: raw and qcow2, buffered and
 * O_DIRECT, aligned buffers (straight to the kernel) and odd ones (through
 * the worker's bounce buffer), a request larger than one bounce chunk, a
 * read of a qcow2 hole (answered without I/O), and reads of what the
 * synchronous calls wrote. */
static void test_async_vectored(void)
{
  static const char *fmts[] = { "raw", "qcow2" };
  enum { SZ = 3 << 20 };
  for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++)
    for (unsigned direct = 0; direct < 2; direct++)
      for (unsigned odd = 0; odd < 2; odd++) {
        g_autofree char *p = tmp_path("vec.img");
        VmmBlockCreateOptions o = { .format = fmts[f], .size = 8 << 20 };
        GError *error = NULL;
        g_assert_true(vmm_block_create(p, &o, &error));
        VmmBlock *bs = vmm_block_open(p, fmts[f],
                                      direct ? VMM_BLOCK_OPEN_DIRECT : 0, &error);
        g_assert_no_error(error);
        /* three pieces, 4 KiB apart in memory: 4 KiB, SZ - 8 KiB, 4 KiB (or
         * shifted by 3 bytes and 512-byte pieces when odd) */
        size_t sizes[3] = { 4096, SZ - 8192, 4096 };
        if (odd) {
          sizes[0] = 512;
          sizes[2] = 8192 - 512;
        }
        uint8_t *mem = g_aligned_alloc(1, SZ + 4 * 4096, 4096);
        uint8_t *wmem = g_aligned_alloc(1, SZ + 4 * 4096, 4096);
        struct iovec wv[3], rv[3];
        size_t at = odd ? 3 : 0;
        for (int i = 0; i < 3; i++) {
          wv[i] = (struct iovec){ wmem + at, sizes[i] };
          rv[i] = (struct iovec){ mem + at, sizes[i] };
          at += sizes[i] + 4096;
        }
        uint8_t *flat = g_malloc(SZ);
        fill(flat, SZ, (unsigned)(f * 4 + direct * 2 + odd));
        size_t off = 0;
        for (int i = 0; i < 3; i++) {
          memcpy(wv[i].iov_base, flat + off, sizes[i]);
          off += sizes[i];
        }
        Counter c = { 0 };
        g_mutex_init(&c.lock);
        g_cond_init(&c.cond);
        /* a hole reads as zeroes */
        memset(mem, 0xee, SZ + 4 * 4096);
        vmm_block_submitv(bs, VMM_BLOCK_OP_READ, 1 << 20, rv, 3, count_done, &c);
        wait_count(&c, 1);
        for (int i = 0; i < 3; i++)
          for (size_t k = 0; k < sizes[i]; k += 511)
            g_assert_cmpuint(((uint8_t *)rv[i].iov_base)[k], ==, 0);
        g_assert_cmpuint(mem[odd ? 3 + 512 : 4096], ==, 0xee); /* the gap */
        /* write vectored, read back flat; write flat, read back vectored */
        vmm_block_submitv(bs, VMM_BLOCK_OP_WRITE, 1 << 20, wv, 3, count_done, &c);
        wait_count(&c, 2);
        uint8_t *back = g_malloc(SZ);
        g_assert_true(vmm_block_read(bs, 1 << 20, back, SZ, &error));
        g_assert_cmpmem(back, SZ, flat, SZ);
        fill(flat, SZ, 77);
        g_assert_true(vmm_block_write(bs, 2 << 20, flat, SZ, &error));
        vmm_block_submitv(bs, VMM_BLOCK_OP_READ, 2 << 20, rv, 3, count_done, &c);
        wait_count(&c, 3);
        off = 0;
        for (int i = 0; i < 3; i++) {
          g_assert_cmpmem(rv[i].iov_base, sizes[i], flat + off, sizes[i]);
          off += sizes[i];
        }
        /* past the end: the callback says so */
        vmm_block_submitv(bs, VMM_BLOCK_OP_READ, 7 << 20, rv, 3, count_done, &c);
        wait_count(&c, 4);
        g_assert_cmpint(c.failed, ==, 1);
        vmm_block_drain(bs);
        g_assert_true(vmm_block_close(bs, &error));
        g_mutex_clear(&c.lock);
        g_cond_clear(&c.cond);
        g_free(back);
        g_free(flat);
        g_aligned_free(mem);
        g_aligned_free(wmem);
        unlink(p);
      }
}

typedef struct {
  Counter c; /* first: chain_done counts through count_done */
  uint8_t *buf;
  int left;
} Chain;

/* A completion that submits the next request itself, as a queue-depth loop
 * does: on the io_uring path it runs on the reaper, which queues the new
 * request and sends it with the rest of its batch. */
static void chain_done(VmmBlock *bs, gboolean ok, const GError *error,
                       gpointer data)
{
  Chain *ch = data;
  count_done(bs, ok, error, &ch->c);
  /* only this chain's one request in flight touches left */
  gboolean more = --ch->left > 0;
  int n = 200 - ch->left;
  if (more)
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, (uint64_t)(n % 16) * 65536,
                     ch->buf, 65536, chain_done, ch);
}

/* Registered buffers: requests inside them, across their end and outside
 * them all land right; registering twice, or after requests, is refused;
 * completions that resubmit keep going. */
static void test_async_registered(void)
{
  static const char *fmts[] = { "raw", "qcow2" };
  for (size_t f = 0; f < G_N_ELEMENTS(fmts); f++) {
    g_autofree char *p = tmp_path("reg.img");
    VmmBlockCreateOptions o = { .format = fmts[f], .size = 4 << 20 };
    GError *error = NULL;
    g_assert_true(vmm_block_create(p, &o, &error));
    enum { SZ = 1 << 20 };
    uint8_t *data = g_malloc(SZ);
    fill(data, SZ, 31);
    VmmBlock *bs = vmm_block_open(p, fmts[f], 0, &error);
    g_assert_no_error(error);
    /* every cluster allocated, so qcow2 reads and writes go to the kernel */
    g_assert_true(vmm_block_write(bs, 0, data, SZ, &error));
    g_assert_true(vmm_block_close(bs, &error));
    bs = vmm_block_open(p, fmts[f], VMM_BLOCK_OPEN_DIRECT, &error);
    g_assert_no_error(error);
    uint8_t *a = g_aligned_alloc(1, SZ, 4096), *b = g_aligned_alloc(1, SZ, 4096);
    uint8_t *other = g_aligned_alloc(1, SZ, 4096);
    struct iovec regs[2] = { { a, SZ / 2 }, { b, SZ } };
    gboolean registered = vmm_block_register_buffers(bs, regs, 2);
    g_test_message("%s: buffers registered: %s", fmts[f],
                   registered ? "yes" : "no (no io_uring here)");
    g_assert_false(vmm_block_register_buffers(bs, regs, 2)); /* only once */
    Counter c = { 0 };
    g_mutex_init(&c.lock);
    g_cond_init(&c.cond);
    /* inside the first buffer, straddling its registered end, inside the
     * second at an offset, and in a buffer never registered */
    memset(a, 0, SZ);
    memset(b, 0, SZ);
    memset(other, 0, SZ);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 0, a, 65536, count_done, &c);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 65536, a + SZ / 2 - 4096, 8192,
                     count_done, &c);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 131072, b + 4096, 65536,
                     count_done, &c);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 0, other, SZ, count_done, &c);
    wait_count(&c, 4);
    g_assert_cmpint(c.failed, ==, 0);
    g_assert_cmpmem(a, 65536, data, 65536);
    g_assert_cmpmem(a + SZ / 2 - 4096, 8192, data + 65536, 8192);
    g_assert_cmpmem(b + 4096, 65536, data + 131072, 65536);
    g_assert_cmpmem(other, SZ, data, SZ);
    /* writes from a registered buffer, read back through the other */
    fill(b, SZ, 32);
    vmm_block_submit(bs, VMM_BLOCK_OP_WRITE, 0, b, SZ, count_done, &c);
    wait_count(&c, 5);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 0, other, SZ, count_done, &c);
    wait_count(&c, 6);
    g_assert_cmpint(c.failed, ==, 0);
    g_assert_cmpmem(other, SZ, b, SZ);
    /* a chain of requests each submitted by the last one's completion */
    Chain ch = { .buf = a, .left = 200 };
    g_mutex_init(&ch.c.lock);
    g_cond_init(&ch.c.cond);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 0, a, 65536, chain_done, &ch);
    wait_count(&ch.c, 200);
    vmm_block_drain(bs);
    g_assert_cmpint(ch.c.failed, ==, 0);
    g_assert_cmpmem(a, 65536, b + (size_t)(199 % 16) * 65536, 65536);
    g_assert_true(vmm_block_close(bs, &error));
    /* too late while requests are in flight (the completion waits in a
     * context nobody runs yet, so the request counts until then) */
    GMainContext *ctx = g_main_context_new();
    bs = vmm_block_open_with_context(p, fmts[f], VMM_BLOCK_OPEN_DIRECT, ctx,
                                     &error);
    g_assert_no_error(error);
    vmm_block_submit(bs, VMM_BLOCK_OP_READ, 0, a, 4096, count_done, &c);
    g_assert_false(vmm_block_register_buffers(bs, regs, 2));
    vmm_block_drain(bs);
    g_assert_cmpint(c.done, ==, 7);
    g_assert_true(vmm_block_close(bs, &error));
    g_main_context_unref(ctx);
    g_mutex_clear(&ch.c.lock);
    g_cond_clear(&ch.c.cond);
    g_mutex_clear(&c.lock);
    g_cond_clear(&c.cond);
    g_aligned_free(a);
    g_aligned_free(b);
    g_aligned_free(other);
    g_free(data);
    unlink(p);
  }
}

static void test_backing_chain(void)
{
  /* raw base <- qcow2 mid <- qcow2 top, relative names */
  g_autofree char *base = tmp_path("base.raw");
  g_autofree char *mid = tmp_path("mid.qcow2");
  g_autofree char *top = tmp_path("top.qcow2");
  size_t n = 1 << 20;
  g_autofree uint8_t *b = g_malloc(n), *r = g_malloc(n), *m = g_malloc(4096);
  fill(b, n, 1);
  g_assert_true(g_file_set_contents(base, (char *)b, (gssize)n, NULL));
  GError *error = NULL;
  VmmBlockCreateOptions o = { .format = "qcow2", .backing_file = "base.raw",
                              .backing_format = "raw", .cluster_size = 4096 };
  g_assert_true(vmm_block_create(mid, &o, &error));
  g_assert_no_error(error);
  o.backing_file = "mid.qcow2";
  o.backing_format = NULL;
  o.size = 2 << 20; /* larger than the chain below */
  g_assert_true(vmm_block_create(top, &o, &error));
  g_assert_no_error(error);
  VmmBlock *bs = vmm_block_open(mid, NULL, 0, &error);
  g_assert_no_error(error);
  fill(m, 4096, 2);
  g_assert_true(vmm_block_write(bs, 100000, m, 4096, &error));
  vmm_block_close(bs, NULL);
  memcpy(b + 100000, m, 4096);
  bs = vmm_block_open(top, NULL, 0, &error);
  g_assert_no_error(error);
  g_assert_cmpuint(vmm_block_size(bs), ==, 2 << 20);
  g_assert_true(vmm_block_read(bs, 0, r, n, &error));
  g_assert_cmpmem(b, n, r, n);
  g_assert_true(vmm_block_read(bs, n, r, n, &error));
  g_assert_true(r[0] == 0 && r[n - 1] == 0);
  /* partial write: COW from the chain */
  g_assert_true(vmm_block_write(bs, 5000, m, 100, &error));
  memcpy(b + 5000, m, 100);
  g_assert_true(vmm_block_read(bs, 0, r, n, &error));
  g_assert_cmpmem(b, n, r, n);
  /* discard reads as zeroes, not as the backing file */
  g_assert_true(vmm_block_discard(bs, 4096, 3 * 4096 + 7, &error));
  memset(b + 4096, 0, 3 * 4096 + 7);
  g_assert_true(vmm_block_read(bs, 0, r, n, &error));
  g_assert_cmpmem(b, n, r, n);
  vmm_block_close(bs, NULL);
}

static void test_dirty_lazy(void)
{
  /* A dirty image with lazy refcounts and a leaked cluster: read-write
   * open rebuilds refcounts and clears the dirty bit. */
  g_autofree char *p = tmp_path("lazy.qcow2");
  VmmBlockCreateOptions o = { .format = "qcow2", .size = 1 << 20,
                              .lazy_refcounts = TRUE };
  GError *error = NULL;
  g_assert_true(vmm_block_create(p, &o, &error));
  VmmBlock *bs = vmm_block_open(p, NULL, 0, &error);
  uint8_t w[512];
  fill(w, sizeof w, 4);
  g_assert_true(vmm_block_write(bs, 0, w, sizeof w, &error));
  g_assert_true(vmm_block_close(bs, &error));
  /* set the dirty bit by hand */
  int fd = open(p, O_RDWR);
  uint8_t inc[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
  g_assert_cmpint(pwrite(fd, inc, 8, 72), ==, 8);
  close(fd);
  bs = vmm_block_open(p, NULL, VMM_BLOCK_OPEN_READ_ONLY, &error);
  g_assert_no_error(error);
  VmmBlockInfo info;
  vmm_block_get_info(bs, &info);
  g_assert_true(info.dirty);
  vmm_block_close(bs, NULL);
  bs = vmm_block_open(p, NULL, 0, &error);
  g_assert_no_error(error);
  vmm_block_get_info(bs, &info);
  g_assert_false(info.dirty);
  uint8_t r[512];
  g_assert_true(vmm_block_read(bs, 0, r, sizeof r, &error));
  g_assert_cmpmem(w, sizeof w, r, sizeof r);
  VmmBlockCheckResult res;
  g_assert_true(vmm_block_check(bs, VMM_BLOCK_REPAIR_NONE, &res, &error));
  g_assert_cmpint(res.corruptions + res.leaks, ==, 0);
  vmm_block_check_result_clear(&res);
  vmm_block_close(bs, NULL);
}

static void rm_rf(const char *dir)
{
  GDir *d = g_dir_open(dir, 0, NULL);
  const char *name;
  while (d && (name = g_dir_read_name(d))) {
    g_autofree char *p = g_build_filename(dir, name, NULL);
    unlink(p);
  }
  if (d)
    g_dir_close(d);
  rmdir(dir);
}

int main(int argc, char **argv)
{
  g_test_init(&argc, &argv, NULL);
  tmpdir = g_dir_make_tmp("vessel-block-unit-XXXXXX", NULL);
  g_assert_nonnull(tmpdir);
  g_test_add_func("/block/spec-helpers", test_spec_helpers);
  g_test_add_func("/block/compressed-descriptor", test_compressed_desc);
  g_test_add_func("/block/refcount-widths", test_refcount_widths);
  g_test_add_func("/block/parse-size", test_parse_size);
  g_test_add_func("/block/probe", test_probe);
  g_test_add_func("/block/rw-reopen", test_rw_reopen);
  g_test_add_func("/block/async", test_async);
  g_test_add_func("/block/async-parallel", test_async_parallel);
  g_test_add_func("/block/async-vectored", test_async_vectored);
  g_test_add_func("/block/async-registered", test_async_registered);
  g_test_add_func("/block/backing-chain", test_backing_chain);
  g_test_add_func("/block/dirty-lazy-refcounts", test_dirty_lazy);
  int ret = g_test_run();
  rm_rf(tmpdir);
  g_free(tmpdir);
  return ret;
}
