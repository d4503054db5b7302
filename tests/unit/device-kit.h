/* Every device model on one set of buses, for the generic state and fuzz
 * tests: a small board without KVM. */
#pragma once

#include "fake-clock.h"
#include "fake-irq.h"
#include "vmm-core/bus/pci.h"
#include "vmm-core/devices/debugcon.h"
#include "vmm-core/devices/i440fx.h"
#include "vmm-core/devices/i8042.h"
#include "vmm-core/devices/piix3.h"
#include "vmm-core/devices/piix4-pm.h"
#include "vmm-core/devices/port92.h"
#include "vmm-core/devices/rtc.h"
#include "vmm-core/devices/uart16550.h"

typedef struct kit_port_range {
  uint16_t base;
  uint16_t len;
} kit_port_range;

typedef struct kit_device {
  const char *name;
  vmm_device *dev;
  int devfn; /* PCI function, or -1 */
  kit_port_range ports[3];
} kit_device;

#define KIT_MAX_DEVICES 8

typedef struct device_kit {
  vmm_bus *pio;
  vmm_bus *mmio;
  vmm_pci_host *host;
  fake_clock *fc;
  fake_irq irq;
  GByteArray *serial_out;
  GByteArray *debug_out;
  uart16550 *uart;
  debugcon *dcon;
  rtc *rtc;
  piix4_pm *pm;
  i440fx *fx;
  piix3 *piix3;
  i8042 *kbc;
  port92 *p92;
  unsigned callbacks; /* board callbacks made (resets, power-off, …) */
  kit_device devices[KIT_MAX_DEVICES];
  unsigned n_devices;
} device_kit;

device_kit *device_kit_new (void);
void device_kit_free (device_kit *kit);
/* Host-side input of every kind, chosen by @rand. */
void device_kit_host_input (device_kit *kit, GRand *rand);
