/*
 * selftest: checks the kit itself: formatting, boot information, ACPI
 * parsing, PCI access, the CPL3 call (and its speed).
 */
#include "kit.h"

KIT_GUEST("selftest");

static int checks, failed;

static void check(bool ok, const char *what)
{
    checks++;
    if (!ok) {
        failed++;
        kit_printf("kit: selftest FAILED: %s\n", what);
    }
}

static void check_fmt(const char *want, const char *fmt, ...) KIT_PRINTF(2, 3);
static void check_fmt(const char *want, const char *fmt, ...)
{
    char buf[64];
    va_list ap;
    va_start(ap, fmt);
    kit_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    checks++;
    if (strcmp(buf, want)) {
        failed++;
        kit_printf("kit: selftest FAILED: format \"%s\" gave \"%s\", want \"%s\"\n", fmt, buf,
                   want);
    }
}

static bool count_pci(const struct kit_pci_dev *d, void *ctx)
{
    (*(int *)ctx)++;
    return true;
}

static uint64_t user_double(uint64_t x)
{
    return 2 * x + 1;
}

static uint64_t user_spin(uint64_t n)
{
    uint64_t acc = 0;
    for (uint64_t i = 0; i < n; i++) {
        acc += i ^ (acc >> 3);
        __asm__ volatile("" : "+r"(acc));
    }
    return acc;
}

void kit_main(void)
{
    check_fmt("-5 42 2a 2A", "%d %u %x %X", -5, 42u, 42u, 42u);
    check_fmt("00000000deadbeef", "%016lx", 0xdeadbeefUL);
    check_fmt("[ab  ] [  ab] [  -7] [-7  ]", "[%-4s] [%4s] [%4d] [%-4d]", "ab", "ab", -7, -7);
    check_fmt("x % 0x10", "%c %% %p", 'x', (void *)16);
    check_fmt("-9223372036854775808", "%ld", (int64_t)(-9223372036854775807L - 1));
    check_fmt("18446744073709551615 0xff", "%lu %#x", ~0UL, 255u);
    char small[4];
    check(kit_snprintf(small, sizeof(small), "%s", "hello") == 5 && !strcmp(small, "hel"),
          "snprintf truncation");

    check(kit_boot.kind != KIT_BOOT_UNKNOWN, "boot protocol recognised");
    check(kit_boot.nmem > 0 && kit_ram_end() > (2u << 20), "memory map");
    check(kit_acpi.found && kit_acpi.fadt && kit_acpi.madt && kit_acpi.dsdt, "ACPI tables");
    check(kit_acpi.pm1a_cnt && kit_acpi.pm_tmr && kit_acpi.have_s5, "FADT blocks and _S5");
    check(kit_acpi.ncpus >= 1 && kit_acpi.nioapics >= 1, "MADT CPUs and IOAPIC");
    int npci = 0;
    kit_pci_scan(count_pci, &npci);
    check(npci >= 1, "PCI host bridge visible");

    check(kit_user_call(user_double, 20) == 41, "CPL3 call result");
    uint64_t t0 = kit_pmtmr_ticks();
    uint64_t n = 200000000;
    kit_user_call(user_spin, n);
    uint64_t dt = kit_pmtmr_ticks() - t0;
    uint64_t ms = dt * 1000 / KIT_PMTMR_HZ;
    kit_printf("kit: CPL3 loop: %lu iterations in %lu ms\n", n, ms);
    check(kit_user_call(user_double, 1) == 3, "CPL3 call again");

    kit_printf("KIT: selftest checks=%d failed=%d\n", checks, failed);
    if (failed)
        kit_fail("%d of %d checks failed", failed, checks);
    kit_pass();
}
