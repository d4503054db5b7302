/* Saved device state as plain little-endian bytes: a four-character tag and
 * a version, then the fields in the order the device lists them. Readers
 * check bounds on every field and report a truncated or malformed blob as a
 * GError; devices parse into a copy and commit only a fully valid state. */
#pragma once

#include <gio/gio.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

G_BEGIN_DECLS

#define VMM_STATE_TAG(a, b, c, d)                                              \
  ((uint32_t) (a) | (uint32_t) (b) << 8 | (uint32_t) (c) << 16                \
   | (uint32_t) (d) << 24)

static inline void
vmm_state_put_u8 (GByteArray *out, uint8_t v)
{
  g_byte_array_append (out, &v, 1);
}

static inline void
vmm_state_put_u16 (GByteArray *out, uint16_t v)
{
  uint8_t b[2] = { v & 0xff, v >> 8 };
  g_byte_array_append (out, b, 2);
}

static inline void
vmm_state_put_u32 (GByteArray *out, uint32_t v)
{
  uint8_t b[4];
  for (int i = 0; i < 4; i++)
    b[i] = (v >> (8 * i)) & 0xff;
  g_byte_array_append (out, b, 4);
}

static inline void
vmm_state_put_u64 (GByteArray *out, uint64_t v)
{
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (v >> (8 * i)) & 0xff;
  g_byte_array_append (out, b, 8);
}

static inline void
vmm_state_put_bool (GByteArray *out, bool v)
{
  vmm_state_put_u8 (out, v ? 1 : 0);
}

static inline void
vmm_state_put_bytes (GByteArray *out, const uint8_t *p, size_t n)
{
  g_byte_array_append (out, p, (guint) n);
}

static inline void
vmm_state_put_header (GByteArray *out, uint32_t tag, uint16_t version)
{
  vmm_state_put_u32 (out, tag);
  vmm_state_put_u16 (out, version);
}

typedef struct vmm_state_reader {
  const uint8_t *data;
  size_t len;
  size_t pos;
  bool bad;            /* ran past the end */
  const char *invalid; /* first field found out of range, or NULL */
} vmm_state_reader;

static inline const uint8_t *
vmm_state_take (vmm_state_reader *r, size_t n)
{
  if (r->bad || r->len - r->pos < n)
    {
      r->bad = true;
      return NULL;
    }
  const uint8_t *p = r->data + r->pos;
  r->pos += n;
  return p;
}

static inline uint8_t
vmm_state_get_u8 (vmm_state_reader *r)
{
  const uint8_t *p = vmm_state_take (r, 1);
  return p ? p[0] : 0;
}

static inline uint16_t
vmm_state_get_u16 (vmm_state_reader *r)
{
  const uint8_t *p = vmm_state_take (r, 2);
  return p ? (uint16_t) (p[0] | p[1] << 8) : 0;
}

static inline uint32_t
vmm_state_get_u32 (vmm_state_reader *r)
{
  const uint8_t *p = vmm_state_take (r, 4);
  uint32_t v = 0;
  for (int i = 0; p && i < 4; i++)
    v |= (uint32_t) p[i] << (8 * i);
  return v;
}

static inline uint64_t
vmm_state_get_u64 (vmm_state_reader *r)
{
  const uint8_t *p = vmm_state_take (r, 8);
  uint64_t v = 0;
  for (int i = 0; p && i < 8; i++)
    v |= (uint64_t) p[i] << (8 * i);
  return v;
}

/* A boolean must be stored as 0 or 1. */
static inline bool
vmm_state_get_bool (vmm_state_reader *r)
{
  uint8_t v = vmm_state_get_u8 (r);
  if (v > 1 && !r->invalid)
    r->invalid = "boolean";
  return v == 1;
}

static inline void
vmm_state_get_bytes (vmm_state_reader *r, uint8_t *dst, size_t n)
{
  const uint8_t *p = vmm_state_take (r, n);
  if (p)
    memcpy (dst, p, n);
  else
    memset (dst, 0, n);
}

/* Records @what as invalid unless @ok. */
static inline void
vmm_state_check (vmm_state_reader *r, bool ok, const char *what)
{
  if (!ok && !r->invalid)
    r->invalid = what;
}

static inline gboolean
vmm_state_begin (vmm_state_reader *r, const uint8_t *data, size_t len,
                 uint32_t tag, uint16_t version, const char *name,
                 GError **error)
{
  *r = (vmm_state_reader){ .data = data, .len = data ? len : 0 };
  uint32_t t = vmm_state_get_u32 (r);
  uint16_t v = vmm_state_get_u16 (r);
  if (r->bad || t != tag)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: saved state is not from this kind of device", name);
      return FALSE;
    }
  if (v != version)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "%s: saved state version %u is not supported (expected %u)",
                   name, v, version);
      return FALSE;
    }
  return TRUE;
}

static inline gboolean
vmm_state_end (vmm_state_reader *r, const char *name, GError **error)
{
  if (r->bad)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: saved state is truncated", name);
      return FALSE;
    }
  if (r->invalid)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: saved state has an invalid %s", name, r->invalid);
      return FALSE;
    }
  if (r->pos != r->len)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "%s: saved state has %zu unexpected trailing bytes", name,
                   r->len - r->pos);
      return FALSE;
    }
  return TRUE;
}

G_END_DECLS
