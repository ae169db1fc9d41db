/* `kvmi translate VCPU GVA`: guest-virtual to guest-physical. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>

static int run(struct cli *c, int argc, char **argv)
{
	uint64_t gva, gpa;
	uint16_t vcpu;
	int err;

	(void)argc;
	if (cli_parse_vcpu(c, argv[0], &vcpu))
		return -EINVAL;
	if (cli_parse_u64(argv[1], &gva))
		return cli_usage("'%s' is not an address", argv[1]);
	err = kvmi_dom_translate_gva(c->dom, vcpu, gva, &gpa);
	if (err)
		return cli_err(err, "TRANSLATE_GVA vcpu %u 0x%" PRIx64, vcpu, gva);
	if (gpa == KVMI_UNMAPPED_GVA) {
		fprintf(c->out, "gva 0x%016" PRIx64 " is not mapped (vcpu %u)\n", gva, vcpu);
		return -ENOENT;
	}
	fprintf(c->out, "gva 0x%016" PRIx64 " -> gpa 0x%" PRIx64 " (vcpu %u)\n", gva, gpa, vcpu);
	return 0;
}

const struct cli_verb verb_translate = {
	.name = "translate", .args = "VCPU GVA",
	.help = "translate a guest-virtual address with the vCPU's page tables",
	.min_args = 2, .max_args = 2, .run = run,
};
