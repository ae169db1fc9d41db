/* SPDX-License-Identifier: MIT */
/*
 * A small client of the GDB remote serial protocol, enough to benchmark a
 * gdbstub: packet framing with checksums, acknowledgements (and the no-ack
 * mode), run-length decoding, qSupported's PacketSize, memory reads ('m')
 * and single steps ('s').
 */
#ifndef KVMI_BENCH_GDB_RSP_H
#define KVMI_BENCH_GDB_RSP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rsp {
	int fd;
	bool noack;             /* after QStartNoAckMode */
	int timeout_ms;         /* per byte awaited */
	size_t packet_size;     /* from qSupported; 0 if not sent */
	unsigned resends;       /* packets the stub asked for again ('-') */
	unsigned bad_checksums; /* replies that failed our checksum check */
	uint8_t in[65536];
	size_t in_pos, in_len;
	char *pkt;              /* last received packet, NUL-terminated */
	size_t pkt_len, pkt_cap;
};

/* Connects to host:port, retrying for up to @wait_ms; 0 or -errno. */
int rsp_connect(struct rsp *r, const char *host, int port, int wait_ms);
void rsp_close(struct rsp *r);

/* One packet out ("$data#cs"), waiting for its '+' unless in no-ack mode. */
int rsp_send(struct rsp *r, const char *data);
/* One packet in, checksum checked and acknowledged; r->pkt holds it. */
int rsp_recv(struct rsp *r);
/* send + recv; the reply is in r->pkt. */
int rsp_command(struct rsp *r, const char *data);

/* qSupported; fills r->packet_size. */
int rsp_qsupported(struct rsp *r);
/* QStartNoAckMode; 0 if the stub agreed. */
int rsp_start_noack(struct rsp *r);
/* 'm addr,len': 0, -EIO for an error reply, -EPROTO for a short one. */
int rsp_read_memory(struct rsp *r, uint64_t addr, void *buf, size_t len);
/* 's': 0 once a stop reply (S/T) came back. */
int rsp_step(struct rsp *r);

#endif
