/* SPDX-License-Identifier: MIT */
/*
 * maptoken.c - the table of outstanding GET_MAP_TOKEN tokens that a
 * backend keeps, and their redemption by KVMI_X_MAP_MEMORY: random,
 * single use, short-lived, compared in constant time, all dropped with the
 * session. No locking: both commands and session_end run on the
 * introspection thread.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

void kvmi_map_tokens_init(struct kvmi_map_tokens *t, unsigned ttl_ms)
{
	memset(t, 0, sizeof(*t));
	t->ttl_ms = ttl_ms ? ttl_ms : KVMI_MAP_TOKEN_TTL_MS;
}

static void drop(struct kvmi_map_token_slot *s)
{
	/* explicit_bzero: the compiler must not elide wiping a secret. */
	explicit_bzero(&s->token, sizeof(s->token));
	s->live = false;
}

void kvmi_map_tokens_clear(struct kvmi_map_tokens *t)
{
	for (unsigned i = 0; i < KVMI_MAP_TOKENS_MAX; i++)
		drop(&t->slot[i]);
}

unsigned kvmi_map_tokens_outstanding(const struct kvmi_map_tokens *t)
{
	int64_t now = kvmi_proto_now_ms();
	unsigned n = 0;

	for (unsigned i = 0; i < KVMI_MAP_TOKENS_MAX; i++)
		n += t->slot[i].live && t->slot[i].expires_ms > now;
	return n;
}

int kvmi_map_tokens_issue(struct kvmi_map_tokens *t, struct kvmi_map_mem_token *out)
{
	int64_t now = kvmi_proto_now_ms();
	struct kvmi_map_token_slot *free_slot = NULL;
	size_t got = 0;

	for (unsigned i = 0; i < KVMI_MAP_TOKENS_MAX; i++) {
		struct kvmi_map_token_slot *s = &t->slot[i];

		if (s->live && s->expires_ms <= now)
			drop(s);
		if (!s->live && !free_slot)
			free_slot = s;
	}
	if (!free_slot)
		return -KVM_EAGAIN;     /* too many tokens outstanding */
	while (got < sizeof(free_slot->token)) {
		ssize_t n = getrandom((uint8_t *)&free_slot->token + got,
				      sizeof(free_slot->token) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			drop(free_slot);
			return -KVM_EAGAIN;
		}
		got += (size_t)n;
	}
	free_slot->expires_ms = now + t->ttl_ms;
	free_slot->live = true;
	*out = free_slot->token;
	return 0;
}

int kvmi_map_tokens_redeem(struct kvmi_map_tokens *t, const struct kvmi_map_mem_token *token)
{
	int64_t now = kvmi_proto_now_ms();
	struct kvmi_map_token_slot *hit = NULL;
	bool expired;

	/* Every slot is compared in full, whatever matched before: the time
	 * taken says nothing about how many bytes of a guess were right. */
	for (unsigned i = 0; i < KVMI_MAP_TOKENS_MAX; i++) {
		struct kvmi_map_token_slot *s = &t->slot[i];
		uint64_t diff = 0;

		for (unsigned w = 0; w < 4; w++)
			diff |= s->token.token[w] ^ token->token[w];
		if ((diff == 0) & s->live)
			hit = s;
	}
	if (!hit)
		return -KVM_EPERM;
	/* Matched: consumed, whether it is still valid or not. */
	expired = hit->expires_ms <= now;
	drop(hit);
	return expired ? -KVM_EPERM : 0;
}
