/* Guest RAM as the host sees it: one allocation, split at the PCI hole.
 * Guest-physical [0, below_4g) maps to host[0, below_4g) and
 * [4 GiB, 4 GiB + above_4g) to host[below_4g, below_4g + above_4g). */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <string.h>

#define VMM_4G (UINT64_C (1) << 32)

typedef struct vmm_guest_memory {
  uint8_t *host;
  uint64_t size;     /* all RAM */
  uint64_t below_4g; /* RAM under the PCI hole */
  uint64_t above_4g;
} vmm_guest_memory;

/* Reserves @size bytes of guest RAM (untouched pages cost nothing). The PCI
 * hole starts at 3.5 GiB, or at 3 GiB for guests with more RAM than that
 * (as PC firmware and QEMU's i440FX board lay it out). */
gboolean vmm_guest_memory_init (vmm_guest_memory *mem, uint64_t size,
                                GError **error);
void vmm_guest_memory_clear (vmm_guest_memory *mem);

/* Host address of [gpa, gpa + len) if all of it is RAM, else NULL. This is
 * the one check every device DMA goes through. */
static inline void *
vmm_guest_memory_ptr (const vmm_guest_memory *mem, uint64_t gpa, uint64_t len)
{
  if (len > mem->size)
    return NULL;
  if (gpa < mem->below_4g)
    return len <= mem->below_4g - gpa ? mem->host + gpa : NULL;
  if (gpa >= VMM_4G && gpa - VMM_4G < mem->above_4g
      && len <= mem->above_4g - (gpa - VMM_4G))
    return mem->host + mem->below_4g + (gpa - VMM_4G);
  return NULL;
}

/* The same as a callback (for builders that take a gpa_to_host function). */
void *vmm_guest_memory_ptr_cb (void *mem, uint64_t gpa, size_t len);
