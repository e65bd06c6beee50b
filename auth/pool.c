/*
 * pool.c - worker threads for slow authentication work: a queue of jobs
 * bounded in length, a bounded number of workers, finished jobs handed
 * back to the owner's thread. One mutex guards the queue, the finished
 * list and every job's state; the key table (for cancel) is the owner's
 * alone and takes no lock. Workers are detached and hold a reference to
 * the pool each, so freeing it never waits for a hash to end.
 */
#include "auth/pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

enum { JOB_QUEUED = 1, JOB_RUNNING, JOB_DONE };

/* A doubly linked list of jobs, oldest first. */
struct job_list {
	struct auth_job *head, *tail;
	size_t n;
};

struct auth_pool {
	pthread_mutex_t mu;
	pthread_cond_t work;  /* a job was queued, or stop */
	struct job_list queue; /* waiting for a worker */
	struct job_list done;  /* finished (or cancelled), waiting for the owner */
	size_t running;
	bool stop;
	atomic_uint refs; /* the owner's, and one per worker */
	unsigned nthreads, started, queue_max;
	auth_pool_wake_fn wake;
	auth_pool_discard_fn discard;
	void *arg;
	/* owner's thread only */
	struct auth_job **keys; /* buckets by key, chained through key_next */
	size_t nkeys;           /* a power of two */
	size_t pending;         /* submitted, not yet handed back */
};

static void list_push(struct job_list *l, struct auth_job *j)
{
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static void list_remove(struct job_list *l, struct auth_job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->next = j->prev = NULL;
	l->n--;
}

/* ---- the owner's key table ---------------------------------------------- */

static size_t key_bucket(const struct auth_pool *p, const void *key)
{
	uintptr_t k = (uintptr_t)key;
	k ^= k >> 17;
	k *= (uintptr_t)0x9E3779B97F4A7C15ull;
	return (size_t)(k >> 7) & (p->nkeys - 1);
}

static void key_add(struct auth_pool *p, struct auth_job *j)
{
	size_t b = key_bucket(p, j->key);
	j->key_next = p->keys[b];
	p->keys[b] = j;
}

/* Unlinks and returns the job for key, or NULL. */
static struct auth_job *key_take(struct auth_pool *p, const void *key)
{
	struct auth_job **pp = &p->keys[key_bucket(p, key)];
	for (; *pp; pp = &(*pp)->key_next) {
		struct auth_job *j = *pp;
		if (j->key == key) {
			*pp = j->key_next;
			j->key_next = NULL;
			return j;
		}
	}
	return NULL;
}

/* ---- workers --------------------------------------------------------------- */

static void pool_destroy(struct auth_pool *p)
{
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->mu);
	free(p->keys);
	free(p);
}

static void pool_unref(struct auth_pool *p)
{
	if (atomic_fetch_sub(&p->refs, 1) == 1)
		pool_destroy(p);
}

static void *pool_worker(void *arg)
{
	struct auth_pool *p = arg;
	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stop && !p->queue.head)
			pthread_cond_wait(&p->work, &p->mu);
		if (p->stop)
			break;
		struct auth_job *j = p->queue.head;
		list_remove(&p->queue, j);
		j->state = JOB_RUNNING;
		p->running++;
		pthread_mutex_unlock(&p->mu);
		j->run(j);
		pthread_mutex_lock(&p->mu);
		p->running--;
		if (p->stop) {
			/* the owner is gone: the job ends here */
			pthread_mutex_unlock(&p->mu);
			if (j->discard)
				j->discard(j);
			else if (p->discard)
				p->discard(j);
			pthread_mutex_lock(&p->mu);
			break;
		}
		j->state = JOB_DONE;
		bool first = p->done.head == NULL;
		list_push(&p->done, j);
		/* Under the lock, so no wake can happen after auth_pool_free()
		 * (which takes it to stop the pool) returned: the owner closes
		 * what wake uses then. uv_async_send takes no lock. */
		if (first && p->wake)
			p->wake(p->arg);
	}
	pthread_mutex_unlock(&p->mu);
	pool_unref(p);
	return NULL;
}

unsigned auth_pool_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	/* the engine thread keeps a core of its own */
	return n > 1 ? (unsigned)(n - 1) : 1u;
}

struct auth_pool *auth_pool_new(unsigned threads, unsigned queue, auth_pool_wake_fn wake,
				auth_pool_discard_fn discard, void *arg)
{
	struct auth_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->nthreads = threads ? threads : auth_pool_default_threads();
	p->queue_max = queue;
	p->wake = wake;
	p->discard = discard;
	p->arg = arg;
	atomic_init(&p->refs, 1);
	size_t cap = (size_t)p->nthreads + queue;
	p->nkeys = 16;
	while (p->nkeys < cap)
		p->nkeys *= 2;
	p->keys = calloc(p->nkeys, sizeof(*p->keys));
	bool mu = p->keys && pthread_mutex_init(&p->mu, NULL) == 0;
	if (!mu || pthread_cond_init(&p->work, NULL) != 0) {
		if (mu)
			pthread_mutex_destroy(&p->mu);
		free(p->keys);
		free(p);
		return NULL;
	}
	return p;
}

/* One more worker, detached, holding a reference. Under the lock. */
static int pool_start_worker(struct auth_pool *p)
{
	pthread_t tid;
	pthread_attr_t attr;
	if (pthread_attr_init(&attr) != 0)
		return -1;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	atomic_fetch_add(&p->refs, 1);
	int rc = pthread_create(&tid, &attr, pool_worker, p);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		atomic_fetch_sub(&p->refs, 1);
		return -1;
	}
	p->started++;
	return 0;
}

unsigned auth_pool_threads(const struct auth_pool *p)
{
	return p->nthreads;
}

unsigned auth_pool_queue(const struct auth_pool *p)
{
	return p->queue_max;
}

size_t auth_pool_pending(const struct auth_pool *p)
{
	return p->pending;
}

int auth_pool_submit(struct auth_pool *p, struct auth_job *j)
{
	/*
	 * Every job not yet handed back counts, the finished ones too: so
	 * what the pool holds is bounded by threads + queue whatever the
	 * owner's pace.
	 */
	if (p->pending >= (size_t)p->nthreads + p->queue_max)
		return -1;
	pthread_mutex_lock(&p->mu);
	/* running or waiting: at most a job per worker and queue_max more */
	bool full = p->running + p->queue.n >= (size_t)p->nthreads + p->queue_max;
	/* one more worker, while there is work for it */
	if (!full && p->started < p->nthreads && p->started < p->running + p->queue.n + 1 &&
	    pool_start_worker(p) < 0 && p->started == 0)
		full = true;
	if (!full) {
		j->cancelled = false;
		j->state = JOB_QUEUED;
		list_push(&p->queue, j);
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->mu);
	if (full)
		return -1;
	j->key_next = NULL;
	key_add(p, j);
	p->pending++;
	return 0;
}

bool auth_pool_cancel(struct auth_pool *p, const void *key)
{
	struct auth_job *j = key_take(p, key);
	if (!j)
		return false;
	bool wake = false;
	pthread_mutex_lock(&p->mu);
	j->cancelled = true;
	if (j->state == JOB_QUEUED) {
		/* never runs: straight to the owner */
		list_remove(&p->queue, j);
		j->state = JOB_DONE;
		wake = p->done.head == NULL;
		list_push(&p->done, j);
	}
	pthread_mutex_unlock(&p->mu);
	if (wake && p->wake)
		p->wake(p->arg);
	return true;
}

size_t auth_pool_drain(struct auth_pool *p, auth_pool_done_fn done, void *ctx)
{
	pthread_mutex_lock(&p->mu);
	struct auth_job *list = p->done.head;
	p->done.head = p->done.tail = NULL;
	p->done.n = 0;
	pthread_mutex_unlock(&p->mu);
	size_t n = 0;
	while (list) {
		struct auth_job *j = list;
		list = j->next;
		j->next = j->prev = NULL;
		/* a job cancelled while it waited here was taken from the
		 * table by the cancel; otherwise it leaves the table now */
		if (!j->cancelled)
			key_take(p, j->key);
		p->pending--;
		n++;
		if (j->done)
			j->done(j);
		else
			done(ctx, j);
	}
	return n;
}

void auth_pool_free(struct auth_pool *p, auth_pool_done_fn done, void *ctx)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	/* What waited never runs; running jobs end in discard. */
	while (p->queue.head) {
		struct auth_job *j = p->queue.head;
		list_remove(&p->queue, j);
		j->state = JOB_DONE;
		list_push(&p->done, j);
	}
	for (struct auth_job *j = p->done.head; j; j = j->next)
		j->cancelled = true;
	pthread_mutex_unlock(&p->mu);
	for (size_t b = 0; b < p->nkeys; b++)
		p->keys[b] = NULL;
	if (done)
		auth_pool_drain(p, done, ctx);
	pool_unref(p);
}
