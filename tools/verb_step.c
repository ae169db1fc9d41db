/* `kvmi step VCPU [N]`: execute N instructions of one vCPU one at a time
 * (SINGLESTEP events) and print each as a JSON line; its "rip" is where
 * the vCPU stands after that instruction.  A running vCPU is paused for
 * it and runs on afterwards; a vCPU held by `pause` or `wait-create` stays
 * stopped after the last step until `resume`. */
#include "cli.h"

#include <errno.h>
#include <string.h>

#define MAX_STEPS 1000000

static bool is_mine(const struct kvmi_event_msg *ev, void *arg)
{
	const struct kvmi_event_msg *want = arg;

	return ev->vcpu == want->vcpu && ev->event == want->event;
}

/* Takes vCPU @vcpu's held event out of the held list (NULL if none). */
static struct kvmi_event_msg *unhold(struct cli *c, uint16_t vcpu)
{
	for (unsigned int i = 0; i < c->nheld; i++)
		if (c->held[i]->vcpu == vcpu) {
			struct kvmi_event_msg *ev = c->held[i];

			memmove(&c->held[i], &c->held[i + 1], (c->nheld - i - 1) * sizeof(c->held[0]));
			c->nheld--;
			return ev;
		}
	return NULL;
}

static void stop_stepping(struct cli *c, uint16_t vcpu)
{
	kvmi_dom_control_singlestep(c->dom, vcpu, false);
	kvmi_dom_control_events(c->dom, vcpu, KVMI_EVENT_SINGLESTEP, false);
}

static int run(struct cli *c, int argc, char **argv)
{
	struct kvmi_event_msg *ev, key = { 0 };
	struct kvmi_features f;
	uint64_t n = 1;
	uint32_t ver, vcpus;
	uint16_t vcpu;
	bool was_held;
	int err;

	if (cli_parse_vcpu(c, argv[0], &vcpu))
		return -EINVAL;
	if (argc > 1 && (cli_parse_u64(argv[1], &n) || n == 0 || n > MAX_STEPS))
		return cli_usage("step: '%s' is not a number of instructions (1 to %d)", argv[1], MAX_STEPS);
	err = cli_vcpu_count(c, &vcpus);
	if (err)
		return err;
	if (vcpu >= vcpus)
		return cli_usage("step: the guest has no vcpu %u (it has %u)", vcpu, vcpus);
	if (kvmi_dom_get_version(c->dom, &ver, &f) == 0 && !f.singlestep) {
		fprintf(stderr, "kvmi: step: this VMM cannot single-step on its host (features.singlestep is 0)\n");
		return -EOPNOTSUPP;
	}

	ev = unhold(c, vcpu);
	was_held = ev != NULL;
	if (!ev) {
		err = kvmi_dom_pause_vcpu(c->dom, vcpu, true);
		if (err)
			return cli_err(err, "pausing vcpu %u", vcpu);
		key.vcpu = vcpu;
		key.event = KVMI_EVENT_PAUSE_VCPU;
		err = cli_wait_for(c, c->wait_ms, is_mine, &key, &ev);
		if (err)
			return cli_err(err, "waiting for the PAUSE_VCPU event of vcpu %u", vcpu);
	}
	err = kvmi_dom_control_events(c->dom, vcpu, KVMI_EVENT_SINGLESTEP, true);
	if (!err)
		err = kvmi_dom_control_singlestep(c->dom, vcpu, true);
	if (err) {
		cli_err(err, "enabling single-step on vcpu %u", vcpu);
		stop_stepping(c, vcpu);
		cli_handle_event(c, ev);        /* held again, or continued */
		return err;
	}
	err = cli_continue(c, ev);
	kvmi_event_free(ev);
	if (err) {
		stop_stepping(c, vcpu);
		return cli_err(err, "letting vcpu %u run", vcpu);
	}

	key.vcpu = vcpu;
	key.event = KVMI_EVENT_SINGLESTEP;
	for (uint64_t i = 1; i <= n; i++) {
		bool last = i == n;

		err = cli_wait_for(c, c->wait_ms, is_mine, &key, &ev);
		if (err) {
			cli_err(err, "waiting for SINGLESTEP event %llu of %llu (vcpu %u)",
				(unsigned long long)i, (unsigned long long)n, vcpu);
			stop_stepping(c, vcpu);
			return err;
		}
		if (last)
			stop_stepping(c, vcpu);
		cli_print_event_json(c, ev, last && was_held ? "hold" : "continue");
		if (last && was_held && c->nheld < CLI_MAX_HELD) {
			c->held[c->nheld++] = ev;       /* stays stopped until `resume` */
			break;
		}
		err = cli_continue(c, ev);
		kvmi_event_free(ev);
		if (err)
			return cli_err(err, "replying to a SINGLESTEP event");
	}
	fprintf(stderr, "kvmi: stepped %llu instruction%s of vcpu %u\n", (unsigned long long)n,
		n == 1 ? "" : "s", vcpu);
	return 0;
}

const struct cli_verb verb_step = {
	.name = "step", .args = "VCPU [N]",
	.help = "single-step N (default 1) instructions of a vCPU, one JSON line each",
	.min_args = 1, .max_args = 2, .run = run,
};
