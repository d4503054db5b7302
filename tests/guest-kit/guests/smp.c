/* smp: count CPUs in the MADT, start every AP with INIT/SIPI/SIPI. */
#include "kit.h"

KIT_GUEST("smp");

void kit_main(void)
{
    int madt = kit_acpi.ncpus;
    if (!kit_acpi.madt)
        kit_fail("no MADT");
    for (int i = 0; i < madt; i++)
        kit_printf("kit: madt cpu apic=%u\n", kit_acpi.cpu_apic_id[i]);

    int online = kit_smp_boot(NULL);
    for (int i = 0; i < online && i < KIT_MAX_CPUS; i++)
        kit_printf("kit: cpu %d online apic=%u%s\n", i, kit_smp_online_ids[i],
                   i == 0 ? " (bsp)" : "");
    kit_printf("KIT: cpus madt=%d online=%d\n", madt, online);
    if (online != madt)
        kit_fail("%d of %d CPUs came online", online, madt);
    kit_pass();
}
