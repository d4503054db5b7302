/* Vessel guest kit: AP bring-up with INIT/SIPI/SIPI. */
#include "kit.h"

extern char kit_tramp_start[], kit_tramp_end[];
extern uint64_t kit_tramp_cr3, kit_tramp_stack, kit_tramp_entry;
extern char kit_ap_stacks[];
extern char kit_ap_entry64[];

#define AP_STACK_SIZE 8192
#define ICR_LO 0x300
#define ICR_HI 0x310

volatile uint32_t kit_smp_online_ids[KIT_MAX_CPUS];
volatile int kit_smp_online;
static volatile int ap_started;
static volatile int ap_index;
static void (*ap_func)(int);

void kit_ap_main(void);
void kit_ap_main(void)
{
    int idx = ap_index;
    kit_idt_load();
    uint32_t a, b, c, d;
    cpuid(1, 0, &a, &b, &c, &d);
    uint32_t id = b >> 24;
    int n = __atomic_fetch_add(&kit_smp_online, 1, __ATOMIC_SEQ_CST);
    if (n < KIT_MAX_CPUS)
        kit_smp_online_ids[n] = id;
    __atomic_store_n(&ap_started, 1, __ATOMIC_RELEASE);
    if (ap_func)
        ap_func(idx);
    kit_halt();
}

static void icr_wait(void)
{
    for (int i = 0; i < 100000 && (kit_lapic_read(ICR_LO) & (1u << 12)); i++)
        cpu_relax();
}

static void send_ipi(uint32_t apic_id, uint32_t lo)
{
    kit_lapic_write(ICR_HI, apic_id << 24);
    kit_lapic_write(ICR_LO, lo);
    icr_wait();
}

int kit_smp_boot(void (*ap_fn)(int cpu_index))
{
    kit_lapic_enable();
    uint32_t self = kit_lapic_id();
    ap_func = ap_fn;
    kit_smp_online = 1;
    kit_smp_online_ids[0] = self;

    size_t tlen = (size_t)(kit_tramp_end - kit_tramp_start);
    uint8_t *tramp = (uint8_t *)(uintptr_t)KIT_TRAMPOLINE_BASE;
    memcpy(tramp, kit_tramp_start, tlen);
    uint64_t *cr3 = (uint64_t *)(tramp + ((char *)&kit_tramp_cr3 - kit_tramp_start));
    uint64_t *stk = (uint64_t *)(tramp + ((char *)&kit_tramp_stack - kit_tramp_start));
    uint64_t *ent = (uint64_t *)(tramp + ((char *)&kit_tramp_entry - kit_tramp_start));
    *cr3 = read_cr3();
    *ent = (uint64_t)(uintptr_t)kit_ap_entry64;

    int next = 1;
    for (int i = 0; i < kit_acpi.ncpus; i++) {
        uint32_t id = kit_acpi.cpu_apic_id[i];
        if (id == self)
            continue;
        if (id > 0xfe) {
            kit_printf("kit: cpu apic=%u needs x2APIC; skipped\n", id);
            continue;
        }
        if (next >= KIT_MAX_CPUS)
            break;
        ap_index = next;
        *stk = (uint64_t)(uintptr_t)(kit_ap_stacks + (size_t)next * AP_STACK_SIZE);
        *stk += AP_STACK_SIZE;
        ap_started = 0;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);

        send_ipi(id, 0x00004500);   /* INIT, level assert */
        kit_udelay(10000);
        for (int s = 0; s < 2 && !ap_started; s++) {
            send_ipi(id, 0x00004600 | (KIT_TRAMPOLINE_BASE >> 12)); /* SIPI */
            kit_udelay(s ? 1000 : 200);
        }
        /* Wait up to 1 s: the AP's real-mode path is instruction-emulated. */
        for (int t = 0; t < 1000 && !ap_started; t++)
            kit_udelay(1000);
        if (!ap_started)
            kit_printf("kit: cpu apic=%u did not start\n", id);
        next++;
    }
    return kit_smp_online;
}
