/* Client library: the connect-time handshake.
 *
 * VMM -> tool: {u32 struct_size; u8 uuid[16]; u32 padding; s64 start_time;
 *               char name[64]; [u64 max_gpa]; ...}  (QEMU kvmi-v7 sends 104 B,
 *               libkvmi knows 96 B).  Decoded by offset, tolerantly: any
 *               struct_size in [32, 65536] (libkvmi's range) is accepted, the
 *               known prefix is read, the rest is skipped, name[63] forced 0.
 *               With kvmi_config_expect_guest(), another name or UUID ends
 *               it here (-EACCES): the VMM gets no answer.
 * tool -> VMM: {u32 struct_size = 24; u8 cookie_hash[20]} with cookie_hash =
 *               SHA-1(key) (all zero without a key).
 * Then GET_VERSION (version >= 1 required) whose reply is cached. */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#define HELLO_OFF_UUID       offsetof(struct kvmi_handshake_vmm, uuid)
#define HELLO_OFF_START_TIME offsetof(struct kvmi_handshake_vmm, start_time)
#define HELLO_OFF_NAME       offsetof(struct kvmi_handshake_vmm, name)
#define HELLO_OFF_MAX_GPA    offsetof(struct kvmi_handshake_vmm, max_gpa)
#define HELLO_KNOWN          sizeof(struct kvmi_handshake_vmm)
#define ANSWER_SIZE          sizeof(struct kvmi_handshake_tool)

int kvmi_cookie_hash(const void *key, size_t key_len, uint8_t hash[KVMI_COOKIE_HASH_SIZE])
{
	unsigned int len = 0;

	if (!EVP_Digest(key, key_len, hash, &len, EVP_sha1(), NULL) ||
	    len != KVMI_COOKIE_HASH_SIZE)
		return -EIO;
	return 0;
}

static int skip_bytes(int fd, size_t len, int64_t deadline)
{
	uint8_t scratch[512];

	while (len) {
		size_t chunk = len < sizeof(scratch) ? len : sizeof(scratch);
		int err = kvmi_proto_read_full(fd, scratch, chunk, deadline);

		if (err)
			return err;
		len -= chunk;
	}
	return 0;
}

static int read_hello(struct kvmi_dom *dom, int64_t deadline)
{
	uint8_t buf[HELLO_KNOWN] = { 0 };
	struct kvmi_hello *h = &dom->hello;
	uint32_t size;
	size_t n;
	int err;

	err = kvmi_proto_read_full(dom->fd, &size, sizeof(size), deadline);
	if (err)
		return err;
	if (size < KC_HELLO_MIN || size > KC_HELLO_MAX) {
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "invalid handshake size %u", size);
		return size < KC_HELLO_MIN ? -ENODATA : -E2BIG;
	}
	n = size < HELLO_KNOWN ? size : HELLO_KNOWN;
	err = kvmi_proto_read_full(dom->fd, buf + 4, n - 4, deadline);
	if (!err)
		err = skip_bytes(dom->fd, size - n, deadline);
	if (err)
		return err;

	memset(h, 0, sizeof(*h));
	h->struct_size = size;
	memcpy(h->uuid, buf + HELLO_OFF_UUID, sizeof(h->uuid));
	memcpy(&h->start_time_ms, buf + HELLO_OFF_START_TIME, sizeof(h->start_time_ms));
	memcpy(h->name, buf + HELLO_OFF_NAME, sizeof(h->name));
	h->name[sizeof(h->name) - 1] = '\0';
	if (size >= HELLO_OFF_MAX_GPA + sizeof(h->max_gpa))
		memcpy(&h->max_gpa, buf + HELLO_OFF_MAX_GPA, sizeof(h->max_gpa));
	return 0;
}

/* The guest the tool asked for (kvmi_config_expect_guest), or -EACCES. */
static int check_expected(struct kvmi_dom *dom)
{
	const struct kvmi_config *cfg = &dom->cfg;
	const struct kvmi_hello *h = &dom->hello;
	char got[37], want[37];

	if ((cfg->expect & KVMI_EXPECT_NAME) &&
	    strncmp(h->name, cfg->expect_name, sizeof(cfg->expect_name))) {
		kc_log(cfg, KVMI_LOG_ERROR, "refused guest '%s': expected the guest named '%.*s'", h->name,
		       (int)sizeof(cfg->expect_name), cfg->expect_name);
		return -EACCES;
	}
	if ((cfg->expect & KVMI_EXPECT_UUID) && memcmp(h->uuid, cfg->expect_uuid, sizeof(h->uuid))) {
		kvmi_uuid_str(h->uuid, got);
		kvmi_uuid_str(cfg->expect_uuid, want);
		kc_log(cfg, KVMI_LOG_ERROR, "refused guest '%s' with UUID %s: expected UUID %s", h->name, got,
		       want);
		return -EACCES;
	}
	return 0;
}

static int get_version(struct kvmi_dom *dom)
{
	struct kvmi_get_version_reply rpl;
	int err;

	err = kc_command(dom, KVMI_GET_VERSION, NULL, 0, &rpl, sizeof(rpl), NULL);
	if (err) {
		kc_log(&dom->cfg, KVMI_LOG_ERROR,
		       "%s: GET_VERSION failed (%s); wrong key?", dom->hello.name, strerror(-err));
		return err;
	}
	if (rpl.version < 1) {
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "%s: invalid protocol version %u",
		       dom->hello.name, rpl.version);
		return -EPROTO;
	}
	dom->version = rpl.version;
	dom->features = rpl.features;
	return 0;
}

int kc_handshake(struct kvmi_dom *dom)
{
	int64_t deadline = kvmi_proto_deadline(dom->cfg.handshake_timeout_ms);
	struct kvmi_handshake_tool answer = { .struct_size = ANSWER_SIZE };
	int err;

	err = read_hello(dom, deadline);
	if (!err)
		err = check_expected(dom);
	if (err)
		goto fail;

	if (dom->cfg.key) {
		err = kvmi_cookie_hash(dom->cfg.key, dom->cfg.key_len, answer.cookie_hash);
		if (err)
			goto fail;
	}
	if (dom->cfg.on_handshake &&
	    dom->cfg.on_handshake(&dom->hello, answer.cookie_hash, dom->cfg.ctx) < 0) {
		err = -ECONNREFUSED;
		goto fail;
	}
	err = kvmi_proto_write_full(dom->fd, &answer, sizeof(answer), deadline);
	if (err)
		goto fail;

	err = kc_start_reader(dom);
	if (err)
		goto fail;
	err = get_version(dom);
	if (err)
		goto fail;
	return 0;

fail:
	if (err != -EACCES)     /* check_expected() said why */
		kc_log(&dom->cfg, KVMI_LOG_ERROR, "handshake failed: %s", strerror(-err));
	return err;
}
