/* cpuid: reports the CPU identity the engine gives each guest: the leaf 1
 * feature bits that --cpu can hide, and the APIC ID. */
#include "kit.h"

KIT_GUEST("cpuid");

void kit_main(void)
{
    uint32_t r[4];
    cpuid(1, 0, &r[0], &r[1], &r[2], &r[3]);
    kit_printf("KIT: cpuid 1 ecx=%x edx=%x apic=%u\n", r[2], r[3], r[1] >> 24);
    kit_printf("KIT: cpuid cx16=%u xsave=%u x2apic=%u hypervisor=%u\n",
               (r[2] >> 13) & 1, (r[2] >> 26) & 1, (r[2] >> 21) & 1, (r[2] >> 31) & 1);
    kit_pass();
}
