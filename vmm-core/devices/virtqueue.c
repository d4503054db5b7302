/* Split virtqueues, device side (virtio 1.2, 2.7). Layouts:
 *   descriptor: le64 addr, le32 len, le16 flags, le16 next   (2.7.5)
 *   avail: le16 flags, le16 idx, le16 ring[size], le16 used_event  (2.7.6)
 *   used:  le16 flags, le16 idx, {le32 id, le32 len}[size], le16 avail_event
 *                                                                (2.7.8)
 * Ordering (2.7.7, 2.7.13): read avail->idx with acquire before the ring
 * entries it covers; write used elements before used->idx (release); a full
 * fence between publishing used->idx and reading the driver's suppression
 * fields, and between writing ours and re-checking avail->idx. */
#include "vmm-core/devices/virtqueue.h"

#include <gio/gio.h>
#include <string.h>

static inline uint16_t
ld16 (const uint8_t *p)
{
  return (uint16_t) (p[0] | p[1] << 8);
}

static inline uint32_t
ld32 (const uint8_t *p)
{
  return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
         | (uint32_t) p[3] << 24;
}

static inline uint64_t
ld64 (const uint8_t *p)
{
  return (uint64_t) ld32 (p) | (uint64_t) ld32 (p + 4) << 32;
}

static inline void
st32 (uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (v >> (8 * i)) & 0xff;
}

/* Ring indices are naturally aligned 16-bit fields shared with the guest. */
static inline uint16_t
ld16_acquire (const uint8_t *p)
{
  return GUINT16_FROM_LE (__atomic_load_n ((const uint16_t *) p,
                                           __ATOMIC_ACQUIRE));
}

static inline uint16_t
ld16_relaxed (const uint8_t *p)
{
  return GUINT16_FROM_LE (__atomic_load_n ((const uint16_t *) p,
                                           __ATOMIC_RELAXED));
}

static inline void
st16_release (uint8_t *p, uint16_t v)
{
  __atomic_store_n ((uint16_t *) p, GUINT16_TO_LE (v), __ATOMIC_RELEASE);
}

static inline void
st16_relaxed (uint8_t *p, uint16_t v)
{
  __atomic_store_n ((uint16_t *) p, GUINT16_TO_LE (v), __ATOMIC_RELAXED);
}

void
vmm_vq_init (vmm_virtqueue *vq, const vmm_guest_memory *mem)
{
  memset (vq, 0, sizeof *vq);
  vq->mem = mem;
}

void
vmm_vq_reset (vmm_virtqueue *vq)
{
  vmm_vq_init (vq, vq->mem);
}

static uint8_t *
ring_ptr (const vmm_virtqueue *vq, uint64_t gpa, uint64_t len, uint64_t align,
          const char *what, GError **error)
{
  if (gpa & (align - 1))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s ring at 0x%" G_GINT64_MODIFIER "x is not %"
                   G_GUINT64_FORMAT "-byte aligned", what, gpa, align);
      return NULL;
    }
  uint8_t *p = vmm_guest_memory_ptr (vq->mem, gpa, len);
  if (!p)
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                 "%s ring [0x%" G_GINT64_MODIFIER "x, +%" G_GUINT64_FORMAT
                 ") is not in guest RAM", what, gpa, len);
  return p;
}

gboolean
vmm_vq_setup (vmm_virtqueue *vq, uint16_t size, uint64_t desc, uint64_t avail,
              uint64_t used, bool event_idx, uint16_t last_avail,
              uint16_t used_idx, GError **error)
{
  vmm_vq_reset (vq);
  if (size == 0 || size > VIRTQ_MAX_SIZE || (size & (size - 1)))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "queue size %u is not a power of two up to %u", size,
                   VIRTQ_MAX_SIZE);
      return FALSE;
    }
  uint8_t *d = ring_ptr (vq, desc, VMM_VQ_DESC_BYTES (size), VIRTQ_ALIGN_DESC,
                         "descriptor", error);
  if (!d)
    return FALSE;
  uint8_t *a = ring_ptr (vq, avail, VMM_VQ_AVAIL_BYTES (size),
                         VIRTQ_ALIGN_AVAIL, "available", error);
  if (!a)
    return FALSE;
  uint8_t *u = ring_ptr (vq, used, VMM_VQ_USED_BYTES (size), VIRTQ_ALIGN_USED,
                         "used", error);
  if (!u)
    return FALSE;
  vq->size = size;
  vq->desc_gpa = desc;
  vq->avail_gpa = avail;
  vq->used_gpa = used;
  vq->desc = d;
  vq->avail = a;
  vq->used = u;
  vq->event_idx = event_idx;
  vq->last_avail = last_avail;
  vq->used_idx = used_idx;
  vq->ready = true;
  return TRUE;
}

int
vmm_vq_pop (vmm_virtqueue *vq, uint16_t *head, GError **error)
{
  if (!vq->ready)
    return 0;
  uint16_t avail_idx = ld16_acquire (vq->avail + 2);
  uint16_t pending = (uint16_t) (avail_idx - vq->last_avail);
  if (pending == 0)
    return 0;
  if (pending > vq->size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "available index moved from %u to %u, more than the "
                   "queue size %u", vq->last_avail, avail_idx, vq->size);
      return -1;
    }
  unsigned slot = vq->last_avail & (vq->size - 1);
  uint16_t h = ld16_relaxed (vq->avail + 4 + 2 * slot);
  if (h >= vq->size)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "available ring names head %u of a %u-entry queue", h,
                   vq->size);
      return -1;
    }
  vq->last_avail++;
  *head = h;
  return 1;
}

bool
vmm_vq_has_avail (vmm_virtqueue *vq)
{
  if (!vq->ready)
    return false;
  return ld16_acquire (vq->avail + 2) != vq->last_avail;
}

void
vmm_vq_chain_init (vmm_vq_chain *it, const vmm_virtqueue *vq, uint16_t head)
{
  *it = (vmm_vq_chain){
    .vq = vq,
    .table = vq->desc,
    .table_len = vq->size,
    .idx = head,
    .done = !vq->ready,
  };
}

static int
chain_fail (vmm_vq_chain *it, GError **error, const char *fmt, ...)
    G_GNUC_PRINTF (3, 4);

static int
chain_fail (vmm_vq_chain *it, GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  it->done = true;
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA, "%s%s",
               it->indirect ? "indirect table: " : "", msg);
  return -1;
}

int
vmm_vq_chain_next (vmm_vq_chain *it, vmm_vq_seg *seg, GError **error)
{
  for (;;)
    {
      if (it->done)
        return 0;
      if (it->idx >= it->table_len)
        return chain_fail (it, error, "descriptor %u is out of range (%u)",
                           it->idx, it->table_len);
      if (++it->hops > it->table_len)
        return chain_fail (it, error, "descriptor chain loops (more than %u "
                           "descriptors)", it->table_len);
      /* One copy of the descriptor: the guest may change it meanwhile. */
      uint8_t d[VIRTQ_DESC_SIZE];
      memcpy (d, it->table + (size_t) it->idx * VIRTQ_DESC_SIZE, sizeof d);
      uint64_t addr = ld64 (d);
      uint32_t len = ld32 (d + 8);
      uint16_t flags = ld16 (d + 12);
      uint16_t next = ld16 (d + 14);

      if (flags & VIRTQ_DESC_F_INDIRECT)
        {
          if (it->indirect)
            return chain_fail (it, error, "nested indirect descriptor");
          if (flags & VIRTQ_DESC_F_NEXT)
            return chain_fail (it, error,
                               "indirect descriptor %u also has NEXT",
                               it->idx);
          if (len == 0 || len % VIRTQ_DESC_SIZE
              || len / VIRTQ_DESC_SIZE > VIRTQ_MAX_SIZE)
            return chain_fail (it, error, "indirect table of %u bytes", len);
          const uint8_t *t = vmm_guest_memory_ptr (it->vq->mem, addr, len);
          if (!t)
            return chain_fail (it, error,
                               "indirect table [0x%" G_GINT64_MODIFIER
                               "x, +%u) is not in guest RAM", addr, len);
          /* The device ignores WRITE on the indirect descriptor itself
           * (2.7.5.3.2). */
          it->table = t;
          it->table_len = len / VIRTQ_DESC_SIZE;
          it->idx = 0;
          it->hops = 0;
          it->indirect = true;
          continue;
        }

      if (flags & VIRTQ_DESC_F_NEXT)
        it->idx = next;
      else
        it->done = true;
      bool writable = flags & VIRTQ_DESC_F_WRITE;
      if (!writable && it->seen_writable)
        return chain_fail (it, error,
                           "device-readable descriptor after a writable one");
      it->seen_writable |= writable;
      if (len == 0)
        continue;
      void *p = vmm_guest_memory_ptr (it->vq->mem, addr, len);
      if (!p)
        return chain_fail (it, error,
                           "buffer [0x%" G_GINT64_MODIFIER
                           "x, +%u) is not in guest RAM", addr, len);
      *seg = (vmm_vq_seg){ p, addr, len, writable };
      return 1;
    }
}

gboolean
vmm_vq_chain_collect (const vmm_virtqueue *vq, uint16_t head, GArray *segs,
                      GError **error)
{
  vmm_vq_chain it;
  vmm_vq_seg seg;
  int r;
  vmm_vq_chain_init (&it, vq, head);
  while ((r = vmm_vq_chain_next (&it, &seg, error)) > 0)
    g_array_append_val (segs, seg);
  return r == 0;
}

void
vmm_vq_push (vmm_virtqueue *vq, uint16_t head, uint32_t written)
{
  if (!vq->ready)
    return;
  uint8_t *elem = vq->used + 4 + 8 * (size_t) (vq->used_idx & (vq->size - 1));
  st32 (elem, head);
  st32 (elem + 4, written);
  vq->used_idx++;
  st16_release (vq->used + 2, vq->used_idx);
}

void
vmm_vq_push_batch (vmm_virtqueue *vq, const uint16_t *heads,
                   const uint32_t *written, unsigned n)
{
  if (!vq->ready)
    return;
  for (unsigned i = 0; i < n; i++)
    {
      uint8_t *elem = vq->used + 4 + 8 * (size_t) ((vq->used_idx + i)
                                                   & (vq->size - 1));
      st32 (elem, heads[i]);
      st32 (elem + 4, written[i]);
    }
  vq->used_idx += (uint16_t) n;
  st16_release (vq->used + 2, vq->used_idx);
}

bool
vmm_vq_should_interrupt (vmm_virtqueue *vq)
{
  if (!vq->ready)
    return false;
  /* Our used->idx store must be visible before we read the driver's
   * suppression fields, or both sides could decide not to act. */
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
  if (!vq->event_idx)
    return !(ld16_relaxed (vq->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
  uint16_t old = vq->signalled_used;
  bool valid = vq->signalled_used_valid;
  uint16_t used_event = ld16_relaxed (vq->avail + 4 + 2 * (size_t) vq->size);
  vq->signalled_used = vq->used_idx;
  vq->signalled_used_valid = true;
  if (!valid)
    return true;
  return vmm_vq_need_event (used_event, vq->used_idx, old);
}

void
vmm_vq_set_notify (vmm_virtqueue *vq, bool enable)
{
  if (!vq->ready)
    return;
  if (vq->event_idx)
    {
      if (enable)
        st16_relaxed (vq->used + 4 + 8 * (size_t) vq->size, vq->last_avail);
    }
  else
    {
      uint16_t flags = ld16_relaxed (vq->used);
      flags = enable ? flags & ~VIRTQ_USED_F_NO_NOTIFY
                     : flags | VIRTQ_USED_F_NO_NOTIFY;
      st16_relaxed (vq->used, flags);
    }
  if (enable)
    __atomic_thread_fence (__ATOMIC_SEQ_CST);
}
