/*
 * conn.c - one connection while it lives: accept, read and frame
 * (engine_conn_input, the engine's one framing loop), queue output, flush
 * it (one writev per flush through the layers), backpressure. How it
 * ends is linger.c.
 *
 * Layers (xport.h) do the socket and TLS work; this file never knows
 * which layers a connection has.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/tls.h"
#include "transport/xport.h"

#define READ_MAX_PER_WAKEUP (128u * 1024u) /* then other sockets get their turn */
#define READS_PER_WAKEUP 32
#if defined(IOV_MAX) && IOV_MAX < 1024
#define CONN_IOV IOV_MAX
#else
#define CONN_IOV 1024
#endif

static void conn_flush(struct conn *c);

const char *conn_addr(const struct conn *c, char buf[INET6_ADDRSTRLEN])
{
	buf[0] = '\0';
	if (c->af_known && !inet_ntop(c->af6 ? AF_INET6 : AF_INET, c->addr, buf, INET6_ADDRSTRLEN))
		buf[0] = '\0';
	return buf;
}

/* ---- polling and output bookkeeping ------------------------------------ */

uint64_t conn_out_bytes(const struct conn *c)
{
	return (c->out ? c->out->q[0].bytes + c->out->q[1].bytes : 0) +
	       c->xport->ops->queued(c->xport);
}

/*
 * Polls c for what it waits for now: readable while it may read (or
 * lingers); writable while output waits for the socket. Each change costs
 * libuv an epoll_ctl or two, so nothing is done when the mask is
 * unchanged.
 */
void conn_poll_update(struct conn *c)
{
	if (conn_is_closed(c))
		return;
	unsigned want = (conn_can_read(c) || c->lingering ? UV_READABLE : 0) |
			(c->writing ? UV_WRITABLE : 0);
	if (want == c->events)
		return;
	int rc = want ? uv_poll_start(&c->poll, (int)want, conn_on_poll) : uv_poll_stop(&c->poll);
	if (rc < 0) {
		conn_teardown(c, uv_strerror(rc));
		return;
	}
	c->events = want & 3u;
}

void conn_mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = conn_midge(c)->dirty;
	conn_midge(c)->dirty = c;
}

void conn_stop_reading(struct conn *c)
{
	if (c->read_stopped)
		return;
	c->read_stopped = true;
	conn_poll_update(c);
}

/* A layer holds input the poller cannot see: read it from the check phase. */
static void conn_want_pending(struct conn *c)
{
	if (conn_can_read(c) && c->xport->ops->pending(c->xport)) {
		c->read_pending = true;
		conn_mark_dirty(c);
	}
}

/* A client paused for sending faster than it reads is read again once
 * its output has drained to half the bound. */
static void conn_maybe_resume(struct conn *c)
{
	if (c->paused && conn_out_bytes(c) <= conn_midge(c)->conf.max_output_bytes / 2 &&
	    !c->read_stopped && !c->closing && !conn_is_closed(c)) {
		c->paused = false;
		conn_poll_update(c);
		conn_want_pending(c);
	}
}

/* The queue new output goes to, or NULL on OOM. */
static struct outq *conn_outq(struct conn *c)
{
	if (!c->out && !(c->out = outbox_get(&conn_midge(c)->outboxes)))
		return NULL;
	return &c->out->q[c->fill];
}

static void conn_outbox_trim(struct conn *c)
{
	if (c->out && !c->writing && c->out->q[0].n == 0 && c->out->q[1].n == 0) {
		outbox_put(&conn_midge(c)->outboxes, c->out);
		c->out = NULL;
	}
}

int conn_send(struct conn *c, const uint8_t *head, size_t head_len, struct frame *tail,
	      bool droppable)
{
	if (conn_is_closed(c) || c->lingering)
		return -1;
	if (droppable && conn_out_bytes(c) > conn_midge(c)->conf.max_output_bytes)
		return -1;
	struct outq *q = conn_outq(c);
	if (!q || outq_copy(q, head, head_len) < 0 || outq_frame(q, tail) < 0) {
		conn_teardown(c, "out of memory");
		return -1;
	}
	latency_carry(&conn_midge(c)->lat, q, head[0]);
	conn_mark_dirty(c);
	return 0;
}

/* ---- output -------------------------------------------------------------- */

/*
 * Writes q[fill ^ 1] from out->written on: one writev of up to CONN_IOV
 * segments at a time through the layers (frames are referenced, never
 * copied) until it is all taken or the socket is full. Returns 1 when all
 * is taken, 0 when the rest waits for the socket, -1 when c was torn down.
 */
static int conn_write_out(struct conn *c)
{
	struct outbox *o = c->out;
	if (!o)
		return 1;
	struct outq *q = &o->q[c->fill ^ 1];
	struct iovec iov[CONN_IOV];
	int fd = conn_fd(c);
	while (!outq_done(q, o->written)) {
		size_t total;
		const char *why = "write error";
		int cnt = outq_iov(q, o->written, iov, CONN_IOV, &total);
		ssize_t n = c->xport->ops->writev(c->xport, fd, iov, cnt, &why);
		if (n == XPORT_AGAIN)
			return 0;
		if (n < 0) {
			conn_teardown(c, why);
			return -1;
		}
		outq_advance(q, &o->written, (size_t)n);
		if ((size_t)n < total)
			return 0; /* the socket is full: writing again now would only get EAGAIN */
	}
	return 1;
}

/* q[fill ^ 1] is all written: its frames go, new output can be written. */
static void conn_written(struct conn *c)
{
	if (c->out) {
		latency_mark_written(&conn_midge(c)->lat, &c->out->q[c->fill ^ 1]);
		outq_reset(&c->out->q[c->fill ^ 1], true);
	}
	c->writing = false;
}

/*
 * What the layers hold goes first, then q[fill] straight to the socket;
 * what the socket does not take stays in place (now q[fill ^ 1]) and is
 * written when the socket is writable, while new output fills the other
 * queue. With nothing left, a closing connection shuts its side.
 */
static void conn_flush(struct conn *c)
{
	if (conn_is_closed(c) || c->lingering || c->writing)
		return;
	const char *why = NULL;
	int rc = c->xport->ops->flush(c->xport, conn_fd(c), &why);
	if (rc <= 0) {
		if (rc < 0) {
			conn_teardown(c, why);
		} else {
			c->writing = true;
			conn_poll_update(c);
		}
		return;
	}
	struct outq *q = c->out ? &c->out->q[c->fill] : NULL;
	if (!q || q->n == 0) {
		conn_outbox_trim(c);
		conn_maybe_resume(c);
		if (c->closing)
			conn_shut(c);
		return;
	}
	c->out->written.seg = c->out->written.off = 0;
	c->fill ^= 1;
	c->writing = true;
	rc = conn_write_out(c);
	if (rc < 0)
		return;
	if (rc == 0) {
		conn_poll_update(c);
		return;
	}
	conn_written(c);
	conn_flush(c); /* the layers' records, then what queued meanwhile */
}

/* The socket can take more. */
static void conn_on_writable(struct conn *c)
{
	if (c->writing) {
		int rc = conn_write_out(c);
		if (rc <= 0)
			return; /* torn down, or still full: keep polling for writable */
		conn_written(c);
		/* What queued meanwhile goes now, while the socket has room,
		 * and the poll mask changes at most once. */
		conn_flush(c);
	}
	conn_poll_update(c);
}

void conn_flush_dirty(struct midge *m, bool may_read)
{
	/* Flushing can dirty more connections (a write error closes one,
	 * whose will goes to others), so drain until empty. */
	struct conn *later = NULL;
	int rounds = 0;
	while (m->dirty && rounds++ < 8) {
		struct conn *list = m->dirty;
		m->dirty = NULL;
		while (list) {
			struct conn *c = list;
			list = c->dirty_next;
			c->dirty_next = NULL;
			if (c->read_pending && !may_read) {
				c->dirty_next = later; /* stays marked dirty */
				later = c;
				continue;
			}
			c->dirty = false;
			if (c->read_pending) {
				c->read_pending = false;
				if (conn_can_read(c))
					conn_on_poll(&c->poll, 0, UV_READABLE);
			}
			conn_flush(c);
		}
	}
	while (later) {
		struct conn *c = later;
		later = c->dirty_next;
		c->dirty_next = m->dirty;
		m->dirty = c;
	}
}

/* ---- input --------------------------------------------------------------- */

/* Frames what b holds (the one framing loop is the engine's) and keeps the
 * incomplete rest at its start. */
static void conn_input(struct conn *c, struct rbuf *b)
{
	struct midge *m = conn_midge(c);
	struct codec_feed feed;
	int rc = engine_conn_input(m->engine, c->ec, b->data, b->len, broker_now_ms(), &feed);
	if (rc < 0) {
		conn_stop_reading(c);
	} else if (rc == ENGINE_CONN_HELD) {
		/* What follows the CONNECT waits in the buffer, bounded by the
		 * pre-CONNECT limit, until conn_auth_done(). */
		c->held = true;
		conn_poll_update(c);
	}
	rbuf_consume(b, (uint32_t)feed.used);
	b->need = (uint32_t)feed.need;
	if (c->in_pre && c->ec && engine_conn_version(c->ec) != 0)
		conn_pre_leave(c);
	if (!c->paused && !c->read_stopped && conn_out_bytes(c) > m->conf.max_output_bytes) {
		/* The client sends faster than it reads its answers: stop
		 * reading until its output drains (nothing blocks the loop). */
		c->paused = true;
		conn_poll_update(c);
	}
}

void conn_auth_done(struct conn *c, int rc)
{
	if (!c->held || !c->ec || conn_is_closed(c))
		return;
	c->held = false;
	/* Refused: the engine has queued the CONNACK and asked to close. */
	if (engine_conn_auth_done(conn_midge(c)->engine, c->ec, rc, broker_now_ms()) == 0 &&
	    c->rbuf && c->rbuf->len)
		conn_input(c, c->rbuf);
	conn_poll_update(c);
	conn_want_pending(c);
}

/* A read ended the connection: n is 0 (EOF) or a layer's error. */
static void conn_read_failed(struct conn *c, ssize_t n, const char *why)
{
	if (n == 0) {
		why = "connection closed by client";
	} else if (n == XPORT_REFUSED) {
		char a[INET6_ADDRSTRLEN];
		log_notice("connection from %s:%u refused: %s", conn_addr(c, a), c->port, why);
	}
	conn_teardown(c, why);
}

/*
 * Reads what the top layer has into c's receive buffer and frames it:
 * until a read comes back short and the layers hold nothing more (the
 * socket is drained; polling is level-triggered, so anything that arrives
 * later wakes us again), but at most READS_PER_WAKEUP reads and
 * READ_MAX_PER_WAKEUP bytes, so one fast sender cannot starve the others.
 * The buffer comes from the pool and goes back when it is empty: an idle
 * connection holds none.
 */
static void conn_read(struct conn *c)
{
	struct midge *m = conn_midge(c);
	int fd = conn_fd(c);
	uint32_t total = 0;
	for (int i = 0; i < READS_PER_WAKEUP && total < READ_MAX_PER_WAKEUP; i++) {
		if (rbuf_reserve(&m->rbufs, &c->rbuf, c->rbuf ? c->rbuf->need : 0) < 0) {
			conn_teardown(c, "out of memory");
			return;
		}
		struct rbuf *b = c->rbuf;
		size_t room = b->cap - b->len;
		const char *why = NULL;
		ssize_t n = c->xport->ops->read(c->xport, fd, b->data + b->len, room, &why);
		if (n == XPORT_AGAIN)
			break;
		if (n <= 0) {
			conn_read_failed(c, n, why);
			return;
		}
		b->len += (uint32_t)n;
		total += (uint32_t)n;
		latency_mark_read(&m->lat);
		conn_input(c, b);
		latency_read_done(&m->lat);
		if (!conn_can_read(c) || ((size_t)n < room && !c->xport->ops->pending(c->xport)))
			break;
	}
	if (conn_is_closed(c))
		return;
	rbuf_release_if_empty(&m->rbufs, &c->rbuf);
	if (c->xport->ops->queued(c->xport) > 0)
		conn_mark_dirty(c); /* a layer answered by itself (a TLS handshake) */
	conn_want_pending(c);
}

void conn_on_poll(uv_poll_t *h, int status, int events)
{
	struct conn *c = (struct conn *)h;
	if (status < 0) {
		/* POLLERR: libuv stopped polling; the socket error says why
		 * (a reset, mostly), as a read would have. */
		int err = 0;
		socklen_t len = sizeof(err);
		if (getsockopt(conn_fd(c), SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err == 0)
			err = EIO;
		conn_teardown(c, uv_strerror(uv_translate_sys_error(err)));
		return;
	}
	if (c->lingering) {
		conn_linger_read(c);
		return;
	}
	if (events & UV_WRITABLE)
		conn_on_writable(c);
	if ((events & UV_READABLE) && conn_can_read(c))
		conn_read(c);
}

/* ---- accept and the broker-wide walks ---------------------------------- */

/* Fills c's peer address from what accept() returned. */
static void conn_set_peer(struct conn *c, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
		c->af_known = 1;
		c->af6 = 1;
		memcpy(c->addr, &a->sin6_addr, 16);
		c->port = ntohs(a->sin6_port);
	} else if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
		c->af_known = 1;
		memcpy(c->addr, &a->sin_addr, 4);
		c->port = ntohs(a->sin_port);
	}
}

/* use_identity_as_username: the certificate's common name is the user. */
static int conn_tls_identity(void *owner, const char *cn)
{
	struct conn *c = owner;
	return cn && c->ec ? engine_conn_set_identity(c->ec, cn) : -1;
}

static bool conn_over_limit(struct listener *l, const struct sockaddr_storage *ss)
{
	struct midge *m = l->m;
	const char *why = "max_connections reached";
	if ((l->max_connections < 0 || l->count < l->max_connections) &&
	    (m->conf.max_connections < 0 || m->n_conns < m->conf.max_connections)) {
		if (!m->conf.max_pending_connects || m->pre.n < m->conf.max_pending_connects)
			return false;
		why = "midge_max_pending_connects reached";
	}
	/* One line a second at most: a flood must not become a log flood. */
	uint64_t now = broker_now_ms();
	if (now - m->accept_refused_logged_ms >= 1000) {
		struct conn tmp = {0};
		char addr[INET6_ADDRSTRLEN];
		conn_set_peer(&tmp, ss);
		log_notice("connection from %s:%u refused: %s (%llu refused since the last line)",
			   conn_addr(&tmp, addr), tmp.port, why,
			   (unsigned long long)m->accept_refused + 1);
		m->accept_refused_logged_ms = now;
		m->accept_refused = 0;
	} else {
		m->accept_refused++;
	}
	return true;
}

void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct midge *m = l->m;
	char addr[INET6_ADDRSTRLEN];
	if (m->stopping || conn_over_limit(l, ss)) {
		close(fd);
		return;
	}
	struct conn *c = calloc(1, sizeof(*c));
	if (!c || uv_poll_init(&m->loop, &c->poll, fd) < 0) {
		free(c);
		close(fd);
		return;
	}
	m->n_conns++;
	m->sockets_accepted++;
	c->xport = &tcp_xport;
	conn_set_peer(c, ss);
#ifndef __linux__
	{
		/* Linux copies TCP_NODELAY from the listening socket. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
#endif
	/* Polling first: conn_on_poll as the poll callback is what makes
	 * the handle a connection for uv_walk. */
	if (uv_poll_start(&c->poll, UV_READABLE, conn_on_poll) < 0) {
		conn_teardown(c, NULL);
		return;
	}
	c->events = UV_READABLE;
	c->poll.data = l;
	l->count++;
	uint64_t now = broker_now_ms();
	if (l->creds) {
		struct xport *t = tls_xport_new(l->creds, c->xport, &m->rbufs, conn_tls_identity, c);
		if (!t) {
			conn_teardown(c, NULL);
			return;
		}
		c->xport = t;
	}
	c->ec = engine_conn_open(m->engine, c, conn_addr(c, addr), c->port, l->creds != NULL, now);
	if (!c->ec) {
		conn_teardown(c, NULL);
		return;
	}
	conn_pre_enter(c, now);
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("new connection from %s:%u on port %u", addr, c->port, l->port);
}

