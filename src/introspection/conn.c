/* SPDX-License-Identifier: MIT */
/*
 * conn.c - the connection to the tool: connecting to its address (parsed
 * by src/proto, the same rules the tool's listener follows), one session
 * (handshake, then serve), and the reconnect loop (the VMM initiates; when
 * the tool goes away it connects again with backoff, and the guest keeps
 * running meanwhile).
 */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int kvmi_srv_addr_parse(const char *spec, struct kvmi_addr *addr)
{
	/* The VMM's callers only tell "not an address" apart. */
	return kvmi_proto_addr_parse(spec, 0, addr) ? -EINVAL : 0;
}

int kvmi_srv_addr_connect(const struct kvmi_addr *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = kvmi_proto_addr_sockaddr(addr, &ss);
	int fd;

	if (!len)
		return -EINVAL;
	fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

int kvmi_server_session(struct kvmi_server *srv, int fd)
{
	uint8_t hash[KVMI_COOKIE_HASH_SIZE];
	struct kvmi_handshake_params p;
	int err;

	memset(&p, 0, sizeof(p));
	memcpy(p.uuid, srv->cfg.uuid, sizeof(p.uuid));
	memcpy(p.name, srv->cfg.name, sizeof(p.name));
	p.name[sizeof(p.name) - 1] = '\0';
	p.start_time_ms = srv->cfg.start_time_ms;
	p.max_gpa = srv->cfg.max_gpa;
	p.timeout_ms = srv->cfg.handshake_timeout_ms;
	if (srv->cfg.key) {
		err = srv->cfg.hash(srv->cfg.key, srv->cfg.key_len, hash);
		if (err)
			return err < 0 ? err : -EINVAL;
		p.cookie_hash = hash;
	}

	kvmi_mutex_lock(&srv->lock);
	if (srv->stopping) {
		kvmi_mutex_unlock(&srv->lock);
		return 0;
	}
	srv->hs_fd = fd;
	kvmi_mutex_unlock(&srv->lock);
	err = kvmi_srv_handshake(fd, &p, NULL);
	kvmi_mutex_lock(&srv->lock);
	srv->hs_fd = -1;
	kvmi_mutex_unlock(&srv->lock);
	if (err) {
		ks_log(srv, KVMI_SRV_LOG_WARN, "handshake failed: %s",
			 err == -EACCES ? "the tool's cookie hash does not match the key" :
			 strerror(-err));
		return err;
	}
	if (!srv->cfg.key)
		ks_log(srv, KVMI_SRV_LOG_WARN, "no key configured: the tool is not authenticated");
	ks_log(srv, KVMI_SRV_LOG_INFO, "introspection tool connected");
	err = kvmi_server_serve(srv, fd, fd);
	ks_log(srv, KVMI_SRV_LOG_INFO, "introspection tool disconnected (%s)",
		 err ? strerror(-err) : "closed");
	return err;
}

static bool stopping(struct kvmi_server *srv)
{
	bool s;

	kvmi_mutex_lock(&srv->lock);
	s = srv->stopping;
	kvmi_mutex_unlock(&srv->lock);
	return s;
}

int kvmi_server_run(struct kvmi_server *srv, const struct kvmi_addr *addr)
{
	int backoff = 100, last_err = 0;

	while (!stopping(srv)) {
		struct pollfd p = { .fd = srv->stop_pipe[0], .events = POLLIN };
		int fd = kvmi_srv_addr_connect(addr);

		if (fd >= 0) {
			uint64_t before = kvmi_server_sessions(srv);

			kvmi_server_session(srv, fd);
			close(fd);
			if (kvmi_server_sessions(srv) != before)
				backoff = 100;
			last_err = 0;
		} else if (fd != last_err) {
			ks_log(srv, KVMI_SRV_LOG_INFO, "cannot reach the introspection tool (%s); retrying",
				 strerror(-fd));
			last_err = fd;
		}
		if (stopping(srv))
			break;
		if (poll(&p, 1, backoff) < 0 && errno != EINTR)
			return -errno;
		if (backoff < 5000)
			backoff *= 2;
	}
	return 0;
}
