/* Vessel guest kit: GDT/TSS, IDT, 8259 PIC, local APIC, IOAPIC. */
#include "kit.h"

struct idt_gate {
    uint16_t off0;
    uint16_t sel;
    uint8_t ist;
    uint8_t type;
    uint16_t off1;
    uint32_t off2;
    uint32_t zero;
} __attribute__((packed));

struct tss64 {
    uint32_t reserved0;
    uint64_t rsp[3];
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap;
} __attribute__((packed));

extern uint64_t kit_gdt[7];
extern char kit_isr_stubs[];

static struct idt_gate idt[256] __attribute__((aligned(16)));
static kit_irq_handler handlers[256];
static struct tss64 tss __attribute__((aligned(16)));
static uint8_t tss_stack[16384] __attribute__((aligned(16)));
static bool idt_built;
static bool use_ioapic;
static bool force_pic;
static bool irq_via_ioapic[16];

static uint64_t lapic_base(void)
{
    return kit_acpi.lapic_addr ? kit_acpi.lapic_addr : 0xfee00000;
}

void kit_gdt_tss_init(void);
void kit_gdt_tss_init(void)
{
    tss.rsp[0] = (uint64_t)(uintptr_t)(tss_stack + sizeof(tss_stack));
    tss.iomap = sizeof(tss);
    uint64_t base = (uint64_t)(uintptr_t)&tss;
    uint64_t limit = sizeof(tss) - 1;
    kit_gdt[5] = (limit & 0xffff) | ((base & 0xffffff) << 16) | (0x89ULL << 40) |
                 (((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xff) << 56);
    kit_gdt[6] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"(0x28));
}

static void idt_build(void)
{
    for (int v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(kit_isr_stubs + 16 * v);
        idt[v] = (struct idt_gate){
            .off0 = (uint16_t)a,
            .sel = 0x08,
            .ist = 0,
            .type = 0x8e, /* present, DPL 0, 64-bit interrupt gate */
            .off1 = (uint16_t)(a >> 16),
            .off2 = (uint32_t)(a >> 32),
        };
    }
    idt_built = true;
}

void kit_idt_load(void)
{
    if (!idt_built)
        idt_build();
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) ptr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" : : "m"(ptr));
}

void kit_set_handler(uint8_t vector, kit_irq_handler h)
{
    handlers[vector] = h;
}

static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "CSO", "#TS",
    "#NP", "#SS", "#GP", "#PF", "r15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

KIT_NORETURN void kit_exception_fail(struct kit_frame *f)
{
    uint8_t v = (uint8_t)f->vector;
    const char *name = v < 32 && exc_names[v] ? exc_names[v] : "?";
    kit_printf("kit: exception %s (%u) err=0x%lx rip=0x%lx cs=0x%lx rflags=0x%lx "
               "rsp=0x%lx cr2=0x%lx\n",
               name, v, f->error, f->rip, f->cs, f->rflags, f->rsp, read_cr2());
    kit_fail("unexpected exception %u (%s) at rip 0x%lx", v, name, f->rip);
}

void kit_isr_dispatch(struct kit_frame *f);
void kit_isr_dispatch(struct kit_frame *f)
{
    uint8_t v = (uint8_t)f->vector;
    if (handlers[v]) {
        handlers[v](f);
        return;
    }
    if (v == KIT_VEC_SPURIOUS)
        return; /* LAPIC spurious: no EOI */
    if (v >= KIT_VEC_PIC_BASE && v < KIT_VEC_PIC_BASE + 16) {
        /* Unrouted 8259 interrupt (e.g. spurious IRQ 7/15): acknowledge. */
        if (v - KIT_VEC_PIC_BASE != 7 && v - KIT_VEC_PIC_BASE != 15) {
            if (v >= KIT_VEC_PIC_BASE + 8)
                outb(0xa0, 0x20);
            outb(0x20, 0x20);
        }
        return;
    }
    if (v < 32)
        kit_exception_fail(f);
    kit_printf("kit: unexpected interrupt vector 0x%x\n", v);
    kit_lapic_eoi();
}

/* ---- 8259 -------------------------------------------------------------- */

static uint16_t pic_mask = 0xffff;

void kit_pic_init(void)
{
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
    outb(0x20, 0x11); /* ICW1: edge, cascade, ICW4 */
    outb(0xa0, 0x11);
    outb(0x21, KIT_VEC_PIC_BASE);     /* ICW2: vector base */
    outb(0xa1, KIT_VEC_PIC_BASE + 8);
    outb(0x21, 0x04); /* ICW3: slave on IRQ 2 */
    outb(0xa1, 0x02);
    outb(0x21, 0x01); /* ICW4: 8086 mode */
    outb(0xa1, 0x01);
    pic_mask = 0xffff;
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}

void kit_pic_mask(uint8_t irq, bool masked)
{
    if (masked)
        pic_mask |= (uint16_t)(1u << irq);
    else
        pic_mask &= (uint16_t)~(1u << irq);
    if (irq >= 8 && !masked)
        pic_mask &= (uint16_t)~(1u << 2); /* cascade */
    outb(0x21, (uint8_t)pic_mask);
    outb(0xa1, (uint8_t)(pic_mask >> 8));
}

/* ---- local APIC (xAPIC, MMIO) ------------------------------------------ */

uint32_t kit_lapic_read(uint32_t reg)
{
    return mmio_read32(lapic_base() + reg);
}

void kit_lapic_write(uint32_t reg, uint32_t v)
{
    mmio_write32(lapic_base() + reg, v);
}

void kit_lapic_enable(void)
{
    uint64_t apic_msr = rdmsr(0x1b);
    if (!(apic_msr & (1u << 11)))
        wrmsr(0x1b, apic_msr | (1u << 11));
    kit_lapic_write(0x80, 0);                         /* TPR: accept all */
    kit_lapic_write(0xf0, 0x100 | KIT_VEC_SPURIOUS);  /* SVR: enable */
}

uint32_t kit_lapic_id(void)
{
    return kit_lapic_read(0x20) >> 24;
}

void kit_lapic_eoi(void)
{
    kit_lapic_write(0xb0, 0);
}

/* ---- IOAPIC -------------------------------------------------------------- */

static uint32_t ioapic_read(int idx, uint32_t reg)
{
    uint64_t base = kit_acpi.ioapic[idx].addr;
    mmio_write32(base, reg);
    return mmio_read32(base + 0x10);
}

static void ioapic_write(int idx, uint32_t reg, uint32_t v)
{
    uint64_t base = kit_acpi.ioapic[idx].addr;
    mmio_write32(base, reg);
    mmio_write32(base + 0x10, v);
}

void kit_ioapic_write_redir(int idx, uint32_t pin, uint64_t entry)
{
    ioapic_write(idx, 0x10 + 2 * pin, (uint32_t)entry | (1u << 16)); /* masked first */
    ioapic_write(idx, 0x11 + 2 * pin, (uint32_t)(entry >> 32));
    ioapic_write(idx, 0x10 + 2 * pin, (uint32_t)entry);
}

static bool gsi_to_pin(uint32_t gsi, int *idx, uint32_t *pin)
{
    for (int i = 0; i < kit_acpi.nioapics; i++) {
        struct kit_ioapic *io = &kit_acpi.ioapic[i];
        if (!io->nr_pins)
            io->nr_pins = ((ioapic_read(i, 1) >> 16) & 0xff) + 1;
        if (gsi >= io->gsi_base && gsi < io->gsi_base + io->nr_pins) {
            *idx = i;
            *pin = gsi - io->gsi_base;
            return true;
        }
    }
    return false;
}

static void isa_irq_gsi(uint8_t irq, uint32_t *gsi, bool *level, bool *low)
{
    *gsi = irq;
    *level = false;
    *low = false;
    for (int i = 0; i < kit_acpi.nisos; i++) {
        if (kit_acpi.iso[i].irq != irq)
            continue;
        uint16_t fl = kit_acpi.iso[i].flags;
        *gsi = kit_acpi.iso[i].gsi;
        *low = (fl & 3) == 3;
        *level = ((fl >> 2) & 3) == 3;
    }
}

bool kit_irq_uses_ioapic(void)
{
    return kit_acpi.nioapics > 0 && !force_pic;
}

void kit_irq_force_pic(bool on)
{
    force_pic = on;
}

void kit_irq_route(uint8_t irq, kit_irq_handler h)
{
    static bool pic_done;
    if (!pic_done) {
        kit_pic_init(); /* remap away from the exception vectors, all masked */
        pic_done = true;
    }
    kit_set_handler(KIT_VEC_IRQ_BASE + irq, h);
    kit_set_handler(KIT_VEC_PIC_BASE + irq, h);
    use_ioapic = kit_irq_uses_ioapic();
    if (use_ioapic) {
        kit_lapic_enable();
        uint32_t gsi, pin;
        bool level, low;
        int idx;
        isa_irq_gsi(irq, &gsi, &level, &low);
        if (gsi_to_pin(gsi, &idx, &pin)) {
            uint64_t e = (KIT_VEC_IRQ_BASE + irq) | (low ? 1u << 13 : 0) |
                         (level ? 1u << 15 : 0) | ((uint64_t)kit_lapic_id() << 56);
            kit_ioapic_write_redir(idx, pin, e);
            irq_via_ioapic[irq] = true;
            return;
        }
        kit_printf("kit: IRQ %u (GSI %u) has no IOAPIC pin; using the 8259\n", irq, gsi);
    }
    irq_via_ioapic[irq] = false;
    /* Virtual-wire mode: the 8259's INTR reaches the CPU through LINT0. */
    kit_lapic_enable();
    kit_lapic_write(0x350, 0x700); /* LVT LINT0: ExtINT, unmasked */
    kit_lapic_write(0x360, 0x400); /* LVT LINT1: NMI */
    kit_pic_mask(irq, false);
}

void kit_irq_mask(uint8_t irq, bool masked)
{
    if (irq_via_ioapic[irq]) {
        uint32_t gsi, pin;
        bool level, low;
        int idx;
        isa_irq_gsi(irq, &gsi, &level, &low);
        if (gsi_to_pin(gsi, &idx, &pin)) {
            uint32_t lo = ioapic_read(idx, 0x10 + 2 * pin);
            ioapic_write(idx, 0x10 + 2 * pin, masked ? lo | (1u << 16) : lo & ~(1u << 16));
        }
    } else {
        kit_pic_mask(irq, masked);
    }
}

void kit_irq_eoi(uint8_t irq)
{
    if (irq_via_ioapic[irq]) {
        kit_lapic_eoi();
        return;
    }
    if (irq >= 8)
        outb(0xa0, 0x20);
    outb(0x20, 0x20);
}
