/* MC146818 real-time clock and CMOS RAM (ports 0x70/0x71, IRQ 8), with the
 * PC's second 128-byte bank at 0x72/0x73. */
#pragma once

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/irq.h"
#include "vmm-core/kvm/clock.h"

G_BEGIN_DECLS

#define RTC_DEFAULT_BASE 0x70
#define RTC_NUM_PORTS 4 /* 0x70 index, 0x71 data, 0x72 index, 0x73 data */
#define RTC_IRQ 8
#define RTC_NVRAM_SIZE 256 /* two banks of 128 */
#define RTC_CENTURY_REG 0x32 /* the PC convention; ACPI FADT CENTURY */

typedef struct rtc rtc;

/* The clock starts at the host's UTC time plus @offset_seconds. @clock
 * drives the periodic, update-ended and alarm interrupts. */
rtc *rtc_create (vmm_clock *clock, const vmm_irq *irq, int64_t offset_seconds);
vmm_device *rtc_device (rtc *rtc);
/* Claims the four ports at @base (0x70). */
gboolean rtc_attach (rtc *rtc, vmm_bus *pio, uint16_t base, GError **error);

/* CMOS bytes for the board (memory size, CPU count, boot order…).
 * @index 0x0e..0x7f is the first bank (0x32 is the century, kept by the
 * clock), 0x80..0xff the extended bank; the clock registers 0x00..0x0d are
 * ignored here. Take the RTC's lock. */
void rtc_nvram_set (rtc *rtc, unsigned index, uint8_t value);
uint8_t rtc_nvram_get (rtc *rtc, unsigned index);

/* The guest's wall clock, in seconds since 1970-01-01 00:00 UTC. Setting
 * it starts a new second now. */
void rtc_set_time (rtc *rtc, int64_t unix_seconds);
int64_t rtc_get_time (rtc *rtc);

G_END_DECLS
