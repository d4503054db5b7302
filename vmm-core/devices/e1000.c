/* Intel 82540EM. Behaviour: see e1000.h. */
#include "vmm-core/devices/e1000.h"

#include <gio/gio.h>
#include <string.h>

#include "vmm-core/devices/devstate.h"
#include "vmm-core/devices/pci-rom.h"

#define LOG_FIRST 8
#define NREGS (E1000_MMIO_SIZE / 4)
#define R(off) ((off) / 4)
#define PHY_ADDR 1
#define EEPROM_SUM 0xbaba
#define ETH_HLEN 14
#define MIN_FRAME 60 /* without FCS */
#define MAX_FRAME_NOLPE 1522
#define RXD_SIZE 16
#define TXD_SIZE 16

/* CTRL */
#define CTRL_SLU (1u << 6)
#define CTRL_RST (1u << 26)
#define CTRL_PHY_RST (1u << 31)
/* STATUS: FD, LU, SPEED 1000 (bits 7:6 = 10b), ASDV 1000 (9:8 = 10b). */
#define STATUS_LINK_UP 0x00000283u
/* EECD */
#define EECD_SK (1u << 0)
#define EECD_CS (1u << 1)
#define EECD_DI (1u << 2)
#define EECD_DO (1u << 3)
#define EECD_FWE_MASK (3u << 4)
#define EECD_REQ (1u << 6)
#define EECD_GNT (1u << 7)
#define EECD_PRES (1u << 8)
/* EERD (82540: DONE at bit 4, ADDR 15:8, DATA 31:16) */
#define EERD_START (1u << 0)
#define EERD_DONE (1u << 4)
/* MDIC */
#define MDIC_OP_WRITE (1u << 26)
#define MDIC_OP_READ (2u << 26)
#define MDIC_READY (1u << 28)
#define MDIC_INT (1u << 29)
#define MDIC_ERROR (1u << 30)
/* RCTL */
#define RCTL_EN (1u << 1)
#define RCTL_UPE (1u << 3)
#define RCTL_MPE (1u << 4)
#define RCTL_LPE (1u << 5)
#define RCTL_BAM (1u << 15)
#define RCTL_BSEX (1u << 25)
#define RCTL_SECRC (1u << 26)
/* TCTL */
#define TCTL_EN (1u << 1)
/* RAH */
#define RAH_AV (1u << 31)
/* Receive descriptor status */
#define RXD_DD 0x01
#define RXD_EOP 0x02
#define RXD_IXSM 0x04
#define RXD_ERR_RXE 0x80
/* Transmit descriptor command bits (legacy CMD, data DCMD, TUCMD) */
#define TXD_EOP 0x01
#define TXD_IC 0x04
#define TXD_TSE 0x04 /* data and context descriptors */
#define TXD_RS 0x08
#define TXD_DEXT 0x20
#define TXD_DD 0x01
#define TUCMD_TCP 0x01
#define TUCMD_IP 0x02
#define POPTS_IXSM 0x01
#define POPTS_TXSM 0x02

/* PHY registers (M88E1011, the 82540EM's). */
enum {
  PHY_CTRL = 0, PHY_STATUS = 1, PHY_ID1 = 2, PHY_ID2 = 3, PHY_AUTONEG_ADV = 4,
  PHY_LP_ABILITY = 5, PHY_AUTONEG_EXP = 6, PHY_1000T_CTRL = 9,
  PHY_1000T_STATUS = 10, PHY_EXT_STATUS = 15, PHY_SPEC_CTRL = 16,
  PHY_SPEC_STATUS = 17, PHY_REGS = 32,
};

typedef struct tx_context {
  uint8_t ipcss, ipcso, tucss, tucso;
  uint16_t ipcse, tucse;
  uint8_t tucmd, hdrlen;
  uint16_t mss;
  uint32_t paylen;
} tx_context;

/* Guest-visible state. */
typedef struct e1000_regs {
  uint32_t mac[NREGS];
  uint16_t eeprom[E1000_EEPROM_WORDS];
  uint16_t phy[PHY_REGS];
  uint32_t ioaddr;
  /* Microwire: bits shifted in, then the word going out. */
  uint32_t ee_in;
  unsigned ee_nin;
  bool ee_reading;
  int ee_outbit; /* -1 before the first data clock */
  unsigned ee_addr;
  /* Transmit: the context and the packet being gathered. */
  tx_context ctx;
  uint32_t tx_len;
  bool tx_drop; /* the packet went bad: skip to its EOP */
  bool tx_have_popts;
  uint8_t tx_popts;
  bool tx_tse;
} e1000_regs;

struct e1000 {
  vmm_device dev;
  char *name;
  const vmm_guest_memory *mem;
  vmm_pci_device pci;
  vmm_net_port *port;
  vmm_pci_rom rom;
  vmm_net_wake *tx_wake; /* the I/O thread's transmit run after TDT */
  uint8_t mac_addr[6];
  e1000_stats stats;
  e1000_regs r;
  uint8_t tx_buf[E1000_TX_MAX];
  uint8_t seg_buf[E1000_TX_MAX];
  uint8_t rx_buf[E1000_TX_MAX + 64];
};

static void G_GNUC_PRINTF (3, 4)
count (e1000 *e, uint64_t *counter, const char *fmt, ...)
{
  (*counter)++;
  if (*counter > LOG_FIRST && *counter % 1000)
    return;
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_message ("%s: %s (%" G_GUINT64_FORMAT " so far%s)", e->name, msg,
             *counter, *counter == LOG_FIRST ? ", logging every 1000th" : "");
}

static uint32_t *
reg (e1000 *e, unsigned off)
{
  return &e->r.mac[R (off)];
}

/* ---- interrupts ---- */

static void
update_irq (e1000 *e)
{
  vmm_pci_set_intx (&e->pci, (*reg (e, E1000_ICR) & *reg (e, E1000_IMS)) != 0);
}

static void
raise_cause (e1000 *e, uint32_t cause)
{
  *reg (e, E1000_ICR) |= cause;
  update_irq (e);
}

/* ---- EEPROM and PHY ---- */

static void
eeprom_fill (e1000 *e)
{
  uint16_t *w = e->r.eeprom;
  memset (w, 0, sizeof e->r.eeprom);
  for (int i = 0; i < 3; i++)
    w[i] = (uint16_t) (e->mac_addr[2 * i] | e->mac_addr[2 * i + 1] << 8);
  w[0x04] = 0xffff; /* LED settings: the defaults */
  w[0x0a] = 0x6401; /* initialization control 1: load IDs, full duplex */
  w[0x0b] = E1000_SUBSYS_ID;
  w[0x0c] = E1000_VENDOR_ID;
  w[0x0d] = E1000_DEVICE_ID;
  w[0x0e] = E1000_VENDOR_ID;
  w[0x0f] = 0x3040; /* initialization control 2 */
  uint16_t sum = 0;
  for (int i = 0; i < E1000_EEPROM_WORDS - 1; i++)
    sum += w[i];
  w[E1000_EEPROM_WORDS - 1] = (uint16_t) (EEPROM_SUM - sum);
}

static void
phy_reset (e1000 *e)
{
  uint16_t *p = e->r.phy;
  memset (p, 0, sizeof e->r.phy);
  p[PHY_CTRL] = 0x1140;          /* autoneg on, full duplex, 1000 Mb/s */
  p[PHY_STATUS] = 0x796d;        /* link up, autoneg complete, abilities */
  p[PHY_ID1] = 0x0141;           /* Marvell */
  p[PHY_ID2] = 0x0c20;           /* 88E1011 */
  p[PHY_AUTONEG_ADV] = 0x0de1;
  p[PHY_LP_ABILITY] = 0x45e1;
  p[PHY_AUTONEG_EXP] = 0x0001;
  p[PHY_1000T_CTRL] = 0x0e00;
  p[PHY_1000T_STATUS] = 0x3c00;
  p[PHY_EXT_STATUS] = 0x3000;
  p[PHY_SPEC_CTRL] = 0x0360;
  p[PHY_SPEC_STATUS] = 0xac00;   /* 1000 Mb/s, full duplex, resolved, link */
}

static void
mdic_write (e1000 *e, uint32_t v)
{
  unsigned phy_addr = (v >> 21) & 0x1f;
  unsigned regno = (v >> 16) & 0x1f;
  uint32_t op = v & (3u << 26);
  uint32_t out = v & ~(MDIC_READY | MDIC_ERROR | MDIC_INT);
  if (phy_addr != PHY_ADDR || (op != MDIC_OP_READ && op != MDIC_OP_WRITE))
    out |= MDIC_ERROR;
  else if (op == MDIC_OP_READ)
    out = (out & ~0xffffu) | e->r.phy[regno];
  else if (regno == PHY_CTRL)
    /* Reset and restart-autoneg bits clear themselves at once. */
    e->r.phy[PHY_CTRL] = (uint16_t) (v & 0xffff & ~0x8200u);
  else if (regno != PHY_STATUS && regno != PHY_ID1 && regno != PHY_ID2
           && regno != PHY_SPEC_STATUS && regno != PHY_1000T_STATUS)
    e->r.phy[regno] = (uint16_t) (v & 0xffff);
  *reg (e, E1000_MDIC) = out | MDIC_READY;
  if (v & MDIC_INT)
    raise_cause (e, E1000_ICR_MDAC);
}

static void
eerd_write (e1000 *e, uint32_t v)
{
  uint32_t out = v & 0xff00;
  if (v & EERD_START)
    {
      unsigned addr = (v >> 8) & 0xff;
      uint16_t data = addr < E1000_EEPROM_WORDS ? e->r.eeprom[addr] : 0;
      out |= EERD_DONE | (uint32_t) data << 16;
    }
  *reg (e, E1000_EERD) = out;
}

/* Microwire READ (start bit, opcode 10b, 6 address bits), sampled on SK's
 * rising edge; data bits go out MSB first, one per later rising edge. */
static void
eecd_write (e1000 *e, uint32_t v)
{
  e1000_regs *r = &e->r;
  uint32_t old = *reg (e, E1000_EECD);
  *reg (e, E1000_EECD) = v & (EECD_SK | EECD_CS | EECD_DI | EECD_FWE_MASK
                              | EECD_REQ);
  if (!(v & EECD_CS))
    {
      r->ee_nin = 0;
      r->ee_in = 0;
      r->ee_reading = false;
      return;
    }
  if ((old & EECD_SK) || !(v & EECD_SK))
    return;
  if (r->ee_reading)
    {
      if (++r->ee_outbit == 16)
        {
          r->ee_outbit = 0;
          r->ee_addr = (r->ee_addr + 1) % E1000_EEPROM_WORDS;
        }
      return;
    }
  r->ee_in = (r->ee_in << 1) | ((v & EECD_DI) ? 1 : 0);
  if (++r->ee_nin == 9)
    {
      if ((r->ee_in >> 6) == 6)
        {
          r->ee_reading = true;
          r->ee_outbit = -1;
          r->ee_addr = r->ee_in & 0x3f;
        }
      r->ee_nin = 0;
      r->ee_in = 0;
    }
}

static uint32_t
eecd_read (e1000 *e)
{
  const e1000_regs *r = &e->r;
  uint32_t v = *reg (e, E1000_EECD) | EECD_PRES;
  if (v & EECD_REQ)
    v |= EECD_GNT;
  if (r->ee_reading && r->ee_outbit >= 0
      && (r->eeprom[r->ee_addr] >> (15 - r->ee_outbit)) & 1)
    v |= EECD_DO;
  return v;
}

/* ---- rings ---- */

typedef struct ring {
  uint64_t base;
  uint32_t size; /* descriptors */
  uint32_t head, tail;
} ring;

/* The ring at @bal.. (RDBAL or TDBAL): false (counted) when the driver set
 * it up badly. */
static bool
ring_get (e1000 *e, unsigned bal, const char *what, ring *out)
{
  uint32_t len = *reg (e, bal + 8);
  out->base = ((uint64_t) *reg (e, bal + 4) << 32) | (*reg (e, bal) & ~0xfu);
  out->size = len / 16;
  out->head = *reg (e, bal + 0x10);
  out->tail = *reg (e, bal + 0x18);
  if (len == 0 || len % 128 || out->size > E1000_RING_MAX)
    {
      count (e, &e->stats.ring_errors, "%s ring length %u is not a multiple "
             "of 128 up to %u descriptors", what, len, E1000_RING_MAX);
      return false;
    }
  if (out->head >= out->size || out->tail >= out->size)
    {
      count (e, &e->stats.ring_errors, "%s ring head %u or tail %u past its "
             "%u descriptors", what, out->head, out->tail, out->size);
      return false;
    }
  if (!vmm_guest_memory_ptr (e->mem, out->base, (uint64_t) len))
    {
      count (e, &e->stats.ring_errors, "%s ring at 0x%" G_GINT64_MODIFIER
             "x+%u is not in RAM", what, out->base, len);
      return false;
    }
  return true;
}

static uint8_t *
ring_desc (e1000 *e, const ring *rg, uint32_t i)
{
  return vmm_guest_memory_ptr (e->mem, rg->base + (uint64_t) i * 16, 16);
}

static uint64_t
ld64 (const uint8_t *p)
{
  return vmm_pci_get32 (p) | (uint64_t) vmm_pci_get32 (p + 4) << 32;
}

static void
stat_add (e1000 *e, unsigned off, uint32_t n)
{
  uint32_t *c = reg (e, off);
  *c = *c + n < *c ? UINT32_MAX : *c + n;
}

static void
stat_add64 (e1000 *e, unsigned lo, uint64_t n)
{
  uint64_t v = *reg (e, lo) | (uint64_t) *reg (e, lo + 4) << 32;
  v += n;
  *reg (e, lo) = (uint32_t) v;
  *reg (e, lo + 4) = (uint32_t) (v >> 32);
}

/* ---- receive ---- */

static unsigned
rx_buffer_size (uint32_t rctl)
{
  unsigned bsize = (rctl >> 16) & 3;
  if (rctl & RCTL_BSEX)
    return bsize == 1 ? 16384 : bsize == 2 ? 8192 : bsize == 3 ? 4096 : 2048;
  return 2048u >> bsize;
}

static bool
mta_match (e1000 *e, const uint8_t *dst)
{
  unsigned mo = (*reg (e, E1000_RCTL) >> 12) & 3;
  static const unsigned shift[4] = { 4, 3, 2, 0 };
  unsigned h = ((dst[4] >> shift[mo]) | (dst[5] << (8 - shift[mo]))) & 0xfff;
  return (*reg (e, E1000_MTA + 4 * (h >> 5)) >> (h & 31)) & 1;
}

static bool
rx_accept (e1000 *e, const uint8_t *dst)
{
  uint32_t rctl = *reg (e, E1000_RCTL);
  static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
  if (memcmp (dst, bcast, 6) == 0)
    return rctl & RCTL_BAM;
  if (dst[0] & 1)
    return (rctl & RCTL_MPE) || mta_match (e, dst);
  if (rctl & RCTL_UPE)
    return true;
  for (unsigned i = 0; i < 16; i++)
    {
      uint32_t ral = *reg (e, E1000_RAL0 + 8 * i);
      uint32_t rah = *reg (e, E1000_RAH0 + 8 * i);
      uint8_t a[6] = { ral, ral >> 8, ral >> 16, ral >> 24, rah, rah >> 8 };
      if ((rah & RAH_AV) && memcmp (a, dst, 6) == 0)
        return true;
    }
  return false;
}

/* The Ethernet FCS (IEEE 802.3 CRC-32, reflected, as it is on the wire). */
static uint32_t
eth_crc32 (const uint8_t *p, size_t len)
{
  uint32_t crc = 0xffffffff;
  for (size_t i = 0; i < len; i++)
    {
      crc ^= p[i];
      for (int k = 0; k < 8; k++)
        crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
    }
  return ~crc;
}

static bool
rx_frame (e1000 *e, const uint8_t *frame, size_t len)
{
  uint32_t rctl = *reg (e, E1000_RCTL);
  if (!(rctl & RCTL_EN))
    {
      e->stats.rx_dropped++; /* the receiver is off: no one listens */
      return true;
    }
  if (len < ETH_HLEN || !rx_accept (e, frame))
    return true;
  if (len > MAX_FRAME_NOLPE - 4 && !(rctl & RCTL_LPE))
    {
      count (e, &e->stats.rx_dropped, "a frame of %zu bytes without "
             "RCTL.LPE", len);
      return true;
    }
  size_t total = MAX (len, (size_t) MIN_FRAME);
  if (total + 4 > sizeof e->rx_buf)
    {
      count (e, &e->stats.rx_dropped, "a frame of %zu bytes", len);
      return true;
    }
  memcpy (e->rx_buf, frame, len);
  memset (e->rx_buf + len, 0, total - len);
  if (!(rctl & RCTL_SECRC))
    {
      uint32_t fcs = eth_crc32 (e->rx_buf, total);
      vmm_pci_put32 (e->rx_buf + total, fcs);
      total += 4;
    }
  ring rg;
  if (!ring_get (e, E1000_RDBAL, "receive", &rg))
    {
      e->stats.rx_dropped++;
      stat_add (e, E1000_MPC, 1);
      return true;
    }
  unsigned bufsize = rx_buffer_size (rctl);
  uint32_t need = (uint32_t) ((total + bufsize - 1) / bufsize);
  uint32_t avail = (rg.tail + rg.size - rg.head) % rg.size;
  if (need > rg.size - 1)
    {
      count (e, &e->stats.rx_dropped, "a frame of %zu bytes needs %u "
             "descriptors of a %u-descriptor ring", total, need, rg.size);
      return true;
    }
  if (avail < need)
    {
      raise_cause (e, E1000_ICR_RXDMT0);
      return false; /* waits in the port for an RDT write */
    }
  size_t done = 0;
  while (done < total)
    {
      uint8_t *d = ring_desc (e, &rg, rg.head);
      size_t k = MIN ((size_t) bufsize, total - done);
      uint8_t status = RXD_DD | RXD_IXSM;
      uint8_t errors = 0;
      uint8_t *buf = vmm_guest_memory_ptr (e->mem, ld64 (d), k);
      if (buf)
        memcpy (buf, e->rx_buf + done, k);
      else
        {
          count (e, &e->stats.rx_dropped, "receive buffer 0x%"
                 G_GINT64_MODIFIER "x+%zu is not in RAM", ld64 (d), k);
          errors = RXD_ERR_RXE;
        }
      done += k;
      if (done == total)
        status |= RXD_EOP;
      vmm_pci_put16 (d + 8, (uint16_t) k);
      vmm_pci_put16 (d + 10, 0);
      d[13] = errors;
      vmm_pci_put16 (d + 14, 0);
      __atomic_thread_fence (__ATOMIC_RELEASE);
      d[12] = status;
      rg.head = (rg.head + 1) % rg.size;
    }
  *reg (e, E1000_RDH) = rg.head;
  e->stats.rx_frames++;
  stat_add (e, E1000_GPRC, 1);
  stat_add (e, E1000_TPR, 1);
  stat_add64 (e, E1000_GORCL, total);
  uint32_t cause = E1000_ICR_RXT0;
  /* RDMTS: free descriptors at or below 1/2, 1/4 or 1/8 of the ring. */
  uint32_t left = (rg.tail + rg.size - rg.head) % rg.size;
  unsigned rdmts = (rctl >> 8) & 3;
  if (rdmts < 3 && left <= (rg.size >> (rdmts + 1)))
    cause |= E1000_ICR_RXDMT0;
  raise_cause (e, cause);
  return true;
}

/* ---- transmit ---- */

static void
put_csum (uint8_t *p, uint16_t c)
{
  p[0] = c >> 8;
  p[1] = c & 0xff;
}

/* The ones'-complement sum over [css, cse] (cse 0: the end) stored at cso,
 * on top of whatever the field holds (the driver's pseudo-header sum). */
static bool
insert_csum (uint8_t *pkt, size_t len, unsigned css, unsigned cso,
             unsigned cse, uint32_t extra)
{
  size_t end = cse ? MIN ((size_t) cse + 1, len) : len;
  if (css >= end || cso + 2 > len)
    return false;
  uint32_t sum = vmm_net_csum_add (extra, pkt + css, end - css);
  put_csum (pkt + cso, (uint16_t) ~vmm_net_csum_fold (sum));
  return true;
}

static void
tx_send (e1000 *e, const uint8_t *pkt, size_t len)
{
  e->stats.tx_frames++;
  stat_add (e, E1000_GPTC, 1);
  stat_add (e, E1000_TPT, 1);
  stat_add64 (e, E1000_GOTCL, len);
  if (*reg (e, E1000_TCTL) & TCTL_EN)
    vmm_net_port_send (e->port, pkt, len);
}

/* TCP segmentation (TSE): HDRLEN bytes of headers copied before each
 * MSS-sized piece of the payload; IPv4 total length and identification,
 * TCP sequence number and flags, UDP length fixed up per segment; the
 * checksums as POPTS asks (the driver seeded TCP/UDP with the
 * pseudo-header sum without the length, which is added here). */
static void
tx_tso (e1000 *e, const uint8_t *pkt, size_t len)
{
  const tx_context *c = &e->r.ctx;
  unsigned hdr = c->hdrlen;
  bool tcp = c->tucmd & TUCMD_TCP;
  bool ipv4 = c->tucmd & TUCMD_IP;
  if (c->mss == 0 || hdr > len || hdr < ETH_HLEN || c->ipcss + 20u > hdr
      || c->tucss + (tcp ? 20u : 8u) > hdr || (size_t) hdr + c->mss > sizeof e->seg_buf)
    {
      count (e, &e->stats.tx_dropped, "TSO context (hdrlen %u, mss %u, "
             "ipcss %u, tucss %u) does not fit a packet of %zu bytes", hdr,
             c->mss, c->ipcss, c->tucss, len);
      return;
    }
  size_t payload = len - hdr;
  uint32_t seq = tcp ? vmm_pci_get32 (pkt + c->tucss + 4) : 0;
  seq = GUINT32_FROM_BE (seq);
  uint16_t ipid = (uint16_t) (pkt[c->ipcss + 4] << 8 | pkt[c->ipcss + 5]);
  unsigned segno = 0;
  for (size_t off = 0; off < payload || (payload == 0 && off == 0);
       off += c->mss, segno++)
    {
      size_t n = MIN ((size_t) c->mss, payload - off);
      bool last = off + n >= payload;
      uint8_t *s = e->seg_buf;
      memcpy (s, pkt, hdr);
      memcpy (s + hdr, pkt + hdr + off, n);
      size_t slen = hdr + n;
      uint8_t *ip = s + c->ipcss;
      if (ipv4)
        {
          put_csum (ip + 2, (uint16_t) (slen - c->ipcss));
          put_csum (ip + 4, (uint16_t) (ipid + segno));
        }
      else
        put_csum (ip + 4, (uint16_t) (slen - c->ipcss - 40));
      uint8_t *l4 = s + c->tucss;
      if (tcp)
        {
          uint32_t sq = GUINT32_TO_BE (seq + (uint32_t) off);
          memcpy (l4 + 4, &sq, 4);
          if (!last)
            l4[13] &= ~0x09; /* FIN, PSH only on the last segment */
        }
      else
        put_csum (l4 + 4, (uint16_t) (slen - c->tucss));
      if (ipv4 && (e->r.tx_popts & POPTS_IXSM))
        {
          put_csum (s + c->ipcso, 0);
          insert_csum (s, slen, c->ipcss, c->ipcso, c->ipcse, 0);
        }
      if (e->r.tx_popts & POPTS_TXSM)
        insert_csum (s, slen, c->tucss, c->tucso, 0,
                     (uint32_t) (slen - c->tucss));
      tx_send (e, s, slen);
      if (payload == 0)
        break;
    }
}

static void
tx_packet_done (e1000 *e)
{
  e1000_regs *r = &e->r;
  uint8_t *pkt = e->tx_buf;
  size_t len = r->tx_len;
  if (r->tx_drop)
    ;
  else if (len < ETH_HLEN)
    count (e, &e->stats.tx_dropped, "a packet of %zu bytes", len);
  else if (r->tx_tse)
    tx_tso (e, pkt, len);
  else
    {
      bool ok = true;
      if (r->tx_have_popts && (r->tx_popts & POPTS_IXSM))
        {
          if (r->ctx.ipcso + 2u <= len)
            put_csum (pkt + r->ctx.ipcso, 0);
          ok = insert_csum (pkt, len, r->ctx.ipcss, r->ctx.ipcso,
                            r->ctx.ipcse, 0);
        }
      if (ok && r->tx_have_popts && (r->tx_popts & POPTS_TXSM))
        ok = insert_csum (pkt, len, r->ctx.tucss, r->ctx.tucso,
                          r->ctx.tucse, 0);
      if (ok)
        tx_send (e, pkt, len);
      else
        count (e, &e->stats.tx_dropped, "checksum context outside a packet "
               "of %zu bytes", len);
    }
  r->tx_len = 0;
  r->tx_drop = false;
  r->tx_have_popts = false;
  r->tx_popts = 0;
  r->tx_tse = false;
}

static void
tx_append (e1000 *e, uint64_t addr, uint32_t len)
{
  e1000_regs *r = &e->r;
  if (r->tx_drop || len == 0)
    return;
  if (len > sizeof e->tx_buf - r->tx_len)
    {
      count (e, &e->stats.tx_dropped, "a packet over %u bytes", E1000_TX_MAX);
      r->tx_drop = true;
      return;
    }
  const uint8_t *p = vmm_guest_memory_ptr (e->mem, addr, len);
  if (!p)
    {
      count (e, &e->stats.tx_dropped, "transmit buffer 0x%" G_GINT64_MODIFIER
             "x+%u is not in RAM", addr, len);
      r->tx_drop = true;
      return;
    }
  memcpy (e->tx_buf + r->tx_len, p, len);
  r->tx_len += len;
}

/* One descriptor; returns whether it asked for status (RS). */
static bool
tx_desc (e1000 *e, uint8_t *d)
{
  e1000_regs *r = &e->r;
  uint8_t cmd = d[11];
  if (!(cmd & TXD_DEXT))
    {
      /* Legacy: addr, length, CSO, CMD, STA, CSS, special. */
      tx_append (e, ld64 (d), vmm_pci_get16 (d + 8));
      if ((cmd & TXD_EOP) && (cmd & TXD_IC) && !r->tx_drop)
        {
          unsigned cso = d[10], css = d[13];
          if (!insert_csum (e->tx_buf, r->tx_len, css, cso, 0, 0))
            {
              count (e, &e->stats.tx_dropped, "legacy checksum at %u from %u "
                     "outside a packet of %u bytes", cso, css, r->tx_len);
              r->tx_drop = true;
            }
        }
      if (cmd & TXD_EOP)
        tx_packet_done (e);
      return cmd & TXD_RS;
    }
  unsigned dtyp = (d[10] >> 4) & 0xf;
  if (dtyp == 0)
    {
      tx_context *c = &r->ctx;
      c->ipcss = d[0];
      c->ipcso = d[1];
      c->ipcse = vmm_pci_get16 (d + 2);
      c->tucss = d[4];
      c->tucso = d[5];
      c->tucse = vmm_pci_get16 (d + 6);
      c->paylen = vmm_pci_get32 (d + 8) & 0xfffff;
      c->tucmd = d[11];
      c->hdrlen = d[13];
      c->mss = vmm_pci_get16 (d + 14);
      return cmd & TXD_RS;
    }
  if (dtyp == 1)
    {
      uint32_t dtalen = vmm_pci_get32 (d + 8) & 0xfffff;
      if (!r->tx_have_popts)
        {
          r->tx_have_popts = true;
          r->tx_popts = d[13];
          r->tx_tse = cmd & TXD_TSE;
        }
      tx_append (e, ld64 (d), dtalen);
      if (cmd & TXD_EOP)
        tx_packet_done (e);
      return cmd & TXD_RS;
    }
  count (e, &e->stats.tx_dropped, "descriptor type %u", dtyp);
  return cmd & TXD_RS;
}

static void
process_tx_locked (e1000 *e)
{
  ring rg;
  if (!(*reg (e, E1000_TCTL) & TCTL_EN) || *reg (e, E1000_TDLEN) == 0
      || !(vmm_pci_get16 (e->pci.config + PCI_CFG_COMMAND)
           & PCI_COMMAND_MASTER))
    return;
  if (!ring_get (e, E1000_TDBAL, "transmit", &rg))
    return;
  uint32_t cause = 0;
  while (rg.head != rg.tail)
    {
      uint8_t *d = ring_desc (e, &rg, rg.head);
      if (tx_desc (e, d))
        {
          d[12] |= TXD_DD;
          cause |= E1000_ICR_TXDW;
        }
      rg.head = (rg.head + 1) % rg.size;
      *reg (e, E1000_TDH) = rg.head;
    }
  raise_cause (e, cause | E1000_ICR_TXQE);
}

void
e1000_process_tx (e1000 *e)
{
  g_mutex_lock (&e->dev.lock);
  process_tx_locked (e);
  g_mutex_unlock (&e->dev.lock);
}

static void
tx_run (void *opaque)
{
  e1000_process_tx (opaque);
}

/* ---- registers ---- */

static void
soft_reset (e1000 *e)
{
  e1000_regs *r = &e->r;
  memset (r, 0, sizeof *r);
  *reg (e, E1000_CTRL) = 0x00000241; /* FD, SLU, 1000 Mb/s */
  *reg (e, E1000_MDIC) = MDIC_READY;
  *reg (e, 0x1000) = 0x00100030; /* PBA: 48 KiB receive, 16 KiB transmit */
  *reg (e, E1000_RAL0) = vmm_pci_get32 (e->mac_addr);
  *reg (e, E1000_RAH0) = vmm_pci_get16 (e->mac_addr + 4) | RAH_AV;
  eeprom_fill (e);
  phy_reset (e);
  /* The link comes up with the reset: the cause waits for drivers that
   * unmask LSC (INTx stays low while IMS is 0). */
  *reg (e, E1000_ICR) = E1000_ICR_LSC;
  update_irq (e);
  vmm_net_port_flush_queue (e->port);
}

static void
tx_wake (e1000 *e)
{
  if (e->tx_wake)
    vmm_net_wake_raise (e->tx_wake);
  else
    process_tx_locked (e); /* no I/O thread: tests */
}

static uint32_t
reg_read (e1000 *e, unsigned off)
{
  switch (off)
    {
    case E1000_CTRL:
      return *reg (e, off) & ~(CTRL_RST | CTRL_PHY_RST);
    case E1000_STATUS:
      return STATUS_LINK_UP;
    case E1000_EECD:
      return eecd_read (e);
    case E1000_ICR:
      {
        uint32_t v = *reg (e, off);
        *reg (e, off) = 0;
        update_irq (e);
        return v;
      }
    case E1000_ICS:
    case E1000_IMC:
      return 0; /* write-only */
    default:
      if (off >= E1000_STATS && off < E1000_STATS + 0x100)
        {
          uint32_t v = *reg (e, off);
          *reg (e, off) = 0;
          return v;
        }
      return *reg (e, off);
    }
}

static void
reg_write (e1000 *e, unsigned off, uint32_t v)
{
  switch (off)
    {
    case E1000_CTRL:
      if (v & CTRL_RST)
        {
          soft_reset (e);
          return;
        }
      if (v & CTRL_PHY_RST)
        phy_reset (e);
      {
        bool link_up_now = (v & CTRL_SLU) && !(*reg (e, off) & CTRL_SLU);
        *reg (e, off) = v & ~(CTRL_RST | CTRL_PHY_RST);
        /* Set link up: the link is there at once; tell drivers that wait
         * for the interrupt rather than polling STATUS. */
        if (link_up_now)
          raise_cause (e, E1000_ICR_LSC);
      }
      return;
    case E1000_STATUS:
      return;
    case E1000_EECD:
      eecd_write (e, v);
      return;
    case E1000_EERD:
      eerd_write (e, v);
      return;
    case E1000_MDIC:
      mdic_write (e, v);
      return;
    case E1000_ICR:
      *reg (e, off) &= ~v;
      update_irq (e);
      return;
    case E1000_ICS:
      raise_cause (e, v);
      return;
    case E1000_IMS:
      *reg (e, off) |= v;
      update_irq (e);
      return;
    case E1000_IMC:
      *reg (e, E1000_IMS) &= ~v;
      update_irq (e);
      return;
    case E1000_RCTL:
      *reg (e, off) = v;
      vmm_net_port_rx_ready (e->port);
      return;
    case E1000_RDLEN:
    case E1000_TDLEN:
      *reg (e, off) = v & 0xfff80;
      return;
    case E1000_RDH:
    case E1000_TDH:
      *reg (e, off) = v & 0xffff;
      return;
    case E1000_RDT:
      *reg (e, off) = v & 0xffff;
      vmm_net_port_rx_ready (e->port);
      return;
    case E1000_TDT:
      *reg (e, off) = v & 0xffff;
      tx_wake (e);
      return;
    case E1000_TCTL:
      *reg (e, off) = v;
      tx_wake (e);
      return;
    default:
      if (off >= E1000_STATS && off < E1000_STATS + 0x100)
        return; /* counters are read-only */
      *reg (e, off) = v;
    }
}

/* Registers are 32 bits wide; narrower accesses see part of one, wider
 * ones are split. */
static uint64_t
access_read (e1000 *e, uint64_t off, unsigned size)
{
  uint64_t v = 0;
  for (unsigned done = 0; done < size; )
    {
      uint64_t o = off + done;
      unsigned shift = (o & 3) * 8;
      unsigned k = MIN (size - done, 4 - (unsigned) (o & 3));
      uint32_t word = o < E1000_MMIO_SIZE ? reg_read (e, (unsigned) o & ~3u)
                                          : UINT32_MAX;
      uint64_t part = (word >> shift) & (k == 4 ? UINT32_MAX
                                                : (1u << (8 * k)) - 1);
      v |= part << (8 * done);
      done += k;
    }
  return v;
}

static void
access_write (e1000 *e, uint64_t off, unsigned size, uint64_t v)
{
  for (unsigned done = 0; done < size; )
    {
      uint64_t o = off + done;
      unsigned shift = (o & 3) * 8;
      unsigned k = MIN (size - done, 4 - (unsigned) (o & 3));
      if (o >= E1000_MMIO_SIZE)
        return;
      uint32_t mask = (k == 4 ? UINT32_MAX : (1u << (8 * k)) - 1) << shift;
      uint32_t part = (uint32_t) ((v >> (8 * done)) << shift) & mask;
      unsigned aligned = (unsigned) o & ~3u;
      if (k != 4)
        e->stats.bad_registers++; /* legal but odd: merge with the stored */
      reg_write (e, aligned, (*reg (e, aligned) & ~mask) | part);
      done += k;
    }
}

static uint64_t
mmio_read (void *opaque, const vmm_access *a)
{
  return access_read (opaque, a->offset, a->size);
}

static void
mmio_write (void *opaque, const vmm_access *a, uint64_t v)
{
  access_write (opaque, a->offset, a->size, v);
}

static const vmm_region_ops mmio_ops = {
  .read = mmio_read,
  .write = mmio_write,
};

/* BAR 1: IOADDR (0) selects a register, IODATA (4) accesses it. */
static uint64_t
io_read (void *opaque, const vmm_access *a)
{
  e1000 *e = opaque;
  if (a->offset == 0 && a->size == 4)
    return e->r.ioaddr;
  if (a->offset == 4 && a->size == 4)
    return access_read (e, e->r.ioaddr & (E1000_MMIO_SIZE - 4), 4);
  e->stats.bad_registers++;
  return UINT32_MAX >> (32 - 8 * MIN (a->size, 4u));
}

static void
io_write (void *opaque, const vmm_access *a, uint64_t v)
{
  e1000 *e = opaque;
  if (a->offset == 0 && a->size == 4)
    e->r.ioaddr = (uint32_t) v & (E1000_MMIO_SIZE - 4);
  else if (a->offset == 4 && a->size == 4)
    access_write (e, e->r.ioaddr, 4, v);
  else
    e->stats.bad_registers++;
}

static const vmm_region_ops io_ops = {
  .read = io_read,
  .write = io_write,
};

static const vmm_pci_device_ops e1000_pci_ops = { 0 };

/* ---- vmm_device ---- */

static void
e1000_reset (vmm_device *dev)
{
  e1000 *e = (e1000 *) dev;
  vmm_pci_device_reset (&e->pci);
  soft_reset (e);
}

static void
e1000_destroy (vmm_device *dev)
{
  e1000 *e = (e1000 *) dev;
  vmm_net_wake_free (e->tx_wake);
  vmm_net_port_free (e->port);
  vmm_pci_rom_clear (&e->rom);
  g_mutex_clear (&dev->lock);
  g_free (e->name);
  g_free (e);
}

#define E1000_STATE_TAG VMM_STATE_TAG ('E', '1', 'K', '0')
#define E1000_STATE_VERSION 1

static void
e1000_save_state (vmm_device *dev, GByteArray *out)
{
  e1000 *e = (e1000 *) dev;
  const e1000_regs *r = &e->r;
  vmm_state_put_header (out, E1000_STATE_TAG, E1000_STATE_VERSION);
  vmm_state_put_bytes (out, e->pci.config, VMM_PCI_CONFIG_SIZE);
  for (unsigned i = 0; i < NREGS; i++)
    vmm_state_put_u32 (out, r->mac[i]);
  for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++)
    vmm_state_put_u16 (out, r->eeprom[i]);
  for (unsigned i = 0; i < PHY_REGS; i++)
    vmm_state_put_u16 (out, r->phy[i]);
  vmm_state_put_u32 (out, r->ioaddr);
  vmm_state_put_u32 (out, r->ee_in);
  vmm_state_put_u8 (out, (uint8_t) r->ee_nin);
  vmm_state_put_bool (out, r->ee_reading);
  vmm_state_put_u8 (out, (uint8_t) (r->ee_outbit + 1));
  vmm_state_put_u8 (out, (uint8_t) r->ee_addr);
  const tx_context *c = &r->ctx;
  vmm_state_put_u8 (out, c->ipcss);
  vmm_state_put_u8 (out, c->ipcso);
  vmm_state_put_u16 (out, c->ipcse);
  vmm_state_put_u8 (out, c->tucss);
  vmm_state_put_u8 (out, c->tucso);
  vmm_state_put_u16 (out, c->tucse);
  vmm_state_put_u8 (out, c->tucmd);
  vmm_state_put_u8 (out, c->hdrlen);
  vmm_state_put_u16 (out, c->mss);
  vmm_state_put_u32 (out, c->paylen);
  vmm_state_put_bool (out, r->tx_drop);
  vmm_state_put_bool (out, r->tx_have_popts);
  vmm_state_put_u8 (out, r->tx_popts);
  vmm_state_put_bool (out, r->tx_tse);
  vmm_state_put_u32 (out, r->tx_len);
  vmm_state_put_bytes (out, e->tx_buf, r->tx_len);
}

static gboolean
e1000_load_state (vmm_device *dev, const uint8_t *data, size_t len,
                  GError **error)
{
  e1000 *e = (e1000 *) dev;
  vmm_state_reader rd;
  uint8_t config[VMM_PCI_CONFIG_SIZE];
  if (!vmm_state_begin (&rd, data, len, E1000_STATE_TAG, E1000_STATE_VERSION,
                        dev->name, error))
    return FALSE;
  e1000_regs *r = g_new0 (e1000_regs, 1);
  vmm_state_get_bytes (&rd, config, sizeof config);
  for (unsigned i = 0; i < NREGS; i++)
    r->mac[i] = vmm_state_get_u32 (&rd);
  for (unsigned i = 0; i < E1000_EEPROM_WORDS; i++)
    r->eeprom[i] = vmm_state_get_u16 (&rd);
  for (unsigned i = 0; i < PHY_REGS; i++)
    r->phy[i] = vmm_state_get_u16 (&rd);
  r->ioaddr = vmm_state_get_u32 (&rd);
  r->ee_in = vmm_state_get_u32 (&rd);
  r->ee_nin = vmm_state_get_u8 (&rd);
  r->ee_reading = vmm_state_get_bool (&rd);
  r->ee_outbit = (int) vmm_state_get_u8 (&rd) - 1;
  r->ee_addr = vmm_state_get_u8 (&rd);
  tx_context *c = &r->ctx;
  c->ipcss = vmm_state_get_u8 (&rd);
  c->ipcso = vmm_state_get_u8 (&rd);
  c->ipcse = vmm_state_get_u16 (&rd);
  c->tucss = vmm_state_get_u8 (&rd);
  c->tucso = vmm_state_get_u8 (&rd);
  c->tucse = vmm_state_get_u16 (&rd);
  c->tucmd = vmm_state_get_u8 (&rd);
  c->hdrlen = vmm_state_get_u8 (&rd);
  c->mss = vmm_state_get_u16 (&rd);
  c->paylen = vmm_state_get_u32 (&rd);
  r->tx_drop = vmm_state_get_bool (&rd);
  r->tx_have_popts = vmm_state_get_bool (&rd);
  r->tx_popts = vmm_state_get_u8 (&rd);
  r->tx_tse = vmm_state_get_bool (&rd);
  r->tx_len = vmm_state_get_u32 (&rd);
  vmm_state_check (&rd, !memcmp (config, e->pci.config, 4), "PCI ID");
  vmm_state_check (&rd, r->ioaddr < E1000_MMIO_SIZE && !(r->ioaddr & 3),
                   "IOADDR");
  vmm_state_check (&rd, r->ee_nin < 9 && r->ee_addr < E1000_EEPROM_WORDS
                            && r->ee_outbit < 16, "EEPROM state");
  vmm_state_check (&rd, r->tx_len <= E1000_TX_MAX, "transmit length");
  const uint8_t *pkt = rd.invalid || rd.bad ? NULL
                                            : vmm_state_take (&rd, r->tx_len);
  if (!vmm_state_end (&rd, dev->name, error))
    {
      g_free (r);
      return FALSE;
    }
  memcpy (e->pci.config, config, sizeof config);
  e->r = *r;
  g_free (r);
  if (e->r.tx_len)
    memcpy (e->tx_buf, pkt, e->r.tx_len);
  update_irq (e);
  return TRUE;
}

static const vmm_device_ops e1000_device_ops = {
  .reset = e1000_reset,
  .save_state = e1000_save_state,
  .load_state = e1000_load_state,
  .destroy = e1000_destroy,
};

static bool
bus_master (e1000 *e)
{
  return vmm_pci_get16 (e->pci.config + PCI_CFG_COMMAND) & PCI_COMMAND_MASTER;
}

/* Receive and transmit touch guest memory only with bus mastering on. */
static bool
e1000_receive_checked (void *opaque, const uint8_t *frame, size_t len)
{
  e1000 *e = opaque;
  g_mutex_lock (&e->dev.lock);
  bool taken = !bus_master (e) || rx_frame (e, frame, len);
  g_mutex_unlock (&e->dev.lock);
  return taken;
}

e1000 *
e1000_create (const char *name, const vmm_guest_memory *mem,
              GMainContext *io, const uint8_t mac[6], const uint8_t *rom,
              size_t rom_len, vmm_net_backend *backend, GError **error)
{
  e1000 *e = g_new0 (e1000, 1);
  e->name = g_strdup (name);
  vmm_device_init (&e->dev, e->name, &e1000_device_ops);
  e->mem = mem;
  memcpy (e->mac_addr, mac, 6);
  if (rom && !vmm_pci_rom_init (&e->rom, rom, rom_len, error))
    {
      g_mutex_clear (&e->dev.lock);
      g_free (e->name);
      g_free (e);
      return NULL;
    }
  e->port = vmm_net_port_new (io, e1000_receive_checked, e);
  vmm_net_port_set_backend (e->port, backend);
  if (io)
    e->tx_wake = vmm_net_wake_new (io, tx_run, e);
  vmm_pci_device_init (&e->pci, &e->dev, &e1000_pci_ops, e, E1000_VENDOR_ID,
                       E1000_DEVICE_ID, 0x020000, E1000_REVISION);
  vmm_pci_set_subsystem (&e->pci, E1000_VENDOR_ID, E1000_SUBSYS_ID);
  vmm_pci_set_interrupt_pin (&e->pci, 1);
  vmm_pci_set_bar (&e->pci, 0, VMM_PCI_BAR_MEM32, false, E1000_MMIO_SIZE,
                   &mmio_ops, e);
  vmm_pci_set_bar (&e->pci, 1, VMM_PCI_BAR_IO, false, E1000_IO_SIZE, &io_ops,
                   e);
  vmm_pci_rom_set_bar (&e->rom, &e->pci);
  soft_reset (e);
  return e;
}

vmm_device *
e1000_device (e1000 *e)
{
  return &e->dev;
}

vmm_pci_device *
e1000_pci (e1000 *e)
{
  return &e->pci;
}

vmm_net_port *
e1000_port (e1000 *e)
{
  return e->port;
}

gboolean
e1000_attach (e1000 *e, vmm_pci_host *host, unsigned devfn, GError **error)
{
  return vmm_pci_host_attach (host, &e->pci, devfn, error);
}

void
e1000_get_stats (e1000 *e, e1000_stats *out)
{
  g_mutex_lock (&e->dev.lock);
  *out = e->stats;
  g_mutex_unlock (&e->dev.lock);
}
