/* `kvmi resume`: reply CONTINUE to every held PAUSE_VCPU event, then report
 * the TRAP events of injections that were waiting for the vCPUs to run. */
#include "cli.h"

#include <errno.h>

static bool is_trap(const struct kvmi_event_msg *ev, void *arg)
{
	(void)arg;
	return ev->event == KVMI_EVENT_TRAP;
}

static int run(struct cli *c, int argc, char **argv)
{
	unsigned int held = c->nheld, n;

	(void)argc;
	(void)argv;
	n = cli_release_held(c);
	fprintf(c->out, "resumed %u vCPU%s\n", n, n == 1 ? "" : "s");
	while (c->traps_expected) {
		struct kvmi_event_msg *ev;
		int err = cli_wait_for(c, c->wait_ms, is_trap, NULL, &ev);

		if (err) {
			cli_err(err, "waiting for the TRAP event of an injection");
			break;
		}
		cli_handle_event(c, ev);
	}
	return n == held ? 0 : -EIO;
}

const struct cli_verb verb_resume = {
	.name = "resume", .args = "",
	.help = "resume the vCPUs held by `pause`, `wait-create` or `step`",
	.min_args = 0, .max_args = 0, .run = run,
};
