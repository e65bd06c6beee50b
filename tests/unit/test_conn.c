/*
 * test_conn.c - the engine half's time bounds on connections
 * (transport/conn.c: conn_expire), with the clock readings the loop
 * really takes: the tick reads the clock once, a connection closed during
 * the tick reads it again.
 */
#include <stdint.h>
#include <stdlib.h>

#include "runner.h"
#include "transport/broker.h"
#include "transport/conn.h"

static struct midge *test_midge(void)
{
	struct midge *m = calloc(1, sizeof *m);
	CU_ASSERT_FATAL(m != NULL);
	m->conf.connect_timeout = 10;
	m->started_ms = broker_now_ms() - 60000;
	return m;
}

static void test_midge_free(struct midge *m)
{
	free(m->dirty);
	free(m);
}

/* A connection closed in a tick is stamped a millisecond or more after
 * the tick's own reading: it is young, not 49 days old, and its output
 * keeps its grace period (CONNACKs were once lost this way). */
static void test_closed_after_tick_began(void)
{
	struct midge *m = test_midge();
	struct conn *c = calloc(1, sizeof *c);
	CU_ASSERT_FATAL(c != NULL);
	uint64_t tick = broker_now_ms() - 3; /* the tick began 3 ms ago */
	conn_close(m, c);
	CU_ASSERT_TRUE(c->closing);
	conn_expire(m, tick);
	CU_ASSERT_FALSE(c->tear);
	CU_ASSERT_TRUE(c->in_grace);
	conn_expire(m, tick + CLOSE_GRACE_MS);
	CU_ASSERT_FALSE(c->tear);
	/* past the grace period it is torn down */
	conn_expire(m, broker_now_ms() + CLOSE_GRACE_MS + 10);
	CU_ASSERT_TRUE(c->tear);
	CU_ASSERT_FALSE(c->in_grace);
	free(c);
	test_midge_free(m);
}

/* The same for a connection that has not sent CONNECT yet: accepted
 * after the tick's reading, it is not past connect_timeout. */
static void test_pre_connect_after_tick_began(void)
{
	struct midge *m = test_midge();
	struct conn *c = calloc(1, sizeof *c);
	CU_ASSERT_FATAL(c != NULL);
	uint64_t now = broker_now_ms();
	c->phase_since_ms = broker_rel_ms(m, now);
	c->in_pre = true;
	conn_list_append(&m->pre, c);
	conn_expire(m, now - 2);
	CU_ASSERT_FALSE(c->tear);
	conn_expire(m, now + 9999);
	CU_ASSERT_FALSE(c->tear);
	conn_expire(m, now + 10000);
	CU_ASSERT_TRUE(c->tear);
	CU_ASSERT_FALSE(c->in_pre);
	free(c);
	test_midge_free(m);
}

static const struct test_case cases[] = {
	{"closed after the tick began: keeps its grace period", test_closed_after_tick_began},
	{"accepted after the tick began: keeps its connect_timeout",
	 test_pre_connect_after_tick_began},
	{NULL, NULL},
};

static const struct test_suite conn_suites[] = {
	{"conn", cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(conn_suites)
