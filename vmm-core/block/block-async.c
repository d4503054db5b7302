/* vmm-core/block/block-async.c — asynchronous requests on a worker pool.
 *
 * Why a worker pool and not io_uring (yet): qcow2 needs metadata lookups and
 * allocation between the guest request and the host I/O, which are plain
 * synchronous code paths here; a pool of threads runs those paths unchanged
 * for every format.  raw images (parallel_io) get true parallelism, qcow2
 * requests queue on the image's lock.  The completion runs on the worker, or
 * is posted to the GMainContext given with vmm_block_set_completion_context()
 * (the machine's I/O thread).  io_uring can later replace the raw data path
 * behind this same interface. */
#include "vmm-core/block/block-int.h"

#define VMM_BLOCK_POOL_THREADS 4

typedef struct {
  VmmBlock *bs;
  VmmBlockOp op;
  uint64_t offset;
  void *buf;
  uint64_t len;
  VmmBlockCompletion done;
  gpointer user_data;
  gboolean ok;
  GError *error;
} Request;

static void request_finish(Request *req)
{
  VmmBlock *bs = req->bs;
  if (req->done)
    req->done(bs, req->ok, req->error, req->user_data);
  g_clear_error(&req->error);
  g_free(req);
  g_mutex_lock(&bs->async_lock);
  bs->in_flight--;
  if (bs->in_flight == 0)
    g_cond_broadcast(&bs->async_cond);
  g_mutex_unlock(&bs->async_lock);
}

static gboolean complete_in_context(gpointer data)
{
  request_finish(data);
  return G_SOURCE_REMOVE;
}

static void worker(gpointer data, gpointer pool_data)
{
  Request *req = data;
  VmmBlock *bs = req->bs;
  switch (req->op) {
  case VMM_BLOCK_OP_READ:
    req->ok = vmm_block_read(bs, req->offset, req->buf, req->len, &req->error);
    break;
  case VMM_BLOCK_OP_WRITE:
    req->ok = vmm_block_write(bs, req->offset, req->buf, req->len, &req->error);
    break;
  case VMM_BLOCK_OP_FLUSH:
    req->ok = vmm_block_flush(bs, &req->error);
    break;
  case VMM_BLOCK_OP_DISCARD:
    req->ok = vmm_block_discard(bs, req->offset, req->len, &req->error);
    break;
  case VMM_BLOCK_OP_WRITE_ZEROES:
    req->ok = vmm_block_write_zeroes(bs, req->offset, req->len, &req->error);
    break;
  default:
    req->ok = FALSE;
    g_set_error(&req->error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: unknown request type %d", bs->filename, req->op);
  }
  GMainContext *ctx = bs->completion_ctx;
  if (ctx) {
    GSource *src = g_idle_source_new();
    g_source_set_priority(src, G_PRIORITY_DEFAULT);
    g_source_set_callback(src, complete_in_context, req, NULL);
    g_source_attach(src, ctx);
    g_source_unref(src);
  } else {
    request_finish(req);
  }
}

void vmm_block_set_completion_context(VmmBlock *bs, GMainContext *context)
{
  bs->completion_ctx = context;
}

void vmm_block_submit(VmmBlock *bs, VmmBlockOp op, uint64_t offset, void *buf,
                      uint64_t len, VmmBlockCompletion done, gpointer user_data)
{
  Request *req = g_new0(Request, 1);
  req->bs = bs;
  req->op = op;
  req->offset = offset;
  req->buf = buf;
  req->len = len;
  req->done = done;
  req->user_data = user_data;
  g_mutex_lock(&bs->async_lock);
  if (!bs->pool)
    bs->pool = g_thread_pool_new(worker, NULL, VMM_BLOCK_POOL_THREADS, FALSE,
                                 NULL);
  bs->in_flight++;
  g_mutex_unlock(&bs->async_lock);
  g_thread_pool_push(bs->pool, req, NULL);
}

void vmm_block_drain(VmmBlock *bs)
{
  GMainContext *ctx = bs->completion_ctx;
  gboolean own = ctx && g_main_context_acquire(ctx);
  g_mutex_lock(&bs->async_lock);
  while (bs->in_flight > 0) {
    if (own) {
      g_mutex_unlock(&bs->async_lock);
      g_main_context_iteration(ctx, TRUE);
      g_mutex_lock(&bs->async_lock);
    } else if (ctx) {
      break; /* completions are pending in a context another thread runs */
    } else {
      g_cond_wait(&bs->async_cond, &bs->async_lock);
    }
  }
  g_mutex_unlock(&bs->async_lock);
  if (own)
    g_main_context_release(ctx);
}
