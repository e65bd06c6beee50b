/*
 * test_topic.c - the subscription trie and the retained store
 * (engine/topic.h): the matching examples of MQTT 5.0 section 4.7,
 * overlapping and replaced subscriptions, unsubscribe and pruning, shared
 * round robin, retained matching and ownership, and a randomized
 * comparison of both tries against a brute-force matcher.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/topic.h"
#include "engine/topic_debug.h"
#include "tests/unit/runner.h"

#define S(str) (const uint8_t *)(str), strlen(str)

/* ---- helpers ---------------------------------------------------------- */

enum { REC_MAX = 4096 };

/* What a match reported, in order. decline[] lists subscribers that refuse
 * shared deliveries (as the engine does for an offline member). */
struct rec {
	size_t n;
	void *sub[REC_MAX];
	uint8_t opt[REC_MAX];
	uint32_t id[REC_MAX];
	bool shared[REC_MAX];
	void *decline[8];
	size_t ndecline;
	size_t offered;
};

static bool rec_cb(void *ctx, void *subscriber, uint8_t options, uint32_t sub_id, bool shared)
{
	struct rec *r = ctx;
	r->offered++;
	for (size_t i = 0; i < r->ndecline; i++)
		if (shared && r->decline[i] == subscriber)
			return false;
	if (r->n < REC_MAX) {
		r->sub[r->n] = subscriber;
		r->opt[r->n] = options;
		r->id[r->n] = sub_id;
		r->shared[r->n] = shared;
		r->n++;
	}
	return true;
}

static struct rec *rec_match(struct topic_tree *t, const char *topic)
{
	static struct rec r;
	memset(&r, 0, sizeof(r));
	topic_tree_match(t, S(topic), rec_cb, &r);
	return &r;
}

/* rec_match() that must make exactly n calls (checked, not fatal). */
static struct rec *rec_match_n(struct topic_tree *t, const char *topic, size_t n)
{
	struct rec *r = rec_match(t, topic);
	CU_ASSERT_EQUAL(r->n, n);
	return r;
}

/* Calls for subscriber sub in r. */
static size_t rec_count(const struct rec *r, void *sub)
{
	size_t c = 0;
	for (size_t i = 0; i < r->n; i++)
		c += r->sub[i] == sub;
	return c;
}

static bool rec_has_id(const struct rec *r, uint32_t id)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->id[i] == id)
			return true;
	return false;
}

static int A, B, C, D, E;

/* ---- matching tables (MQTT 5.0 4.7 and 3.1.1 4.7) ---------------------- */

struct match_case {
	const char *spec; /* the normative statement the row illustrates */
	const char *filter;
	const char *topic;
	bool match;
};

/* One row per example, grouped by the statement it illustrates; each
 * test below runs its group. */
static const struct match_case match_cases[] = {
	/* [MQTT-4.7.1-2] multi-level wildcard: the spec's sport/tennis/player1/#
	 * examples, and "sport/#" also matching the parent level "sport". */
	{"MQTT-4.7.1-2", "sport/tennis/player1/#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"MQTT-4.7.1-2", "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"MQTT-4.7.1-2", "sport/tennis/player1/#", "sport/tennis/player2", false},
	{"MQTT-4.7.1-2", "sport/tennis/player1/#", "sport/tennis", false},
	{"MQTT-4.7.1-2", "sport/#", "sport", true},
	{"MQTT-4.7.1-2", "sport/#", "sport/", true},
	{"MQTT-4.7.1-2", "sport/#", "sports", false},
	{"MQTT-4.7.1-2", "sport/#", "sport/tennis/player1/score", true},
	{"MQTT-4.7.1-2", "#", "sport", true},
	{"MQTT-4.7.1-2", "#", "/finance", true},
	{"MQTT-4.7.1-2", "#", "/", true},
	{"MQTT-4.7.1-2", "#", "a/b/c/d/e/f/g/h", true},
	{"MQTT-4.7.1-2", "sport/tennis/#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "+/tennis/#", "sport/tennis/player1", true},
	{"MQTT-4.7.1-2", "+/tennis/#", "sport/tennis", true},
	{"MQTT-4.7.1-2", "+/#", "sport", true},
	{"MQTT-4.7.1-2", "/#", "/", true},
	{"MQTT-4.7.1-2", "/#", "/finance", true},
	{"MQTT-4.7.1-2", "/#", "finance", false},
	/* [MQTT-4.7.1-3] single-level wildcard examples. */
	{"MQTT-4.7.1-3", "sport/tennis/+", "sport/tennis/player1", true},
	{"MQTT-4.7.1-3", "sport/tennis/+", "sport/tennis/player2", true},
	{"MQTT-4.7.1-3", "sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"MQTT-4.7.1-3", "sport/+", "sport", false},
	{"MQTT-4.7.1-3", "sport/+", "sport/", true},
	{"MQTT-4.7.1-3", "sport/+/player1", "sport/tennis/player1", true},
	{"MQTT-4.7.1-3", "+", "sport", true},
	{"MQTT-4.7.1-3", "+", "/finance", false},
	{"MQTT-4.7.1-3", "+/+", "/finance", true},
	{"MQTT-4.7.1-3", "/+", "/finance", true},
	{"MQTT-4.7.1-3", "/+", "finance", false},
	{"MQTT-4.7.1-3", "+/+", "/", true},
	{"MQTT-4.7.1-3", "+", "", true},
	{"MQTT-4.7.1-3", "+/+/+", "a/b", false},
	{"MQTT-4.7.1-3", "+/b/+", "a/b/c", true},
	{"MQTT-4.7.1-3", "a/+/+/d", "a/b/c/d", true},
	{"MQTT-4.7.1-3", "a/+/+/d", "a/b/c/e", false},
	/* [MQTT-4.7.2-1] '$' topics and leading wildcards. */
	{"MQTT-4.7.2-1", "#", "$SYS/monitor/Clients", false},
	{"MQTT-4.7.2-1", "+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"MQTT-4.7.2-1", "$SYS/#", "$SYS/monitor/Clients", true},
	{"MQTT-4.7.2-1", "$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"MQTT-4.7.2-1", "$SYS/#", "$SYS", true},
	{"MQTT-4.7.2-1", "#", "$SYS", false},
	{"MQTT-4.7.2-1", "+", "$SYS", false},
	{"MQTT-4.7.2-1", "+/#", "$SYS/x", false},
	{"MQTT-4.7.2-1", "$+/x", "$SYS/x", false},
	{"MQTT-4.7.2-1", "a/+", "a/$b", true},
	{"MQTT-4.7.2-1", "a/#", "a/$b/c", true},
	{"MQTT-4.7.2-1", "#", "a$", true},
	{"MQTT-4.7.2-1", "$share/g/#", "$SYS/x", false},
	{"MQTT-4.7.2-1", "$share/g/$SYS/#", "$SYS/x", true},
	/* [MQTT-4.7.3-4] topics and filters are case sensitive; levels compare
	 * whole (no prefix matching); empty levels are levels. */
	{"MQTT-4.7.3-4", "ACCOUNTS", "ACCOUNTS", true},
	{"MQTT-4.7.3-4", "ACCOUNTS", "Accounts", false},
	{"MQTT-4.7.3-4", "Accounts payable", "Accounts payable", true},
	{"MQTT-4.7.3-4", "a/b", "a/b", true},
	{"MQTT-4.7.3-4", "a/b", "a/bc", false},
	{"MQTT-4.7.3-4", "a/bc", "a/b", false},
	{"MQTT-4.7.3-4", "a/b", "a/b/", false},
	{"MQTT-4.7.3-4", "a/b/", "a/b/", true},
	{"MQTT-4.7.3-4", "a//b", "a//b", true},
	{"MQTT-4.7.3-4", "a/+/b", "a//b", true},
	{"MQTT-4.7.3-4", "a/b", "a//b", false},
	{"MQTT-4.7.3-4", "/a", "/a", true},
	{"MQTT-4.7.3-4", "/a", "a", false},
	{"MQTT-4.7.3-4", "a", "/a", false},
	{"MQTT-4.7.3-4", "/", "/", true},
	{"MQTT-4.7.3-4", "//", "/", false},
	{"MQTT-4.7.3-4", "a/b/c/d/e/f/g", "a/b/c/d/e/f/g", true},
	{"MQTT-4.7.3-4", "a/b/c/d/e/f/g", "a/b/c/d/e/f/h", false},
	{"MQTT-4.7.3-4", "a/b/c/d/e/f/g", "a/b/c/d/e/f", false},
	{"MQTT-4.7.3-4", "\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9", true},
};

/* Runs every row of spec, each in a fresh tree holding only its filter.
 * A spec with no rows fails, so a misspelt id cannot pass empty. */
static void check_spec(const char *spec)
{
	size_t ran = 0;
	for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
		const struct match_case *mc = &match_cases[i];
		if (strcmp(mc->spec, spec) != 0)
			continue;
		struct topic_tree *t = topic_tree_new();
		CU_ASSERT_FATAL(t != NULL);
		CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(mc->filter), &A, 1, 7), 0);
		struct rec *r = rec_match(t, mc->topic);
		if (r->n != (mc->match ? 1u : 0u))
			fprintf(stderr, "%s filter '%s' topic '%s': %zu calls, expected %d\n", spec,
				mc->filter, mc->topic, r->n, mc->match);
		CU_ASSERT_EQUAL(r->n, mc->match ? 1u : 0u);
		topic_tree_free(t);
		ran++;
	}
	CU_ASSERT(ran > 0);
}

/* [MQTT-4.7.1-2] multi-level wildcard: the spec's sport/tennis/player1/#
 * examples, and "sport/#" also matching the parent level "sport". */
static void test_match_multilevel_MQTT_4_7_1_2(void)
{
	check_spec("MQTT-4.7.1-2");
}

/* [MQTT-4.7.1-3] single-level wildcard examples. */
static void test_match_singlelevel_MQTT_4_7_1_3(void)
{
	check_spec("MQTT-4.7.1-3");
}

/* [MQTT-4.7.2-1] '$' topics and leading wildcards. */
static void test_match_dollar_MQTT_4_7_2_1(void)
{
	check_spec("MQTT-4.7.2-1");
}

/* [MQTT-4.7.3-4] topics and filters are case sensitive; levels compare
 * whole (no prefix matching); empty levels are levels. */
static void test_match_literal_MQTT_4_7_3_4(void)
{
	check_spec("MQTT-4.7.3-4");
}

/* ---- subscriptions ---------------------------------------------------- */

static void deep_cb(void *ctx, void *msg)
{
	(void)msg;
	(*(size_t *)ctx)++;
}

/* Overlapping subscriptions: one call per matching subscription, each with
 * its own options and identifier; the engine merges. */
static void test_overlapping_one_call_each(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b"), &A, 0, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+"), &A, 1, 2), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("#"), &A, 2, 3), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/#"), &A, 1, 4), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("+/b"), &A, 0, 5), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b"), &B, 2, 6), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/c"), &B, 2, 7), 0);
	CU_ASSERT_EQUAL(topic_tree_count(t), 7u);
	struct rec *r = rec_match_n(t, "a/b", 6u);
	CU_ASSERT_EQUAL(rec_count(r, &A), 5u);
	CU_ASSERT_EQUAL(rec_count(r, &B), 1u);
	for (uint32_t id = 1; id <= 6; id++)
		CU_ASSERT(rec_has_id(r, id));
	for (size_t i = 0; i < r->n; i++) {
		CU_ASSERT_FALSE(r->shared[i]);
		if (r->id[i] == 3)
			CU_ASSERT_EQUAL(r->opt[i], 2);
		if (r->id[i] == 2)
			CU_ASSERT_EQUAL(r->opt[i], 1);
	}
	r = rec_match_n(t, "x/y", 1u);
	CU_ASSERT(rec_has_id(r, 3));
	topic_tree_free(t);
}

/* [MQTT-3.8.4-3] a second SUBSCRIBE with the same filter replaces the
 * options and identifier, and keeps one subscription. */
static void test_resubscribe_replaces_MQTT_3_8_4_3(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/c"), &A, 0, 10), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/c"), &A, 0x26, 11), 1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 1u);
	struct rec *r = rec_match(t, "a/b/c");
	CU_ASSERT_EQUAL_FATAL(r->n, 1u);
	CU_ASSERT_EQUAL(r->opt[0], 0x26);
	CU_ASSERT_EQUAL(r->id[0], 11u);
	/* Same filter, other subscriber: a new subscription. */
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/c"), &B, 1, 0), 0);
	CU_ASSERT_EQUAL(topic_tree_count(t), 2u);
	/* Replace also with many subscribers on the node (indexed path). */
	int many[100];
	for (int i = 0; i < 100; i++)
		CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/c"), &many[i], 0, 100 + i), 0);
	for (int i = 0; i < 100; i += 7)
		CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/c"), &many[i], 2, 500 + i), 1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 102u);
	r = rec_match_n(t, "a/x/c", 102u);
	CU_ASSERT(rec_has_id(r, 507));
	CU_ASSERT_FALSE(rec_has_id(r, 107));
	CU_ASSERT(rec_has_id(r, 108));
	topic_tree_free(t);
}

static void test_unsubscribe(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b"), &A, 0, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b"), &B, 0, 2), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b/c"), &A, 0, 3), 0);
	/* Not subscribed: wrong subscriber, a prefix node, a wildcard twin,
	 * a longer filter, a shared twin. */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b"), &C), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/+"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b/c/d"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/a/b"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 3u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b"), &A), 0);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 2u);
	struct rec *r = rec_match_n(t, "a/b", 1u);
	CU_ASSERT_EQUAL(rec_count(r, &B), 1u);
	r = rec_match_n(t, "a/b/c", 1u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b"), &B), 0);
	CU_ASSERT_EQUAL(rec_match(t, "a/b")->n, 0u);
	CU_ASSERT_EQUAL(rec_match(t, "a/b/c")->n, 1u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b/c"), &A), 0);
	CU_ASSERT_EQUAL(topic_tree_count(t), 0u);
	CU_ASSERT_EQUAL(rec_match(t, "a/b/c")->n, 0u);
	topic_tree_free(t);
}

/* Empty nodes go away on unsubscribe, so churn does not grow memory. */
static void test_prune_on_unsubscribe(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b/c/d"), &A, 0, 0), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 4u);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/b/x"), &A, 0, 0), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("a/+/#"), &B, 0, 0), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/a/b"), &C, 0, 0), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 7u);
	CU_ASSERT_EQUAL(topic_tree_group_count(t), 1u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b/c/d"), &A), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 5u); /* a, b, x, +, # */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/a/b"), &C), 0);
	CU_ASSERT_EQUAL(topic_tree_group_count(t), 0u);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 5u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/+/#"), &B), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 3u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("a/b/x"), &A), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
	/* A failed unsubscribe of a path that does not exist creates nothing. */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("q/r/s"), &A), -1);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);

	/* Churn: many subscribers and siblings come and go; nothing stays. */
	static int subs[300];
	char f[64];
	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 300; i++) {
			snprintf(f, sizeof(f), "r/%d/+/%d", i % 40, i);
			CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(f), &subs[i], 1, 0), 0);
			CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("hot/#"), &subs[i], 0, 0), 0);
		}
		CU_ASSERT_EQUAL(topic_tree_count(t), 600u);
		CU_ASSERT_EQUAL(rec_match(t, "hot/x")->n, 300u);
		for (int i = 299; i >= 0; i--) {
			snprintf(f, sizeof(f), "r/%d/+/%d", i % 40, i);
			CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S(f), &subs[i]), 0);
			CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("hot/#"), &subs[(i * 7) % 300]), 0);
		}
		CU_ASSERT_EQUAL(topic_tree_count(t), 0u);
		CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
	}
	topic_tree_free(t);
}

/* Many siblings under one node and many subscribers on one node: lookups
 * go through the hash tables, and removals keep them consistent. */
static void test_wide_nodes(void)
{
	struct topic_tree *t = topic_tree_new();
	enum { N = 5000 };
	static int subs[N];
	char f[64];
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "w/%d", i);
		CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(f), &subs[i], 0, (uint32_t)i + 1), 0);
		CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("same"), &subs[i], 0, (uint32_t)i + 1), 0);
	}
	for (int i = 0; i < N; i += 3) {
		snprintf(f, sizeof(f), "w/%d", i);
		CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S(f), &subs[i]), 0);
		CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("same"), &subs[i]), 0);
	}
	for (int i = 0; i < N; i++) {
		snprintf(f, sizeof(f), "w/%d", i);
		struct rec *r = rec_match(t, f);
		CU_ASSERT_EQUAL(r->n, i % 3 ? 1u : 0u);
		if (r->n)
			CU_ASSERT_EQUAL(r->id[0], (uint32_t)i + 1);
		CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("same"), &subs[i]), i % 3 ? 0 : -1);
		if (i % 3)
			CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("same"), &subs[i], 0, 9), 0);
	}
	CU_ASSERT_EQUAL(rec_match(t, "same")->n, (size_t)(N - (N + 2) / 3));
	CU_ASSERT_EQUAL(topic_tree_count(t), 2u * (size_t)(N - (N + 2) / 3));
	topic_tree_free(t);
}

/* One node holding plain subscriptions and groups in every combination:
 * each state matches as it should and everything is freed at the end. */
static void test_node_mixed_states(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("m/n"), &A, 1, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/m/n"), &C, 1, 3), 0);
	CU_ASSERT_EQUAL(rec_match(t, "m/n")->n, 2u);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("m/n"), &B, 1, 2), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("m/n"), &A, 2, 11), 1);
	struct rec *r = rec_match_n(t, "m/n", 3u);
	CU_ASSERT(rec_has_id(r, 11) && rec_has_id(r, 2) && rec_has_id(r, 3));
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("m/n"), &A), 0);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("m/n"), &B), 0);
	r = rec_match(t, "m/n");
	CU_ASSERT_EQUAL_FATAL(r->n, 1u); /* only the group is left */
	CU_ASSERT(r->shared[0]);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("m/n"), &B, 0, 4), 0);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/m/n"), &C), 0);
	r = rec_match(t, "m/n");
	CU_ASSERT_EQUAL_FATAL(r->n, 1u); /* only B's plain one */
	CU_ASSERT_FALSE(r->shared[0]);
	CU_ASSERT_EQUAL(r->id[0], 4u);
	CU_ASSERT_EQUAL(topic_tree_count(t), 1u);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 2u);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("m/n"), &B), 0);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
	/* Left populated on purpose: freeing must release all of it. */
	for (int i = 0; i < 40; i++) {
		topic_tree_subscribe(t, S("m/n"), (char *)&A + i, 0, 0);
		topic_tree_subscribe(t, S("$share/h/m/#"), (char *)&A + i, 0, 0);
	}
	CU_ASSERT_EQUAL(topic_tree_count(t), 80u);
	topic_tree_free(t);
}

/* Thousands of levels: matching and freeing use no recursion, so the C
 * stack does not limit the depth. */
static void test_deep_topics(void)
{
	enum { LEVELS = 20000 };
	char *topic = malloc(2 * LEVELS);
	char *filter = malloc(2 * LEVELS + 2);
	CU_ASSERT_FATAL(topic && filter);
	for (int i = 0; i < LEVELS; i++) {
		topic[2 * i] = 'a';
		topic[2 * i + 1] = '/';
		filter[2 * i] = i % 2 ? 'a' : '+';
		filter[2 * i + 1] = '/';
	}
	topic[2 * LEVELS - 1] = 0;
	filter[2 * LEVELS - 1] = 0;
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(filter), &A, 0, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(topic), &B, 0, 2), 0);
	filter[2 * LEVELS - 2] = '#';
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S(filter), &C, 0, 3), 0);
	CU_ASSERT_EQUAL(rec_match(t, topic)->n, 3u);
	topic[2 * LEVELS - 2] = 'b';
	CU_ASSERT_EQUAL(rec_match(t, topic)->n, 1u); /* only the '#' one */
	topic_tree_free(t);

	struct retain_store *rs = retain_store_new(NULL);
	static int msg;
	struct rmatch_deep {
		size_t n;
	} m = {0};
	CU_ASSERT_EQUAL(retain_store_set(rs, S(topic), &msg), 0);
	topic[2 * LEVELS - 2] = 'a';
	CU_ASSERT_EQUAL(retain_store_set(rs, S(topic), &msg), 0);
	CU_ASSERT_EQUAL(retain_store_count(rs), 2u);
	retain_store_match(rs, (const uint8_t *)"#", 1, deep_cb, &m);
	CU_ASSERT_EQUAL(m.n, 2u);
	m.n = 0;
	retain_store_match(rs, S(filter), deep_cb, &m);
	CU_ASSERT_EQUAL(m.n, 2u);
	m.n = 0;
	filter[2 * LEVELS - 2] = '+';
	retain_store_match(rs, S(filter), deep_cb, &m);
	CU_ASSERT_EQUAL(m.n, 2u);
	retain_store_free(rs);
	free(topic);
	free(filter);
}

/* ---- shared subscriptions --------------------------------------------- */

static void *shared_pick(struct topic_tree *t, const char *topic, struct rec *r)
{
	r->n = 0;
	r->offered = 0;
	topic_tree_match(t, S(topic), rec_cb, r);
	for (size_t i = 0; i < r->n; i++)
		if (r->shared[i])
			return r->sub[i];
	return NULL;
}

/* Round robin in joining order, one member per message, shared flag set;
 * an overlapping plain subscription is delivered as well. */
static void test_shared_round_robin(void)
{
	struct topic_tree *t = topic_tree_new();
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/s/+"), &A, 1, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/s/+"), &B, 1, 2), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/s/+"), &C, 1, 3), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("s/+"), &A, 0, 4), 0);
	CU_ASSERT_EQUAL(topic_tree_count(t), 4u);
	static struct rec r;
	memset(&r, 0, sizeof(r));
	void *want[] = {&A, &B, &C, &A, &B, &C, &A};
	for (size_t i = 0; i < 7; i++) {
		CU_ASSERT_PTR_EQUAL(shared_pick(t, "s/x", &r), want[i]);
		CU_ASSERT_EQUAL(r.n, 2u); /* one shared + the plain one */
	}
	/* The shared group does not match other topics. */
	CU_ASSERT_PTR_NULL(shared_pick(t, "s", &r));
	/* Re-subscribing replaces options and keeps the rotation. */
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g/s/+"), &B, 2, 22), 1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 4u);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "s/x", &r), &B);
	for (size_t i = 0; i < r.n; i++)
		if (r.shared[i])
			CU_ASSERT_EQUAL(r.id[i], 22u);
	topic_tree_free(t);
}

/* A member that declines (offline) is skipped; the next accepts. When all
 * decline, nobody gets it and the rotation does not move. */
static void test_shared_decline(void)
{
	struct topic_tree *t = topic_tree_new();
	topic_tree_subscribe(t, S("$share/g/q"), &A, 1, 0);
	topic_tree_subscribe(t, S("$share/g/q"), &B, 1, 0);
	topic_tree_subscribe(t, S("$share/g/q"), &C, 1, 0);
	static struct rec r;
	memset(&r, 0, sizeof(r));
	r.decline[0] = &B;
	r.ndecline = 1;
	void *want[] = {&A, &C, &A, &C};
	for (size_t i = 0; i < 4; i++)
		CU_ASSERT_PTR_EQUAL(shared_pick(t, "q", &r), want[i]);
	r.decline[1] = &A;
	r.decline[2] = &C;
	r.ndecline = 3;
	CU_ASSERT_PTR_NULL(shared_pick(t, "q", &r));
	CU_ASSERT_EQUAL(r.offered, 3u); /* each offered once, no more */
	r.ndecline = 0;
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "q", &r), &A); /* after C, chosen last */
	CU_ASSERT_EQUAL(r.offered, 1u);
	topic_tree_free(t);
}

/* Members join and leave; the rotation continues after the member chosen
 * last, or with the one after a member that left. */
static void test_shared_join_leave(void)
{
	struct topic_tree *t = topic_tree_new();
	static struct rec r;
	memset(&r, 0, sizeof(r));
	topic_tree_subscribe(t, S("$share/g/j/#"), &A, 0, 0);
	topic_tree_subscribe(t, S("$share/g/j/#"), &B, 0, 0);
	topic_tree_subscribe(t, S("$share/g/j/#"), &C, 0, 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j/1", &r), &A);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j/1", &r), &B);
	/* B, chosen last, leaves: C is next. */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/j/#"), &B), 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &C);
	/* D joins at the end: offered after C. */
	topic_tree_subscribe(t, S("$share/g/j/#"), &D, 0, 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &D);
	/* A member before the cursor leaves: the rotation wraps to C. */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/j/#"), &A), 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &C);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &D);
	/* The last member in order was chosen last and leaves: wrap to C. */
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/j/#"), &D), 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &C);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &C);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/j/#"), &E), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/h/j/#"), &C), -1);
	CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S("$share/g/j/#"), &C), 0);
	CU_ASSERT_PTR_NULL(shared_pick(t, "j", &r));
	CU_ASSERT_EQUAL(topic_tree_count(t), 0u);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
	CU_ASSERT_EQUAL(topic_tree_group_count(t), 0u);
	/* Rejoining starts a fresh rotation. */
	topic_tree_subscribe(t, S("$share/g/j/#"), &E, 0, 0);
	topic_tree_subscribe(t, S("$share/g/j/#"), &A, 0, 0);
	CU_ASSERT_PTR_EQUAL(shared_pick(t, "j", &r), &E);
	topic_tree_free(t);
}

/* Groups are per (name, filter); a subscriber may be in several groups and
 * gets one delivery per group; incomplete $share syntax is refused. */
static void test_shared_groups_apart(void)
{
	struct topic_tree *t = topic_tree_new();
	static struct rec r;
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g1/x/y"), &A, 0, 1), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g2/x/y"), &A, 0, 2), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g1/x/+"), &A, 0, 3), 0);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g1/x/y"), &B, 0, 4), 0);
	CU_ASSERT_EQUAL(topic_tree_group_count(t), 3u);
	CU_ASSERT_EQUAL(topic_tree_count(t), 4u);
	shared_pick(t, "x/y", &r);
	CU_ASSERT_EQUAL(r.n, 3u); /* one per group */
	CU_ASSERT(rec_has_id(&r, 1)); /* g1 x/y: A first */
	CU_ASSERT(rec_has_id(&r, 2));
	CU_ASSERT(rec_has_id(&r, 3));
	shared_pick(t, "x/y", &r);
	CU_ASSERT_EQUAL(r.n, 3u);
	CU_ASSERT(rec_has_id(&r, 4)); /* g1 x/y: then B */
	CU_ASSERT(rec_has_id(&r, 2));
	CU_ASSERT(rec_has_id(&r, 3));
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g1"), &A, 0, 0), -1);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share/g1/"), &A, 0, 0), -1);
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$share//x"), &A, 0, 0), -1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 4u);
	/* "$shared/..." is an ordinary filter starting with '$'. */
	CU_ASSERT_EQUAL(topic_tree_subscribe(t, S("$shared/g/x"), &C, 0, 9), 0);
	CU_ASSERT_EQUAL(shared_pick(t, "$shared/g/x", &r), NULL);
	CU_ASSERT_EQUAL(r.n, 1u);
	topic_tree_free(t);
}

/* ---- retained store --------------------------------------------------- */

static int unrefs;
static void count_unref(void *msg)
{
	(void)msg;
	unrefs++;
}

struct rmatch {
	size_t n;
	void *msg[256];
};

static void rmatch_cb(void *ctx, void *msg)
{
	struct rmatch *m = ctx;
	if (m->n < 256)
		m->msg[m->n] = msg;
	m->n++;
}

static size_t rmatch(struct retain_store *r, const char *filter, struct rmatch *m)
{
	m->n = 0;
	retain_store_match(r, S(filter), rmatch_cb, m);
	return m->n;
}

/* set/replace/clear, counts, and unref exactly once per message. */
static void test_retain_set_replace_clear(void)
{
	unrefs = 0;
	int m1, m2, m3, m4;
	struct retain_store *r = retain_store_new(count_unref);
	CU_ASSERT_FATAL(r != NULL);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b"), &m1), 0);
	CU_ASSERT_EQUAL(retain_store_count(r), 1u);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b"), &m2), 1); /* replaces m1 */
	CU_ASSERT_EQUAL(unrefs, 1);
	CU_ASSERT_EQUAL(retain_store_count(r), 1u);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a"), &m3), 0);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b/c"), &m4), 0);
	CU_ASSERT_EQUAL(retain_store_count(r), 3u);
	CU_ASSERT_EQUAL(retain_store_node_count(r), 3u);
	struct rmatch m;
	CU_ASSERT_EQUAL(rmatch(r, "a/b", &m), 1u);
	CU_ASSERT_PTR_EQUAL(m.msg[0], &m2);
	/* Clearing: returns 1 and unrefs; clearing again or a prefix node or a
	 * missing topic returns 0 and creates nothing. */
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b"), NULL), 1);
	CU_ASSERT_EQUAL(unrefs, 2);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b"), NULL), 0);
	CU_ASSERT_EQUAL(retain_store_set(r, S("x/y/z"), NULL), 0);
	CU_ASSERT_EQUAL(retain_store_node_count(r), 3u); /* a/b still leads to c */
	CU_ASSERT_EQUAL(retain_store_count(r), 2u);
	CU_ASSERT_EQUAL(rmatch(r, "a/b", &m), 0u);
	CU_ASSERT_EQUAL(retain_store_set(r, S("a/b/c"), NULL), 1);
	CU_ASSERT_EQUAL(retain_store_node_count(r), 1u); /* pruned to "a" */
	CU_ASSERT_EQUAL(retain_store_set(r, S("a"), NULL), 1);
	CU_ASSERT_EQUAL(retain_store_node_count(r), 0u);
	CU_ASSERT_EQUAL(retain_store_count(r), 0u);
	CU_ASSERT_EQUAL(unrefs, 4);
	retain_store_free(r);
	CU_ASSERT_EQUAL(unrefs, 4);
	retain_store_free(NULL);
	topic_tree_free(NULL);
}

/* Freeing the store lets go of every message it holds, once. */
static void test_retain_free_unrefs(void)
{
	unrefs = 0;
	static int msgs[1000];
	struct retain_store *r = retain_store_new(count_unref);
	char tp[64];
	for (int i = 0; i < 1000; i++) {
		snprintf(tp, sizeof(tp), "%d/%d/%d", i % 7, i % 100, i);
		CU_ASSERT_EQUAL(retain_store_set(r, S(tp), &msgs[i]), 0);
	}
	for (int i = 0; i < 1000; i += 10) {
		snprintf(tp, sizeof(tp), "%d/%d/%d", i % 7, i % 100, i);
		CU_ASSERT_EQUAL(retain_store_set(r, S(tp), &msgs[i]), 1);
	}
	CU_ASSERT_EQUAL(unrefs, 100);
	CU_ASSERT_EQUAL(retain_store_count(r), 1000u);
	retain_store_free(r);
	CU_ASSERT_EQUAL(unrefs, 1100);
}

/* Filters with wildcards; '$' topics skipped by leading wildcards
 * [MQTT-4.7.2-1]; "x/#" includes x itself [MQTT-4.7.1-2]. */
static void test_retain_match_MQTT_4_7_2_1(void)
{
	unrefs = 0;
	static int msg[16];
	static const char *topics[] = {"sport", "sport/tennis", "sport/tennis/player1",
				       "sport/tennis/player2", "sport/golf", "/finance",
				       "$SYS/uptime", "$SYS", "a//b", "sport/", "news"};
	size_t nt = sizeof(topics) / sizeof(topics[0]);
	struct retain_store *r = retain_store_new(count_unref);
	for (size_t i = 0; i < nt; i++)
		CU_ASSERT_EQUAL(retain_store_set(r, S(topics[i]), &msg[i]), 0);
	struct {
		const char *filter;
		size_t n;
	} c[] = {
		{"#", 9},
		{"sport/#", 6},
		{"sport/+", 3},
		{"sport/tennis/+", 2},
		{"sport/+/player1", 1},
		{"+", 2},
		{"+/+", 4},
		{"+/finance", 1},
		{"/+", 1},
		{"$SYS/#", 2},
		{"$SYS/+", 1},
		{"+/uptime", 0},
		{"a/+/b", 1},
		{"a/b", 0},
		{"+/+/+", 3},
		{"+/+/+/+", 0},
		{"sport/tennis/player1/#", 1},
		{"nothing/#", 0},
		{"news", 1},
		{"+/#", 9},
	};
	struct rmatch m;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		size_t got = rmatch(r, c[i].filter, &m);
		if (got != c[i].n)
			fprintf(stderr, "retain filter '%s': %zu, expected %zu\n", c[i].filter, got,
				c[i].n);
		CU_ASSERT_EQUAL(got, c[i].n);
	}
	CU_ASSERT_EQUAL(rmatch(r, "sport/tennis/player2", &m), 1u);
	CU_ASSERT_PTR_EQUAL(m.msg[0], &msg[3]);
	CU_ASSERT_EQUAL(unrefs, 0);
	retain_store_free(r);
	CU_ASSERT_EQUAL(unrefs, (int)nt);
}

/* ---- randomized comparison with a brute-force matcher ------------------ */
/* Random names and filters over a small alphabet of levels (empty levels,
 * '$' levels, UTF-8, spaces) so that they collide and overlap often. */

static uint64_t rng_state;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

/* The reference: level by level, written from the spec's definitions. */
static bool brute_match(const char *filter, const char *topic)
{
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	const char *f = filter, *tp = topic;
	for (;;) {
		const char *fe = strchr(f, '/');
		size_t fl = fe ? (size_t)(fe - f) : strlen(f);
		if (fl == 1 && f[0] == '#')
			return true;
		if (!tp) /* topic used up, filter has a level left */
			return false;
		const char *te = strchr(tp, '/');
		size_t tl = te ? (size_t)(te - tp) : strlen(tp);
		if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, tp, fl) != 0))
			return false;
		tp = te ? te + 1 : NULL;
		if (!fe) {
			return tp == NULL;
		}
		f = fe + 1;
		/* "x/#" matches "x": the filter's next level is '#' */
		if (!tp && strcmp(f, "#") == 0)
			return true;
	}
}

static const char *words[] = {"a", "b", "c", "", "$x", "dd", "a b", "\xc3\xa9"};

static void random_name(char *out, size_t cap, bool filter)
{
	int levels = 1 + (int)(rng() % 5);
	size_t o = 0;
	out[0] = 0;
	for (int l = 0; l < levels; l++) {
		const char *w;
		uint32_t x = rng() % 100;
		if (filter && x < 20)
			w = "+";
		else if (filter && x < 28 && l == levels - 1)
			w = "#";
		else
			w = words[rng() % (sizeof(words) / sizeof(words[0]))];
		if (l > 0 && (w[0] == '$') && rng() % 2)
			w = "b";
		o += (size_t)snprintf(out + o, cap - o, "%s%s", l ? "/" : "", w);
	}
	if (o == 0) /* names and filters are at least one character long */
		snprintf(out, cap, "a");
}

enum { RND_FILTERS = 3000, RND_TOPICS = 2000 };

/* rnd_filter[f] is what is subscribed; shared ones ("$share/gN/...",
 * about one in seven) have rnd_group[f] = N and their filter after the
 * prefix at rnd_inner[f]. */
static char rnd_filter[RND_FILTERS][64];
static int rnd_group[RND_FILTERS];
static size_t rnd_inner[RND_FILTERS];
static int rnd_owner[RND_FILTERS];
static bool rnd_live[RND_FILTERS];
static char rnd_topic[RND_TOPICS][48];
static int rnd_subscribers[64];

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static const char *rnd_filter_of(int f)
{
	return rnd_filter[f] + rnd_inner[f];
}

/* Two shared filters belong to the same group: same name, same filter. */
static bool rnd_same_group(int f, int g)
{
	return rnd_group[f] == rnd_group[g] && strcmp(rnd_filter_of(f), rnd_filter_of(g)) == 0;
}

/*
 * For every topic, the trie's answer equals the brute-force answer (ids
 * are filter indexes): the plain calls are exactly the live matching plain
 * subscriptions; the shared calls are one per group that has a live
 * matching member, each to one of that group's live members.
 */
static void rnd_compare(struct topic_tree *t)
{
	static uint32_t want[RND_FILTERS];
	static uint32_t got[RND_FILTERS];
	static struct rec r;
	size_t mismatches = 0, total = 0, shared_total = 0;
	for (int i = 0; i < RND_TOPICS; i++) {
		size_t nw = 0, ngroups = 0;
		for (int f = 0; f < RND_FILTERS; f++) {
			if (!rnd_live[f] || !brute_match(rnd_filter_of(f), rnd_topic[i]))
				continue;
			if (rnd_group[f] < 0) {
				want[nw++] = (uint32_t)f;
				continue;
			}
			bool first = true; /* count each group once */
			for (int g = 0; g < f && first; g++)
				if (rnd_live[g] && rnd_group[g] >= 0 && rnd_same_group(f, g))
					first = false;
			ngroups += first;
		}
		memset(&r, 0, sizeof(r));
		topic_tree_match(t, S(rnd_topic[i]), rec_cb, &r);
		size_t ng = 0, nshared = 0;
		bool ok = true;
		for (size_t k = 0; k < r.n; k++) {
			int f = (int)r.id[k];
			if (!r.shared[k]) {
				got[ng++] = r.id[k];
				continue;
			}
			nshared++;
			ok = ok && rnd_live[f] && rnd_group[f] >= 0 &&
			     brute_match(rnd_filter_of(f), rnd_topic[i]);
			for (size_t j = 0; j < k; j++) /* at most one per group */
				if (r.shared[j] && rnd_same_group(f, (int)r.id[j]))
					ok = false;
		}
		qsort(got, ng, sizeof(got[0]), cmp_u32);
		ok = ok && ng == nw && memcmp(got, want, nw * sizeof(want[0])) == 0 &&
		     nshared == ngroups;
		total += nw;
		shared_total += nshared;
		if (!ok && mismatches++ < 5)
			fprintf(stderr, "topic '%s': trie %zu+%zu calls, brute %zu+%zu\n",
				rnd_topic[i], ng, nshared, nw, ngroups);
	}
	CU_ASSERT_EQUAL(mismatches, 0u);
	/* The random mix must exercise matching, not only misses. */
	CU_ASSERT(total > RND_TOPICS);
	CU_ASSERT(shared_total > RND_TOPICS / 10);
}

static void test_random_against_brute_force(void)
{
	rng_state = 0x9e3779b97f4a7c15ULL;
	struct topic_tree *t = topic_tree_new();
	size_t live = 0;
	for (int f = 0; f < RND_FILTERS; f++) {
		rnd_group[f] = rng() % 7 == 0 ? (int)(rng() % 2) : -1;
		rnd_inner[f] = 0;
		if (rnd_group[f] >= 0)
			rnd_inner[f] = (size_t)snprintf(rnd_filter[f], sizeof(rnd_filter[f]),
							"$share/g%d/", rnd_group[f]);
		random_name(rnd_filter[f] + rnd_inner[f], sizeof(rnd_filter[f]) - rnd_inner[f], true);
		rnd_owner[f] = (int)(rng() % 64);
		/* A duplicate (filter, subscriber) replaces: keep one live. */
		int dup = -1;
		for (int g = 0; g < f; g++)
			if (rnd_live[g] && rnd_owner[g] == rnd_owner[f] &&
			    strcmp(rnd_filter[g], rnd_filter[f]) == 0)
				dup = g;
		int rc = topic_tree_subscribe(t, S(rnd_filter[f]), &rnd_subscribers[rnd_owner[f]],
					      0, (uint32_t)f);
		CU_ASSERT_EQUAL(rc, dup >= 0 ? 1 : 0);
		if (dup >= 0)
			rnd_live[dup] = false;
		else
			live++;
		rnd_live[f] = true;
	}
	CU_ASSERT_EQUAL(topic_tree_count(t), live);
	for (int i = 0; i < RND_TOPICS; i++)
		random_name(rnd_topic[i], sizeof(rnd_topic[i]), false);
	rnd_compare(t);
	/* Remove about half, check again; then remove the rest. */
	for (int f = 0; f < RND_FILTERS; f++) {
		if (rnd_live[f] && rng() % 2) {
			CU_ASSERT_EQUAL(topic_tree_unsubscribe(t, S(rnd_filter[f]),
							       &rnd_subscribers[rnd_owner[f]]),
					0);
			rnd_live[f] = false;
			live--;
		}
	}
	CU_ASSERT_EQUAL(topic_tree_count(t), live);
	rnd_compare(t);
	for (int f = 0; f < RND_FILTERS; f++) {
		if (!rnd_live[f])
			continue;
		CU_ASSERT_EQUAL(
			topic_tree_unsubscribe(t, S(rnd_filter[f]), &rnd_subscribers[rnd_owner[f]]),
			0);
		rnd_live[f] = false;
	}
	/* Everything is gone now, replaced duplicates included. */
	for (int f = 0; f < RND_FILTERS; f++)
		CU_ASSERT_EQUAL(
			topic_tree_unsubscribe(t, S(rnd_filter[f]), &rnd_subscribers[rnd_owner[f]]),
			-1);
	CU_ASSERT_EQUAL(topic_tree_count(t), 0u);
	CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
	topic_tree_free(t);
}

/* Retained store vs brute force: random topics stored, random filters. */
static void test_retain_random_against_brute_force(void)
{
	rng_state = 0x123456789abcdefULL;
	enum { NT = 1500, NF = 1500 };
	static char tp[NT][48];
	static bool stored[NT];
	static char fl[NF][48];
	struct retain_store *r = retain_store_new(NULL);
	size_t count = 0;
	for (int i = 0; i < NT; i++) {
		random_name(tp[i], sizeof(tp[i]), false);
		int prev = -1;
		for (int j = 0; j < i; j++)
			if (stored[j] && strcmp(tp[j], tp[i]) == 0)
				prev = j;
		CU_ASSERT_EQUAL(retain_store_set(r, S(tp[i]), &tp[i]), prev >= 0 ? 1 : 0);
		if (prev >= 0)
			stored[prev] = false;
		else
			count++;
		stored[i] = true;
	}
	/* Clear a third. */
	for (int i = 0; i < NT; i += 3) {
		if (stored[i]) {
			CU_ASSERT_EQUAL(retain_store_set(r, S(tp[i]), NULL), 1);
			stored[i] = false;
			count--;
		}
	}
	CU_ASSERT_EQUAL(retain_store_count(r), count);
	size_t mismatches = 0;
	static struct rmatch m;
	for (int f = 0; f < NF; f++) {
		random_name(fl[f], sizeof(fl[f]), true);
		size_t want = 0;
		for (int i = 0; i < NT; i++)
			want += stored[i] && brute_match(fl[f], tp[i]);
		size_t got = rmatch(r, fl[f], &m);
		/* Every reported message is a stored, matching one. */
		size_t seen = got < 256 ? got : 256;
		for (size_t k = 0; k < seen; k++) {
			const char *mt = m.msg[k];
			int idx = (int)(((const char(*)[48])mt) - tp);
			if (!stored[idx] || !brute_match(fl[f], mt)) {
				got = SIZE_MAX;
				break;
			}
		}
		if (got != want && mismatches++ < 5)
			fprintf(stderr, "retain filter '%s': store %zu, brute %zu\n", fl[f], got,
				want);
	}
	CU_ASSERT_EQUAL(mismatches, 0u);
	for (int i = 0; i < NT; i++)
		if (stored[i])
			CU_ASSERT_EQUAL(retain_store_set(r, S(tp[i]), NULL), 1);
	CU_ASSERT_EQUAL(retain_store_count(r), 0u);
	CU_ASSERT_EQUAL(retain_store_node_count(r), 0u);
	retain_store_free(r);
}

/* The brute-force reference agrees with the spec table too (guards the
 * randomized tests against a wrong reference). */
static void test_brute_reference(void)
{
	CU_ASSERT(brute_match("sport/#", "sport"));
	CU_ASSERT(brute_match("+/+", "/finance"));
	CU_ASSERT_FALSE(brute_match("+", "/finance"));
	CU_ASSERT_FALSE(brute_match("#", "$SYS/x"));
	CU_ASSERT(brute_match("$SYS/#", "$SYS"));
	CU_ASSERT_FALSE(brute_match("sport/+", "sport"));
	CU_ASSERT(brute_match("sport/+", "sport/"));
	CU_ASSERT_FALSE(brute_match("a/b", "a/b/c"));
	CU_ASSERT_FALSE(brute_match("a/b/c", "a/b"));
}

/* ---- allocation failures ---------------------------------------------- */

/*
 * The test program is linked with --wrap for malloc, calloc and realloc
 * (engine/topic.inc), so these see every allocation of the trie and the
 * store. When oom_countdown reaches 0 one allocation fails.
 */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static long oom_countdown = -1;
static long oom_failed;

static bool oom_now(void)
{
	if (oom_countdown < 0)
		return false;
	if (oom_countdown-- > 0)
		return false;
	oom_failed++;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return oom_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t m)
{
	return oom_now() ? NULL : __real_calloc(n, m);
}

void *__wrap_realloc(void *p, size_t n)
{
	return oom_now() ? NULL : __real_realloc(p, n);
}

enum { OOM_SUBS = 120 };
struct oom_sub {
	char filter[32];
	int who;
	bool live;
};
static struct oom_sub oom_subs[OOM_SUBS];
static int oom_who[64];

/* Plain filters that share prefixes and wildcards, one wide node (20
 * siblings: child-table growth), one crowded node (40 subscribers: subset
 * growth and the subscriber index) and shared groups. */
static void oom_scenario(void)
{
	static const char *base[] = {"a/b/c", "a/+/c", "a/#", "#", "+", "x/y/z/w/v", "a/b", "+/b/#",
				     "$share/g/a/b/c", "$share/h/a/#", "$share/g/a/#", "/", "a//c"};
	int k = 0;
	for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++, k++) {
		snprintf(oom_subs[k].filter, sizeof(oom_subs[k].filter), "%s", base[i]);
		oom_subs[k].who = (int)i % 5;
	}
	for (int i = 0; i < 20; i++, k++) {
		snprintf(oom_subs[k].filter, sizeof(oom_subs[k].filter), "w/%d/+", i);
		oom_subs[k].who = i % 7;
	}
	for (int i = 0; i < 40; i++, k++) {
		snprintf(oom_subs[k].filter, sizeof(oom_subs[k].filter), "hot/topic");
		oom_subs[k].who = 10 + i;
	}
	for (; k < OOM_SUBS; k++) {
		snprintf(oom_subs[k].filter, sizeof(oom_subs[k].filter), "$share/q%d/hot/#", k % 3);
		oom_subs[k].who = k % 50;
	}
}

static const char *oom_topics[] = {"a/b/c", "a/b", "a", "x/y/z/w/v", "hot/topic", "w/3/q",
				   "w/19/", "/", "a//c", "$SYS/x", "q/b/c"};

/* Plain deliveries equal the live plain subscriptions that match; each
 * matching shared group with a live member delivers once. */
static bool oom_check(struct topic_tree *t)
{
	static struct rec r;
	bool ok = true;
	for (size_t i = 0; i < sizeof(oom_topics) / sizeof(oom_topics[0]); i++) {
		size_t plain = 0, groups = 0;
		for (int k = 0; k < OOM_SUBS; k++) {
			const char *f = oom_subs[k].filter;
			bool shared = strncmp(f, "$share/", 7) == 0;
			const char *inner = shared ? strchr(f + 7, '/') + 1 : f;
			if (!oom_subs[k].live || !brute_match(inner, oom_topics[i]))
				continue;
			if (!shared) {
				plain++;
				continue;
			}
			bool first = true;
			for (int j = 0; j < k && first; j++)
				first = !(oom_subs[j].live && strcmp(oom_subs[j].filter, f) == 0);
			groups += first;
		}
		memset(&r, 0, sizeof(r));
		topic_tree_match(t, S(oom_topics[i]), rec_cb, &r);
		size_t got_shared = 0;
		for (size_t j = 0; j < r.n; j++)
			got_shared += r.shared[j];
		ok = ok && r.n - got_shared == plain && got_shared == groups;
	}
	return ok;
}

/* Every allocation of a subscribe sequence fails in turn: a failed
 * subscribe returns -1 and leaves the tree as it was (count, matches, no
 * node left behind); unsubscribing, whose allocations only shrink, works
 * even while allocations fail. ASan's leak check covers the rest. */
static void test_oom_subscribe_unsubscribe(void)
{
	oom_scenario();
	bool done = false;
	long k;
	for (k = 0; !done && k < 5000; k++) {
		struct topic_tree *t = topic_tree_new();
		CU_ASSERT_FATAL(t != NULL);
		size_t live = 0;
		oom_failed = 0;
		oom_countdown = k;
		for (int i = 0; i < OOM_SUBS; i++) {
			long before = oom_failed;
			size_t nodes = topic_tree_node_count(t), groups = topic_tree_group_count(t);
			int rc = topic_tree_subscribe(t, S(oom_subs[i].filter), &oom_who[oom_subs[i].who],
						      0, (uint32_t)i);
			oom_subs[i].live = rc == 0;
			live += rc == 0;
			CU_ASSERT(rc == 0 || (rc == -1 && oom_failed > before));
			if (rc < 0) { /* nothing half-built is left behind */
				CU_ASSERT_EQUAL(topic_tree_node_count(t), nodes);
				CU_ASSERT_EQUAL(topic_tree_group_count(t), groups);
			}
		}
		oom_countdown = -1;
		done = oom_failed == 0;
		CU_ASSERT_EQUAL(topic_tree_count(t), live);
		CU_ASSERT(oom_check(t));
		/* Unsubscribe with an allocation failing at every step. */
		oom_countdown = k % 7;
		for (int i = OOM_SUBS - 1; i >= 0; i--) {
			int rc = topic_tree_unsubscribe(t, S(oom_subs[i].filter),
							&oom_who[oom_subs[i].who]);
			CU_ASSERT_EQUAL(rc, oom_subs[i].live ? 0 : -1);
			oom_subs[i].live = false;
			if (oom_countdown < 0)
				oom_countdown = 3;
		}
		oom_countdown = -1;
		CU_ASSERT_EQUAL(topic_tree_count(t), 0u);
		CU_ASSERT_EQUAL(topic_tree_node_count(t), 0u);
		CU_ASSERT_EQUAL(topic_tree_group_count(t), 0u);
		topic_tree_free(t);
	}
	CU_ASSERT(done);
	/* The wrappers did see the trie's allocations: one per new node at
	 * least, so many rounds before one ran without a failure. */
	CU_ASSERT(k > 100);
}

/* Retained store under allocation failures: -1 leaves msg with the caller
 * (no unref), and every message the store took is unref'd exactly once. */
static void test_oom_retain(void)
{
	static const char *topics[] = {"a/b/c", "a/b", "a/b/d", "x", "x/y/z/w", "/", "a//c"};
	enum { NT = sizeof(topics) / sizeof(topics[0]) };
	static int msgs[NT * 2];
	bool done = false;
	long k;
	for (k = 0; !done && k < 1000; k++) {
		unrefs = 0;
		struct retain_store *r = retain_store_new(count_unref);
		CU_ASSERT_FATAL(r != NULL);
		int taken = 0, stored = 0;
		bool in[NT] = {false};
		oom_failed = 0;
		oom_countdown = k;
		for (int i = 0; i < 2 * NT; i++) {
			size_t nodes = retain_store_node_count(r);
			int rc = retain_store_set(r, S(topics[i % NT]), &msgs[i]);
			CU_ASSERT(rc == -1 || rc == (in[i % NT] ? 1 : 0));
			if (rc < 0)
				CU_ASSERT_EQUAL(retain_store_node_count(r), nodes);
			if (rc >= 0) {
				taken++;
				stored += !in[i % NT];
				in[i % NT] = true;
			}
		}
		oom_countdown = -1;
		done = oom_failed == 0;
		CU_ASSERT_EQUAL(retain_store_count(r), (size_t)stored);
		CU_ASSERT_EQUAL(unrefs, taken - stored); /* the replaced ones */
		/* Clearing never allocates, so it cannot fail. */
		oom_countdown = 0;
		CU_ASSERT_EQUAL(retain_store_set(r, S(topics[0]), NULL), in[0] ? 1 : 0);
		oom_countdown = -1;
		retain_store_free(r);
		CU_ASSERT_EQUAL(unrefs, taken);
	}
	CU_ASSERT(done);
	CU_ASSERT(k > 10);
}

static const struct test_case match[] = {
	{"match_multilevel_MQTT-4.7.1-2", test_match_multilevel_MQTT_4_7_1_2},
	{"match_singlelevel_MQTT-4.7.1-3", test_match_singlelevel_MQTT_4_7_1_3},
	{"match_dollar_MQTT-4.7.2-1", test_match_dollar_MQTT_4_7_2_1},
	{"match_literal_MQTT-4.7.3-4", test_match_literal_MQTT_4_7_3_4},
	{"brute_reference", test_brute_reference},
	{"random_against_brute_force", test_random_against_brute_force},
	{NULL, NULL},
};
static const struct test_case subs[] = {
	{"overlapping_one_call_each", test_overlapping_one_call_each},
	{"resubscribe_replaces_MQTT-3.8.4-3", test_resubscribe_replaces_MQTT_3_8_4_3},
	{"unsubscribe", test_unsubscribe},
	{"prune_on_unsubscribe", test_prune_on_unsubscribe},
	{"wide_nodes", test_wide_nodes},
	{"node_mixed_states", test_node_mixed_states},
	{"deep_topics", test_deep_topics},
	{"oom", test_oom_subscribe_unsubscribe},
	{NULL, NULL},
};
static const struct test_case shared[] = {
	{"round_robin", test_shared_round_robin},
	{"decline", test_shared_decline},
	{"join_leave", test_shared_join_leave},
	{"groups_apart", test_shared_groups_apart},
	{NULL, NULL},
};
static const struct test_case retain[] = {
	{"set_replace_clear", test_retain_set_replace_clear},
	{"free_unrefs", test_retain_free_unrefs},
	{"match_MQTT-4.7.2-1", test_retain_match_MQTT_4_7_2_1},
	{"random_against_brute_force", test_retain_random_against_brute_force},
	{"oom", test_oom_retain},
	{NULL, NULL},
};

static const struct test_suite topic_suites[] = {
	{"topic_match", match},
	{"topic_subscriptions", subs},
	{"topic_shared", shared},
	{"retain", retain},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(topic_suites)
