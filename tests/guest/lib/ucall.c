/* SPDX-License-Identifier: MIT */
/*
 * The ucall channel (guest_abi.h): a struct kvmi_ucall on the caller's stack,
 * announced with one 32-bit OUT of its address (under QEMU, printed on COM1
 * instead: qemu.c).  Works in ring 0 and, through
 * the TSS I/O bitmap, in ring 3; the stacks are identity-mapped below 4 GiB,
 * so a stack address is the record's guest-physical address.
 */
#include "runtime.h"

static uint64_t ucall_send(struct kvmi_ucall *uc)
{
	uc->vcpu = guest_vcpu_id();
	if (guest_is_qemu())
		return guest_qemu_ucall(uc);    /* no VMM: COM1 lines (qemu.c) */
	outl(KVMI_PORT_UCALL, (uint32_t)(uintptr_t)uc);
	return __atomic_load_n(&uc->args[0], __ATOMIC_RELAXED);
}

static void ucall_init(struct kvmi_ucall *uc, uint64_t cmd)
{
	/* Only the header: clearing buf would cost ring-0 cycles for nothing. */
	uc->cmd = cmd;
	for (unsigned i = 0; i < sizeof(uc->args) / sizeof(uc->args[0]); i++)
		uc->args[i] = 0;
	uc->buf[0] = '\0';
}

uint64_t guest_ucall(uint64_t cmd, unsigned nargs, ...)
{
	struct kvmi_ucall uc;
	va_list ap;

	ucall_init(&uc, cmd);
	va_start(ap, nargs);
	for (unsigned i = 0; i < nargs && i < sizeof(uc.args) / sizeof(uc.args[0]); i++)
		uc.args[i] = va_arg(ap, uint64_t);
	va_end(ap);
	return ucall_send(&uc);
}

void guest_sync(uint64_t stage)
{
	guest_ucall(KVMI_UCALL_SYNC, 1, stage);
}

void guest_printf(const char *fmt, ...)
{
	struct kvmi_ucall uc;
	va_list ap;

	ucall_init(&uc, KVMI_UCALL_PRINT);
	va_start(ap, fmt);
	guest_vsnprintf(uc.buf, sizeof(uc.buf), fmt, ap);
	va_end(ap);
	ucall_send(&uc);
}

void guest_done(void)
{
	guest_ucall(KVMI_UCALL_DONE, 0);
	guest_halt();
}

void __guest_assert_fail(const char *file, unsigned line, const char *expr, const char *fmt, ...)
{
	struct kvmi_ucall uc;
	va_list ap;
	int n;

	ucall_init(&uc, KVMI_UCALL_ASSERT);
	uc.args[0] = line;
	n = guest_snprintf(uc.buf, sizeof(uc.buf), "%s:%u: %s", file, line, expr);
	if (fmt && n >= 0 && (size_t)n + 2 < sizeof(uc.buf)) {
		uc.buf[n++] = ':';
		uc.buf[n++] = ' ';
		va_start(ap, fmt);
		guest_vsnprintf(uc.buf + n, sizeof(uc.buf) - (size_t)n, fmt, ap);
		va_end(ap);
	}
	ucall_send(&uc);
	guest_halt();
}
