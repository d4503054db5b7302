/*
 * Vessel guest kit: boot entry.
 *
 * The image is linked as ELF64 at 1 MiB and converted to ELF32 so that
 * multiboot (v1) loaders accept it. It carries two entry points:
 *
 *   _start_mb   the ELF entry, for multiboot loaders: EAX = 0x2BADB002,
 *               EBX = multiboot information.
 *   _start_pvh  named by the Xen ELF note XEN_ELFNOTE_PHYS32_ENTRY (18), for
 *               PVH loaders: EBX = struct hvm_start_info (magic 0x336ec578).
 *
 * Both arrive in 32-bit flat protected mode with paging off. The common path
 * zeroes .bss, builds an identity map of the first 4 GiB with 2 MiB pages
 * (the top 64 MiB, where the APICs live, uncached), enables PAE, EFER.LME and
 * paging, loads a GDT with a 64-bit code segment and calls kit_start() in C.
 */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003 /* bit 0: page-align modules; bit 1: memory info */

#define PTE_P 0x001
#define PTE_W 0x002
#define PTE_U 0x004
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080

    .section .multiboot, "a"
    .balign 4
    .globl multiboot_header
multiboot_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz: "Xen\0" */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long _start_pvh

    .section .text.entry, "ax"
    .code32
    .globl _start_mb
_start_mb:
    cli
    cld
    movl %eax, kit_entry_eax
    movl %ebx, kit_entry_ebx
    movl $1, kit_entry_kind
    jmp common32

    .globl _start_pvh
_start_pvh:
    cli
    cld
    movl %eax, kit_entry_eax
    movl %ebx, kit_entry_ebx
    movl $2, kit_entry_kind

common32:
    movl $kit_boot_stack_top, %esp

    /* Zero .bss (the page tables and stacks live outside it). */
    movl $__bss_start, %edi
    movl $__bss_end, %ecx
    subl %edi, %ecx
    shrl $2, %ecx
    xorl %eax, %eax
    rep stosl

    /* PML4[0] -> PDPT; PDPT[0..3] -> PD 0..3 (the first 4 GiB). */
    movl $kit_pdpt, %eax
    orl $(PTE_P | PTE_W | PTE_U), %eax
    movl %eax, kit_pml4

    movl $kit_pd, %eax
    orl $(PTE_P | PTE_W | PTE_U), %eax
    movl $kit_pdpt, %edi
    movl $4, %ecx
1:  movl %eax, (%edi)
    addl $4096, %eax
    addl $8, %edi
    decl %ecx
    jnz 1b

    /* 2048 PD entries of 2 MiB: 0 .. 4 GiB. */
    movl $kit_pd, %edi
    movl $(PTE_P | PTE_W | PTE_U | PTE_PS), %eax
    movl $2048, %ecx
2:  movl %eax, (%edi)
    movl $0, 4(%edi)
    addl $0x200000, %eax
    addl $8, %edi
    decl %ecx
    jnz 2b

    /* 0xFC000000 .. 4 GiB (IOAPIC, HPET, LAPIC, BIOS): uncached. */
    movl $(kit_pd + 2016 * 8), %edi
    movl $32, %ecx
3:  orl $(PTE_PCD | PTE_PWT), (%edi)
    addl $8, %edi
    decl %ecx
    jnz 3b

    movl $kit_pml4, %eax
    movl %eax, %cr3

    movl %cr4, %eax
    orl $0x20, %eax                 /* PAE */
    movl %eax, %cr4

    movl $0xC0000080, %ecx          /* EFER */
    rdmsr
    orl $0x100, %eax                /* LME */
    wrmsr

    movl %cr0, %eax
    andl $0x9FFFFFFF, %eax          /* clear CD, NW */
    orl $0x80010001, %eax           /* PG, WP, PE */
    movl %eax, %cr0

    lgdt kit_gdt_ptr
    ljmp $0x08, $long_entry

    .code64
long_entry:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $kit_boot_stack_top, %rsp
    xorl %ebp, %ebp
    call kit_start
4:  cli
    hlt
    jmp 4b

    .section .data
    .balign 8
    .globl kit_entry_eax, kit_entry_ebx, kit_entry_kind
kit_entry_eax:  .long 0
kit_entry_ebx:  .long 0
kit_entry_kind: .long 0

    /*
     * GDT. The selector layout also suits SYSCALL/SYSRET (STAR[47:32] = 0x08,
     * STAR[63:48] = 0x10 -> user SS 0x18, user CS 0x20).
     */
    .balign 16
    .globl kit_gdt, kit_gdt_ptr
kit_gdt:
    .quad 0                         /* 0x00 */
    .quad 0x00AF9A000000FFFF        /* 0x08 kernel code, 64-bit */
    .quad 0x00CF92000000FFFF        /* 0x10 kernel data */
    .quad 0x00CFF2000000FFFF        /* 0x18 user data (DPL 3) */
    .quad 0x00AFFA000000FFFF        /* 0x20 user code, 64-bit (DPL 3) */
    .quad 0, 0                      /* 0x28 TSS (filled in by C) */
kit_gdt_end:
    .balign 4
    .word 0
kit_gdt_ptr:
    .word kit_gdt_end - kit_gdt - 1
    .quad kit_gdt

    /* Page tables: the PML4 and PDPT are zeroed with .bss; PDs are written
     * before they are linked in, so they need no zeroing. */
    .section .bss
    .balign 4096
    .globl kit_pml4, kit_pdpt
kit_pml4: .skip 4096
kit_pdpt: .skip 4096

    .section .pagetables, "aw", @nobits
    .balign 4096
    .globl kit_pd
kit_pd: .skip 64 * 4096             /* 64 GiB of 2 MiB pages */

    .section .stack, "aw", @nobits
    .balign 4096
    .globl kit_boot_stack_top
    .skip 65536
kit_boot_stack_top:

    .section .note.GNU-stack, "", @progbits
