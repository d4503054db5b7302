/* A CPU model as a user writes it: "host" (everything KVM offers) followed
 * by features to hide, e.g. "host,-cx16,-x2apic" (or add back: "+name",
 * only where KVM offers it). Names follow Linux's /proc/cpuinfo flags. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct vmm_cpu_feature_patch {
  uint32_t function;
  uint32_t index;
  unsigned reg; /* 0 eax, 1 ebx, 2 ecx, 3 edx */
  unsigned bit;
  bool present;
} vmm_cpu_feature_patch;

/* Parses @spec into @patches (of vmm_cpu_feature_patch). */
gboolean vmm_cpu_features_parse (const char *spec, GArray *patches,
                                 GError **error);
