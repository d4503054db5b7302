/*
 * memmap: print the boot memory map (multiboot mmap or PVH memmap), sum the
 * usable RAM, then write a pattern at probes spread over all usable RAM
 * (including above 4 GiB) and verify it after all writes (which also catches
 * aliasing). The pattern loops run at CPL3, natively on a paravirtual KVM.
 */
#include "kit.h"

KIT_GUEST("memmap");

#define MAX_PROBES 256
#define PROBE_BYTES (64 * 1024)
#define MIB ((uint64_t)1 << 20)

struct probe_job {
    int n;
    uint64_t addr[MAX_PROBES];
    uint64_t bad_addr, bad_val, bad_want;
    uint64_t seed;
};

static struct probe_job job;

static inline uint64_t pattern(uint64_t a, uint64_t seed)
{
    return (a * 0x9e3779b97f4a7c15ULL) ^ seed;
}

static uint64_t user_write(uint64_t arg)
{
    struct probe_job *j = (struct probe_job *)(uintptr_t)arg;
    for (int i = 0; i < j->n; i++) {
        volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)j->addr[i];
        for (uint64_t k = 0; k < PROBE_BYTES / 8; k++)
            p[k] = pattern(j->addr[i] + 8 * k, j->seed);
    }
    return 0;
}

static uint64_t user_verify(uint64_t arg)
{
    struct probe_job *j = (struct probe_job *)(uintptr_t)arg;
    uint64_t bad = 0;
    for (int i = 0; i < j->n; i++) {
        volatile uint64_t *p = (volatile uint64_t *)(uintptr_t)j->addr[i];
        for (uint64_t k = 0; k < PROBE_BYTES / 8; k++) {
            uint64_t want = pattern(j->addr[i] + 8 * k, j->seed);
            uint64_t v = p[k];
            if (v != want) {
                if (!bad) {
                    j->bad_addr = j->addr[i] + 8 * k;
                    j->bad_val = v;
                    j->bad_want = want;
                }
                bad++;
            }
        }
    }
    return bad;
}

static bool overlaps(uint64_t a, uint64_t len, uint64_t b, uint64_t blen)
{
    return a < b + blen && b < a + len;
}

static void add_probe(uint64_t a)
{
    uint64_t kstart = (uint64_t)(uintptr_t)_kernel_start;
    uint64_t kend = (uint64_t)(uintptr_t)_kernel_end;
    if (job.n >= MAX_PROBES || overlaps(a, PROBE_BYTES, kstart, kend - kstart))
        return;
    for (int i = 0; i < job.n; i++)
        if (overlaps(a, PROBE_BYTES, job.addr[i], PROBE_BYTES))
            return;
    job.addr[job.n++] = a;
}

void kit_main(void)
{
    if (!kit_boot.nmem)
        kit_fail("no memory map from the loader");
    kit_printf("kit: memory map from %s (%s):\n", kit_boot_kind_name(),
               kit_boot.mem_from_map ? "map" : "mem_lower/mem_upper only");
    uint64_t total = 0, below = 0, above = 0;
    for (int i = 0; i < kit_boot.nmem; i++) {
        const struct kit_mem_region *r = &kit_boot.mem[i];
        kit_printf("kit: mem 0x%016lx-0x%016lx %s (%u)\n", r->base, r->base + r->len - 1,
                   kit_mem_type_name(r->type), r->type);
        if (r->type != KIT_MEM_RAM)
            continue;
        total += r->len;
        uint64_t end = r->base + r->len;
        if (r->base < (4ULL << 30))
            below += (end < (4ULL << 30) ? end : (4ULL << 30)) - r->base;
        if (end > (4ULL << 30))
            above += end - (r->base > (4ULL << 30) ? r->base : (4ULL << 30));
    }
    kit_printf("KIT: ram total=%lu MiB below4g=%lu MiB above4g=%lu MiB\n", total / MIB,
               below / MIB, above / MIB);
    if (!total)
        kit_fail("no usable RAM in the map");

    /* Probes: the first and last 64 KiB of every usable region above 1 MiB,
     * and evenly spaced ones in between. */
    uint64_t mapped = kit_mapped_end();
    uint64_t step = total / (MAX_PROBES / 2);
    if (step < 16 * MIB)
        step = 16 * MIB;
    step &= ~(PROBE_BYTES - 1);
    int skipped = 0;
    for (int i = 0; i < kit_boot.nmem; i++) {
        const struct kit_mem_region *r = &kit_boot.mem[i];
        if (r->type != KIT_MEM_RAM)
            continue;
        uint64_t lo = (r->base + PROBE_BYTES - 1) & ~(uint64_t)(PROBE_BYTES - 1);
        uint64_t hi = (r->base + r->len) & ~(uint64_t)(PROBE_BYTES - 1);
        if (lo < MIB)
            lo = MIB;
        if (hi > mapped) {
            skipped++;
            hi = mapped;
        }
        if (hi < lo + PROBE_BYTES)
            continue;
        add_probe(lo);
        for (uint64_t a = lo + step; a + PROBE_BYTES < hi; a += step)
            add_probe(a);
        add_probe(hi - PROBE_BYTES);
    }
    if (skipped)
        kit_printf("kit: RAM above the %lu GiB identity map not probed\n", mapped >> 30);
    int n_above = 0;
    uint64_t highest = 0;
    for (int i = 0; i < job.n; i++) {
        n_above += job.addr[i] >= (4ULL << 30);
        if (job.addr[i] > highest)
            highest = job.addr[i];
    }
    kit_printf("kit: %d probes of %u KiB (%d above 4 GiB, highest 0x%lx)\n", job.n,
               PROBE_BYTES / 1024, n_above, highest);
    if (!job.n)
        kit_fail("no RAM to probe");
    if (above && !n_above)
        kit_fail("RAM above 4 GiB but no probe there");

    job.seed = rdtsc() | 1;
    uint64_t t0 = kit_pmtmr_present() ? kit_pmtmr_ticks() : 0;
    kit_user_call(user_write, (uint64_t)(uintptr_t)&job);
    uint64_t bad = kit_user_call(user_verify, (uint64_t)(uintptr_t)&job);
    if (kit_pmtmr_present())
        kit_printf("kit: write+verify at CPL3 took %lu ms\n",
                   (kit_pmtmr_ticks() - t0) * 1000 / KIT_PMTMR_HZ);
    kit_printf("KIT: mem pattern probes=%d bad=%lu\n", job.n, bad);
    if (bad)
        kit_fail("%lu bad qwords; first at 0x%lx: 0x%lx, want 0x%lx", bad, job.bad_addr,
                 job.bad_val, job.bad_want);
    kit_pass();
}
