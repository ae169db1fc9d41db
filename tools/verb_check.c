/* `kvmi check`: CHECK_COMMAND / CHECK_EVENT for every id, as a table of
 * what this VMM allows. */
#include "cli.h"

#include <errno.h>

static const char *status(int err)
{
	switch (-err) {
	case 0:          return "allowed";
	case EPERM:      return "denied by policy";
	case EINVAL:     return "unknown id";
	case ENOSYS:     return "not implemented";
	case EOPNOTSUPP: return "not supported on this host";
	default:         return kvmi_strerror(err);
	}
}

static int table(struct cli *c, bool events)
{
	unsigned int allowed = 0, shown = 0;

	fprintf(c->out, "%-24s %3s  %s\n", events ? "EVENT" : "COMMAND", "ID", "STATUS");
	/* Ids up to 63 are asked about; ids without a name are only shown
	 * when the VMM allows them. */
	for (unsigned int id = events ? 0 : KVMI_GET_VERSION; id < 64; id++) {
		const char *name = events ? kvmi_event_name((uint16_t)id)
					  : kvmi_command_name((uint16_t)id);
		int err = events ? kvmi_dom_check_event(c->dom, (uint16_t)id)
				 : kvmi_dom_check_command(c->dom, (uint16_t)id);

		if (err == -ECONNRESET || err == -ENOTCONN || err == -ETIMEDOUT)
			return cli_err(err, "CHECK_%s %u", events ? "EVENT" : "COMMAND", id);
		if (!name && err)
			continue;
		fprintf(c->out, "%-24s %3u  %s\n", name ? name : "(unnamed)", id, status(err));
		shown++;
		allowed += !err;
	}
	fprintf(c->out, "%u of %u %s allowed\n\n", allowed, shown, events ? "events" : "commands");
	return 0;
}

static int run(struct cli *c, int argc, char **argv)
{
	int err;

	(void)argc;
	(void)argv;
	err = table(c, false);
	if (!err)
		err = table(c, true);
	return err;
}

const struct cli_verb verb_check = {
	.name = "check", .args = "",
	.help = "which commands and events this VMM allows (CHECK_COMMAND/CHECK_EVENT)",
	.min_args = 0, .max_args = 0, .run = run,
};
