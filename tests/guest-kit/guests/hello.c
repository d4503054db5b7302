/* hello: the smallest kit guest. COM1 + debugcon, then power off. */
#include "kit.h"

KIT_GUEST("hello");

static bool print_dev(const struct kit_pci_dev *d, void *ctx)
{
    (void)ctx;
    kit_printf("kit: pci %02x:%02x.%x %04x:%04x class %02x%02x\n", d->bus, d->dev, d->fn,
               d->vendor, d->device, d->class_code, d->subclass);
    return true;
}

void kit_main(void)
{
    kit_printf("KIT: hello from vessel guest-kit\n");
    kit_debugcon_puts("KIT: hello from vessel guest-kit\n");
    kit_acpi_print();
    if (kit_boot.cmdline[0])
        kit_printf("kit: cmdline \"%s\"\n", kit_boot.cmdline);
    kit_pci_scan(print_dev, NULL);
    kit_pass();
}
