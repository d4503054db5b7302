/* Split virtqueues (virtio 1.2, 2.7): the device's side of the rings and the
 * one descriptor-chain iterator every virtio device uses.
 *
 * Every guest address goes through vmm_guest_memory_ptr(): ring addresses
 * when the queue is set up, each buffer and indirect table as the iterator
 * reaches it. Descriptors are copied out of guest memory once before they
 * are looked at, so a guest changing them under our feet cannot make a
 * checked value differ from a used one.
 *
 * A malformed chain (index out of range, loop, nested indirect, indirect
 * table of a bad size, buffer outside RAM, readable after writable) is
 * reported as a GError; the device decides between failing the request and
 * DEVICE_NEEDS_RESET, and logs one line.
 *
 * Not thread-safe: the owner's lock guards a queue. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm-core/devices/virtio.h"
#include "vmm-core/kvm/memory.h"

G_BEGIN_DECLS

typedef struct vmm_virtqueue {
  const vmm_guest_memory *mem;
  bool ready; /* rings validated; the device may use the queue */
  bool event_idx;
  uint16_t size;
  uint64_t desc_gpa;
  uint64_t avail_gpa;
  uint64_t used_gpa;
  /* Host views of the rings, valid while ready. */
  uint8_t *desc;
  uint8_t *avail;
  uint8_t *used;
  uint16_t last_avail;     /* next avail entry the device will take */
  uint16_t used_idx;       /* the device's copy of used->idx */
  uint16_t signalled_used; /* used_idx at the last interrupt (EVENT_IDX) */
  bool signalled_used_valid;
} vmm_virtqueue;

/* Bytes each ring part takes for @size entries, event fields included. */
#define VMM_VQ_DESC_BYTES(size) ((uint64_t) (size) * VIRTQ_DESC_SIZE)
#define VMM_VQ_AVAIL_BYTES(size) (6 + 2 * (uint64_t) (size))
#define VMM_VQ_USED_BYTES(size) (6 + 8 * (uint64_t) (size))

void vmm_vq_init (vmm_virtqueue *vq, const vmm_guest_memory *mem);
/* Not ready, every field back to zero. */
void vmm_vq_reset (vmm_virtqueue *vq);

/* Checks @size (a power of two, 1..VIRTQ_MAX_SIZE), the alignment of the
 * three rings and that each lies in RAM; on success the queue is ready with
 * the given indices (0 for a fresh queue, saved ones on load). */
gboolean vmm_vq_setup (vmm_virtqueue *vq, uint16_t size, uint64_t desc,
                       uint64_t avail, uint64_t used, bool event_idx,
                       uint16_t last_avail, uint16_t used_idx,
                       GError **error);

/* The next available chain's head: 1 with *head set, 0 when the ring is
 * empty, -1 with @error when the driver's avail index or head is bogus. */
int vmm_vq_pop (vmm_virtqueue *vq, uint16_t *head, GError **error);
/* Anything the device has not taken yet (after an acquire fence). */
bool vmm_vq_has_avail (vmm_virtqueue *vq);

/* One buffer of a chain: @len bytes at guest @gpa, all of them RAM, seen
 * from the host at @host. */
typedef struct vmm_vq_seg {
  void *host;
  uint64_t gpa;
  uint32_t len;
  bool writable;
} vmm_vq_seg;

typedef struct vmm_vq_chain {
  const vmm_virtqueue *vq;
  const uint8_t *table; /* the ring's descriptor table or an indirect one */
  uint32_t table_len;   /* entries */
  uint32_t idx;         /* next descriptor to read */
  uint32_t hops;        /* descriptors read from this table */
  bool done;
  bool indirect;
  bool seen_writable;
} vmm_vq_chain;

void vmm_vq_chain_init (vmm_vq_chain *it, const vmm_virtqueue *vq,
                        uint16_t head);
/* 1 with *seg filled, 0 at the end of the chain, -1 with @error. Zero-length
 * descriptors are followed but not yielded. */
int vmm_vq_chain_next (vmm_vq_chain *it, vmm_vq_seg *seg, GError **error);
/* The whole chain into @segs (an array of vmm_vq_seg), appended. */
gboolean vmm_vq_chain_collect (const vmm_virtqueue *vq, uint16_t head,
                               GArray *segs, GError **error);

/* Returns a chain to the driver with @written bytes written into it. */
void vmm_vq_push (vmm_virtqueue *vq, uint16_t head, uint32_t written);
/* Returns @n chains at once: the driver sees all of them or none (one
 * used->idx store), as mergeable receive buffers need. */
void vmm_vq_push_batch (vmm_virtqueue *vq, const uint16_t *heads,
                        const uint32_t *written, unsigned n);
/* After one or more pushes: whether the driver wants an interrupt now
 * (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX). */
bool vmm_vq_should_interrupt (vmm_virtqueue *vq);
/* Asks the driver to notify (or not) on new buffers: VIRTQ_USED_F_NO_NOTIFY,
 * or avail_event with EVENT_IDX. After enabling, re-check has_avail. */
void vmm_vq_set_notify (vmm_virtqueue *vq, bool enable);

/* The EVENT_IDX test (2.7.10): did [old, new) step over @event? */
static inline bool
vmm_vq_need_event (uint16_t event, uint16_t new_idx, uint16_t old)
{
  return (uint16_t) (new_idx - event - 1) < (uint16_t) (new_idx - old);
}

G_END_DECLS
