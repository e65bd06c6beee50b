/*
 * zworker.c - the auth workers' ROUTER socket and its thread (zworker.h).
 *
 * Thread state (the thread's alone once it runs): `waiting`, a FIFO of
 * requests for any worker that no worker holds yet, in deadline order
 * (every request gets the same timeout); `w[]`, the workers known, each
 * idle (on the ready FIFO) or holding one request, and each with its own
 * FIFO of requests for it alone (affinity), served before it is ready
 * for anyone else. Shared under `mu`: the inbox of
 * submitted requests and the outbox of results. Everything is bounded:
 * requests by cfg->queue (counted from submission to result), workers by
 * ZWORKER_MAX_WORKERS, messages by ZPROTO_MAX_MSG.
 */
#include "auth/zworker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>
#include <zmq.h>

struct zreq {
	uint64_t id;
	uint64_t deadline_ms;
	char *json;
	size_t len;
	struct zworker_route to; /* to.len 0: any worker */
	struct zreq *next;
};

struct zpeer {
	uint8_t ident[256];
	size_t ident_len;
	struct zreq *busy; /* the request it holds (json already freed), or NULL */
	struct zreq *pin_head, *pin_tail; /* requests for it alone, deadline order */
	bool used;
	bool ready;        /* on the ready FIFO */
};

struct zworker {
	void *ctx, *router, *zap;
	int pipe_rd, pipe_wr;
	pthread_t thread;
	bool thread_started;
	struct zworker_cfg cfg;
	uint8_t keys[ZWORKER_MAX_KEYS][32];
	int n_keys;

	/* shared */
	pthread_mutex_t mu;
	struct zreq *in_head, *in_tail;
	struct zworker_result *out_head, *out_tail;
	atomic_uint outstanding;
	atomic_uint known;
	atomic_bool stop;

	/* the thread's */
	struct zreq *w_head, *w_tail;
	struct zpeer peer[ZWORKER_MAX_WORKERS];
	int ready[ZWORKER_MAX_WORKERS]; /* FIFO of peer indexes */
	int r_head, r_count;
};

static uint64_t zworker_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void zreq_free(struct zreq *q)
{
	if (!q)
		return;
	zproto_wipe(q->json, q->len);
	free(q);
}

/* ------------------------------------------------------------ results */

/* Hands a result to the engine thread (the thread's side). */
static void zworker_post(struct zworker *z, struct zworker_result *r)
{
	pthread_mutex_lock(&z->mu);
	bool was_empty = !z->out_head;
	if (z->out_tail)
		z->out_tail->next = r;
	else
		z->out_head = r;
	z->out_tail = r;
	pthread_mutex_unlock(&z->mu);
	if (was_empty && z->cfg.wake)
		z->cfg.wake(z->cfg.wake_arg);
}

/* A result for request q, which ends here. a (may be NULL) is moved;
 * from (may be NULL) is the worker that answered. */
static void zworker_finish(struct zworker *z, struct zreq *q, enum zworker_status st,
			   struct zproto_answer *a, const char *note, const struct zpeer *from)
{
	struct zworker_result *r = calloc(1, sizeof *r);
	if (r) {
		r->id = q->id;
		r->status = st;
		if (from) {
			r->worker.len = (uint8_t)from->ident_len;
			memcpy(r->worker.ident, from->ident, from->ident_len);
		}
		if (a) {
			r->answer = *a; /* ownership: the result holds the answer's parts now */
			memset(a, 0, sizeof *a);
		}
		if (note)
			snprintf(r->note, sizeof r->note, "%s", note);
	} else if (a) {
		zproto_answer_clear(a);
	}
	zreq_free(q);
	if (r)
		zworker_post(z, r);
	/* without memory the result is lost: the CONNECT stays held until
	 * the client gives up (its connect_timeout does not apply any more) */
	atomic_fetch_sub(&z->outstanding, 1);
}

void zworker_result_free(struct zworker_result *r)
{
	if (!r)
		return;
	zproto_answer_clear(&r->answer);
	free(r);
}

size_t zworker_drain(struct zworker *z, void (*done)(void *ctx, struct zworker_result *r),
		     void *ctx)
{
	pthread_mutex_lock(&z->mu);
	struct zworker_result *r = z->out_head;
	z->out_head = z->out_tail = NULL;
	pthread_mutex_unlock(&z->mu);
	size_t n = 0;
	while (r) {
		struct zworker_result *next = r->next;
		r->next = NULL;
		done(ctx, r);
		r = next;
		n++;
	}
	return n;
}

unsigned zworker_known(const struct zworker *z)
{
	return atomic_load(&((struct zworker *)z)->known);
}

/* ------------------------------------------------------------ submit */

int zworker_submit(struct zworker *z, uint64_t id, char *json, size_t len,
		   const struct zworker_route *to)
{
	if (atomic_fetch_add(&z->outstanding, 1) >= z->cfg.queue) {
		atomic_fetch_sub(&z->outstanding, 1);
		zproto_wipe(json, len);
		return -1;
	}
	struct zreq *q = calloc(1, sizeof *q);
	if (!q) {
		atomic_fetch_sub(&z->outstanding, 1);
		zproto_wipe(json, len);
		return -1;
	}
	q->id = id;
	if (to)
		q->to = *to;
	q->json = json; /* ownership: the request, freed by the thread */
	q->len = len;
	q->deadline_ms = zworker_now_ms() + z->cfg.timeout_ms;
	pthread_mutex_lock(&z->mu);
	bool was_empty = !z->in_head;
	if (z->in_tail)
		z->in_tail->next = q;
	else
		z->in_head = q;
	z->in_tail = q;
	pthread_mutex_unlock(&z->mu);
	if (was_empty) {
		char b = 1;
		/* a full pipe already holds a wake-up */
		ssize_t w = write(z->pipe_wr, &b, 1);
		(void)w;
	}
	return 0;
}

/* ------------------------------------------------------------ the thread */

/* Takes idle peer i off the ready FIFO (at most ZWORKER_MAX_WORKERS long). */
static void zworker_unready(struct zworker *z, int i)
{
	if (!z->peer[i].ready)
		return;
	int n = z->r_count, k = 0;
	int tmp[ZWORKER_MAX_WORKERS];
	for (int j = 0; j < n; j++) {
		int idx = z->ready[(z->r_head + j) % ZWORKER_MAX_WORKERS];
		if (idx != i)
			tmp[k++] = idx;
	}
	z->r_head = 0;
	z->r_count = k;
	memcpy(z->ready, tmp, (size_t)k * sizeof tmp[0]);
	z->peer[i].ready = false;
}

static void zworker_forget(struct zworker *z, int i)
{
	struct zpeer *p = &z->peer[i];
	/* the exchanges whose state it held cannot go on elsewhere */
	while (p->pin_head) {
		struct zreq *q = p->pin_head;
		p->pin_head = q->next;
		zworker_finish(z, q, ZWORKER_GONE, NULL, "the worker of this exchange is gone", NULL);
	}
	zworker_unready(z, i);
	memset(p, 0, sizeof *p);
	atomic_fetch_sub(&z->known, 1);
}

/* Sends [identity][""][json] to peer i and makes q the request it holds
 * (its text wiped: the password is the worker's now). Returns 0, or -1
 * when the peer is gone (ROUTER_MANDATORY: EHOSTUNREACH) or cannot take
 * it now; q is still the caller's then. */
static int zworker_give(struct zworker *z, int i, struct zreq *q)
{
	struct zpeer *p = &z->peer[i];
	if (zmq_send(z->router, p->ident, p->ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return -1;
	zmq_send(z->router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
	if (zmq_send(z->router, q->json, q->len, ZMQ_DONTWAIT) < 0)
		return -1;
	q->next = NULL;
	zproto_wipe(q->json, q->len);
	q->json = NULL;
	q->len = 0;
	p->busy = q;
	return 0;
}

/* Peer i holds nothing: it takes the first request for it alone, else
 * joins the ready FIFO. A peer that cannot be sent to is forgotten. */
static void zworker_make_ready(struct zworker *z, int i)
{
	struct zpeer *p = &z->peer[i];
	if (p->ready || p->busy)
		return;
	if (p->pin_head) {
		struct zreq *q = p->pin_head;
		p->pin_head = q->next;
		if (!p->pin_head)
			p->pin_tail = NULL;
		if (zworker_give(z, i, q) < 0) {
			zworker_finish(z, q, ZWORKER_GONE, NULL, "the worker of this exchange is gone",
				       NULL);
			zworker_forget(z, i);
		}
		return;
	}
	p->ready = true;
	z->ready[(z->r_head + z->r_count) % ZWORKER_MAX_WORKERS] = i;
	z->r_count++;
}

static int zworker_find(struct zworker *z, const uint8_t *id, size_t n)
{
	for (int i = 0; i < ZWORKER_MAX_WORKERS; i++)
		if (z->peer[i].used && z->peer[i].ident_len == n && memcmp(z->peer[i].ident, id, n) == 0)
			return i;
	return -1;
}

static int zworker_add(struct zworker *z, const uint8_t *id, size_t n)
{
	for (int i = 0; i < ZWORKER_MAX_WORKERS; i++)
		if (!z->peer[i].used) {
			z->peer[i].used = true;
			memcpy(z->peer[i].ident, id, n);
			z->peer[i].ident_len = n;
			atomic_fetch_add(&z->known, 1);
			return i;
		}
	return -1; /* full: this worker gets nothing until one goes */
}

/* Request q is for one worker (affinity): it goes to it now when it is
 * idle, waits on its own FIFO while it is busy, and comes back
 * ZWORKER_GONE when that worker is not known (it crashed, or timed out
 * and was forgotten). */
static void zworker_route(struct zworker *z, struct zreq *q)
{
	q->next = NULL;
	int i = zworker_find(z, q->to.ident, q->to.len);
	if (i < 0) {
		zworker_finish(z, q, ZWORKER_GONE, NULL, "the worker of this exchange is gone", NULL);
		return;
	}
	struct zpeer *p = &z->peer[i];
	if (p->pin_tail)
		p->pin_tail->next = q;
	else
		p->pin_head = q;
	p->pin_tail = q;
	if (p->ready) {
		zworker_unready(z, i);
		zworker_make_ready(z, i); /* gives it the request */
	}
}

/* Moves what was submitted to the end of the waiting FIFO, or to the
 * worker it is for. */
static void zworker_take_inbox(struct zworker *z)
{
	char buf[64];
	while (read(z->pipe_rd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&z->mu);
	struct zreq *q = z->in_head;
	z->in_head = z->in_tail = NULL;
	pthread_mutex_unlock(&z->mu);
	while (q) {
		struct zreq *next = q->next;
		q->next = NULL;
		if (q->to.len) {
			zworker_route(z, q);
		} else {
			if (z->w_tail)
				z->w_tail->next = q;
			else
				z->w_head = q;
			z->w_tail = q;
		}
		q = next;
	}
}

/* Gives waiting requests to idle workers, least recently used first. */
static void zworker_dispatch(struct zworker *z)
{
	while (z->w_head && z->r_count) {
		int i = z->ready[z->r_head];
		z->r_head = (z->r_head + 1) % ZWORKER_MAX_WORKERS;
		z->r_count--;
		z->peer[i].ready = false;
		struct zreq *q = z->w_head;
		struct zreq *next = q->next;
		if (zworker_give(z, i, q) < 0) {
			zworker_forget(z, i); /* the next idle one gets it */
			continue;
		}
		z->w_head = next;
		if (!z->w_head)
			z->w_tail = NULL;
	}
}
/* One message from a worker: [identity][""][payload]. */
static void zworker_on_message(struct zworker *z)
{
	uint8_t ident[256];
	zmq_msg_t part;
	int frames = 0, more = 1;
	size_t ident_len = 0;
	bool shape_ok = true;
	struct zproto_answer a;
	char err[160];
	int kind = -2;
	while (more) {
		zmq_msg_init(&part);
		if (zmq_msg_recv(&part, z->router, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&part);
			return;
		}
		size_t n = zmq_msg_size(&part);
		if (frames == 0) {
			if (n > ZWORKER_MAX_IDENT) /* ZeroMQ's routing identities are shorter */
				shape_ok = false;
			else
				memcpy(ident, zmq_msg_data(&part), ident_len = n);
		} else if (frames == 1) {
			shape_ok = shape_ok && n == 0;
		} else if (frames == 2 && shape_ok) {
			kind = zproto_parse(zmq_msg_data(&part), n, &a, err, sizeof err);
		} else {
			shape_ok = false;
		}
		more = zmq_msg_more(&part);
		zmq_msg_close(&part);
		frames++;
	}
	if (kind == ZPROTO_ANSWER && (!shape_ok || frames != 3))
		zproto_answer_clear(&a);
	if (!shape_ok || frames != 3)
		return; /* not a worker speaking our envelope: ignored */
	int i = zworker_find(z, ident, ident_len);
	if (i < 0 && (i = zworker_add(z, ident, ident_len)) < 0) {
		if (kind == ZPROTO_ANSWER)
			zproto_answer_clear(&a);
		return;
	}
	struct zreq *q = z->peer[i].busy;
	if (q && kind == ZPROTO_ANSWER && a.id == q->id) {
		z->peer[i].busy = NULL;
		zworker_finish(z, q, ZWORKER_ANSWER, &a, NULL, &z->peer[i]);
	} else if (q && kind < 0) {
		z->peer[i].busy = NULL;
		zworker_finish(z, q, ZWORKER_BAD, NULL, err, NULL);
	} else if (kind == ZPROTO_ANSWER) {
		zproto_answer_clear(&a); /* an answer to a request given up on */
	}
	if (!z->peer[i].busy)
		zworker_make_ready(z, i);
}

/* Requests past their deadline come back ZWORKER_TIMEOUT; returns the
 * poll timeout until the next deadline (-1: none). */
static long zworker_expire(struct zworker *z)
{
	uint64_t now = zworker_now_ms(), next = UINT64_MAX;
	while (z->w_head && z->w_head->deadline_ms <= now) {
		struct zreq *q = z->w_head;
		z->w_head = q->next;
		if (!z->w_head)
			z->w_tail = NULL;
		zworker_finish(z, q, ZWORKER_TIMEOUT, NULL, "no worker free", NULL);
	}
	if (z->w_head)
		next = z->w_head->deadline_ms;
	for (int i = 0; i < ZWORKER_MAX_WORKERS; i++) {
		struct zpeer *p = &z->peer[i];
		/* requests for this worker alone, waiting while it is busy */
		while (p->pin_head && p->pin_head->deadline_ms <= now) {
			struct zreq *q = p->pin_head;
			p->pin_head = q->next;
			if (!p->pin_head)
				p->pin_tail = NULL;
			zworker_finish(z, q, ZWORKER_TIMEOUT, NULL, "the exchange's worker stayed busy",
				       NULL);
		}
		if (p->pin_head && p->pin_head->deadline_ms < next)
			next = p->pin_head->deadline_ms;
		struct zreq *q = p->busy;
		if (!q)
			continue;
		if (q->deadline_ms <= now) {
			p->busy = NULL;
			zworker_finish(z, q, ZWORKER_TIMEOUT, NULL, "the worker did not answer", NULL);
			zworker_forget(z, i);
		} else if (q->deadline_ms < next) {
			next = q->deadline_ms;
		}
	}
	return next == UINT64_MAX ? -1 : (long)(next - now);
}

/* The ZAP handler (RFC 27): a CURVE client is in when its public key is
 * one of midge_auth_curve_worker_keys. */
static void zworker_on_zap(struct zworker *z)
{
	zmq_msg_t f[8];
	int n = 0, more = 1;
	while (more && n < 8) {
		zmq_msg_init(&f[n]);
		if (zmq_msg_recv(&f[n], z->zap, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&f[n]);
			goto out;
		}
		more = zmq_msg_more(&f[n]);
		n++;
	}
	bool ok = false;
	/* version, request id, domain, address, identity, mechanism, key */
	if (n == 7 && zmq_msg_size(&f[5]) == 5 && memcmp(zmq_msg_data(&f[5]), "CURVE", 5) == 0 &&
	    zmq_msg_size(&f[6]) == 32)
		for (int k = 0; k < z->n_keys && !ok; k++)
			ok = memcmp(z->keys[k], zmq_msg_data(&f[6]), 32) == 0;
	if (n >= 2) {
		const char *code = ok ? "200" : "400";
		zmq_send(z->zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(z->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
		zmq_send(z->zap, code, 3, ZMQ_SNDMORE);
		zmq_send(z->zap, ok ? "OK" : "unknown worker key", ok ? 2 : 18, ZMQ_SNDMORE);
		zmq_send(z->zap, "", 0, ZMQ_SNDMORE);
		zmq_send(z->zap, "", 0, 0);
	}
out:
	for (int i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
}

static void *zworker_main(void *arg)
{
	struct zworker *z = arg;
	while (!atomic_load(&z->stop)) {
		zworker_take_inbox(z);
		zworker_dispatch(z);
		long timeout = zworker_expire(z);
		zmq_pollitem_t items[3] = {
			{z->router, 0, ZMQ_POLLIN, 0},
			{NULL, z->pipe_rd, ZMQ_POLLIN, 0},
			{z->zap, 0, ZMQ_POLLIN, 0},
		};
		int rc = zmq_poll(items, z->zap ? 3 : 2, timeout);
		if (rc < 0 && zmq_errno() != EINTR)
			break;
		for (int k = 0; k < 64 && (items[0].revents & ZMQ_POLLIN); k++) {
			int ev = 0;
			size_t evlen = sizeof ev;
			zworker_on_message(z);
			if (zmq_getsockopt(z->router, ZMQ_EVENTS, &ev, &evlen) < 0 || !(ev & ZMQ_POLLIN))
				break;
		}
		if (z->zap && (items[2].revents & ZMQ_POLLIN))
			zworker_on_zap(z);
	}
	return NULL;
}

/* ------------------------------------------------------------ start, stop */

static void zworker_free(struct zworker *z)
{
	struct zreq *q, *next;
	for (q = z->in_head; q; q = next) {
		next = q->next;
		zreq_free(q);
	}
	for (q = z->w_head; q; q = next) {
		next = q->next;
		zreq_free(q);
	}
	for (int i = 0; i < ZWORKER_MAX_WORKERS; i++) {
		zreq_free(z->peer[i].busy);
		for (q = z->peer[i].pin_head; q; q = next) {
			next = q->next;
			zreq_free(q);
		}
	}
	struct zworker_result *r, *rn;
	for (r = z->out_head; r; r = rn) {
		rn = r->next;
		zworker_result_free(r);
	}
	int zero = 0;
	if (z->router) {
		zmq_setsockopt(z->router, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(z->router);
	}
	if (z->zap) {
		zmq_setsockopt(z->zap, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(z->zap);
	}
	if (z->ctx)
		zmq_ctx_term(z->ctx);
	if (z->pipe_rd >= 0)
		close(z->pipe_rd);
	if (z->pipe_wr >= 0)
		close(z->pipe_wr);
	pthread_mutex_destroy(&z->mu);
	free(z);
}

/* The sockets, bound; 0 or -1 with err. */
static int zworker_sockets(struct zworker *z, char *err, size_t errlen)
{
	int one = 1, zero = 0;
	int64_t max = ZPROTO_MAX_MSG + 1024;
	if (!(z->ctx = zmq_ctx_new()) || !(z->router = zmq_socket(z->ctx, ZMQ_ROUTER)))
		goto zfail;
	if (z->cfg.curve_secret) {
		/* the handler is bound before any peer can knock */
		if (!(z->zap = zmq_socket(z->ctx, ZMQ_REP)) ||
		    zmq_bind(z->zap, "inproc://zeromq.zap.01") < 0 ||
		    zmq_setsockopt(z->router, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
		    zmq_setsockopt(z->router, ZMQ_CURVE_SECRETKEY, z->cfg.curve_secret, 41) < 0)
			goto zfail;
	}
	if (zmq_setsockopt(z->router, ZMQ_ROUTER_MANDATORY, &one, sizeof one) < 0 ||
	    zmq_setsockopt(z->router, ZMQ_MAXMSGSIZE, &max, sizeof max) < 0 ||
	    zmq_setsockopt(z->router, ZMQ_LINGER, &zero, sizeof zero) < 0)
		goto zfail;
	if (zmq_bind(z->router, z->cfg.endpoint) < 0) {
		snprintf(err, errlen, "midge_auth_endpoint %s: cannot bind: %s", z->cfg.endpoint,
			 zmq_strerror(zmq_errno()));
		return -1;
	}
	return 0;
zfail:
	snprintf(err, errlen, "auth workers: ZeroMQ: %s", zmq_strerror(zmq_errno()));
	return -1;
}

struct zworker *zworker_start(const struct zworker_cfg *cfg, char *err, size_t errlen)
{
	int fds[2];
	struct zworker *z = calloc(1, sizeof *z);
	if (!z) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	z->pipe_rd = z->pipe_wr = -1;
	pthread_mutex_init(&z->mu, NULL);
	z->cfg = *cfg;
	if (!z->cfg.queue)
		z->cfg.queue = 1;
	for (int k = 0; k < cfg->n_keys && k < ZWORKER_MAX_KEYS; k++) {
		if (strlen(cfg->worker_keys[k]) != 40 || !zmq_z85_decode(z->keys[k], cfg->worker_keys[k])) {
			snprintf(err, errlen, "worker key %d is not a 40-character Z85 key", k + 1);
			goto fail;
		}
		z->n_keys++;
	}
	if (pipe(fds) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		goto fail;
	}
	z->pipe_rd = fds[0];
	z->pipe_wr = fds[1];
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	fcntl(fds[1], F_SETFL, O_NONBLOCK);
	fcntl(fds[0], F_SETFD, FD_CLOEXEC);
	fcntl(fds[1], F_SETFD, FD_CLOEXEC);
	if (zworker_sockets(z, err, errlen) < 0)
		goto fail;
	/* ownership: the sockets are the thread's from here on */
	if (pthread_create(&z->thread, NULL, zworker_main, z) != 0) {
		snprintf(err, errlen, "auth workers: cannot start a thread");
		goto fail;
	}
	z->thread_started = true;
	return z;
fail:
	zworker_free(z);
	return NULL;
}

void zworker_stop(struct zworker *z)
{
	if (!z)
		return;
	atomic_store(&z->stop, true);
	if (z->thread_started) {
		char b = 1;
		ssize_t w = write(z->pipe_wr, &b, 1);
		(void)w;
		pthread_join(z->thread, NULL);
	}
	zworker_free(z);
}
