/* SMBIOS 2.8 structures; see smbios.h. Offsets and values from the DMTF
 * SMBIOS Reference Specification 2.8 (DSP0134), sections 5.2.1 (entry
 * point) and 7.x (structures). */
#include "vmm-core/boot/smbios.h"
#include "vmm-core/boot/table-bytes.h"

#include <gio/gio.h>
#include <string.h>

#define MiB (UINT64_C (1) << 20)
#define GiB (UINT64_C (1) << 30)
#define FOUR_GIB (UINT64_C (4) << 30)

#define SMBIOS_MAJOR 2
#define SMBIOS_MINOR 8
#define SMBIOS_BCD_REVISION 0x28
#define SMBIOS_MAX_CPUS 4096
#define SMBIOS_HEADER 4                 /* type, length, handle */

/* Entry point (5.2.1). */
#define EP_CHECKSUM 4
#define EP_LENGTH 5
#define EP_MAJOR 6
#define EP_MINOR 7
#define EP_MAX_STRUCT 8
#define EP_REVISION 10
#define EP_INTERMEDIATE 16
#define EP_INTERMEDIATE_CHECKSUM 21
#define EP_TABLE_LENGTH 22
#define EP_TABLE_ADDRESS 24
#define EP_STRUCT_COUNT 28
#define EP_BCD_REVISION 30
#define EP_SIZE 0x1F

/* Lengths of each structure's formatted area for version 2.8. */
#define T1_LEN 0x1B
#define T3_LEN 0x16                     /* no contained elements, SKU */
#define T4_LEN 0x2A
#define T16_LEN 0x17
#define T17_LEN 0x28
#define T19_LEN 0x1F
#define T32_LEN 0x0B
#define T127_LEN 0x04

#define HANDLE_NONE 0xFFFF              /* "not provided" for cache handles */
#define HANDLE_NO_ERROR_INFO 0xFFFE

typedef struct {
  GByteArray *out;
  GByteArray *s;            /* the structure being built */
  GPtrArray *strings;       /* its strings, borrowed */
  uint16_t next_handle;
  uint16_t count;
  size_t largest;           /* before the u16 limit check */
} builder;

struct vmm_smbios_tables {
  GBytes *anchor;
  GBytes *tables;
};






/* Starts a structure; returns its handle. */
static uint16_t
begin (builder *b, uint8_t type, uint8_t len)
{
  uint16_t handle = b->next_handle++;

  g_byte_array_set_size (b->s, len);
  memset (b->s->data, 0, len);
  g_ptr_array_set_size (b->strings, 0);
  set8 (b->s, 0, type);
  set8 (b->s, 1, len);
  set16 (b->s, 2, handle);
  return handle;
}

/* Adds a string and stores its number at @off; NULL or "" leaves 0 ("no
 * string"). */
static void
str (builder *b, size_t off, const char *s)
{
  if (!s || !*s)
    return;
  g_ptr_array_add (b->strings, (gpointer) s);
  g_assert (b->strings->len <= 255);
  set8 (b->s, off, (uint8_t) b->strings->len);
}

/* Appends the structure: formatted area, strings each with its NUL, then
 * one more NUL (two when there are no strings). */
static void
end (builder *b)
{
  size_t start = b->out->len;
  uint8_t nul = 0;

  g_byte_array_append (b->out, b->s->data, b->s->len);
  for (guint i = 0; i < b->strings->len; i++)
    {
      const char *s = g_ptr_array_index (b->strings, i);
      g_byte_array_append (b->out, (const uint8_t *) s, strlen (s) + 1);
    }
  if (b->strings->len == 0)
    g_byte_array_append (b->out, &nul, 1);
  g_byte_array_append (b->out, &nul, 1);

  b->largest = MAX (b->largest, b->out->len - start);
  b->count++;
}

/* "6a1d5cbe-0b6f-4b8e-9a36-1c2b3d4e5f60" -> SMBIOS byte order. */
static gboolean
parse_uuid (const char *text, uint8_t out[16], GError **error)
{
  uint8_t raw[16];
  int n = 0;

  if (!g_uuid_string_is_valid (text))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "SMBIOS: \"%s\" is not a UUID", text);
      return FALSE;
    }
  for (const char *p = text; *p && n < 16; p++)
    {
      if (*p == '-')
        continue;
      raw[n++] = (uint8_t) (g_ascii_xdigit_value (p[0]) << 4
                            | g_ascii_xdigit_value (p[1]));
      p++;
    }
  g_assert (n == 16);
  /* time_low, time_mid and time_hi_and_version little-endian (7.2.1). */
  out[0] = raw[3];
  out[1] = raw[2];
  out[2] = raw[1];
  out[3] = raw[0];
  out[4] = raw[5];
  out[5] = raw[4];
  out[6] = raw[7];
  out[7] = raw[6];
  memcpy (out + 8, raw + 8, 8);
  return TRUE;
}

static const char *
or_default (const char *s, const char *def)
{
  return s ? s : def;
}

/* 7.2 System Information. */
static void
build_type1 (builder *b, const vmm_smbios_config *cfg, const uint8_t uuid[16])
{
  begin (b, 1, T1_LEN);
  str (b, 0x04, or_default (cfg->manufacturer, "Vessel"));
  str (b, 0x05, or_default (cfg->product, "Vessel Virtual Machine"));
  str (b, 0x06, or_default (cfg->version, "1.0"));
  str (b, 0x07, cfg->serial);
  memcpy (b->s->data + 0x08, uuid, 16);
  set8 (b->s, 0x18, 0x06);             /* wake-up type: power switch */
  str (b, 0x19, cfg->sku);
  str (b, 0x1A, or_default (cfg->family, "Virtual Machine"));
  end (b);
}

/* 7.4 System Enclosure or Chassis. */
static void
build_type3 (builder *b, const vmm_smbios_config *cfg)
{
  begin (b, 3, T3_LEN);
  str (b, 0x04, or_default (cfg->manufacturer, "Vessel"));
  set8 (b->s, 0x05, 0x01);             /* type: other */
  set8 (b->s, 0x09, 0x03);             /* boot-up state: safe */
  set8 (b->s, 0x0A, 0x03);             /* power supply state: safe */
  set8 (b->s, 0x0B, 0x03);             /* thermal state: safe */
  set8 (b->s, 0x0C, 0x02);             /* security status: unknown */
  set8 (b->s, 0x13, 0);                /* contained element count */
  set8 (b->s, 0x14, 0);                /* contained element record length */
  end (b);
}

/* 7.5 Processor Information. */
static void
build_type4 (builder *b, const vmm_smbios_config *cfg, unsigned socket,
             unsigned cores)
{
  g_autofree char *designation = g_strdup_printf ("CPU %u", socket);
  uint16_t mhz = cfg->cpu_mhz ? cfg->cpu_mhz : 2000;
  uint8_t count = (uint8_t) MIN (cores, 255u);
  uint16_t characteristics = 1u << 2;  /* 64-bit capable */

  if (cores > 1)
    characteristics |= 1u << 3;        /* multi-core */

  begin (b, 4, T4_LEN);
  str (b, 0x04, designation);
  set8 (b->s, 0x05, 0x03);             /* central processor */
  set8 (b->s, 0x06, 0x01);             /* family: other */
  str (b, 0x07, or_default (cfg->manufacturer, "Vessel"));
  set32 (b->s, 0x08, cfg->cpuid_signature);
  set32 (b->s, 0x0C, cfg->cpuid_features);
  set16 (b->s, 0x12, 0);               /* external clock: unknown */
  set16 (b->s, 0x14, mhz);             /* max speed */
  set16 (b->s, 0x16, mhz);             /* current speed */
  set8 (b->s, 0x18, 0x41);             /* populated, enabled */
  set8 (b->s, 0x19, 0x01);             /* upgrade: other */
  set16 (b->s, 0x1A, HANDLE_NONE);     /* L1, L2, L3 cache */
  set16 (b->s, 0x1C, HANDLE_NONE);
  set16 (b->s, 0x1E, HANDLE_NONE);
  set8 (b->s, 0x23, count);            /* core count */
  set8 (b->s, 0x24, count);            /* cores enabled */
  set8 (b->s, 0x25, count);            /* thread count */
  set16 (b->s, 0x26, characteristics);
  set16 (b->s, 0x28, 0x01);            /* family 2: other */
  end (b);
}

/* 7.17 Physical Memory Array; returns its handle. */
static uint16_t
build_type16 (builder *b, uint64_t total, unsigned ndevices)
{
  uint64_t kib = total / 1024;
  uint16_t handle = begin (b, 16, T16_LEN);

  set8 (b->s, 0x04, 0x01);             /* location: other */
  set8 (b->s, 0x05, 0x03);             /* use: system memory */
  set8 (b->s, 0x06, 0x03);             /* error correction: none */
  if (kib < 0x80000000u)
    set32 (b->s, 0x07, (uint32_t) kib);
  else
    {
      set32 (b->s, 0x07, 0x80000000u); /* see the extended field */
      set64 (b->s, 0x0F, total);
    }
  set16 (b->s, 0x0B, HANDLE_NO_ERROR_INFO);
  set16 (b->s, 0x0D, (uint16_t) ndevices);
  end (b);
  return handle;
}

/* 7.18 Memory Device. */
static void
build_type17 (builder *b, const vmm_smbios_config *cfg, uint16_t array,
              unsigned index, uint64_t size)
{
  g_autofree char *locator = g_strdup_printf ("DIMM %u", index);
  uint64_t mib = size / MiB;

  begin (b, 17, T17_LEN);
  set16 (b->s, 0x04, array);
  set16 (b->s, 0x06, HANDLE_NO_ERROR_INFO);
  set16 (b->s, 0x08, 64);              /* total width */
  set16 (b->s, 0x0A, 64);              /* data width */
  if (mib < 0x7FFF)
    set16 (b->s, 0x0C, (uint16_t) mib);
  else
    {
      set16 (b->s, 0x0C, 0x7FFF);      /* see the extended size */
      set32 (b->s, 0x1C, (uint32_t) mib);
    }
  set8 (b->s, 0x0E, 0x09);             /* form factor: DIMM */
  str (b, 0x10, locator);
  set8 (b->s, 0x12, 0x07);             /* type: RAM */
  set16 (b->s, 0x13, 1u << 1);         /* type detail: other */
  str (b, 0x17, or_default (cfg->manufacturer, "Vessel"));
  end (b);
}

/* 7.20 Memory Array Mapped Address, for [start, start + size). */
static void
build_type19 (builder *b, uint16_t array, uint64_t start, uint64_t size,
              unsigned ndevices)
{
  uint64_t last = start + size - 1;

  begin (b, 19, T19_LEN);
  if (last / 1024 < 0xFFFFFFFFu)
    {
      set32 (b->s, 0x04, (uint32_t) (start / 1024));
      set32 (b->s, 0x08, (uint32_t) (last / 1024));
    }
  else
    {
      set32 (b->s, 0x04, 0xFFFFFFFFu);  /* see the extended fields */
      set32 (b->s, 0x08, 0xFFFFFFFFu);
      set64 (b->s, 0x0F, start);
      set64 (b->s, 0x17, last);
    }
  set16 (b->s, 0x0C, array);
  set8 (b->s, 0x0E, (uint8_t) MIN (ndevices, 255u));
  end (b);
}

/* 7.33 System Boot Information. */
static void
build_type32 (builder *b)
{
  begin (b, 32, T32_LEN);
  set8 (b->s, 0x0A, 0);                /* no errors detected */
  end (b);
}

static gboolean
check_config (const vmm_smbios_config *cfg, GError **error)
{
  unsigned sockets = cfg->sockets ? cfg->sockets : cfg->ncpus;

  if (cfg->ncpus < 1 || cfg->ncpus > SMBIOS_MAX_CPUS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "SMBIOS: %u CPUs is out of range (1-%u)", cfg->ncpus,
                   SMBIOS_MAX_CPUS);
      return FALSE;
    }
  if (sockets > cfg->ncpus || cfg->ncpus % sockets != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "SMBIOS: %u CPUs do not split evenly into %u sockets",
                   cfg->ncpus, sockets);
      return FALSE;
    }
  if (cfg->ram_below_4g < MiB || cfg->ram_below_4g > FOUR_GIB
      || cfg->ram_above_4g > (UINT64_C (1) << 52))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "SMBIOS: RAM sizes out of range");
      return FALSE;
    }
  return TRUE;
}

vmm_smbios_tables *
vmm_smbios_build (const vmm_smbios_config *cfg, GError **error)
{
  g_autoptr (GByteArray) out = NULL;
  g_autoptr (GByteArray) s = NULL;
  g_autoptr (GPtrArray) strings = NULL;
  g_autoptr (GByteArray) ep = NULL;
  vmm_smbios_tables *t;
  uint8_t uuid[16] = { 0 };
  unsigned sockets, cores, ndevices;
  uint64_t total, left;
  uint16_t array;
  builder b;

  g_return_val_if_fail (cfg != NULL, NULL);
  if (!check_config (cfg, error))
    return NULL;
  if (cfg->uuid && !parse_uuid (cfg->uuid, uuid, error))
    return NULL;

  out = g_byte_array_new ();
  s = g_byte_array_new ();
  strings = g_ptr_array_new ();
  b = (builder) { out, s, strings, VMM_SMBIOS_FIRST_HANDLE, 0, 0 };

  sockets = cfg->sockets ? cfg->sockets : cfg->ncpus;
  cores = cfg->ncpus / sockets;
  total = cfg->ram_below_4g + cfg->ram_above_4g;
  ndevices = (unsigned) ((total + VMM_SMBIOS_MEMORY_DEVICE_MAX - 1)
                         / VMM_SMBIOS_MEMORY_DEVICE_MAX);

  build_type1 (&b, cfg, uuid);
  build_type3 (&b, cfg);
  for (unsigned i = 0; i < sockets; i++)
    build_type4 (&b, cfg, i, cores);
  array = build_type16 (&b, total, ndevices);
  left = total;
  for (unsigned i = 0; i < ndevices; i++)
    {
      uint64_t size = MIN (left, VMM_SMBIOS_MEMORY_DEVICE_MAX);

      build_type17 (&b, cfg, array, i, size);
      left -= size;
    }
  build_type19 (&b, array, 0, cfg->ram_below_4g, ndevices);
  if (cfg->ram_above_4g)
    build_type19 (&b, array, FOUR_GIB, cfg->ram_above_4g, ndevices);
  build_type32 (&b);
  begin (&b, 127, T127_LEN);
  end (&b);

  if (out->len > 0xFFFF)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "SMBIOS: %u structures take %u bytes, over the 64 KiB a "
                   "2.x entry point can describe; use fewer sockets",
                   b.count, out->len);
      return NULL;
    }

  /* The 2.1 entry point (5.2.1); the firmware sets the table address. */
  ep = g_byte_array_sized_new (EP_SIZE);
  g_byte_array_set_size (ep, EP_SIZE);
  memset (ep->data, 0, EP_SIZE);
  memcpy (ep->data, "_SM_", 4);
  set8 (ep, EP_LENGTH, EP_SIZE);
  set8 (ep, EP_MAJOR, SMBIOS_MAJOR);
  set8 (ep, EP_MINOR, SMBIOS_MINOR);
  set16 (ep, EP_MAX_STRUCT, (uint16_t) b.largest);
  set8 (ep, EP_REVISION, 0);
  memcpy (ep->data + EP_INTERMEDIATE, "_DMI_", 5);
  set16 (ep, EP_TABLE_LENGTH, (uint16_t) out->len);
  set32 (ep, EP_TABLE_ADDRESS, 0);
  set16 (ep, EP_STRUCT_COUNT, b.count);
  set8 (ep, EP_BCD_REVISION, SMBIOS_BCD_REVISION);
  /* The intermediate checksum covers bytes 0x10-0x1E, the main one all 31,
   * including the intermediate: this order. */
  ep->data[EP_INTERMEDIATE_CHECKSUM] =
    (uint8_t) -byte_sum (ep->data + EP_INTERMEDIATE, EP_SIZE - EP_INTERMEDIATE);
  ep->data[EP_CHECKSUM] = (uint8_t) -byte_sum (ep->data, EP_SIZE);

  t = g_new0 (vmm_smbios_tables, 1);
  t->anchor = g_byte_array_free_to_bytes (g_steal_pointer (&ep));
  t->tables = g_byte_array_free_to_bytes (g_steal_pointer (&out));
  return t;
}

void
vmm_smbios_tables_free (vmm_smbios_tables *t)
{
  if (!t)
    return;
  g_bytes_unref (t->anchor);
  g_bytes_unref (t->tables);
  g_free (t);
}

GBytes *
vmm_smbios_tables_get_anchor (const vmm_smbios_tables *t)
{
  return g_bytes_ref (t->anchor);
}

GBytes *
vmm_smbios_tables_get_tables (const vmm_smbios_tables *t)
{
  return g_bytes_ref (t->tables);
}
