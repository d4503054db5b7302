/* Firmware-less boot: the PVH, multiboot, Linux bzImage and ELF loaders, fed
 * kernels generated here, and a long list of broken ones. */
#include <elf.h>
#include <gio/gio.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <unistd.h>

#include "vmm-core/boot/direct-boot.h"

#define RAM_SIZE (16u << 20)
#define GUARD 4096
#define CANARY 0x5a

static char *tmpdir;
static unsigned file_counter;

/* Guest memory with a guard area after its end that no loader may touch. */
typedef struct guest {
  vmm_guest_memory mem;
} guest;

static void
guest_init (guest *g, uint64_t size)
{
  g->mem = (vmm_guest_memory) { .host = g_malloc (size + GUARD),
                                .size = size,
                                .below_4g = size,
                                .above_4g = 0 };
  memset (g->mem.host, 0, size);
  memset (g->mem.host + size, CANARY, GUARD);
}

static void
guest_clear (guest *g)
{
  for (unsigned i = 0; i < GUARD; i++)
    g_assert_cmphex (g->mem.host[g->mem.size + i], ==, CANARY);
  g_free (g->mem.host);
}

static uint8_t *
at (guest *g, uint64_t gpa)
{
  g_assert_cmpuint (gpa, <, g->mem.size);
  return g->mem.host + gpa;
}

static uint32_t
rd32 (const uint8_t *p)
{
  uint32_t v;
  memcpy (&v, p, 4);
  return GUINT32_FROM_LE (v);
}

static uint64_t
rd64 (const uint8_t *p)
{
  uint64_t v;
  memcpy (&v, p, 8);
  return GUINT64_FROM_LE (v);
}

static void
wr16 (uint8_t *p, uint16_t v)
{
  v = GUINT16_TO_LE (v);
  memcpy (p, &v, 2);
}

static void
wr32 (uint8_t *p, uint32_t v)
{
  v = GUINT32_TO_LE (v);
  memcpy (p, &v, 4);
}

static char *
write_file (const void *data, size_t len)
{
  char *path = g_strdup_printf ("%s/f%u", tmpdir, file_counter++);
  g_autoptr (GError) error = NULL;
  g_assert_true (g_file_set_contents (path, data, len, &error));
  g_assert_no_error (error);
  return path;
}

static const vmm_e820_entry test_e820[] = {
  { 0, 0x9fc00, VMM_E820_RAM },
  { 0x9fc00, 0x400, VMM_E820_RESERVED },
  { 0xf0000, 0x10000, VMM_E820_RESERVED },
  { 0x100000, RAM_SIZE - 0x100000, VMM_E820_RAM },
};

static vmm_direct_boot
default_boot (const char *kernel)
{
  return (vmm_direct_boot) { .kernel = kernel,
                             .protocol = VMM_KERNEL_AUTO,
                             .e820 = test_e820,
                             .n_e820 = G_N_ELEMENTS (test_e820),
                             .rsdp_addr = 0xf0000 };
}

static void
check_gdt (guest *g, const vmm_boot_entry *e)
{
  g_assert_cmphex (e->gdt_base, ==, VMM_BOOT_GDT_ADDR);
  g_assert_cmpuint (e->gdt_limit, ==, 31);
  g_assert_cmphex (rd64 (at (g, 0x500)), ==, 0);
  g_assert_cmphex (rd64 (at (g, 0x510)), ==, 0x00cf9b000000ffffull);
  g_assert_cmphex (rd64 (at (g, 0x518)), ==, 0x00cf93000000ffffull);
}

/* ---- kernel image builders ---- */

#define K_PHOFF 0x40
#define K_NOTE_OFF 0x200
#define K_SEG_OFF 0x1000
#define K_SEG_FILESZ 0x400
#define K_LEN (K_SEG_OFF + K_SEG_FILESZ)
#define K_PADDR 0x100000
#define K_MEMSZ 0x3000

#define MB_MAGIC 0x1badb002u

static uint8_t
pattern (size_t i)
{
  return (uint8_t) (i * 7 + 3);
}

typedef struct elf_opts {
  bool is64;
  bool pvh;           /* add the Xen PVH entry note */
  unsigned desc_len;  /* 4 or 8 */
  uint64_t pvh_entry;
  bool multiboot;     /* a multiboot header at the segment's start */
} elf_opts;

/* An ELF with one PT_LOAD (file 0x1000+0x400 → paddr 1 MiB, memsz 0x3000)
 * and, optionally, a PT_NOTE. Returns a K_LEN-byte buffer. */
static uint8_t *
build_elf (const elf_opts *o)
{
  uint8_t *f = g_malloc0 (K_LEN);
  for (size_t i = 0; i < K_SEG_FILESZ; i++)
    f[K_SEG_OFF + i] = pattern (i);
  if (o->multiboot)
    {
      uint32_t h[3] = { MB_MAGIC, 0x3, -(MB_MAGIC + 0x3) };
      memcpy (f + K_SEG_OFF, h, sizeof h);
    }
  /* The note. */
  size_t note_len = 0;
  if (o->pvh)
    {
      uint8_t *n = f + K_NOTE_OFF;
      wr32 (n, 4);
      wr32 (n + 4, o->desc_len);
      wr32 (n + 8, 18);
      memcpy (n + 12, "Xen", 4);
      memcpy (n + 16, &o->pvh_entry, o->desc_len);
      note_len = 16 + ((o->desc_len + 3) & ~3u);
    }
  unsigned phnum = o->pvh ? 2 : 1;
  if (o->is64)
    {
      Elf64_Ehdr eh = { 0 };
      memcpy (eh.e_ident, ELFMAG, SELFMAG);
      eh.e_ident[EI_CLASS] = ELFCLASS64;
      eh.e_ident[EI_DATA] = ELFDATA2LSB;
      eh.e_ident[EI_VERSION] = EV_CURRENT;
      eh.e_type = ET_EXEC;
      eh.e_machine = EM_X86_64;
      eh.e_version = EV_CURRENT;
      eh.e_entry = 0xffffffff81000000ull; /* virtual: unused by PVH */
      eh.e_phoff = K_PHOFF;
      eh.e_ehsize = sizeof eh;
      eh.e_phentsize = sizeof (Elf64_Phdr);
      eh.e_phnum = phnum;
      memcpy (f, &eh, sizeof eh);
      Elf64_Phdr ph[2] = { { .p_type = PT_LOAD,
                             .p_offset = K_SEG_OFF,
                             .p_vaddr = 0xffffffff81000000ull,
                             .p_paddr = K_PADDR,
                             .p_filesz = K_SEG_FILESZ,
                             .p_memsz = K_MEMSZ },
                           { .p_type = PT_NOTE,
                             .p_offset = K_NOTE_OFF,
                             .p_filesz = note_len,
                             .p_memsz = note_len } };
      memcpy (f + K_PHOFF, ph, phnum * sizeof ph[0]);
    }
  else
    {
      Elf32_Ehdr eh = { 0 };
      memcpy (eh.e_ident, ELFMAG, SELFMAG);
      eh.e_ident[EI_CLASS] = ELFCLASS32;
      eh.e_ident[EI_DATA] = ELFDATA2LSB;
      eh.e_ident[EI_VERSION] = EV_CURRENT;
      eh.e_type = ET_EXEC;
      eh.e_machine = EM_386;
      eh.e_version = EV_CURRENT;
      eh.e_entry = K_PADDR + 0x20;
      eh.e_phoff = K_PHOFF;
      eh.e_ehsize = sizeof eh;
      eh.e_phentsize = sizeof (Elf32_Phdr);
      eh.e_phnum = phnum;
      memcpy (f, &eh, sizeof eh);
      Elf32_Phdr ph[2] = { { .p_type = PT_LOAD,
                             .p_offset = K_SEG_OFF,
                             .p_vaddr = K_PADDR,
                             .p_paddr = K_PADDR,
                             .p_filesz = K_SEG_FILESZ,
                             .p_memsz = K_MEMSZ },
                           { .p_type = PT_NOTE,
                             .p_offset = K_NOTE_OFF,
                             .p_filesz = note_len,
                             .p_memsz = note_len } };
      memcpy (f + K_PHOFF, ph, phnum * sizeof ph[0]);
    }
  return f;
}

static Elf64_Phdr *
ph64 (uint8_t *f, unsigned i)
{
  return (Elf64_Phdr *) (f + K_PHOFF) + i;
}

static Elf32_Phdr *
ph32 (uint8_t *f, unsigned i)
{
  return (Elf32_Phdr *) (f + K_PHOFF) + i;
}

/* A raw binary with a multiboot header using the a.out kludge: loaded at
 * 1 MiB, header at file offset 0x40, entry at 1 MiB + 0x80. */
#define AOUT_LEN 0x1000
#define AOUT_HDR 0x40

typedef struct mb_header {
  uint32_t magic, flags, checksum;
  uint32_t header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr;
} mb_header;

static uint8_t *
build_aout (void)
{
  uint8_t *f = g_malloc0 (AOUT_LEN);
  for (size_t i = 0; i < AOUT_LEN; i++)
    f[i] = pattern (i);
  mb_header h = { MB_MAGIC, 0x10003, -(MB_MAGIC + 0x10003),
                  K_PADDR + AOUT_HDR, K_PADDR, K_PADDR + 0x800,
                  K_PADDR + 0x5000, K_PADDR + 0x80 };
  memcpy (f + AOUT_HDR, &h, sizeof h);
  return f;
}

static mb_header *
aout_hdr (uint8_t *f)
{
  return (mb_header *) (f + AOUT_HDR);
}

/* A minimal bzImage: 4 setup sectors (plus the boot sector), then a
 * protected-mode part of LX_PM_LEN bytes. */
#define LX_SETUP_SECTS 4
#define LX_SETUP_LEN ((LX_SETUP_SECTS + 1) * 512)
#define LX_PM_LEN 0x2000
#define LX_LEN (LX_SETUP_LEN + LX_PM_LEN)
#define LX_INIT_SIZE 0x40000

static uint8_t *
build_bzimage (void)
{
  uint8_t *f = g_malloc0 (LX_LEN);
  for (size_t i = 0; i < LX_PM_LEN; i++)
    f[LX_SETUP_LEN + i] = pattern (i);
  f[0x1f1] = LX_SETUP_SECTS;
  wr16 (f + 0x1fe, 0xaa55);
  f[0x200] = 0xeb;
  f[0x201] = 0x66; /* the header runs to 0x268 */
  memcpy (f + 0x202, "HdrS", 4);
  wr16 (f + 0x206, 0x020f);
  f[0x211] = 0x01; /* LOADED_HIGH */
  wr32 (f + 0x214, 0x100000);
  wr32 (f + 0x22c, 0x37ffffff);
  wr32 (f + 0x238, 2047);
  wr32 (f + 0x260, LX_INIT_SIZE);
  return f;
}

static char *
make_initrd (size_t len)
{
  g_autofree uint8_t *d = g_malloc (len);
  for (size_t i = 0; i < len; i++)
    d[i] = (uint8_t) (i ^ 0xa5);
  return write_file (d, len);
}

static void
check_initrd (guest *g, uint32_t addr, uint32_t size, size_t len)
{
  g_assert_cmpuint (size, ==, len);
  g_assert_cmphex (addr & 0xfff, ==, 0);
  for (size_t i = 0; i < len; i += 97)
    g_assert_cmphex (at (g, addr)[i], ==, (uint8_t) (i ^ 0xa5));
}

/* ---- good kernels ---- */

static void
run_pvh (bool is64, unsigned desc_len)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  memset (at (&g, K_PADDR), 0xcc, K_MEMSZ + 0x100);
  elf_opts o = { .is64 = is64, .pvh = true, .desc_len = desc_len,
                 .pvh_entry = K_PADDR + 0x40 };
  g_autofree uint8_t *k = build_elf (&o);
  g_autofree char *path = write_file (k, K_LEN);
  g_autofree char *initrd = make_initrd (0x3456);
  vmm_direct_boot b = default_boot (path);
  b.cmdline = "console=ttyS0 pvh";
  b.initrd = initrd;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);

  g_assert_cmpint (e.protocol, ==, VMM_KERNEL_PVH);
  g_assert_cmphex (e.eip, ==, K_PADDR + 0x40);
  g_assert_cmphex (e.ebx, ==, VMM_BOOT_INFO_ADDR);
  check_gdt (&g, &e);
  /* The segment, and its bss zeroed; nothing beyond it touched. */
  for (size_t i = 0; i < K_SEG_FILESZ; i++)
    g_assert_cmphex (at (&g, K_PADDR)[i], ==, pattern (i));
  for (size_t i = K_SEG_FILESZ; i < K_MEMSZ; i++)
    g_assert_cmphex (at (&g, K_PADDR)[i], ==, 0);
  g_assert_cmphex (at (&g, K_PADDR)[K_MEMSZ], ==, 0xcc);

  /* hvm_start_info */
  const uint8_t *si = at (&g, VMM_BOOT_INFO_ADDR);
  g_assert_cmphex (rd32 (si), ==, 0x336ec578);
  g_assert_cmpuint (rd32 (si + 4), ==, 1);
  g_assert_cmpuint (rd32 (si + 12), ==, 1); /* nr_modules */
  uint64_t modlist = rd64 (si + 16);
  uint64_t cmdline = rd64 (si + 24);
  g_assert_cmphex (rd64 (si + 32), ==, 0xf0000); /* rsdp */
  uint64_t memmap = rd64 (si + 40);
  g_assert_cmpuint (rd32 (si + 48), ==, G_N_ELEMENTS (test_e820));
  g_assert_cmpstr ((char *) at (&g, cmdline), ==, "console=ttyS0 pvh");
  for (unsigned i = 0; i < G_N_ELEMENTS (test_e820); i++)
    {
      const uint8_t *m = at (&g, memmap + 24 * i);
      g_assert_cmphex (rd64 (m), ==, test_e820[i].addr);
      g_assert_cmphex (rd64 (m + 8), ==, test_e820[i].len);
      g_assert_cmpuint (rd32 (m + 16), ==, test_e820[i].type);
      g_assert_cmpuint (rd32 (m + 20), ==, 0);
    }
  const uint8_t *mod = at (&g, modlist);
  uint64_t ird = rd64 (mod), ird_size = rd64 (mod + 8);
  /* At the top of low RAM, page aligned. */
  g_assert_cmphex (ird, ==, (RAM_SIZE - 0x3456) & ~0xfffu);
  check_initrd (&g, ird, ird_size, 0x3456);
  guest_clear (&g);
}

static void
test_pvh_elf64 (void)
{
  run_pvh (true, 8);
}

static void
test_pvh_elf32 (void)
{
  run_pvh (false, 4);
}

/* No initrd, no command line: an empty string, no modules. */
static void
test_pvh_minimal (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  memset (at (&g, 0x20000), 0xcc, 16);
  elf_opts o = { .is64 = true, .pvh = true, .desc_len = 4,
                 .pvh_entry = K_PADDR };
  g_autofree uint8_t *k = build_elf (&o);
  g_autofree char *path = write_file (k, K_LEN);
  vmm_direct_boot b = default_boot (path);
  b.n_e820 = 0;
  b.e820 = NULL;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  const uint8_t *si = at (&g, VMM_BOOT_INFO_ADDR);
  g_assert_cmpuint (rd32 (si + 12), ==, 0);
  g_assert_cmpuint (rd64 (si + 16), ==, 0);
  g_assert_cmpuint (rd32 (si + 48), ==, 0);
  g_assert_cmpstr ((char *) at (&g, rd64 (si + 24)), ==, "");
  guest_clear (&g);
}

static void
check_multiboot_info (guest *g, const vmm_boot_entry *e, const char *cmd,
                      size_t initrd_len)
{
  g_assert_cmpint (e->protocol, ==, VMM_KERNEL_MULTIBOOT);
  g_assert_cmphex (e->eax, ==, 0x2badb002);
  g_assert_cmphex (e->ebx, ==, VMM_BOOT_INFO_ADDR);
  check_gdt (g, e);
  const uint8_t *mbi = at (g, e->ebx);
  uint32_t flags = rd32 (mbi);
  g_assert_cmphex (flags & 0x1, !=, 0);   /* mem_lower/upper */
  g_assert_cmphex (flags & 0x4, !=, 0);   /* cmdline */
  g_assert_cmphex (flags & 0x40, !=, 0);  /* mmap */
  g_assert_cmpuint (rd32 (mbi + 4), ==, 639);
  g_assert_cmpuint (rd32 (mbi + 8), ==, (RAM_SIZE - 0x100000) >> 10);
  g_assert_cmpstr ((char *) at (g, rd32 (mbi + 16)), ==, cmd);
  if (flags & 0x200)
    g_assert_cmpstr ((char *) at (g, rd32 (mbi + 64)), ==, "Vessel");
  /* mmap: size 20, then base, length, type, packed. */
  uint32_t mmap_len = rd32 (mbi + 44), mmap_addr = rd32 (mbi + 48);
  g_assert_cmpuint (mmap_len, ==, 24 * G_N_ELEMENTS (test_e820));
  for (unsigned i = 0; i < G_N_ELEMENTS (test_e820); i++)
    {
      const uint8_t *m = at (g, mmap_addr + 24 * i);
      g_assert_cmpuint (rd32 (m), ==, 20);
      g_assert_cmphex (rd64 (m + 4), ==, test_e820[i].addr);
      g_assert_cmphex (rd64 (m + 12), ==, test_e820[i].len);
      g_assert_cmpuint (rd32 (m + 20), ==, test_e820[i].type);
    }
  if (initrd_len)
    {
      g_assert_cmphex (flags & 0x8, !=, 0);
      g_assert_cmpuint (rd32 (mbi + 20), ==, 1);
      const uint8_t *mod = at (g, rd32 (mbi + 24));
      uint32_t start = rd32 (mod), end = rd32 (mod + 4);
      g_assert_cmphex (start, ==, (RAM_SIZE - initrd_len) & ~0xfffu);
      check_initrd (g, start, end - start, initrd_len);
    }
  else
    g_assert_cmpuint (rd32 (mbi + 20), ==, 0);
}

static void
test_multiboot_elf (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  elf_opts o = { .is64 = false, .multiboot = true };
  g_autofree uint8_t *k = build_elf (&o);
  g_autofree char *path = write_file (k, K_LEN);
  g_autofree char *initrd = make_initrd (5000);
  vmm_direct_boot b = default_boot (path);
  b.cmdline = "root=/dev/vda";
  b.initrd = initrd;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmphex (e.eip, ==, K_PADDR + 0x20); /* e_entry */
  check_multiboot_info (&g, &e, "root=/dev/vda", 5000);
  g_assert_cmphex (at (&g, K_PADDR)[0x100], ==, pattern (0x100));
  guest_clear (&g);
}

static void
test_multiboot_aout (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  memset (at (&g, K_PADDR), 0xcc, 0x6000);
  g_autofree uint8_t *k = build_aout ();
  g_autofree char *path = write_file (k, AOUT_LEN);
  vmm_direct_boot b = default_boot (path);
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmphex (e.eip, ==, K_PADDR + 0x80);
  check_multiboot_info (&g, &e, "", 0);
  /* [load_addr, load_end) from the file, then bss zeroed to bss_end. */
  for (size_t i = 0; i < 0x800; i++)
    if (i < AOUT_HDR || i >= AOUT_HDR + sizeof (mb_header))
      g_assert_cmphex (at (&g, K_PADDR)[i], ==, pattern (i));
  for (size_t i = 0x800; i < 0x5000; i++)
    g_assert_cmphex (at (&g, K_PADDR)[i], ==, 0);
  g_assert_cmphex (at (&g, K_PADDR)[0x5000], ==, 0xcc);

  /* load_end_addr 0: the rest of the file; bss_end 0: no bss. */
  aout_hdr (k)->load_end_addr = 0;
  aout_hdr (k)->bss_end_addr = 0;
  g_autofree char *path2 = write_file (k, AOUT_LEN);
  memset (at (&g, K_PADDR), 0xcc, 0x6000);
  b.kernel = path2;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmphex (at (&g, K_PADDR)[0xfff], ==, pattern (0xfff));
  g_assert_cmphex (at (&g, K_PADDR)[0x1000], ==, 0xcc);

  /* A header further into the file with load_addr before it. */
  g_autofree uint8_t *k3 = g_malloc0 (0x3000);
  for (size_t i = 0; i < 0x3000; i++)
    k3[i] = pattern (i);
  mb_header h = { MB_MAGIC, 0x10000, -(MB_MAGIC + 0x10000), 0x200000 + 0x1ff0,
                  0x200000, 0x200000 + 0x3000, 0x200000 + 0x4000, 0x200000 };
  memcpy (k3 + 0x1ff0, &h, sizeof h);
  g_autofree char *path3 = write_file (k3, 0x3000);
  b.kernel = path3;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmphex (e.eip, ==, 0x200000);
  g_assert_cmphex (at (&g, 0x200000)[0x2fff], ==, pattern (0x2fff));
  guest_clear (&g);
}

static void
test_linux (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  g_autofree uint8_t *k = build_bzimage ();
  g_autofree char *path = write_file (k, LX_LEN);
  g_autofree char *initrd = make_initrd (0x12345);
  vmm_direct_boot b = default_boot (path);
  b.cmdline = "console=ttyS0 quiet";
  b.initrd = initrd;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmpint (e.protocol, ==, VMM_KERNEL_LINUX);
  g_assert_cmphex (e.eip, ==, 0x100000);
  g_assert_cmphex (e.esi, ==, VMM_BOOT_INFO_ADDR);
  check_gdt (&g, &e);
  for (size_t i = 0; i < LX_PM_LEN; i++)
    g_assert_cmphex (at (&g, 0x100000)[i], ==, pattern (i));

  const uint8_t *zp = at (&g, e.esi);
  /* The setup header is copied. */
  g_assert_cmpuint (zp[0x1f1], ==, LX_SETUP_SECTS);
  g_assert_cmpmem (zp + 0x202, 4, "HdrS", 4);
  g_assert_cmphex (rd32 (zp + 0x206) & 0xffff, ==, 0x020f);
  g_assert_cmphex (rd32 (zp + 0x260), ==, LX_INIT_SIZE);
  g_assert_cmpuint (zp[0x210], ==, 0xff); /* type_of_loader */
  g_assert_cmphex (zp[0x211] & 0x01, ==, 0x01);
  g_assert_cmphex (rd32 (zp + 0x214), ==, 0x100000);
  /* Command line. */
  uint32_t cmd = rd32 (zp + 0x228);
  g_assert_cmpuint (cmd, !=, 0);
  g_assert_cmpstr ((char *) at (&g, cmd), ==, "console=ttyS0 quiet");
  /* Initrd: page aligned at the top of low RAM. */
  uint32_t ird = rd32 (zp + 0x218), ird_size = rd32 (zp + 0x21c);
  g_assert_cmphex (ird, ==, (RAM_SIZE - 0x12345) & ~0xfffu);
  check_initrd (&g, ird, ird_size, 0x12345);
  g_assert_cmpuint (ird, >=, 0x100000 + LX_INIT_SIZE);
  /* RSDP and e820. */
  g_assert_cmphex (rd64 (zp + 0x70), ==, 0xf0000);
  g_assert_cmpuint (zp[0x1e8], ==, G_N_ELEMENTS (test_e820));
  for (unsigned i = 0; i < G_N_ELEMENTS (test_e820); i++)
    {
      const uint8_t *en = zp + 0x2d0 + 20 * i;
      g_assert_cmphex (rd64 (en), ==, test_e820[i].addr);
      g_assert_cmphex (rd64 (en + 8), ==, test_e820[i].len);
      g_assert_cmpuint (rd32 (en + 16), ==, test_e820[i].type);
    }
  guest_clear (&g);
}

/* initrd_addr_max lower than RAM: the initrd ends below it. Also setup_sects
 * 0 (meaning 4) and a command line of exactly cmdline_size bytes. */
static void
test_linux_limits (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  g_autofree uint8_t *k = build_bzimage ();
  k[0x1f1] = 0;
  wr32 (k + 0x22c, 0x7fffff); /* 8 MiB - 1 */
  wr32 (k + 0x238, 10);
  g_autofree char *path = write_file (k, LX_LEN);
  g_autofree char *initrd = make_initrd (0x2000);
  vmm_direct_boot b = default_boot (path);
  b.cmdline = "0123456789";
  b.initrd = initrd;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  const uint8_t *zp = at (&g, e.esi);
  g_assert_cmphex (rd32 (zp + 0x218), ==, 0x800000 - 0x2000);
  g_assert_cmpstr ((char *) at (&g, rd32 (zp + 0x228)), ==, "0123456789");
  guest_clear (&g);
}

/* The initrd is placed page-aligned below the top; the alignment must not
 * push it down into the kernel's memory (1 MiB + init_size). */
static void
test_initrd_alignment (void)
{
  guest g;
  guest_init (&g, 4u << 20);
  g_autofree uint8_t *k = build_bzimage ();
  const uint32_t init_size = 0x100100;
  wr32 (k + 0x260, init_size);
  g_autofree char *path = write_file (k, LX_LEN);
  /* top - len = 0x200200: fits unaligned, but aligned down to 0x200000 it
   * would overlap the kernel's last 0x100 bytes. */
  g_autofree char *initrd = make_initrd ((4u << 20) - 0x200200);
  vmm_direct_boot b = default_boot (path);
  b.initrd = initrd;
  b.n_e820 = 0;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  gboolean ok = vmm_direct_boot_load (&b, &g.mem, &e, &error);
  if (ok)
    {
      const uint8_t *zp = at (&g, e.esi);
      g_assert_cmphex (rd32 (zp + 0x218), >=, 0x100000 + init_size);
    }
  else
    g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE);
  guest_clear (&g);
}

/* An empty initrd file is no initrd: it loads, with size 0. */
static void
test_empty_initrd (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  g_autofree char *initrd = write_file ("", 0);
  g_autofree uint8_t *k = build_bzimage ();
  g_autofree char *path = write_file (k, LX_LEN);
  elf_opts o = { .is64 = true, .pvh = true, .desc_len = 4,
                 .pvh_entry = K_PADDR };
  g_autofree uint8_t *k2 = build_elf (&o);
  g_autofree char *path2 = write_file (k2, K_LEN);
  vmm_direct_boot b = default_boot (path);
  b.initrd = initrd;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (rd32 (at (&g, e.esi) + 0x21c), ==, 0);
  b.kernel = path2;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (rd32 (at (&g, VMM_BOOT_INFO_ADDR) + 12), ==, 0);
  guest_clear (&g);
}

/* Explicit protocols override detection, and refuse the wrong image. */
static void
test_forced_protocol (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  elf_opts o = { .is64 = true, .pvh = true, .desc_len = 4,
                 .pvh_entry = K_PADDR };
  g_autofree uint8_t *k = build_elf (&o);
  g_autofree char *path = write_file (k, K_LEN);
  vmm_direct_boot b = default_boot (path);
  vmm_boot_entry e;

  b.protocol = VMM_KERNEL_LINUX;
  g_autoptr (GError) e1 = NULL;
  g_assert_false (vmm_direct_boot_load (&b, &g.mem, &e, &e1));
  g_assert_error (e1, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);
  g_assert_true (g_str_has_prefix (e1->message, path));

  b.protocol = VMM_KERNEL_MULTIBOOT;
  g_autoptr (GError) e2 = NULL;
  g_assert_false (vmm_direct_boot_load (&b, &g.mem, &e, &e2));
  g_assert_error (e2, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED);

  b.protocol = VMM_KERNEL_PVH;
  g_autoptr (GError) e3 = NULL;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, &e3));
  g_assert_no_error (e3);
  g_assert_cmpint (e.protocol, ==, VMM_KERNEL_PVH);

  /* A multiboot ELF that also has a PVH note boots PVH under AUTO and
   * multiboot when asked. */
  elf_opts o2 = { .is64 = false, .pvh = true, .desc_len = 4,
                  .pvh_entry = K_PADDR + 4, .multiboot = true };
  g_autofree uint8_t *k2 = build_elf (&o2);
  g_autofree char *path2 = write_file (k2, K_LEN);
  b.kernel = path2;
  b.protocol = VMM_KERNEL_AUTO;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, NULL));
  g_assert_cmpint (e.protocol, ==, VMM_KERNEL_PVH);
  g_assert_cmphex (e.eip, ==, K_PADDR + 4);
  b.protocol = VMM_KERNEL_MULTIBOOT;
  g_assert_true (vmm_direct_boot_load (&b, &g.mem, &e, NULL));
  g_assert_cmpint (e.protocol, ==, VMM_KERNEL_MULTIBOOT);
  g_assert_cmphex (e.eax, ==, 0x2badb002);
  guest_clear (&g);
}

/* The note parser directly: found, absent, and names that only share a
 * prefix. */
static void
test_elf_note (void)
{
  elf_opts o = { .is64 = true, .pvh = true, .desc_len = 8,
                 .pvh_entry = 0x1234 };
  g_autofree uint8_t *k = build_elf (&o);
  size_t dlen = 0;
  const uint8_t *d = vmm_elf_find_note (k, K_LEN, "Xen", 18, &dlen);
  g_assert_nonnull (d);
  g_assert_cmpuint (dlen, ==, 8);
  g_assert_cmphex (rd64 (d), ==, 0x1234);
  g_assert_null (vmm_elf_find_note (k, K_LEN, "Xen", 17, &dlen));
  g_assert_null (vmm_elf_find_note (k, K_LEN, "Xe", 18, &dlen));
  g_assert_null (vmm_elf_find_note (k, K_LEN, "XenX", 18, &dlen));
  g_assert_null (vmm_elf_find_note (k, 10, "Xen", 18, &dlen));
  g_assert_true (vmm_elf_is_elf (k, K_LEN));
  g_assert_false (vmm_elf_is_elf (k, 20));
}

/* ---- bad input ---- */

typedef void (*mutate_fn) (uint8_t *k, size_t *len, vmm_direct_boot *b);

typedef struct bad_case {
  const char *name;
  enum { K_ELF64_PVH, K_ELF32_PVH, K_ELF32_MB, K_AOUT, K_BZIMAGE } base;
  mutate_fn mutate;
  uint64_t ram; /* 0: RAM_SIZE */
  GQuark domain;
  int code; /* -1: any */
  const char *substring; /* NULL: any */
} bad_case;

static void
m_empty (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  *len = 0;
}

static void
m_trunc_ehdr (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  *len = 40;
}

static void
m_trunc_ehdr60 (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  *len = 60; /* an ELF32 header's length, but class 64 */
}

static void
m_phoff_out (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf64_Ehdr *) k)->e_phoff = 0x7ffffff0;
}

static void
m_phoff_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf64_Ehdr *) k)->e_phoff = UINT64_MAX - 8;
}

static void
m_phentsize_out (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf64_Ehdr *) k)->e_phentsize = 0xffff;
}

static void
m_phnum_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf64_Ehdr *) k)->e_phnum = 0xffff;
}

static void
m_phoff_out32 (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf32_Ehdr *) k)->e_phoff = K_LEN - 8;
}

static void
m_filesz_past_end (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_filesz = K_SEG_FILESZ + 1;
}

static void
m_offset_past_end (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_offset = UINT64_MAX - 0x10;
}

static void
m_filesz_wrap (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_filesz = UINT64_MAX;
  ph64 (k, 0)->p_memsz = UINT64_MAX;
}

static void
m_filesz_gt_memsz (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_memsz = K_SEG_FILESZ - 1;
}

static void
m_paddr_out (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_paddr = RAM_SIZE - 0x100; /* memsz runs past the end */
}

static void
m_paddr_far (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_paddr = 0xfee00000;
}

static void
m_paddr_wrap (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_paddr = UINT64_MAX - 0xfff;
}

static void
m_memsz_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_memsz = UINT64_MAX;
}

static void
m_memsz_wrap32 (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph32 (k, 0)->p_paddr = 0xfffff000;
  ph32 (k, 0)->p_memsz = 0x2000;
}

static void
m_note_namesz (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + K_NOTE_OFF, 0xfffffff0);
}

static void
m_note_descsz (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + K_NOTE_OFF + 4, 0xfffffffd);
}

static void
m_note_descsz_small (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  /* Past the segment's end by 4 bytes, but still inside the file. */
  wr32 (k + K_NOTE_OFF + 4, 12);
}

static void
m_note_filesz (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 1)->p_filesz = 0x7fffffff;
}

static void
m_pvh_high (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  uint64_t entry = UINT64_C (0x100000000);
  memcpy (k + K_NOTE_OFF + 16, &entry, 8);
}

static void
m_pvh_desc_len (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + K_NOTE_OFF + 4, 2);
  b->protocol = VMM_KERNEL_PVH;
}

static void
m_no_load (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph64 (k, 0)->p_type = PT_NULL;
}

static void
m_mb_elf_phoff (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ((Elf32_Ehdr *) k)->e_phoff = 0xfffffff0;
}

static void
m_mb_elf_filesz (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  ph32 (k, 0)->p_filesz = 0x10000;
  ph32 (k, 0)->p_memsz = 0x10000;
}

static void
m_mb_not_elf (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  k[1] = 'X'; /* no longer ELF, but the header is still there */
}

static void
aout_fix_checksum (uint8_t *k)
{
  mb_header *h = aout_hdr (k);
  h->checksum = -(h->magic + h->flags);
}

static void
m_aout_header_before_load (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->header_addr = K_PADDR - 4;
}

static void
m_aout_header_far (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  /* The header would lie 0x1000 bytes into the image, but it is at 0x40. */
  aout_hdr (k)->header_addr = K_PADDR + 0x1000;
}

static void
m_aout_load_end_before (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->load_end_addr = K_PADDR - 0x10;
}

static void
m_aout_load_end_past_file (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->load_end_addr = K_PADDR + AOUT_LEN + 1;
}

static void
m_aout_bss_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->bss_end_addr = 0xffffffff;
}

static void
m_aout_load_out (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->load_addr = 0xfffff000;
  aout_hdr (k)->header_addr = 0xfffff000 + AOUT_HDR;
  aout_hdr (k)->load_end_addr = 0;
  aout_hdr (k)->bss_end_addr = 0;
}

static void
m_aout_header_at_end (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  /* Header in the last 12 bytes of the file: its address fields are cut
   * off (read as zero). */
  mb_header h = { MB_MAGIC, 0x10000, -(MB_MAGIC + 0x10000) };
  memset (k, 0, AOUT_LEN);
  memcpy (k + AOUT_LEN - 12, &h, 12);
}

static void
m_aout_bad_checksum (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_hdr (k)->checksum++;
}

static void
m_aout_fix (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  aout_fix_checksum (k);
}

static void
m_lx_setup_sects (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  k[0x1f1] = 255;
}

static void
m_lx_setup_exact (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  *len = LX_SETUP_LEN; /* no protected-mode part at all */
}

static void
m_lx_version (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr16 (k + 0x206, 0x0100);
}

static void
m_lx_not_high (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  k[0x211] = 0;
}

static void
m_lx_init_size (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + 0x260, RAM_SIZE);
}

static void
m_lx_init_size_max (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + 0x260, 0xffffffff);
}

static void
m_lx_cmdline (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + 0x238, 8);
  b->cmdline = "123456789";
}

static void
m_lx_cmdline_old (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  static char line[300];
  memset (line, 'a', sizeof line - 1);
  wr16 (k + 0x206, 0x0204); /* before cmdline_size: 255 */
  b->cmdline = line;
}

static void
m_cmdline_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  static char line[0x10001];
  memset (line, 'a', sizeof line - 1);
  b->cmdline = line;
}

static char *big_initrd_path;

static void
m_initrd_huge (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  b->initrd = big_initrd_path;
}

static void
m_initrd_missing (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  b->initrd = "/nonexistent/initrd.img";
}

static void
m_lx_initrd_max_low (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  wr32 (k + 0x22c, 0x100fff); /* below the kernel's end */
  b->initrd = big_initrd_path;
}

static void
m_kernel_missing (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  b->kernel = "/nonexistent/vmlinuz";
}

static void
m_not_a_kernel (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  const char text[] = "#!/bin/sh\necho this is not a kernel\n";
  memset (k, 0, *len);
  memcpy (k, text, sizeof text);
}

static void
m_tiny_ram_info (uint8_t *k, size_t *len, vmm_direct_boot *b)
{
  /* nothing: RAM is too small for the info structures */
}

static const bad_case bad_cases[] = {
  { "empty", K_ELF64_PVH, m_empty, 0, 0, G_IO_ERROR_NOT_SUPPORTED,
    "not a kernel Vessel can boot directly" },
  { "truncated-ehdr", K_ELF64_PVH, m_trunc_ehdr, 0, 0, -1, NULL },
  { "truncated-ehdr64", K_ELF64_PVH, m_trunc_ehdr60, 0, 0, -1, NULL },
  { "phoff-outside", K_ELF64_PVH, m_phoff_out, 0, 0, -1, NULL },
  { "phoff-huge", K_ELF64_PVH, m_phoff_huge, 0, 0, -1, NULL },
  { "phentsize-outside", K_ELF64_PVH, m_phentsize_out, 0, 0, -1, NULL },
  { "phnum-huge", K_ELF64_PVH, m_phnum_huge, 0, 0, -1, NULL },
  { "phoff-outside-elf32", K_ELF32_PVH, m_phoff_out32, 0, 0, -1, NULL },
  { "filesz-past-end", K_ELF64_PVH, m_filesz_past_end, 0, 0,
    G_IO_ERROR_INVALID_DATA, "outside the file" },
  { "offset-past-end", K_ELF64_PVH, m_offset_past_end, 0, 0,
    G_IO_ERROR_INVALID_DATA, "outside the file" },
  { "filesz-wrap", K_ELF64_PVH, m_filesz_wrap, 0, 0, G_IO_ERROR_INVALID_DATA,
    NULL },
  { "filesz-gt-memsz", K_ELF64_PVH, m_filesz_gt_memsz, 0, 0,
    G_IO_ERROR_INVALID_DATA, "more file bytes than memory bytes" },
  { "paddr-past-ram", K_ELF64_PVH, m_paddr_out, 0, 0, G_IO_ERROR_NO_SPACE,
    "outside guest RAM" },
  { "paddr-far", K_ELF64_PVH, m_paddr_far, 0, 0, G_IO_ERROR_NO_SPACE, NULL },
  { "paddr-wrap", K_ELF64_PVH, m_paddr_wrap, 0, 0, G_IO_ERROR_NO_SPACE, NULL },
  { "memsz-huge", K_ELF64_PVH, m_memsz_huge, 0, 0, G_IO_ERROR_NO_SPACE, NULL },
  { "memsz-wrap-4g", K_ELF32_PVH, m_memsz_wrap32, 0, 0, G_IO_ERROR_NO_SPACE,
    NULL },
  { "no-load-segment", K_ELF64_PVH, m_no_load, 0, 0, G_IO_ERROR_INVALID_DATA,
    NULL },
  { "note-namesz", K_ELF64_PVH, m_note_namesz, 0, 0, G_IO_ERROR_NOT_SUPPORTED,
    NULL },
  { "note-descsz", K_ELF64_PVH, m_note_descsz, 0, 0, G_IO_ERROR_NOT_SUPPORTED,
    NULL },
  { "note-descsz-past-segment", K_ELF64_PVH, m_note_descsz_small, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, NULL },
  { "note-filesz", K_ELF64_PVH, m_note_filesz, 0, 0, G_IO_ERROR_NOT_SUPPORTED,
    NULL },
  { "pvh-entry-above-4g", K_ELF64_PVH, m_pvh_high, 0, 0,
    G_IO_ERROR_INVALID_DATA, "above 4 GiB" },
  { "pvh-desc-len", K_ELF64_PVH, m_pvh_desc_len, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, "PVH" },
  { "mb-elf-phoff", K_ELF32_MB, m_mb_elf_phoff, 0, 0, G_IO_ERROR_INVALID_DATA,
    NULL },
  { "mb-elf-filesz", K_ELF32_MB, m_mb_elf_filesz, 0, 0,
    G_IO_ERROR_INVALID_DATA, NULL },
  { "mb-not-elf-no-kludge", K_ELF32_MB, m_mb_not_elf, 0, 0,
    G_IO_ERROR_INVALID_DATA, NULL },
  { "mb-header-before-load", K_AOUT, m_aout_header_before_load, 0, 0,
    G_IO_ERROR_INVALID_DATA, "inconsistent" },
  { "mb-header-far", K_AOUT, m_aout_header_far, 0, 0, G_IO_ERROR_INVALID_DATA,
    "inconsistent" },
  { "mb-load-end-before-load", K_AOUT, m_aout_load_end_before, 0, 0,
    G_IO_ERROR_INVALID_DATA, "before load_addr" },
  { "mb-load-end-past-file", K_AOUT, m_aout_load_end_past_file, 0, 0,
    G_IO_ERROR_INVALID_DATA, NULL },
  { "mb-bss-huge", K_AOUT, m_aout_bss_huge, 0, 0, G_IO_ERROR_NO_SPACE, NULL },
  { "mb-load-outside-ram", K_AOUT, m_aout_load_out, 0, 0, G_IO_ERROR_NO_SPACE,
    NULL },
  { "mb-header-at-end", K_AOUT, m_aout_header_at_end, 0, 0,
    G_IO_ERROR_INVALID_DATA, "cut off" },
  { "mb-bad-checksum", K_AOUT, m_aout_bad_checksum, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, "not a kernel" },
  { "mb-tiny-ram", K_AOUT, m_aout_fix, 0x2000, 0, -1, NULL },
  { "bz-setup-sects", K_BZIMAGE, m_lx_setup_sects, 0, 0,
    G_IO_ERROR_INVALID_DATA, NULL },
  { "bz-setup-only", K_BZIMAGE, m_lx_setup_exact, 0, 0,
    G_IO_ERROR_INVALID_DATA, NULL },
  { "bz-version-0100", K_BZIMAGE, m_lx_version, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, "2.02" },
  { "bz-not-loaded-high", K_BZIMAGE, m_lx_not_high, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, NULL },
  { "bz-init-size", K_BZIMAGE, m_lx_init_size, 0, 0, G_IO_ERROR_NO_SPACE,
    NULL },
  { "bz-init-size-max", K_BZIMAGE, m_lx_init_size_max, 0, 0,
    G_IO_ERROR_NO_SPACE, NULL },
  { "bz-cmdline-too-long", K_BZIMAGE, m_lx_cmdline, 0, 0,
    G_IO_ERROR_INVALID_ARGUMENT, "command line" },
  { "bz-cmdline-too-long-old", K_BZIMAGE, m_lx_cmdline_old, 0, 0,
    G_IO_ERROR_INVALID_ARGUMENT, NULL },
  { "bz-initrd-too-big", K_BZIMAGE, m_initrd_huge, 0, 0, G_IO_ERROR_NO_SPACE,
    "initrd" },
  { "bz-initrd-max-low", K_BZIMAGE, m_lx_initrd_max_low, 0, 0,
    G_IO_ERROR_NO_SPACE, NULL },
  { "bz-tiny-ram", K_BZIMAGE, m_tiny_ram_info, 0x100000, 0,
    G_IO_ERROR_NO_SPACE, NULL },
  { "pvh-cmdline-huge", K_ELF64_PVH, m_cmdline_huge, 0, 0,
    G_IO_ERROR_INVALID_ARGUMENT, NULL },
  { "pvh-initrd-too-big", K_ELF64_PVH, m_initrd_huge, 0, 0,
    G_IO_ERROR_NO_SPACE, NULL },
  { "pvh-initrd-missing", K_ELF64_PVH, m_initrd_missing, 0, 0, -1,
    "initrd.img" },
  { "mb-initrd-too-big", K_AOUT, m_initrd_huge, 0, 0, G_IO_ERROR_NO_SPACE,
    NULL },
  { "pvh-tiny-ram", K_ELF64_PVH, m_tiny_ram_info, 0x400, 0, -1, NULL },
  { "kernel-missing", K_ELF64_PVH, m_kernel_missing, 0, 0, -1, "vmlinuz" },
  { "not-a-kernel", K_ELF64_PVH, m_not_a_kernel, 0, 0,
    G_IO_ERROR_NOT_SUPPORTED, "not a kernel Vessel can boot directly" },
};

static void
test_bad (gconstpointer data)
{
  const bad_case *c = data;
  size_t len = 0;
  g_autofree uint8_t *k = NULL;
  switch (c->base)
    {
    case K_ELF64_PVH:
    case K_ELF32_PVH:
      {
        elf_opts o = { .is64 = c->base == K_ELF64_PVH, .pvh = true,
                       .desc_len = c->base == K_ELF64_PVH ? 8 : 4,
                       .pvh_entry = K_PADDR };
        k = build_elf (&o);
        len = K_LEN;
      }
      break;
    case K_ELF32_MB:
      {
        elf_opts o = { .is64 = false, .multiboot = true };
        k = build_elf (&o);
        len = K_LEN;
      }
      break;
    case K_AOUT:
      k = build_aout ();
      len = AOUT_LEN;
      break;
    case K_BZIMAGE:
      k = build_bzimage ();
      len = LX_LEN;
      break;
    }
  guest g;
  guest_init (&g, c->ram ? c->ram : RAM_SIZE);
  vmm_direct_boot b = default_boot (NULL);
  c->mutate (k, &len, &b);
  g_autofree char *path = write_file (k, len);
  if (!b.kernel)
    b.kernel = path;
  vmm_boot_entry e;
  g_autoptr (GError) error = NULL;
  gboolean ok = vmm_direct_boot_load (&b, &g.mem, &e, &error);
  if (ok)
    g_error ("%s: loaded (protocol %d, eip 0x%x) but should fail", c->name,
             e.protocol, e.eip);
  g_assert_nonnull (error);
  g_test_message ("%s: %s", c->name, error->message);
  if (c->code >= 0)
    g_assert_error (error, G_IO_ERROR, c->code);
  if (c->substring)
    g_assert_nonnull (strstr (error->message, c->substring));
  /* One message: the file name at most once, no empty text. */
  g_assert_cmpuint (strlen (error->message), >, 10);
  const char *first = strstr (error->message, b.kernel);
  if (first)
    g_assert_null (strstr (first + 1, b.kernel));
  guest_clear (&g);
}

/* Random byte flips in each kind of image: loads or fails, never crashes or
 * writes outside guest memory. */
static void
test_mutation_fuzz (void)
{
  guest g;
  guest_init (&g, RAM_SIZE);
  for (unsigned iter = 0; iter < 200; iter++)
    {
      g_autofree uint8_t *k = NULL;
      size_t len;
      switch (iter % 4)
        {
        case 0:
          {
            elf_opts o = { .is64 = true, .pvh = true, .desc_len = 8,
                           .pvh_entry = K_PADDR };
            k = build_elf (&o);
            len = K_LEN;
          }
          break;
        case 1:
          {
            elf_opts o = { .is64 = false, .multiboot = true };
            k = build_elf (&o);
            len = K_LEN;
          }
          break;
        case 2:
          k = build_aout ();
          len = AOUT_LEN;
          break;
        default:
          k = build_bzimage ();
          len = LX_LEN;
          break;
        }
      /* Flip bytes in the headers (the first 0x300 bytes hold every
       * header, the a.out one at 0x40). */
      unsigned flips = g_test_rand_int_range (1, 8);
      for (unsigned i = 0; i < flips; i++)
        {
          unsigned o = g_test_rand_int_range (0, 0x300);
          k[o] = g_test_rand_bit () ? (uint8_t) g_test_rand_int ()
                                    : (uint8_t) (k[o] ^ 0xff);
        }
      if (g_test_rand_int_range (0, 8) == 0)
        len = g_test_rand_int_range (0, len);
      g_autofree char *path = write_file (k, len);
      vmm_direct_boot b = default_boot (path);
      vmm_boot_entry e;
      g_autoptr (GError) error = NULL;
      if (!vmm_direct_boot_load (&b, &g.mem, &e, &error))
        {
          g_assert_nonnull (error);
          g_assert_cmpuint (strlen (error->message), >, 0);
        }
      g_unlink (path);
    }
  guest_clear (&g);
}

static void
rm_rf (const char *dir)
{
  GDir *d = g_dir_open (dir, 0, NULL);
  if (!d)
    return;
  const char *name;
  while ((name = g_dir_read_name (d)))
    {
      g_autofree char *p = g_build_filename (dir, name, NULL);
      g_unlink (p);
    }
  g_dir_close (d);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_autoptr (GError) error = NULL;
  tmpdir = g_dir_make_tmp ("vessel-boot-XXXXXX", &error);
  g_assert_no_error (error);
  /* An initrd larger than RAM (sparse: cheap to create). */
  big_initrd_path = g_build_filename (tmpdir, "big-initrd", NULL);
  {
    FILE *fp = fopen (big_initrd_path, "w");
    g_assert_nonnull (fp);
    g_assert_cmpint (ftruncate (fileno (fp), RAM_SIZE + 4096), ==, 0);
    fclose (fp);
  }

  g_test_add_func ("/direct-boot/pvh-elf64", test_pvh_elf64);
  g_test_add_func ("/direct-boot/pvh-elf32", test_pvh_elf32);
  g_test_add_func ("/direct-boot/pvh-minimal", test_pvh_minimal);
  g_test_add_func ("/direct-boot/multiboot-elf", test_multiboot_elf);
  g_test_add_func ("/direct-boot/multiboot-aout", test_multiboot_aout);
  g_test_add_func ("/direct-boot/linux", test_linux);
  g_test_add_func ("/direct-boot/linux-limits", test_linux_limits);
  g_test_add_func ("/direct-boot/initrd-alignment", test_initrd_alignment);
  g_test_add_func ("/direct-boot/empty-initrd", test_empty_initrd);
  g_test_add_func ("/direct-boot/forced-protocol", test_forced_protocol);
  g_test_add_func ("/direct-boot/elf-note", test_elf_note);
  for (unsigned i = 0; i < G_N_ELEMENTS (bad_cases); i++)
    {
      g_autofree char *name
          = g_strdup_printf ("/direct-boot/bad/%s", bad_cases[i].name);
      g_test_add_data_func (name, &bad_cases[i], test_bad);
    }
  g_test_add_func ("/direct-boot/mutation-fuzz", test_mutation_fuzz);
  int rc = g_test_run ();
  rm_rf (tmpdir);
  g_free (big_initrd_path);
  g_free (tmpdir);
  return rc;
}
