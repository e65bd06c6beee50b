/*
 * test_hooks_thread.c - the event publisher off the engine's path: the
 * queue of records between the engine thread and the publisher's thread,
 * the want sets that decide what is queued and sent, the thread itself
 * over real ZeroMQ sockets (order, payloads, drops, nothing rendered for
 * nobody, callbacks still synchronous, shutdown with events in flight),
 * the compact format and the default ipc:// endpoint.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "hooks/queue.h"
#include "hooks/render.h"
#include "hooks/want.h"
#include "midge.h"
#include "tests/unit/hooks_zsub.h"
#include "tests/unit/runner.h"

void *zctx;

/* ------------------------------------------------------------ a holder */

/* A message as the engine holds it: immutable bytes and a count that only
 * the thread that made it may change (checked). */
struct tmsg {
	int refs;
	char topic[64];
	uint8_t payload[256];
	size_t payload_len;
};

static pthread_t holder_thread;
static int holds, releases, wrong_thread;
static int views; /* atomic: the publisher's thread calls view */
static pthread_mutex_t views_mu = PTHREAD_MUTEX_INITIALIZER;

static void t_hold(void *m)
{
	if (!pthread_equal(pthread_self(), holder_thread))
		wrong_thread++;
	((struct tmsg *)m)->refs++;
	holds++;
}

static void t_release(void *m)
{
	if (!pthread_equal(pthread_self(), holder_thread))
		wrong_thread++;
	((struct tmsg *)m)->refs--;
	releases++;
}

static void t_view(const void *mm, struct midge_message *v)
{
	const struct tmsg *m = mm;
	memset(v, 0, sizeof *v);
	v->topic = S(m->topic);
	v->payload = m->payload;
	v->payload_len = m->payload_len;
	v->qos = 1;
	v->origin = S("origin-client");
	pthread_mutex_lock(&views_mu);
	views++;
	pthread_mutex_unlock(&views_mu);
}

static const struct hooks_holder holder = {t_hold, t_release, t_view};

static void holder_reset(void)
{
	holder_thread = pthread_self();
	holds = releases = wrong_thread = 0;
	pthread_mutex_lock(&views_mu);
	views = 0;
	pthread_mutex_unlock(&views_mu);
}

static void tmsg_init(struct tmsg *m, const char *topic, size_t plen, int seed)
{
	memset(m, 0, sizeof *m);
	snprintf(m->topic, sizeof m->topic, "%s", topic);
	m->payload_len = plen;
	for (size_t i = 0; i < plen; i++)
		m->payload[i] = (uint8_t)(seed * 31 + i);
}

/* The view the engine would pass with a held message's event. */
static void tmsg_view(const struct tmsg *m, struct midge_message *v)
{
	t_view(m, v);
	pthread_mutex_lock(&views_mu);
	views--;
	pthread_mutex_unlock(&views_mu);
}

/* -------------------------------------------------------------- queue */

static const struct midge_client cl_a = {
	.client_id = {"client-a", 8}, .username = {"alice", 5}, .peer_addr = "192.0.2.1",
	.peer_port = 4242, .protocol = 5, .tls = true,
};
static const struct midge_client cl_b = {
	.client_id = {"", 0}, .username = {NULL, 0}, .peer_addr = NULL, .peer_port = 0,
	.protocol = 0, .tls = false,
};

/* The JSON body of ev (the oracle: a record must render the same). */
static char *body_of(const struct midge_event *ev)
{
	struct hooks_buf b = {0};
	CU_ASSERT_FATAL(hooks_render_body(&b, ev, "n") == 0);
	char *s = malloc(b.len - HOOKS_RENDER_HEADROOM + 1);
	memcpy(s, b.p + HOOKS_RENDER_HEADROOM, b.len - HOOKS_RENDER_HEADROOM);
	s[b.len - HOOKS_RENDER_HEADROOM] = '\0';
	hooks_buf_release(&b);
	return s;
}

/* One event of every kind, with every string the record must copy. */
static char acl_topic[16], store_why[32];

static int sample_events(struct midge_event *evs, struct midge_message *m)
{
	static const uint8_t props[] = {0x03, 0x00, 0x04, 't', 'e', 'x', 't'};
	memset(m, 0, sizeof *m);
	m->topic = S("a/b/c");
	m->payload = "payload\0bytes";
	m->payload_len = 13;
	m->qos = 2;
	m->retain = true;
	m->dup = true;
	m->packet_id = 77;
	m->props = props;
	m->props_len = sizeof props;
	m->origin = S("origin-client");
	int n = 0;
	memset(evs, 0, 14 * sizeof *evs);
	evs[n] = (struct midge_event){.type = MIDGE_EV_CONNECT, .time_ms = 1, .client = &cl_a};
	evs[n].u.connect.clean_start = true;
	evs[n].u.connect.keep_alive = 30;
	evs[n].u.connect.session_expiry = 99;
	evs[n++].u.connect.why = NULL;
	evs[n] = (struct midge_event){.type = MIDGE_EV_CONNECT_REFUSED, .time_ms = 2, .client = &cl_b};
	evs[n].u.connect.rc = 0x87;
	evs[n++].u.connect.why = "not \"authorized\"\n";
	evs[n] = (struct midge_event){.type = MIDGE_EV_DISCONNECT, .time_ms = 3, .client = &cl_a};
	evs[n].u.disconnect.rc = 0x8d;
	evs[n].u.disconnect.will = true;
	evs[n++].u.disconnect.why = "keepalive timeout";
	evs[n] = (struct midge_event){.type = MIDGE_EV_SUBSCRIBE, .time_ms = 4, .client = &cl_a};
	evs[n].u.subscribe.filter = S("sensors/+/temp");
	evs[n].u.subscribe.qos = 1;
	evs[n].u.subscribe.sub_id = 12;
	evs[n++].u.subscribe.packet_id = 9;
	evs[n] = (struct midge_event){.type = MIDGE_EV_UNSUBSCRIBE, .time_ms = 5, .client = &cl_b};
	evs[n++].u.subscribe.filter = S("#");
	evs[n] = (struct midge_event){.type = MIDGE_EV_PING, .time_ms = 6, .client = &cl_a};
	n++;
	evs[n] = (struct midge_event){.type = MIDGE_EV_PUBLISH, .time_ms = 7, .client = &cl_a};
	evs[n++].u.message.msg = m;
	evs[n] = (struct midge_event){.type = MIDGE_EV_DELIVER, .time_ms = 8, .client = &cl_b};
	evs[n].u.message.msg = m;
	evs[n].u.message.to = S("receiver");
	evs[n].u.message.qos = 1;
	evs[n++].u.message.packet_id = 3;
	evs[n] = (struct midge_event){.type = MIDGE_EV_DROP, .time_ms = 9, .client = NULL};
	evs[n].u.message.msg = m;
	evs[n].u.message.drop = MIDGE_DROP_QUEUE_FULL;
	evs[n++].u.message.why = "queue full";
	evs[n] = (struct midge_event){.type = MIDGE_EV_SESSION_EXPIRED, .time_ms = 10, .client = &cl_a};
	evs[n].u.session.expiry = 60;
	evs[n].u.session.queued = 5;
	evs[n++].u.session.why = "expired";
	evs[n] = (struct midge_event){.type = MIDGE_EV_RETAIN_CLEAR, .time_ms = 11, .client = NULL};
	evs[n++].u.message.msg = NULL; /* a message event without its message */
	/* its topic lives in scratch the engine reuses: the record must copy it */
	snprintf(acl_topic, sizeof acl_topic, "bob/will");
	evs[n] = (struct midge_event){.type = MIDGE_EV_ACL_DENIED, .time_ms = 12, .client = &cl_b};
	evs[n].u.acl.topic = (struct midge_str){acl_topic, strlen(acl_topic)};
	evs[n].u.acl.access = MIDGE_ACL_PUBLISH;
	evs[n++].u.acl.why = "will";
	snprintf(store_why, sizeof store_why, "disk I/O error");
	evs[n] = (struct midge_event){.type = MIDGE_EV_STORE, .time_ms = 13, .client = NULL};
	evs[n].u.store.state = "failing";
	evs[n].u.store.why = store_why;
	evs[n].u.store.commits = 7;
	evs[n++].u.store.fsyncs_per_second = 2.5;
	return n;
}

/* Every kind of event goes through the queue (copied, no holder) and
 * renders exactly as the original, many times round the ring. */
static void test_queue_roundtrip(void)
{
	struct hooks_queue q;
	CU_ASSERT_EQUAL_FATAL(hooks_queue_init(&q, 0, NULL), 0);
	struct midge_event evs[14];
	struct midge_message m;
	int n = sample_events(evs, &m);
	char *want[14];
	for (int i = 0; i < n; i++)
		want[i] = body_of(&evs[i]);
	uint64_t seq = 0;
	for (int round = 0; round < 400; round++) {
		snprintf(acl_topic, sizeof acl_topic, "bob/will");
		snprintf(store_why, sizeof store_why, "disk I/O error");
		for (int i = 0; i < n; i++)
			CU_ASSERT_EQUAL_FATAL(hooks_queue_put(&q, &evs[i], NULL, ++seq), 0);
		/* the engine moved on: its scratch holds something else */
		memset(acl_topic, 'X', sizeof acl_topic - 1);
		memset(store_why, 'Y', sizeof store_why - 1);
		for (int i = 0; i < n; i++) {
			struct hooks_rec_view r;
			CU_ASSERT_FATAL(hooks_queue_peek(&q, &r));
			CU_ASSERT_EQUAL(r.kind, HOOKS_REC_EVENT);
			CU_ASSERT_EQUAL(r.seq, seq - (uint64_t)n + (uint64_t)i + 1);
			char *got = body_of(&r.ev);
			CU_ASSERT_STRING_EQUAL(got, want[i]);
			if (strcmp(got, want[i]) != 0)
				fprintf(stderr, "\n%s\n%s\n", got, want[i]);
			if (hooks_event_has_message(r.ev.type) && r.ev.u.message.msg) {
				const struct midge_message *v = r.ev.u.message.msg;
				CU_ASSERT(v->payload_len == 13 && !memcmp(v->payload, "payload\0bytes", 13));
				CU_ASSERT(v->dup && v->retain && v->qos == 2 && v->packet_id == 77);
			}
			free(got);
			hooks_queue_pop(&q, i == n - 1);
		}
		hooks_queue_reclaim(&q);
	}
	for (int i = 0; i < n; i++)
		free(want[i]);
	hooks_queue_free(&q);
}

/* With a holder the message is held, not copied: held on put, released
 * on the engine thread only once the record was read and the tail
 * published, and everything unread is released when the queue goes. */
static void test_queue_holds(void)
{
	holder_reset();
	struct hooks_queue q;
	CU_ASSERT_EQUAL_FATAL(hooks_queue_init(&q, 0, &holder), 0);
	static struct tmsg msgs[3];
	for (int i = 0; i < 3; i++)
		tmsg_init(&msgs[i], "held/topic", 200, i);
	for (int i = 0; i < 3; i++) {
		struct midge_message v;
		tmsg_view(&msgs[i], &v);
		v.packet_id = (uint16_t)(10 + i);
		struct midge_event ev = {.type = MIDGE_EV_DELIVER, .time_ms = 5, .client = &cl_a};
		ev.u.message.msg = &v;
		ev.u.message.to = S("rx");
		CU_ASSERT_EQUAL(hooks_queue_put(&q, &ev, &msgs[i], (uint64_t)i + 1), 0);
	}
	CU_ASSERT_EQUAL(holds, 3);
	CU_ASSERT(msgs[0].refs == 1 && msgs[1].refs == 1 && msgs[2].refs == 1);
	struct hooks_rec_view r;
	CU_ASSERT_FATAL(hooks_queue_peek(&q, &r));
	const struct midge_message *v = r.ev.u.message.msg;
	/* the view is of the held message itself: no copy of the payload */
	CU_ASSERT_PTR_EQUAL(v->payload, msgs[0].payload);
	CU_ASSERT_EQUAL(v->packet_id, 10);
	CU_ASSERT_EQUAL(views, 1);
	hooks_queue_pop(&q, false);
	hooks_queue_reclaim(&q);
	CU_ASSERT_EQUAL(releases, 0); /* tail not published yet */
	hooks_queue_publish(&q);
	hooks_queue_reclaim(&q);
	CU_ASSERT_EQUAL(releases, 1);
	CU_ASSERT_EQUAL(msgs[0].refs, 0);
	hooks_queue_free(&q); /* two records never read */
	CU_ASSERT_EQUAL(releases, 3);
	CU_ASSERT(msgs[1].refs == 0 && msgs[2].refs == 0);
	CU_ASSERT_EQUAL(wrong_thread, 0);
}

/* A full ring refuses records (the caller drops and counts); the drops
 * reach the consumer, per socket, just before the next record. */
static void test_queue_full_drops(void)
{
	struct hooks_queue q;
	CU_ASSERT_EQUAL_FATAL(hooks_queue_init(&q, 1, NULL), 0); /* the minimum: 64 KiB */
	static char big[3000];
	memset(big, 'x', sizeof big);
	struct midge_client c = cl_a;
	c.client_id.p = big;
	c.client_id.len = sizeof big;
	struct midge_event ev = {.type = MIDGE_EV_PING, .time_ms = 1, .client = &c};
	uint64_t put = 0, refused = 0, refused_even = 0;
	for (int i = 0; i < 100; i++) {
		if (hooks_queue_put(&q, &ev, NULL, (uint64_t)i + 1) == 0) {
			put++;
		} else {
			refused++;
			refused_even += i % 2 == 0;
			hooks_queue_drop(&q, i % 2 ? 0x1 : 0x5); /* sockets 0 (and 2) */
		}
	}
	CU_ASSERT(put > 10 && put < 30);
	CU_ASSERT_EQUAL(refused, 100 - put);
	struct hooks_rec_view r;
	for (uint64_t i = 0; i < put; i++) {
		CU_ASSERT_FATAL(hooks_queue_peek(&q, &r));
		CU_ASSERT_EQUAL(r.kind, HOOKS_REC_EVENT);
		CU_ASSERT_EQUAL(r.ev.client->client_id.len, sizeof big);
		hooks_queue_pop(&q, true);
	}
	CU_ASSERT_FALSE(hooks_queue_peek(&q, &r));
	hooks_queue_reclaim(&q);
	/* room again: the drops go first */
	CU_ASSERT_EQUAL(hooks_queue_put(&q, &ev, NULL, 1000), 0);
	CU_ASSERT_FATAL(hooks_queue_peek(&q, &r));
	CU_ASSERT_EQUAL_FATAL(r.kind, HOOKS_REC_DROPS);
	CU_ASSERT_EQUAL(r.drops[0], refused);
	CU_ASSERT_EQUAL(r.drops[1], 0);
	CU_ASSERT_EQUAL(r.drops[2], refused_even);
	hooks_queue_pop(&q, true);
	CU_ASSERT_FATAL(hooks_queue_peek(&q, &r));
	CU_ASSERT_EQUAL(r.kind, HOOKS_REC_EVENT);
	CU_ASSERT_EQUAL(r.seq, 1000);
	hooks_queue_pop(&q, true);
	/* a record larger than half the ring never fits */
	static char huge[40000];
	memset(huge, 'y', sizeof huge);
	c.client_id.p = huge;
	c.client_id.len = sizeof huge;
	hooks_queue_reclaim(&q);
	CU_ASSERT_EQUAL(hooks_queue_put(&q, &ev, NULL, 1001), -1);
	hooks_queue_free(&q);
}

/* Held messages count against a bound of their own (the ring's size). */
static void test_queue_held_bound(void)
{
	holder_reset();
	struct hooks_queue q;
	CU_ASSERT_EQUAL_FATAL(hooks_queue_init(&q, 1, &holder), 0);
	static struct tmsg m;
	tmsg_init(&m, "t", 200, 1);
	struct midge_message v;
	tmsg_view(&m, &v);
	v.payload_len = 20000; /* as if a 20 kB payload: only three fit in 64 KiB */
	struct midge_event ev = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = NULL};
	ev.u.message.msg = &v;
	int ok = 0;
	for (int i = 0; i < 10; i++)
		ok += hooks_queue_put(&q, &ev, &m, (uint64_t)i + 1) == 0;
	CU_ASSERT_EQUAL(ok, 3);
	CU_ASSERT_EQUAL(holds, 3);
	hooks_queue_free(&q);
	CU_ASSERT_EQUAL(releases, 3);
}

/* --------------------------------------------------------------- want */

static void want_set(struct hooks_want *w, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		hooks_want_add(w, prefixes[i], strlen(prefixes[i]));
	hooks_want_rebuild(w);
}

static bool wants(const struct hooks_want *w, enum midge_event_type t, const char *topic)
{
	return hooks_want_match(w, t, topic, topic ? strlen(topic) : 0);
}

static void test_want_classify(void)
{
	struct hooks_want w;
	hooks_want_init(&w, 0);
	hooks_want_rebuild(&w);
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_CONNECT, NULL));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_PUBLISH, "a"));

	static const char *const p1[] = {"client.", "message.published/sensors/"};
	want_set(&w, p1, 2);
	CU_ASSERT(wants(&w, MIDGE_EV_CONNECT, NULL));
	CU_ASSERT(wants(&w, MIDGE_EV_PROTOCOL_ERROR, NULL));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_SESSION_CREATED, NULL));
	CU_ASSERT(wants(&w, MIDGE_EV_PUBLISH, "sensors/kitchen"));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_PUBLISH, "sensors")); /* shorter than the prefix */
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_PUBLISH, "other/x"));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_DELIVER, "sensors/kitchen"));
	CU_ASSERT_EQUAL(w.all, (1u << MIDGE_EV_CONNECT) | (1u << MIDGE_EV_CONNECT_REFUSED) |
				   (1u << MIDGE_EV_DISCONNECT) | (1u << MIDGE_EV_PING) |
				   (1u << MIDGE_EV_SUBSCRIBE) | (1u << MIDGE_EV_UNSUBSCRIBE) |
				   (1u << MIDGE_EV_PROTOCOL_ERROR));
	CU_ASSERT_EQUAL(w.some, 1u << MIDGE_EV_PUBLISH);
	hooks_want_clear(&w);

	/* the name itself, the name and a slash, the name and more */
	static const char *const p2[] = {"message.delivered", "message.acked/", "message.droppedX",
					 "client.connected/x", "retained.set/a"};
	want_set(&w, p2, 5);
	CU_ASSERT(wants(&w, MIDGE_EV_DELIVER, "x"));
	CU_ASSERT(wants(&w, MIDGE_EV_ACKED, "x"));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_DROP, "x"));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_CONNECT, NULL)); /* no topic in its name frame */
	CU_ASSERT(wants(&w, MIDGE_EV_RETAIN_SET, "a"));
	CU_ASSERT(wants(&w, MIDGE_EV_RETAIN_SET, "ab"));
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_RETAIN_SET, "b"));
	CU_ASSERT_EQUAL(w.topical, 1u << MIDGE_EV_RETAIN_SET);
	hooks_want_clear(&w);

	/* "" is everything */
	static const char *const p3[] = {"", "message.published/x"};
	want_set(&w, p3, 2);
	for (int t = 1; t < MIDGE_EV__COUNT; t++)
		CU_ASSERT(wants(&w, (enum midge_event_type)t, "any"));
	CU_ASSERT(w.topical & (1u << MIDGE_EV_PUBLISH)); /* batches stay off for it */
	hooks_want_remove(&w, "", 0);
	hooks_want_rebuild(&w);
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_PING, NULL));
	CU_ASSERT(wants(&w, MIDGE_EV_PUBLISH, "x/y"));
	hooks_want_remove(&w, "never added", 11);
	CU_ASSERT_EQUAL(w.n, 1);
	hooks_want_clear(&w);
}

/* Random prefixes against random topics: the binary search over the
 * prefix-free array answers what a scan of every prefix answers. */
static void test_want_matches_scan(void)
{
	struct hooks_want w;
	hooks_want_init(&w, 5000);
	static char pre[2000][40];
	size_t np = 0;
	unsigned seed = 12345;
	const char *name = "message.published/";
	for (int i = 0; i < 2000; i++) {
		int len = 1 + (int)(rand_r(&seed) % 5);
		char tail[16];
		for (int k = 0; k < len; k++)
			tail[k] = "ab/c"[rand_r(&seed) % 4];
		tail[len] = '\0';
		snprintf(pre[np], sizeof pre[np], "%s%s", name, tail);
		if (hooks_want_add(&w, pre[np], strlen(pre[np])) == HOOKS_WANT_ADDED)
			np++;
	}
	hooks_want_rebuild(&w);
	CU_ASSERT_EQUAL(w.n, np);
	int hits = 0;
	for (int i = 0; i < 20000; i++) {
		char topic[16], key[64];
		int len = 1 + (int)(rand_r(&seed) % 8);
		for (int k = 0; k < len; k++)
			topic[k] = "ab/cd"[rand_r(&seed) % 5];
		topic[len] = '\0';
		snprintf(key, sizeof key, "%s%s", name, topic);
		bool scan = false;
		for (size_t k = 0; k < np && !scan; k++)
			scan = strncmp(key, pre[k], strlen(pre[k])) == 0;
		CU_ASSERT_EQUAL(wants(&w, MIDGE_EV_PUBLISH, topic), scan);
		hits += scan;
	}
	CU_ASSERT(hits > 1000 && hits < 19000);
	hooks_want_clear(&w);
}

static void test_want_bound(void)
{
	struct hooks_want w;
	hooks_want_init(&w, 3);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "a", 1), HOOKS_WANT_ADDED);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "b", 1), HOOKS_WANT_ADDED);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "a", 1), HOOKS_WANT_KNOWN);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "client.", 7), HOOKS_WANT_ADDED);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "message.", 8), HOOKS_WANT_IGNORED);
	hooks_want_rebuild(&w);
	CU_ASSERT_EQUAL(w.n, 3);
	CU_ASSERT_FALSE(wants(&w, MIDGE_EV_PUBLISH, "t")); /* ignored: acts on nothing */
	CU_ASSERT(wants(&w, MIDGE_EV_PING, NULL));
	hooks_want_remove(&w, "message.", 8); /* its unsubscription: no change */
	CU_ASSERT_EQUAL(w.n, 3);
	hooks_want_remove(&w, "a", 1);
	CU_ASSERT_EQUAL(hooks_want_add(&w, "message.", 8), HOOKS_WANT_ADDED);
	hooks_want_rebuild(&w);
	CU_ASSERT(wants(&w, MIDGE_EV_PUBLISH, "t"));
	hooks_want_clear(&w);
}

/* ------------------------------------------------------ the thread */

static struct hooks *start(enum hooks_format fmt, size_t queue, size_t max_prefixes, int hwm)
{
	struct hooks *h = hooks_new();
	struct hooks_config cfg = {.endpoints = {"tcp://127.0.0.1:*"}, .n_endpoints = 1,
				   .sndhwm = hwm, .node = "thread-test", .format = fmt,
				   .queue_bytes = queue, .max_prefixes = max_prefixes,
				   .holder = holder};
	char err[256] = "";
	if (!h || hooks_zmq_start(h, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "hooks_zmq_start: %s\n", err);
		hooks_free(h);
		CU_FAIL_FATAL("publisher did not start");
	}
	return h;
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* What a consumer saw of one event (either format). */
struct seen {
	int type;
	uint64_t seq;
	char topic[64];
	uint8_t payload[256];
	size_t payload_len;
};

/* Reads the strings of a compact body after its 40 fixed bytes: topic
 * first, payload last. */
static void compact_decode(const uint8_t *b, size_t n, struct seen *s)
{
	s->type = b[1];
	s->seq = le64(b + 4);
	size_t at = HOOKS_COMPACT_HEAD;
	for (int i = 0; i < 9 && at + 4 <= n; i++) {
		uint32_t len = le32(b + at);
		at += 4;
		if (len == UINT32_MAX)
			continue;
		if (i == 0 && len < sizeof s->topic) {
			memcpy(s->topic, b + at, len);
			s->topic[len] = '\0';
		}
		if (i == 8 && len <= sizeof s->payload) {
			memcpy(s->payload, b + at, len);
			s->payload_len = len;
		}
		at += len;
	}
}

/* Everything one message holds, decoded: returns the events in it. */
static int decode(const struct frames *f, struct seen *out, int max)
{
	if (f->n == 3) { /* JSON: name, object, payload */
		const char *slash = strchr(f->data[0], '/');
		out->type = strncmp(f->data[0], "message.published", 17) == 0 ? MIDGE_EV_PUBLISH
										: MIDGE_EV_DELIVER;
		out->seq = (uint64_t)json_int(f->data[1], f->len[1], "seq");
		snprintf(out->topic, sizeof out->topic, "%s", slash ? slash + 1 : "");
		out->payload_len = f->len[2] < sizeof out->payload ? f->len[2] : 0;
		memcpy(out->payload, f->data[2], out->payload_len);
		return 1;
	}
	if (f->n != 1)
		return 0;
	const uint8_t *p = (const uint8_t *)f->data[0];
	const uint8_t *z = memchr(p, 0, f->len[0]);
	if (!z)
		return 0;
	size_t klen = (size_t)(z - p), at = klen + 1;
	if (p[klen - 1] != '/') {
		compact_decode(p + at, f->len[0] - at, out);
		return 1;
	}
	uint32_t count = le32(p + at);
	at += 4;
	int k = 0;
	for (uint32_t i = 0; i < count && k < max; i++) {
		uint32_t len = le32(p + at);
		compact_decode(p + at + 4, len, &out[k++]);
		at += 4 + len;
	}
	CU_ASSERT_EQUAL(at, f->len[0]);
	return k;
}

/*
 * The engine thread's part, as the loop does it: bursts of events (each
 * message published, then delivered), a flush per burst; meanwhile a
 * consumer reads. Every event must arrive once, complete, in order per
 * type, with its payload intact; every hold is released, on this thread.
 */
static void run_in_order(enum hooks_format fmt)
{
	enum { N = 6000 };
	holder_reset();
	struct hooks *h = start(fmt, 16u << 20, 0, 1000000);
	void *s = sub_open(hooks_endpoint(h, 0), "message.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	static struct tmsg msgs[N / 2];
	static struct seen got[N + 64];
	int ngot = 0;
	struct frames f = {0};
	for (int i = 0; i < N; i++) {
		struct tmsg *m = &msgs[i / 2];
		if (i % 2 == 0) {
			char topic[32];
			snprintf(topic, sizeof topic, "load/%d/%d", i % 7, i / 2);
			tmsg_init(m, topic, (size_t)(i / 2) % 200, i / 2);
		}
		struct midge_message v;
		tmsg_view(m, &v);
		struct midge_event ev = {.type = i % 2 ? MIDGE_EV_DELIVER : MIDGE_EV_PUBLISH,
					 .time_ms = 1000 + (uint64_t)i, .client = &cl_a};
		ev.u.message.msg = &v;
		if (i % 2)
			ev.u.message.to = S("receiver");
		hooks_emit(h, &ev, m);
		if (i % 50 == 49) {
			hooks_flush(h);
			while (ngot < N && recv_msg(s, &f, -1) > 0)
				ngot += decode(&f, &got[ngot], N + 64 - ngot);
		}
	}
	hooks_flush(h);
	for (int idle = 0; ngot < N && idle < 3000;) {
		if (recv_msg(s, &f, 1) > 0) {
			ngot += decode(&f, &got[ngot], N + 64 - ngot);
			idle = 0;
		} else {
			idle++;
			hooks_flush(h);
		}
	}
	frames_free(&f);
	CU_ASSERT_EQUAL(ngot, N);
	CU_ASSERT_EQUAL(hooks_dropped(h), 0);
	/* in order per type (batches of different types interleave) */
	uint64_t last[MIDGE_EV__COUNT] = {0};
	int bad = 0;
	for (int k = 0; k < ngot; k++) {
		struct seen *e = &got[k];
		uint64_t i = e->seq - 1; /* seq 1 is event 0 */
		if (e->seq <= last[e->type] || i >= N) {
			bad++;
			continue;
		}
		last[e->type] = e->seq;
		const struct tmsg *m = &msgs[i / 2];
		bad += e->type != (i % 2 ? MIDGE_EV_DELIVER : MIDGE_EV_PUBLISH);
		bad += strcmp(e->topic, m->topic) != 0;
		bad += e->payload_len != m->payload_len ||
		       memcmp(e->payload, m->payload, m->payload_len) != 0;
	}
	CU_ASSERT_EQUAL(bad, 0);
	pthread_mutex_lock(&views_mu);
	CU_ASSERT_EQUAL(views, N); /* every message was read where it lies */
	pthread_mutex_unlock(&views_mu);
	zmq_close(s);
	hooks_free(h);
	CU_ASSERT_EQUAL(holds, N);
	CU_ASSERT_EQUAL(releases, N);
	CU_ASSERT_EQUAL(wrong_thread, 0);
}

static void test_thread_in_order_json(void)
{
	run_in_order(HOOKS_FORMAT_JSON);
}

static void test_thread_in_order_compact(void)
{
	run_in_order(HOOKS_FORMAT_COMPACT);
}

/*
 * The publisher's thread sleeps until a flush or a full queue wakes it: a
 * burst that does not fit the smallest queue drops records, and the
 * consumer sees exactly that many gaps in seq and that count in
 * `dropped`.
 */
static void test_thread_queue_full(void)
{
	holder_reset();
	struct hooks *h = start(HOOKS_FORMAT_JSON, 1, 0, 1000000);
	void *s = sub_open(hooks_endpoint(h, 0), "");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	sleep_ms(300); /* quiet: the thread goes to sleep, to be woken */
	static char big[2000];
	memset(big, 'k', sizeof big);
	struct midge_client c = cl_a;
	c.client_id.p = big;
	c.client_id.len = sizeof big;
	enum { N = 200 };
	for (int i = 0; i < N; i++) {
		struct midge_event ev = {.type = MIDGE_EV_PING, .time_ms = 1, .client = &c};
		hooks_emit(h, &ev, NULL);
	}
	uint64_t dropped = hooks_dropped(h);
	CU_ASSERT(dropped > 0);
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 5000));
	struct frames f = {0};
	long long prev = 0, gaps = 0, got = 0, last_dropped = -1;
	while (recv_msg(s, &f, 500) == 2 && got < N) {
		long long seq = json_int(f.data[1], f.len[1], "seq");
		CU_ASSERT(seq > prev);
		gaps += seq - prev - 1;
		prev = seq;
		last_dropped = json_int(f.data[1], f.len[1], "dropped");
		got++;
	}
	/* one more event carries the drops that were at the end */
	struct midge_event ping = {.type = MIDGE_EV_PING, .time_ms = 2, .client = &cl_a};
	hooks_emit(h, &ping, NULL);
	hooks_flush(h);
	if (recv_msg(s, &f, 2000) == 2) {
		long long seq = json_int(f.data[1], f.len[1], "seq");
		gaps += seq - prev - 1;
		last_dropped = json_int(f.data[1], f.len[1], "dropped");
		CU_ASSERT_EQUAL(seq, N + 1);
	} else {
		CU_FAIL("no event after the burst");
	}
	frames_free(&f);
	CU_ASSERT_EQUAL((uint64_t)got + dropped, N);
	CU_ASSERT_EQUAL(gaps, (long long)dropped);
	CU_ASSERT_EQUAL(last_dropped, (long long)dropped);
	zmq_close(s);
	hooks_free(h);
}

/* Nobody subscribed: nothing queued, nothing rendered, all counted as
 * skipped; a client. consumer does not make message events queued. */
static void test_thread_nobody(void)
{
	holder_reset();
	struct hooks *h = start(HOOKS_FORMAT_JSON, 0, 0, 0);
	static struct tmsg m;
	tmsg_init(&m, "t", 10, 1);
	struct midge_message v;
	tmsg_view(&m, &v);
	struct midge_event pub = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = &cl_a};
	pub.u.message.msg = &v;
	struct midge_event ping = {.type = MIDGE_EV_PING, .time_ms = 1, .client = &cl_a};
	for (int i = 0; i < 1000; i++)
		hooks_emit(h, i % 2 ? &pub : &ping, i % 2 ? &m : NULL);
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
	CU_ASSERT_EQUAL(hooks_counts(h).queued, 0);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 1000);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 0);
	CU_ASSERT_EQUAL(holds, 0);

	void *s = sub_open(hooks_endpoint(h, 0), "client.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	for (int i = 0; i < 1000; i++)
		hooks_emit(h, i % 2 ? &pub : &ping, i % 2 ? &m : NULL);
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
	CU_ASSERT_EQUAL(hooks_counts(h).queued, 500);   /* the pings */
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 1500); /* the publishes too */
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 500);
	CU_ASSERT_EQUAL(holds, 0);
	zmq_close(s);
	hooks_free(h);
}

/* Callbacks stay on the emitting thread, in registration order, done when
 * hooks_emit returns, whatever the publisher does. */
struct cb_log {
	int order[16];
	int n;
	bool other_thread;
	pthread_t self;
};

struct cb_tag {
	struct cb_log *log;
	int id;
};

static void cb_note(const struct midge_event *ev, void *user)
{
	struct cb_tag *t = user;
	(void)ev;
	if (!pthread_equal(pthread_self(), t->log->self))
		t->log->other_thread = true;
	if (t->log->n < 16)
		t->log->order[t->log->n++] = t->id;
}

static void test_thread_callbacks_sync(void)
{
	struct hooks *h = hooks_new();
	struct cb_log log = {.n = 0, .self = pthread_self()};
	struct cb_tag tags[3] = {{&log, 1}, {&log, 2}, {&log, 3}};
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_CONNECT, cb_note, &tags[i]), 0);
	struct hooks_config cfg = {.endpoints = {"tcp://127.0.0.1:*"}, .n_endpoints = 1};
	char err[256];
	CU_ASSERT_EQUAL_FATAL(hooks_zmq_start(h, &cfg, err, sizeof err), 0);
	void *s = sub_open(hooks_endpoint(h, 0), "");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	struct midge_event ev = {.type = MIDGE_EV_CONNECT, .time_ms = 1, .client = &cl_a};
	hooks_emit(h, &ev, NULL);
	CU_ASSERT_EQUAL(log.n, 3); /* before anything reached the thread */
	CU_ASSERT(log.order[0] == 1 && log.order[1] == 2 && log.order[2] == 3);
	CU_ASSERT_FALSE(log.other_thread);
	hooks_flush(h);
	struct frames f = {0};
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 2);
	frames_free(&f);
	zmq_close(s);
	hooks_free(h);
}

/* Stopping with events in flight: the queue full of held messages for a
 * consumer that never reads. Everything held is released, here. */
static void test_thread_stop_in_flight(void)
{
	for (int round = 0; round < 3; round++) {
		holder_reset();
		struct hooks *h = start(round == 1 ? HOOKS_FORMAT_COMPACT : HOOKS_FORMAT_JSON, 0, 0, 10);
		void *s = sub_open(hooks_endpoint(h, 0), "");
		CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
		static struct tmsg m;
		tmsg_init(&m, "stop/now", 100, 3);
		struct midge_message v;
		tmsg_view(&m, &v);
		for (int i = 0; i < 20000; i++) {
			struct midge_event ev = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = &cl_a};
			ev.u.message.msg = &v;
			hooks_emit(h, &ev, &m);
			if (i % 64 == 0)
				hooks_flush(h);
		}
		if (round == 2)
			hooks_zmq_stop(h); /* stop, then free */
		hooks_free(h);
		zmq_close(s);
		CU_ASSERT(holds > 0);
		CU_ASSERT_EQUAL(releases, holds);
		CU_ASSERT_EQUAL(m.refs, 0);
		CU_ASSERT_EQUAL(wrong_thread, 0);
	}
}

struct note_log {
	char lines[8][300];
	int n;
};

static void note_cb(void *ctx, const char *line)
{
	struct note_log *l = ctx;
	if (l->n < 8)
		snprintf(l->lines[l->n++], sizeof l->lines[0], "%s", line);
}

/* A socket takes at most max_prefixes distinct prefixes: the rest are
 * ignored, counted, and said (escaped) in a log line. */
static void test_thread_prefix_bound(void)
{
	struct hooks *h = start(HOOKS_FORMAT_JSON, 0, 3, 0);
	void *s = sub_open(hooks_endpoint(h, 0), "client.");
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "session.", 8);
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "retained.", 9);
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 3));
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "message.\x01\n", 10);
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "message.published", 17);
	for (int k = 0; k < 2000 && hooks_counts(h).ignored < 2; k++)
		sleep_ms(1);
	CU_ASSERT_EQUAL(hooks_counts(h).ignored, 2);
	CU_ASSERT_EQUAL(hooks_prefix_count(h, 0), 3);
	struct note_log log = {.n = 0};
	hooks_notes(h, note_cb, &log);
	CU_ASSERT_EQUAL(log.n, 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(log.lines[0], "'message.\\x01\\x0a' ignored"));
	CU_ASSERT_PTR_NOT_NULL(strstr(log.lines[1], "midge_hooks_max_prefixes (3)"));
	/* message events stay unqueued: the prefix that wanted them is ignored */
	static struct tmsg m;
	tmsg_init(&m, "t", 1, 1);
	struct midge_message v;
	tmsg_view(&m, &v);
	struct midge_event ev = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = &cl_a};
	ev.u.message.msg = &v;
	holder_reset();
	hooks_emit(h, &ev, &m);
	CU_ASSERT_EQUAL(hooks_counts(h).queued, 0);
	zmq_close(s);
	hooks_free(h);
}

/* 1000 consumers' worth of topic prefixes on one socket: events match the
 * right ones, and queueing is decided per type by one bit. */
static void test_thread_many_prefixes(void)
{
	holder_reset();
	struct hooks *h = start(HOOKS_FORMAT_JSON, 0, 2000, 0);
	void *s = sub_open(hooks_endpoint(h, 0), NULL);
	for (int i = 0; i < 1000; i++) {
		char p[64];
		int n = snprintf(p, sizeof p, "message.published/t/%d/", i * 2);
		zmq_setsockopt(s, ZMQ_SUBSCRIBE, p, (size_t)n);
	}
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1000));
	static struct tmsg msgs[40];
	for (int i = 0; i < 40; i++) {
		char topic[32];
		snprintf(topic, sizeof topic, "t/%d/x", i * 50 + (i % 2)); /* even ones match */
		tmsg_init(&msgs[i], topic, 4, i);
		struct midge_message v;
		tmsg_view(&msgs[i], &v);
		struct midge_event ev = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = &cl_a};
		ev.u.message.msg = &v;
		hooks_emit(h, &ev, &msgs[i]);
	}
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
	CU_ASSERT_EQUAL(hooks_counts(h).queued, 40);
	CU_ASSERT_EQUAL(hooks_sent(h), 20);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 20);
	struct frames f = {0};
	int got = 0;
	while (recv_msg(s, &f, 300) == 3) {
		int n = 0;
		CU_ASSERT(sscanf(f.data[0], "message.published/t/%d/x", &n) == 1 && n % 2 == 0);
		got++;
	}
	frames_free(&f);
	CU_ASSERT_EQUAL(got, 20);
	zmq_close(s);
	hooks_free(h);
}

/* ---------------------------------------------------------- compact */

/* Every fixed field and string of a compact body, decoded by hand. */
static void test_compact_exact(void)
{
	static const uint8_t props[] = {0x01, 0x01};
	struct midge_message m = {.topic = S("a/b"), .payload = "xyz", .payload_len = 3,
				  .qos = 1, .retain = true, .packet_id = 513, .props = props,
				  .props_len = sizeof props, .origin = S("pub")};
	struct midge_event ev = {.type = MIDGE_EV_DROP, .time_ms = 0x0102030405ull,
				 .client = &cl_a};
	ev.u.message.msg = &m;
	ev.u.message.to = S("rx");
	ev.u.message.qos = 2;
	ev.u.message.packet_id = 7;
	ev.u.message.drop = MIDGE_DROP_SLOW_CONSUMER;
	ev.u.message.why = "slow";
	struct hooks_buf b = {0};
	CU_ASSERT_EQUAL_FATAL(hooks_compact_start(&b, "message.dropped/a/b", 19, false), 0);
	CU_ASSERT_EQUAL_FATAL(hooks_compact_body(&b, &ev, 42, 3), 0);
	const uint8_t *p = (const uint8_t *)b.p;
	CU_ASSERT(memcmp(p, "message.dropped/a/b\0", 20) == 0);
	const uint8_t *o = p + 20;
	CU_ASSERT_EQUAL(o[0], 1);
	CU_ASSERT_EQUAL(o[1], MIDGE_EV_DROP);
	CU_ASSERT_EQUAL(o[2], 1 | 4 | 8); /* retain, client, tls */
	CU_ASSERT_EQUAL(o[3], 1);
	CU_ASSERT_EQUAL(le64(o + 4), 42);
	CU_ASSERT_EQUAL(le64(o + 12), 3);
	CU_ASSERT_EQUAL(le64(o + 20), 0x0102030405ull);
	CU_ASSERT(o[28] == 1 && o[29] == 2); /* 513 */
	CU_ASSERT(o[30] == 7 && o[31] == 0);
	CU_ASSERT_EQUAL(o[32], 2);
	CU_ASSERT_EQUAL(o[33], MIDGE_DROP_SLOW_CONSUMER);
	CU_ASSERT_EQUAL(o[34], 5);
	CU_ASSERT(o[36] == (4242 & 0xff) && o[37] == 4242 >> 8);
	static const char *const want[] = {"a/b", "client-a", "alice", "192.0.2.1", "pub",
					   "rx", "slow", "\x01\x01", "xyz"};
	size_t at = 20 + HOOKS_COMPACT_HEAD;
	for (int i = 0; i < 9; i++) {
		uint32_t len = le32(p + at);
		size_t wl = i == 7 ? 2 : strlen(want[i]);
		CU_ASSERT_EQUAL(len, wl);
		CU_ASSERT(memcmp(p + at + 4, want[i], wl) == 0);
		at += 4 + len;
	}
	CU_ASSERT_EQUAL(at, b.len);
	/* no client, no receiver: null strings */
	ev.client = NULL;
	ev.u.message.to = S(NULL);
	ev.u.message.why = NULL;
	m.props_len = 0;
	CU_ASSERT_EQUAL_FATAL(hooks_compact_start(&b, "k", 1, false), 0);
	CU_ASSERT_EQUAL_FATAL(hooks_compact_body(&b, &ev, 1, 0), 0);
	p = (const uint8_t *)b.p + 2;
	CU_ASSERT_EQUAL(p[2], 1);
	at = HOOKS_COMPACT_HEAD + 4 + 3; /* after the topic */
	for (int i = 1; i < 8; i++) {
		if (i == 4) { /* origin */
			at += 4 + le32(p + at);
			continue;
		}
		CU_ASSERT_EQUAL(le32(p + at), UINT32_MAX);
		at += 4;
	}
	CU_ASSERT_EQUAL(le32(p + at), 3);
	hooks_buf_release(&b);
}

/* A subscriber of a topic prefix of a type turns batches of that type off
 * for the whole socket (or a subscriber of both would get events twice),
 * and on again when it leaves. */
static void test_compact_batches_and_singles(void)
{
	holder_reset();
	struct hooks *h = start(HOOKS_FORMAT_COMPACT, 0, 0, 0);
	void *all = sub_open(hooks_endpoint(h, 0), "message.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	static struct tmsg m;
	tmsg_init(&m, "x/y", 5, 9);
	struct midge_message v;
	tmsg_view(&m, &v);
	struct midge_event ev = {.type = MIDGE_EV_PUBLISH, .time_ms = 1, .client = &cl_a};
	ev.u.message.msg = &v;
	for (int i = 0; i < 10; i++)
		hooks_emit(h, &ev, &m);
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
	struct frames f = {0};
	static struct seen got[64];
	int n = 0, frames = 0;
	while (recv_msg(all, &f, 300) == 1) {
		CU_ASSERT(memcmp(f.data[0], "message.published/\0", 19) == 0);
		n += decode(&f, &got[n], 64 - n);
		frames++;
	}
	CU_ASSERT_EQUAL(n, 10);
	CU_ASSERT(frames >= 1 && frames < 10);

	void *some = sub_open(hooks_endpoint(h, 0), "message.published/x/");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 2));
	for (int i = 0; i < 10; i++)
		hooks_emit(h, &ev, &m);
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
	int singles = 0;
	n = 0;
	while (recv_msg(all, &f, 300) == 1) {
		CU_ASSERT(memcmp(f.data[0], "message.published/x/y\0", 22) == 0);
		n += decode(&f, &got[n], 64 - n);
		singles++;
	}
	CU_ASSERT_EQUAL(n, 10);
	CU_ASSERT_EQUAL(singles, 10);
	int other = 0;
	while (recv_msg(some, &f, 300) == 1)
		other++;
	CU_ASSERT_EQUAL(other, 10);
	frames_free(&f);
	zmq_close(some);
	zmq_close(all);
	hooks_free(h);
	CU_ASSERT_EQUAL(releases, holds);
}

/* --------------------------------------------------------- endpoint */

static char tmpdir[256];

static void endpoint_env(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/midge-ep-test-%ld", (long)getpid());
	mkdir(tmpdir, 0700);
	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
}

static void endpoint_clean(void)
{
	char p[300];
	snprintf(p, sizeof p, "%s/midge/events", tmpdir);
	unlink(p);
	snprintf(p, sizeof p, "%s/midge", tmpdir);
	unlink(p);
	rmdir(p);
}

static void test_endpoint_default(void)
{
	endpoint_env();
	endpoint_clean();
	char ep[256], err[512] = "";
	CU_ASSERT_EQUAL_FATAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), 0);
	char want[300], dir[300];
	snprintf(want, sizeof want, "ipc://%s/midge/events", tmpdir);
	snprintf(dir, sizeof dir, "%s/midge", tmpdir);
	CU_ASSERT_STRING_EQUAL(ep, want);
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(lstat(dir, &st), 0);
	CU_ASSERT(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700 && st.st_uid == geteuid());
	/* a second start finds it as it should be */
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), 0);

	/* and publishes there, refusing a second publisher on the same socket */
	struct hooks *h = hooks_new();
	struct hooks_config cfg = {.endpoints = {ep}, .n_endpoints = 1};
	CU_ASSERT_EQUAL_FATAL(hooks_zmq_start(h, &cfg, err, sizeof err), 0);
	void *s = sub_open(ep, "");
	CU_ASSERT(wait_prefixes(h, 0, 1));
	struct midge_event ping = {.type = MIDGE_EV_PING, .time_ms = 1, .client = &cl_a};
	hooks_emit(h, &ping, NULL);
	hooks_flush(h);
	struct frames f = {0};
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 2);
	frames_free(&f);
	struct hooks *h2 = hooks_new();
	err[0] = '\0';
	CU_ASSERT_EQUAL(hooks_zmq_start(h2, &cfg, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "in use"));
	hooks_free(h2);
	zmq_close(s);
	hooks_free(h);
	endpoint_clean();
}

static void test_endpoint_fail_closed(void)
{
	endpoint_env();
	endpoint_clean();
	char ep[256], err[512] = "", dir[300];
	snprintf(dir, sizeof dir, "%s/midge", tmpdir);
	/* a directory others may open */
	CU_ASSERT_EQUAL_FATAL(mkdir(dir, 0700), 0);
	chmod(dir, 0750);
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "mode 750"));
	chmod(dir, 0701);
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), -1);
	chmod(dir, 0700);
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), 0);
	/* another user's (only root can make one to test) */
	if (geteuid() == 0) {
		CU_ASSERT_EQUAL(chown(dir, 65534, 65534), 0);
		err[0] = '\0';
		CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), -1);
		CU_ASSERT_PTR_NOT_NULL(strstr(err, "belongs to uid 65534"));
	}
	rmdir(dir);
	/* a link, even to a good directory */
	char target[300];
	snprintf(target, sizeof target, "%s/real", tmpdir);
	mkdir(target, 0700);
	CU_ASSERT_EQUAL(symlink(target, dir), 0);
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
	unlink(dir);
	rmdir(target);
	/* a file */
	FILE *fp = fopen(dir, "w");
	if (fp)
		fclose(fp);
	CU_ASSERT_EQUAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), -1);
	unlink(dir);
	/* a path too long for a unix socket */
	char longdir[512], ds[121];
	memset(ds, 'd', 120);
	ds[120] = '\0';
	snprintf(longdir, sizeof longdir, "%.256s/%s", tmpdir, ds);
	mkdir(longdir, 0700);
	setenv("XDG_RUNTIME_DIR", longdir, 1);
	CU_ASSERT_EQUAL_FATAL(hooks_default_endpoint(ep, sizeof ep, err, sizeof err), 0);
	struct hooks *h = hooks_new();
	struct hooks_config cfg = {.endpoints = {ep}, .n_endpoints = 1};
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &cfg, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "path longer than"));
	hooks_free(h);
	char p[600];
	snprintf(p, sizeof p, "%s/midge", longdir);
	rmdir(p);
	rmdir(longdir);
	setenv("XDG_RUNTIME_DIR", tmpdir, 1);
	rmdir(tmpdir);
}

static const struct test_case queue_cases[] = {
	{"every event kind round-trips a record", test_queue_roundtrip},
	{"messages held, released on the engine thread", test_queue_holds},
	{"full ring refuses, drops reach the consumer first", test_queue_full_drops},
	{"held bytes bounded", test_queue_held_bound},
	{NULL, NULL},
};
static const struct test_case want_cases[] = {
	{"prefixes classified per event type", test_want_classify},
	{"binary search answers as a scan", test_want_matches_scan},
	{"prefixes per socket bounded", test_want_bound},
	{NULL, NULL},
};
static const struct test_case thread_cases[] = {
	{"complete and in order under load (JSON)", test_thread_in_order_json},
	{"complete and in order under load (compact)", test_thread_in_order_compact},
	{"full queue drops, counted and visible", test_thread_queue_full},
	{"nothing queued or rendered for nobody", test_thread_nobody},
	{"callbacks synchronous, in order", test_thread_callbacks_sync},
	{"stop with events in flight releases all", test_thread_stop_in_flight},
	{"prefix bound: ignored, counted, logged", test_thread_prefix_bound},
	{"1000 topic prefixes", test_thread_many_prefixes},
	{NULL, NULL},
};
static const struct test_case compact_cases[] = {
	{"compact body exact", test_compact_exact},
	{"batches only when no topic prefix", test_compact_batches_and_singles},
	{NULL, NULL},
};
static const struct test_case endpoint_cases[] = {
	{"default ipc endpoint in a 0700 directory", test_endpoint_default},
	{"wider or foreign directory fails closed", test_endpoint_fail_closed},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"hooks_queue", queue_cases},
	{"hooks_want", want_cases},
	{"hooks_thread", thread_cases},
	{"hooks_compact", compact_cases},
	{"hooks_endpoint", endpoint_cases},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	zctx = zmq_ctx_new();
	int rc = test_runner_run(argc, argv, suites);
	zmq_ctx_term(zctx);
	return rc;
}
