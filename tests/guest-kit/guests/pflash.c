/* pflash: drives the CFI flash that vessel-run --firmware-vars puts below
 * 4 GiB (no firmware image with --kernel: the flash ends at 4 GiB).
 *
 * Command line: size=KIB (the flash's size) block=N (the block to use),
 * and `verify` for a second run that only checks what the first one left.
 *
 * First run: CFI query (QRY, Intel/Sharp command set, one region of 4 KiB
 * blocks adding up to the size), read ID, OVMF's detection probe (Clear
 * Status, Read Status reads 0x00), erase block N, program PFLASH_TEXT at its
 * offset 16 byte by byte, back to read array and read everything back. */
#include "kit.h"
#include "net.h" /* kit_cmdline_uint */

KIT_GUEST("pflash");

#define PFLASH_TEXT "VESSEL-PFLASH-KIT"
#define TEXT_OFFSET 16
#define BLOCK 4096u

static volatile uint8_t *flash;

static uint8_t rd(uint32_t off)
{
    return flash[off];
}

static void wr(uint32_t off, uint8_t v)
{
    flash[off] = v;
}

/* The block must read 0xFF but for the text at TEXT_OFFSET. */
static void check_block(uint32_t block_off, const char *what)
{
    size_t n = strlen(PFLASH_TEXT);
    for (uint32_t i = 0; i < BLOCK; i++) {
        uint8_t want = i >= TEXT_OFFSET && i < TEXT_OFFSET + n
                           ? (uint8_t)PFLASH_TEXT[i - TEXT_OFFSET] : 0xff;
        uint8_t got = rd(block_off + i);
        if (got != want)
            kit_fail("%s: byte %u of the block is 0x%02x, not 0x%02x", what, i, got, want);
    }
}

void kit_main(void)
{
    uint32_t size = kit_cmdline_uint("size", 0) * 1024u;
    uint32_t block = kit_cmdline_uint("block", 1);
    if (size < 2 * BLOCK || block >= size / BLOCK)
        kit_fail("command line needs size=KIB and block=N inside it");
    flash = (volatile uint8_t *)(uintptr_t)(0x100000000ull - size);
    uint32_t block_off = block * BLOCK;

    if (kit_cmdline_has("verify")) {
        check_block(block_off, "after a restart");
        kit_printf("KIT: pflash persisted ok\n");
        kit_pass();
    }

    /* CFI query (AP-646): any address takes the command on this part. */
    wr(0x55, 0x98);
    if (rd(0x10) != 'Q' || rd(0x11) != 'R' || rd(0x12) != 'Y')
        kit_fail("no CFI query string: %02x %02x %02x", rd(0x10), rd(0x11), rd(0x12));
    uint32_t cmdset = rd(0x13) | rd(0x14) << 8;
    uint32_t regions = rd(0x2c);
    uint32_t blocks = (rd(0x2d) | rd(0x2e) << 8) + 1;
    uint32_t block_size = (rd(0x2f) | rd(0x30) << 8) * 256u;
    uint32_t size_log2 = rd(0x27);
    kit_printf("KIT: pflash cfi cmdset=%u regions=%u blocks=%u block-size=%u size-log2=%u\n",
               cmdset, regions, blocks, block_size, size_log2);
    if (cmdset != 1 || regions != 1 || block_size != BLOCK || blocks * block_size != size
        || (1ull << size_log2) < size)
        kit_fail("CFI geometry does not describe this flash");
    wr(0, 0x90);
    kit_printf("KIT: pflash id manufacturer=0x%02x device=0x%02x\n", rd(0), rd(1));
    wr(0, 0xff);

    /* OVMF's QemuFlashDetected probe, at the block's first byte. */
    uint8_t original = rd(block_off);
    wr(block_off, 0x50);
    if (rd(block_off) != original)
        kit_fail("clear status changed what reads back");
    wr(block_off, 0x70);
    if (rd(block_off) != 0x00)
        kit_fail("status after clear is 0x%02x, not 0x00", rd(block_off));
    wr(block_off, 0xff);

    /* Erase, then program byte by byte as OVMF's QemuFlashWrite does. */
    wr(block_off, 0x20);
    wr(block_off, 0xd0);
    uint8_t status = rd(block_off);
    if (status != 0x80)
        kit_fail("erase status 0x%02x", status);
    size_t n = strlen(PFLASH_TEXT);
    for (size_t i = 0; i < n; i++) {
        wr(block_off + TEXT_OFFSET + (uint32_t)i, 0x10);
        wr(block_off + TEXT_OFFSET + (uint32_t)i, (uint8_t)PFLASH_TEXT[i]);
    }
    status = rd(block_off);
    if (status != 0x80)
        kit_fail("program status 0x%02x", status);
    wr(block_off + TEXT_OFFSET + (uint32_t)n - 1, 0xff);
    check_block(block_off, "after erase and program");
    kit_printf("KIT: pflash erased and programmed block %u\n", block);
    kit_pass();
}
