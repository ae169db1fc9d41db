/* `kvmi write GPA HEX...`: write bytes to guest-physical memory. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

static int run(struct cli *c, int argc, char **argv)
{
	uint64_t gpa;
	uint8_t *data;
	size_t len, done = 0;
	int err;

	if (cli_parse_u64(argv[0], &gpa))
		return cli_usage("'%s' is not an address", argv[0]);
	if (cli_parse_hex(argc - 1, argv + 1, &data, &len))
		return cli_usage("the data must be hex bytes, e.g. 'cc90' or 'cc 90'");
	while (done < len) {
		uint64_t addr = gpa + done;
		size_t chunk = KVMI_PAGE_SIZE - (size_t)(addr & (KVMI_PAGE_SIZE - 1));

		if (chunk > len - done)
			chunk = len - done;
		err = kvmi_dom_write_physical(c->dom, addr, data + done, chunk);
		if (err) {
			free(data);
			return cli_err(err, "WRITE_PHYSICAL 0x%" PRIx64 " (%zu bytes)", addr, chunk);
		}
		done += chunk;
	}
	free(data);
	fprintf(c->out, "wrote %zu byte%s at 0x%" PRIx64 "\n", len, len == 1 ? "" : "s", gpa);
	return 0;
}

const struct cli_verb verb_write = {
	.name = "write", .args = "GPA HEX...",
	.help = "write bytes (hex) to guest-physical memory at GPA",
	.min_args = 2, .max_args = -1, .run = run,
};
