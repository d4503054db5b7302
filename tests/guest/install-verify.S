/* The boot sector the kit installer writes to sector 0 of each disk.
 * SeaBIOS loads it at 0x7C00 and jumps to it in real mode with the boot
 * drive in DL. It reads the payload (sectors 1..N) through the BIOS disk
 * services (INT 13h AH=42h, extended read, 32 sectors at a time into
 * 1000:0000), computes the kit's checksum over it (sum = rol(sum, 5) +
 * dword, over N * 512 bytes, starting from 0) and compares it with the
 * value the installer patched in, then prints
 *     VESSEL-VERIFY: payload ok (N sectors)
 * or  VESSEL-VERIFY: payload BAD (...)
 * on the debug console (0x402) and COM1 (the UART's THR, polled through
 * LSR), and powers off through the ACPI PM block SeaBIOS placed at 0x600
 * (PM1a_CNT = 0x604, SLP_TYP 0, SLP_EN).
 *
 * Patched by the installer (offsets from the start of the sector):
 *   0x1B0  "VRFY"     magic, so the installer knows the layout
 *   0x1B4  u32        expected checksum
 *   0x1B8  u16        N, the payload's length in sectors
 * (no partition table: 0x1BE-0x1FD stay zero). Scratch variables live at
 * 0x600, outside the sector. */
        .code16
        .set    drive, 0x600
        .set    lba, 0x602
        .set    left, 0x604
        .set    chunk, 0x606
        .set    sum, 0x608
        .set    dap, 0x610
        .text
        .globl _start
_start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movw    $0x7c00, %sp
        ljmp    $0, $1f
1:      sti
        movb    %dl, drive
        xorl    %eax, %eax
        movl    %eax, sum
        movw    $1, lba
        movw    nsectors, %ax
        movw    %ax, left
        testw   %ax, %ax
        jz      bad_count

next:   movw    left, %cx
        jcxz    done
        cmpw    $32, %cx
        jbe     2f
        movw    $32, %cx
2:      movw    %cx, chunk
        /* The disk address packet. */
        movw    $dap, %si
        movb    $16, 0(%si)
        movb    $0, 1(%si)
        movw    %cx, 2(%si)
        movw    $0, 4(%si)
        movw    $0x1000, 6(%si)
        movw    lba, %ax
        movw    %ax, 8(%si)
        movw    $0, 10(%si)
        movl    $0, 12(%si)
        movb    $0x42, %ah
        movb    drive, %dl
        int     $0x13
        jc      bad_read
        movw    chunk, %cx
        cmpw    dap + 2, %cx
        jne     bad_read
        /* Checksum chunk * 512 bytes at 1000:0000: chunk * 128 dwords. */
        shlw    $7, %cx
        movl    sum, %eax
        pushw   %ds
        movw    $0x1000, %bx
        movw    %bx, %ds
        xorw    %si, %si
3:      roll    $5, %eax
        addl    (%si), %eax
        addw    $4, %si
        loop    3b
        popw    %ds
        movl    %eax, sum
        movw    chunk, %ax
        addw    %ax, lba
        subw    %ax, left
        jmp     next

done:   movl    sum, %eax
        cmpl    expected, %eax
        jne     bad_sum
        movw    $msg_ok, %si
        call    puts
        movw    nsectors, %ax
        call    putdec
        movw    $msg_ok2, %si
        call    puts
        jmp     off

bad_count:
        movw    $msg_count, %si
        jmp     bad
bad_read:
        movw    $msg_read, %si
        jmp     bad
bad_sum:
        movw    $msg_sum, %si
bad:    pushw   %si
        movw    $msg_bad, %si
        call    puts
        popw    %si
        call    puts
off:    movw    $0x604, %dx
        movw    $0x2000, %ax
        outw    %ax, %dx
4:      hlt
        jmp     4b

/* Prints the NUL-terminated string at DS:SI. */
puts:   lodsb
        testb   %al, %al
        jz      9f
        call    putc
        jmp     puts
9:      ret

/* Prints AL on the debug console and COM1. */
putc:   pushw   %dx
        pushw   %ax
        movw    $0x402, %dx
        outb    %al, %dx
        movw    $0x3fd, %dx
5:      inb     %dx, %al
        testb   $0x20, %al
        jz      5b
        popw    %ax
        movw    $0x3f8, %dx
        outb    %al, %dx
        popw    %dx
        ret

/* Prints AX in decimal. */
putdec: xorw    %cx, %cx
        movw    $10, %bx
6:      xorw    %dx, %dx
        divw    %bx
        pushw   %dx
        incw    %cx
        testw   %ax, %ax
        jnz     6b
7:      popw    %ax
        addb    $'0', %al
        call    putc
        loop    7b
        ret

msg_ok:    .asciz "VESSEL-VERIFY: payload ok ("
msg_ok2:   .asciz " sectors)\r\n"
msg_bad:   .asciz "VESSEL-VERIFY: payload BAD ("
msg_count: .asciz "no length)\r\n"
msg_read:  .asciz "disk read failed)\r\n"
msg_sum:   .asciz "checksum mismatch)\r\n"

        .org    0x1b0
magic:    .ascii "VRFY"
expected: .long 0
nsectors: .word 0
        .org    510
        .byte   0x55, 0xaa
