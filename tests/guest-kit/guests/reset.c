/*
 * reset: three reset paths, with CMOS NVRAM byte 0x4f as a stage counter
 * that survives reset (0x4f is unused by SeaBIOS and QEMU; BIOSes use
 * 0x38-0x3f and 0x5b-0x5f). Stages: 0 -> reset via port 0xcf9; 1 -> reset via
 * the i8042 (0xfe to port 0x64); 2 -> triple fault; 3 -> pass.
 */
#include "kit.h"

KIT_GUEST("reset");

#define STAGE_CMOS 0x4f

void kit_main(void)
{
    uint8_t stage = kit_cmos_read(STAGE_CMOS);
    kit_printf("kit: reset stage %u (CMOS 0x%x)\n", stage, STAGE_CMOS);
    switch (stage) {
    case 0:
        kit_cmos_write(STAGE_CMOS, 1);
        kit_printf("KIT: reset via cf9\n");
        kit_reset_cf9();
        kit_cmos_write(STAGE_CMOS, 0);
        kit_fail("still running after the 0xcf9 reset");
    case 1:
        kit_printf("KIT: back after cf9\n");
        kit_cmos_write(STAGE_CMOS, 2);
        kit_printf("KIT: reset via i8042\n");
        kit_reset_i8042();
        kit_cmos_write(STAGE_CMOS, 0);
        kit_fail("still running after the i8042 reset");
    case 2:
        kit_printf("KIT: back after i8042\n");
        kit_cmos_write(STAGE_CMOS, 3);
        kit_printf("KIT: reset via triple fault\n");
        kit_reset_triple_fault();
    case 3:
        kit_printf("KIT: back after triple fault\n");
        kit_cmos_write(STAGE_CMOS, 0);
        kit_pass();
    default:
        kit_cmos_write(STAGE_CMOS, 0);
        kit_fail("unexpected stage %u in CMOS 0x%x", stage, STAGE_CMOS);
    }
}
