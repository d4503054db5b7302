/* Vessel guest kit: ACPI PM timer, PIT, RTC periodic interrupt, LAPIC timer. */
#include "kit.h"

static uint32_t pm_last;
static uint64_t pm_high;

bool kit_pmtmr_present(void)
{
    return kit_acpi.pm_tmr != 0;
}

uint32_t kit_pmtmr_read(void)
{
    uint32_t v = inl((uint16_t)kit_acpi.pm_tmr);
    return kit_acpi.tmr_ext ? v : v & 0xffffff;
}

uint64_t kit_pmtmr_ticks(void)
{
    uint32_t v = kit_pmtmr_read();
    uint64_t span = kit_acpi.tmr_ext ? 1ULL << 32 : 1ULL << 24;
    if (v < pm_last)
        pm_high += span;
    pm_last = v;
    return pm_high + v;
}

void kit_udelay(uint64_t us)
{
    if (!kit_pmtmr_present()) {
        for (uint64_t i = 0; i < us; i++)
            io_delay(); /* about 1 us per access on a PC; a guess anywhere else */
        return;
    }
    uint64_t start = kit_pmtmr_ticks();
    uint64_t want = us * KIT_PMTMR_HZ / 1000000 + 1;
    while (kit_pmtmr_ticks() - start < want)
        cpu_relax();
}

/* ---- PIT --------------------------------------------------------------- */

void kit_pit_periodic(uint32_t hz)
{
    uint32_t div = (uint32_t)((KIT_PIT_HZ + hz / 2) / hz);
    if (div > 65535)
        div = 0; /* 65536 */
    outb(0x43, 0x34); /* channel 0, lobyte/hibyte, mode 2, binary */
    outb(0x40, (uint8_t)div);
    outb(0x40, (uint8_t)(div >> 8));
}

void kit_pit_stop(void)
{
    outb(0x43, 0x30); /* channel 0, mode 0: one shot, then quiet */
    outb(0x40, 0xff);
    outb(0x40, 0xff);
}

/* ---- RTC --------------------------------------------------------------- */

void kit_rtc_periodic(uint8_t rate)
{
    uint8_t a = kit_cmos_read(0x0a);
    kit_cmos_write(0x0a, (uint8_t)((a & 0xf0) | (rate & 0x0f)));
    uint8_t b = kit_cmos_read(0x0b);
    kit_cmos_write(0x0b, (uint8_t)(b | 0x40)); /* PIE */
    kit_rtc_ack();
}

void kit_rtc_stop(void)
{
    uint8_t b = kit_cmos_read(0x0b);
    kit_cmos_write(0x0b, (uint8_t)(b & ~0x40));
    kit_rtc_ack();
}

uint8_t kit_rtc_ack(void)
{
    return kit_cmos_read(0x0c);
}

/* ---- LAPIC timer ------------------------------------------------------- */

#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR 0x390
#define LAPIC_TIMER_DIV 0x3e0

uint64_t kit_lapic_timer_calibrate(void)
{
    if (!kit_pmtmr_present())
        return 0;
    kit_lapic_enable();
    kit_lapic_write(LAPIC_TIMER_DIV, 0x3);          /* divide by 16 */
    kit_lapic_write(LAPIC_LVT_TIMER, 1u << 16 | KIT_VEC_LAPIC_TIMER); /* masked, one-shot */
    uint64_t t0 = kit_pmtmr_ticks();
    while (kit_pmtmr_ticks() == t0)
        ;
    t0 = kit_pmtmr_ticks();
    kit_lapic_write(LAPIC_TIMER_INIT, 0xffffffff);
    uint64_t want = KIT_PMTMR_HZ / 20; /* 50 ms */
    uint64_t t1;
    while ((t1 = kit_pmtmr_ticks()) - t0 < want)
        cpu_relax();
    uint32_t cur = kit_lapic_read(LAPIC_TIMER_CUR);
    kit_lapic_write(LAPIC_TIMER_INIT, 0);
    uint64_t elapsed = 0xffffffffu - cur;
    return elapsed * KIT_PMTMR_HZ / (t1 - t0);
}

void kit_lapic_timer_periodic(uint64_t ticks_per_sec, uint32_t hz, uint8_t vector)
{
    kit_lapic_enable();
    kit_lapic_write(LAPIC_TIMER_DIV, 0x3);
    kit_lapic_write(LAPIC_LVT_TIMER, 1u << 17 | vector); /* periodic */
    uint64_t count = ticks_per_sec / hz;
    kit_lapic_write(LAPIC_TIMER_INIT, (uint32_t)(count ? count : 1));
}

void kit_lapic_timer_stop(void)
{
    kit_lapic_write(LAPIC_TIMER_INIT, 0);
    kit_lapic_write(LAPIC_LVT_TIMER, 1u << 16);
}
