/*
 * conn.c - a connection's engine half (see conn.h), its lifetime: the
 * phase lists (waiting for CONNECT, flushing before a close), asking for
 * the end, output queued and handed to the I/O thread one batch at a
 * time, backpressure, and the time bounds of waiting for CONNECT and of
 * flushing before a close. What the I/O threads report is conn_input.c's,
 * accept conn_accept.c's (conn_internal.h).
 *
 * Everything this half wants from the socket it says in a record
 * (iothr.h), and it says it from one place, conn_flush(): the flags
 * record what should happen, conn_flush() turns them into records, so a
 * record that cannot be queued now (out of memory) is simply said again
 * next time.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/conn_internal.h"
#include "transport/iothr.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/zauth.h"

static const char *const conn_why_text[] = {
	[WHY_NONE] = NULL,
	[WHY_NO_CONNECT] = "no CONNECT in time",
	[WHY_OOM] = "out of memory",
	[WHY_AUTH_INPUT] = "input while authenticating",
	[WHY_PEER_CLOSED] = "connection closed by client",
	[WHY_LAYER_REFUSED] = "refused by a connection layer (logged)",
};

const char *conn_addr(const struct conn *c, char buf[INET6_ADDRSTRLEN])
{
	if (c->af_unix) {
		/* the listener outlives its connections (listener_free) */
		const struct listener *l = c->listener;
		return l && l->unix_path ? l->unix_path : "unix-socket";
	}
	buf[0] = '\0';
	if (c->af_known && !inet_ntop(c->af6 ? AF_INET6 : AF_INET, c->addr, buf, INET6_ADDRSTRLEN))
		buf[0] = '\0';
	return buf;
}

static int conn_post(struct midge *m, struct conn *c, uint8_t op, uint8_t flag, void *p)
{
	struct ioq_rec r = {.op = op, .flag = flag, .conn = c, .p = p};
	return iothr_post(conn_io(m, c), &r);
}

/* Puts c on the list of connections whose news conn_flush() passes on. */
void conn_mark_dirty(struct midge *m, struct conn *c)
{
	if (c->dirty)
		return;
	if (m->n_dirty == m->cap_dirty) {
		int ncap = m->cap_dirty ? m->cap_dirty * 2 : 256;
		struct conn **nd = realloc(m->dirty, (size_t)ncap * sizeof(*nd));
		if (!nd)
			return; /* the next send or report marks it again */
		m->dirty = nd;
		m->cap_dirty = ncap;
	}
	c->dirty = true;
	m->dirty[m->n_dirty++] = c;
}

/* ---- the engine's phase lists (pre-CONNECT, closing) -------------------- */

void conn_list_append(struct conn_list *l, struct conn *c)
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

void conn_list_remove(struct conn_list *l, struct conn *c)
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

/* Takes c off the engine's lists; the links then go to the I/O thread. */
void conn_leave_lists(struct midge *m, struct conn *c)
{
	if (c->in_pre) {
		conn_list_remove(&m->pre, c);
		c->in_pre = false;
	}
	if (c->in_grace) {
		conn_list_remove(&m->closing, c);
		c->in_grace = false;
	}
}

/* ---- asking for the end ---------------------------------------------------- */

void conn_close(struct midge *m, struct conn *c)
{
	if (c->closing || c->ending || c->gone)
		return;
	conn_leave_lists(m, c);
	c->in_grace = true; /* the grace period bounds it now */
	c->phase_since_ms = broker_rel_ms(m, broker_now_ms());
	conn_list_append(&m->closing, c);
	c->closing = true;
	c->read_stopped = true;
	conn_mark_dirty(m, c);
}

/* Ends c: now (teardown), or closing at once whatever is queued
 * (close_now: a layer's refusal, whose answer is flushed first). */
void conn_end(struct midge *m, struct conn *c, enum conn_why why, bool close_now)
{
	if (c->ending || c->gone || c->tear || c->close_now)
		return;
	if (close_now)
		c->close_now = true;
	else
		c->tear = true;
	c->tear_why = why & 7u;
	c->read_stopped = true;
	conn_mark_dirty(m, c);
}

void conn_teardown(struct midge *m, struct conn *c)
{
	conn_end(m, c, WHY_NONE, false);
}

/* The engine hears of the end (from the top of the loop only: it may
 * publish a will, i.e. send to others). */
void conn_tell_engine(struct midge *m, struct conn *c, const char *why)
{
	if (c->ec) {
		struct engine_conn *ec = c->ec;
		c->ec = NULL;
		if (c->acl_asked) /* a packet may wait for a worker's answer */
			zauth_acl_cancel(m, ec);
		engine_conn_closed(m->engine, ec, why, broker_now_ms());
	}
}

/* ---- output -------------------------------------------------------------- */

uint64_t conn_out_bytes(const struct conn *c)
{
	return c->out ? c->out->q[0].bytes + c->out->q[1].bytes : 0;
}

/* The queue new output goes to, or NULL on OOM. */
static struct outq *conn_outq(struct midge *m, struct conn *c)
{
	if (!c->out && !(c->out = outbox_get(&m->outboxes)))
		return NULL;
	return &c->out->q[c->fill];
}

int conn_send(struct midge *m, struct conn *c, const uint8_t *head, size_t head_len,
	      struct frame *tail, bool droppable)
{
	if (c->ending || c->gone || c->tear)
		return -1;
	if (droppable && conn_out_bytes(c) > m->conf.max_output_bytes)
		return -1;
	struct outq *q = conn_outq(m, c);
	if (!q || outq_copy(q, head, head_len) < 0 || outq_frame(q, tail) < 0) {
		conn_end(m, c, WHY_OOM, false);
		return -1;
	}
	latency_carry(&m->lat, q, head[0]);
	conn_mark_dirty(m, c);
	return 0;
}

/*
 * Whether c's input should be read now. While its CONNECT waits for the
 * authentication decision c is still read, so a client that leaves is
 * noticed (and its check cancelled): what arrives waits in its buffer for
 * the decision, up to the pre-CONNECT packet bound; past it, or once the
 * peer closed, c waits.
 */
static bool conn_wants_input(const struct conn *c)
{
	if (c->paused || c->read_stopped || c->closing || c->eof_held)
		return false;
	if (!c->held || !c->ec)
		return true;
	/* held after CONNECT (acknowledgements the store has not made
	 * durable yet): not read until engine_io.resume */
	if (engine_conn_version(c->ec) != 0)
		return false;
	return (c->rbuf ? c->rbuf->len : 0) < engine_conn_max_packet(c->ec);
}

/*
 * Passes c's news on to its I/O thread, in this order: input that waited
 * for the engine (engine_io.resume), the end it was asked for, output
 * (one batch in flight at a time), whether to read.
 * Returns false when c must stay on the dirty list (a record could not be
 * queued, or an end waits for the top of the loop).
 */
static bool conn_flush(struct midge *m, struct conn *c, bool top_level)
{
	if (c->resume_input && !c->gone && !c->ending) {
		/* frames what waited; only from the top of the loop: the
		 * engine is called */
		if (!top_level)
			return false;
		c->resume_input = false;
		if (c->held && c->ec) {
			c->held = false;
			if (c->rbuf && c->rbuf->len)
				conn_frame(m, c, c->rbuf->data, c->rbuf->len);
			conn_leave_pre(m, c); /* a CONNECT held for the cluster's claim, accepted */
			/* the peer closed behind a packet that waited (an ACL
			 * answer): handled now, so the close goes on */
			if (c->eof_held && !c->held && !c->gone && !c->ending)
				conn_end(m, c, WHY_PEER_CLOSED, false);
		}
	}
	if (c->receive_ready && !c->gone && !c->ending && c->ec) {
		if (!top_level)
			return false;
		c->receive_ready = false;
		engine_conn_receive_ready(m->engine, c->ec); /* output lands on c: flushed below */
	}
	if (c->gone) {
		/* the I/O thread frees it; the engine must not touch it after */
		return conn_post(m, c, IO_RELEASE, 0, NULL) == 0;
	}
	if (c->ending)
		return true;
	if (c->tear || c->close_now) {
		/* torn down, or closed now whatever is queued (a layer's
		 * refusal: its own answer goes out before our FIN) */
		const char *why = conn_why_text[c->tear_why];
		if (!top_level)
			return false;
		/* the links are the I/O thread's once the record is out */
		conn_leave_lists(m, c);
		if (conn_post(m, c, c->tear ? IO_TEARDOWN : IO_CLOSE, 0, (void *)why) < 0)
			return false;
		c->ending = true;
		conn_tell_engine(m, c, why);
		return true;
	}
	if (!c->writing) {
		struct outq *q = c->out ? &c->out->q[c->fill] : NULL;
		if (q && q->n > 0) {
			c->out->wq = c->fill;
			if (conn_post(m, c, IO_WRITE, 0, NULL) < 0)
				return false;
			c->fill ^= 1;
			c->writing = true;
		} else {
			if (c->out && c->out->q[c->fill ^ 1].n == 0) {
				outbox_put(&m->outboxes, c->out);
				c->out = NULL;
			}
			if (c->closing) {
				/* Everything is written: the I/O thread shuts
				 * our side and lingers; the engine is done. */
				if (!top_level)
					return false;
				conn_leave_lists(m, c);
				if (conn_post(m, c, IO_CLOSE, 0, NULL) < 0)
					return false;
				c->ending = true;
				conn_tell_engine(m, c, NULL);
				return true;
			}
		}
	}
	bool want = conn_wants_input(c);
	if (want != c->reading) {
		if (conn_post(m, c, IO_READ, want, NULL) < 0)
			return false;
		c->reading = want;
	}
	return true;
}

void conn_flush_dirty(struct midge *m, bool top_level)
{
	/* Flushing tells the engine of ends, which may dirty others (a
	 * will goes out): a few rounds, until none is left. */
	for (int rounds = 0; m->n_dirty > 0 && rounds < 8; rounds++) {
		int n = m->n_dirty, kept = 0;
		for (int i = 0; i < n; i++) {
			struct conn *c = m->dirty[i];
			c->dirty = false;
			if (!conn_flush(m, c, top_level)) {
				c->dirty = true;
				m->dirty[kept++] = c; /* said again next time */
			}
		}
		/* connections dirtied meanwhile were appended after n */
		memmove(m->dirty + kept, m->dirty + n, (size_t)(m->n_dirty - n) * sizeof(*m->dirty));
		m->n_dirty = kept + (m->n_dirty - n);
		if (kept == m->n_dirty)
			break; /* only the ones that wait are left */
	}
}

/* ---- time bounds ----------------------------------------------------------- */

/* How long ago since was, rel being now; 0 for a since later than rel:
 * conn_close() stamps a connection with a fresh clock reading, which
 * can be a millisecond past the now the tick began with, and the
 * unsigned difference would read as 49 days. */
static uint32_t conn_age_ms(uint32_t rel, uint32_t since)
{
	int32_t d = (int32_t)(rel - since);
	return d > 0 ? (uint32_t)d : 0;
}

void conn_expire(struct midge *m, uint64_t now)
{
	/* [MQTT-3.1.4-1]-adjacent housekeeping: a socket that never sends
	 * CONNECT (or never finishes TLS) is closed after connect_timeout. */
	uint64_t limit = (uint64_t)m->conf.connect_timeout * 1000u;
	uint32_t rel = broker_rel_ms(m, now);
	if (limit > INT32_MAX)
		limit = INT32_MAX;
	while (limit && m->pre.head && conn_age_ms(rel, m->pre.head->phase_since_ms) >= limit) {
		struct conn *c = m->pre.head;
		/* the engine's view of the peer: the socket half may be
		 * rewriting its own (a PROXY header) at this moment */
		const struct midge_client *cl = c->ec ? engine_conn_client(c->ec) : NULL;
		log_notice("client %s:%u sent no CONNECT within %u s: closed",
			   cl && cl->peer_addr ? cl->peer_addr : "?", cl ? cl->peer_port : 0,
			   m->conf.connect_timeout);
		conn_list_remove(&m->pre, c);
		c->in_pre = false;
		conn_end(m, c, WHY_NO_CONNECT, false);
	}
	/* A client that does not read cannot hold a closing socket open:
	 * what it has not taken after the grace period is dropped. */
	while (m->closing.head &&
	       conn_age_ms(rel, m->closing.head->phase_since_ms) > CLOSE_GRACE_MS) {
		struct conn *c = m->closing.head;
		conn_list_remove(&m->closing, c);
		c->in_grace = false;
		conn_teardown(m, c);
	}
}

