/*
 * test_flight.c - engine/flight.c against a plain model: random operations
 * on the outgoing ring and the incoming QoS 2 id set, checked after each
 * step against a bitmap of which ids are in use. The engine-level tests
 * (test_engine.c) show the protocol; these reach the corners a protocol
 * test rarely does: probe runs that wrap the table, deletions in the
 * middle of a run, ids wrapping past 65535.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "tests/unit/runner.h"

static uint32_t rng = 12345;

static uint32_t next_rand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng;
}

/* Many ids in a small id range, so that home cells collide and probe runs
 * are long; deletions in random order. */
static void t_rel_set_model(void)
{
	struct session *s = calloc(1, sizeof *s);
	static bool in[65536];
	memset(in, 0, sizeof in);
	unsigned n = 0;
	for (unsigned step = 0; step < 200000; step++) {
		uint16_t id = (uint16_t)(next_rand() % 3000 + 1);
		if (next_rand() % 2) {
			if (!in[id]) {
				CU_ASSERT_EQUAL_FATAL(rel_insert(s, id), 0);
				in[id] = true;
				n++;
			}
		} else {
			CU_ASSERT_EQUAL_FATAL(rel_delete(s, id), in[id]);
			if (in[id])
				n--;
			in[id] = false;
		}
		CU_ASSERT_EQUAL_FATAL(s->n_rel, n);
		uint16_t probe = (uint16_t)(next_rand() % 3000 + 1);
		CU_ASSERT_EQUAL_FATAL(rel_has(s, probe), in[probe]);
	}
	for (unsigned id = 1; id <= 3000; id++)
		CU_ASSERT_EQUAL_FATAL(rel_has(s, (uint16_t)id), in[id]);
	CU_ASSERT_FALSE(rel_has(s, 0));
	free(s->rel);
	free(s);
}

/* A message that is never freed: its references only count. */
static struct emsg *fake_message(uint32_t len)
{
	static struct {
		struct frame f;
		uint8_t data[64];
	} payload;
	static struct emsg m;
	payload.f.len = len;
	m.refs = 1u << 30;
	m.payload = &payload.f;
	m.topic_len = 4;
	return &m;
}

/* The ring: deliveries go out with consecutive ids, acknowledgements come
 * mostly oldest first but sometimes out of order; ids wrap several times.
 * flight_find must find exactly the ids in flight. */
static void t_flight_ring_model(void)
{
	struct engine *e = calloc(1, sizeof *e);
	struct session *s = calloc(1, sizeof *s);
	static bool in[65536];
	memset(in, 0, sizeof in);
	uint16_t expect_pid = 1;
	const uint32_t w = 100;
	struct emsg *m = fake_message(10);
	for (unsigned step = 0; step < 400000; step++) {
		if (flight_room(e, s, w, emsg_size(m)) && next_rand() % 2) {
			struct slot *sl = flight_reserve(s);
			CU_ASSERT_PTR_NOT_NULL_FATAL(sl);
			CU_ASSERT_EQUAL_FATAL(sl->pid, expect_pid);
			CU_ASSERT_FALSE_FATAL(in[sl->pid]);
			expect_pid = expect_pid == 65535 ? 1 : expect_pid + 1;
			memset(&sl->d, 0, sizeof sl->d);
			sl->d.m = m;
			sl->state = SLOT_PUBACK;
			in[sl->pid] = true;
			flight_commit(e, s);
		} else if (s->n_inflight) {
			/* mostly the oldest, sometimes any position */
			uint32_t k = next_rand() % 8 ? 0 : next_rand() % s->flight_span;
			struct slot *sl = flight_at(s, k);
			if (!sl->state)
				continue;
			CU_ASSERT_PTR_EQUAL_FATAL(flight_find(s, sl->pid), sl);
			in[sl->pid] = false;
			flight_remove(e, s, sl);
		}
		uint16_t probe = (uint16_t)(expect_pid - 1 - next_rand() % 300);
		struct slot *f = flight_find(s, probe);
		CU_ASSERT_EQUAL_FATAL(f != NULL, probe != 0 && in[probe]);
		if (f)
			CU_ASSERT_EQUAL_FATAL(f->pid, probe);
		CU_ASSERT_TRUE_FATAL(s->flight_span <= 2 * w);
		CU_ASSERT_EQUAL_FATAL(e->st.inflight_count, s->n_inflight);
		CU_ASSERT_EQUAL_FATAL(s->flight_bytes, (uint64_t)s->n_inflight * emsg_size(m));
	}
	CU_ASSERT_TRUE(expect_pid != 1); /* wrapped at least once on the way */
	flight_free(e, s);
	CU_ASSERT_EQUAL(e->st.inflight_count, 0);
	free(s);
	free(e);
}

/* max_inflight_bytes: messages go in while their bytes fit; an empty
 * window takes one message whatever its size; a PUBREC (the message
 * released, the slot kept) gives the bytes back. */
static void t_flight_bytes(void)
{
	struct engine *e = calloc(1, sizeof *e);
	struct session *s = calloc(1, sizeof *s);
	struct emsg *m = fake_message(26); /* 30 bytes with its topic */
	e->cfg.max_inflight_bytes = 100;
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_TRUE_FATAL(flight_room(e, s, 1000, 30));
		struct slot *sl = flight_reserve(s);
		memset(&sl->d, 0, sizeof sl->d);
		sl->d.m = m;
		sl->state = SLOT_PUBREC;
		flight_commit(e, s);
	}
	CU_ASSERT_EQUAL(s->flight_bytes, 90);
	CU_ASSERT_FALSE(flight_room(e, s, 1000, 30)); /* 120 > 100 */
	CU_ASSERT_TRUE(flight_room(e, s, 1000, 10));
	flight_release_message(s, flight_at(s, 0));
	CU_ASSERT_EQUAL(s->flight_bytes, 60);
	CU_ASSERT_TRUE(flight_room(e, s, 1000, 30));
	flight_free(e, s);
	CU_ASSERT_EQUAL(s->flight_bytes, 0);
	CU_ASSERT_TRUE(flight_room(e, s, 1000, 5000)); /* empty: any size */
	CU_ASSERT_FALSE(flight_room(e, s, 0, 10));      /* no window at all */
	free(s);
	free(e);
}

static const struct test_case flight_cases[] = {
	{"incoming QoS 2 ids: set against a model", t_rel_set_model},
	{"outgoing window: ring against a model", t_flight_ring_model},
	{"max_inflight_bytes", t_flight_bytes},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"flight", flight_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
