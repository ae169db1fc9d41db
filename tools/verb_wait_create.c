/* `kvmi wait-create`: enable CREATE_VCPU and hold every vCPU at its
 * CREATE_VCPU event, before its first guest instruction.  Needs kvmi-vm
 * --introspector-wait (it holds the vCPUs until a tool enables the event).
 * The verbs that follow (`msr watch`, `protect`, `regs`, ...) act on the
 * held vCPUs; `resume` (or the end of the script) lets them start.  This
 * is how a script sees the guest kernel's earliest writes, e.g.
 *   wait-create; msr watch lstar; resume; trace msr count=1 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

static bool is_create(const struct kvmi_event_msg *ev, void *arg)
{
	(void)arg;
	return ev->event == KVMI_EVENT_CREATE_VCPU;
}

static int run(struct cli *c, int argc, char **argv)
{
	uint32_t vcpus, got = 0;
	bool *seen;
	int err;

	(void)argc;
	(void)argv;
	err = cli_vcpu_count(c, &vcpus);
	if (err)
		return err;
	err = kvmi_dom_control_vm_events(c->dom, KVMI_EVENT_CREATE_VCPU, true);
	if (err)
		return cli_err(err, "enabling CREATE_VCPU events");
	seen = calloc(vcpus ? vcpus : 1, sizeof(*seen));
	if (!seen)
		return cli_err(-ENOMEM, "wait-create");
	while (got < vcpus) {
		struct kvmi_event_msg *ev;

		err = cli_wait_for(c, c->wait_ms, is_create, NULL, &ev);
		if (err) {
			cli_err(err, "waiting for CREATE_VCPU events (%u of %u arrived; was kvmi-vm started with --introspector-wait?)",
				got, vcpus);
			break;
		}
		if (ev->vcpu >= vcpus || seen[ev->vcpu] || c->nheld == CLI_MAX_HELD) {
			cli_handle_event(c, ev);
			continue;
		}
		err = cli_setup_vcpu(c, ev->vcpu);
		seen[ev->vcpu] = true;
		got++;
		c->held[c->nheld++] = ev;       /* held until `resume` */
		if (err)
			break;
	}
	free(seen);
	fprintf(c->out, "holding %u vCPU%s at CREATE_VCPU (before their first instruction)\n",
		got, got == 1 ? "" : "s");
	return err;
}

const struct cli_verb verb_wait_create = {
	.name = "wait-create", .args = "",
	.help = "with kvmi-vm --introspector-wait: hold every vCPU at CREATE_VCPU, before it runs, until `resume`",
	.min_args = 0, .max_args = 0, .run = run,
};
