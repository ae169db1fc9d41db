/* `kvmi protect [-v VCPU] ADDR LEN PERMS`: restrict the access rights of the
 * pages that [ADDR, ADDR+LEN) touches (SET_PAGE_ACCESS, at most 511 pages
 * per message) and enable PF events on every vCPU, so that each access the
 * rights withhold arrives as a PF event (`trace` prints and answers them).
 * With -v, ADDR is guest-virtual and each page is translated with the
 * vCPU's page tables (TRANSLATE_GVA).  PERMS "rwx" lifts the restriction;
 * the VMM drops every restriction when the session ends. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAGES (1u << 22)            /* 16 GiB per verb */

static int enable_pf(struct cli *c)
{
	uint32_t vcpus;
	int err;

	if (c->pf_on)
		return 0;
	err = cli_vcpu_count(c, &vcpus);
	if (err)
		return err;
	for (uint32_t v = 0; v < vcpus; v++) {
		err = kvmi_dom_control_events(c->dom, (uint16_t)v, KVMI_EVENT_PF, true);
		if (err)
			return cli_err(err, "enabling PF events on vcpu %u", v);
	}
	c->pf_on = true;
	return 0;
}

static int run(struct cli *c, int argc, char **argv)
{
	bool virt = false;
	uint16_t vcpu = 0;
	uint64_t addr, len, first, last, npages, *gpas;
	uint8_t access;
	char perms[4];
	int err;

	if (!strcmp(argv[0], "-v")) {
		if (argc != 5)
			return cli_usage("usage: protect [-v VCPU] ADDR LEN PERMS");
		if (cli_parse_vcpu(c, argv[1], &vcpu))
			return -EINVAL;
		virt = true;
		argv += 2;
		argc -= 2;
	} else if (argc != 3) {
		return cli_usage("usage: protect [-v VCPU] ADDR LEN PERMS");
	}
	if (cli_parse_u64(argv[0], &addr))
		return cli_usage("protect: '%s' is not an address", argv[0]);
	if (cli_parse_u64(argv[1], &len) || len == 0)
		return cli_usage("protect: '%s' is not a length (bytes, > 0)", argv[1]);
	if (cli_parse_perms(argv[2], &access))
		return cli_usage("protect: '%s' is not a set of rights (like rwx, r-x, ---)", argv[2]);
	if (addr + len - 1 < addr)
		return cli_usage("protect: the range wraps around the address space");
	first = addr >> 12;
	last = (addr + len - 1) >> 12;
	npages = last - first + 1;
	if (npages > MAX_PAGES)
		return cli_usage("protect: %" PRIu64 " pages is too many (at most %u at once)",
				 npages, MAX_PAGES);
	gpas = malloc(npages * sizeof(*gpas));
	if (!gpas)
		return cli_err(-ENOMEM, "protect");
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t a = (first + i) << 12;

		if (virt) {
			err = kvmi_dom_translate_gva(c->dom, vcpu, a, &gpas[i]);
			if (err) {
				free(gpas);
				return cli_err(err, "TRANSLATE_GVA vcpu %u 0x%" PRIx64, vcpu, a);
			}
			if (gpas[i] == KVMI_UNMAPPED_GVA) {
				free(gpas);
				fprintf(stderr, "kvmi: protect: gva 0x%" PRIx64 " is not mapped (vcpu %u)\n",
					a, vcpu);
				return -ENOENT;
			}
			gpas[i] &= ~0xfffull;
		} else {
			gpas[i] = a;
		}
	}
	/* PF events first: no access may slip through between the two. */
	err = access == (KVMI_PAGE_ACCESS_R | KVMI_PAGE_ACCESS_W | KVMI_PAGE_ACCESS_X) ? 0 : enable_pf(c);
	if (!err)
		err = cli_set_access(c, gpas, npages, access);
	if (!err) {
		perms[0] = access & KVMI_PAGE_ACCESS_R ? 'r' : '-';
		perms[1] = access & KVMI_PAGE_ACCESS_W ? 'w' : '-';
		perms[2] = access & KVMI_PAGE_ACCESS_X ? 'x' : '-';
		perms[3] = '\0';
		if (virt)
			fprintf(c->out, "protect gva 0x%" PRIx64 "-0x%" PRIx64 " (first page gpa 0x%" PRIx64
				", %" PRIu64 " page%s): %s\n", first << 12, ((last + 1) << 12) - 1,
				gpas[0], npages, npages == 1 ? "" : "s", perms);
		else
			fprintf(c->out, "protect gpa 0x%" PRIx64 "-0x%" PRIx64 " (%" PRIu64 " page%s): %s\n",
				first << 12, ((last + 1) << 12) - 1, npages, npages == 1 ? "" : "s",
				perms);
	}
	free(gpas);
	return err;
}

const struct cli_verb verb_protect = {
	.name = "protect", .args = "[-v VCPU] ADDR LEN PERMS",
	.help = "allow only PERMS (rwx, r-x, ---) on the pages of a range and report the rest as PF events (-v: ADDR is virtual)",
	.min_args = 3, .max_args = 5, .run = run,
};
