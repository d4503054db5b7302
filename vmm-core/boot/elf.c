/* Enough ELF (System V gABI) to load a kernel's PT_LOAD segments by physical
 * address and to find a note. ELF32 and ELF64, little-endian x86. */
#include "vmm-core/boot/direct-boot.h"

#include <elf.h>
#include <gio/gio.h>
#include <string.h>

bool
vmm_elf_is_elf (const uint8_t *file, size_t len)
{
  return len >= sizeof (Elf32_Ehdr) && memcmp (file, ELFMAG, SELFMAG) == 0
         && file[EI_DATA] == ELFDATA2LSB
         && (file[EI_CLASS] == ELFCLASS32 || file[EI_CLASS] == ELFCLASS64);
}

typedef struct elf_phdr {
  uint32_t type;
  uint64_t offset, paddr, filesz, memsz;
} elf_phdr;

/* Program header @i, read into a common form; false when out of bounds. */
static bool
elf_get_phdr (const uint8_t *file, size_t len, unsigned i, elf_phdr *ph,
              unsigned *count)
{
  if (file[EI_CLASS] == ELFCLASS64)
    {
      if (len < sizeof (Elf64_Ehdr))
        return false;
      Elf64_Ehdr eh;
      memcpy (&eh, file, sizeof eh);
      *count = eh.e_phnum;
      if (i >= eh.e_phnum || eh.e_phentsize < sizeof (Elf64_Phdr)
          || eh.e_phoff > len
          || (uint64_t) (i + 1) * eh.e_phentsize > len - eh.e_phoff)
        return false;
      Elf64_Phdr p;
      memcpy (&p, file + eh.e_phoff + (uint64_t) i * eh.e_phentsize, sizeof p);
      *ph = (elf_phdr) { p.p_type, p.p_offset, p.p_paddr, p.p_filesz,
                         p.p_memsz };
    }
  else
    {
      Elf32_Ehdr eh;
      memcpy (&eh, file, sizeof eh);
      *count = eh.e_phnum;
      if (i >= eh.e_phnum || eh.e_phentsize < sizeof (Elf32_Phdr)
          || eh.e_phoff > len
          || (uint64_t) (i + 1) * eh.e_phentsize > len - eh.e_phoff)
        return false;
      Elf32_Phdr p;
      memcpy (&p, file + eh.e_phoff + (uint64_t) i * eh.e_phentsize, sizeof p);
      *ph = (elf_phdr) { p.p_type, p.p_offset, p.p_paddr, p.p_filesz,
                         p.p_memsz };
    }
  return true;
}

static unsigned
elf_phnum (const uint8_t *file)
{
  if (file[EI_CLASS] == ELFCLASS64)
    {
      Elf64_Ehdr eh;
      memcpy (&eh, file, sizeof eh);
      return eh.e_phnum;
    }
  Elf32_Ehdr eh;
  memcpy (&eh, file, sizeof eh);
  return eh.e_phnum;
}

gboolean
vmm_elf_load (const uint8_t *file, size_t len, const vmm_guest_memory *mem,
              uint64_t *entry, uint64_t *end, GError **error)
{
  if (!vmm_elf_is_elf (file, len) || len < sizeof (Elf64_Ehdr))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "not a little-endian ELF file");
      return FALSE;
    }
  if (file[EI_CLASS] == ELFCLASS64)
    {
      Elf64_Ehdr eh;
      memcpy (&eh, file, sizeof eh);
      *entry = eh.e_entry;
    }
  else
    {
      Elf32_Ehdr eh;
      memcpy (&eh, file, sizeof eh);
      *entry = eh.e_entry;
    }
  unsigned n = elf_phnum (file);
  *end = 0;
  unsigned loaded = 0;
  for (unsigned i = 0; i < n; i++)
    {
      elf_phdr ph;
      unsigned count;
      if (!elf_get_phdr (file, len, i, &ph, &count))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "ELF program header %u lies outside the file", i);
          return FALSE;
        }
      if (ph.type != PT_LOAD || ph.memsz == 0)
        continue;
      if (ph.filesz > ph.memsz)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "ELF segment %u has more file bytes than memory bytes",
                       i);
          return FALSE;
        }
      if (ph.offset > len || ph.filesz > len - ph.offset)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                       "ELF segment %u lies outside the file", i);
          return FALSE;
        }
      uint8_t *dst = vmm_guest_memory_ptr (mem, ph.paddr, ph.memsz);
      if (!dst)
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                       "ELF segment at 0x%" G_GINT64_MODIFIER "x (%"
                       G_GUINT64_FORMAT " bytes) is outside guest RAM",
                       ph.paddr, ph.memsz);
          return FALSE;
        }
      memcpy (dst, file + ph.offset, ph.filesz);
      memset (dst + ph.filesz, 0, ph.memsz - ph.filesz);
      *end = MAX (*end, ph.paddr + ph.memsz);
      loaded++;
    }
  if (!loaded)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "ELF file has nothing to load");
      return FALSE;
    }
  return TRUE;
}

const uint8_t *
vmm_elf_find_note (const uint8_t *file, size_t len, const char *name,
                   uint32_t type, size_t *desc_len)
{
  if (!vmm_elf_is_elf (file, len) || len < sizeof (Elf64_Ehdr))
    return NULL;
  size_t name_len = strlen (name) + 1;
  unsigned n = elf_phnum (file);
  for (unsigned i = 0; i < n; i++)
    {
      elf_phdr ph;
      unsigned count;
      if (!elf_get_phdr (file, len, i, &ph, &count))
        return NULL;
      if (ph.type != PT_NOTE || ph.offset > len || ph.filesz > len - ph.offset)
        continue;
      const uint8_t *p = file + ph.offset, *e = p + ph.filesz;
      /* Notes: namesz, descsz, type, then name and desc, 4-byte aligned. */
      while (e - p >= 12)
        {
          uint32_t nsz, dsz, ty;
          memcpy (&nsz, p, 4);
          memcpy (&dsz, p + 4, 4);
          memcpy (&ty, p + 8, 4);
          size_t nsz_al = ((size_t) nsz + 3) & ~(size_t) 3;
          size_t dsz_al = ((size_t) dsz + 3) & ~(size_t) 3;
          if ((size_t) (e - p) - 12 < nsz_al
              || (size_t) (e - p) - 12 - nsz_al < dsz)
            break;
          if (ty == type && nsz == name_len && memcmp (p + 12, name, nsz) == 0)
            {
              *desc_len = dsz;
              return p + 12 + nsz_al;
            }
          if ((size_t) (e - p) - 12 - nsz_al < dsz_al)
            break;
          p += 12 + nsz_al + dsz_al;
        }
    }
  return NULL;
}
