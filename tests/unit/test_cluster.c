/*
 * test_cluster.c - the pure parts of the cluster: MQTT names as NATS
 * subjects and keys (cluster/subject.c), the encoding of a message between
 * nodes (cluster/wire.c) and the bounded ring (cluster/ring.c).
 */
#include <string.h>

#include "cluster/ring.h"
#include "cluster/subject.h"
#include "cluster/wire.h"
#include "tests/unit/runner.h"

static const char *topic_subject(const char *t)
{
	static char out[256];
	if (cluster_subject_topic(out, sizeof out, "c", (const uint8_t *)t, strlen(t)) < 0)
		return "(too long)";
	return out;
}

static const char *filter_subject(const char *f, bool *parent)
{
	static char out[256];
	if (cluster_subject_filter(out, sizeof out, "c", (const uint8_t *)f, strlen(f), parent) < 0)
		return "(too long)";
	return out;
}

static void test_topic_subjects(void)
{
	CU_ASSERT_STRING_EQUAL(topic_subject("a/b"), "c.m.a.b");
	/* '.', '*', '>', '%', space and non-ASCII are escaped; empty levels are "%" */
	CU_ASSERT_STRING_EQUAL(topic_subject("a.b/*/>/%"), "c.m.a%2Eb.%2A.%3E.%25");
	CU_ASSERT_STRING_EQUAL(topic_subject("/x//"), "c.m.%.x.%.%");
	CU_ASSERT_STRING_EQUAL(topic_subject("s p/\xc3\xa9"), "c.m.s%20p.%C3%A9");
	/* [MQTT-4.7.2-1] $ topics live apart, out of reach of a leading wildcard */
	CU_ASSERT_STRING_EQUAL(topic_subject("$SYS/x"), "c.d.$SYS.x");
	char small[8];
	CU_ASSERT_EQUAL(cluster_subject_topic(small, sizeof small, "c", (const uint8_t *)"abcdefgh", 8), -1);
}

static void test_filter_subjects(void)
{
	bool parent;
	CU_ASSERT_STRING_EQUAL(filter_subject("a/+/b", &parent), "c.m.a.*.b");
	CU_ASSERT_FALSE(parent);
	/* a/# also matches a: the caller subscribes to the parent too */
	CU_ASSERT_STRING_EQUAL(filter_subject("a/#", &parent), "c.m.a.>");
	CU_ASSERT_TRUE(parent);
	CU_ASSERT_STRING_EQUAL(filter_subject("#", &parent), "c.m.>");
	CU_ASSERT_FALSE(parent);
	CU_ASSERT_STRING_EQUAL(filter_subject("+/x.y", &parent), "c.m.*.x%2Ey");
	CU_ASSERT_STRING_EQUAL(filter_subject("$SYS/#", &parent), "c.d.$SYS.>");
	CU_ASSERT_STRING_EQUAL(filter_subject("a//+", &parent), "c.m.a.%.*");
}

static void test_keys(void)
{
	char key[64];
	uint8_t back[64];
	const char *t = "a/b.c/$x y";
	int kl = cluster_key_topic(key, sizeof key, (const uint8_t *)t, strlen(t));
	CU_ASSERT_STRING_EQUAL(key, "a/b=2Ec/=24x=20y");
	int tl = cluster_key_parse(back, sizeof back, key, (size_t)kl);
	CU_ASSERT_EQUAL(tl, (int)strlen(t));
	CU_ASSERT_EQUAL(memcmp(back, t, strlen(t)), 0);
	CU_ASSERT_EQUAL(cluster_key_parse(back, sizeof back, "a=2", 3), -1);
	CU_ASSERT_EQUAL(cluster_key_parse(back, sizeof back, "a=zz", 4), -1);
	CU_ASSERT_TRUE(cluster_name_valid("node-1_a"));
	CU_ASSERT_FALSE(cluster_name_valid("node.1"));
	CU_ASSERT_FALSE(cluster_name_valid(""));
}

static void test_wire(void)
{
	struct engine_cluster_msg m = {0}, d;
	m.topic = (const uint8_t *)"a/b";
	m.topic_len = 3;
	m.payload = (const uint8_t *)"payload";
	m.payload_len = 7;
	m.props = (const uint8_t *)"\x02\x00\x00\x00\x0a";
	m.props_len = 5;
	m.origin_id = (const uint8_t *)"client";
	m.origin_len = 6;
	m.expiry_at = 1234567890123ull;
	m.node_run = 0x0102030405060708ull;
	m.seq = 77;
	m.qos = 2;
	m.retain = true;
	uint8_t buf[128];
	size_t n = cluster_wire_size(&m);
	cluster_wire_encode(buf, &m);
	CU_ASSERT_EQUAL(cluster_wire_decode(buf, n, &d), 0);
	CU_ASSERT_EQUAL(d.topic_len, 3);
	CU_ASSERT_EQUAL(memcmp(d.topic, "a/b", 3), 0);
	CU_ASSERT_EQUAL(d.payload_len, 7);
	CU_ASSERT_EQUAL(memcmp(d.payload, "payload", 7), 0);
	CU_ASSERT_EQUAL(d.props_len, 5);
	CU_ASSERT_EQUAL(d.origin_len, 6);
	CU_ASSERT_EQUAL(d.expiry_at, 1234567890123ull);
	CU_ASSERT_EQUAL(d.qos, 2);
	CU_ASSERT_TRUE(d.retain);
	CU_ASSERT_EQUAL(d.node_run, 0x0102030405060708ull);
	CU_ASSERT_EQUAL(d.seq, 77);
	/* version 1 (what older nodes left in the retained bucket): the same
	 * without the run and sequence */
	uint8_t v1[128];
	memcpy(v1, buf, 20);
	v1[1] = 1;
	memcpy(v1 + 20, buf + CLUSTER_WIRE_HEAD, n - CLUSTER_WIRE_HEAD);
	CU_ASSERT_EQUAL(cluster_wire_decode(v1, n - 16, &d), 0);
	CU_ASSERT_EQUAL(d.payload_len, 7);
	CU_ASSERT_EQUAL(memcmp(d.payload, "payload", 7), 0);
	CU_ASSERT_EQUAL(d.seq, 0);
	v1[1] = 3;
	CU_ASSERT_EQUAL(cluster_wire_decode(v1, n - 16, &d), -1);
	/* outside the journal (seq 0) a message is written as version 1 */
	m.seq = 0;
	CU_ASSERT_EQUAL(cluster_wire_size(&m), n - 16);
	cluster_wire_encode(buf, &m);
	CU_ASSERT_EQUAL(buf[1], 1);
	CU_ASSERT_EQUAL(cluster_wire_decode(buf, n - 16, &d), 0);
	CU_ASSERT_EQUAL(d.payload_len, 7);
	/* a version 2 header with no sequence number is not one midge writes */
	uint8_t v2[128];
	memcpy(v2, buf, 20);
	v2[1] = 2;
	memset(v2 + 20, 0, 16);
	memcpy(v2 + CLUSTER_WIRE_HEAD, buf + 20, n - CLUSTER_WIRE_HEAD);
	CU_ASSERT_EQUAL(cluster_wire_decode(v2, n, &d), -1);
	m.seq = 77;
	cluster_wire_encode(buf, &m);
	/* every truncation is refused, never read past */
	for (size_t k = 0; k < CLUSTER_WIRE_HEAD + 3 + 6 + 5; k++)
		CU_ASSERT_EQUAL(cluster_wire_decode(buf, k, &d), -1);
	buf[2] = 3; /* QoS 3 */
	CU_ASSERT_EQUAL(cluster_wire_decode(buf, n, &d), -1);
}

/* A bundle (several messages to one subject in one NATS message) and a
 * journal record share the list format: lengths checked, order kept. */
static void test_wire_list(void)
{
	uint8_t b[64];
	const uint8_t *msg;
	size_t at = 0, len, n = CLUSTER_LIST_HEAD;
	cluster_wire_list_start(b, 'B');
	const char *items[3] = {"first", "", "third one"};
	for (int i = 0; i < 3; i++) {
		cluster_wire_list_put(b + n, (const uint8_t *)items[i], strlen(items[i]));
		n += CLUSTER_LIST_ITEM + strlen(items[i]);
	}
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(cluster_wire_list_next(b, n, 'B', &at, &msg, &len), 1);
		CU_ASSERT_EQUAL(len, strlen(items[i]));
		CU_ASSERT_EQUAL(memcmp(msg, items[i], len), 0);
	}
	CU_ASSERT_EQUAL(cluster_wire_list_next(b, n, 'B', &at, &msg, &len), 0);
	/* another tag, another version: not this list */
	at = 0;
	CU_ASSERT_EQUAL(cluster_wire_list_next(b, n, 'J', &at, &msg, &len), -1);
	b[1] = 2;
	at = 0;
	CU_ASSERT_EQUAL(cluster_wire_list_next(b, n, 'B', &at, &msg, &len), -1);
	b[1] = 1;
	/* cut anywhere inside an item: the items before it, then -1 */
	for (size_t k = CLUSTER_LIST_HEAD; k < n; k++) {
		int got = 0, rc;
		at = 0;
		while ((rc = cluster_wire_list_next(b, k, 'B', &at, &msg, &len)) > 0) {
			CU_ASSERT_TRUE(msg + len <= b + k);
			got++;
		}
		bool boundary = k == CLUSTER_LIST_HEAD || k == CLUSTER_LIST_HEAD + 9 ||
				k == CLUSTER_LIST_HEAD + 13;
		CU_ASSERT_EQUAL(rc, boundary ? 0 : -1);
		CU_ASSERT_TRUE(got <= 2);
	}
	/* a length past the end */
	b[CLUSTER_LIST_HEAD + 3] = 200;
	at = 0;
	CU_ASSERT_EQUAL(cluster_wire_list_next(b, n, 'B', &at, &msg, &len), -1);
}

static void test_ring(void)
{
	struct ring r;
	CU_ASSERT_EQUAL(ring_init(&r, 256), 0);
	uint8_t *d;
	int put = 0;
	pthread_mutex_lock(&r.mu);
	while (ring_put(&r, REC_PUBLISH, "s", 1, 40, (uint64_t)put + 1, &d) == 0) {
		memset(d, 'x', 40);
		put++;
	}
	pthread_mutex_unlock(&r.mu);
	CU_ASSERT_TRUE(put >= 2 && put <= 4); /* bounded: 256 bytes */
	uint64_t pos = r.rpos;
	const struct rec *x;
	int got = 0;
	while ((x = ring_at(&r, &pos, r.wpos))) {
		CU_ASSERT_EQUAL(x->ticket, (uint64_t)got + 1);
		CU_ASSERT_STRING_EQUAL(rec_name(x), "s");
		got++;
	}
	CU_ASSERT_EQUAL(got, put);
	/* given back, the space is used again, wrapping to the front */
	r.rpos = r.wpos;
	for (int i = 0; i < 20; i++) {
		pthread_mutex_lock(&r.mu);
		CU_ASSERT_EQUAL(ring_put(&r, REC_PUBLISH, "t", 1, 50, 0, &d), 0);
		pthread_mutex_unlock(&r.mu);
		pos = r.rpos;
		x = ring_at(&r, &pos, r.wpos);
		CU_ASSERT_PTR_NOT_NULL_FATAL(x);
		CU_ASSERT_EQUAL(x->data_len, 50);
		CU_ASSERT_PTR_NULL(ring_at(&r, &pos, r.wpos));
		r.rpos = r.wpos;
	}
	ring_free(&r);
}

static const struct test_case cases[] = {
	{"topic subjects: escaping, empty levels, $ apart [MQTT-4.7.2-1]", test_topic_subjects},
	{"filter subjects: + and #, a/# with its parent", test_filter_subjects},
	{"retained keys round trip, names", test_keys},
	{"wire: round trip, truncation refused", test_wire},
	{"wire lists (bundles, journal records): order, bounds", test_wire_list},
	{"ring: bounded, wraps", test_ring},
	{NULL, NULL},
};

static const struct test_suite suites[] = {{"cluster", cases}, {NULL, NULL}};

TEST_RUNNER_MAIN(suites)
