#include "vmm-core/kvm/cpu-features.h"

#include <gio/gio.h>
#include <string.h>

/* CPUID bit positions: Intel SDM vol. 2A, CPUID, tables 3-10, 3-11 and the
 * structured extended feature leaf (EAX=7). */
static const struct {
  const char *name;
  uint32_t function;
  uint32_t index;
  unsigned reg;
  unsigned bit;
} known_features[] = {
  { "sse3", 1, 0, 2, 0 },      { "pclmulqdq", 1, 0, 2, 1 },
  { "ssse3", 1, 0, 2, 9 },     { "fma", 1, 0, 2, 12 },
  { "cx16", 1, 0, 2, 13 },     { "pcid", 1, 0, 2, 17 },
  { "sse4_1", 1, 0, 2, 19 },   { "sse4_2", 1, 0, 2, 20 },
  { "x2apic", 1, 0, 2, 21 },   { "movbe", 1, 0, 2, 22 },
  { "popcnt", 1, 0, 2, 23 },   { "tsc_deadline_timer", 1, 0, 2, 24 },
  { "aes", 1, 0, 2, 25 },      { "xsave", 1, 0, 2, 26 },
  { "avx", 1, 0, 2, 28 },      { "f16c", 1, 0, 2, 29 },
  { "rdrand", 1, 0, 2, 30 },   { "hypervisor", 1, 0, 2, 31 },
  { "mtrr", 1, 0, 3, 12 },     { "pse36", 1, 0, 3, 17 },
  { "fsgsbase", 7, 0, 1, 0 },  { "bmi1", 7, 0, 1, 3 },
  { "avx2", 7, 0, 1, 5 },      { "smep", 7, 0, 1, 7 },
  { "bmi2", 7, 0, 1, 8 },      { "erms", 7, 0, 1, 9 },
  { "invpcid", 7, 0, 1, 10 },  { "avx512f", 7, 0, 1, 16 },
  { "rdseed", 7, 0, 1, 18 },   { "adx", 7, 0, 1, 19 },
  { "smap", 7, 0, 1, 20 },     { "umip", 7, 0, 2, 2 },
  { "pku", 7, 0, 2, 3 },       { "la57", 7, 0, 2, 16 },
  { "pdpe1gb", 0x80000001, 0, 3, 26 }, { "rdtscp", 0x80000001, 0, 3, 27 },
  { "lahf_lm", 0x80000001, 0, 2, 0 },
};

gboolean
vmm_cpu_features_parse (const char *spec, GArray *patches, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (spec, ",", -1);
  if (!parts[0] || strcmp (parts[0], "host") != 0)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "CPU model '%s' is not known; use host[,-feature...]",
                   spec);
      return FALSE;
    }
  for (size_t i = 1; parts[i]; i++)
    {
      const char *p = parts[i];
      bool present;
      if (p[0] == '-')
        present = false;
      else if (p[0] == '+')
        present = true;
      else
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "CPU feature '%s' needs a + or - before it", p);
          return FALSE;
        }
      size_t k;
      for (k = 0; k < G_N_ELEMENTS (known_features); k++)
        if (strcmp (known_features[k].name, p + 1) == 0)
          break;
      if (k == G_N_ELEMENTS (known_features))
        {
          g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                       "CPU feature '%s' is not one Vessel knows", p + 1);
          return FALSE;
        }
      vmm_cpu_feature_patch patch = {
        known_features[k].function, known_features[k].index,
        known_features[k].reg, known_features[k].bit, present,
      };
      g_array_append_val (patches, patch);
    }
  return TRUE;
}
