/* The "installer" on the assistant's install-flow test CD: SeaBIOS loads
 * the CD's boot image (this sector and, after it, the disk's boot sector)
 * at 0x7C00 and jumps here. It prints a line on COM1 and the screen,
 * writes the second sector onto the first hard disk's sector 0 through the
 * BIOS (INT 13h), then restarts the machine as an installer does: a reset
 * through 0xCF9 (ACTION=1) or an ACPI power-off (ACTION=2). */
        .code16
        .text
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp
        sti
        movw    $hello, %si
        call    print
        movw    $0x0301, %ax            /* write 1 sector */
        movw    $0x0001, %cx            /* cylinder 0, sector 1 */
        movw    $0x0080, %dx            /* head 0, the first hard disk */
        movw    $0x7e00, %bx            /* the disk's boot sector */
        int     $0x13
        jc      failed
        movw    $done, %si
        call    print
.if ACTION == 1
        movw    $0xcf9, %dx
        movb    $0x06, %al
        outb    %al, %dx
.else
        movw    $0x604, %dx
        movw    $0x2000, %ax
        outw    %ax, %dx
.endif
halt:   hlt
        jmp     halt
failed: movw    $fail, %si
        call    print
        jmp     halt

print:  lodsb
        testb   %al, %al
        jz      1f
        movw    $0x3f8, %dx
        outb    %al, %dx
        movb    $0x0e, %ah
        movw    $0x0007, %bx
        int     $0x10
        jmp     print
1:      ret

hello:  .asciz  "VESSEL-INSTALL: writing the disk\r\n"
done:   .asciz  "VESSEL-INSTALL: done, restarting\r\n"
fail:   .asciz  "VESSEL-INSTALL: the disk write failed\r\n"
        .org    510
        .byte   0x55, 0xaa
