/*
 * cdwatch: watches the ATAPI CD-ROM at the IDE secondary master the way an
 * operating system's CD driver notices media changes, and prints each change
 * of state on COM1 as one line:
 *
 *   KIT: cd state=ready volume=<primary volume descriptor's volume id>
 *   KIT: cd state=no-medium (sense 2/3a/QQ)
 *   KIT: cd state=not-ready (sense K/AA/QQ)      any other NOT READY etc.
 *   KIT: cd unit-attention (sense 6/28/00)
 *   KIT: cd locked volume=V                      after PREVENT MEDIUM REMOVAL
 *   KIT: cd eject-request                        the host asked to eject a
 *                                                locked tray
 *
 * It never ends by itself; the host stops it (tests/guest/test_cdwatch.py).
 *
 * The poll is TEST UNIT READY (SPC-3 6.33). GOOD means a medium is in and
 * usable; CHECK CONDITION (ERR in the ATA status, ATA/ATAPI-6 9.10) is
 * followed by REQUEST SENSE (SPC-3 6.27, fixed format 4.5.3) whose sense key
 * and ASC/ASCQ say why (SPC-3 4.5.6 and annex D):
 *   2h NOT READY / 3Ah MEDIUM NOT PRESENT (ASCQ 00h, 01h tray closed, 02h tray
 *     open): the drive is empty;
 *   6h UNIT ATTENTION / 28h NOT READY TO READY CHANGE, MEDIUM MAY HAVE
 *     CHANGED: a medium went in (MMC-5 4.1.6.2); it is reported once, to the
 *     first command that is not INQUIRY, REQUEST SENSE, GET CONFIGURATION or
 *     GET EVENT STATUS NOTIFICATION, and the next one runs normally.
 * After a unit attention the volume is read again, since the disc is new.
 *
 * Each poll first asks GET EVENT STATUS NOTIFICATION (MMC-5 6.6, polled, media
 * class) for an EjectRequest (media event 1h, table 146), the event a drive
 * raises when someone presses eject on a locked tray, but prints it only after
 * the TEST UNIT READY of the same poll: so when the host's eject is refused,
 * any change that eject wrongly made shows before the eject-request line.
 *
 * Command line: "lock=V" sends PREVENT ALLOW MEDIUM REMOVAL with Prevent=1
 * (MMC-5 6.x / SPC-3 6.13, CDB byte 4 bit 0) once volume V is ready, so the
 * host's eject without force is refused.
 *
 * The guest runs at CPL0, which the nested KVM here emulates instruction by
 * instruction; so between polls it halts until a 50 Hz LAPIC timer tick
 * (calibrated against the ACPI PM timer) instead of spinning on a clock.
 */
#include "kit.h"

KIT_GUEST("cdwatch");

#define POLL_HZ 50 /* a poll every 20 ms */
#define OP_TEST_UNIT_READY 0x00
#define OP_PREVENT_ALLOW 0x1e
#define OP_GET_EVENT_STATUS 0x4a
#define MEDIA_EVENT_EJECT_REQUEST 0x1
#define KEY_NOT_READY 0x2
#define KEY_UNIT_ATTENTION 0x6
#define ASC_MEDIUM_NOT_PRESENT 0x3a

enum cd_state { CD_UNKNOWN, CD_READY, CD_NO_MEDIUM, CD_NOT_READY };

static volatile uint64_t ticks;

static void tick(struct kit_frame *f)
{
    ticks++;
    kit_lapic_eoi();
}

/* Halts until the next timer tick; the interrupt is what wakes the CPU. */
static void wait_tick(void)
{
    uint64_t t = ticks;
    while (ticks == t)
        sti_hlt();
    cli();
}

/* A CHECK CONDITION is ERR in the status (the packet layer's -(status |
 * error << 8)); the KIT_ATA_E* values are lost protocol or time-outs. */
static bool check_condition(int r)
{
    return r < 0 && r > KIT_ATA_ETIMEDOUT && ((-r) & KIT_ATA_SR_ERR);
}

static void lock_tray(struct kit_ata_dev *d, const char *volume)
{
    uint8_t cdb[12] = { OP_PREVENT_ALLOW, 0, 0, 0, 0x01 /* Prevent */ };
    int r = kit_atapi_packet(d, cdb, NULL, 0);
    if (r < 0)
        kit_fail("PREVENT ALLOW MEDIUM REMOVAL failed: %d, sense %x", r, kit_atapi_sense(d));
    kit_printf("KIT: cd locked volume=%s\n", volume);
}

/* Polled GET EVENT STATUS NOTIFICATION for the media class: true when the
 * drive reports an EjectRequest (which reading it clears). */
static bool eject_requested(struct kit_ata_dev *d)
{
    uint8_t cdb[12] = { OP_GET_EVENT_STATUS, 0x01 /* Polled */, 0, 0, 0x10 /* media */,
                        0, 0, 0, 8 };
    uint8_t b[8];
    memset(b, 0, sizeof(b));
    int r = kit_atapi_packet(d, cdb, b, sizeof(b));
    if (r < 0) {
        kit_atapi_sense(d); /* not offered: clear the sense and go on */
        return false;
    }
    /* Header byte 2: NEA (bit 7), notification class (bits 2-0, 4 = media). */
    return r == 8 && !(b[2] & 0x80) && (b[2] & 0x07) == 4 &&
           (b[4] & 0x0f) == MEDIA_EVENT_EJECT_REQUEST;
}

void kit_main(void)
{
    struct kit_ata_dev d;
    kit_ata_init_pos(&d, 2);
    if (kit_ata_probe(&d) != KIT_ATA_ATAPI)
        kit_fail("no ATAPI CD-ROM at the IDE secondary master");
    kit_printf("kit: cdwatch: cdrom \"%s\" at the secondary master\n", d.model);

    if (!kit_pmtmr_present())
        kit_fail("no ACPI PM timer to calibrate the LAPIC timer against");
    uint64_t lapic_tps = kit_lapic_timer_calibrate();
    if (lapic_tps < 1000)
        kit_fail("LAPIC timer calibration gave %lu Hz", lapic_tps);
    kit_set_handler(KIT_VEC_LAPIC_TIMER, tick);
    kit_lapic_timer_periodic(lapic_tps, POLL_HZ, KIT_VEC_LAPIC_TIMER);

    enum cd_state state = CD_UNKNOWN;
    int last_sense = -1;
    bool locked = false;
    bool ejreq = false;
    for (;; wait_tick()) {
        if (ejreq)
            kit_printf("KIT: cd eject-request\n");
        ejreq = eject_requested(&d);
        uint8_t tur[12] = { OP_TEST_UNIT_READY };
        int r = kit_atapi_packet(&d, tur, NULL, 0);
        if (r >= 0) {
            if (state == CD_READY)
                continue;
            struct kit_iso9660 iso;
            int e = kit_iso_open(&iso, kit_atapi_cd_read, &d);
            if (e < 0) {
                /* Changed again between the two commands: the next poll sees it. */
                kit_printf("kit: cdwatch: volume descriptor unreadable (%d)\n", e);
                continue;
            }
            state = CD_READY;
            kit_printf("KIT: cd state=ready volume=%s\n", iso.volume_id);
            char want[48];
            kit_snprintf(want, sizeof(want), "lock=%s", iso.volume_id);
            if (!locked && kit_cmdline_has(want)) {
                lock_tray(&d, iso.volume_id);
                locked = true;
            }
            continue;
        }
        if (!check_condition(r))
            kit_fail("TEST UNIT READY: %d (status %x)", r, kit_ata_status(&d));
        int s = kit_atapi_sense(&d);
        if (s < 0)
            kit_fail("REQUEST SENSE after CHECK CONDITION: %d", s);
        int key = s >> 16, asc = (s >> 8) & 0xff, ascq = s & 0xff;
        if (key == KEY_UNIT_ATTENTION) {
            /* One event, not a state: always reported, and what follows it
             * is reported afresh. */
            kit_printf("KIT: cd unit-attention (sense %x/%02x/%02x)\n", key, asc, ascq);
            state = CD_UNKNOWN;
            continue;
        }
        enum cd_state now = key == KEY_NOT_READY && asc == ASC_MEDIUM_NOT_PRESENT
                                ? CD_NO_MEDIUM : CD_NOT_READY;
        if (now == state && s == last_sense)
            continue;
        state = now;
        last_sense = s;
        /* The disc left although the guest held it: the host forced the
         * tray, which drops the lock (as QEMU does); lock the next disc of
         * that name again. */
        locked = false;
        kit_printf("KIT: cd state=%s (sense %x/%02x/%02x)\n",
                   now == CD_NO_MEDIUM ? "no-medium" : "not-ready", key, asc, ascq);
    }
}
