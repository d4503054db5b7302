/* Shared shapes for the PC board's legacy devices: the callbacks they make
 * to the board, and byte-wise handling of wide port accesses. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "vmm-core/bus/bus.h"

G_BEGIN_DECLS

typedef enum {
  /* Full platform reset: every device and every vCPU (0xCF9 with SYS_RST). */
  VMM_RESET_SYSTEM,
  /* The CPU's RESET/INIT line only (0xCF9 without SYS_RST, the keyboard
   * controller's pulse, port 0x92 bit 0). QEMU resets the whole machine for
   * these too, which is what firmware expects in practice. */
  VMM_RESET_CPU,
} vmm_reset_kind;

/* Board callbacks are made on the thread that handled the access, with the
 * calling device's lock held: record the request and act on it later (for
 * example from the run loop). Never call back into the device from them. */
typedef void (*vmm_reset_request_fn) (void *opaque, vmm_reset_kind kind);
typedef void (*vmm_a20_changed_fn) (void *opaque, bool enabled);

/* Wide accesses to byte-register devices: byte i of the access goes to
 * offset + i. */
static inline uint64_t
vmm_isa_read_bytes (uint8_t (*read_byte) (void *, unsigned), void *opaque,
                    const vmm_access *a)
{
  uint64_t v = 0;
  for (unsigned i = 0; i < a->size && i < 8; i++)
    v |= (uint64_t) read_byte (opaque, (unsigned) a->offset + i) << (8 * i);
  return v;
}

static inline void
vmm_isa_write_bytes (void (*write_byte) (void *, unsigned, uint8_t),
                     void *opaque, const vmm_access *a, uint64_t value)
{
  for (unsigned i = 0; i < a->size && i < 8; i++)
    write_byte (opaque, (unsigned) a->offset + i, (value >> (8 * i)) & 0xff);
}

G_END_DECLS
