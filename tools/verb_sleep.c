/* `kvmi sleep SECONDS`: wait while serving events (useful between `pause`
 * and `resume` in a script). */
#include "cli.h"

#include <errno.h>

static int run(struct cli *c, int argc, char **argv)
{
	struct kvmi_event_msg *ev;
	int ms, err;

	(void)argc;
	if (cli_parse_seconds(argv[0], &ms))
		return cli_usage("'%s' is not a number of seconds", argv[0]);
	err = cli_wait_for(c, ms, NULL, NULL, &ev);
	return err == -ETIMEDOUT ? 0 : err == -EINTR ? 0 : cli_err(err, "sleep");
}

const struct cli_verb verb_sleep = {
	.name = "sleep", .args = "SECONDS",
	.help = "wait, printing and continuing events that arrive",
	.min_args = 1, .max_args = 1, .run = run,
};
