/* Vessel guest kit: C start, boot information (multiboot v1, PVH), paging. */
#include "kit.h"

#define MB_BOOT_MAGIC 0x2BADB002u
#define PVH_MAGIC 0x336ec578u

extern uint32_t kit_entry_eax, kit_entry_ebx, kit_entry_kind;
extern uint64_t kit_pml4[512], kit_pdpt[512], kit_pd[64 * 512];

struct kit_boot_info kit_boot;
static uint64_t mapped_end = 4ULL << 30;

void kit_gdt_tss_init(void); /* intr.c */

const char *kit_boot_kind_name(void)
{
    switch (kit_boot.kind) {
    case KIT_BOOT_MULTIBOOT:
        return "multiboot";
    case KIT_BOOT_PVH:
        return "pvh";
    default:
        return "unknown";
    }
}

const char *kit_mem_type_name(uint32_t type)
{
    switch (type) {
    case KIT_MEM_RAM:
        return "ram";
    case KIT_MEM_RESERVED:
        return "reserved";
    case KIT_MEM_ACPI:
        return "acpi";
    case KIT_MEM_NVS:
        return "nvs";
    case KIT_MEM_UNUSABLE:
        return "unusable";
    default:
        return "other";
    }
}

static void add_mem(uint64_t base, uint64_t len, uint32_t type)
{
    if (kit_boot.nmem < KIT_MAX_MEM && len)
        kit_boot.mem[kit_boot.nmem++] = (struct kit_mem_region){ base, len, type };
}

static void copy_cmdline(uint64_t pa)
{
    if (!pa)
        return;
    const char *s = (const char *)(uintptr_t)pa;
    size_t i;
    for (i = 0; i + 1 < sizeof(kit_boot.cmdline) && s[i]; i++)
        kit_boot.cmdline[i] = s[i];
    kit_boot.cmdline[i] = '\0';
}

static void parse_multiboot(uint32_t p)
{
    const uint32_t *mbi = (const uint32_t *)(uintptr_t)p;
    uint32_t flags = mbi[0];
    if (flags & (1u << 2))
        copy_cmdline(mbi[4]);
    if (flags & (1u << 6)) {
        uint32_t len = mbi[11], addr = mbi[12];
        uint32_t off = 0;
        while (off + 24 <= len) {
            const uint8_t *e = (const uint8_t *)(uintptr_t)(addr + off);
            uint32_t size = *(const uint32_t *)e;
            uint64_t base = *(const uint64_t *)(e + 4);
            uint64_t length = *(const uint64_t *)(e + 12);
            uint32_t type = *(const uint32_t *)(e + 20);
            add_mem(base, length, type);
            off += size + 4;
        }
        kit_boot.mem_from_map = kit_boot.nmem > 0;
    }
    if (!kit_boot.nmem && (flags & 1u)) {
        add_mem(0, (uint64_t)mbi[1] << 10, KIT_MEM_RAM);
        add_mem(1ULL << 20, (uint64_t)mbi[2] << 10, KIT_MEM_RAM);
    }
}

static void parse_pvh(uint32_t p)
{
    const uint8_t *si = (const uint8_t *)(uintptr_t)p;
    uint32_t version = *(const uint32_t *)(si + 4);
    copy_cmdline(*(const uint64_t *)(si + 0x18));
    kit_boot.rsdp = *(const uint64_t *)(si + 0x20);
    if (version >= 1) {
        uint64_t map = *(const uint64_t *)(si + 0x28);
        uint32_t n = *(const uint32_t *)(si + 0x30);
        for (uint32_t i = 0; map && i < n; i++) {
            const uint8_t *e = (const uint8_t *)(uintptr_t)(map + i * 24ULL);
            add_mem(*(const uint64_t *)e, *(const uint64_t *)(e + 8),
                    *(const uint32_t *)(e + 16));
        }
        kit_boot.mem_from_map = kit_boot.nmem > 0;
    }
}

bool kit_cmdline_has(const char *w)
{
    size_t n = strlen(w);
    const char *p = kit_boot.cmdline;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && !strncmp(p, w, n))
            return true;
        p = e;
    }
    return false;
}

uint64_t kit_ram_end(void)
{
    uint64_t end = 0;
    for (int i = 0; i < kit_boot.nmem; i++)
        if (kit_boot.mem[i].type == KIT_MEM_RAM &&
            kit_boot.mem[i].base + kit_boot.mem[i].len > end)
            end = kit_boot.mem[i].base + kit_boot.mem[i].len;
    return end;
}

uint64_t kit_mapped_end(void)
{
    return mapped_end;
}

uint64_t kit_map_identity(uint64_t end)
{
    if (end > KIT_MAP_LIMIT)
        end = KIT_MAP_LIMIT;
    while (mapped_end < end) {
        unsigned gb = (unsigned)(mapped_end >> 30);
        uint64_t *pd = &kit_pd[gb * 512];
        for (unsigned i = 0; i < 512; i++)
            pd[i] = (mapped_end + ((uint64_t)i << 21)) | 0x87; /* P W U PS */
        kit_pdpt[gb] = (uint64_t)(uintptr_t)pd | 0x07;
        mapped_end += 1ULL << 30;
    }
    write_cr3(read_cr3()); /* flush */
    return mapped_end;
}

KIT_NORETURN void kit_halt(void)
{
    for (;;) {
        cli();
        hlt();
    }
}

KIT_NORETURN void kit_pass(void)
{
    kit_printf("KIT: PASS %s\n", kit_guest_name);
    kit_poweroff();
}

KIT_NORETURN void kit_fail(const char *fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    kit_vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    kit_printf("KIT: FAIL %s: %s\n", kit_guest_name, why);
    kit_poweroff();
}

void kit_start(void);
void kit_start(void)
{
    kit_serial_init();
    kit_gdt_tss_init();
    kit_idt_load();

    uint32_t ebx = kit_entry_ebx;
    kit_boot.raw_ptr = ebx;
    if (kit_entry_kind == 1 && kit_entry_eax == MB_BOOT_MAGIC) {
        kit_boot.kind = KIT_BOOT_MULTIBOOT;
        parse_multiboot(ebx);
    } else if (kit_entry_kind == 2 && *(const uint32_t *)(uintptr_t)ebx == PVH_MAGIC) {
        kit_boot.kind = KIT_BOOT_PVH;
        parse_pvh(ebx);
    } else {
        kit_printf("kit: unknown boot protocol (entry %u, eax 0x%x, ebx 0x%x)\n",
                   kit_entry_kind, kit_entry_eax, ebx);
    }
    kit_printf("kit: %s boot, guest %s, %d memory regions, ram end 0x%lx\n",
               kit_boot_kind_name(), kit_guest_name, kit_boot.nmem, kit_ram_end());

    kit_map_identity(kit_ram_end());
    kit_acpi_init();
    kit_main();
    kit_pass();
}
