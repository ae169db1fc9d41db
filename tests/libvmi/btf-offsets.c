// SPDX-License-Identifier: MIT
/*
 * btf-offsets: prints the Linux offsets LibVMI needs (its libvmi.conf keys
 * linux_tasks, linux_mm, linux_pid, linux_name, linux_pgd) read from a
 * kernel's BTF with libbpf, so that no offset is ever typed by hand.
 *
 *   btf-offsets [BTF]                        the five "key = 0x...;" lines
 *   btf-offsets --name NAME --sysmap PATH [BTF]
 *                                            a whole libvmi.conf entry
 *   btf-offsets --field STRUCT.MEMBER... [BTF]
 *                                            "STRUCT.MEMBER = 0x...", each
 *
 * BTF defaults to /sys/kernel/btf/vmlinux.  Members of anonymous structs
 * and unions are found through them (their offsets added up).  Exit status:
 * 0, 1 (unreadable BTF, missing struct or member, bitfield), 2 (usage).
 */
#include <bpf/btf.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_BTF "/sys/kernel/btf/vmlinux"
#define MAX_ANON_DEPTH 32
#define MAX_FIELDS 1024

struct field {
	const char *key;    /* libvmi.conf key */
	const char *type;   /* struct name */
	const char *member; /* member name */
};

static const struct field fields[] = {
	{ "linux_tasks", "task_struct", "tasks" },
	{ "linux_mm", "task_struct", "mm" },
	{ "linux_pid", "task_struct", "pid" },
	{ "linux_name", "task_struct", "comm" },
	{ "linux_pgd", "mm_struct", "pgd" },
};

/*
 * The bit offset of member NAME of the struct or union TYPE_ID, looking
 * into anonymous struct/union members.  0, -ENOENT (no such member) or
 * -EINVAL (a bitfield, or not on a byte boundary).
 */
static int member_bits(const struct btf *btf, __u32 type_id, const char *name,
		       int depth, __u64 *bits)
{
	const struct btf_type *t = btf__type_by_id(btf, type_id);
	const struct btf_member *m;
	int i, n;

	if (!t || !btf_is_composite(t) || depth > MAX_ANON_DEPTH)
		return -ENOENT;
	m = btf_members(t);
	n = btf_vlen(t);
	for (i = 0; i < n; i++, m++) {
		const char *mname = btf__name_by_offset(btf, m->name_off);
		__u32 off = btf_member_bit_offset(t, i);
		__u64 inner;
		int sub, err;

		if (mname && *mname) {
			if (strcmp(mname, name))
				continue;
			if (btf_member_bitfield_size(t, i) || off % 8)
				return -EINVAL;
			*bits = off;
			return 0;
		}
		sub = btf__resolve_type(btf, m->type);
		if (sub < 0)
			continue;
		err = member_bits(btf, sub, name, depth + 1, &inner);
		if (err == -ENOENT)
			continue;
		if (err == 0)
			*bits = off + inner;
		return err;
	}
	return -ENOENT;
}

/* Byte offset of TYPE.MEMBER into *off; 0, or -1 with an error printed. */
static int member_offset(const struct btf *btf, const char *type,
			 const char *member, unsigned long long *off)
{
	__s32 id = btf__find_by_name_kind(btf, type, BTF_KIND_STRUCT);
	__u64 bits;
	int err;

	if (id < 0) {
		fprintf(stderr, "btf-offsets: no struct %s in the BTF\n", type);
		return -1;
	}
	err = member_bits(btf, (__u32)id, member, 0, &bits);
	if (err == -ENOENT) {
		fprintf(stderr, "btf-offsets: struct %s has no member %s\n", type, member);
		return -1;
	}
	if (err) {
		fprintf(stderr, "btf-offsets: %s.%s is a bitfield, not at a byte offset\n",
			type, member);
		return -1;
	}
	*off = bits / 8;
	return 0;
}

/*
 * LibVMI's config lexer: an entry name is a WORD ([a-zA-Z0-9][a-zA-Z0-9._-]+,
 * not a number, not a keyword); a sysmap path a FILENAME ([a-zA-Z0-9/._@-]+)
 * that a WORD does not match as a whole, so it must hold a '/'.
 */
static int valid_name(const char *s)
{
	static const char *const keywords[] = {
		"kpgd", "sysmap", "ostype", "pagemode", "rekall_profile", "volatility_ist",
		"linux_tasks", "linux_mm", "linux_name", "linux_pid", "linux_pgd",
		"linux_addr", "linux_init_task", "linux_kaslr",
	};
	size_t i, n = strlen(s);

	if (n < 2 || strspn(s, "0123456789") == n || strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n || strchr("._-", s[0]))
		return 0;
	for (i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (!strcmp(s, keywords[i]))
			return 0;
	return 1;
}

static int valid_sysmap(const char *s)
{
	size_t n = strlen(s);

	return n > 0 && strchr(s, '/') && strspn(s, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._@-") == n;
}

/* The five lines (in a NAME { } entry when name is set). */
static int print_config(const struct btf *btf, const char *name, const char *sysmap)
{
	unsigned long long off[sizeof(fields) / sizeof(fields[0])];
	const char *indent = name ? "    " : "";
	size_t i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (member_offset(btf, fields[i].type, fields[i].member, &off[i]))
			return 1;
	if (name)
		printf("%s {\n    ostype = \"Linux\";\n    sysmap = \"%s\";\n", name, sysmap);
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		printf("%s%s = 0x%llx;\n", indent, fields[i].key, off[i]);
	if (name)
		printf("}\n");
	return 0;
}

static int print_field(const struct btf *btf, const char *spec)
{
	char type[128];
	const char *dot = strchr(spec, '.');
	unsigned long long off;

	if (!dot || dot == spec || !dot[1] || (size_t)(dot - spec) >= sizeof(type)) {
		fprintf(stderr, "btf-offsets: --field wants STRUCT.MEMBER, not %s\n", spec);
		return 2;
	}
	memcpy(type, spec, (size_t)(dot - spec));
	type[dot - spec] = '\0';
	if (member_offset(btf, type, dot + 1, &off))
		return 1;
	printf("%s = 0x%llx\n", spec, off);
	return 0;
}

static int print_fields(const struct btf *btf, char **specs, int n)
{
	int i, ret;

	for (i = 0; i < n; i++) {
		ret = print_field(btf, specs[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int usage(FILE *f, int status)
{
	fprintf(f, "usage: btf-offsets [--name NAME --sysmap PATH | --field STRUCT.MEMBER...] [BTF]\n"
		   "  prints LibVMI's Linux offsets from BTF (default " DEFAULT_BTF ")\n");
	return status;
}

static int check_args(const char *name, const char *sysmap, int nfields)
{
	if (!name != !sysmap || (nfields && name)) {
		fprintf(stderr, "btf-offsets: --name and --sysmap go together, without --field\n");
		return 0;
	}
	if (name && !valid_name(name)) {
		fprintf(stderr, "btf-offsets: %s is not a name LibVMI's config accepts\n", name);
		return 0;
	}
	if (sysmap && !valid_sysmap(sysmap)) {
		fprintf(stderr, "btf-offsets: %s is not a sysmap path LibVMI's config accepts "
			"(letters, digits, / . _ @ -, with a /)\n", sysmap);
		return 0;
	}
	return 1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ "sysmap", required_argument, NULL, 's' },
		{ "field", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = NULL, *sysmap = NULL, *path = DEFAULT_BTF;
	static char *specs[MAX_FIELDS];
	int c, ret, nfields = 0;
	struct btf *btf;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': name = optarg; break;
		case 's': sysmap = optarg; break;
		case 'f':
			if (nfields == MAX_FIELDS) {
				fprintf(stderr, "btf-offsets: at most %d --field\n", MAX_FIELDS);
				return 2;
			}
			specs[nfields++] = optarg;
			break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (argc - optind > 1)
		return usage(stderr, 2);
	if (optind < argc)
		path = argv[optind];
	if (!check_args(name, sysmap, nfields))
		return 2;
	btf = btf__parse(path, NULL);
	if (!btf) {
		fprintf(stderr, "btf-offsets: cannot read BTF from %s: %s\n", path, strerror(errno));
		return 1;
	}
	ret = nfields ? print_fields(btf, specs, nfields) : print_config(btf, name, sysmap);
	btf__free(btf);
	return ret;
}
