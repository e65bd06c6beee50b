/*
 * conn.h - one client connection, in two halves that two threads own.
 *
 * The engine half (conn.c, conn_input.c, conn_accept.c; the engine
 * thread): the engine connection, the
 * partial packet being assembled, the output queues, backpressure, the
 * time bound of waiting for CONNECT and of flushing before a close.
 * The socket half (sock.c and linger.c, the connection's I/O thread):
 * the socket, its poll handle, the layer stack (TCP, TLS), reading into
 * the thread's input chunks, writing the queue the engine handed over,
 * and the end: shut, linger, teardown. With midge_io_threads 0 the
 * "I/O thread" is the engine's own loop and nothing else changes.
 *
 * The halves talk only through the records of iothr.h, so neither ever
 * waits for the other, and every record is a hand-off that orders what
 * came before it (ioq.h). Fields are grouped by owner; the few a record
 * hands over say so where they are declared.
 *
 * Ending has two words. Close: the engine asks for the connection to
 * end once what is queued is written; the write side is then shut and
 * input is discarded for a while (lingering), so the peer reads the
 * DISCONNECT or CONNACK it was sent even if it is still writing.
 * Teardown: the socket is gone, now, whatever is queued.
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
struct iothr;
struct listener;
struct midge;
struct outbox;
struct rbuf;
struct xport;

#define CLOSE_GRACE_MS 5000 /* a closing connection's output gets this long */
#define LINGER_MS 1500      /* then its input is discarded this long at most */
#define LINGER_MAX 256      /* lingering connections in all; over it the oldest goes */

/*
 * 248 bytes, a 256-byte malloc chunk: an idle connection is mostly this
 * record (the poll handle is 88 bytes smaller than a uv_tcp_t; the peer
 * address is binary; buffers and output queues are pooled and held only
 * while there is something in them).
 */
struct conn {
	/* ---- the socket half: the I/O thread's ---- */
	struct iothr *io;      /* the I/O thread that polls the socket (iopoll.c) */
	struct xport *xport;   /* top of the layer stack (&tcp_xport for plain TCP) */
	int fd;                /* the socket, until it is torn down */

	/* ---- the engine half: the engine thread's ---- */
	struct engine_conn *ec;     /* NULL once the engine was told the end */
	struct listener *listener;  /* accepted from: counted there until the end */
	struct rbuf *rbuf;          /* a packet cut by the end of a read; input held behind a CONNECT */
	/* Output: q[fill] takes new output, q[fill ^ 1] is the one handed
	 * to the I/O thread (IO_WRITE) until it says written. out itself
	 * does not change while a write is in flight, so the I/O thread
	 * reads it then. */
	struct outbox *out;
	/* A verified client certificate's "subject\0fingerprint\0" (IO_CERT),
	 * kept only with auth workers; freed with the connection. */
	char *tls_cert;

	/* ---- handed over ----
	 * The phase list links and the phase start time belong to the
	 * engine (waiting for CONNECT, flushing before a close) until it
	 * posts IO_CLOSE or IO_TEARDOWN, then to the I/O thread (shutting,
	 * lingering). A connection is on at most one list. */
	struct conn *list_prev, *list_next;
	uint32_t phase_since_ms; /* broker_rel_ms() when the current time-bounded phase began */

	/* ---- set at accept, read by both ---- */
	uint8_t addr[16]; /* IPv6 (16) or IPv4 (4 bytes) address, binary */
	uint16_t port;
	uint8_t io_index; /* which I/O thread owns the socket half */
	/* IPv4/IPv6 address, or a Unix socket's (the listener's path). The
	 * socket half rewrites them when a PROXY header names the client;
	 * the engine half knows that address through its engine connection. */
	uint8_t af_known : 1, af6 : 1, af_unix : 1;
	unsigned : 0;     /* the halves' flags are separate memory locations */

	/* engine flags */
	uint32_t fill : 1;
	uint32_t dirty : 1;        /* on midge.dirty: output or a state change to pass on */
	uint32_t writing : 1;      /* an IO_WRITE is out, IO_WRITTEN not back yet */
	uint32_t in_pre : 1;       /* on midge.pre: waiting for CONNECT */
	uint32_t in_grace : 1;     /* on midge.closing: close asked, output still flushing */
	uint32_t closing : 1;      /* close asked: flush, then IO_CLOSE */
	uint32_t ending : 1;       /* IO_CLOSE or IO_TEARDOWN posted: nothing more to the socket */
	uint32_t gone : 1;         /* IO_CLOSED received: freed once off the dirty list */
	uint32_t read_stopped : 1; /* protocol error or close: input is discarded */
	uint32_t paused : 1;       /* output over the bound: not read until it drains */
	uint32_t held : 1;         /* CONNECT awaits its authentication decision, or the
				      engine holds as many acknowledgements as it may */
	uint32_t resume_input : 1; /* engine_io.resume came: frame what waits, read again */
	uint32_t eof_held : 1;     /* the peer closed after sending more behind its held CONNECT */
	uint32_t reading : 1;      /* what the I/O thread was last told (IO_READ) */
	uint32_t tear : 1;         /* teardown asked: IO_TEARDOWN to say */
	uint32_t tear_why : 3;     /* why: enum conn_why (conn_internal.h) */
	uint32_t tls_identity : 1; /* a TLS handshake proved the user name (IO_IDENTITY) */
	uint32_t close_now : 1;    /* a layer refused or ended the stream: IO_CLOSE whatever is queued */
	uint32_t acl_asked : 1;    /* an auth worker was asked an `acl` request for it (zauth_acl.c) */
	uint32_t receive_ready : 1; /* an answer about a delivery came: drain (conn_receive_ready) */
	unsigned : 0;

	/* socket flags */
	uint16_t events : 2;        /* UV_READABLE | UV_WRITABLE being polled for */
	uint16_t rd_on : 1;         /* the engine lets it be read */
	uint16_t wr_busy : 1;       /* writing the handed queue, waiting for writable */
	uint16_t shutting : 1;      /* IO_CLOSE: our side is being shut */
	uint16_t lingering : 1;     /* write side shut, input discarded */
	uint16_t read_pending : 1;  /* a layer holds input the poller cannot see */
	uint16_t starved : 1;       /* no input chunk: waits for one */
	uint16_t flush_wait : 1;    /* a layer holds output (TLS records): waiting for writable */
	uint16_t eof : 1;           /* the peer's EOF was read: IO_EOF posted, no more reads */
	uint16_t torn : 1;          /* uv_close called, IO_CLOSED posted */
	uint16_t close_done : 1;    /* libuv's close callback has run */
	uint16_t released : 1;      /* IO_RELEASE came: freed by the close callback */
	uint16_t registered : 1;    /* in the thread's epoll set */
};

/* ---- the engine half (conn.c, conn_input.c, conn_accept.c) ---- */

/* Takes over fd, just accepted on l from ss: refuses it (max_connections,
 * shutdown) or opens its layers and engine connection and hands the
 * socket to an I/O thread. */
void conn_accept(struct listener *l, int fd, const struct sockaddr_storage *ss);

/* Queues head (copied) and tail (referenced) on c; see engine_io.send. */
int conn_send(struct midge *m, struct conn *c, const uint8_t *head, size_t head_len,
	      struct frame *tail, bool droppable);
/* The decision on c's held CONNECT (engine_conn_auth_done(): 0 accepts,
 * a reason code refuses): on acceptance the input that arrived behind the
 * CONNECT is framed and reading resumes. For authentication sources that
 * answer later (ENGINE_AUTH_PENDING). Returns 0 when the engine accepted
 * the CONNECT, -1 otherwise. */
int conn_auth_done(struct midge *m, struct conn *c, int rc);
/* The answer to one step of c's enhanced authentication
 * (engine_conn_auth_step()): before CONNACK as conn_auth_done (a
 * "continue" reads the client's next AUTH); after, the engine sends AUTH
 * or DISCONNECT. Returns 0 when c goes on, -1 otherwise. */
int conn_auth_step(struct midge *m, struct conn *c, int rc, const struct midge_str *data);
/* engine_io.resume: c may be read again (the acknowledgements it held
 * went out). Deferred to the next flush at the top of the loop, outside
 * the engine. */
void conn_resume(struct midge *m, struct conn *c);
/* An answer about a delivery to c came (engine_conn_receive_ready): the
 * engine is told from the top of the loop, never inside a callback of
 * its own. */
void conn_receive_ready(struct midge *m, struct conn *c);
/* Close c: stop reading, flush, shut the write side, linger. */
void conn_close(struct midge *m, struct conn *c);
/* The socket goes now (the engine is told at once). */
void conn_teardown(struct midge *m, struct conn *c);

/* Whether a TLS handshake proved c's user name (use_identity_as_username,
 * use_subject_as_username, a PSK identity): that is the authentication. */
static inline bool conn_tls_authenticated(const struct conn *c)
{
	return c->tls_identity;
}

/* Passes every connection's news to its I/O thread (output, reading on or
 * off, the end). top_level is false when the caller may be inside the
 * engine: the engine is then not told of ends until the next pass. */
void conn_flush_dirty(struct midge *m, bool top_level);
/* Handles what the I/O threads reported (input, output written, ends).
 * Returns how many records it handled. */
int conn_drain(struct midge *m);
/* Tick: connections past connect_timeout without CONNECT, and closing
 * ones past CLOSE_GRACE_MS, are torn down. */
void conn_expire(struct midge *m, uint64_t now);

/* c's peer address as text (in buf, or a Unix socket's path), "" when it
 * is not known. For the socket half's log lines (the engine's name the
 * client as its engine connection knows it). */
const char *conn_addr(const struct conn *c, char buf[INET6_ADDRSTRLEN]);

/* ---- the socket half (sock.c, linger.c), on c's I/O thread ---- */

/* The engine's records, one at a time (iothr.c dispatches them). */
void sock_adopt(struct iothr *io, struct conn *c, int fd);
void sock_write(struct iothr *io, struct conn *c);
void sock_set_reading(struct iothr *io, struct conn *c, bool on);
void sock_close(struct iothr *io, struct conn *c);
void sock_teardown(struct iothr *io, struct conn *c, const char *why);
void sock_release(struct iothr *io, struct conn *c);
/* Reads the connections whose layers hold input. */
void sock_read_pending(struct iothr *io);
/* Input chunks came back: the connections that waited for one are read. */
void sock_retry_starved(struct iothr *io);
/* Every socket of the thread's loop goes now (shutdown). */
void sock_teardown_all(struct iothr *io, const char *why);

/* linger.c */
void sock_shut(struct iothr *io, struct conn *c);
void sock_linger_read(struct iothr *io, struct conn *c);
/* Tears down every lingering connection of io (descriptors are short;
 * for_good: shutting down, none lingers from now on). Returns how many. */
int sock_linger_drop(struct iothr *io, bool for_good);
void sock_poll_update(struct iothr *io, struct conn *c);
/* What the poller saw on c: status < 0 an error on the socket, else
 * events UV_READABLE | UV_WRITABLE among those polled for. */
void sock_on_poll(struct iothr *io, struct conn *c, int status, int events);
/* c's socket is closed and out of the poller, nothing on the stack holds
 * it: freed now if the engine released it too. */
void sock_on_closed(struct iothr *io, struct conn *c);

/* The I/O thread that owns c's socket (valid once adopted, on it). */
static inline struct iothr *sock_io(const struct conn *c)
{
	return c->io;
}

#endif
