/* Vessel guest kit: ACPI table walk (RSDP, RSDT/XSDT, FADT, MADT, DSDT _S5). */
#include "kit.h"

struct kit_acpi_info kit_acpi;

static uint8_t sum(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint8_t s = 0;
    while (n--)
        s += *b++;
    return s;
}

static uint32_t rd32(uint64_t a)
{
    return *(const uint32_t *)(uintptr_t)a;
}

static uint64_t rd64(uint64_t a)
{
    return *(const uint64_t *)(uintptr_t)a;
}

static bool rsdp_ok(uint64_t a)
{
    const uint8_t *p = (const uint8_t *)(uintptr_t)a;
    if (memcmp(p, "RSD PTR ", 8) || sum(p, 20))
        return false;
    if (p[15] >= 2 && rd32(a + 20) >= 36 && rd32(a + 20) < 4096 && sum(p, rd32(a + 20)))
        return false;
    return true;
}

static uint64_t scan_rsdp(uint64_t start, uint64_t end)
{
    for (uint64_t a = start; a + 20 <= end; a += 16)
        if (*(const uint64_t *)(uintptr_t)a == 0x2052545020445352ULL /* "RSD PTR " */ &&
            rsdp_ok(a))
            return a;
    return 0;
}

static uint64_t find_rsdp(void)
{
    if (kit_boot.rsdp && rsdp_ok(kit_boot.rsdp))
        return kit_boot.rsdp;
    uint64_t bda = 0x40e; /* EBDA segment in the BIOS data area */
    __asm__("" : "+r"(bda)); /* hide the small constant address from -Warray-bounds */
    uint64_t ebda = (uint64_t)mmio_read16(bda) << 4;
    if (ebda >= 0x80000 && ebda < 0xa0000) {
        uint64_t a = scan_rsdp(ebda, ebda + 1024);
        if (a)
            return a;
    }
    return scan_rsdp(0xe0000, 0x100000);
}

static bool table_ok(uint64_t a)
{
    if (!a)
        return false;
    uint32_t len = rd32(a + 4);
    return len >= 36 && !sum((const void *)(uintptr_t)a, len);
}

uint64_t kit_acpi_find(const char sig[4])
{
    if (!kit_acpi.found)
        return 0;
    if (kit_acpi.xsdt) {
        uint32_t n = (rd32(kit_acpi.xsdt + 4) - 36) / 8;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t t = rd64(kit_acpi.xsdt + 36 + 8 * i);
            if (t && !memcmp((const void *)(uintptr_t)t, sig, 4))
                return t;
        }
    } else if (kit_acpi.rsdt) {
        uint32_t n = (rd32(kit_acpi.rsdt + 4) - 36) / 4;
        for (uint32_t i = 0; i < n; i++) {
            uint64_t t = rd32(kit_acpi.rsdt + 36 + 4 * i);
            if (t && !memcmp((const void *)(uintptr_t)t, sig, 4))
                return t;
        }
    }
    return 0;
}

/* Generic Address Structure at a: I/O space only (0 otherwise). */
static uint32_t gas_io(uint64_t a)
{
    const uint8_t *g = (const uint8_t *)(uintptr_t)a;
    if (g[0] != 1)
        return 0;
    return (uint32_t)rd64(a + 4);
}

static void parse_fadt(uint64_t f)
{
    uint32_t len = rd32(f + 4);
    const uint8_t *b = (const uint8_t *)(uintptr_t)f;
    kit_acpi.fadt = f;
    kit_acpi.dsdt = rd32(f + 40);
    if (len >= 148 && rd64(f + 140))
        kit_acpi.dsdt = rd64(f + 140);
    kit_acpi.sci_irq = *(const uint16_t *)(b + 46);
    kit_acpi.smi_cmd = rd32(f + 48);
    kit_acpi.acpi_enable = b[52];
    kit_acpi.pm1a_evt = rd32(f + 56);
    kit_acpi.pm1b_evt = rd32(f + 60);
    kit_acpi.pm1a_cnt = rd32(f + 64);
    kit_acpi.pm1b_cnt = rd32(f + 68);
    kit_acpi.pm_tmr = rd32(f + 76);
    if (len >= 116)
        kit_acpi.fadt_flags = rd32(f + 112);
    kit_acpi.tmr_ext = kit_acpi.fadt_flags & (1u << 8);
    if (len >= 129 && (kit_acpi.fadt_flags & (1u << 10))) {
        kit_acpi.reset_sup = true;
        kit_acpi.reset_space = b[116];
        kit_acpi.reset_addr = rd64(f + 120);
        kit_acpi.reset_value = b[128];
    }
    if (len >= 184 && !kit_acpi.pm1a_cnt)
        kit_acpi.pm1a_cnt = gas_io(f + 172);
    if (len >= 196 && !kit_acpi.pm1b_cnt)
        kit_acpi.pm1b_cnt = gas_io(f + 184);
    if (len >= 220 && !kit_acpi.pm_tmr)
        kit_acpi.pm_tmr = gas_io(f + 208);
}

/* Read one AML integer constant at p (ZeroOp, OneOp, OnesOp, BytePrefix,
 * WordPrefix, DWordPrefix); returns its length or 0. */
static int aml_int(const uint8_t *p, uint32_t *v)
{
    switch (p[0]) {
    case 0x00:
        *v = 0;
        return 1;
    case 0x01:
        *v = 1;
        return 1;
    case 0xff:
        *v = 0xffffffff;
        return 1;
    case 0x0a:
        *v = p[1];
        return 2;
    case 0x0b:
        *v = p[1] | (uint32_t)p[2] << 8;
        return 3;
    case 0x0c:
        *v = p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
        return 5;
    default:
        return 0;
    }
}

static void find_s5(uint64_t dsdt)
{
    if (!dsdt || memcmp((const void *)(uintptr_t)dsdt, "DSDT", 4))
        return;
    uint32_t len = rd32(dsdt + 4);
    const uint8_t *p = (const uint8_t *)(uintptr_t)dsdt;
    for (uint32_t i = 36; i + 8 < len; i++) {
        /* A plain word compare: CPL0 code is slow on an emulating KVM. */
        if (*(const uint32_t *)(p + i) != 0x5f35535fu /* "_S5_" */ || p[i + 4] != 0x12)
            continue;
        /* Must be a name: preceded by NameOp, or by '\' after NameOp. */
        if (!(p[i - 1] == 0x08 || (p[i - 1] == '\\' && p[i - 2] == 0x08)))
            continue;
        const uint8_t *q = p + i + 5;
        q += 1 + (q[0] >> 6); /* PkgLength */
        q++;                  /* NumElements */
        uint32_t a, b = 0;
        int n = aml_int(q, &a);
        if (!n)
            continue;
        if (!aml_int(q + n, &b))
            b = a;
        kit_acpi.slp_typa = (uint8_t)(a & 7);
        kit_acpi.slp_typb = (uint8_t)(b & 7);
        kit_acpi.have_s5 = true;
        return;
    }
}

static void parse_madt(uint64_t m)
{
    uint32_t len = rd32(m + 4);
    kit_acpi.madt = m;
    kit_acpi.lapic_addr = rd32(m + 36);
    kit_acpi.pcat_compat = rd32(m + 40) & 1;
    for (uint32_t off = 44; off + 2 <= len;) {
        const uint8_t *e = (const uint8_t *)(uintptr_t)(m + off);
        uint8_t type = e[0], elen = e[1];
        if (elen < 2 || off + elen > len)
            break;
        uint32_t apic_id = 0xffffffff;
        bool enabled = false;
        switch (type) {
        case 0: /* Processor Local APIC */
            apic_id = e[3];
            enabled = *(const uint32_t *)(e + 4) & 1;
            break;
        case 9: /* Processor Local x2APIC */
            apic_id = *(const uint32_t *)(e + 4);
            enabled = *(const uint32_t *)(e + 8) & 1;
            break;
        case 1: /* I/O APIC */
            if (kit_acpi.nioapics < KIT_MAX_IOAPICS) {
                struct kit_ioapic *io = &kit_acpi.ioapic[kit_acpi.nioapics++];
                io->id = e[2];
                io->addr = *(const uint32_t *)(e + 4);
                io->gsi_base = *(const uint32_t *)(e + 8);
                io->nr_pins = 0;
            }
            break;
        case 2: /* Interrupt Source Override */
            if (e[2] == 0 && kit_acpi.nisos < KIT_MAX_ISOS) {
                struct kit_iso *iso = &kit_acpi.iso[kit_acpi.nisos++];
                iso->irq = e[3];
                iso->gsi = *(const uint32_t *)(e + 4);
                iso->flags = *(const uint16_t *)(e + 8);
            }
            break;
        case 5: /* Local APIC Address Override */
            kit_acpi.lapic_addr = *(const uint64_t *)(e + 4);
            break;
        }
        if (enabled) {
            bool dup = false;
            for (int i = 0; i < kit_acpi.ncpus; i++)
                dup |= kit_acpi.cpu_apic_id[i] == apic_id;
            if (!dup && kit_acpi.ncpus < KIT_MAX_CPUS)
                kit_acpi.cpu_apic_id[kit_acpi.ncpus++] = apic_id;
        }
        off += elen;
    }
}

void kit_acpi_init(void)
{
    uint64_t rsdp = find_rsdp();
    if (!rsdp) {
        kit_printf("kit: no ACPI RSDP found\n");
        return;
    }
    kit_acpi.rsdp = rsdp;
    kit_acpi.rsdp_rev = *(const uint8_t *)(uintptr_t)(rsdp + 15);
    if (kit_acpi.rsdp_rev >= 2 && table_ok(rd64(rsdp + 24)))
        kit_acpi.xsdt = rd64(rsdp + 24);
    if (table_ok(rd32(rsdp + 16)))
        kit_acpi.rsdt = rd32(rsdp + 16);
    kit_acpi.found = kit_acpi.xsdt || kit_acpi.rsdt;
    if (!kit_acpi.found) {
        kit_printf("kit: ACPI RSDP at 0x%lx has no valid RSDT/XSDT\n", rsdp);
        return;
    }
    uint64_t f = kit_acpi_find("FACP");
    if (f)
        parse_fadt(f);
    find_s5(kit_acpi.dsdt);
    uint64_t m = kit_acpi_find("APIC");
    if (m)
        parse_madt(m);
}

void kit_acpi_print(void)
{
    kit_printf("kit: acpi rsdp=0x%lx rev=%u rsdt=0x%lx xsdt=0x%lx fadt=0x%lx madt=0x%lx "
               "dsdt=0x%lx\n",
               kit_acpi.rsdp, kit_acpi.rsdp_rev, kit_acpi.rsdt, kit_acpi.xsdt, kit_acpi.fadt,
               kit_acpi.madt, kit_acpi.dsdt);
    kit_printf("kit: acpi pm1a_cnt=0x%x pm1b_cnt=0x%x pm_tmr=0x%x%s sci=%u s5=%s%u/%u\n",
               kit_acpi.pm1a_cnt, kit_acpi.pm1b_cnt, kit_acpi.pm_tmr,
               kit_acpi.tmr_ext ? " (32-bit)" : "", kit_acpi.sci_irq,
               kit_acpi.have_s5 ? "" : "(missing) ", kit_acpi.slp_typa, kit_acpi.slp_typb);
    kit_printf("kit: acpi lapic=0x%lx cpus=%d ioapics=%d overrides=%d pcat=%d\n",
               kit_acpi.lapic_addr, kit_acpi.ncpus, kit_acpi.nioapics, kit_acpi.nisos,
               kit_acpi.pcat_compat);
}

void kit_acpi_poweroff(void)
{
    if (!kit_acpi.pm1a_cnt) {
        kit_printf("kit: no ACPI PM1a_CNT_BLK; cannot power off\n");
        return;
    }
    uint16_t a = (uint16_t)((kit_acpi.slp_typa & 7) << 10 | 1u << 13);
    uint16_t b = (uint16_t)((kit_acpi.slp_typb & 7) << 10 | 1u << 13);
    outw((uint16_t)kit_acpi.pm1a_cnt, (uint16_t)((inw((uint16_t)kit_acpi.pm1a_cnt) & 1) | a));
    if (kit_acpi.pm1b_cnt)
        outw((uint16_t)kit_acpi.pm1b_cnt,
             (uint16_t)((inw((uint16_t)kit_acpi.pm1b_cnt) & 1) | b));
}
