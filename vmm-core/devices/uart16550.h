/* 16550A UART (COM1: port 0x3f8, IRQ 4). Transmitted bytes go straight to a
 * vmm_chardev; received bytes are pushed by the host side with
 * uart16550_receive() while the receive FIFO has room. */
#pragma once

#include <stddef.h>

#include "vmm-core/bus/bus.h"
#include "vmm-core/bus/irq.h"
#include "vmm-core/devices/chardev.h"
#include "vmm-core/kvm/clock.h"

G_BEGIN_DECLS

#define UART16550_FIFO_SIZE 16
#define UART16550_NUM_PORTS 8
#define UART16550_COM1_BASE 0x3f8
#define UART16550_COM1_IRQ 4

typedef struct uart16550 uart16550;

/* The guest freed receive FIFO space: the back end may push more. Called
 * with the UART's lock held on the thread that read the register; schedule
 * the push (e.g. on the I/O thread), do not call uart16550_receive() from
 * inside the callback. */
typedef void (*uart16550_rx_ready_fn) (void *opaque);

/* @irq and @chr are copied. @clock drives the FIFO character-timeout
 * interrupt; with a NULL clock the timeout fires at once. */
uart16550 *uart16550_create (const char *name, const vmm_irq *irq,
                             const vmm_chardev *chr, vmm_clock *clock,
                             uart16550_rx_ready_fn rx_ready,
                             void *rx_ready_opaque);
vmm_device *uart16550_device (uart16550 *uart);
/* Claims the eight ports at @base. */
gboolean uart16550_attach (uart16550 *uart, vmm_bus *pio, uint16_t base,
                           GError **error);

/* Host → guest. Returns how many bytes of @buf were accepted (the free FIFO
 * space; 0 in loopback mode). Takes the UART's lock. */
size_t uart16550_receive (uart16550 *uart, const uint8_t *buf, size_t len);
/* How many bytes uart16550_receive() would accept now. */
size_t uart16550_rx_space (uart16550 *uart);

G_END_DECLS
