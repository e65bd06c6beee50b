/*
 * iothr.c - the I/O threads (see iothr.h): their loops, the records the
 * engine posts to them and the reports they make, and starting and
 * stopping them. An inline "thread" (midge_io_threads 0) is the same
 * structure on the engine's loop, driven from the engine's check phase.
 *
 * Wake-ups are per batch: a producer pushes records during a loop pass
 * and calls uv_async_send once at its end (libuv coalesces sends until
 * the consumer runs), so a busy thread makes no system call per record.
 */
#include "transport/iothr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/broker.h"
#include "transport/conn.h"
#include "transport/log.h"

#define IOTHR_MAX 64

static void iothr_dispatch(struct iothr *io, const struct ioq_rec *r);

/* ---- records --------------------------------------------------------------- */

int iothr_post(struct iothr *io, const struct ioq_rec *r)
{
	return ioq_push(&io->in, r);
}

void iothr_report(struct iothr *io, const struct ioq_rec *r)
{
	if (ioq_push(&io->out, r) < 0) {
		/* A 4 KiB block could not be had: the record (input, or the
		 * news that a socket closed) cannot be dropped without
		 * breaking a stream or leaking a connection. */
		log_err("out of memory in the I/O thread's queue: stopping");
		abort();
	}
}

static void iothr_on_busy(uv_idle_t *h)
{
	(void)h; /* only keeps the next poll from blocking */
}

void iothr_want_read(struct iothr *io, struct conn *c)
{
	if (c->read_pending)
		return;
	struct conn_vec *vec = c->starved ? &io->starved : &io->pending;
	if (vec->n == vec->cap) {
		int ncap = vec->cap ? vec->cap * 2 : 64;
		struct conn **nv = realloc(vec->v, (size_t)ncap * sizeof(*nv));
		if (!nv) {
			sock_teardown(io, c, "out of memory");
			return;
		}
		vec->v = nv;
		vec->cap = ncap;
	}
	vec->v[vec->n++] = c;
	c->read_pending = true;
	if (!c->starved && !io->inline_mode)
		uv_idle_start(&io->busy, iothr_on_busy);
}

/* Handles what the engine posted. Returns how many records. */
static int iothr_drain(struct iothr *io)
{
	struct ioq_rec r;
	int n = 0;
	while (ioq_pop(&io->in, &r)) {
		iothr_dispatch(io, &r);
		n++;
	}
	return n;
}

/* Whether an input chunk can be had (without taking it). */
static bool iothr_chunk_back(struct iothr *io)
{
	return io->chunks.free || io->chunks.n_total < io->chunks.max ||
	       atomic_load(&io->chunks.returned) != NULL;
}

/* One pass of the thread's own work: records, reads without the poller. */
static int iothr_pass(struct iothr *io)
{
	int n = iothr_drain(io);
	if (io->starved.n > 0 && iothr_chunk_back(io))
		sock_retry_starved(io);
	if (io->pending.n > 0) {
		n += io->pending.n;
		sock_read_pending(io);
	}
	iopoll_flush_closed(io);
	return n;
}

/* ---- threaded ------------------------------------------------------------- */

static void iothr_on_wake(uv_async_t *a)
{
	iothr_pass(a->data);
}

/* End of a loop pass: reads the poller cannot announce, then one wake-up
 * for everything reported during the pass. */
static void iothr_on_check(uv_check_t *h)
{
	struct iothr *io = h->data;
	if (io->pending.n > 0)
		sock_read_pending(io);
	if (io->pending.n == 0)
		uv_idle_stop(&io->busy);
	iopoll_flush_closed(io);
	if (io->out.pushed != io->out_pushed) {
		io->out_pushed = io->out.pushed;
		uv_async_send(&io->m->io_wake);
	}
}

static void iothr_begin_stop(struct iothr *io)
{
	io->stopping = true;
	sock_teardown_all(io, "server shutting down");
	iopoll_flush_closed(io);
	iopoll_close(io);
	if (io->inline_mode)
		return;
	/* the loop ends once the sockets' close callbacks have run */
	uv_close((uv_handle_t *)&io->wake, NULL);
	uv_close((uv_handle_t *)&io->check, NULL);
	uv_close((uv_handle_t *)&io->busy, NULL);
	uv_close((uv_handle_t *)&io->linger_timer, NULL);
}

static void iothr_main(void *arg)
{
	struct iothr *io = arg;
	uv_run(io->loop, UV_RUN_DEFAULT);
	/* the last reports (IO_CLOSED) are read by iothr_stop after the join */
}

static void iothr_dispatch(struct iothr *io, const struct ioq_rec *r)
{
	struct conn *c = r->conn;
	switch (r->op) {
	case IO_ADOPT: sock_adopt(io, c, (int)r->len); break;
	case IO_WRITE: sock_write(io, c); break;
	case IO_READ: sock_set_reading(io, c, r->flag != 0); break;
	case IO_CLOSE: sock_close(io, c); break;
	case IO_TEARDOWN: sock_teardown(io, c, r->p); break;
	case IO_RELEASE: sock_release(io, c); break;
	case IO_LINGER_DROP: sock_linger_drop(io, r->flag != 0); break;
	case IO_TEARDOWN_ALL: sock_teardown_all(io, r->p); break;
	case IO_STOP: iothr_begin_stop(io); break;
	default: break;
	}
}

/* ---- the engine's side ------------------------------------------------------ */

int iothr_kick_all(struct midge *m)
{
	int moved = 0;
	for (int i = 0; i < m->n_io; i++) {
		struct iothr *io = m->io[i];
		if (!io->running)
			continue; /* stopped: its wake handle is gone */
		if (io->inline_mode) {
			moved += iothr_pass(io);
		} else if (io->in.pushed != io->in_kicked) {
			io->in_kicked = io->in.pushed;
			uv_async_send(&io->wake);
		}
	}
	return moved;
}

int iothr_linger_drop(struct midge *m, bool for_good)
{
	int n = 0;
	for (int i = 0; i < m->n_io; i++) {
		struct iothr *io = m->io[i];
		struct ioq_rec r = {.op = IO_LINGER_DROP, .flag = for_good};
		if (io->inline_mode)
			n += sock_linger_drop(io, for_good);
		else if (iothr_post(io, &r) == 0)
			uv_async_send(&io->wake);
	}
	return n;
}

void iothr_teardown_all(struct midge *m, const char *why)
{
	for (int i = 0; i < m->n_io; i++) {
		struct iothr *io = m->io[i];
		struct ioq_rec r = {.op = IO_TEARDOWN_ALL, .p = (void *)why};
		if (io->inline_mode)
			sock_teardown_all(io, why);
		else if (iothr_post(io, &r) == 0)
			uv_async_send(&io->wake);
	}
}

int iothr_auto_count(void)
{
	unsigned n = uv_available_parallelism();
	/* With two cores or fewer the engine and the clients' own load
	 * share them: one loop for everything measured fastest
	 * (docs/PERFORMANCE.md, "I/O threads"). Above that, the engine
	 * keeps a core and the sockets spread over the rest. */
	if (n <= 2)
		return 0;
	return n - 1 > 16 ? 16 : (int)n - 1;
}

static void iothr_free(struct iothr *io)
{
	if (!io)
		return;
	iopoll_free(io);
	ioq_free(&io->in);
	ioq_free(&io->out);
	chunk_pool_clear(&io->chunks);
	rbuf_pool_clear(&io->rbufs);
	free(io->pending.v);
	free(io->starved.v);
	free(io);
}

static struct iothr *iothr_new(struct midge *m, int index, bool inline_mode)
{
	struct iothr *io = calloc(1, sizeof(*io));
	if (!io)
		return NULL;
	io->m = m;
	io->epfd = -1;
	io->index = index;
	io->inline_mode = inline_mode;
	chunk_pool_init(&io->chunks, CHUNK_POOL_MAX);
	if (ioq_init(&io->in) < 0 || ioq_init(&io->out) < 0) {
		iothr_free(io);
		return NULL;
	}
	if (inline_mode) {
		io->loop = &m->loop;
	} else {
		io->loop = &io->own_loop;
		if (uv_loop_init(io->loop) < 0) {
			iothr_free(io);
			return NULL;
		}
	}
	/* first: failing, it leaves no handle behind on the loop */
	if (iopoll_init(io) < 0) {
		log_err("cannot create the I/O thread's epoll set: %s", strerror(errno));
		if (!inline_mode)
			uv_loop_close(io->loop);
		iothr_free(io);
		return NULL;
	}
	if (!inline_mode) {
		uv_async_init(io->loop, &io->wake, iothr_on_wake);
		io->wake.data = io;
		uv_check_init(io->loop, &io->check);
		io->check.data = io;
		uv_check_start(&io->check, iothr_on_check);
		uv_idle_init(io->loop, &io->busy);
	}
	uv_timer_init(io->loop, &io->linger_timer);
	io->linger_timer.data = io;
	return io;
}

int iothr_start(struct midge *m, int n)
{
	if (n < 0)
		n = iothr_auto_count();
	if (n > IOTHR_MAX)
		n = IOTHR_MAX;
	int slots = n ? n : 1;
	m->io = calloc((size_t)slots, sizeof(*m->io));
	if (!m->io)
		goto oom;
	for (int i = 0; i < slots; i++) {
		struct iothr *io = iothr_new(m, i, n == 0);
		if (!io)
			goto oom;
		m->io[m->n_io++] = io;
		io->linger_max = LINGER_MAX / slots > 0 ? LINGER_MAX / slots : 1;
		io->running = true;
		if (n > 0 && uv_thread_create(&io->thread, iothr_main, io) < 0) {
			io->running = false;
			log_err("cannot start I/O thread %d", i);
			return -1;
		}
	}
	if (n > 0)
		log_info("%d I/O thread%s", n, n > 1 ? "s" : "");
	return 0;
oom:
	log_err("out of memory starting the I/O threads");
	return -1;
}

void iothr_stop(struct midge *m)
{
	for (int i = 0; i < m->n_io; i++) {
		struct iothr *io = m->io[i];
		if (!io->running)
			continue;
		if (io->inline_mode) {
			iothr_begin_stop(io);
			uv_close((uv_handle_t *)&io->linger_timer, NULL);
			continue;
		}
		struct ioq_rec stop = {.op = IO_STOP};
		if (iothr_post(io, &stop) == 0) {
			uv_async_send(&io->wake);
			uv_thread_join(&io->thread);
			uv_loop_close(io->loop);
		}
		io->running = false;
	}
	/* the inline sockets' close callbacks run on the engine's loop */
	while (uv_run(&m->loop, UV_RUN_NOWAIT) != 0 && m->n_conns > 0)
		;
	for (int i = 0; i < m->n_io; i++)
		m->io[i]->running = false;
	/* the threads' last reports: IO_CLOSED of every socket they had */
	conn_drain(m);
	for (int i = 0; i < m->n_io; i++)
		iothr_free(m->io[i]);
	free(m->io);
	m->io = NULL;
	m->n_io = 0;
}
