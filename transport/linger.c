/*
 * linger.c - how a connection ends, and the time bounds of its phases.
 *
 * Close (conn_close): reading stops, output is flushed within
 * CLOSE_GRACE_MS, our side is shut top layer down (TLS close_notify, TCP
 * FIN), then the connection lingers: input is discarded until the peer
 * closes or LINGER_MS pass, so a peer still writing reads what it was
 * sent instead of a reset. Teardown (conn_teardown): the socket goes now.
 * Also the phase lists, each oldest first, so the tick looks at the heads
 * only: accepted and waiting for CONNECT (connect_timeout), closing
 * (CLOSE_GRACE_MS), lingering (LINGER_MS, at most LINGER_MAX).
 *
 * Connections are freed only from libuv close callbacks, so an engine
 * callback (send, close) never sees a connection disappear under it, and
 * the engine hears about an end only from a top-level loop callback.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/log.h"
#include "transport/xport.h"

#define LINGER_READS 16 /* discarding reads per wakeup of a lingering socket */

/* Whether h is a connection's poll handle (the loop also holds listeners,
 * timers, signals, ZeroMQ polls). */
static struct conn *conn_of_handle(uv_handle_t *h)
{
	if (h->type != UV_POLL || ((uv_poll_t *)h)->poll_cb != conn_on_poll)
		return NULL;
	return (struct conn *)h;
}

/* ---- phase lists -------------------------------------------------------- */

static void conn_list_append(struct conn_list *l, struct conn *c)
{
	c->list_prev = l->tail;
	c->list_next = NULL;
	if (l->tail)
		l->tail->list_next = c;
	else
		l->head = c;
	l->tail = c;
	l->n++;
}

static void conn_list_remove(struct conn_list *l, struct conn *c)
{
	if (c->list_prev)
		c->list_prev->list_next = c->list_next;
	else
		l->head = c->list_next;
	if (c->list_next)
		c->list_next->list_prev = c->list_prev;
	else
		l->tail = c->list_prev;
	c->list_prev = c->list_next = NULL;
	l->n--;
}

/* Takes c off whichever phase list it is on. */
static void conn_leave_lists(struct conn *c)
{
	struct midge *m = conn_midge(c);
	if (c->in_pre) {
		conn_list_remove(&m->pre, c);
		c->in_pre = false;
	}
	if (c->in_grace) {
		conn_list_remove(&m->closing, c);
		c->in_grace = false;
	}
	if (c->lingering) {
		conn_list_remove(&m->lingering, c);
		c->lingering = false; /* torn down: the flag has done its work */
	}
}

void conn_pre_enter(struct conn *c, uint64_t now)
{
	c->phase_since_ms = broker_rel_ms(conn_midge(c), now);
	c->in_pre = true;
	conn_list_append(&conn_midge(c)->pre, c);
}

void conn_pre_leave(struct conn *c)
{
	if (c->in_pre) {
		conn_list_remove(&conn_midge(c)->pre, c);
		c->in_pre = false;
	}
}

/* ---- the end: close, linger, teardown ---------------------------------- */

static void conn_on_close(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	struct midge *m = conn_midge(c);
	if (c->ec) {
		struct engine_conn *ec = c->ec;
		c->ec = NULL;
		engine_conn_closed(m->engine, ec, c->why, broker_now_ms());
	}
	conn_leave_lists(c);
	struct listener *lis = c->poll.data;
	if (lis)
		lis->count--;
	m->n_conns--;
	outbox_put(&m->outboxes, c->out);
	rbuf_put(&m->rbufs, c->rbuf);
	xport_free(c->xport);
	/* A dirty connection is still on the dirty list: unlink it (rare:
	 * the check phase flushes the list before close callbacks run). */
	if (c->dirty) {
		struct conn **pp = &m->dirty;
		while (*pp && *pp != c)
			pp = &(*pp)->dirty_next;
		if (*pp)
			*pp = c->dirty_next;
	}
	free(c);
	conn_flush_dirty(m, true);
	if (m->stopping && m->n_conns == 0)
		uv_stop(&m->loop);
}

void conn_teardown(struct conn *c, const char *why)
{
	if (conn_is_closed(c))
		return;
	int fd = conn_fd(c);
	if (!c->why)
		c->why = why;
	c->closing = true;
	conn_leave_lists(c);
	/* libuv stops polling the socket in uv_close but leaves it open:
	 * it is closed here, once, after libuv has let go of it. */
	uv_close((uv_handle_t *)&c->poll, conn_on_close);
	if (fd >= 0)
		close(fd);
}

void conn_close(struct conn *c)
{
	if (c->lingering || conn_is_closed(c))
		return;
	if (!c->in_grace) {
		struct midge *m = conn_midge(c);
		conn_leave_lists(c); /* the grace period bounds it now */
		c->in_grace = true;
		c->phase_since_ms = broker_rel_ms(m, broker_now_ms());
		conn_list_append(&m->closing, c);
	}
	c->closing = true;
	conn_stop_reading(c);
	conn_mark_dirty(c);
}

static void conn_on_linger_timer(uv_timer_t *t);

/* Runs the linger timer for the oldest lingering connection. */
static void conn_linger_schedule(struct midge *m, uint32_t rel)
{
	if (!m->lingering.head) {
		uv_timer_stop(&m->linger_timer);
		return;
	}
	uint32_t age = rel - m->lingering.head->phase_since_ms;
	uint32_t wait = age >= LINGER_MS ? 1 : LINGER_MS - age;
	uv_timer_start(&m->linger_timer, conn_on_linger_timer, wait, 0);
}

static void conn_on_linger_timer(uv_timer_t *t)
{
	struct midge *m = t->data;
	uint32_t rel = broker_rel_ms(m, broker_now_ms());
	while (m->lingering.head && rel - m->lingering.head->phase_since_ms >= LINGER_MS)
		conn_teardown(m->lingering.head, NULL);
	conn_linger_schedule(m, rel);
}

/*
 * Everything is written and our side is shut: the peer reads what it was
 * sent, then EOF. Its input is discarded until it closes too or LINGER_MS
 * pass, so closing never resets a peer that is still writing (which would
 * destroy the DISCONNECT in its receive buffer). A lingering connection
 * holds no buffer and no layer but the socket; at most LINGER_MAX do, the
 * oldest is torn down first. During a shutdown nobody lingers.
 */
static void conn_linger_start(struct conn *c)
{
	struct midge *m = conn_midge(c);
	if (m->stopping) {
		conn_teardown(c, NULL);
		return;
	}
	conn_leave_lists(c);
	uint32_t rel = broker_rel_ms(m, broker_now_ms());
	c->lingering = true;
	c->phase_since_ms = rel;
	rbuf_put(&m->rbufs, c->rbuf);
	c->rbuf = NULL;
	outbox_put(&m->outboxes, c->out);
	c->out = NULL;
	c->xport = xport_strip(c->xport);
	conn_list_append(&m->lingering, c);
	if (m->lingering.n > LINGER_MAX)
		conn_teardown(m->lingering.head, NULL);
	conn_poll_update(c);
	if (!uv_is_active((uv_handle_t *)&m->linger_timer))
		conn_linger_schedule(m, rel);
}

int conn_linger_drop(struct midge *m)
{
	int n = 0;
	for (; m->lingering.head; n++)
		conn_teardown(m->lingering.head, NULL);
	return n;
}

int conn_lingering_notify(struct midge *m)
{
	int n = 0;
	uint64_t now = broker_now_ms();
	for (struct conn *c = m->lingering.tail; c && c->ec; c = c->list_prev, n++) {
		struct engine_conn *ec = c->ec;
		c->ec = NULL;
		engine_conn_closed(m->engine, ec, c->why, now);
	}
	return n;
}

/* Discards what a lingering peer still sends; its EOF (or an error) ends
 * the connection. */
void conn_linger_read(struct conn *c)
{
	uint8_t sink[4096];
	int fd = conn_fd(c);
	for (int i = 0; i < LINGER_READS; i++) {
		const char *why = NULL;
		ssize_t n = c->xport->ops->read(c->xport, fd, sink, sizeof(sink), &why);
		if (n == XPORT_AGAIN || (n > 0 && (size_t)n < sizeof(sink)))
			return;
		if (n <= 0) {
			conn_teardown(c, NULL);
			return;
		}
	}
}

/* Our side of the stream ends, top layer down (TLS close_notify, then
 * TCP's FIN), then the connection lingers. */
void conn_shut(struct conn *c)
{
	const char *why = NULL;
	int rc = c->xport->ops->shutdown(c->xport, conn_fd(c), &why);
	if (rc < 0) {
		conn_teardown(c, why);
	} else if (rc == 0) {
		c->writing = true;
		conn_poll_update(c);
	} else {
		conn_linger_start(c);
	}
}

void conn_expire(struct midge *m, uint64_t now)
{
	/* [MQTT-3.1.4-1]-adjacent housekeeping: a socket that never sends
	 * CONNECT (or never finishes TLS) is closed after connect_timeout. */
	uint64_t limit = (uint64_t)m->conf.connect_timeout * 1000u;
	uint32_t rel = broker_rel_ms(m, now);
	if (limit > UINT32_MAX)
		limit = UINT32_MAX;
	while (limit && m->pre.head && (uint32_t)(rel - m->pre.head->phase_since_ms) >= limit) {
		struct conn *c = m->pre.head;
		char a[INET6_ADDRSTRLEN];
		log_notice("client %s:%u sent no CONNECT within %u s: closed", conn_addr(c, a), c->port,
			   m->conf.connect_timeout);
		conn_teardown(c, "no CONNECT in time");
	}
	/* A client that does not read cannot hold a closing socket open:
	 * what it has not taken after the grace period is dropped. */
	while (m->closing.head &&
	       (uint32_t)(rel - m->closing.head->phase_since_ms) > CLOSE_GRACE_MS)
		conn_teardown(m->closing.head, NULL);
}

static void conn_walk_forget_listener(uv_handle_t *h, void *arg)
{
	struct conn *c = conn_of_handle(h);
	(void)arg;
	if (c)
		c->poll.data = NULL;
}

void conn_forget_listeners(struct midge *m)
{
	uv_walk(&m->loop, conn_walk_forget_listener, NULL);
}

/* uv_walk: tears down every connection, arg the reason. */
static void conn_walk_teardown(uv_handle_t *h, void *arg)
{
	struct conn *c = conn_of_handle(h);
	if (c)
		conn_teardown(c, arg);
}

void conn_teardown_all(struct midge *m, const char *why)
{
	uv_walk(&m->loop, conn_walk_teardown, (void *)why);
}
