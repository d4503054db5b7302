/* VM and vCPU lifecycle over /dev/kvm (the KVM API, Documentation/virt/kvm/api.rst). */
#include "vmm-core/kvm/vm.h"

#include "vmm-core/kvm/cpu-features.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define KVM_DEVICE "/dev/kvm"
#define KVM_API_EXPECTED 12
/* Below the BIOS at the top of 4 GiB, as PC firmware expects (Intel VMX needs
 * three pages for the real-mode TSS and one for the identity map). */
#define KVM_TSS_ADDR 0xfffbd000u
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000u
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MISC_ENABLE_FAST_STRING 1u
#define MAX_SLOTS 256

typedef enum { WANT_RUN, WANT_PAUSE, WANT_STOP } vcpu_want;

struct vmm_vcpu {
  vmm_vm *vm;
  unsigned index;
  int fd;
  struct kvm_run *run;
  GThread *thread;
  pthread_t tid;
  bool tid_valid;
  bool parked;
  bool stalled; /* waits for pause/resume after reporting an event */
};

typedef struct vm_ioeventfd {
  bool pio;
  uint64_t addr;
  unsigned len;
  int fd;
} vm_ioeventfd;

/* GSIs from 24 up carry MSI messages. */
#define VM_FIRST_MSI_GSI 24
#define VM_MAX_GSI 1024

typedef struct vm_msi_route {
  int gsi;
  uint64_t addr;
  uint32_t data;
  int fd;
} vm_msi_route;

typedef struct vm_slot {
  uint32_t id;
  uint64_t gpa;
  uint64_t len;
  void *host;
  bool readonly;
  bool log_dirty;
} vm_slot;

struct vmm_vm {
  int kvm_fd;
  int fd;
  unsigned ncpus;
  size_t run_size;
  vmm_vcpu_handlers h;
  struct kvm_cpuid2 *supported_cpuid;
  vmm_vcpu vcpus[VMM_MAX_VCPUS];

  GMutex slots_lock;
  GArray *slots; /* vm_slot */
  guint8 slot_used[MAX_SLOTS];

  GMutex run_lock;
  GCond run_cond;
  vcpu_want want;
  unsigned nparked;
  bool threads_started;
  uint8_t ioapic_id;
  GArray *cpu_patches; /* vmm_cpu_feature_patch */

  /* Registrations replayed by a rebuild. */
  GMutex fds_lock;
  GArray *ioeventfds; /* vm_ioeventfd */
  GArray *msi_routes; /* vm_msi_route */
};

static __thread vmm_vcpu *current_vcpu;

bool
vmm_vm_on_vcpu_thread (void)
{
  return current_vcpu != NULL;
}

void
vmm_vm_stall_current (void)
{
  vmm_vcpu *vcpu = current_vcpu;
  if (!vcpu)
    return;
  g_mutex_lock (&vcpu->vm->run_lock);
  vcpu->stalled = true;
  g_mutex_unlock (&vcpu->vm->run_lock);
}

static int kick_signal (void) { return SIGRTMIN; }

static void
kick_handler (int sig)
{
  (void) sig; /* only interrupts KVM_RUN */
}

static void
install_kick_handler (void)
{
  static gsize once = 0;
  if (g_once_init_enter (&once))
    {
      struct sigaction sa = { 0 };
      sa.sa_handler = kick_handler;
      sigemptyset (&sa.sa_mask);
      sigaction (kick_signal (), &sa, NULL);
      g_once_init_leave (&once, 1);
    }
}

static gboolean
set_errno_error (GError **error, const char *what)
{
  int saved = errno;
  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved), "%s: %s",
               what, g_strerror (saved));
  return FALSE;
}

static struct kvm_cpuid2 *
get_supported_cpuid (int kvm_fd, GError **error)
{
  for (unsigned n = 128; n <= 4096; n *= 2)
    {
      struct kvm_cpuid2 *c = g_malloc0 (sizeof *c + n * sizeof c->entries[0]);
      c->nent = n;
      if (ioctl (kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
        return c;
      int saved = errno;
      g_free (c);
      if (saved != E2BIG)
        {
          errno = saved;
          set_errno_error (error, "KVM_GET_SUPPORTED_CPUID");
          return NULL;
        }
    }
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
               "KVM reports too many CPUID entries");
  return NULL;
}

static struct kvm_cpuid_entry2 *
cpuid_find (struct kvm_cpuid2 *c, uint32_t function, uint32_t index)
{
  for (uint32_t i = 0; i < c->nent; i++)
    if (c->entries[i].function == function
        && (!(c->entries[i].flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX)
            || c->entries[i].index == index))
      return &c->entries[i];
  return NULL;
}

static unsigned
bits_for (unsigned n)
{
  unsigned b = 0;
  while ((1u << b) < n)
    b++;
  return b;
}

/* KVM's supported CPUID with this vCPU's identity and a topology of one
 * package holding ncpus cores of one thread each. */
static gboolean
vcpu_set_cpuid (vmm_vm *vm, vmm_vcpu *vcpu, GError **error)
{
  struct kvm_cpuid2 *src = vm->supported_cpuid;
  size_t sz = sizeof *src + src->nent * sizeof src->entries[0];
  g_autofree struct kvm_cpuid2 *c = g_memdup2 (src, sz);
  unsigned id = vcpu->index;
  unsigned shift = bits_for (vm->ncpus);
  struct kvm_cpuid_entry2 *e;

  if ((e = cpuid_find (c, 1, 0)))
    {
      e->ebx = (e->ebx & 0x0000ffffu) | (id << 24)
               | ((1u << shift) & 0xff) << 16;
      if (vm->ncpus > 1)
        e->edx |= 1u << 28; /* HTT: the count field is valid */
      e->ecx |= 1u << 31;   /* running under a hypervisor */
    }
  for (uint32_t i = 0; i < c->nent; i++)
    {
      e = &c->entries[i];
      if (e->function == 4)
        /* Intel SDM vol. 2A, CPUID leaf 4: cores per package - 1. */
        e->eax = (e->eax & 0x03ffffffu) | ((vm->ncpus - 1) & 0x3f) << 26
                 | (e->eax & 0x3ffc000u);
      else if (e->function == 0xb || e->function == 0x1f)
        {
          /* x2APIC topology: level 0 threads, level 1 cores. */
          if (e->index == 0)
            {
              e->eax = 0;
              e->ebx = 1;
              e->ecx = 0x100;
            }
          else if (e->index == 1)
            {
              e->eax = shift;
              e->ebx = vm->ncpus;
              e->ecx = 0x200 | 1;
            }
          else
            {
              e->eax = e->ebx = 0;
              e->ecx = e->index;
            }
          e->edx = id;
        }
      else if (e->function == 0x80000008)
        e->ecx = (e->ecx & ~0xf0ffu) | (shift << 12) | (vm->ncpus - 1);
    }
  for (guint i = 0; vm->cpu_patches && i < vm->cpu_patches->len; i++)
    {
      const vmm_cpu_feature_patch *p
          = &g_array_index (vm->cpu_patches, vmm_cpu_feature_patch, i);
      struct kvm_cpuid_entry2 *pe = cpuid_find (c, p->function, p->index);
      struct kvm_cpuid_entry2 *se = cpuid_find (src, p->function, p->index);
      if (!pe || !se)
        continue;
      uint32_t *dst = p->reg == 0 ? &pe->eax : p->reg == 1 ? &pe->ebx
                      : p->reg == 2 ? &pe->ecx : &pe->edx;
      uint32_t offered = p->reg == 0 ? se->eax : p->reg == 1 ? se->ebx
                         : p->reg == 2 ? se->ecx : se->edx;
      if (p->present)
        *dst |= offered & (1u << p->bit);
      else
        *dst &= ~(1u << p->bit);
    }
  if (ioctl (vcpu->fd, KVM_SET_CPUID2, c) < 0)
    return set_errno_error (error, "KVM_SET_CPUID2");
  return TRUE;
}

static void
vcpu_set_msrs (vmm_vcpu *vcpu)
{
  struct {
    struct kvm_msrs hdr;
    struct kvm_msr_entry e[1];
  } m = { 0 };
  m.hdr.nmsrs = 1;
  m.e[0].index = MSR_IA32_MISC_ENABLE;
  m.e[0].data = MISC_ENABLE_FAST_STRING;
  if (ioctl (vcpu->fd, KVM_SET_MSRS, &m) != 1)
    g_debug ("vCPU %u: IA32_MISC_ENABLE not set", vcpu->index);
}

static gboolean
vcpu_create (vmm_vm *vm, vmm_vcpu *vcpu, GError **error)
{
  vcpu->fd = ioctl (vm->fd, KVM_CREATE_VCPU, (unsigned long) vcpu->index);
  if (vcpu->fd < 0)
    return set_errno_error (error, "creating a vCPU");
  vcpu->run = mmap (NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
                    vcpu->fd, 0);
  if (vcpu->run == MAP_FAILED)
    {
      vcpu->run = NULL;
      return set_errno_error (error, "mapping a vCPU's run area");
    }
  if (!vcpu_set_cpuid (vm, vcpu, error))
    return FALSE;
  vcpu_set_msrs (vcpu);
  return TRUE;
}

static void
vcpu_destroy (vmm_vm *vm, vmm_vcpu *vcpu)
{
  if (vcpu->run)
    munmap (vcpu->run, vm->run_size);
  vcpu->run = NULL;
  if (vcpu->fd >= 0)
    close (vcpu->fd);
  vcpu->fd = -1;
}

/* QEMU-compatible routing: ISA IRQs to both PICs and the IOAPIC, with the
 * PIT's IRQ 0 on IOAPIC pin 2 (what the MADT's override says). */
static gboolean
vm_set_gsi_routing (vmm_vm *vm, GError **error)
{
  guint nmsi = vm->msi_routes ? vm->msi_routes->len : 0;
  size_t nr = 16 + 23 + nmsi;
  g_autofree struct kvm_irq_routing *r
      = g_malloc0 (sizeof *r + nr * sizeof r->entries[0]);
  unsigned n = 0;
  for (unsigned i = 0; i < 16; i++)
    {
      struct kvm_irq_routing_entry *e = &r->entries[n++];
      e->gsi = i;
      e->type = KVM_IRQ_ROUTING_IRQCHIP;
      e->u.irqchip.irqchip = i < 8 ? KVM_IRQCHIP_PIC_MASTER
                                   : KVM_IRQCHIP_PIC_SLAVE;
      e->u.irqchip.pin = i % 8;
    }
  for (unsigned i = 0; i < 24; i++)
    {
      if (i == 2)
        continue;
      struct kvm_irq_routing_entry *e = &r->entries[n++];
      e->gsi = i;
      e->type = KVM_IRQ_ROUTING_IRQCHIP;
      e->u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
      e->u.irqchip.pin = i == 0 ? 2 : i;
    }
  for (guint i = 0; i < nmsi; i++)
    {
      const vm_msi_route *m = &g_array_index (vm->msi_routes, vm_msi_route, i);
      struct kvm_irq_routing_entry *e = &r->entries[n++];
      e->gsi = m->gsi;
      e->type = KVM_IRQ_ROUTING_MSI;
      e->u.msi.address_lo = (uint32_t) m->addr;
      e->u.msi.address_hi = (uint32_t) (m->addr >> 32);
      e->u.msi.data = m->data;
    }
  r->nr = n;
  if (ioctl (vm->fd, KVM_SET_GSI_ROUTING, r) < 0)
    return set_errno_error (error, "KVM_SET_GSI_ROUTING");
  return TRUE;
}

static gboolean
vm_apply_ioapic_id (vmm_vm *vm, GError **error)
{
  struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
  if (ioctl (vm->fd, KVM_GET_IRQCHIP, &chip) < 0)
    return set_errno_error (error, "KVM_GET_IRQCHIP");
  chip.chip.ioapic.id = vm->ioapic_id;
  if (ioctl (vm->fd, KVM_SET_IRQCHIP, &chip) < 0)
    return set_errno_error (error, "KVM_SET_IRQCHIP");
  return TRUE;
}

gboolean
vmm_vm_set_cpu_model (vmm_vm *vm, const char *spec, GError **error)
{
  g_autoptr (GArray) patches
      = g_array_new (FALSE, FALSE, sizeof (vmm_cpu_feature_patch));
  if (!vmm_cpu_features_parse (spec, patches, error))
    return FALSE;
  if (vm->cpu_patches)
    g_array_unref (vm->cpu_patches);
  vm->cpu_patches = g_steal_pointer (&patches);
  for (unsigned i = 0; i < vm->ncpus; i++)
    if (!vcpu_set_cpuid (vm, &vm->vcpus[i], error))
      return FALSE;
  return TRUE;
}

gboolean
vmm_vm_set_ioapic_id (vmm_vm *vm, uint8_t id, GError **error)
{
  vm->ioapic_id = id;
  return vm_apply_ioapic_id (vm, error);
}

static gboolean
slot_apply (vmm_vm *vm, const vm_slot *s, bool remove, GError **error)
{
  struct kvm_userspace_memory_region r = {
    .slot = s->id,
    .flags = (s->readonly ? KVM_MEM_READONLY : 0)
             | (s->log_dirty ? KVM_MEM_LOG_DIRTY_PAGES : 0),
    .guest_phys_addr = s->gpa,
    .memory_size = remove ? 0 : s->len,
    .userspace_addr = (uintptr_t) s->host,
  };
  if (ioctl (vm->fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
    {
      g_autofree char *what = g_strdup_printf (
          "mapping guest memory at 0x%" G_GINT64_MODIFIER "x", s->gpa);
      return set_errno_error (error, what);
    }
  return TRUE;
}

static gboolean
ioeventfd_apply (vmm_vm *vm, const vm_ioeventfd *e, bool assign,
                 GError **error)
{
  struct kvm_ioeventfd io = {
    .addr = e->addr,
    .len = e->len,
    .fd = e->fd,
    .flags = (e->pio ? KVM_IOEVENTFD_FLAG_PIO : 0)
             | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
  };
  if (ioctl (vm->fd, KVM_IOEVENTFD, &io) < 0)
    return set_errno_error (error, "KVM_IOEVENTFD");
  return TRUE;
}

static gboolean
irqfd_apply (vmm_vm *vm, int fd, int gsi, bool assign, GError **error)
{
  struct kvm_irqfd irqfd = {
    .fd = (uint32_t) fd,
    .gsi = (uint32_t) gsi,
    .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
  };
  if (ioctl (vm->fd, KVM_IRQFD, &irqfd) < 0)
    return set_errno_error (error, "KVM_IRQFD");
  return TRUE;
}

/* After a rebuild: the same ioeventfds, MSI routes and irqfds. */
static gboolean
vm_replay_fds (vmm_vm *vm, GError **error)
{
  g_mutex_lock (&vm->fds_lock);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < vm->ioeventfds->len; i++)
    ok = ioeventfd_apply (vm, &g_array_index (vm->ioeventfds, vm_ioeventfd, i),
                          true, error);
  for (guint i = 0; ok && i < vm->msi_routes->len; i++)
    {
      const vm_msi_route *m = &g_array_index (vm->msi_routes, vm_msi_route, i);
      ok = irqfd_apply (vm, m->fd, m->gsi, true, error);
    }
  g_mutex_unlock (&vm->fds_lock);
  return ok;
}

gboolean
vmm_vm_add_ioeventfd (vmm_vm *vm, bool pio, uint64_t addr, unsigned len,
                      int fd, GError **error)
{
  vm_ioeventfd e = { pio, addr, len, fd };
  g_mutex_lock (&vm->fds_lock);
  gboolean ok = ioeventfd_apply (vm, &e, true, error);
  if (ok)
    g_array_append_val (vm->ioeventfds, e);
  g_mutex_unlock (&vm->fds_lock);
  return ok;
}

void
vmm_vm_remove_ioeventfd (vmm_vm *vm, bool pio, uint64_t addr, unsigned len,
                         int fd)
{
  g_mutex_lock (&vm->fds_lock);
  for (guint i = 0; i < vm->ioeventfds->len; i++)
    {
      vm_ioeventfd *e = &g_array_index (vm->ioeventfds, vm_ioeventfd, i);
      if (e->pio == pio && e->addr == addr && e->len == len && e->fd == fd)
        {
          ioeventfd_apply (vm, e, false, NULL);
          g_array_remove_index_fast (vm->ioeventfds, i);
          break;
        }
    }
  g_mutex_unlock (&vm->fds_lock);
}

int
vmm_vm_add_msi_irqfd (vmm_vm *vm, uint64_t addr, uint32_t data, int fd,
                      GError **error)
{
  g_mutex_lock (&vm->fds_lock);
  int gsi = VM_FIRST_MSI_GSI;
  for (bool taken = true; taken && gsi < VM_MAX_GSI;)
    {
      taken = false;
      for (guint i = 0; i < vm->msi_routes->len; i++)
        if (g_array_index (vm->msi_routes, vm_msi_route, i).gsi == gsi)
          {
            taken = true;
            gsi++;
            break;
          }
    }
  if (gsi >= VM_MAX_GSI)
    {
      g_mutex_unlock (&vm->fds_lock);
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "out of interrupt routes");
      return -1;
    }
  vm_msi_route m = { gsi, addr, data, fd };
  g_array_append_val (vm->msi_routes, m);
  if (!vm_set_gsi_routing (vm, error) || !irqfd_apply (vm, fd, gsi, true, error))
    {
      g_array_remove_index (vm->msi_routes, vm->msi_routes->len - 1);
      vm_set_gsi_routing (vm, NULL);
      g_mutex_unlock (&vm->fds_lock);
      return -1;
    }
  g_mutex_unlock (&vm->fds_lock);
  return gsi;
}

void
vmm_vm_update_msi (vmm_vm *vm, int gsi, uint64_t addr, uint32_t data)
{
  g_mutex_lock (&vm->fds_lock);
  for (guint i = 0; i < vm->msi_routes->len; i++)
    {
      vm_msi_route *m = &g_array_index (vm->msi_routes, vm_msi_route, i);
      if (m->gsi == gsi)
        {
          m->addr = addr;
          m->data = data;
          g_autoptr (GError) error = NULL;
          if (!vm_set_gsi_routing (vm, &error))
            g_warning ("MSI route %d: %s", gsi, error->message);
          break;
        }
    }
  g_mutex_unlock (&vm->fds_lock);
}

void
vmm_vm_remove_msi_irqfd (vmm_vm *vm, int gsi)
{
  g_mutex_lock (&vm->fds_lock);
  for (guint i = 0; i < vm->msi_routes->len; i++)
    {
      vm_msi_route *m = &g_array_index (vm->msi_routes, vm_msi_route, i);
      if (m->gsi == gsi)
        {
          irqfd_apply (vm, m->fd, m->gsi, false, NULL);
          g_array_remove_index (vm->msi_routes, i);
          vm_set_gsi_routing (vm, NULL);
          break;
        }
    }
  g_mutex_unlock (&vm->fds_lock);
}

/* The kernel side of the VM: everything that rebuild re-creates. */
static gboolean
vm_create_kernel_side (vmm_vm *vm, GError **error)
{
  vm->fd = ioctl (vm->kvm_fd, KVM_CREATE_VM, 0UL);
  if (vm->fd < 0)
    return set_errno_error (error, "creating a KVM virtual machine");
  if (ioctl (vm->fd, KVM_SET_TSS_ADDR, (unsigned long) KVM_TSS_ADDR) < 0)
    return set_errno_error (error, "KVM_SET_TSS_ADDR");
  uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
  if (ioctl (vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0
      && ioctl (vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0)
    return set_errno_error (error, "KVM_SET_IDENTITY_MAP_ADDR");
  if (ioctl (vm->fd, KVM_CREATE_IRQCHIP, 0UL) < 0)
    return set_errno_error (error, "creating the in-kernel interrupt controller");
  if (!vm_set_gsi_routing (vm, error))
    return FALSE;
  if (vm->ioapic_id && !vm_apply_ioapic_id (vm, error))
    return FALSE;
  struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
  if (ioctl (vm->fd, KVM_CREATE_PIT2, &pit) < 0)
    return set_errno_error (error, "creating the in-kernel PIT");
  if (!vm_replay_fds (vm, error))
    return FALSE;
  g_mutex_lock (&vm->slots_lock);
  for (guint i = 0; i < vm->slots->len; i++)
    if (!slot_apply (vm, &g_array_index (vm->slots, vm_slot, i), false, error))
      {
        g_mutex_unlock (&vm->slots_lock);
        return FALSE;
      }
  g_mutex_unlock (&vm->slots_lock);
  for (unsigned i = 0; i < vm->ncpus; i++)
    if (!vcpu_create (vm, &vm->vcpus[i], error))
      return FALSE;
  return TRUE;
}

static void
vm_destroy_kernel_side (vmm_vm *vm)
{
  for (unsigned i = 0; i < vm->ncpus; i++)
    vcpu_destroy (vm, &vm->vcpus[i]);
  if (vm->fd >= 0)
    close (vm->fd);
  vm->fd = -1;
}

vmm_vm *
vmm_vm_new (unsigned ncpus, const vmm_vcpu_handlers *handlers, GError **error)
{
  if (ncpus < 1 || ncpus > VMM_MAX_VCPUS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%u CPUs asked for; Vessel runs 1 to %u", ncpus,
                   VMM_MAX_VCPUS);
      return NULL;
    }
  int kvm_fd = open (KVM_DEVICE, O_RDWR | O_CLOEXEC);
  if (kvm_fd < 0)
    {
      int saved = errno;
      if (saved == ENOENT)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                     "%s does not exist: enable virtualization in the "
                     "firmware settings and load the kvm module",
                     KVM_DEVICE);
      else if (saved == EACCES || saved == EPERM)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_PERMISSION_DENIED,
                     "no permission to open %s: add your user to the kvm "
                     "group", KVM_DEVICE);
      else
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                     "cannot open %s: %s", KVM_DEVICE, g_strerror (saved));
      return NULL;
    }
  int api = ioctl (kvm_fd, KVM_GET_API_VERSION, 0);
  if (api != KVM_API_EXPECTED)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                   "%s speaks KVM API %d; Vessel needs %d", KVM_DEVICE, api,
                   KVM_API_EXPECTED);
      close (kvm_fd);
      return NULL;
    }
  static const struct {
    int cap;
    const char *name;
  } required[] = {
    { KVM_CAP_IRQCHIP, "an in-kernel irqchip" },
    { KVM_CAP_USER_MEMORY, "user memory" },
    { KVM_CAP_PIT2, "an in-kernel PIT" },
    { KVM_CAP_IMMEDIATE_EXIT, "immediate exit" },
    { KVM_CAP_READONLY_MEM, "read-only memory" },
    { KVM_CAP_IRQ_ROUTING, "IRQ routing" },
  };
  for (size_t i = 0; i < G_N_ELEMENTS (required); i++)
    if (ioctl (kvm_fd, KVM_CHECK_EXTENSION, required[i].cap) <= 0)
      {
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED,
                     "this kernel's KVM lacks %s", required[i].name);
        close (kvm_fd);
        return NULL;
      }
  int max = ioctl (kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
  if (max <= 0)
    max = ioctl (kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
  if (max > 0 && ncpus > (unsigned) max)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "%u CPUs asked for; this host's KVM allows %d", ncpus,
                   max);
      close (kvm_fd);
      return NULL;
    }

  vmm_vm *vm = g_new0 (vmm_vm, 1);
  vm->kvm_fd = kvm_fd;
  vm->fd = -1;
  vm->ncpus = ncpus;
  vm->h = *handlers;
  vm->slots = g_array_new (FALSE, FALSE, sizeof (vm_slot));
  g_mutex_init (&vm->slots_lock);
  g_mutex_init (&vm->fds_lock);
  vm->ioeventfds = g_array_new (FALSE, FALSE, sizeof (vm_ioeventfd));
  vm->msi_routes = g_array_new (FALSE, FALSE, sizeof (vm_msi_route));
  g_mutex_init (&vm->run_lock);
  g_cond_init (&vm->run_cond);
  vm->want = WANT_PAUSE;
  for (unsigned i = 0; i < VMM_MAX_VCPUS; i++)
    {
      vm->vcpus[i].vm = vm;
      vm->vcpus[i].index = i;
      vm->vcpus[i].fd = -1;
    }
  int run_size = ioctl (kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (run_size <= 0)
    {
      set_errno_error (error, "KVM_GET_VCPU_MMAP_SIZE");
      goto fail;
    }
  vm->run_size = run_size;
  vm->supported_cpuid = get_supported_cpuid (kvm_fd, error);
  if (!vm->supported_cpuid)
    goto fail;
  if (!vm_create_kernel_side (vm, error))
    goto fail;
  install_kick_handler ();
  return vm;

fail:
  vmm_vm_free (vm);
  return NULL;
}

void
vmm_vm_free (vmm_vm *vm)
{
  if (!vm)
    return;
  vmm_vm_stop (vm);
  vm_destroy_kernel_side (vm);
  if (vm->kvm_fd >= 0)
    close (vm->kvm_fd);
  g_free (vm->supported_cpuid);
  if (vm->cpu_patches)
    g_array_unref (vm->cpu_patches);
  g_array_unref (vm->slots);
  g_array_unref (vm->ioeventfds);
  g_array_unref (vm->msi_routes);
  g_mutex_clear (&vm->slots_lock);
  g_mutex_clear (&vm->fds_lock);
  g_mutex_clear (&vm->run_lock);
  g_cond_clear (&vm->run_cond);
  g_free (vm);
}

unsigned
vmm_vm_ncpus (vmm_vm *vm)
{
  return vm->ncpus;
}

static gboolean vm_map (vmm_vm *vm, uint64_t gpa, uint64_t len, void *host,
                        bool readonly, bool log_dirty, GError **error);

gboolean
vmm_vm_map (vmm_vm *vm, uint64_t gpa, uint64_t len, void *host, bool readonly,
            GError **error)
{
  return vm_map (vm, gpa, len, host, readonly, false, error);
}

gboolean
vmm_vm_map_logged (vmm_vm *vm, uint64_t gpa, uint64_t len, void *host,
                   GError **error)
{
  return vm_map (vm, gpa, len, host, false, true, error);
}

bool
vmm_vm_get_dirty_log (vmm_vm *vm, uint64_t gpa, unsigned long *bitmap)
{
  bool found = false;
  g_mutex_lock (&vm->slots_lock);
  for (guint i = 0; i < vm->slots->len; i++)
    {
      vm_slot *s = &g_array_index (vm->slots, vm_slot, i);
      if (s->gpa == gpa && s->log_dirty)
        {
          struct kvm_dirty_log log = { .slot = s->id };
          log.dirty_bitmap = bitmap;
          found = ioctl (vm->fd, KVM_GET_DIRTY_LOG, &log) == 0;
          break;
        }
    }
  g_mutex_unlock (&vm->slots_lock);
  return found;
}

static gboolean
vm_map (vmm_vm *vm, uint64_t gpa, uint64_t len, void *host, bool readonly,
        bool log_dirty, GError **error)
{
  gboolean ok = TRUE;
  g_mutex_lock (&vm->slots_lock);
  vm_slot *old = NULL;
  guint old_i = 0;
  for (guint i = 0; i < vm->slots->len; i++)
    if (g_array_index (vm->slots, vm_slot, i).gpa == gpa)
      {
        old = &g_array_index (vm->slots, vm_slot, i);
        old_i = i;
      }
  uint32_t id;
  if (old)
    {
      id = old->id;
      slot_apply (vm, old, true, NULL);
      g_array_remove_index (vm->slots, old_i);
      vm->slot_used[id] = 0;
    }
  if (len == 0)
    goto out;
  for (id = 0; id < MAX_SLOTS && vm->slot_used[id]; id++)
    ;
  if (id == MAX_SLOTS)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
                   "out of KVM memory slots");
      ok = FALSE;
      goto out;
    }
  vm_slot s = { id, gpa, len, host, readonly, log_dirty };
  if (!slot_apply (vm, &s, false, error))
    {
      ok = FALSE;
      goto out;
    }
  vm->slot_used[id] = 1;
  g_array_append_val (vm->slots, s);
out:
  g_mutex_unlock (&vm->slots_lock);
  return ok;
}

void
vmm_vm_unmap (vmm_vm *vm, uint64_t gpa)
{
  vmm_vm_map (vm, gpa, 0, NULL, false, NULL);
}

void
vmm_vm_set_irq (vmm_vm *vm, unsigned gsi, bool level)
{
  struct kvm_irq_level l = { .irq = gsi, .level = level };
  if (ioctl (vm->fd, KVM_IRQ_LINE, &l) < 0)
    g_debug ("KVM_IRQ_LINE %u: %s", gsi, g_strerror (errno));
}

/* --- the vCPU thread --------------------------------------------------- */

static void
vcpu_report (vmm_vcpu *vcpu, vmm_vcpu_event event, const char *message)
{
  g_mutex_lock (&vcpu->vm->run_lock);
  vcpu->stalled = true;
  g_mutex_unlock (&vcpu->vm->run_lock);
  if (vcpu->vm->h.event)
    vcpu->vm->h.event (vcpu->vm->h.opaque, vcpu->index, event, message);
}

static void
vcpu_handle_io (vmm_vcpu *vcpu)
{
  vmm_vm *vm = vcpu->vm;
  struct kvm_run *run = vcpu->run;
  uint8_t *data = (uint8_t *) run + run->io.data_offset;
  unsigned size = run->io.size;
  for (uint32_t i = 0; i < run->io.count; i++, data += size)
    {
      if (run->io.direction == KVM_EXIT_IO_OUT)
        {
          uint64_t v = 0;
          memcpy (&v, data, size);
          vm->h.pio_write (vm->h.opaque, vcpu->index, run->io.port, size, v);
        }
      else
        {
          uint64_t v = vm->h.pio_read (vm->h.opaque, vcpu->index,
                                       run->io.port, size);
          memcpy (data, &v, size);
        }
    }
}

static void
vcpu_handle_mmio (vmm_vcpu *vcpu)
{
  vmm_vm *vm = vcpu->vm;
  struct kvm_run *run = vcpu->run;
  unsigned len = run->mmio.len;
  if (len == 0 || len > 8)
    return;
  if (run->mmio.is_write)
    {
      uint64_t v = 0;
      memcpy (&v, run->mmio.data, len);
      vm->h.mmio_write (vm->h.opaque, vcpu->index, run->mmio.phys_addr, len,
                        v);
    }
  else
    {
      uint64_t v = vm->h.mmio_read (vm->h.opaque, vcpu->index,
                                    run->mmio.phys_addr, len);
      memcpy (run->mmio.data, &v, len);
    }
}

static char *
vcpu_describe_failure (vmm_vcpu *vcpu, const char *what)
{
  struct kvm_regs regs;
  struct kvm_sregs sregs;
  if (ioctl (vcpu->fd, KVM_GET_REGS, &regs) < 0
      || ioctl (vcpu->fd, KVM_GET_SREGS, &sregs) < 0)
    return g_strdup_printf ("vCPU %u: %s", vcpu->index, what);
  return g_strdup_printf ("vCPU %u: %s at %04x:%016llx (linear 0x%llx)",
                          vcpu->index, what, sregs.cs.selector, regs.rip,
                          sregs.cs.base + regs.rip);
}

/* One switch over the exit reasons. After reporting an event the vCPU
 * stalls until its owner pauses and resumes the VM. */
static void
vcpu_handle_exit (vmm_vcpu *vcpu)
{
  struct kvm_run *run = vcpu->run;
  switch (run->exit_reason)
    {
    case KVM_EXIT_IO:
      vcpu_handle_io (vcpu);
      break;
    case KVM_EXIT_MMIO:
      vcpu_handle_mmio (vcpu);
      break;
    case KVM_EXIT_INTR:
    case KVM_EXIT_IRQ_WINDOW_OPEN:
    case KVM_EXIT_HLT:
      break;
    case KVM_EXIT_SHUTDOWN:
      /* A triple fault resets the machine, as on a real PC. */
      vcpu_report (vcpu, VMM_VCPU_EVENT_RESET, "triple fault");
      break;
    case KVM_EXIT_SYSTEM_EVENT:
      if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
        vcpu_report (vcpu, VMM_VCPU_EVENT_RESET, "reset");
      else if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
        vcpu_report (vcpu, VMM_VCPU_EVENT_POWEROFF, "shutdown");
      else
        {
          g_autofree char *m = g_strdup_printf (
              "vCPU %u: unexpected system event %u", vcpu->index,
              run->system_event.type);
          vcpu_report (vcpu, VMM_VCPU_EVENT_ERROR, m);
        }
      break;
    case KVM_EXIT_INTERNAL_ERROR:
      {
        const char *why = run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION
                              ? "KVM internal error: emulation failure"
                              : "KVM internal error";
        g_autofree char *m = vcpu_describe_failure (vcpu, why);
        vcpu_report (vcpu, VMM_VCPU_EVENT_ERROR, m);
        break;
      }
    case KVM_EXIT_FAIL_ENTRY:
      {
        g_autofree char *why = g_strdup_printf (
            "KVM could not enter the guest (hardware reason 0x%llx)",
            (unsigned long long)
                run->fail_entry.hardware_entry_failure_reason);
        g_autofree char *m = vcpu_describe_failure (vcpu, why);
        vcpu_report (vcpu, VMM_VCPU_EVENT_ERROR, m);
        break;
      }
    default:
      {
        g_autofree char *why
            = g_strdup_printf ("unhandled KVM exit reason %u", run->exit_reason);
        g_autofree char *m = vcpu_describe_failure (vcpu, why);
        vcpu_report (vcpu, VMM_VCPU_EVENT_ERROR, m);
        break;
      }
    }
}

static gpointer
vcpu_thread (gpointer data)
{
  vmm_vcpu *vcpu = data;
  vmm_vm *vm = vcpu->vm;
  current_vcpu = vcpu;

  g_mutex_lock (&vm->run_lock);
  vcpu->tid = pthread_self ();
  vcpu->tid_valid = true;
  g_cond_broadcast (&vm->run_cond);
  for (;;)
    {
      while (vm->want == WANT_PAUSE
             || (vm->want == WANT_RUN && vcpu->stalled))
        {
          if (!vcpu->parked)
            {
              vcpu->parked = true;
              vm->nparked++;
              g_cond_broadcast (&vm->run_cond);
            }
          g_cond_wait (&vm->run_cond, &vm->run_lock);
        }
      if (vcpu->parked)
        {
          vcpu->parked = false;
          vm->nparked--;
        }
      if (vm->want == WANT_STOP)
        break;
      g_mutex_unlock (&vm->run_lock);

      int r = ioctl (vcpu->fd, KVM_RUN, 0UL);
      if (r < 0)
        {
          if (errno != EINTR && errno != EAGAIN)
            {
              g_autofree char *m = g_strdup_printf (
                  "vCPU %u: KVM_RUN failed: %s", vcpu->index,
                  g_strerror (errno));
              vcpu_report (vcpu, VMM_VCPU_EVENT_ERROR, m);
            }
        }
      else
        vcpu_handle_exit (vcpu);

      g_mutex_lock (&vm->run_lock);
    }
  g_mutex_unlock (&vm->run_lock);
  current_vcpu = NULL;
  return NULL;
}

/* Gets every thread out of KVM_RUN to look at vm->want. */
static void
vm_kick_all (vmm_vm *vm)
{
  for (unsigned i = 0; i < vm->ncpus; i++)
    {
      vmm_vcpu *vcpu = &vm->vcpus[i];
      if (vcpu->run)
        vcpu->run->immediate_exit = 1;
      if (vcpu->thread && vcpu->tid_valid)
        pthread_kill (vcpu->tid, kick_signal ());
    }
}

gboolean
vmm_vm_start (vmm_vm *vm, GError **error)
{
  g_mutex_lock (&vm->run_lock);
  vm->want = WANT_RUN;
  g_mutex_unlock (&vm->run_lock);
  for (unsigned i = 0; i < vm->ncpus; i++)
    {
      vmm_vcpu *vcpu = &vm->vcpus[i];
      g_autofree char *name = g_strdup_printf ("vcpu%u", i);
      vcpu->thread = g_thread_try_new (name, vcpu_thread, vcpu, error);
      if (!vcpu->thread)
        {
          vmm_vm_stop (vm);
          return FALSE;
        }
    }
  /* Kicks need every thread's id. */
  g_mutex_lock (&vm->run_lock);
  for (unsigned i = 0; i < vm->ncpus; i++)
    while (!vm->vcpus[i].tid_valid)
      g_cond_wait (&vm->run_cond, &vm->run_lock);
  g_mutex_unlock (&vm->run_lock);
  vm->threads_started = true;
  return TRUE;
}

static unsigned
vm_nthreads (vmm_vm *vm)
{
  unsigned n = 0;
  for (unsigned i = 0; i < vm->ncpus; i++)
    n += vm->vcpus[i].thread != NULL;
  return n;
}

void
vmm_vm_pause (vmm_vm *vm)
{
  g_return_if_fail (!vmm_vm_on_vcpu_thread ());
  g_mutex_lock (&vm->run_lock);
  if (vm->want == WANT_RUN)
    vm->want = WANT_PAUSE;
  vm_kick_all (vm);
  unsigned n = vm_nthreads (vm);
  while (vm->want == WANT_PAUSE && vm->nparked < n)
    g_cond_wait (&vm->run_cond, &vm->run_lock);
  g_mutex_unlock (&vm->run_lock);
}

void
vmm_vm_resume (vmm_vm *vm)
{
  g_mutex_lock (&vm->run_lock);
  if (vm->want == WANT_PAUSE)
    {
      for (unsigned i = 0; i < vm->ncpus; i++)
        {
          vm->vcpus[i].stalled = false;
          if (vm->vcpus[i].run)
            vm->vcpus[i].run->immediate_exit = 0;
        }
      vm->want = WANT_RUN;
      g_cond_broadcast (&vm->run_cond);
    }
  g_mutex_unlock (&vm->run_lock);
}

gboolean
vmm_vm_rebuild (vmm_vm *vm, GError **error)
{
  g_return_val_if_fail (vm->want != WANT_RUN || !vm->threads_started, FALSE);
  vm_destroy_kernel_side (vm);
  if (!vm_create_kernel_side (vm, error))
    return FALSE;
  /* The new run areas start with immediate_exit clear; parked threads
   * stay parked until resume. */
  return TRUE;
}

void
vmm_vm_stop (vmm_vm *vm)
{
  g_mutex_lock (&vm->run_lock);
  vm->want = WANT_STOP;
  vm_kick_all (vm);
  g_cond_broadcast (&vm->run_cond);
  g_mutex_unlock (&vm->run_lock);
  for (unsigned i = 0; i < vm->ncpus; i++)
    if (vm->vcpus[i].thread)
      {
        g_thread_join (vm->vcpus[i].thread);
        vm->vcpus[i].thread = NULL;
        vm->vcpus[i].tid_valid = false;
        vm->vcpus[i].parked = false;
      }
  vm->threads_started = false;
  vm->nparked = 0;
}

gboolean
vmm_vm_get_regs (vmm_vm *vm, unsigned cpu, struct kvm_regs *regs,
                 struct kvm_sregs *sregs, GError **error)
{
  g_return_val_if_fail (cpu < vm->ncpus, FALSE);
  if (regs && ioctl (vm->vcpus[cpu].fd, KVM_GET_REGS, regs) < 0)
    return set_errno_error (error, "KVM_GET_REGS");
  if (sregs && ioctl (vm->vcpus[cpu].fd, KVM_GET_SREGS, sregs) < 0)
    return set_errno_error (error, "KVM_GET_SREGS");
  return TRUE;
}

gboolean
vmm_vm_set_regs (vmm_vm *vm, unsigned cpu, const struct kvm_regs *regs,
                 const struct kvm_sregs *sregs, GError **error)
{
  g_return_val_if_fail (cpu < vm->ncpus, FALSE);
  if (sregs && ioctl (vm->vcpus[cpu].fd, KVM_SET_SREGS, sregs) < 0)
    return set_errno_error (error, "KVM_SET_SREGS");
  if (regs && ioctl (vm->vcpus[cpu].fd, KVM_SET_REGS, regs) < 0)
    return set_errno_error (error, "KVM_SET_REGS");
  return TRUE;
}
