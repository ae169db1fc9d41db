/* `kvmi info`: who the guest is and what the VMM offers. */
#include "cli.h"

#include <inttypes.h>
#include <time.h>

static void print_features(struct cli *c, const struct kvmi_features *f)
{
	bool any = false;

	fprintf(c->out, "%-12s", "features");
#define FEAT(x) do { if (f->x) { fprintf(c->out, " " #x); any = true; } } while (0)
	FEAT(singlestep);
	FEAT(spp);
	FEAT(vmfunc);
	FEAT(eptp);
	FEAT(ve);
#undef FEAT
	fprintf(c->out, "%s\n", any ? "" : " none");
}

static int run(struct cli *c, int argc, char **argv)
{
	const struct kvmi_hello *h = kvmi_dom_hello(c->dom);
	struct kvmi_features f;
	uint32_t version, vcpus;
	uint64_t gfn;
	char uuid[37], when[64] = "unknown";
	time_t secs = (time_t)(h->start_time_ms / 1000);
	struct tm tm;
	int err;

	(void)argc;
	(void)argv;
	kvmi_uuid_str(h->uuid, uuid);
	if (h->start_time_ms > 0 && gmtime_r(&secs, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	kvmi_dom_get_version(c->dom, &version, &f);

	fprintf(c->out, "%-12s %s\n", "guest", h->name[0] ? h->name : "(no name)");
	fprintf(c->out, "%-12s %s\n", "uuid", uuid);
	fprintf(c->out, "%-12s %s\n", "started", when);
	if (h->max_gpa)
		fprintf(c->out, "%-12s 0x%" PRIx64 "\n", "max gpa", h->max_gpa);
	fprintf(c->out, "%-12s KVMI version %u\n", "protocol", version);
	print_features(c, &f);

	err = kvmi_dom_get_max_gfn(c->dom, &gfn);
	if (!err)
		fprintf(c->out, "%-12s 0x%" PRIx64 " (%" PRIu64 " MiB of guest-physical space)\n",
			"max gfn", gfn, (gfn << 12) >> 20);
	else
		fprintf(c->out, "%-12s %s\n", "max gfn", kvmi_strerror(err));

	err = kvmi_dom_get_guest_info(c->dom, &vcpus);
	if (err)
		return cli_err(err, "GET_GUEST_INFO");
	fprintf(c->out, "%-12s %u\n", "vcpus", vcpus);
	for (uint32_t v = 0; v < vcpus && v <= UINT16_MAX; v++) {
		uint64_t tsc;

		err = kvmi_dom_get_vcpu_info(c->dom, (uint16_t)v, &tsc);
		if (err)
			fprintf(c->out, "  vcpu %-5u %s\n", v, kvmi_strerror(err));
		else if (tsc)
			fprintf(c->out, "  vcpu %-5u TSC %" PRIu64 " Hz\n", v, tsc);
		else
			fprintf(c->out, "  vcpu %-5u TSC frequency not reported\n", v);
	}
	return 0;
}

const struct cli_verb verb_info = {
	.name = "info", .args = "",
	.help = "guest name, uuid, protocol version, features, vCPUs",
	.min_args = 0, .max_args = 0, .run = run,
};
