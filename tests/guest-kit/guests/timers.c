/*
 * timers: count PIT (100 Hz), LAPIC timer (100 Hz, calibrated against the
 * ACPI PM timer) and RTC periodic (64 Hz) interrupts over a PM-timer
 * measured interval; pass when each rate is within 25% of the programmed one.
 * ISA IRQs go through the IOAPIC (MADT overrides honoured); the command-line
 * word "pic" routes them through the 8259 instead.
 */
#include "kit.h"

KIT_GUEST("timers");

#define PIT_HZ 100
#define LAPIC_HZ 100
#define RTC_RATE 10 /* 32768 >> (10 - 1) = 64 Hz */
#define RTC_HZ 64
#define WINDOW_MS 500

static volatile uint64_t pit_count, lapic_count, rtc_count;

static void pit_irq(struct kit_frame *f)
{
    pit_count++;
    kit_irq_eoi(0);
}

static void rtc_irq(struct kit_frame *f)
{
    kit_rtc_ack(); /* read register C, or the RTC raises no more */
    rtc_count++;
    kit_irq_eoi(8);
}

static void lapic_irq(struct kit_frame *f)
{
    lapic_count++;
    kit_lapic_eoi();
}

static bool within(uint64_t got_milli, uint64_t want)
{
    return got_milli * 4 >= want * 1000 * 3 && got_milli * 4 <= want * 1000 * 5;
}

void kit_main(void)
{
    if (!kit_pmtmr_present())
        kit_fail("no ACPI PM timer in the FADT");
    if (kit_cmdline_has("pic"))
        kit_irq_force_pic(true);

    /* The PM timer is the reference clock; check at least that it moves. */
    uint32_t a = kit_pmtmr_read();
    for (int i = 0; i < 1000 && kit_pmtmr_read() == a; i++)
        io_delay();
    if (kit_pmtmr_read() == a)
        kit_fail("the PM timer at port 0x%x does not count", kit_acpi.pm_tmr);

    uint64_t lapic_tps = kit_lapic_timer_calibrate();
    kit_printf("kit: pm timer port 0x%x %s; lapic timer %lu Hz (divide by 16)\n",
               kit_acpi.pm_tmr, kit_acpi.tmr_ext ? "32-bit" : "24-bit", lapic_tps);
    if (lapic_tps < 1000)
        kit_fail("LAPIC timer calibration gave %lu Hz", lapic_tps);

    kit_irq_route(0, pit_irq);
    kit_irq_route(8, rtc_irq);
    kit_set_handler(KIT_VEC_LAPIC_TIMER, lapic_irq);
    kit_printf("kit: ISA IRQs through the %s\n", kit_irq_uses_ioapic() ? "IOAPIC" : "8259");

    kit_pit_periodic(PIT_HZ);
    kit_rtc_periodic(RTC_RATE);
    kit_lapic_timer_periodic(lapic_tps, LAPIC_HZ, KIT_VEC_LAPIC_TIMER);

    uint64_t want = KIT_PMTMR_HZ * WINDOW_MS / 1000;
    uint64_t t0 = kit_pmtmr_ticks(), t1;
    pit_count = lapic_count = rtc_count = 0;
    /* Poll rather than hlt, so that a machine whose timers are all dead
     * still ends the window (and fails) instead of hanging. */
    sti();
    while ((t1 = kit_pmtmr_ticks()) - t0 < want)
        cpu_relax();
    cli();
    uint64_t pit = pit_count, lapic = lapic_count, rtc = rtc_count;

    kit_lapic_timer_stop();
    kit_rtc_stop();
    kit_pit_stop();
    kit_irq_mask(0, true);
    kit_irq_mask(8, true);

    uint64_t dt = t1 - t0;
    uint64_t pit_m = pit * KIT_PMTMR_HZ * 1000 / dt;
    uint64_t lapic_m = lapic * KIT_PMTMR_HZ * 1000 / dt;
    uint64_t rtc_m = rtc * KIT_PMTMR_HZ * 1000 / dt;
    kit_printf("kit: window %lu ms: pit=%lu lapic=%lu rtc=%lu interrupts\n",
               dt * 1000 / KIT_PMTMR_HZ, pit, lapic, rtc);
    kit_printf("KIT: timer pit hz=%lu.%lu\n", pit_m / 1000, pit_m % 1000 / 100);
    kit_printf("KIT: timer lapic hz=%lu.%lu\n", lapic_m / 1000, lapic_m % 1000 / 100);
    kit_printf("KIT: timer rtc hz=%lu.%lu\n", rtc_m / 1000, rtc_m % 1000 / 100);

    if (!within(pit_m, PIT_HZ))
        kit_fail("PIT at %lu Hz, programmed %u", pit_m / 1000, PIT_HZ);
    if (!within(lapic_m, LAPIC_HZ))
        kit_fail("LAPIC timer at %lu Hz, programmed %u", lapic_m / 1000, LAPIC_HZ);
    if (!within(rtc_m, RTC_HZ))
        kit_fail("RTC at %lu Hz, programmed %u", rtc_m / 1000, RTC_HZ);
    kit_pass();
}
