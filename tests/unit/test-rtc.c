/* MC146818 RTC/CMOS behaviour under the fake clock. */
#include "fake-clock.h"
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/rtc.h"

#define NS 1000000000ull
#define T_2024_02_29_134507 1709214307 /* a Thursday */

typedef struct {
  vmm_bus *pio;
  fake_clock *fc;
  fake_irq irq;
  rtc *rtc;
} fixture;

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->fc = fake_clock_new (5 * NS);
  vmm_irq line = fake_irq_line (&f->irq, RTC_IRQ);
  f->rtc = rtc_create (fake_clock_get (f->fc), &line, 0);
  g_assert_true (rtc_attach (f->rtc, f->pio, RTC_DEFAULT_BASE, &error));
  g_assert_no_error (error);
  rtc_set_time (f->rtc, T_2024_02_29_134507);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_device_destroy (rtc_device (f->rtc));
  fake_clock_free (f->fc);
  vmm_bus_free (f->pio);
}

static uint8_t
cmos_read (fixture *f, uint8_t index)
{
  tu_outb (f->pio, 0x70, index);
  return tu_inb (f->pio, 0x71);
}

static void
cmos_write (fixture *f, uint8_t index, uint8_t value)
{
  tu_outb (f->pio, 0x70, index);
  tu_outb (f->pio, 0x71, value);
}

static void
assert_time (fixture *f, const uint8_t expect[8])
{
  static const uint8_t regs[8] = { 0, 2, 4, 6, 7, 8, 9, 0x32 };
  for (unsigned i = 0; i < 8; i++)
    {
      uint8_t v = cmos_read (f, regs[i]);
      if (v != expect[i])
        g_error ("register 0x%02x: 0x%02x, expected 0x%02x", regs[i], v,
                 expect[i]);
    }
}

static void
test_encodings (fixture *f, gconstpointer data)
{
  /* Power-on: 24-hour BCD, divider running at 1024 Hz, RAM valid. */
  g_assert_cmphex (cmos_read (f, 0x0b), ==, 0x02);
  g_assert_cmphex (cmos_read (f, 0x0a), ==, 0x26);
  g_assert_cmphex (cmos_read (f, 0x0d), ==, 0x80);
  /* sec, min, hour, weekday (Sunday = 1), day, month, year, century */
  static const uint8_t bcd24[8] = { 0x07, 0x45, 0x13, 5, 0x29, 0x02, 0x24,
                                    0x20 };
  assert_time (f, bcd24);
  cmos_write (f, 0x0b, 0x06);
  static const uint8_t bin24[8] = { 7, 45, 13, 5, 29, 2, 24, 20 };
  assert_time (f, bin24);
  cmos_write (f, 0x0b, 0x00);
  static const uint8_t bcd12[8] = { 0x07, 0x45, 0x81, 5, 0x29, 0x02, 0x24,
                                    0x20 };
  assert_time (f, bcd12);
  cmos_write (f, 0x0b, 0x04);
  static const uint8_t bin12[8] = { 7, 45, 0x81, 5, 29, 2, 24, 20 };
  assert_time (f, bin12);
  /* Midnight and noon in 12-hour mode. */
  rtc_set_time (f->rtc, 946684800); /* 2000-01-01 00:00:00, Saturday */
  cmos_write (f, 0x0b, 0x00);
  g_assert_cmphex (cmos_read (f, 4), ==, 0x12);
  g_assert_cmphex (cmos_read (f, 6), ==, 7);
  rtc_set_time (f->rtc, 946684800 + 12 * 3600);
  g_assert_cmphex (cmos_read (f, 4), ==, 0x92);
  /* The clock runs with the vmm_clock; the year rolls over. */
  cmos_write (f, 0x0b, 0x02);
  rtc_set_time (f->rtc, 946684798); /* 1999-12-31 23:59:58 */
  fake_clock_advance (f->fc, 2 * NS);
  static const uint8_t y2k[8] = { 0x00, 0x00, 0x00, 7, 0x01, 0x01, 0x00,
                                  0x20 };
  assert_time (f, y2k);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, 946684800);
}

static void
test_set_time (fixture *f, gconstpointer data)
{
  /* Firmware's sequence: SET, write the registers, release SET. */
  cmos_write (f, 0x0b, 0x82);
  fake_clock_advance (f->fc, 3 * NS);
  /* Frozen while SET is held. */
  g_assert_cmphex (cmos_read (f, 0), ==, 0x07);
  cmos_write (f, 0, 0x30);
  cmos_write (f, 2, 0x15);
  cmos_write (f, 4, 0x08);
  cmos_write (f, 7, 0x04);
  cmos_write (f, 8, 0x07);
  cmos_write (f, 9, 0x21);
  cmos_write (f, 0x32, 0x20);
  g_assert_cmphex (cmos_read (f, 2), ==, 0x15);
  cmos_write (f, 0x0b, 0x02);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, 1625386530); /* 2021-07-04 08:15:30 */
  g_assert_cmphex (cmos_read (f, 6), ==, 1); /* a Sunday */
  fake_clock_advance (f->fc, NS);
  g_assert_cmphex (cmos_read (f, 0), ==, 0x31);

  /* A write outside SET takes effect at once. */
  cmos_write (f, 2, 0x59);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, 1625386530 + 1 + 44 * 60);

  /* Garbage in the registers is clamped, never fatal. */
  cmos_write (f, 0x0b, 0x82);
  for (unsigned i = 0; i < 10; i++)
    cmos_write (f, i, 0xff);
  cmos_write (f, 0x32, 0xff);
  cmos_write (f, 0x0b, 0x02);
  g_assert_cmpint (rtc_get_time (f->rtc), >, 0);
}

static void
test_uip_and_update (fixture *f, gconstpointer data)
{
  g_assert_cmphex (cmos_read (f, 0x0a) & 0x80, ==, 0);
  fake_clock_advance (f->fc, NS - 300000);
  g_assert_cmphex (cmos_read (f, 0x0a) & 0x80, ==, 0);
  fake_clock_advance (f->fc, 100000);
  g_assert_cmphex (cmos_read (f, 0x0a) & 0x80, ==, 0x80);
  g_assert_cmphex (cmos_read (f, 0), ==, 0x07);
  fake_clock_advance (f->fc, 200000);
  g_assert_cmphex (cmos_read (f, 0x0a) & 0x80, ==, 0);
  g_assert_cmphex (cmos_read (f, 0), ==, 0x08);
  /* UF was set by that update but UIE is off: no interrupt. */
  g_assert_false (f->irq.level[RTC_IRQ]);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x10);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x00);

  /* Update-ended interrupt every second. */
  cmos_write (f, 0x0b, 0x12);
  for (unsigned i = 0; i < 3; i++)
    {
      fake_clock_advance (f->fc, NS / 2);
      g_assert_false (f->irq.level[RTC_IRQ]);
      fake_clock_advance (f->fc, NS / 2);
      g_assert_true (f->irq.level[RTC_IRQ]);
      g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x90);
      g_assert_false (f->irq.level[RTC_IRQ]);
    }
  g_assert_cmpuint (f->irq.raised[RTC_IRQ], ==, 3);

  /* SET inhibits updates and clears UIE. */
  cmos_write (f, 0x0b, 0x92);
  g_assert_cmphex (cmos_read (f, 0x0b), ==, 0x82);
  fake_clock_advance (f->fc, 2 * NS);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x00);
  cmos_write (f, 0x0b, 0x02);
}

static void
test_alarm (fixture *f, gconstpointer data)
{
  /* Alarm at 13:45:10; hours "don't care". */
  cmos_write (f, 1, 0x10);
  cmos_write (f, 3, 0x45);
  cmos_write (f, 5, 0xc0);
  cmos_write (f, 0x0b, 0x22);
  fake_clock_advance (f->fc, 2 * NS);
  g_assert_false (f->irq.level[RTC_IRQ]);
  fake_clock_advance (f->fc, NS);
  g_assert_true (f->irq.level[RTC_IRQ]);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0xb0); /* IRQF | AF | UF */
  fake_clock_advance (f->fc, NS);
  g_assert_false (f->irq.level[RTC_IRQ]);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x10);
}

/* Periodic flags seen over exactly @window_ns, sampled @steps times (more
 * often than the period, so each tick is seen once). */
static unsigned
count_periodic (fixture *f, uint64_t window_ns, uint64_t steps)
{
  unsigned n = 0;
  for (uint64_t i = 0; i < steps; i++)
    {
      fake_clock_advance (f->fc, (i + 1) * window_ns / steps
                                     - i * window_ns / steps);
      bool level = f->irq.level[RTC_IRQ];
      uint8_t c = cmos_read (f, 0x0c);
      g_assert_cmpint (level, ==, !!(c & 0x80));
      if (c & 0x40)
        n++;
    }
  return n;
}

static void
test_periodic (fixture *f, gconstpointer data)
{
  /* No interrupt without PIE. */
  fake_clock_advance (f->fc, NS / 10);
  g_assert_false (f->irq.level[RTC_IRQ]);
  /* RS = 6: 32768 >> 5 = 1024 Hz. */
  cmos_write (f, 0x0b, 0x42);
  g_assert_cmpuint (count_periodic (f, NS, 4096), ==, 1024);
  /* RS = 15: 2 Hz; RS = 3: 8192 Hz. */
  cmos_write (f, 0x0a, 0x2f);
  g_assert_cmpuint (count_periodic (f, 3 * NS, 192), ==, 6);
  cmos_write (f, 0x0a, 0x23);
  g_assert_cmpuint (count_periodic (f, NS / 8, 4096), ==, 1024);
  /* RS = 1 and 2 are 256 and 128 Hz with a 32.768 kHz base. */
  cmos_write (f, 0x0a, 0x21);
  g_assert_cmpuint (count_periodic (f, NS, 1024), ==, 256);
  cmos_write (f, 0x0a, 0x22);
  g_assert_cmpuint (count_periodic (f, NS, 1024), ==, 128);
  /* RS = 0 stops it, and so does the divider held in reset. */
  cmos_write (f, 0x0a, 0x20);
  g_assert_cmpuint (count_periodic (f, NS / 4, 64), ==, 0);
  cmos_write (f, 0x0a, 0x66);
  int64_t frozen = rtc_get_time (f->rtc);
  g_assert_cmpuint (count_periodic (f, NS / 4, 64), ==, 0);
  fake_clock_advance (f->fc, 5 * NS);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, frozen);
  g_assert_cmpuint (fake_clock_armed (f->fc), ==, 0);
  /* Leaving reset: the first update half a second later. */
  cmos_write (f, 0x0a, 0x26);
  fake_clock_advance (f->fc, NS / 2 - 1);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, frozen);
  fake_clock_advance (f->fc, 1);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, frozen + 1);
}

static void
test_nvram_and_reset (fixture *f, gconstpointer data)
{
  /* The board's view and the guest's view of the same bytes. */
  rtc_nvram_set (f->rtc, 0x34, 0x12);
  rtc_nvram_set (f->rtc, 0x5f, 0x03);
  rtc_nvram_set (f->rtc, 0x80 + 0x10, 0xab);
  rtc_nvram_set (f->rtc, 0x00, 0x99); /* clock registers: ignored */
  g_assert_cmphex (cmos_read (f, 0x34), ==, 0x12);
  g_assert_cmphex (cmos_read (f, 0x5f), ==, 0x03);
  g_assert_cmphex (cmos_read (f, 0x00), ==, 0x07);
  tu_outb (f->pio, 0x72, 0x10);
  g_assert_cmphex (tu_inb (f->pio, 0x73), ==, 0xab);
  tu_outb (f->pio, 0x73, 0xcd);
  g_assert_cmphex (rtc_nvram_get (f->rtc, 0x90), ==, 0xcd);
  /* Bit 7 of the index is the NMI mask, not part of the index. */
  cmos_write (f, 0x80 | 0x40, 0x77);
  g_assert_cmphex (cmos_read (f, 0x40), ==, 0x77);
  g_assert_cmphex (tu_inb (f->pio, 0x70), ==, 0xff);
  /* Every NVRAM byte holds any value. */
  for (unsigned i = 0x0e; i < 0x80; i++)
    if (i != 0x32)
      cmos_write (f, i, (uint8_t) (i * 7));
  for (unsigned i = 0x0e; i < 0x80; i++)
    if (i != 0x32)
      g_assert_cmphex (cmos_read (f, i), ==, (uint8_t) (i * 7));

  /* RESET clears PIE/AIE/UIE/SQWE and C; RAM, time and mode survive. */
  cmos_write (f, 0x0b, 0x7e);
  fake_clock_advance (f->fc, NS);
  g_assert_true (f->irq.level[RTC_IRQ]);
  vmm_device_reset (rtc_device (f->rtc));
  g_assert_false (f->irq.level[RTC_IRQ]);
  g_assert_cmphex (cmos_read (f, 0x0b), ==, 0x06);
  g_assert_cmphex (cmos_read (f, 0x0c), ==, 0x00);
  g_assert_cmphex (cmos_read (f, 0x0a), ==, 0x26);
  for (unsigned i = 0x0e; i < 0x80; i++)
    if (i != 0x32)
      g_assert_cmphex (cmos_read (f, i), ==, (uint8_t) (i * 7));
  g_assert_cmphex (rtc_nvram_get (f->rtc, 0x90), ==, 0xcd);
  g_assert_cmpint (rtc_get_time (f->rtc), ==, T_2024_02_29_134507 + 1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn) g_test_add ("/rtc/" name, fixture, NULL, setup, fn, teardown)
  ADD ("encodings", test_encodings);
  ADD ("set-time", test_set_time);
  ADD ("uip-and-update", test_uip_and_update);
  ADD ("alarm", test_alarm);
  ADD ("periodic", test_periodic);
  ADD ("nvram-and-reset", test_nvram_and_reset);
  return g_test_run ();
}
