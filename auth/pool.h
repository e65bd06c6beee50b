/*
 * pool.h - a small pool of worker threads for slow authentication work
 * (password hashing), with bounded concurrency and a bounded queue.
 *
 * One owner thread (the engine thread) submits jobs, cancels them and
 * takes the finished ones back; workers only run job->run, which must not
 * touch anything but the job (no engine state). When a job finishes, a
 * worker calls wake(arg) (uv_async_send in the broker), and the owner
 * calls auth_pool_drain(), which hands every finished job to its done
 * callback on the owner's thread. Every submitted job comes back exactly
 * once, cancelled or not: through done, where the owner frees it, or, for
 * a job still running when the pool is freed, through discard on the
 * worker that ran it (a hash is not interruptible, and a stopping broker
 * does not wait for one).
 */
#ifndef MIDGE_AUTH_POOL_H
#define MIDGE_AUTH_POOL_H

#include <stdbool.h>
#include <stddef.h>

struct auth_job {
	/* On a worker thread: do the work, leave the answer in the job. */
	void (*run)(struct auth_job *j);
	/* Who the job is for (the owner's handle, unique among pending
	 * jobs): auth_pool_cancel() finds it by this. */
	const void *key;
	/* Optional, for a second owner on the same thread sharing the pool
	 * (the HTTP server's Basic checks beside CONNECT's): when set, the
	 * job comes back through these instead of the pool's done and
	 * discard (done gets no ctx: the job carries what it needs). */
	void (*done)(struct auth_job *j);
	void (*discard)(struct auth_job *j);
	int result;     /* whatever run leaves, for the owner */
	bool cancelled; /* auth_pool_cancel() was called: the result is not wanted */
	/* the pool's own */
	struct auth_job *next, *prev, *key_next;
	unsigned char state;
};

struct auth_pool;

/* Called on a worker thread when finished jobs wait for the owner. */
typedef void (*auth_pool_wake_fn)(void *arg);
/* Called on the owner's thread for each job that comes back. */
typedef void (*auth_pool_done_fn)(void *ctx, struct auth_job *j);
/* Called on a worker thread for a job that finished after
 * auth_pool_free(): free it (nothing of the owner's may be touched). */
typedef void (*auth_pool_discard_fn)(struct auth_job *j);

/*
 * threads workers (0: one less than the processors online, at least
 * one) and at most queue jobs waiting for one. Threads start with the
 * first job. wake and discard may be NULL. NULL on OOM.
 */
struct auth_pool *auth_pool_new(unsigned threads, unsigned queue, auth_pool_wake_fn wake,
				auth_pool_discard_fn discard, void *arg);
/* One less than the processors online, at least one: the owner's thread
 * keeps a core. */
unsigned auth_pool_default_threads(void);
/* The worker count and queue bound in effect. */
unsigned auth_pool_threads(const struct auth_pool *p);
unsigned auth_pool_queue(const struct auth_pool *p);

/* Queues j. Returns 0, or -1 when the pool is full (every worker busy and
 * the queue at its bound: the owner refuses the request rather than
 * wait), or could not start a thread. Never blocks on the work. */
int auth_pool_submit(struct auth_pool *p, struct auth_job *j);

/* The job for key, if any, is not wanted any more: a waiting one never
 * runs, a running one's result is ignored; either comes back through
 * the next drain with cancelled set. Returns whether there was one. */
bool auth_pool_cancel(struct auth_pool *p, const void *key);

/* Hands every finished job to done (owner's thread). Returns how many. */
size_t auth_pool_drain(struct auth_pool *p, auth_pool_done_fn done, void *ctx);

/* Jobs submitted and not yet handed back. */
size_t auth_pool_pending(const struct auth_pool *p);

/* Stops the pool without waiting for a running job: every job waiting or
 * finished goes to done, cancelled; a running one goes to discard when it
 * ends, and its worker exits (the last one frees what the pool keeps).
 * wake is never called after this returns. auth_pool_free(NULL, ...) does
 * nothing. */
void auth_pool_free(struct auth_pool *p, auth_pool_done_fn done, void *ctx);

#endif
