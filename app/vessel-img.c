/* vessel-img: disk image tool.  Speaks qemu-img's argument vocabulary for
 * create, info, check, convert, snapshot, resize, commit, rebase and bench,
 * so existing command lines work with the name changed. */
#include "vmm-core/block/block.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static gboolean quiet;

static int G_GNUC_PRINTF(1, 2) fail(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  /* one line, always */
  for (char *p = msg; *p; p++)
    if (*p == '\n')
      *p = ' ';
  fprintf(stderr, "vessel-img: %s\n", msg);
  return 1;
}

static int fail_error(GError *error)
{
  int r = fail("%s", error->message);
  g_error_free(error);
  return r;
}

static char *size_to_str(uint64_t v)
{
  static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
  int i = 0;
  double d = (double)v;
  while (d >= 1024 * 0.98 && i < 6) {
    d /= 1024;
    i++;
  }
  return g_strdup_printf("%0.3g %s", d, units[i]);
}

static uint64_t disk_usage(const char *path)
{
  struct stat st;
  if (stat(path, &st) < 0)
    return 0;
  return (uint64_t)st.st_blocks * 512;
}

static gboolean parse_bool(const char *v, gboolean *out)
{
  if (!g_strcmp0(v, "on") || !g_strcmp0(v, "true") || !g_strcmp0(v, "yes")) {
    *out = TRUE;
    return TRUE;
  }
  if (!g_strcmp0(v, "off") || !g_strcmp0(v, "false") || !g_strcmp0(v, "no")) {
    *out = FALSE;
    return TRUE;
  }
  return FALSE;
}

/* -o key=value,key=value (qemu-img create/convert options) */
static gboolean parse_create_options(const char *text, VmmBlockCreateOptions *o,
                                     char **err)
{
  g_auto(GStrv) parts = g_strsplit(text, ",", -1);
  for (char **p = parts; *p; p++) {
    if (!**p)
      continue;
    if (g_str_equal(*p, "help") || g_str_equal(*p, "?")) {
      printf("Supported options:\n"
             "  cluster_size=SIZE      qcow2 cluster size, 512 to 2M (64K)\n"
             "  compat=0.10|1.1        qcow2 version 2 or 3 (1.1)\n"
             "  refcount_bits=N        1, 2, 4, 8, 16, 32 or 64 (16)\n"
             "  lazy_refcounts=on|off  (off)\n"
             "  backing_file=NAME, backing_fmt=FMT, size=SIZE\n"
             "  preallocation=off, compression_type=zlib, extended_l2=off\n");
      exit(0);
    }
    char *eq = strchr(*p, '=');
    if (!eq) {
      *err = g_strdup_printf("option '%s' needs a value (key=value)", *p);
      return FALSE;
    }
    *eq = 0;
    const char *k = *p, *v = eq + 1;
    uint64_t n;
    if (g_str_equal(k, "cluster_size")) {
      if (!vmm_block_parse_size(v, &n) || n > UINT32_MAX) {
        *err = g_strdup_printf("invalid cluster_size '%s'", v);
        return FALSE;
      }
      o->cluster_size = (uint32_t)n;
    } else if (g_str_equal(k, "compat")) {
      if (!g_strcmp0(v, "0.10") || !g_strcmp0(v, "v2"))
        o->compat = 2;
      else if (!g_strcmp0(v, "1.1") || !g_strcmp0(v, "v3"))
        o->compat = 3;
      else {
        *err = g_strdup_printf("invalid compat '%s' (use 0.10 or 1.1)", v);
        return FALSE;
      }
    } else if (g_str_equal(k, "refcount_bits")) {
      char *end;
      unsigned long r = strtoul(v, &end, 10);
      if (*end || r == 0 || r > 64 || (r & (r - 1))) {
        *err = g_strdup_printf("invalid refcount_bits '%s' (a power of two "
                               "from 1 to 64)", v);
        return FALSE;
      }
      o->refcount_bits = (int)r;
    } else if (g_str_equal(k, "lazy_refcounts")) {
      if (!parse_bool(v, &o->lazy_refcounts)) {
        *err = g_strdup_printf("invalid lazy_refcounts '%s' (on or off)", v);
        return FALSE;
      }
    } else if (g_str_equal(k, "backing_file")) {
      o->backing_file = g_strdup(v);
    } else if (g_str_equal(k, "backing_fmt")) {
      o->backing_format = g_strdup(v);
    } else if (g_str_equal(k, "size")) {
      if (!vmm_block_parse_size(v, &o->size)) {
        *err = g_strdup_printf("invalid size '%s'", v);
        return FALSE;
      }
    } else if (g_str_equal(k, "compression_type")) {
      if (g_strcmp0(v, "zlib")) {
        *err = g_strdup_printf("compression_type=%s is not supported (only "
                               "zlib)", v);
        return FALSE;
      }
    } else if (g_str_equal(k, "extended_l2") || g_str_equal(k, "encrypt.format") ||
               g_str_equal(k, "encryption") || g_str_equal(k, "data_file_raw")) {
      gboolean on = FALSE;
      if (!parse_bool(v, &on) && !g_str_equal(k, "encrypt.format")) {
        *err = g_strdup_printf("invalid %s '%s' (on or off)", k, v);
        return FALSE;
      }
      if (on || g_str_equal(k, "encrypt.format")) {
        *err = g_strdup_printf("%s is not supported by Vessel", k);
        return FALSE;
      }
    } else if (g_str_equal(k, "data_file")) {
      *err = g_strdup("external data files (data_file) are not supported by "
                      "Vessel");
      return FALSE;
    } else if (g_str_equal(k, "preallocation")) {
      if (g_strcmp0(v, "off")) {
        *err = g_strdup_printf("preallocation=%s is not supported", v);
        return FALSE;
      }
    } else {
      *err = g_strdup_printf("unknown option '%s' (supported: cluster_size, "
                             "compat, refcount_bits, lazy_refcounts, "
                             "backing_file, backing_fmt, size)", k);
      return FALSE;
    }
  }
  return TRUE;
}

#define COMMON_OPTS "hqf:"

static int usage_error(const char *cmd)
{
  return fail("invalid arguments for '%s' (see 'vessel-img --help')", cmd);
}

/* ---------------- create ---------------- */
static int cmd_create(int argc, char **argv)
{
  VmmBlockCreateOptions o = { 0 };
  const char *fmt = "raw";
  g_autofree char *err = NULL;
  int c;
  while ((c = getopt(argc, argv, "qf:o:b:F:u")) != -1) {
    switch (c) {
    case 'q': quiet = TRUE; break;
    case 'f': fmt = optarg; break;
    case 'o':
      if (!parse_create_options(optarg, &o, &err))
        return fail("%s", err);
      break;
    case 'b': o.backing_file = optarg; break;
    case 'F': o.backing_format = optarg; break;
    case 'u': break;
    default: return usage_error("create");
    }
  }
  if (optind >= argc)
    return fail("create: expecting a filename");
  const char *file = argv[optind++];
  if (optind < argc) {
    if (!vmm_block_parse_size(argv[optind], &o.size))
      return fail("invalid size '%s': use a number with an optional suffix "
                  "K, M, G or T", argv[optind]);
    optind++;
  } else if (!o.backing_file) {
    return fail("create: expecting a size for '%s'", file);
  }
  if (optind < argc)
    return fail("create: unexpected argument '%s'", argv[optind]);
  o.format = fmt;
  if (!g_str_equal(fmt, "raw") && !g_str_equal(fmt, "qcow2"))
    return fail("unknown or unsupported format '%s' (Vessel supports raw and "
                "qcow2)", fmt);
  GError *error = NULL;
  if (!vmm_block_create(file, &o, &error))
    return fail_error(error);
  if (!quiet) {
    /* An overlay without a size takes its backing file's: report that. */
    uint64_t size = o.size;
    VmmBlock *bs = size ? NULL
                        : vmm_block_open(file, fmt, VMM_BLOCK_OPEN_READ_ONLY |
                                                    VMM_BLOCK_OPEN_NO_BACKING,
                                         NULL);
    if (bs) {
      size = vmm_block_size(bs);
      vmm_block_close(bs, NULL);
    }
    printf("Formatting '%s', fmt=%s size=%" G_GUINT64_FORMAT "\n", file, fmt,
           size);
  }
  return 0;
}

/* ---------------- info ---------------- */
static void json_str(GString *s, const char *v)
{
  g_string_append_c(s, '"');
  for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
    if (*p == '"' || *p == '\\')
      g_string_append_printf(s, "\\%c", *p);
    else if (*p < 0x20)
      g_string_append_printf(s, "\\u%04x", *p);
    else
      g_string_append_c(s, (char)*p);
  }
  g_string_append_c(s, '"');
}

static char *full_backing(VmmBlock *bs, const char *b)
{
  if (g_path_is_absolute(b))
    return g_strdup(b);
  g_autofree char *dir = g_path_get_dirname(vmm_block_filename(bs));
  return g_build_filename(dir, b, NULL);
}

static void info_json(VmmBlock *bs, GString *s)
{
  VmmBlockInfo in;
  vmm_block_get_info(bs, &in);
  g_string_append(s, "{\n");
  g_autoptr(GArray) snaps = vmm_block_snapshot_list(bs);
  if (snaps->len) {
    g_string_append(s, "    \"snapshots\": [\n");
    for (guint i = 0; i < snaps->len; i++) {
      VmmBlockSnapshotInfo *sn = &g_array_index(snaps, VmmBlockSnapshotInfo, i);
      g_string_append(s, "        {\n");
      if (sn->icount != UINT64_MAX)
        g_string_append_printf(s, "            \"icount\": %" G_GUINT64_FORMAT ",\n", sn->icount);
      g_string_append_printf(s, "            \"vm-state-size\": %" G_GUINT64_FORMAT ",\n", sn->vm_state_size);
      g_string_append_printf(s, "            \"date-sec\": %u,\n", sn->date_sec);
      g_string_append_printf(s, "            \"date-nsec\": %u,\n", sn->date_nsec);
      g_string_append_printf(s, "            \"vm-clock-sec\": %" G_GUINT64_FORMAT ",\n", sn->vm_clock_nsec / 1000000000);
      g_string_append_printf(s, "            \"vm-clock-nsec\": %" G_GUINT64_FORMAT ",\n", sn->vm_clock_nsec % 1000000000);
      g_string_append(s, "            \"name\": ");
      json_str(s, sn->name);
      g_string_append(s, ",\n            \"id\": ");
      json_str(s, sn->id);
      g_string_append_printf(s, "\n        }%s\n", i + 1 < snaps->len ? "," : "");
    }
    g_string_append(s, "    ],\n");
  }
  g_string_append_printf(s, "    \"virtual-size\": %" G_GUINT64_FORMAT ",\n", in.virtual_size);
  g_string_append(s, "    \"filename\": ");
  json_str(s, vmm_block_filename(bs));
  g_string_append(s, ",\n");
  if (in.cluster_size)
    g_string_append_printf(s, "    \"cluster-size\": %u,\n", in.cluster_size);
  g_string_append(s, "    \"format\": ");
  json_str(s, vmm_block_format(bs));
  g_string_append(s, ",\n");
  g_string_append_printf(s, "    \"actual-size\": %" G_GUINT64_FORMAT ",\n",
                         disk_usage(vmm_block_filename(bs)));
  if (g_str_equal(vmm_block_format(bs), "qcow2")) {
    g_string_append_printf(s, "    \"format-specific\": {\n        \"type\": \"qcow2\",\n"
                           "        \"data\": {\n            \"compat\": \"%s\",\n",
                           in.compat >= 3 ? "1.1" : "0.10");
    if (in.compat >= 3)
      g_string_append_printf(s, "            \"compression-type\": \"zlib\",\n"
                             "            \"lazy-refcounts\": %s,\n",
                             in.lazy_refcounts ? "true" : "false");
    g_string_append_printf(s, "            \"refcount-bits\": %d,\n", in.refcount_bits);
    if (in.compat >= 3)
      g_string_append_printf(s, "            \"corrupt\": %s,\n            \"extended-l2\": false\n",
                             in.corrupt ? "true" : "false");
    else
      g_string_truncate(s, s->len - 2), g_string_append(s, "\n");
    g_string_append(s, "        }\n    },\n");
  }
  if (in.backing_file) {
    g_autofree char *full = full_backing(bs, in.backing_file);
    g_string_append(s, "    \"full-backing-filename\": ");
    json_str(s, full);
    g_string_append(s, ",\n    \"backing-filename\": ");
    json_str(s, in.backing_file);
    g_string_append(s, ",\n");
    if (in.backing_format) {
      g_string_append(s, "    \"backing-filename-format\": ");
      json_str(s, in.backing_format);
      g_string_append(s, ",\n");
    }
  }
  g_string_append_printf(s, "    \"dirty-flag\": %s\n}", in.dirty ? "true" : "false");
}

static void snapshot_table(VmmBlock *bs, GString *s)
{
  g_autoptr(GArray) snaps = vmm_block_snapshot_list(bs);
  if (!snaps->len)
    return;
  g_string_append(s, "Snapshot list:\n");
  g_string_append_printf(s, "%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG",
                         "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
  for (guint i = 0; i < snaps->len; i++) {
    VmmBlockSnapshotInfo *sn = &g_array_index(snaps, VmmBlockSnapshotInfo, i);
    g_autofree char *vm = size_to_str(sn->vm_state_size);
    time_t t = sn->date_sec;
    struct tm tm;
    char date[32];
    localtime_r(&t, &tm);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S", &tm);
    uint64_t ms = sn->vm_clock_nsec / 1000000;
    g_string_append_printf(s, "%-9s %-16s %8s %19s %02" G_GUINT64_FORMAT ":%02"
                           G_GUINT64_FORMAT ":%02" G_GUINT64_FORMAT ".%03"
                           G_GUINT64_FORMAT, sn->id, sn->name, vm, date,
                           ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
    if (sn->icount != UINT64_MAX)
      g_string_append_printf(s, " %10" G_GUINT64_FORMAT, sn->icount);
    else
      g_string_append_printf(s, " %10s", "");
    g_string_append_c(s, '\n');
  }
}

static void info_human(VmmBlock *bs, GString *s)
{
  VmmBlockInfo in;
  vmm_block_get_info(bs, &in);
  g_autofree char *vs = size_to_str(in.virtual_size);
  g_autofree char *ds = size_to_str(disk_usage(vmm_block_filename(bs)));
  g_string_append_printf(s, "image: %s\nfile format: %s\nvirtual size: %s (%"
                         G_GUINT64_FORMAT " bytes)\ndisk size: %s\n",
                         vmm_block_filename(bs), vmm_block_format(bs), vs,
                         in.virtual_size, ds);
  if (in.cluster_size)
    g_string_append_printf(s, "cluster_size: %u\n", in.cluster_size);
  if (in.backing_file) {
    g_autofree char *full = full_backing(bs, in.backing_file);
    if (g_str_equal(full, in.backing_file))
      g_string_append_printf(s, "backing file: %s\n", in.backing_file);
    else
      g_string_append_printf(s, "backing file: %s (actual path: %s)\n",
                             in.backing_file, full);
    if (in.backing_format)
      g_string_append_printf(s, "backing file format: %s\n", in.backing_format);
  }
  snapshot_table(bs, s);
  if (g_str_equal(vmm_block_format(bs), "qcow2")) {
    g_string_append_printf(s, "Format specific information:\n    compat: %s\n",
                           in.compat >= 3 ? "1.1" : "0.10");
    if (in.compat >= 3)
      g_string_append_printf(s, "    compression type: zlib\n    lazy refcounts: %s\n",
                             in.lazy_refcounts ? "true" : "false");
    g_string_append_printf(s, "    refcount bits: %d\n", in.refcount_bits);
    if (in.compat >= 3)
      g_string_append_printf(s, "    corrupt: %s\n    extended l2: false\n",
                             in.corrupt ? "true" : "false");
  }
}

static int cmd_info(int argc, char **argv)
{
  const char *fmt = NULL, *output = "human";
  gboolean chain = FALSE;
  static const struct option lo[] = {
    { "output", required_argument, NULL, 'O' },
    { "backing-chain", no_argument, NULL, 'B' },
    { "force-share", no_argument, NULL, 'U' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long(argc, argv, "f:U", lo, NULL)) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'O': output = optarg; break;
    case 'B': chain = TRUE; break;
    case 'U': break;
    default: return usage_error("info");
    }
  }
  if (optind != argc - 1)
    return fail("info: expecting exactly one filename");
  gboolean json = g_str_equal(output, "json");
  if (!json && !g_str_equal(output, "human"))
    return fail("--output must be human or json, not '%s'", output);
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(argv[optind], fmt,
                                VMM_BLOCK_OPEN_READ_ONLY |
                                (chain ? 0 : VMM_BLOCK_OPEN_NO_BACKING), &error);
  if (!bs)
    return fail_error(error);
  g_autoptr(GString) s = g_string_new(NULL);
  if (chain && json)
    g_string_append(s, "[\n");
  for (VmmBlock *b = bs; b; b = chain ? vmm_block_backing(b) : NULL) {
    if (b != bs)
      g_string_append(s, json ? ",\n" : "\n");
    if (json)
      info_json(b, s);
    else
      info_human(b, s);
  }
  if (chain && json)
    g_string_append(s, "\n]");
  if (json)
    g_string_append_c(s, '\n');
  fputs(s->str, stdout);
  vmm_block_close(bs, NULL);
  return 0;
}

/* ---------------- check ---------------- */
static int cmd_check(int argc, char **argv)
{
  const char *fmt = NULL, *output = "human";
  VmmBlockRepair repair = VMM_BLOCK_REPAIR_NONE;
  static const struct option lo[] = {
    { "output", required_argument, NULL, 'O' },
    { "force-share", no_argument, NULL, 'U' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long(argc, argv, "f:r:qU", lo, NULL)) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'O': output = optarg; break;
    case 'q': quiet = TRUE; break;
    case 'U': break;
    case 'r':
      if (g_str_equal(optarg, "leaks"))
        repair = VMM_BLOCK_REPAIR_LEAKS;
      else if (g_str_equal(optarg, "all"))
        repair = VMM_BLOCK_REPAIR_ALL;
      else
        return fail("-r must be 'leaks' or 'all', not '%s'", optarg);
      break;
    default: return usage_error("check");
    }
  }
  if (optind != argc - 1)
    return fail("check: expecting exactly one filename");
  gboolean json = g_str_equal(output, "json");
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(argv[optind], fmt,
                                VMM_BLOCK_OPEN_CHECK | VMM_BLOCK_OPEN_NO_BACKING |
                                (repair ? 0 : VMM_BLOCK_OPEN_READ_ONLY), &error);
  if (!bs)
    return fail_error(error);
  if (!g_str_equal(vmm_block_format(bs), "qcow2")) {
    vmm_block_close(bs, NULL);
    fail("%s: format '%s' does not support checks", argv[optind], fmt ? fmt : "raw");
    return 63;
  }
  VmmBlockCheckResult r;
  if (!vmm_block_check(bs, repair, &r, &error)) {
    vmm_block_check_result_clear(&r);
    vmm_block_close(bs, NULL);
    fail("%s", error->message);
    g_error_free(error);
    return 1;
  }
  if (json) {
    printf("{\n    \"image-end-offset\": %" G_GUINT64_FORMAT ",\n"
           "    \"total-clusters\": %" G_GUINT64_FORMAT ",\n"
           "    \"check-errors\": 0,\n", r.image_end_offset, r.total_clusters);
    if (r.leaks)
      printf("    \"leaks\": %" G_GINT64_FORMAT ",\n", r.leaks);
    if (r.corruptions)
      printf("    \"corruptions\": %" G_GINT64_FORMAT ",\n", r.corruptions);
    if (r.leaks_fixed)
      printf("    \"leaks-fixed\": %" G_GINT64_FORMAT ",\n", r.leaks_fixed);
    if (r.corruptions_fixed)
      printf("    \"corruptions-fixed\": %" G_GINT64_FORMAT ",\n", r.corruptions_fixed);
    printf("    \"allocated-clusters\": %" G_GUINT64_FORMAT ",\n"
           "    \"filename\": \"%s\",\n    \"format\": \"qcow2\",\n"
           "    \"fragmented-clusters\": %" G_GUINT64_FORMAT ",\n"
           "    \"compressed-clusters\": %" G_GUINT64_FORMAT "\n}\n",
           r.allocated_clusters, argv[optind], r.fragmented_clusters,
           r.compressed_clusters);
  } else if (!quiet) {
    for (guint i = 0; i < r.messages->len && !repair; i++)
      fprintf(stderr, "%s\n", (char *)r.messages->pdata[i]);
    if (r.leaks_fixed || r.corruptions_fixed)
      printf("The following inconsistencies were found and repaired:\n\n"
             "    %" G_GINT64_FORMAT " leaked clusters\n    %" G_GINT64_FORMAT
             " corruptions\n\nDouble checking the fixed image now...\n",
             r.leaks_fixed, r.corruptions_fixed);
    if (!r.leaks && !r.corruptions)
      printf("No errors were found on the image.\n");
    if (r.corruptions)
      printf("\n%" G_GINT64_FORMAT " errors were found on the image.\nData "
             "may be corrupted, or further writes to the image may corrupt "
             "it.\n", r.corruptions);
    if (r.leaks)
      printf("\n%" G_GINT64_FORMAT " leaked clusters were found on the image.\n"
             "This means waste of disk space, but no harm to data.\n", r.leaks);
    if (r.total_clusters)
      printf("%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " = %0.2f%% allocated, "
             "%0.2f%% fragmented, %0.2f%% compressed clusters\n",
             r.allocated_clusters, r.total_clusters,
             r.allocated_clusters * 100.0 / r.total_clusters,
             r.allocated_clusters ? r.fragmented_clusters * 100.0 / r.allocated_clusters : 0,
             r.allocated_clusters ? r.compressed_clusters * 100.0 / r.allocated_clusters : 0);
    printf("Image end offset: %" G_GUINT64_FORMAT "\n", r.image_end_offset);
  }
  int ret = r.corruptions ? 2 : r.leaks ? 3 : 0;
  vmm_block_check_result_clear(&r);
  if (!vmm_block_close(bs, &error))
    return fail_error(error);
  return ret;
}

/* ---------------- convert ---------------- */
static gboolean is_zero(const uint8_t *p, size_t n)
{
  static const uint8_t zero[4096];
  while (n >= sizeof zero) {
    if (memcmp(p, zero, sizeof zero))
      return FALSE;
    p += sizeof zero;
    n -= sizeof zero;
  }
  return memcmp(p, zero, n) == 0;
}

/* Whether [off, off+len) reads as zeroes through the whole chain, judged
 * from metadata only; *pnum is how far the answer holds. */
static gboolean chain_zero(VmmBlock *bs, uint64_t off, uint64_t len,
                           uint64_t *pnum)
{
  VmmBlock *b = bs;
  *pnum = len;
  while (b) {
    if (off >= vmm_block_size(b))
      return TRUE; /* past this layer: zeroes */
    uint64_t n = 0;
    unsigned st = vmm_block_status(b, off, MIN(len, vmm_block_size(b) - off),
                                   &n, NULL);
    if (n == 0)
      return FALSE;
    *pnum = MIN(*pnum, n);
    if (st & VMM_BLOCK_STATUS_ALLOCATED)
      return (st & VMM_BLOCK_STATUS_ZERO) != 0;
    b = vmm_block_backing(b);
  }
  return TRUE;
}

static gboolean copy_image(VmmBlock *src, VmmBlock *dst, gboolean write_zeroes,
                           gboolean compress, GError **error)
{
  size_t chunk = 2u << 20, piece = 64u << 10;
  if (compress) {
    /* whole clusters, each compressed on its own */
    VmmBlockInfo in;
    vmm_block_get_info(dst, &in);
    piece = in.cluster_size;
    chunk = MAX(chunk, piece);
  }
  g_autofree uint8_t *buf = g_malloc(chunk);
  uint64_t size = vmm_block_size(src);
  for (uint64_t off = 0; off < size;) {
    size_t n = (size_t)MIN((uint64_t)chunk, size - off);
    uint64_t zn;
    gboolean z = chain_zero(src, off, n, &zn);
    if (compress) /* keep to whole clusters */
      zn &= ~(uint64_t)(piece - 1);
    if (z && zn) {
      if (write_zeroes && !vmm_block_write_zeroes(dst, off, zn, error))
        return FALSE;
      off += zn;
      continue;
    }
    if (!compress && zn)
      n = (size_t)MIN((uint64_t)n, zn);
    if (!vmm_block_read(src, off, buf, n, error))
      return FALSE;
    size_t i = 0;
    while (i < n) {
      size_t p = MIN(piece, n - i);
      gboolean zero = is_zero(buf + i, p);
      size_t j = i + p;
      while (j < n) {
        size_t q = MIN(piece, n - j);
        if (is_zero(buf + j, q) != zero)
          break;
        j += q;
      }
      if (!zero && compress) {
        for (size_t k = i; k < j; k += piece)
          if (!vmm_block_write_compressed(dst, off + k, buf + k,
                                          MIN(piece, j - k), error))
            return FALSE;
      } else if (!zero) {
        if (!vmm_block_write(dst, off + i, buf + i, j - i, error))
          return FALSE;
      } else if (write_zeroes) {
        if (!vmm_block_write_zeroes(dst, off + i, j - i, error))
          return FALSE;
      }
      i = j;
    }
    off += n;
  }
  return vmm_block_flush(dst, error);
}

static int cmd_convert(int argc, char **argv)
{
  const char *fmt = NULL, *ofmt = "raw";
  VmmBlockCreateOptions o = { 0 };
  gboolean no_create = FALSE, compress = FALSE;
  g_autofree char *err = NULL;
  int c;
  while ((c = getopt(argc, argv, "f:O:o:cpqnt:T:m:WS:U")) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'O': ofmt = optarg; break;
    case 'o':
      if (!parse_create_options(optarg, &o, &err))
        return fail("%s", err);
      break;
    case 'c': compress = TRUE; break;
    case 'n': no_create = TRUE; break;
    case 'p': case 'q': case 't': case 'T': case 'm': case 'W': case 'S':
    case 'U':
      break;
    default: return usage_error("convert");
    }
  }
  if (argc - optind != 2)
    return fail("convert: expecting one source and one output filename");
  const char *in = argv[optind], *out = argv[optind + 1];
  if (o.backing_file)
    return fail("convert: output backing files are not supported");
  if (compress && g_strcmp0(ofmt, "qcow2"))
    return fail("convert: -c needs -O qcow2 (format '%s' has no compression)",
                ofmt);
  GError *error = NULL;
  VmmBlock *src = vmm_block_open(in, fmt, VMM_BLOCK_OPEN_READ_ONLY, &error);
  if (!src)
    return fail_error(error);
  o.format = ofmt;
  o.size = vmm_block_size(src);
  if (!no_create && !vmm_block_create(out, &o, &error)) {
    vmm_block_close(src, NULL);
    return fail_error(error);
  }
  VmmBlock *dst = vmm_block_open(out, ofmt, VMM_BLOCK_OPEN_NO_BACKING, &error);
  if (!dst) {
    vmm_block_close(src, NULL);
    return fail_error(error);
  }
  gboolean ok = TRUE;
  if (no_create && vmm_block_size(dst) < vmm_block_size(src)) {
    g_set_error(&error, VMM_BLOCK_ERROR, VMM_BLOCK_ERROR_INVALID,
                "%s: output is smaller than the input", out);
    ok = FALSE;
  }
  ok = ok && copy_image(src, dst, no_create, compress, &error);
  ok = vmm_block_close(dst, ok ? &error : NULL) && ok;
  vmm_block_close(src, NULL);
  if (!ok)
    return fail_error(error);
  return 0;
}

/* ---------------- snapshot ---------------- */
static int cmd_snapshot(int argc, char **argv)
{
  const char *fmt = NULL, *name = NULL;
  int action = 0;
  int c;
  while ((c = getopt(argc, argv, "f:la:c:d:qU")) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'l': case 'a': case 'c': case 'd':
      if (action)
        return fail("snapshot: use only one of -l, -a, -c, -d");
      action = c;
      name = optarg;
      break;
    case 'q': quiet = TRUE; break;
    case 'U': break;
    default: return usage_error("snapshot");
    }
  }
  if (optind != argc - 1)
    return fail("snapshot: expecting exactly one filename");
  if (!action)
    action = 'l';
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(argv[optind], fmt,
                                action == 'l' ? VMM_BLOCK_OPEN_READ_ONLY |
                                VMM_BLOCK_OPEN_NO_BACKING : 0, &error);
  if (!bs)
    return fail_error(error);
  gboolean ok = TRUE;
  if (action == 'l') {
    g_autoptr(GString) s = g_string_new(NULL);
    snapshot_table(bs, s);
    fputs(s->str, stdout);
  } else if (action == 'c') {
    ok = vmm_block_snapshot_create(bs, name, &error);
  } else if (action == 'a') {
    ok = vmm_block_snapshot_apply(bs, name, &error);
  } else {
    ok = vmm_block_snapshot_delete(bs, name, &error);
  }
  ok = vmm_block_close(bs, ok ? &error : NULL) && ok;
  if (!ok)
    return fail_error(error);
  return 0;
}

/* ---------------- resize ---------------- */
static int cmd_resize(int argc, char **argv)
{
  const char *fmt = NULL;
  gboolean shrink = FALSE;
  static const struct option lo[] = {
    { "shrink", no_argument, NULL, 's' },
    { "preallocation", required_argument, NULL, 'P' },
    { NULL, 0, NULL, 0 },
  };
  /* "-1G" must not be taken for an option: stop at the first non-option */
  int c;
  while ((c = getopt_long(argc, argv, "+f:qU", lo, NULL)) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'q': quiet = TRUE; break;
    case 's': shrink = TRUE; break;
    case 'P':
      if (g_strcmp0(optarg, "off"))
        return fail("resize: preallocation=%s is not supported", optarg);
      break;
    case 'U': break;
    default: return usage_error("resize");
    }
  }
  if (argc - optind != 2)
    return fail("resize: expecting a filename and a size");
  const char *file = argv[optind], *sz = argv[optind + 1];
  int sign = 0;
  if (*sz == '+' || *sz == '-')
    sign = *sz++ == '+' ? 1 : -1;
  uint64_t n;
  if (!vmm_block_parse_size(sz, &n))
    return fail("invalid size '%s'", argv[optind + 1]);
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(file, fmt, 0, &error);
  if (!bs)
    return fail_error(error);
  uint64_t cur = vmm_block_size(bs), target = n;
  if (sign > 0)
    target = cur + n;
  else if (sign < 0) {
    if (n > cur) {
      vmm_block_close(bs, NULL);
      return fail("%s: cannot shrink by %s: the image is only %" G_GUINT64_FORMAT
                  " bytes", file, argv[optind + 1], cur);
    }
    target = cur - n;
  }
  gboolean ok = vmm_block_resize(bs, target, shrink, &error);
  ok = vmm_block_close(bs, ok ? &error : NULL) && ok;
  if (!ok)
    return fail_error(error);
  if (!quiet)
    printf("Image resized.\n");
  return 0;
}

/* ---------------- commit ---------------- */
static int cmd_commit(int argc, char **argv)
{
  const char *fmt = NULL;
  gboolean keep = FALSE;
  int c;
  while ((c = getopt(argc, argv, "f:qdpt:b:r:")) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'q': quiet = TRUE; break;
    case 'd': keep = TRUE; break;
    case 'b': return fail("commit: -b (commit into a deeper base) is not "
                          "supported; commit one layer at a time");
    case 'p': case 't': case 'r': break;
    default: return usage_error("commit");
    }
  }
  if (optind != argc - 1)
    return fail("commit: expecting exactly one filename");
  GError *error = NULL;
  VmmBlock *top = vmm_block_open(argv[optind], fmt, 0, &error);
  if (!top)
    return fail_error(error);
  VmmBlockInfo in;
  vmm_block_get_info(top, &in);
  VmmBlock *chain_base = vmm_block_backing(top);
  if (!chain_base) {
    vmm_block_close(top, NULL);
    return fail("%s: image has no backing file to commit into", argv[optind]);
  }
  VmmBlock *base = vmm_block_open(vmm_block_filename(chain_base),
                                  vmm_block_format(chain_base), 0, &error);
  if (!base) {
    vmm_block_close(top, NULL);
    return fail_error(error);
  }
  gboolean ok = TRUE;
  uint64_t size = vmm_block_size(top);
  if (vmm_block_size(base) < size)
    ok = vmm_block_resize(base, size, FALSE, &error);
  g_autofree uint8_t *buf = g_malloc(1 << 20);
  for (uint64_t off = 0; ok && off < size;) {
    uint64_t n;
    unsigned st = vmm_block_status(top, off, MIN(size - off, UINT64_C(1) << 30),
                                   &n, &error);
    if (n == 0) {
      ok = FALSE;
      break;
    }
    if (st & VMM_BLOCK_STATUS_ALLOCATED) {
      if (st & VMM_BLOCK_STATUS_ZERO) {
        ok = vmm_block_write_zeroes(base, off, n, &error);
      } else {
        for (uint64_t p = off; ok && p < off + n; p += 1 << 20) {
          size_t k = (size_t)MIN(UINT64_C(1) << 20, off + n - p);
          ok = vmm_block_read(top, p, buf, k, &error) &&
               vmm_block_write(base, p, buf, k, &error);
        }
      }
    }
    off += n;
  }
  ok = ok && vmm_block_flush(base, &error);
  if (ok && !keep && g_str_equal(vmm_block_format(top), "qcow2"))
    ok = vmm_block_make_empty(top, &error);
  ok = vmm_block_close(base, ok ? &error : NULL) && ok;
  ok = vmm_block_close(top, ok ? &error : NULL) && ok;
  if (!ok)
    return fail_error(error);
  if (!quiet)
    printf("Image committed.\n");
  return 0;
}

/* ---------------- rebase ---------------- */
static int cmd_rebase(int argc, char **argv)
{
  const char *fmt = NULL, *bfile = NULL, *bfmt = NULL;
  gboolean unsafe = FALSE;
  int c;
  while ((c = getopt(argc, argv, "f:b:F:uqpt:T:U")) != -1) {
    switch (c) {
    case 'f': fmt = optarg; break;
    case 'b': bfile = optarg; break;
    case 'F': bfmt = optarg; break;
    case 'u': unsafe = TRUE; break;
    case 'q': quiet = TRUE; break;
    case 'p': case 't': case 'T': case 'U': break;
    default: return usage_error("rebase");
    }
  }
  if (optind != argc - 1)
    return fail("rebase: expecting exactly one filename");
  if (!bfile)
    return fail("rebase: expecting -b BACKING_FILE (use -b \"\" to remove it)");
  const char *file = argv[optind];
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(file, fmt, unsafe ? VMM_BLOCK_OPEN_NO_BACKING : 0,
                                &error);
  if (!bs)
    return fail_error(error);
  gboolean ok = TRUE;
  if (!unsafe) {
    /* Safe rebase: wherever the old and new backing differ under an
     * unallocated cluster, copy the old content into the image. */
    VmmBlock *nb = NULL;
    if (*bfile) {
      g_autofree char *path = full_backing(bs, bfile);
      nb = vmm_block_open(path, bfmt, VMM_BLOCK_OPEN_READ_ONLY, &error);
      if (!nb) {
        vmm_block_close(bs, NULL);
        return fail_error(error);
      }
      if (!bfmt)
        bfmt = g_intern_string(vmm_block_format(nb));
    }
    uint64_t size = vmm_block_size(bs);
    const size_t step = 64 << 10;
    g_autofree uint8_t *a = g_malloc(step), *b = g_malloc(step);
    for (uint64_t off = 0; ok && off < size;) {
      uint64_t n;
      unsigned st = vmm_block_status(bs, off, MIN(size - off, (uint64_t)step),
                                     &n, &error);
      if (n == 0) {
        ok = FALSE;
        break;
      }
      if (!(st & VMM_BLOCK_STATUS_ALLOCATED)) {
        ok = vmm_block_read(bs, off, a, n, &error);
        memset(b, 0, n);
        if (ok && nb && off < vmm_block_size(nb))
          ok = vmm_block_read(nb, off, b, MIN(n, vmm_block_size(nb) - off), &error);
        if (ok && memcmp(a, b, n))
          ok = vmm_block_write(bs, off, a, n, &error);
      }
      off += n;
    }
    if (nb)
      vmm_block_close(nb, NULL);
  } else if (*bfile && !bfmt) {
    /* record the format if the file can be probed; otherwise leave it out */
    g_autofree char *path = full_backing(bs, bfile);
    VmmBlock *nb = vmm_block_open(path, NULL, VMM_BLOCK_OPEN_READ_ONLY |
                                  VMM_BLOCK_OPEN_NO_BACKING, NULL);
    if (nb) {
      bfmt = g_intern_string(vmm_block_format(nb));
      vmm_block_close(nb, NULL);
    }
  }
  ok = ok && vmm_block_set_backing(bs, bfile, bfmt, &error);
  ok = vmm_block_close(bs, ok ? &error : NULL) && ok;
  if (!ok)
    return fail_error(error);
  return 0;
}

/* ---------------- bench ---------------- */
typedef struct {
  VmmBlock *bs;
  GMutex lock;
  GCond cond;
  uint64_t submitted, completed, count;
  uint64_t offset, start, step, bufsize, size;
  gboolean write;
  uint8_t **bufs;
  unsigned depth;
  GError *error;
} Bench;

static void bench_submit(Bench *b, unsigned slot);

typedef struct {
  Bench *b;
  unsigned slot;
} Slot;

static void slot_done(VmmBlock *bs, gboolean ok, const GError *error,
                      gpointer user_data)
{
  Slot *s = user_data;
  Bench *b = s->b;
  g_mutex_lock(&b->lock);
  b->completed++;
  if (!ok && !b->error)
    b->error = g_error_copy(error);
  gboolean more = b->submitted < b->count && !b->error;
  /* wake the waiting main thread only when the run is over: a wake-up per
   * request would cost it a context switch each time */
  if (!more && b->completed == b->submitted)
    g_cond_signal(&b->cond);
  g_mutex_unlock(&b->lock);
  if (more)
    bench_submit(b, s->slot);
}

static Slot *slots;

static void bench_submit(Bench *b, unsigned slot)
{
  g_mutex_lock(&b->lock);
  if (b->submitted >= b->count || b->error) {
    g_mutex_unlock(&b->lock);
    return;
  }
  b->submitted++;
  uint64_t off = b->offset;
  /* The walk of qemu-img bench: offset += step, modulo the image size (QEMU
   * 7.2; identical offsets for the same -o/-s/-S).  Where that would put a
   * request across the end, wrap modulo size - bufsize as later QEMU does. */
  b->offset += b->step;
  if (b->size <= b->bufsize)
    b->offset = 0;
  else if (b->offset % b->size + b->bufsize <= b->size)
    b->offset %= b->size;
  else
    b->offset %= b->size - b->bufsize;
  g_mutex_unlock(&b->lock);
  vmm_block_submit(b->bs, b->write ? VMM_BLOCK_OP_WRITE : VMM_BLOCK_OP_READ,
                   off, b->bufs[slot], b->bufsize, slot_done, &slots[slot]);
}

static int cmd_bench(int argc, char **argv)
{
  const char *fmt = NULL;
  uint64_t count = 75000, depth = 64, bufsize = 4096, step = 0, offset = 0;
  int pattern = 0;
  gboolean write = FALSE, direct = FALSE;
  static const struct option lo[] = {
    { "pattern", required_argument, NULL, 'P' },
    { "flush-interval", required_argument, NULL, 'I' },
    { "no-drain", no_argument, NULL, 'N' },
    { "force-share", no_argument, NULL, 'U' },
    { NULL, 0, NULL, 0 },
  };
  int c;
  while ((c = getopt_long(argc, argv, "c:d:f:ni:o:qs:S:t:wU", lo, NULL)) != -1) {
    switch (c) {
    case 'c': count = g_ascii_strtoull(optarg, NULL, 10); break;
    case 'd': depth = g_ascii_strtoull(optarg, NULL, 10); break;
    case 'f': fmt = optarg; break;
    case 'o':
      if (!vmm_block_parse_size(optarg, &offset))
        return fail("invalid offset '%s'", optarg);
      break;
    case 's':
      if (!vmm_block_parse_size(optarg, &bufsize) || bufsize == 0 ||
          bufsize > (256u << 20))
        return fail("invalid buffer size '%s'", optarg);
      break;
    case 'S':
      if (!vmm_block_parse_size(optarg, &step))
        return fail("invalid step size '%s'", optarg);
      break;
    case 'w': write = TRUE; break;
    case 'q': quiet = TRUE; break;
    case 'P': pattern = atoi(optarg); break;
    case 'I': return fail("bench: --flush-interval is not supported");
    case 't':
      if (g_str_equal(optarg, "none") || g_str_equal(optarg, "directsync"))
        direct = TRUE;
      else if (!g_str_equal(optarg, "writeback") && !g_str_equal(optarg, "unsafe") &&
               !g_str_equal(optarg, "writethrough"))
        return fail("bench: unknown cache mode '%s'", optarg);
      break;
    case 'n': case 'i': case 'N': case 'U': break;
    default: return usage_error("bench");
    }
  }
  if (optind != argc - 1)
    return fail("bench: expecting exactly one filename");
  if (depth == 0 || depth > 1024)
    return fail("bench: depth must be 1 to 1024");
  if (!step)
    step = bufsize;
  GError *error = NULL;
  VmmBlock *bs = vmm_block_open(argv[optind], fmt,
                                (write ? 0 : VMM_BLOCK_OPEN_READ_ONLY) |
                                (direct ? VMM_BLOCK_OPEN_DIRECT : 0), &error);
  if (!bs)
    return fail_error(error);
  if (offset + bufsize > vmm_block_size(bs)) {
    vmm_block_close(bs, NULL);
    return fail("%s: the first request is past the end of the image",
                argv[optind]);
  }
  Bench b = { .bs = bs, .count = count, .offset = offset, .start = offset,
              .step = step, .bufsize = bufsize, .size = vmm_block_size(bs),
              .write = write, .depth = (unsigned)depth };
  g_mutex_init(&b.lock);
  g_cond_init(&b.cond);
  b.bufs = g_new0(uint8_t *, depth);
  slots = g_new0(Slot, depth);
  for (unsigned i = 0; i < depth; i++) {
    b.bufs[i] = g_aligned_alloc(1, bufsize, 4096);
    memset(b.bufs[i], pattern, bufsize);
    slots[i].b = &b;
    slots[i].slot = i;
  }
  /* the buffers are ours for the whole run: pinned once, not per request */
  struct iovec *regs = g_new(struct iovec, depth);
  for (unsigned i = 0; i < depth; i++)
    regs[i] = (struct iovec){ b.bufs[i], bufsize };
  vmm_block_register_buffers(bs, regs, MIN(depth, 64));
  g_free(regs);
  if (!quiet)
    printf("Sending %" G_GUINT64_FORMAT " %s requests, %" G_GUINT64_FORMAT
           " bytes each, %" G_GUINT64_FORMAT " in parallel (starting at offset %"
           G_GUINT64_FORMAT ", step size %" G_GUINT64_FORMAT ")\n", count,
           write ? "write" : "read", bufsize, depth, offset, step);
  gint64 t0 = g_get_monotonic_time();
  for (unsigned i = 0; i < depth; i++)
    bench_submit(&b, i);
  g_mutex_lock(&b.lock);
  while (b.completed < b.submitted || (b.submitted < b.count && !b.error))
    g_cond_wait(&b.cond, &b.lock);
  g_mutex_unlock(&b.lock);
  vmm_block_drain(bs);
  gboolean ok = !b.error;
  /* like qemu-img bench, the final flush (at close) is not timed */
  double secs = (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
  if (b.error)
    error = b.error;
  ok = vmm_block_close(bs, ok ? &error : NULL) && ok;
  for (unsigned i = 0; i < depth; i++)
    g_aligned_free(b.bufs[i]);
  g_free(b.bufs);
  g_free(slots);
  if (!ok)
    return fail_error(error);
  if (!quiet)
    printf("Run completed in %3.3f seconds.\n", secs);
  return 0;
}

static const char help[] =
  "usage: vessel-img COMMAND [options]\n"
  "  create [-f raw|qcow2] [-o cluster_size=,compat=,refcount_bits=,lazy_refcounts=]\n"
  "         [-b BACKING [-F FMT]] FILE [SIZE]\n"
  "  info [-f FMT] [--output=human|json] [--backing-chain] FILE\n"
  "  check [-f FMT] [-r leaks|all] [--output=human|json] FILE\n"
  "  convert [-f FMT] [-O FMT] [-o OPTIONS] [-c] [-n] INPUT OUTPUT\n"
  "  snapshot [-l | -c NAME | -a NAME | -d NAME] FILE\n"
  "  resize [--shrink] [-f FMT] FILE [+|-]SIZE\n"
  "  commit [-f FMT] [-d] FILE\n"
  "  rebase [-f FMT] [-u] -b BACKING [-F FMT] FILE\n"
  "  bench [-c COUNT] [-d DEPTH] [-f FMT] [-o OFFSET] [-s SIZE] [-S STEP]\n"
  "        [-w] [-t none|writeback] [--pattern=N] FILE\n"
  "Sizes take the suffixes K, M, G, T (powers of 1024).\n";

int main(int argc, char **argv)
{
  if (argc < 2)
    return fail("expecting a command (create, info, check, convert, snapshot, "
                "resize, commit, rebase, bench); see --help");
  const char *cmd = argv[1];
  if (g_str_equal(cmd, "--help") || g_str_equal(cmd, "-h") ||
      g_str_equal(cmd, "help")) {
    fputs(help, stdout);
    return 0;
  }
  if (g_str_equal(cmd, "--version") || g_str_equal(cmd, "-V")) {
    printf("vessel-img 0.1.0\n");
    return 0;
  }
  static const struct { const char *name; int (*fn)(int, char **); } cmds[] = {
    { "create", cmd_create }, { "info", cmd_info }, { "check", cmd_check },
    { "convert", cmd_convert }, { "snapshot", cmd_snapshot },
    { "resize", cmd_resize }, { "commit", cmd_commit },
    { "rebase", cmd_rebase }, { "bench", cmd_bench },
  };
  for (size_t i = 0; i < G_N_ELEMENTS(cmds); i++) {
    if (g_str_equal(cmd, cmds[i].name)) {
      opterr = 0; /* our own one-line message instead of getopt's */
      return cmds[i].fn(argc - 1, argv + 1);
    }
  }
  return fail("unknown command '%s' (see 'vessel-img --help')", cmd);
}
