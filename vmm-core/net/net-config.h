/* A NIC as a user configures it: the model, its MAC address, its back end
 * and boot ROM. Parsed from vessel-run's --net and shared by every front
 * end.
 *
 *   user[,model=virtio|e1000][,mac=52:54:00:12:34:56]
 *       [,hostfwd=tcp|udp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT]...
 *       [,restrict=on|off][,romfile=PATH|none][,bootfile=URL]
 *
 * HOSTADDR defaults to 127.0.0.1 (forwards are for the local user, not the
 * LAN), GUESTADDR to 10.0.2.15 (the address slirp's DHCP hands out). */
#pragma once

#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_NET_MAX_HOSTFWD 16

typedef enum {
  VMM_NIC_VIRTIO, /* virtio-net, PCI 1af4:1041 */
  VMM_NIC_E1000,  /* Intel 82540EM, PCI 8086:100e */
} vmm_nic_model;

typedef struct vmm_net_hostfwd {
  bool udp;
  struct in_addr host_addr;
  uint16_t host_port;
  struct in_addr guest_addr;
  uint16_t guest_port;
} vmm_net_hostfwd;

typedef struct vmm_nic_config {
  vmm_nic_model model;
  bool has_mac; /* false: the machine picks 52:54:00:12:34:(56 + index) */
  uint8_t mac[6];
  bool restricted; /* the guest reaches nothing outside; forwards work */
  unsigned n_hostfwd;
  vmm_net_hostfwd hostfwd[VMM_NET_MAX_HOSTFWD];
  char *romfile;  /* NULL: Debian's iPXE ROM when installed; "" none */
  char *bootfile; /* DHCP boot file name (e.g. an http:// iPXE script) */
} vmm_nic_config;

gboolean vmm_nic_config_parse (const char *spec, vmm_nic_config *out,
                               GError **error);
gboolean vmm_net_hostfwd_parse (const char *spec, vmm_net_hostfwd *out,
                                GError **error);
void vmm_nic_config_copy (vmm_nic_config *dst, const vmm_nic_config *src);
void vmm_nic_config_clear (vmm_nic_config *cfg);
const char *vmm_nic_model_name (vmm_nic_model model);

G_END_DECLS
