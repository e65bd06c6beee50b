/*
 * test_pool.c - auth/pool.c: every job comes back exactly once, results
 * intact; concurrency never exceeds the worker count; a full pool refuses
 * at once; a cancelled waiting job never runs and a cancelled running one
 * comes back marked; freeing hands back what is left. Run under
 * ThreadSanitizer in the --enable-tsan build (build.sh runs it).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/pool.h"
#include "tests/unit/runner.h"

struct tjob {
	struct auth_job job; /* first */
	int input;
	atomic_int *ran;     /* runs of this job */
	int gate;            /* wait for the gate to open before finishing */
	int came_back;       /* owner's count */
};

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_open;
static atomic_int running_now, running_max, started_runs;

static pthread_mutex_t wake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake_cv = PTHREAD_COND_INITIALIZER;
static int wakes;

static void on_wake(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&wake_mu);
	wakes++;
	pthread_cond_signal(&wake_cv);
	pthread_mutex_unlock(&wake_mu);
}

static void run_job(struct auth_job *j)
{
	struct tjob *t = (struct tjob *)j;
	int now = atomic_fetch_add(&running_now, 1) + 1;
	int max = atomic_load(&running_max);
	while (now > max && !atomic_compare_exchange_weak(&running_max, &max, now))
		;
	atomic_fetch_add(&started_runs, 1);
	if (t->gate) {
		pthread_mutex_lock(&gate_mu);
		while (!gate_open)
			pthread_cond_wait(&gate_cv, &gate_mu);
		pthread_mutex_unlock(&gate_mu);
	}
	/* a little work */
	unsigned x = (unsigned)t->input;
	for (int i = 0; i < 1000; i++)
		x = x * 1103515245u + 12345u;
	j->result = t->input * 2 + (int)(x & 0);
	if (t->ran)
		atomic_fetch_add(t->ran, 1);
	atomic_fetch_sub(&running_now, 1);
}

static void open_gate(int open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static void reset(void)
{
	open_gate(0);
	atomic_store(&running_now, 0);
	atomic_store(&running_max, 0);
	atomic_store(&started_runs, 0);
	pthread_mutex_lock(&wake_mu);
	wakes = 0;
	pthread_mutex_unlock(&wake_mu);
}

static int back_total, back_cancelled;

static void on_done(void *ctx, struct auth_job *j)
{
	(void)ctx;
	struct tjob *t = (struct tjob *)j;
	t->came_back++;
	back_total++;
	if (j->cancelled)
		back_cancelled++;
	else
		CU_ASSERT_EQUAL(j->result, t->input * 2);
}

/* Waits up to ms for a worker's wake. */
static void wait_wake(int ms)
{
	struct timespec end;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_nsec += (long)ms * 1000000L;
	end.tv_sec += end.tv_nsec / 1000000000L;
	end.tv_nsec %= 1000000000L;
	pthread_mutex_lock(&wake_mu);
	while (wakes == 0 && pthread_cond_timedwait(&wake_cv, &wake_mu, &end) == 0)
		;
	wakes = 0;
	pthread_mutex_unlock(&wake_mu);
}

/* Drains until `want` jobs came back in all, waiting for wakes; bounded
 * to 10 s. */
static void drain_until(struct auth_pool *p, int want)
{
	struct timespec end;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += 10;
	while (back_total < want) {
		pthread_mutex_lock(&wake_mu);
		while (wakes == 0 &&
		       pthread_cond_timedwait(&wake_cv, &wake_mu, &end) == 0)
			;
		int timed_out = wakes == 0;
		wakes = 0;
		pthread_mutex_unlock(&wake_mu);
		auth_pool_drain(p, on_done, NULL);
		if (timed_out && back_total < want)
			break;
	}
	CU_ASSERT_EQUAL(back_total, want);
}

static struct tjob *tjobs(size_t n, atomic_int *ran)
{
	struct tjob *t = calloc(n, sizeof(*t));
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	for (size_t i = 0; i < n; i++) {
		t[i].job.run = run_job;
		t[i].job.key = &t[i];
		t[i].input = (int)i;
		t[i].ran = &ran[i];
	}
	return t;
}

/* 2000 jobs through 3 workers and a queue of 64, resubmitting as the
 * pool frees up: each comes back once with its result, never more than
 * 3 at a time. */
static void test_many_jobs(void)
{
	enum { N = 2000 };
	reset();
	back_total = back_cancelled = 0;
	atomic_int *ran = calloc(N, sizeof(*ran));
	struct tjob *t = tjobs(N, ran);
	struct auth_pool *p = auth_pool_new(3, 64, on_wake, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(auth_pool_threads(p), 3);
	size_t next = 0;
	int refused = 0;
	for (int guard = 0; next < N && guard < 100000; guard++) {
		while (next < N && auth_pool_submit(p, &t[next].job) == 0)
			next++;
		CU_ASSERT(auth_pool_pending(p) <= 3 + 64);
		if (next < N) {
			refused++;
			wait_wake(100);
		}
		auth_pool_drain(p, on_done, NULL);
	}
	drain_until(p, N);
	for (size_t i = 0; i < N; i++) {
		CU_ASSERT_EQUAL(t[i].came_back, 1);
		CU_ASSERT_EQUAL(atomic_load(&ran[i]), 1);
	}
	CU_ASSERT(atomic_load(&running_max) <= 3);
	CU_ASSERT(refused > 0);
	CU_ASSERT_EQUAL(back_cancelled, 0);
	auth_pool_free(p, on_done, NULL);
	CU_ASSERT_EQUAL(back_total, N);
	free(t);
	free(ran);
}

/* Workers held at a gate: the pool takes threads + queue jobs and
 * refuses the next at once; cancelling a waiting job makes room, it never
 * runs and comes back marked; a cancelled running job comes back marked
 * after it finishes. */
static void test_full_and_cancel(void)
{
	enum { THREADS = 2, QUEUE = 3, N = THREADS + QUEUE + 1 };
	reset();
	back_total = back_cancelled = 0;
	atomic_int ran[N] = {0};
	struct tjob *t = tjobs(N, ran);
	for (int i = 0; i < N; i++)
		t[i].gate = 1;
	struct auth_pool *p = auth_pool_new(THREADS, QUEUE, on_wake, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	for (int i = 0; i < THREADS + QUEUE; i++)
		CU_ASSERT_EQUAL(auth_pool_submit(p, &t[i].job), 0);
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[N - 1].job), -1);
	/* both workers are in a job (at the gate) before cancelling */
	for (int spin = 0; spin < 1000000 && atomic_load(&started_runs) < THREADS; spin++)
		sched_yield();
	CU_ASSERT_EQUAL(atomic_load(&started_runs), THREADS);
	/* the last queued job never runs */
	CU_ASSERT(auth_pool_cancel(p, &t[THREADS + QUEUE - 1]));
	CU_ASSERT(!auth_pool_cancel(p, &t[THREADS + QUEUE - 1]));
	CU_ASSERT(!auth_pool_cancel(p, &t[N - 1]));
	/* a running job: its result is not wanted */
	CU_ASSERT(auth_pool_cancel(p, &t[0]));
	drain_until(p, 1);
	CU_ASSERT_EQUAL(back_cancelled, 1);
	CU_ASSERT_EQUAL(t[THREADS + QUEUE - 1].came_back, 1);
	/* drained: room again */
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[N - 1].job), 0);
	open_gate(1);
	drain_until(p, N);
	CU_ASSERT_EQUAL(atomic_load(&ran[THREADS + QUEUE - 1]), 0);
	CU_ASSERT_EQUAL(atomic_load(&ran[0]), 1);
	CU_ASSERT_EQUAL(back_cancelled, 2);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(t[i].came_back, 1);
	auth_pool_free(p, on_done, NULL);
	free(t);
}

static atomic_int discarded;

static void on_discard(struct auth_job *j)
{
	struct tjob *t = (struct tjob *)j;
	/* the worker's own: nothing else touches the job now */
	t->came_back++;
	atomic_fetch_add(&discarded, 1);
}

/* Freeing with jobs waiting and running does not wait for the running
 * ones: the waiting ones come back cancelled at once, never run; the
 * running ones end later in discard, on their workers; no wake after the
 * free. */
static void test_free_hands_back(void)
{
	enum { THREADS = 2, N = 6 };
	reset();
	back_total = back_cancelled = 0;
	atomic_store(&discarded, 0);
	atomic_int ran[N] = {0};
	struct tjob *t = tjobs(N, ran);
	for (int i = 0; i < N; i++)
		t[i].gate = 1;
	struct auth_pool *p = auth_pool_new(THREADS, 8, on_wake, on_discard, NULL);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(auth_pool_submit(p, &t[i].job), 0);
	for (int spin = 0; spin < 1000000 && atomic_load(&started_runs) < THREADS; spin++)
		sched_yield();
	auth_pool_free(p, on_done, NULL); /* returns while two jobs run */
	CU_ASSERT_EQUAL(back_total, N - THREADS);
	CU_ASSERT_EQUAL(back_cancelled, N - THREADS);
	pthread_mutex_lock(&wake_mu);
	wakes = 0;
	pthread_mutex_unlock(&wake_mu);
	open_gate(1);
	for (int spin = 0; spin < 2000 && atomic_load(&discarded) < THREADS; spin++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	CU_ASSERT_EQUAL(atomic_load(&discarded), THREADS);
	pthread_mutex_lock(&wake_mu);
	CU_ASSERT_EQUAL(wakes, 0);
	pthread_mutex_unlock(&wake_mu);
	int came = 0;
	for (int i = 0; i < N; i++)
		came += t[i].came_back;
	CU_ASSERT_EQUAL(came, N);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(atomic_load(&ran[i]), i < THREADS ? 1 : 0);
	/* the workers leave after their discard; give them a moment before
	 * the memory of the jobs goes */
	struct timespec settle = {0, 50000000};
	nanosleep(&settle, NULL);
	free(t);
	/* the default worker count is at least one */
	p = auth_pool_new(0, 1, NULL, NULL, NULL);
	CU_ASSERT(auth_pool_threads(p) >= 1);
	auth_pool_free(p, NULL, NULL);
}

static int own_done;
static atomic_int own_discarded;

static void on_own_done(struct auth_job *j)
{
	struct tjob *t = (struct tjob *)j;
	t->came_back++;
	own_done++;
}

static void on_own_discard(struct auth_job *j)
{
	(void)j;
	atomic_fetch_add(&own_discarded, 1);
}

/* A job with its own done and discard (a second owner sharing the pool)
 * comes back through them, never through the pool's, finished, cancelled
 * or discarded after the pool is freed. */
static void test_own_callbacks(void)
{
	enum { N = 4 };
	reset();
	back_total = back_cancelled = own_done = 0;
	atomic_store(&discarded, 0);
	atomic_store(&own_discarded, 0);
	atomic_int ran[N] = {0};
	struct tjob *t = tjobs(N, ran);
	for (int i = 0; i < N; i++) {
		t[i].job.done = on_own_done;
		t[i].job.discard = on_own_discard;
	}
	struct auth_pool *p = auth_pool_new(1, 8, on_wake, on_discard, NULL);
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[0].job), 0);
	for (int spin = 0; spin < 200 && own_done < 1; spin++) {
		wait_wake(50);
		auth_pool_drain(p, on_done, NULL);
	}
	CU_ASSERT_EQUAL(own_done, 1);
	CU_ASSERT_EQUAL(back_total, 0);
	/* one running behind the gate, one waiting and cancelled, one left
	 * for the free */
	t[1].gate = 1;
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[1].job), 0);
	for (int spin = 0; spin < 1000000 && atomic_load(&started_runs) < 2; spin++)
		sched_yield();
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[2].job), 0);
	CU_ASSERT_EQUAL(auth_pool_submit(p, &t[3].job), 0);
	CU_ASSERT(auth_pool_cancel(p, &t[2]));
	auth_pool_drain(p, on_done, NULL);
	CU_ASSERT_EQUAL(own_done, 2);
	CU_ASSERT(t[2].job.cancelled);
	auth_pool_free(p, on_done, NULL);
	CU_ASSERT_EQUAL(own_done, 3);
	open_gate(1);
	for (int spin = 0; spin < 2000 && atomic_load(&own_discarded) < 1; spin++) {
		struct timespec ms = {0, 1000000};
		nanosleep(&ms, NULL);
	}
	CU_ASSERT_EQUAL(atomic_load(&own_discarded), 1);
	CU_ASSERT_EQUAL(atomic_load(&discarded), 0);
	CU_ASSERT_EQUAL(back_total, 0);
	struct timespec settle = {0, 50000000};
	nanosleep(&settle, NULL);
	free(t);
}

static const struct test_case cases[] = {
	{"2000 jobs, bounded concurrency, each back once", test_many_jobs},
	{"full pool refuses, cancel waiting and running", test_full_and_cancel},
	{"free hands back every job", test_free_hands_back},
	{"a job's own done and discard", test_own_callbacks},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"pool", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
