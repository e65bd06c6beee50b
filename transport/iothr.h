/*
 * iothr.h - I/O threads: each owns the sockets of some connections and
 * their layer stacks (read, TLS, writev, the end of a connection), on a
 * libuv loop of its own. The engine thread owns all MQTT state; the two
 * exchange records (ioq.h), one wake-up per batch each way.
 *
 * midge_io_threads 0 puts the one "I/O thread" on the engine's own loop
 * (inline): the same records, handed over in the check phase instead of
 * across threads, so there is one code path whatever the count.
 *
 * Records from the engine to an I/O thread (struct ioq_rec .op):
 *   IO_ADOPT     conn, len = fd: poll it, read it
 *   IO_WRITE     conn: write out->q[out->wq] to the end, then IO_WRITTEN
 *   IO_READ      conn, flag = on: whether the engine wants its input
 *   IO_CLOSE     conn: flush the layers, shut our side, linger
 *   IO_TEARDOWN  conn, p = why (a static string): the socket goes now
 *   IO_RELEASE   conn: the engine is done with it; free it
 *   IO_LINGER_DROP flag: every lingering socket goes (out of descriptors);
 *                flag 1: and none lingers from now on (shutting down)
 *   IO_TEARDOWN_ALL p = why: every socket goes (shutdown)
 *   IO_STOP      the thread ends once every socket is closed
 * and back to the engine:
 *   IO_INPUT     conn, p = chunk, q = bytes, len: input read
 *   IO_WRITTEN   conn: the handed queue is written
 *   IO_EOF       conn: the peer closed its side (nothing is read after it)
 *   IO_CLOSED    conn, p = why: the socket is gone; nothing more comes for conn
 *   IO_IDENTITY  conn, p = malloc'd name or NULL: a TLS client's verified name
 *   IO_PEER      conn, p = malloc'd struct conn_peer: what a PROXY header said
 *   IO_CERT      conn, p = malloc'd "subject\0fingerprint\0" (subject "" when
 *                unwritable): a TLS client's verified certificate, for the
 *                auth workers' requests
 *   IO_REFUSED   conn, flag = orderly: a layer refused the peer (logged) or
 *                ended its stream in order (a WebSocket Close, a file served);
 *                nothing more is read, the engine closes (the layer's answer
 *                is flushed before our FIN)
 */
#ifndef MIDGE_TRANSPORT_IOTHR_H
#define MIDGE_TRANSPORT_IOTHR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "transport/chunk.h"
#include "transport/conn.h"
#include "transport/ioq.h"
#include "transport/rbuf.h"

enum iothr_op {
	IO_ADOPT = 1,
	IO_WRITE,
	IO_READ,
	IO_CLOSE,
	IO_TEARDOWN,
	IO_RELEASE,
	IO_LINGER_DROP,
	IO_TEARDOWN_ALL,
	IO_STOP,
	IO_INPUT,
	IO_WRITTEN,
	IO_EOF,
	IO_CLOSED,
	IO_IDENTITY,
	IO_PEER,
	IO_REFUSED,
	IO_CERT,
};

/* IO_PEER: the client as a PROXY header names it. */
struct conn_peer {
	uint16_t port;
	char *identity;  /* the certificate CN the header vouches for, or NULL */
	char text[];     /* the address as text ("" for PROXY LOCAL: the socket's stays) */
};

/* Connections to come back to (an array: no link in struct conn). */
struct conn_vec {
	struct conn **v;
	int n, cap;
};

struct iothr {
	struct midge *m;
	uv_loop_t *loop;        /* own_loop, or the engine's loop when inline */
	uv_loop_t own_loop;
	uv_thread_t thread;
	uv_async_t wake;        /* the engine posted records (threaded only) */
	uv_check_t check;       /* end of a pass: pending reads, wake the engine */
	uv_timer_t linger_timer;
	struct ioq in;          /* engine -> this thread */
	struct ioq out;         /* this thread -> engine */
	struct chunk_pool chunks;
	struct rbuf_pool rbufs; /* the layers' buffers (TLS ciphertext) */
	struct conn_list lingering; /* shutting or lingering, oldest first */
	struct conn_vec pending; /* to read without waiting for the poller */
	struct conn_vec starved; /* to read once an input chunk comes back */
	uv_idle_t busy;          /* reads pending: the next poll must not block */
	uv_poll_t epoll_watch;   /* epfd, on the loop (iopoll.c) */
	int epfd;                /* the sockets' epoll set */
	struct conn **by_fd;     /* the thread's connections by descriptor */
	int by_fd_cap;
	struct conn_vec closed;  /* torn down this pass: closed once the pass is over */
	uint64_t out_pushed;    /* out.pushed when the engine was last woken */
	uint64_t in_kicked;     /* in.pushed when this thread was last woken */
	int index;
	int linger_max;         /* LINGER_MAX shared out over the threads */
	bool inline_mode;
	bool stopping;          /* IO_STOP: exit once the loop is empty */
	bool no_linger;         /* shutting down: closes do not linger */
	bool running;
};

/* Starts n I/O threads (0: one inline on m's loop). Returns 0 or -1
 * after logging why. */
int iothr_start(struct midge *m, int n);
/* Ends them: every socket is torn down, each thread's last records are
 * handled by conn_drain() on the engine side. */
void iothr_stop(struct midge *m);

/* The engine side: posts r to io's queue (the wake-up comes with
 * iothr_kick). Returns 0 or -1 on OOM. */
int iothr_post(struct iothr *io, const struct ioq_rec *r);
/* Wakes every I/O thread the engine posted to since the last kick; an
 * inline one handles its records now. Returns how many records were
 * handled inline. */
int iothr_kick_all(struct midge *m);
/* Every lingering socket goes (accept ran out of descriptors; for_good:
 * the broker shuts down, and nobody lingers any more). Returns how many
 * went now (inline; threads do it when they wake). */
int iothr_linger_drop(struct midge *m, bool for_good);
/* Every socket goes now (shutdown grace over). */
void iothr_teardown_all(struct midge *m, const char *why);

/* The socket side: posts r to the engine (woken at the end of the pass). */
void iothr_report(struct iothr *io, const struct ioq_rec *r);

/* iopoll.c: the thread's sockets in one epoll set of its own. */
int iopoll_init(struct iothr *io);
void iopoll_close(struct iothr *io);
void iopoll_free(struct iothr *io);
int iopoll_add(struct iothr *io, struct conn *c, int fd);
int iopoll_set(struct iothr *io, struct conn *c, unsigned want);
void iopoll_remove(struct iothr *io, struct conn *c);
void iopoll_flush_closed(struct iothr *io);
void iopoll_each(struct iothr *io, void (*fn)(struct iothr *, struct conn *, void *), void *arg);
/* Queues c to be read without waiting for the poller (or, starved, when
 * an input chunk comes back). */
void iothr_want_read(struct iothr *io, struct conn *c);

/* The number of I/O threads midge_io_threads "auto" means here. */
int iothr_auto_count(void);

#endif
