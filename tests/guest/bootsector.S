/* A boot sector for firmware boot tests: SeaBIOS loads it at 0x7C00 from a
 * disk (MBR) or a CD (El Torito, no emulation) and jumps to it in real mode.
 * It prints one line on the debug console and COM1, then powers the
 * machine off through the ACPI PM block SeaBIOS placed at 0x600
 * (PM1a_CNT = 0x604, SLP_TYP 0 = soft off, SLP_EN). Built with --defsym
 * MEDIUM=1 for the disk, 2 for the CD. */
        .code16
        .text
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %ss
        movw    $0x7c00, %sp
        movw    $message, %si
1:      lodsb
        testb   %al, %al
        jz      2f
        movw    $0x402, %dx
        outb    %al, %dx
        movw    $0x3f8, %dx
        outb    %al, %dx
        jmp     1b
2:      movw    $0x604, %dx
        movw    $0x2000, %ax
        outw    %ax, %dx
3:      hlt
        jmp     3b

message:
.if MEDIUM == 1
        .asciz  "VESSEL-BOOT: from the disk\r\n"
.else
        .asciz  "VESSEL-BOOT: from the CD\r\n"
.endif
        .org    510
        .byte   0x55, 0xaa
