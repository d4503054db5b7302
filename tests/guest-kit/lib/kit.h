/*
 * Vessel guest kit: the runtime shared by all test guests.
 *
 * A guest is one C file that defines
 *
 *     KIT_GUEST("name");
 *     void kit_main(void) { ...; kit_pass(); }
 *
 * kit_main() runs on the boot CPU in 64-bit long mode at CPL0 with interrupts
 * disabled, an identity map of all RAM (2 MiB pages), COM1 initialised, the
 * boot information parsed (kit_boot) and the ACPI tables walked (kit_acpi).
 * It ends with kit_pass() or kit_fail(), which print the result line and
 * power the machine off through ACPI.  Returning from kit_main() is a pass.
 */
#ifndef KIT_H
#define KIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

#define KIT_GUEST(n) const char kit_guest_name[] = n
extern const char kit_guest_name[];
void kit_main(void);

#define KIT_NORETURN __attribute__((noreturn))
#define KIT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- results ---------------------------------------------------------- */
KIT_NORETURN void kit_pass(void);
KIT_NORETURN KIT_PRINTF(1, 2) void kit_fail(const char *fmt, ...);
KIT_NORETURN void kit_halt(void);

/* ---- console (console.c) ---------------------------------------------- */
void kit_serial_init(void);
void kit_serial_putc(char c);
void kit_debugcon_putc(char c);
void kit_debugcon_puts(const char *s);
/* printf to COM1; %d %i %u %x %X %p %s %c %%, flags '-' '0', width, l/ll/z. */
KIT_PRINTF(1, 2) int kit_printf(const char *fmt, ...);
int kit_vprintf(const char *fmt, va_list ap);
KIT_PRINTF(1, 2) int kit_dprintf(const char *fmt, ...); /* to debugcon 0x402 */
KIT_PRINTF(3, 4) int kit_snprintf(char *buf, size_t size, const char *fmt, ...);
int kit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- string.c ---------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* ---- boot information (boot.c) ---------------------------------------- */
enum kit_boot_kind { KIT_BOOT_UNKNOWN = 0, KIT_BOOT_MULTIBOOT = 1, KIT_BOOT_PVH = 2 };

/* Memory types as in the e820 map (and PVH's memmap). */
#define KIT_MEM_RAM 1
#define KIT_MEM_RESERVED 2
#define KIT_MEM_ACPI 3
#define KIT_MEM_NVS 4
#define KIT_MEM_UNUSABLE 5

struct kit_mem_region {
    uint64_t base;
    uint64_t len;
    uint32_t type;
};

#define KIT_MAX_MEM 64

struct kit_boot_info {
    enum kit_boot_kind kind;
    uint32_t raw_ptr;        /* EBX at entry */
    uint64_t rsdp;           /* from PVH start_info, 0 if not given */
    int nmem;
    bool mem_from_map;       /* true: a real map; false: mem_lower/mem_upper only */
    struct kit_mem_region mem[KIT_MAX_MEM];
    char cmdline[256];
};
extern struct kit_boot_info kit_boot;
const char *kit_boot_kind_name(void);
const char *kit_mem_type_name(uint32_t type);
/* Highest end address of any RAM region. */
uint64_t kit_ram_end(void);

/* Linker symbols: the loaded image (text, data, bss, stacks, page tables). */
extern char _kernel_start[], _kernel_end[];

/* ---- paging (boot.c) -------------------------------------------------- */
/* The boot map covers [0, 4 GiB); kit_start() extends it over all RAM.
 * Maps [0, end) 1:1 with 2 MiB pages, up to KIT_MAP_LIMIT. Returns the end
 * actually mapped. */
#define KIT_MAP_LIMIT ((uint64_t)64 << 30)
uint64_t kit_map_identity(uint64_t end);
uint64_t kit_mapped_end(void);

/* ---- ACPI (acpi.c) ---------------------------------------------------- */
#define KIT_MAX_CPUS 64
#define KIT_MAX_IOAPICS 8
#define KIT_MAX_ISOS 24

struct kit_ioapic {
    uint8_t id;
    uint32_t addr;
    uint32_t gsi_base;
    uint32_t nr_pins;
};

struct kit_iso {
    uint8_t irq;
    uint32_t gsi;
    uint16_t flags; /* MPS INTI flags: polarity bits 1:0, trigger bits 3:2 */
};

struct kit_acpi_info {
    bool found;
    uint64_t rsdp, rsdt, xsdt, fadt, madt, dsdt;
    uint8_t rsdp_rev;
    /* FADT */
    uint16_t sci_irq;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint32_t pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm_tmr;
    bool tmr_ext;      /* 32-bit PM timer */
    uint32_t fadt_flags;
    /* FADT reset register (if FADT flag RESET_REG_SUP) */
    bool reset_sup;
    uint8_t reset_space;
    uint64_t reset_addr;
    uint8_t reset_value;
    /* DSDT _S5 */
    bool have_s5;
    uint8_t slp_typa, slp_typb;
    /* MADT */
    uint64_t lapic_addr;
    bool pcat_compat;
    int ncpus;                        /* enabled LAPIC / x2APIC entries */
    uint32_t cpu_apic_id[KIT_MAX_CPUS];
    int nioapics;
    struct kit_ioapic ioapic[KIT_MAX_IOAPICS];
    int nisos;
    struct kit_iso iso[KIT_MAX_ISOS];
};
extern struct kit_acpi_info kit_acpi;

void kit_acpi_init(void);
/* Find a table by signature (first match), 0 if absent. */
uint64_t kit_acpi_find(const char sig[4]);
void kit_acpi_print(void);
/* Power off through PM1a/PM1b_CNT with _S5's SLP_TYP. Returns only on failure. */
void kit_acpi_poweroff(void);

/* ---- power and reset (power.c) --------------------------------------- */
KIT_NORETURN void kit_poweroff(void);
void kit_reset_cf9(void);
void kit_reset_i8042(void);
KIT_NORETURN void kit_reset_triple_fault(void);
uint8_t kit_cmos_read(uint8_t idx);
void kit_cmos_write(uint8_t idx, uint8_t v);

/* ---- PCI (pci.c), configuration mechanism #1 -------------------------- */
uint32_t kit_pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
uint16_t kit_pci_read16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
uint8_t kit_pci_read8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
void kit_pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint32_t v);
void kit_pci_write16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint16_t v);
void kit_pci_write8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint8_t v);

struct kit_pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint8_t class_code, subclass, prog_if, header_type;
};
/* Walk bus 0 and every bus behind a PCI-PCI bridge; cb returns false to stop.
 * Returns the number of functions visited. */
int kit_pci_scan(bool (*cb)(const struct kit_pci_dev *d, void *ctx), void *ctx);

/* ---- interrupts (intr.c) ---------------------------------------------- */
struct kit_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
typedef void (*kit_irq_handler)(struct kit_frame *f);

#define KIT_VEC_PIC_BASE 0x20   /* 8259 IRQ n -> 0x20 + n (spurious only) */
#define KIT_VEC_IRQ_BASE 0x30   /* ISA IRQ n routed through IOAPIC -> 0x30 + n */
#define KIT_VEC_LAPIC_TIMER 0x40
#define KIT_VEC_SPURIOUS 0xff

/* Load the IDT on this CPU (the BSP's is done by kit_start). */
void kit_idt_load(void);
void kit_set_handler(uint8_t vector, kit_irq_handler h);
/* Report an exception frame and fail (the default for vectors 0-31). */
KIT_NORETURN void kit_exception_fail(struct kit_frame *f);
/* Program both 8259s: IRQs to vectors 0x20-0x2f, all masked. */
void kit_pic_init(void);
void kit_pic_mask(uint8_t irq, bool masked);
/* Enable this CPU's local APIC (xAPIC, MMIO), spurious vector 0xff. */
void kit_lapic_enable(void);
uint32_t kit_lapic_id(void);
uint32_t kit_lapic_read(uint32_t reg);
void kit_lapic_write(uint32_t reg, uint32_t v);
void kit_lapic_eoi(void);
/* Route ISA IRQ irq to vector (and this CPU) through the IOAPIC, honouring
 * the MADT interrupt source overrides; with no IOAPIC, use the 8259 with
 * vector 0x20+irq instead (the handler gets both). */
void kit_irq_route(uint8_t irq, kit_irq_handler h);
void kit_irq_mask(uint8_t irq, bool masked);
/* True when ISA IRQs go through the IOAPIC (false: 8259 mode). */
bool kit_irq_uses_ioapic(void);
/* Route ISA IRQs through the 8259 (virtual wire, LINT0 ExtINT) even when
 * the MADT lists an IOAPIC. Call before kit_irq_route(). */
void kit_irq_force_pic(bool on);
/* True if the command line has word w (space separated). */
bool kit_cmdline_has(const char *w);
void kit_ioapic_write_redir(int idx, uint32_t pin, uint64_t entry);
/* Send End Of Interrupt for an ISA IRQ (LAPIC or 8259, whichever routes it). */
void kit_irq_eoi(uint8_t irq);

/* ---- timers (timer.c) ------------------------------------------------- */
#define KIT_PMTMR_HZ ((uint64_t)3579545)
#define KIT_PIT_HZ ((uint64_t)1193182)
bool kit_pmtmr_present(void);
uint32_t kit_pmtmr_read(void);
/* Monotonic PM-timer ticks (wrap-extended; call at least every ~4 s). */
uint64_t kit_pmtmr_ticks(void);
void kit_udelay(uint64_t us);
/* PIT channel 0, mode 2 (rate generator) at hz. */
void kit_pit_periodic(uint32_t hz);
void kit_pit_stop(void);
/* RTC periodic interrupt: rate 3..15 (frequency 32768 >> (rate - 1)). */
void kit_rtc_periodic(uint8_t rate);
void kit_rtc_stop(void);
uint8_t kit_rtc_ack(void); /* read register C */
/* LAPIC timer: ticks per second at divide-by-16, measured against the PM timer. */
uint64_t kit_lapic_timer_calibrate(void);
void kit_lapic_timer_periodic(uint64_t ticks_per_sec, uint32_t hz, uint8_t vector);
void kit_lapic_timer_stop(void);

/* ---- SMP (smp.c) ------------------------------------------------------ */
#define KIT_TRAMPOLINE_BASE 0x8000
/* Start every enabled CPU in the MADT; returns the number online (BSP
 * included). APs run ap_fn (if non-NULL) and then halt. */
int kit_smp_boot(void (*ap_fn)(int cpu_index));
extern volatile uint32_t kit_smp_online_ids[KIT_MAX_CPUS];
extern volatile int kit_smp_online;

/* ---- CPL3 (user.c) ---------------------------------------------------- */
/* Run fn(arg) at CPL3 in 64-bit mode (native speed on a paravirtual KVM),
 * interrupts off, on a private stack; returns its return value. fn must not
 * touch ports or privileged state. Returns through ud2 + the #UD handler
 * (vector 6 is taken over by the first call). Boot CPU only. */
uint64_t kit_user_call(uint64_t (*fn)(uint64_t), uint64_t arg);

/* ---- spinlock ---------------------------------------------------------- */
typedef struct { volatile int v; } kit_spinlock;
static inline void kit_spin_lock(kit_spinlock *l)
{
    while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
        while (l->v)
            cpu_relax();
}
static inline void kit_spin_unlock(kit_spinlock *l)
{
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

#endif
