/* 8042 keyboard controller with a PS/2 keyboard and mouse. Register and
 * command semantics: IBM Personal System/2 Hardware Interface Technical
 * Reference, "Keyboard/Auxiliary Device Controller" (status register,
 * command byte, controller commands) and "Keyboard and Auxiliary Device"
 * (keyboard and mouse commands, scan code translation).
 *
 * Commands complete at once, so the input buffer is never full (IBF = 0).
 * The controller's output buffer holds one byte; the devices queue theirs
 * behind it. IRQ 1 and IRQ 12 follow OBF for the keyboard and the mouse
 * respectively when the command byte enables them, so each byte loaded into
 * the output buffer is a rising edge.
 *
 * Host input (keys, mouse motion) only fills a device's queue up to
 * PS2_REPLY_HEADROOM bytes short of full, and is dropped whole beyond that:
 * the rest is kept for replies to commands, so a guest that did not read
 * while keys came (SeaBIOS's POST, a busy guest) still gets the ACK of its
 * next command instead of waiting for one that was dropped. */
#include "vmm-core/devices/i8042.h"

#include "vmm-core/devices/devstate.h"

/* Status register. */
enum {
  STAT_OBF = 0x01,
  STAT_IBF = 0x02,
  STAT_SYS = 0x04,
  STAT_A2 = 0x08,    /* last write was a command (port 0x64) */
  STAT_INH = 0x10,   /* 1 = keyboard not inhibited */
  STAT_AUXB = 0x20,  /* output buffer holds mouse data */
};

/* Command byte (controller RAM byte 0). */
enum {
  CMD_KBD_INT = 0x01,
  CMD_AUX_INT = 0x02,
  CMD_SYS = 0x04,
  CMD_KBD_DISABLE = 0x10,
  CMD_AUX_DISABLE = 0x20,
  CMD_XLATE = 0x40,
};

/* Output port. */
enum {
  OUT_RESET = 0x01, /* 0 = CPU reset asserted */
  OUT_A20 = 0x02,
  OUT_OBF_KBD = 0x10,
  OUT_OBF_AUX = 0x20,
};

enum {
  MOUSE_STATUS_RIGHT = 0x01,
  MOUSE_STATUS_MIDDLE = 0x02,
  MOUSE_STATUS_LEFT = 0x04,
  MOUSE_STATUS_SCALE21 = 0x10,
  MOUSE_STATUS_ENABLED = 0x20,
  MOUSE_STATUS_REMOTE = 0x40,
};

#define PS2_ACK 0xfa
#define PS2_RESEND 0xfe
#define PS2_BAT_OK 0xaa
#define PS2_QUEUE_SIZE 64
/* Room kept for command replies: the longest is 4 bytes (a mouse's status
 * request), two commands' worth. */
#define PS2_REPLY_HEADROOM 8

/* Scan code set 2 to set 1, as the 8042 translates (and as a keyboard in
 * set 1 sends). 0xF0 (break prefix) is handled by the caller. */
static const uint8_t set2_to_set1[256] = {
  0xff, 0x43, 0x41, 0x3f, 0x3d, 0x3b, 0x3c, 0x58, 0x64, 0x44, 0x42, 0x40,
  0x3e, 0x0f, 0x29, 0x59, 0x65, 0x38, 0x2a, 0x70, 0x1d, 0x10, 0x02, 0x5a,
  0x66, 0x71, 0x2c, 0x1f, 0x1e, 0x11, 0x03, 0x5b, 0x67, 0x2e, 0x2d, 0x20,
  0x12, 0x05, 0x04, 0x5c, 0x68, 0x39, 0x2f, 0x21, 0x14, 0x13, 0x06, 0x5d,
  0x69, 0x31, 0x30, 0x23, 0x22, 0x15, 0x07, 0x5e, 0x6a, 0x72, 0x32, 0x24,
  0x16, 0x08, 0x09, 0x5f, 0x6b, 0x33, 0x25, 0x17, 0x18, 0x0b, 0x0a, 0x60,
  0x6c, 0x34, 0x35, 0x26, 0x27, 0x19, 0x0c, 0x61, 0x6d, 0x73, 0x28, 0x74,
  0x1a, 0x0d, 0x62, 0x6e, 0x3a, 0x36, 0x1c, 0x1b, 0x75, 0x2b, 0x63, 0x76,
  0x55, 0x56, 0x77, 0x78, 0x79, 0x7a, 0x0e, 0x7b, 0x7c, 0x4f, 0x7d, 0x4b,
  0x47, 0x7e, 0x7f, 0x6f, 0x52, 0x53, 0x50, 0x4c, 0x4d, 0x48, 0x01, 0x45,
  0x57, 0x4e, 0x51, 0x4a, 0x37, 0x49, 0x46, 0x54, 0x80, 0x81, 0x82, 0x41,
  0x54, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8d, 0x8e, 0x8f,
  0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0x9b,
  0x9c, 0x9d, 0x9e, 0x9f, 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
  0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf, 0xb0, 0xb1, 0xb2, 0xb3,
  0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
  0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb,
  0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7,
  0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3,
  0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
  0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb,
  0xfc, 0xfd, 0xfe, 0xff,
};

typedef struct ps2_queue {
  uint8_t data[PS2_QUEUE_SIZE];
  uint8_t head;
  uint8_t count;
} ps2_queue;

/* Guest-visible state: what save_state and load_state walk. */
typedef struct kbc_regs {
  /* Controller */
  uint8_t status;      /* SYS, A2, INH; OBF and AUXB come from obf/obf_aux */
  uint8_t ram[32];     /* ram[0] is the command byte */
  uint8_t outport;
  uint8_t pending_cmd; /* a controller command waiting for its data byte */
  bool obf;
  bool obf_aux;
  uint8_t obuf;
  bool ctrl_pending; /* a controller reply waiting for the output buffer */
  bool ctrl_aux;
  uint8_t ctrl_byte;
  bool xlate_break; /* translation saw 0xF0 */
  /* Keyboard */
  ps2_queue kq;
  uint8_t kbd_cmd; /* a keyboard command waiting for its parameter */
  uint8_t kbd_set;
  uint8_t kbd_leds;
  uint8_t kbd_typematic;
  bool kbd_scanning;
  bool kbd_set1_break;
  uint8_t kbd_last;
  /* Mouse */
  ps2_queue mq;
  uint8_t aux_cmd;
  uint8_t aux_status; /* REMOTE, ENABLED, SCALE21 */
  uint8_t aux_resolution;
  uint8_t aux_rate;
  bool aux_wrap;
  uint8_t aux_id; /* 0 PS/2, 3 IntelliMouse, 4 IntelliMouse Explorer */
  uint8_t aux_detect;
  uint8_t aux_buttons;
  uint8_t aux_last;
} kbc_regs;

struct i8042 {
  vmm_device dev;
  vmm_irq kbd_irq;
  vmm_irq aux_irq;
  bool kbd_level;
  bool aux_level;
  vmm_reset_request_fn reset_request;
  vmm_a20_changed_fn a20_changed;
  void *opaque;
  vmm_bus *pio;
  uint16_t base;
  bool attached;
  kbc_regs r;
};

/* Queues */

static unsigned
q_free (const ps2_queue *q)
{
  return PS2_QUEUE_SIZE - q->count;
}

static void
q_push (ps2_queue *q, uint8_t v)
{
  if (q->count >= PS2_QUEUE_SIZE)
    return;
  q->data[(q->head + q->count) % PS2_QUEUE_SIZE] = v;
  q->count++;
}

static uint8_t
q_pop (ps2_queue *q)
{
  uint8_t v = q->data[q->head];
  q->head = (q->head + 1) % PS2_QUEUE_SIZE;
  q->count--;
  return v;
}

static void
q_clear (ps2_queue *q)
{
  q->head = q->count = 0;
}

/* Controller */

static void
kbc_update_irq (i8042 *kbc)
{
  const kbc_regs *r = &kbc->r;
  bool kbd = r->obf && !r->obf_aux && (r->ram[0] & CMD_KBD_INT);
  bool aux = r->obf && r->obf_aux && (r->ram[0] & CMD_AUX_INT);
  if (kbd != kbc->kbd_level)
    {
      kbc->kbd_level = kbd;
      vmm_irq_set (&kbc->kbd_irq, kbd);
    }
  if (aux != kbc->aux_level)
    {
      kbc->aux_level = aux;
      vmm_irq_set (&kbc->aux_irq, aux);
    }
}

/* Loads the output buffer from the next source: a controller reply, then
 * the keyboard, then the mouse, skipping a disabled interface. */
static void
kbc_refill (i8042 *kbc)
{
  kbc_regs *r = &kbc->r;
  if (!r->obf)
    {
      if (r->ctrl_pending)
        {
          r->obuf = r->ctrl_byte;
          r->obf_aux = r->ctrl_aux;
          r->ctrl_pending = false;
          r->obf = true;
        }
      else if (r->kq.count && !(r->ram[0] & CMD_KBD_DISABLE))
        {
          r->obuf = q_pop (&r->kq);
          r->obf_aux = false;
          r->obf = true;
        }
      else if (r->mq.count && !(r->ram[0] & CMD_AUX_DISABLE))
        {
          r->obuf = q_pop (&r->mq);
          r->obf_aux = true;
          r->obf = true;
        }
    }
  kbc_update_irq (kbc);
}

static void
kbc_reply (i8042 *kbc, uint8_t v, bool aux)
{
  kbc->r.ctrl_pending = true;
  kbc->r.ctrl_byte = v;
  kbc->r.ctrl_aux = aux;
  kbc_refill (kbc);
}

/* A byte from the keyboard, through the controller's set 2 → set 1
 * translation when the command byte asks for it. */
static void
kbd_emit (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;
  r->kbd_last = v;
  if (r->ram[0] & CMD_XLATE)
    {
      if (v == 0xf0)
        {
          r->xlate_break = true;
          return;
        }
      v = set2_to_set1[v] | (r->xlate_break ? 0x80 : 0);
      r->xlate_break = false;
    }
  q_push (&r->kq, v);
}

static void
kbd_defaults (kbc_regs *r)
{
  r->kbd_set = 2;
  r->kbd_leds = 0;
  r->kbd_typematic = 0x2b; /* 10.9 cps, 500 ms */
  r->kbd_cmd = 0;
  r->kbd_set1_break = false;
}

static void
aux_emit (i8042 *kbc, uint8_t v)
{
  kbc->r.aux_last = v;
  q_push (&kbc->r.mq, v);
}

static void
aux_defaults (kbc_regs *r)
{
  r->aux_status = 0;
  r->aux_resolution = 2; /* 4 counts/mm */
  r->aux_rate = 100;
  r->aux_cmd = 0;
}

/* Keyboard commands (IBM PS/2 reference, "Commands to the keyboard"). */
static void
kbd_write (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;

  /* A command byte where a parameter was expected starts a new command. */
  if (r->kbd_cmd && v < 0xed)
    {
      uint8_t cmd = r->kbd_cmd;
      r->kbd_cmd = 0;
      switch (cmd)
        {
        case 0xed:
          r->kbd_leds = v & 0x07;
          kbd_emit (kbc, PS2_ACK);
          break;
        case 0xf3:
          r->kbd_typematic = v & 0x7f;
          kbd_emit (kbc, PS2_ACK);
          break;
        case 0xf0:
          if (v == 0)
            {
              kbd_emit (kbc, PS2_ACK);
              kbd_emit (kbc, r->kbd_set);
            }
          else if (v <= 3)
            {
              r->kbd_set = v;
              kbd_emit (kbc, PS2_ACK);
            }
          else
            kbd_emit (kbc, PS2_RESEND);
          break;
        }
      kbc_refill (kbc);
      return;
    }
  r->kbd_cmd = 0;

  switch (v)
    {
    case 0xff: /* reset: ACK, then the self-test passed */
      q_clear (&r->kq);
      kbd_defaults (r);
      r->kbd_scanning = true;
      kbd_emit (kbc, PS2_ACK);
      kbd_emit (kbc, PS2_BAT_OK);
      break;
    case 0xfe: /* resend */
      q_push (&r->kq, r->kbd_last);
      break;
    case 0xf6: /* set default */
    case 0xf5: /* default and disable */
      q_clear (&r->kq);
      kbd_defaults (r);
      r->kbd_scanning = v == 0xf6;
      kbd_emit (kbc, PS2_ACK);
      break;
    case 0xf4: /* enable */
      q_clear (&r->kq);
      r->kbd_scanning = true;
      kbd_emit (kbc, PS2_ACK);
      break;
    case 0xf2: /* read ID: an MF2 keyboard */
      kbd_emit (kbc, PS2_ACK);
      kbd_emit (kbc, 0xab);
      kbd_emit (kbc, 0x83);
      break;
    case 0xf3: /* typematic rate/delay */
    case 0xf0: /* select/read scan code set */
    case 0xed: /* LEDs */
      r->kbd_cmd = v;
      kbd_emit (kbc, PS2_ACK);
      break;
    case 0xee: /* echo */
      kbd_emit (kbc, 0xee);
      break;
    case 0xf7:
    case 0xf8:
    case 0xf9:
    case 0xfa:
    case 0xfb:
    case 0xfc:
    case 0xfd: /* set-3 key types: accepted, no effect */
      kbd_emit (kbc, PS2_ACK);
      break;
    default:
      kbd_emit (kbc, PS2_RESEND);
      break;
    }
  kbc_refill (kbc);
}

static void
aux_packet (i8042 *kbc, int dx, int dy, int dz, unsigned buttons)
{
  kbc_regs *r = &kbc->r;
  unsigned size = r->aux_id ? 4 : 3;
  if (q_free (&r->mq) < size)
    return;
  dx = CLAMP (dx, -256, 255);
  dy = CLAMP (dy, -256, 255);
  aux_emit (kbc, (uint8_t) ((buttons & 0x07) | 0x08 | (dx < 0 ? 0x10 : 0)
                            | (dy < 0 ? 0x20 : 0)));
  aux_emit (kbc, (uint8_t) (dx & 0xff));
  aux_emit (kbc, (uint8_t) (dy & 0xff));
  if (r->aux_id == 3)
    aux_emit (kbc, (uint8_t) (CLAMP (dz, -127, 127) & 0xff));
  else if (r->aux_id == 4)
    aux_emit (kbc, (uint8_t) ((CLAMP (dz, -8, 7) & 0x0f)
                              | ((buttons & 0x18) << 1)));
}

/* IntelliMouse detection: sample rates 200, 100, 80 → ID 3; 200, 200, 80 →
 * ID 4 (Microsoft's published protocol). */
static void
aux_detect (kbc_regs *r, uint8_t rate)
{
  switch (r->aux_detect)
    {
    case 1:
      r->aux_detect = rate == 100 ? 2 : rate == 200 ? 3 : 0;
      break;
    case 2:
      if (rate == 80)
        r->aux_id = 3;
      r->aux_detect = 0;
      break;
    case 3:
      if (rate == 80)
        r->aux_id = 4;
      r->aux_detect = 0;
      break;
    default:
      r->aux_detect = rate == 200 ? 1 : 0;
      break;
    }
}

/* Mouse commands (IBM PS/2 reference, "Auxiliary device commands"). */
static void
aux_write (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;

  if (r->aux_wrap && v != 0xec && v != 0xff)
    {
      aux_emit (kbc, v);
      kbc_refill (kbc);
      return;
    }
  if (r->aux_cmd)
    {
      uint8_t cmd = r->aux_cmd;
      r->aux_cmd = 0;
      if (cmd == 0xf3)
        {
          r->aux_rate = v;
          aux_detect (r, v);
        }
      else
        r->aux_resolution = v & 0x03;
      aux_emit (kbc, PS2_ACK);
      kbc_refill (kbc);
      return;
    }

  switch (v)
    {
    case 0xff: /* reset: ACK, self-test passed, ID */
      q_clear (&r->mq);
      aux_defaults (r);
      r->aux_wrap = false;
      r->aux_id = 0;
      r->aux_detect = 0;
      aux_emit (kbc, PS2_ACK);
      aux_emit (kbc, PS2_BAT_OK);
      aux_emit (kbc, r->aux_id);
      break;
    case 0xfe:
      aux_emit (kbc, r->aux_last);
      break;
    case 0xf6: /* set defaults */
      aux_defaults (r);
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xf5: /* disable data reporting */
      r->aux_status &= ~MOUSE_STATUS_ENABLED;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xf4: /* enable data reporting */
      r->aux_status |= MOUSE_STATUS_ENABLED;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xf3: /* set sample rate */
    case 0xe8: /* set resolution */
      r->aux_cmd = v;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xf2: /* get device ID */
      aux_emit (kbc, PS2_ACK);
      aux_emit (kbc, r->aux_id);
      break;
    case 0xf0: /* remote mode */
      r->aux_status |= MOUSE_STATUS_REMOTE;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xee: /* wrap mode */
      r->aux_wrap = true;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xec: /* reset wrap mode */
      r->aux_wrap = false;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xeb: /* read data */
      aux_emit (kbc, PS2_ACK);
      aux_packet (kbc, 0, 0, 0, r->aux_buttons);
      break;
    case 0xea: /* stream mode */
      r->aux_status &= ~MOUSE_STATUS_REMOTE;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xe9: /* status request */
      aux_emit (kbc, PS2_ACK);
      aux_emit (kbc,
                r->aux_status
                    | ((r->aux_buttons & I8042_BUTTON_LEFT) ? MOUSE_STATUS_LEFT : 0)
                    | ((r->aux_buttons & I8042_BUTTON_RIGHT) ? MOUSE_STATUS_RIGHT : 0)
                    | ((r->aux_buttons & I8042_BUTTON_MIDDLE) ? MOUSE_STATUS_MIDDLE
                                                              : 0));
      aux_emit (kbc, r->aux_resolution);
      aux_emit (kbc, r->aux_rate);
      break;
    case 0xe7: /* scaling 2:1 */
      r->aux_status |= MOUSE_STATUS_SCALE21;
      aux_emit (kbc, PS2_ACK);
      break;
    case 0xe6: /* scaling 1:1 */
      r->aux_status &= ~MOUSE_STATUS_SCALE21;
      aux_emit (kbc, PS2_ACK);
      break;
    default:
      aux_emit (kbc, PS2_RESEND);
      break;
    }
  kbc_refill (kbc);
}

static void
kbc_set_command_byte (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;
  r->ram[0] = v;
  r->status = (r->status & ~STAT_SYS) | ((v & CMD_SYS) ? STAT_SYS : 0);
  kbc_refill (kbc);
}

static void
kbc_write_outport (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;
  uint8_t old = r->outport;
  r->outport = v & (OUT_RESET | OUT_A20 | 0xc0);
  if (((old ^ v) & OUT_A20) && kbc->a20_changed)
    kbc->a20_changed (kbc->opaque, v & OUT_A20);
  /* Bit 0 low drives the CPU's reset line. */
  if (!(v & OUT_RESET))
    {
      r->outport |= OUT_RESET;
      if (kbc->reset_request)
        kbc->reset_request (kbc->opaque, VMM_RESET_CPU);
    }
}

static uint8_t
kbc_read_outport (const kbc_regs *r)
{
  uint8_t v = r->outport;
  if (r->obf)
    v |= r->obf_aux ? OUT_OBF_AUX : OUT_OBF_KBD;
  return v;
}

/* Controller commands (IBM PS/2 reference, "Commands (I/O address
 * hex 64)"). */
static void
kbc_command (i8042 *kbc, uint8_t cmd)
{
  kbc_regs *r = &kbc->r;
  r->pending_cmd = 0;
  if (cmd >= 0x20 && cmd <= 0x3f)
    {
      kbc_reply (kbc, r->ram[cmd & 0x1f], false);
      return;
    }
  if (cmd >= 0x60 && cmd <= 0x7f)
    {
      r->pending_cmd = cmd;
      return;
    }
  if (cmd >= 0xf0)
    {
      /* Pulse the output port bits whose command bit is 0: bit 0 is the
       * CPU reset line. */
      if (!(cmd & 0x01) && kbc->reset_request)
        kbc->reset_request (kbc->opaque, VMM_RESET_CPU);
      return;
    }
  switch (cmd)
    {
    case 0xa4: /* password installed? no */
      kbc_reply (kbc, 0xf1, false);
      break;
    case 0xa7:
      kbc_set_command_byte (kbc, r->ram[0] | CMD_AUX_DISABLE);
      break;
    case 0xa8:
      kbc_set_command_byte (kbc, r->ram[0] & ~CMD_AUX_DISABLE);
      break;
    case 0xa9: /* auxiliary interface test: no error */
    case 0xab: /* keyboard interface test: no error */
      kbc_reply (kbc, 0x00, false);
      break;
    case 0xaa: /* self-test */
      r->status |= STAT_SYS;
      kbc_reply (kbc, 0x55, false);
      break;
    case 0xad:
      kbc_set_command_byte (kbc, r->ram[0] | CMD_KBD_DISABLE);
      break;
    case 0xae:
      kbc_set_command_byte (kbc, r->ram[0] & ~CMD_KBD_DISABLE);
      break;
    case 0xc0: /* input port: keyboard not inhibited */
      kbc_reply (kbc, 0x80, false);
      break;
    case 0xd0:
      kbc_reply (kbc, kbc_read_outport (r), false);
      break;
    case 0xd1: /* write output port */
    case 0xd2: /* write keyboard output buffer */
    case 0xd3: /* write auxiliary output buffer */
    case 0xd4: /* write to auxiliary device */
      r->pending_cmd = cmd;
      break;
    case 0xdd: /* A20 off (non-IBM, widely supported) */
      kbc_write_outport (kbc, r->outport & ~OUT_A20);
      break;
    case 0xdf: /* A20 on */
      kbc_write_outport (kbc, r->outport | OUT_A20);
      break;
    case 0xe0: /* test inputs */
      kbc_reply (kbc, 0x00, false);
      break;
    default:
      break;
    }
}

static void
kbc_data (i8042 *kbc, uint8_t v)
{
  kbc_regs *r = &kbc->r;
  uint8_t cmd = r->pending_cmd;
  r->pending_cmd = 0;
  if (cmd >= 0x60 && cmd <= 0x7f)
    {
      if (cmd == 0x60)
        kbc_set_command_byte (kbc, v);
      else
        r->ram[cmd & 0x1f] = v;
      return;
    }
  switch (cmd)
    {
    case 0xd1:
      kbc_write_outport (kbc, v);
      break;
    case 0xd2:
      kbc_reply (kbc, v, false);
      break;
    case 0xd3:
      kbc_reply (kbc, v, true);
      break;
    case 0xd4:
      aux_write (kbc, v);
      break;
    default:
      kbd_write (kbc, v);
      break;
    }
}

static uint64_t
kbc_pio_read (void *opaque, const vmm_access *a)
{
  i8042 *kbc = opaque;
  kbc_regs *r = &kbc->r;
  uint8_t v;
  if (a->addr == kbc->base)
    {
      v = r->obuf;
      if (r->obf)
        {
          r->obf = false;
          r->obf_aux = false;
          kbc_update_irq (kbc); /* the line drops before the next byte */
          kbc_refill (kbc);
        }
    }
  else
    v = (r->status & (STAT_SYS | STAT_A2 | STAT_INH))
        | (r->obf ? STAT_OBF : 0) | (r->obf && r->obf_aux ? STAT_AUXB : 0);
  /* Wider reads repeat nothing: the upper bytes float. */
  return v | (a->size > 1 ? ~0ull << 8 : 0);
}

static void
kbc_pio_write (void *opaque, const vmm_access *a, uint64_t value)
{
  i8042 *kbc = opaque;
  uint8_t v = value & 0xff;
  if (a->addr == kbc->base)
    {
      kbc->r.status &= ~STAT_A2;
      kbc_data (kbc, v);
    }
  else
    {
      kbc->r.status |= STAT_A2;
      kbc_command (kbc, v);
    }
}

static const vmm_region_ops kbc_region_ops = {
  .read = kbc_pio_read,
  .write = kbc_pio_write,
};

static void
kbc_regs_reset (kbc_regs *r)
{
  *r = (kbc_regs){ 0 };
  r->status = STAT_A2 | STAT_INH;
  r->ram[0] = CMD_KBD_INT | CMD_AUX_INT;
  r->outport = OUT_RESET | OUT_A20;
  kbd_defaults (r);
  r->kbd_scanning = true;
  aux_defaults (r);
}

/* Board reset: the controller and both devices to power-on state. The A20
 * gate comes back enabled; the board owns that state across reset and is
 * not called back. */
static void
kbc_reset (vmm_device *dev)
{
  i8042 *kbc = (i8042 *) dev;
  kbc_regs_reset (&kbc->r);
  kbc_update_irq (kbc);
}

#define KBC_STATE_TAG VMM_STATE_TAG ('8', '0', '4', '2')
#define KBC_STATE_VERSION 1

static void
put_queue (GByteArray *out, const ps2_queue *q)
{
  vmm_state_put_bytes (out, q->data, sizeof q->data);
  vmm_state_put_u8 (out, q->head);
  vmm_state_put_u8 (out, q->count);
}

static void
get_queue (vmm_state_reader *rd, ps2_queue *q)
{
  vmm_state_get_bytes (rd, q->data, sizeof q->data);
  q->head = vmm_state_get_u8 (rd);
  q->count = vmm_state_get_u8 (rd);
  vmm_state_check (rd, q->head < PS2_QUEUE_SIZE && q->count <= PS2_QUEUE_SIZE,
                   "queue");
}

static void
kbc_save_state (vmm_device *dev, GByteArray *out)
{
  const kbc_regs *r = &((i8042 *) dev)->r;
  vmm_state_put_header (out, KBC_STATE_TAG, KBC_STATE_VERSION);
  vmm_state_put_u8 (out, r->status);
  vmm_state_put_bytes (out, r->ram, sizeof r->ram);
  vmm_state_put_u8 (out, r->outport);
  vmm_state_put_u8 (out, r->pending_cmd);
  vmm_state_put_bool (out, r->obf);
  vmm_state_put_bool (out, r->obf_aux);
  vmm_state_put_u8 (out, r->obuf);
  vmm_state_put_bool (out, r->ctrl_pending);
  vmm_state_put_bool (out, r->ctrl_aux);
  vmm_state_put_u8 (out, r->ctrl_byte);
  vmm_state_put_bool (out, r->xlate_break);
  put_queue (out, &r->kq);
  vmm_state_put_u8 (out, r->kbd_cmd);
  vmm_state_put_u8 (out, r->kbd_set);
  vmm_state_put_u8 (out, r->kbd_leds);
  vmm_state_put_u8 (out, r->kbd_typematic);
  vmm_state_put_bool (out, r->kbd_scanning);
  vmm_state_put_bool (out, r->kbd_set1_break);
  vmm_state_put_u8 (out, r->kbd_last);
  put_queue (out, &r->mq);
  vmm_state_put_u8 (out, r->aux_cmd);
  vmm_state_put_u8 (out, r->aux_status);
  vmm_state_put_u8 (out, r->aux_resolution);
  vmm_state_put_u8 (out, r->aux_rate);
  vmm_state_put_bool (out, r->aux_wrap);
  vmm_state_put_u8 (out, r->aux_id);
  vmm_state_put_u8 (out, r->aux_detect);
  vmm_state_put_u8 (out, r->aux_buttons);
  vmm_state_put_u8 (out, r->aux_last);
}

static gboolean
kbc_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                GError **error)
{
  i8042 *kbc = (i8042 *) dev;
  vmm_state_reader rd;
  kbc_regs r;

  if (!vmm_state_begin (&rd, data, len, KBC_STATE_TAG, KBC_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  r.status = vmm_state_get_u8 (&rd);
  vmm_state_get_bytes (&rd, r.ram, sizeof r.ram);
  r.outport = vmm_state_get_u8 (&rd);
  r.pending_cmd = vmm_state_get_u8 (&rd);
  r.obf = vmm_state_get_bool (&rd);
  r.obf_aux = vmm_state_get_bool (&rd);
  r.obuf = vmm_state_get_u8 (&rd);
  r.ctrl_pending = vmm_state_get_bool (&rd);
  r.ctrl_aux = vmm_state_get_bool (&rd);
  r.ctrl_byte = vmm_state_get_u8 (&rd);
  r.xlate_break = vmm_state_get_bool (&rd);
  get_queue (&rd, &r.kq);
  r.kbd_cmd = vmm_state_get_u8 (&rd);
  r.kbd_set = vmm_state_get_u8 (&rd);
  r.kbd_leds = vmm_state_get_u8 (&rd);
  r.kbd_typematic = vmm_state_get_u8 (&rd);
  r.kbd_scanning = vmm_state_get_bool (&rd);
  r.kbd_set1_break = vmm_state_get_bool (&rd);
  r.kbd_last = vmm_state_get_u8 (&rd);
  get_queue (&rd, &r.mq);
  r.aux_cmd = vmm_state_get_u8 (&rd);
  r.aux_status = vmm_state_get_u8 (&rd);
  r.aux_resolution = vmm_state_get_u8 (&rd);
  r.aux_rate = vmm_state_get_u8 (&rd);
  r.aux_wrap = vmm_state_get_bool (&rd);
  r.aux_id = vmm_state_get_u8 (&rd);
  r.aux_detect = vmm_state_get_u8 (&rd);
  r.aux_buttons = vmm_state_get_u8 (&rd);
  r.aux_last = vmm_state_get_u8 (&rd);
  vmm_state_check (&rd, r.kbd_set >= 1 && r.kbd_set <= 3, "scan code set");
  vmm_state_check (&rd, r.aux_id == 0 || r.aux_id == 3 || r.aux_id == 4,
                   "mouse ID");
  vmm_state_check (&rd, r.aux_detect <= 3, "mouse detection state");
  if (!vmm_state_end (&rd, dev->name, error))
    return FALSE;

  kbc->r = r;
  kbc_update_irq (kbc);
  return TRUE;
}

static void
kbc_destroy (vmm_device *dev)
{
  i8042 *kbc = (i8042 *) dev;
  if (kbc->attached)
    {
      vmm_bus_unregister (kbc->pio, kbc->base, kbc);
      vmm_bus_unregister (kbc->pio, kbc->base + 4, kbc);
    }
  g_mutex_clear (&dev->lock);
  g_free (kbc);
}

static const vmm_device_ops kbc_device_ops = {
  .reset = kbc_reset,
  .save_state = kbc_save_state,
  .load_state = kbc_load_state,
  .destroy = kbc_destroy,
};

i8042 *
i8042_create (const vmm_irq *kbd_irq, const vmm_irq *aux_irq,
              vmm_reset_request_fn reset_request,
              vmm_a20_changed_fn a20_changed, void *opaque)
{
  i8042 *kbc = g_new0 (i8042, 1);
  vmm_device_init (&kbc->dev, "i8042", &kbc_device_ops);
  if (kbd_irq)
    kbc->kbd_irq = *kbd_irq;
  if (aux_irq)
    kbc->aux_irq = *aux_irq;
  kbc->reset_request = reset_request;
  kbc->a20_changed = a20_changed;
  kbc->opaque = opaque;
  kbc_regs_reset (&kbc->r);
  return kbc;
}

vmm_device *
i8042_device (i8042 *kbc)
{
  return &kbc->dev;
}

gboolean
i8042_attach (i8042 *kbc, vmm_bus *pio, uint16_t base, GError **error)
{
  g_return_val_if_fail (!kbc->attached, FALSE);
  if (!vmm_bus_register (pio, base, 1, &kbc->dev, &kbc_region_ops, kbc,
                         error))
    return FALSE;
  if (!vmm_bus_register (pio, base + 4, 1, &kbc->dev, &kbc_region_ops, kbc,
                         error))
    {
      vmm_bus_unregister (pio, base, kbc);
      return FALSE;
    }
  kbc->pio = pio;
  kbc->base = base;
  kbc->attached = true;
  return TRUE;
}

void
i8042_keyboard_put (i8042 *kbc, const uint8_t *scancodes, size_t n)
{
  g_mutex_lock (&kbc->dev.lock);
  kbc_regs *r = &kbc->r;
  if (r->kbd_scanning && n + PS2_REPLY_HEADROOM <= q_free (&r->kq))
    {
      for (size_t i = 0; i < n; i++)
        {
          uint8_t v = scancodes[i];
          if (r->kbd_set == 1)
            {
              /* The keyboard itself sends set 1. */
              if (v == 0xf0)
                {
                  r->kbd_set1_break = true;
                  continue;
                }
              v = set2_to_set1[v] | (r->kbd_set1_break ? 0x80 : 0);
              r->kbd_set1_break = false;
            }
          kbd_emit (kbc, v);
        }
      kbc_refill (kbc);
    }
  g_mutex_unlock (&kbc->dev.lock);
}

void
i8042_mouse_put_motion (i8042 *kbc, int dx, int dy, int dz, unsigned buttons)
{
  g_mutex_lock (&kbc->dev.lock);
  kbc_regs *r = &kbc->r;
  r->aux_buttons = buttons & 0x1f;
  if ((r->aux_status & MOUSE_STATUS_ENABLED)
      && !(r->aux_status & MOUSE_STATUS_REMOTE) && !r->aux_wrap
      && q_free (&r->mq) >= PS2_REPLY_HEADROOM + 4)
    {
      aux_packet (kbc, dx, dy, dz, buttons);
      kbc_refill (kbc);
    }
  g_mutex_unlock (&kbc->dev.lock);
}

bool
i8042_a20 (i8042 *kbc)
{
  g_mutex_lock (&kbc->dev.lock);
  bool on = kbc->r.outport & OUT_A20;
  g_mutex_unlock (&kbc->dev.lock);
  return on;
}
