/* --net specs: vmm_nic_config_parse() and vmm_net_hostfwd_parse(). */
#include <arpa/inet.h>
#include <gio/gio.h>

#include "vmm-core/net/net-config.h"

static const char *
ip (struct in_addr a, char *buf)
{
  return inet_ntop (AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static void
test_defaults (void)
{
  vmm_nic_config c;
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_nic_config_parse ("user", &c, &error));
  g_assert_cmpint (c.model, ==, VMM_NIC_VIRTIO);
  g_assert_false (c.has_mac);
  g_assert_false (c.restricted);
  g_assert_cmpuint (c.n_hostfwd, ==, 0);
  g_assert_null (c.romfile);
  g_assert_null (c.bootfile);
  vmm_nic_config_clear (&c);
}

static void
test_full (void)
{
  vmm_nic_config c, d;
  char a[INET_ADDRSTRLEN];
  g_autoptr (GError) error = NULL;
  g_assert_true (vmm_nic_config_parse (
      "user,model=e1000,mac=52:54:00:ab:cd:EF,hostfwd=tcp:127.0.0.1:2222-:22,"
      "hostfwd=udp::5353-10.0.2.16:53,hostfwd=tcp:0.0.0.0:8080-10.0.2.15:80,"
      "restrict=on,romfile=none,bootfile=http://10.0.2.2/boot.ipxe",
      &c, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.model, ==, VMM_NIC_E1000);
  g_assert_true (c.has_mac);
  g_assert_cmphex (c.mac[3], ==, 0xab);
  g_assert_cmphex (c.mac[5], ==, 0xef);
  g_assert_true (c.restricted);
  g_assert_cmpstr (c.romfile, ==, "");
  g_assert_cmpstr (c.bootfile, ==, "http://10.0.2.2/boot.ipxe");
  g_assert_cmpuint (c.n_hostfwd, ==, 3);
  g_assert_false (c.hostfwd[0].udp);
  g_assert_cmpstr (ip (c.hostfwd[0].host_addr, a), ==, "127.0.0.1");
  g_assert_cmpuint (c.hostfwd[0].host_port, ==, 2222);
  g_assert_cmpstr (ip (c.hostfwd[0].guest_addr, a), ==, "10.0.2.15");
  g_assert_cmpuint (c.hostfwd[0].guest_port, ==, 22);
  g_assert_true (c.hostfwd[1].udp);
  g_assert_cmpstr (ip (c.hostfwd[1].host_addr, a), ==, "127.0.0.1");
  g_assert_cmpstr (ip (c.hostfwd[1].guest_addr, a), ==, "10.0.2.16");
  g_assert_cmpstr (ip (c.hostfwd[2].host_addr, a), ==, "0.0.0.0");
  vmm_nic_config_copy (&d, &c);
  vmm_nic_config_clear (&c);
  g_assert_cmpstr (d.bootfile, ==, "http://10.0.2.2/boot.ipxe");
  vmm_nic_config_clear (&d);
}

static void
test_bad (void)
{
  static const char *const bad[] = {
    "", "tap", "user,", "user,model=rtl8139", "user,mac=52:54:00:12:34",
    "user,mac=01:00:5e:00:00:01", "user,mac=52:54:00:12:34:56:78",
    "user,mac=zz:54:00:12:34:56", "user,hostfwd=tcp:2222-22",
    "user,hostfwd=sctp::1-:2", "user,hostfwd=tcp::0-:22",
    "user,hostfwd=tcp::70000-:22", "user,hostfwd=tcp::22-:",
    "user,hostfwd=tcp:1.2.3:22-:22", "user,hostfwd=tcp::22-10.0.2:22",
    "user,restrict=maybe", "user,romfile=", "user,bogus=1", "user,restrict",
  };
  for (size_t i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      vmm_nic_config c;
      g_autoptr (GError) error = NULL;
      g_assert_false (vmm_nic_config_parse (bad[i], &c, &error));
      g_assert_nonnull (error);
      g_assert_null (c.romfile);
    }
  /* At most VMM_NET_MAX_HOSTFWD forwards. */
  g_autoptr (GString) s = g_string_new ("user");
  for (int i = 0; i <= VMM_NET_MAX_HOSTFWD; i++)
    g_string_append_printf (s, ",hostfwd=tcp::%d-:22", 2000 + i);
  vmm_nic_config c;
  g_autoptr (GError) error = NULL;
  g_assert_false (vmm_nic_config_parse (s->str, &c, &error));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/net-config/defaults", test_defaults);
  g_test_add_func ("/net-config/full", test_full);
  g_test_add_func ("/net-config/bad", test_bad);
  return g_test_run ();
}
