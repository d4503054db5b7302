/* 16550A UART. Register semantics: National Semiconductor PC16550D data
 * sheet (June 1995), section 8 "Registers", table II and table IV.
 *
 * The transmitter is infinitely fast: a THR write reaches the chardev at
 * once and THR/TSR are empty again, so LSR.THRE and LSR.TEMT always read 1
 * and a THR-empty interrupt follows every write (8.6.3). */
#include "vmm-core/devices/uart16550.h"

#include "vmm-core/devices/devstate.h"
#include "vmm-core/devices/isa.h"

enum {
  UART_RBR_THR = 0, /* DLL with LCR.DLAB */
  UART_IER = 1,     /* DLM with LCR.DLAB */
  UART_IIR_FCR = 2,
  UART_LCR = 3,
  UART_MCR = 4,
  UART_LSR = 5,
  UART_MSR = 6,
  UART_SCR = 7,
};

enum {
  IER_ERBFI = 0x01, /* received data available */
  IER_ETBEI = 0x02, /* THR empty */
  IER_ELSI = 0x04,  /* receiver line status */
  IER_EDSSI = 0x08, /* modem status */

  IIR_NO_INT = 0x01,
  IIR_MSI = 0x00,
  IIR_THRI = 0x02,
  IIR_RDI = 0x04,
  IIR_RLSI = 0x06,
  IIR_CTI = 0x0c,
  IIR_FIFO_ON = 0xc0,

  FCR_ENABLE = 0x01,
  FCR_CLEAR_RX = 0x02,
  FCR_CLEAR_TX = 0x04,
  FCR_DMA = 0x08,
  FCR_TRIGGER = 0xc0,

  LCR_DLAB = 0x80,

  MCR_DTR = 0x01,
  MCR_RTS = 0x02,
  MCR_OUT1 = 0x04,
  MCR_OUT2 = 0x08,
  MCR_LOOP = 0x10,

  LSR_DR = 0x01,
  LSR_OE = 0x02,
  LSR_PE = 0x04,
  LSR_FE = 0x08,
  LSR_BI = 0x10,
  LSR_THRE = 0x20,
  LSR_TEMT = 0x40,
  LSR_ERRORS = LSR_OE | LSR_PE | LSR_FE | LSR_BI,

  MSR_DCTS = 0x01,
  MSR_DDSR = 0x02,
  MSR_TERI = 0x04,
  MSR_DDCD = 0x08,
  MSR_CTS = 0x10,
  MSR_DSR = 0x20,
  MSR_RI = 0x40,
  MSR_DCD = 0x80,
  /* What the host side presents outside loopback: carrier, data set ready,
   * clear to send. */
  MSR_HOST_LINES = MSR_DCD | MSR_DSR | MSR_CTS,
};

#define UART_CLOCK_HZ 1843200u /* the PC's 1.8432 MHz crystal: 115200 * 16 */

/* Guest-visible state: what save_state and load_state walk. */
typedef struct uart_regs {
  uint8_t rx[UART16550_FIFO_SIZE];
  uint8_t rx_head;
  uint8_t rx_count;
  uint8_t ier;
  uint8_t fcr;
  uint8_t lcr;
  uint8_t mcr;
  uint8_t lsr_errors; /* OE/PE/FE/BI, cleared by reading LSR */
  uint8_t msr_lines;  /* MSR bits 7:4 as currently presented */
  uint8_t msr_delta;  /* MSR bits 3:0, cleared by reading MSR */
  uint8_t scr;
  uint8_t dll;
  uint8_t dlm;
  bool thr_ipending;
  bool timeout_ipending;
} uart_regs;

struct uart16550 {
  vmm_device dev;
  char *name;
  vmm_irq irq;
  vmm_chardev chr;
  vmm_clock *clock;
  vmm_timer *timeout_timer;
  uint64_t timeout_deadline;
  uart16550_rx_ready_fn rx_ready;
  void *rx_ready_opaque;
  vmm_bus *pio;
  uint16_t base;
  bool attached;
  bool irq_level;
  uart_regs r;
};

static const uint8_t trigger_levels[4] = { 1, 4, 8, 14 };

static bool
fifo_enabled (const uart_regs *r)
{
  return r->fcr & FCR_ENABLE;
}

static unsigned
rx_capacity (const uart_regs *r)
{
  return fifo_enabled (r) ? UART16550_FIFO_SIZE : 1;
}

static unsigned
rx_trigger (const uart_regs *r)
{
  return fifo_enabled (r) ? trigger_levels[r->fcr >> 6] : 1;
}

/* The interrupt the IIR reports, highest priority first (table IV). */
static uint8_t
uart_pending_iir (const uart_regs *r)
{
  if ((r->ier & IER_ELSI) && (r->lsr_errors & LSR_ERRORS))
    return IIR_RLSI;
  if ((r->ier & IER_ERBFI) && r->rx_count >= rx_trigger (r))
    return IIR_RDI;
  if ((r->ier & IER_ERBFI) && r->timeout_ipending && r->rx_count)
    return IIR_CTI;
  if ((r->ier & IER_ETBEI) && r->thr_ipending)
    return IIR_THRI;
  if ((r->ier & IER_EDSSI) && (r->msr_delta & 0x0f))
    return IIR_MSI;
  return IIR_NO_INT;
}

static void
uart_update_irq (uart16550 *uart)
{
  bool level = uart_pending_iir (&uart->r) != IIR_NO_INT;
  if (level != uart->irq_level)
    {
      uart->irq_level = level;
      vmm_irq_set (&uart->irq, level);
    }
}

/* Four character times at the programmed baud rate and frame (8.6.2). */
static uint64_t
uart_timeout_ns (const uart_regs *r)
{
  unsigned divisor = r->dll | r->dlm << 8;
  if (divisor == 0)
    divisor = 0x10000;
  unsigned bits = 1 + 5 + (r->lcr & 0x03) + ((r->lcr & 0x08) ? 1 : 0)
                  + ((r->lcr & 0x04) ? 2 : 1);
  uint64_t char_ns = (uint64_t) bits * divisor * 16 * G_GUINT64_CONSTANT (1000000000)
                     / UART_CLOCK_HZ;
  return 4 * char_ns;
}

/* Receive FIFO activity: restart the character timeout (8.6.2: "cleared
 * and restarted whenever a character is received or read"). */
static void
uart_rx_activity (uart16550 *uart)
{
  uart_regs *r = &uart->r;
  r->timeout_ipending = false;
  if (!fifo_enabled (r) || r->rx_count == 0)
    {
      if (uart->timeout_timer)
        vmm_timer_cancel (uart->timeout_timer);
      return;
    }
  if (!uart->timeout_timer)
    {
      r->timeout_ipending = true;
      return;
    }
  uart->timeout_deadline = vmm_clock_now (uart->clock) + uart_timeout_ns (r);
  vmm_timer_arm (uart->timeout_timer, uart->timeout_deadline);
}

static void
uart_timeout_fired (void *opaque)
{
  uart16550 *uart = opaque;
  g_mutex_lock (&uart->dev.lock);
  /* A firing that raced with a re-arm on another thread: wait on. */
  uint64_t now = vmm_clock_now (uart->clock);
  if (now < uart->timeout_deadline)
    vmm_timer_arm (uart->timeout_timer, uart->timeout_deadline);
  else if (fifo_enabled (&uart->r) && uart->r.rx_count)
    uart->r.timeout_ipending = true;
  uart_update_irq (uart);
  g_mutex_unlock (&uart->dev.lock);
}

static void
uart_rx_clear (uart16550 *uart)
{
  uart->r.rx_head = 0;
  uart->r.rx_count = 0;
  uart_rx_activity (uart);
}

/* One byte into the receive FIFO; a full FIFO is an overrun: the byte is
 * lost and LSR.OE is set (8.6.3, LSR bit 1). */
static bool
uart_rx_push (uart16550 *uart, uint8_t byte)
{
  uart_regs *r = &uart->r;
  if (r->rx_count >= rx_capacity (r))
    {
      r->lsr_errors |= LSR_OE;
      return false;
    }
  r->rx[(r->rx_head + r->rx_count) % UART16550_FIFO_SIZE] = byte;
  r->rx_count++;
  return true;
}

static void
uart_notify_rx_ready (uart16550 *uart)
{
  if (uart->rx_ready && !(uart->r.mcr & MCR_LOOP))
    uart->rx_ready (uart->rx_ready_opaque);
}

/* MSR bits 7:4: in loopback the modem outputs feed the inputs (8.6.5, MCR
 * bit 4): RTS→CTS, DTR→DSR, OUT1→RI, OUT2→DCD. */
static uint8_t
uart_modem_lines (const uart_regs *r)
{
  if (!(r->mcr & MCR_LOOP))
    return MSR_HOST_LINES;
  uint8_t m = r->mcr;
  return ((m & MCR_RTS) ? MSR_CTS : 0) | ((m & MCR_DTR) ? MSR_DSR : 0)
         | ((m & MCR_OUT1) ? MSR_RI : 0) | ((m & MCR_OUT2) ? MSR_DCD : 0);
}

static void
uart_update_msr (uart_regs *r)
{
  uint8_t lines = uart_modem_lines (r);
  uint8_t changed = lines ^ r->msr_lines;
  if (changed & MSR_CTS)
    r->msr_delta |= MSR_DCTS;
  if (changed & MSR_DSR)
    r->msr_delta |= MSR_DDSR;
  if ((changed & MSR_RI) && !(lines & MSR_RI)) /* trailing edge only */
    r->msr_delta |= MSR_TERI;
  if (changed & MSR_DCD)
    r->msr_delta |= MSR_DDCD;
  r->msr_lines = lines;
}

static uint8_t
uart_read_byte (void *opaque, unsigned offset)
{
  uart16550 *uart = opaque;
  uart_regs *r = &uart->r;
  uint8_t v = 0xff;

  switch (offset)
    {
    case UART_RBR_THR:
      if (r->lcr & LCR_DLAB)
        return r->dll;
      if (r->rx_count == 0)
        return 0; /* the previous byte is gone; what real parts return varies */
      v = r->rx[r->rx_head];
      r->rx_head = (r->rx_head + 1) % UART16550_FIFO_SIZE;
      r->rx_count--;
      uart_rx_activity (uart);
      uart_update_irq (uart);
      uart_notify_rx_ready (uart);
      return v;
    case UART_IER:
      return (r->lcr & LCR_DLAB) ? r->dlm : r->ier;
    case UART_IIR_FCR:
      v = uart_pending_iir (r);
      /* Reading the IIR while it reports THRE clears that source (table IV). */
      if (v == IIR_THRI)
        {
          r->thr_ipending = false;
          uart_update_irq (uart);
        }
      return v | (fifo_enabled (r) ? IIR_FIFO_ON : 0);
    case UART_LCR:
      return r->lcr;
    case UART_MCR:
      return r->mcr;
    case UART_LSR:
      v = LSR_THRE | LSR_TEMT | (r->rx_count ? LSR_DR : 0) | r->lsr_errors;
      r->lsr_errors = 0;
      uart_update_irq (uart);
      return v;
    case UART_MSR:
      v = r->msr_lines | r->msr_delta;
      r->msr_delta = 0;
      uart_update_irq (uart);
      return v;
    case UART_SCR:
      return r->scr;
    }
  return v;
}

static void
uart_write_byte (void *opaque, unsigned offset, uint8_t value)
{
  uart16550 *uart = opaque;
  uart_regs *r = &uart->r;

  switch (offset)
    {
    case UART_RBR_THR:
      if (r->lcr & LCR_DLAB)
        {
          r->dll = value;
          break;
        }
      if (r->mcr & MCR_LOOP)
        {
          /* The transmitter feeds the receiver (8.6.5). */
          if (uart_rx_push (uart, value))
            uart_rx_activity (uart);
        }
      else
        vmm_chardev_write (&uart->chr, &value, 1);
      r->thr_ipending = true;
      break;
    case UART_IER:
      if (r->lcr & LCR_DLAB)
        {
          r->dlm = value;
          break;
        }
      /* Enabling ETBEI with the THR empty raises the THRE interrupt, as the
       * 8250 family does and as Linux's start_tx relies on. */
      if ((value & IER_ETBEI) && !(r->ier & IER_ETBEI))
        r->thr_ipending = true;
      r->ier = value & 0x0f;
      break;
    case UART_IIR_FCR:
      {
        /* FCR (8.6.4): bit 0 must be set for the other bits to take effect;
         * changing bit 0 clears both FIFOs. */
        uint8_t old = r->fcr;
        if ((value ^ old) & FCR_ENABLE)
          {
            r->fcr = value & FCR_ENABLE;
            uart_rx_clear (uart);
          }
        if (value & FCR_ENABLE)
          {
            r->fcr = value & (FCR_ENABLE | FCR_DMA | FCR_TRIGGER);
            if (value & FCR_CLEAR_RX)
              uart_rx_clear (uart);
            /* FCR_CLEAR_TX: the transmit FIFO is always empty. */
          }
        else
          r->fcr = 0;
        uart_rx_activity (uart);
        if ((value ^ old) & FCR_ENABLE || (value & FCR_CLEAR_RX))
          uart_notify_rx_ready (uart);
        break;
      }
    case UART_LCR:
      r->lcr = value;
      break;
    case UART_MCR:
      {
        bool was_loop = r->mcr & MCR_LOOP;
        r->mcr = value & 0x1f;
        uart_update_msr (r);
        if (was_loop && !(r->mcr & MCR_LOOP))
          {
            uart_update_irq (uart);
            uart_notify_rx_ready (uart);
          }
        break;
      }
    case UART_LSR:
    case UART_MSR:
      break; /* factory test registers on real parts: ignored */
    case UART_SCR:
      r->scr = value;
      break;
    }
  uart_update_irq (uart);
}

static uint64_t
uart_pio_read (void *opaque, const vmm_access *a)
{
  return vmm_isa_read_bytes (uart_read_byte, opaque, a);
}

static void
uart_pio_write (void *opaque, const vmm_access *a, uint64_t value)
{
  vmm_isa_write_bytes (uart_write_byte, opaque, a, value);
}

static const vmm_region_ops uart_region_ops = {
  .read = uart_pio_read,
  .write = uart_pio_write,
};

static void
uart_regs_reset (uart_regs *r)
{
  /* Master reset values (table III); the divisor latch is not reset by the
   * MR pin but firmware expects a usable rate: 9600 baud like QEMU. */
  *r = (uart_regs){ 0 };
  r->dll = 0x0c;
  r->msr_lines = MSR_HOST_LINES;
}

static void
uart_reset (vmm_device *dev)
{
  uart16550 *uart = (uart16550 *) dev;
  uart_regs_reset (&uart->r);
  if (uart->timeout_timer)
    vmm_timer_cancel (uart->timeout_timer);
  uart_update_irq (uart);
  uart_notify_rx_ready (uart);
}

#define UART_STATE_TAG VMM_STATE_TAG ('U', 'A', 'R', 'T')
#define UART_STATE_VERSION 1

static void
uart_save_state (vmm_device *dev, GByteArray *out)
{
  const uart_regs *r = &((uart16550 *) dev)->r;
  vmm_state_put_header (out, UART_STATE_TAG, UART_STATE_VERSION);
  vmm_state_put_bytes (out, r->rx, sizeof r->rx);
  vmm_state_put_u8 (out, r->rx_head);
  vmm_state_put_u8 (out, r->rx_count);
  vmm_state_put_u8 (out, r->ier);
  vmm_state_put_u8 (out, r->fcr);
  vmm_state_put_u8 (out, r->lcr);
  vmm_state_put_u8 (out, r->mcr);
  vmm_state_put_u8 (out, r->lsr_errors);
  vmm_state_put_u8 (out, r->msr_lines);
  vmm_state_put_u8 (out, r->msr_delta);
  vmm_state_put_u8 (out, r->scr);
  vmm_state_put_u8 (out, r->dll);
  vmm_state_put_u8 (out, r->dlm);
  vmm_state_put_bool (out, r->thr_ipending);
  vmm_state_put_bool (out, r->timeout_ipending);
}

static gboolean
uart_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                 GError **error)
{
  uart16550 *uart = (uart16550 *) dev;
  vmm_state_reader rd;
  uart_regs r;

  if (!vmm_state_begin (&rd, data, len, UART_STATE_TAG, UART_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  vmm_state_get_bytes (&rd, r.rx, sizeof r.rx);
  r.rx_head = vmm_state_get_u8 (&rd);
  r.rx_count = vmm_state_get_u8 (&rd);
  r.ier = vmm_state_get_u8 (&rd);
  r.fcr = vmm_state_get_u8 (&rd);
  r.lcr = vmm_state_get_u8 (&rd);
  r.mcr = vmm_state_get_u8 (&rd);
  r.lsr_errors = vmm_state_get_u8 (&rd);
  r.msr_lines = vmm_state_get_u8 (&rd);
  r.msr_delta = vmm_state_get_u8 (&rd);
  r.scr = vmm_state_get_u8 (&rd);
  r.dll = vmm_state_get_u8 (&rd);
  r.dlm = vmm_state_get_u8 (&rd);
  r.thr_ipending = vmm_state_get_bool (&rd);
  r.timeout_ipending = vmm_state_get_bool (&rd);
  vmm_state_check (&rd, r.rx_head < UART16550_FIFO_SIZE, "FIFO head");
  vmm_state_check (&rd, r.rx_count <= rx_capacity (&r), "FIFO count");
  vmm_state_check (&rd, r.ier <= 0x0f, "IER");
  vmm_state_check (&rd, !(r.fcr & ~(FCR_ENABLE | FCR_DMA | FCR_TRIGGER)),
                   "FCR");
  vmm_state_check (&rd, r.mcr <= 0x1f, "MCR");
  vmm_state_check (&rd, !(r.lsr_errors & ~LSR_ERRORS), "LSR");
  vmm_state_check (&rd, !(r.msr_lines & 0x0f) && r.msr_delta <= 0x0f, "MSR");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  uart->r = r;
  if (uart->timeout_timer)
    vmm_timer_cancel (uart->timeout_timer);
  if (r.rx_count && !r.timeout_ipending)
    uart_rx_activity (uart);
  uart_update_irq (uart);
  return TRUE;
}

static void
uart_destroy (vmm_device *dev)
{
  uart16550 *uart = (uart16550 *) dev;
  if (uart->attached)
    vmm_bus_unregister (uart->pio, uart->base, uart);
  vmm_timer_free (uart->timeout_timer);
  g_mutex_clear (&dev->lock);
  g_free (uart->name);
  g_free (uart);
}

static const vmm_device_ops uart_device_ops = {
  .reset = uart_reset,
  .save_state = uart_save_state,
  .load_state = uart_load_state,
  .destroy = uart_destroy,
};

uart16550 *
uart16550_create (const char *name, const vmm_irq *irq,
                  const vmm_chardev *chr, vmm_clock *clock,
                  uart16550_rx_ready_fn rx_ready, void *rx_ready_opaque)
{
  uart16550 *uart = g_new0 (uart16550, 1);
  uart->name = g_strdup (name ? name : "uart16550");
  vmm_device_init (&uart->dev, uart->name, &uart_device_ops);
  if (irq)
    uart->irq = *irq;
  if (chr)
    uart->chr = *chr;
  uart->clock = clock;
  if (clock)
    uart->timeout_timer = vmm_timer_new (clock, uart_timeout_fired, uart);
  uart->rx_ready = rx_ready;
  uart->rx_ready_opaque = rx_ready_opaque;
  uart_regs_reset (&uart->r);
  return uart;
}

vmm_device *
uart16550_device (uart16550 *uart)
{
  return &uart->dev;
}

gboolean
uart16550_attach (uart16550 *uart, vmm_bus *pio, uint16_t base,
                  GError **error)
{
  g_return_val_if_fail (!uart->attached, FALSE);
  if (!vmm_bus_register (pio, base, UART16550_NUM_PORTS, &uart->dev,
                         &uart_region_ops, uart, error))
    return FALSE;
  uart->pio = pio;
  uart->base = base;
  uart->attached = true;
  return TRUE;
}

static size_t
uart_rx_space_locked (const uart16550 *uart)
{
  const uart_regs *r = &uart->r;
  if (r->mcr & MCR_LOOP)
    return 0;
  return rx_capacity (r) - r->rx_count;
}

size_t
uart16550_rx_space (uart16550 *uart)
{
  if (!uart)
    return 0;
  g_mutex_lock (&uart->dev.lock);
  size_t n = uart_rx_space_locked (uart);
  g_mutex_unlock (&uart->dev.lock);
  return n;
}

size_t
uart16550_receive (uart16550 *uart, const uint8_t *buf, size_t len)
{
  g_mutex_lock (&uart->dev.lock);
  size_t n = MIN (len, uart_rx_space_locked (uart));
  for (size_t i = 0; i < n; i++)
    uart_rx_push (uart, buf[i]);
  if (n)
    {
      uart_rx_activity (uart);
      uart_update_irq (uart);
    }
  g_mutex_unlock (&uart->dev.lock);
  return n;
}
