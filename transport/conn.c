/*
 * conn.c - a connection's engine half (see conn.h): accept, the input the
 * I/O threads report framed by the engine (engine_conn_input, the one
 * framing loop), output queued and handed to the I/O thread one batch at
 * a time, backpressure, the held CONNECT, and the time bounds of waiting
 * for CONNECT and of flushing before a close.
 *
 * Everything this half wants from the socket it says in a record
 * (iothr.h), and it says it from one place, conn_flush(): the flags
 * record what should happen, conn_flush() turns them into records, so a
 * record that cannot be queued now (out of memory) is simply said again
 * next time.
 */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/iothr.h"
#include "transport/latency.h"
#include "transport/log.h"
#include "transport/outq.h"
#include "transport/proxy.h"
#include "transport/rbuf.h"
#include "transport/tls.h"
#include "transport/ws.h"
#include "transport/xport.h"

#define DRAIN_MAX 65536 /* records per conn_drain call: timers get their turn */

/* Why the engine half ended a connection (conn.tear_why): the text the
 * engine's disconnect event and log line get. */
enum conn_why {
	WHY_NONE,
	WHY_NO_CONNECT,
	WHY_OOM,
	WHY_AUTH_INPUT,
	WHY_PEER_CLOSED,
	/* the layer's own text is freed before the engine hears: this one
	 * is fixed, the log line has the detail */
	WHY_LAYER_REFUSED,
};
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

static inline struct iothr *conn_io(const struct midge *m, const struct conn *c)
{
	return m->io[c->io_index];
}

static int conn_post(struct midge *m, struct conn *c, uint8_t op, uint8_t flag, void *p)
{
	struct ioq_rec r = {.op = op, .flag = flag, .conn = c, .p = p};
	return iothr_post(conn_io(m, c), &r);
}

/* Puts c on the list of connections whose news conn_flush() passes on. */
static void conn_mark_dirty(struct midge *m, struct conn *c)
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
static void conn_leave_lists(struct midge *m, struct conn *c)
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
static void conn_end(struct midge *m, struct conn *c, enum conn_why why, bool close_now)
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
static void conn_tell_engine(struct midge *m, struct conn *c, const char *why)
{
	if (c->ec) {
		struct engine_conn *ec = c->ec;
		c->ec = NULL;
		engine_conn_closed(m->engine, ec, why, broker_now_ms());
	}
}

/* ---- output -------------------------------------------------------------- */

static uint64_t conn_out_bytes(const struct conn *c)
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
static void conn_frame(struct midge *m, struct conn *c, const uint8_t *data, size_t n);

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
		}
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

/* ---- input --------------------------------------------------------------- */

/* Leaves buf[used..n) (not in c's buffer) in c's buffer, with room for
 * the incomplete packet it starts. Returns 0 or -1 on OOM. */
static int conn_keep(struct midge *m, struct conn *c, const uint8_t *p, size_t len, size_t need)
{
	if (len == 0)
		return 0;
	if (rbuf_append(&m->rbufs, &c->rbuf, p, (uint32_t)len, (uint32_t)need) < 0) {
		conn_end(m, c, WHY_OOM, false);
		return -1;
	}
	return 0;
}

/*
 * Frames data[0..n) for c (data is c's own buffer, or bytes in an input
 * chunk when c has no partial packet): every complete packet goes to the
 * engine, the incomplete rest stays in c's buffer. A CONNECT held for its
 * decision stops the framing; what followed it waits in the buffer.
 */
static void conn_frame(struct midge *m, struct conn *c, const uint8_t *data, size_t n)
{
	bool own = c->rbuf && data == c->rbuf->data;
	struct codec_feed feed = {0};
	int rc = engine_conn_input(m->engine, c->ec, data, n, broker_now_ms(), &feed);
	if (rc < 0) {
		c->read_stopped = true; /* the engine has asked to close */
		rbuf_put(&m->rbufs, c->rbuf);
		c->rbuf = NULL;
		conn_mark_dirty(m, c);
		return;
	}
	if (rc == ENGINE_CONN_HELD) {
		c->held = true;
		conn_mark_dirty(m, c);
	}
	if (own) {
		rbuf_consume(c->rbuf, (uint32_t)feed.used);
	} else if (conn_keep(m, c, data + feed.used, n - feed.used, feed.need) < 0) {
		return;
	}
	if (c->rbuf) {
		c->rbuf->need = (uint32_t)feed.need;
		rbuf_release_if_empty(&m->rbufs, &c->rbuf);
	}
	if (c->in_pre && c->ec && engine_conn_version(c->ec) != 0) {
		conn_list_remove(&m->pre, c);
		c->in_pre = false;
	}
	if (!c->paused && conn_out_bytes(c) > m->conf.max_output_bytes) {
		/* The client sends faster than it reads its answers: stop
		 * reading until its output drains (nothing blocks the loop). */
		c->paused = true;
		conn_mark_dirty(m, c);
	}
}

/* Bytes read from c's socket. */
static void conn_on_input(struct midge *m, struct conn *c, const uint8_t *p, uint32_t len)
{
	if (c->gone || c->ending || c->tear || c->read_stopped || !c->ec)
		return;
	if (c->held) {
		/* Read before the I/O thread heard to stop: kept, bounded
		 * like anything before CONNECT is accepted. */
		uint64_t bound = 2ull * engine_conn_max_packet(c->ec) + CHUNK_SIZE;
		if ((c->rbuf ? c->rbuf->len : 0) + (uint64_t)len > bound)
			conn_end(m, c, WHY_AUTH_INPUT, false);
		else
			conn_keep(m, c, p, len, 0);
		return;
	}
	/* the delivery latency runs from here (the engine has the bytes)
	 * to the IO_WRITTEN of the queue a delivery went into */
	latency_mark_read(&m->lat);
	if (c->rbuf && c->rbuf->len > 0) {
		if (conn_keep(m, c, p, len, c->rbuf->need) == 0)
			conn_frame(m, c, c->rbuf->data, c->rbuf->len);
	} else {
		conn_frame(m, c, p, len);
	}
	latency_read_done(&m->lat);
}

void conn_resume(struct midge *m, struct conn *c)
{
	if (!c->held || c->gone || c->ending)
		return;
	c->resume_input = true;
	conn_mark_dirty(m, c);
}

/* After the engine took a held CONNECT's answer (accepted: 0): what
 * arrived behind it is framed, and a peer that closed meanwhile goes. */
static int conn_auth_resume(struct midge *m, struct conn *c, int accepted)
{
	if (accepted == 0) {
		if (c->rbuf && c->rbuf->len)
			conn_frame(m, c, c->rbuf->data, c->rbuf->len);
		if (c->eof_held) {
			/* what it sent before closing is done; now the close */
			conn_end(m, c, WHY_PEER_CLOSED, false);
		}
	}
	conn_mark_dirty(m, c);
	return accepted == 0 ? 0 : -1;
}

int conn_auth_done(struct midge *m, struct conn *c, int rc)
{
	if (!c->held || !c->ec || c->gone || c->ending)
		return -1;
	c->held = false;
	/* Refused: the engine has queued the CONNACK and asked to close. */
	return conn_auth_resume(m, c, engine_conn_auth_done(m->engine, c->ec, rc, broker_now_ms()));
}

int conn_auth_step(struct midge *m, struct conn *c, int rc, const struct midge_str *data)
{
	if (!c->ec || c->gone || c->ending)
		return -1;
	if (engine_conn_version(c->ec) != 0) {
		/* a re-authentication: the connection was read all along (a
		 * hold for the store is not ours to lift) */
		int r = engine_conn_auth_step(m->engine, c->ec, rc, data, broker_now_ms());
		conn_mark_dirty(m, c);
		return r;
	}
	if (!c->held)
		return -1;
	/* the CONNECT's exchange: read again, for the client's AUTH 0x18 or
	 * (accepted) everything */
	c->held = false;
	return conn_auth_resume(m, c, engine_conn_auth_step(m->engine, c->ec, rc, data,
							    broker_now_ms()));
}

/*
 * The peer closed its side: everything it sent came before this record.
 * A peer that closed after sending packets behind a held CONNECT is kept
 * until the decision, so they are handled as a synchronous check would
 * have; otherwise the connection goes (a peer that sent nothing more
 * behind a held CONNECT is gone, and its check is cancelled).
 */
static void conn_on_eof(struct midge *m, struct conn *c)
{
	if (c->gone || c->ending)
		return;
	if (c->held && c->ec && c->rbuf && c->rbuf->len) {
		c->eof_held = true;
		conn_mark_dirty(m, c); /* no more reading */
		return;
	}
	conn_end(m, c, WHY_PEER_CLOSED, false);
}

/* The handed queue is written: its frames go, the next batch can go. */
static void conn_on_written(struct midge *m, struct conn *c)
{
	c->writing = false;
	if (c->out) {
		latency_mark_written(&m->lat, &c->out->q[c->out->wq]);
		outq_reset(&c->out->q[c->out->wq], true);
	}
	/* A client paused for sending faster than it reads is read again
	 * once its output has drained to half the bound. */
	if (c->paused && conn_out_bytes(c) <= m->conf.max_output_bytes / 2)
		c->paused = false;
	conn_mark_dirty(m, c);
}

/* The listener a connection was accepted from counts it until its end. */
static void conn_listener_leave(struct conn *c)
{
	struct listener *l = c->listener;
	c->listener = NULL;
	if (l && --l->count == 0 && l->closed)
		free(l);
}

/* The socket is gone: nothing more comes for c from its I/O thread. */
static void conn_on_closed(struct midge *m, struct conn *c, const char *why)
{
	if (!c->ending)
		conn_leave_lists(m, c); /* the engine still held the links */
	conn_tell_engine(m, c, why);
	c->gone = true;
	c->writing = false;
	outbox_put(&m->outboxes, c->out);
	c->out = NULL;
	rbuf_put(&m->rbufs, c->rbuf);
	c->rbuf = NULL;
	conn_listener_leave(c);
	m->n_conns--;
	if (!conn_io(m, c)->running) {
		/* the thread has ended: nobody is left to free it */
		sock_release(conn_io(m, c), c);
	} else {
		conn_mark_dirty(m, c); /* conn_flush says IO_RELEASE */
	}
	if (m->stopping && m->n_conns == 0)
		uv_stop(&m->loop);
}

/* A layer refused the peer or ended the stream in order (IO_REFUSED):
 * the connection closes now, the layer's answer flushed first. */
static void conn_on_refused(struct midge *m, struct conn *c, bool orderly)
{
	conn_end(m, c, orderly ? WHY_PEER_CLOSED : WHY_LAYER_REFUSED, true);
}

/* The PROXY header named the real client: the engine's logs, events and
 * ACL patterns see it from now on. */
static void conn_on_peer(struct midge *m, struct conn *c, struct conn_peer *p)
{
	if (c->ec && !c->gone) {
		if ((p->text[0] && engine_conn_set_peer(c->ec, p->text, p->port) < 0) ||
		    (p->identity && engine_conn_set_identity(c->ec, p->identity) < 0))
			conn_end(m, c, WHY_OOM, false);
		else if (p->identity)
			c->tls_identity = true; /* the proxy verified the certificate */
	}
	free(p->identity);
	free(p);
}

/* use_identity_as_username, use_subject_as_username, a PSK identity:
 * what the TLS handshake proved is the user name, from the I/O thread
 * ahead of any input. */
static void conn_on_identity(struct midge *m, struct conn *c, char *name)
{
	if (c->ec && !c->gone) {
		if (!name || engine_conn_set_identity(c->ec, name) < 0)
			conn_teardown(m, c);
		else
			c->tls_identity = true;
	}
	free(name);
}

/* Input chunks are given back grouped: one atomic step per chunk per
 * drain, not per read. */
struct conn_chunk_run {
	struct iothr *io;
	struct chunk *chunk;
	uint32_t n;
};

static void conn_chunk_flush(struct conn_chunk_run *run)
{
	if (run->chunk && chunk_put(&run->io->chunks, run->chunk, run->n) && run->io->running &&
	    !run->io->inline_mode)
		uv_async_send(&run->io->wake); /* it waited for a chunk */
	run->chunk = NULL;
	run->n = 0;
}

int conn_drain(struct midge *m)
{
	int done = 0;
	for (int i = 0; i < m->n_io; i++) {
		struct iothr *io = m->io[i];
		struct conn_chunk_run run = {.io = io};
		struct ioq_rec r;
		while (done < DRAIN_MAX && ioq_pop(&io->out, &r)) {
			struct conn *c = r.conn;
			done++;
			switch (r.op) {
			case IO_INPUT:
				conn_on_input(m, c, r.q, r.len);
				if (run.chunk != r.p)
					conn_chunk_flush(&run);
				run.chunk = r.p;
				run.n++;
				break;
			case IO_WRITTEN: conn_on_written(m, c); break;
			case IO_EOF: conn_on_eof(m, c); break;
			case IO_CLOSED: conn_on_closed(m, c, r.p); break;
			case IO_IDENTITY: conn_on_identity(m, c, r.p); break;
			case IO_PEER: conn_on_peer(m, c, r.p); break;
			case IO_REFUSED: conn_on_refused(m, c, r.flag != 0); break;
			default: break;
			}
		}
		conn_chunk_flush(&run);
	}
	if (done == DRAIN_MAX)
		uv_async_send(&m->io_wake); /* more next pass */
	return done;
}

/* ---- time bounds ----------------------------------------------------------- */

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
	       (uint32_t)(rel - m->closing.head->phase_since_ms) > CLOSE_GRACE_MS) {
		struct conn *c = m->closing.head;
		conn_list_remove(&m->closing, c);
		c->in_grace = false;
		conn_teardown(m, c);
	}
}

/* ---- accept ------------------------------------------------------------------ */

/* Fills c's peer address from what accept() returned. */
static void conn_set_peer(struct conn *c, const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_UNIX) {
		c->af_unix = 1;
	} else if (ss->ss_family == AF_INET6) {
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

/* use_identity_as_username / use_subject_as_username, on the I/O thread
 * at the end of the TLS handshake: what it proved (certificate CN or
 * subject, PSK identity) goes to the engine ahead of any input. */
static int conn_tls_identity(void *owner, const char *proved)
{
	struct conn *c = owner;
	if (!proved)
		return -1;
	char *name = strdup(proved);
	if (!name)
		return -1;
	struct ioq_rec r = {.op = IO_IDENTITY, .conn = c, .p = name};
	iothr_report(sock_io(c), &r);
	return 0;
}

/* On the I/O thread: the PROXY header named the real client. The socket
 * half's address fields take it (its log lines), the engine hears it in
 * a record. */
static int conn_proxy_peer(void *owner, const struct proxy_info *pi, const char *cn)
{
	struct conn *c = owner;
	char a[INET6_ADDRSTRLEN] = "";
	const char *text = a;
	if (pi->family == PROXY_INET || pi->family == PROXY_INET6) {
		c->af_known = 1;
		c->af_unix = 0;
		c->af6 = pi->family == PROXY_INET6;
		memcpy(c->addr, pi->addr, c->af6 ? 16 : 4);
		c->port = pi->port;
		conn_addr(c, a);
	} else if (pi->family == PROXY_UNIX) {
		c->af_known = 0;
		c->port = 0;
		text = pi->path;
	}
	/* PROXY LOCAL: the socket's own address stays (text "") */
	size_t len = strlen(text);
	struct conn_peer *p = malloc(sizeof(*p) + len + 1);
	if (!p)
		return -1;
	p->port = c->port;
	p->identity = NULL;
	memcpy(p->text, text, len + 1);
	if (cn && !(p->identity = strdup(cn))) {
		free(p);
		return -1;
	}
	struct ioq_rec r = {.op = IO_PEER, .conn = c, .p = p};
	iothr_report(sock_io(c), &r);
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("PROXY header: the client is %s:%u", text[0] ? text : "(local)", c->port);
	return 0;
}

/*
 * The layers of a connection accepted on l, bottom up: the socket, PROXY
 * (enable_proxy_protocol), TLS (certfile), WebSocket (protocol
 * websockets). Each is given what it needs now (buffers from the pool of
 * io, the thread that will own it) and reports up through its callback.
 */
static struct xport *conn_layers_new(struct listener *l, struct conn *c, struct iothr *io)
{
	struct midge *m = l->m;
	struct xport *top = &tcp_xport, *x = NULL;
	if (l->proxy) {
		struct proxy_opts o = {l->proxy, l->proxy_require_tls, l->proxy_require_cert,
				       l->proxy_identity};
		if (!(x = proxy_xport_new(&o, top, &io->rbufs, conn_proxy_peer, c)))
			goto fail;
		top = x;
	}
	if (l->creds) {
		if (!(x = tls_xport_new(l->creds, top, &io->rbufs, conn_tls_identity, c)))
			goto fail;
		top = x;
	}
	if (l->ws) {
		/* A frame or a message is bounded like a packet. */
		uint64_t max_frame = m->conf.engine.max_packet_size;
		if (!(x = ws_xport_new(l->ws, top, &io->rbufs, max_frame)))
			goto fail;
		top = x;
	}
	return top;
fail:
	xport_free(top);
	return NULL;
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
	if (!c) {
		close(fd);
		return;
	}
	c->io_index = (uint8_t)(m->next_io++ % (unsigned)m->n_io);
	struct iothr *io = conn_io(m, c);
	c->xport = &tcp_xport;
	conn_set_peer(c, ss);
#ifndef __linux__
	{
		/* Linux copies TCP_NODELAY from the listening socket. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
#endif
	uint64_t now = broker_now_ms();
	c->listener = l; /* for a Unix socket's address */
	/* ownership: the layers are the I/O thread's from IO_ADOPT on */
	struct xport *top = conn_layers_new(l, c, io);
	if (!top)
		goto fail;
	c->xport = top;
	c->ec = engine_conn_open(m->engine, c, conn_addr(c, addr), c->port, l->creds != NULL, now);
	if (!c->ec)
		goto fail;
	/* the listener's number is its place in the configuration it was bound from */
	if (engine_conn_set_listener(c->ec, (uint16_t)(l->index + 1), l->versions,
				     l->username_as_clientid, l->mount_point) < 0)
		goto fail;
	struct ioq_rec r = {.op = IO_ADOPT, .conn = c, .len = (uint32_t)fd};
	if (iothr_post(io, &r) < 0)
		goto fail;
	/* ownership: the socket and its layers belong to the I/O thread now */
	m->n_conns++;
	m->sockets_accepted++;
	l->count++;
	c->reading = true; /* an adopted socket is read */
	c->phase_since_ms = broker_rel_ms(m, now);
	c->in_pre = true;
	conn_list_append(&m->pre, c);
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("new connection from %s:%u on port %u", addr, c->port, l->port);
	return;
fail:
	if (c->ec)
		engine_conn_closed(m->engine, c->ec, NULL, now);
	xport_free(c->xport);
	free(c);
	close(fd);
}
