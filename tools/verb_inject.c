/* `kvmi inject VCPU VECTOR [ERROR_CODE [CR2]]`: INJECT_EXCEPTION, then the
 * TRAP event that says what the guest actually got. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>

static bool is_trap_on(const struct kvmi_event_msg *ev, void *arg)
{
	return ev->event == KVMI_EVENT_TRAP && ev->vcpu == *(uint16_t *)arg;
}

static int run(struct cli *c, int argc, char **argv)
{
	uint64_t vector, error_code = 0, cr2 = 0;
	struct kvmi_event_msg *ev;
	uint16_t vcpu;
	int err;

	if (cli_parse_vcpu(c, argv[0], &vcpu))
		return -EINVAL;
	if (cli_parse_u64(argv[1], &vector) || vector > 31)
		return cli_usage("'%s' is not an exception vector (0..31)", argv[1]);
	if (argc > 2 && (cli_parse_u64(argv[2], &error_code) || error_code > UINT32_MAX))
		return cli_usage("'%s' is not an error code", argv[2]);
	if (argc > 3 && cli_parse_u64(argv[3], &cr2))
		return cli_usage("'%s' is not an address", argv[3]);

	err = kvmi_dom_inject_exception(c->dom, vcpu, (uint8_t)vector, (uint32_t)error_code, cr2);
	if (err)
		return cli_err(err, "INJECT_EXCEPTION vcpu %u vector %" PRIu64, vcpu, vector);

	for (unsigned int i = 0; i < c->nheld; i++) {
		if (c->held[i]->vcpu == vcpu) {
			fprintf(c->out, "vector %" PRIu64 " queued for vcpu %u; it is delivered when the vCPU resumes\n",
				vector, vcpu);
			c->traps_expected++;
			return 0;
		}
	}
	err = cli_wait_for(c, c->wait_ms, is_trap_on, &vcpu, &ev);
	if (err)
		return cli_err(err, "waiting for the TRAP event of vcpu %u", vcpu);
	fprintf(c->out, "vcpu %u got vector %u error_code 0x%x cr2 0x%" PRIx64 "%s\n", vcpu,
		ev->specific.trap.vector, ev->specific.trap.error_code, ev->specific.trap.cr2,
		ev->specific.trap.vector == vector ? "" : " (not what was injected)");
	err = cli_continue(c, ev);
	kvmi_event_free(ev);
	return err ? cli_err(err, "replying to the TRAP event") : 0;
}

const struct cli_verb verb_inject = {
	.name = "inject", .args = "VCPU VECTOR [ERROR_CODE [CR2]]",
	.help = "inject an exception and report the TRAP event",
	.min_args = 2, .max_args = 4, .run = run,
};
