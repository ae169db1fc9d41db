/* `kvmi read GPA LEN`: hexdump of guest-physical memory, one READ_PHYSICAL
 * per page piece (the VMM refuses requests that cross a page). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#define MAX_READ (16u << 20)

static int run(struct cli *c, int argc, char **argv)
{
	uint64_t gpa, len, done = 0;
	uint8_t *buf;
	int err = 0;

	(void)argc;
	if (cli_parse_u64(argv[0], &gpa))
		return cli_usage("'%s' is not an address", argv[0]);
	if (cli_parse_u64(argv[1], &len) || len == 0 || len > MAX_READ)
		return cli_usage("'%s' is not a length (1..%u)", argv[1], MAX_READ);
	buf = malloc(len);
	if (!buf)
		return cli_err(-ENOMEM, "read");
	while (done < len) {
		uint64_t addr = gpa + done;
		uint64_t chunk = KVMI_PAGE_SIZE - (addr & (KVMI_PAGE_SIZE - 1));

		if (chunk > len - done)
			chunk = len - done;
		err = kvmi_dom_read_physical(c->dom, addr, buf + done, chunk);
		if (err) {
			cli_err(err, "READ_PHYSICAL 0x%" PRIx64 " (%" PRIu64 " bytes)", addr, chunk);
			break;
		}
		done += chunk;
	}
	cli_hexdump(c->out, gpa, buf, done);
	free(buf);
	return err;
}

const struct cli_verb verb_read = {
	.name = "read", .args = "GPA LEN",
	.help = "hexdump LEN bytes of guest-physical memory at GPA",
	.min_args = 2, .max_args = 2, .run = run,
};
