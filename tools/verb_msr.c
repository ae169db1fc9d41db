/* `kvmi msr watch MSR...` / `kvmi msr unwatch [MSR...]`: report writes to
 * these MSRs as MSR events on every vCPU (CONTROL_EVENTS(MSR) +
 * CONTROL_MSR).  The watch list belongs to the session: vCPUs that report
 * CREATE_VCPU get it before their first instruction, `trace` prints and
 * answers the events (`trace veto` refuses the writes).  MSR: a number or
 * a name (efer, star, lstar, cstar, sfmask, fs_base, gs_base,
 * kernel_gs_base, sysenter_cs, sysenter_esp, sysenter_eip, pat). */
#include "cli.h"

#include <errno.h>
#include <string.h>

static int find(const struct cli *c, uint32_t msr)
{
	for (unsigned int i = 0; i < c->nmsrs; i++)
		if (c->msrs[i] == msr)
			return (int)i;
	return -1;
}

static int control(struct cli *c, uint32_t vcpus, uint32_t msr, bool on)
{
	for (uint32_t v = 0; v < vcpus; v++) {
		int err = kvmi_dom_control_msr(c->dom, (uint16_t)v, msr, on);

		if (err)
			return cli_err(err, "CONTROL_MSR 0x%x %s on vcpu %u", msr, on ? "on" : "off", v);
	}
	return 0;
}

static int events(struct cli *c, uint32_t vcpus, bool on)
{
	for (uint32_t v = 0; v < vcpus; v++) {
		int err = kvmi_dom_control_events(c->dom, (uint16_t)v, KVMI_EVENT_MSR, on);

		if (err)
			return cli_err(err, "%s MSR events on vcpu %u", on ? "enabling" : "disabling", v);
	}
	return 0;
}

static void print_msr(struct cli *c, uint32_t msr)
{
	const char *name = cli_msr_name(msr);

	if (name)
		fprintf(c->out, " %s (0x%x)", name, msr);
	else
		fprintf(c->out, " 0x%x", msr);
}

static int run(struct cli *c, int argc, char **argv)
{
	uint32_t list[CLI_MAX_MSRS], vcpus;
	unsigned int n = 0;
	bool watch;
	int err;

	if (!strcmp(argv[0], "watch")) {
		watch = true;
		if (argc < 2)
			return cli_usage("usage: msr watch MSR...");
	} else if (!strcmp(argv[0], "unwatch")) {
		watch = false;
	} else {
		return cli_usage("msr: say 'watch MSR...' or 'unwatch [MSR...]', not '%s'", argv[0]);
	}
	for (int i = 1; i < argc; i++) {
		uint32_t msr;

		if (cli_parse_msr(argv[i], &msr))
			return cli_usage("msr: '%s' is neither an MSR number nor a known name (lstar, star, sysenter_eip, ...)",
					 argv[i]);
		if (n == CLI_MAX_MSRS || (watch && c->nmsrs + n >= CLI_MAX_MSRS))
			return cli_usage("msr: at most %d MSRs can be watched", CLI_MAX_MSRS);
		list[n++] = msr;
	}
	if (!watch && argc == 1) {          /* unwatch everything */
		memcpy(list, c->msrs, c->nmsrs * sizeof(list[0]));
		n = c->nmsrs;
	}
	err = cli_vcpu_count(c, &vcpus);
	if (err)
		return err;

	if (watch) {
		if (!c->nmsrs && (err = events(c, vcpus, true)))
			return err;
		fputs("watching MSR writes:", c->out);
		for (unsigned int i = 0; i < n; i++) {
			if (find(c, list[i]) >= 0) {
				print_msr(c, list[i]);
				continue;
			}
			err = control(c, vcpus, list[i], true);
			if (err)
				break;
			c->msrs[c->nmsrs++] = list[i];
			print_msr(c, list[i]);
		}
		fprintf(c->out, " on %u vCPU%s\n", vcpus, vcpus == 1 ? "" : "s");
		return err;
	}
	for (unsigned int i = 0; i < n; i++) {
		int at = find(c, list[i]);

		if (at < 0) {
			fprintf(stderr, "kvmi: msr unwatch: 0x%x is not watched\n", list[i]);
			return -ENOENT;
		}
		err = control(c, vcpus, list[i], false);
		if (err)
			return err;
		c->msrs[at] = c->msrs[--c->nmsrs];
	}
	if (!c->nmsrs)
		err = events(c, vcpus, false);
	fprintf(c->out, "no longer watching %u MSR%s; %u still watched\n", n, n == 1 ? "" : "s", c->nmsrs);
	return err;
}

const struct cli_verb verb_msr = {
	.name = "msr", .args = "watch MSR... | unwatch [MSR...]",
	.help = "report writes to MSRs (number or name: lstar, star, sysenter_eip, ...) as MSR events on every vCPU",
	.min_args = 1, .max_args = CLI_MAX_MSRS + 1, .run = run,
};
