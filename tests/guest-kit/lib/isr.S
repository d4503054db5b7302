/*
 * Vessel guest kit: interrupt entry stubs (64-bit gates, iretq) and the
 * CPL3 call gate (enter with iretq, leave with syscall).
 * Never use `int N` in kit guests: it does not emulate on nested PVM KVM.
 */
    .code64
    .text

/* One 16-byte-aligned stub per vector; vectors with a CPU error code skip
 * the dummy push. Layout matches struct kit_frame. */
    .balign 16
    .globl kit_isr_stubs
kit_isr_stubs:
    .set vec, 0
    .rept 256
    .balign 16
    .if (vec == 8) || (vec >= 10 && vec <= 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    jmp isr_common
    .set vec, vec + 1
    .endr

isr_common:
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rdi
    movq %rsp, %rbx
    andq $-16, %rsp
    cld
    call kit_isr_dispatch
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
    addq $16, %rsp
    iretq

/*
 * uint64_t kit_user_enter(fn, arg, user_stack_top)
 * Saves the callee-saved registers and the kernel stack, then iretq to CPL3
 * at kit_user_trampoline with rdi = arg, rsi = fn. The user function returns
 * to the trampoline, which executes ud2 at kit_user_exit; the #UD handler
 * (user.c) recognises that address and calls kit_user_resume(result), which
 * abandons the exception frame and returns from kit_user_enter.
 * (SYSCALL is not used: nested PVM KVM does not deliver it to a non-PVM
 * guest's LSTAR at CPL0.)
 */
    .globl kit_user_enter
kit_user_enter:
    pushq %rbx
    pushq %rbp
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, kit_user_saved_rsp(%rip)
    movq %rdi, %rax                 /* fn */
    movq %rsi, %rdi                 /* arg */
    movq %rax, %rsi                 /* fn */
    pushq $0x1b                     /* SS: user data | RPL 3 */
    pushq %rdx                      /* RSP */
    pushq $0x002                    /* RFLAGS: IF clear */
    pushq $0x23                     /* CS: user code | RPL 3 */
    leaq kit_user_trampoline(%rip), %rax
    pushq %rax
    iretq

    .globl kit_user_trampoline, kit_user_exit
kit_user_trampoline:
    call *%rsi
kit_user_exit:
    ud2                             /* result in rax */
1:  jmp 1b

    /* void kit_user_resume(uint64_t result): CPL0, from the #UD handler. */
    .globl kit_user_resume
kit_user_resume:
    movq %rdi, %rax
    movq kit_user_saved_rsp(%rip), %rsp
    movw $0x10, %cx
    movw %cx, %ds
    movw %cx, %es
    movw %cx, %ss
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbp
    popq %rbx
    ret

    .data
    .balign 8
kit_user_saved_rsp: .quad 0

    .section .note.GNU-stack, "", @progbits
