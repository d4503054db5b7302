/* Vessel guest kit: power-off, the three reset paths, CMOS NVRAM. */
#include "kit.h"

uint8_t kit_cmos_read(uint8_t idx)
{
    outb(0x70, idx & 0x7f);
    return inb(0x71);
}

void kit_cmos_write(uint8_t idx, uint8_t v)
{
    outb(0x70, idx & 0x7f);
    outb(0x71, v);
}

KIT_NORETURN void kit_poweroff(void)
{
    cli();
    if (kit_acpi.pm1a_cnt && !kit_acpi.have_s5)
        kit_printf("kit: no _S5 in the DSDT; trying SLP_TYP 0\n");
    kit_acpi_poweroff();
    /* The VMM may stop the machine asynchronously: wait a second before
     * calling it a failure. */
    kit_udelay(1000000);
    kit_printf("KIT: poweroff failed\n");
    kit_halt();
}

void kit_reset_cf9(void)
{
    outb(0xcf9, 0x02); /* select hard reset */
    io_delay();
    outb(0xcf9, 0x06); /* ... and do it */
    kit_udelay(1000000); /* a VMM may reset asynchronously */
}

void kit_reset_i8042(void)
{
    for (int i = 0; i < 100000 && (inb(0x64) & 0x02); i++)
        io_delay(); /* wait for the input buffer to drain */
    outb(0x64, 0xfe); /* pulse the reset line */
    kit_udelay(1000000);
}

KIT_NORETURN void kit_reset_triple_fault(void)
{
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) null_idt = { 0, 0 };
    cli();
    __asm__ volatile("lidt %0; ud2" : : "m"(null_idt));
    kit_halt();
}
