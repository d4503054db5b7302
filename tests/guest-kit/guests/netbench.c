/* netbench: network figures measured inside the guest (bench/net).
 *
 * Command line (key=value words):
 *   nic=virtio|e1000   the NIC (default: virtio-net if there is one)
 *   rtt=N              round trips per latency test (default 200)
 *   echo=PORT          a UDP echo server at 10.0.2.2:PORT (the host)
 *   tx=N size=BYTES sink=PORT
 *                      N datagrams of BYTES of payload to 10.0.2.2:PORT
 *   rx=N listen=PORT   receive N datagrams on PORT (through a host
 *                      forward); every 16th is acknowledged to the sender
 *                      with a datagram "ack", which paces it
 *
 * Prints
 *   KIT: netbench ping n=N lost=L rtt_us=X      (ICMP to 10.0.2.2: slirp)
 *   KIT: netbench udp-rtt n=N lost=L rtt_us=X   (UDP to the echo server)
 *   KIT: netbench tx frames=N bytes=B us=T
 *   KIT: netbench rx ready port=P
 *   KIT: netbench rx frames=N bytes=B us=T
 *   KIT: PASS netbench
 *
 * The guest's own work per frame is kept tiny (CPL0 code is emulated on
 * the nested KVM here): frames are built once and sent again from the
 * transmit buffers, received frames are counted, never copied. Times are
 * ACPI PM timer readings around the measured part only, so the boot
 * (SeaBIOS under QEMU) does not count. */
#include "net.h"

KIT_GUEST("netbench");

#define DMA_BASE 0x1000000ULL
#define ACK_EVERY 16

static struct kit_nic nic;
static struct kit_net net;
static uint8_t frame[KIT_NIC_BUF];

static uint64_t now_us(void)
{
    return kit_pmtmr_ticks() * 1000000 / KIT_PMTMR_HZ;
}

/* Round trips of the prepared frame: each waits for any frame back. */
static void round_trips(const char *what, uint32_t n)
{
    uint64_t total = 0, bytes = 0;
    uint32_t lost = 0;
    for (uint32_t i = 0; i < n; i++) {
        nic.rx_drain(&nic, &bytes);
        uint64_t t0 = now_us();
        if (!nic.tx_burst(&nic, 1)) {
            lost++;
            continue;
        }
        uint64_t t;
        for (;;) {
            t = now_us();
            if (nic.rx_drain(&nic, &bytes))
                break;
            if (t - t0 > 1000000) {
                lost++;
                break;
            }
        }
        total += t - t0;
    }
    uint32_t ok = n - lost;
    kit_printf("KIT: netbench %s n=%u lost=%u rtt_us=%u\n", what, n, lost,
               ok ? (uint32_t)(total / ok) : 0);
}

void kit_main(void)
{
    bool want_virtio = !kit_cmdline_has("nic=e1000");
    uint8_t *dma = (uint8_t *)(uintptr_t)DMA_BASE;
    int r = -1;
    if (want_virtio)
        r = kit_vnet_open(&nic, 0, dma);
    if (r == -1)
        r = kit_e1000_open(&nic, 0, dma);
    if (r)
        kit_fail("no NIC (%d)", r);
    kit_net_init(&net, &nic);
    if ((r = kit_net_dhcp(&net, 10000000)))
        kit_fail("DHCP: %d", r);
    uint32_t host = KIT_IP(10, 0, 2, 2);
    kit_printf("KIT: netbench nic=%s up\n", nic.model);

    uint32_t n = kit_cmdline_uint("rtt", 200);
    int len = kit_net_build_ping(&net, host, 1, frame);
    if (len < 0)
        kit_fail("ping frame: %d", len);
    nic.tx_prepare(&nic, frame, (uint32_t)len);
    round_trips("ping", n);

    uint32_t echo = kit_cmdline_uint("echo", 0);
    if (echo) {
        len = kit_net_build_udp(&net, host, 40001, (uint16_t)echo, "vessel netbench rtt", 19, frame);
        if (len < 0)
            kit_fail("echo frame: %d", len);
        nic.tx_prepare(&nic, frame, (uint32_t)len);
        round_trips("udp-rtt", n);
    }

    uint32_t tx = kit_cmdline_uint("tx", 0), size = kit_cmdline_uint("size", 1400);
    uint32_t sink = kit_cmdline_uint("sink", 0);
    if (tx && sink) {
        static uint8_t payload[1472];
        if (size > sizeof(payload))
            size = sizeof(payload);
        for (uint32_t i = 0; i < size; i++)
            payload[i] = (uint8_t)i;
        len = kit_net_build_udp(&net, host, 40002, (uint16_t)sink, payload, size, frame);
        if (len < 0)
            kit_fail("sink frame: %d", len);
        nic.tx_prepare(&nic, frame, (uint32_t)len);
        uint64_t bytes = 0;
        uint64_t t0 = now_us();
        for (uint32_t sent = 0; sent < tx; ) {
            sent += nic.tx_burst(&nic, tx - sent);
            nic.rx_drain(&nic, &bytes);
        }
        uint64_t t1 = now_us();
        kit_printf("KIT: netbench tx frames=%u bytes=%llu us=%llu\n", tx,
                   (unsigned long long)tx * size, (unsigned long long)(t1 - t0));
    }

    uint32_t rx = kit_cmdline_uint("rx", 0), listen = kit_cmdline_uint("listen", 0);
    if (rx && listen) {
        /* The acknowledgement, built now (with its ARP) while the line is
         * quiet; the sender's port is patched in when it is known, and the
         * UDP checksum left out (0: none, allowed over IPv4). */
        len = kit_net_build_udp(&net, host, (uint16_t)listen, 1, "ack", 3, frame);
        if (len < 0)
            kit_fail("ack frame: %d", len);
        kit_printf("KIT: netbench rx ready port=%u\n", listen);
        uint32_t src;
        uint16_t sport;
        static uint8_t first[1500];
        r = kit_net_udp_recv(&net, (uint16_t)listen, first, sizeof(first), &src, &sport, 60000000);
        if (r < 0)
            kit_fail("nothing on UDP port %u", listen);
        uint64_t t0 = now_us(), last = t0, bytes = (uint64_t)r;
        frame[36] = (uint8_t)(sport >> 8);
        frame[37] = (uint8_t)sport;
        frame[40] = frame[41] = 0;
        nic.tx_prepare(&nic, frame, (uint32_t)len);
        uint32_t got = 1, acked = 0;
        uint64_t hdrs = 0;
        while (got < rx) {
            uint64_t b = 0;
            uint32_t f = nic.rx_drain(&nic, &b);
            uint64_t t = now_us();
            if (f) {
                got += f;
                hdrs += (uint64_t)f * 42;
                bytes += b;
                last = t;
            } else if (t - last > 2000000)
                break;
            while (got / ACK_EVERY > acked) {
                nic.tx_burst(&nic, 1);
                acked++;
            }
        }
        kit_printf("KIT: netbench rx frames=%u bytes=%llu us=%llu\n", got,
                   (unsigned long long)(bytes - hdrs), (unsigned long long)(last - t0));
    }
    kit_pass();
}
