/* The user-mode (NAT) back end over libslirp: the guest network 10.0.2.0/24
 * with the host at 10.0.2.2, DNS forwarded to the host's resolver at
 * 10.0.2.3, DHCP handing out 10.0.2.15 and up, host-to-guest forwards, and
 * a restrict mode (slirp's "restricted": nothing outside is reachable, the
 * forwards still work). IPv4 only.
 *
 * libslirp runs on the engine's I/O thread alone: its sockets are polled by
 * a GSource on @io (slirp_pollfds_fill in prepare, slirp_pollfds_poll in
 * dispatch), its timers are GSources there too, and frames from the guest
 * come in through the port's send on that thread. */
#pragma once

#include "vmm-core/net/net-config.h"
#include "vmm-core/net/net.h"

G_BEGIN_DECLS

#define VMM_NET_USER_NETWORK "10.0.2.0"
#define VMM_NET_USER_HOST "10.0.2.2"
#define VMM_NET_USER_DNS "10.0.2.3"
#define VMM_NET_USER_GUEST "10.0.2.15"

/* Binds the forwards' host sockets now, so that a port in use fails here. */
vmm_net_backend *vmm_net_slirp_new (GMainContext *io,
                                    const vmm_nic_config *cfg,
                                    GError **error);

G_END_DECLS
