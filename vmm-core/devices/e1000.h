/* Intel 82540EM Gigabit Ethernet controller (the "e1000"), after Intel's
 * PCI/PCI-X Family of Gigabit Ethernet Controllers Software Developer's
 * Manual (8254x), for guests without virtio drivers.
 *
 * PCI 8086:100E, revision 3, subsystem 8086:001E, class 0x020000, INTA#.
 * BAR 0: 128 KiB of memory-mapped registers. BAR 1: 64 bytes of I/O,
 * IOADDR at 0 (a register offset) and IODATA at 4 (that register), 13.
 * The expansion ROM BAR carries a boot ROM when one is given.
 *
 * Registers with behaviour (others store what is written and read it
 * back): CTRL (RST resets the device, PHY_RST; the link is up from the
 * reset on, ICR.LSC pending, and SLU set again raises LSC), STATUS (full
 * duplex, link up, 1000 Mb/s), EECD (a 64-word Microwire EEPROM bit-banged through SK,
 * CS, DI, DO with the REQ/GNT handshake), EERD (the same words, START /
 * DONE at bit 4 / ADDR 15:8 / DATA 31:16), MDIC (a PHY at address 1 with
 * link up and autonegotiation complete; other addresses answer with the
 * error bit), ICR (read to clear), ICS, IMS, IMC, RCTL, TCTL, the receive
 * ring (RDBAL, RDBAH, RDLEN, RDH, RDT), the transmit ring (TDBAL, TDBAH,
 * TDLEN, TDH, TDT), RAL/RAH (16 receive addresses, AV), MTA (the 4096-bit
 * multicast table with the MO hash), the statistics (clear on read:
 * GPRC, GPTC, GORC, GOTC, TPR, TPT, MPC). The EEPROM holds the MAC address
 * in words 0-2, the IDs and a checksum word making words 0x00-0x3F sum to
 * 0xBABA.
 *
 * Receive: broadcast with BAM, unicast matching an RAL/RAH with AV (or
 * UPE), multicast in the MTA (or MPE); frames padded to 60 bytes, an FCS
 * appended unless SECRC; legacy receive descriptors, a frame over as many
 * buffers (RCTL.BSIZE/BSEX) as it needs; RXT0 per frame, RXDMT0 at the
 * RDMTS threshold. A frame waits in the port while the ring has too few
 * descriptors; it moves on when the driver writes RDT.
 *
 * Transmit: legacy descriptors (IC with CSO/CSS), context descriptors
 * (IPCSS/IPCSO/IPCSE, TUCSS/TUCSO/TUCSE, TUCMD, MSS, HDRLEN) and data
 * descriptors (POPTS IXSM/TXSM checksum insertion, TSE segmentation into
 * MSS-sized TCP or UDP segments). RS asks for DD; TXDW and TXQE follow.
 * A TDT write only records the tail and wakes the I/O thread, where the
 * ring is processed (never on the vCPU thread).
 *
 * Guest errors are dropped and counted, never fatal to the host: a ring
 * outside RAM, RDLEN/TDLEN not a multiple of 128 or over 64 Ki
 * descriptors, a head or tail past the ring, a buffer outside RAM, a packet
 * over E1000_TX_MAX bytes, a context that does not fit the packet. */
#pragma once

#include "vmm-core/bus/pci.h"
#include "vmm-core/kvm/memory.h"
#include "vmm-core/net/net.h"

G_BEGIN_DECLS

#define E1000_VENDOR_ID 0x8086
#define E1000_DEVICE_ID 0x100e
#define E1000_SUBSYS_ID 0x001e
#define E1000_REVISION 3
#define E1000_MMIO_SIZE 0x20000
#define E1000_IO_SIZE 64
#define E1000_EEPROM_WORDS 64
#define E1000_TX_MAX 65536      /* bytes of one packet (TSO included) */
#define E1000_RING_MAX 65536    /* descriptors */

/* Register offsets (8254x manual, table 13-2). */
enum {
  E1000_CTRL = 0x0000,
  E1000_STATUS = 0x0008,
  E1000_EECD = 0x0010,
  E1000_EERD = 0x0014,
  E1000_CTRL_EXT = 0x0018,
  E1000_MDIC = 0x0020,
  E1000_ICR = 0x00c0,
  E1000_ITR = 0x00c4,
  E1000_ICS = 0x00c8,
  E1000_IMS = 0x00d0,
  E1000_IMC = 0x00d8,
  E1000_RCTL = 0x0100,
  E1000_TCTL = 0x0400,
  E1000_RDBAL = 0x2800,
  E1000_RDBAH = 0x2804,
  E1000_RDLEN = 0x2808,
  E1000_RDH = 0x2810,
  E1000_RDT = 0x2818,
  E1000_TDBAL = 0x3800,
  E1000_TDBAH = 0x3804,
  E1000_TDLEN = 0x3808,
  E1000_TDH = 0x3810,
  E1000_TDT = 0x3818,
  E1000_STATS = 0x4000, /* ... 0x40ff, clear on read */
  E1000_MPC = 0x4010,
  E1000_GPRC = 0x4074,
  E1000_GPTC = 0x4080,
  E1000_GORCL = 0x4088,
  E1000_GORCH = 0x408c,
  E1000_GOTCL = 0x4090,
  E1000_GOTCH = 0x4094,
  E1000_TPR = 0x40d0,
  E1000_TPT = 0x40d4,
  E1000_MTA = 0x5200, /* 128 registers */
  E1000_RAL0 = 0x5400,
  E1000_RAH0 = 0x5404, /* RAL/RAH n at 0x5400 + 8n, n < 16 */
};

/* Interrupt causes (ICR, ICS, IMS, IMC). */
enum {
  E1000_ICR_TXDW = 1u << 0,
  E1000_ICR_TXQE = 1u << 1,
  E1000_ICR_LSC = 1u << 2,
  E1000_ICR_RXDMT0 = 1u << 4,
  E1000_ICR_RXO = 1u << 6,
  E1000_ICR_RXT0 = 1u << 7,
  E1000_ICR_MDAC = 1u << 9,
};

typedef struct e1000_stats {
  uint64_t tx_frames;
  uint64_t rx_frames;
  uint64_t tx_dropped;    /* bad descriptors, buffers, sizes, contexts */
  uint64_t rx_dropped;    /* receiver off, bad ring or buffer, too long */
  uint64_t ring_errors;   /* bad ring base, length, head or tail */
  uint64_t bad_registers; /* accesses to nothing, odd sizes */
} e1000_stats;

typedef struct e1000 e1000;

/* @rom may be NULL; @backend (owned, may be NULL). */
e1000 *e1000_create (const char *name, const vmm_guest_memory *mem,
                     GMainContext *io, const uint8_t mac[6],
                     const uint8_t *rom, size_t rom_len,
                     vmm_net_backend *backend, GError **error);
vmm_device *e1000_device (e1000 *e);
vmm_pci_device *e1000_pci (e1000 *e);
vmm_net_port *e1000_port (e1000 *e);
gboolean e1000_attach (e1000 *e, vmm_pci_host *host, unsigned devfn,
                       GError **error);
void e1000_get_stats (e1000 *e, e1000_stats *out);
/* Processes the transmit ring now (what the I/O thread does after a TDT
 * write; tests call it). Takes the lock. */
void e1000_process_tx (e1000 *e);

G_END_DECLS
