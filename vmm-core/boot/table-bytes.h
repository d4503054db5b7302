/* Little-endian field stores into a growing table image, and the byte sum
 * that ACPI and SMBIOS checksums are built from. Shared by acpi.c and
 * smbios.c. */
#pragma once

#include <glib.h>
#include <stdint.h>

static inline void
set8 (GByteArray *b, size_t off, uint8_t v)
{
  b->data[off] = v;
}

static inline void
set16 (GByteArray *b, size_t off, uint16_t v)
{
  b->data[off] = v & 0xff;
  b->data[off + 1] = v >> 8;
}

static inline void
set32 (GByteArray *b, size_t off, uint32_t v)
{
  set16 (b, off, v & 0xffff);
  set16 (b, off + 2, v >> 16);
}

static inline void
set64 (GByteArray *b, size_t off, uint64_t v)
{
  set32 (b, off, v & 0xffffffffu);
  set32 (b, off + 4, v >> 32);
}

static inline uint8_t
byte_sum (const uint8_t *p, size_t len)
{
  uint8_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum += p[i];
  return sum;
}
