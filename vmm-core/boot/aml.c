/* AML emitter; see aml.h. Opcode values and encodings: ACPI 6.x, chapter 20
 * (AML specification) and section 6.4 (resource data types). */
#include "vmm-core/boot/aml.h"

#include <string.h>

/* Opcodes (ACPI 6.x, 20.3). */
enum {
  AML_ZERO_OP = 0x00,
  AML_ONE_OP = 0x01,
  AML_NAME_OP = 0x08,
  AML_BYTE_PREFIX = 0x0A,
  AML_WORD_PREFIX = 0x0B,
  AML_DWORD_PREFIX = 0x0C,
  AML_STRING_PREFIX = 0x0D,
  AML_QWORD_PREFIX = 0x0E,
  AML_SCOPE_OP = 0x10,
  AML_BUFFER_OP = 0x11,
  AML_PACKAGE_OP = 0x12,
  AML_METHOD_OP = 0x14,
  AML_DUAL_NAME_PREFIX = 0x2E,
  AML_MULTI_NAME_PREFIX = 0x2F,
  AML_EXT_OP_PREFIX = 0x5B,
  AML_EXT_DEVICE_OP = 0x82,
  AML_ROOT_CHAR = 0x5C,
  AML_PARENT_PREFIX = 0x5E,
  AML_LOCAL0_OP = 0x60,
  AML_ARG0_OP = 0x68,
  AML_STORE_OP = 0x70,
  AML_LEQUAL_OP = 0x93,
  AML_IF_OP = 0xA0,
  AML_ELSE_OP = 0xA1,
  AML_RETURN_OP = 0xA4,
  AML_ONES_OP = 0xFF,
};

/* Resource descriptor tags (ACPI 6.x, 6.4.2 and 6.4.3). */
enum {
  RES_IRQ_NOFLAGS = 0x22,          /* small, type 0x04, length 2 */
  RES_IO = 0x47,                   /* small, type 0x08, length 7 */
  RES_END_TAG = 0x79,              /* small, type 0x0F, length 1 */
  RES_MEMORY32_FIXED = 0x86,       /* large, length 9 */
  RES_DWORD_ADDRESS = 0x87,        /* large, length 23 */
  RES_WORD_ADDRESS = 0x88,         /* large, length 13 */
  RES_QWORD_ADDRESS = 0x8A,        /* large, length 43 */
};

/* Address space descriptor fields. */
enum {
  RES_TYPE_MEMORY = 0,
  RES_TYPE_IO = 1,
  RES_TYPE_BUS = 2,
  RES_GFLAG_MIN_FIXED = 1 << 2,
  RES_GFLAG_MAX_FIXED = 1 << 3,
  RES_IO_RANGE_ENTIRE = 3,
  RES_MEM_WRITABLE = 1 << 0,
};

#define AML_PKGLENGTH_LIMIT (1u << 28)

typedef enum {
  AML_RAW,        /* bytes only */
  AML_PKG,        /* op PkgLength head body */
  AML_PACKAGE,    /* PackageOp PkgLength NumElements body */
  AML_BUFFER,     /* BufferOp PkgLength BufferSize body */
  AML_RESOURCES,  /* a buffer whose body ends with an End Tag */
} aml_kind;

struct vmm_aml {
  aml_kind kind;
  GByteArray *op;    /* before the PkgLength */
  GByteArray *head;  /* after the PkgLength, before the children */
  GByteArray *body;  /* children */
  unsigned count;    /* children appended */
};

static vmm_aml *
aml_new (aml_kind kind)
{
  vmm_aml *aml = g_new0 (vmm_aml, 1);

  aml->kind = kind;
  aml->op = g_byte_array_new ();
  aml->head = g_byte_array_new ();
  aml->body = g_byte_array_new ();
  return aml;
}

void
vmm_aml_free (vmm_aml *aml)
{
  if (!aml)
    return;
  g_byte_array_unref (aml->op);
  g_byte_array_unref (aml->head);
  g_byte_array_unref (aml->body);
  g_free (aml);
}

static void
put8 (GByteArray *b, uint8_t v)
{
  g_byte_array_append (b, &v, 1);
}

static void
put16 (GByteArray *b, uint16_t v)
{
  uint8_t le[2] = { v & 0xff, v >> 8 };
  g_byte_array_append (b, le, 2);
}

static void
put32 (GByteArray *b, uint32_t v)
{
  put16 (b, v & 0xffff);
  put16 (b, v >> 16);
}

static void
put64 (GByteArray *b, uint64_t v)
{
  put32 (b, v & 0xffffffffu);
  put32 (b, v >> 32);
}

unsigned
vmm_aml_encode_pkglength (size_t content_len, uint8_t out[4])
{
  /* The length counts the PkgLength bytes themselves. One byte holds six
   * bits; with n following bytes the lead byte holds four bits and each
   * following byte eight more. */
  if (content_len + 1 <= 0x3f)
    {
      out[0] = (uint8_t) (content_len + 1);
      return 1;
    }
  for (unsigned extra = 1; extra <= 3; extra++)
    {
      size_t total = content_len + 1 + extra;
      if (total < ((size_t) 1 << (4 + 8 * extra)))
        {
          out[0] = (uint8_t) ((extra << 6) | (total & 0x0f));
          for (unsigned i = 0; i < extra; i++)
            out[1 + i] = (uint8_t) (total >> (4 + 8 * i));
          return 1 + extra;
        }
    }
  return 0;
}

static void
put_pkglength (GByteArray *b, size_t content_len)
{
  uint8_t enc[4];
  unsigned n = vmm_aml_encode_pkglength (content_len, enc);

  g_assert (n > 0);
  g_byte_array_append (b, enc, n);
}

static void
put_int (GByteArray *b, uint64_t v)
{
  if (v == 0)
    put8 (b, AML_ZERO_OP);
  else if (v == 1)
    put8 (b, AML_ONE_OP);
  else if (v == UINT64_MAX)
    put8 (b, AML_ONES_OP);
  else if (v <= 0xff)
    {
      put8 (b, AML_BYTE_PREFIX);
      put8 (b, v);
    }
  else if (v <= 0xffff)
    {
      put8 (b, AML_WORD_PREFIX);
      put16 (b, v);
    }
  else if (v <= 0xffffffffu)
    {
      put8 (b, AML_DWORD_PREFIX);
      put32 (b, v);
    }
  else
    {
      put8 (b, AML_QWORD_PREFIX);
      put64 (b, v);
    }
}

static bool
name_char_ok (char c, bool lead)
{
  if ((c >= 'A' && c <= 'Z') || c == '_')
    return true;
  return !lead && c >= '0' && c <= '9';
}

/* NameString (20.2.2): optional root or parent prefixes, then zero, one,
 * two (DualNamePrefix) or more (MultiNamePrefix) 4-character segments;
 * short segments are padded with '_'. */
static void
put_name_string (GByteArray *b, const char *path)
{
  const char *p = path;
  g_auto (GStrv) segs = NULL;
  guint nsegs;

  if (*p == '\\')
    {
      put8 (b, AML_ROOT_CHAR);
      p++;
    }
  else
    {
      while (*p == '^')
        {
          put8 (b, AML_PARENT_PREFIX);
          p++;
        }
    }

  if (*p == '\0')
    {
      put8 (b, 0x00);                  /* NullName */
      return;
    }

  segs = g_strsplit (p, ".", -1);
  nsegs = g_strv_length (segs);
  g_assert (nsegs <= 255);
  if (nsegs == 2)
    put8 (b, AML_DUAL_NAME_PREFIX);
  else if (nsegs > 2)
    {
      put8 (b, AML_MULTI_NAME_PREFIX);
      put8 (b, (uint8_t) nsegs);
    }
  for (guint i = 0; i < nsegs; i++)
    {
      size_t len = strlen (segs[i]);
      uint8_t seg[4] = { '_', '_', '_', '_' };

      g_assert (len >= 1 && len <= 4);
      for (size_t j = 0; j < len; j++)
        {
          g_assert (name_char_ok (segs[i][j], j == 0));
          seg[j] = (uint8_t) segs[i][j];
        }
      g_byte_array_append (b, seg, 4);
    }
}

static void
aml_encode (const vmm_aml *aml, GByteArray *out)
{
  switch (aml->kind)
    {
    case AML_RAW:
      g_byte_array_append (out, aml->body->data, aml->body->len);
      break;

    case AML_PKG:
      g_byte_array_append (out, aml->op->data, aml->op->len);
      put_pkglength (out, aml->head->len + aml->body->len);
      g_byte_array_append (out, aml->head->data, aml->head->len);
      g_byte_array_append (out, aml->body->data, aml->body->len);
      break;

    case AML_PACKAGE:
      g_assert (aml->count <= 255);
      put8 (out, AML_PACKAGE_OP);
      put_pkglength (out, 1 + aml->body->len);
      put8 (out, (uint8_t) aml->count);
      g_byte_array_append (out, aml->body->data, aml->body->len);
      break;

    case AML_BUFFER:
    case AML_RESOURCES:
      {
        g_autoptr (GByteArray) content = g_byte_array_new ();
        size_t size = aml->body->len + (aml->kind == AML_RESOURCES ? 2 : 0);

        put_int (content, size);
        g_byte_array_append (content, aml->body->data, aml->body->len);
        if (aml->kind == AML_RESOURCES)
          {
            /* End Tag; a zero checksum means "treat as valid" (6.4.2.9). */
            put8 (content, RES_END_TAG);
            put8 (content, 0x00);
          }
        put8 (out, AML_BUFFER_OP);
        put_pkglength (out, content->len);
        g_byte_array_append (out, content->data, content->len);
      }
      break;
    }
}

void
vmm_aml_append (vmm_aml *parent, vmm_aml *child)
{
  g_return_if_fail (parent != NULL && child != NULL);

  aml_encode (child, parent->body);
  parent->count++;
  vmm_aml_free (child);
}

GByteArray *
vmm_aml_finish (vmm_aml *aml)
{
  GByteArray *out = g_byte_array_new ();

  aml_encode (aml, out);
  vmm_aml_free (aml);
  return out;
}

vmm_aml *
vmm_aml_block (void)
{
  return aml_new (AML_RAW);
}

vmm_aml *
vmm_aml_int (uint64_t value)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put_int (aml->body, value);
  return aml;
}

vmm_aml *
vmm_aml_string (const char *s)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put8 (aml->body, AML_STRING_PREFIX);
  for (const char *p = s; *p; p++)
    {
      g_assert ((unsigned char) *p >= 0x01 && (unsigned char) *p <= 0x7f);
      put8 (aml->body, (uint8_t) *p);
    }
  put8 (aml->body, 0x00);
  return aml;
}

/* EISAID (19.6.35): three letters, five bits each ('A' = 1), then four hex
 * digits, stored big-endian in a DWord. */
vmm_aml *
vmm_aml_eisaid (const char *id)
{
  uint32_t v = 0;

  g_assert (strlen (id) == 7);
  for (int i = 0; i < 3; i++)
    {
      g_assert (id[i] >= 'A' && id[i] <= 'Z');
      v |= (uint32_t) (id[i] - 0x40) << (26 - 5 * i);
    }
  for (int i = 3; i < 7; i++)
    {
      g_assert (g_ascii_isxdigit (id[i]));
      v |= (uint32_t) g_ascii_xdigit_value (id[i]) << (4 * (6 - i));
    }
  return vmm_aml_int (GUINT32_SWAP_LE_BE (v));
}

vmm_aml *
vmm_aml_name_string (const char *path)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put_name_string (aml->body, path);
  return aml;
}

vmm_aml *
vmm_aml_package (void)
{
  return aml_new (AML_PACKAGE);
}

vmm_aml *
vmm_aml_buffer (const uint8_t *data, size_t len)
{
  vmm_aml *aml = aml_new (AML_BUFFER);

  if (len)
    g_byte_array_append (aml->body, data, len);
  return aml;
}

vmm_aml *
vmm_aml_name (const char *name, vmm_aml *value)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put8 (aml->body, AML_NAME_OP);
  put_name_string (aml->body, name);
  aml_encode (value, aml->body);
  vmm_aml_free (value);
  return aml;
}

vmm_aml *
vmm_aml_scope (const char *name)
{
  vmm_aml *aml = aml_new (AML_PKG);

  put8 (aml->op, AML_SCOPE_OP);
  put_name_string (aml->head, name);
  return aml;
}

vmm_aml *
vmm_aml_device (const char *name)
{
  vmm_aml *aml = aml_new (AML_PKG);

  put8 (aml->op, AML_EXT_OP_PREFIX);
  put8 (aml->op, AML_EXT_DEVICE_OP);
  put_name_string (aml->head, name);
  return aml;
}

vmm_aml *
vmm_aml_method (const char *name, unsigned nargs, bool serialized)
{
  vmm_aml *aml = aml_new (AML_PKG);

  g_assert (nargs <= 7);
  put8 (aml->op, AML_METHOD_OP);
  put_name_string (aml->head, name);
  /* MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel. */
  put8 (aml->head, (uint8_t) (nargs | (serialized ? 0x08 : 0)));
  return aml;
}

vmm_aml *
vmm_aml_if (vmm_aml *predicate)
{
  vmm_aml *aml = aml_new (AML_PKG);

  put8 (aml->op, AML_IF_OP);
  aml_encode (predicate, aml->head);
  vmm_aml_free (predicate);
  return aml;
}

vmm_aml *
vmm_aml_else (void)
{
  vmm_aml *aml = aml_new (AML_PKG);

  put8 (aml->op, AML_ELSE_OP);
  return aml;
}

static vmm_aml *
aml_op_with (uint8_t op, vmm_aml *a, vmm_aml *b)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put8 (aml->body, op);
  aml_encode (a, aml->body);
  vmm_aml_free (a);
  if (b)
    {
      aml_encode (b, aml->body);
      vmm_aml_free (b);
    }
  return aml;
}

vmm_aml *
vmm_aml_return (vmm_aml *value)
{
  return aml_op_with (AML_RETURN_OP, value, NULL);
}

vmm_aml *
vmm_aml_store (vmm_aml *src, vmm_aml *dst)
{
  return aml_op_with (AML_STORE_OP, src, dst);
}

vmm_aml *
vmm_aml_lequal (vmm_aml *a, vmm_aml *b)
{
  return aml_op_with (AML_LEQUAL_OP, a, b);
}

vmm_aml *
vmm_aml_arg (unsigned n)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (n <= 6);
  put8 (aml->body, (uint8_t) (AML_ARG0_OP + n));
  return aml;
}

vmm_aml *
vmm_aml_local (unsigned n)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (n <= 7);
  put8 (aml->body, (uint8_t) (AML_LOCAL0_OP + n));
  return aml;
}

vmm_aml *
vmm_aml_resource_template (void)
{
  return aml_new (AML_RESOURCES);
}

/* 6.4.2.5 I/O Port Descriptor. */
vmm_aml *
vmm_aml_io (uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put8 (aml->body, RES_IO);
  put8 (aml->body, 0x01);              /* decodes 16 address bits */
  put16 (aml->body, min);
  put16 (aml->body, max);
  put8 (aml->body, align);
  put8 (aml->body, len);
  return aml;
}

/* 6.4.2.1 IRQ Descriptor, 2-byte form: edge, active high. */
vmm_aml *
vmm_aml_irq_noflags (unsigned irq)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (irq < 16);
  put8 (aml->body, RES_IRQ_NOFLAGS);
  put16 (aml->body, (uint16_t) (1u << irq));
  return aml;
}

/* 6.4.3.4 32-Bit Fixed Memory Range Descriptor. */
vmm_aml *
vmm_aml_memory32_fixed (uint32_t base, uint32_t len, bool writable)
{
  vmm_aml *aml = aml_new (AML_RAW);

  put8 (aml->body, RES_MEMORY32_FIXED);
  put16 (aml->body, 9);
  put8 (aml->body, writable ? 1 : 0);
  put32 (aml->body, base);
  put32 (aml->body, len);
  return aml;
}

static uint8_t
general_flags (vmm_aml_usage usage)
{
  return (uint8_t) (usage | RES_GFLAG_MIN_FIXED | RES_GFLAG_MAX_FIXED);
}

/* 6.4.3.5.3 Word Address Space Descriptor, bus number range. */
vmm_aml *
vmm_aml_word_bus_number (vmm_aml_usage usage, uint16_t min, uint16_t max)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (min <= max);
  put8 (aml->body, RES_WORD_ADDRESS);
  put16 (aml->body, 13);
  put8 (aml->body, RES_TYPE_BUS);
  put8 (aml->body, general_flags (usage));
  put8 (aml->body, 0);                 /* type-specific flags */
  put16 (aml->body, 0);                /* granularity */
  put16 (aml->body, min);
  put16 (aml->body, max);
  put16 (aml->body, 0);                /* translation offset */
  put16 (aml->body, (uint16_t) (max - min + 1));
  return aml;
}

/* 6.4.3.5.2 DWord Address Space Descriptor. */
static vmm_aml *
dword_address (uint8_t type, vmm_aml_usage usage, uint8_t type_flags,
               uint32_t min, uint32_t max)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (min <= max);
  put8 (aml->body, RES_DWORD_ADDRESS);
  put16 (aml->body, 23);
  put8 (aml->body, type);
  put8 (aml->body, general_flags (usage));
  put8 (aml->body, type_flags);
  put32 (aml->body, 0);                /* granularity */
  put32 (aml->body, min);
  put32 (aml->body, max);
  put32 (aml->body, 0);                /* translation offset */
  put32 (aml->body, max - min + 1);
  return aml;
}

vmm_aml *
vmm_aml_dword_io (vmm_aml_usage usage, uint32_t min, uint32_t max)
{
  return dword_address (RES_TYPE_IO, usage, RES_IO_RANGE_ENTIRE, min, max);
}

vmm_aml *
vmm_aml_dword_memory (vmm_aml_usage usage, vmm_aml_cacheability cache,
                      bool writable, uint32_t min, uint32_t max)
{
  uint8_t flags = (uint8_t) ((writable ? RES_MEM_WRITABLE : 0) | (cache << 1));

  return dword_address (RES_TYPE_MEMORY, usage, flags, min, max);
}

/* 6.4.3.5.1 QWord Address Space Descriptor. */
vmm_aml *
vmm_aml_qword_memory (vmm_aml_usage usage, vmm_aml_cacheability cache,
                      bool writable, uint64_t min, uint64_t max)
{
  vmm_aml *aml = aml_new (AML_RAW);

  g_assert (min <= max);
  put8 (aml->body, RES_QWORD_ADDRESS);
  put16 (aml->body, 43);
  put8 (aml->body, RES_TYPE_MEMORY);
  put8 (aml->body, general_flags (usage));
  put8 (aml->body, (uint8_t) ((writable ? RES_MEM_WRITABLE : 0) | (cache << 1)));
  put64 (aml->body, 0);                /* granularity */
  put64 (aml->body, min);
  put64 (aml->body, max);
  put64 (aml->body, 0);                /* translation offset */
  put64 (aml->body, max - min + 1);
  return aml;
}
