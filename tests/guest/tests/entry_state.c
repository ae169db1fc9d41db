/* SPDX-License-Identifier: MIT */
/*
 * The entry state of guest_abi.h, as every vCPU finds it: CR0, CR3, CR4 and
 * EFER, the GDT at KVMI_GUEST_GDT_GPA and the identity page tables at
 * KVMI_GUEST_PML4_GPA (the runtime loads its own GDT elsewhere and never
 * writes these).  The same checks pass under kvmi-vm and under QEMU's boot
 * shim (tests/guest/qemu); each vCPU then prints what it was given (RDI,
 * RDX, R8), which the scripts compare with their command lines.
 */
#include "guest.h"

#define CR0_ABI  0x80010033ull            /* PE|MP|ET|NE|WP|PG */
#define CR4_ABI  0x620ull                 /* PAE|OSFXSR|OSXMMEXCPT */
#define EFER_ABI 0xd01ull                 /* SCE|LME|LMA|NXE */
#define PTE_AD   0x60ull                  /* accessed, dirty: the CPU sets them */

static const uint64_t abi_gdt[4] = {
	0, 0, 0x00af9b000000ffffull, 0x00cf93000000ffffull,
};

static uint64_t read_cr(unsigned n)
{
	uint64_t v = 0;

	if (n == 0)
		__asm__ volatile("mov %%cr0, %0" : "=r"(v));
	else if (n == 3)
		__asm__ volatile("mov %%cr3, %0" : "=r"(v));
	else if (n == 4)
		__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}

static uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

/* A low physical address as a pointer gcc does not take for NULL + n. */
static const volatile uint64_t *phys(uint64_t gpa)
{
	__asm__("" : "+r"(gpa));
	return (const volatile uint64_t *)(uintptr_t)gpa;
}

/* Ring 3 (every page is user-accessible): 4 x 512 PD entries natively. */
static uint64_t ring3_check_tables(void *arg)
{
	const volatile uint64_t *pml4 = phys(KVMI_GUEST_PML4_GPA);
	const volatile uint64_t *pdpt = pml4 + 512, *pd = pml4 + 1024;
	const volatile uint64_t *gdt = phys(KVMI_GUEST_GDT_GPA);

	(void)arg;
	for (unsigned i = 0; i < 4; i++)
		GUEST_ASSERT_EQ(gdt[i], abi_gdt[i]);
	GUEST_ASSERT_EQ(pml4[0] & ~PTE_AD, (KVMI_GUEST_PML4_GPA + 0x1000) | 0x7);
	for (unsigned i = 1; i < 512; i++)
		GUEST_ASSERT_EQ(pml4[i], 0);
	for (unsigned i = 0; i < 512; i++)
		GUEST_ASSERT_EQ(pdpt[i] & ~PTE_AD,
				i < 4 ? (KVMI_GUEST_PML4_GPA + 0x2000 + 0x1000ull * i) | 0x7 : 0);
	for (unsigned i = 0; i < 4 * 512; i++)
		GUEST_ASSERT_EQ(pd[i] & ~PTE_AD, ((uint64_t)i << 21) | 0x87);
	return 1;
}

void guest_main(unsigned nr_vcpus, unsigned vcpu)
{
	GUEST_ASSERT_EQ(read_cr(0), CR0_ABI);
	GUEST_ASSERT_EQ(read_cr(3), KVMI_GUEST_PML4_GPA);
	GUEST_ASSERT_EQ(read_cr(4), CR4_ABI);
	GUEST_ASSERT_EQ(rdmsr(0xc0000080), EFER_ABI);
	GUEST_ASSERT_EQ(run_in_ring3(ring3_check_tables, NULL), 1);
	GUEST_PRINTF("entry_state: vcpu %u of %u, ram %llu MiB, platform %s", vcpu, nr_vcpus,
		     (unsigned long long)(guest_ram_size >> 20), guest_is_qemu() ? "qemu" : "kvmi-vm");
}
