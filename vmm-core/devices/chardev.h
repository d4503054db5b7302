/* A byte stream a device writes to (the host side of a serial port or the
 * debug console): stdout, a file, a socket, the app's terminal view. */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct vmm_chardev {
  void (*write) (void *opaque, const uint8_t *buf, size_t len);
  void *opaque;
} vmm_chardev;

static inline void
vmm_chardev_write (const vmm_chardev *chr, const uint8_t *buf, size_t len)
{
  if (chr && chr->write)
    chr->write (chr->opaque, buf, len);
}
