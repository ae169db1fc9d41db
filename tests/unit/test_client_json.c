/* Minimal JSON reader for the wire-vector tests (see test_client_json.h). */
#include "test_client_json.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *p;
	bool failed;
};

static struct tj *parse_value(struct parser *ps);

static void skip_ws(struct parser *ps)
{
	while (*ps->p && isspace((unsigned char)*ps->p))
		ps->p++;
}

static struct tj *node(enum tj_type t)
{
	struct tj *v = calloc(1, sizeof(*v));

	if (!v) {
		perror("calloc");
		abort();
	}
	v->type = t;
	return v;
}

static void push(struct tj *parent, struct tj *kid, char *key)
{
	parent->kids = realloc(parent->kids, (parent->n + 1) * sizeof(*parent->kids));
	if (!parent->kids)
		abort();
	if (parent->type == TJ_OBJ) {
		parent->keys = realloc(parent->keys, (parent->n + 1) * sizeof(*parent->keys));
		if (!parent->keys)
			abort();
		parent->keys[parent->n] = key;
	}
	parent->kids[parent->n++] = kid;
}

static char *parse_string_raw(struct parser *ps)
{
	size_t cap = 16, len = 0;
	char *s = malloc(cap);

	if (!s)
		abort();
	if (*ps->p != '"') {
		ps->failed = true;
		free(s);
		return NULL;
	}
	ps->p++;
	while (*ps->p && *ps->p != '"') {
		char c = *ps->p++;

		if (c == '\\') {
			char e = *ps->p++;

			switch (e) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'u': {
				unsigned int cp = 0;

				for (int i = 0; i < 4 && *ps->p; i++) {
					char h = *ps->p++;

					cp = cp * 16 + (unsigned int)(isdigit((unsigned char)h) ? h - '0' :
						(tolower((unsigned char)h) - 'a' + 10));
				}
				c = cp < 0x80 ? (char)cp : '?';
				break;
			}
			case '\0':
				ps->failed = true;
				free(s);
				return NULL;
			default: c = e; break;
			}
		}
		if (len + 2 > cap) {
			cap *= 2;
			s = realloc(s, cap);
			if (!s)
				abort();
		}
		s[len++] = c;
	}
	if (*ps->p != '"') {
		ps->failed = true;
		free(s);
		return NULL;
	}
	ps->p++;
	s[len] = 0;
	return s;
}

static struct tj *parse_value(struct parser *ps)
{
	struct tj *v;

	skip_ws(ps);
	switch (*ps->p) {
	case '{':
		v = node(TJ_OBJ);
		ps->p++;
		skip_ws(ps);
		if (*ps->p == '}') {
			ps->p++;
			return v;
		}
		for (;;) {
			char *key;
			struct tj *kid;

			skip_ws(ps);
			key = parse_string_raw(ps);
			if (!key)
				return v;
			skip_ws(ps);
			if (*ps->p != ':') {
				ps->failed = true;
				free(key);
				return v;
			}
			ps->p++;
			kid = parse_value(ps);
			push(v, kid, key);
			if (ps->failed)
				return v;
			skip_ws(ps);
			if (*ps->p == ',') {
				ps->p++;
				continue;
			}
			if (*ps->p == '}') {
				ps->p++;
				return v;
			}
			ps->failed = true;
			return v;
		}
	case '[':
		v = node(TJ_ARR);
		ps->p++;
		skip_ws(ps);
		if (*ps->p == ']') {
			ps->p++;
			return v;
		}
		for (;;) {
			struct tj *kid = parse_value(ps);

			push(v, kid, NULL);
			if (ps->failed)
				return v;
			skip_ws(ps);
			if (*ps->p == ',') {
				ps->p++;
				continue;
			}
			if (*ps->p == ']') {
				ps->p++;
				return v;
			}
			ps->failed = true;
			return v;
		}
	case '"':
		v = node(TJ_STR);
		v->str = parse_string_raw(ps);
		return v;
	case 't':
	case 'f':
	case 'n':
		if (!strncmp(ps->p, "true", 4)) {
			v = node(TJ_BOOL);
			v->b = true;
			ps->p += 4;
		} else if (!strncmp(ps->p, "false", 5)) {
			v = node(TJ_BOOL);
			ps->p += 5;
		} else if (!strncmp(ps->p, "null", 4)) {
			v = node(TJ_NULL);
			ps->p += 4;
		} else {
			ps->failed = true;
			v = node(TJ_NULL);
		}
		return v;
	default: {
		const char *start = ps->p;
		char *end;

		v = node(TJ_NUM);
		v->num = strtod(start, &end);
		if (end == start) {
			ps->failed = true;
			return v;
		}
		v->str = strndup(start, (size_t)(end - start));
		ps->p = end;
		return v;
	}
	}
}

struct tj *tj_parse(const char *text)
{
	struct parser ps = { .p = text };
	struct tj *v = parse_value(&ps);

	if (ps.failed) {
		fprintf(stderr, "json: parse error near offset %td\n", ps.p - text);
		tj_free(v);
		return NULL;
	}
	return v;
}

struct tj *tj_load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long sz;
	struct tj *v;

	if (!f) {
		perror(path);
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)sz + 1);
	if (!buf || fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	buf[sz] = 0;
	v = tj_parse(buf);
	free(buf);
	return v;
}

void tj_free(struct tj *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++) {
		tj_free(v->kids[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->kids);
	free(v->keys);
	free(v->str);
	free(v);
}

const struct tj *tj_get(const struct tj *obj, const char *key)
{
	if (!obj || obj->type != TJ_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (!strcmp(obj->keys[i], key))
			return obj->kids[i];
	return NULL;
}

const struct tj *tj_at(const struct tj *arr, size_t i)
{
	if (!arr || (arr->type != TJ_ARR && arr->type != TJ_OBJ) || i >= arr->n)
		return NULL;
	return arr->kids[i];
}

const char *tj_str(const struct tj *v)
{
	return v && v->type == TJ_STR ? v->str : NULL;
}

bool tj_u64(const struct tj *v, uint64_t *out)
{
	if (!v)
		return false;
	if (v->type == TJ_NUM) {
		*out = strtoull(v->str, NULL, 10);
		return true;
	}
	if (v->type == TJ_STR) {
		*out = strtoull(v->str, NULL, 0);
		return true;
	}
	if (v->type == TJ_BOOL) {
		*out = v->b;
		return true;
	}
	return false;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

uint8_t *hex_decode(const char *hex, size_t *len)
{
	size_t n = hex ? strlen(hex) / 2 : 0;
	uint8_t *b = malloc(n ? n : 1);

	if (!b)
		abort();
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
	*len = n;
	return b;
}

uint8_t *tj_hex(const struct tj *v, size_t *len)
{
	return hex_decode(tj_str(v), len);
}
