/* Parsing --net specs. Behaviour: see net-config.h. */
#include "vmm-core/net/net-config.h"

#include <arpa/inet.h>
#include <gio/gio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
vmm_nic_model_name (vmm_nic_model model)
{
  return model == VMM_NIC_E1000 ? "e1000" : "virtio";
}

static gboolean
parse_port (const char *s, uint16_t *out)
{
  char *end;
  if (!*s || !g_ascii_isdigit (*s))
    return FALSE;
  unsigned long v = strtoul (s, &end, 10);
  if (*end || v == 0 || v > 65535)
    return FALSE;
  *out = (uint16_t) v;
  return TRUE;
}

/* [ADDR]:PORT with @def for an empty ADDR. */
static gboolean
parse_addr_port (const char *s, const char *def, struct in_addr *addr,
                 uint16_t *port)
{
  const char *colon = strrchr (s, ':');
  if (!colon)
    return FALSE;
  g_autofree char *a = g_strndup (s, colon - s);
  if (inet_pton (AF_INET, *a ? a : def, addr) != 1)
    return FALSE;
  return parse_port (colon + 1, port);
}

gboolean
vmm_net_hostfwd_parse (const char *spec, vmm_net_hostfwd *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_autofree char *host = NULL;
  const char *rest;
  if (g_str_has_prefix (spec, "tcp:"))
    rest = spec + 4;
  else if (g_str_has_prefix (spec, "udp:"))
    {
      out->udp = true;
      rest = spec + 4;
    }
  else
    goto bad;
  const char *dash = strchr (rest, '-');
  if (!dash)
    goto bad;
  host = g_strndup (rest, dash - rest);
  if (!parse_addr_port (host, "127.0.0.1", &out->host_addr, &out->host_port)
      || !parse_addr_port (dash + 1, "10.0.2.15", &out->guest_addr,
                           &out->guest_port))
    goto bad;
  return TRUE;
bad:
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
               "hostfwd=%s is not tcp|udp:[HOSTADDR]:HOSTPORT-"
               "[GUESTADDR]:GUESTPORT", spec);
  return FALSE;
}

static gboolean
parse_mac (const char *s, uint8_t mac[6])
{
  unsigned v[6];
  char tail;
  if (sscanf (s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
              &v[4], &v[5], &tail) != 6 || strlen (s) != 17)
    return FALSE;
  for (int i = 0; i < 6; i++)
    mac[i] = (uint8_t) v[i];
  /* A station address: not multicast (bit 0 of the first octet). */
  return !(mac[0] & 1);
}

gboolean
vmm_nic_config_parse (const char *spec, vmm_nic_config *out, GError **error)
{
  memset (out, 0, sizeof *out);
  g_auto (GStrv) parts = g_strsplit (spec, ",", -1);
  if (!parts[0] || strcmp (parts[0], "user") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "'%s': the only network back end is user", spec);
      return FALSE;
    }
  for (size_t i = 1; parts[i]; i++)
    {
      const char *o = parts[i];
      const char *eq = strchr (o, '=');
      const char *v = eq ? eq + 1 : "";
      size_t klen = eq ? (size_t) (eq - o) : strlen (o);
#define KEY(k) (klen == strlen (k) && strncmp (o, k, klen) == 0)
      if (KEY ("model") && strcmp (v, "virtio") == 0)
        out->model = VMM_NIC_VIRTIO;
      else if (KEY ("model") && strcmp (v, "e1000") == 0)
        out->model = VMM_NIC_E1000;
      else if (KEY ("mac") && parse_mac (v, out->mac))
        out->has_mac = true;
      else if (KEY ("restrict") && (strcmp (v, "on") == 0
                                    || strcmp (v, "yes") == 0))
        out->restricted = true;
      else if (KEY ("restrict") && (strcmp (v, "off") == 0
                                    || strcmp (v, "no") == 0))
        out->restricted = false;
      else if (KEY ("hostfwd"))
        {
          if (out->n_hostfwd == VMM_NET_MAX_HOSTFWD)
            {
              g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                           "at most %d hostfwd= per NIC",
                           VMM_NET_MAX_HOSTFWD);
              goto fail;
            }
          if (!vmm_net_hostfwd_parse (v, &out->hostfwd[out->n_hostfwd],
                                      error))
            goto fail;
          out->n_hostfwd++;
        }
      else if (KEY ("romfile") && *v)
        {
          g_free (out->romfile);
          out->romfile = g_strdup (strcmp (v, "none") == 0 ? "" : v);
        }
      else if (KEY ("bootfile") && *v)
        {
          g_free (out->bootfile);
          out->bootfile = g_strdup (v);
        }
      else
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "'%s' is not model=virtio|e1000, mac=XX:XX:XX:XX:XX:XX "
                       "(unicast), hostfwd=..., restrict=on|off, "
                       "romfile=PATH|none or bootfile=NAME", o);
          goto fail;
        }
#undef KEY
    }
  return TRUE;
fail:
  vmm_nic_config_clear (out);
  return FALSE;
}

void
vmm_nic_config_copy (vmm_nic_config *dst, const vmm_nic_config *src)
{
  *dst = *src;
  dst->romfile = g_strdup (src->romfile);
  dst->bootfile = g_strdup (src->bootfile);
}

void
vmm_nic_config_clear (vmm_nic_config *cfg)
{
  g_clear_pointer (&cfg->romfile, g_free);
  g_clear_pointer (&cfg->bootfile, g_free);
}
