/* virtio-blk device model (virtio 1.2, 5.2). Behaviour: see virtio-blk.h. */
#include "vmm-core/devices/virtio-blk.h"

#include <gio/gio.h>
#include <string.h>
#include <sys/uio.h>

#include "vmm-core/devices/devstate.h"

#define BLK_HEADER_BYTES 16
#define BLK_RANGE_BYTES 16

struct virtio_blk {
  vmm_device dev;
  vmm_virtio_pci *vp;
  VmmBlock *bs;
  bool read_only;
  unsigned num_queues;
  uint64_t capacity; /* sectors */
  char serial[VIRTIO_BLK_ID_BYTES];
  /* Bumped by every reset: completions of older requests drop their data. */
  uint64_t generation;
  gint refs; /* the owner's, plus one per request in flight */
  bool destroyed;
  GPtrArray *requests;  /* in flight, current generation */
  /* Reads not yet completed (any generation): they land in the guest's own
   * buffers, so a reset waits for their data first. */
  unsigned guest_reads;
  unsigned in_flight[VIRTIO_BLK_MAX_QUEUES];
  bool processing[VIRTIO_BLK_MAX_QUEUES]; /* process_queue is on the stack */
  /* Heads restored from a saved state, to be run again. */
  GArray *pending[VIRTIO_BLK_MAX_QUEUES];
};

typedef struct blk_req {
  virtio_blk *blk;
  uint64_t generation;
  unsigned queue;
  uint16_t head;
  uint32_t type;
  uint64_t sector;
  GArray *rd; /* device-readable segments (header, data-out) */
  GArray *wr; /* device-writable segments (data-in, status) */
  uint64_t wr_total;
  uint8_t *status;
  uint64_t data_len;
  uint64_t done;  /* data bytes transferred so far */
  uint32_t written; /* bytes written into the guest's buffers */
  uint8_t *ranges;  /* DISCARD / WRITE_ZEROES segments, copied once */
  unsigned n_ranges;
  unsigned cur_range;
} blk_req;

static void process_queue (virtio_blk *blk, unsigned index);

static void
blk_unref (virtio_blk *blk)
{
  if (!g_atomic_int_dec_and_test (&blk->refs))
    return;
  for (unsigned i = 0; i < VIRTIO_BLK_MAX_QUEUES; i++)
    if (blk->pending[i])
      g_array_unref (blk->pending[i]);
  g_ptr_array_unref (blk->requests);
  g_mutex_clear (&blk->dev.lock);
  g_free (blk);
}

static void
req_free (blk_req *req)
{
  g_array_unref (req->rd);
  g_array_unref (req->wr);
  g_free (req->ranges);
  g_free (req);
}

/* Copies between @buf and the byte stream the segments make, from @offset. */
static void
sg_copy (GArray *segs, uint64_t offset, uint8_t *buf, uint64_t len,
         bool to_guest)
{
  for (guint i = 0; i < segs->len && len; i++)
    {
      const vmm_vq_seg *s = &g_array_index (segs, vmm_vq_seg, i);
      if (offset >= s->len)
        {
          offset -= s->len;
          continue;
        }
      uint64_t n = MIN (len, s->len - offset);
      if (to_guest)
        memcpy ((uint8_t *) s->host + offset, buf, n);
      else
        memcpy (buf, (const uint8_t *) s->host + offset, n);
      buf += n;
      len -= n;
      offset = 0;
    }
}

/* The segments' bytes [@offset, @offset + @len) as host buffers, adjacent
 * segments that continue each other in host memory merged into one; returns
 * how many (*iov is g_malloc'd). The caller checked the segments hold that
 * many bytes. */
static unsigned
sg_iovec (GArray *segs, uint64_t offset, uint64_t len, struct iovec **iov)
{
  *iov = g_new (struct iovec, MAX (segs->len, 1));
  unsigned n = 0;
  for (guint i = 0; i < segs->len && len; i++)
    {
      const vmm_vq_seg *s = &g_array_index (segs, vmm_vq_seg, i);
      if (offset >= s->len)
        {
          offset -= s->len;
          continue;
        }
      uint8_t *host = (uint8_t *) s->host + offset;
      uint64_t take = MIN (len, s->len - offset);
      if (n && (uint8_t *) (*iov)[n - 1].iov_base + (*iov)[n - 1].iov_len
                   == host)
        (*iov)[n - 1].iov_len += take;
      else
        (*iov)[n++] = (struct iovec){ host, take };
      len -= take;
      offset = 0;
    }
  return n;
}

static uint64_t
sg_total (GArray *segs)
{
  uint64_t t = 0;
  for (guint i = 0; i < segs->len; i++)
    t += g_array_index (segs, vmm_vq_seg, i).len;
  return t;
}

/* Ends a request of the current generation: status, used ring, interrupt. */
static void
req_finish (blk_req *req, uint8_t status)
{
  virtio_blk *blk = req->blk;
  *req->status = status;
  req->written++;
  g_ptr_array_remove_fast (blk->requests, req);
  blk->in_flight[req->queue]--;
  vmm_virtqueue *vq = vmm_virtio_pci_queue (blk->vp, req->queue);
  if (vq)
    {
      vmm_vq_push (vq, req->head, req->written);
      vmm_virtio_pci_queue_interrupt (blk->vp, req->queue);
    }
  unsigned q = req->queue;
  req_free (req);
  /* A queue that was full of requests in flight can take more now. */
  if (vq && blk->in_flight[q] + 1 == vq->size)
    process_queue (blk, q);
  blk_unref (blk);
}

static void req_step (blk_req *req);

static void
req_done (VmmBlock *bs, gboolean ok, const GError *error, gpointer data)
{
  blk_req *req = data;
  virtio_blk *blk = req->blk;
  g_mutex_lock (&blk->dev.lock);
  if (req->type == VIRTIO_BLK_T_IN)
    blk->guest_reads--;
  if (blk->destroyed || req->generation != blk->generation)
    {
      g_mutex_unlock (&blk->dev.lock);
      req_free (req);
      blk_unref (blk);
      return;
    }
  if (!ok)
    {
      g_info ("%s: request type %u at sector %" G_GUINT64_FORMAT
              " failed: %s", blk->dev.name, req->type, req->sector,
              error ? error->message : "unknown error");
      req_finish (req, VIRTIO_BLK_S_IOERR);
      g_mutex_unlock (&blk->dev.lock);
      return;
    }
  switch (req->type)
    {
    case VIRTIO_BLK_T_IN:
      req->written += (uint32_t) req->data_len;
      req->done = req->data_len;
      break;
    case VIRTIO_BLK_T_OUT:
      req->done = req->data_len;
      break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      req->cur_range++;
      break;
    default: /* FLUSH: one submission */
      req->done = 1;
    }
  req_step (req);
  g_mutex_unlock (&blk->dev.lock);
}

/* Submits the request's next piece, or finishes it. */
static void
req_step (blk_req *req)
{
  virtio_blk *blk = req->blk;
  switch (req->type)
    {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
      {
        if (req->done == req->data_len)
          {
            req_finish (req, VIRTIO_BLK_S_OK);
            return;
          }
        uint64_t off = req->sector * VIRTIO_BLK_SECTOR;
        bool out = req->type == VIRTIO_BLK_T_OUT;
        VmmBlockOp op = out ? VMM_BLOCK_OP_WRITE : VMM_BLOCK_OP_READ;
        /* The block layer moves the data between the image and the guest's
         * buffers itself: straight from/into guest memory through the
         * kernel where it can (O_DIRECT when aligned), else through a
         * bounce buffer on its worker, never with a copy on this thread. */
        g_autofree struct iovec *iov = NULL;
        unsigned n = out ? sg_iovec (req->rd, BLK_HEADER_BYTES, req->data_len,
                                     &iov)
                         : sg_iovec (req->wr, 0, req->data_len, &iov);
        if (!out)
          blk->guest_reads++;
        vmm_block_submitv (blk->bs, op, off, iov, n, req_done, req);
        return;
      }
    case VIRTIO_BLK_T_FLUSH:
      if (req->done)
        req_finish (req, VIRTIO_BLK_S_OK);
      else
        vmm_block_submit (blk->bs, VMM_BLOCK_OP_FLUSH, 0, NULL, 0, req_done,
                          req);
      return;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      {
        if (req->cur_range == req->n_ranges)
          {
            req_finish (req, VIRTIO_BLK_S_OK);
            return;
          }
        const uint8_t *r = req->ranges + BLK_RANGE_BYTES * req->cur_range;
        uint64_t sector = vmm_pci_get32 (r)
                          | (uint64_t) vmm_pci_get32 (r + 4) << 32;
        uint32_t n = vmm_pci_get32 (r + 8);
        uint32_t flags = vmm_pci_get32 (r + 12);
        /* The unmap flag only permits deallocation (5.2.6.2); the block
         * layer's write_zeroes decides, so both forms map to it. */
        (void) flags;
        VmmBlockOp op = req->type == VIRTIO_BLK_T_DISCARD
                            ? VMM_BLOCK_OP_DISCARD
                            : VMM_BLOCK_OP_WRITE_ZEROES;
        vmm_block_submit (blk->bs, op, sector * VIRTIO_BLK_SECTOR, NULL,
                          (uint64_t) n * VIRTIO_BLK_SECTOR, req_done, req);
        return;
      }
    }
  req_finish (req, VIRTIO_BLK_S_UNSUPP);
}

static bool
range_ok (virtio_blk *blk, uint64_t sector, uint64_t sectors)
{
  return sector <= blk->capacity && sectors <= blk->capacity - sector;
}

/* Validates the DISCARD / WRITE_ZEROES segments; returns a status or -1. */
static int
check_ranges (virtio_blk *blk, blk_req *req)
{
  uint64_t bytes = sg_total (req->rd) - BLK_HEADER_BYTES;
  if (bytes == 0 || bytes % BLK_RANGE_BYTES
      || bytes / BLK_RANGE_BYTES > VIRTIO_BLK_MAX_DISCARD_SEG)
    return VIRTIO_BLK_S_IOERR;
  req->n_ranges = (unsigned) (bytes / BLK_RANGE_BYTES);
  req->ranges = g_malloc (bytes);
  sg_copy (req->rd, BLK_HEADER_BYTES, req->ranges, bytes, false);
  for (unsigned i = 0; i < req->n_ranges; i++)
    {
      const uint8_t *r = req->ranges + BLK_RANGE_BYTES * i;
      uint64_t sector = vmm_pci_get32 (r)
                        | (uint64_t) vmm_pci_get32 (r + 4) << 32;
      uint32_t n = vmm_pci_get32 (r + 8);
      uint32_t flags = vmm_pci_get32 (r + 12);
      if (flags & ~(uint32_t) VIRTIO_BLK_WZ_F_UNMAP)
        return VIRTIO_BLK_S_UNSUPP;
      if (req->type == VIRTIO_BLK_T_DISCARD && flags)
        return VIRTIO_BLK_S_UNSUPP;
      if (n > VIRTIO_BLK_MAX_DISCARD_SECTORS || !range_ok (blk, sector, n))
        return VIRTIO_BLK_S_IOERR;
    }
  return -1;
}

/* Takes one chain off @index; false when the device needs a reset. */
static bool
handle_request (virtio_blk *blk, unsigned index, vmm_virtqueue *vq,
                uint16_t head)
{
  g_autoptr (GArray) segs = g_array_new (FALSE, FALSE, sizeof (vmm_vq_seg));
  g_autoptr (GError) error = NULL;
  if (!vmm_vq_chain_collect (vq, head, segs, &error))
    {
      vmm_virtio_pci_needs_reset (blk->vp, "queue %u, head %u: %s", index,
                                  head, error->message);
      return false;
    }
  blk_req *req = g_new0 (blk_req, 1);
  req->blk = blk;
  req->generation = blk->generation;
  req->queue = index;
  req->head = head;
  req->rd = g_array_new (FALSE, FALSE, sizeof (vmm_vq_seg));
  req->wr = g_array_new (FALSE, FALSE, sizeof (vmm_vq_seg));
  for (guint i = 0; i < segs->len; i++)
    {
      vmm_vq_seg *s = &g_array_index (segs, vmm_vq_seg, i);
      g_array_append_val (s->writable ? req->wr : req->rd, *s);
    }
  req->wr_total = sg_total (req->wr);
  if (req->wr_total == 0)
    {
      req_free (req);
      vmm_virtio_pci_needs_reset (blk->vp,
                                  "queue %u, head %u: no status byte", index,
                                  head);
      return false;
    }
  const vmm_vq_seg *last = &g_array_index (req->wr, vmm_vq_seg,
                                           req->wr->len - 1);
  req->status = (uint8_t *) last->host + last->len - 1;
  g_atomic_int_inc (&blk->refs);
  g_ptr_array_add (blk->requests, req);
  blk->in_flight[index]++;

  uint64_t rd_total = sg_total (req->rd);
  if (rd_total < BLK_HEADER_BYTES)
    {
      req_finish (req, VIRTIO_BLK_S_IOERR);
      return true;
    }
  uint8_t hdr[BLK_HEADER_BYTES];
  sg_copy (req->rd, 0, hdr, sizeof hdr, false);
  req->type = vmm_pci_get32 (hdr);
  req->sector = vmm_pci_get32 (hdr + 8)
                | (uint64_t) vmm_pci_get32 (hdr + 12) << 32;
  uint64_t data_in = req->wr_total - 1;
  int status = -1;
  switch (req->type)
    {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
      req->data_len = req->type == VIRTIO_BLK_T_IN ? data_in
                                                   : rd_total - BLK_HEADER_BYTES;
      if (req->type == VIRTIO_BLK_T_OUT && blk->read_only)
        status = VIRTIO_BLK_S_IOERR;
      else if (req->data_len % VIRTIO_BLK_SECTOR
               || !range_ok (blk, req->sector,
                             req->data_len / VIRTIO_BLK_SECTOR))
        status = VIRTIO_BLK_S_IOERR;
      break;
    case VIRTIO_BLK_T_FLUSH:
      break;
    case VIRTIO_BLK_T_GET_ID:
      if (data_in < VIRTIO_BLK_ID_BYTES)
        status = VIRTIO_BLK_S_IOERR;
      else
        {
          sg_copy (req->wr, 0, (uint8_t *) blk->serial, VIRTIO_BLK_ID_BYTES,
                   true);
          req->written = VIRTIO_BLK_ID_BYTES;
          status = VIRTIO_BLK_S_OK;
        }
      break;
    case VIRTIO_BLK_T_DISCARD:
    case VIRTIO_BLK_T_WRITE_ZEROES:
      status = blk->read_only ? VIRTIO_BLK_S_UNSUPP : check_ranges (blk, req);
      break;
    default:
      status = VIRTIO_BLK_S_UNSUPP;
    }
  if (status >= 0)
    req_finish (req, (uint8_t) status);
  else
    req_step (req);
  return true;
}

static void process_queue_locked (virtio_blk *blk, unsigned index,
                                  vmm_virtqueue *vq);

/* Requests that finish at once call back in here; the outer call goes on
 * popping, so the inner one returns. */
static void
process_queue (virtio_blk *blk, unsigned index)
{
  vmm_virtqueue *vq = vmm_virtio_pci_queue (blk->vp, index);
  if (!vq || index >= blk->num_queues || blk->processing[index])
    return;
  blk->processing[index] = true;
  process_queue_locked (blk, index, vq);
  blk->processing[index] = false;
}

static void
process_queue_locked (virtio_blk *blk, unsigned index, vmm_virtqueue *vq)
{
  GArray *pending = blk->pending[index];
  while (pending->len && blk->in_flight[index] < vq->size)
    {
      uint16_t head = g_array_index (pending, uint16_t, 0);
      g_array_remove_index (pending, 0);
      if (!handle_request (blk, index, vq, head))
        return;
    }
  for (;;)
    {
      g_autoptr (GError) error = NULL;
      uint16_t head;
      int r = 0;
      vmm_vq_set_notify (vq, false);
      while (blk->in_flight[index] < vq->size
             && (r = vmm_vq_pop (vq, &head, &error)) > 0)
        if (!handle_request (blk, index, vq, head))
          return;
      if (r < 0)
        {
          vmm_virtio_pci_needs_reset (blk->vp, "queue %u: %s", index,
                                      error->message);
          return;
        }
      /* Full: the next completion comes back here. */
      if (blk->in_flight[index] >= vq->size)
        return;
      vmm_vq_set_notify (vq, true);
      if (!vmm_vq_has_avail (vq))
        return;
    }
}

/* ---- transport callbacks ---- */

static void
blk_get_config (void *opaque, uint8_t *c)
{
  virtio_blk *blk = opaque;
  memset (c, 0, VIRTIO_BLK_CONFIG_LEN);
  vmm_pci_put32 (c + VIRTIO_BLK_CFG_CAPACITY, (uint32_t) blk->capacity);
  vmm_pci_put32 (c + VIRTIO_BLK_CFG_CAPACITY + 4,
                 (uint32_t) (blk->capacity >> 32));
  vmm_pci_put32 (c + VIRTIO_BLK_CFG_SEG_MAX, VIRTIO_BLK_QUEUE_SIZE - 2);
  vmm_pci_put32 (c + VIRTIO_BLK_CFG_BLK_SIZE, VIRTIO_BLK_SECTOR);
  vmm_pci_put16 (c + VIRTIO_BLK_CFG_NUM_QUEUES, (uint16_t) blk->num_queues);
  if (!blk->read_only)
    {
      vmm_pci_put32 (c + VIRTIO_BLK_CFG_MAX_DISCARD_SECTORS,
                     VIRTIO_BLK_MAX_DISCARD_SECTORS);
      vmm_pci_put32 (c + VIRTIO_BLK_CFG_MAX_DISCARD_SEG,
                     VIRTIO_BLK_MAX_DISCARD_SEG);
      vmm_pci_put32 (c + VIRTIO_BLK_CFG_DISCARD_ALIGNMENT, 1);
      vmm_pci_put32 (c + VIRTIO_BLK_CFG_MAX_WZ_SECTORS,
                     VIRTIO_BLK_MAX_DISCARD_SECTORS);
      vmm_pci_put32 (c + VIRTIO_BLK_CFG_MAX_WZ_SEG,
                     VIRTIO_BLK_MAX_DISCARD_SEG);
      c[VIRTIO_BLK_CFG_WZ_MAY_UNMAP] = 1;
    }
}

static void
blk_queue_notify (void *opaque, unsigned index)
{
  process_queue (opaque, index);
}

static void
blk_virtio_reset (void *opaque)
{
  virtio_blk *blk = opaque;
  /* In-flight requests stay with the block layer; their completions see
   * the new generation and drop their data.  Reads that go straight into
   * guest memory cannot be dropped, so the reset waits until their data
   * has landed: after it, nothing from before writes the guest's RAM
   * (a device reset stops its DMA, virtio 1.2 2.1.1). */
  if (blk->guest_reads)
    vmm_block_wait_transfers (blk->bs);
  blk->generation++;
  g_ptr_array_set_size (blk->requests, 0);
  for (unsigned i = 0; i < blk->num_queues; i++)
    {
      blk->in_flight[i] = 0;
      g_array_set_size (blk->pending[i], 0);
    }
}

static const vmm_virtio_device_ops blk_virtio_ops = {
  .get_config = blk_get_config,
  .queue_notify = blk_queue_notify,
  .reset = blk_virtio_reset,
};

/* ---- vmm_device ---- */

static void
blk_reset (vmm_device *dev)
{
  virtio_blk *blk = (virtio_blk *) dev;
  vmm_virtio_pci_reset (blk->vp);
}

#define BLK_STATE_TAG VMM_STATE_TAG ('V', 'B', 'L', 'K')
#define BLK_STATE_VERSION 1

/* The transport's blob, then per queue the heads in flight: after a load
 * they run again (the guest's memory holds their chains). */
static void
blk_save_state (vmm_device *dev, GByteArray *out)
{
  virtio_blk *blk = (virtio_blk *) dev;
  g_autoptr (GByteArray) t = g_byte_array_new ();
  vmm_virtio_pci_save (blk->vp, t);
  vmm_state_put_header (out, BLK_STATE_TAG, BLK_STATE_VERSION);
  vmm_state_put_u32 (out, t->len);
  vmm_state_put_bytes (out, t->data, t->len);
  vmm_state_put_u16 (out, (uint16_t) blk->num_queues);
  for (unsigned q = 0; q < blk->num_queues; q++)
    {
      GArray *p = blk->pending[q];
      unsigned n = p->len;
      for (guint i = 0; i < blk->requests->len; i++)
        n += ((blk_req *) blk->requests->pdata[i])->queue == q;
      vmm_state_put_u16 (out, (uint16_t) n);
      for (guint i = 0; i < p->len; i++)
        vmm_state_put_u16 (out, g_array_index (p, uint16_t, i));
      for (guint i = 0; i < blk->requests->len; i++)
        {
          blk_req *r = blk->requests->pdata[i];
          if (r->queue == q)
            vmm_state_put_u16 (out, r->head);
        }
    }
}

static gboolean
blk_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                GError **error)
{
  virtio_blk *blk = (virtio_blk *) dev;
  vmm_state_reader rd;
  if (!vmm_state_begin (&rd, data, len, BLK_STATE_TAG, BLK_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  uint32_t tlen = vmm_state_get_u32 (&rd);
  const uint8_t *tdata = vmm_state_take (&rd, tlen);
  uint16_t nq = vmm_state_get_u16 (&rd);
  vmm_state_check (&rd, nq == blk->num_queues, "queue count");
  GArray *heads[VIRTIO_BLK_MAX_QUEUES] = { NULL };
  for (unsigned q = 0; q < blk->num_queues && !rd.bad && !rd.invalid; q++)
    {
      uint16_t n = vmm_state_get_u16 (&rd);
      vmm_state_check (&rd, n <= VIRTIO_BLK_QUEUE_SIZE, "in-flight count");
      heads[q] = g_array_new (FALSE, FALSE, sizeof (uint16_t));
      for (unsigned i = 0; i < n && !rd.bad && !rd.invalid; i++)
        {
          uint16_t h = vmm_state_get_u16 (&rd);
          vmm_state_check (&rd, h < VIRTIO_BLK_QUEUE_SIZE, "in-flight head");
          g_array_append_val (heads[q], h);
        }
    }
  gboolean ok = vmm_state_end (&rd, dev->name, error)
                && vmm_virtio_pci_load (blk->vp, tdata, tlen, error);
  for (unsigned q = 0; q < blk->num_queues; q++)
    {
      if (ok && heads[q])
        g_array_append_vals (blk->pending[q], heads[q]->data, heads[q]->len);
      if (heads[q])
        g_array_unref (heads[q]);
    }
  return ok;
}

static void
blk_destroy (vmm_device *dev)
{
  virtio_blk *blk = (virtio_blk *) dev;
  g_mutex_lock (&dev->lock);
  blk->destroyed = true;
  blk->generation++;
  g_ptr_array_set_size (blk->requests, 0);
  g_mutex_unlock (&dev->lock);
  vmm_virtio_pci_free (blk->vp);
  blk->vp = NULL;
  blk_unref (blk);
}

static const vmm_device_ops blk_device_ops = {
  .reset = blk_reset,
  .save_state = blk_save_state,
  .load_state = blk_load_state,
  .destroy = blk_destroy,
};

virtio_blk *
virtio_blk_create (const vmm_guest_memory *mem, GMainContext *io,
                   const vmm_msi_host *msi, const vmm_ioeventfd_host *ioev,
                   VmmBlock *bs, unsigned num_queues, GError **error)
{
  if (num_queues < 1 || num_queues > VIRTIO_BLK_MAX_QUEUES)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "virtio-blk: %u queues asked for, 1 to %u supported",
                   num_queues, VIRTIO_BLK_MAX_QUEUES);
      return NULL;
    }
  virtio_blk *blk = g_new0 (virtio_blk, 1);
  vmm_device_init (&blk->dev, "virtio-blk", &blk_device_ops);
  blk->refs = 1;
  blk->bs = bs;
  blk->read_only = vmm_block_is_read_only (bs);
  blk->num_queues = num_queues;
  blk->capacity = vmm_block_size (bs) / VIRTIO_BLK_SECTOR;
  blk->requests = g_ptr_array_new ();
  for (unsigned i = 0; i < VIRTIO_BLK_MAX_QUEUES; i++)
    blk->pending[i] = g_array_new (FALSE, FALSE, sizeof (uint16_t));

  uint64_t features = VIRTIO_BIT (VIRTIO_BLK_F_SEG_MAX)
                      | VIRTIO_BIT (VIRTIO_BLK_F_BLK_SIZE)
                      | VIRTIO_BIT (VIRTIO_BLK_F_FLUSH);
  if (num_queues > 1)
    features |= VIRTIO_BIT (VIRTIO_BLK_F_MQ);
  if (blk->read_only)
    features |= VIRTIO_BIT (VIRTIO_BLK_F_RO);
  else
    features |= VIRTIO_BIT (VIRTIO_BLK_F_DISCARD)
                | VIRTIO_BIT (VIRTIO_BLK_F_WRITE_ZEROES);
  vmm_virtio_pci_info info = {
    .device_type = VIRTIO_ID_BLOCK,
    .class_code = VIRTIO_BLK_CLASS,
    .features = features,
    .num_queues = num_queues,
    .queue_size = VIRTIO_BLK_QUEUE_SIZE,
    .config_len = VIRTIO_BLK_CONFIG_LEN,
  };
  blk->vp = vmm_virtio_pci_new (&blk->dev, mem, io, msi, ioev, &info,
                                &blk_virtio_ops, blk, error);
  if (!blk->vp)
    {
      blk->destroyed = true;
      blk_unref (blk);
      return NULL;
    }
  vmm_block_set_completion_context (bs, io);
  return blk;
}

vmm_device *
virtio_blk_device (virtio_blk *blk)
{
  return &blk->dev;
}

vmm_pci_device *
virtio_blk_pci (virtio_blk *blk)
{
  return vmm_virtio_pci_pci (blk->vp);
}

gboolean
virtio_blk_attach (virtio_blk *blk, vmm_pci_host *host, unsigned devfn,
                   GError **error)
{
  return vmm_virtio_pci_attach (blk->vp, host, devfn, error);
}

void
virtio_blk_set_serial (virtio_blk *blk, const char *serial)
{
  g_mutex_lock (&blk->dev.lock);
  memset (blk->serial, 0, sizeof blk->serial);
  memcpy (blk->serial, serial, MIN (strlen (serial), sizeof blk->serial));
  g_mutex_unlock (&blk->dev.lock);
}

void
virtio_blk_resize_notify (virtio_blk *blk)
{
  g_mutex_lock (&blk->dev.lock);
  blk->capacity = vmm_block_size (blk->bs) / VIRTIO_BLK_SECTOR;
  vmm_virtio_pci_config_changed (blk->vp);
  g_mutex_unlock (&blk->dev.lock);
}
