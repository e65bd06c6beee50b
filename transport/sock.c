/*
 * sock.c - a connection's socket half, on its I/O thread (see conn.h):
 * polling, reading through the layer stack into the thread's input
 * chunks (each read goes to the engine as an IO_INPUT record), writing
 * the queue the engine hands over with IO_WRITE (one writev through the
 * layers; frames are referenced, never copied), and the layers' own
 * output (TLS handshake records). How it ends is linger.c.
 *
 * This file never knows which layers a connection has, and never
 * touches engine state: what it learns goes up in records.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "transport/conn.h"
#include "transport/iothr.h"
#include "transport/log.h"
#include "transport/outq.h"
#include "transport/xport.h"

#define READ_MAX_PER_WAKEUP (128u * 1024u) /* then other sockets get their turn */
#define READS_PER_WAKEUP 32
#if defined(IOV_MAX) && IOV_MAX < 1024
#define SOCK_IOV IOV_MAX
#else
#define SOCK_IOV 1024
#endif

static void sock_report(struct iothr *io, struct conn *c, uint8_t op)
{
	struct ioq_rec r = {.op = op, .conn = c};
	iothr_report(io, &r);
}

/*
 * Polls c for what it waits for now: readable while the engine wants its
 * input (or it lingers); writable while output waits for the socket.
 * Each change costs an epoll_ctl, so nothing is done when the mask is
 * unchanged.
 */
void sock_poll_update(struct iothr *io, struct conn *c)
{
	if (c->torn)
		return;
	bool readable = c->lingering || (c->rd_on && !c->shutting && !c->starved && !c->eof);
	bool writable = c->wr_busy || c->flush_wait;
	unsigned want = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
	if (want == c->events)
		return;
	int rc = iopoll_set(io, c, want);
	if (rc < 0)
		sock_teardown(io, c, uv_strerror(uv_translate_sys_error(-rc)));
}

void sock_adopt(struct iothr *io, struct conn *c, int fd)
{
	if (iopoll_add(io, c, fd) < 0) {
		close(fd);
		c->fd = -1;
		c->io = io;
		c->torn = true;
		c->close_done = true; /* not in the poller: IO_RELEASE frees it */
		struct ioq_rec r = {.op = IO_CLOSED, .conn = c, .p = (void *)"cannot poll the socket"};
		iothr_report(io, &r);
		return;
	}
	c->rd_on = true;
	sock_poll_update(io, c);
}

/* ---- output -------------------------------------------------------------- */

/*
 * Writes the handed queue from out->written on: one writev of up to
 * SOCK_IOV segments at a time through the layers until it is all taken
 * or the socket is full. Returns 1 when all is taken, 0 when the rest
 * waits for the socket, -1 when c was torn down.
 */
static int sock_write_out(struct iothr *io, struct conn *c)
{
	struct outbox *o = c->out;
	struct outq *q = &o->q[o->wq];
	struct iovec iov[SOCK_IOV];
	int fd = c->fd;
	while (!outq_done(q, o->written)) {
		size_t total;
		const char *why = "write error";
		int cnt = outq_iov(q, o->written, iov, SOCK_IOV, &total);
		ssize_t n = c->xport->ops->writev(c->xport, fd, iov, cnt, &why);
		if (n == XPORT_AGAIN)
			return 0;
		if (n < 0) {
			sock_teardown(io, c, why);
			return -1;
		}
		outq_advance(q, &o->written, (size_t)n);
		if ((size_t)n < total)
			return 0; /* the socket is full: writing again now would only get EAGAIN */
	}
	return 1;
}

/* Pushes what the layers hold (TLS records) down: 1 when none is left, 0
 * when the socket is full, -1 when c was torn down. */
static int sock_flush_layers(struct iothr *io, struct conn *c)
{
	const char *why = NULL;
	int rc = c->xport->ops->flush(c->xport, c->fd, &why);
	if (rc < 0) {
		sock_teardown(io, c, why);
		return -1;
	}
	return rc;
}

/* Goes on with the handed queue; once the socket took all of it and the
 * layers hold nothing, the engine hears IO_WRITTEN (its frames may go). */
static void sock_write_on(struct iothr *io, struct conn *c)
{
	int rc = sock_write_out(io, c);
	if (rc == 1)
		rc = sock_flush_layers(io, c);
	if (rc < 0)
		return;
	c->wr_busy = rc == 0;
	if (rc == 1)
		sock_report(io, c, IO_WRITTEN);
	sock_poll_update(io, c);
}

void sock_write(struct iothr *io, struct conn *c)
{
	if (c->torn || c->shutting)
		return; /* ended meanwhile: the engine hears IO_CLOSED */
	c->out->written.seg = c->out->written.off = 0;
	c->flush_wait = false; /* the queue's write flushes the layers too */
	sock_write_on(io, c);
}

/* The socket can take more. */
static void sock_on_writable(struct iothr *io, struct conn *c)
{
	if (c->wr_busy) {
		sock_write_on(io, c);
	} else if (c->shutting) {
		sock_shut(io, c);
	} else if (c->flush_wait) {
		int rc = sock_flush_layers(io, c);
		if (rc < 0)
			return;
		c->flush_wait = rc == 0;
		sock_poll_update(io, c);
	}
}

/* ---- input --------------------------------------------------------------- */

/* A read ended the stream: n is 0 (EOF: the engine decides, since what
 * came before it may still be waiting for an authentication decision)
 * or a layer's error. */
static void sock_read_failed(struct iothr *io, struct conn *c, ssize_t n, const char *why)
{
	if (n == 0) {
		c->eof = true;
		sock_poll_update(io, c);
		sock_report(io, c, IO_EOF);
		return;
	}
	if (n == XPORT_REFUSED) {
		char a[INET6_ADDRSTRLEN];
		log_notice("connection from %s:%u refused: %s", conn_addr(c, a), c->port, why);
	}
	if (n == XPORT_REFUSED || n == XPORT_CLOSE) {
		/* The layer's answer (an HTTP error, a WebSocket Close, a TLS
		 * alert) must reach the peer before our FIN: nothing more is
		 * read and the engine closes as it would its own close. */
		c->eof = true;
		sock_poll_update(io, c);
		struct ioq_rec r = {.op = IO_REFUSED, .conn = c, .flag = n == XPORT_CLOSE};
		iothr_report(io, &r);
		return;
	}
	sock_teardown(io, c, why);
}

/*
 * Reads what the top layer has into the thread's input chunk, each read
 * an IO_INPUT record: until a read comes back short and the layers hold
 * nothing more (the socket is drained; polling is level-triggered, so
 * anything that arrives later wakes us again), but at most
 * READS_PER_WAKEUP reads and READ_MAX_PER_WAKEUP bytes, so one fast
 * sender cannot starve the others. Out of chunks, c waits for one
 * (starved) without being polled.
 */
static void sock_read(struct iothr *io, struct conn *c)
{
	int fd = c->fd;
	uint32_t total = 0;
	for (int i = 0; i < READS_PER_WAKEUP && total < READ_MAX_PER_WAKEUP; i++) {
		uint32_t room;
		uint8_t *p = chunk_room(&io->chunks, &room);
		if (!p) {
			/* out of input budget: read again once the engine
			 * gives a chunk back (sock_retry_starved) */
			c->starved = true;
			sock_poll_update(io, c);
			iothr_want_read(io, c);
			return;
		}
		const char *why = NULL;
		ssize_t n = c->xport->ops->read(c->xport, fd, p, room, &why);
		if (n == XPORT_AGAIN)
			break;
		if (n <= 0) {
			sock_read_failed(io, c, n, why);
			return;
		}
		struct ioq_rec r = {.op = IO_INPUT, .conn = c, .len = (uint32_t)n, .q = p};
		r.p = chunk_take(&io->chunks, (uint32_t)n);
		iothr_report(io, &r);
		total += (uint32_t)n;
		if ((size_t)n < room && !c->xport->ops->pending(c->xport))
			break;
	}
	if (c->torn)
		return;
	if (!c->wr_busy && !c->flush_wait && c->xport->ops->queued(c->xport) > 0) {
		/* a layer answered by itself (a TLS handshake) */
		int rc = sock_flush_layers(io, c);
		if (rc < 0)
			return;
		c->flush_wait = rc == 0;
		sock_poll_update(io, c);
	}
	if (c->xport->ops->pending(c->xport))
		iothr_want_read(io, c);
}

void sock_set_reading(struct iothr *io, struct conn *c, bool on)
{
	if (c->torn || c->eof || c->rd_on == on)
		return;
	c->rd_on = on;
	sock_poll_update(io, c);
	if (on && (c->xport->ops->pending(c->xport) || c->starved))
		iothr_want_read(io, c);
}

void sock_read_pending(struct iothr *io)
{
	/* Reads may queue connections again (io->pending may move): they
	 * are read in the next pass. */
	int n = io->pending.n;
	for (int i = 0; i < n; i++) {
		struct conn *c = io->pending.v[i];
		c->read_pending = false;
		if (!c->torn && c->rd_on && !c->shutting && !c->lingering && !c->starved && !c->eof)
			sock_read(io, c);
	}
	memmove(io->pending.v, io->pending.v + n, (size_t)(io->pending.n - n) * sizeof(struct conn *));
	io->pending.n -= n;
}

void sock_retry_starved(struct iothr *io)
{
	for (int i = 0; i < io->starved.n; i++) {
		struct conn *c = io->starved.v[i];
		c->starved = false;
		c->read_pending = false;
		if (c->torn)
			continue;
		sock_poll_update(io, c);
		iothr_want_read(io, c);
	}
	io->starved.n = 0;
}

void sock_on_poll(struct iothr *io, struct conn *c, int status, int events)
{
	if (status < 0) {
		/* EPOLLERR: the socket error says why (a reset, mostly), as a
		 * read would have. */
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
			err = EIO;
		sock_teardown(io, c, uv_strerror(uv_translate_sys_error(err)));
		return;
	}
	if (c->lingering) {
		sock_linger_read(io, c);
		return;
	}
	if (events & UV_WRITABLE)
		sock_on_writable(io, c);
	if ((events & UV_READABLE) && !c->torn && c->rd_on && !c->shutting && !c->starved && !c->eof)
		sock_read(io, c);
}
