/*
 * conn.h - one client connection: its socket, its layer stack, its
 * receive buffer and output, and how it ends.
 *
 * Ending has two words. Close: the engine (or the broker) asks for the
 * connection to end once what is queued is written; the write side is
 * then shut and input is discarded for a while (lingering), so the peer
 * can read the DISCONNECT or CONNACK it was sent even if it is still
 * writing. Teardown: the socket is gone, now, whatever is queued.
 */
#ifndef MIDGE_TRANSPORT_CONN_H
#define MIDGE_TRANSPORT_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "engine/frame.h"
#include "transport/broker.h"

struct engine_conn;
struct listener;
struct midge;
struct outbox;
struct rbuf;
struct xport;

#define CLOSE_GRACE_MS 5000 /* a closing connection's output gets this long */
#define LINGER_MS 1500      /* then its input is discarded this long at most */
#define LINGER_MAX 256      /* lingering connections; over it the oldest goes */

/*
 * The transport reads and writes the socket itself (through the layer
 * stack) and libuv only polls it: a uv_poll_t is 88 bytes smaller than a
 * uv_tcp_t, and an idle connection is mostly this record. Fields are
 * ordered by size: 248 bytes, a 256-byte malloc chunk.
 */
struct conn {
	/* first: poll.data is not needed to find the conn, so it holds the
	 * struct listener accepted from (NULL once the listener is gone);
	 * poll.poll_cb == conn_on_poll tells a connection in uv_walk */
	uv_poll_t poll;
	struct engine_conn *ec; /* NULL once the engine was told the end */
	struct conn *list_prev, *list_next; /* on midge.pre, .closing or .lingering */
	struct conn *dirty_next;
	struct rbuf *rbuf;    /* the top layer's bytes not yet framed */
	struct outbox *out;
	struct xport *xport;  /* top of the layer stack (&tcp_xport for plain TCP) */
	const char *why;      /* why the socket closes, for engine_conn_closed */
	/* broker_rel_ms() when the connection entered its current time-bounded
	 * phase: waiting for CONNECT (in_pre, connect_timeout), flushing a
	 * close (in_grace, CLOSE_GRACE_MS) or lingering (LINGER_MS). A
	 * connection is in at most one of them, so one time serves all three. */
	uint32_t phase_since_ms;
	uint8_t addr[16]; /* binary: text only when logged (saves 30 bytes a connection) */
	uint16_t port;
	uint8_t fill : 1;         /* out->q[fill] takes new output */
	uint8_t in_pre : 1, dirty : 1;
	uint8_t closing : 1;      /* close asked: flush, shut, linger */
	uint8_t in_grace : 1;     /* on midge.closing */
	uint8_t writing : 1;      /* output waits for the socket to be writable */
	uint8_t read_stopped : 1; /* protocol error or close: never read again */
	uint8_t paused : 1;       /* output over the bound: read again once drained */
	uint8_t events : 2;       /* UV_READABLE | UV_WRITABLE being polled for */
	uint8_t af_known : 1, af6 : 1; /* addr holds an IPv6 (16) or IPv4 (4 bytes) address */
	uint8_t lingering : 1;    /* write side shut, input discarded */
	uint8_t read_pending : 1; /* a layer holds input the poller cannot see */
	uint8_t held : 1;         /* CONNECT awaits its authentication decision, or the
				     engine holds as many acknowledgements as it may */
	uint8_t resume_input : 1; /* engine_io.resume came: frame what waits, read again */
};

/* Takes over fd, just accepted on l from ss: refuses it (max_connections,
 * shutdown) or opens its layers and engine connection and polls it. */
void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *ss);

/* Queues head (copied) and tail (referenced) on c; see engine_io.send. */
int conn_send(struct conn *c, const uint8_t *head, size_t head_len, struct frame *tail,
	      bool droppable);
/* The decision on c's held CONNECT (engine_conn_auth_done(): 0 accepts,
 * a reason code refuses): on acceptance the input that arrived behind the
 * CONNECT is framed and reading resumes. For authentication sources that
 * answer later (ENGINE_AUTH_PENDING). */
void conn_auth_done(struct conn *c, int rc);
/* engine_io.resume: c may be read again (the acknowledgements it held
 * went out). Deferred to the next flush pass, outside the engine. */
void conn_resume(struct conn *c);
/* Close c: stop reading, flush, shut the write side, linger. */
void conn_close(struct conn *c);
/* The socket goes now; the engine hears it from the close callback. */
void conn_teardown(struct conn *c, const char *why);

/* Flushes every connection with new output (and reads those whose layer
 * holds input) until none is left. may_read is false when the caller may
 * be inside the engine: reads then wait for the next loop pass. */
void conn_flush_dirty(struct midge *m, bool may_read);
/* Tells the engine about connections that started lingering (from a
 * top-level callback only). Returns how many. */
int conn_lingering_notify(struct midge *m);
/* Tears down every lingering connection (descriptors are short).
 * Returns how many. */
int conn_linger_drop(struct midge *m);
/* Tick: connections past connect_timeout without CONNECT, and closing
 * ones past CLOSE_GRACE_MS, are torn down. */
void conn_expire(struct midge *m, uint64_t now);
/* Every connection: forget its listener / tear it down. */
void conn_forget_listeners(struct midge *m);
void conn_teardown_all(struct midge *m, const char *why);

/* ---- shared by conn.c and linger.c, the two halves of a connection ---- */

/* The broker of c: its loop is the one embedded in struct midge (one
 * pointer less per connection than keeping it). */
static inline struct midge *conn_midge(const struct conn *c)
{
	return (struct midge *)(void *)((char *)c->poll.loop - offsetof(struct midge, loop));
}

/* The socket of c, -1 once it is torn down. */
static inline int conn_fd(const struct conn *c)
{
	uv_os_fd_t fd;
	return uv_fileno((const uv_handle_t *)&c->poll, &fd) == 0 ? fd : -1;
}

static inline bool conn_is_closed(const struct conn *c)
{
	return uv_is_closing((const uv_handle_t *)&c->poll);
}

static inline bool conn_can_read(const struct conn *c)
{
	return c->ec && !c->read_stopped && !c->paused && !c->held && !c->closing && !c->lingering &&
	       !conn_is_closed(c);
}

/* conn.c */
void conn_on_poll(uv_poll_t *h, int status, int events);
void conn_poll_update(struct conn *c);
void conn_mark_dirty(struct conn *c);
void conn_stop_reading(struct conn *c);
uint64_t conn_out_bytes(const struct conn *c);
/* c's peer address as text into buf, "" when it is not known. */
const char *conn_addr(const struct conn *c, char buf[INET6_ADDRSTRLEN]);

/* linger.c */
void conn_pre_enter(struct conn *c, uint64_t now);
void conn_pre_leave(struct conn *c);
/* Shuts our side (all written); then lingers, or waits for writable. */
void conn_shut(struct conn *c);
void conn_linger_read(struct conn *c);

#endif
