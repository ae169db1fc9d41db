/* SPDX-License-Identifier: MIT */
/*
 * config.c - what libkvmi-qemu is asked to do: the introspection options
 * in KVMI_QEMU_OPTIONS (the same options as kvmi-vm's, written as on a
 * command line; the kvmi-qemu launcher fills it), and what QEMU's own
 * command line says: -name and -uuid name the guest in the handshake,
 * -smp bounds the vCPUs, a forced dirty ring makes introspection
 * impossible.  The environment is cleaned so that programs QEMU starts
 * (migration helpers) do not load the library again.
 */
#include "kq.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define KQ_ENV_OPTIONS "KVMI_QEMU_OPTIONS"
#define KQ_MAX_ARGS 64

void kq_disable(const char *why)
{
	if (!atomic_exchange(&kq.off, true))
		pr_err("introspection is off: %s; QEMU runs without it", why);
}

/* Splits s in place on blanks; a backslash takes the next byte literally. */
static int split_words(char *s, char **argv, int max)
{
	int n = 0;
	char *w = s;

	while (*s) {
		char *out;

		while (*s == ' ' || *s == '\t' || *s == '\n')
			s++;
		if (!*s)
			break;
		if (n == max)
			return -E2BIG;
		argv[n++] = out = w;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n') {
			if (*s == '\\' && s[1])
				s++;
			*out++ = *s++;
		}
		if (*s)
			s++;
		*out++ = '\0';
		w = out;
	}
	return n;
}

static const struct option *find_long(const char *name, size_t len)
{
	for (unsigned i = 0; i < INTRO_NR_LONGOPTS; i++)
		if (strlen(intro_longopts[i].name) == len && !strncmp(intro_longopts[i].name, name, len))
			return &intro_longopts[i];
	return NULL;
}

/* --opt VALUE, --opt=VALUE: the same options and meaning as kvmi-vm's. */
static int parse_options(char **argv, int argc)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq, *val = NULL;
		const struct option *o;

		if (strncmp(a, "--", 2)) {
			pr_err(KQ_ENV_OPTIONS ": '%s' is not an option", a);
			return -EINVAL;
		}
		eq = strchr(a, '=');
		o = find_long(a + 2, eq ? (size_t)(eq - a - 2) : strlen(a + 2));
		if (!o) {
			pr_err(KQ_ENV_OPTIONS ": unknown option '%s'", a);
			return -EINVAL;
		}
		if (o->has_arg == required_argument) {
			val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val) {
				pr_err(KQ_ENV_OPTIONS ": %s needs a value", a);
				return -EINVAL;
			}
		} else if (eq) {
			pr_err(KQ_ENV_OPTIONS ": %s takes no value", o->name);
			return -EINVAL;
		}
		if (intro_option(o->val, val, a, &kq.opts))
			return -EINVAL;
	}
	return intro_options_check(&kq.opts);
}

/* The value of key in a QEMU option string "a,key=v,..." (implied key
 * first: "-name foo" is "-name guest=foo"). */
static void qemu_subopt(const char *s, const char *key, const char *implied, char *out, size_t size)
{
	size_t klen = strlen(key);

	out[0] = '\0';
	for (const char *p = s; p && *p;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		const char *v = NULL;

		if (len > klen && !strncmp(p, key, klen) && p[klen] == '=')
			v = p + klen + 1;
		else if (p == s && implied && !strcmp(key, implied) && !memchr(p, '=', len))
			v = p;
		if (v) {
			size_t n = len - (size_t)(v - p);

			snprintf(out, size, "%.*s", (int)(n < size ? n : size - 1), v);
			return;
		}
		p = end ? end + 1 : NULL;
	}
}

static void qemu_option(const char *opt, const char *val)
{
	char buf[64];

	if (!strcmp(opt, "name")) {
		qemu_subopt(val, "guest", "guest", kq.qemu_name, sizeof(kq.qemu_name));
	} else if (!strcmp(opt, "uuid")) {
		kq.have_qemu_uuid = !intro_parse_uuid(val, kq.qemu_uuid);
	} else if (!strcmp(opt, "smp")) {
		unsigned long n = 0;

		static const char *const topo[] = { "sockets", "dies", "clusters", "cores", "threads" };

		qemu_subopt(val, "maxcpus", NULL, buf, sizeof(buf));
		if (!buf[0])
			qemu_subopt(val, "cpus", "cpus", buf, sizeof(buf));
		n = strtoul(buf, NULL, 10);
		/* only a topology: its product */
		for (unsigned i = 0; !buf[0] && i < sizeof(topo) / sizeof(topo[0]); i++) {
			char t[32];

			qemu_subopt(val, topo[i], NULL, t, sizeof(t));
			n = (n ? n : 1) * (t[0] ? strtoul(t, NULL, 10) : 1);
		}
		kq.smp_max = n > 0 && n <= KQ_MAX_VCPUS ? (unsigned)n : KQ_MAX_VCPUS;
	} else if (!strcmp(opt, "accel") || !strcmp(opt, "machine") || !strcmp(opt, "M")) {
		qemu_subopt(val, "dirty-ring-size", NULL, buf, sizeof(buf));
		if (buf[0] && strtoul(buf, NULL, 0) != 0)
			kq_disable("QEMU was told to use the KVM dirty ring (dirty-ring-size), whose entries "
				   "name kernel memslots the library must hide");
	}
}

/* QEMU's own command line, from /proc/self/cmdline (a procfs file has
 * no size: read until the end). */
static void read_qemu_cmdline(void)
{
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	FILE *f = fopen("/proc/self/cmdline", "re");

	while (buf && f) {
		size_t n = fread(buf + len, 1, cap - len, f);
		char *bigger;

		len += n;
		if (len < cap)
			break;
		bigger = cap < (1u << 20) ? realloc(buf, cap * 2) : NULL;
		if (!bigger)
			break;
		buf = bigger;
		cap *= 2;
	}
	if (f)
		fclose(f);
	if (!buf)
		return;
	for (size_t i = 0; i < len;) {
		const char *arg = buf + i;
		size_t alen = strnlen(arg, len - i);
		size_t next = i + alen + 1;

		if (arg[0] == '-' && next < len) {
			const char *opt = arg + (arg[1] == '-' ? 2 : 1);

			qemu_option(opt, buf + next);
		}
		i = next;
	}
	free(buf);
}

/* LD_PRELOAD without this library (programs QEMU starts must not load it). */
static void clean_environment(void)
{
	const char *pre = getenv("LD_PRELOAD");
	char *copy, *out, *save = NULL;

	unsetenv(KQ_ENV_OPTIONS);
	if (!pre)
		return;
	copy = strdup(pre);
	out = calloc(1, strlen(pre) + 1);
	if (!copy || !out)
		goto done;
	for (char *w = strtok_r(copy, " :", &save); w; w = strtok_r(NULL, " :", &save)) {
		if (strstr(w, "libkvmi-qemu"))
			continue;
		if (*out)
			strcat(out, ":");
		strcat(out, w);
	}
	if (*out)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
done:
	free(copy);
	free(out);
}

int kq_config_load(void)
{
	const char *env = getenv(KQ_ENV_OPTIONS);
	char *argv[KQ_MAX_ARGS];
	int argc;

	vmm_log_name = "kvmi-qemu";
	if (getenv("KVMI_QEMU_DEBUG"))
		vmm_log_level = LOG_DEBUG;
	kq.no_dirty_merge = getenv("KVMI_QEMU_NO_DIRTY_MERGE") != NULL;
	if (kq.no_dirty_merge)
		pr_warn("KVMI_QEMU_NO_DIRTY_MERGE: the engine's writes are left out of the dirty log "
			"(a snapshot or migration will lose them)");
	kq.opts_buf = env ? strdup(env) : NULL;
	clean_environment();
	if (!kq.opts_buf)
		return 0;               /* no tool: QEMU runs as if we were not here */
	argc = split_words(kq.opts_buf, argv, KQ_MAX_ARGS);
	if (argc < 0) {
		kq_disable(KQ_ENV_OPTIONS " has too many words");
		return -EINVAL;
	}
	if (parse_options(argv, argc)) {
		kq_disable("bad " KQ_ENV_OPTIONS);
		return -EINVAL;
	}
	if (!kq.opts.address)
		return 0;
	kq.configured = true;
	kq.smp_max = 1;                 /* QEMU's default without -smp */
	read_qemu_cmdline();
	if (!kq.opts.name && kq.qemu_name[0])
		kq.opts.name = kq.qemu_name;
	if (!kq.opts.have_uuid && kq.have_qemu_uuid) {
		memcpy(kq.opts.uuid, kq.qemu_uuid, sizeof(kq.opts.uuid));
		kq.opts.have_uuid = true;
	}
	return 0;
}
