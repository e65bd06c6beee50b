/*
 * test_ioq.c - the record queue between the engine and the I/O threads
 * (transport/ioq.c) and the input chunks they share (transport/chunk.c),
 * alone and between two real threads. Run under ThreadSanitizer too
 * (./configure --enable-tsan): the two-thread cases are what it checks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "runner.h"
#include "transport/chunk.h"
#include "transport/ioq.h"

/* ---- one thread ------------------------------------------------------------ */

static void test_fifo_across_blocks(void)
{
	struct ioq q;
	struct ioq_rec r;
	CU_ASSERT_FATAL(ioq_init(&q) == 0);
	CU_ASSERT_FALSE(ioq_pop(&q, &r));
	/* three blocks and a bit, in two rounds: the second reuses blocks */
	for (int round = 0; round < 2; round++) {
		for (uint32_t i = 0; i < 3 * IOQ_BLOCK_RECS + 5; i++) {
			struct ioq_rec w = {.op = 1, .len = i, .p = &q};
			CU_ASSERT_FATAL(ioq_push(&q, &w) == 0);
		}
		for (uint32_t i = 0; i < 3 * IOQ_BLOCK_RECS + 5; i++) {
			CU_ASSERT_FATAL(ioq_pop(&q, &r));
			CU_ASSERT_EQUAL(r.len, i);
			CU_ASSERT_PTR_EQUAL(r.p, &q);
		}
		CU_ASSERT_FALSE(ioq_pop(&q, &r));
	}
	ioq_free(&q);
}

static void test_interleaved(void)
{
	struct ioq q;
	struct ioq_rec r;
	uint32_t next_in = 0, next_out = 0;
	CU_ASSERT_FATAL(ioq_init(&q) == 0);
	/* push 3, pop 2, across many block boundaries */
	for (int step = 0; step < 1000; step++) {
		for (int k = 0; k < 3; k++) {
			struct ioq_rec w = {.len = next_in++};
			CU_ASSERT_FATAL(ioq_push(&q, &w) == 0);
		}
		for (int k = 0; k < 2; k++) {
			CU_ASSERT_FATAL(ioq_pop(&q, &r));
			CU_ASSERT_EQUAL_FATAL(r.len, next_out++);
		}
	}
	while (ioq_pop(&q, &r))
		CU_ASSERT_EQUAL_FATAL(r.len, next_out++);
	CU_ASSERT_EQUAL(next_in, next_out);
	ioq_free(&q);
}

/* A chunk goes back to its pool only when the filler moved on and every
 * read made of it was given back, in any order. */
static void test_chunk_lifetime(void)
{
	struct chunk_pool p;
	uint32_t room;
	chunk_pool_init(&p, 2);
	uint8_t *a = chunk_room(&p, &room);
	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL(room, CHUNK_SIZE);
	struct chunk *c1 = chunk_take(&p, 100);
	uint8_t *b = chunk_room(&p, &room);
	CU_ASSERT_PTR_EQUAL(b, a + 100); /* reads share the chunk */
	CU_ASSERT_EQUAL(chunk_take(&p, CHUNK_SIZE - 100 - CHUNK_MIN_ROOM + 1), c1);
	/* too little room left: a second chunk; the first is retired */
	uint8_t *d = chunk_room(&p, &room);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT_EQUAL(room, CHUNK_SIZE);
	struct chunk *c2 = chunk_take(&p, 10);
	CU_ASSERT_PTR_NOT_EQUAL(c1, c2);
	/* the budget is 2 chunks: a third cannot be had while c1's reads
	 * are held */
	CU_ASSERT_EQUAL(chunk_take(&p, CHUNK_SIZE - 10 - CHUNK_MIN_ROOM + 1), c2);
	CU_ASSERT_PTR_NULL(chunk_room(&p, &room));
	CU_ASSERT_TRUE(atomic_load(&p.starved));
	/* giving back one of c1's two reads is not enough ... */
	CU_ASSERT_FALSE(chunk_put(&p, c1, 1));
	CU_ASSERT_PTR_NULL(chunk_room(&p, &room));
	/* ... the second brings it back, and the starved filler is told */
	CU_ASSERT_TRUE(chunk_put(&p, c1, 1));
	CU_ASSERT_PTR_EQUAL(chunk_room(&p, &room), c1->data);
	CU_ASSERT_FALSE(atomic_load(&p.starved));
	chunk_put(&p, c2, 2);
	chunk_pool_clear(&p);
}

/* ---- two threads -------------------------------------------------------- */

#define STRESS_RECS 2000000u

struct stress {
	struct ioq q;
	struct chunk_pool pool;
	uv_sem_t done;
	uint32_t bad;
};

/* The producer: records numbered in order, each with a read of one
 * chunk byte carrying the number's low byte (what the engine frames). */
static void stress_producer(void *arg)
{
	struct stress *s = arg;
	for (uint32_t i = 0; i < STRESS_RECS;) {
		uint32_t room;
		uint8_t *p = chunk_room(&s->pool, &room);
		if (!p) {
			uv_sleep(0); /* the consumer gives chunks back */
			continue;
		}
		*p = (uint8_t)i;
		struct ioq_rec r = {.len = i, .q = p};
		r.p = chunk_take(&s->pool, 1);
		if (ioq_push(&s->q, &r) < 0)
			s->bad++;
		i++;
	}
}

static void test_two_threads(void)
{
	struct stress *s = calloc(1, sizeof(*s));
	uv_thread_t t;
	struct ioq_rec r;
	CU_ASSERT_FATAL(s && ioq_init(&s->q) == 0);
	chunk_pool_init(&s->pool, 4);
	CU_ASSERT_FATAL(uv_thread_create(&t, stress_producer, s) == 0);
	uint32_t next = 0;
	uint64_t spins = 0;
	while (next < STRESS_RECS && spins < 4000000000ull) {
		if (!ioq_pop(&s->q, &r)) {
			spins++;
			continue;
		}
		if (r.len != next || *(uint8_t *)r.q != (uint8_t)next)
			s->bad++;
		chunk_put(&s->pool, r.p, 1);
		next++;
	}
	uv_thread_join(&t);
	CU_ASSERT_EQUAL(next, STRESS_RECS);
	CU_ASSERT_EQUAL(s->bad, 0);
	CU_ASSERT_FALSE(ioq_pop(&s->q, &r));
	/* at most 4 chunks ever existed: input stayed within its budget */
	CU_ASSERT(s->pool.n_total <= 4);
	ioq_free(&s->q);
	chunk_pool_clear(&s->pool);
	free(s);
}

static const struct test_case cases[] = {
	{"records in order across blocks, blocks reused", test_fifo_across_blocks},
	{"interleaved push and pop", test_interleaved},
	{"a chunk returns when filled and every read is given back", test_chunk_lifetime},
	{"two threads: every record once, in order, input within budget", test_two_threads},
	{NULL, NULL},
};

static const struct test_suite ioq_suites[] = {
	{"ioq", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(ioq_suites)
