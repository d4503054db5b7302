/* A bzImage carries its kernel compressed (setup header payload_offset and
 * payload_length, boot protocol 2.08+), and the kernel decompresses itself
 * before it does anything else. Where the guest's CPL0 code runs slowly (an
 * emulated or nested CPU) that takes minutes; on any host it costs a
 * noticeable part of the boot. Vessel decompresses on the host instead and,
 * when the result is an ELF vmlinux with a PVH entry note (CONFIG_PVH),
 * enters it there directly. Formats: gzip, xz, zstd. */
#include "vmm-core/boot/direct-boot.h"

#include <gio/gio.h>
#include <lzma.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#define LX_PAYLOAD_OFFSET 0x248
#define LX_PAYLOAD_LENGTH 0x24c
#define LX_VERSION 0x206
#define LX_SETUP_SECTS 0x1f1
/* No x86 kernel image comes close; a bound for a hostile file. */
#define PAYLOAD_MAX_OUTPUT (UINT64_C (1) << 30)

static GBytes *
inflate_gzip (const uint8_t *in, size_t len, GError **error)
{
  z_stream z = { 0 };
  if (inflateInit2 (&z, 16 + MAX_WBITS) != Z_OK)
    return NULL;
  GByteArray *out = g_byte_array_sized_new (len * 4);
  z.next_in = (Bytef *) in;
  z.avail_in = (uInt) len;
  int r;
  do
    {
      g_byte_array_set_size (out, out->len + (1u << 20));
      z.next_out = out->data + z.total_out;
      z.avail_out = 1u << 20;
      r = inflate (&z, Z_NO_FLUSH);
      g_byte_array_set_size (out, (guint) z.total_out);
    }
  while (r == Z_OK && z.total_out < PAYLOAD_MAX_OUTPUT);
  inflateEnd (&z);
  if (r != Z_STREAM_END)
    {
      g_byte_array_unref (out);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the kernel's gzip payload is damaged");
      return NULL;
    }
  return g_byte_array_free_to_bytes (out);
}

static GBytes *
inflate_xz (const uint8_t *in, size_t len, GError **error)
{
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder (&s, PAYLOAD_MAX_OUTPUT, 0) != LZMA_OK)
    return NULL;
  GByteArray *out = g_byte_array_sized_new (len * 4);
  s.next_in = in;
  s.avail_in = len;
  lzma_ret r;
  do
    {
      g_byte_array_set_size (out, out->len + (4u << 20));
      s.next_out = out->data + s.total_out;
      s.avail_out = 4u << 20;
      r = lzma_code (&s, LZMA_FINISH);
      g_byte_array_set_size (out, (guint) s.total_out);
    }
  while (r == LZMA_OK && s.total_out < PAYLOAD_MAX_OUTPUT);
  lzma_end (&s);
  if (r != LZMA_STREAM_END)
    {
      g_byte_array_unref (out);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the kernel's xz payload is damaged");
      return NULL;
    }
  return g_byte_array_free_to_bytes (out);
}

static GBytes *
inflate_zstd (const uint8_t *in, size_t len, GError **error)
{
  ZSTD_DStream *z = ZSTD_createDStream ();
  if (!z)
    return NULL;
  GByteArray *out = g_byte_array_sized_new (len * 4);
  ZSTD_inBuffer ib = { in, len, 0 };
  size_t r = 1;
  while (r != 0 && !ZSTD_isError (r) && out->len < PAYLOAD_MAX_OUTPUT)
    {
      size_t at = out->len;
      g_byte_array_set_size (out, out->len + (4u << 20));
      ZSTD_outBuffer ob = { out->data + at, 4u << 20, 0 };
      r = ZSTD_decompressStream (z, &ob, &ib);
      g_byte_array_set_size (out, (guint) (at + ob.pos));
      if (ib.pos == ib.size && ob.pos == 0 && r != 0)
        break; /* truncated */
    }
  ZSTD_freeDStream (z);
  if (r != 0)
    {
      g_byte_array_unref (out);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the kernel's zstd payload is damaged");
      return NULL;
    }
  return g_byte_array_free_to_bytes (out);
}

GBytes *
vmm_boot_linux_payload (const uint8_t *kernel, size_t len, GError **error)
{
  if (!vmm_boot_is_bzimage (kernel, len))
    return NULL;
  uint16_t version;
  uint32_t off, plen;
  memcpy (&version, kernel + LX_VERSION, 2);
  memcpy (&off, kernel + LX_PAYLOAD_OFFSET, 4);
  memcpy (&plen, kernel + LX_PAYLOAD_LENGTH, 4);
  version = GUINT16_FROM_LE (version);
  off = GUINT32_FROM_LE (off);
  plen = GUINT32_FROM_LE (plen);
  if (version < 0x0208)
    return NULL;
  size_t setup = (size_t) ((kernel[LX_SETUP_SECTS] ? kernel[LX_SETUP_SECTS]
                                                   : 4)
                           + 1)
                 * 512;
  /* Fields that do not describe a payload inside the file: leave the
   * kernel to its own decompressor, which does not use them. */
  if (setup > len || off > len - setup || plen > len - setup - off || plen < 6)
    return NULL;
  const uint8_t *p = kernel + setup + off;
  static const uint8_t gz[] = { 0x1f, 0x8b };
  static const uint8_t xz[] = { 0xfd, '7', 'z', 'X', 'Z', 0x00 };
  static const uint8_t zst[] = { 0x28, 0xb5, 0x2f, 0xfd };
  if (memcmp (p, gz, sizeof gz) == 0)
    return inflate_gzip (p, plen, error);
  if (memcmp (p, xz, sizeof xz) == 0)
    return inflate_xz (p, plen, error);
  if (memcmp (p, zst, sizeof zst) == 0)
    return inflate_zstd (p, plen, error);
  return NULL; /* bzip2, lzma, lzo, lz4: the kernel decompresses itself */
}
