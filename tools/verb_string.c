/* `kvmi string VCPU GVA [MAX]`: a NUL-terminated string at a guest-virtual
 * address, read the way VMI tools do it: TRANSLATE_GVA page by page with the
 * vCPU's page tables, then READ_PHYSICAL (one request never crosses a page). */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define DEFAULT_MAX 256u
#define LIMIT       4096u

static int run(struct cli *c, int argc, char **argv)
{
	uint64_t gva, max = DEFAULT_MAX, gpa = 0, gpa0 = KVMI_UNMAPPED_GVA;
	uint8_t buf[LIMIT + 1];
	size_t len = 0;
	uint16_t vcpu;
	int err;

	if (cli_parse_vcpu(c, argv[0], &vcpu))
		return -EINVAL;
	if (cli_parse_u64(argv[1], &gva))
		return cli_usage("'%s' is not an address", argv[1]);
	if (argc > 2 && (cli_parse_u64(argv[2], &max) || !max || max > LIMIT))
		return cli_usage("MAX must be between 1 and %u", LIMIT);

	while (len < max) {
		uint64_t va = gva + len, chunk = 4096 - (va & 4095);
		size_t i, start = len;

		if (chunk > max - len)
			chunk = max - len;
		err = kvmi_dom_translate_gva(c->dom, vcpu, va, &gpa);
		if (err)
			return cli_err(err, "TRANSLATE_GVA vcpu %u 0x%" PRIx64, vcpu, va);
		if (gpa == KVMI_UNMAPPED_GVA) {
			fprintf(c->out, "gva 0x%016" PRIx64 " is not mapped (vcpu %u)\n", va, vcpu);
			return -ENOENT;
		}
		if (gpa0 == KVMI_UNMAPPED_GVA)
			gpa0 = gpa;
		err = kvmi_dom_read_physical(c->dom, gpa, buf + len, chunk);
		if (err)
			return cli_err(err, "READ_PHYSICAL 0x%" PRIx64 " %" PRIu64, gpa, chunk);
		len += chunk;
		for (i = start; i < len && buf[i]; i++)
			;
		if (i < len) {
			len = i;
			break;
		}
	}
	fprintf(c->out, "gva 0x%016" PRIx64 " (gpa 0x%" PRIx64 "): \"", gva, gpa0);
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\n')
			fputs("\\n", c->out);
		else if (isprint(buf[i]))
			fputc(buf[i], c->out);
		else
			fprintf(c->out, "\\x%02x", buf[i]);
	}
	fputs("\"\n", c->out);
	return 0;
}

const struct cli_verb verb_string = {
	.name = "string", .args = "VCPU GVA [MAX]",
	.help = "read a NUL-terminated string at a guest-virtual address (TRANSLATE_GVA + READ_PHYSICAL)",
	.min_args = 2, .max_args = 3, .run = run,
};
