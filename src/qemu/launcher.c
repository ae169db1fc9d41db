/* SPDX-License-Identifier: MIT */
/*
 * kvmi-qemu - starts an unmodified QEMU with libkvmi-qemu loaded:
 *
 *   kvmi-qemu [--introspector ADDR] [--introspector-key F] [--policy F |
 *             --allow-commands L --allow-events L] [--introspector-wait] ...
 *             -- qemu-system-x86_64 ARGS...
 *
 * The options are kvmi-vm's, with the same meaning; they are checked here
 * (a bad option, policy or key file stops before QEMU starts) and handed
 * to the library in KVMI_QEMU_OPTIONS, with the library in LD_PRELOAD.
 * The handshake's name and UUID default to QEMU's -name and -uuid.
 */
#include <errno.h>
#include <getopt.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "intro_config.h"
#include "util.h"

enum { OPT_LIBRARY = 0x100, OPT_HELP, OPT_VERBOSE };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kvmi-qemu [OPTIONS] -- QEMU [QEMU ARGS...]\n"
		"Runs QEMU with VM introspection (libkvmi-qemu.so in LD_PRELOAD).\n"
		"  --introspector ADDR        the tool's socket: unix:PATH or vsock:CID:PORT\n"
		"  --introspector-key FILE    cookie key tools must prove they know\n"
		"  --introspector-wait        hold the vCPUs until a tool has attached\n"
		"  --policy FILE              commands and events a tool may use (docs/policy.md)\n"
		"  --allow-commands LIST, --allow-events LIST\n"
		"  --name NAME, --uuid UUID   the guest in the handshake (default: QEMU's -name, -uuid)\n"
		"  --handshake-timeout S, --unhook-timeout S\n"
		"  --library PATH             libkvmi-qemu.so (default: next to kvmi-qemu, or\n"
		"                             $KVMI_QEMU_LIBRARY)\n"
		"  -v, --verbose              debug messages from the library (on QEMU's stderr)\n");
}

/* Appends " --name value" with blanks and backslashes escaped. */
static int append(char *buf, size_t size, const char *name, const char *val)
{
	size_t n = strlen(buf);

	n += (size_t)snprintf(buf + n, size > n ? size - n : 0, "%s--%s", n ? " " : "", name);
	if (val) {
		if (n + 1 < size)
			buf[n++] = ' ';
		for (const char *p = val; *p && n + 2 < size; p++) {
			if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\\')
				buf[n++] = '\\';
			buf[n++] = *p;
		}
		buf[n < size ? n : size - 1] = '\0';
	}
	return n + 2 < size ? 0 : -E2BIG;
}

static int find_library(const char *given, char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n;
	char *slash;

	if (!given)
		given = getenv("KVMI_QEMU_LIBRARY");
	if (given) {
		snprintf(out, size, "%s", given);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n <= 0)
			return -errno;
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		if ((size_t)snprintf(out, size, "%.*s/libkvmi-qemu.so", (int)(size - 17), self) >= size)
			return -ENAMETOOLONG;
	}
	if (access(out, R_OK)) {
		pr_err("the library %s: %s (give --library PATH)", out, strerror(errno));
		return -ENOENT;
	}
	return 0;
}

/* Options -> KVMI_QEMU_OPTIONS; 0, or the exit status. */
static int parse(int argc, char **argv, char *env, size_t size, char *lib, size_t lib_size)
{
	struct option longopts[INTRO_NR_LONGOPTS + 4];
	struct intro_options o;
	struct kvmi_engine_config cfg;
	const char *library = NULL;
	int c, idx, err;

	memset(&o, 0, sizeof(o));
	memcpy(longopts, intro_longopts, sizeof(intro_longopts));
	longopts[INTRO_NR_LONGOPTS] = (struct option){ "library", required_argument, NULL, OPT_LIBRARY };
	longopts[INTRO_NR_LONGOPTS + 1] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	longopts[INTRO_NR_LONGOPTS + 2] = (struct option){ "verbose", no_argument, NULL, OPT_VERBOSE };
	longopts[INTRO_NR_LONGOPTS + 3] = (struct option){ 0 };
	while ((c = getopt_long(argc, argv, "+hv", longopts, &idx)) != -1) {
		if (c == OPT_HELP || c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == OPT_VERBOSE || c == 'v') {
			setenv("KVMI_QEMU_DEBUG", "1", 1);
			continue;
		}
		if (c == OPT_LIBRARY) {
			library = optarg;
			continue;
		}
		if (c == '?' || intro_option(c, optarg, argv[optind - 1], &o))
			return 1;
		for (unsigned i = 0; i < INTRO_NR_LONGOPTS; i++)
			if (intro_longopts[i].val == c && append(env, size, intro_longopts[i].name,
								  intro_longopts[i].has_arg ? optarg : NULL))
				return 1;
	}
	if (optind >= argc) {
		pr_err("no QEMU command: kvmi-qemu [OPTIONS] -- qemu-system-x86_64 ARGS...");
		return 1;
	}
	if (intro_options_check(&o))
		return 1;
	if (o.address) {
		/* the policy, key and address are checked now, not inside QEMU */
		memset(&cfg, 0, sizeof(cfg));
		err = intro_config_build(&o, "qemu", &cfg);
		intro_config_release(&cfg);
		if (err)
			return 1;
	}
	return find_library(library, lib, lib_size) ? 1 : 0;
}

/*
 * A sanitizer build of the library needs its sanitizer's runtime loaded
 * first in QEMU: the runtimes this launcher runs with (none in a normal
 * build) go in front of LD_PRELOAD.  QEMU's own leaks are not ours to
 * report: LeakSanitizer is turned off for it.
 */
static int add_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
	char *list = data;
	const char *name = info->dlpi_name;

	(void)size;
	if (name && (strstr(name, "/libasan.so") || strstr(name, "/libtsan.so") || strstr(name, "/libubsan.so")) &&
	    strlen(list) + strlen(name) + 2 < PATH_MAX) {
		strcat(list, name);
		strcat(list, ":");
	}
	return 0;
}

static void sanitizer_runtimes(char *list)
{
	const char *opts = getenv("ASAN_OPTIONS");
	char buf[1024];

	list[0] = '\0';
	dl_iterate_phdr(add_runtime, list);
	if (strstr(list, "libasan")) {
		snprintf(buf, sizeof(buf), "%s%sdetect_leaks=0", opts ? opts : "", opts && *opts ? ":" : "");
		setenv("ASAN_OPTIONS", buf, 1);
	}
}

int main(int argc, char **argv)
{
	static char runtimes[PATH_MAX];
	static char env[8192], lib[PATH_MAX], preload[2 * PATH_MAX + 1024];
	const char *old;
	int st;

	vmm_log_name = "kvmi-qemu";
	st = parse(argc, argv, env, sizeof(env), lib, sizeof(lib));
	if (st)
		return st;
	old = getenv("LD_PRELOAD");
	sanitizer_runtimes(runtimes);
	snprintf(preload, sizeof(preload), "%s%s%s%s", runtimes, lib, old && *old ? ":" : "", old && *old ? old : "");
	if (env[0])
		setenv("KVMI_QEMU_OPTIONS", env, 1);
	setenv("LD_PRELOAD", preload, 1);
	execvp(argv[optind], argv + optind);
	pr_err("%s: %s", argv[optind], strerror(errno));
	return 127;
}
