/* A small AML (ACPI Machine Language) emitter, enough to write a PC board's
 * DSDT: names, integers, strings, packages, buffers, methods, scopes,
 * devices, a few statements (If/Else, Store, Return, LEqual) and the
 * resource descriptors a PCI host bridge and ISA devices need.
 *
 * Every constructor returns a new term. aml_append() moves a child into a
 * container (scope, device, method, if/else, package, buffer, resource
 * template) and frees the child; containers get their PkgLength when they are
 * appended or finished. Encodings follow the ACPI 6.x spec, chapter 20 (AML)
 * and section 6.4 (resource data types).
 */
#pragma once

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef struct vmm_aml vmm_aml;

void vmm_aml_free (vmm_aml *aml);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (vmm_aml, vmm_aml_free)

/* Moves @child into @parent; @child is freed. */
void vmm_aml_append (vmm_aml *parent, vmm_aml *child);

/* The encoded bytes of a finished term (containers get their PkgLength);
 * @aml is freed. */
GByteArray *vmm_aml_finish (vmm_aml *aml);

/* A term list with no opcode of its own: the body of a definition block. */
vmm_aml *vmm_aml_block (void);

/* Data objects. */
vmm_aml *vmm_aml_int (uint64_t value);        /* Zero/One/Ones or the shortest prefix */
vmm_aml *vmm_aml_string (const char *s);      /* ASCII, no NUL inside */
vmm_aml *vmm_aml_eisaid (const char *id);     /* "PNP0A03" -> DWord */
vmm_aml *vmm_aml_name_string (const char *path); /* "\\_SB.PCI0", "^FOO", "PICM" */
vmm_aml *vmm_aml_package (void);              /* elements appended (<= 255) */
vmm_aml *vmm_aml_buffer (const uint8_t *data, size_t len);

/* Named objects and containers. */
vmm_aml *vmm_aml_name (const char *name, vmm_aml *value); /* takes @value */
vmm_aml *vmm_aml_scope (const char *name);
vmm_aml *vmm_aml_device (const char *name);
vmm_aml *vmm_aml_method (const char *name, unsigned nargs, bool serialized);

/* Statements and expressions. */
vmm_aml *vmm_aml_if (vmm_aml *predicate);     /* takes @predicate; body appended */
vmm_aml *vmm_aml_else (void);                 /* body appended; emit right after an If */
vmm_aml *vmm_aml_return (vmm_aml *value);     /* takes @value */
vmm_aml *vmm_aml_store (vmm_aml *src, vmm_aml *dst); /* takes both */
vmm_aml *vmm_aml_lequal (vmm_aml *a, vmm_aml *b);    /* takes both */
vmm_aml *vmm_aml_arg (unsigned n);            /* Arg0..Arg6 */
vmm_aml *vmm_aml_local (unsigned n);          /* Local0..Local7 */

/* Resource templates: a buffer of descriptors closed by an End Tag. */
vmm_aml *vmm_aml_resource_template (void);

typedef enum {
  VMM_AML_CONSUMER = 1,            /* General Flags bit 0 */
  VMM_AML_PRODUCER = 0,
} vmm_aml_usage;

typedef enum {
  VMM_AML_NON_CACHEABLE = 0,
  VMM_AML_CACHEABLE = 1,
  VMM_AML_WRITE_COMBINING = 2,
  VMM_AML_PREFETCHABLE = 3,
} vmm_aml_cacheability;

/* IO(Decode16, min, max, align, len) */
vmm_aml *vmm_aml_io (uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* IRQNoFlags(){irq}: edge, active high, exclusive. */
vmm_aml *vmm_aml_irq_noflags (unsigned irq);
vmm_aml *vmm_aml_memory32_fixed (uint32_t base, uint32_t len, bool writable);
/* Address-space descriptors, always MinFixed, MaxFixed, PosDecode, with no
 * resource source; length = max - min + 1. */
vmm_aml *vmm_aml_word_bus_number (vmm_aml_usage usage, uint16_t min, uint16_t max);
vmm_aml *vmm_aml_dword_io (vmm_aml_usage usage, uint32_t min, uint32_t max);
vmm_aml *vmm_aml_dword_memory (vmm_aml_usage usage, vmm_aml_cacheability cache,
                               bool writable, uint32_t min, uint32_t max);
vmm_aml *vmm_aml_qword_memory (vmm_aml_usage usage, vmm_aml_cacheability cache,
                               bool writable, uint64_t min, uint64_t max);

/* PkgLength of a package whose contents (after the PkgLength) are
 * @content_len bytes: writes 1-4 bytes to @out and returns the count, or 0
 * when the length cannot be encoded (>= 2^28). Exposed for the unit test. */
unsigned vmm_aml_encode_pkglength (size_t content_len, uint8_t out[4]);

G_END_DECLS
