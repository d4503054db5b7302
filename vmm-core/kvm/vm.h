/* The KVM virtual machine: /dev/kvm, the VM file descriptor, memory slots,
 * the in-kernel irqchip and PIT, and the vCPUs with their threads.
 *
 * Every registration with KVM is recorded here so that a reset can throw the
 * kernel's VM away and build it again over the same guest memory: that puts
 * every in-kernel device (PIC, IOAPIC, PIT, LAPICs) and every CPU register
 * back to its power-on state in one step. */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

#define VMM_MAX_VCPUS 64

typedef struct vmm_vm vmm_vm;
typedef struct vmm_vcpu vmm_vcpu;

/* What a vCPU cannot handle itself is reported to its owner. */
typedef enum {
  VMM_VCPU_EVENT_RESET,    /* triple fault or a reset system event */
  VMM_VCPU_EVENT_POWEROFF, /* a shutdown system event */
  VMM_VCPU_EVENT_ERROR,    /* KVM gave up: @message says why */
} vmm_vcpu_event;

typedef struct vmm_vcpu_handlers {
  uint64_t (*pio_read) (void *opaque, unsigned cpu, uint16_t port,
                        unsigned size);
  void (*pio_write) (void *opaque, unsigned cpu, uint16_t port, unsigned size,
                     uint64_t value);
  uint64_t (*mmio_read) (void *opaque, unsigned cpu, uint64_t addr,
                         unsigned size);
  void (*mmio_write) (void *opaque, unsigned cpu, uint64_t addr,
                      unsigned size, uint64_t value);
  void (*event) (void *opaque, unsigned cpu, vmm_vcpu_event event,
                 const char *message);
  void *opaque;
} vmm_vcpu_handlers;

/* Opens /dev/kvm and creates the VM with @ncpus vCPUs (threads not started).
 * Errors name what the user can do (no /dev/kvm, no permission, too many
 * CPUs). */
vmm_vm *vmm_vm_new (unsigned ncpus, const vmm_vcpu_handlers *handlers,
                    GError **error);
void vmm_vm_free (vmm_vm *vm);

unsigned vmm_vm_ncpus (vmm_vm *vm);

/* Maps host memory at guest-physical @gpa. A slot is identified by its @gpa;
 * mapping at a @gpa already mapped replaces that slot. @len 0 removes it.
 * Writes to a read-only slot reach the MMIO handlers. */
gboolean vmm_vm_map (vmm_vm *vm, uint64_t gpa, uint64_t len, void *host,
                     bool readonly, GError **error);
void vmm_vm_unmap (vmm_vm *vm, uint64_t gpa);
/* Like vmm_vm_map, with KVM tracking which pages the guest writes. */
gboolean vmm_vm_map_logged (vmm_vm *vm, uint64_t gpa, uint64_t len,
                            void *host, GError **error);
/* The pages of the logged slot at @gpa written since the last call, one bit
 * per 4 KiB page (bit i of word i/64), then cleared. False if no such
 * slot. */
bool vmm_vm_get_dirty_log (vmm_vm *vm, uint64_t gpa, unsigned long *bitmap);

/* Applies "host,-feature,..." to every vCPU's CPUID (before start; kept
 * across rebuilds). Adding back only works for what KVM offers. */
gboolean vmm_vm_set_cpu_model (vmm_vm *vm, const char *spec, GError **error);

/* The in-kernel I/O APIC's ID (what the MADT says); kept across rebuilds. */
gboolean vmm_vm_set_ioapic_id (vmm_vm *vm, uint8_t id, GError **error);

/* A GSI of the in-kernel irqchip (0-15 ISA through PIC and IOAPIC, 16-23
 * IOAPIC only). Callable from any thread. */
void vmm_vm_set_irq (vmm_vm *vm, unsigned gsi, bool level);

/* ioeventfd: a guest write of @len bytes at @addr signals @fd. */
gboolean vmm_vm_add_ioeventfd (vmm_vm *vm, bool pio, uint64_t addr,
                               unsigned len, int fd, GError **error);
void vmm_vm_remove_ioeventfd (vmm_vm *vm, bool pio, uint64_t addr,
                              unsigned len, int fd);
/* An MSI message raised by writing @fd (irqfd on a routed GSI). Returns the
 * GSI, or -1 with @error. */
int vmm_vm_add_msi_irqfd (vmm_vm *vm, uint64_t addr, uint32_t data, int fd,
                          GError **error);
void vmm_vm_update_msi (vmm_vm *vm, int gsi, uint64_t addr, uint32_t data);
void vmm_vm_remove_msi_irqfd (vmm_vm *vm, int gsi);

/* Starts one thread per vCPU, running. */
gboolean vmm_vm_start (vmm_vm *vm, GError **error);
/* Parks every vCPU outside KVM_RUN; returns when all are parked. Must not be
 * called from a vCPU thread. */
void vmm_vm_pause (vmm_vm *vm);
void vmm_vm_resume (vmm_vm *vm);
/* Re-creates the kernel's VM and vCPUs over the same memory (the vCPUs must
 * be paused). */
gboolean vmm_vm_rebuild (vmm_vm *vm, GError **error);
/* Ends and joins the vCPU threads. */
void vmm_vm_stop (vmm_vm *vm);

/* Register access for boot set-up (vCPUs paused or not started). */
struct kvm_regs;
struct kvm_sregs;
gboolean vmm_vm_get_regs (vmm_vm *vm, unsigned cpu, struct kvm_regs *regs,
                          struct kvm_sregs *sregs, GError **error);
gboolean vmm_vm_set_regs (vmm_vm *vm, unsigned cpu,
                          const struct kvm_regs *regs,
                          const struct kvm_sregs *sregs, GError **error);

/* Called from a device handler on a vCPU thread: this vCPU stops after the
 * current exit until the VM is paused and resumed (used when a guest write
 * asks for a reset or power-off that the I/O thread carries out). */
void vmm_vm_stall_current (void);

/* True on the thread of a vCPU of any VM. */
bool vmm_vm_on_vcpu_thread (void);

G_END_DECLS
