/*
 * conn_input.c - what the I/O threads report about a connection, handled
 * on the engine thread (conn_drain()): input framed for the engine (the
 * one framing loop is engine_conn_input), the CONNECT held for its
 * authentication decision and the input behind it, output written
 * (backpressure lifted), the peer's EOF, the socket's end, and what a
 * layer learnt (a TLS identity, a PROXY peer, a refusal).
 */
#include "transport/conn.h"

#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "transport/broker.h"
#include "transport/conn_internal.h"
#include "transport/iothr.h"
#include "transport/latency.h"
#include "transport/outq.h"
#include "transport/rbuf.h"
#include "transport/zauth.h"

#define DRAIN_MAX 65536 /* records per conn_drain call: timers get their turn */

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
void conn_leave_pre(struct midge *m, struct conn *c)
{
	if (c->in_pre && c->ec && engine_conn_version(c->ec) != 0) {
		conn_list_remove(&m->pre, c);
		c->in_pre = false;
	}
}

void conn_frame(struct midge *m, struct conn *c, const uint8_t *data, size_t n)
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
	/* a packet was handled (all, or some before the one held): the acl
	 * answers a replayed packet used are cached now, so those of a
	 * client held again and again do not pile up */
	if (c->acl_asked && (rc != ENGINE_CONN_HELD || feed.used > 0))
		zauth_acl_settle(m, c->ec);
	if (own) {
		rbuf_consume(c->rbuf, (uint32_t)feed.used);
	} else if (conn_keep(m, c, data + feed.used, n - feed.used, feed.need) < 0) {
		return;
	}
	if (c->rbuf) {
		c->rbuf->need = (uint32_t)feed.need;
		rbuf_release_if_empty(&m->rbufs, &c->rbuf);
	}
	conn_leave_pre(m, c);
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

void conn_receive_ready(struct midge *m, struct conn *c)
{
	if (c->gone || c->ending)
		return;
	c->receive_ready = true;
	conn_mark_dirty(m, c);
}

/* After the engine took a held CONNECT's answer (accepted: 0): what
 * arrived behind it is framed, and a peer that closed meanwhile goes. */
static int conn_auth_resume(struct midge *m, struct conn *c, int accepted)
{
	if (accepted == ENGINE_CONN_HELD) {
		/* authenticated; the cluster claims the client id now and
		 * engine_io.resume comes with its answer */
		c->held = true;
		conn_mark_dirty(m, c);
		return 0;
	}
	if (accepted == 0) {
		if (c->rbuf && c->rbuf->len)
			conn_frame(m, c, c->rbuf->data, c->rbuf->len);
		conn_leave_pre(m, c); /* nothing behind the CONNECT: conn_frame did not */
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
		listener_free(l);
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

/* A verified client certificate (IO_CERT), for the auth workers. */
static void conn_on_cert(struct conn *c, char *cert)
{
	if (c->ec && !c->gone && !c->tls_cert)
		c->tls_cert = cert; /* ownership: freed with c */
	else
		free(cert);
}

/* Input chunks are given back grouped: one atomic step per chunk per
 * drain, not per read. */
struct conn_chunk_run {
	struct iothr *io;
	struct chunk *chunk;
	uint32_t n;
};

/* Gives run's chunk back to its I/O thread, waking it if it waited. */
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
			case IO_CERT: conn_on_cert(c, r.p); break;
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

