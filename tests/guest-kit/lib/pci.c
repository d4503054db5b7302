/* Vessel guest kit: PCI configuration mechanism #1 (ports 0xcf8/0xcfc). */
#include "kit.h"

static void pci_addr(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    outl(0xcf8, 0x80000000u | (uint32_t)bus << 16 | (uint32_t)(dev & 31) << 11 |
                    (uint32_t)(fn & 7) << 8 | (off & 0xfc));
}

uint32_t kit_pci_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    pci_addr(bus, dev, fn, off);
    return inl(0xcfc);
}

uint16_t kit_pci_read16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    pci_addr(bus, dev, fn, off);
    return inw((uint16_t)(0xcfc + (off & 2)));
}

uint8_t kit_pci_read8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off)
{
    pci_addr(bus, dev, fn, off);
    return inb((uint16_t)(0xcfc + (off & 3)));
}

void kit_pci_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint32_t v)
{
    pci_addr(bus, dev, fn, off);
    outl(0xcfc, v);
}

void kit_pci_write16(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint16_t v)
{
    pci_addr(bus, dev, fn, off);
    outw((uint16_t)(0xcfc + (off & 2)), v);
}

void kit_pci_write8(uint8_t bus, uint8_t dev, uint8_t fn, uint8_t off, uint8_t v)
{
    pci_addr(bus, dev, fn, off);
    outb((uint16_t)(0xcfc + (off & 3)), v);
}

static int scan_bus(uint8_t bus, bool (*cb)(const struct kit_pci_dev *, void *), void *ctx,
                    bool *stop, int depth)
{
    int count = 0;
    for (uint8_t dev = 0; dev < 32 && !*stop; dev++) {
        uint8_t nfn = 1;
        for (uint8_t fn = 0; fn < nfn && !*stop; fn++) {
            uint32_t id = kit_pci_read32(bus, dev, fn, 0);
            if ((id & 0xffff) == 0xffff || (id & 0xffff) == 0)
                continue;
            struct kit_pci_dev d = { .bus = bus, .dev = dev, .fn = fn };
            uint32_t cls = kit_pci_read32(bus, dev, fn, 8);
            d.vendor = (uint16_t)id;
            d.device = (uint16_t)(id >> 16);
            d.class_code = (uint8_t)(cls >> 24);
            d.subclass = (uint8_t)(cls >> 16);
            d.prog_if = (uint8_t)(cls >> 8);
            d.header_type = kit_pci_read8(bus, dev, fn, 0x0e);
            if (fn == 0 && (d.header_type & 0x80))
                nfn = 8;
            count++;
            if (cb && !cb(&d, ctx)) {
                *stop = true;
                break;
            }
            if ((d.header_type & 0x7f) == 1 && depth < 8) {
                uint8_t sec = kit_pci_read8(bus, dev, fn, 0x19);
                if (sec > bus)
                    count += scan_bus(sec, cb, ctx, stop, depth + 1);
            }
        }
    }
    return count;
}

int kit_pci_scan(bool (*cb)(const struct kit_pci_dev *d, void *ctx), void *ctx)
{
    bool stop = false;
    return scan_bus(0, cb, ctx, &stop, 0);
}
