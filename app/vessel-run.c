/* vessel-run: the headless front end. Builds a machine from flags, runs it
 * until the guest powers off (exit 0) or something fails (one line on
 * stderr, non-zero exit). */
#include "display/spice.h"
#include "display/vnc.h"
#include "vmm-core/control/qmp.h"
#include "vmm-core/devices/pflash.h"
#include "vmm-core/kvm/cpu-features.h"
#include "vmm-core/machine/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <glib-unix.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define EXIT_GUEST_ERROR 1
#define EXIT_USAGE 2

typedef struct run_output {
  int fd;
  bool owned;
} run_output;

typedef struct run {
  GMainLoop *loop;
  vmm_machine *machine;
  vmm_qmp_server *control;
  display_vnc *vnc;
  display_spice *spice;
  int status;
  run_output serial;
  run_output debugcon;
  guint stdin_watch;
  bool stdin_eof;
  uint8_t pending[256]; /* stdin bytes the UART had no room for yet */
  size_t npending;
} run;

static void G_GNUC_PRINTF (1, 2)
die_usage (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fputs ("vessel-run: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  exit (EXIT_USAGE);
}

static void
output_write (void *opaque, const uint8_t *buf, size_t len)
{
  run_output *o = opaque;
  while (len > 0)
    {
      ssize_t n = write (o->fd, buf, len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return; /* a closed pipe loses guest output, not the guest */
      buf += n;
      len -= (size_t) n;
    }
}

/* stdio | file:PATH | none */
static void
parse_output (const char *flag, const char *spec, bool allow_stdio,
              run_output *out)
{
  out->fd = -1;
  out->owned = false;
  if (!spec || strcmp (spec, "none") == 0)
    return;
  if (allow_stdio && strcmp (spec, "stdio") == 0)
    {
      out->fd = STDOUT_FILENO;
      return;
    }
  if (g_str_has_prefix (spec, "file:") && spec[5])
    {
      out->fd = open (spec + 5, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (out->fd < 0)
        die_usage ("%s %s: %s", flag, spec + 5, g_strerror (errno));
      out->owned = true;
      return;
    }
  die_usage ("%s: '%s' is not %s, file:PATH or none", flag, spec,
             allow_stdio ? "stdio" : "a destination:");
}

/* PATH[,format=raw|qcow2][,if=ide|virtio][,readonly] */
static void
parse_disk (const char *spec, vmm_disk_config *d)
{
  g_auto (GStrv) parts = g_strsplit (spec, ",", -1);
  if (!parts[0] || !parts[0][0])
    die_usage ("--disk: '%s' names no file", spec);
  d->path = g_strdup (parts[0]);
  d->format = NULL;
  d->interface = VMM_DISK_VIRTIO;
  d->readonly = false;
  for (size_t i = 1; parts[i]; i++)
    {
      const char *o = parts[i];
      if (strcmp (o, "format=raw") == 0 || strcmp (o, "format=qcow2") == 0)
        d->format = g_strdup (o + strlen ("format="));
      else if (strcmp (o, "if=ide") == 0)
        d->interface = VMM_DISK_IDE;
      else if (strcmp (o, "if=virtio") == 0)
        d->interface = VMM_DISK_VIRTIO;
      else if (strcmp (o, "readonly") == 0 || strcmp (o, "readonly=on") == 0)
        d->readonly = true;
      else if (strcmp (o, "cache=none") == 0)
        d->direct = true;
      else if (strcmp (o, "cache=writeback") == 0)
        d->direct = false;
      else
        die_usage ("--disk %s: '%s' is not format=raw|qcow2, if=ide|virtio, "
                   "cache=none|writeback or readonly", spec, o);
    }
  if (!g_file_test (d->path, G_FILE_TEST_IS_REGULAR))
    die_usage ("--disk %s: no such file", d->path);
}

/* 512, 512M, 4G, 1T (a bare number is MiB, as in QEMU). */
static uint64_t
parse_size (const char *flag, const char *s)
{
  char *end = NULL;
  errno = 0;
  guint64 v = g_ascii_strtoull (s, &end, 10);
  if (errno || end == s)
    die_usage ("%s: '%s' is not a size (use e.g. 512M or 4G)", flag, s);
  unsigned shift;
  switch (g_ascii_toupper (*end))
    {
    case '\0':
    case 'M':
      shift = 20;
      break;
    case 'K':
      shift = 10;
      break;
    case 'G':
      shift = 30;
      break;
    case 'T':
      shift = 40;
      break;
    default:
      die_usage ("%s: '%s' is not a size (use e.g. 512M or 4G)", flag, s);
    }
  if (*end && end[1] && !(g_ascii_toupper (end[1]) == 'B' && !end[2])
      && !(g_ascii_toupper (end[1]) == 'I' && g_ascii_toupper (end[2]) == 'B'
           && !end[3]))
    die_usage ("%s: '%s' is not a size (use e.g. 512M or 4G)", flag, s);
  if (v == 0 || v > (UINT64_C (1) << (50 - shift)))
    die_usage ("%s: %s is out of range", flag, s);
  return v << shift;
}

static void
on_state_main (vmm_machine *m, vmm_machine_state state, run *r)
{
  if (state == VMM_MACHINE_POWERED_OFF)
    {
      r->status = 0;
      g_main_loop_quit (r->loop);
    }
  else if (state == VMM_MACHINE_ERROR)
    {
      g_autofree char *e = vmm_machine_get_error (m);
      fprintf (stderr, "vessel-run: %s\n", e ? e : "the machine failed");
      r->status = EXIT_GUEST_ERROR;
      g_main_loop_quit (r->loop);
    }
}

typedef struct state_msg {
  run *r;
  vmm_machine_state state;
} state_msg;

static gboolean
state_msg_dispatch (gpointer data)
{
  state_msg *msg = data;
  on_state_main (msg->r->machine, msg->state, msg->r);
  return G_SOURCE_REMOVE;
}

/* From the engine's I/O thread to the main loop. */
static void
on_state (vmm_machine *m, vmm_machine_state state, void *opaque)
{
  state_msg *msg = g_new (state_msg, 1);
  msg->r = opaque;
  msg->state = state;
  g_main_context_invoke_full (NULL, G_PRIORITY_DEFAULT, state_msg_dispatch,
                              msg, g_free);
}

static gboolean on_stdin (gint fd, GIOCondition cond, gpointer data);

static void
stdin_flush_pending (run *r)
{
  if (r->npending)
    {
      size_t n = vmm_machine_serial_receive (r->machine, r->pending,
                                             r->npending);
      memmove (r->pending, r->pending + n, r->npending - n);
      r->npending -= n;
    }
  if (!r->npending && !r->stdin_watch && !r->stdin_eof)
    r->stdin_watch = g_unix_fd_add (STDIN_FILENO, G_IO_IN | G_IO_HUP,
                                    on_stdin, r);
}

static gboolean
on_stdin (gint fd, GIOCondition cond, gpointer data)
{
  run *r = data;
  ssize_t n = read (fd, r->pending, sizeof r->pending);
  if (n <= 0)
    {
      if (n < 0 && errno == EINTR)
        return G_SOURCE_CONTINUE;
      r->stdin_eof = true;
      r->stdin_watch = 0;
      return G_SOURCE_REMOVE;
    }
  r->npending = (size_t) n;
  size_t took = vmm_machine_serial_receive (r->machine, r->pending,
                                            r->npending);
  memmove (r->pending, r->pending + took, r->npending - took);
  r->npending -= took;
  if (r->npending)
    {
      /* Wait for the guest to drain its FIFO. */
      r->stdin_watch = 0;
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

static gboolean
serial_ready_main (gpointer data)
{
  stdin_flush_pending (data);
  return G_SOURCE_REMOVE;
}

static void
on_serial_ready (void *opaque)
{
  g_main_context_invoke (NULL, serial_ready_main, opaque);
}

static gboolean
on_signal (gpointer data)
{
  run *r = data;
  fprintf (stderr, "vessel-run: stopping on a signal\n");
  r->status = 0;
  g_main_loop_quit (r->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
quit_main (gpointer data)
{
  run *r = data;
  r->status = 0;
  g_main_loop_quit (r->loop);
  return G_SOURCE_REMOVE;
}

/* QMP query-vnc (on the I/O thread). */
static JsonObject *
on_query_vnc (void *opaque)
{
  display_vnc_info *info = display_vnc_query (opaque);
  JsonObject *o = json_object_new ();
  json_object_set_boolean_member (o, "enabled", TRUE);
  json_object_set_string_member (o, "host", info->host);
  json_object_set_string_member (o, "service", info->service);
  json_object_set_string_member (o, "family", info->family);
  json_object_set_string_member (o, "auth", info->auth);
  JsonArray *clients = json_array_new ();
  for (guint i = 0; i < info->clients->len; i++)
    {
      display_vnc_client_info *ci = info->clients->pdata[i];
      JsonObject *c = json_object_new ();
      json_object_set_string_member (c, "host", ci->host);
      json_object_set_string_member (c, "service", ci->service);
      json_object_set_string_member (c, "family", ci->family);
      json_object_set_boolean_member (c, "websocket", FALSE);
      json_array_add_object_element (clients, c);
    }
  json_object_set_array_member (o, "clients", clients);
  display_vnc_info_free (info);
  return o;
}

/* QMP query-spice (on the I/O thread). */
static JsonObject *
on_query_spice (void *opaque)
{
  display_spice_info *info = display_spice_query (opaque);
  JsonObject *o = json_object_new ();
  json_object_set_boolean_member (o, "enabled", TRUE);
  json_object_set_boolean_member (o, "migrated", FALSE);
  json_object_set_string_member (o, "host", info->host);
  json_object_set_int_member (o, "port", info->port);
  json_object_set_string_member (o, "auth", info->auth);
  json_object_set_string_member (o, "compiled-version",
                                 info->compiled_version);
  json_object_set_string_member (o, "mouse-mode", info->mouse_mode);
  JsonArray *channels = json_array_new ();
  for (guint i = 0; i < info->channels->len; i++)
    {
      display_spice_channel_info *ci = info->channels->pdata[i];
      JsonObject *c = json_object_new ();
      json_object_set_string_member (c, "host", ci->host);
      json_object_set_string_member (c, "port", ci->port);
      json_object_set_string_member (c, "family", ci->family);
      json_object_set_int_member (c, "connection-id", ci->connection_id);
      json_object_set_int_member (c, "channel-type", ci->channel_type);
      json_object_set_int_member (c, "channel-id", ci->channel_id);
      json_object_set_boolean_member (c, "tls", FALSE);
      json_array_add_object_element (channels, c);
    }
  json_object_set_array_member (o, "channels", channels);
  display_spice_info_free (info);
  return o;
}

/* A control client sent quit (from the I/O thread). */
static void
on_control_quit (void *opaque)
{
  g_main_context_invoke (NULL, quit_main, opaque);
}

/* SIGUSR1: where is every vCPU? */
static gboolean
on_usr1 (gpointer data)
{
  run *r = data;
  g_autofree char *where = vmm_machine_describe_cpus (r->machine);
  fputs (where, stderr);
  return G_SOURCE_CONTINUE;
}

int
main (int argc, char **argv)
{
  g_autofree char *memory = NULL, *firmware = NULL, *kernel = NULL;
  g_autofree char *firmware_vars = NULL;
  g_autofree char *initrd = NULL, *append = NULL, *serial = NULL;
  g_autofree char *debugcon = NULL, *kernel_entry = NULL, *cpu = NULL;
  g_auto (GStrv) disk_specs = NULL;
  g_auto (GStrv) net_specs = NULL;
  g_autofree char *cdrom = NULL, *boot = NULL, *control = NULL;
  g_autofree char *display = NULL, *vnc = NULL, *spice = NULL;
  g_autofree char *tablet = NULL;
  int cpus = 1;
  int boot_menu_wait = 0;
  gboolean sercon = FALSE, boot_menu = FALSE;
  GOptionEntry entries[] = {
    { "memory", 'm', 0, G_OPTION_ARG_STRING, &memory,
      "Guest memory, e.g. 512M or 4G (default 512M)", "SIZE" },
    { "cpus", 0, 0, G_OPTION_ARG_INT, &cpus, "Number of vCPUs (default 1)",
      "N" },
    { "cpu", 0, 0, G_OPTION_ARG_STRING, &cpu,
      "CPU model: host, or host with features hidden, e.g. host,-cx16",
      "MODEL" },
    { "firmware", 0, 0, G_OPTION_ARG_FILENAME, &firmware,
      "Firmware image: SeaBIOS, or OVMF's code (default: the installed "
      "SeaBIOS)", "PATH" },
    { "firmware-vars", 0, 0, G_OPTION_ARG_FILENAME, &firmware_vars,
      "UEFI variable store (a copy of OVMF_VARS.fd), a flash below the "
      "firmware; written back to this file", "VARS" },
    { "kernel", 0, 0, G_OPTION_ARG_FILENAME, &kernel,
      "Boot a Linux bzImage, PVH or multiboot kernel directly", "K" },
    { "initrd", 0, 0, G_OPTION_ARG_FILENAME, &initrd,
      "Initial ramdisk (or multiboot module) for --kernel", "I" },
    { "append", 0, 0, G_OPTION_ARG_STRING, &append,
      "Kernel command line for --kernel", "STR" },
    { "kernel-entry", 0, 0, G_OPTION_ARG_STRING, &kernel_entry,
      "How to enter --kernel: auto, linux, pvh or multiboot", "HOW" },
    { "disk", 0, 0, G_OPTION_ARG_STRING_ARRAY, &disk_specs,
      "A disk image (repeatable): PATH[,format=raw|qcow2][,if=ide|virtio]"
      "[,cache=none|writeback][,readonly]; virtio unless if=ide", "SPEC" },
    { "net", 0, 0, G_OPTION_ARG_STRING_ARRAY, &net_specs,
      "A NIC on a user-mode network (repeatable): user[,model=virtio|e1000]"
      "[,mac=52:54:00:12:34:56][,hostfwd=tcp|udp:[HOSTADDR]:PORT-"
      "[GUESTADDR]:PORT]...[,restrict=on|off][,romfile=PATH|none]"
      "[,bootfile=NAME]", "SPEC" },
    { "cdrom", 0, 0, G_OPTION_ARG_FILENAME, &cdrom,
      "An ISO image in the CD-ROM drive", "ISO" },
    { "boot", 0, 0, G_OPTION_ARG_STRING, &boot,
      "What firmware boots first: cdrom or disk", "cdrom|disk" },
    { "display", 0, 0, G_OPTION_ARG_STRING, &display,
      "The display device: std (Bochs/std VGA, the default) or none",
      "std|none" },
    { "tablet", 0, 0, G_OPTION_ARG_STRING, &tablet,
      "A virtio tablet for an absolute pointer (PCI 00:14.0, with the std "
      "display): on (the default) or off", "on|off" },
    { "serial", 0, 0, G_OPTION_ARG_STRING, &serial,
      "COM1: stdio, file:PATH or none (default stdio)", "DEST" },
    { "debugcon", 0, 0, G_OPTION_ARG_STRING, &debugcon,
      "Debug console at port 0x402: stdio, file:PATH or none", "DEST" },
    { "firmware-serial-console", 0, 0, G_OPTION_ARG_NONE, &sercon,
      "Ask SeaBIOS to mirror its screen on COM1", NULL },
    { "boot-menu", 0, 0, G_OPTION_ARG_NONE, &boot_menu,
      "Let SeaBIOS offer its boot menu", NULL },
    { "boot-menu-wait", 0, 0, G_OPTION_ARG_INT, &boot_menu_wait,
      "How long SeaBIOS waits for the boot-menu key (default 2500)", "MS" },
    { "control", 0, 0, G_OPTION_ARG_FILENAME, &control,
      "Listen for QMP commands on this UNIX socket", "PATH" },
    { "vnc", 0, 0, G_OPTION_ARG_STRING, &vnc,
      "Show the screen to VNC clients: ADDR:PORT or :N (port 5900+N on "
      "127.0.0.1), with ,password-file=F for VNC authentication",
      "ADDR:PORT[,password-file=F]" },
    { "spice", 0, 0, G_OPTION_ARG_STRING, &spice,
      "Show the screen to SPICE clients on ADDR:PORT (ADDR defaults to "
      "127.0.0.1), with ,password-file=F for a SPICE ticket",
      "ADDR:PORT[,password-file=F]" },
    { NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new (NULL);
  g_option_context_set_summary (ctx, "Run a virtual machine without a "
                                     "window.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr (GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    die_usage ("%s", error->message);
  if (argc > 1)
    die_usage ("unexpected argument '%s'", argv[1]);
  if (boot_menu_wait < 0 || boot_menu_wait > 65535)
    die_usage ("--boot-menu-wait: %d is out of range (0 to 65535 ms)",
               boot_menu_wait);
  if (cpus < 1 || cpus > 64)
    die_usage ("--cpus: %d is out of range (1 to 64)", cpus);
  if ((initrd || append) && !kernel)
    die_usage ("--initrd and --append need --kernel");
  if (firmware && kernel)
    die_usage ("--firmware and --kernel exclude each other");

  vmm_kernel_protocol protocol = VMM_KERNEL_AUTO;
  if (kernel_entry)
    {
      if (strcmp (kernel_entry, "linux") == 0)
        protocol = VMM_KERNEL_LINUX;
      else if (strcmp (kernel_entry, "pvh") == 0)
        protocol = VMM_KERNEL_PVH;
      else if (strcmp (kernel_entry, "multiboot") == 0)
        protocol = VMM_KERNEL_MULTIBOOT;
      else if (strcmp (kernel_entry, "auto") != 0)
        die_usage ("--kernel-entry: '%s' is not auto, linux, pvh or "
                   "multiboot", kernel_entry);
    }
  if (cpu)
    {
      g_autoptr (GArray) patches
          = g_array_new (FALSE, FALSE, sizeof (vmm_cpu_feature_patch));
      if (!vmm_cpu_features_parse (cpu, patches, &error))
        die_usage ("--cpu: %s", error->message);
    }
  vmm_boot_device boot_device = VMM_BOOT_DEFAULT;
  if (boot)
    {
      if (strcmp (boot, "cdrom") == 0 || strcmp (boot, "d") == 0)
        boot_device = VMM_BOOT_CDROM;
      else if (strcmp (boot, "disk") == 0 || strcmp (boot, "c") == 0)
        boot_device = VMM_BOOT_DISK;
      else
        die_usage ("--boot: '%s' is not cdrom or disk", boot);
    }
  vmm_display_kind display_kind = VMM_DISPLAY_STD;
  if (display)
    {
      if (strcmp (display, "none") == 0)
        display_kind = VMM_DISPLAY_NONE;
      else if (strcmp (display, "std") != 0)
        die_usage ("--display: '%s' is not std or none", display);
    }
  bool disable_tablet = false;
  if (tablet)
    {
      if (strcmp (tablet, "off") == 0)
        disable_tablet = true;
      else if (strcmp (tablet, "on") != 0)
        die_usage ("--tablet: '%s' is not on or off", tablet);
    }
  display_vnc_spec vnc_spec = { 0 };
  g_autofree char *vnc_password = NULL;
  if (vnc)
    {
      if (!display_vnc_spec_parse (vnc, &vnc_spec, &error))
        die_usage ("--vnc: %s", error->message);
      if (display_kind == VMM_DISPLAY_NONE)
        die_usage ("--vnc needs a display (not --display none)");
      if (vnc_spec.password_file)
        {
          vnc_password = display_vnc_read_password (vnc_spec.password_file,
                                                    &error);
          if (!vnc_password)
            die_usage ("--vnc: %s", error->message);
        }
    }
  display_spice_spec spice_spec = { 0 };
  g_autofree char *spice_password = NULL;
  if (spice)
    {
      if (!display_spice_spec_parse (spice, &spice_spec, &error))
        die_usage ("--spice: %s", error->message);
      if (display_kind == VMM_DISPLAY_NONE)
        die_usage ("--spice needs a display (not --display none)");
      if (spice_spec.password_file)
        {
          spice_password = display_spice_read_password (
              spice_spec.password_file, &error);
          if (!spice_password)
            die_usage ("--spice: %s", error->message);
        }
    }
  size_t n_disks = disk_specs ? g_strv_length (disk_specs) : 0;
  if (n_disks > VMM_MACHINE_MAX_DISKS)
    die_usage ("--disk: at most %d disks", VMM_MACHINE_MAX_DISKS);
  vmm_disk_config disks[VMM_MACHINE_MAX_DISKS] = { 0 };
  for (size_t i = 0; i < n_disks; i++)
    parse_disk (disk_specs[i], &disks[i]);
  size_t n_nics = net_specs ? g_strv_length (net_specs) : 0;
  if (n_nics > VMM_MACHINE_MAX_NICS)
    die_usage ("--net: at most %d NICs", VMM_MACHINE_MAX_NICS);
  vmm_nic_config nics[VMM_MACHINE_MAX_NICS] = { 0 };
  for (size_t i = 0; i < n_nics; i++)
    {
      if (!vmm_nic_config_parse (net_specs[i], &nics[i], &error))
        die_usage ("--net %s: %s", net_specs[i], error->message);
      if (nics[i].romfile && nics[i].romfile[0]
          && !g_file_test (nics[i].romfile, G_FILE_TEST_IS_REGULAR))
        die_usage ("--net %s: romfile %s: no such file", net_specs[i],
                   nics[i].romfile);
    }
  if (cdrom && !g_file_test (cdrom, G_FILE_TEST_IS_REGULAR))
    die_usage ("--cdrom %s: no such file", cdrom);
  if (firmware && !g_file_test (firmware, G_FILE_TEST_IS_REGULAR))
    die_usage ("--firmware %s: no such file", firmware);
  if (firmware_vars && !pflash_check_file (firmware_vars, false, NULL, &error))
    die_usage ("--firmware-vars: %s", error->message);
  if (kernel && !g_file_test (kernel, G_FILE_TEST_IS_REGULAR))
    die_usage ("--kernel %s: no such file", kernel);
  if (initrd && !g_file_test (initrd, G_FILE_TEST_IS_REGULAR))
    die_usage ("--initrd %s: no such file", initrd);

  run r = { .status = EXIT_GUEST_ERROR };
  parse_output ("--serial", serial ? serial : "stdio", true, &r.serial);
  parse_output ("--debugcon", debugcon, true, &r.debugcon);

  vmm_machine_config cfg = {
    .memory = memory ? parse_size ("--memory", memory) : (UINT64_C (512) << 20),
    .cpus = (unsigned) cpus,
    .cpu_model = cpu,
    .firmware = firmware,
    .firmware_vars = firmware_vars,
    .kernel = kernel,
    .initrd = initrd,
    .cmdline = append,
    .kernel_protocol = protocol,
    .firmware_serial_console = sercon,
    .boot_menu = boot_menu,
    .boot_menu_wait_ms = (unsigned) boot_menu_wait,
    .disks = disks,
    .n_disks = n_disks,
    .cdrom = cdrom,
    .boot = boot_device,
    .display = display_kind,
    .disable_tablet = disable_tablet,
    .nics = nics,
    .n_nics = n_nics,
  };
  if (r.serial.fd >= 0)
    cfg.serial = (vmm_chardev) { output_write, &r.serial };
  if (r.debugcon.fd >= 0)
    cfg.debugcon = (vmm_chardev) { output_write, &r.debugcon };

  r.machine = vmm_machine_new (&cfg, &error);
  if (!r.machine)
    {
      fprintf (stderr, "vessel-run: %s\n", error->message);
      goto out;
    }
  r.loop = g_main_loop_new (NULL, FALSE);
  vmm_machine_set_state_callback (r.machine, on_state, &r);
  if (vnc)
    {
      /* A client that hangs up must not end the program. */
      signal (SIGPIPE, SIG_IGN);
      r.vnc = display_vnc_new (vmm_machine_display (r.machine),
                               vmm_machine_input (r.machine), vnc_spec.host,
                               vnc_spec.port, vnc_password, &error);
      if (!r.vnc)
        {
          fprintf (stderr, "vessel-run: --vnc %s\n", error->message);
          r.status = EXIT_USAGE;
          goto out_machine;
        }
    }
  if (spice)
    {
      /* A client that hangs up must not end the program. */
      signal (SIGPIPE, SIG_IGN);
      r.spice = display_spice_new (vmm_machine_display (r.machine),
                                   vmm_machine_input (r.machine),
                                   vmm_machine_io_context (r.machine),
                                   spice_spec.host, spice_spec.port,
                                   spice_password, &error);
      if (!r.spice)
        {
          fprintf (stderr, "vessel-run: --spice %s\n", error->message);
          r.status = EXIT_USAGE;
          goto out_machine;
        }
    }
  if (control)
    {
      r.control = vmm_qmp_server_new (r.machine, control, &cfg,
                                      on_control_quit, &r, &error);
      if (!r.control)
        {
          fprintf (stderr, "vessel-run: --control %s\n", error->message);
          r.status = EXIT_USAGE;
          goto out_machine;
        }
      if (r.vnc)
        vmm_qmp_server_set_query_vnc (r.control, on_query_vnc, r.vnc);
      if (r.spice)
        vmm_qmp_server_set_query_spice (r.control, on_query_spice, r.spice);
    }
  vmm_machine_set_serial_ready_callback (r.machine, on_serial_ready, &r);
  g_unix_signal_add (SIGINT, on_signal, &r);
  g_unix_signal_add (SIGTERM, on_signal, &r);
  g_unix_signal_add (SIGUSR1, on_usr1, &r);
  if (r.serial.fd == STDOUT_FILENO)
    stdin_flush_pending (&r);

  if (vmm_machine_start (r.machine, &error))
    g_main_loop_run (r.loop);
  else
    fprintf (stderr, "vessel-run: %s\n", error->message);
  vmm_qmp_server_free (r.control);
out_machine:
  display_vnc_free (r.vnc);
  display_spice_free (r.spice);
  vmm_machine_free (r.machine);
  g_main_loop_unref (r.loop);

out:
  display_vnc_spec_clear (&vnc_spec);
  display_spice_spec_clear (&spice_spec);
  if (r.serial.owned)
    close (r.serial.fd);
  if (r.debugcon.owned)
    close (r.debugcon.fd);
  for (size_t i = 0; i < n_disks; i++)
    {
      g_free ((char *) disks[i].path);
      g_free ((char *) disks[i].format);
    }
  for (size_t i = 0; i < n_nics; i++)
    vmm_nic_config_clear (&nics[i]);
  return r.status;
}
