/*
 * Vessel guest kit: the runtime shared by all test guests.
 *
 * A guest is one C file that defines
 *
 *     KIT_GUEST("name");
 *     void kit_main(void) { ...; kit_pass(); }
 *
 * kit_main() runs on the boot CPU in 64-bit long mode at CPL0 with interrupts
 * disabled, an identity map of all RAM (2 MiB pages), COM1 initialised, the
 * boot information parsed (kit_boot) and the ACPI tables walked (kit_acpi).
 * It ends with kit_pass() or kit_fail(), which print the result line and
 * power the machine off through ACPI.  Returning from kit_main() is a pass.
 */
#ifndef KIT_H
#define KIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io.h"

#define KIT_GUEST(n) const char kit_guest_name[] = n
extern const char kit_guest_name[];
void kit_main(void);

#define KIT_NORETURN __attribute__((noreturn))
#define KIT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- results ---------------------------------------------------------- */
KIT_NORETURN void kit_pass(void);
KIT_NORETURN KIT_PRINTF(1, 2) void kit_fail(const char *fmt, ...);
KIT_NORETURN void kit_halt(void);

/* ---- console (console.c) ---------------------------------------------- */
void kit_serial_init(void);
void kit_serial_putc(char c);
void kit_debugcon_putc(char c);
void kit_debugcon_puts(const char *s);
/* printf to COM1; %d %i %u %x %X %p %s %c %%, flags '-' '0', width, l/ll/z. */
KIT_PRINTF(1, 2) int kit_printf(const char *fmt, ...);
int kit_vprintf(const char *fmt, va_list ap);
KIT_PRINTF(1, 2) int kit_dprintf(const char *fmt, ...); /* to debugcon 0x402 */
KIT_PRINTF(3, 4) int kit_snprintf(char *buf, size_t size, const char *fmt, ...);
int kit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- string.c ---------------------------------------------------------- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

/* ---- boot information (boot.c) ---------------------------------------- */
enum kit_boot_kind { KIT_BOOT_UNKNOWN = 0, KIT_BOOT_MULTIBOOT = 1, KIT_BOOT_PVH = 2 };

/* Memory types as in the e820 map (and PVH's memmap). */
#define KIT_MEM_RAM 1
#define KIT_MEM_RESERVED 2
#define KIT_MEM_ACPI 3
#define KIT_MEM_NVS 4
#define KIT_MEM_UNUSABLE 5

struct kit_mem_region {
    uint64_t base;
    uint64_t len;
    uint32_t type;
};

#define KIT_MAX_MEM 64

struct kit_boot_info {
    enum kit_boot_kind kind;
    uint32_t raw_ptr;        /* EBX at entry */
    uint64_t rsdp;           /* from PVH start_info, 0 if not given */
    int nmem;
    bool mem_from_map;       /* true: a real map; false: mem_lower/mem_upper only */
    struct kit_mem_region mem[KIT_MAX_MEM];
    char cmdline[256];
};
extern struct kit_boot_info kit_boot;
const char *kit_boot_kind_name(void);
const char *kit_mem_type_name(uint32_t type);
/* Highest end address of any RAM region. */
uint64_t kit_ram_end(void);

/* Linker symbols: the loaded image (text, data, bss, stacks, page tables). */
extern char _kernel_start[], _kernel_end[];

/* ---- paging (boot.c) -------------------------------------------------- */
/* The boot map covers [0, 4 GiB); kit_start() extends it over all RAM.
 * Maps [0, end) 1:1 with 2 MiB pages, up to KIT_MAP_LIMIT. Returns the end
 * actually mapped. */
#define KIT_MAP_LIMIT ((uint64_t)64 << 30)
uint64_t kit_map_identity(uint64_t end);
uint64_t kit_mapped_end(void);

/* ---- ACPI (acpi.c) ---------------------------------------------------- */
#define KIT_MAX_CPUS 64
#define KIT_MAX_IOAPICS 8
#define KIT_MAX_ISOS 24

struct kit_ioapic {
    uint8_t id;
    uint32_t addr;
    uint32_t gsi_base;
    uint32_t nr_pins;
};

struct kit_iso {
    uint8_t irq;
    uint32_t gsi;
    uint16_t flags; /* MPS INTI flags: polarity bits 1:0, trigger bits 3:2 */
};

struct kit_acpi_info {
    bool found;
    uint64_t rsdp, rsdt, xsdt, fadt, madt, dsdt;
    uint8_t rsdp_rev;
    /* FADT */
    uint16_t sci_irq;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint32_t pm1a_evt, pm1b_evt, pm1a_cnt, pm1b_cnt, pm_tmr;
    bool tmr_ext;      /* 32-bit PM timer */
    uint32_t fadt_flags;
    /* FADT reset register (if FADT flag RESET_REG_SUP) */
    bool reset_sup;
    uint8_t reset_space;
    uint64_t reset_addr;
    uint8_t reset_value;
    /* DSDT _S5 */
    bool have_s5;
    uint8_t slp_typa, slp_typb;
    /* MADT */
    uint64_t lapic_addr;
    bool pcat_compat;
    int ncpus;                        /* enabled LAPIC / x2APIC entries */
    uint32_t cpu_apic_id[KIT_MAX_CPUS];
    int nioapics;
    struct kit_ioapic ioapic[KIT_MAX_IOAPICS];
    int nisos;
    struct kit_iso iso[KIT_MAX_ISOS];
};
extern struct kit_acpi_info kit_acpi;

void kit_acpi_init(void);
/* Find a table by signature (first match), 0 if absent. */
uint64_t kit_acpi_find(const char sig[4]);
void kit_acpi_print(void);
/* Power off through PM1a/PM1b_CNT with _S5's SLP_TYP. Returns only on failure. */
void kit_acpi_poweroff(void);

/* ---- power and reset (power.c) --------------------------------------- */
KIT_NORETURN void kit_poweroff(void);
void kit_reset_cf9(void);
void kit_reset_i8042(void);
KIT_NORETURN void kit_reset_triple_fault(void);
uint8_t kit_cmos_read(uint8_t idx);
void kit_cmos_write(uint8_t idx, uint8_t v);

/* ---- PCI (pci.c), configuration mechanism #1 -------------------------- */
uint32_t kit_pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
uint16_t kit_pci_read16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
uint8_t kit_pci_read8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off);
void kit_pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint32_t v);
void kit_pci_write16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint16_t v);
void kit_pci_write8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint8_t v);

struct kit_pci_dev {
    uint8_t bus, dev, fn;
    uint16_t vendor, device;
    uint8_t class_code, subclass, prog_if, header_type;
};
/* Walk bus 0 and every bus behind a PCI-PCI bridge; cb returns false to stop.
 * Returns the number of functions visited. */
int kit_pci_scan(bool (*cb)(const struct kit_pci_dev *d, void *ctx), void *ctx);

/* ---- interrupts (intr.c) ---------------------------------------------- */
struct kit_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};
typedef void (*kit_irq_handler)(struct kit_frame *f);

#define KIT_VEC_PIC_BASE 0x20   /* 8259 IRQ n -> 0x20 + n (spurious only) */
#define KIT_VEC_IRQ_BASE 0x30   /* ISA IRQ n routed through IOAPIC -> 0x30 + n */
#define KIT_VEC_LAPIC_TIMER 0x40
#define KIT_VEC_SPURIOUS 0xff

/* Load the IDT on this CPU (the BSP's is done by kit_start). */
void kit_idt_load(void);
void kit_set_handler(uint8_t vector, kit_irq_handler h);
/* Report an exception frame and fail (the default for vectors 0-31). */
KIT_NORETURN void kit_exception_fail(struct kit_frame *f);
/* Program both 8259s: IRQs to vectors 0x20-0x2f, all masked. */
void kit_pic_init(void);
void kit_pic_mask(uint8_t irq, bool masked);
/* Enable this CPU's local APIC (xAPIC, MMIO), spurious vector 0xff. */
void kit_lapic_enable(void);
uint32_t kit_lapic_id(void);
uint32_t kit_lapic_read(uint32_t reg);
void kit_lapic_write(uint32_t reg, uint32_t v);
void kit_lapic_eoi(void);
/* Route ISA IRQ irq to vector (and this CPU) through the IOAPIC, honouring
 * the MADT interrupt source overrides; with no IOAPIC, use the 8259 with
 * vector 0x20+irq instead (the handler gets both). */
void kit_irq_route(uint8_t irq, kit_irq_handler h);
void kit_irq_mask(uint8_t irq, bool masked);
/* True when ISA IRQs go through the IOAPIC (false: 8259 mode). */
bool kit_irq_uses_ioapic(void);
/* Route ISA IRQs through the 8259 (virtual wire, LINT0 ExtINT) even when
 * the MADT lists an IOAPIC. Call before kit_irq_route(). */
void kit_irq_force_pic(bool on);
/* True if the command line has word w (space separated). */
bool kit_cmdline_has(const char *w);
void kit_ioapic_write_redir(int idx, uint32_t pin, uint64_t entry);
/* Send End Of Interrupt for an ISA IRQ (LAPIC or 8259, whichever routes it). */
void kit_irq_eoi(uint8_t irq);

/* ---- timers (timer.c) ------------------------------------------------- */
#define KIT_PMTMR_HZ ((uint64_t)3579545)
#define KIT_PIT_HZ ((uint64_t)1193182)
bool kit_pmtmr_present(void);
uint32_t kit_pmtmr_read(void);
/* Monotonic PM-timer ticks (wrap-extended; call at least every ~4 s). */
uint64_t kit_pmtmr_ticks(void);
void kit_udelay(uint64_t us);
/* PIT channel 0, mode 2 (rate generator) at hz. */
void kit_pit_periodic(uint32_t hz);
void kit_pit_stop(void);
/* RTC periodic interrupt: rate 3..15 (frequency 32768 >> (rate - 1)). */
void kit_rtc_periodic(uint8_t rate);
void kit_rtc_stop(void);
uint8_t kit_rtc_ack(void); /* read register C */
/* LAPIC timer: ticks per second at divide-by-16, measured against the PM timer. */
uint64_t kit_lapic_timer_calibrate(void);
void kit_lapic_timer_periodic(uint64_t ticks_per_sec, uint32_t hz, uint8_t vector);
void kit_lapic_timer_stop(void);

/* ---- SMP (smp.c) ------------------------------------------------------ */
#define KIT_TRAMPOLINE_BASE 0x8000
/* Start every enabled CPU in the MADT; returns the number online (BSP
 * included). APs run ap_fn (if non-NULL) and then halt. */
int kit_smp_boot(void (*ap_fn)(int cpu_index));
extern volatile uint32_t kit_smp_online_ids[KIT_MAX_CPUS];
extern volatile int kit_smp_online;

/* ---- CPL3 (user.c) ---------------------------------------------------- */
/* Run fn(arg) at CPL3 in 64-bit mode (native speed on a paravirtual KVM),
 * interrupts off, on a private stack; returns its return value. fn must not
 * touch ports or privileged state. Returns through ud2 + the #UD handler
 * (vector 6 is taken over by the first call). Boot CPU only. */
uint64_t kit_user_call(uint64_t (*fn)(uint64_t), uint64_t arg);

/* ---- spinlock ---------------------------------------------------------- */
typedef struct { volatile int v; } kit_spinlock;
static inline void kit_spin_lock(kit_spinlock *l)
{
    while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE))
        while (l->v)
            cpu_relax();
}
static inline void kit_spin_unlock(kit_spinlock *l)
{
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}


/* ==== disks and CD-ROMs (ata.c, atapi.c, iso9660.c, virtio-blk.c) ======
 * Polled drivers, no interrupts: ATA/ATAPI PIO on the legacy IDE ports,
 * bus-master IDE registers for tests, an ISO9660 reader and a modern
 * virtio-blk driver over virtio-pci 1.x. Errors are negative numbers; for
 * ATA they are -(status | error << 8) so a caller can look at both. */

/* ---- time-outs -------------------------------------------------------- */
/* A deadline us microseconds from now (PM timer; an iteration count when
 * there is none); kit_deadline_passed() is cheap to call in a poll loop. */
struct kit_deadline { uint64_t end; uint64_t spins; bool pm; };
void kit_deadline_set(struct kit_deadline *dl, uint64_t us);
bool kit_deadline_passed(struct kit_deadline *dl);

/* ---- ATA / ATAPI PIO (ata.c) ------------------------------------------ */
#define KIT_ATA_SR_ERR 0x01
#define KIT_ATA_SR_DRQ 0x08
#define KIT_ATA_SR_DF 0x20
#define KIT_ATA_SR_DRDY 0x40
#define KIT_ATA_SR_BSY 0x80
#define KIT_ATA_ER_ABRT 0x04
#define KIT_ATA_ER_IDNF 0x10
#define KIT_ATA_ER_UNC 0x40
#define KIT_ATA_ETIMEDOUT (-0x10000)
#define KIT_ATA_ENODEV (-0x20000)
#define KIT_ATA_EPROTO (-0x30000) /* DRQ or byte count where none belongs */

enum kit_ata_kind { KIT_ATA_NONE = 0, KIT_ATA_DISK = 1, KIT_ATA_ATAPI = 2 };

struct kit_ata_dev {
    uint16_t io, ctl;       /* 0x1f0/0x3f6 or 0x170/0x376 */
    uint8_t slave;          /* 0 master, 1 slave */
    enum kit_ata_kind kind;
    bool lba48;
    uint64_t sectors;       /* ATA: addressable sectors (LBA48 if supported) */
    uint8_t last_status, last_error;
    char model[41];
    uint16_t ident[256];
};

/* The four legacy positions: 0 primary master, 1 primary slave,
 * 2 secondary master, 3 secondary slave. */
void kit_ata_init_pos(struct kit_ata_dev *d, int pos);
const char *kit_ata_pos_name(int pos);
/* Selects the device, disables its interrupts (nIEN) and identifies it
 * (IDENTIFY, or IDENTIFY PACKET after the ATAPI signature). Returns the kind. */
enum kit_ata_kind kit_ata_probe(struct kit_ata_dev *d);
void kit_ata_select(struct kit_ata_dev *d);
uint8_t kit_ata_status(struct kit_ata_dev *d);        /* alternate status */
/* Waits for BSY clear; returns the status or KIT_ATA_ETIMEDOUT. */
int kit_ata_wait_idle(struct kit_ata_dev *d, uint64_t us);
/* Loads the LBA48 task file (or LBA28 when !ext) and writes the command. */
void kit_ata_issue(struct kit_ata_dev *d, uint8_t cmd, uint64_t lba, uint32_t count,
                   uint8_t features, bool ext);
/* READ/WRITE SECTORS EXT (PIO), any count; 0 or a negative error. */
int kit_ata_read(struct kit_ata_dev *d, uint64_t lba, uint32_t count, void *buf);
int kit_ata_write(struct kit_ata_dev *d, uint64_t lba, uint32_t count, const void *buf);
int kit_ata_flush(struct kit_ata_dev *d);              /* FLUSH CACHE EXT */
/* A command without data (or one expected to fail): 0 or -(status|err<<8). */
int kit_ata_nodata(struct kit_ata_dev *d, uint8_t cmd, uint64_t lba, uint32_t count,
                   uint8_t features, bool ext);

/* Bus-master DMA (PIIX3 IDE, polled). kit_ata_bm_find() finds the
 * controller, enables I/O decoding and bus mastering and returns the
 * channel's bus-master base (primary or secondary by d->io), 0 if none.
 * kit_ata_dma_start() writes a PRD table at prd (guest-physical, below
 * 4 GiB, 8-byte aligned, not crossing 64 KiB; 8 bytes per 64 KiB of data)
 * for one contiguous buffer below 4 GiB, issues READ/WRITE DMA EXT for
 * count sectors (at most 65536) and starts the engine. kit_ata_dma_poll()
 * returns 1 while the command runs, 0 when it ended well, else a negative
 * error; it stops the engine when done. */
uint16_t kit_ata_bm_find(struct kit_ata_dev *d);
int kit_ata_dma_start(struct kit_ata_dev *d, uint16_t bm, uint32_t prd, bool write,
                      uint64_t lba, uint32_t count, uint32_t buf);
int kit_ata_dma_poll(struct kit_ata_dev *d, uint16_t bm);

/* ---- ATAPI (atapi.c) -------------------------------------------------- */
#define KIT_CD_SECTOR 2048
/* One PACKET command, PIO data-in of up to len bytes into buf (NULL: no
 * data). Returns the bytes moved, or -(status | error << 8) (the sense key
 * is error >> 4), or a KIT_ATA_E* value. */
int kit_atapi_packet(struct kit_ata_dev *d, const uint8_t cdb[12], void *buf, uint32_t len);
/* REQUEST SENSE: returns key << 16 | asc << 8 | ascq, or a negative error. */
int kit_atapi_sense(struct kit_ata_dev *d);
/* TEST UNIT READY until the unit attention of a new medium has passed;
 * 0 when ready. */
int kit_atapi_ready(struct kit_ata_dev *d);
/* READ CAPACITY: the number of 2048-byte blocks, or a negative error. */
int64_t kit_atapi_capacity(struct kit_ata_dev *d);
/* READ(10) of count 2048-byte sectors; 0 or a negative error. */
int kit_atapi_read(struct kit_ata_dev *d, uint32_t lba, uint32_t count, void *buf);

/* ---- ISO9660 (iso9660.c) ---------------------------------------------- */
typedef int (*kit_cd_read_fn)(void *ctx, uint32_t lba, uint32_t count, void *buf);
struct kit_iso_file { uint32_t lba; uint32_t size; bool dir; };
struct kit_iso9660 {
    kit_cd_read_fn read;
    void *ctx;
    char volume_id[33];
    uint32_t volume_blocks;
    struct kit_iso_file root;
};
/* Reads the primary volume descriptor (sector 16 on). 0 or negative. */
int kit_iso_open(struct kit_iso9660 *iso, kit_cd_read_fn read, void *ctx);
/* Finds "NAME" in the root or "DIR/NAME" one level down (case-insensitive,
 * ";1" and a trailing '.' ignored). 0 or negative. */
int kit_iso_find(struct kit_iso9660 *iso, const char *path, struct kit_iso_file *out);
/* Calls cb for each entry of a directory (not "." or ".."). */
int kit_iso_list(struct kit_iso9660 *iso, const struct kit_iso_file *dir,
                 void (*cb)(const char *name, const struct kit_iso_file *f, void *ctx),
                 void *ctx);
/* Reads a whole file into buf (rounded up to whole sectors: buf needs
 * size rounded up to 2048). 0 or negative. */
int kit_iso_read_file(struct kit_iso9660 *iso, const struct kit_iso_file *f, void *buf);
/* A kit_cd_read_fn over kit_atapi_read (ctx: struct kit_ata_dev *). */
int kit_atapi_cd_read(void *ctx, uint32_t lba, uint32_t count, void *buf);

/* ---- virtio-blk over modern virtio-pci (virtio-blk.c) ------------------ */
#define KIT_VIRTIO_S_ACK 0x01
#define KIT_VIRTIO_S_DRIVER 0x02
#define KIT_VIRTIO_S_DRIVER_OK 0x04
#define KIT_VIRTIO_S_FEATURES_OK 0x08
#define KIT_VIRTIO_S_NEEDS_RESET 0x40
#define KIT_VIRTIO_S_FAILED 0x80
#define KIT_VIRTIO_BLK_T_IN 0
#define KIT_VIRTIO_BLK_T_OUT 1
#define KIT_VIRTIO_BLK_T_FLUSH 4
#define KIT_VIRTIO_BLK_S_OK 0
#define KIT_VIRTIO_BLK_S_IOERR 1
#define KIT_VIRTIO_BLK_S_UNSUPP 2
#define KIT_VIRTQ_DESC_F_NEXT 1
#define KIT_VIRTQ_DESC_F_WRITE 2
#define KIT_VIRTQ_DESC_F_INDIRECT 4
#define KIT_VIRTIO_F_INDIRECT_DESC 28
#define KIT_VBLK_QSIZE 16
#define KIT_VBLK_ETIMEDOUT (-0x100)
#define KIT_VBLK_ERESET (-0x101)  /* the device set DEVICE_NEEDS_RESET */

struct kit_virtq_desc { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; };
struct kit_virtq_avail { uint16_t flags; uint16_t idx; uint16_t ring[KIT_VBLK_QSIZE]; uint16_t used_event; };
struct kit_virtq_used_elem { uint32_t id; uint32_t len; };
struct kit_virtq_used { uint16_t flags; uint16_t idx; struct kit_virtq_used_elem ring[KIT_VBLK_QSIZE]; uint16_t avail_event; };

struct kit_vblk_req { uint32_t type; uint32_t reserved; uint64_t sector; };

struct kit_vblk {
    struct kit_pci_dev pci;
    uint64_t common, notify, isr, device;   /* MMIO addresses of the structures */
    uint32_t notify_mult;
    uint16_t qsize;                          /* what the driver uses (<= KIT_VBLK_QSIZE) */
    uint16_t notify_off;
    uint64_t capacity;                       /* 512-byte sectors */
    bool has_flush;
    uint64_t features;                       /* offered */
    uint64_t want_extra;                     /* more features to accept if offered */
    /* Rings: one page each, in the kit image (identity-mapped). */
    volatile struct kit_virtq_desc *desc;
    volatile struct kit_virtq_avail *avail;
    volatile struct kit_virtq_used *used;
    uint16_t avail_idx, used_idx;
    struct kit_vblk_req *hdr;               /* request header and status byte */
    volatile uint8_t *status;
};

/* Finds the n-th (0-based) virtio-blk function (1af4:1042) and reads its
 * capabilities; enables memory decoding and bus mastering. 0 or negative. */
int kit_vblk_find(struct kit_vblk *v, int n);
/* Resets the device and brings it up: VERSION_1 (+FLUSH), queue 0, no MSI-X
 * vectors, DRIVER_OK. 0 or negative. */
int kit_vblk_init(struct kit_vblk *v);
void kit_vblk_reset(struct kit_vblk *v);
void kit_vblk_write64(struct kit_vblk *v, uint32_t field, uint64_t val);
uint8_t kit_vblk_get_status(struct kit_vblk *v);
/* Read/write count sectors at sector (buf: any RAM), flush: returns the
 * virtio status (0 ok, 1 IOERR, 2 UNSUPP) or a negative error. */
int kit_vblk_read(struct kit_vblk *v, uint64_t sector, uint32_t count, void *buf);
int kit_vblk_write(struct kit_vblk *v, uint64_t sector, uint32_t count, const void *buf);
int kit_vblk_flush(struct kit_vblk *v);
/* Low level, for tests: put head into the available ring and notify;
 * wait for one used element (returns its id, or negative; a needs-reset
 * status gives KIT_VBLK_ERESET). */
void kit_vblk_submit(struct kit_vblk *v, uint16_t head);
int kit_vblk_wait(struct kit_vblk *v, uint64_t us);
/* One request with type, sector and a data buffer (NULL: none). */
int kit_vblk_request(struct kit_vblk *v, uint32_t type, uint64_t sector, void *buf,
                     uint32_t len, bool dev_writes);
/* Several requests in flight (diskbench). Each slot owns a request header,
 * a status byte and an indirect table; with VIRTIO_F_INDIRECT_DESC
 * negotiated (set want_extra before kit_vblk_init) a request takes one ring
 * descriptor (slot s is head s), otherwise three (head 3s). Slots live in
 * the caller's RAM, 16-byte aligned. */
struct kit_vblk_slot {
    struct kit_vblk_req hdr;
    struct kit_virtq_desc ind[3];
    volatile uint8_t status;
    uint8_t pad[15];
} __attribute__((aligned(16)));
/* How many slots can be in flight at once. */
int kit_vblk_slots(struct kit_vblk *v);
/* Puts request slot into the available ring (no notification yet); len
 * bytes of guest-physical buf. */
void kit_vblk_post(struct kit_vblk *v, struct kit_vblk_slot *slots, int slot,
                   uint32_t type, uint64_t sector, uint64_t buf, uint32_t len);
/* Notifies the device of everything posted (skipped when the device set
 * VIRTQ_USED_F_NO_NOTIFY). */
void kit_vblk_kick(struct kit_vblk *v);
/* One completed request, without waiting: its slot (>= 0, *status set to the
 * virtio status) or -1 when none has completed. */
int kit_vblk_reap(struct kit_vblk *v, struct kit_vblk_slot *slots, int *status);
/* Common configuration fields (virtio 1.x 4.1.4.3 offsets). */
#define KIT_VPCI_DFSELECT 0x00
#define KIT_VPCI_DF 0x04
#define KIT_VPCI_GFSELECT 0x08
#define KIT_VPCI_GF 0x0c
#define KIT_VPCI_MSIX_CONFIG 0x10
#define KIT_VPCI_NUM_QUEUES 0x12
#define KIT_VPCI_STATUS 0x14
#define KIT_VPCI_CFG_GEN 0x15
#define KIT_VPCI_Q_SELECT 0x16
#define KIT_VPCI_Q_SIZE 0x18
#define KIT_VPCI_Q_MSIX 0x1a
#define KIT_VPCI_Q_ENABLE 0x1c
#define KIT_VPCI_Q_NOTIFY_OFF 0x1e
#define KIT_VPCI_Q_DESC 0x20
#define KIT_VPCI_Q_DRIVER 0x28
#define KIT_VPCI_Q_DEVICE 0x30

/* ==== end of disks and CD-ROMs ========================================= */

/* ==== display and input (vbe.c, ps2.c, virtio-input.c) ================= */

/* ---- Bochs/std VGA in a VBE DISPI mode (vbe.c) ------------------------- */
struct kit_vbe {
    struct kit_pci_dev pci;
    uint64_t lfb;                 /* BAR0: the linear framebuffer */
    uint32_t width, height, bpp;  /* bpp 8, 15, 16, 24 or 32 */
    uint32_t bytes_pp, pitch;
};
/* Finds PCI 1234:1111, enables memory decoding, reads BAR0 and checks the
 * DISPI ID. 0 or negative. */
int kit_vbe_find(struct kit_vbe *v);
/* Sets width x height x bpp with the linear framebuffer, turns the display
 * on and maps the framebuffer. 0 or negative (the mode did not stick). */
int kit_vbe_set_mode(struct kit_vbe *v, uint32_t width, uint32_t height, uint32_t bpp);
/* One DAC entry (6 bits per component) for 8 bpp. */
void kit_vbe_dac_set(uint8_t index, uint8_t r6, uint8_t g6, uint8_t b6);
/* An 8-bit RGB colour as the mode stores it (15, 16: truncated to 5/6 bits;
 * 24, 32: 0xRRGGBB; not for 8 bpp). */
uint32_t kit_vbe_pixel(const struct kit_vbe *v, uint8_t r, uint8_t g, uint8_t b);
/* "mode=WxHxBPP" from a command line. */
bool kit_vbe_parse_mode(const char *cmdline, uint32_t *w, uint32_t *h, uint32_t *bpp);

/* ---- i8042 and PS/2 keyboard (ps2.c) ----------------------------------- */
/* Writes the controller's command byte (e.g. 0x41: IRQ 1, translation to
 * set 1, mouse interface as is), flushes, resets the keyboard (ACK, BAT).
 * 0 or negative. */
int kit_ps2_init_keyboard(uint8_t command_byte);
/* A byte from the output buffer within us microseconds, or -1. */
int kit_ps2_read(uint64_t us);
void kit_ps2_flush(void);

/* ---- virtio-input over modern virtio-pci (virtio-input.c) -------------- */
#define KIT_VINPUT_QSIZE 16
enum {
    KIT_VINPUT_CFG_ID_NAME = 0x01, KIT_VINPUT_CFG_ID_SERIAL = 0x02,
    KIT_VINPUT_CFG_ID_DEVIDS = 0x03, KIT_VINPUT_CFG_PROP_BITS = 0x10,
    KIT_VINPUT_CFG_EV_BITS = 0x11, KIT_VINPUT_CFG_ABS_INFO = 0x12,
};
enum { KIT_EV_SYN = 0, KIT_EV_KEY = 1, KIT_EV_REL = 2, KIT_EV_ABS = 3 };
#define KIT_BTN_LEFT 0x110
#define KIT_REL_WHEEL 0x08
struct kit_vinput_event { uint16_t type; uint16_t code; uint32_t value; };
struct kit_vinput_avail { uint16_t flags; uint16_t idx; uint16_t ring[KIT_VINPUT_QSIZE]; uint16_t used_event; };
struct kit_vinput_used { uint16_t flags; uint16_t idx; struct kit_virtq_used_elem ring[KIT_VINPUT_QSIZE]; uint16_t avail_event; };
struct kit_vinput {
    struct kit_pci_dev pci;
    uint64_t common, notify, device;
    uint32_t notify_mult;
    uint16_t notify_off;
    volatile struct kit_virtq_desc *desc;
    volatile struct kit_vinput_avail *avail;
    volatile struct kit_vinput_used *used;
    struct kit_vinput_event *events;
    uint16_t avail_idx, used_idx;
};
/* Finds PCI 1af4:1052 and its capabilities; memory decoding and bus
 * mastering on. 0 or negative. */
int kit_vinput_find(struct kit_vinput *v);
/* The configuration union for select/subsel into out (128 bytes); returns
 * its size. */
unsigned kit_vinput_config(struct kit_vinput *v, uint8_t select, uint8_t subsel, uint8_t *out);
/* Resets and starts the device (VERSION_1, both queues, no MSI-X), posts
 * KIT_VINPUT_QSIZE event buffers. 0 or negative. */
int kit_vinput_init(struct kit_vinput *v);
/* The next event the device returned (its buffer is posted again), or
 * false when none is waiting. Kick after taking some. */
bool kit_vinput_next(struct kit_vinput *v, struct kit_vinput_event *out);
void kit_vinput_kick(struct kit_vinput *v);
uint8_t kit_vinput_status(struct kit_vinput *v);

/* ==== end of display and input ========================================= */

#endif
