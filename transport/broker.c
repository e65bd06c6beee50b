/*
 * broker.c - the libuv loop that drives the engine: listeners, connections
 * (receive buffers, output queues, TLS), timers, signals, $SYS, and the
 * embedding API of include/midge.h.
 *
 * One loop thread owns everything here. Connections are freed only from
 * libuv close callbacks, so an engine callback (send, close) never sees a
 * connection disappear under it.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "codec/codec.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "midge.h"
#include "transport/broker.h"
#include "transport/config.h"
#include "transport/log.h"
#include "transport/passwd.h"
#include "transport/tls.h"

#define RBUF_SIZE 4096       /* pooled receive buffer; larger ones are per packet */
#define RBUF_POOL_MAX 64     /* idle buffers kept for reuse (256 KiB) */
#define OUTBOX_POOL_MAX 64   /* idle outboxes kept for reuse */
#define OUTQ_KEEP_BUF 1024   /* an outq keeps a copy buffer up to this size ... */
#define OUTQ_KEEP_SEGS 16    /* ... and a segment array up to this many */
#define SHUTDOWN_GRACE_MS 3000
#define CLOSE_GRACE_MS 5000
#define READ_MAX_PER_WAKEUP (128u * 1024u) /* then other sockets get their turn */
#define READS_PER_WAKEUP 32
#define ACCEPTS_PER_WAKEUP 128
#define ACCEPT_PAUSE_MS 100  /* a listener out of file descriptors rests this long */
#define LISTEN_BACKLOG 4096  /* the kernel caps it at net.core.somaxconn */
#if defined(IOV_MAX) && IOV_MAX < 1024
#define CONN_IOV IOV_MAX
#else
#define CONN_IOV 1024
#endif

/* One piece of output: bytes of the queue's own buffer (f == NULL, at off)
 * or a referenced frame. */
struct outseg {
	struct frame *f;
	uint32_t off;
	uint32_t len;
};

struct outq {
	struct outseg *segs;
	uint32_t n, cap;
	uint8_t *buf;
	uint32_t blen, bcap;
	uint64_t bytes;
};

struct listener;

/* Bytes read and not yet decoded; its bookkeeping is in it, so a
 * connection without one (an idle one) pays only the pointer. */
struct rbuf {
	uint32_t len, cap; /* bytes in data, room in data */
	uint32_t need;     /* size of the packet being assembled, 0 if unknown */
	uint8_t data[];
};

/* Output of a connection: q[qi] fills while q[qi ^ 1] is being written
 * (the socket took part of it and the rest waits for it to be writable).
 * Allocated on the first send and pooled once everything is written, so
 * an idle connection holds none. */
struct outbox {
	struct outq q[2];
	uint32_t wseg, woff; /* how far q[qi ^ 1] is written */
};

/* TLS state, only for connections of a TLS listener. */
struct conn_tls {
	gnutls_session_t s;
	struct tls_creds *creds;
	struct rbuf *pbuf; /* plaintext */
	uint32_t roff; /* ciphertext of conn.rbuf GnuTLS has taken */
	bool handshaken, bye_sent;
	struct outq plain; /* not yet encrypted */
};

/*
 * One client socket. The transport reads and writes the socket itself and
 * libuv only polls it (a uv_poll_t is 88 bytes smaller than a uv_tcp_t,
 * and an idle connection is mostly this record). Fields are ordered by
 * size: 248 bytes, a 256-byte malloc chunk.
 */
struct conn {
	/* first: poll.data is not needed to find the conn, so it holds the
	 * struct listener accepted from (NULL once the listener is gone);
	 * poll.poll_cb == conn_on_poll tells a connection in uv_walk */
	uv_poll_t poll;
	struct engine_conn *ec;
	struct conn *pre_prev, *pre_next; /* waiting for CONNECT, oldest first */
	struct conn *dirty_next;
	struct rbuf *rbuf; /* socket bytes (ciphertext for TLS) */
	struct outbox *out;
	struct conn_tls *tls;
	const char *why; /* why the socket closes, for engine_conn_closed */
	/* broker_rel_ms() when the socket was accepted (while in_pre), then
	 * when the engine asked to close it (once grace: output gets a grace
	 * period; a closing connection leaves the pre list) */
	uint32_t at;
	uint8_t addr[16]; /* binary: text only when logged (saves 30 bytes a connection) */
	uint16_t port;
	uint8_t qi : 1;
	uint8_t in_pre : 1, dirty : 1, closing : 1, grace : 1;
	uint8_t writing : 1;      /* q[qi ^ 1] waits for the socket to be writable */
	uint8_t read_stopped : 1; /* protocol error or close: never read again */
	uint8_t paused : 1;       /* output over the bound: read again once drained */
	uint8_t events : 2;       /* UV_READABLE | UV_WRITABLE being polled for */
	uint8_t af_known : 1, af6 : 1; /* addr holds an IPv6 (16) or IPv4 (4 bytes) address */
};

struct listener {
	uv_poll_t poll; /* first: the close callback frees the listener */
	struct midge *m;
	struct listener *next;
	struct tls_creds *creds; /* NULL: plain TCP */
	int fd;
	int index; /* in conf.listeners */
	int max_connections;
	int count;
	uint16_t port;
	bool paused; /* out of file descriptors: not polled until accept_pause fires */
	char addr[INET6_ADDRSTRLEN];
};

struct sys_cache {
	double load[3];
	uint64_t last;
};

struct midge {
	uv_loop_t loop;
	struct conf conf;
	char *conf_path;
	struct engine *engine;
	struct hooks *hooks;
	struct passwd_db *passwd;
	struct listener *listeners;
	struct conn *pre_head, *pre_tail;
	struct conn *dirty;
	uv_check_t flush_check;
	uv_timer_t tick;
	uv_timer_t grace;
	uv_timer_t accept_pause;
	uv_async_t stop_async;
	uv_signal_t sig_int, sig_term, sig_hup;
	struct rbuf *pool[RBUF_POOL_MAX];
	int pool_n;
	struct outbox *obox_pool[OUTBOX_POOL_MAX];
	int obox_n;
	int n_conns;
	int n_closing; /* connections waiting for their output before closing */
	uint64_t started_ms;
	uint64_t last_sys_ms;
	uint64_t last_hooks_check_ms;
	uint64_t hooks_dropped_logged; /* hooks_dropped() when last logged */
	uint64_t accept_error_logged_ms;
	struct sys_cache sys_load[6];
	char *sys_last[40];
	atomic_int stop_requested;
	bool running, stopping, loop_ready, default_listen, verbose;
};

/* The broker of c: its loop is the one embedded in struct midge (one
 * pointer less per connection than keeping it). */
static struct midge *conn_midge(const struct conn *c)
{
	return (struct midge *)((char *)c->poll.loop - offsetof(struct midge, loop));
}

/* The socket of c, -1 once it is closing. */
static int conn_fd(const struct conn *c)
{
	uv_os_fd_t fd;
	return uv_fileno((const uv_handle_t *)&c->poll, &fd) == 0 ? fd : -1;
}

static bool conn_is_closed(const struct conn *c)
{
	return uv_is_closing((const uv_handle_t *)&c->poll);
}

/* c's peer address as text into buf, "" when it is not known. */
static const char *conn_addr(const struct conn *c, char buf[INET6_ADDRSTRLEN])
{
	buf[0] = '\0';
	if (c->af_known && !inet_ntop(c->af6 ? AF_INET6 : AF_INET, c->addr, buf, INET6_ADDRSTRLEN))
		buf[0] = '\0';
	return buf;
}

static uint64_t broker_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds since the broker started, for the connection timestamps
 * (32 bits: they only ever measure seconds between two of them). */
static uint32_t broker_rel_ms(const struct midge *m, uint64_t now)
{
	return (uint32_t)(now - m->started_ms);
}

/* ---- receive buffers ---------------------------------------------------- */

/* Pooled buffers are RBUF_SIZE bytes in all, bookkeeping included. */
#define RBUF_CAP ((uint32_t)(RBUF_SIZE - sizeof(struct rbuf)))

static struct rbuf *rbuf_get(struct midge *m, uint32_t size)
{
	struct rbuf *b;
	uint32_t cap = RBUF_CAP;
	if (size <= RBUF_CAP && m->pool_n > 0)
		b = m->pool[--m->pool_n];
	else if (size <= RBUF_CAP)
		b = malloc(RBUF_SIZE);
	else
		b = malloc(sizeof(*b) + (cap = size));
	if (b) {
		b->len = b->need = 0;
		b->cap = cap;
	}
	return b;
}

static void rbuf_put(struct midge *m, struct rbuf *b)
{
	if (!b)
		return;
	if (b->cap == RBUF_CAP && m->pool_n < RBUF_POOL_MAX)
		m->pool[m->pool_n++] = b;
	else
		free(b);
}

/* Makes room in *pb for at least one more byte, and for `need` bytes in
 * all (the packet being assembled). Returns 0 or -1 on OOM. */
static int rbuf_reserve(struct midge *m, struct rbuf **pb, uint32_t need)
{
	struct rbuf *b = *pb;
	if (!b) {
		*pb = rbuf_get(m, need > 1 ? need : 1);
		return *pb ? 0 : -1;
	}
	uint32_t want = need > b->len + 1 ? need : b->len + 1;
	if (b->cap >= want)
		return 0;
	uint32_t ncap = b->cap * 2 > want ? b->cap * 2 : want;
	if (need && ncap > need && need > b->cap)
		ncap = need;
	struct rbuf *nb = malloc(sizeof(*nb) + ncap);
	if (!nb)
		return -1;
	nb->len = b->len;
	nb->need = b->need;
	nb->cap = ncap;
	memcpy(nb->data, b->data, b->len);
	rbuf_put(m, b);
	*pb = nb;
	return 0;
}

/* Idle connections hold no receive buffer. */
static void rbuf_release_if_empty(struct midge *m, struct rbuf **pb)
{
	if (*pb && (*pb)->len == 0) {
		rbuf_put(m, *pb);
		*pb = NULL;
	}
}

/* ---- output queues ------------------------------------------------------ */

/*
 * Empties q. keep: small buffers stay with q for its next use (q lives in
 * an outbox, which goes back to the broker's pool once the connection is
 * idle, so an idle connection still holds no output memory).
 */
static void outq_reset(struct outq *q, bool keep)
{
	for (uint32_t i = 0; i < q->n; i++)
		frame_unref(q->segs[i].f);
	q->n = 0;
	q->blen = 0;
	q->bytes = 0;
	if (!keep || q->bcap > OUTQ_KEEP_BUF) {
		free(q->buf);
		q->buf = NULL;
		q->bcap = 0;
	}
	if (!keep || q->cap > OUTQ_KEEP_SEGS) {
		free(q->segs);
		q->segs = NULL;
		q->cap = 0;
	}
}

static void outq_free(struct outq *q)
{
	outq_reset(q, false);
	memset(q, 0, sizeof(*q));
}

/*
 * Outboxes are pooled rather than freed: every CONNACK, SUBACK or PINGRESP
 * of an otherwise idle connection would otherwise allocate and free an
 * outbox and its buffers between the allocations of longer-lived
 * connections, and the holes they leave fragment the heap (measured:
 * about 70 bytes of RSS per idle connection).
 */
static void outbox_release(struct midge *m, struct outbox *o)
{
	if (!o)
		return;
	if (m->obox_n < OUTBOX_POOL_MAX) {
		outq_reset(&o->q[0], true);
		outq_reset(&o->q[1], true);
		m->obox_pool[m->obox_n++] = o;
		return;
	}
	outq_free(&o->q[0]);
	outq_free(&o->q[1]);
	free(o);
}

static int outq_seg(struct outq *q, struct outseg **out)
{
	if (q->n == q->cap) {
		uint32_t ncap = q->cap ? q->cap * 2 : 4;
		struct outseg *s = realloc(q->segs, ncap * sizeof(*s));
		if (!s)
			return -1;
		q->segs = s;
		q->cap = ncap;
	}
	*out = &q->segs[q->n++];
	return 0;
}

/* Copies p[0..len) to the end of the queue. */
static int outq_copy(struct outq *q, const uint8_t *p, size_t len)
{
	struct outseg *s;
	if (len == 0)
		return 0;
	if (q->blen + len > q->bcap) {
		size_t ncap = q->bcap ? q->bcap : 256;
		while (ncap < q->blen + len)
			ncap *= 2;
		uint8_t *nb = realloc(q->buf, ncap);
		if (!nb)
			return -1;
		q->buf = nb;
		q->bcap = (uint32_t)ncap;
	}
	memcpy(q->buf + q->blen, p, len);
	/* Segments hold offsets, so a realloc above moved nothing they see. */
	if (q->n > 0 && !q->segs[q->n - 1].f && q->segs[q->n - 1].off + q->segs[q->n - 1].len == q->blen) {
		q->segs[q->n - 1].len += (uint32_t)len;
	} else {
		if (outq_seg(q, &s) < 0)
			return -1;
		s->f = NULL;
		s->off = q->blen;
		s->len = (uint32_t)len;
	}
	q->blen += (uint32_t)len;
	q->bytes += len;
	return 0;
}

/* ownership: takes a new reference on f. */
static int outq_frame(struct outq *q, struct frame *f)
{
	struct outseg *s;
	if (!f || f->len == 0)
		return 0;
	if (outq_seg(q, &s) < 0)
		return -1;
	s->f = frame_ref(f);
	s->off = 0;
	s->len = f->len;
	q->bytes += f->len;
	return 0;
}

static const uint8_t *outseg_ptr(const struct outq *q, const struct outseg *s)
{
	return s->f ? s->f->data + s->off : q->buf + s->off;
}

static uint64_t conn_out_bytes(const struct conn *c)
{
	return (c->out ? c->out->q[0].bytes + c->out->q[1].bytes : 0) +
	       (c->tls ? c->tls->plain.bytes : 0);
}

/* The queue new output goes to, or NULL on OOM. */
static struct outq *conn_outq(struct conn *c)
{
	if (!c->out) {
		struct midge *m = conn_midge(c);
		c->out = m->obox_n > 0 ? m->obox_pool[--m->obox_n] : calloc(1, sizeof(*c->out));
		if (!c->out)
			return NULL;
	}
	return &c->out->q[c->qi];
}

static void conn_outbox_trim(struct conn *c)
{
	if (c->out && !c->writing && c->out->q[0].n == 0 && c->out->q[1].n == 0) {
		outbox_release(conn_midge(c), c->out);
		c->out = NULL;
	}
}

/* ---- connections -------------------------------------------------------- */

static void conn_flush(struct conn *c);
static void conn_teardown(struct conn *c, const char *why);
static void conn_on_poll(uv_poll_t *h, int status, int events);

static void conn_mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->dirty_next = conn_midge(c)->dirty;
	conn_midge(c)->dirty = c;
}

static void broker_flush_dirty(struct midge *m)
{
	/* Flushing can dirty more connections (a write error closes one,
	 * whose will goes to others), so drain until empty. */
	int rounds = 0;
	while (m->dirty && rounds++ < 8) {
		struct conn *list = m->dirty;
		m->dirty = NULL;
		while (list) {
			struct conn *c = list;
			list = c->dirty_next;
			c->dirty = false;
			c->dirty_next = NULL;
			conn_flush(c);
		}
	}
}

static void pre_remove(struct conn *c)
{
	struct midge *m = conn_midge(c);
	if (!c->in_pre)
		return;
	if (c->pre_prev)
		c->pre_prev->pre_next = c->pre_next;
	else
		m->pre_head = c->pre_next;
	if (c->pre_next)
		c->pre_next->pre_prev = c->pre_prev;
	else
		m->pre_tail = c->pre_prev;
	c->in_pre = false;
	c->pre_prev = c->pre_next = NULL;
}

static void pre_append(struct conn *c)
{
	struct midge *m = conn_midge(c);
	c->pre_prev = m->pre_tail;
	c->pre_next = NULL;
	if (m->pre_tail)
		m->pre_tail->pre_next = c;
	else
		m->pre_head = c;
	m->pre_tail = c;
	c->in_pre = true;
}

/* Whether h is a connection's poll handle (the loop also holds listeners,
 * timers, signals). */
static struct conn *conn_of_handle(uv_handle_t *h)
{
	if (h->type != UV_POLL || ((uv_poll_t *)h)->poll_cb != conn_on_poll)
		return NULL;
	return (struct conn *)h;
}

static void conn_on_close(uv_handle_t *h)
{
	struct conn *c = (struct conn *)h;
	struct midge *m = conn_midge(c);
	if (c->ec) {
		struct engine_conn *ec = c->ec;
		c->ec = NULL;
		engine_conn_closed(m->engine, ec, c->why, broker_now_ms());
	}
	pre_remove(c);
	struct listener *lis = c->poll.data;
	if (lis)
		lis->count--;
	if (c->grace)
		m->n_closing--;
	m->n_conns--;
	outbox_release(m, c->out);
	c->out = NULL;
	rbuf_put(m, c->rbuf);
	if (c->tls) {
		outq_free(&c->tls->plain);
		rbuf_put(m, c->tls->pbuf);
		if (c->tls->s)
			gnutls_deinit(c->tls->s);
		tls_creds_unref(c->tls->creds);
		free(c->tls);
	}
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
	broker_flush_dirty(m);
	if (m->stopping && m->n_conns == 0)
		uv_stop(&m->loop);
}

/* Closes the socket now, whatever is queued; the engine hears about it in
 * the close callback. */
static void conn_teardown(struct conn *c, const char *why)
{
	if (conn_is_closed(c))
		return;
	int fd = conn_fd(c);
	if (!c->why)
		c->why = why;
	c->closing = true;
	/* libuv stops polling the socket in uv_close but leaves it open:
	 * it is closed here, once, after libuv has let go of it. */
	uv_close((uv_handle_t *)&c->poll, conn_on_close);
	if (fd >= 0)
		close(fd);
}

/*
 * Polls c for what it waits for now: readable unless reading is stopped,
 * paused or closing; writable while output waits for the socket. Each
 * change costs libuv an epoll_ctl or two, so nothing is done when the
 * mask is unchanged.
 */
static void conn_poll_update(struct conn *c)
{
	if (conn_is_closed(c))
		return;
	unsigned want = (!c->read_stopped && !c->paused && !c->closing ? UV_READABLE : 0) |
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

/* A client paused for sending faster than it reads is read again once
 * its output has drained to half the bound. */
static void conn_maybe_resume(struct conn *c)
{
	if (c->paused && conn_out_bytes(c) <= conn_midge(c)->conf.max_output_bytes / 2 && !c->read_stopped &&
	    !c->closing && !conn_is_closed(c)) {
		c->paused = false;
		conn_poll_update(c);
	}
}

/* Encrypts what is queued in plain into q[qi], as few records as possible. */
static void conn_tls_encrypt(struct conn *c)
{
	struct conn_tls *t = c->tls;
	if (!t || !t->handshaken || t->plain.n == 0)
		return;
	gnutls_record_cork(t->s);
	for (uint32_t i = 0; i < t->plain.n; i++) {
		const uint8_t *p = outseg_ptr(&t->plain, &t->plain.segs[i]);
		size_t left = t->plain.segs[i].len;
		while (left > 0) {
			ssize_t n = gnutls_record_send(t->s, p, left);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				continue;
			if (n < 0) {
				outq_reset(&t->plain, false);
				conn_teardown(c, "TLS send error");
				return;
			}
			p += n;
			left -= (size_t)n;
		}
	}
	int rc;
	do
		rc = gnutls_record_uncork(t->s, GNUTLS_RECORD_WAIT);
	while (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED);
	outq_reset(&t->plain, false);
	if (rc < 0)
		conn_teardown(c, "TLS send error");
}

/*
 * Writes q[qi ^ 1] from (wseg, woff) on: one writev of up to CONN_IOV
 * segments at a time (frames are referenced, never copied) until it is
 * all written or the socket is full. Returns 1 when all is written, 0
 * when the rest waits for the socket, -1 when c was torn down.
 */
static int conn_write_out(struct conn *c)
{
	struct outbox *o = c->out;
	struct outq *q = &o->q[c->qi ^ 1];
	struct iovec iov[CONN_IOV];
	int fd = conn_fd(c);
	while (o->wseg < q->n) {
		int cnt = 0;
		size_t total = 0;
		for (uint32_t i = o->wseg; i < q->n && cnt < CONN_IOV; i++, cnt++) {
			uint32_t skip = i == o->wseg ? o->woff : 0;
			iov[cnt].iov_base = (uint8_t *)outseg_ptr(q, &q->segs[i]) + skip;
			iov[cnt].iov_len = q->segs[i].len - skip;
			total += iov[cnt].iov_len;
		}
		ssize_t n = cnt == 1 ? write(fd, iov[0].iov_base, iov[0].iov_len) : writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			conn_teardown(c, "write error");
			return -1;
		}
		size_t done = (size_t)n;
		while (done > 0) {
			uint32_t left = q->segs[o->wseg].len - o->woff;
			if (done >= left) {
				done -= left;
				o->wseg++;
				o->woff = 0;
			} else {
				o->woff += (uint32_t)done;
				done = 0;
			}
		}
		if ((size_t)n < total)
			return 0; /* the socket is full: writing again now would only get EAGAIN */
	}
	return 1;
}

/* q[qi ^ 1] is all written: its frames go, new output can be written. */
static void conn_written(struct conn *c)
{
	outq_reset(&c->out->q[c->qi ^ 1], true);
	c->writing = false;
}

/*
 * Writes q[qi] straight to the socket; what the socket does not take
 * stays in place (now q[qi ^ 1]) and is written when the socket is
 * writable, while new output fills the other queue.
 */
static void conn_flush(struct conn *c)
{
	if (conn_is_closed(c))
		return;
	conn_tls_encrypt(c);
	if (conn_is_closed(c) || c->writing)
		return;
	struct outq *q = c->out ? &c->out->q[c->qi] : NULL;
	if (!q || q->n == 0) {
		conn_outbox_trim(c);
		conn_maybe_resume(c);
		if (c->closing) {
			if (c->tls && c->tls->handshaken && !c->tls->bye_sent) {
				c->tls->bye_sent = true;
				gnutls_bye(c->tls->s, GNUTLS_SHUT_WR);
				if (c->out && c->out->q[c->qi].n > 0) {
					conn_flush(c);
					return;
				}
			}
			conn_teardown(c, NULL);
		}
		return;
	}
	c->out->wseg = 0;
	c->out->woff = 0;
	c->qi ^= 1;
	c->writing = true;
	int rc = conn_write_out(c);
	if (rc < 0)
		return;
	if (rc == 0) {
		conn_poll_update(c);
		return;
	}
	conn_written(c);
	if (c->closing) {
		conn_flush(c);
	} else {
		conn_outbox_trim(c);
		conn_maybe_resume(c);
	}
}

/* The socket can take more of q[qi ^ 1]. */
static void conn_on_writable(struct conn *c)
{
	if (c->writing) {
		int rc = conn_write_out(c);
		if (rc < 0)
			return;
		if (rc == 0)
			return; /* still full: keep polling for writable */
		conn_written(c);
		/* What queued meanwhile goes now, while the socket has room,
		 * and the poll mask changes at most once. */
		conn_flush(c);
	}
	conn_poll_update(c);
}

static void conn_stop_reading(struct conn *c)
{
	if (c->read_stopped)
		return;
	c->read_stopped = true;
	conn_poll_update(c);
}

/*
 * Hands every complete packet in buf[0..*len) to the engine and keeps the
 * incomplete rest at the start. *need becomes the size of the packet being
 * assembled (0 while its fixed header is incomplete).
 */
static void conn_decode(struct conn *c, uint8_t *buf, uint32_t *len, uint32_t *need)
{
	struct midge *m = conn_midge(c);
	uint32_t off = 0;
	uint64_t now = broker_now_ms();
	*need = 0;
	while (off < *len) {
		struct codec_frame fr;
		if (!c->ec || c->read_stopped || c->closing) {
			off = *len;
			break;
		}
		int rc = codec_frame_scan(buf + off, *len - off, engine_conn_max_packet(c->ec), &fr);
		if (rc == CODEC_PARTIAL)
			break;
		if (rc < 0) {
			engine_conn_framing_error(m->engine, c->ec, (uint8_t)-rc, now);
			conn_stop_reading(c);
			off = *len;
			break;
		}
		uint32_t total = fr.header_len + fr.remaining;
		if (*len - off < total) {
			*need = total;
			break;
		}
		rc = engine_conn_frame(m->engine, c->ec, fr.first, buf + off + fr.header_len,
				       fr.remaining, now);
		off += total;
		if (rc < 0) {
			conn_stop_reading(c);
			off = *len;
			break;
		}
	}
	if (off > 0) {
		memmove(buf, buf + off, *len - off);
		*len -= off;
	}
	if (c->in_pre && c->ec && engine_conn_version(c->ec) != 0)
		pre_remove(c);
	if (!c->paused && !c->read_stopped && conn_out_bytes(c) > m->conf.max_output_bytes) {
		/* The client sends faster than it reads its answers: stop
		 * reading until its output drains (nothing blocks the loop). */
		c->paused = true;
		conn_poll_update(c);
	}
}

static ssize_t conn_tls_pull(gnutls_transport_ptr_t ptr, void *data, size_t len)
{
	struct conn *c = ptr;
	uint32_t avail = c->rbuf ? c->rbuf->len - c->tls->roff : 0;
	if (avail == 0) {
		gnutls_transport_set_errno(c->tls->s, EAGAIN);
		return -1;
	}
	if (len > avail)
		len = avail;
	memcpy(data, c->rbuf->data + c->tls->roff, len);
	c->tls->roff += (uint32_t)len;
	return (ssize_t)len;
}

static ssize_t conn_tls_push(gnutls_transport_ptr_t ptr, const void *data, size_t len)
{
	struct conn *c = ptr;
	struct outq *q = conn_outq(c);
	if (!q || outq_copy(q, data, len) < 0) {
		gnutls_transport_set_errno(c->tls->s, ENOMEM);
		return -1;
	}
	conn_mark_dirty(c);
	return (ssize_t)len;
}

static void conn_tls_input(struct conn *c)
{
	struct midge *m = conn_midge(c);
	struct conn_tls *t = c->tls;
	if (!t->handshaken) {
		int rc = gnutls_handshake(t->s);
		if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED || (rc < 0 && !gnutls_error_is_fatal(rc)))
			goto compact;
		if (rc < 0) {
			char a[INET6_ADDRSTRLEN];
			log_notice("TLS handshake with %s:%u failed: %s", conn_addr(c, a), c->port,
				   gnutls_strerror(rc));
			conn_teardown(c, "TLS handshake failed");
			return;
		}
		t->handshaken = true;
		if (t->creds->use_identity_as_username) {
			char cn[256];
			if (tls_peer_common_name(t->s, cn, sizeof(cn)) == 0) {
				engine_conn_set_identity(c->ec, cn);
			} else {
				char a[INET6_ADDRSTRLEN];
				log_notice("client %s:%u sent no certificate common name", conn_addr(c, a),
					   c->port);
				conn_teardown(c, "no certificate identity");
				return;
			}
		}
	}
	for (int guard = 0; guard < 100000 && !c->read_stopped && !c->closing; guard++) {
		if (rbuf_reserve(m, &t->pbuf, t->pbuf ? t->pbuf->need : 0) < 0) {
			conn_teardown(c, "out of memory");
			return;
		}
		struct rbuf *p = t->pbuf;
		ssize_t n = gnutls_record_recv(t->s, p->data + p->len, p->cap - p->len);
		if (n > 0) {
			p->len += (uint32_t)n;
			conn_decode(c, p->data, &p->len, &p->need);
			continue;
		}
		if (n == 0) {
			conn_teardown(c, "connection closed by client");
			return;
		}
		if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
			break;
		if (!gnutls_error_is_fatal((int)n))
			continue;
		char a[INET6_ADDRSTRLEN];
		log_notice("TLS error from %s:%u: %s", conn_addr(c, a), c->port,
			   gnutls_strerror((int)n));
		conn_teardown(c, "TLS error");
		return;
	}
compact:
	if (t->roff > 0) {
		memmove(c->rbuf->data, c->rbuf->data + t->roff, c->rbuf->len - t->roff);
		c->rbuf->len -= t->roff;
		t->roff = 0;
	}
	rbuf_release_if_empty(m, &t->pbuf);
}

/*
 * Reads what the socket has into c's receive buffer and decodes it: until
 * a read comes back short (the socket is drained; polling is
 * level-triggered, so anything that arrives later wakes us again), but
 * at most READS_PER_WAKEUP reads and READ_MAX_PER_WAKEUP bytes, so one
 * fast sender cannot starve the others. The buffer comes from the pool
 * and goes back when it is empty: an idle connection holds none.
 */
static void conn_read(struct conn *c)
{
	struct midge *m = conn_midge(c);
	int fd = conn_fd(c);
	uint32_t total = 0;
	for (int i = 0; i < READS_PER_WAKEUP && total < READ_MAX_PER_WAKEUP; i++) {
		/* For TLS the socket buffer holds ciphertext: one record at most. */
		uint32_t need = c->tls || !c->rbuf ? 0 : c->rbuf->need;
		if (rbuf_reserve(m, &c->rbuf, need) < 0) {
			conn_teardown(c, "out of memory");
			return;
		}
		struct rbuf *b = c->rbuf;
		size_t room = b->cap - b->len;
		ssize_t n = read(fd, b->data + b->len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				conn_teardown(c, uv_strerror(uv_translate_sys_error(errno)));
			break;
		}
		if (n == 0) {
			conn_teardown(c, "connection closed by client");
			break;
		}
		b->len += (uint32_t)n;
		total += (uint32_t)n;
		if (c->tls)
			conn_tls_input(c);
		else
			conn_decode(c, b->data, &b->len, &b->need);
		if ((size_t)n < room || c->read_stopped || c->paused || c->closing || conn_is_closed(c))
			break;
	}
	if (!conn_is_closed(c))
		rbuf_release_if_empty(m, &c->rbuf);
}

static void conn_on_poll(uv_poll_t *h, int status, int events)
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
	if (events & UV_WRITABLE)
		conn_on_writable(c);
	if ((events & UV_READABLE) && !c->read_stopped && !c->paused && !c->closing && !conn_is_closed(c))
		conn_read(c);
}

/* ---- engine_io ---------------------------------------------------------- */

static int io_send(void *ctx, void *handle, const uint8_t *head, size_t head_len,
		   struct frame *tail, bool droppable)
{
	struct midge *m = ctx;
	struct conn *c = handle;
	if (!c || conn_is_closed(c))
		return -1;
	if (droppable && conn_out_bytes(c) > m->conf.max_output_bytes)
		return -1;
	struct outq *q = c->tls ? &c->tls->plain : conn_outq(c);
	if (!q || outq_copy(q, head, head_len) < 0 || outq_frame(q, tail) < 0) {
		conn_teardown(c, "out of memory");
		return -1;
	}
	conn_mark_dirty(c);
	return 0;
}

static void io_close(void *ctx, void *handle)
{
	struct conn *c = handle;
	(void)ctx;
	if (!c)
		return;
	if (!c->grace) {
		pre_remove(c); /* the grace period bounds it now */
		c->grace = true;
		c->at = broker_rel_ms(conn_midge(c), broker_now_ms());
		conn_midge(c)->n_closing++;
	}
	c->closing = true;
	conn_stop_reading(c);
	conn_mark_dirty(c);
}

static void broker_fmt_client(const struct midge_client *cl, char *buf, size_t len)
{
	if (!cl) {
		snprintf(buf, len, "broker");
		return;
	}
	if (cl->client_id.len == 0)
		snprintf(buf, len, "[%s:%u] (no client id yet)", cl->peer_addr ? cl->peer_addr : "?",
			 cl->peer_port);
	else
		snprintf(buf, len, "'%.*s' [%s:%u]",
			 (int)(cl->client_id.len > 128 ? 128 : cl->client_id.len), cl->client_id.p,
			 cl->peer_addr ? cl->peer_addr : "?", cl->peer_port);
}

/* The log type broker_log_event() writes ev under (0: never written). */
static unsigned broker_event_log_type(const struct midge_event *ev)
{
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
	case MIDGE_EV_CONNECT_REFUSED:
	case MIDGE_EV_DISCONNECT:
	case MIDGE_EV_PROTOCOL_ERROR:
		return CONF_LOG_NOTICE;
	case MIDGE_EV_SUBSCRIBE:
		return CONF_LOG_SUBSCRIBE;
	case MIDGE_EV_UNSUBSCRIBE:
		return CONF_LOG_UNSUBSCRIBE;
	case MIDGE_EV_SESSION_TAKEOVER:
	case MIDGE_EV_SESSION_EXPIRED:
		return CONF_LOG_INFO;
	case MIDGE_EV_DROP:
		return ev->u.message.drop == MIDGE_DROP_NO_SUBSCRIBERS ? 0 : CONF_LOG_DEBUG;
	default:
		return CONF_LOG_DEBUG;
	}
}

/* One log line for what a human wants to see; the rest at debug level. */
static void broker_log_event(struct midge *m, const struct midge_event *ev)
{
	char who[256];
	const struct midge_client *cl = ev->client;
	if (!m->conf.connection_messages && (ev->type == MIDGE_EV_CONNECT || ev->type == MIDGE_EV_DISCONNECT))
		return;
	/* Every event passes here: decide before formatting anything. */
	if (!log_enabled(broker_event_log_type(ev)))
		return;
	broker_fmt_client(cl, who, sizeof(who));
	switch (ev->type) {
	case MIDGE_EV_CONNECT:
		log_notice("client %s connected (protocol %u, clean %d, keepalive %u%s%.*s%s%s)", who,
			   cl ? cl->protocol : 0, ev->u.connect.clean_start, ev->u.connect.keep_alive,
			   cl && cl->username.len ? ", user '" : "",
			   cl && cl->username.len ? (int)cl->username.len : 0,
			   cl && cl->username.p ? cl->username.p : "", cl && cl->username.len ? "'" : "",
			   cl && cl->tls ? ", TLS" : "");
		break;
	case MIDGE_EV_CONNECT_REFUSED:
		log_notice("client %s refused: %s (code %u)", who,
			   ev->u.connect.why ? ev->u.connect.why : "refused", ev->u.connect.rc);
		break;
	case MIDGE_EV_DISCONNECT:
		log_notice("client %s disconnected: %s%s", who,
			   ev->u.disconnect.why ? ev->u.disconnect.why : (ev->u.disconnect.by_client ? "by client" : "closed"),
			   ev->u.disconnect.will ? " (will published)" : "");
		break;
	case MIDGE_EV_PROTOCOL_ERROR:
		log_notice("protocol error from client %s: %s (reason 0x%02x %s)", who,
			   ev->u.disconnect.why ? ev->u.disconnect.why : "", ev->u.disconnect.rc,
			   codec_rc_name(ev->u.disconnect.rc));
		break;
	case MIDGE_EV_SUBSCRIBE:
		log_msg(CONF_LOG_SUBSCRIBE, "client %s subscribed to '%.*s' (QoS %u, rc 0x%02x)", who,
			(int)ev->u.subscribe.filter.len, ev->u.subscribe.filter.p, ev->u.subscribe.qos,
			ev->u.subscribe.rc);
		break;
	case MIDGE_EV_UNSUBSCRIBE:
		log_msg(CONF_LOG_UNSUBSCRIBE, "client %s unsubscribed from '%.*s'", who,
			(int)ev->u.subscribe.filter.len, ev->u.subscribe.filter.p);
		break;
	case MIDGE_EV_SESSION_TAKEOVER:
		log_info("client %s took over an existing session", who);
		break;
	case MIDGE_EV_SESSION_EXPIRED:
		log_info("session of %s expired", who);
		break;
	case MIDGE_EV_DROP: {
		/* "to" is the receiver, empty when nobody matched: name the
		 * topic so the line says which message it was. */
		const struct midge_message *dm = ev->u.message.msg;
		bool to = ev->u.message.to.len > 0;
		/* $SYS updates nobody subscribed to are not worth a line each. */
		if (ev->u.message.drop == MIDGE_DROP_NO_SUBSCRIBERS && dm && dm->origin.len == 0)
			break;
		log_debug("message on '%.*s' from %s dropped%s%.*s%s: %s",
			  dm ? (int)dm->topic.len : 0, dm && dm->topic.p ? dm->topic.p : "", who,
			  to ? " for '" : "", to ? (int)ev->u.message.to.len : 0,
			  to ? ev->u.message.to.p : "", to ? "'" : "",
			  ev->u.message.why ? ev->u.message.why : "");
		break;
	}
	default:
		log_debug("event %s from %s", midge_event_name(ev->type) ? midge_event_name(ev->type) : "?", who);
		break;
	}
}

static void io_event(void *ctx, const struct midge_event *ev)
{
	struct midge *m = ctx;
	hooks_emit(m->hooks, ev);
	broker_log_event(m, ev);
}

static int auth_connect(void *ctx, const struct midge_client *client,
			const struct midge_str *username, const struct midge_str *password)
{
	struct midge *m = ctx;
	if (!m->passwd)
		return 0;
	if (!username || !username->p)
		return m->conf.engine.allow_anonymous ? 0 : MQTT_RC_NOT_AUTHORIZED;
	if (passwd_check(m->passwd, username->p, username->len, password ? password->p : NULL,
			 password ? password->len : 0) == 0)
		return 0;
	return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static int broker_engine_ready(struct midge *m)
{
	if (m->engine)
		return 0;
	struct engine_io io = {.ctx = m, .send = io_send, .close = io_close, .event = io_event};
	struct engine_auth auth = {.ctx = m, .connect = auth_connect, .acl = NULL};
	m->engine = engine_new(&m->conf.engine, &io, &auth);
	return m->engine ? 0 : -1;
}

/* ---- listeners ---------------------------------------------------------- */

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

/*
 * Takes over fd, a connection just accepted on l from ss: refuses it
 * (max_connections, shutdown) or opens its engine connection and polls it.
 */
static void listener_accepted(struct listener *l, int fd, const struct sockaddr_storage *ss)
{
	struct midge *m = l->m;
	char addr[INET6_ADDRSTRLEN];
	if (m->stopping) {
		close(fd);
		return;
	}
	if ((l->max_connections >= 0 && l->count >= l->max_connections) ||
	    (m->conf.max_connections >= 0 && m->n_conns >= m->conf.max_connections)) {
		struct conn tmp = {0};
		conn_set_peer(&tmp, ss);
		log_notice("connection from %s:%u refused: max_connections reached", conn_addr(&tmp, addr),
			   tmp.port);
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
	c->at = broker_rel_ms(m, now);
	if (l->creds) {
		c->tls = calloc(1, sizeof(*c->tls));
		if (!c->tls) {
			conn_teardown(c, NULL);
			return;
		}
		c->tls->creds = tls_creds_ref(l->creds);
		if (tls_session_new(c->tls->creds, &c->tls->s, c, conn_tls_push, conn_tls_pull) < 0) {
			c->tls->s = NULL;
			conn_teardown(c, NULL);
			return;
		}
	}
	c->ec = engine_conn_open(m->engine, c, conn_addr(c, addr), c->port, l->creds != NULL, now);
	if (!c->ec) {
		conn_teardown(c, NULL);
		return;
	}
	pre_append(c);
	if (log_enabled(CONF_LOG_DEBUG))
		log_debug("new connection from %s:%u on port %u", addr, c->port, l->port);
}

static void listener_on_poll(uv_poll_t *h, int status, int events);

/* Polls every listener that rested after running out of descriptors. */
static void listener_on_resume(uv_timer_t *t)
{
	struct midge *m = t->data;
	for (struct listener *l = m->listeners; l; l = l->next) {
		if (l->paused && uv_poll_start(&l->poll, UV_READABLE, listener_on_poll) == 0)
			l->paused = false;
	}
}

/*
 * accept() failed with err (not EAGAIN): out of descriptors or memory.
 * The pending connection stays in the backlog and polling is
 * level-triggered, so the listener would wake the loop again at once:
 * it stops being polled for ACCEPT_PAUSE_MS instead, and the error is
 * logged at most once a second.
 */
static void listener_pause(struct listener *l, int err)
{
	struct midge *m = l->m;
	uint64_t now = broker_now_ms();
	if (now - m->accept_error_logged_ms >= 1000) {
		m->accept_error_logged_ms = now;
		log_warn("accept on port %u: %s (%d connections open): not accepting for %d ms", l->port,
			 strerror(err), m->n_conns, ACCEPT_PAUSE_MS);
	}
	uv_poll_stop(&l->poll);
	l->paused = true;
	if (!uv_is_active((uv_handle_t *)&m->accept_pause))
		uv_timer_start(&m->accept_pause, listener_on_resume, ACCEPT_PAUSE_MS, 0);
}

/* Accepts what is pending, at most ACCEPTS_PER_WAKEUP connections: with
 * accept4 the socket is non-blocking and the peer address known in one
 * system call. */
static void listener_on_poll(uv_poll_t *h, int status, int events)
{
	struct listener *l = (struct listener *)h;
	(void)events;
	if (status < 0) {
		listener_pause(l, -status);
		return;
	}
	for (int i = 0; i < ACCEPTS_PER_WAKEUP && l->fd >= 0; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
#ifdef SOCK_NONBLOCK
		int fd = accept4(l->fd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
#else
		int fd = accept(l->fd, (struct sockaddr *)&ss, &len);
		if (fd >= 0)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			listener_pause(l, errno);
			return;
		}
		if (len > sizeof(ss))
			ss.ss_family = AF_UNSPEC;
		listener_accepted(l, fd, &ss);
	}
}

/* A listening socket on sa, TCP_NODELAY set so that every accepted
 * socket inherits it (Linux copies it: one setsockopt less per
 * connection). Returns the socket or -errno. */
static int listener_socket(const struct sockaddr *sa)
{
	int one = 1;
	socklen_t salen = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
#ifdef SOCK_NONBLOCK
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#else
	int fd = socket(sa->sa_family, SOCK_STREAM, 0);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
#endif
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (sa->sa_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 || bind(fd, sa, salen) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		int err = errno;
		close(fd);
		return -err;
	}
	return fd;
}

static int listener_bind(struct midge *m, int index, const struct sockaddr *sa,
			 struct tls_creds *creds, char *err, size_t errlen)
{
	const struct conf_listener *cl = &m->conf.listeners[index];
	struct listener *l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->m = m;
	l->index = index;
	l->max_connections = cl->max_connections;
	if (sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, l->addr, sizeof(l->addr));
	else
		uv_ip4_name((const struct sockaddr_in *)sa, l->addr, sizeof(l->addr));
	int rc = l->fd = listener_socket(sa);
	if (rc >= 0) {
		rc = uv_poll_init(&m->loop, &l->poll, l->fd);
		if (rc < 0)
			close(l->fd);
		else if ((rc = uv_poll_start(&l->poll, UV_READABLE, listener_on_poll)) < 0) {
			uv_close((uv_handle_t *)&l->poll, (uv_close_cb)free);
			close(l->fd);
			snprintf(err, errlen, "cannot listen on %s port %u: %s", l->addr, cl->port,
				 uv_strerror(rc));
			return -1;
		}
	} else {
		rc = uv_translate_sys_error(-rc);
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on %s port %u: %s", l->addr, cl->port,
			 uv_strerror(rc));
		free(l);
		return -1;
	}
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	getsockname(l->fd, (struct sockaddr *)&ss, &sslen);
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
						 : ((struct sockaddr_in *)&ss)->sin_port);
	l->creds = creds ? tls_creds_ref(creds) : NULL;
	l->next = m->listeners;
	m->listeners = l;
	log_notice("listening on %s%s%s port %u%s", sa->sa_family == AF_INET6 ? "[" : "", l->addr,
		   sa->sa_family == AF_INET6 ? "]" : "", l->port, l->creds ? " (TLS)" : "");
	return 0;
}

/* Binds one configured listener on every address its host resolves to
 * (both IPv4 and IPv6 "any" when there is no host). */
static int listener_open(struct midge *m, int index, const char *const *fallback_hosts, char *err,
			 size_t errlen)
{
	const struct conf_listener *cl = &m->conf.listeners[index];
	const char *any[] = {"0.0.0.0", "::", NULL};
	const char *one[] = {cl->host, NULL};
	const char *const *hosts = fallback_hosts ? fallback_hosts : cl->host ? one : any;
	int bound = 0;
	char port[8];
	struct tls_creds *creds = NULL;
	snprintf(port, sizeof(port), "%u", cl->port);
	/* Certificates are loaded once per listener, whatever it binds. */
	if (cl->certfile || cl->keyfile) {
		char e[400];
		creds = tls_creds_new(cl, e, sizeof(e));
		if (!creds) {
			snprintf(err, errlen, "listener on port %u: %s", cl->port, e);
			return -1;
		}
	}
	for (int i = 0; hosts[i]; i++) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
		struct addrinfo *res = NULL;
		int rc = getaddrinfo(hosts[i], port, &hints, &res);
		if (rc != 0) {
			snprintf(err, errlen, "listener address '%s': %s", hosts[i], gai_strerror(rc));
			tls_creds_unref(creds);
			return -1;
		}
		for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
			if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
				continue;
			char e[256];
			if (listener_bind(m, index, ai->ai_addr, creds, e, sizeof(e)) == 0) {
				bound++;
			} else if (hosts != one || ai->ai_next || bound) {
				/* IPv6 may be off on this machine: not fatal while
				 * another address of the listener works. */
				log_warn("%s", e);
				snprintf(err, errlen, "%s", e);
			} else {
				snprintf(err, errlen, "%s", e);
			}
		}
		freeaddrinfo(res);
	}
	tls_creds_unref(creds);
	return bound > 0 ? 0 : -1;
}

static void conn_walk_forget_listener(uv_handle_t *h, void *arg)
{
	struct conn *c = conn_of_handle(h);
	(void)arg;
	if (c)
		c->poll.data = NULL;
}

/* uv_walk: tears down every connection, arg the reason. */
static void conn_walk_teardown(uv_handle_t *h, void *arg)
{
	struct conn *c = conn_of_handle(h);
	if (c)
		conn_teardown(c, arg);
}

/* uv_walk: ends the grace period of closing connections; arg the time. */
static void conn_walk_grace(uv_handle_t *h, void *arg)
{
	struct conn *c = conn_of_handle(h);
	if (c && c->grace && !conn_is_closed(c) &&
	    (uint32_t)(*(const uint32_t *)arg - c->at) > CLOSE_GRACE_MS)
		conn_teardown(c, NULL);
}

static void listeners_close(struct midge *m)
{
	struct listener *l = m->listeners;
	m->listeners = NULL;
	/* Connections outlive their listener during a shutdown (those
	 * already closing too: their close callback comes later). */
	uv_walk(&m->loop, conn_walk_forget_listener, NULL);
	while (l) {
		struct listener *next = l->next;
		tls_creds_unref(l->creds);
		l->creds = NULL;
		uv_close((uv_handle_t *)&l->poll, (uv_close_cb)free);
		close(l->fd);
		l = next;
	}
}

/* ---- $SYS --------------------------------------------------------------- */

static void sys_put(struct midge *m, int slot, const char *topic, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void sys_put(struct midge *m, int slot, const char *topic, const char *fmt, ...)
{
	char val[64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	/* Like Mosquitto, only changed values are published again. */
	if (slot >= 0 && m->sys_last[slot] && strcmp(m->sys_last[slot], val) == 0)
		return;
	if (slot >= 0) {
		free(m->sys_last[slot]);
		m->sys_last[slot] = strdup(val);
	}
	engine_publish(m->engine, (const uint8_t *)topic, strlen(topic), val, strlen(val), 0, true,
		       broker_now_ms());
}

static void sys_load(struct midge *m, int idx, const char *name, uint64_t total, double secs,
		     int slot)
{
	static const int mins[3] = {1, 5, 15};
	struct sys_cache *s = &m->sys_load[idx];
	double rate = secs > 0 ? (double)(total - s->last) * 60.0 / secs : 0;
	s->last = total;
	for (int k = 0; k < 3; k++) {
		double a = secs / (mins[k] * 60.0);
		if (a > 1)
			a = 1;
		s->load[k] += (rate - s->load[k]) * a;
		char topic[96];
		snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%dmin", name, mins[k]);
		sys_put(m, slot + k, topic, "%.2f", s->load[k]);
	}
}

static void sys_publish(struct midge *m, uint64_t now)
{
	struct engine_stats st;
	engine_stats(m->engine, &st);
	double secs = m->last_sys_ms ? (double)(now - m->last_sys_ms) / 1000.0 : 0;
	m->last_sys_ms = now;
	sys_put(m, 0, "$SYS/broker/version", "midge version %s", midge_version());
	sys_put(m, -1, "$SYS/broker/uptime", "%llu seconds",
		(unsigned long long)((now - m->started_ms) / 1000));
	sys_put(m, 1, "$SYS/broker/clients/connected", "%llu", (unsigned long long)st.clients_connected);
	sys_put(m, 2, "$SYS/broker/clients/active", "%llu", (unsigned long long)st.clients_connected);
	sys_put(m, 3, "$SYS/broker/clients/total", "%llu", (unsigned long long)st.clients_total);
	sys_put(m, 4, "$SYS/broker/clients/disconnected", "%llu",
		(unsigned long long)(st.clients_total - st.clients_connected));
	sys_put(m, 5, "$SYS/broker/clients/maximum", "%llu", (unsigned long long)st.clients_maximum);
	sys_put(m, 6, "$SYS/broker/clients/expired", "%llu", (unsigned long long)st.clients_expired);
	sys_put(m, 7, "$SYS/broker/messages/received", "%llu", (unsigned long long)st.msgs_received);
	sys_put(m, 8, "$SYS/broker/messages/sent", "%llu", (unsigned long long)st.msgs_sent);
	sys_put(m, 9, "$SYS/broker/messages/stored", "%llu", (unsigned long long)st.stored_count);
	sys_put(m, 10, "$SYS/broker/publish/messages/received", "%llu",
		(unsigned long long)st.publish_received);
	sys_put(m, 11, "$SYS/broker/publish/messages/sent", "%llu", (unsigned long long)st.publish_sent);
	sys_put(m, 12, "$SYS/broker/publish/messages/dropped", "%llu",
		(unsigned long long)st.msgs_dropped);
	sys_put(m, 13, "$SYS/broker/bytes/received", "%llu", (unsigned long long)st.bytes_received);
	sys_put(m, 14, "$SYS/broker/bytes/sent", "%llu", (unsigned long long)st.bytes_sent);
	sys_put(m, 15, "$SYS/broker/subscriptions/count", "%llu",
		(unsigned long long)st.subscriptions_count);
	sys_put(m, 16, "$SYS/broker/retained messages/count", "%llu",
		(unsigned long long)st.retained_count);
	sys_put(m, 17, "$SYS/broker/store/messages/count", "%llu", (unsigned long long)st.stored_count);
	sys_put(m, 18, "$SYS/broker/store/messages/bytes", "%llu", (unsigned long long)st.stored_bytes);
	sys_put(m, 19, "$SYS/broker/midge/hooks/dropped", "%llu",
		(unsigned long long)hooks_dropped(m->hooks));
	sys_put(m, 20, "$SYS/broker/midge/hooks/sent", "%llu", (unsigned long long)hooks_sent(m->hooks));
	sys_put(m, 21, "$SYS/broker/midge/connections", "%d", m->n_conns);
	if (secs > 0) {
		sys_load(m, 0, "messages/received", st.msgs_received, secs, 22);
		sys_load(m, 1, "messages/sent", st.msgs_sent, secs, 25);
		sys_load(m, 2, "bytes/received", st.bytes_received, secs, 28);
		sys_load(m, 3, "bytes/sent", st.bytes_sent, secs, 31);
		sys_load(m, 4, "publish/received", st.publish_received, secs, 34);
		sys_load(m, 5, "publish/sent", st.publish_sent, secs, 37);
	} else {
		for (int i = 0; i < 6; i++)
			m->sys_load[i].last = 0;
		m->sys_load[0].last = st.msgs_received;
		m->sys_load[1].last = st.msgs_sent;
		m->sys_load[2].last = st.bytes_received;
		m->sys_load[3].last = st.bytes_sent;
		m->sys_load[4].last = st.publish_received;
		m->sys_load[5].last = st.publish_sent;
	}
}

/* ---- timers, signals, shutdown ------------------------------------------ */


/* Events the publisher had to drop (slow subscribers, midge_hooks_hwm)
 * are worth a line, but at most once per sys_interval (10 s without
 * one) and only when the count moved. */
static void broker_log_hooks_dropped(struct midge *m, uint64_t now)
{
	uint64_t every = (uint64_t)(m->conf.sys_interval ? m->conf.sys_interval : 10) * 1000u;
	if (now - m->last_hooks_check_ms < every)
		return;
	m->last_hooks_check_ms = now;
	uint64_t d = hooks_dropped(m->hooks);
	if (d == m->hooks_dropped_logged)
		return;
	log_warn("event publisher dropped %llu events (%llu in all): a subscriber does not keep up "
		 "(midge_hooks_hwm %d)",
		 (unsigned long long)(d - m->hooks_dropped_logged), (unsigned long long)d,
		 m->conf.hooks_hwm > 0 ? m->conf.hooks_hwm : HOOKS_DEFAULT_SNDHWM);
	m->hooks_dropped_logged = d;
}
static void broker_on_tick(uv_timer_t *t)
{
	struct midge *m = t->data;
	uint64_t now = broker_now_ms();
	engine_tick(m->engine, now);
	/* [MQTT-3.1.4-1]-adjacent housekeeping: a socket that never sends
	 * CONNECT (or never finishes TLS) is closed after connect_timeout. */
	uint64_t limit = (uint64_t)m->conf.connect_timeout * 1000u;
	uint32_t rel = broker_rel_ms(m, now);
	if (limit > UINT32_MAX)
		limit = UINT32_MAX;
	while (limit && m->pre_head && (uint32_t)(rel - m->pre_head->at) >= limit) {
		struct conn *c = m->pre_head;
		pre_remove(c);
		char a[INET6_ADDRSTRLEN];
		log_notice("client %s:%u sent no CONNECT within %u s: closed", conn_addr(c, a), c->port,
			   m->conf.connect_timeout);
		conn_teardown(c, "no CONNECT in time");
	}
	/* A client that does not read cannot hold a closing socket open:
	 * what it has not taken after the grace period is dropped. */
	if (m->n_closing > 0)
		uv_walk(&m->loop, conn_walk_grace, &rel);
	if (m->hooks) {
		hooks_poll(m->hooks);
		broker_log_hooks_dropped(m, now);
	}
	if (m->conf.sys_interval && !m->stopping &&
	    now - m->last_sys_ms >= (uint64_t)m->conf.sys_interval * 1000u)
		sys_publish(m, now);
	broker_flush_dirty(m);
}

static void broker_on_check(uv_check_t *h)
{
	broker_flush_dirty(h->data);
}

static void broker_close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void broker_on_grace(uv_timer_t *t)
{
	struct midge *m = t->data;
	uv_walk(&m->loop, conn_walk_teardown, "server shutting down");
	uv_stop(&m->loop);
}

static void broker_begin_stop(struct midge *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	log_notice("shutting down: %d connection(s) to close", m->n_conns);
	listeners_close(m);
	engine_shutdown(m->engine, broker_now_ms());
	broker_flush_dirty(m);
	if (m->n_conns == 0)
		uv_stop(&m->loop);
	else
		uv_timer_start(&m->grace, broker_on_grace, SHUTDOWN_GRACE_MS, 0);
}

static void broker_on_async(uv_async_t *a)
{
	struct midge *m = a->data;
	if (atomic_load(&m->stop_requested))
		broker_begin_stop(m);
}

static void broker_reload(struct midge *m)
{
	struct conf nc;
	char err[512];
	if (!m->conf_path) {
		log_notice("SIGHUP: no configuration file to reload");
		return;
	}
	conf_init(&nc);
	if (conf_load(&nc, m->conf_path, NULL, NULL, err, sizeof(err)) < 0) {
		log_err("reload failed, keeping the running configuration: %s", err);
		conf_clear(&nc);
		return;
	}
	if (nc.n_listeners > 0 && !nc.allow_anonymous_set)
		nc.engine.allow_anonymous = false;
	/* New TLS credentials first: if one fails nothing changes. */
	struct tls_creds *fresh[64] = {0};
	int i = 0;
	for (struct listener *l = m->listeners; l && i < 64; l = l->next, i++) {
		if (!l->creds || l->index >= nc.n_listeners)
			continue;
		fresh[i] = tls_creds_new(&nc.listeners[l->index], err, sizeof(err));
		if (!fresh[i]) {
			log_err("reload failed, keeping the running configuration: %s", err);
			for (int k = 0; k < i; k++)
				tls_creds_unref(fresh[k]);
			conf_clear(&nc);
			return;
		}
	}
	i = 0;
	for (struct listener *l = m->listeners; l && i < 64; l = l->next, i++) {
		if (fresh[i]) {
			tls_creds_unref(l->creds);
			l->creds = fresh[i];
		}
		if (l->index < nc.n_listeners)
			l->max_connections = nc.listeners[l->index].max_connections;
	}
	if (nc.password_file) {
		struct passwd_db *db = passwd_load(nc.password_file, err, sizeof(err));
		if (!db)
			log_err("password_file not reloaded: %s", err);
		else {
			passwd_free(m->passwd);
			m->passwd = db;
		}
	} else {
		passwd_free(m->passwd);
		m->passwd = NULL;
	}
	engine_reconfigure(m->engine, &nc.engine);
	/* Listeners stay as they are; the rest of the settings move over. */
	struct conf old = m->conf;
	conf_take_listeners(&nc, &old);
	m->conf = nc;
	conf_clear(&old);
	log_open(&m->conf);
	log_notice("configuration reloaded from %s (listener changes need a restart)", m->conf_path);
}

static void broker_on_signal(uv_signal_t *s, int signum)
{
	struct midge *m = s->data;
	if (signum == SIGHUP)
		broker_reload(m);
	else
		broker_begin_stop(m);
}

/* ---- the embedding API -------------------------------------------------- */

struct midge *midge_new(void)
{
	struct midge *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	conf_init(&m->conf);
	m->hooks = hooks_new();
	if (!m->hooks) {
		free(m);
		return NULL;
	}
	return m;
}

void midge_free(struct midge *m)
{
	if (!m)
		return;
	engine_free(m->engine);
	hooks_free(m->hooks);
	passwd_free(m->passwd);
	for (int i = 0; i < m->pool_n; i++)
		free(m->pool[i]);
	for (int i = 0; i < m->obox_n; i++) {
		outq_free(&m->obox_pool[i]->q[0]);
		outq_free(&m->obox_pool[i]->q[1]);
		free(m->obox_pool[i]);
	}
	for (size_t i = 0; i < sizeof(m->sys_last) / sizeof(m->sys_last[0]); i++)
		free(m->sys_last[i]);
	conf_clear(&m->conf);
	free(m->conf_path);
	free(m);
}

int midge_config_set(struct midge *m, const char *key, const char *value)
{
	char msg[512];
	int rc = conf_set(&m->conf, key, value, msg, sizeof(msg));
	if (rc < 0)
		log_err("%s", msg);
	else if (rc > 0)
		log_warn("%s", msg);
	if (rc >= 0 && m->engine)
		engine_reconfigure(m->engine, &m->conf.engine);
	return rc < 0 ? -1 : 0;
}

static void broker_conf_warn(void *user, const char *text)
{
	(void)user;
	log_warn("%s", text);
}

int midge_config_load(struct midge *m, const char *path)
{
	char err[600];
	if (conf_load(&m->conf, path, broker_conf_warn, m, err, sizeof(err)) < 0) {
		log_err("%s", err);
		return -1;
	}
	if (m->conf.n_listeners > 0 && !m->conf.allow_anonymous_set) {
		/* Mosquitto 2: a file with listeners and no allow_anonymous
		 * refuses clients without credentials. */
		m->conf.engine.allow_anonymous = false;
		log_notice("%s: allow_anonymous not set: clients must authenticate (as in "
			   "Mosquitto 2); add 'allow_anonymous true' to allow anonymous clients",
			   path);
	}
	free(m->conf_path);
	m->conf_path = realpath(path, NULL);
	if (!m->conf_path)
		m->conf_path = strdup(path);
	if (m->engine)
		engine_reconfigure(m->engine, &m->conf.engine);
	return 0;
}

int midge_listen(struct midge *m, const char *host, uint16_t port, const char *certfile,
		 const char *keyfile)
{
	if (m->running)
		return -1;
	int i = conf_add_listener(&m->conf, host, port);
	if (i < 0)
		return -1;
	struct conf_listener *l = &m->conf.listeners[i];
	if ((certfile && !(l->certfile = strdup(certfile))) || (keyfile && !(l->keyfile = strdup(keyfile))))
		return -1;
	return 0;
}

int midge_on(struct midge *m, enum midge_event_type type, midge_event_cb cb, void *user)
{
	return hooks_on(m->hooks, type, cb, user);
}

int midge_on_connect(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_CONNECT, cb, user);
}

int midge_on_disconnect(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_DISCONNECT, cb, user);
}

int midge_on_publish(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_PUBLISH, cb, user);
}

int midge_on_subscribe(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_SUBSCRIBE, cb, user);
}

int midge_on_unsubscribe(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_UNSUBSCRIBE, cb, user);
}

int midge_on_ping(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_PING, cb, user);
}

int midge_on_will(struct midge *m, midge_event_cb cb, void *user)
{
	return midge_on(m, MIDGE_EV_WILL, cb, user);
}

int midge_publish(struct midge *m, const char *topic, const void *payload, size_t len, int qos,
		  bool retain)
{
	if (qos < 0 || qos > 2 || !topic || broker_engine_ready(m) < 0)
		return -1;
	int rc = engine_publish(m->engine, (const uint8_t *)topic, strlen(topic), payload, len,
				(uint8_t)qos, retain, broker_now_ms());
	if (m->running)
		broker_flush_dirty(m);
	return rc < 0 ? -1 : 0;
}

const char *midge_version(void)
{
	return PACKAGE_VERSION;
}

void midge_stop(struct midge *m)
{
	atomic_store(&m->stop_requested, 1);
	if (m->loop_ready)
		uv_async_send(&m->stop_async);
}

void broker_set_verbose(struct midge *m, bool on)
{
	m->verbose = on;
	log_set_verbose(on);
}

static int broker_hooks_start(struct midge *m)
{
	struct hooks_config hc = {0};
	char err[256] = "";
	if (m->conf.hooks_off) {
		log_info("event publisher off (midge_hooks_endpoint none)");
		return 0;
	}
	if (m->conf.n_hooks_endpoints == 0) {
		hc.endpoints[0] = CONF_DEFAULT_HOOKS_ENDPOINT;
		hc.n_endpoints = 1;
	} else {
		for (int i = 0; i < m->conf.n_hooks_endpoints; i++)
			hc.endpoints[i] = m->conf.hooks_endpoints[i];
		hc.n_endpoints = m->conf.n_hooks_endpoints;
	}
	hc.sndhwm = m->conf.hooks_hwm;
	hc.node = m->conf.node_name;
	hc.curve_secret = m->conf.hooks_curve_secret;
	hc.curve_public = m->conf.hooks_curve_public;
	char node[256];
	if (!hc.node) {
		if (gethostname(node, sizeof(node)) != 0)
			snprintf(node, sizeof(node), "midge");
		node[sizeof(node) - 1] = '\0';
		hc.node = node;
	}
	if (hooks_zmq_start(m->hooks, &hc, err, sizeof(err)) < 0) {
		if (m->conf.n_hooks_endpoints == 0) {
			/* The default endpoint may be taken by another broker on
			 * this machine: events still reach the callbacks. */
			log_warn("event publisher not started on the default %s: %s",
				 CONF_DEFAULT_HOOKS_ENDPOINT, err);
			return 0;
		}
		log_err("event publisher: %s", err);
		return -1;
	}
	/* what was bound, with the port a "*" endpoint got */
	for (int i = 0; i < hooks_endpoint_count(m->hooks); i++)
		log_notice("events published on %s%s", hooks_endpoint(m->hooks, i),
			   hc.curve_secret ? " (CurveZMQ)" : "");
	return 0;
}

static int broker_write_pid(struct midge *m)
{
	if (!m->conf.pid_file)
		return 0;
	FILE *f = fopen(m->conf.pid_file, "w");
	if (!f) {
		log_err("pid_file %s: %s", m->conf.pid_file, strerror(errno));
		return -1;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
	return 0;
}

/* After binding: drop root privileges to `user`, as Mosquitto does. */
static int broker_drop_privileges(struct midge *m)
{
	if (!m->conf.user)
		return 0;
	if (getuid() != 0) {
		log_warn("user %s ignored: not running as root", m->conf.user);
		return 0;
	}
	struct passwd *pw = getpwnam(m->conf.user);
	if (!pw) {
		log_err("user %s does not exist", m->conf.user);
		return -1;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		log_err("cannot become user %s: %s", m->conf.user, strerror(errno));
		return -1;
	}
	log_notice("running as user %s", m->conf.user);
	return 0;
}

static int broker_open_listeners(struct midge *m)
{
	char err[512];
	if (m->conf.n_listeners == 0) {
		/* No listener configured: local only, as Mosquitto 2 does. */
		static const char *const local[] = {"127.0.0.1", "::1", NULL};
		int i = conf_add_listener(&m->conf, NULL, CONF_DEFAULT_PORT);
		if (i < 0)
			return -1;
		log_notice("no listener configured: listening on localhost only (127.0.0.1 and ::1, "
			   "port %u), as Mosquitto 2 does",
			   CONF_DEFAULT_PORT);
		if (listener_open(m, i, local, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
		return 0;
	}
	for (int i = 0; i < m->conf.n_listeners; i++) {
		if (listener_open(m, i, NULL, err, sizeof(err)) < 0) {
			log_err("%s", err);
			return -1;
		}
	}
	return 0;
}

int midge_run(struct midge *m)
{
	int rc = -1;
	char err[512];
	if (m->running)
		return -1;
	log_open(&m->conf);
	if (m->verbose)
		log_set_verbose(true);
	signal(SIGPIPE, SIG_IGN);
	if (m->conf.password_file) {
		m->passwd = passwd_load(m->conf.password_file, err, sizeof(err));
		if (!m->passwd) {
			log_err("%s", err);
			return -1;
		}
	}
	if (broker_engine_ready(m) < 0) {
		log_err("out of memory");
		return -1;
	}
	engine_reconfigure(m->engine, &m->conf.engine);
	if (uv_loop_init(&m->loop) < 0)
		return -1;
	uv_async_init(&m->loop, &m->stop_async, broker_on_async);
	m->stop_async.data = m;
	m->loop_ready = true;
	uv_check_init(&m->loop, &m->flush_check);
	m->flush_check.data = m;
	uv_check_start(&m->flush_check, broker_on_check);
	uv_timer_init(&m->loop, &m->tick);
	m->tick.data = m;
	uv_timer_init(&m->loop, &m->grace);
	m->grace.data = m;
	uv_timer_init(&m->loop, &m->accept_pause);
	m->accept_pause.data = m;
	uv_signal_init(&m->loop, &m->sig_int);
	uv_signal_init(&m->loop, &m->sig_term);
	uv_signal_init(&m->loop, &m->sig_hup);
	m->sig_int.data = m->sig_term.data = m->sig_hup.data = m;
	uv_signal_start(&m->sig_int, broker_on_signal, SIGINT);
	uv_signal_start(&m->sig_term, broker_on_signal, SIGTERM);
	uv_signal_start(&m->sig_hup, broker_on_signal, SIGHUP);

	if (broker_open_listeners(m) < 0 || broker_hooks_start(m) < 0 || broker_write_pid(m) < 0 ||
	    broker_drop_privileges(m) < 0)
		goto out;
	m->running = true;
	m->started_ms = broker_now_ms();
	log_notice("midge %s running", midge_version());
	uv_timer_start(&m->tick, broker_on_tick, 1000, 1000);
	if (m->conf.sys_interval)
		sys_publish(m, m->started_ms);
	if (atomic_load(&m->stop_requested))
		broker_begin_stop(m);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	rc = 0;
	log_notice("midge stopped");
out:
	m->running = false;
	m->loop_ready = false;
	listeners_close(m);
	uv_walk(&m->loop, conn_walk_teardown, "server shutting down");
	uv_walk(&m->loop, broker_close_walk, NULL);
	/* Close callbacks free the connections (and tell the engine). */
	while (uv_run(&m->loop, UV_RUN_NOWAIT) != 0)
		;
	uv_loop_close(&m->loop);
	if (m->conf.pid_file && rc == 0)
		unlink(m->conf.pid_file);
	m->stopping = false;
	return rc;
}

uint16_t broker_first_port(const struct midge *m)
{
	uint16_t port = 0;
	for (const struct listener *l = m->listeners; l; l = l->next)
		port = l->port;
	return port;
}
