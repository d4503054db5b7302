/* 16550A UART register behaviour, without KVM. */
#include "fake-clock.h"
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/uart16550.h"

#define COM1 0x3f8
#define IRQ 4

typedef struct {
  vmm_bus *pio;
  fake_clock *fc;
  fake_irq irq;
  GByteArray *out;
  uart16550 *uart;
  unsigned rx_ready_calls;
} fixture;

static void
on_rx_ready (void *opaque)
{
  ((fixture *) opaque)->rx_ready_calls++;
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  f->fc = fake_clock_new (1000);
  f->out = g_byte_array_new ();
  vmm_irq line = fake_irq_line (&f->irq, IRQ);
  vmm_chardev chr = fake_chardev (f->out);
  f->uart = uart16550_create ("com1", &line, &chr, fake_clock_get (f->fc),
                              on_rx_ready, f);
  g_assert_true (uart16550_attach (f->uart, f->pio, COM1, &error));
  g_assert_no_error (error);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_device_destroy (uart16550_device (f->uart));
  fake_clock_free (f->fc);
  vmm_bus_free (f->pio);
  g_byte_array_unref (f->out);
}

static void
test_registers (fixture *f, gconstpointer data)
{
  tu_outb (f->pio, COM1 + 7, 0x5a);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 7), ==, 0x5a);
  tu_outb (f->pio, COM1 + 3, 0x03);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 3), ==, 0x03);
  /* IER keeps its low four bits (8.6.6). */
  tu_outb (f->pio, COM1 + 1, 0xff);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 1), ==, 0x0f);
  tu_outb (f->pio, COM1 + 1, 0x00);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 1), ==, 0x00);
  /* Divisor latch behind DLAB. */
  tu_outb (f->pio, COM1 + 3, 0x83);
  tu_outb (f->pio, COM1 + 0, 0x01);
  tu_outb (f->pio, COM1 + 1, 0x02);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 0), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 1), ==, 0x02);
  tu_outb (f->pio, COM1 + 3, 0x03);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 1), ==, 0x00);
  g_assert_cmpuint (f->out->len, ==, 0); /* DLL writes never transmit */
  /* MCR keeps five bits. */
  tu_outb (f->pio, COM1 + 4, 0xff);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 4), ==, 0x1f);
  tu_outb (f->pio, COM1 + 4, 0x00);
  /* Idle line status: THR and transmitter empty. */
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5), ==, 0x60);
  /* No interrupt, no FIFO. */
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x01);
  /* FCR: 16550A reports FIFOs in IIR bits 7:6 (what Linux's autoconfig
   * checks to tell a 16550A from a 16550). */
  tu_outb (f->pio, COM1 + 2, 0xe7);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2) >> 6, ==, 3);
  tu_outb (f->pio, COM1 + 2, 0x00);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x01);
}

static void
test_transmit (fixture *f, gconstpointer data)
{
  tu_outb (f->pio, COM1, 'h');
  tu_outb (f->pio, COM1, 'i');
  g_assert_cmpmem (f->out->data, f->out->len, "hi", 2);
  g_assert_false (f->irq.level[IRQ]);

  /* Enabling ETBEI with THR empty raises THRE at once. */
  tu_outb (f->pio, COM1 + 1, 0x02);
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x02);
  /* Reading IIR while it reports THRE clears it. */
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x01);
  tu_outb (f->pio, COM1, '!');
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmpuint (f->out->len, ==, 3);
  tu_outb (f->pio, COM1 + 1, 0x00);
  g_assert_false (f->irq.level[IRQ]);
}

static void
test_receive_fifo (fixture *f, gconstpointer data)
{
  uint8_t buf[20];
  for (unsigned i = 0; i < sizeof buf; i++)
    buf[i] = 'a' + i;

  /* FIFO off: a single holding register. */
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 1);
  g_assert_cmpuint (uart16550_receive (f->uart, buf, 3), ==, 1);
  g_assert_cmpuint (uart16550_receive (f->uart, buf + 1, 3), ==, 0);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 1, ==, 1);
  g_assert_cmphex (tu_inb (f->pio, COM1), ==, 'a');
  g_assert_cmpuint (f->rx_ready_calls, ==, 1);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 1, ==, 0);

  /* FIFO on, trigger level 4 (FCR bits 7:6 = 01); 8N1. */
  tu_outb (f->pio, COM1 + 3, 0x03);
  tu_outb (f->pio, COM1 + 2, 0x47);
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 16);
  tu_outb (f->pio, COM1 + 1, 0x01);
  g_assert_cmpuint (uart16550_receive (f->uart, buf, 3), ==, 3);
  /* Below the trigger level: no interrupt until the character timeout. */
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0xc1);
  g_assert_cmpuint (uart16550_receive (f->uart, buf + 3, 1), ==, 1);
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0xc4);
  g_assert_cmpuint (uart16550_receive (f->uart, buf + 4, 16), ==, 12);
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 0);
  for (unsigned i = 0; i < 13; i++)
    g_assert_cmphex (tu_inb (f->pio, COM1), ==, 'a' + i);
  /* Three left, below the trigger: the interrupt drops... */
  g_assert_false (f->irq.level[IRQ]);
  /* ...until four character times pass (9600 8N1: 10 bits at 9600 baud). */
  fake_clock_advance (f->fc, 4 * 1041666 - 1000);
  g_assert_false (f->irq.level[IRQ]);
  fake_clock_advance (f->fc, 10000);
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0xcc);
  for (unsigned i = 13; i < 16; i++)
    g_assert_cmphex (tu_inb (f->pio, COM1), ==, 'a' + i);
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 1, ==, 0);
  g_assert_cmpuint (f->rx_ready_calls, ==, 1 + 16 + 1);

  /* FCR bit 1 clears the receive FIFO. */
  g_assert_cmpuint (uart16550_receive (f->uart, buf, 5), ==, 5);
  tu_outb (f->pio, COM1 + 2, 0x43);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 1, ==, 0);
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 16);
  /* Trigger level 14. */
  tu_outb (f->pio, COM1 + 2, 0xc1);
  g_assert_cmpuint (uart16550_receive (f->uart, buf, 13), ==, 13);
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmpuint (uart16550_receive (f->uart, buf, 1), ==, 1);
  g_assert_true (f->irq.level[IRQ]);
}

static void
test_loopback (fixture *f, gconstpointer data)
{
  /* Linux's 8250 probe: loopback with RTS|OUT2 must show CTS|DCD. */
  tu_inb (f->pio, COM1 + 6);
  tu_outb (f->pio, COM1 + 4, 0x10 | 0x0a);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 6) & 0xf0, ==, 0x90);
  tu_outb (f->pio, COM1 + 4, 0x10 | 0x05);
  uint8_t msr = tu_inb (f->pio, COM1 + 6);
  g_assert_cmphex (msr & 0xf0, ==, 0x60);
  /* CTS and DCD dropped, DSR rose: deltas; RI rose: no trailing edge. */
  g_assert_cmphex (msr & 0x0f, ==, 0x01 | 0x02 | 0x08);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 6) & 0x0f, ==, 0);
  /* RI trailing edge sets TERI; modem status interrupt. */
  tu_outb (f->pio, COM1 + 1, 0x08);
  g_assert_false (f->irq.level[IRQ]);
  tu_outb (f->pio, COM1 + 4, 0x10 | 0x01);
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x00);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 6) & 0x0f, ==, 0x04);
  g_assert_false (f->irq.level[IRQ]);
  tu_outb (f->pio, COM1 + 1, 0x00);

  /* Transmitted bytes come back and do not reach the chardev. */
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 0);
  tu_outb (f->pio, COM1, 0x42);
  g_assert_cmpuint (f->out->len, ==, 0);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 0x01, ==, 0x01);
  /* Non-FIFO: a second byte overruns. */
  tu_outb (f->pio, COM1, 0x43);
  tu_outb (f->pio, COM1 + 1, 0x04);
  g_assert_true (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x06);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5), ==, 0x63);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5), ==, 0x61);
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1), ==, 0x42);

  /* With the FIFO, sixteen bytes loop back in order. */
  tu_outb (f->pio, COM1 + 2, 0x07);
  for (unsigned i = 0; i < 16; i++)
    tu_outb (f->pio, COM1, i);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 0x02, ==, 0);
  tu_outb (f->pio, COM1, 0xff);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5) & 0x02, ==, 0x02);
  for (unsigned i = 0; i < 16; i++)
    g_assert_cmphex (tu_inb (f->pio, COM1), ==, i);

  /* Leaving loopback: the host lines are back, receive works again. */
  unsigned before = f->rx_ready_calls;
  tu_outb (f->pio, COM1 + 4, 0x0b);
  g_assert_cmpuint (f->rx_ready_calls, >, before);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 6) & 0xf0, ==, 0xb0);
  g_assert_cmpuint (uart16550_rx_space (f->uart), ==, 16);
  tu_outb (f->pio, COM1, 'x');
  g_assert_cmpuint (f->out->len, ==, 1);
}

static void
test_wide_access (fixture *f, gconstpointer data)
{
  /* A 16-bit write at +3 sets LCR and MCR. */
  tu_outw (f->pio, COM1 + 3, 0x0b03);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 3), ==, 0x03);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 4), ==, 0x0b);
  g_assert_cmphex (tu_inw (f->pio, COM1 + 3), ==, 0x0b03);
}

static void
test_reset (fixture *f, gconstpointer data)
{
  tu_outb (f->pio, COM1 + 2, 0x07);
  tu_outb (f->pio, COM1 + 1, 0x0f);
  tu_outb (f->pio, COM1 + 7, 0x11);
  uint8_t b = 1;
  uart16550_receive (f->uart, &b, 1);
  g_assert_true (f->irq.level[IRQ]);
  vmm_device_reset (uart16550_device (f->uart));
  g_assert_false (f->irq.level[IRQ]);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 1), ==, 0);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 2), ==, 0x01);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 5), ==, 0x60);
  g_assert_cmphex (tu_inb (f->pio, COM1 + 7), ==, 0);
  g_assert_cmpuint (fake_clock_armed (f->fc), ==, 0);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/uart16550/" name, fixture, NULL, setup, fn, teardown)
  ADD ("registers", test_registers);
  ADD ("transmit", test_transmit);
  ADD ("receive-fifo", test_receive_fifo);
  ADD ("loopback", test_loopback);
  ADD ("wide-access", test_wide_access);
  ADD ("reset", test_reset);
  return g_test_run ();
}
