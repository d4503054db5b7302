/* net: a NIC (virtio-net or the e1000) on Vessel's user-mode network, used
 * the way an operating system would: DHCP, ARP, ping, UDP both ways.
 *
 * Command line (words, space separated):
 *   nic=virtio|e1000   which NIC (default: the first virtio-net, else e1000)
 *   host=PORT          send a datagram to 10.0.2.2:PORT (a server on the
 *                      host's loopback) and print its reply
 *   listen=PORT        answer datagrams on PORT with "echo: <data>" until
 *                      one says "quit"
 *   tcp=PORT           serve TCP connections on PORT: each chunk of data
 *                      comes back as "echo: <data>"; the connection that
 *                      sent "quit" is the last
 *   offload            leave UDP (and with the e1000 IPv4) checksums to the
 *                      NIC: virtio NEEDS_CSUM, e1000 context + TXSM/IXSM
 *   hostile            first misuse the NIC (looping and out-of-RAM
 *                      descriptors, oversized frames, bad checksum requests,
 *                      rings of absurd size, every register written), then
 *                      reset it and carry on as above
 *
 * Lines: "KIT: net nic=M mac=…", "KIT: net dhcp ip=… mask=… router=…
 * dns=…", "KIT: net arp A is MAC", "KIT: net ping A ok|failed", "KIT: net
 * udp reply "…"" or "KIT: net udp no reply", "KIT: net listening udp P",
 * "KIT: net udp from A:P "…"", "KIT: net listening tcp P", "KIT: net tcp
 * got "…"", "KIT: PASS net". The NIC's rings and
 * buffers live at 16 MiB: give the guest at least 32 MiB. */
#include "net.h"

KIT_GUEST("net");

#define DMA_BASE 0x1000000ULL
#define SCRATCH (DMA_BASE + 0x40000) /* hostile buffers */

static struct kit_nic nic;
static struct kit_net net;

static const char *mac_str(const uint8_t *m, char *buf)
{
    kit_snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
    return buf;
}

static int open_nic(bool want_virtio, bool want_e1000)
{
    uint8_t *dma = (uint8_t *)(uintptr_t)DMA_BASE;
    int r = -1;
    if (want_virtio)
        r = kit_vnet_open(&nic, 0, dma);
    if (r == -1 && want_e1000)
        r = kit_e1000_open(&nic, 0, dma);
    return r;
}

/* Waits until queue q's used index reaches want. */
static bool vnet_wait_used(int q, uint16_t want)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, 2000000);
    while (kit_vnet_used_idx(&nic, q) != want)
        if (kit_deadline_passed(&dl))
            return false;
    return true;
}

static void hostile_virtio(void)
{
    volatile struct kit_virtq_desc *tx = kit_vnet_desc(&nic, 1);
    uint8_t *buf = (uint8_t *)(uintptr_t)SCRATCH;
    memset(buf, 0, 8192);
    uint16_t used = kit_vnet_used_idx(&nic, 1);
    /* A chain that loops onto itself. */
    tx[0] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)buf, 64, KIT_VIRTQ_DESC_F_NEXT, 0 };
    kit_vnet_post_raw(&nic, 1, 0);
    /* A buffer far outside RAM. */
    tx[1] = (struct kit_virtq_desc){ 0xfffff00000000ULL, 64, 0, 0 };
    kit_vnet_post_raw(&nic, 1, 1);
    /* A frame of 4000 bytes (over 1518). */
    tx[2] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)buf, 12 + 4000, 0, 0 };
    kit_vnet_post_raw(&nic, 1, 2);
    /* A device-writable buffer on the transmit queue. */
    tx[3] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)buf, 12 + 60, KIT_VIRTQ_DESC_F_WRITE, 0 };
    kit_vnet_post_raw(&nic, 1, 3);
    /* A checksum request past the frame. */
    buf[4096] = 1;
    buf[4096 + 6] = 0x88; buf[4096 + 7] = 0x13;   /* csum_start 5000 */
    tx[4] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)(buf + 4096), 12 + 60, 0, 0 };
    kit_vnet_post_raw(&nic, 1, 4);
    /* A GSO type never offered. */
    buf[6144 + 1] = 1;
    tx[5] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)(buf + 6144), 12 + 60, 0, 0 };
    kit_vnet_post_raw(&nic, 1, 5);
    /* A runt: a header and 4 bytes. */
    tx[6] = (struct kit_virtq_desc){ (uint64_t)(uintptr_t)buf, 12 + 4, 0, 0 };
    kit_vnet_post_raw(&nic, 1, 6);
    bool back = vnet_wait_used(1, (uint16_t)(used + 7));
    kit_printf("KIT: net hostile virtio tx returned=%d status=0x%x\n", back,
               kit_vnet_status(&nic));
    /* Receive buffers outside RAM, then a frame for them (slirp answers an
     * ARP request for 10.0.2.2 at once). */
    volatile struct kit_virtq_desc *rx = kit_vnet_desc(&nic, 0);
    for (int i = 0; i < KIT_NIC_QSIZE; i++)
        rx[i].addr = 0xfffff00000000ULL;
    uint16_t rx_used = kit_vnet_used_idx(&nic, 0);
    struct kit_net tmp;
    kit_net_init(&tmp, &nic);
    uint8_t mac[6];
    kit_net_arp(&tmp, KIT_IP(10, 0, 2, 2), mac, 300000);
    kit_printf("KIT: net hostile virtio rx returned=%u status=0x%x\n",
               (unsigned)(uint16_t)(kit_vnet_used_idx(&nic, 0) - rx_used), kit_vnet_status(&nic));
}

static void hostile_e1000(void)
{
    /* Every register below 0x6000 and the last one written with all ones,
     * and read back, through BAR0; then bad accesses through BAR1. */
    for (uint32_t off = 0; off < 0x6000; off += 4)
        kit_e1000_write(&nic, off, 0xffffffff);
    kit_e1000_write(&nic, 0x1fffc, 0xffffffff);
    uint32_t x = 0;
    for (uint32_t off = 0; off < 0x6000; off += 4)
        x ^= kit_e1000_read(&nic, off);
    outl(nic.io, 0x1fffc);
    outl(nic.io + 4, 0x12345678);
    outb(nic.io + 1, 0xff);
    outw(nic.io + 6, 0xffff);
    (void)inb(nic.io + 3);
    /* A reset, then rings that make no sense. */
    kit_e1000_write(&nic, 0x0000, 1u << 26);
    uint64_t ram = kit_ram_end();
    kit_e1000_write(&nic, 0x0400, 0x2);                 /* TCTL.EN */
    kit_e1000_write(&nic, 0x3800, 0xffff0000);          /* ring far outside RAM */
    kit_e1000_write(&nic, 0x3804, 0xff);
    kit_e1000_write(&nic, 0x3808, 128);
    kit_e1000_write(&nic, 0x3818, 1);
    kit_e1000_write(&nic, 0x3800, (uint32_t)(ram - 4096)); /* a ring running off RAM */
    kit_e1000_write(&nic, 0x3804, (uint32_t)((ram - 4096) >> 32));
    kit_e1000_write(&nic, 0x3808, 0xfff80);
    kit_e1000_write(&nic, 0x3818, 3);
    /* A ring in RAM with a tail past its end. */
    uint8_t *ring = (uint8_t *)(uintptr_t)SCRATCH;
    memset(ring, 0, 4096);
    kit_e1000_write(&nic, 0x3810, 0);
    kit_e1000_write(&nic, 0x3800, (uint32_t)(uintptr_t)ring);
    kit_e1000_write(&nic, 0x3804, 0);
    kit_e1000_write(&nic, 0x3808, 128);
    kit_e1000_write(&nic, 0x3818, 100);
    /* Descriptors: a buffer outside RAM; an unknown type; 20 pieces of
     * 4000 bytes without EOP (80000, over 64 KiB) then EOP; a TSO context
     * with MSS 0 and a data descriptor using it. */
    uint8_t *data = ring + 8192;
    volatile uint64_t *d = (volatile uint64_t *)ring;
    kit_e1000_write(&nic, 0x3818, 0);
    kit_e1000_write(&nic, 0x3810, 0);
    kit_e1000_write(&nic, 0x3808, 4096);               /* 256 descriptors */
    unsigned i = 0;
    d[2 * i] = 0xfff0000000000ULL; d[2 * i + 1] = 0xffffULL | 0x0bULL << 24; i++;
    d[2 * i] = (uint64_t)(uintptr_t)data; d[2 * i + 1] = 64 | 0xfULL << 20 | 0x29ULL << 24; i++;
    for (int k = 0; k < 20; k++, i++) {
        d[2 * i] = (uint64_t)(uintptr_t)data;
        d[2 * i + 1] = 4000 | (uint64_t)(k == 19 ? 0x0b : 0x02) << 24;
    }
    d[2 * i] = 0; d[2 * i + 1] = 0x24ULL << 24 | (uint64_t)14 << 40 /* hdrlen */; i++; /* context, TSE, MSS 0 */
    d[2 * i] = (uint64_t)(uintptr_t)data; d[2 * i + 1] = 100 | 1ULL << 20 | 0x2dULL << 24 | 0x3ULL << 40; i++;
    kit_e1000_write(&nic, 0x3818, i);
    struct kit_deadline dl;
    kit_deadline_set(&dl, 2000000);
    while (kit_e1000_read(&nic, 0x3810) != i && !kit_deadline_passed(&dl))
        ;
    kit_printf("KIT: net hostile e1000 tdh=%u of %u (x=%x)\n", kit_e1000_read(&nic, 0x3810), i, x);
    /* Receive with a zero-length ring, then with buffers outside RAM. */
    kit_e1000_write(&nic, 0x2808, 0);
    kit_e1000_write(&nic, 0x0100, (1u << 1) | (1u << 15));
    memset(ring, 0, 4096);
    for (int k = 0; k < 8; k++)
        ((volatile uint64_t *)ring)[2 * k] = 0xfff0000000000ULL;
    kit_e1000_write(&nic, 0x2800, (uint32_t)(uintptr_t)ring);
    kit_e1000_write(&nic, 0x2804, 0);
    kit_e1000_write(&nic, 0x2808, 128);
    kit_e1000_write(&nic, 0x2810, 0);
    kit_e1000_write(&nic, 0x2818, 7);
    /* A good transmit ring with one ARP request for 10.0.2.2: slirp's
     * answer meets those receive buffers. */
    uint8_t *txr = ring + 4096;
    uint8_t *arp = ring + 6144;
    memset(txr, 0, 256);
    memset(arp, 0, 64);
    memset(arp, 0xff, 6);
    memcpy(arp + 6, nic.mac, 6);
    static const uint8_t hdr[] = { 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1 };
    memcpy(arp + 12, hdr, sizeof(hdr));
    memcpy(arp + 22, nic.mac, 6);
    static const uint8_t ips[] = { 10, 0, 2, 15, 0, 0, 0, 0, 0, 0, 10, 0, 2, 2 };
    memcpy(arp + 28, ips, sizeof(ips));
    volatile uint64_t *t = (volatile uint64_t *)txr;
    t[0] = (uint64_t)(uintptr_t)arp;
    t[1] = 60 | 0x0bULL << 24;
    kit_e1000_write(&nic, 0x3800, (uint32_t)(uintptr_t)txr);
    kit_e1000_write(&nic, 0x3804, 0);
    kit_e1000_write(&nic, 0x3808, 128);
    kit_e1000_write(&nic, 0x3810, 0);
    kit_e1000_write(&nic, 0x0400, 0x2);
    kit_e1000_write(&nic, 0x3818, 1);
    kit_udelay(300000);
    kit_printf("KIT: net hostile e1000 rx rdh=%u\n", kit_e1000_read(&nic, 0x2810));
}

void kit_main(void)
{
    bool hostile = kit_cmdline_has("hostile");
    bool want_virtio = !kit_cmdline_has("nic=e1000");
    bool want_e1000 = !kit_cmdline_has("nic=virtio");
    char a[18], b[18], c[18], d[18];
    if (kit_ram_end() < DMA_BASE + KIT_NIC_DMA_SIZE + 0x100000)
        kit_fail("the NIC buffers at 16 MiB need at least 32 MiB of RAM");
    int r = open_nic(want_virtio, want_e1000);
    if (r)
        kit_fail("no NIC (%d)", r);
    kit_printf("KIT: net nic=%s mac=%s at %02x:%02x.%x\n", nic.model, mac_str(nic.mac, a),
               nic.pci.bus, nic.pci.dev, nic.pci.fn);
    if (nic.regs) {
        uint16_t sum = 0;
        for (unsigned i = 0; i < 64; i++)
            sum = (uint16_t)(sum + kit_e1000_eerd(&nic, i));
        int w0 = kit_e1000_microwire(&nic, 0), w2 = kit_e1000_microwire(&nic, 2);
        int phy = kit_e1000_phy_read(&nic, 1, 1);
        int nophy = kit_e1000_phy_read(&nic, 7, 1);
        kit_printf("KIT: net e1000 eeprom-sum=0x%x microwire=%s phy-link=%d phy7=%s status=0x%x\n",
                   sum, w0 == kit_e1000_eerd(&nic, 0) && w2 == kit_e1000_eerd(&nic, 2) ? "ok" : "bad",
                   phy >= 0 && (phy & 4) ? 1 : 0, nophy == -2 ? "error" : "answered",
                   kit_e1000_read(&nic, 0x0008));
    }
    if (hostile) {
        if (nic.regs)
            hostile_e1000();
        else
            hostile_virtio();
        r = open_nic(want_virtio, want_e1000);
        if (r)
            kit_fail("NIC reopen after the hostile part: %d", r);
        kit_printf("KIT: net hostile done, NIC reset\n");
    }

    kit_net_init(&net, &nic);
    net.offload = kit_cmdline_has("offload");
    r = kit_net_dhcp(&net, 10000000);
    if (r)
        kit_fail("DHCP: %d (frames in %u)", r, net.rx_frames);
    kit_printf("KIT: net dhcp ip=%s mask=%s router=%s dns=%s\n", kit_ip_str(net.ip, a),
               kit_ip_str(net.mask, b), kit_ip_str(net.router, c), kit_ip_str(net.dns, d));
    /* The host is 10.0.2.2; in restrict mode DHCP names no router. */
    uint32_t host = net.router ? net.router : KIT_IP(10, 0, 2, 2);
    uint8_t mac[6];
    r = kit_net_arp(&net, host, mac, 3000000);
    if (r)
        kit_fail("ARP for the host: %d", r);
    kit_printf("KIT: net arp %s is %s\n", kit_ip_str(host, a), mac_str(mac, b));
    r = kit_net_ping(&net, host, 1, 3000000);
    kit_printf("KIT: net ping %s %s\n", kit_ip_str(host, a), r ? "failed" : "ok");

    uint32_t host_port = kit_cmdline_uint("host", 0);
    if (host_port) {
        char msg[64];
        int n = kit_snprintf(msg, sizeof(msg), "hello from the guest over %s", nic.model);
        r = kit_net_udp_send(&net, host, 40000, (uint16_t)host_port, msg, (uint32_t)n);
        if (r)
            kit_fail("UDP send: %d", r);
        char reply[200];
        n = kit_net_udp_recv(&net, 40000, reply, sizeof(reply) - 1, NULL, NULL, 3000000);
        if (n >= 0) {
            reply[n] = 0;
            kit_printf("KIT: net udp reply \"%s\"\n", reply);
        } else
            kit_printf("KIT: net udp no reply\n");
    }

    uint32_t listen = kit_cmdline_uint("listen", 0);
    if (listen) {
        kit_printf("KIT: net listening udp %u\n", listen);
        for (;;) {
            char in[200], out[220];
            uint32_t src;
            uint16_t sport;
            int n = kit_net_udp_recv(&net, (uint16_t)listen, in, sizeof(in) - 1, &src, &sport,
                                     60000000);
            if (n < 0)
                kit_fail("nothing on UDP port %u for 60 s", listen);
            in[n] = 0;
            kit_printf("KIT: net udp from %s:%u \"%s\"\n", kit_ip_str(src, a), sport, in);
            int m = kit_snprintf(out, sizeof(out), "echo: %s", in);
            r = kit_net_udp_send(&net, src, (uint16_t)listen, sport, out, (uint32_t)m);
            if (r)
                kit_fail("UDP reply: %d", r);
            if (strcmp(in, "quit") == 0)
                break;
        }
    }
    uint32_t tcp_port = kit_cmdline_uint("tcp", 0);
    if (tcp_port) {
        kit_net_tcp_listen(&net, (uint16_t)tcp_port);
        kit_printf("KIT: net listening tcp %u\n", tcp_port);
        bool quit = false;
        struct kit_deadline dl;
        kit_deadline_set(&dl, 60000000);
        while (!(quit && net.tcp.state == KIT_TCP_LISTEN)) {
            if (kit_deadline_passed(&dl))
                kit_fail("TCP server on %u: no end after 60 s (state %d)", tcp_port, net.tcp.state);
            kit_net_poll(&net);
            if (net.tcp.state != KIT_TCP_ESTABLISHED)
                continue;
            if (net.tcp.rx_len) {
                char in[520], out[540];
                uint32_t n = net.tcp.rx_len;
                memcpy(in, net.tcp.rx, n);
                in[n] = 0;
                net.tcp.rx_len = 0;
                while (n && (in[n - 1] == '\n' || in[n - 1] == '\r'))
                    in[--n] = 0;
                kit_printf("KIT: net tcp got \"%s\"\n", in);
                if (strcmp(in, "quit") == 0)
                    quit = true;
                int m = kit_snprintf(out, sizeof(out), "echo: %s\n", in);
                kit_net_tcp_send(&net, out, (uint32_t)m);
            }
            if (net.tcp.peer_fin)
                kit_net_tcp_close(&net);
        }
        kit_printf("KIT: net tcp connections=%u\n", net.tcp.done);
    }
    kit_printf("KIT: net frames sent=%u received=%u ignored=%u\n", nic.sent, nic.received,
               net.rx_ignored);
    kit_pass();
}
