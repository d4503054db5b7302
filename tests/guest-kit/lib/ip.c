/* Vessel guest kit: a minimal IPv4 stack over struct kit_nic (RFC 826 ARP,
 * RFC 791 IPv4 without fragments or options, RFC 792 ICMP echo, RFC 768
 * UDP, RFC 2131 DHCP client). Polled; one frame buffer; enough to talk to
 * libslirp the way an operating system does. */
#include "net.h"

#define ETH_ARP 0x0806
#define ETH_IP 0x0800
#define PROTO_ICMP 1
#define PROTO_UDP 17
#define PROTO_TCP 6
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define DHCP_CLIENT 68
#define DHCP_SERVER 67

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }

static uint32_t csum_add(uint32_t sum, const uint8_t *p, uint32_t len)
{
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += get16(p + i);
    if (len & 1)
        sum += (uint32_t)p[len - 1] << 8;
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

const char *kit_ip_str(uint32_t ip, char *buf)
{
    kit_snprintf(buf, 16, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255);
    return buf;
}

uint32_t kit_cmdline_uint(const char *key, uint32_t def)
{
    const char *s = kit_boot.cmdline;
    size_t kl = strlen(key);
    while (*s) {
        while (*s == ' ')
            s++;
        if (strncmp(s, key, kl) == 0 && s[kl] == '=') {
            uint32_t v = 0;
            const char *p = s + kl + 1;
            if (*p < '0' || *p > '9')
                return def;
            while (*p >= '0' && *p <= '9')
                v = v * 10 + (uint32_t)(*p++ - '0');
            return v;
        }
        while (*s && *s != ' ')
            s++;
    }
    return def;
}

void kit_net_init(struct kit_net *net, struct kit_nic *nic)
{
    memset(net, 0, sizeof(*net));
    net->nic = nic;
    net->echo_seq = -1;
    net->ip_id = 1;
}

static int eth_send(struct kit_net *net, const uint8_t dst[6], uint16_t type,
                    uint8_t *frame, uint32_t payload, uint32_t cs, uint32_t co)
{
    memcpy(frame, dst, 6);
    memcpy(frame + 6, net->nic->mac, 6);
    put16(frame + 12, type);
    uint32_t len = 14 + payload;
    if (len < 60) {
        memset(frame + len, 0, 60 - len);
        len = 60;
    }
    if (net->capture) {
        memcpy(net->capture, frame, len);
        net->capture_len = len;
        return 0;
    }
    return net->nic->send(net->nic, frame, len, cs, co);
}

/* ---- ARP ---- */

static int arp_send(struct kit_net *net, uint16_t op, const uint8_t tha[6], uint32_t tip,
                    const uint8_t *dst)
{
    uint8_t f[64];
    uint8_t *a = f + 14;
    put16(a, 1);            /* Ethernet */
    put16(a + 2, ETH_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, op);
    memcpy(a + 8, net->nic->mac, 6);
    put32(a + 14, net->ip);
    memcpy(a + 18, tha, 6);
    put32(a + 24, tip);
    return eth_send(net, dst, ETH_ARP, f, 28, 0, 0);
}

static void arp_input(struct kit_net *net, const uint8_t *a, uint32_t len)
{
    if (len < 28 || get16(a) != 1 || get16(a + 2) != ETH_IP)
        return;
    uint16_t op = get16(a + 6);
    uint32_t sip = get32(a + 14), tip = get32(a + 24);
    if (op == 1 && net->ip && tip == net->ip)
        arp_send(net, 2, a + 8, sip, a + 8);
    else if (op == 2 && sip == net->arp_ip) {
        memcpy(net->arp_mac, a + 8, 6);
        net->arp_ok = true;
    }
}

/* ---- IPv4 ---- */

static int ip_send(struct kit_net *net, uint32_t dst, uint8_t proto, uint8_t *frame,
                   uint32_t payload, const uint8_t *dst_mac, uint32_t cs, uint32_t co)
{
    uint8_t *ip = frame + 14;
    ip[0] = 0x45;
    ip[1] = 0;
    put16(ip + 2, (uint16_t)(20 + payload));
    put16(ip + 4, net->ip_id++);
    put16(ip + 6, 0x4000);  /* DF */
    ip[8] = 64;
    ip[9] = proto;
    put16(ip + 10, 0);
    put32(ip + 12, net->ip);
    put32(ip + 16, dst);
    put16(ip + 10, (uint16_t)~csum_fold(csum_add(0, ip, 20)));
    return eth_send(net, dst_mac, ETH_IP, frame, 20 + payload, cs, co);
}

/* Where a packet for dst goes on the wire: the host itself on the local
 * network, else the router. */
static int route(struct kit_net *net, uint32_t dst, uint8_t mac[6])
{
    if (dst == 0xffffffff) {
        memcpy(mac, bcast, 6);
        return 0;
    }
    uint32_t hop = (dst & net->mask) == (net->ip & net->mask) || !net->router ? dst : net->router;
    return kit_net_arp(net, hop, mac, 1000000);
}

static void icmp_input(struct kit_net *net, const uint8_t *ip, const uint8_t *icmp, uint32_t len,
                       const uint8_t *src_mac)
{
    if (len < 8)
        return;
    if (icmp[0] == 0) {
        net->echo_seq = get16(icmp + 6);
    } else if (icmp[0] == 8 && len <= 1400) {
        uint8_t f[1500];
        uint8_t *r = f + 34;
        memcpy(r, icmp, len);
        r[0] = 0;
        put16(r + 2, 0);
        put16(r + 2, (uint16_t)~csum_fold(csum_add(0, r, len)));
        ip_send(net, get32(ip + 12), PROTO_ICMP, f, len, src_mac, 0, 0);
    }
}

static void udp_input(struct kit_net *net, const uint8_t *ip, const uint8_t *u, uint32_t len)
{
    if (len < 8 || get16(u + 4) < 8 || get16(u + 4) > len)
        return;
    uint32_t dlen = get16(u + 4) - 8u;
    if (dlen > sizeof(net->udp_data))
        return;
    memcpy(net->udp_data, u + 8, dlen);
    net->udp_len = dlen;
    net->udp_src = get32(ip + 12);
    net->udp_src_port = get16(u);
    net->udp_port = get16(u + 2);
    net->udp_ready = true;
}

/* ---- TCP ---- */

static int tcp_segment(struct kit_net *net, uint8_t flags, const void *data, uint32_t len)
{
    uint8_t f[KIT_NIC_BUF];
    if (len > 1400)
        return -2;
    uint8_t *t = f + 34;
    put16(t, net->tcp.port);
    put16(t + 2, net->tcp.peer_port);
    put32(t + 4, net->tcp.snd_nxt);
    put32(t + 8, net->tcp.rcv_nxt);
    t[12] = 5 << 4;
    t[13] = flags;
    put16(t + 14, 8192);
    put16(t + 16, 0);
    put16(t + 18, 0);
    memcpy(t + 20, data, len);
    uint8_t ph[12];
    put32(ph, net->ip);
    put32(ph + 4, net->tcp.peer);
    ph[8] = 0;
    ph[9] = PROTO_TCP;
    put16(ph + 10, (uint16_t)(20 + len));
    put16(t + 16, (uint16_t)~csum_fold(csum_add(csum_add(0, ph, 12), t, 20 + len)));
    net->tcp.snd_nxt += len + ((flags & (TCP_SYN | TCP_FIN)) ? 1 : 0);
    return ip_send(net, net->tcp.peer, PROTO_TCP, f, 20 + len, net->tcp.peer_mac, 0, 0);
}

void kit_net_tcp_listen(struct kit_net *net, uint16_t port)
{
    memset(&net->tcp, 0, sizeof(net->tcp));
    net->tcp.port = port;
}

int kit_net_tcp_send(struct kit_net *net, const void *data, uint32_t len)
{
    if (net->tcp.state != KIT_TCP_ESTABLISHED)
        return -1;
    return tcp_segment(net, TCP_PSH | TCP_ACK, data, len);
}

int kit_net_tcp_close(struct kit_net *net)
{
    if (net->tcp.state != KIT_TCP_ESTABLISHED)
        return -1;
    net->tcp.state = KIT_TCP_LAST_ACK;
    return tcp_segment(net, TCP_FIN | TCP_ACK, NULL, 0);
}

static void tcp_input(struct kit_net *net, const uint8_t *ip, const uint8_t *t, uint32_t len,
                      const uint8_t *src_mac)
{
    if (len < 20 || !net->tcp.port || get16(t + 2) != net->tcp.port)
        return;
    uint32_t off = (t[12] >> 4) * 4u;
    if (off < 20 || off > len)
        return;
    uint8_t flags = t[13];
    uint32_t seq = get32(t + 4), ack = get32(t + 8);
    uint32_t src = get32(ip + 12);
    uint16_t sport = get16(t);
    uint32_t dlen = len - off;
    if (net->tcp.state == KIT_TCP_LISTEN) {
        if ((flags & (TCP_SYN | TCP_ACK | TCP_RST)) != TCP_SYN)
            return;
        net->tcp.peer = src;
        net->tcp.peer_port = sport;
        memcpy(net->tcp.peer_mac, src_mac, 6);
        net->tcp.rcv_nxt = seq + 1;
        net->tcp.snd_nxt = 0x4b490000 ^ (uint32_t)rdtsc();
        net->tcp.peer_fin = false;
        net->tcp.rx_len = 0;
        net->tcp.state = KIT_TCP_SYN_RCVD;
        tcp_segment(net, TCP_SYN | TCP_ACK, NULL, 0);
        return;
    }
    if (src != net->tcp.peer || sport != net->tcp.peer_port)
        return;
    if (flags & TCP_RST) {
        net->tcp.state = KIT_TCP_LISTEN;
        return;
    }
    if ((flags & TCP_ACK) && net->tcp.state == KIT_TCP_SYN_RCVD && ack == net->tcp.snd_nxt)
        net->tcp.state = KIT_TCP_ESTABLISHED;
    if ((flags & TCP_ACK) && net->tcp.state == KIT_TCP_LAST_ACK && ack == net->tcp.snd_nxt) {
        net->tcp.state = KIT_TCP_LISTEN;
        net->tcp.done++;
        return;
    }
    if (seq != net->tcp.rcv_nxt)
        return; /* out of order: the peer sends it again */
    bool ack_it = false;
    if (dlen) {
        uint32_t room = sizeof(net->tcp.rx) - net->tcp.rx_len;
        uint32_t n = dlen < room ? dlen : room;
        memcpy(net->tcp.rx + net->tcp.rx_len, t + off, n);
        net->tcp.rx_len += n;
        net->tcp.rcv_nxt += n;
        ack_it = true;
    }
    if (flags & TCP_FIN) {
        net->tcp.rcv_nxt++;
        net->tcp.peer_fin = true;
        ack_it = true;
    }
    if (ack_it)
        tcp_segment(net, TCP_ACK, NULL, 0);
}

void kit_net_poll(struct kit_net *net)
{
    for (;;) {
        int n = net->nic->recv(net->nic, net->frame, sizeof(net->frame));
        if (n <= 0)
            return;
        net->rx_frames++;
        const uint8_t *f = net->frame;
        if (n < 14 || (memcmp(f, net->nic->mac, 6) && memcmp(f, bcast, 6))) {
            net->rx_ignored++;
            continue;
        }
        uint16_t type = get16(f + 12);
        if (type == ETH_ARP) {
            arp_input(net, f + 14, (uint32_t)n - 14);
            continue;
        }
        if (type != ETH_IP || n < 34 || (f[14] >> 4) != 4) {
            net->rx_ignored++;
            continue;
        }
        const uint8_t *ip = f + 14;
        uint32_t ihl = (ip[0] & 15) * 4u, tot = get16(ip + 2);
        if (ihl < 20 || tot < ihl || tot > (uint32_t)n - 14) {
            net->rx_ignored++;
            continue;
        }
        uint32_t dst = get32(ip + 16);
        if (net->ip && dst != net->ip && dst != 0xffffffff) {
            net->rx_ignored++;
            continue;
        }
        if (ip[9] == PROTO_ICMP)
            icmp_input(net, ip, ip + ihl, tot - ihl, f + 6);
        else if (ip[9] == PROTO_UDP) {
            udp_input(net, ip, ip + ihl, tot - ihl);
            /* One datagram at a time: the caller takes it before the next
             * frame is looked at (no mailbox overwrites under a flood). */
            if (net->udp_ready)
                return;
        } else if (ip[9] == PROTO_TCP)
            tcp_input(net, ip, ip + ihl, tot - ihl, f + 6);
        else
            net->rx_ignored++;
    }
}

int kit_net_arp(struct kit_net *net, uint32_t ip, uint8_t mac[6], uint64_t us)
{
    static const uint8_t zero[6];
    net->arp_ip = ip;
    net->arp_ok = false;
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    for (int tries = 0; ; tries++) {
        arp_send(net, 1, zero, ip, bcast);
        struct kit_deadline step;
        kit_deadline_set(&step, 200000);
        while (!kit_deadline_passed(&step)) {
            kit_net_poll(net);
            if (net->arp_ok) {
                memcpy(mac, net->arp_mac, 6);
                return 0;
            }
        }
        if (kit_deadline_passed(&dl))
            return KIT_NIC_ETIMEDOUT;
    }
}

int kit_net_ping(struct kit_net *net, uint32_t dst, uint16_t seq, uint64_t us)
{
    uint8_t mac[6];
    int r = route(net, dst, mac);
    if (r)
        return r;
    uint8_t f[128];
    uint8_t *icmp = f + 34;
    icmp[0] = 8;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, 0x4b49);   /* "KI" */
    put16(icmp + 6, seq);
    memcpy(icmp + 8, "vessel guest-kit ping", 21);
    put16(icmp + 2, (uint16_t)~csum_fold(csum_add(0, icmp, 29)));
    net->echo_seq = -1;
    r = ip_send(net, dst, PROTO_ICMP, f, 29, mac, 0, 0);
    if (r)
        return r;
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    while (!kit_deadline_passed(&dl)) {
        kit_net_poll(net);
        if (net->echo_seq == seq)
            return 0;
    }
    return KIT_NIC_ETIMEDOUT;
}

static int udp_send_mac(struct kit_net *net, uint32_t dst, const uint8_t mac[6], uint16_t sport,
                        uint16_t dport, const void *data, uint32_t len)
{
    uint8_t f[KIT_NIC_BUF];
    if (len > 1472)
        return -2;
    uint8_t *u = f + 34;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)(8 + len));
    put16(u + 6, 0);
    memcpy(u + 8, data, len);
    /* The pseudo-header: source, destination, protocol, UDP length. */
    uint8_t ph[12];
    put32(ph, net->ip);
    put32(ph + 4, dst);
    ph[8] = 0;
    ph[9] = PROTO_UDP;
    put16(ph + 10, (uint16_t)(8 + len));
    uint32_t sum = csum_add(0, ph, 12);
    if (net->offload) {
        /* The NIC sums the rest (virtio NEEDS_CSUM, e1000 TXSM). */
        put16(u + 6, csum_fold(sum));
        return ip_send(net, dst, PROTO_UDP, f, 8 + len, mac, 34, 6);
    }
    uint16_t c = (uint16_t)~csum_fold(csum_add(sum, u, 8 + len));
    put16(u + 6, c ? c : 0xffff);
    return ip_send(net, dst, PROTO_UDP, f, 8 + len, mac, 0, 0);
}

int kit_net_udp_send(struct kit_net *net, uint32_t dst, uint16_t sport, uint16_t dport,
                     const void *data, uint32_t len)
{
    uint8_t mac[6];
    int r = route(net, dst, mac);
    if (r)
        return r;
    return udp_send_mac(net, dst, mac, sport, dport, data, len);
}

int kit_net_udp_recv(struct kit_net *net, uint16_t port, void *buf, uint32_t max,
                     uint32_t *src, uint16_t *src_port, uint64_t us)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    for (;;) {
        if (net->udp_ready && net->udp_port == port) {
            net->udp_ready = false;
            uint32_t n = net->udp_len < max ? net->udp_len : max;
            memcpy(buf, net->udp_data, n);
            if (src)
                *src = net->udp_src;
            if (src_port)
                *src_port = net->udp_src_port;
            return (int)n;
        }
        net->udp_ready = false;
        if (kit_deadline_passed(&dl))
            return KIT_NIC_ETIMEDOUT;
        kit_net_poll(net);
    }
}

static int capture(struct kit_net *net, uint8_t *out, int r)
{
    net->capture = NULL;
    return r ? r : (int)net->capture_len;
}

int kit_net_build_udp(struct kit_net *net, uint32_t dst, uint16_t sport, uint16_t dport,
                      const void *data, uint32_t len, uint8_t *out)
{
    uint8_t mac[6];
    int r = route(net, dst, mac);
    if (r)
        return r;
    bool offload = net->offload;
    net->offload = false;
    net->capture = out;
    r = udp_send_mac(net, dst, mac, sport, dport, data, len);
    net->offload = offload;
    return capture(net, out, r);
}

int kit_net_build_ping(struct kit_net *net, uint32_t dst, uint16_t seq, uint8_t *out)
{
    uint8_t mac[6];
    int r = route(net, dst, mac);
    if (r)
        return r;
    uint8_t f[128];
    uint8_t *icmp = f + 34;
    icmp[0] = 8;
    icmp[1] = 0;
    put16(icmp + 2, 0);
    put16(icmp + 4, 0x4b49);
    put16(icmp + 6, seq);
    memcpy(icmp + 8, "vessel guest-kit ping", 21);
    put16(icmp + 2, (uint16_t)~csum_fold(csum_add(0, icmp, 29)));
    net->capture = out;
    r = ip_send(net, dst, PROTO_ICMP, f, 29, mac, 0, 0);
    return capture(net, out, r);
}

/* ---- DHCP ---- */

static int dhcp_send(struct kit_net *net, uint32_t xid, uint8_t type, uint32_t req_ip)
{
    uint8_t m[300];
    memset(m, 0, sizeof(m));
    m[0] = 1;               /* BOOTREQUEST */
    m[1] = 1;
    m[2] = 6;
    put32(m + 4, xid);
    put16(m + 10, 0x8000);  /* broadcast replies */
    memcpy(m + 28, net->nic->mac, 6);
    put32(m + 236, 0x63825363);
    uint8_t *o = m + 240;
    *o++ = 53; *o++ = 1; *o++ = type;
    if (req_ip) {
        *o++ = 50; *o++ = 4; put32(o, req_ip); o += 4;
        *o++ = 54; *o++ = 4; put32(o, net->server); o += 4;
    }
    *o++ = 55; *o++ = 3; *o++ = 1; *o++ = 3; *o++ = 6;
    *o++ = 255;
    uint32_t saved = net->ip;
    net->ip = 0;
    int r = udp_send_mac(net, 0xffffffff, bcast, DHCP_CLIENT, DHCP_SERVER, m, (uint32_t)(o - m));
    net->ip = saved;
    return r;
}

/* The reply's message type, with the offered address and options noted;
 * -1 when it is not for us. */
static int dhcp_parse(struct kit_net *net, const uint8_t *m, int len, uint32_t xid,
                      uint32_t *yiaddr)
{
    if (len < 240 || m[0] != 2 || get32(m + 4) != xid || get32(m + 236) != 0x63825363
        || memcmp(m + 28, net->nic->mac, 6))
        return -1;
    *yiaddr = get32(m + 16);
    int type = -1;
    for (int i = 240; i < len && m[i] != 255; ) {
        if (m[i] == 0) {
            i++;
            continue;
        }
        if (i + 2 > len || i + 2 + m[i + 1] > len)
            break;
        const uint8_t *v = m + i + 2;
        uint8_t ol = m[i + 1];
        if (m[i] == 53 && ol >= 1) type = v[0];
        if (m[i] == 1 && ol >= 4) net->mask = get32(v);
        if (m[i] == 3 && ol >= 4) net->router = get32(v);
        if (m[i] == 6 && ol >= 4) net->dns = get32(v);
        if (m[i] == 54 && ol >= 4) net->server = get32(v);
        i += 2 + ol;
    }
    return type;
}

int kit_net_dhcp(struct kit_net *net, uint64_t us)
{
    uint32_t xid = 0x4b495400 ^ (uint32_t)rdtsc();
    uint8_t m[600];
    uint32_t offered = 0, yi;
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    while (!kit_deadline_passed(&dl)) {
        int r = dhcp_send(net, xid, offered ? 3 : 1, offered);
        if (r)
            return r;
        int n = kit_net_udp_recv(net, DHCP_CLIENT, m, sizeof(m), NULL, NULL, 500000);
        if (n < 0)
            continue;
        int type = dhcp_parse(net, m, n, xid, &yi);
        if (type == 2 && !offered)
            offered = yi;                      /* OFFER: now REQUEST it */
        else if (type == 5 && offered && yi == offered) {
            net->ip = yi;                      /* ACK */
            if (!net->mask)
                net->mask = 0xffffff00;
            return 0;
        } else if (type == 6)
            offered = 0;                       /* NAK: start over */
    }
    return KIT_NIC_ETIMEDOUT;
}
