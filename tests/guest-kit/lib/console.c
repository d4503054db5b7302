/* Vessel guest kit: COM1 (16550, polled), debugcon (port 0x402) and printf. */
#include "kit.h"

#define COM1 0x3f8
#define DEBUGCON 0x402

static bool serial_ok;
static kit_spinlock print_lock;

void kit_serial_init(void)
{
    outb(COM1 + 1, 0x00);   /* IER: no interrupts */
    outb(COM1 + 3, 0x80);   /* LCR: DLAB */
    outb(COM1 + 0, 0x01);   /* DLL: 115200 baud */
    outb(COM1 + 1, 0x00);   /* DLM */
    outb(COM1 + 3, 0x03);   /* LCR: 8N1 */
    outb(COM1 + 2, 0xc7);   /* FCR: FIFO on, cleared, 14-byte threshold */
    outb(COM1 + 4, 0x0b);   /* MCR: DTR, RTS, OUT2 */
    /* An absent UART reads 0xff; then writes go out without waiting. */
    serial_ok = inb(COM1 + 5) != 0xff;
}

void kit_serial_putc(char c)
{
    if (c == '\n')
        kit_serial_putc('\r');
    if (serial_ok) {
        for (int i = 0; i < 100000; i++)
            if (inb(COM1 + 5) & 0x20)   /* LSR.THRE */
                break;
    }
    outb(COM1, (uint8_t)c);
}

void kit_debugcon_putc(char c)
{
    outb(DEBUGCON, (uint8_t)c);
}

void kit_debugcon_puts(const char *s)
{
    while (*s)
        kit_debugcon_putc(*s++);
}

/* ---- formatting --------------------------------------------------------- */

struct sink {
    void (*put)(struct sink *s, char c);
    char *buf;
    size_t size, len;
};

static void put_serial(struct sink *s, char c)
{
    kit_serial_putc(c);
    s->len++;
}

static void put_debugcon(struct sink *s, char c)
{
    kit_debugcon_putc(c);
    s->len++;
}

static void put_buf(struct sink *s, char c)
{
    if (s->len + 1 < s->size)
        s->buf[s->len] = c;
    s->len++;
}

static void emit_num(struct sink *s, uint64_t v, bool neg, unsigned base, bool upper,
                     int width, bool zero, bool left, const char *prefix)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v);
    int plen = (neg ? 1 : 0) + (prefix ? (int)strlen(prefix) : 0);
    int pad = width - n - plen;
    if (!left && !zero)
        for (; pad > 0; pad--)
            s->put(s, ' ');
    if (neg)
        s->put(s, '-');
    for (const char *p = prefix; p && *p; p++)
        s->put(s, *p);
    if (!left && zero)
        for (; pad > 0; pad--)
            s->put(s, '0');
    while (n)
        s->put(s, tmp[--n]);
    if (left)
        for (; pad > 0; pad--)
            s->put(s, ' ');
}

static void format(struct sink *s, const char *fmt, va_list ap)
{
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            s->put(s, *fmt);
            continue;
        }
        fmt++;
        bool zero = false, left = false, alt = false;
        for (;; fmt++) {
            if (*fmt == '0')
                zero = true;
            else if (*fmt == '-')
                left = true;
            else if (*fmt == '#')
                alt = true;
            else
                break;
        }
        int width = 0;
        if (*fmt == '*') {
            width = va_arg(ap, int);
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        int lng = 0;
        while (*fmt == 'l') {
            lng++;
            fmt++;
        }
        if (*fmt == 'z') {
            lng = 1;
            fmt++;
        }
        switch (*fmt) {
        case 'd':
        case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            bool neg = v < 0;
            emit_num(s, neg ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, neg, 10, false,
                     width, zero, left, NULL);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned int);
            unsigned base = *fmt == 'u' ? 10 : 16;
            emit_num(s, v, false, base, *fmt == 'X', width, zero, left,
                     alt && base == 16 ? "0x" : NULL);
            break;
        }
        case 'p':
            emit_num(s, (uintptr_t)va_arg(ap, void *), false, 16, false, width, zero,
                     left, "0x");
            break;
        case 's': {
            const char *str = va_arg(ap, const char *);
            if (!str)
                str = "(null)";
            int pad = width - (int)strlen(str);
            if (!left)
                for (; pad > 0; pad--)
                    s->put(s, ' ');
            while (*str)
                s->put(s, *str++);
            if (left)
                for (; pad > 0; pad--)
                    s->put(s, ' ');
            break;
        }
        case 'c':
            s->put(s, (char)va_arg(ap, int));
            break;
        case '%':
            s->put(s, '%');
            break;
        case '\0':
            return;
        default:
            s->put(s, '%');
            s->put(s, *fmt);
            break;
        }
    }
}

int kit_vprintf(const char *fmt, va_list ap)
{
    struct sink s = { .put = put_serial };
    kit_spin_lock(&print_lock);
    format(&s, fmt, ap);
    kit_spin_unlock(&print_lock);
    return (int)s.len;
}

int kit_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kit_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int kit_dprintf(const char *fmt, ...)
{
    struct sink s = { .put = put_debugcon };
    va_list ap;
    va_start(ap, fmt);
    kit_spin_lock(&print_lock);
    format(&s, fmt, ap);
    kit_spin_unlock(&print_lock);
    va_end(ap);
    return (int)s.len;
}

int kit_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct sink s = { .put = put_buf, .buf = buf, .size = size };
    format(&s, fmt, ap);
    if (size)
        buf[s.len < size ? s.len : size - 1] = '\0';
    return (int)s.len;
}

int kit_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kit_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}
