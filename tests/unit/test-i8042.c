/* 8042 controller, PS/2 keyboard and mouse. */
#include "fake-irq.h"
#include "test-util.h"
#include "vmm-core/devices/i8042.h"

#define KBD 1
#define AUX 12

typedef struct {
  vmm_bus *pio;
  fake_irq irq;
  i8042 *kbc;
  unsigned resets;
  unsigned a20_calls;
  bool a20;
} fixture;

static void
on_reset (void *opaque, vmm_reset_kind kind)
{
  ((fixture *) opaque)->resets++;
}

static void
on_a20 (void *opaque, bool on)
{
  fixture *f = opaque;
  f->a20_calls++;
  f->a20 = on;
}

static void
setup (fixture *f, gconstpointer data)
{
  g_autoptr (GError) error = NULL;
  f->pio = vmm_bus_new (VMM_BUS_PIO);
  vmm_irq k = fake_irq_line (&f->irq, KBD);
  vmm_irq m = fake_irq_line (&f->irq, AUX);
  f->kbc = i8042_create (&k, &m, on_reset, on_a20, f);
  g_assert_true (i8042_attach (f->kbc, f->pio, I8042_DEFAULT_BASE, &error));
  g_assert_no_error (error);
}

static void
teardown (fixture *f, gconstpointer data)
{
  vmm_device_destroy (i8042_device (f->kbc));
  vmm_bus_free (f->pio);
}

static uint8_t
status (fixture *f)
{
  return tu_inb (f->pio, 0x64);
}

/* Reads one byte that must be waiting. */
static uint8_t
read_data (fixture *f)
{
  g_assert_cmphex (status (f) & 0x01, ==, 0x01);
  return tu_inb (f->pio, 0x60);
}

static void
expect (fixture *f, const uint8_t *bytes, size_t n, bool aux)
{
  for (size_t i = 0; i < n; i++)
    {
      uint8_t st = status (f);
      if (!(st & 0x01))
        g_error ("byte %zu of %zu (0x%02x) missing", i, n, bytes[i]);
      g_assert_cmphex (st & 0x20, ==, aux ? 0x20 : 0);
      uint8_t v = tu_inb (f->pio, 0x60);
      if (v != bytes[i])
        g_error ("byte %zu: 0x%02x, expected 0x%02x", i, v, bytes[i]);
    }
  g_assert_cmphex (status (f) & 0x01, ==, 0);
}
#define EXPECT(f, aux, ...)                                                    \
  do                                                                           \
    {                                                                          \
      static const uint8_t b_[] = { __VA_ARGS__ };                             \
      expect (f, b_, sizeof b_, aux);                                          \
    }                                                                          \
  while (0)

static void
command (fixture *f, uint8_t cmd)
{
  tu_outb (f->pio, 0x64, cmd);
}

static void
data (fixture *f, uint8_t v)
{
  tu_outb (f->pio, 0x60, v);
}

static void
test_controller (fixture *f, gconstpointer data_)
{
  /* Power-on: nothing to read, keyboard not inhibited. */
  g_assert_cmphex (status (f) & 0x13, ==, 0x10);
  /* Self-test: 0x55, and the system flag. */
  command (f, 0xaa);
  g_assert_cmphex (status (f) & 0x08, ==, 0x08); /* A2: a command */
  g_assert_cmphex (read_data (f), ==, 0x55);
  g_assert_cmphex (status (f) & 0x04, ==, 0x04);
  /* Interface tests. */
  command (f, 0xab);
  g_assert_cmphex (read_data (f), ==, 0x00);
  command (f, 0xa9);
  g_assert_cmphex (read_data (f), ==, 0x00);
  /* Command byte read/write (IRQs on, translation, SYS). */
  command (f, 0x20);
  g_assert_cmphex (read_data (f), ==, 0x03);
  command (f, 0x60);
  data (f, 0x47);
  g_assert_cmphex (status (f) & 0x08, ==, 0);
  command (f, 0x20);
  g_assert_cmphex (read_data (f), ==, 0x47);
  command (f, 0x60);
  data (f, 0x41);
  g_assert_cmphex (status (f) & 0x04, ==, 0);
  /* Controller RAM beyond byte 0. */
  command (f, 0x65);
  data (f, 0x99);
  command (f, 0x25);
  g_assert_cmphex (read_data (f), ==, 0x99);
  /* 0xAD/0xAE and 0xA7/0xA8 are bits 4 and 5 of the command byte. */
  command (f, 0xad);
  command (f, 0xa7);
  command (f, 0x20);
  g_assert_cmphex (read_data (f), ==, 0x71);
  command (f, 0xae);
  command (f, 0xa8);
  command (f, 0x20);
  g_assert_cmphex (read_data (f), ==, 0x41);
  /* Controller replies raise IRQ 1 when enabled. */
  command (f, 0x60);
  data (f, 0x01);
  fake_irq_clear_counts (&f->irq);
  command (f, 0xab);
  g_assert_true (f->irq.level[KBD]);
  read_data (f);
  g_assert_false (f->irq.level[KBD]);
  g_assert_cmpuint (f->irq.raised[KBD], ==, 1);
  /* Unknown commands are ignored. */
  command (f, 0x00);
  command (f, 0xc1);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
}

static void
test_output_port (fixture *f, gconstpointer data_)
{
  command (f, 0xd0);
  g_assert_cmphex (read_data (f) & 0x03, ==, 0x03);
  /* A20 off and on through the output port. */
  command (f, 0xd1);
  data (f, 0x01);
  g_assert_cmpuint (f->a20_calls, ==, 1);
  g_assert_false (f->a20);
  g_assert_false (i8042_a20 (f->kbc));
  command (f, 0xdf);
  g_assert_true (f->a20);
  g_assert_cmpuint (f->resets, ==, 0);
  /* Writing bit 0 low resets the CPU. */
  command (f, 0xd1);
  data (f, 0x02);
  g_assert_cmpuint (f->resets, ==, 1);
  command (f, 0xd0);
  g_assert_cmphex (read_data (f) & 0x01, ==, 0x01);
  /* The pulse commands: 0xFE pulses bit 0 (reset), 0xFF pulses nothing. */
  command (f, 0xfe);
  g_assert_cmpuint (f->resets, ==, 2);
  command (f, 0xff);
  g_assert_cmpuint (f->resets, ==, 2);
  command (f, 0xf0);
  g_assert_cmpuint (f->resets, ==, 3);
  command (f, 0xf1);
  g_assert_cmpuint (f->resets, ==, 3);
  /* Writing the output buffers. */
  command (f, 0xd2);
  data (f, 0x12);
  EXPECT (f, false, 0x12);
  command (f, 0xd3);
  data (f, 0x34);
  g_assert_true (f->irq.level[AUX]);
  EXPECT (f, true, 0x34);
  g_assert_false (f->irq.level[AUX]);
}

static void
test_keyboard (fixture *f, gconstpointer data_)
{
  fake_irq_clear_counts (&f->irq);
  /* Reset: ACK then BAT passed, each byte an IRQ 1 edge. */
  data (f, 0xff);
  g_assert_true (f->irq.level[KBD]);
  EXPECT (f, false, 0xfa, 0xaa);
  g_assert_cmpuint (f->irq.raised[KBD], ==, 2);
  g_assert_false (f->irq.level[KBD]);
  /* Identify. */
  data (f, 0xf2);
  EXPECT (f, false, 0xfa, 0xab, 0x83);
  /* LEDs, typematic, enable/disable, echo. */
  data (f, 0xed);
  data (f, 0x07);
  EXPECT (f, false, 0xfa, 0xfa);
  data (f, 0xf3);
  data (f, 0x20);
  EXPECT (f, false, 0xfa, 0xfa);
  data (f, 0xee);
  EXPECT (f, false, 0xee);
  /* Scan code set: read 2, set 1, read 1. */
  data (f, 0xf0);
  data (f, 0x00);
  EXPECT (f, false, 0xfa, 0xfa, 0x02);
  data (f, 0xf0);
  data (f, 0x01);
  EXPECT (f, false, 0xfa, 0xfa);
  data (f, 0xf0);
  data (f, 0x00);
  EXPECT (f, false, 0xfa, 0xfa, 0x01);
  /* In set 1 the keyboard sends set 1 codes: A = 0x1E, break 0x9E. */
  static const uint8_t a_make_break[] = { 0x1c, 0xf0, 0x1c };
  i8042_keyboard_put (f->kbc, a_make_break, 3);
  EXPECT (f, false, 0x1e, 0x9e);
  data (f, 0xf0);
  data (f, 0x02);
  EXPECT (f, false, 0xfa, 0xfa);
  i8042_keyboard_put (f->kbc, a_make_break, 3);
  EXPECT (f, false, 0x1c, 0xf0, 0x1c);
  /* Disabled scanning drops keys. */
  data (f, 0xf5);
  EXPECT (f, false, 0xfa);
  i8042_keyboard_put (f->kbc, a_make_break, 3);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  data (f, 0xf4);
  EXPECT (f, false, 0xfa);
  /* Unknown command: resend. */
  data (f, 0x01);
  EXPECT (f, false, 0xfe);
}

static void
test_translation (fixture *f, gconstpointer data_)
{
  /* Command byte 0x61: translate, IRQ 1, mouse off. */
  command (f, 0x60);
  data (f, 0x61);
  static const uint8_t keys[] = { 0x1c, 0xf0, 0x1c, 0xe0, 0x75, 0xe0, 0xf0,
                                  0x75 };
  i8042_keyboard_put (f->kbc, keys, sizeof keys);
  /* A make/break, then extended Up make/break in set 1. */
  EXPECT (f, false, 0x1e, 0x9e, 0xe0, 0x48, 0xe0, 0xc8);
  /* The ID's second byte translates too. */
  data (f, 0xf2);
  EXPECT (f, false, 0xfa, 0xab, 0x41);
  /* With the keyboard interface disabled, keys wait in the keyboard. */
  command (f, 0xad);
  i8042_keyboard_put (f->kbc, keys, 1);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  command (f, 0xae);
  EXPECT (f, false, 0x1e);
}

/* Reads whatever is waiting (at most @max bytes) into @out. */
static size_t
drain (fixture *f, uint8_t *out, size_t max)
{
  size_t n = 0;
  while ((status (f) & 0x01) && n < max)
    out[n++] = tu_inb (f->pio, 0x60);
  return n;
}

/* Keys pressed while the guest does not read (SeaBIOS's POST, a busy
 * guest) fill the keyboard's queue; whatever is dropped, the keyboard must
 * not wedge: after the guest drains the output buffer new keys arrive with
 * an IRQ 1 edge, and a command sent meanwhile still gets its ACK. */
static void
test_keyboard_overflow (fixture *f, gconstpointer data_)
{
  static const uint8_t a_make[] = { 0x1c };
  static const uint8_t a_break[] = { 0xf0, 0x1c };
  static const uint8_t b_make_break[] = { 0x32, 0xf0, 0x32 };
  uint8_t got[512];
  size_t n;

  /* As SeaBIOS leaves it: translation, IRQ 1, the mouse off. */
  command (f, 0x60);
  data (f, 0x61);
  for (unsigned round = 0; round < 3; round++)
    {
      for (unsigned i = 0; i < 300; i++)
        {
          i8042_keyboard_put (f->kbc, a_make, sizeof a_make);
          i8042_keyboard_put (f->kbc, a_break, sizeof a_break);
        }
      g_assert_true (f->irq.level[KBD]);
          n = drain (f, got, sizeof got);
      g_assert_cmpuint (n, >, 0);
      g_assert_cmpuint (n, <, sizeof got);
      for (size_t i = 0; i < n; i++)
        g_assert_true (got[i] == 0x1e || got[i] == 0x9e);
      g_assert_false (f->irq.level[KBD]);

      /* The queue is empty again: a new key comes with an edge. */
      fake_irq_clear_counts (&f->irq);
      i8042_keyboard_put (f->kbc, b_make_break, sizeof b_make_break);
      g_assert_cmpuint (f->irq.raised[KBD], ==, 1);
      EXPECT (f, false, 0x30, 0xb0);
    }

  /* A full queue, then a command (LEDs, as a guest's keyboard driver
   * sends on Caps Lock): its ACK is not lost behind the scan codes. */
  for (unsigned i = 0; i < 300; i++)
    i8042_keyboard_put (f->kbc, a_make, sizeof a_make);
  data (f, 0xed);
  n = drain (f, got, sizeof got);
  g_assert_cmpuint (n, >, 1);
  g_assert_cmphex (got[n - 1], ==, 0xfa);
  data (f, 0x02);
  EXPECT (f, false, 0xfa);
  /* Reset with a full queue: the byte already in the controller's output
   * buffer stays, the keyboard's queue goes; then ACK and BAT. */
  for (unsigned i = 0; i < 300; i++)
    i8042_keyboard_put (f->kbc, a_make, sizeof a_make);
  data (f, 0xff);
  n = drain (f, got, sizeof got);
  g_assert_cmpuint (n, ==, 3);
  g_assert_cmphex (got[0], ==, 0x1e);
  g_assert_cmphex (got[1], ==, 0xfa);
  g_assert_cmphex (got[2], ==, 0xaa);
  i8042_keyboard_put (f->kbc, b_make_break, sizeof b_make_break);
  EXPECT (f, false, 0x30, 0xb0);

  /* The keyboard interface disabled (0xAD) while keys come: they wait;
   * enabled again, they flow and new ones follow. */
  command (f, 0xad);
  for (unsigned i = 0; i < 300; i++)
    i8042_keyboard_put (f->kbc, b_make_break, sizeof b_make_break);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  command (f, 0xae);
  n = drain (f, got, sizeof got);
  g_assert_cmpuint (n, >, 0);
  i8042_keyboard_put (f->kbc, a_make, sizeof a_make);
  EXPECT (f, false, 0x1e);
}

static void
aux_cmd (fixture *f, uint8_t v)
{
  command (f, 0xd4);
  data (f, v);
}

static void
test_mouse (fixture *f, gconstpointer data_)
{
  fake_irq_clear_counts (&f->irq);
  aux_cmd (f, 0xff);
  g_assert_true (f->irq.level[AUX]);
  g_assert_false (f->irq.level[KBD]);
  EXPECT (f, true, 0xfa, 0xaa, 0x00);
  g_assert_cmpuint (f->irq.raised[AUX], ==, 3);
  aux_cmd (f, 0xf2);
  EXPECT (f, true, 0xfa, 0x00);
  /* Status: stream, disabled, 1:1, resolution 2, 100 samples/s. */
  aux_cmd (f, 0xe9);
  EXPECT (f, true, 0xfa, 0x00, 0x02, 100);
  aux_cmd (f, 0xe8);
  aux_cmd (f, 0x03);
  aux_cmd (f, 0xe7);
  EXPECT (f, true, 0xfa, 0xfa, 0xfa);
  aux_cmd (f, 0xe9);
  EXPECT (f, true, 0xfa, 0x10, 0x03, 100);
  aux_cmd (f, 0xe6);
  EXPECT (f, true, 0xfa);
  /* No packets until reporting is enabled. */
  i8042_mouse_put_motion (f->kbc, 5, -3, 0, I8042_BUTTON_LEFT);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  aux_cmd (f, 0xf4);
  EXPECT (f, true, 0xfa);
  i8042_mouse_put_motion (f->kbc, 5, -3, 0, I8042_BUTTON_LEFT);
  EXPECT (f, true, 0x29, 0x05, 0xfd);
  i8042_mouse_put_motion (f->kbc, -1000, 1000, 0, 0);
  EXPECT (f, true, 0x18, 0x00, 0xff);
  /* IntelliMouse: 200, 100, 80 → ID 3 and 4-byte packets. */
  static const uint8_t rates[] = { 200, 100, 80 };
  for (unsigned i = 0; i < 3; i++)
    {
      aux_cmd (f, 0xf3);
      aux_cmd (f, rates[i]);
    }
  EXPECT (f, true, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa);
  aux_cmd (f, 0xf2);
  EXPECT (f, true, 0xfa, 0x03);
  i8042_mouse_put_motion (f->kbc, 1, 1, -1, 0);
  EXPECT (f, true, 0x08, 0x01, 0x01, 0xff);
  /* Explorer: 200, 200, 80 → ID 4. */
  static const uint8_t rates4[] = { 200, 200, 80 };
  for (unsigned i = 0; i < 3; i++)
    {
      aux_cmd (f, 0xf3);
      aux_cmd (f, rates4[i]);
    }
  EXPECT (f, true, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa, 0xfa);
  aux_cmd (f, 0xf2);
  EXPECT (f, true, 0xfa, 0x04);
  i8042_mouse_put_motion (f->kbc, 0, 0, 2, I8042_BUTTON_SIDE);
  EXPECT (f, true, 0x08, 0x00, 0x00, 0x12);
  /* Wrap mode echoes. */
  aux_cmd (f, 0xee);
  aux_cmd (f, 0x42);
  aux_cmd (f, 0xec);
  EXPECT (f, true, 0xfa, 0x42, 0xfa);
  /* Mouse disabled at the controller: data waits, keyboard passes. */
  command (f, 0xa7);
  aux_cmd (f, 0xf2);
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  command (f, 0xa8);
  EXPECT (f, true, 0xfa, 0x04);
  /* Mouse interrupts off in the command byte: data, no IRQ 12. */
  command (f, 0x60);
  data (f, 0x01);
  fake_irq_clear_counts (&f->irq);
  aux_cmd (f, 0xf2);
  g_assert_false (f->irq.level[AUX]);
  EXPECT (f, true, 0xfa, 0x04);
  g_assert_cmpuint (f->irq.raised[AUX], ==, 0);
}

static void
test_reset (fixture *f, gconstpointer data_)
{
  command (f, 0x60);
  data (f, 0x74);
  aux_cmd (f, 0xf4);
  data (f, 0xf0);
  vmm_device_reset (i8042_device (f->kbc));
  g_assert_cmphex (status (f) & 0x01, ==, 0);
  command (f, 0x20);
  g_assert_cmphex (read_data (f), ==, 0x03);
  /* The keyboard's pending F0 was dropped: F2 is a command again. */
  data (f, 0xf2);
  EXPECT (f, false, 0xfa, 0xab, 0x83);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(name, fn)                                                          \
  g_test_add ("/i8042/" name, fixture, NULL, setup, fn, teardown)
  ADD ("controller", test_controller);
  ADD ("output-port", test_output_port);
  ADD ("keyboard", test_keyboard);
  ADD ("translation", test_translation);
  ADD ("keyboard-overflow", test_keyboard_overflow);
  ADD ("mouse", test_mouse);
  ADD ("reset", test_reset);
  return g_test_run ();
}
