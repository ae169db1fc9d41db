/* `kvmi`: the introspection tool on the command line.
 *
 * It listens where kvmi-vm (--introspector ADDR) or a KVMI-patched QEMU
 * connects, accepts a guest, runs a script of verbs against it (verb_*.c,
 * one file each, dispatched through the table below), and lets the guest
 * go.  See --help and tools/README.md. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KVMI_CLI_VERSION "0.1.0"

static const struct cli_verb *const verbs[] = {
	&verb_info, &verb_check, &verb_regs, &verb_read, &verb_write, &verb_translate, &verb_string,
	&verb_pause, &verb_resume, &verb_inject, &verb_wait_create, &verb_msr, &verb_protect,
	&verb_step, &verb_trace, &verb_events, &verb_sleep,
};
#define NVERBS (sizeof(verbs) / sizeof(verbs[0]))

enum { EXIT_VERB = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

struct command {
	const struct cli_verb *verb;
	int argc;
	char **argv;
};

struct script {
	struct command *cmds;
	size_t n;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: kvmi [OPTIONS] listen ADDR [VERB [ARGS]] [; VERB [ARGS]]...\n"
		"       kvmi [OPTIONS] -s ADDR [VERB [ARGS]] [; VERB [ARGS]]...\n"
		"\n"
		"Waits for a VMM (kvmi-vm --introspector ADDR, or QEMU with KVMI) to connect,\n"
		"runs the verbs against that guest in order, then lets the guest go.\n"
		"Separate verbs with ';' (quote it from the shell) or put one per line in a\n"
		"file given with -f.  Without verbs: info.  Paused vCPUs are resumed and\n"
		"enabled events are turned off before kvmi disconnects.\n"
		"\n"
		"ADDR   unix:PATH | unix:@ABSTRACT-NAME | vsock:CID:PORT (CID may be 'any')\n"
		"\n"
		"Options:\n"
		"  -s, --socket ADDR        where to listen (instead of `listen ADDR`)\n"
		"  -k, --key FILE           authenticate with SHA-1 of FILE's bytes\n"
		"                           (the same file as kvmi-vm --introspector-key)\n"
		"  -t, --accept-timeout S   give up when no VMM connects within S seconds\n"
		"                           (a refused VMM does not restart the wait)\n"
		"      --expect-name NAME   accept only the guest named NAME (its handshake)\n"
		"      --expect-uuid UUID   accept only the guest with this UUID; another\n"
		"                           guest is refused and kvmi waits on\n"
		"  -w, --wait S             how long verbs wait for events (default 10)\n"
		"  -n, --guests N           serve N guests one after another (default 1, 0: forever)\n"
		"  -f, --script FILE        read verbs from FILE ('-': stdin; '#' starts a comment)\n"
		"  -q, --quiet              no connection messages on stderr\n"
		"  -h, --help               this text\n"
		"  -V, --version            print the version\n"
		"\n"
		"Verbs:\n");
	for (size_t i = 0; i < NVERBS; i++) {
		char head[160];

		snprintf(head, sizeof(head), "%s %s", verbs[i]->name, verbs[i]->args);
		if (strlen(head) <= 36)
			fprintf(f, "  %-36s %s\n", head, verbs[i]->help);
		else
			fprintf(f, "  %s\n  %-36s %s\n", head, "", verbs[i]->help);
	}
	fprintf(f,
		"\n"
		"Examples:\n"
		"  kvmi listen unix:/tmp/kvmi.sock info\n"
		"  kvmi listen unix:/tmp/kvmi.sock 'pause; regs 0; read 0x1000 64; resume'\n"
		"  kvmi -s vsock:any:1234 trace cr3 count=100 | jq .rip\n"
		"  kvmi listen unix:/tmp/kvmi.sock 'protect 0x300000 0x1000 r-x; trace pf lift=5 until=lift'\n"
		"  kvmi listen unix:/tmp/kvmi.sock 'msr watch sysenter_esp; trace msr veto seconds=60'\n"
		"  kvmi listen unix:/tmp/kvmi.sock 'wait-create; msr watch lstar; resume; trace msr count=1'\n"
		"    (wait-create: kvmi-vm --introspector-wait; the vCPUs wait for `resume`)\n"
		"\n"
		"trace prints one JSON object per line; the keys are listed in tools/README.md.\n"
		"\n"
		"Exit status: 0 success, 1 a verb failed, 2 usage error, 3 no guest connected\n"
		"or its handshake failed.\n");
}

static const struct cli_verb *find_verb(const char *name)
{
	for (size_t i = 0; i < NVERBS; i++)
		if (!strcmp(verbs[i]->name, name))
			return verbs[i];
	return NULL;
}

static int add_command(struct script *s, char **tok, int ntok)
{
	const struct cli_verb *v = find_verb(tok[0]);
	struct command *cmds;
	int nargs = ntok - 1;

	if (!v)
		return cli_usage("unknown verb '%s' (see kvmi --help)", tok[0]);
	if (nargs < v->min_args || (v->max_args >= 0 && nargs > v->max_args))
		return cli_usage("usage: %s %s", v->name, v->args);
	cmds = realloc(s->cmds, (s->n + 1) * sizeof(*cmds));
	if (!cmds)
		return -ENOMEM;
	s->cmds = cmds;
	cmds[s->n].verb = v;
	cmds[s->n].argc = nargs;
	cmds[s->n].argv = calloc((size_t)nargs + 1, sizeof(char *));
	if (!cmds[s->n].argv)
		return -ENOMEM;
	for (int i = 0; i < nargs; i++) {
		cmds[s->n].argv[i] = strdup(tok[i + 1]);
		if (!cmds[s->n].argv[i])
			return -ENOMEM;
	}
	s->n++;
	return 0;
}

/* Split @text into commands at ';' and newlines, words at blanks;
 * '#' comments run to the end of the line. */
static int parse_script(struct script *s, const char *text)
{
	char *copy = strdup(text), *p;
	char *tok[256];
	int ntok = 0, err = 0;

	if (!copy)
		return -ENOMEM;
	for (p = copy;; p++) {
		char ch = *p;

		if (ch == '#') {
			while (*p && *p != '\n')
				p++;
			ch = *p;
		}
		if (ch == ';' || ch == '\n' || ch == '\0') {
			*p = '\0';
			if (ntok)
				err = add_command(s, tok, ntok);
			ntok = 0;
			if (err || ch == '\0')
				break;
			continue;
		}
		if (ch == ' ' || ch == '\t' || ch == '\r') {
			*p = '\0';
			continue;
		}
		if (p == copy || p[-1] == '\0') {
			if (ntok == (int)(sizeof(tok) / sizeof(tok[0]))) {
				err = cli_usage("too many words in one command");
				break;
			}
			tok[ntok++] = p;
		}
	}
	free(copy);
	return err;
}

static char *read_all(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	size_t cap = 4096, n = 0, r;
	char *buf;

	if (!f)
		return NULL;
	buf = malloc(cap);
	while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (n + 1 == cap) {
			char *nb = realloc(buf, cap *= 2);

			if (!nb) {
				free(buf);
				buf = NULL;
			}
			buf = nb;
		}
	}
	if (buf)
		buf[n] = '\0';
	if (f != stdin)
		fclose(f);
	return buf;
}

static int read_key(const char *path, uint8_t **key, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t buf[4096];
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == 0)
		return -ENODATA;
	*key = malloc(n);
	if (!*key)
		return -ENOMEM;
	memcpy(*key, buf, n);
	*len = n;
	return 0;
}

static void free_script(struct script *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (int j = 0; j < s->cmds[i].argc; j++)
			free(s->cmds[i].argv[j]);
		free(s->cmds[i].argv);
	}
	free(s->cmds);
	memset(s, 0, sizeof(*s));
}

static void on_signal(int sig)
{
	(void)sig;
	cli_stop = 1;
}

static int serve(struct kvmi_dom *dom, const struct script *s, int wait_ms, bool quiet)
{
	struct cli c = { .dom = dom, .out = stdout, .wait_ms = wait_ms };
	const struct kvmi_hello *h = kvmi_dom_hello(dom);
	char uuid[37];
	int ret = 0;

	c.name = h->name;
	kvmi_uuid_str(h->uuid, uuid);
	if (!quiet)
		fprintf(stderr, "kvmi: guest '%s' (%s) connected\n", h->name, uuid);

	for (size_t i = 0; i < s->n && !cli_stop && !c.unhooking; i++) {
		const struct command *cmd = &s->cmds[i];

		if (cmd->verb->run(&c, cmd->argc, cmd->argv)) {
			ret = EXIT_VERB;
			break;
		}
		fflush(stdout);
		/* The guest may end right after the last command's reply
		 * (a vetoed write, then its final print): that command
		 * succeeded.  Only commands left unrun make it a failure. */
		if (!kvmi_dom_is_connected(dom)) {
			if (i + 1 < s->n) {
				cli_err(-ECONNRESET, "stopping after '%s'", cmd->verb->name);
				ret = EXIT_VERB;
			}
			break;
		}
	}

	/* Never leave the guest stopped. */
	if (c.nheld) {
		unsigned int n = cli_release_held(&c);

		if (!quiet)
			fprintf(stderr, "kvmi: resumed %u paused vCPU%s before disconnecting\n",
				n, n == 1 ? "" : "s");
	}
	if (!quiet)
		fprintf(stderr, "kvmi: guest '%s' disconnected\n", h->name);
	kvmi_dom_close(dom);
	return ret;
}

struct options {
	const char *addr, *key_file, *script_file;
	const char *expect_name, *expect_uuid;
	int accept_ms, wait_ms;
	uint64_t guests;
	bool quiet;
};

/* -1 to go on, else the exit code. */
static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_EXPECT_NAME = 256, OPT_EXPECT_UUID };
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "expect-name", required_argument, NULL, OPT_EXPECT_NAME },
		{ "expect-uuid", required_argument, NULL, OPT_EXPECT_UUID },
		{ "key", required_argument, NULL, 'k' },
		{ "accept-timeout", required_argument, NULL, 't' },
		{ "wait", required_argument, NULL, 'w' },
		{ "guests", required_argument, NULL, 'n' },
		{ "script", required_argument, NULL, 'f' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "+s:k:t:w:n:f:qhV", opts, NULL)) != -1) {
		switch (opt) {
		case 's': o->addr = optarg; break;
		case 'k': o->key_file = optarg; break;
		case 'f': o->script_file = optarg; break;
		case 'q': o->quiet = true; break;
		case OPT_EXPECT_NAME: o->expect_name = optarg; break;
		case OPT_EXPECT_UUID: o->expect_uuid = optarg; break;
		case 't':
			if (cli_parse_seconds(optarg, &o->accept_ms))
				return cli_usage("--accept-timeout: '%s' is not a number of seconds", optarg), EXIT_USAGE;
			break;
		case 'w':
			if (cli_parse_seconds(optarg, &o->wait_ms))
				return cli_usage("--wait: '%s' is not a number of seconds", optarg), EXIT_USAGE;
			break;
		case 'n':
			if (cli_parse_u64(optarg, &o->guests))
				return cli_usage("--guests: '%s' is not a number", optarg), EXIT_USAGE;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("kvmi %s\n", KVMI_CLI_VERSION); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc && !strcmp(argv[optind], "help")) {
		usage(stdout);
		return 0;
	}
	if (!o->addr) {
		if (optind + 1 >= argc || strcmp(argv[optind], "listen")) {
			usage(stderr);
			return EXIT_USAGE;
		}
		o->addr = argv[optind + 1];
		optind += 2;
	}
	return -1;
}

/* The script (-f FILE, then the verbs on the command line, else `info`),
 * checked before anybody connects. */
static int load_script(struct script *s, const char *file, int argc, char **argv)
{
	int err;

	if (file) {
		char *text = read_all(file);

		if (!text) {
			cli_err(-errno, "reading %s", file);
			return -EIO;
		}
		err = parse_script(s, text);
		free(text);
		if (err)
			return err;
	}
	if (argc > 0) {
		size_t len = 1;
		char *text;

		for (int i = 0; i < argc; i++)
			len += strlen(argv[i]) + 1;
		text = calloc(1, len);
		if (!text)
			return -ENOMEM;
		for (int i = 0; i < argc; i++) {
			strcat(text, argv[i]);
			strcat(text, " ");
		}
		err = parse_script(s, text);
		free(text);
		if (err)
			return err;
	}
	return s->n == 0 ? parse_script(s, "info") : 0;
}

static void catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The library's last error line (a refused guest says who it was). */
static char lib_error[512];

static void on_lib_log(int level, const char *msg, void *ctx)
{
	(void)ctx;
	if (level == KVMI_LOG_ERROR)
		snprintf(lib_error, sizeof(lib_error), "%s", msg);
}

/* One VMM, waited for in short slices until @deadline (monotonic ms, < 0:
 * none), so that Ctrl-C is noticed while nobody connects. */
static int accept_guest(struct kvmi_listener *l, int64_t deadline, struct kvmi_dom **dom)
{
	for (;;) {
		int64_t left = deadline < 0 ? 250 : deadline - now_ms();
		int slice = left > 250 ? 250 : left < 0 ? 0 : (int)left;
		int err;

		lib_error[0] = '\0';
		err = kvmi_listener_accept(l, slice, dom);
		if (err != -ETIMEDOUT || cli_stop || (deadline >= 0 && now_ms() >= deadline))
			return err;
	}
}

/* Serves guests one after another until enough were served; the exit code.
 * --accept-timeout bounds the wait for each guest, refused VMMs included. */
static int serve_guests(struct kvmi_listener *l, const struct options *o, const struct script *s)
{
	int64_t deadline = o->accept_ms < 0 ? -1 : now_ms() + o->accept_ms;
	uint64_t served = 0;
	int ret = 0;

	while (!cli_stop && (o->guests == 0 || served < o->guests)) {
		struct kvmi_dom *dom;
		int err = accept_guest(l, deadline, &dom);

		if (cli_stop && err)
			break;
		if (err == -ETIMEDOUT) {
			cli_err(err, "no VMM connected to %s", o->addr);
			return EXIT_CONNECT;
		}
		if (err == -EACCES) {
			fprintf(stderr, "kvmi: %s\n", lib_error[0] ? lib_error : "refused a guest that was not expected");
			ret = EXIT_CONNECT;
			continue;
		}
		if (err) {
			cli_err(err, "the handshake with a VMM failed%s",
				err == -ECONNRESET ? " (does its --introspector-key match --key?)" : "");
			ret = EXIT_CONNECT;
			continue;
		}
		served++;
		ret = serve(dom, s, o->wait_ms, o->quiet);
		deadline = o->accept_ms < 0 ? -1 : now_ms() + o->accept_ms;
	}
	return ret;
}

/* --expect-name / --expect-uuid into the library's configuration. */
static int expect_guest(struct kvmi_config *cfg, const struct options *o)
{
	uint8_t uuid[16];

	if (o->expect_name && strlen(o->expect_name) >= KVMI_HANDSHAKE_NAME_SIZE)
		return cli_usage("--expect-name: a guest name has at most %d bytes", KVMI_HANDSHAKE_NAME_SIZE - 1);
	if (o->expect_uuid && kvmi_uuid_parse(o->expect_uuid, uuid))
		return cli_usage("--expect-uuid: '%s' is not a UUID (like 01234567-89ab-cdef-0123-456789abcdef)",
				 o->expect_uuid);
	if (!o->expect_name && !o->expect_uuid)
		return 0;
	return kvmi_config_expect_guest(cfg, o->expect_name, o->expect_uuid);
}

int main(int argc, char **argv)
{
	struct options o = { .accept_ms = -1, .wait_ms = 10000, .guests = 1 };
	struct kvmi_config cfg = { .size = sizeof(cfg) };
	struct kvmi_listener *l;
	struct script s = { 0 };
	uint8_t *key = NULL;
	int err, ret;

	/* Line by line even into a pipe: events stream to jq or a log as they come. */
	setvbuf(stdout, NULL, _IOLBF, 0);

	ret = parse_options(argc, argv, &o);
	if (ret >= 0)
		return ret;
	ret = EXIT_USAGE;
	if (load_script(&s, o.script_file, argc - optind, argv + optind))
		goto out;
	if (o.key_file) {
		err = read_key(o.key_file, &key, &cfg.key_len);
		if (err) {
			cli_err(err, "--key %s", o.key_file);
			goto out;
		}
		cfg.key = key;
	}
	if (expect_guest(&cfg, &o))
		goto out;
	cfg.log = on_lib_log;
	catch_signals();

	err = kvmi_listener_open(o.addr, &cfg, &l);
	if (err) {
		cli_err(err, "cannot listen on '%s'%s", o.addr,
			err == -EINVAL ? " (expected unix:PATH, unix:@NAME or vsock:CID:PORT)" : "");
		ret = err == -EINVAL ? EXIT_USAGE : EXIT_CONNECT;
		goto out;
	}
	if (!o.quiet)
		fprintf(stderr, "kvmi: listening on %s\n", o.addr);
	ret = serve_guests(l, &o, &s);
	kvmi_listener_close(l);
out:
	free(key);
	free_script(&s);
	return ret;
}
