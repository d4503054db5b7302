/* Screendump: a surface image as a PNG file (PNG specification, 2nd
 * edition: signature, IHDR, one zlib IDAT of filter-0 rows, IEND). */
#pragma once

#include "display/surface.h"

#include <glib.h>

gboolean display_image_write_png (const display_image *img, const char *path,
                                  GError **error);
