/* MC146818 RTC. Register semantics: Motorola MC146818A data sheet
 * ("Address map", "Register A".."Register D"), with the Dallas DS12887
 * data sheet for details the Motorola sheet leaves open.
 *
 * Time model: the guest's clock is a (seconds, nanoseconds) pair at a point
 * of the vmm_clock and advances with it while the divider runs (register A
 * DV <= 010). The time registers are computed on read; while register B's
 * SET bit is held they are frozen in cmos[] for the guest to rewrite, and
 * the new time is loaded when SET is released. The divider keeps its phase
 * through SET, as on the real part. */
#include "vmm-core/devices/rtc.h"

#include "vmm-core/devices/devstate.h"
#include "vmm-core/devices/isa.h"

enum {
  RTC_SECONDS = 0x00,
  RTC_SECONDS_ALARM = 0x01,
  RTC_MINUTES = 0x02,
  RTC_MINUTES_ALARM = 0x03,
  RTC_HOURS = 0x04,
  RTC_HOURS_ALARM = 0x05,
  RTC_DAY_OF_WEEK = 0x06,
  RTC_DAY_OF_MONTH = 0x07,
  RTC_MONTH = 0x08,
  RTC_YEAR = 0x09,
  RTC_REG_A = 0x0a,
  RTC_REG_B = 0x0b,
  RTC_REG_C = 0x0c,
  RTC_REG_D = 0x0d,
  RTC_FIRST_NVRAM = 0x0e,
};

enum {
  REG_A_UIP = 0x80,
  REG_A_DV = 0x70,
  REG_A_RS = 0x0f,
  REG_B_SET = 0x80,
  REG_B_PIE = 0x40,
  REG_B_AIE = 0x20,
  REG_B_UIE = 0x10,
  REG_B_SQWE = 0x08,
  REG_B_DM_BINARY = 0x04,
  REG_B_24H = 0x02,
  REG_B_DSE = 0x01,
  REG_C_IRQF = 0x80,
  REG_C_PF = 0x40,
  REG_C_AF = 0x20,
  REG_C_UF = 0x10,
  REG_D_VRT = 0x80,
};

#define NS_PER_SEC G_GUINT64_CONSTANT (1000000000)
#define RTC_BASE_HZ 32768u
/* UIP rises 244 µs before the update cycle (MC146818A, "Update cycle"). */
#define RTC_UIP_NS 244000u

/* Guest-visible state: what save_state and load_state walk. The time is
 * saved as the guest's wall clock at the moment of saving. */
typedef struct rtc_regs {
  uint8_t cmos[128]; /* registers 0x00-0x0d, then NVRAM */
  uint8_t ext[128];  /* the extended bank at 0x72/0x73 */
  uint8_t index;
  uint8_t ext_index;
  bool nmi_masked;
  int64_t sec;       /* guest wall clock at ref_ns */
  uint32_t nsec;
  int64_t last_update; /* the last second whose update cycle has run */
} rtc_regs;

struct rtc {
  vmm_device dev;
  vmm_clock *clock;
  vmm_irq irq;
  vmm_timer *periodic_timer;
  vmm_timer *update_timer;
  uint64_t periodic_deadline;
  vmm_bus *pio;
  uint16_t base;
  bool attached;
  bool irq_level;
  uint64_t ref_ns; /* vmm_clock time at which the guest clock read r.sec */
  rtc_regs r;
};

/* Civil calendar from/to days since 1970-01-01 (proleptic Gregorian; the
 * algorithms from Howard Hinnant's "chrono-compatible low-level date
 * algorithms"). */
static int64_t
days_from_civil (int64_t y, unsigned m, unsigned d)
{
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned) (y - era * 400);
  unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t) doe - 719468;
}

static void
civil_from_days (int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned) (z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t) yoe + era * 400 + (*m <= 2);
}

static int64_t
floor_div (int64_t a, int64_t b)
{
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static bool
rtc_divider_running (const rtc_regs *r)
{
  /* DV = 11x holds the divider chain in reset (MC146818A, register A). */
  return (r->cmos[RTC_REG_A] & REG_A_DV) <= 0x20;
}

/* The guest's wall clock now. */
static void
rtc_now (const rtc *s, int64_t *sec, uint32_t *nsec)
{
  uint64_t total = s->r.nsec;
  if (rtc_divider_running (&s->r))
    {
      uint64_t now = vmm_clock_now (s->clock);
      total += now >= s->ref_ns ? now - s->ref_ns : 0;
    }
  *sec = s->r.sec + (int64_t) (total / NS_PER_SEC);
  *nsec = (uint32_t) (total % NS_PER_SEC);
}

/* Re-bases the clock at the current instant. */
static void
rtc_set_now (rtc *s, int64_t sec, uint32_t nsec)
{
  s->ref_ns = vmm_clock_now (s->clock);
  s->r.sec = sec;
  s->r.nsec = nsec;
}

static uint8_t
rtc_to_reg (const rtc_regs *r, unsigned v)
{
  if (r->cmos[RTC_REG_B] & REG_B_DM_BINARY)
    return (uint8_t) v;
  return (uint8_t) (((v / 10) % 10) << 4 | (v % 10));
}

static unsigned
rtc_from_reg (const rtc_regs *r, uint8_t v)
{
  if (r->cmos[RTC_REG_B] & REG_B_DM_BINARY)
    return v;
  return (v >> 4) * 10 + (v & 0x0f);
}

static uint8_t
rtc_hour_to_reg (const rtc_regs *r, unsigned hour)
{
  if (r->cmos[RTC_REG_B] & REG_B_24H)
    return rtc_to_reg (r, hour);
  /* 12-hour mode: 1..12, bit 7 = PM (MC146818A, table 3). */
  unsigned h12 = hour % 12 ? hour % 12 : 12;
  return rtc_to_reg (r, h12) | (hour >= 12 ? 0x80 : 0);
}

static unsigned
rtc_hour_from_reg (const rtc_regs *r, uint8_t v)
{
  if (r->cmos[RTC_REG_B] & REG_B_24H)
    return rtc_from_reg (r, v);
  return rtc_from_reg (r, v & 0x7f) % 12 + ((v & 0x80) ? 12 : 0);
}

/* Encodes @t into the time registers of @out (0x00-0x09 minus the alarms,
 * and the century byte). */
static void
rtc_encode_time (const rtc_regs *r, int64_t t, uint8_t out[128])
{
  int64_t days = floor_div (t, 86400);
  unsigned secs = (unsigned) (t - days * 86400);
  int64_t year;
  unsigned month, day;
  civil_from_days (days, &year, &month, &day);
  unsigned dow = (unsigned) (((days % 7) + 11) % 7); /* 0 = Sunday */
  unsigned yy = (unsigned) (((year % 100) + 100) % 100);
  unsigned cc = (unsigned) ((((year - (int64_t) yy) / 100) % 100 + 100) % 100);

  out[RTC_SECONDS] = rtc_to_reg (r, secs % 60);
  out[RTC_MINUTES] = rtc_to_reg (r, secs / 60 % 60);
  out[RTC_HOURS] = rtc_hour_to_reg (r, secs / 3600);
  out[RTC_DAY_OF_WEEK] = rtc_to_reg (r, dow + 1);
  out[RTC_DAY_OF_MONTH] = rtc_to_reg (r, day);
  out[RTC_MONTH] = rtc_to_reg (r, month);
  out[RTC_YEAR] = rtc_to_reg (r, yy);
  out[RTC_CENTURY_REG] = rtc_to_reg (r, cc);
}

/* The time the registers in cmos[] describe; out-of-range fields are
 * clamped (whatever the guest wrote). */
static int64_t
rtc_decode_time (const rtc_regs *r)
{
  const uint8_t *c = r->cmos;
  unsigned sec = MIN (rtc_from_reg (r, c[RTC_SECONDS]), 59u);
  unsigned min = MIN (rtc_from_reg (r, c[RTC_MINUTES]), 59u);
  unsigned hour = MIN (rtc_hour_from_reg (r, c[RTC_HOURS]), 23u);
  unsigned day = CLAMP (rtc_from_reg (r, c[RTC_DAY_OF_MONTH]), 1u, 31u);
  unsigned month = CLAMP (rtc_from_reg (r, c[RTC_MONTH]), 1u, 12u);
  unsigned yy = MIN (rtc_from_reg (r, c[RTC_YEAR]), 99u);
  unsigned cc = MIN (rtc_from_reg (r, c[RTC_CENTURY_REG]), 99u);
  int64_t year = (int64_t) cc * 100 + yy;
  return days_from_civil (year, month, day) * 86400 + hour * 3600 + min * 60
         + sec;
}

static bool
rtc_is_time_reg (unsigned index)
{
  switch (index)
    {
    case RTC_SECONDS:
    case RTC_MINUTES:
    case RTC_HOURS:
    case RTC_DAY_OF_WEEK:
    case RTC_DAY_OF_MONTH:
    case RTC_MONTH:
    case RTC_YEAR:
    case RTC_CENTURY_REG:
      return true;
    }
  return false;
}

/* IRQF = PF·PIE + AF·AIE + UF·UIE (MC146818A, register C); the IRQ pin
 * follows IRQF. */
static void
rtc_update_irq (rtc *s)
{
  uint8_t b = s->r.cmos[RTC_REG_B];
  uint8_t c = s->r.cmos[RTC_REG_C] & (REG_C_PF | REG_C_AF | REG_C_UF);
  if (c & b & (REG_B_PIE | REG_B_AIE | REG_B_UIE))
    c |= REG_C_IRQF;
  s->r.cmos[RTC_REG_C] = c;
  bool level = c & REG_C_IRQF;
  if (level != s->irq_level)
    {
      s->irq_level = level;
      vmm_irq_set (&s->irq, level);
    }
}

/* Periodic interrupt period in 32768 Hz ticks (MC146818A, table 5: with a
 * 32.768 kHz time base RS 1 and 2 give 256 and 128 Hz, RS n >= 3 gives
 * 32768 >> (n - 1) Hz); 0 when disabled. */
static unsigned
rtc_period_ticks (const rtc_regs *r)
{
  unsigned rs = r->cmos[RTC_REG_A] & REG_A_RS;
  if (rs == 0)
    return 0;
  if (rs <= 2)
    rs += 7;
  return 1u << (rs - 1);
}

static void
rtc_arm_periodic (rtc *s)
{
  unsigned period = rtc_period_ticks (&s->r);
  if (!period || !(s->r.cmos[RTC_REG_B] & REG_B_PIE)
      || !rtc_divider_running (&s->r))
    {
      s->periodic_deadline = 0;
      vmm_timer_cancel (s->periodic_timer);
      return;
    }
  /* Ticks fall on multiples of the period within each second, as the
   * divider chain produces them. */
  int64_t sec;
  uint32_t nsec;
  rtc_now (s, &sec, &nsec);
  uint64_t t = (uint64_t) nsec * RTC_BASE_HZ / NS_PER_SEC;
  uint64_t next = (t / period + 1) * period;
  uint64_t next_ns = (next * NS_PER_SEC + RTC_BASE_HZ - 1) / RTC_BASE_HZ;
  if (next_ns <= nsec)
    next_ns = nsec + 1;
  s->periodic_deadline = vmm_clock_now (s->clock) + next_ns - nsec;
  vmm_timer_arm (s->periodic_timer, s->periodic_deadline);
}

static void
rtc_arm_update (rtc *s)
{
  if (!rtc_divider_running (&s->r))
    {
      vmm_timer_cancel (s->update_timer);
      return;
    }
  int64_t sec;
  uint32_t nsec;
  rtc_now (s, &sec, &nsec);
  vmm_timer_arm (s->update_timer,
                 vmm_clock_now (s->clock) + (NS_PER_SEC - nsec));
}

static void
rtc_periodic_fired (void *opaque)
{
  rtc *s = opaque;
  g_mutex_lock (&s->dev.lock);
  /* A firing that raced with a re-arm on another thread: wait on. */
  if (vmm_clock_now (s->clock) < s->periodic_deadline)
    {
      vmm_timer_arm (s->periodic_timer, s->periodic_deadline);
      g_mutex_unlock (&s->dev.lock);
      return;
    }
  if (rtc_period_ticks (&s->r) && rtc_divider_running (&s->r)
      && (s->r.cmos[RTC_REG_B] & REG_B_PIE))
    {
      s->r.cmos[RTC_REG_C] |= REG_C_PF;
      rtc_update_irq (s);
    }
  rtc_arm_periodic (s);
  g_mutex_unlock (&s->dev.lock);
}

static bool
rtc_alarm_matches (const rtc_regs *r, const uint8_t now[128])
{
  /* An alarm byte with bits 7:6 = 11 matches any value ("don't care"). */
  static const uint8_t pairs[3][2] = {
    { RTC_SECONDS_ALARM, RTC_SECONDS },
    { RTC_MINUTES_ALARM, RTC_MINUTES },
    { RTC_HOURS_ALARM, RTC_HOURS },
  };
  for (unsigned i = 0; i < 3; i++)
    {
      uint8_t alarm = r->cmos[pairs[i][0]];
      if ((alarm & 0xc0) != 0xc0 && alarm != now[pairs[i][1]])
        return false;
    }
  return true;
}

/* The update cycle at a second boundary: UF, and AF when the alarm
 * matches. None run while SET is held. */
static void
rtc_update_fired (void *opaque)
{
  rtc *s = opaque;
  g_mutex_lock (&s->dev.lock);
  if (rtc_divider_running (&s->r))
    {
      int64_t sec;
      uint32_t nsec;
      rtc_now (s, &sec, &nsec);
      if (sec > s->r.last_update && !(s->r.cmos[RTC_REG_B] & REG_B_SET))
        {
          uint8_t now[128];
          rtc_encode_time (&s->r, sec, now);
          s->r.cmos[RTC_REG_C] |= REG_C_UF;
          if (rtc_alarm_matches (&s->r, now))
            s->r.cmos[RTC_REG_C] |= REG_C_AF;
          rtc_update_irq (s);
        }
      if (sec > s->r.last_update)
        s->r.last_update = sec;
    }
  rtc_arm_update (s);
  g_mutex_unlock (&s->dev.lock);
}

/* The time changed under the guest: no update for the seconds skipped. */
static void
rtc_time_changed (rtc *s)
{
  int64_t sec;
  uint32_t nsec;
  rtc_now (s, &sec, &nsec);
  s->r.last_update = sec;
  rtc_arm_update (s);
  rtc_arm_periodic (s);
}

static uint8_t
rtc_read_reg (rtc *s, unsigned index, bool side_effects)
{
  rtc_regs *r = &s->r;
  if (rtc_is_time_reg (index) && !(r->cmos[RTC_REG_B] & REG_B_SET))
    {
      int64_t sec;
      uint32_t nsec;
      uint8_t now[128];
      rtc_now (s, &sec, &nsec);
      rtc_encode_time (r, sec, now);
      return now[index];
    }
  switch (index)
    {
    case RTC_REG_A:
      {
        uint8_t v = r->cmos[RTC_REG_A] & ~REG_A_UIP;
        int64_t sec;
        uint32_t nsec;
        rtc_now (s, &sec, &nsec);
        if (rtc_divider_running (r) && !(r->cmos[RTC_REG_B] & REG_B_SET)
            && nsec >= NS_PER_SEC - RTC_UIP_NS)
          v |= REG_A_UIP;
        return v;
      }
    case RTC_REG_C:
      {
        /* Reading C clears every flag and releases IRQ (register C). */
        uint8_t v = r->cmos[RTC_REG_C];
        if (side_effects)
          {
            r->cmos[RTC_REG_C] = 0;
            rtc_update_irq (s);
          }
        return v;
      }
    case RTC_REG_D:
      return REG_D_VRT; /* valid RAM and time: the battery is fine */
    }
  return r->cmos[index & 0x7f];
}

static void
rtc_write_reg (rtc *s, unsigned index, uint8_t value)
{
  rtc_regs *r = &s->r;
  if (rtc_is_time_reg (index))
    {
      if (r->cmos[RTC_REG_B] & REG_B_SET)
        {
          r->cmos[index] = value;
          return;
        }
      /* Outside SET the write takes effect at once; the sub-second phase
       * is kept. */
      int64_t sec;
      uint32_t nsec;
      rtc_now (s, &sec, &nsec);
      rtc_encode_time (r, sec, r->cmos);
      r->cmos[index] = value;
      rtc_set_now (s, rtc_decode_time (r), nsec);
      rtc_time_changed (s);
      return;
    }
  switch (index)
    {
    case RTC_REG_A:
      {
        bool was_running = rtc_divider_running (r);
        int64_t sec;
        uint32_t nsec;
        rtc_now (s, &sec, &nsec);
        r->cmos[RTC_REG_A] = value & ~REG_A_UIP;
        bool running = rtc_divider_running (r);
        if (was_running && !running)
          rtc_set_now (s, sec, nsec); /* frozen */
        else if (!was_running && running)
          /* Leaving divider reset: the first update comes 500 ms later
           * (MC146818A, register A DV bits). */
          rtc_set_now (s, sec, NS_PER_SEC / 2);
        rtc_time_changed (s);
        break;
      }
    case RTC_REG_B:
      {
        uint8_t old = r->cmos[RTC_REG_B];
        int64_t sec;
        uint32_t nsec;
        rtc_now (s, &sec, &nsec);
        if ((value & REG_B_SET) && !(old & REG_B_SET))
          {
            /* Freeze the registers for the guest to rewrite; SET clears
             * UIE (DS12887, register B). */
            rtc_encode_time (r, sec, r->cmos);
            value &= ~REG_B_UIE;
          }
        r->cmos[RTC_REG_B] = value;
        if (!(value & REG_B_SET) && (old & REG_B_SET))
          {
            rtc_set_now (s, rtc_decode_time (r), nsec);
            rtc_time_changed (s);
          }
        rtc_arm_periodic (s);
        rtc_update_irq (s);
        break;
      }
    case RTC_REG_C:
    case RTC_REG_D:
      break; /* read-only */
    default:
      r->cmos[index & 0x7f] = value;
      break;
    }
}

static uint8_t
rtc_read_byte (void *opaque, unsigned offset)
{
  rtc *s = opaque;
  switch (offset)
    {
    case 1:
      return rtc_read_reg (s, s->r.index, true);
    case 3:
      return s->r.ext[s->r.ext_index];
    default:
      return 0xff; /* the index ports are write-only */
    }
}

static void
rtc_write_byte (void *opaque, unsigned offset, uint8_t value)
{
  rtc *s = opaque;
  switch (offset)
    {
    case 0:
      /* Bit 7 of the index port masks NMI on the PC. */
      s->r.index = value & 0x7f;
      s->r.nmi_masked = value & 0x80;
      break;
    case 1:
      rtc_write_reg (s, s->r.index, value);
      break;
    case 2:
      s->r.ext_index = value & 0x7f;
      break;
    case 3:
      s->r.ext[s->r.ext_index] = value;
      break;
    }
}

static uint64_t
rtc_pio_read (void *opaque, const vmm_access *a)
{
  return vmm_isa_read_bytes (rtc_read_byte, opaque, a);
}

static void
rtc_pio_write (void *opaque, const vmm_access *a, uint64_t value)
{
  vmm_isa_write_bytes (rtc_write_byte, opaque, a, value);
}

static const vmm_region_ops rtc_region_ops = {
  .read = rtc_pio_read,
  .write = rtc_pio_write,
};

/* The RESET pin: PIE, AIE, UIE, SQWE and every flag in C cleared; time,
 * the other B bits and the RAM survive (MC146818A, "RESET"). */
static void
rtc_reset (vmm_device *dev)
{
  rtc *s = (rtc *) dev;
  s->r.cmos[RTC_REG_B] &= ~(REG_B_PIE | REG_B_AIE | REG_B_UIE | REG_B_SQWE);
  s->r.cmos[RTC_REG_C] = 0;
  rtc_update_irq (s);
  rtc_arm_periodic (s);
}

#define RTC_STATE_TAG VMM_STATE_TAG ('R', 'T', 'C', ' ')
#define RTC_STATE_VERSION 1

static void
rtc_save_state (vmm_device *dev, GByteArray *out)
{
  rtc *s = (rtc *) dev;
  int64_t sec;
  uint32_t nsec;
  rtc_now (s, &sec, &nsec);
  vmm_state_put_header (out, RTC_STATE_TAG, RTC_STATE_VERSION);
  vmm_state_put_bytes (out, s->r.cmos, sizeof s->r.cmos);
  vmm_state_put_bytes (out, s->r.ext, sizeof s->r.ext);
  vmm_state_put_u8 (out, s->r.index);
  vmm_state_put_u8 (out, s->r.ext_index);
  vmm_state_put_bool (out, s->r.nmi_masked);
  vmm_state_put_u64 (out, (uint64_t) sec);
  vmm_state_put_u32 (out, nsec);
  vmm_state_put_u64 (out, (uint64_t) s->r.last_update);
}

static gboolean
rtc_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                GError **error)
{
  rtc *s = (rtc *) dev;
  vmm_state_reader rd;
  rtc_regs r;

  if (!vmm_state_begin (&rd, data, len, RTC_STATE_TAG, RTC_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, r.cmos, sizeof r.cmos);
  vmm_state_get_bytes (&rd, r.ext, sizeof r.ext);
  r.index = vmm_state_get_u8 (&rd);
  r.ext_index = vmm_state_get_u8 (&rd);
  r.nmi_masked = vmm_state_get_bool (&rd);
  r.sec = (int64_t) vmm_state_get_u64 (&rd);
  r.nsec = vmm_state_get_u32 (&rd);
  r.last_update = (int64_t) vmm_state_get_u64 (&rd);
  vmm_state_check (&rd, r.index < 128 && r.ext_index < 128, "index");
  vmm_state_check (&rd, r.nsec < NS_PER_SEC, "time");
  /* Keep the seconds where the calendar arithmetic cannot overflow. */
  vmm_state_check (&rd, r.sec > -(G_GINT64_CONSTANT (1) << 50)
                            && r.sec < (G_GINT64_CONSTANT (1) << 50)
                            && r.last_update > -(G_GINT64_CONSTANT (1) << 50)
                            && r.last_update < (G_GINT64_CONSTANT (1) << 50),
                   "time");
  vmm_state_check (&rd, !(r.cmos[RTC_REG_C] & 0x0f), "register C");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  s->r = r;
  s->r.cmos[RTC_REG_A] &= ~REG_A_UIP;
  s->ref_ns = vmm_clock_now (s->clock);
  rtc_update_irq (s);
  rtc_arm_update (s);
  rtc_arm_periodic (s);
  return TRUE;
}

static void
rtc_destroy (vmm_device *dev)
{
  rtc *s = (rtc *) dev;
  if (s->attached)
    vmm_bus_unregister (s->pio, s->base, s);
  vmm_timer_free (s->periodic_timer);
  vmm_timer_free (s->update_timer);
  g_mutex_clear (&dev->lock);
  g_free (s);
}

static const vmm_device_ops rtc_device_ops = {
  .reset = rtc_reset,
  .save_state = rtc_save_state,
  .load_state = rtc_load_state,
  .destroy = rtc_destroy,
};

rtc *
rtc_create (vmm_clock *clock, const vmm_irq *irq, int64_t offset_seconds)
{
  rtc *s = g_new0 (rtc, 1);
  vmm_device_init (&s->dev, "rtc", &rtc_device_ops);
  s->clock = clock;
  if (irq)
    s->irq = *irq;
  s->periodic_timer = vmm_timer_new (clock, rtc_periodic_fired, s);
  s->update_timer = vmm_timer_new (clock, rtc_update_fired, s);
  /* Power-on: 32.768 kHz divider running, 1024 Hz rate, 24-hour BCD. */
  s->r.cmos[RTC_REG_A] = 0x26;
  s->r.cmos[RTC_REG_B] = REG_B_24H;
  s->r.cmos[RTC_REG_D] = REG_D_VRT;
  int64_t us = g_get_real_time ();
  rtc_set_now (s, us / G_USEC_PER_SEC + offset_seconds,
               (uint32_t) (us % G_USEC_PER_SEC) * 1000);
  rtc_time_changed (s);
  return s;
}

vmm_device *
rtc_device (rtc *s)
{
  return &s->dev;
}

gboolean
rtc_attach (rtc *s, vmm_bus *pio, uint16_t base, GError **error)
{
  g_return_val_if_fail (!s->attached, FALSE);
  if (!vmm_bus_register (pio, base, RTC_NUM_PORTS, &s->dev, &rtc_region_ops,
                         s, error))
    return FALSE;
  s->pio = pio;
  s->base = base;
  s->attached = true;
  return TRUE;
}

void
rtc_nvram_set (rtc *s, unsigned index, uint8_t value)
{
  if (index < RTC_FIRST_NVRAM || index == RTC_CENTURY_REG
      || index >= RTC_NVRAM_SIZE)
    return;
  g_mutex_lock (&s->dev.lock);
  if (index < 128)
    s->r.cmos[index] = value;
  else
    s->r.ext[index - 128] = value;
  g_mutex_unlock (&s->dev.lock);
}

uint8_t
rtc_nvram_get (rtc *s, unsigned index)
{
  uint8_t v = 0;
  if (index >= RTC_NVRAM_SIZE)
    return 0;
  g_mutex_lock (&s->dev.lock);
  if (index < 128)
    v = rtc_read_reg (s, index, false);
  else
    v = s->r.ext[index - 128];
  g_mutex_unlock (&s->dev.lock);
  return v;
}

void
rtc_set_time (rtc *s, int64_t unix_seconds)
{
  g_mutex_lock (&s->dev.lock);
  rtc_set_now (s, unix_seconds, 0);
  if (s->r.cmos[RTC_REG_B] & REG_B_SET)
    rtc_encode_time (&s->r, unix_seconds, s->r.cmos);
  rtc_time_changed (s);
  g_mutex_unlock (&s->dev.lock);
}

int64_t
rtc_get_time (rtc *s)
{
  g_mutex_lock (&s->dev.lock);
  int64_t sec;
  uint32_t nsec;
  rtc_now (s, &sec, &nsec);
  g_mutex_unlock (&s->dev.lock);
  return sec;
}
