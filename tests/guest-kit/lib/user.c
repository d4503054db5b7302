/* Vessel guest kit: run a function at CPL3 (64-bit) and come back on ud2. */
#include "kit.h"

uint64_t kit_user_enter(uint64_t (*fn)(uint64_t), uint64_t arg, uint64_t stack_top);
KIT_NORETURN void kit_user_resume(uint64_t result);
extern char kit_user_exit[];

static uint8_t user_stack[16384] __attribute__((aligned(16)));

static void ud_handler(struct kit_frame *f)
{
    if ((f->cs & 3) == 3 && f->rip == (uint64_t)(uintptr_t)kit_user_exit)
        kit_user_resume(f->rax);
    kit_exception_fail(f);
}

uint64_t kit_user_call(uint64_t (*fn)(uint64_t), uint64_t arg)
{
    kit_set_handler(6, ud_handler);
    uint64_t flags = read_rflags();
    cli();
    uint64_t r = kit_user_enter(fn, arg, (uint64_t)(uintptr_t)(user_stack + sizeof(user_stack)));
    if (flags & 0x200)
        sti();
    return r;
}
