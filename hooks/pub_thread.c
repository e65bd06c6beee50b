/*
 * pub_thread.c - the event publisher's thread (see pub.h): its loop, the
 * rounds that drain the queue into the sockets, and starting and stopping
 * it.
 */
#include "hooks/pub.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#endif
#include <unistd.h>

/* Records the hooks thread reads before it looks at its sockets again. */
#define PUB_BATCH 256

/* While records came this recently (ms), the hooks thread polls the queue
 * every millisecond rather than sleeping until woken. */
#define PUB_BUSY_MS 100

/* The counters other threads read, after a batch. */
static void pub_publish_counts(struct hooks_publisher *p)
{
	atomic_store_explicit(&p->a_sent, p->t_sent, memory_order_relaxed);
	atomic_store_explicit(&p->a_rendered, p->t_rendered, memory_order_relaxed);
	atomic_store_explicit(&p->a_skipped, p->t_skipped, memory_order_relaxed);
	atomic_store_explicit(&p->a_dropped, p->t_dropped, memory_order_relaxed);
}

/* Reads at most max records (all of them when max is 0). Returns whether
 * records are left. */
static bool pub_drain(struct hooks_publisher *p, unsigned max)
{
	struct hooks_rec_view r;
	unsigned n = 0;
	while ((max == 0 || n < max) && hooks_queue_peek(&p->q, &r)) {
		if (r.kind == HOOKS_REC_DROPS) {
			for (int i = 0; i < p->n; i++)
				p->s[i].dropped += r.drops[i];
		} else {
			hooks_pub_send(p, &r);
		}
		n++;
		/* The tail goes out with the batch's last record (below), or
		 * now and then in a long one, so the engine can reuse space. */
		hooks_queue_pop(&p->q, n % 64 == 0);
	}
	hooks_pub_send_batches(p);
	/* Counts first: whoever sees the tail (hooks_publisher_idle) sees
	 * them count what it covers. */
	pub_publish_counts(p);
	hooks_queue_publish(&p->q);
	return hooks_queue_ready(&p->q);
}

static void pub_close_cb(uv_handle_t *h)
{
	(void)h;
}

static void pub_on_more(uv_idle_t *h);
static void pub_on_timer(uv_timer_t *h);

static void pub_shutdown(struct hooks_publisher *p)
{
	if (p->closing)
		return;
	p->closing = true;
	/* The engine thread waits in join: what it queued is all there is. */
	pub_drain(p, 0);
	if (p->touched)
		hooks_pub_read_subs(p);
	uv_close((uv_handle_t *)&p->wake, pub_close_cb);
	uv_close((uv_handle_t *)&p->more, pub_close_cb);
	uv_close((uv_handle_t *)&p->poll_timer, pub_close_cb);
	for (int i = 0; i < p->n; i++)
		uv_close((uv_handle_t *)&p->s[i].poll, pub_close_cb);
}

/*
 * One round of work: a batch of records, then the sockets' subscriptions
 * if a ZeroMQ call may have consumed their edge. With records left, the
 * idle handle brings us back after one look at the sockets.
 *
 * With none left, while events flow (some came in the last PUB_BUSY_MS)
 * we look again in a millisecond instead of asking to be woken: a wake-up
 * is a system call on the engine thread (about a microsecond on a virtual
 * machine), once per loop pass, and a timer of ours costs the engine
 * nothing. Once quiet, we say we sleep and look once more: the engine
 * thread wakes a sleeper only (pub_wake()), and sequentially consistent
 * operations on both sides make sure that either it sees us asleep or we
 * see its record.
 */
static void pub_round(struct hooks_publisher *p)
{
	if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
		pub_shutdown(p);
		return;
	}
	atomic_store_explicit(&p->q.sleeping, false, memory_order_relaxed);
	uint64_t before = p->q.rpos;
	bool left = pub_drain(p, PUB_BATCH);
	uint64_t now = uv_now(&p->loop);
	if (p->q.rpos != before)
		p->busy_ms = now;
	if (p->touched)
		hooks_pub_read_subs(p);
	if (left) {
		uv_idle_start(&p->more, pub_on_more);
		return;
	}
	uv_idle_stop(&p->more);
	if (now - p->busy_ms < PUB_BUSY_MS) {
		uv_timer_start(&p->poll_timer, pub_on_timer, 1, 0);
		return;
	}
	atomic_store_explicit(&p->q.sleeping, true, memory_order_seq_cst);
	if (hooks_queue_ready_sc(&p->q)) {
		atomic_store_explicit(&p->q.sleeping, false, memory_order_relaxed);
		uv_idle_start(&p->more, pub_on_more);
	}
}

static void pub_on_timer(uv_timer_t *h)
{
	pub_round(h->data);
}

static void pub_on_more(uv_idle_t *h)
{
	pub_round(h->data);
}

static void pub_on_wake(uv_async_t *h)
{
	pub_round(h->data);
}

/* A socket's ZMQ_FD: subscriptions changed, most likely. */
static void pub_on_fd(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct hooks_publisher *p = h->data;
	hooks_pub_read_subs(p);
}

static void pub_main(void *arg)
{
	struct hooks_publisher *p = arg;
#ifdef __linux__
	prctl(PR_SET_NAME, "midge-hooks", 0, 0, 0); /* for top -H and perf */
	/* Observation may come after the traffic it observes: at a nice
	 * value above the broker's, when the cores are busy the broker's
	 * thread gets them first and this one what is left, dropping (and
	 * counting) what it cannot send. The value is relative to the
	 * broker's own (a broker started under nice or systemd's Nice= keeps
	 * the same gap). Linux applies a nice value per thread; failing to
	 * set it changes nothing else. */
	if (p->nice > 0) {
		errno = 0;
		int base = getpriority(PRIO_PROCESS, 0);
		int want = errno ? p->nice : base + p->nice;
		if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), want > 19 ? 19 : want) != 0)
			(void)0;
	}
#endif
	/* Subscribers may have come before the thread ran. */
	hooks_pub_read_subs(p);
	pub_round(p);
	uv_run(&p->loop, UV_RUN_DEFAULT);
}

/* ------------------------------------ start and stop, from the engine thread */

/* Everything but the struct, its counters and notes. */
static void pub_release(struct hooks_publisher *p)
{
	for (int i = 0; i < p->n; i++)
		hooks_pub_sock_close(&p->s[i]);
	hooks_queue_free(&p->q);
	hooks_buf_release(&p->json);
	hooks_buf_release(&p->key);
	hooks_buf_release(&p->frame);
}

void hooks_publisher_free(struct hooks_publisher *p)
{
	if (!p)
		return;
	pub_release(p);
	uv_mutex_destroy(&p->notes_mu);
	free(p->node);
	free(p);
}

/* The loop and handles of the hooks thread, made here and handed over
 * with the thread's start. */
static int pub_loop_init(struct hooks_publisher *p)
{
	if (uv_loop_init(&p->loop) < 0)
		return -1;
	p->loop_ready = true;
	uv_async_init(&p->loop, &p->wake, pub_on_wake);
	p->wake.data = p;
	uv_idle_init(&p->loop, &p->more);
	p->more.data = p;
	uv_timer_init(&p->loop, &p->poll_timer);
	p->poll_timer.data = p;
	for (int i = 0; i < p->n; i++) {
		if (uv_poll_init(&p->loop, &p->s[i].poll, p->s[i].fd) < 0)
			return -1;
		p->s[i].poll.data = p;
		uv_poll_start(&p->s[i].poll, UV_READABLE, pub_on_fd);
	}
	return 0;
}

static void pub_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, pub_close_cb);
}

/* Closes the hooks thread's loop once the thread is gone (or never ran). */
static void pub_loop_close(struct hooks_publisher *p)
{
	if (!p->loop_ready)
		return;
	p->loop_ready = false;
	uv_walk(&p->loop, pub_walk_close, NULL);
	while (uv_run(&p->loop, UV_RUN_NOWAIT) != 0)
		;
	uv_loop_close(&p->loop);
}

struct hooks_publisher *hooks_publisher_start(void *zctx, const struct hooks_config *cfg,
					      char *err, size_t errlen)
{
	struct hooks_publisher *p = calloc(1, sizeof *p);
	if (!p) {
		hooks_set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (uv_mutex_init(&p->notes_mu) != 0) {
		free(p);
		hooks_set_err(err, errlen, "cannot create a mutex");
		return NULL;
	}
	p->format = cfg->format;
	p->nice = cfg->nice > 19 ? 19 : cfg->nice;
	p->want_changed = cfg->want_changed;
	p->want_ctx = cfg->want_ctx;
	if (cfg->node && !(p->node = strdup(cfg->node)))
		goto oom;
	size_t qbytes = cfg->queue_bytes ? cfg->queue_bytes : HOOKS_DEFAULT_QUEUE_BYTES;
	if (hooks_queue_init(&p->q, qbytes, &cfg->holder) < 0)
		goto oom;
	for (int i = 0; i < cfg->n_endpoints; i++) {
		p->n = i + 1;
		if (hooks_pub_sock_open(zctx, &p->s[i], cfg->endpoints[i], cfg, err, errlen) < 0) {
			hooks_publisher_free(p);
			return NULL;
		}
	}
	if (pub_loop_init(p) < 0) {
		hooks_set_err(err, errlen, "event publisher: cannot set up its loop");
		goto fail_loop;
	}
	/* From here on the sockets are the thread's (thread creation orders
	 * everything written so far before anything it does). */
	if (uv_thread_create(&p->thread, pub_main, p) != 0) {
		hooks_set_err(err, errlen, "event publisher: cannot start its thread");
		goto fail_loop;
	}
	return p;
fail_loop:
	pub_loop_close(p);
	hooks_publisher_free(p);
	return NULL;
oom:
	hooks_set_err(err, errlen, "out of memory");
	hooks_publisher_free(p);
	return NULL;
}

void hooks_publisher_stop(struct hooks_publisher *p)
{
	if (!p)
		return;
	atomic_store_explicit(&p->stop, true, memory_order_release);
	uv_async_send(&p->wake);
	uv_thread_join(&p->thread);
	/* The thread is gone: its sockets and loop are ours again. */
	pub_loop_close(p);
	pub_release(p);
}
