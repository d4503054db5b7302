#include "vmm-core/kvm/memory.h"

#include <errno.h>
#include <gio/gio.h>
#include <sys/mman.h>

#define PCI_HOLE_LOW UINT64_C (0xc0000000)
#define PCI_HOLE_HIGH UINT64_C (0xe0000000)

gboolean
vmm_guest_memory_init (vmm_guest_memory *mem, uint64_t size, GError **error)
{
  memset (mem, 0, sizeof *mem);
  void *p = mmap (NULL, size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED)
    {
      int saved = errno;
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                   "cannot reserve %" G_GUINT64_FORMAT " MiB of guest memory: %s",
                   size >> 20, g_strerror (saved));
      return FALSE;
    }
  /* Transparent huge pages cut TLB misses for guest RAM. */
  madvise (p, size, MADV_HUGEPAGE);
  mem->host = p;
  mem->size = size;
  mem->below_4g = size >= PCI_HOLE_HIGH ? PCI_HOLE_LOW : size;
  mem->above_4g = size - mem->below_4g;
  return TRUE;
}

void
vmm_guest_memory_clear (vmm_guest_memory *mem)
{
  if (mem->host)
    munmap (mem->host, mem->size);
  memset (mem, 0, sizeof *mem);
}

void *
vmm_guest_memory_ptr_cb (void *mem, uint64_t gpa, size_t len)
{
  return vmm_guest_memory_ptr (mem, gpa, len);
}
