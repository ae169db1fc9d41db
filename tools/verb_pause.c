/* `kvmi pause`: stop every vCPU (libkvmi's pause batch) and hold their
 * PAUSE_VCPU events, so they stay stopped until `resume` (or until the
 * session ends). */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

static bool is_pause(const struct kvmi_event_msg *ev, void *arg)
{
	(void)arg;
	return ev->event == KVMI_EVENT_PAUSE_VCPU;
}

static int run(struct cli *c, int argc, char **argv)
{
	unsigned int count = 0, before = c->nheld;
	int err;

	(void)argc;
	(void)argv;
	err = kvmi_dom_pause_all(c->dom, &count);
	if (err)
		return cli_err(err, "pausing the vCPUs");

	/* One PAUSE_VCPU event per vCPU; other events are served meanwhile. */
	while (c->nheld - before < count) {
		struct kvmi_event_msg *ev;

		err = cli_wait_for(c, c->wait_ms, is_pause, NULL, &ev);
		if (err) {
			cli_err(err, "waiting for PAUSE_VCPU events (%u of %u arrived)",
				c->nheld - before, count);
			break;
		}
		cli_handle_event(c, ev);        /* holds it */
	}
	fprintf(c->out, "paused %u vCPU%s\n", c->nheld - before, c->nheld - before == 1 ? "" : "s");
	return err;
}

const struct cli_verb verb_pause = {
	.name = "pause", .args = "",
	.help = "pause every vCPU; they stay paused until `resume` or the end of the session",
	.min_args = 0, .max_args = 0, .run = run,
};
