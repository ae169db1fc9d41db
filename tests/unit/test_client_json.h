/* Minimal JSON reader for the unit tests that replay the libkvmi wire vectors
 * (tests/unit/test_client_vectors.c).  Parses a whole document into a tree;
 * good enough for trusted test data, not a general-purpose parser. */
#ifndef KVMI_TEST_CLIENT_JSON_H
#define KVMI_TEST_CLIENT_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

enum tj_type { TJ_NULL, TJ_BOOL, TJ_NUM, TJ_STR, TJ_ARR, TJ_OBJ };

struct tj {
	enum tj_type type;
	bool b;
	double num;
	char *str;             /* TJ_STR: decoded string; TJ_NUM: raw text */
	size_t n;              /* TJ_ARR / TJ_OBJ: number of children */
	struct tj **kids;
	char **keys;           /* TJ_OBJ only */
};

struct tj *tj_parse(const char *text);
struct tj *tj_load(const char *path);
void tj_free(struct tj *v);

const struct tj *tj_get(const struct tj *obj, const char *key);   /* NULL if absent */
const struct tj *tj_at(const struct tj *arr, size_t i);
const char *tj_str(const struct tj *v);                            /* NULL if not a string */
/* Integer value of a number or a "0x..." / decimal string. */
bool tj_u64(const struct tj *v, uint64_t *out);
/* Decode a hex string; returns a malloc'd buffer (never NULL, may be 0 bytes). */
uint8_t *tj_hex(const struct tj *v, size_t *len);
uint8_t *hex_decode(const char *hex, size_t *len);

#endif
