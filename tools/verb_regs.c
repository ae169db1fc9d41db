/* `kvmi regs VCPU`: general, segment, control registers and common MSRs. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>

#define NMSRS 12

static void seg(struct cli *c, const char *name, const struct kvmi_x86_segment *s)
{
	fprintf(c->out, "%-4s sel 0x%04x base 0x%016" PRIx64 " limit 0x%08x type %2u dpl %u%s%s%s%s\n",
		name, s->selector, s->base, s->limit, s->type, s->dpl,
		s->present ? " P" : "", s->l ? " L" : "", s->db ? " DB" : "",
		s->unusable ? " unusable" : "");
}

static int run(struct cli *c, int argc, char **argv)
{
	struct kvmi_x86_msr_entry msrs[NMSRS];
	struct kvmi_x86_regs r;
	struct kvmi_x86_sregs s;
	unsigned int nmsrs = NMSRS;
	uint32_t mode = 0;
	uint16_t vcpu;
	int err;

	(void)argc;
	if (cli_parse_vcpu(c, argv[0], &vcpu))
		return -EINVAL;
	for (unsigned int i = 0; i < NMSRS; i++) {
		uint32_t index = 0;

		cli_msr_table(i, &index);
		msrs[i] = (struct kvmi_x86_msr_entry){ .index = index };
	}
	err = kvmi_dom_get_registers(c->dom, vcpu, &r, &s, msrs, nmsrs, &mode);
	if (err == -EINVAL) {
		/* Some VMM refused an MSR: registers alone are still useful. */
		nmsrs = 0;
		err = kvmi_dom_get_registers(c->dom, vcpu, &r, &s, NULL, 0, &mode);
	}
	if (err)
		return cli_err(err, "GET_REGISTERS vcpu %u", vcpu);

	fprintf(c->out, "vcpu %u, %s\n", vcpu, cli_mode_name(mode));
	fprintf(c->out, "rax 0x%016" PRIx64 "  rbx 0x%016" PRIx64 "  rcx 0x%016" PRIx64 "  rdx 0x%016" PRIx64 "\n",
		r.rax, r.rbx, r.rcx, r.rdx);
	fprintf(c->out, "rsi 0x%016" PRIx64 "  rdi 0x%016" PRIx64 "  rsp 0x%016" PRIx64 "  rbp 0x%016" PRIx64 "\n",
		r.rsi, r.rdi, r.rsp, r.rbp);
	fprintf(c->out, "r8  0x%016" PRIx64 "  r9  0x%016" PRIx64 "  r10 0x%016" PRIx64 "  r11 0x%016" PRIx64 "\n",
		r.r8, r.r9, r.r10, r.r11);
	fprintf(c->out, "r12 0x%016" PRIx64 "  r13 0x%016" PRIx64 "  r14 0x%016" PRIx64 "  r15 0x%016" PRIx64 "\n",
		r.r12, r.r13, r.r14, r.r15);
	fprintf(c->out, "rip 0x%016" PRIx64 "  rflags 0x%08" PRIx64 "\n", r.rip, r.rflags);
	seg(c, "cs", &s.cs);
	seg(c, "ss", &s.ss);
	seg(c, "ds", &s.ds);
	seg(c, "es", &s.es);
	seg(c, "fs", &s.fs);
	seg(c, "gs", &s.gs);
	seg(c, "tr", &s.tr);
	seg(c, "ldt", &s.ldt);
	fprintf(c->out, "gdt  base 0x%016" PRIx64 " limit 0x%04x\n", s.gdt.base, s.gdt.limit);
	fprintf(c->out, "idt  base 0x%016" PRIx64 " limit 0x%04x\n", s.idt.base, s.idt.limit);
	fprintf(c->out, "cr0 0x%016" PRIx64 "  cr2 0x%016" PRIx64 "  cr3 0x%016" PRIx64 "  cr4 0x%016" PRIx64 "\n",
		s.cr0, s.cr2, s.cr3, s.cr4);
	fprintf(c->out, "cr8 0x%016" PRIx64 "  efer 0x%016" PRIx64 "  apic_base 0x%016" PRIx64 "\n",
		s.cr8, s.efer, s.apic_base);
	for (unsigned int i = 0; i < nmsrs; i++)
		fprintf(c->out, "msr %-15s (0x%08x) 0x%016" PRIx64 "\n", cli_msr_name(msrs[i].index) ?: "?",
			msrs[i].index, msrs[i].data);
	return 0;
}

const struct cli_verb verb_regs = {
	.name = "regs", .args = "VCPU",
	.help = "registers of one vCPU (general, segment, control, common MSRs)",
	.min_args = 1, .max_args = 1, .run = run,
};
