#include "display/screendump.h"

#include <gio/gio.h>
#include <string.h>
#include <zlib.h>

static void
put_be32 (GByteArray *out, uint32_t v)
{
  uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
  g_byte_array_append (out, b, 4);
}

static void
put_chunk (GByteArray *out, const char type[4], const uint8_t *data,
           size_t len)
{
  put_be32 (out, (uint32_t) len);
  size_t crc_from = out->len;
  g_byte_array_append (out, (const guint8 *) type, 4);
  if (len)
    g_byte_array_append (out, data, (guint) len);
  uLong crc = crc32 (0, out->data + crc_from, (uInt) (len + 4));
  put_be32 (out, (uint32_t) crc);
}

gboolean
display_image_write_png (const display_image *img, const char *path,
                         GError **error)
{
  if (img->width <= 0 || img->height <= 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "the display has no image yet");
      return FALSE;
    }
  /* RGB rows, each behind its filter byte (0, none). */
  size_t row = 1 + (size_t) img->width * 3;
  size_t raw_len = row * img->height;
  g_autofree uint8_t *raw = g_malloc (raw_len);
  for (int y = 0; y < img->height; y++)
    {
      uint8_t *d = raw + row * y;
      const uint32_t *s = (const uint32_t *) (img->pixels + (size_t) img->stride * y);
      *d++ = 0;
      for (int x = 0; x < img->width; x++)
        {
          uint32_t p = s[x]; /* XRGB8888 */
          *d++ = (p >> 16) & 0xff;
          *d++ = (p >> 8) & 0xff;
          *d++ = p & 0xff;
        }
    }
  uLongf zlen = compressBound ((uLong) raw_len);
  g_autofree uint8_t *z = g_malloc (zlen);
  if (compress2 (z, &zlen, raw, (uLong) raw_len, 6) != Z_OK)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                   "could not compress the screen image");
      return FALSE;
    }
  GByteArray *out = g_byte_array_new ();
  static const uint8_t signature[8] = { 0x89, 'P', 'N', 'G', '\r', '\n',
                                        0x1a, '\n' };
  g_byte_array_append (out, signature, 8);
  GByteArray *ihdr = g_byte_array_new ();
  put_be32 (ihdr, (uint32_t) img->width);
  put_be32 (ihdr, (uint32_t) img->height);
  static const uint8_t rest[5] = { 8, 2, 0, 0, 0 }; /* 8-bit RGB */
  g_byte_array_append (ihdr, rest, 5);
  put_chunk (out, "IHDR", ihdr->data, ihdr->len);
  g_byte_array_unref (ihdr);
  put_chunk (out, "IDAT", z, zlen);
  put_chunk (out, "IEND", NULL, 0);
  gboolean ok = g_file_set_contents (path, (const char *) out->data,
                                     out->len, error);
  g_byte_array_unref (out);
  return ok;
}
