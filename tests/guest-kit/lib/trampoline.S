/*
 * Vessel guest kit: the AP start-up trampoline. smp.c copies
 * [kit_tramp_start, kit_tramp_end) to KIT_TRAMPOLINE_BASE (0x8000) and sends
 * INIT/SIPI/SIPI with vector 0x08. The AP goes real mode -> 32-bit protected
 * mode -> long mode with the BSP's page tables, then jumps to kit_ap_entry64
 * on the stack the BSP left in tr_stack.
 */
#define BASE 0x8000
#define REL(x) (BASE + (x) - kit_tramp_start)

    .section .rodata
    .balign 16
    .globl kit_tramp_start, kit_tramp_end, kit_tramp_cr3, kit_tramp_stack, kit_tramp_entry
    .code16
kit_tramp_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    lgdtl (tr_gdt_ptr - kit_tramp_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x18, $REL(tr32)

    .code32
tr32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl REL(kit_tramp_cr3), %eax
    movl %eax, %cr3
    movl %cr4, %eax
    orl $0x20, %eax                 /* PAE */
    movl %eax, %cr4
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax                /* LME */
    wrmsr
    movl %cr0, %eax
    andl $0x9FFFFFFF, %eax
    orl $0x80010001, %eax           /* PG, WP, PE */
    movl %eax, %cr0
    ljmp $0x08, $REL(tr64)

    .code64
tr64:
    movq REL(kit_tramp_stack), %rsp
    movq REL(kit_tramp_entry), %rax
    jmp *%rax

    .balign 8
tr_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF        /* 0x08 code, 64-bit (same as the kernel GDT) */
    .quad 0x00CF92000000FFFF        /* 0x10 data */
    .quad 0x00CF9A000000FFFF        /* 0x18 code, 32-bit */
tr_gdt_end:
    .word 0
tr_gdt_ptr:
    .word tr_gdt_end - tr_gdt - 1
    .long REL(tr_gdt)
    .balign 8
kit_tramp_cr3:   .quad 0
kit_tramp_stack: .quad 0
kit_tramp_entry: .quad 0
kit_tramp_end:

    .text
    .code64
    .globl kit_ap_entry64
kit_ap_entry64:
    lgdt kit_gdt_ptr(%rip)
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    xorl %ebp, %ebp
    call kit_ap_main
1:  cli
    hlt
    jmp 1b

    .section .stack, "aw", @nobits
    .balign 4096
    .globl kit_ap_stacks
kit_ap_stacks:
    .skip 64 * 8192

    .section .note.GNU-stack, "", @progbits
