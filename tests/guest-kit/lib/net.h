/* Vessel guest kit: networking. Two polled NIC drivers behind one small
 * interface (struct kit_nic): virtio-net over modern virtio-pci
 * (virtio-net.c) and the Intel 82540EM (e1000.c); and a minimal IPv4 stack
 * over it (ip.c): Ethernet, ARP, IPv4, ICMP echo, UDP, a DHCP client.
 *
 * Drivers keep their rings and buffers in a DMA area the guest gives them
 * (KIT_NIC_DMA_SIZE bytes, 4 KiB aligned, in RAM outside the image): the
 * image itself stays small. Frames are at most KIT_ETH_MAX bytes (no FCS). */
#ifndef KIT_NET_H
#define KIT_NET_H

#include "kit.h"

#define KIT_NIC_DMA_SIZE (128 * 1024)
#define KIT_NIC_QSIZE 16
#define KIT_NIC_BUF 2048
#define KIT_ETH_MAX 1514
#define KIT_NIC_ETIMEDOUT (-0x100)

struct kit_nic {
    const char *model;           /* "virtio" or "e1000" */
    struct kit_pci_dev pci;
    uint8_t mac[6];
    uint8_t *dma;
    /* A frame out; with csum_start (non-zero), the device computes the
     * ones'-complement sum from there to the end and stores it at
     * csum_start + csum_offset (the field holds the pseudo-header sum). */
    int (*send)(struct kit_nic *n, const void *frame, uint32_t len,
                uint32_t csum_start, uint32_t csum_offset);
    /* A frame in: its length, 0 when none is waiting, negative on error. */
    int (*recv)(struct kit_nic *n, void *buf, uint32_t max);
    /* Benchmarks, with as little guest work per frame as can be (CPL0 code
     * is emulated here): tx_prepare puts one frame into every transmit
     * buffer; tx_burst posts up to count of them with one notification and
     * returns how many it posted (the ring holds KIT_NIC_QSIZE - 1);
     * rx_drain takes every received frame without copying it, posts the
     * buffers again and returns the frames, adding their lengths (without
     * any virtio header) to *bytes. Do not mix with send/recv. */
    void (*tx_prepare)(struct kit_nic *n, const void *frame, uint32_t len);
    uint32_t (*tx_burst)(struct kit_nic *n, uint32_t count);
    uint32_t (*rx_drain)(struct kit_nic *n, uint64_t *bytes);
    /* virtio-net */
    uint64_t common, notify, device;
    uint32_t notify_mult;
    uint16_t notify_off[2];
    uint64_t features;           /* negotiated */
    uint16_t rx_avail, rx_used, tx_avail, tx_used;
    /* e1000 */
    uint64_t regs;               /* BAR0 */
    uint16_t io;                 /* BAR1 */
    uint32_t rx_cur, tx_cur, tx_clean;
    uint32_t bench_len;
    uint32_t sent, received;
};

/* Finds the n-th (0-based) NIC of the model, brings it up (memory decoding,
 * bus mastering, a reset, receive buffers posted) and reads its MAC
 * address. 0, -1 when there is no such device, or another negative. */
int kit_vnet_open(struct kit_nic *n, int index, uint8_t *dma);
int kit_e1000_open(struct kit_nic *n, int index, uint8_t *dma);
/* e1000 extras for tests: a register, the EEPROM word at addr through EERD
 * and through the Microwire bits of EECD, a PHY register through MDIC
 * (negative on an error). */
uint32_t kit_e1000_read(struct kit_nic *n, uint32_t reg);
void kit_e1000_write(struct kit_nic *n, uint32_t reg, uint32_t v);
int kit_e1000_eerd(struct kit_nic *n, unsigned addr);
int kit_e1000_microwire(struct kit_nic *n, unsigned addr);
int kit_e1000_phy_read(struct kit_nic *n, unsigned phy, unsigned reg);
/* virtio-net extras for tests: device status, and a raw chain on a queue
 * (descriptors written by the caller into the queue's table at dma +
 * q * 0x1000) with its head made available and the queue notified. */
uint8_t kit_vnet_status(struct kit_nic *n);
void kit_vnet_post_raw(struct kit_nic *n, int q, uint16_t head);
volatile struct kit_virtq_desc *kit_vnet_desc(struct kit_nic *n, int q);
/* The used ring's index of queue q. */
uint16_t kit_vnet_used_idx(struct kit_nic *n, int q);

/* ---- the IPv4 stack (ip.c) -------------------------------------------- */
#define KIT_IP(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (d))

struct kit_net {
    struct kit_nic *nic;
    bool offload;                /* leave UDP checksums to the NIC */
    uint32_t ip, mask, router, dns, server; /* host byte order */
    uint16_t ip_id;
    /* ARP: the last answer. */
    uint32_t arp_ip;
    uint8_t arp_mac[6];
    bool arp_ok;
    /* ICMP: the last echo reply's sequence number. */
    int echo_seq;
    /* UDP: the last datagram. */
    bool udp_ready;
    uint16_t udp_port, udp_src_port;
    uint32_t udp_src;
    uint32_t udp_len;
    uint8_t udp_data[1500];
    /* TCP: one passive connection at a time (tcp=PORT servers). */
    struct {
        uint16_t port;           /* listening on, 0: none */
        int state;               /* KIT_TCP_* */
        uint32_t peer;
        uint16_t peer_port;
        uint8_t peer_mac[6];
        uint32_t snd_nxt, rcv_nxt;
        bool peer_fin;
        uint32_t rx_len;
        uint8_t rx[512];
        uint32_t done;           /* connections closed */
    } tcp;
    uint32_t rx_frames, rx_ignored;
    uint8_t *capture;            /* build frames here instead of sending */
    uint32_t capture_len;
    uint8_t frame[KIT_NIC_BUF];
};

void kit_net_init(struct kit_net *net, struct kit_nic *nic);
/* Takes waiting frames: answers ARP requests and pings for our address,
 * records ARP replies, echo replies and TCP data; stops after a UDP
 * datagram (one at a time in net->udp_*). */
void kit_net_poll(struct kit_net *net);
/* DHCP DISCOVER / OFFER / REQUEST / ACK; 0 with net->ip etc. set. */
int kit_net_dhcp(struct kit_net *net, uint64_t us);
/* The MAC address of ip (on the local network), 0 or KIT_NIC_ETIMEDOUT. */
int kit_net_arp(struct kit_net *net, uint32_t ip, uint8_t mac[6], uint64_t us);
/* One ICMP echo; 0 when the reply came. */
int kit_net_ping(struct kit_net *net, uint32_t ip, uint16_t seq, uint64_t us);
int kit_net_udp_send(struct kit_net *net, uint32_t dst, uint16_t sport, uint16_t dport,
                     const void *data, uint32_t len);
/* The next datagram to port: its length (copied into buf, at most max),
 * KIT_NIC_ETIMEDOUT. */
int kit_net_udp_recv(struct kit_net *net, uint16_t port, void *buf, uint32_t max,
                     uint32_t *src, uint16_t *src_port, uint64_t us);
/* A minimal passive TCP (RFC 793): one connection at a time on port,
 * segments in order or dropped, no retransmission (libslirp's loopback
 * loses nothing), no options. kit_net_poll() drives it. */
enum { KIT_TCP_LISTEN = 0, KIT_TCP_SYN_RCVD, KIT_TCP_ESTABLISHED, KIT_TCP_LAST_ACK };
void kit_net_tcp_listen(struct kit_net *net, uint16_t port);
int kit_net_tcp_send(struct kit_net *net, const void *data, uint32_t len);
/* Our FIN; the connection ends when the peer acknowledges it. */
int kit_net_tcp_close(struct kit_net *net);
/* Frames for benchmarks, built as kit_net_udp_send / kit_net_ping would
 * send them (the next hop resolved by ARP first) into out (KIT_NIC_BUF
 * bytes); the length, or negative. */
int kit_net_build_udp(struct kit_net *net, uint32_t dst, uint16_t sport, uint16_t dport,
                      const void *data, uint32_t len, uint8_t *out);
int kit_net_build_ping(struct kit_net *net, uint32_t dst, uint16_t seq, uint8_t *out);
/* "a.b.c.d" into buf (16 bytes). */
const char *kit_ip_str(uint32_t ip, char *buf);
/* The value of word "key=" on the command line as a number, or def. */
uint32_t kit_cmdline_uint(const char *key, uint32_t def);

#endif
