/* SPDX-License-Identifier: MIT */
/*
 * The freestanding runtime of kvmi-vm test payloads (--guest FILE): what a
 * test program (one guest_main() per ELF) may use.  The runtime owns the
 * entry, one stack pair per vCPU, its own GDT/TSS/IDT, exception dispatch,
 * the ucall channel to the VMM (guest_abi.h), COM1 and ring-3 excursions.
 *
 * Ring-0 code is emulated instruction by instruction on some hosts (see
 * docs/test-hosts.md): keep ring-0 work short and run loops in ring 3
 * through run_in_ring3().  Everything here works in both rings except
 * guest_install_handler() and run_in_ring3(), which are ring-0 only.
 */
#ifndef KVMI_GUEST_H
#define KVMI_GUEST_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_abi.h"
#include "guest_layout.h"

/* Exception vectors. */
#define VEC_DE   0
#define VEC_DB   1
#define VEC_NMI  2
#define VEC_BP   3
#define VEC_OF   4
#define VEC_BR   5
#define VEC_UD   6
#define VEC_NM   7
#define VEC_DF   8
#define VEC_TS   10
#define VEC_NP   11
#define VEC_SS   12
#define VEC_GP   13
#define VEC_PF   14
#define VEC_MF   16
#define VEC_AC   17
#define VEC_MC   18
#define VEC_XM   19

#define __noreturn  __attribute__((noreturn))
#define __printf(a, b) __attribute__((format(printf, a, b)))

/* Provided by each test program; returning from it is GUEST_DONE(). */
void guest_main(unsigned nr_vcpus, unsigned vcpu);

/* Entry values (RDI, RDX of the entry state). */
extern unsigned guest_nr_vcpus;
extern uint64_t guest_ram_size;

/*
 * True when the payload was booted under stock QEMU by the boot shim of
 * tests/guest/qemu (entry R8 = KVMI_GUEST_QEMU_MAGIC), false under kvmi-vm.
 * Under QEMU the ucalls below are COM1 lines and the VM ends through
 * isa-debug-exit (tests/guest/README.md); ucalls that need a reply from the
 * VMM and guest_mem_recreate() report an assertion failure there.
 */
extern bool guest_qemu;
static inline bool guest_is_qemu(void)
{
	return guest_qemu;
}

/* Index of the calling vCPU (derived from the stack it runs on). */
unsigned guest_vcpu_id(void);
/* Current privilege level, 0 or 3. */
static inline unsigned guest_cpl(void)
{
	uint16_t cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	return cs & 3;
}

/* ------------------------------------------------------------ ucalls */
/* Sends a ucall with nargs arguments (each a uint64_t, at most 6) and
 * returns args[0] as the VMM left it (its reply, if any).  Under QEMU only
 * the commands of guest_abi.h work (args[0] comes back unchanged); any other
 * one would need the VMM's reply and fails as an assertion. */
uint64_t guest_ucall(uint64_t cmd, unsigned nargs, ...);
void guest_sync(uint64_t stage);
void guest_printf(const char *fmt, ...) __printf(1, 2);
void guest_done(void) __noreturn;
void __guest_assert_fail(const char *file, unsigned line, const char *expr,
			 const char *fmt, ...) __printf(4, 5) __noreturn;

#ifdef __FILE_NAME__
#define __GUEST_FILE __FILE_NAME__
#else
#define __GUEST_FILE __FILE__
#endif

#define GUEST_SYNC(stage)   guest_sync(stage)
#define GUEST_PRINTF(...)   guest_printf(__VA_ARGS__)
#define GUEST_DONE()        guest_done()

#define GUEST_ASSERT(cond)                                                   \
	do {                                                                 \
		if (!(cond))                                                 \
			__guest_assert_fail(__GUEST_FILE, __LINE__, #cond,  \
					    NULL);                           \
	} while (0)

#define GUEST_ASSERT_MSG(cond, ...)                                          \
	do {                                                                 \
		if (!(cond))                                                 \
			__guest_assert_fail(__GUEST_FILE, __LINE__, #cond,  \
					    __VA_ARGS__);                    \
	} while (0)

#define GUEST_ASSERT_EQ(a, b)                                                \
	do {                                                                 \
		uint64_t __ga = (uint64_t)(a), __gb = (uint64_t)(b);         \
		if (__ga != __gb)                                            \
			__guest_assert_fail(__GUEST_FILE, __LINE__,         \
					    #a " == " #b, "0x%llx != 0x%llx", \
					    (unsigned long long)__ga,        \
					    (unsigned long long)__gb);       \
	} while (0)

#define GUEST_FAIL(...) \
	__guest_assert_fail(__GUEST_FILE, __LINE__, "failure", __VA_ARGS__)

/* ------------------------------------------------------------ formatting */
int guest_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int guest_snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);

/* ------------------------------------------------------------ port I/O */
static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* Ports ring 3 may use: COM1, KVMI_PORT_POWEROFF and KVMI_PORT_UCALL by
 * default; more (below 0x1000) per vCPU with this, from ring 0. */
void guest_ring3_allow_port(uint16_t port, bool allow);

/* ------------------------------------------------------------ devices */
void serial_putc(char c);
void serial_puts(const char *s);            /* no newline added */
void serial_printf(const char *fmt, ...) __printf(1, 2);
/* kvmi-vm's exit status becomes @status; under QEMU the exit status is
 * (status << 1) | 1 (so keep it below 128 there). */
void power_off(uint8_t status) __noreturn;
/* Asks kvmi-vm to re-create the memslots of RAM region @region
 * (KVMI_PORT_MEM_RECREATE); ring 0.  Under QEMU: an assertion failure. */
void guest_mem_recreate(uint8_t region);

/* ------------------------------------------------------------ CPU */
static inline void cpu_relax(void)
{
	__asm__ volatile("pause" : : : "memory");
}

/* Stops this vCPU for good (hlt in ring 0, a pause loop in ring 3). */
void guest_halt(void) __noreturn;

/* Spins (pause) until *p == v; meant for ring 3, where it runs natively. */
static inline void guest_spin_until_eq(const uint32_t *p, uint32_t v)
{
	while (__atomic_load_n(p, __ATOMIC_ACQUIRE) != v)
		cpu_relax();
}

/*
 * A reusable barrier for n vCPUs; zero-initialise it.  Spins, so call it from
 * ring 3 (in ring 0 every spin iteration is emulated).
 */
struct guest_barrier {
	uint32_t count;
	uint32_t generation;
};
void guest_barrier_wait(struct guest_barrier *b, unsigned n);

/* ------------------------------------------------------------ exceptions */
/* The frame an exception handler sees; it may change any field (e.g. rip
 * to skip the faulting instruction) before the runtime irets. */
struct guest_regs {
	uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
	uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
	uint64_t vector, error_code;
	uint64_t rip, cs, rflags, rsp, ss;   /* pushed by the CPU */
};

typedef void (*guest_handler_t)(struct guest_regs *regs);

/* Installs (or with NULL removes) the handler of @vector for all vCPUs.
 * Without one, the exception is reported to the VMM with
 * KVMI_UCALL_UNEXPECTED_EXCEPTION and the vCPU stops. */
void guest_install_handler(unsigned vector, guest_handler_t handler);

/* ------------------------------------------------------------ ring 3 */
typedef uint64_t (*guest_ring3_fn)(void *arg);

/*
 * Runs fn(arg) in ring 3 on this vCPU's ring-3 stack and returns its value
 * once fn returns (the way back is a ud2 the runtime recognises).  Ring 0
 * only; not reentrant.
 */
uint64_t run_in_ring3(guest_ring3_fn fn, void *arg);

#endif
