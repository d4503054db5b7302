/* Vessel guest kit: the 8042 keyboard controller and a PS/2 keyboard (IBM
 * PS/2 Hardware Interface Technical Reference: status port 0x64 with OBF
 * bit 0 and IBF bit 1, data port 0x60, controller command 0x60 "write
 * command byte", keyboard command 0xFF "reset" answered by ACK 0xFA and
 * BAT 0xAA). */
#include "kit.h"

#define KBC_DATA 0x60
#define KBC_STATUS 0x64
#define KBC_CMD 0x64
#define ST_OBF 0x01
#define ST_IBF 0x02

static int wait_write(void)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, 500000);
    while (inb(KBC_STATUS) & ST_IBF)
        if (kit_deadline_passed(&dl))
            return -1;
    return 0;
}

int kit_ps2_read(uint64_t us)
{
    struct kit_deadline dl;
    kit_deadline_set(&dl, us);
    while (!(inb(KBC_STATUS) & ST_OBF))
        if (kit_deadline_passed(&dl))
            return -1;
    return inb(KBC_DATA);
}

void kit_ps2_flush(void)
{
    for (int i = 0; i < 256 && (inb(KBC_STATUS) & ST_OBF); i++)
        (void)inb(KBC_DATA);
}

int kit_ps2_init_keyboard(uint8_t command_byte)
{
    kit_ps2_flush();
    if (wait_write() || (outb(KBC_CMD, 0x60), wait_write()))
        return -1;
    outb(KBC_DATA, command_byte);
    kit_ps2_flush();
    /* Reset the keyboard: ACK, then the self-test result. */
    if (wait_write())
        return -2;
    outb(KBC_DATA, 0xff);
    int ack = kit_ps2_read(1000000);
    int bat = kit_ps2_read(1000000);
    if (ack != 0xfa || bat != 0xaa)
        return -3;
    return 0;
}
