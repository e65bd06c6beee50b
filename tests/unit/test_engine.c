/*
 * test_engine.c - the engine driven through a fake io and a fake clock.
 * Every expectation on the wire is a hand-written hex string of the exact
 * bytes the engine queued on a connection, in order.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "engine/bridge.h"
#include "engine/engine.h"
#include "engine/store.h"
#include "tests/unit/runner.h"

#define NCONN 8
#define OUT_MAX 65536
#define NEV 512

struct fconn {
	struct engine_conn *c;
	uint8_t out[OUT_MAX];
	size_t n;
	int close_calls;
	bool gone;
	bool refuse_qos0;
	int resumes; /* engine_io.resume calls */
};

struct fevent {
	enum midge_event_type type;
	uint8_t rc;
	uint8_t qos;
	bool will;
	bool by_client;
	bool session_present;
	enum midge_drop_reason drop;
	char cid[80];
	char to[80];
	char topic[80];
	char why[80];
	char peer[64];
	uint16_t peer_port;
	uint32_t sub_id;
};

static struct engine *E;
static struct engine_config CFG;
static struct fconn F[NCONN];
static struct fevent EV[NEV];
static int NEVS;
static uint64_t NOW;

static void copy_str(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	if (n)
		memcpy(dst, p, n);
	dst[n] = '\0';
}

static int f_send(void *ctx, void *handle, const uint8_t *head, size_t hl, struct frame *tail,
		  bool droppable)
{
	struct fconn *f = handle;
	CU_ASSERT_FATAL(!f->gone);
	if (droppable && f->refuse_qos0)
		return -1;
	size_t tl = tail ? tail->len : 0;
	CU_ASSERT_FATAL(f->n + hl + tl <= OUT_MAX);
	memcpy(f->out + f->n, head, hl);
	f->n += hl;
	if (tail) {
		memcpy(f->out + f->n, tail->data, tl);
		f->n += tl;
	}
	return 0;
}

static void f_close(void *ctx, void *handle)
{
	struct fconn *f = handle;
	f->close_calls++;
}

/* engine_io.sample: counts the sampled topics, asks for SAMPLE_GAP. */
static int SAMPLES;
static uint32_t SAMPLE_GAP;
static uint32_t f_sample(void *ctx, const uint8_t *topic, size_t len)
{
	(void)ctx;
	(void)topic;
	(void)len;
	SAMPLES++;
	return SAMPLE_GAP;
}

static void f_resume(void *ctx, void *handle)
{
	struct fconn *f = handle;
	f->resumes++;
}

/* Which member of ev->u each event type fills (include/midge.h); a type
 * not listed fills u.session. A table, so that adding an event type is one
 * line here and the recorder's copying stays one case per member. */
enum f_event_part { FEV_SESSION, FEV_CONNECT, FEV_DISCONNECT, FEV_SUBSCRIBE, FEV_MESSAGE, FEV_ACL };
static const enum f_event_part f_event_parts[MIDGE_EV__COUNT] = {
	[MIDGE_EV_CONNECT] = FEV_CONNECT, [MIDGE_EV_CONNECT_REFUSED] = FEV_CONNECT,
	[MIDGE_EV_DISCONNECT] = FEV_DISCONNECT, [MIDGE_EV_PROTOCOL_ERROR] = FEV_DISCONNECT,
	[MIDGE_EV_SUBSCRIBE] = FEV_SUBSCRIBE, [MIDGE_EV_UNSUBSCRIBE] = FEV_SUBSCRIBE,
	[MIDGE_EV_PUBLISH] = FEV_MESSAGE, [MIDGE_EV_DELIVER] = FEV_MESSAGE,
	[MIDGE_EV_ACKED] = FEV_MESSAGE, [MIDGE_EV_DROP] = FEV_MESSAGE, [MIDGE_EV_WILL] = FEV_MESSAGE,
	[MIDGE_EV_RETAIN_SET] = FEV_MESSAGE, [MIDGE_EV_RETAIN_CLEAR] = FEV_MESSAGE,
	[MIDGE_EV_ACL_DENIED] = FEV_ACL,
};

/* A delivery event publishes "z" on "t" this many times (a program's
 * event callback that publishes: t_cluster_journal_nested). */
static int NESTED_LEFT;

static void f_event(void *ctx, const struct midge_event *ev)
{
	if (ev->type == MIDGE_EV_DELIVER && NESTED_LEFT > 0) {
		NESTED_LEFT--;
		CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "z", 1, 0, false, NOW), 0);
	}
	if (NEVS >= NEV)
		return;
	struct fevent *r = &EV[NEVS++];
	memset(r, 0, sizeof *r);
	r->type = ev->type;
	if (ev->client) {
		copy_str(r->cid, sizeof r->cid, ev->client->client_id.p, ev->client->client_id.len);
		if (ev->client->peer_addr) /* NULL for a will published after its connection */
			copy_str(r->peer, sizeof r->peer, ev->client->peer_addr, strlen(ev->client->peer_addr));
		r->peer_port = ev->client->peer_port;
	}
	switch (ev->type < MIDGE_EV__COUNT ? f_event_parts[ev->type] : FEV_SESSION) {
	case FEV_CONNECT:
		r->rc = ev->u.connect.rc;
		r->session_present = ev->u.connect.session_present;
		if (ev->u.connect.why)
			copy_str(r->why, sizeof r->why, ev->u.connect.why, strlen(ev->u.connect.why));
		break;
	case FEV_DISCONNECT:
		r->rc = ev->u.disconnect.rc;
		r->will = ev->u.disconnect.will;
		r->by_client = ev->u.disconnect.by_client;
		if (ev->u.disconnect.why)
			copy_str(r->why, sizeof r->why, ev->u.disconnect.why, strlen(ev->u.disconnect.why));
		break;
	case FEV_SUBSCRIBE:
		r->rc = ev->u.subscribe.rc;
		r->qos = ev->u.subscribe.qos;
		r->sub_id = ev->u.subscribe.sub_id;
		copy_str(r->topic, sizeof r->topic, ev->u.subscribe.filter.p, ev->u.subscribe.filter.len);
		break;
	case FEV_MESSAGE:
		r->qos = ev->u.message.qos;
		r->drop = ev->u.message.drop;
		copy_str(r->topic, sizeof r->topic, ev->u.message.msg->topic.p,
			 ev->u.message.msg->topic.len);
		copy_str(r->to, sizeof r->to, ev->u.message.to.p, ev->u.message.to.len);
		if (ev->u.message.why)
			copy_str(r->why, sizeof r->why, ev->u.message.why, strlen(ev->u.message.why));
		break;
	case FEV_ACL:
		r->rc = (uint8_t)ev->u.acl.access;
		copy_str(r->topic, sizeof r->topic, ev->u.acl.topic.p, ev->u.acl.topic.len);
		copy_str(r->why, sizeof r->why, ev->u.acl.why, strlen(ev->u.acl.why));
		break;
	case FEV_SESSION:
		if (ev->u.session.why)
			copy_str(r->why, sizeof r->why, ev->u.session.why, strlen(ev->u.session.why));
		break;
	}
}

/* Number of recorded events of a type (and, when topic is not NULL,
 * with that topic). */
static int count_ev(enum midge_event_type type, const char *topic)
{
	int n = 0;
	for (int i = 0; i < NEVS; i++)
		if (EV[i].type == type && (!topic || strcmp(EV[i].topic, topic) == 0))
			n++;
	return n;
}

static const struct fevent *last_ev(enum midge_event_type type)
{
	for (int i = NEVS - 1; i >= 0; i--)
		if (EV[i].type == type)
			return &EV[i];
	return NULL;
}

static void start(const struct engine_config *cfg, const struct engine_auth *auth)
{
	static const struct engine_io io = {NULL, f_send, f_close, f_event, f_resume, f_sample};
	memset(F, 0, sizeof F);
	NEVS = 0;
	SAMPLES = 0;
	SAMPLE_GAP = 1000;
	NOW = 1000000;
	if (cfg) {
		CFG = *cfg;
	} else {
		engine_config_default(&CFG);
		CFG.receive_max = 20; /* as config_default() */
	}
	E = engine_new(&CFG, &io, auth);
	CU_ASSERT_FATAL(E != NULL);
}

static void rec_free_handles(void);

static void stop(void)
{
	engine_free(E);
	E = NULL;
	rec_free_handles();
}

/* The default bounds, for a test to change one or two before start(). */
static struct engine_config config_default(void)
{
	struct engine_config cfg;

	engine_config_default(&cfg);
	/* The byte vectors below announce receive maximum 20 (21 00 14);
	 * t_default_windows checks the real defaults. */
	cfg.receive_max = 20;
	return cfg;
}

/* The running engine's counters now. */
static struct engine_stats stats_now(void)
{
	struct engine_stats st;

	engine_stats(E, &st);
	return st;
}

static void open_conn(int i)
{
	memset(&F[i], 0, sizeof F[i]);
	F[i].c = engine_conn_open(E, &F[i], "127.0.0.1", (uint16_t)(40000 + i), false, NOW);
	CU_ASSERT_FATAL(F[i].c != NULL);
}

/* The transport noticed the socket is gone (after io->close or not). */
static void gone(int i, const char *why)
{
	CU_ASSERT_FATAL(!F[i].gone);
	engine_conn_closed(E, F[i].c, why, NOW);
	F[i].gone = true;
	F[i].c = NULL;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = 0;
	while (*hex) {
		if (*hex == ' ') {
			hex++;
			continue;
		}
		unsigned v;
		CU_ASSERT_FATAL(sscanf(hex, "%2x", &v) == 1);
		CU_ASSERT_FATAL(n < cap);
		out[n++] = (uint8_t)v;
		hex += 2;
	}
	return n;
}

/* Feeds complete packets (one or more) to connection i through the
 * engine's framing loop, as the transport does; returns what
 * engine_conn_input() returned. Going on reading means every byte was a
 * whole packet and was used. */
static int feed_bytes(int i, const uint8_t *b, size_t n)
{
	struct codec_feed fo;
	int rc = engine_conn_input(E, F[i].c, b, n, NOW, &fo);
	if (rc == 0) {
		CU_ASSERT_EQUAL_FATAL(fo.used, n);
		CU_ASSERT_EQUAL(fo.need, 0);
	}
	return rc;
}

static int feed(int i, const char *hex)
{
	uint8_t b[4096];
	size_t n = unhex(hex, b, sizeof b);
	return feed_bytes(i, b, n);
}

/* What connection i was sent since the last call, as hex. */
static const char *out(int i)
{
	static char buf[OUT_MAX * 3 + 1];
	size_t k = 0;
	for (size_t j = 0; j < F[i].n; j++)
		k += (size_t)sprintf(buf + k, j ? " %02x" : "%02x", F[i].out[j]);
	buf[k] = '\0';
	F[i].n = 0;
	return buf;
}

static void expect(int i, const char *hex)
{
	const char *got = out(i);
	if (strcmp(got, hex) != 0)
		fprintf(stderr, "\n  conn %d\n  want: %s\n  got:  %s\n", i, hex, got);
	CU_ASSERT_STRING_EQUAL(got, hex);
}

/* Builds a CONNECT into pk (2100 bytes) and returns its size. level 3 uses
 * "MQIsdp". props and tail (will properties/topic/payload, username,
 * password, as hex) may be NULL. */
static size_t connect_bytes(uint8_t *pk, uint8_t level, const char *cid, uint8_t flags, uint16_t ka,
			    const char *props, const char *tail)
{
	uint8_t body[2048];
	size_t n = 0;
	const char *name = level == 3 ? "MQIsdp" : "MQTT";
	size_t nl = strlen(name), cl = strlen(cid);
	body[n++] = 0;
	body[n++] = (uint8_t)nl;
	memcpy(body + n, name, nl);
	n += nl;
	body[n++] = level;
	body[n++] = flags;
	body[n++] = (uint8_t)(ka >> 8);
	body[n++] = (uint8_t)ka;
	if (level == 5) {
		uint8_t pb[512];
		size_t pl = props ? unhex(props, pb, sizeof pb) : 0;
		body[n++] = (uint8_t)pl;
		memcpy(body + n, pb, pl);
		n += pl;
	}
	body[n++] = (uint8_t)(cl >> 8);
	body[n++] = (uint8_t)cl;
	memcpy(body + n, cid, cl);
	n += cl;
	if (tail)
		n += unhex(tail, body + n, sizeof body - n);
	size_t k = 0;
	pk[k++] = 0x10;
	size_t rem = n;
	do {
		uint8_t d = rem % 128;
		rem /= 128;
		pk[k++] = (uint8_t)(d | (rem ? 0x80 : 0));
	} while (rem);
	memcpy(pk + k, body, n);
	return k + n;
}

/* Builds and feeds a CONNECT (see connect_bytes()). */
static int connect_full(int i, uint8_t level, const char *cid, uint8_t flags, uint16_t ka,
			const char *props, const char *tail)
{
	uint8_t pk[2100];
	return feed_bytes(i, pk, connect_bytes(pk, level, cid, flags, ka, props, tail));
}

/* Feeds connection i the packets in hex and expects exactly want back. */
static void exchange(int i, const char *hex, const char *want)
{
	feed(i, hex);
	expect(i, want);
}

/* Opens connection i, feeds it a CONNECT (see connect_full()), checks
 * what the engine returned and expects exactly want back. */
static void connect_expect(int i, uint8_t level, const char *cid, uint8_t flags, uint16_t ka,
			   const char *props, const char *tail, int rc, const char *want)
{
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, level, cid, flags, ka, props, tail), rc);
	expect(i, want);
}

/* Opens connection i and connects it with the default flags for a test:
 * clean, keepalive 60; checks the CONNACK is a plain success. */
static void up4(int i, const char *cid)
{
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, 4, cid, 0x02, 60, NULL, NULL), 0);
	expect(i, "20 02 00 00");
}

/* Opens connection i and connects cid with a session that outlives it
 * (clean 0, keepalive 60); checks the engine took the CONNECT and
 * expects exactly want back (the CONNACK and whatever was stored). */
static void up4_kept(int i, const char *cid, const char *want)
{
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, 4, cid, 0x00, 60, NULL, NULL), 0);
	expect(i, want);
}

/* Connection i (3.1.1) subscribes to topic at qos with packet id 1 and
 * expects exactly its SUBACK granting qos. */
static void subscribe4(int i, const char *topic, uint8_t qos)
{
	char sub[256], ack[32];
	size_t tl = strlen(topic);
	CU_ASSERT_FATAL(tl < 64);
	int n = snprintf(sub, sizeof sub, "82 %02zx 00 01 00 %02zx", tl + 5, tl);
	for (size_t k = 0; k < tl; k++)
		n += snprintf(sub + n, sizeof sub - (size_t)n, " %02x", (unsigned char)topic[k]);
	snprintf(sub + n, sizeof sub - (size_t)n, " %02x", qos);
	snprintf(ack, sizeof ack, "90 03 00 01 %02x", qos);
	exchange(i, sub, ack);
}

/* Connection i is "sub" (3.1.1) subscribed to the will topic "w" at qos:
 * the watcher of the will tests. */
static void up4_will_watcher(int i, uint8_t qos)
{
	up4(i, "sub");
	subscribe4(i, "w", qos);
}

/* Connection 0 is "pub", connection 1 is "sub" subscribed to a/b at qos,
 * both MQTT 3.1.1: the setup of most delivery tests. */
static void pub_sub4(uint8_t qos)
{
	up4(0, "pub");
	up4(1, "sub");
	subscribe4(1, "a/b", qos);
}

/* As pub_sub4(), but the subscriber is "s" with a session that outlives
 * connection 1: the setup of the tests of what a session keeps. */
static void pub_sub4_kept(uint8_t qos)
{
	up4(0, "pub");
	up4_kept(1, "s", "20 02 00 00");
	subscribe4(1, "a/b", qos);
}

static const char *connack5_default = "20 09 00 00 06 21 00 14 22 00 0a";

static void up5(int i, const char *cid, uint8_t flags, const char *props)
{
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, 5, cid, flags, 60, props, NULL), 0);
	if (flags & 0x02)
		expect(i, connack5_default);
}

/* ---------------------------------------------------------------- connect */

static void t_first_packet_not_connect(void)
{
	start(NULL, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(feed(0, "c0 00"), -1); /* PINGREQ first */
	expect(0, "");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	/* the engine says so, for the transport's log and the hooks */
	const struct fevent *ev = last_ev(MIDGE_EV_PROTOCOL_ERROR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL(ev->rc, MQTT_RC_PROTOCOL_ERROR);
	CU_ASSERT_STRING_EQUAL(ev->why, "first packet is PINGREQ, not CONNECT");
	gone(0, NULL);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DISCONNECT, NULL), 0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PROTOCOL_ERROR, NULL), 1);
	stop();
}

static void t_second_connect_v4(void)
{
	start(NULL, NULL);
	up4(0, "a");
	CU_ASSERT_EQUAL(connect_full(0, 4, "a", 0x02, 60, NULL, NULL), -1);
	expect(0, "");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PROTOCOL_ERROR, NULL), 1);
	gone(0, NULL);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DISCONNECT)->rc, MQTT_RC_PROTOCOL_ERROR);
	stop();
}

static void t_second_connect_v5(void)
{
	start(NULL, NULL);
	up5(0, "a", 0x02, NULL);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, NULL, NULL), -1);
	/* DISCONNECT 0x82 with reason string "second CONNECT" */
	expect(0, "e0 13 82 11 1f 00 0e 73 65 63 6f 6e 64 20 43 4f 4e 4e 45 43 54");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_connack_v4_clean(void)
{
	start(NULL, NULL);
	up4(0, "client-1");
	const struct fevent *ev = last_ev(MIDGE_EV_CONNECT);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	if (!ev) /* FATAL leaves by longjmp, which the optimizer cannot see */
		return;
	CU_ASSERT_STRING_EQUAL(ev->cid, "client-1");
	CU_ASSERT_FALSE(ev->session_present);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_CREATED, NULL), 1);
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 4);
	stop();
}

/* The connection keeps the peer's text address sized to fit: the longest
 * IPv6 text, a short one and none must all come back whole in events. */
static void t_peer_address_kept(void)
{
	static const char *longest = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255";
	const char *peers[] = {longest, "::1", NULL};
	start(NULL, NULL);
	for (int i = 0; i < 3; i++) {
		memset(&F[i], 0, sizeof F[i]);
		F[i].c = engine_conn_open(E, &F[i], peers[i], (uint16_t)(50000 + i), false, NOW);
		CU_ASSERT_PTR_NOT_NULL_FATAL(F[i].c);
		char cid[8];
		snprintf(cid, sizeof cid, "p%d", i);
		CU_ASSERT_EQUAL(connect_full(i, 4, cid, 0x02, 60, NULL, NULL), 0);
		const struct fevent *ev = last_ev(MIDGE_EV_CONNECT);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
		CU_ASSERT_STRING_EQUAL(ev->peer, peers[i] ? peers[i] : "");
		CU_ASSERT_EQUAL(ev->peer_port, 50000 + i);
	}
	stop();
}

static void t_connack_v31(void)
{
	start(NULL, NULL);
	connect_expect(0, 3, "old", 0x02, 60, NULL, NULL, 0, "20 02 00 00");
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 3);
	stop();
}

static void t_unsupported_level(void)
{
	start(NULL, NULL);
	connect_expect(0, 7, "a", 0x02, 60, NULL, NULL, -1, "20 02 00 01");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->rc, 1);
	stop();
}

static void t_empty_id_persistent_v4(void)
{
	start(NULL, NULL);
	connect_expect(0, 4, "", 0x00, 60, NULL, NULL, -1, "20 02 00 02");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_empty_id_clean_v4(void)
{
	start(NULL, NULL);
	connect_expect(0, 4, "", 0x02, 60, NULL, NULL, 0, "20 02 00 00");
	CU_ASSERT_EQUAL(strncmp(last_ev(MIDGE_EV_CONNECT)->cid, "midge-", 6), 0);
	stop();
}

static void t_empty_id_not_allowed(void)
{
	struct engine_config cfg = config_default();
	cfg.allow_zero_length_clientid = false;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "", 0x02, 60, NULL, NULL), -1);
	/* CONNACK 0x85 with a reason string */
	expect(0, "20 29 00 85 26 1f 00 23 65 6d 70 74 79 20 63 6c 69 65 6e 74 20 69 64 65 6e "
		  "74 69 66 69 65 72 20 6e 6f 74 20 61 6c 6c 6f 77 65 64");
	stop();
}

static void t_assigned_id_v5(void)
{
	start(NULL, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "", 0x02, 60, NULL, NULL), 0);
	/* receive max 20, assigned client id (22 bytes), topic alias max 10 */
	const char *got = out(0);
	char want[512];
	const char *cid = last_ev(MIDGE_EV_CONNECT)->cid;
	CU_ASSERT_EQUAL_FATAL(strlen(cid), 22);
	int k = sprintf(want, "20 22 00 00 1f 12 00 16");
	for (int j = 0; j < 22; j++)
		k += sprintf(want + k, " %02x", (uint8_t)cid[j]);
	sprintf(want + k, " 21 00 14 22 00 0a");
	CU_ASSERT_STRING_EQUAL(got, want);
	stop();
}

static void t_client_id_too_long(void)
{
	struct engine_config cfg = config_default();
	cfg.max_client_id_len = 4;
	start(&cfg, NULL);
	connect_expect(0, 4, "abcde", 0x02, 60, NULL, NULL, -1, "20 02 00 02");
	/* the refusal names the client id the CONNECT carried */
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->cid, "abcde");
	stop();
}

static void t_anonymous_refused(void)
{
	struct engine_config cfg = config_default();
	cfg.allow_anonymous = false;
	start(&cfg, NULL);
	connect_expect(0, 4, "a", 0x02, 60, NULL, NULL, -1, "20 02 00 05");
	/* with a username it passes */
	connect_expect(1, 4, "b", 0x82, 60, NULL, "00 01 75", 0, "20 02 00 00");
	stop();
}

static int deny_connect(void *ctx, const struct midge_client *client,
			const struct midge_str *username, const struct midge_str *password)
{
	if (password->len == 3 && memcmp(password->p, "pwd", 3) == 0)
		return 0;
	return MQTT_RC_BAD_USERNAME_OR_PASSWORD;
}

static void t_auth_connect(void)
{
	struct engine_auth auth = {.connect = deny_connect};
	start(NULL, &auth);
	connect_expect(0, 4, "a", 0xc2, 60, NULL, "00 01 75 00 03 62 61 64", -1, "20 02 00 04");
	connect_expect(1, 4, "b", 0xc2, 60, NULL, "00 01 75 00 03 70 77 64", 0, "20 02 00 00");
	open_conn(2);
	CU_ASSERT_EQUAL(connect_full(2, 5, "c", 0xc2, 60, NULL, "00 01 75 00 01 78"), -1);
	/* 0x86 with "refused by authentication" */
	expect(2, "20 1f 00 86 1c 1f 00 19 72 65 66 75 73 65 64 20 62 79 20 61 75 74 68 65 6e "
		  "74 69 63 61 74 69 6f 6e");
	stop();
}

/* An authentication module that answers later: it remembers whom it was
 * asked about, as an auth worker would. */
static struct engine_conn *PENDING_CONN;
static char PENDING_CID[64];
static int PENDING_CANCELS;

static int later_connect(void *ctx, const struct midge_client *client,
			 const struct midge_str *username, const struct midge_str *password)
{
	PENDING_CONN = engine_conn_of(client);
	copy_str(PENDING_CID, sizeof PENDING_CID, client->client_id.p, client->client_id.len);
	return ENGINE_AUTH_PENDING;
}

static void later_cancel(void *ctx, const struct midge_client *client)
{
	CU_ASSERT_PTR_EQUAL(engine_conn_of(client), PENDING_CONN);
	PENDING_CANCELS++;
}

static const struct engine_auth auth_later = {.connect = later_connect,
					      .connect_cancel = later_cancel};

/* Starts with auth_later and feeds connection 0 a CONNECT and, in the
 * same read, the bytes in hex; checks the CONNECT is held and what
 * follows is not read. Returns the CONNECT's size in *used. */
static void pending_start(uint8_t level, const char *cid, const char *after, uint8_t *buf,
			  size_t *n, size_t *used)
{
	PENDING_CONN = NULL;
	PENDING_CANCELS = 0;
	start(NULL, &auth_later);
	open_conn(0);
	size_t k = connect_bytes(buf, level, cid, 0x02, 60, NULL, NULL);
	*n = k + unhex(after, buf + k, 2100 - k);
	struct codec_feed fo;
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf, *n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, k); /* the CONNECT, nothing after it */
	*used = fo.used;
	CU_ASSERT_PTR_EQUAL(PENDING_CONN, F[0].c);
	expect(0, "");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_CONNECT, NULL), 0);
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 0);
	/* while held, nothing more is read, by either entry */
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf + k, *n - k, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 0);
	CU_ASSERT_EQUAL(engine_conn_frame(E, F[0].c, 0xC0, NULL, 0, NOW), ENGINE_CONN_HELD);
	expect(0, "");
}

static void t_auth_pending_allow(void)
{
	uint8_t buf[2100];
	size_t n, used;
	pending_start(4, "a", "82 06 00 01 00 01 74 00", buf, &n, &used); /* SUBSCRIBE t */
	CU_ASSERT_STRING_EQUAL(PENDING_CID, "a");
	CU_ASSERT_EQUAL(engine_conn_auth_done(E, F[0].c, 0, NOW), 0);
	expect(0, "20 02 00 00");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_CONNECT, NULL), 1);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_CONNECT)->cid, "a");
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 4);
	/* the transport feeds what it kept */
	CU_ASSERT_EQUAL(feed_bytes(0, buf + used, n - used), 0);
	expect(0, "90 03 00 01 00");
	/* nothing is pending any more */
	CU_ASSERT_EQUAL(engine_conn_auth_done(E, F[0].c, 0, NOW), -1);
	expect(0, "");
	gone(0, NULL);
	CU_ASSERT_EQUAL(PENDING_CANCELS, 0);
	stop();
}

static void t_auth_pending_assigned_id(void)
{
	uint8_t buf[2100];
	size_t n, used;
	char want[256];
	pending_start(5, "", "", buf, &n, &used);
	/* the identifier assigned before the wait is the one CONNACK names */
	CU_ASSERT_EQUAL(strlen(PENDING_CID), 22);
	CU_ASSERT_EQUAL(engine_conn_auth_done(E, F[0].c, 0, NOW), 0);
	int k = sprintf(want, "20 22 00 00 1f 12 00 16");
	for (const char *p = PENDING_CID; *p; p++)
		k += sprintf(want + k, " %02x", (unsigned char)*p);
	sprintf(want + k, " 21 00 14 22 00 0a");
	expect(0, want);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_CONNECT)->cid, PENDING_CID);
	stop();
}

static void t_auth_pending_deny(void)
{
	uint8_t buf[2100];
	size_t n, used;
	pending_start(5, "b", "c0 00", buf, &n, &used);
	CU_ASSERT_EQUAL(engine_conn_auth_done(E, F[0].c, MQTT_RC_BAD_USERNAME_OR_PASSWORD, NOW), -1);
	/* 0x86 with "refused by authentication", as a synchronous refusal */
	expect(0, "20 1f 00 86 1c 1f 00 19 72 65 66 75 73 65 64 20 62 79 20 61 75 74 68 65 6e "
		  "74 69 63 61 74 69 6f 6e");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->rc, MQTT_RC_BAD_USERNAME_OR_PASSWORD);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->cid, "b");
	/* the PINGREQ that followed is never answered */
	CU_ASSERT_EQUAL(feed_bytes(0, buf + used, n - used), -1);
	expect(0, "");
	gone(0, NULL);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DISCONNECT, NULL), 0);
	CU_ASSERT_EQUAL(stats_now().clients_total, 0);
	stop();
}

static void t_auth_pending_client_gone(void)
{
	uint8_t buf[2100];
	size_t n, used;
	pending_start(4, "c", "", buf, &n, &used);
	gone(0, "reset");
	CU_ASSERT_EQUAL(PENDING_CANCELS, 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DISCONNECT, NULL), 0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_CONNECT, NULL), 0);
	CU_ASSERT_EQUAL(stats_now().clients_total, 0);
	CU_ASSERT_EQUAL(stats_now().clients_connected, 0);
	/* another client with the same id is not disturbed by the old wait */
	open_conn(1);
	CU_ASSERT_EQUAL(connect_full(1, 4, "c", 0x02, 60, NULL, NULL), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(engine_conn_auth_done(E, F[1].c, 0, NOW), 0);
	expect(1, "20 02 00 00");
	stop();
}

/* A store that writes down what it is told, one call per entry. Its
 * session handle is the client id (copied): the log names sessions. */
static char STORE_LOG[4096];
static uint64_t REC_TICKET; /* what ticket() answers */

static void store_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void store_note(const char *fmt, ...)
{
	size_t k = strlen(STORE_LOG);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(STORE_LOG + k, sizeof STORE_LOG - k, fmt, ap);
	va_end(ap);
}

/* The recorder's handles, freed by rec_free_handles() (a store owns its
 * handles: the engine never frees them). */
#define REC_HANDLES 64
static char *REC_HANDLE[REC_HANDLES];

static void *rec_session_saved(void *ctx, void *sess, const struct engine_store_session *s)
{
	store_note("saved %.*s %u v%u%s", (int)s->client_id.len, s->client_id.p, s->expiry,
		   s->protocol, s->disconnected_at ? " off" : "");
	if (s->user.p || s->listener)
		store_note(" by %.*s@%u", s->user.p ? (int)s->user.len : 1, s->user.p ? s->user.p : "-",
			   s->listener);
	store_note("; ");
	if (sess)
		return sess;
	for (int i = 0; i < REC_HANDLES; i++)
		if (!REC_HANDLE[i])
			return REC_HANDLE[i] = strndup(s->client_id.p, s->client_id.len);
	CU_FAIL("too many stored sessions for the recorder");
	return NULL;
}

static void rec_session_removed(void *ctx, void *sess)
{
	store_note("removed %s; ", (char *)sess);
	for (int i = 0; i < REC_HANDLES; i++)
		if (REC_HANDLE[i] == sess)
			REC_HANDLE[i] = NULL;
	free(sess);
}

static void rec_free_handles(void)
{
	for (int i = 0; i < REC_HANDLES; i++) {
		free(REC_HANDLE[i]);
		REC_HANDLE[i] = NULL;
	}
}

static void rec_sub_added(void *ctx, void *sess, const struct midge_str *filter, uint8_t options,
			  uint32_t sub_id)
{
	store_note("sub %s %.*s %u %u; ", (char *)sess, (int)filter->len, filter->p, options, sub_id);
}

static void rec_sub_removed(void *ctx, void *sess, const struct midge_str *filter)
{
	store_note("unsub %s %.*s; ", (char *)sess, (int)filter->len, filter->p);
}

static void rec_queued(void *ctx, void *sess, const struct engine_store_msg *m,
		       const struct engine_store_delivery *d)
{
	store_note("queued %s %.*s q%u; ", (char *)sess, (int)m->v.topic.len, m->v.topic.p, d->qos);
}

static void rec_unqueued(void *ctx, void *sess, uint64_t id)
{
	store_note("unqueued %s; ", (char *)sess);
}

static void rec_flight_sent(void *ctx, void *sess, uint16_t pid, const struct engine_store_msg *m,
			    const struct engine_store_delivery *d)
{
	store_note("flight %s %u q%u; ", (char *)sess, pid, d->qos);
}

static void rec_flight_released(void *ctx, void *sess, uint16_t pid, uint64_t id)
{
	store_note("pubrel %s %u; ", (char *)sess, pid);
}

static void rec_flight_done(void *ctx, void *sess, uint16_t pid, uint64_t id)
{
	store_note("done %s %u%s; ", (char *)sess, pid, id ? "" : " -");
}

static void rec_released(void *ctx, uint64_t id)
{
	store_note("released; ");
}

static void rec_qos2_received(void *ctx, void *sess, uint16_t pid)
{
	store_note("qos2 %s %u; ", (char *)sess, pid);
}

static void rec_qos2_released(void *ctx, void *sess, uint16_t pid)
{
	store_note("rel %s %u; ", (char *)sess, pid);
}

static void rec_will_set(void *ctx, void *sess, const struct engine_store_msg *will, uint32_t delay)
{
	store_note("will %s %.*s %u; ", (char *)sess, will ? (int)will->v.topic.len : 1,
		   will ? will->v.topic.p : "-", delay);
}

static void rec_retained_set(void *ctx, const struct midge_str *topic,
			     const struct engine_store_msg *m, uint64_t old_id)
{
	store_note("retained %.*s %u%s; ", (int)topic->len, topic->p, m != NULL, old_id ? " old" : "");
}

static void rec_history_added(void *ctx, const struct midge_str *filter, uint64_t seq, uint64_t at,
			      const struct engine_store_msg *m)
{
	store_note("history %.*s %llu %.*s; ", (int)filter->len, filter->p, (unsigned long long)seq,
		   (int)m->v.topic.len, m->v.topic.p);
}

static void rec_history_removed(void *ctx, const struct midge_str *filter, uint64_t seq,
				uint64_t id)
{
	store_note("unhistory %.*s %llu; ", (int)filter->len, filter->p, (unsigned long long)seq);
}

static uint64_t rec_ticket(void *ctx)
{
	return REC_TICKET;
}

/* The store calls since the last check are exactly want. */
static void store_expect(const char *want)
{
	if (strcmp(STORE_LOG, want) != 0)
		fprintf(stderr, "\n  store want: %s\n  store got:  %s\n", want, STORE_LOG);
	CU_ASSERT_STRING_EQUAL(STORE_LOG, want);
	STORE_LOG[0] = '\0';
}

static const struct engine_store store_recorder = {
	NULL,
	rec_session_saved,
	rec_session_removed,
	rec_sub_added,
	rec_sub_removed,
	rec_queued,
	rec_unqueued,
	rec_flight_sent,
	rec_flight_released,
	rec_flight_done,
	rec_released,
	rec_qos2_received,
	rec_qos2_released,
	rec_will_set,
	rec_retained_set,
	rec_history_added,
	rec_history_removed,
	rec_ticket,
};

static void t_store_calls(void)
{
	STORE_LOG[0] = '\0';
	start(NULL, NULL);
	engine_store_attach(E, &store_recorder);
	/* a clean session and its QoS 1 traffic never reach the store */
	up4(0, "c");
	exchange(0, "82 06 00 01 00 01 78 01", "90 03 00 01 01");
	/* a v5 session with expiry 60 s and a will delayed 5 s */
	connect_expect(1, 5, "p", 0x06, 60, "11 00 00 00 3c", "05 18 00 00 00 05 00 01 77 00 00",
		       0, connack5_default);
	exchange(1, "82 09 00 01 00 00 03 61 2f 23 01", "90 04 00 01 00 01");
	exchange(1, "34 08 00 01 79 00 09 00 68 69", "50 03 00 09 10"); /* y: no subscribers */
	exchange(1, "62 02 00 09", "70 02 00 09");
	gone(1, NULL);
	/* offline: the QoS 1 message is queued, then sent on resume */
	exchange(0, "32 09 00 03 61 2f 62 00 05 68 69", "40 02 00 05");
	/* resumed within the will delay: the will is discarded [MQTT-3.1.3-9] */
	connect_expect(1, 5, "p", 0x00, 60, "11 00 00 00 3c", NULL, 0,
		       "20 09 01 00 06 21 00 14 22 00 0a 32 0a 00 03 61 2f 62 00 01 00 68 69");
	exchange(1, "40 02 00 01", "");
	/* retained set and cleared */
	feed(0, "31 07 00 03 61 2f 72 68 69 31 05 00 03 61 2f 72");
	out(1);
	exchange(1, "a2 08 00 02 00 00 03 61 2f 23", "b0 04 00 02 00 00");
	/* DISCONNECT with expiry 0: the session leaves the store */
	CU_ASSERT_EQUAL(feed(1, "e0 07 00 05 11 00 00 00 00"), -1);
	gone(1, NULL);
	store_expect("saved p 60 v5; will p w 5; sub p a/# 1 0; qos2 p 9; rel p 9; "
		     "saved p 60 v5 off; queued p a/b q1; will p - 0; saved p 60 v5; unqueued p; "
		     "flight p 1 q1; done p 1; "
		     "retained a/r 1; retained a/r 0 old; unsub p a/#; removed p; ");
	stop();
}

static void t_auth_method_v5(void)
{
	start(NULL, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 05 53 43 52 41 4d", NULL), -1);
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "20 2c 00 8c 29 1f 00 26 6e 6f 20", 32), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_connack_v5_props(void)
{
	struct engine_config cfg = config_default();
	cfg.max_qos = 1;
	cfg.retain_available = false;
	cfg.max_packet_size = 1000;
	cfg.wildcard_sub_available = false;
	cfg.sub_id_available = false;
	cfg.shared_sub_available = false;
	cfg.max_keepalive = 30;
	cfg.receive_max = 65535;
	cfg.topic_alias_max = 0;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, NULL, NULL), 0);
	/* max QoS 1, retain 0, max packet 1000, wildcard 0, sub id 0, shared 0,
	 * server keep alive 30 */
	expect(0, "20 15 00 00 12 13 00 1e 24 01 25 00 27 00 00 03 e8 28 00 29 00 2a 00");
	stop();
}

static void t_keepalive_timeout(void)
{
	start(NULL, NULL);
	connect_expect(0, 4, "a", 0x02, 10, NULL, NULL, 0, "20 02 00 00");
	uint64_t t0 = NOW;
	NOW = t0 + 8000;
	CU_ASSERT_EQUAL(feed(0, "c0 00"), 0); /* [MQTT-3.1.2-23] a packet resets it */
	expect(0, "d0 00");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PING, NULL), 1);
	NOW = t0 + 15000;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(F[0].close_calls, 0);
	NOW = t0 + 8000 + 14999;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(F[0].close_calls, 0);
	NOW = t0 + 8000 + 15000;
	uint64_t next = engine_tick(E, NOW);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(next, UINT64_MAX);
	gone(0, "eof");
	const struct fevent *ev = last_ev(MIDGE_EV_DISCONNECT);
	CU_ASSERT_EQUAL(ev->rc, MQTT_RC_KEEP_ALIVE_TIMEOUT);
	CU_ASSERT_STRING_EQUAL(ev->why, "keepalive timeout");
	stop();
}

static void t_keepalive_v5_disconnect(void)
{
	start(NULL, NULL);
	connect_expect(0, 5, "a", 0x02, 2, NULL, NULL, 0, connack5_default);
	NOW += 3000;
	engine_tick(E, NOW);
	/* DISCONNECT 0x8D "keep alive timeout" */
	expect(0, "e0 17 8d 15 1f 00 12 6b 65 65 70 20 61 6c 69 76 65 20 74 69 6d 65 6f 75 74");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_server_keep_alive(void)
{
	struct engine_config cfg = config_default();
	cfg.max_keepalive = 20;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 0, NULL, NULL), 0);
	/* keep alive 0 asked, 20 imposed [MQTT-3.2.2-21] */
	expect(0, "20 0c 00 00 09 13 00 14 21 00 14 22 00 0a");
	NOW += 29999;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(F[0].close_calls, 0);
	NOW += 1;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_disconnect_normal(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 0);
	/* will "w" = "x", QoS 0 */
	connect_expect(0, 4, "a", 0x06, 60, NULL, "00 01 77 00 01 78", 0, "20 02 00 00");
	CU_ASSERT_EQUAL(feed(0, "e0 00"), -1); /* [MQTT-3.14.4-3] will discarded */
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	gone(0, NULL);
	expect(1, "");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, NULL), 0);
	const struct fevent *ev = last_ev(MIDGE_EV_DISCONNECT);
	CU_ASSERT(ev->by_client);
	CU_ASSERT_FALSE(ev->will);
	stop();
}

static void t_will_on_abnormal_close(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 1);
	/* will "w" = "x", QoS 1, retain */
	connect_expect(0, 4, "a", 0x2e, 60, NULL, "00 01 77 00 01 78", 0, "20 02 00 00");
	gone(0, "connection reset"); /* [MQTT-3.1.2-8] */
	CU_ASSERT(last_ev(MIDGE_EV_DISCONNECT)->will);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_DISCONNECT)->why, "connection reset");
	expect(1, "32 06 00 01 77 00 01 78");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, "w"), 1);
	/* retained: a later subscriber gets it with the retain flag */
	up4(2, "late");
	exchange(2, "82 06 00 02 00 01 77 01", "90 03 00 02 01 33 06 00 01 77 00 01 78");
	stop();
}

static void t_will_disconnect_0x04(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 0);
	connect_expect(0, 5, "a", 0x06, 60, NULL, "00 00 01 77 00 01 78", 0, connack5_default);
	CU_ASSERT_EQUAL(feed(0, "e0 01 04"), -1);
	gone(0, NULL);
	expect(1, "30 04 00 01 77 78");
	stop();
}

/* ---------------------------------------------------------------- routing */

static void t_qos0_route(void)
{
	start(NULL, NULL);
	pub_sub4(0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SUBSCRIBE, "a/b"), 1);
	CU_ASSERT_EQUAL(feed(0, "30 07 00 03 61 2f 62 68 69"), 0);
	expect(0, "");
	expect(1, "30 07 00 03 61 2f 62 68 69");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PUBLISH, "a/b"), 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DELIVER, "a/b"), 1);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_DELIVER)->to, "sub");
	stop();
}

/* Message events outside the mask are not built, yet every count is
 * kept; the sampler sees one publish in every gap it asked for. */
static void t_event_mask(void)
{
	start(NULL, NULL);
	pub_sub4(1);
	engine_set_event_mask(E, 1u << MIDGE_EV_ACKED);
	SAMPLE_GAP = 2;
	int samples = SAMPLES;
	for (uint16_t i = 1; i <= 4; i++) {
		char pkt[64];
		snprintf(pkt, sizeof pkt, "32 09 00 03 61 2f 62 00 %02x 68 69", i);
		feed(0, pkt);
		snprintf(pkt, sizeof pkt, "40 02 00 %02x", i);
		feed(1, pkt);
	}
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PUBLISH, NULL), 0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DELIVER, NULL), 0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_ACKED, "a/b"), 4);
	CU_ASSERT_EQUAL(SAMPLES - samples, 2); /* the 1st publish's sample asked for 2 */
	struct engine_stats st = stats_now();
	CU_ASSERT_EQUAL(st.publish_received_qos[1], 4);
	CU_ASSERT_EQUAL(st.publish_bytes_received_qos[1], 8);
	CU_ASSERT_EQUAL(st.publish_sent_qos[1], 4);
	CU_ASSERT_EQUAL(st.publish_bytes_sent_qos[1], 8);
	CU_ASSERT_EQUAL(st.publish_received_qos[0], 0);
	/* no subscriber: a drop, counted by reason with no event built */
	feed(0, "30 07 00 03 78 2f 79 68 69");
	engine_stats(E, &st);
	CU_ASSERT_EQUAL(st.drops_by_reason[MIDGE_DROP_NO_SUBSCRIBERS], 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DROP, NULL), 0);
	engine_set_event_mask(E, ~0u);
	feed(0, "30 07 00 03 61 2f 62 68 69");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PUBLISH, "a/b"), 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DELIVER, "a/b"), 1);
	stop();
}

static void t_qos1_flow(void)
{
	start(NULL, NULL);
	pub_sub4(1);
	feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
	expect(0, "40 02 00 05"); /* [MQTT-4.3.2-2] */
	expect(1, "32 09 00 03 61 2f 62 00 01 68 69");
	struct engine_stats st = stats_now();
	CU_ASSERT_EQUAL(st.inflight_count, 1);
	feed(1, "40 02 00 01");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_ACKED, "a/b"), 1);
	engine_stats(E, &st);
	CU_ASSERT_EQUAL(st.inflight_count, 0);
	CU_ASSERT_EQUAL(st.publish_received, 1);
	CU_ASSERT_EQUAL(st.publish_sent, 1);
	stop();
}

static void t_qos2_flow(void)
{
	start(NULL, NULL);
	pub_sub4(2);
	exchange(0, "34 09 00 03 61 2f 62 00 07 68 69", "50 02 00 07");
	expect(1, "34 09 00 03 61 2f 62 00 01 68 69");
	exchange(0, "62 02 00 07", "70 02 00 07");
	feed(1, "50 02 00 01");
	expect(1, "62 02 00 01"); /* [MQTT-4.3.3-4] */
	exchange(1, "70 02 00 01", "");
	CU_ASSERT_EQUAL(stats_now().inflight_count, 0);
	stop();
}

static void t_qos2_no_duplicate(void)
{
	start(NULL, NULL);
	pub_sub4(2);
	feed(0, "34 09 00 03 61 2f 62 00 07 68 69");
	/* [MQTT-4.3.3-9] resent, DUP */
	exchange(0, "3c 09 00 03 61 2f 62 00 07 68 69", "50 02 00 07 50 02 00 07");
	expect(1, "34 09 00 03 61 2f 62 00 01 68 69");
	exchange(0, "62 02 00 07", "70 02 00 07");
	exchange(0, "62 02 00 07", "70 02 00 07"); /* unknown PUBREL still answered */
	/* after PUBREL the id is free: a new message */
	exchange(0, "34 09 00 03 61 2f 62 00 07 68 6a", "50 02 00 07");
	expect(1, "34 09 00 03 61 2f 62 00 02 68 6a");
	stop();
}

static void t_overlapping_subscriptions(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up4(1, "sub");
	exchange(1, "82 0e 00 01 00 03 61 2f 23 00 00 03 61 2f 62 02", "90 04 00 01 00 02");
	/* one copy at the highest granted QoS [MQTT-3.3.5-1] */
	feed(0, "34 09 00 03 61 2f 62 00 07 68 69");
	expect(1, "34 09 00 03 61 2f 62 00 01 68 69");
	feed(0, "30 07 00 03 61 2f 63 68 69");
	expect(1, "30 07 00 03 61 2f 63 68 69");
	stop();
}

static void t_dollar_topics(void)
{
	start(NULL, NULL);
	up4(1, "sub");
	exchange(1, "82 06 00 01 00 01 23 00", "90 03 00 01 00");
	/* [MQTT-4.7.2-1] */
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"$SYS/x", 6, "1", 1, 0, false, NOW), 0);
	expect(1, "");
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"x", 1, "1", 1, 0, false, NOW), 0);
	expect(1, "30 04 00 01 78 31");
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"x/#", 3, "1", 1, 0, false, NOW), -1);
	stop();
}

static void t_unsubscribe(void)
{
	start(NULL, NULL);
	pub_sub4(0);
	feed(1, "a2 07 00 02 00 03 61 2f 62");
	expect(1, "b0 02 00 02"); /* [MQTT-3.10.4-4] */
	feed(0, "30 07 00 03 61 2f 62 68 69");
	expect(1, "");
	/* a filter that does not exist is still acknowledged [MQTT-3.10.4-5] */
	exchange(1, "a2 07 00 03 00 03 61 2f 62", "b0 02 00 03");
	stop();
}

static void t_unsubscribe_v5_missing(void)
{
	start(NULL, NULL);
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	exchange(1, "a2 0d 00 02 00 00 03 61 2f 62 00 03 61 2f 63", "b0 05 00 02 00 00 11");
	stop();
}

static void t_retained(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	feed(0, "31 07 00 03 61 2f 62 68 69");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_RETAIN_SET, "a/b"), 1);
	up4(1, "sub");
	feed(1, "82 08 00 01 00 03 61 2f 62 01");
	/* SUBACK first, then the retained message with RETAIN set [MQTT-3.3.1-8] */
	expect(1, "90 03 00 01 01 31 07 00 03 61 2f 62 68 69");
	/* replaced */
	feed(0, "31 07 00 03 61 2f 62 68 6f");
	expect(1, "30 07 00 03 61 2f 62 68 6f"); /* [MQTT-3.3.1-9] */
	/* re-subscribe replaces and sends the retained message again [MQTT-3.8.4-3] */
	exchange(1, "82 08 00 02 00 03 61 2f 62 00", "90 03 00 02 00 31 07 00 03 61 2f 62 68 6f");
	/* cleared by an empty retained payload [MQTT-3.3.1-10] */
	feed(0, "31 05 00 03 61 2f 62");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_RETAIN_CLEAR, "a/b"), 1);
	expect(1, "30 05 00 03 61 2f 62");
	up4(2, "late");
	exchange(2, "82 08 00 01 00 03 61 2f 23 00", "90 03 00 01 00");
	CU_ASSERT_EQUAL(stats_now().retained_count, 0);
	stop();
}

/* Broker-wide bounds on retained messages: a new retained topic past
 * them is refused (v5 0x97, not forwarded); replacing or clearing one is
 * not held back, and clearing makes room. */
static void t_retained_bounds(void)
{
	struct engine_config cfg = config_default();
	cfg.max_retained_messages = 2;
	start(&cfg, NULL);
	up5(0, "pub", 0x02, NULL);
	exchange(0, "33 09 00 02 74 31 00 05 00 68 69", "40 03 00 05 10");
	exchange(0, "33 09 00 02 74 32 00 06 00 68 69", "40 03 00 06 10");
	feed(0, "33 09 00 02 74 33 00 07 00 68 69");
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "40 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 6, "00 07 97", 8), 0);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_RETAINED_FULL);
	CU_ASSERT_EQUAL(stats_now().retained_count, 2);
	exchange(0, "33 09 00 02 74 31 00 08 00 68 6f", "40 03 00 08 10"); /* replaces */
	exchange(0, "33 07 00 02 74 32 00 09 00", "40 03 00 09 10");       /* clears */
	exchange(0, "33 09 00 02 74 33 00 0a 00 68 69", "40 03 00 0a 10");
	CU_ASSERT_EQUAL(stats_now().retained_count, 2);
	CU_ASSERT(stats_now().retained_bytes > 0);
	/* a will past the bound is published, not retained */
	open_conn(1);
	CU_ASSERT_EQUAL(connect_full(1, 4, "w", 0x26, 60, NULL, "00 02 74 34 00 01 78"), 0);
	expect(1, "20 02 00 00");
	gone(1, NULL);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DROP, "t4"), 2); /* retained_full, no_subscribers */
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_RETAIN_SET, "t4"), 0);
	CU_ASSERT_EQUAL(stats_now().retained_count, 2);
	stop();

	cfg = config_default();
	cfg.max_retained_bytes = 1;
	start(&cfg, NULL);
	up4(0, "pub");
	exchange(0, "33 08 00 02 74 31 00 05 68 69", "40 02 00 05"); /* 3.1.1: acknowledged, dropped */
	CU_ASSERT_EQUAL(stats_now().retained_count, 0);
	stop();
}

/* midge_max_sessions: a new client id past it gets CONNACK 0x97 (3.1.1:
 * server unavailable); a client whose session exists still connects. */
static void t_max_sessions(void)
{
	struct engine_config cfg = config_default();
	cfg.max_sessions = 2;
	start(&cfg, NULL);
	up4_kept(0, "a", "20 02 00 00");
	up4(1, "b");
	connect_expect(2, 4, "c", 0x02, 60, NULL, NULL, -1, "20 02 00 03");
	open_conn(3);
	CU_ASSERT_EQUAL(connect_full(3, 5, "d", 0x02, 60, NULL, NULL), -1);
	const char *got = out(3);
	CU_ASSERT_EQUAL(strncmp(got + 6, "00 97", 5), 0);
	gone(0, NULL);
	up4_kept(4, "a", "20 02 01 00");
	stop();
}

static void t_retain_unavailable(void)
{
	struct engine_config cfg = config_default();
	cfg.retain_available = false;
	start(&cfg, NULL);
	up4(0, "pub");
	CU_ASSERT_EQUAL(feed(0, "31 07 00 03 61 2f 62 68 69"), -1);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

static void t_max_qos(void)
{
	struct engine_config cfg = config_default();
	cfg.max_qos = 1;
	start(&cfg, NULL);
	up4(1, "sub");
	exchange(1, "82 08 00 01 00 03 61 2f 62 02", "90 03 00 01 01");
	connect_expect(2, 5, "v5", 0x02, 60, NULL, NULL, 0, "20 0b 00 00 08 21 00 14 22 00 0a 24 01"); /* maximum QoS 1 */
	CU_ASSERT_EQUAL(feed(2, "34 0a 00 03 61 2f 62 00 07 00 68 69"), -1);
	/* [MQTT-3.2.2-11] DISCONNECT 0x9B "QoS not supported" */
	expect(2, "e0 16 9b 14 1f 00 11 51 6f 53 20 6e 6f 74 20 73 75 70 70 6f 72 74 65 64");
	stop();
}

static void t_shared_round_robin(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up4(1, "s1");
	up4(2, "s2");
	exchange(1, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 67 2f 74 00", "90 03 00 01 00");
	exchange(2, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 67 2f 74 00", "90 03 00 01 00");
	feed(0, "30 04 00 01 74 31 30 04 00 01 74 32 30 04 00 01 74 33 30 04 00 01 74 34");
	expect(1, "30 04 00 01 74 31 30 04 00 01 74 33");
	expect(2, "30 04 00 01 74 32 30 04 00 01 74 34");
	/* a member that went away is skipped */
	gone(2, NULL);
	feed(0, "30 04 00 01 74 35 30 04 00 01 74 36");
	expect(1, "30 04 00 01 74 35 30 04 00 01 74 36");
	stop();
}

/* A shared member whose session ends hands what it had not acknowledged,
 * in flight or queued, to another member of the group (4.8.2). */
static void t_shared_member_leaves(void)
{
	struct engine_config cfg = config_default();
	cfg.max_inflight = 1;
	start(&cfg, NULL);
	up4(0, "pub");
	up4(1, "s1");
	up4(2, "s2");
	exchange(1, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 67 2f 74 01", "90 03 00 01 01");
	exchange(2, "82 0f 00 01 00 0a 24 73 68 61 72 65 2f 67 2f 74 01", "90 03 00 01 01");
	feed(0, "32 06 00 01 74 00 05 31 32 06 00 01 74 00 06 32 "
		"32 06 00 01 74 00 07 33 32 06 00 01 74 00 08 34");
	expect(1, "32 06 00 01 74 00 01 31"); /* 3 waits in s1's queue */
	expect(2, "32 06 00 01 74 00 01 32"); /* 4 in s2's */
	gone(1, NULL);
	expect(2, ""); /* s2's window is full: 1 and 3 queue behind 4 */
	exchange(2, "40 02 00 01", "32 06 00 01 74 00 02 34");
	exchange(2, "40 02 00 02", "32 06 00 01 74 00 03 31");
	exchange(2, "40 02 00 03", "32 06 00 01 74 00 04 33");
	exchange(2, "40 02 00 04", "");
	stop();
}

static void t_no_local(void)
{
	start(NULL, NULL);
	up5(0, "me", 0x02, NULL);
	up4(1, "other");
	exchange(0, "82 07 00 01 00 00 01 74 04", "90 04 00 01 00 00");
	exchange(0, "30 05 00 01 74 00 78", ""); /* [MQTT-3.8.3-3] */
	feed(1, "30 04 00 01 74 79");
	expect(0, "30 05 00 01 74 00 79");
	/* no-local on a shared subscription is a protocol error [MQTT-3.8.3-4] */
	CU_ASSERT_EQUAL(feed(0, "82 10 00 02 00 00 0a 24 73 68 61 72 65 2f 67 2f 74 04"), -1);
	stop();
}

static void t_retain_as_published(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "rap", 0x02, NULL);
	up5(2, "norap", 0x02, NULL);
	exchange(1, "82 07 00 01 00 00 01 74 08", "90 04 00 01 00 00");
	exchange(2, "82 07 00 01 00 00 01 74 00", "90 04 00 01 00 00");
	feed(0, "31 04 00 01 74 78"); /* [MQTT-3.3.1-12] [MQTT-3.3.1-13] */
	expect(1, "31 05 00 01 74 00 78");
	expect(2, "30 05 00 01 74 00 78");
	stop();
}

static void t_retain_handling(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	feed(0, "31 04 00 01 74 78");
	up5(1, "rh1", 0x02, NULL);
	exchange(1, "82 07 00 01 00 00 01 74 10", "90 04 00 01 00 00 31 05 00 01 74 00 78");
	/* exists: not sent [MQTT-3.3.1-10] */
	exchange(1, "82 07 00 02 00 00 01 74 10", "90 04 00 02 00 00");
	up5(2, "rh2", 0x02, NULL);
	exchange(2, "82 07 00 01 00 00 01 74 20", "90 04 00 01 00 00"); /* never [MQTT-3.3.1-11] */
	stop();
}

static void t_subscription_ids(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 02 0b 05 00 01 74 00", "90 04 00 01 00 00");
	exchange(1, "82 09 00 02 02 0b 07 00 01 23 01", "90 04 00 02 00 01");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_SUBSCRIBE)->sub_id, 7);
	/* one message, both identifiers [MQTT-3.3.4-3] (in the tree's match order) */
	feed(0, "30 04 00 01 74 78");
	expect(1, "30 09 00 01 74 04 0b 07 0b 05 78");
	feed(0, "30 04 00 01 75 78");
	expect(1, "30 07 00 01 75 02 0b 07 78");
	stop();
}

/* More overlapping subscriptions with identifiers than one delivery
 * carries: further copies, every identifier delivered exactly once. */
/* The subscription identifiers in a run of v5 PUBLISH packets: each may
 * appear once (bit per identifier) across the copies. */
struct sub_id_tally {
	unsigned seen;
	unsigned copies;
};

static int tally_sub_ids(void *ctx, const struct codec_frame *fr, const uint8_t *body)
{
	struct sub_id_tally *t = ctx;
	struct codec_packet pk;
	CU_ASSERT_EQUAL_FATAL(codec_decode(fr->first, body, fr->remaining, CODEC_V5, &pk), 0);
	CU_ASSERT_EQUAL(pk.type, CODEC_PUBLISH);
	uint32_t pos = 0, id = 0;
	while (codec_props_next_sub_id(&pk.u.publish.props, &pos, &id) == 1) {
		CU_ASSERT(id >= 1 && id <= 5);
		CU_ASSERT_FALSE(t->seen & (1u << id)); /* each identifier once */
		t->seen |= 1u << id;
	}
	t->copies++;
	return 0;
}

static void t_subscription_ids_many(void)
{
	static const char *subs[] = {
		"82 09 00 01 02 0b 01 00 01 74 00",       /* t */
		"82 09 00 02 02 0b 02 00 01 23 00",       /* # */
		"82 09 00 03 02 0b 03 00 01 2b 00",       /* + */
		"82 0b 00 04 02 0b 04 00 03 74 2f 23 00", /* t/# */
		"82 0b 00 05 02 0b 05 00 03 2b 2f 23 00", /* +/# */
		"82 0b 00 06 02 0b 06 00 03 2b 2f 2b 00", /* +/+: no match */
	};
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x02, NULL);
	for (size_t k = 0; k < sizeof subs / sizeof subs[0]; k++)
		feed(1, subs[k]);
	F[1].n = 0;
	feed(0, "30 04 00 01 74 78");
	struct sub_id_tally t = {0, 0};
	struct codec_feed fo;
	CU_ASSERT_EQUAL(codec_frames(F[1].out, F[1].n, NULL, tally_sub_ids, &t, &fo), 0);
	CU_ASSERT_EQUAL(fo.used, F[1].n);
	CU_ASSERT_EQUAL(t.seen, 0x3Eu);
	CU_ASSERT_EQUAL(t.copies, 2);
	F[1].n = 0;
	stop();
}

static void t_sub_ids_unavailable(void)
{
	struct engine_config cfg = config_default();
	cfg.sub_id_available = false;
	start(&cfg, NULL);
	open_conn(1);
	connect_full(1, 5, "sub", 0x02, 60, NULL, NULL);
	out(1);
	CU_ASSERT_EQUAL(feed(1, "82 09 00 01 02 0b 05 00 01 74 00"), -1);
	/* DISCONNECT 0xA1 "subscription identifiers not supported" */
	expect(1, "e0 2b a1 29 1f 00 26 73 75 62 73 63 72 69 70 74 69 6f 6e 20 69 64 65 6e 74 69 66 "
		  "69 65 72 73 20 6e 6f 74 20 73 75 70 70 6f 72 74 65 64");
	CU_ASSERT_EQUAL(F[1].close_calls, 1);
	stop();
}

/* The fake ACL: "secret" is refused to everyone; "mine" is readable
 * only by user u (the session's user name also while it is offline). */
static int acl_deny_secret(void *ctx, const struct midge_client *client, const uint8_t *topic,
			   size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	(void)ctx;
	if (len == 6 && memcmp(topic, "secret", 6) == 0)
		return MQTT_RC_NOT_AUTHORIZED;
	if (access == ENGINE_ACCESS_RECEIVE && len == 4 && memcmp(topic, "mine", 4) == 0 &&
	    !(client->username.len == 1 && client->username.p[0] == 'u'))
		return MQTT_RC_NOT_AUTHORIZED;
	return 0;
}

static void t_acl(void)
{
	struct engine_auth auth = {.acl = acl_deny_secret};
	struct engine_stats st;
	start(NULL, &auth);
	up4(0, "pub4");
	up5(1, "pub5", 0x02, NULL);
	up4(2, "sub");
	feed(2, "82 06 00 01 00 01 23 00");
	exchange(2, "82 0b 00 02 00 06 73 65 63 72 65 74 00", "90 03 00 01 00 90 03 00 02 80");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->rc, MIDGE_ACL_SUBSCRIBE);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->topic, "secret");
	/* 3.1.1: acknowledged and dropped, as Mosquitto does */
	exchange(0, "32 0c 00 06 73 65 63 72 65 74 00 05 68 69", "40 02 00 05");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->rc, MIDGE_ACL_PUBLISH);
	exchange(1, "32 0d 00 06 73 65 63 72 65 74 00 05 00 68 69",
		 "40 1d 00 05 87 19 1f 00 16 70 75 62 6c 69 73 68 20 6e 6f 74 20 61 75 74 68 6f "
		 "72 69 7a 65 64");
	expect(2, "");
	/* a message the subscriber may not receive: dropped for it alone */
	exchange(0, "32 0a 00 04 6d 69 6e 65 00 06 68 69", "40 02 00 06");
	expect(2, "");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NOT_AUTHORIZED);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->rc, MIDGE_ACL_RECEIVE);
	engine_stats(E, &st);
	CU_ASSERT_EQUAL(st.acl_denied, 4);
	stop();
}

/* What engine_auth.acl was asked, in order: the QoS and retain flag it
 * is given with each access. */
struct acl_asked {
	enum engine_access access;
	uint8_t qos;
	bool retain;
};
static struct acl_asked ACL_ASKED[16];
static int N_ACL_ASKED;

static int acl_record(void *ctx, const struct midge_client *client, const uint8_t *topic,
		      size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	(void)ctx;
	(void)client;
	if (N_ACL_ASKED < 16)
		ACL_ASKED[N_ACL_ASKED++] = (struct acl_asked){access, qos, retain};
	/* QoS 2 publishes on "q" are refused, whatever else is allowed */
	return access == ENGINE_ACCESS_PUBLISH && qos == 2 && len == 1 && topic[0] == 'q'
		       ? MQTT_RC_NOT_AUTHORIZED
		       : 0;
}

static void acl_asked(int i, enum engine_access access, uint8_t qos, bool retain)
{
	CU_ASSERT_TRUE_FATAL(i < N_ACL_ASKED);
	CU_ASSERT_EQUAL(ACL_ASKED[i].access, access);
	CU_ASSERT_EQUAL(ACL_ASKED[i].qos, qos);
	CU_ASSERT_EQUAL(ACL_ASKED[i].retain, retain);
}

/* The ACL is told the QoS and retain flag of each access: a PUBLISH's
 * own, the QoS a SUBSCRIBE asks for (retain false), a delivery's QoS (the
 * lower of the two) and the retain flag the receiver gets (set for a
 * retained message sent on subscribe [MQTT-3.3.1-8], clear live in
 * 3.1.1 [MQTT-3.3.1-9]). */
static void t_acl_qos_retain(void)
{
	struct engine_auth auth = {.acl = acl_record};
	start(NULL, &auth);
	up4(0, "pub");
	up4(1, "sub");
	N_ACL_ASKED = 0;
	exchange(1, "82 06 00 01 00 01 71 01", "90 03 00 01 01");
	acl_asked(0, ENGINE_ACCESS_SUBSCRIBE, 1, false);
	/* QoS 1, retained: allowed, kept, delivered at QoS 1 */
	feed(0, "33 06 00 01 71 00 05 78");
	expect(0, "40 02 00 05");
	acl_asked(1, ENGINE_ACCESS_PUBLISH, 1, true);
	acl_asked(2, ENGINE_ACCESS_RECEIVE, 1, false);
	out(1);
	/* QoS 2 on the same topic: refused (3.1.1: acknowledged, dropped) */
	feed(0, "34 06 00 01 71 00 06 79");
	expect(0, "50 02 00 06");
	acl_asked(3, ENGINE_ACCESS_PUBLISH, 2, false);
	CU_ASSERT_EQUAL(N_ACL_ASKED, 4); /* nothing delivered */
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->rc, MIDGE_ACL_PUBLISH);
	expect(1, "");
	/* a new subscription at QoS 0 gets the retained one: QoS 0, retain */
	up4(2, "late");
	N_ACL_ASKED = 0;
	feed(2, "82 06 00 01 00 01 71 00");
	acl_asked(0, ENGINE_ACCESS_SUBSCRIBE, 0, false);
	/* check_retain_source asks as its publisher was asked */
	acl_asked(1, ENGINE_ACCESS_PUBLISH, 1, true);
	acl_asked(2, ENGINE_ACCESS_RECEIVE, 0, true);
	stop();
}

/* The fake auth worker of the held-packet tests: topic "a" is pending
 * until ASK_ANSWER says what its answer is (0 allow, else the code). */
static int ASK_ANSWER = ENGINE_AUTH_PENDING;
static int ASKS_A, ASKS_OTHER;

static int acl_ask_a(void *ctx, const struct midge_client *client, const uint8_t *topic,
		     size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	(void)ctx;
	(void)client;
	(void)access;
	if (len == 1 && topic[0] == 'a') {
		ASKS_A++;
		return ASK_ANSWER;
	}
	ASKS_OTHER++;
	return 0;
}

/* The held-packet tests' engine: acl asked (acl_ask_a, or another fake
 * worker), "pub" (0) and "sub" (1) connected, 3.1.1, "a" pending. */
static void ask_start_with(int (*acl)(void *, const struct midge_client *, const uint8_t *, size_t,
				      enum engine_access, uint8_t, bool))
{
	static struct engine_auth auth;
	auth.acl = acl;
	ASK_ANSWER = ENGINE_AUTH_PENDING;
	ASKS_A = ASKS_OTHER = 0;
	start(NULL, &auth);
	engine_set_acl_ask(E, true);
	up4(0, "pub");
	up4(1, "sub");
}

static void ask_start(void)
{
	ask_start_with(acl_ask_a);
}

/* engine_auth.acl answered ENGINE_AUTH_PENDING for a PUBLISH: the packet
 * is not used (out->used ends before it), nothing is answered or routed
 * and nothing behind it is read; fed again once the answer is in, it is
 * handled once, in order, counted once. */
static void t_acl_held_publish(void)
{
	uint8_t b[64];
	struct codec_feed fo;
	ask_start();
	subscribe4(1, "#", 1);
	/* b (allowed), a (pending), b again */
	size_t n = unhex("32 06 00 01 62 00 01 78 32 06 00 01 61 00 02 79 32 06 00 01 62 00 03 7a",
			 b, sizeof b);
	uint64_t bytes0 = stats_now().bytes_received;
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, b, n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 8); /* the first PUBLISH only */
	CU_ASSERT_EQUAL(fo.need, 0);
	expect(0, "40 02 00 01");
	expect(1, "32 06 00 01 62 00 01 78");
	CU_ASSERT_EQUAL(stats_now().bytes_received, bytes0 + 8);
	CU_ASSERT_EQUAL(ASKS_A, 1);
	/* fed again while still pending: still held, nothing more */
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, b + 8, n - 8, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 0);
	expect(0, "");
	expect(1, "");
	/* the answer is in: a, then the b behind it, in order */
	ASK_ANSWER = 0;
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, b + 8, n - 8, NOW, &fo), 0);
	CU_ASSERT_EQUAL(fo.used, n - 8);
	expect(0, "40 02 00 02 40 02 00 03");
	expect(1, "32 06 00 01 61 00 02 79 32 06 00 01 62 00 03 7a");
	CU_ASSERT_EQUAL(stats_now().bytes_received, bytes0 + n);
	CU_ASSERT_EQUAL(stats_now().publish_received, 3);
	/* denied once answered: acknowledged and dropped (3.1.1), counted */
	ASK_ANSWER = MQTT_RC_NOT_AUTHORIZED;
	exchange(0, "32 06 00 01 61 00 04 78", "40 02 00 04");
	expect(1, "");
	CU_ASSERT_EQUAL(stats_now().acl_denied, 1);
	/* held, then the connection goes: nothing left behind (ASan) */
	ASK_ANSWER = ENGINE_AUTH_PENDING;
	CU_ASSERT_EQUAL(feed(0, "32 06 00 01 61 00 05 78"), ENGINE_CONN_HELD);
	gone(0, "test");
	stop();
}

/* A SUBSCRIBE asks for every filter before applying any: held whole
 * while one answer is pending (no SUBACK, no subscription), then one
 * code per filter [MQTT-3.9.3-1]; without engine_set_acl_ask a pending
 * answer refuses (fail closed). */
static void t_acl_held_subscribe(void)
{
	ask_start();
	/* a (pending) and c (allowed), QoS 1 each */
	CU_ASSERT_EQUAL(feed(1, "82 0a 00 0a 00 01 61 01 00 01 63 01"), ENGINE_CONN_HELD);
	expect(1, "");
	CU_ASSERT_EQUAL(ASKS_A, 1);
	CU_ASSERT_EQUAL(ASKS_OTHER, 1);
	exchange(0, "30 04 00 01 63 78", "");
	expect(1, ""); /* c was not subscribed yet */
	ASK_ANSWER = MQTT_RC_NOT_AUTHORIZED;
	exchange(1, "82 0a 00 0a 00 01 61 01 00 01 63 01", "90 04 00 0a 80 01");
	exchange(0, "30 04 00 01 63 78", "");
	expect(1, "30 04 00 01 63 78");
	/* fail closed: a pending answer where nothing may wait refuses */
	engine_set_acl_ask(E, false);
	ASK_ANSWER = ENGINE_AUTH_PENDING;
	exchange(1, "82 06 00 0b 00 01 61 00", "90 03 00 0b 80");
	exchange(0, "32 06 00 01 61 00 01 78", "40 02 00 01");
	expect(1, "");
	stop();
}

/* The fake worker of the held-delivery test: a delivery (RECEIVE) on
 * "a" is pending until ASK_ANSWER says; anything else is allowed. */
static int acl_receive_a(void *ctx, const struct midge_client *client, const uint8_t *topic,
			 size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	if (access != ENGINE_ACCESS_RECEIVE)
		return 0;
	return acl_ask_a(ctx, client, topic, len, access, qos, retain);
}

/* engine_auth.acl answered ENGINE_AUTH_PENDING for a delivery: held for
 * that receiver alone (its publisher is answered, another subscriber
 * served), everything after it queued behind it, QoS 0 too, and sent in
 * order once engine_conn_receive_ready() finds the answer; a refusal
 * drops the held one only; the receiver going meanwhile leaves nothing
 * behind. */
static void t_acl_held_receive(void)
{
	ask_start_with(acl_receive_a);
	up4(2, "other");
	subscribe4(1, "#", 1);
	subscribe4(2, "b", 0);
	/* a (held for sub), then b at QoS 0 and 1 behind it */
	exchange(0, "32 06 00 01 61 00 01 78", "40 02 00 01");
	exchange(0, "30 04 00 01 62 79", "");
	exchange(0, "32 06 00 01 62 00 02 7a", "40 02 00 02");
	expect(1, "");
	expect(2, "30 04 00 01 62 79 30 04 00 01 62 7a"); /* not held for it */
	CU_ASSERT_EQUAL(ASKS_A, 1);
	/* a drain while the answer is still out: asked again, nothing sent */
	engine_conn_receive_ready(E, F[1].c);
	expect(1, "");
	CU_ASSERT_EQUAL(ASKS_A, 2);
	/* the answer: a, then what queued behind it, in order */
	ASK_ANSWER = 0;
	engine_conn_receive_ready(E, F[1].c);
	expect(1, "32 06 00 01 61 00 01 78 30 04 00 01 62 79 32 06 00 01 62 00 02 7a");
	/* nothing held any more: straight through */
	exchange(0, "30 04 00 01 62 77", "");
	expect(1, "30 04 00 01 62 77");
	out(2);
	/* refused once answered: the held one dropped, the one behind it sent */
	ASK_ANSWER = ENGINE_AUTH_PENDING;
	uint64_t denied = stats_now().acl_denied;
	exchange(0, "30 04 00 01 61 31", "");
	exchange(0, "30 04 00 01 62 32", "");
	expect(1, "");
	ASK_ANSWER = MQTT_RC_NOT_AUTHORIZED;
	engine_conn_receive_ready(E, F[1].c);
	expect(1, "30 04 00 01 62 32");
	CU_ASSERT_EQUAL(stats_now().acl_denied, denied + 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->rc, MIDGE_ACL_RECEIVE);
	/* held, then the receiver goes: nothing left behind (ASan) */
	ASK_ANSWER = ENGINE_AUTH_PENDING;
	exchange(0, "32 06 00 01 61 00 03 78", "40 02 00 03");
	gone(1, "test");
	stop();
}

/* Mosquitto's rule for $ topics, with no auth module at all: no client
 * publishes on $SYS (but a bridge's state topic) or $share; 3.1.1 is
 * acknowledged, v5 told 0x87. */
static void t_acl_dollar_publish(void)
{
	start(NULL, NULL);
	up4(0, "pub4");
	up5(1, "pub5", 0x02, NULL);
	up4(2, "sub");
	exchange(2, "82 0b 00 01 00 06 24 53 59 53 2f 23 00", "90 03 00 01 00");
	/* $SYS/x retained, QoS 1 */
	exchange(0, "33 0b 00 06 24 53 59 53 2f 78 00 05 68", "40 02 00 05");
	expect(2, "");
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->topic, "$SYS/x");
	/* $SYSx: a byte prefix, as Mosquitto compares */
	exchange(1, "32 0b 00 05 24 53 59 53 78 00 05 00 68",
		 "40 1d 00 05 87 19 1f 00 16 70 75 62 6c 69 73 68 20 6e 6f 74 20 61 75 74 68 6f "
		 "72 69 7a 65 64");
	/* $share/g/t */
	exchange(0, "32 0f 00 0a 24 73 68 61 72 65 2f 67 2f 74 00 07 68", "40 02 00 07");
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_ACL_DENIED)->topic, "$share/g/t");
	/* $SYS/broker/connection/b1/state is a bridge's own: allowed */
	feed(0, "30 22 00 1f 24 53 59 53 2f 62 72 6f 6b 65 72 2f 63 6f 6e 6e 65 63 74 69 6f 6e 2f "
		"62 31 2f 73 74 61 74 65 31");
	expect(2, "30 22 00 1f 24 53 59 53 2f 62 72 6f 6b 65 72 2f 63 6f 6e 6e 65 63 74 69 6f 6e 2f "
		  "62 31 2f 73 74 61 74 65 31");
	/* ... and nothing longer */
	exchange(0, "32 26 00 21 24 53 59 53 2f 62 72 6f 6b 65 72 2f 63 6f 6e 6e 65 63 74 69 6f 6e "
		    "2f 62 31 2f 73 74 61 74 65 2f 78 00 08 31", "40 02 00 08");
	expect(2, "");
	stop();
}

/* An offline session is checked as the user it was: the receive ACL sees
 * its last user name, and queued messages are asked again when they go
 * out. */
static void t_acl_offline_session(void)
{
	struct engine_auth auth = {.acl = acl_deny_secret};
	start(NULL, &auth);
	up4(0, "pub");
	open_conn(1);
	/* 3.1.1, clean session 0, user "u" */
	CU_ASSERT_EQUAL(connect_full(1, 4, "s", 0x80, 60, NULL, "00 01 75"), 0);
	out(1);
	exchange(1, "82 09 00 01 00 04 6d 69 6e 65 01", "90 03 00 01 01");
	gone(1, "eof");
	/* queued while offline: the check uses "u" */
	exchange(0, "32 0a 00 04 6d 69 6e 65 00 05 68 69", "40 02 00 05");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_ACL_DENIED, NULL), 0);
	/* back as another user: the queued message is refused on its way out */
	open_conn(1);
	CU_ASSERT_EQUAL(connect_full(1, 4, "s", 0x80, 60, NULL, "00 01 76"), 0);
	const char *got = out(1);
	CU_ASSERT_PTR_NULL(strstr(got, "6d 69 6e 65"));
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NOT_AUTHORIZED);
	stop();
}

static bool deny_ret_publish; /* the fake ACL's "reload": publishing on ret is refused */

static int acl_ret(void *ctx, const struct midge_client *client, const uint8_t *topic, size_t len,
		   enum engine_access access, uint8_t qos, bool retain)
{
	(void)ctx;
	(void)client;
	if (deny_ret_publish && access == ENGINE_ACCESS_PUBLISH && len == 3 &&
	    memcmp(topic, "ret", 3) == 0)
		return MQTT_RC_NOT_AUTHORIZED;
	return 0;
}

/* check_retain_source: a retained message goes to a new subscriber only
 * while its publisher may still publish on its topic (Mosquitto's
 * default); off, it goes anyway. */
static void t_check_retain_source(void)
{
	struct engine_auth auth = {.acl = acl_ret};
	for (int on = 1; on >= 0; on--) {
		struct engine_config cfg = config_default();
		cfg.check_retain_source = on;
		deny_ret_publish = false;
		start(&cfg, &auth);
		up4(0, "pub");
		exchange(0, "31 08 00 03 72 65 74 00 01 68", ""); /* ret, QoS 0, retained */
		deny_ret_publish = true;
		up4(1, "sub");
		feed(1, "82 08 00 01 00 03 72 65 74 00");
		const char *got = out(1);
		if (on) {
			CU_ASSERT_STRING_EQUAL(got, "90 03 00 01 00");
			CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NOT_AUTHORIZED);
		} else {
			CU_ASSERT_STRING_EQUAL(got, "90 03 00 01 00 31 08 00 03 72 65 74 00 01 68");
		}
		stop();
	}
	deny_ret_publish = false;
}

/* mount_point: a client's PUBLISH, will and filters get the listener's
 * mount point in front; what it receives has it taken off; retained
 * messages and UNSUBSCRIBE go through the same. */
static void t_mount_point(void)
{
	start(NULL, NULL);
	up4(0, "root");
	open_conn(1);
	CU_ASSERT_EQUAL(engine_conn_set_listener(F[1].c, 2, 0, false, "m/"), 0);
	/* will "w" -> "m/w" */
	CU_ASSERT_EQUAL(connect_full(1, 4, "mounted", 0x06, 60, NULL, "00 01 77 00 01 78"), 0);
	expect(1, "20 02 00 00");
	exchange(0, "82 06 00 01 00 01 23 00", "90 03 00 01 00");      /* root: # */
	exchange(1, "31 06 00 01 72 00 01 76", "");                    /* retained r = "v" */
	expect(0, "30 08 00 03 6d 2f 72 00 01 76");                    /* root sees m/r */
	exchange(1, "82 06 00 01 00 01 23 00", "90 03 00 01 00 31 06 00 01 72 00 01 76"); /* r */
	feed(0, "30 06 00 03 6d 2f 73 79");                            /* root publishes m/s */
	expect(1, "30 04 00 01 73 79");                                /* mounted sees s */
	feed(0, "30 04 00 01 6f 78");                                  /* o: not under m/ */
	expect(1, "");
	exchange(1, "a2 05 00 02 00 01 23", "b0 02 00 02");            /* UNSUBSCRIBE # */
	feed(0, "30 06 00 03 6d 2f 73 7a");
	expect(1, "");
	gone(1, "reset");                                              /* the will: m/w */
	/* root (subscribed to #) got its own three, then the will */
	expect(0, "30 06 00 03 6d 2f 73 79 30 04 00 01 6f 78 30 06 00 03 6d 2f 73 7a "
		  "30 06 00 03 6d 2f 77 78");
	stop();
}

static void t_puback_no_subscribers_v5(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	exchange(0, "32 0a 00 03 61 2f 62 00 05 00 68 69", "40 03 00 05 10");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NO_SUBSCRIBERS);
	stop();
}

/* 3.1.2.11.10: Authentication Data without an Authentication Method is a
 * protocol error: CONNACK 0x82 and the connection closes. */
static void t_auth_data_without_method(void)
{
	start(NULL, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "16 00 01 61", NULL), -1);
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "20 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 6, "00 82", 5), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
}

/* [MQTT-3.3.4-6]: a client's PUBLISH must not carry a subscription
 * identifier; it is a protocol error (DISCONNECT 0x82). */
static void t_publish_sub_id_refused(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	CU_ASSERT_EQUAL(feed(0, "30 0a 00 03 61 2f 62 02 0b 01 68 69"), -1);
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "e0 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 6, "82", 2), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	expect(1, ""); /* not forwarded */
	stop();
}

/* 3.3.2.3.2: payload format indicator 1 promises UTF-8; a payload that is
 * not gets 0x99 and is not forwarded, unless the check is off. */
static void t_payload_format_invalid(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	feed(0, "32 0c 00 03 61 2f 62 00 05 02 01 01 ff fe");
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "40 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 6, "00 05 99", 8), 0);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_PAYLOAD_FORMAT);
	expect(1, "");
	/* valid UTF-8 passes, with its indicator */
	exchange(0, "32 0c 00 03 61 2f 62 00 06 02 01 01 68 69", "40 02 00 06");
	expect(1, "30 0a 00 03 61 2f 62 02 01 01 68 69");
	/* QoS 0: dropped without an answer */
	feed(0, "30 0a 00 03 61 2f 62 02 01 01 ff fe");
	expect(0, "");
	expect(1, "");
	stop();
	struct engine_config cfg = config_default();
	cfg.check_payload_format = false;
	start(&cfg, NULL);
	up5(0, "pub", 0x02, NULL);
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	feed(0, "30 0a 00 03 61 2f 62 02 01 01 ff fe");
	expect(1, "30 0a 00 03 61 2f 62 02 01 01 ff fe");
	stop();
}

static void t_properties_forwarded(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	/* user property k=v, content type "t/p", user property k=w */
	feed(0, "30 1c 00 03 61 2f 62 14 26 00 01 6b 00 01 76 03 00 03 74 2f 70 26 00 01 6b 00 01 "
		"77 68 69");
	expect(1, "30 1c 00 03 61 2f 62 14 03 00 03 74 2f 70 26 00 01 6b 00 01 76 26 00 01 6b 00 01 "
		  "77 68 69");
	stop();
}

/* ---------------------------------------------------------------- sessions */

static void t_persistent_queue_v4(void)
{
	start(NULL, NULL);
	pub_sub4_kept(1);
	gone(1, NULL);
	exchange(0, "32 09 00 03 61 2f 62 00 05 68 69", "40 02 00 05");
	feed(0, "30 07 00 03 61 2f 62 68 6a"); /* QoS 0: not queued by default */
	struct engine_stats st = stats_now();
	CU_ASSERT_EQUAL(st.stored_count, 1);
	CU_ASSERT_EQUAL(st.clients_total, 2);
	open_conn(2);
	connect_full(2, 4, "s", 0x00, 60, NULL, NULL);
	/* [MQTT-3.2.2-2] session present, then the queued message */
	expect(2, "20 02 01 00 32 09 00 03 61 2f 62 00 01 68 69");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_RESUMED, NULL), 1);
	stop();
}

static void t_queue_qos0(void)
{
	struct engine_config cfg = config_default();
	cfg.queue_qos0_messages = true;
	start(&cfg, NULL);
	pub_sub4_kept(0);
	gone(1, NULL);
	feed(0, "30 07 00 03 61 2f 62 68 6a");
	up4_kept(2, "s", "20 02 01 00 30 07 00 03 61 2f 62 68 6a");
	stop();
}

static void t_clean_session_discards(void)
{
	start(NULL, NULL);
	pub_sub4_kept(1);
	gone(1, NULL);
	feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
	connect_expect(2, 4, "s", 0x02, 60, NULL, NULL, 0, "20 02 00 00"); /* [MQTT-3.2.2-1] */
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_DISCARDED, NULL), 1);
	feed(0, "32 09 00 03 61 2f 62 00 06 68 69");
	expect(2, "");
	/* a clean session does not outlive its connection [MQTT-3.1.2-6] */
	gone(2, NULL);
	CU_ASSERT_EQUAL(stats_now().clients_total, 1);
	stop();
}

static void t_qos2_across_reconnect(void)
{
	start(NULL, NULL);
	pub_sub4_kept(2);
	feed(0, "34 09 00 03 61 2f 62 00 07 68 69");
	expect(1, "34 09 00 03 61 2f 62 00 01 68 69");
	gone(1, NULL);
	/* resent with DUP [MQTT-4.4.0-1] */
	up4_kept(2, "s", "20 02 01 00 3c 09 00 03 61 2f 62 00 01 68 69");
	exchange(2, "50 02 00 01", "62 02 00 01");
	gone(2, NULL);
	/* PUBREL resent */
	up4_kept(3, "s", "20 02 01 00 62 02 00 01");
	feed(3, "70 02 00 01");
	gone(3, NULL);
	up4_kept(4, "s", "20 02 01 00");
	/* the inbound direction: the publisher's QoS 2 id survives its reconnect */
	gone(4, NULL);
	up4_kept(5, "p2", "20 02 00 00");
	up4_kept(6, "s", "20 02 01 00");
	exchange(5, "34 09 00 03 61 2f 62 00 09 68 69", "50 02 00 09");
	expect(6, "34 09 00 03 61 2f 62 00 02 68 69");
	gone(5, NULL);
	up4_kept(7, "p2", "20 02 01 00");
	exchange(7, "3c 09 00 03 61 2f 62 00 09 68 69", "50 02 00 09");
	expect(6, ""); /* not delivered twice */
	exchange(7, "62 02 00 09", "70 02 00 09");
	stop();
}

/* A session resumed with a smaller Receive Maximum gets no more PUBLISH
 * in flight than the new maximum; the rest follow as acks make room, in
 * order, with their packet ids and DUP [MQTT-3.3.4-7] [MQTT-4.4.0-1]. */
static void t_resume_smaller_receive_max(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x00, "11 00 00 00 0a 21 00 05"); /* receive maximum 5 */
	expect(1, connack5_default);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 01", "90 04 00 01 00 01");
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32 "
		"32 08 00 03 61 2f 62 00 07 33 32 08 00 03 61 2f 62 00 08 34");
	expect(1, "32 09 00 03 61 2f 62 00 01 00 31 32 09 00 03 61 2f 62 00 02 00 32 "
		  "32 09 00 03 61 2f 62 00 03 00 33 32 09 00 03 61 2f 62 00 04 00 34");
	gone(1, NULL);
	up5(2, "sub", 0x00, "11 00 00 00 0a 21 00 02"); /* now 2 */
	expect(2, "20 09 01 00 06 21 00 14 22 00 0a "
		  "3a 09 00 03 61 2f 62 00 01 00 31 3a 09 00 03 61 2f 62 00 02 00 32");
	/* an ack for an id not sent on this connection is not taken */
	exchange(2, "40 02 00 04", "");
	exchange(2, "40 02 00 01", "3a 09 00 03 61 2f 62 00 03 00 33");
	exchange(2, "40 02 00 02", "3a 09 00 03 61 2f 62 00 04 00 34");
	/* a new message waits for the window, behind the held-back ones */
	feed(0, "32 08 00 03 61 2f 62 00 09 35");
	expect(2, "");
	exchange(2, "40 02 00 03", "32 09 00 03 61 2f 62 00 05 00 35");
	exchange(2, "40 02 00 04 40 02 00 05", "");
	stop();
}

static void t_redelivery_order(void)
{
	start(NULL, NULL);
	pub_sub4_kept(1);
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32");
	expect(1, "32 08 00 03 61 2f 62 00 01 31 32 08 00 03 61 2f 62 00 02 32");
	gone(1, NULL);
	feed(0, "32 08 00 03 61 2f 62 00 07 33");
	up4_kept(2, "s", "20 02 01 00 3a 08 00 03 61 2f 62 00 01 31 3a 08 00 03 61 2f 62 00 02 32 "
			 "32 08 00 03 61 2f 62 00 03 33");
	stop();
}

static void t_session_expiry_v5(void)
{
	start(NULL, NULL);
	up5(0, "s", 0x00, "11 00 00 00 0a");
	expect(0, connack5_default);
	gone(0, NULL);
	uint64_t t0 = NOW;
	CU_ASSERT_EQUAL(engine_tick(E, t0 + 1), t0 + 10000);
	NOW = t0 + 5000;
	up5(1, "s", 0x00, "11 00 00 00 0a");
	expect(1, "20 09 01 00 06 21 00 14 22 00 0a"); /* resumed in time */
	gone(1, NULL);
	t0 = NOW;
	NOW = t0 + 9999;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 0);
	NOW = t0 + 10000;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	up5(2, "s", 0x00, "11 00 00 00 0a");
	expect(2, connack5_default);
	stop();
}

static void t_disconnect_changes_expiry(void)
{
	start(NULL, NULL);
	up5(0, "s", 0x00, "11 00 00 00 0a");
	expect(0, connack5_default);
	CU_ASSERT_EQUAL(feed(0, "e0 07 00 05 11 00 00 00 00"), -1);
	gone(0, NULL);
	CU_ASSERT_EQUAL(stats_now().clients_total, 0);
	/* 0 on CONNECT cannot become non-zero [MQTT-3.14.2-2] */
	up5(1, "t", 0x02, NULL);
	CU_ASSERT_EQUAL(feed(1, "e0 07 00 05 11 00 00 00 0a"), -1);
	expect(1, "e0 38 82 36 1f 00 33 73 65 73 73 69 6f 6e 20 65 78 70 69 72 79 20 73 65 74 20 "
		  "6f 6e 20 44 49 53 43 4f 4e 4e 45 43 54 20 61 66 74 65 72 20 30 20 6f 6e 20 43 4f 4e "
		  "4e 45 43 54");
	stop();
}

static void t_takeover_v5(void)
{
	start(NULL, NULL);
	up5(0, "x", 0x00, "11 00 00 00 3c");
	expect(0, connack5_default);
	exchange(0, "82 07 00 01 00 00 01 74 01", "90 04 00 01 00 01");
	up5(1, "x", 0x00, "11 00 00 00 3c");
	/* [MQTT-3.1.4-3] the old connection gets 0x8E and is closed */
	expect(0, "e0 17 8e 15 1f 00 12 73 65 73 73 69 6f 6e 20 74 61 6b 65 6e 20 6f 76 65 72");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	expect(1, "20 09 01 00 06 21 00 14 22 00 0a");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_TAKEOVER, NULL), 1);
	gone(0, NULL);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DISCONNECT)->rc, MQTT_RC_SESSION_TAKEN_OVER);
	/* the session (and its subscription) lives on with the new connection */
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "z", 1, 1, false, NOW), 0);
	expect(1, "32 07 00 01 74 00 01 00 7a");
	stop();
}

static void t_takeover_v4_will(void)
{
	start(NULL, NULL);
	up4_will_watcher(2, 0);
	connect_expect(0, 4, "x", 0x06, 60, NULL, "00 01 77 00 01 78", 0, "20 02 00 00");
	up4(1, "x");
	expect(0, "");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	expect(2, "30 04 00 01 77 78");
	gone(0, NULL);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, "w"), 1);
	stop();
}

static void t_takeover_after_disconnect(void)
{
	start(NULL, NULL);
	up4_will_watcher(2, 0);
	connect_expect(0, 4, "x", 0x06, 60, NULL, "00 01 77 00 01 78", 0, "20 02 00 00");
	/* DISCONNECT sent, the transport has not reported the close yet */
	CU_ASSERT_EQUAL(feed(0, "e0 00"), -1);
	up4(1, "x");
	expect(0, "");
	expect(2, ""); /* a normal DISCONNECT discarded the will */
	gone(0, NULL);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, NULL), 0);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"w", 1, "z", 1, 0, false, NOW), 0);
	expect(2, "30 04 00 01 77 7a");
	stop();
}

/* ---- a session moving between cluster nodes (engine/move.c) ------------ */

static uint64_t CLAIM_ID;
/* A will as another node sends it: topic, payload, its client id, QoS. */
static void cluster_will_msg(struct engine_cluster_msg *m, const char *topic, const char *payload,
			     const char *origin, uint8_t qos)
{
	memset(m, 0, sizeof *m);
	m->topic = (const uint8_t *)topic;
	m->topic_len = strlen(topic);
	m->payload = (const uint8_t *)payload;
	m->payload_len = strlen(payload);
	m->origin_id = (const uint8_t *)origin;
	m->origin_len = strlen(origin);
	m->qos = qos;
}

static int CLAIMS;
static bool CLAIM_REFUSED; /* as when NATS is unreachable */

/* The interest counts of "$share/g/s" and "s" (fc_interest). */
static int SHARE_INTEREST, PLAIN_INTEREST;

static void fc_interest(void *ctx, const uint8_t *f, size_t len, bool on)
{
	(void)ctx;
	int *n = len == 10 && memcmp(f, "$share/g/s", 10) == 0 ? &SHARE_INTEREST
		 : len == 1 && f[0] == 's'                     ? &PLAIN_INTEREST
							       : NULL;
	if (n)
		*n += on ? 1 : -1;
}

static int fc_publish(void *ctx, const struct engine_cluster_msg *m, uint64_t *ticket)
{
	(void)ctx, (void)m;
	*ticket = 0;
	return 0;
}

static bool fc_room(void *ctx)
{
	(void)ctx;
	return true;
}

static int fc_claim(void *ctx, uint64_t claim, const uint8_t *cid, size_t len)
{
	(void)ctx, (void)cid, (void)len;
	if (CLAIM_REFUSED)
		return -1;
	CLAIM_ID = claim;
	CLAIMS++;
	return 0;
}

/* engine_cluster.will: the last will reported and how many reports. */
static int WILLS_SET, WILLS_GONE;
static char WILL_TOPIC[32];
static uint32_t WILL_DELAY;
static int WILL_PROPS_RC;       /* the reported properties decoded as a PUBLISH's */
static struct codec_props WILL_PROPS;
static uint8_t WILL_PROPS_RAW[64];

static void fc_will(void *ctx, const uint8_t *cid, size_t len, const struct engine_cluster_msg *w,
		    uint32_t delay)
{
	(void)ctx, (void)cid, (void)len;
	if (!w) {
		WILLS_GONE++;
		return;
	}
	WILLS_SET++;
	WILL_DELAY = delay;
	copy_str(WILL_TOPIC, sizeof WILL_TOPIC, (const char *)w->topic, w->topic_len);
	memset(&WILL_PROPS, 0, sizeof WILL_PROPS);
	WILL_PROPS_RC = -1;
	if (w->props_len <= sizeof WILL_PROPS_RAW) {
		if (w->props_len)
			memcpy(WILL_PROPS_RAW, w->props, w->props_len);
		WILL_PROPS_RC = codec_props_decode(WILL_PROPS_RAW, (uint32_t)w->props_len,
						   CODEC_PUBLISH, &WILL_PROPS);
	}
}

/* The wills a node's sessions hold are reported to the cluster as they
 * come and go; a dead node's will published here routes like the
 * broker's message. */
static void t_cluster_wills(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish, fc_room, NULL, NULL,
						 fc_will, NULL, NULL, NULL, 0};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	WILLS_SET = WILLS_GONE = 0;
	up4(1, "watch");
	exchange(1, "82 06 00 01 00 01 77 01", "90 03 00 01 01");
	/* will "w" = "x" (flags: will, clean) */
	connect_expect(0, 4, "x", 0x06, 60, NULL, "00 01 77 00 01 78", 0, "20 02 00 00");
	CU_ASSERT_EQUAL(WILLS_SET, 1);
	CU_ASSERT_STRING_EQUAL(WILL_TOPIC, "w");
	CU_ASSERT_EQUAL(feed(0, "e0 00"), -1); /* DISCONNECT: discarded [MQTT-3.1.2-10] */
	gone(0, NULL);
	CU_ASSERT_EQUAL(WILLS_GONE, 1);
	expect(1, "");
	connect_expect(2, 4, "y", 0x06, 60, NULL, "00 01 77 00 01 79", 0, "20 02 00 00");
	gone(2, "reset"); /* published here: gone from the cluster's copy too */
	CU_ASSERT_EQUAL(WILLS_SET, 2);
	CU_ASSERT_EQUAL(WILLS_GONE, 2);
	expect(1, "30 04 00 01 77 79"); /* the will at its QoS 0 */
	/* a dead node's will, published here */
	struct engine_cluster_msg m;
	cluster_will_msg(&m, "w", "z", "dead", 1);
	CU_ASSERT_EQUAL(engine_cluster_will(E, &m, NOW), 0);
	expect(1, "32 06 00 01 77 00 01 7a");
	CU_ASSERT(count_ev(MIDGE_EV_WILL, "w") == 2);
	m.topic = (const uint8_t *)"w/#";
	m.topic_len = 3;
	CU_ASSERT_EQUAL(engine_cluster_will(E, &m, NOW), -1); /* not a topic name */
	/* v5: the will delay (10 s) is reported beside the message, capped by
	 * the session expiry (5 s); the message's properties travel as a
	 * PUBLISH's, without the Will Delay Interval a PUBLISH may not carry
	 * (another node refused them before), the others kept */
	connect_expect(3, 5, "v", 0x06, 60, "11 00 00 00 05",
		       "10 18 00 00 00 0a 03 00 01 74 26 00 01 6b 00 01 76 00 01 77 00 01 78", 0,
		       connack5_default);
	CU_ASSERT_EQUAL(WILLS_SET, 3);
	CU_ASSERT_EQUAL(WILL_DELAY, 5);
	CU_ASSERT_EQUAL(WILL_PROPS_RC, 0);
	CU_ASSERT_FALSE(CODEC_HAS_PROP(&WILL_PROPS, CODEC_PROP_WILL_DELAY));
	CU_ASSERT_TRUE(CODEC_HAS_PROP(&WILL_PROPS, CODEC_PROP_CONTENT_TYPE));
	CU_ASSERT_EQUAL(WILL_PROPS.user_count, 1);
	stop();
}

/* A shared subscription is the cluster's interest only while its session
 * has a connection (NATS's queue group then picks only nodes where a
 * member can take the message); a plain one for as long as it lives. */
static void t_cluster_share_presence(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish, fc_room, NULL, NULL,
						 NULL, NULL, NULL, NULL, 0};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	SHARE_INTEREST = PLAIN_INTEREST = 0;
	up4_kept(0, "m", "20 02 00 00");
	subscribe4(0, "$share/g/s", 1);
	subscribe4(0, "s", 1);
	CU_ASSERT_EQUAL(SHARE_INTEREST, 1);
	CU_ASSERT_EQUAL(PLAIN_INTEREST, 1);
	gone(0, "reset"); /* the session stays, offline */
	CU_ASSERT_EQUAL(SHARE_INTEREST, 0);
	CU_ASSERT_EQUAL(PLAIN_INTEREST, 1);
	up4_kept(0, "m", "20 02 01 00"); /* resumed: the member is back */
	CU_ASSERT_EQUAL(SHARE_INTEREST, 1);
	/* taken over by a new connection of the same id: off, then on */
	up4_kept(1, "m", "20 02 01 00");
	CU_ASSERT_EQUAL(SHARE_INTEREST, 1);
	gone(0, "taken over");
	exchange(1, "a2 0e 00 02 00 0a 24 73 68 61 72 65 2f 67 2f 73", "b0 02 00 02");
	CU_ASSERT_EQUAL(SHARE_INTEREST, 0);
	subscribe4(1, "$share/g/s", 0);
	CU_ASSERT_EQUAL(SHARE_INTEREST, 1);
	gone(1, "reset");
	CU_ASSERT_EQUAL(SHARE_INTEREST, 0);
	/* a clean start ends the offline session: nothing counted twice */
	up4(2, "m");
	CU_ASSERT_EQUAL(SHARE_INTEREST, 0);
	CU_ASSERT_EQUAL(PLAIN_INTEREST, 0);
	stop();
}

/* Connects cid on connection i: the CONNECT waits for the cluster's
 * claim, then goes on with session (the moved encoding, or none). */
static void claimed_connect(int i, uint8_t level, const char *cid, uint8_t flags,
			    const uint8_t *session, size_t len)
{
	int before = CLAIMS;
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, level, cid, flags, 60, NULL, NULL), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(CLAIMS, before + 1);
	expect(i, "");
	CU_ASSERT_EQUAL(engine_cluster_claimed(E, CLAIM_ID, session, len, NOW), 0);
	CU_ASSERT_EQUAL(F[i].resumes, 1); /* the transport reads again */
}

static void t_cluster_session_move(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish, fc_room, NULL, fc_claim, NULL,
						 NULL, NULL, NULL, 0};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	CLAIMS = 0;
	CLAIM_REFUSED = false;
	/* "m" persistent (3.1.1 clean 0), subscribed to t at QoS 1, offline */
	claimed_connect(0, 4, "m", 0x00, NULL, 0);
	expect(0, "20 02 00 00");
	exchange(0, "82 06 00 01 00 01 74 01", "90 03 00 01 01");
	gone(0, NULL);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "y", 1, 1, false, NOW), 0);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "z", 1, 1, false, NOW), 0);
	/* another node takes it: encoded, gone from here */
	uint8_t *blob = NULL, *blob2 = NULL;
	size_t bl = 0, bl2 = 0;
	CU_ASSERT_EQUAL(engine_cluster_release(E, (const uint8_t *)"m", 1, 65536, &blob, &bl, NOW), 0);
	CU_ASSERT_FATAL(blob != NULL);
	CU_ASSERT_EQUAL(stats_now().clients_total, 0);
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 0);
	/* a truncated encoding is refused whole: a new session */
	claimed_connect(1, 4, "m", 0x00, blob, bl - 1);
	expect(1, "20 02 00 00");
	gone(1, NULL);
	CU_ASSERT_EQUAL(engine_cluster_release(E, (const uint8_t *)"m", 1, 65536, &blob2, &bl2, NOW), 0);
	free(blob2);
	/* the whole encoding: session present [MQTT-3.2.2-3], the queue
	 * delivered in order, the subscription routes here */
	claimed_connect(2, 4, "m", 0x00, blob, bl);
	expect(2, "20 02 01 00 32 06 00 01 74 00 01 79 32 06 00 01 74 00 02 7a");
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "w", 1, 0, false, NOW), 0);
	expect(2, "30 04 00 01 74 77");
	/* a bound smaller than the queue: the terms move, the messages are dropped */
	gone(2, NULL);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "v", 1, 1, false, NOW), 0);
	free(blob);
	blob = NULL;
	CU_ASSERT_EQUAL(engine_cluster_release(E, (const uint8_t *)"m", 1, 49, &blob, &bl, NOW), 0);
	CU_ASSERT_FATAL(blob != NULL);
	CU_ASSERT(bl <= 49);
	CU_ASSERT(count_ev(MIDGE_EV_DROP, "t") >= 1);
	claimed_connect(3, 4, "m", 0x00, blob, bl);
	expect(3, "20 02 01 00");
	free(blob);
	/* a live v5 connection: DISCONNECT 0x8E, closed [MQTT-3.1.4-3] */
	claimed_connect(4, 5, "k", 0x02, NULL, 0);
	expect(4, connack5_default);
	CU_ASSERT_EQUAL(engine_cluster_release(E, (const uint8_t *)"k", 1, 65536, &blob, &bl, NOW), 0);
	CU_ASSERT_PTR_NULL(blob); /* session expiry 0: nothing outlives the connection */
	const char *o = out(4);
	CU_ASSERT(strncmp(o, "e0", 2) == 0 && strncmp(o + 6, "8e", 2) == 0);
	CU_ASSERT_EQUAL(F[4].close_calls, 1);
	/* a claim answered after its connection went */
	open_conn(5);
	CU_ASSERT_EQUAL(connect_full(5, 4, "q", 0x02, 60, NULL, NULL), ENGINE_CONN_HELD);
	uint64_t id = CLAIM_ID;
	gone(5, "reset");
	CU_ASSERT_EQUAL(engine_cluster_claimed(E, id, NULL, 0, NOW), -1);
	/* NATS unreachable (the claim refused): served at once */
	CLAIM_REFUSED = true;
	up4(6, "r");
	CLAIM_REFUSED = false;
	stop();
}

/* engine_cluster.checkpoint: the last copy offered, and the count of
 * copies and deletions; CK_FULL answers as a full cluster buffer. */
static int CK_PUTS, CK_DELS, ENDED;
static bool CK_FULL;

static void fc_ended(void *ctx, const uint8_t *cid, size_t len)
{
	(void)ctx, (void)cid, (void)len;
	ENDED++;
}
static uint8_t CK_LAST[4096];
static size_t CK_LAST_LEN;

static int fc_checkpoint(void *ctx, const uint8_t *cid, size_t len, const uint8_t *st, size_t sl)
{
	(void)ctx, (void)cid, (void)len;
	if (CK_FULL)
		return -1;
	if (!st) {
		CK_DELS++;
		return 0;
	}
	CU_ASSERT_FATAL(sl <= sizeof CK_LAST);
	memcpy(CK_LAST, st, sl);
	CK_LAST_LEN = sl;
	CK_PUTS++;
	return 0;
}

/* Checkpoints (docs/cluster.md, "A node that dies"): a persistent session
 * is copied once per round in which it changed, a clean one never; a full
 * buffer keeps it marked; its end deletes the copy. A copy adopted as
 * another node's checkpoint is an offline session with its subscriptions
 * and queue, and an adopted will waits for its delay [MQTT-3.1.3-9]. */
static void t_cluster_checkpoint(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish, fc_room, NULL, NULL,
						 NULL, fc_checkpoint, fc_ended, NULL, 0};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	CK_PUTS = CK_DELS = ENDED = 0;
	CK_FULL = false;
	up4(0, "c"); /* clean: nothing to keep */
	subscribe4(0, "t", 0);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 0);
	CU_ASSERT_EQUAL(CK_PUTS, 0);
	up4_kept(1, "m", "20 02 00 00");
	subscribe4(1, "t", 1);
	gone(1, NULL);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 0); /* unchanged */
	for (int k = 0; k < 3; k++) /* many changes, one copy */
		CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "y", 1, 1, false, NOW), 0);
	expect(0, "30 04 00 01 74 79 30 04 00 01 74 79 30 04 00 01 74 79");
	CK_FULL = true;
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 0);
	CK_FULL = false;
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
	CU_ASSERT_EQUAL(CK_PUTS, 2);
	uint8_t blob[sizeof CK_LAST];
	size_t bl = CK_LAST_LEN;
	memcpy(blob, CK_LAST, bl);
	/* the session ends (a clean start discards it): its copy goes */
	up4(2, "m");
	CU_ASSERT_EQUAL(CK_DELS, 1);
	CU_ASSERT_EQUAL(ENDED, 1); /* the cluster may give the id back */
	gone(2, NULL);
	CU_ASSERT_EQUAL(ENDED, 2);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 0);
	/* adopted as "n": offline, its subscription queues, its copy is
	 * this node's now */
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"n", 1, blob, bl, NOW), 0);
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"n", 1, blob, bl, NOW), -1);
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"o", 1, blob, bl - 1, NOW), -1);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"t", 1, "z", 1, 1, false, NOW), 0);
	expect(0, "30 04 00 01 74 7a");
	/* its will, delayed 5 s, waits for the delay */
	struct engine_cluster_msg m;
	cluster_will_msg(&m, "t", "w", "n", 0);
	CU_ASSERT_EQUAL(engine_cluster_adopt_will(E, (const uint8_t *)"n", 1, &m, 5, NOW), 0);
	expect(0, "");
	NOW += 5000;
	engine_tick(E, NOW);
	expect(0, "30 04 00 01 74 77");
	/* the client comes back: session present, the 3 messages of the copy
	 * and the 2 queued here, in order */
	up4_kept(3, "n",
		 "20 02 01 00 32 06 00 01 74 00 01 79 32 06 00 01 74 00 02 79 32 06 00 01 74 00 03 79"
		 " 32 06 00 01 74 00 04 7a"); /* not the will: QoS 0 is not queued offline */
	/* a will for a session connected again is dropped [MQTT-3.1.3-9] */
	int wills = count_ev(MIDGE_EV_WILL, NULL);
	CU_ASSERT_EQUAL(engine_cluster_adopt_will(E, (const uint8_t *)"n", 1, &m, 5, NOW), 0);
	NOW += 6000;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, NULL), wills);
	/* handed to another node: the id is that node's, not given back */
	uint8_t *enc = NULL;
	size_t el = 0;
	int ended = ENDED;
	CU_ASSERT_EQUAL(engine_cluster_release(E, (const uint8_t *)"n", 1, 65536, &enc, &el, NOW), 0);
	free(enc);
	CU_ASSERT_EQUAL(ENDED, ended);
	stop();
}

/* engine_cluster.replay: the job each resumed session shares, and the
 * time asked from. */
static int REPLAYS;
static uint64_t REPLAY_FROM;

static uint64_t fc_replay(void *ctx, uint64_t from_ms)
{
	(void)ctx;
	REPLAYS++;
	REPLAY_FROM = from_ms;
	return 5;
}

/* One message from the cluster, run's seq-th: live through the NATS
 * subscription of "t", or read back by replay job (job 0: live). */
static void journal_msg(uint64_t job, uint64_t run, uint64_t seq, const char *payload)
{
	struct engine_cluster_msg m;
	cluster_will_msg(&m, "t", payload, "p", 1);
	m.node_run = run;
	m.seq = seq;
	if (job)
		engine_cluster_replay(E, job, &m, NOW);
	else
		CU_ASSERT(engine_cluster_input(E, (const uint8_t *)"t", 1, &m, NOW) >= 0);
}

/* The journal (docs/cluster.md, "The journal"): a session resumed from a
 * checkpoint gets from the replay exactly what its checkpoint lacked (by
 * each publishing run's sequence numbers), and live messages wait behind
 * the replay, once each; other sessions never see a replay. */
static void t_cluster_journal(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish, fc_room, NULL, NULL,
						 NULL, fc_checkpoint, fc_ended, fc_replay, 1000};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	CK_PUTS = CK_DELS = ENDED = REPLAYS = 0;
	CK_FULL = false;
	up4(0, "c"); /* a live subscriber: the live messages only */
	subscribe4(0, "t", 0);
	up4_kept(1, "m", "20 02 00 00");
	subscribe4(1, "t", 1);
	gone(1, NULL);
	journal_msg(0, 7, 1, "a");
	journal_msg(0, 7, 2, "b");
	expect(0, "30 04 00 01 74 61 30 04 00 01 74 62");
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
	uint8_t blob[sizeof CK_LAST];
	size_t bl = CK_LAST_LEN;
	memcpy(blob, CK_LAST, bl);
	/* "m" as a dead node's checkpoint, adopted as "n": a replay from the
	 * checkpoint's time */
	uint64_t ck_at = NOW;
	NOW += 3000;
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"n", 1, blob, bl, NOW), 0);
	CU_ASSERT_EQUAL(REPLAYS, 1);
	CU_ASSERT_EQUAL(REPLAY_FROM, ck_at);
	journal_msg(0, 7, 4, "d"); /* live, while the replay runs: waits */
	journal_msg(6, 7, 3, "x"); /* another job's: not for "n" */
	journal_msg(5, 7, 2, "b"); /* in the checkpoint already */
	journal_msg(5, 7, 3, "c");
	journal_msg(5, 7, 4, "d"); /* the one waiting: given by the replay, once */
	journal_msg(5, 9, 1, "e"); /* a run the checkpoint never saw */
	journal_msg(0, 7, 5, "f");
	expect(0, "30 04 00 01 74 64 30 04 00 01 74 66"); /* live: d, f; no replay */
	engine_cluster_replay_end(E, 5, NOW);
	journal_msg(5, 7, 6, "y"); /* after the end: nobody waits for job 5 */
	/* the client: session present, its checkpoint's a and b, then c, d,
	 * e from the replay, then f, which waited */
	up4_kept(2, "n",
		 "20 02 01 00 32 06 00 01 74 00 01 61 32 06 00 01 74 00 02 62 32 06 00 01 74 00 03 63"
		 " 32 06 00 01 74 00 04 64 32 06 00 01 74 00 05 65 32 06 00 01 74 00 06 66");
	/* NATS back after a break: every session with a subscription replays
	 * what this node had not routed (run 7 up to 5 it had) */
	gone(2, NULL);
	REPLAYS = 0;
	engine_cluster_resync(E, NOW - 2000, NOW);
	CU_ASSERT_EQUAL(REPLAYS, 3); /* "c", "n", and "m" (offline since the start) */
	journal_msg(5, 7, 5, "f");
	journal_msg(5, 7, 7, "g");
	engine_cluster_replay_end(E, 5, NOW);
	expect(0, "30 04 00 01 74 67");
	/* the six unacknowledged ones again [MQTT-4.4.0-1], then g */
	up4_kept(2, "n",
		 "20 02 01 00 3a 06 00 01 74 00 01 61 3a 06 00 01 74 00 02 62 3a 06 00 01 74 00 03 63"
		 " 3a 06 00 01 74 00 04 64 3a 06 00 01 74 00 05 65 3a 06 00 01 74 00 06 66"
		 " 32 06 00 01 74 00 07 67");
	stop();
}

static int FC_PUBS;

static int fc_publish_count(void *ctx, const struct engine_cluster_msg *m, uint64_t *ticket)
{
	FC_PUBS++;
	return fc_publish(ctx, m, ticket);
}

/* A message published while a replayed one is delivered (from the
 * delivery's event callback) is a live message like any other: every
 * subscriber gets it, the cluster too, and a session waiting for the
 * replay gets it after the replay's messages. */
static void t_cluster_journal_nested(void)
{
	static const struct engine_cluster fc = {NULL, fc_interest, fc_publish_count, fc_room, NULL,
						 NULL, NULL, fc_checkpoint, fc_ended, fc_replay, 1000};
	start(NULL, NULL);
	engine_cluster_attach(E, &fc);
	CK_PUTS = CK_DELS = ENDED = REPLAYS = 0;
	CK_FULL = false;
	up4(0, "c");
	subscribe4(0, "t", 0);
	up4_kept(1, "m", "20 02 00 00");
	subscribe4(1, "t", 1);
	gone(1, NULL);
	CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
	uint8_t blob[sizeof CK_LAST];
	size_t bl = CK_LAST_LEN;
	memcpy(blob, CK_LAST, bl);
	NOW += 3000;
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"n", 1, blob, bl, NOW), 0);
	CU_ASSERT_EQUAL(REPLAYS, 1);
	up4_kept(2, "n", "20 02 01 00");
	FC_PUBS = 0;
	NESTED_LEFT = 1;
	journal_msg(5, 7, 1, "a"); /* delivered to "n"; its event publishes "z" */
	CU_ASSERT_EQUAL(NESTED_LEFT, 0);
	NESTED_LEFT = 0;
	expect(2, "32 06 00 01 74 00 01 61");
	expect(0, "30 04 00 01 74 7a"); /* the live subscriber: not skipped as a replay's */
	CU_ASSERT_EQUAL(FC_PUBS, 1);    /* and forwarded to the other nodes */
	engine_cluster_replay_end(E, 5, NOW);
	expect(2, "30 04 00 01 74 7a"); /* held for "n" behind the replay (QoS 0) */
	stop();
}

/* Connects "w" (v5) with will "w" = "x" delayed 5 s and the session expiry
 * as given; expects the default CONNACK. */
static void connect_will_delay(int i, const char *expiry_props)
{
	open_conn(i);
	CU_ASSERT_EQUAL(connect_full(i, 5, "w", 0x04, 60, expiry_props,
				     "05 18 00 00 00 05 00 01 77 00 01 78"),
			0);
	expect(i, connack5_default);
}

static void t_will_delay_resume(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 0);
	connect_will_delay(0, "11 00 00 00 3c");
	gone(0, NULL);
	NOW += 2000;
	/* resumed before the delay: no will [MQTT-3.1.3-9] */
	up5(2, "w", 0x00, "11 00 00 00 3c");
	expect(2, "20 09 01 00 06 21 00 14 22 00 0a");
	NOW += 10000;
	engine_tick(E, NOW);
	expect(1, "");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, NULL), 0);
	stop();
}

static void t_will_delay_elapsed(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 0);
	connect_will_delay(0, "11 00 00 00 3c");
	gone(0, NULL);
	uint64_t t0 = NOW;
	NOW = t0 + 4999;
	engine_tick(E, NOW);
	expect(1, "");
	NOW = t0 + 5000;
	engine_tick(E, NOW);
	expect(1, "30 04 00 01 77 78");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, "w"), 1);
	stop();
}

static void t_will_at_session_end(void)
{
	start(NULL, NULL);
	up4_will_watcher(1, 0);
	connect_will_delay(0, "11 00 00 00 02");
	gone(0, NULL);
	/* the session ends (2 s) before the delay (5 s): the will goes then */
	NOW += 2000;
	engine_tick(E, NOW);
	expect(1, "30 04 00 01 77 78");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	stop();
}

/* The checkpoint callbacks of the adoption tests below. */
static const struct engine_cluster FC_CK = {NULL, fc_interest, fc_publish, fc_room, NULL, NULL,
					    NULL, fc_checkpoint, fc_ended, NULL, 0};

/* A fresh engine with "sub" watching the will topic, at time at, adopts
 * the copy of "w" in blob. */
static void adopt_w_at(const uint8_t *blob, size_t bl, uint64_t at)
{
	start(NULL, NULL);
	engine_cluster_attach(E, &FC_CK);
	up4_will_watcher(1, 0);
	NOW = at;
	CU_ASSERT_EQUAL(engine_cluster_adopt(E, (const uint8_t *)"w", 1, blob, bl, NOW), 0);
}

/* A checkpoint says when its session's connection ended, and the node that
 * adopts it counts the session's expiry [MQTT-3.1.2-23] and its will's
 * delay [MQTT-3.1.3-9] from then, not from the adoption. */
static void t_cluster_adopt_deadlines(void)
{
	uint8_t blob[2][sizeof CK_LAST];
	size_t bl[2];
	uint64_t t0[2];
	struct engine_cluster_msg m;
	cluster_will_msg(&m, "w", "x", "w", 0);
	/* "w": session expiry 10 s, will delay 5 s; copied 3 s after it went
	 * (0), and while connected (1) */
	for (int k = 0; k < 2; k++) {
		start(NULL, NULL);
		engine_cluster_attach(E, &FC_CK);
		CK_FULL = false;
		connect_will_delay(0, "11 00 00 00 0a");
		t0[k] = NOW;
		if (k == 0)
			gone(0, NULL);
		NOW += 3000;
		CU_ASSERT_EQUAL(engine_cluster_checkpoint(E, 65536, SIZE_MAX, NOW), 1);
		bl[k] = CK_LAST_LEN;
		memcpy(blob[k], CK_LAST, bl[k]);
		stop();
	}
	/* adopted 8 s after the connection ended: the will's 5 s are over (it
	 * goes at once), the session's 10 s are not */
	adopt_w_at(blob[0], bl[0], t0[0] + 8000);
	CU_ASSERT_EQUAL(engine_cluster_adopt_will(E, (const uint8_t *)"w", 1, &m, 5, NOW), 0);
	expect(1, "30 04 00 01 77 78");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, "w"), 1);
	NOW = t0[0] + 9999;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 0);
	NOW = t0[0] + 10000;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	stop();
	/* adopted 12 s after: the session has expired already; its will goes
	 * as the dead node's would have */
	adopt_w_at(blob[0], bl[0], t0[0] + 12000);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	CU_ASSERT_EQUAL(engine_cluster_adopt_will(E, (const uint8_t *)"w", 1, &m, 5, NOW), 0);
	expect(1, "30 04 00 01 77 78");
	stop();
	/* a copy of a connected session says nothing: from the adoption */
	adopt_w_at(blob[1], bl[1], t0[1] + 8000);
	CU_ASSERT_EQUAL(engine_cluster_adopt_will(E, (const uint8_t *)"w", 1, &m, 5, NOW), 0);
	expect(1, "");
	NOW = t0[1] + 13000;
	engine_tick(E, NOW);
	expect(1, "30 04 00 01 77 78");
	NOW = t0[1] + 18000;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	stop();
}

static void t_queue_overflow(void)
{
	struct engine_config cfg = config_default();
	cfg.max_queued_messages = 2;
	start(&cfg, NULL);
	pub_sub4_kept(1);
	gone(1, NULL);
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32 "
		"32 08 00 03 61 2f 62 00 07 33");
	const struct fevent *ev = last_ev(MIDGE_EV_DROP);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
	CU_ASSERT_EQUAL(ev->drop, MIDGE_DROP_QUEUE_FULL);
	CU_ASSERT_STRING_EQUAL(ev->to, "s");
	CU_ASSERT_EQUAL(stats_now().msgs_dropped, 1);
	up4_kept(2, "s", "20 02 01 00 32 08 00 03 61 2f 62 00 01 31 32 08 00 03 61 2f 62 00 02 32");
	stop();
}

static void t_queue_unlimited_is_bounded(void)
{
	struct engine_config cfg = config_default();
	cfg.max_queued_messages = 0; /* Mosquitto's "unlimited" */
	start(&cfg, NULL);
	pub_sub4_kept(1);
	gone(1, NULL);
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32 "
		"32 08 00 03 61 2f 62 00 07 33");
	CU_ASSERT_PTR_NULL(last_ev(MIDGE_EV_DROP));
	CU_ASSERT_EQUAL(stats_now().msgs_dropped, 0);
	up4_kept(2, "s", "20 02 01 00 32 08 00 03 61 2f 62 00 01 31 32 08 00 03 61 2f 62 00 02 32 "
			 "32 08 00 03 61 2f 62 00 03 33");
	stop();
}

static void t_queue_bytes_bound(void)
{
	struct engine_config cfg = config_default();
	cfg.max_queued_bytes = 10; /* topic 3 + payload 1 = 4 bytes each */
	start(&cfg, NULL);
	up4(0, "pub");
	open_conn(1);
	connect_full(1, 4, "s", 0x00, 60, NULL, NULL);
	feed(1, "82 08 00 01 00 03 61 2f 62 01");
	out(1);
	gone(1, NULL);
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32 "
		"32 08 00 03 61 2f 62 00 07 33");
	struct engine_stats st = stats_now();
	CU_ASSERT_EQUAL(st.stored_count, 2);
	CU_ASSERT_EQUAL(st.stored_bytes, 8);
	CU_ASSERT_EQUAL(st.msgs_dropped, 1);
	stop();
}

static void t_inflight_window(void)
{
	struct engine_config cfg = config_default();
	cfg.max_inflight = 2;
	start(&cfg, NULL);
	pub_sub4(1);
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32 "
		"32 08 00 03 61 2f 62 00 07 33");
	expect(1, "32 08 00 03 61 2f 62 00 01 31 32 08 00 03 61 2f 62 00 02 32");
	exchange(1, "40 02 00 02", "32 08 00 03 61 2f 62 00 03 33");
	stop();
}

static void t_client_receive_max(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x02, "21 00 01"); /* receive maximum 1 */
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 01", "90 04 00 01 00 01");
	feed(0, "32 08 00 03 61 2f 62 00 05 31 32 08 00 03 61 2f 62 00 06 32");
	expect(1, "32 09 00 03 61 2f 62 00 01 00 31"); /* [MQTT-3.3.4-7] */
	exchange(1, "40 02 00 01", "32 09 00 03 61 2f 62 00 02 00 32");
	stop();
}

static void t_receive_max_exceeded(void)
{
	struct engine_config cfg = config_default();
	cfg.receive_max = 2;
	start(&cfg, NULL);
	connect_expect(0, 5, "p", 0x02, 60, NULL, NULL, 0, "20 09 00 00 06 21 00 02 22 00 0a");
	exchange(0, "34 07 00 01 74 00 01 00 31 34 07 00 01 74 00 02 00 32",
		 "50 03 00 01 10 50 03 00 02 10");
	CU_ASSERT_EQUAL(feed(0, "34 07 00 01 74 00 03 00 33"), -1); /* [MQTT-3.3.4-9] */
	expect(0, "e0 1d 93 1b 1f 00 18 72 65 63 65 69 76 65 20 6d 61 78 69 6d 75 6d 20 65 78 63 "
		  "65 65 64 65 64");
	stop();
}

static void t_topic_alias(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	up4(1, "sub");
	subscribe4(1, "a/b", 0);
	feed(0, "30 0b 00 03 61 2f 62 03 23 00 01 68 69");
	feed(0, "30 08 00 00 03 23 00 01 68 6a");
	expect(1, "30 07 00 03 61 2f 62 68 69 30 07 00 03 61 2f 62 68 6a");
	/* unknown alias */
	CU_ASSERT_EQUAL(feed(0, "30 08 00 00 03 23 00 02 68 6a"), -1);
	expect(0, "e0 18 82 16 1f 00 13 75 6e 6b 6e 6f 77 6e 20 74 6f 70 69 63 20 61 6c 69 61 73");
	up5(2, "pub2", 0x02, NULL);
	/* above the maximum we advertised (10) [MQTT-3.3.2-9] */
	CU_ASSERT_EQUAL(feed(2, "30 0b 00 03 61 2f 62 03 23 00 0b 68 69"), -1);
	expect(2, "e0 1d 94 1b 1f 00 18 74 6f 70 69 63 20 61 6c 69 61 73 20 6f 75 74 20 6f 66 20 72 "
		  "61 6e 67 65");
	stop();
}

static void t_message_expiry(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	open_conn(1);
	connect_full(1, 5, "s", 0x00, 60, "11 00 00 01 00", NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 01",
		 "20 09 00 00 06 21 00 14 22 00 0a 90 04 00 01 00 01");
	gone(1, NULL);
	/* two messages with expiry 5 s, queued for the offline session */
	exchange(0, "32 0f 00 03 61 2f 62 00 05 05 02 00 00 00 05 68 69", "40 02 00 05");
	NOW += 2000;
	open_conn(2);
	connect_full(2, 5, "s", 0x00, 60, "11 00 00 01 00", NULL);
	/* delivered with the remaining 3 s [MQTT-3.3.2-6] */
	expect(2, "20 09 01 00 06 21 00 14 22 00 0a 32 0f 00 03 61 2f 62 00 01 05 02 00 00 00 03 68 69");
	feed(2, "40 02 00 01");
	gone(2, NULL);
	feed(0, "32 0f 00 03 61 2f 62 00 06 05 02 00 00 00 05 68 69");
	NOW += 6000;
	open_conn(3);
	connect_full(3, 5, "s", 0x00, 60, "11 00 00 01 00", NULL);
	/* expired while queued: dropped [MQTT-3.3.2-5] */
	expect(3, "20 09 01 00 06 21 00 14 22 00 0a");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_EXPIRED);
	stop();
}

static void t_client_max_packet(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x02, "27 00 00 00 0c"); /* maximum packet size 12 */
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 01", "90 04 00 01 00 01");
	feed(0, "30 07 00 03 61 2f 62 68 69"); /* 10 bytes in v5: fits */
	expect(1, "30 08 00 03 61 2f 62 00 68 69");
	feed(0, "30 0a 00 03 61 2f 62 68 69 6a 6b 6c"); /* 13: dropped [MQTT-3.1.2-24] */
	expect(1, "");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_TOO_LARGE);
	feed(0, "32 0c 00 03 61 2f 62 00 05 68 69 6a 6b 6c");
	expect(1, "");
	/* the next QoS 1 message still gets packet id 1 */
	feed(0, "32 08 00 03 61 2f 62 00 06 68");
	expect(1, "32 09 00 03 61 2f 62 00 01 00 68");
	stop();
}

static void t_slow_consumer(void)
{
	start(NULL, NULL);
	pub_sub4(0);
	F[1].refuse_qos0 = true;
	feed(0, "30 07 00 03 61 2f 62 68 69");
	expect(1, "");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_SLOW_CONSUMER);
	stop();
}

static void t_shutdown(void)
{
	start(NULL, NULL);
	up4(0, "a");
	up5(1, "b", 0x02, NULL);
	open_conn(2);
	engine_shutdown(E, NOW);
	expect(0, "");
	expect(1, "e0 19 8b 17 1f 00 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(F[1].close_calls, 1);
	CU_ASSERT_EQUAL(F[2].close_calls, 1);
	gone(0, NULL);
	gone(1, NULL);
	gone(2, NULL);
	stop();
}

static void t_auth_packet(void)
{
	start(NULL, NULL);
	up5(0, "a", 0x02, NULL);
	CU_ASSERT_EQUAL(feed(0, "f0 00"), -1);
	expect(0, "e0 2a 82 28 1f 00 25 41 55 54 48 20 77 69 74 68 6f 75 74 20 61 6e 20 61 75 74 68 "
		  "65 6e 74 69 63 61 74 69 6f 6e 20 6d 65 74 68 6f 64");
	stop();
}

/* ------------------------------------------- enhanced authentication */

static struct engine_conn *STEP_CONN;
static int STEP_N, STEP_LAST, STEP_CANCELS;
static char STEP_DATA[64];

static int step_enhanced(void *ctx, const struct midge_client *client, enum engine_auth_step step,
			 const struct midge_str *method, const struct midge_str *data)
{
	CU_ASSERT_EQUAL(method->len, 1);
	STEP_CONN = engine_conn_of(client);
	STEP_N++;
	STEP_LAST = (int)step;
	if (data->p)
		copy_str(STEP_DATA, sizeof STEP_DATA, data->p, data->len);
	else
		copy_str(STEP_DATA, sizeof STEP_DATA, "-", 1);
	return method->p[0] == 'X' ? MQTT_RC_BAD_AUTH_METHOD : ENGINE_AUTH_PENDING;
}

static void step_cancel(void *ctx, const struct midge_client *client)
{
	STEP_CANCELS++;
}

static const struct engine_auth auth_steps = {.enhanced = step_enhanced,
					      .connect_cancel = step_cancel};

static int step_answer(int rc, const char *data)
{
	struct midge_str d = {data, data ? strlen(data) : 0};
	return engine_conn_auth_step(E, F[0].c, rc, data ? &d : NULL, NOW);
}

/* CONNECT with method "M" and data "c1", the worker continues with "s1". */
static void enhanced_start(void)
{
	STEP_N = STEP_CANCELS = 0;
	start(NULL, &auth_steps);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 01 4d 16 00 02 63 31", NULL),
			ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(STEP_LAST, ENGINE_AUTH_STEP_CONNECT);
	CU_ASSERT_STRING_EQUAL(STEP_DATA, "c1");
	CU_ASSERT_PTR_EQUAL(STEP_CONN, F[0].c);
	expect(0, "");
	/* [MQTT-4.12.0-2] AUTH 0x18, the method, the data */
	CU_ASSERT_EQUAL(step_answer(MQTT_RC_CONTINUE_AUTH, "s1"), 0);
	expect(0, "f0 0b 18 09 15 00 01 4d 16 00 02 73 31");
}

static void t_enhanced_exchange(void)
{
	enhanced_start();
	/* the client's turn: its AUTH 0x18 goes to the module, the CONNECT stays held */
	CU_ASSERT_EQUAL(feed(0, "f0 0b 18 09 15 00 01 4d 16 00 02 63 32"), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(STEP_LAST, ENGINE_AUTH_STEP_CONTINUE);
	CU_ASSERT_STRING_EQUAL(STEP_DATA, "c2");
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 0);
	/* [MQTT-4.12.0-5] CONNACK with the method and the final data */
	CU_ASSERT_EQUAL(step_answer(0, "s2"), 0);
	expect(0, "20 12 00 00 0f 15 00 01 4d 16 00 02 73 32 21 00 14 22 00 0a");
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 5);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_CONNECT, NULL), 1);
	/* [MQTT-4.12.1-1] re-authentication; the client goes on meanwhile */
	CU_ASSERT_EQUAL(feed(0, "f0 0b 19 09 15 00 01 4d 16 00 02 63 33"), 0);
	CU_ASSERT_EQUAL(STEP_LAST, ENGINE_AUTH_STEP_REAUTH);
	exchange(0, "c0 00", "d0 00");
	CU_ASSERT_EQUAL(step_answer(0, NULL), 0);
	expect(0, "f0 06 00 04 15 00 01 4d");
	/* nothing pending any more */
	CU_ASSERT_EQUAL(step_answer(0, NULL), -1);
	/* [MQTT-4.12.1-2] a failed re-authentication: DISCONNECT 0x87 */
	CU_ASSERT_EQUAL(feed(0, "f0 06 19 04 15 00 01 4d"), 0);
	CU_ASSERT_STRING_EQUAL(STEP_DATA, "-");
	CU_ASSERT_EQUAL(step_answer(MQTT_RC_BAD_USERNAME_OR_PASSWORD, NULL), -1);
	CU_ASSERT_EQUAL(strncmp(out(0), "e0 ", 3), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(STEP_N, 4);
	stop();
}

static void t_enhanced_refusals(void)
{
	/* [MQTT-4.12.0-3] another method in the client's AUTH: CONNACK 0x82 */
	enhanced_start();
	CU_ASSERT_EQUAL(feed(0, "f0 06 18 04 15 00 01 4e"), -1);
	CU_ASSERT_EQUAL(strncmp(out(0), "20 ", 3), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	stop();
	/* anything but AUTH during the exchange: CONNACK 0x82 */
	enhanced_start();
	CU_ASSERT_EQUAL(feed(0, "c0 00"), -1);
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "20 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 5, " 00 82", 6), 0);
	stop();
	/* the module refuses: CONNACK with its code, no method */
	enhanced_start();
	CU_ASSERT_EQUAL(feed(0, "f0 06 18 04 15 00 01 4d"), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(step_answer(MQTT_RC_NOT_AUTHORIZED, NULL), -1);
	got = out(0);
	CU_ASSERT_EQUAL(strncmp(got + 5, " 00 87", 6), 0);
	stop();
	/* a method the module does not serve: 0x8C at once */
	STEP_N = 0;
	start(NULL, &auth_steps);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 01 58", NULL), -1);
	got = out(0);
	CU_ASSERT_EQUAL(strncmp(got + 5, " 00 8c", 6), 0);
	stop();
}

static void t_enhanced_bounds(void)
{
	struct engine_config cfg = config_default();
	cfg.auth_max_rounds = 1;
	cfg.auth_exchange_ms = 2000;
	/* rounds: a second AUTH 0x18 from midge is one too many */
	STEP_N = STEP_CANCELS = 0;
	start(&cfg, &auth_steps);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 01 4d", NULL), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(step_answer(MQTT_RC_CONTINUE_AUTH, NULL), 0);
	expect(0, "f0 06 18 04 15 00 01 4d");
	CU_ASSERT_EQUAL(feed(0, "f0 06 18 04 15 00 01 4d"), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(step_answer(MQTT_RC_CONTINUE_AUTH, NULL), -1);
	CU_ASSERT_EQUAL(strncmp(out(0) + 5, " 00 87", 6), 0);
	stop();
	/* time: the module never answers; the step is cancelled */
	STEP_N = STEP_CANCELS = 0;
	start(&cfg, &auth_steps);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 01 4d", NULL), ENGINE_CONN_HELD);
	engine_tick(E, NOW + 1999);
	expect(0, "");
	engine_tick(E, NOW + 2000);
	CU_ASSERT_EQUAL(strncmp(out(0) + 5, " 00 87", 6), 0);
	CU_ASSERT_EQUAL(STEP_CANCELS, 1);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	gone(0, NULL);
	CU_ASSERT_EQUAL(STEP_CANCELS, 1);
	stop();
	/* data: over auth_max_data */
	cfg.auth_max_data = 1;
	start(&cfg, &auth_steps);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x02, 60, "15 00 01 4d 16 00 02 63 31", NULL), -1);
	CU_ASSERT_EQUAL(strncmp(out(0) + 5, " 00 87", 6), 0);
	stop();
}

/* The client goes while its step is decided: the module forgets it. */
static void t_enhanced_client_gone(void)
{
	enhanced_start();
	CU_ASSERT_EQUAL(feed(0, "f0 06 18 04 15 00 01 4d"), ENGINE_CONN_HELD);
	gone(0, NULL);
	CU_ASSERT_EQUAL(STEP_CANCELS, 1);
	stop();
	/* during a re-authentication */
	enhanced_start();
	CU_ASSERT_EQUAL(feed(0, "f0 06 18 04 15 00 01 4d"), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(step_answer(0, NULL), 0);
	out(0);
	CU_ASSERT_EQUAL(feed(0, "f0 06 19 04 15 00 01 4d"), 0);
	gone(0, NULL);
	CU_ASSERT_EQUAL(STEP_CANCELS, 1);
	stop();
}

static void t_request_problem_info(void)
{
	struct engine_auth auth = {.acl = acl_deny_secret};
	start(NULL, &auth);
	up5(0, "p", 0x02, "17 00"); /* request problem information 0 [MQTT-3.1.2-29] */
	exchange(0, "32 0d 00 06 73 65 63 72 65 74 00 05 00 68 69", "40 03 00 05 87");
	stop();
}

static void t_framing_error(void)
{
	struct engine_config cfg = config_default();
	cfg.max_packet_size = 64;
	/* the default CONNACK, advertising the 64-byte maximum */
	static const char *connack = "20 0e 00 00 0b 21 00 14 22 00 0a 27 00 00 00 40";
	start(&cfg, NULL);
	connect_expect(0, 5, "a", 0x02, 60, NULL, NULL, 0, connack);
	/* [MQTT-3.12.4-1] */
	CU_ASSERT_EQUAL(feed(0, "c0 00"), 0);
	expect(0, "d0 00");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PING, NULL), 1);
	/* a PUBLISH claiming 100 bytes, over the 64-byte maximum: DISCONNECT
	 * 0x95 "packet larger than the maximum packet size", before the body
	 * arrives */
	CU_ASSERT_EQUAL(feed(0, "30 64 00 01"), -1);
	expect(0, "e0 2f 95 2d 1f 00 2a 70 61 63 6b 65 74 20 6c 61 72 67 65 72 20 74 68 61 6e 20 74 "
		  "68 65 20 6d 61 78 69 6d 75 6d 20 70 61 63 6b 65 74 20 73 69 7a 65");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_PROTOCOL_ERROR, NULL), 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_PROTOCOL_ERROR)->rc, MQTT_RC_PACKET_TOO_LARGE);
	/* reserved packet type 0: DISCONNECT 0x81 "malformed packet" */
	connect_expect(1, 5, "b", 0x02, 60, NULL, NULL, 0, connack);
	CU_ASSERT_EQUAL(feed(1, "00 00"), -1);
	expect(1, "e0 15 81 13 1f 00 10 6d 61 6c 66 6f 72 6d 65 64 20 70 61 63 6b 65 74");
	CU_ASSERT_EQUAL(F[1].close_calls, 1);
	/* 3.1.1 has no DISCONNECT from the server: closed, nothing sent */
	up4(2, "c");
	CU_ASSERT_EQUAL(feed(2, "00 00"), -1);
	expect(2, "");
	CU_ASSERT_EQUAL(F[2].close_calls, 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_PROTOCOL_ERROR)->rc, MQTT_RC_MALFORMED);
	stop();
}

static void t_max_subscriptions(void)
{
	struct engine_config cfg = config_default();
	cfg.max_subscriptions = 1;
	cfg.max_topic_levels = 2;
	start(&cfg, NULL);
	up5(0, "a", 0x02, NULL);
	exchange(0, "82 09 00 01 00 00 03 61 2f 62 00", "90 04 00 01 00 00");
	exchange(0, "82 09 00 02 00 00 03 61 2f 63 00", "90 04 00 02 00 97");
	/* replacing is not a new one */
	exchange(0, "82 09 00 03 00 00 03 61 2f 62 01", "90 04 00 03 00 01");
	up4(1, "b");
	exchange(1, "82 0a 00 01 00 05 61 2f 62 2f 63 00", "90 03 00 01 80"); /* three levels */
	stop();
}

/* One v5 packet with one topic: SUBSCRIBE (0x82, with options),
 * UNSUBSCRIBE (0xa2) or QoS 0 PUBLISH (0x30, payload "x"), as hex. */
static const char *one_topic5(uint8_t type, uint16_t pid, const char *topic, uint8_t opts)
{
	static char buf[512];
	size_t tl = strlen(topic);
	size_t rl = type == 0x30 ? tl + 4 : tl + 5 + (type == 0x82);
	int n = snprintf(buf, sizeof buf, "%02x %02zx", type, rl);
	if (type != 0x30)
		n += snprintf(buf + n, sizeof buf - (size_t)n, " %02x %02x 00", pid >> 8, pid & 0xff);
	n += snprintf(buf + n, sizeof buf - (size_t)n, " 00 %02zx", tl);
	for (size_t k = 0; k < tl; k++)
		n += snprintf(buf + n, sizeof buf - (size_t)n, " %02x", (unsigned char)topic[k]);
	if (type == 0x82)
		snprintf(buf + n, sizeof buf - (size_t)n, " %02x", opts);
	else if (type == 0x30)
		snprintf(buf + n, sizeof buf - (size_t)n, " 00 78");
	return buf;
}

static void sub_exchange5(int i, uint8_t type, uint16_t pid, const char *topic, uint8_t opts, uint8_t rc)
{
	char ack[32];
	snprintf(ack, sizeof ack, "%02x 04 %02x %02x 00 %02x", type == 0x82 ? 0x90 : 0xb0, pid >> 8,
		 pid & 0xff, rc);
	exchange(i, one_topic5(type, pid, topic, opts), ack);
}

/* Many subscriptions over two sessions that share filters: the
 * engine-wide index must tell sessions apart, survive its growth and
 * backward-shift deletion, and replace rather than duplicate. */
static void t_many_subscriptions(void)
{
	struct engine_config d;
	engine_config_default(&d);
	CU_ASSERT_EQUAL(d.max_subscriptions, 10000);
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	up5(1, "a", 0x02, NULL);
	up5(2, "b", 0x02, NULL);
	char t[32];
	for (int k = 0; k < 300; k++) {
		snprintf(t, sizeof t, "t/%d", k);
		sub_exchange5(1, 0x82, (uint16_t)(k + 1), t, 1, 1);
		if (k < 100)
			sub_exchange5(2, 0x82, (uint16_t)(k + 1), t, 0, 0);
	}
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 400);
	sub_exchange5(1, 0x82, 1000, "t/5", 0, 0); /* replaced, not added */
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 400);
	sub_exchange5(2, 0xa2, 1001, "t/150", 0, 0x11); /* a's, not b's */
	sub_exchange5(1, 0xa2, 1002, "t/150", 0, 0x00);
	sub_exchange5(1, 0xa2, 1003, "t/150", 0, 0x11);
	for (int k = 0; k < 100; k += 2) {
		snprintf(t, sizeof t, "t/%d", k);
		sub_exchange5(1, 0xa2, (uint16_t)(2000 + k), t, 0, 0x00);
	}
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 349);
	for (int k = 0; k < 300; k++) {
		snprintf(t, sizeof t, "t/%d", k);
		char msg[512];
		snprintf(msg, sizeof msg, "%s", one_topic5(0x30, 0, t, 0));
		feed(0, msg);
		expect(1, (k < 100 && k % 2 == 0) || k == 150 ? "" : msg);
		expect(2, k < 100 ? msg : "");
	}
	/* a session's end takes all its entries out of the index */
	gone(1, "test");
	up5(1, "a", 0x02, NULL);
	sub_exchange5(1, 0xa2, 1, "t/1", 0, 0x11);
	sub_exchange5(2, 0xa2, 2, "t/1", 0, 0x00);
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 99);
	stop();
}

static void t_stats_and_events(void)
{
	start(NULL, NULL);
	up4(0, "a");
	up4(1, "b");
	struct engine_stats st = stats_now();
	CU_ASSERT_EQUAL(st.clients_connected, 2);
	CU_ASSERT_EQUAL(st.clients_maximum, 2);
	gone(1, "reset");
	engine_stats(E, &st);
	CU_ASSERT_EQUAL(st.clients_connected, 1);
	CU_ASSERT_EQUAL(st.clients_maximum, 2);
	CU_ASSERT(st.bytes_received > 0);
	CU_ASSERT(st.bytes_sent == 8);
	const struct fevent *ev = last_ev(MIDGE_EV_DISCONNECT);
	CU_ASSERT_STRING_EQUAL(ev->cid, "b");
	CU_ASSERT_STRING_EQUAL(ev->why, "reset");
	stop();
}


/* ---------------------------------------------------------------- more statements */

static void t_will_qos_refused_v5(void)
{
	struct engine_config cfg = config_default();
	cfg.max_qos = 1;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x16, 60, NULL, "00 00 01 77 00 01 78"), -1);
	/* [MQTT-3.2.2-12] */
	expect(0, "20 1c 00 9b 19 1f 00 16 77 69 6c 6c 20 51 6f 53 20 6e 6f 74 20 73 75 70 70 6f 72 "
		  "74 65 64");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->rc, 0x9b);
	stop();
}

static void t_message_size_limit_publish(void)
{
	struct engine_config cfg = config_default();
	cfg.message_size_limit = 2;
	start(&cfg, NULL);
	up4(0, "pub4");
	up5(1, "pub5", 0x02, NULL);
	up4(2, "sub");
	exchange(2, "82 08 00 01 00 03 61 2f 23 02", "90 03 00 01 02");
	/* over the limit: not forwarded, the QoS 1 flow completes */
	exchange(0, "32 0a 00 03 61 2f 62 00 05 68 69 69", "40 02 00 05");
	expect(2, "");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_TOO_LARGE);
	/* at the limit: forwarded */
	feed(0, "30 07 00 03 61 2f 62 68 69");
	expect(2, "30 07 00 03 61 2f 62 68 69");
	/* v5 QoS 2: PUBREC 0x97 ends the exchange */
	exchange(1, "34 0b 00 03 61 2f 62 00 06 00 68 69 69",
		 "50 26 00 06 97 22 1f 00 1f 70 61 79 6c 6f 61 64 20 6f 76 65 72 20 6d 65 73 73 61 "
		 "67 65 5f 73 69 7a 65 5f 6c 69 6d 69 74");
	expect(2, "");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_TOO_LARGE);
	stop();
}

static void t_message_size_limit_will(void)
{
	struct engine_config cfg = config_default();
	cfg.message_size_limit = 2;
	start(&cfg, NULL);
	connect_expect(0, 5, "a", 0x06, 60, NULL, "00 00 01 77 00 03 78 78 78", -1,
		 "20 2a 00 95 27 1f 00 24 77 69 6c 6c 20 70 61 79 6c 6f 61 64 20 6f 76 65 72 20 6d "
		 "65 73 73 61 67 65 5f 73 69 7a 65 5f 6c 69 6d 69 74");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->rc, 0x95);
	/* 3.1.1 has no such code: 0x05 not authorized, as Mosquitto */
	connect_expect(1, 4, "b", 0x06, 60, NULL, "00 01 77 00 03 78 78 78", -1, "20 02 00 05");
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_CONNECT_REFUSED)->cid, "b");
	/* at the limit: accepted */
	connect_expect(2, 4, "c", 0x06, 60, NULL, "00 01 77 00 02 78 78", 0, "20 02 00 00");
	stop();
}

static void t_will_retain_refused_v5(void)
{
	struct engine_config cfg = config_default();
	cfg.retain_available = false;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "a", 0x26, 60, NULL, "00 00 01 77 00 01 78"), -1);
	/* [MQTT-3.2.2-13] */
	expect(0, "20 21 00 9a 1e 1f 00 1b 72 65 74 61 69 6e 65 64 20 77 69 6c 6c 20 6e 6f 74 20 73 "
		  "75 70 70 6f 72 74 65 64");
	stop();
}

static void t_empty_id_v31(void)
{
	start(NULL, NULL);
	connect_expect(0, 3, "", 0x02, 60, NULL, NULL, -1, "20 02 00 02");
	stop();
}

static void t_session_expiry_capped(void)
{
	struct engine_config cfg = config_default();
	cfg.max_session_expiry = 100;
	start(&cfg, NULL);
	connect_expect(0, 5, "a", 0x00, 60, "11 00 00 03 e8", NULL, 0,
		 "20 0e 00 00 0b 11 00 00 00 64 21 00 14 22 00 0a");
	gone(0, NULL);
	CU_ASSERT_EQUAL(engine_tick(E, NOW), NOW + 100000);
	stop();
}

static void t_pubrec_unknown_v5(void)
{
	start(NULL, NULL);
	up5(0, "a", 0x02, NULL);
	exchange(0, "50 02 00 09",
		 "62 1a 00 09 92 16 1f 00 13 70 61 63 6b 65 74 20 69 64 20 6e 6f 74 20 66 6f 75 6e "
		 "64");
	exchange(0, "62 02 00 09",
		 "70 1a 00 09 92 16 1f 00 13 70 61 63 6b 65 74 20 69 64 20 6e 6f 74 20 66 6f 75 6e "
		 "64");
	stop();
}

static void t_pubrec_failure_v5(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	up5(1, "sub", 0x02, NULL);
	exchange(1, "82 09 00 01 00 00 03 61 2f 62 02", "90 04 00 01 00 02");
	feed(0, "34 09 00 03 61 2f 62 00 07 68 69");
	expect(1, "34 0a 00 03 61 2f 62 00 01 00 68 69");
	exchange(1, "50 03 00 01 80", ""); /* refused: the exchange ends, no PUBREL */
	CU_ASSERT_EQUAL(stats_now().inflight_count, 0);
	stop();
}

static void t_upgrade_outgoing_qos(void)
{
	struct engine_config cfg = config_default();
	cfg.upgrade_outgoing_qos = true;
	start(&cfg, NULL);
	pub_sub4(1);
	feed(0, "30 07 00 03 61 2f 62 68 69");
	expect(1, "32 09 00 03 61 2f 62 00 01 68 69");
	stop();
}

static void t_features_unavailable(void)
{
	struct engine_config cfg = config_default();
	cfg.wildcard_sub_available = false;
	cfg.shared_sub_available = false;
	start(&cfg, NULL);
	open_conn(0);
	connect_full(0, 5, "a", 0x02, 60, NULL, NULL);
	out(0);
	exchange(0, "82 09 00 01 00 00 03 61 2f 23 00", "90 04 00 01 00 a2");
	exchange(0, "82 10 00 02 00 00 0a 24 73 68 61 72 65 2f 67 2f 74 00", "90 04 00 02 00 9e");
	up4(1, "b");
	exchange(1, "82 08 00 01 00 03 61 2f 2b 00", "90 03 00 01 80");
	stop();
}

static void t_malformed_v5(void)
{
	start(NULL, NULL);
	up5(0, "a", 0x02, NULL);
	CU_ASSERT_EQUAL(feed(0, "40 01 00"), -1); /* a PUBACK one byte short */
	const char *got = out(0);
	CU_ASSERT_EQUAL(strncmp(got, "e0 ", 3), 0);
	CU_ASSERT_EQUAL(strncmp(got + 6, "81", 2), 0);
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_PROTOCOL_ERROR)->rc, MQTT_RC_MALFORMED);
	stop();
}

static void t_publish_too_deep_v5(void)
{
	struct engine_config cfg = config_default();
	cfg.max_topic_levels = 2;
	start(&cfg, NULL);
	up5(0, "a", 0x02, NULL);
	exchange(0, "32 0c 00 05 61 2f 62 2f 63 00 05 00 68 69",
		 "40 20 00 05 90 1c 1f 00 19 74 6f 70 69 63 20 68 61 73 20 74 6f 6f 20 6d 61 6e 79 "
		 "20 6c 65 76 65 6c 73");
	stop();
}

static void t_broker_publish_retained(void)
{
	start(NULL, NULL);
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"$SYS/v", 6, "1.0", 3, 1, true, NOW), 0);
	up4(0, "a");
	exchange(0, "82 0b 00 01 00 06 24 53 59 53 2f 23 01",
		 "90 03 00 01 01 33 0d 00 06 24 53 59 53 2f 76 00 01 31 2e 30");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DELIVER)->qos, 1);
	stop();
}

static void t_retained_expired(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	/* retained with message expiry 2 s */
	feed(0, "31 0d 00 03 61 2f 62 05 02 00 00 00 02 68 69");
	NOW += 1000;
	up4(1, "s1");
	exchange(1, "82 08 00 01 00 03 61 2f 62 00", "90 03 00 01 00 31 07 00 03 61 2f 62 68 69");
	NOW += 1000;
	up4(2, "s2");
	subscribe4(2, "a/b", 0);
	CU_ASSERT_EQUAL(stats_now().retained_count, 0);
	stop();
}


/* A retained message goes when it expires, without a SUBSCRIBE to find
 * it; replacing or clearing a topic takes the old message's deadline
 * with it (under ASan a deadline left behind is a use after free). */
static void t_retained_reaped(void)
{
	start(NULL, NULL);
	up5(0, "pub", 0x02, NULL);
	feed(0, "31 0d 00 03 61 2f 62 05 02 00 00 00 02 68 69"); /* a/b, 2 s */
	feed(0, "31 0d 00 03 61 2f 63 05 02 00 00 00 01 68 69"); /* a/c, 1 s */
	feed(0, "31 0d 00 03 61 2f 64 05 02 00 00 00 01 68 69"); /* a/d, 1 s */
	feed(0, "31 08 00 03 61 2f 63 00 68 6f");                /* a/c again, no expiry */
	feed(0, "31 06 00 03 61 2f 64 00");                      /* a/d cleared */
	CU_ASSERT_EQUAL(stats_now().retained_count, 2);
	NEVS = 0;
	NOW += 1500;
	CU_ASSERT_EQUAL(engine_tick(E, NOW), 1000000 + 2000);
	CU_ASSERT_EQUAL(stats_now().retained_count, 2);
	NOW += 600;
	engine_tick(E, NOW);
	CU_ASSERT_EQUAL(stats_now().retained_count, 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_RETAIN_CLEAR, "a/b"), 1);
	CU_ASSERT_EQUAL(NEVS, 1);
	up4(1, "s1");
	exchange(1, "82 08 00 01 00 03 61 2f 23 00", "90 03 00 01 00 31 07 00 03 61 2f 63 68 6f");
	stop();
}

/* The in-flight slots (towards a subscriber) and the QoS 2 ids awaiting
 * PUBREL (from a publisher) start with room for 8 and grow: 40 of each
 * must all be kept, in order, and each completed exactly once. */
static void t_session_arrays_grow(void)
{
	enum { N = 40 };
	struct engine_config cfg = config_default();
	cfg.max_inflight = 100;
	start(&cfg, NULL);
	pub_sub4(1);
	char hex[64], want[N * 32];
	size_t k = 0;
	for (int id = 1; id <= N; id++) {
		snprintf(hex, sizeof hex, "34 08 00 03 61 2f 62 00 %02x 78", id);
		feed(0, hex); /* QoS 2, no PUBREL yet */
		snprintf(hex, sizeof hex, "50 02 00 %02x", id);
		expect(0, hex);
		k += (size_t)snprintf(want + k, sizeof want - k, "%s32 08 00 03 61 2f 62 00 %02x 78",
				      k ? " " : "", id);
	}
	/* a re-sent PUBLISH of an id still awaiting PUBREL is not routed again */
	exchange(0, "3c 08 00 03 61 2f 62 00 05 78", "50 02 00 05");
	expect(1, want); /* ids 1..N in flight to the subscriber, none acked */
	CU_ASSERT_EQUAL(stats_now().inflight_count, N);
	for (int id = N; id >= 1; id--) {
		snprintf(hex, sizeof hex, "62 02 00 %02x", id);
		feed(0, hex);
		snprintf(hex, sizeof hex, "70 02 00 %02x", id);
		expect(0, hex);
		snprintf(hex, sizeof hex, "40 02 00 %02x", id);
		feed(1, hex);
	}
	CU_ASSERT_EQUAL(stats_now().inflight_count, 0);
	/* already released: PUBCOMP again, nothing else */
	exchange(0, "62 02 00 05", "70 02 00 05");
	expect(1, "");
	stop();
}

/* The shipped windows (docs/configuration.md): 1000 messages and 1 MiB
 * each way, and a v5 client is told 1000 (21 03 e8). */
static void t_default_windows(void)
{
	struct engine_config cfg;
	engine_config_default(&cfg);
	CU_ASSERT_EQUAL(cfg.max_inflight, 1000);
	CU_ASSERT_EQUAL(cfg.receive_max, 1000);
	CU_ASSERT_EQUAL(cfg.max_inflight_bytes, 1048576);
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 5, "v5", 0x02, 60, NULL, NULL), 0);
	expect(0, "20 09 00 00 06 21 03 e8 22 00 0a");
	stop();
}

static void t_packet_id_not_reused(void)
{
	struct engine_config cfg = config_default();
	cfg.max_inflight = 2;
	start(&cfg, NULL);
	pub_sub4(1);
	/* acknowledged in order: ids count up, wrap past 0 to 1 [MQTT-2.3.1-2] */
	for (unsigned n = 1; n <= 65537; n++) {
		feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
		CU_ASSERT_EQUAL_FATAL(F[1].n, 11);
		unsigned pid = (unsigned)F[1].out[7] << 8 | F[1].out[8];
		CU_ASSERT_EQUAL_FATAL(pid, (n - 1) % 65535 + 1);
		uint8_t ack[4] = {0x40, 0x02, (uint8_t)(pid >> 8), (uint8_t)pid};
		F[1].n = 0;
		F[0].n = 0;
		feed_bytes(1, ack, sizeof ack);
	}
	stop();
}

/* A client that keeps its oldest id unanswered while acknowledging later
 * ones (out of order, against [MQTT-4.6.0-2]) holds at most twice the
 * window (16 at least) of ids: then messages queue, none is lost, and the
 * answer to the oldest lets them go. */
static void t_packet_id_oldest_held(void)
{
	struct engine_config cfg = config_default();
	cfg.max_inflight = 2;
	start(&cfg, NULL);
	pub_sub4(1);
	feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
	expect(1, "32 09 00 03 61 2f 62 00 01 68 69"); /* id 1 stays in flight */
	for (unsigned n = 2; n <= 16; n++) {
		feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
		CU_ASSERT_EQUAL_FATAL(F[1].n, 11);
		unsigned pid = (unsigned)F[1].out[7] << 8 | F[1].out[8];
		CU_ASSERT_EQUAL_FATAL(pid, n);
		uint8_t ack[4] = {0x40, 0x02, (uint8_t)(pid >> 8), (uint8_t)pid};
		F[1].n = 0;
		F[0].n = 0;
		feed_bytes(1, ack, sizeof ack);
	}
	F[0].n = 0;
	feed(0, "32 09 00 03 61 2f 62 00 05 68 69");
	expect(1, ""); /* 16 ids spanned: queued */
	CU_ASSERT_EQUAL(stats_now().stored_count, 1);
	exchange(1, "40 02 00 01", "32 09 00 03 61 2f 62 00 11 68 69");
	CU_ASSERT_EQUAL(stats_now().stored_count, 0);
	CU_ASSERT_EQUAL(stats_now().inflight_count, 1);
	stop();
}

/* The set of incoming QoS 2 ids under many spread ids, released in another
 * order: a resent PUBLISH is routed again exactly when its id was
 * released [MQTT-4.3.3-9], and each PUBREL finds its id once. */
static void t_qos2_id_set(void)
{
	enum { N = 300 };
	start(NULL, NULL);
	up4(0, "pub");
	up4(1, "sub");
	subscribe4(1, "a/b", 0);
	uint8_t pkt[10] = {0x34, 0x08, 0x00, 0x03, 0x61, 0x2f, 0x62, 0, 0, 0x78};
	for (unsigned pass = 0; pass < 3; pass++) {
		for (unsigned i = 0; i < N; i++) {
			unsigned id = (i * 7919u) % 65535u + 1;
			pkt[0] = pass ? 0x3c : 0x34; /* DUP on the resends */
			pkt[7] = (uint8_t)(id >> 8);
			pkt[8] = (uint8_t)id;
			F[0].n = F[1].n = 0;
			feed_bytes(0, pkt, sizeof pkt);
			CU_ASSERT_EQUAL_FATAL(F[0].n, 4); /* PUBREC */
			bool released = pass == 2 && i % 2 == 0;
			/* routed when new (pass 0) or released (pass 2, even i) */
			CU_ASSERT_EQUAL_FATAL(F[1].n != 0, pass == 0 || released);
			if (released) {
				uint8_t rel[4] = {0x62, 0x02, (uint8_t)(id >> 8), (uint8_t)id};
				feed_bytes(0, rel, sizeof rel); /* in again: release it again */
			}
		}
		if (pass == 1) /* release the even ones, last first */
			for (unsigned i = N; i-- > 0;) {
				if (i % 2)
					continue;
				unsigned id = (i * 7919u) % 65535u + 1;
				uint8_t rel[4] = {0x62, 0x02, (uint8_t)(id >> 8), (uint8_t)id};
				F[0].n = 0;
				feed_bytes(0, rel, sizeof rel);
				CU_ASSERT_EQUAL_FATAL(F[0].n, 4); /* PUBCOMP */
			}
	}
	stop();
}

static void t_event_order_and_limits(void)
{
	struct engine_config cfg = config_default();
	cfg.max_packet_before_connect = 512;
	cfg.max_packet_size = 4096;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(engine_conn_max_packet(F[0].c), 512);
	CU_ASSERT_EQUAL(engine_conn_version(F[0].c), 0);
	connect_full(0, 5, "a", 0x02, 60, NULL, NULL);
	expect(0, "20 0e 00 00 0b 21 00 14 22 00 0a 27 00 00 10 00");
	CU_ASSERT_EQUAL(engine_conn_max_packet(F[0].c), 4096);
	CU_ASSERT_EQUAL(EV[0].type, MIDGE_EV_SESSION_CREATED);
	CU_ASSERT_EQUAL(EV[1].type, MIDGE_EV_CONNECT);
	gone(0, NULL);
	CU_ASSERT_EQUAL(EV[2].type, MIDGE_EV_DISCONNECT);
	stop();
}

static void t_packet_limit_before_connect_smaller(void)
{
	struct engine_config cfg = config_default();
	cfg.max_packet_before_connect = 65536;
	cfg.max_packet_size = 49152;
	start(&cfg, NULL);
	open_conn(0);
	/* the pre-CONNECT bound never exceeds max_packet_size */
	CU_ASSERT_EQUAL(engine_conn_max_packet(F[0].c), 49152);
	stop();
	cfg.max_packet_before_connect = 512;
	start(&cfg, NULL);
	open_conn(0);
	CU_ASSERT_EQUAL(engine_conn_max_packet(F[0].c), 512);
	stop();
}


static void t_outgoing_topic_alias(void)
{
	start(NULL, NULL);
	up4(0, "pub");
	open_conn(1);
	connect_full(1, 5, "sub", 0x02, 60, "22 00 02", NULL); /* topic alias maximum 2 */
	expect(1, connack5_default);
	exchange(1, "82 09 00 01 00 00 03 61 2f 23 00", "90 04 00 01 00 00");
	feed(0, "30 07 00 03 61 2f 62 68 69 30 07 00 03 61 2f 62 68 6a");
	/* the first carries topic and alias, the second only the alias [MQTT-3.3.2-11] */
	expect(1, "30 0b 00 03 61 2f 62 03 23 00 01 68 69 30 08 00 00 03 23 00 01 68 6a");
	feed(0, "30 07 00 03 61 2f 63 68 69 30 07 00 03 61 2f 64 68 69");
	/* a/c takes alias 2; a/d finds none left and goes in full */
	expect(1, "30 0b 00 03 61 2f 63 03 23 00 02 68 69 30 08 00 03 61 2f 64 00 68 69");
	/* a packet refused by the transport teaches nothing */
	connect_expect(2, 5, "sub2", 0x02, 60, "22 00 01", NULL, 0, connack5_default);
	exchange(2, "82 09 00 01 00 00 03 61 2f 23 00", "90 04 00 01 00 00");
	F[2].refuse_qos0 = true;
	feed(0, "30 07 00 03 61 2f 62 68 69");
	F[2].refuse_qos0 = false;
	feed(0, "30 07 00 03 61 2f 62 68 6a");
	expect(2, "30 0b 00 03 61 2f 62 03 23 00 01 68 6a");
	stop();
}

static const struct test_case connect_cases[] = {
	{"MQTT-3.1.0-1 first packet must be CONNECT", t_first_packet_not_connect},
	{"MQTT-3.1.0-2 second CONNECT v3.1.1", t_second_connect_v4},
	{"MQTT-3.1.0-2 second CONNECT v5 DISCONNECT 0x82", t_second_connect_v5},
	{"MQTT-3.2.2-1 CONNACK v3.1.1 clean session", t_connack_v4_clean},
	{"CONNACK v3.1", t_connack_v31},
	{"peer address text kept whole (IPv6, short, none)", t_peer_address_kept},
	{"in-flight and PUBREL arrays grow past 8", t_session_arrays_grow},
	{"MQTT-3.1.2-2 unsupported protocol level", t_unsupported_level},
	{"MQTT-3.1.3-8 empty client id without clean session", t_empty_id_persistent_v4},
	{"MQTT-3.1.3-6 empty client id with clean session", t_empty_id_clean_v4},
	{"empty client id not allowed v5 0x85", t_empty_id_not_allowed},
	{"MQTT-3.2.2-16 assigned client identifier v5", t_assigned_id_v5},
	{"client id too long", t_client_id_too_long},
	{"anonymous refused", t_anonymous_refused},
	{"authentication callback", t_auth_connect},
	{"store: persistent state reported, clean sessions never", t_store_calls},
	{"authentication pending, then allowed: held input read after", t_auth_pending_allow},
	{"authentication pending keeps the assigned client id", t_auth_pending_assigned_id},
	{"authentication pending, then refused", t_auth_pending_deny},
	{"authentication pending, client gone meanwhile", t_auth_pending_client_gone},
	{"authentication method v5 0x8C", t_auth_method_v5},
	{"CONNACK v5 properties from configuration", t_connack_v5_props},
	{"MQTT-3.1.2-24 keepalive timeout 1.5x", t_keepalive_timeout},
	{"MQTT-3.1.2-22 keepalive timeout v5 DISCONNECT 0x8D", t_keepalive_v5_disconnect},
	{"MQTT-3.2.2-21 server keep alive", t_server_keep_alive},
	{"MQTT-3.14.4-3 normal DISCONNECT discards the will", t_disconnect_normal},
	{"MQTT-3.1.2-8 will on abnormal close", t_will_on_abnormal_close},
	{"will on v5 DISCONNECT 0x04", t_will_disconnect_0x04},
	{"MQTT-3.12.4-1 PINGRESP and framing errors", t_framing_error},
	{NULL, NULL},
};
static const struct test_case routing_cases[] = {
	{"QoS 0 routing", t_qos0_route},
	{"event mask: unbuilt events, kept counts, sampled topics", t_event_mask},
	{"MQTT-4.3.2-2 QoS 1 flow", t_qos1_flow},
	{"MQTT-4.3.3-4 QoS 2 flow", t_qos2_flow},
	{"MQTT-4.3.3-9 QoS 2 resent PUBLISH not delivered twice", t_qos2_no_duplicate},
	{"MQTT-3.3.5-1 overlapping subscriptions", t_overlapping_subscriptions},
	{"MQTT-4.7.2-1 $ topics and wildcards", t_dollar_topics},
	{"MQTT-3.10.4-4 unsubscribe", t_unsubscribe},
	{"MQTT-3.11.3 UNSUBACK v5 0x11", t_unsubscribe_v5_missing},
	{"MQTT-3.3.1-8 retained messages", t_retained},
	{"MQTT-3.2.2-14 retain not available", t_retain_unavailable},
	{"MQTT-3.2.2-11 maximum QoS", t_max_qos},
	{"shared subscriptions round robin", t_shared_round_robin},
	{"MQTT-3.8.3-3 no local", t_no_local},
	{"MQTT-3.3.1-12 retain as published", t_retain_as_published},
	{"MQTT-3.3.1-10 retain handling", t_retain_handling},
	{"MQTT-3.3.4-3 subscription identifiers", t_subscription_ids},
	{"MQTT-3.3.4-4 more identifiers than one delivery carries", t_subscription_ids_many},
	{"subscription identifiers not available 0xA1", t_sub_ids_unavailable},
	{"ACL publish and subscribe", t_acl},
	{"MQTT-3.3.1-8 ACL asked with QoS and retain", t_acl_qos_retain},
	{"ACL $SYS and $share not published by clients", t_acl_dollar_publish},
	{"ACL answer pending: the PUBLISH held unread, replayed in order", t_acl_held_publish},
	{"MQTT-3.9.3-1 ACL answer pending: the SUBSCRIBE held whole", t_acl_held_subscribe},
	{"ACL answer pending for a delivery: held for its receiver, in order", t_acl_held_receive},
	{"ACL offline session keeps its user name", t_acl_offline_session},
	{"check_retain_source", t_check_retain_source},
	{"mount_point", t_mount_point},
	{"PUBACK 0x10 no matching subscribers", t_puback_no_subscribers_v5},
	{"MQTT-3.3.2-17 properties forwarded unchanged", t_properties_forwarded},
	{"subscription and topic level limits", t_max_subscriptions},
	{"many subscriptions, two sessions, one index", t_many_subscriptions},
	{NULL, NULL},
};
static const struct test_case session_cases[] = {
	{"MQTT-3.2.2-2 persistent session queue v3.1.1", t_persistent_queue_v4},
	{"queue_qos0_messages", t_queue_qos0},
	{"MQTT-3.1.2-6 clean session discards", t_clean_session_discards},
	{"MQTT-4.4.0-1 QoS 2 across reconnect", t_qos2_across_reconnect},
	{"MQTT-4.6.0-1 redelivery in order with DUP", t_redelivery_order},
	{"MQTT-3.3.4-7 resume with a smaller receive maximum", t_resume_smaller_receive_max},
	{"retained bounds broker-wide", t_retained_bounds},
	{"midge_max_sessions", t_max_sessions},
	{"shared member leaves: its messages go to another member", t_shared_member_leaves},
	{"auth data without auth method", t_auth_data_without_method},
	{"MQTT-3.3.4-6 PUBLISH with a subscription id", t_publish_sub_id_refused},
	{"payload format indicator 1, not UTF-8", t_payload_format_invalid},
	{"MQTT-3.1.2-23 session expiry v5", t_session_expiry_v5},
	{"MQTT-3.14.2-2 session expiry on DISCONNECT", t_disconnect_changes_expiry},
	{"MQTT-3.1.4-3 takeover v5 0x8E", t_takeover_v5},
	{"takeover v3.1.1 publishes the will", t_takeover_v4_will},
	{"takeover of a connection that sent DISCONNECT", t_takeover_after_disconnect},
	{"MQTT-3.1.4-3 cluster: a session moves between nodes", t_cluster_session_move},
	{"MQTT-3.1.3-9 cluster: sessions' checkpoints, adopted with their wills", t_cluster_checkpoint},
	{"MQTT-3.1.2-23 cluster: an adopted session's deadlines count from its disconnection",
	 t_cluster_adopt_deadlines},
	{"MQTT-4.6.0-5 cluster: the journal replayed once, in order, for a resumed session", t_cluster_journal},
	{"cluster: a message published during a replayed delivery is a live one", t_cluster_journal_nested},
	{"MQTT-3.1.2-8 cluster: wills kept for the cluster, a dead node's published", t_cluster_wills},
	{"cluster: a shared subscription is interest while its member is connected",
	 t_cluster_share_presence},
	{"MQTT-3.1.3-9 will delay versus resume", t_will_delay_resume},
	{"will delay elapsed", t_will_delay_elapsed},
	{"will at session end before the delay", t_will_at_session_end},
	{"queue overflow", t_queue_overflow},
	{"queue byte bound", t_queue_bytes_bound},
	{"max_queued_messages 0 is the hard bound", t_queue_unlimited_is_bounded},
	{"inflight window", t_inflight_window},
	{"MQTT-3.3.4-7 client receive maximum", t_client_receive_max},
	{"MQTT-3.3.4-9 receive maximum exceeded 0x93", t_receive_max_exceeded},
	{"MQTT-3.3.2-9 topic aliases", t_topic_alias},
	{"MQTT-3.3.2-11 topic aliases to clients", t_outgoing_topic_alias},
	{"MQTT-3.3.2-5 message expiry", t_message_expiry},
	{"MQTT-3.1.2-24 client maximum packet size", t_client_max_packet},
	{"slow consumer QoS 0 drop", t_slow_consumer},
	{"server shutdown 0x8B", t_shutdown},
	{"MQTT-4.12.0-7 AUTH without method", t_auth_packet},
	{"MQTT-4.12.0-2 enhanced authentication exchange and re-authentication", t_enhanced_exchange},
	{"MQTT-4.12.0-3 enhanced authentication refusals", t_enhanced_refusals},
	{"enhanced authentication bounds: rounds, time, data", t_enhanced_bounds},
	{"enhanced authentication, client gone meanwhile", t_enhanced_client_gone},
	{"MQTT-3.1.2-29 request problem information 0", t_request_problem_info},
	{"stats and disconnect event", t_stats_and_events},
	{NULL, NULL},
};
static const struct test_case more_cases[] = {
	{"MQTT-3.2.2-12 will QoS not supported v5", t_will_qos_refused_v5},
	{"MQTT-3.2.2-13 retained will not supported v5", t_will_retain_refused_v5},
	{"empty client id v3.1", t_empty_id_v31},
	{"session expiry capped and announced", t_session_expiry_capped},
	{"PUBREC / PUBREL unknown id 0x92", t_pubrec_unknown_v5},
	{"PUBREC failure ends the exchange", t_pubrec_failure_v5},
	{"upgrade_outgoing_qos", t_upgrade_outgoing_qos},
	{"wildcard and shared subscriptions unavailable", t_features_unavailable},
	{"malformed packet v5 DISCONNECT 0x81", t_malformed_v5},
	{"topic levels on PUBLISH 0x90", t_publish_too_deep_v5},
	{"broker publish retained", t_broker_publish_retained},
	{"MQTT-3.3.2-5 retained message expiry", t_retained_expired},
	{"expired retained messages reaped on time", t_retained_reaped},
	{"default in-flight windows", t_default_windows},
	{"MQTT-2.3.1-2 packet id not reused while in flight", t_packet_id_not_reused},
	{"oldest packet id held: the window stops at twice its size", t_packet_id_oldest_held},
	{"MQTT-4.3.3-9 incoming QoS 2 ids as a set", t_qos2_id_set},
	{"event order and packet size before and after CONNECT", t_event_order_and_limits},
	{"packet size before CONNECT capped by max_packet_size", t_packet_limit_before_connect_smaller},
	{"message_size_limit on PUBLISH payloads 0x97", t_message_size_limit_publish},
	{"message_size_limit on will payloads 0x95", t_message_size_limit_will},
	{NULL, NULL},
};

/* ------------------------------------------------------------ store (issue 14) */

/* Appends a v5 property block (its bytes as hex) to body at *n. */
static void body_props(uint8_t *body, size_t *n, const char *props)
{
	uint8_t pb[128];
	size_t k = unhex(props, pb, sizeof pb);
	body[(*n)++] = (uint8_t)k;
	memcpy(body + *n, pb, k);
	*n += k;
}

/* Appends a 2-byte length and the string. */
static void body_str(uint8_t *body, size_t *n, const char *str)
{
	size_t len = strlen(str);
	body[(*n)++] = (uint8_t)(len >> 8);
	body[(*n)++] = (uint8_t)len;
	memcpy(body + *n, str, len);
	*n += len;
}

/* A packet as hex: first byte, its remaining length (< 128), the body. */
static const char *packet_hex(char *buf, size_t cap, uint8_t first, const uint8_t *body, size_t n)
{
	size_t k = (size_t)snprintf(buf, cap, "%02x %02zx", first, n);
	for (size_t i = 0; i < n; i++)
		k += (size_t)snprintf(buf + k, cap - k, " %02x", body[i]);
	return buf;
}

/* A PUBLISH as hex: first byte, topic, packet id (0: none), v5 property
 * bytes as hex (NULL: a 3.x packet), payload text. */
static const char *pubhex(char *buf, size_t cap, uint8_t first, const char *topic, uint16_t pid,
			  const char *props, const char *payload)
{
	uint8_t body[512];
	size_t n = 0, pl = strlen(payload);
	body_str(body, &n, topic);
	if (pid) {
		body[n++] = (uint8_t)(pid >> 8);
		body[n++] = (uint8_t)pid;
	}
	if (props)
		body_props(body, &n, props);
	memcpy(body + n, payload, pl);
	n += pl;
	return packet_hex(buf, cap, first, body, n);
}

/* Subscribes connection i (packet id pid) to filter with the options
 * byte, v5 when props is not NULL (its property bytes as hex). Returns
 * what came back. */
static const char *sub_raw(int i, uint16_t pid, const char *filter, uint8_t options,
			   const char *props)
{
	char hx[1024];
	uint8_t body[512];
	size_t n = 0;
	body[n++] = (uint8_t)(pid >> 8);
	body[n++] = (uint8_t)pid;
	if (props)
		body_props(body, &n, props);
	body_str(body, &n, filter);
	body[n++] = options;
	feed(i, packet_hex(hx, sizeof hx, 0x82, body, n));
	return out(i);
}

static void store_start(void)
{
	STORE_LOG[0] = '\0';
	REC_TICKET = 0;
	start(NULL, NULL);
	engine_store_attach(E, &store_recorder);
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP and SUBACK wait for the store's ticket;
 * once one waits, the acknowledgements behind it keep their order; traffic
 * between clean sessions never waits. */
static void t_store_hold_acks(void)
{
	char hx[512];
	store_start();
	up4_kept(0, "pp", "20 02 00 00");
	up4_kept(1, "s", "20 02 00 00");
	subscribe4(1, "a/b", 2);
	up4(2, "c");
	subscribe4(2, "c/d", 1);
	REC_TICKET = 5;
	/* stored for s: the PUBACK waits, the delivery does not */
	feed(0, pubhex(hx, sizeof hx, 0x32, "a/b", 5, NULL, "hi"));
	expect(0, "");
	expect(1, pubhex(hx, sizeof hx, 0x32, "a/b", 1, NULL, "hi"));
	/* no subscriber, nothing stored: behind the first all the same [4.6] */
	feed(0, pubhex(hx, sizeof hx, 0x32, "x", 6, NULL, "hi"));
	expect(0, "");
	CU_ASSERT_EQUAL(stats_now().acks_held, 2);
	engine_store_durable(E, 4, NOW);
	expect(0, "");
	engine_store_durable(E, 5, NOW);
	expect(0, "40 02 00 05 40 02 00 06");
	CU_ASSERT_EQUAL(stats_now().acks_held, 0);
	/* clean to clean: nothing reported, nothing waits */
	REC_TICKET = 6;
	exchange(2, pubhex(hx, sizeof hx, 0x32, "c/d", 7, NULL, "x"),
		 "32 08 00 03 63 2f 64 00 01 78 40 02 00 07");
	/* QoS 2 in: PUBREC waits for the id and the copy for s, PUBCOMP for the release */
	feed(0, pubhex(hx, sizeof hx, 0x34, "a/b", 8, NULL, "q2"));
	expect(0, "");
	expect(1, pubhex(hx, sizeof hx, 0x34, "a/b", 2, NULL, "q2"));
	engine_store_durable(E, 6, NOW);
	expect(0, "50 02 00 08");
	REC_TICKET = 7;
	exchange(0, "62 02 00 08", "");
	engine_store_durable(E, 7, NOW);
	expect(0, "70 02 00 08");
	/* QoS 2 out: the PUBREL waits until "PUBREC received" is durable */
	REC_TICKET = 8;
	exchange(1, "40 02 00 01", "");
	exchange(1, "50 02 00 02", "");
	engine_store_durable(E, 8, NOW);
	expect(1, "62 02 00 02");
	/* a persistent session's SUBACK waits for its subscription */
	REC_TICKET = 9;
	feed(1, "82 06 00 03 00 01 7a 01");
	expect(1, "");
	engine_store_durable(E, 9, NOW);
	expect(1, "90 03 00 03 01");
	/* a repeated PUBREL for a released id: the release may not be durable */
	REC_TICKET = 10;
	exchange(0, "62 02 00 08", "");
	engine_store_durable(E, 10, NOW);
	expect(0, "70 02 00 08");
	/* the connection goes with acknowledgements held: they go with it */
	REC_TICKET = 11;
	feed(0, pubhex(hx, sizeof hx, 0x32, "a/b", 9, NULL, "z"));
	CU_ASSERT_EQUAL(stats_now().acks_held, 1);
	gone(0, NULL);
	CU_ASSERT_EQUAL(stats_now().acks_held, 0);
	engine_store_durable(E, 11, NOW);
	stop();
}

/* count QoS 1 PUBLISH "m" on a/b, packet ids 1.., one after the other
 * into buf; returns their size. */
static size_t pubs_qos1(uint8_t *buf, size_t cap, int count)
{
	char hx[256];
	size_t n = 0;
	for (int i = 1; i <= count; i++)
		n += unhex(pubhex(hx, sizeof hx, 0x32, "a/b", (uint16_t)i, NULL, "m"), buf + n,
			   cap - n);
	return n;
}

/* A 3.1.1 publisher that never waits is not read past its receive
 * maximum of held acknowledgements, and is read again once they went. */
static void t_store_hold_input(void)
{
	uint8_t buf[4096];
	store_start();
	up4_kept(0, "pp", "20 02 00 00");
	up4_kept(1, "s", "20 02 00 00");
	subscribe4(1, "a/b", 1);
	REC_TICKET = 3;
	size_t n = pubs_qos1(buf, sizeof buf, 25);
	struct codec_feed fo;
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf, n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, n / 25 * 20); /* the receive maximum (20 in these tests) */
	CU_ASSERT_EQUAL(stats_now().acks_held, 20);
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf + fo.used, n - fo.used, NOW, &fo),
			ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 0);
	out(1);
	CU_ASSERT_EQUAL(F[0].resumes, 0);
	engine_store_durable(E, 3, NOW);
	CU_ASSERT_EQUAL(F[0].resumes, 1);
	CU_ASSERT_EQUAL(strlen(out(0)), 20 * 12 - 1);
	CU_ASSERT_EQUAL(feed_bytes(0, buf + n / 25 * 20, n / 25 * 5), 0);
	CU_ASSERT_EQUAL(strlen(out(0)), 5 * 12 - 1); /* ticket 3 is durable already */
	stop();
}

/* max_acks_held bounds the held acknowledgements of all connections
 * together: a publisher that holds one is not read past the bound (at most
 * one more packet from a connection that held none), a subscriber that
 * holds none is still read, and commits read the paused ones again. */
static void t_store_hold_global(void)
{
	uint8_t buf[4096];
	struct engine_config cfg = config_default();
	cfg.max_acks_held = 5;
	STORE_LOG[0] = '\0';
	REC_TICKET = 0;
	start(&cfg, NULL);
	engine_store_attach(E, &store_recorder);
	up4_kept(0, "p1", "20 02 00 00");
	up4_kept(1, "p2", "20 02 00 00");
	up4_kept(2, "s", "20 02 00 00");
	subscribe4(2, "a/b", 1);
	REC_TICKET = 3;
	size_t n = pubs_qos1(buf, sizeof buf, 10), one = n / 10;
	struct codec_feed fo;
	/* p1: read up to the bound, then paused */
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf, n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 5 * one);
	CU_ASSERT_EQUAL(stats_now().acks_held, 5);
	CU_ASSERT_EQUAL(stats_now().acks_held_pauses, 1);
	expect(0, "");
	/* p2 held nothing: one packet, then paused too */
	CU_ASSERT_EQUAL(engine_conn_input(E, F[1].c, buf, n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, one);
	CU_ASSERT_EQUAL(stats_now().acks_held, 6);
	CU_ASSERT_EQUAL(engine_conn_input(E, F[0].c, buf, n, NOW, &fo), ENGINE_CONN_HELD);
	CU_ASSERT_EQUAL(fo.used, 0);
	/* the subscriber got the six and is still read: its PUBACKs */
	CU_ASSERT_EQUAL(strlen(out(2)), 6 * 30 - 1);
	CU_ASSERT_EQUAL(feed(2, "40 02 00 01 40 02 00 02"), 0);
	CU_ASSERT_EQUAL(F[0].resumes + F[1].resumes, 0);
	/* the commit: the PUBACKs go, both publishers are read again */
	engine_store_durable(E, 3, NOW);
	CU_ASSERT_EQUAL(stats_now().acks_held, 0);
	CU_ASSERT_EQUAL(F[0].resumes, 1);
	CU_ASSERT_EQUAL(F[1].resumes, 1);
	CU_ASSERT_EQUAL(strlen(out(0)), 5 * 12 - 1);
	CU_ASSERT_EQUAL(strlen(out(1)), 1 * 12 - 1);
	stop();
}

/* The CONNACK of a CONNECT that creates a stored session, or discards one,
 * waits for the commit that holds it (session present must not lie after
 * a crash), and nothing is read or sent before it [MQTT-3.2.0-1]; a resume
 * and a clean session that replaced nothing stored are answered at once. */
static void t_store_hold_connack(void)
{
	store_start();
	REC_TICKET = 3;
	/* a new persistent session: held, input not read meanwhile */
	open_conn(0);
	CU_ASSERT_EQUAL(connect_full(0, 4, "s", 0x00, 60, NULL, NULL), ENGINE_CONN_HELD);
	expect(0, "");
	CU_ASSERT_EQUAL(stats_now().acks_held, 1);
	CU_ASSERT_EQUAL(feed(0, "c0 00"), ENGINE_CONN_HELD); /* PINGREQ: left to the caller */
	expect(0, "");
	engine_store_durable(E, 2, NOW);
	expect(0, "");
	engine_store_durable(E, 3, NOW);
	expect(0, "20 02 00 00");
	CU_ASSERT_EQUAL(F[0].resumes, 1);
	exchange(0, "c0 00", "d0 00");
	REC_TICKET = 4;
	exchange(0, "82 08 00 01 00 03 61 2f 62 01", "");
	engine_store_durable(E, 4, NOW);
	expect(0, "90 03 00 01 01");
	gone(0, NULL);
	/* a resume: at once, with what was queued */
	REC_TICKET = 5;
	up4(1, "pub");
	CU_ASSERT_EQUAL(engine_publish(E, (const uint8_t *)"a/b", 3, "q", 1, 1, false, NOW), 0);
	up4_kept(2, "s", "20 02 01 00 32 08 00 03 61 2f 62 00 01 71");
	gone(2, NULL);
	/* clean session 1 over the stored session: its end is what is held */
	REC_TICKET = 6;
	open_conn(3);
	CU_ASSERT_EQUAL(connect_full(3, 4, "s", 0x02, 60, NULL, NULL), ENGINE_CONN_HELD);
	expect(3, "");
	CU_ASSERT(strstr(STORE_LOG, "removed s; ") != NULL);
	engine_store_durable(E, 6, NOW);
	expect(3, "20 02 00 00");
	/* a clean session that replaced nothing stored: at once */
	up4(4, "c");
	/* taken over while its CONNACK waits: nothing is sent before it,
	 * and the resume waits for the same commit (the session it resumes
	 * is not durable yet) */
	REC_TICKET = 7;
	open_conn(5);
	CU_ASSERT_EQUAL(connect_full(5, 5, "t", 0x00, 60, "11 00 00 00 3c", NULL), ENGINE_CONN_HELD);
	REC_TICKET = 8;
	open_conn(6);
	CU_ASSERT_EQUAL(connect_full(6, 5, "t", 0x00, 60, "11 00 00 00 3c", NULL), ENGINE_CONN_HELD);
	expect(6, "");
	CU_ASSERT_EQUAL(F[5].close_calls, 1);
	expect(5, "");
	engine_store_durable(E, 7, NOW);
	expect(5, "");
	expect(6, "20 09 01 00 06 21 00 14 22 00 0a");
	gone(5, NULL);
	stop();
}

/* While the store cannot write: QoS 1/2 refused (v5 0x97, 3.x closed),
 * new persistent sessions refused, QoS 0 and resumed sessions go on. */
static void t_store_failing(void)
{
	char hx[256];
	store_start();
	up4(0, "pub");
	up5(1, "pub5", 0x02, NULL);
	up4(2, "sub");
	subscribe4(2, "a/b", 1);
	up4_kept(3, "keep", "20 02 00 00");
	gone(3, NULL);
	engine_store_failing(E, true, "disk full");
	exchange(1, pubhex(hx, sizeof hx, 0x32, "a/b", 5, "", "hi"),
		 "40 10 00 05 97 0c 1f 00 09 64 69 73 6b 20 66 75 6c 6c");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_STORE_FAILING);
	expect(2, "");
	/* QoS 0 flows */
	feed(1, pubhex(hx, sizeof hx, 0x30, "a/b", 0, "", "q0"));
	expect(2, pubhex(hx, sizeof hx, 0x30, "a/b", 0, NULL, "q0"));
	/* 3.1.1 cannot be told: not acknowledged, closed */
	CU_ASSERT_EQUAL(feed(0, pubhex(hx, sizeof hx, 0x32, "a/b", 5, NULL, "hi")), -1);
	expect(0, "");
	CU_ASSERT_EQUAL(F[0].close_calls, 1);
	expect(2, "");
	/* a new persistent session: refused; a clean one and a resumed one: fine */
	connect_expect(4, 5, "new5", 0x02, 60, "11 00 00 00 3c", NULL, -1,
		       "20 0f 00 88 0c 1f 00 09 64 69 73 6b 20 66 75 6c 6c");
	connect_expect(5, 4, "new4", 0x00, 60, NULL, NULL, -1, "20 02 00 03");
	up4(6, "clean");
	up4_kept(7, "keep", "20 02 01 00");
	engine_store_failing(E, false, NULL);
	exchange(1, pubhex(hx, sizeof hx, 0x32, "a/b", 6, "", "ok"), "40 02 00 06");
	expect(2, pubhex(hx, sizeof hx, 0x32, "a/b", 1, NULL, "ok"));
	connect_expect(4, 4, "new4", 0x00, 60, NULL, NULL, 0, "20 02 00 00");
	stop();
}

/* A store that counts references per message id: each call that holds a
 * message is matched by one that lets it go. */
#define REF_IDS 256
static int REFS[REF_IDS];
static bool REF_BAD;

static void ref_add(uint64_t id, int d)
{
	if (id >= REF_IDS) {
		REF_BAD = true;
		return;
	}
	REFS[id] += d;
	if (REFS[id] < 0)
		REF_BAD = true;
}

static void ref_queued(void *ctx, void *sess, const struct engine_store_msg *m,
		       const struct engine_store_delivery *d)
{
	ref_add(m->id, 1);
}

static void ref_unqueued(void *ctx, void *sess, uint64_t id)
{
	ref_add(id, -1);
}

static void ref_flight_sent(void *ctx, void *sess, uint16_t pid, const struct engine_store_msg *m,
			    const struct engine_store_delivery *d)
{
	ref_add(m->id, 1);
}

static void ref_flight_released(void *ctx, void *sess, uint16_t pid, uint64_t id)
{
	ref_add(id, -1);
}

static void ref_flight_done(void *ctx, void *sess, uint16_t pid, uint64_t id)
{
	if (id)
		ref_add(id, -1);
}

static void ref_released(void *ctx, uint64_t id)
{
	ref_add(id, -1);
}

static void ref_retained_set(void *ctx, const struct midge_str *topic,
			     const struct engine_store_msg *m, uint64_t old_id)
{
	if (m)
		ref_add(m->id, 1);
	if (old_id)
		ref_add(old_id, -1);
}

static void ref_history_added(void *ctx, const struct midge_str *filter, uint64_t seq, uint64_t at,
			      const struct engine_store_msg *m)
{
	ref_add(m->id, 1);
}

static void ref_history_removed(void *ctx, const struct midge_str *filter, uint64_t seq,
				uint64_t id)
{
	ref_add(id, -1);
}

static int ref_total(void)
{
	int n = 0;
	for (int i = 0; i < REF_IDS; i++)
		n += REFS[i];
	return n;
}

static void t_store_references(void)
{
	char hx[256];
	struct engine_store st = store_recorder;
	st.message_queued = ref_queued;
	st.message_unqueued = ref_unqueued;
	st.flight_sent = ref_flight_sent;
	st.flight_released = ref_flight_released;
	st.flight_done = ref_flight_done;
	st.message_released = ref_released;
	st.retained_set = ref_retained_set;
	st.history_added = ref_history_added;
	st.history_removed = ref_history_removed;
	memset(REFS, 0, sizeof REFS);
	REF_BAD = false;
	STORE_LOG[0] = '\0';
	CFG = config_default();
	CFG.max_inflight = 2;
	start(&CFG, NULL);
	CU_ASSERT_EQUAL(engine_history_add(E, "h/#", 2, 0), 0);
	engine_store_attach(E, &st);
	up4(0, "pub");
	up4_kept(1, "s", "20 02 00 00");
	subscribe4(1, "#", 2);
	/* two in flight (window 2), three queued, one shared with retained and a log */
	feed(0, pubhex(hx, sizeof hx, 0x33, "h/a", 1, NULL, "1"));
	for (int i = 2; i <= 5; i++)
		feed(0, pubhex(hx, sizeof hx, 0x34, "a/b", (uint16_t)i, NULL, "x"));
	out(0);
	out(1);
	CU_ASSERT_EQUAL(ref_total(), 2 + 3 + 1 + 1);
	exchange(1, "40 02 00 01", pubhex(hx, sizeof hx, 0x34, "a/b", 3, NULL, "x"));
	exchange(1, "50 02 00 02", "62 02 00 02");
	/* #3 in flight, #2 awaiting PUBCOMP (its body released), #4 #5 queued */
	CU_ASSERT_EQUAL(ref_total(), 1 + 2 + 1 + 1);
	/* the log's bound lets messages go; the retained one is replaced */
	feed(0, pubhex(hx, sizeof hx, 0x31, "h/a", 0, NULL, "2"));
	feed(0, pubhex(hx, sizeof hx, 0x30, "h/b", 0, NULL, "3"));
	out(1);
	CU_ASSERT_EQUAL(REFS[1], 0);
	/* the session ends with two in flight and two queued: all released */
	CU_ASSERT_EQUAL(feed(1, "e0 00"), -1);
	gone(1, NULL);
	up4_kept(2, "s", "20 02 01 00 62 02 00 02 3c 08 00 03 61 2f 62 00 03 78");
	feed(2, "e0 00");
	gone(2, NULL);
	open_conn(3);
	connect_full(3, 4, "s", 0x02, 60, NULL, NULL); /* clean: the old session goes */
	out(3);
	/* left: the retained "2" (also in the log) and the log's other entry */
	CU_ASSERT_EQUAL(ref_total(), 3);
	feed(0, "31 05 00 03 68 2f 61");
	CU_ASSERT_EQUAL(ref_total(), 2);
	CU_ASSERT_FALSE(REF_BAD);
	stop();
}

/* A session, its subscriptions, window, queue, QoS 2 ids, will and the
 * retained messages rebuilt from a store, then resumed by its client. */
static void t_store_restore(void)
{
	char hx[256];
	const char *why = NULL;
	STORE_LOG[0] = '\0';
	REC_TICKET = 0;
	start(NULL, NULL);
	CU_ASSERT_EQUAL(engine_restore_begin(E, NOW), 0);
	struct engine_restore_msg m = {0};
	m.id = 10;
	m.topic = (const uint8_t *)"a/b";
	m.topic_len = 3;
	m.payload = (const uint8_t *)"hi";
	m.payload_len = 2;
	m.qos = 1;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 11;
	m.topic = (const uint8_t *)"a/c";
	m.payload = (const uint8_t *)"yo";
	m.qos = 2;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 12;
	m.topic = (const uint8_t *)"r";
	m.topic_len = 1;
	m.payload = (const uint8_t *)"rr";
	m.qos = 0;
	m.retain = true;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), -1); /* the same id twice */
	struct engine_store_session ss = {{"s", 1}, UINT32_MAX, 4, NOW - 1000, {NULL, 0}, 0};
	CU_ASSERT_EQUAL(engine_restore_session(E, &ss, REC_HANDLE[0] = strdup("s"), &why), 0);
	struct midge_str cid = {"s", 1}, filter = {"a/#", 3};
	CU_ASSERT_EQUAL(engine_restore_subscription(E, &cid, &filter, 2, 0, &why), 0);
	struct engine_store_delivery d1 = {1, false, false, 0, {0}}, d2 = {2, false, false, 0, {0}};
	CU_ASSERT_EQUAL(engine_restore_flight(E, &cid, 7, ENGINE_STORE_AWAIT_PUBACK, 10, &d1, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_flight(E, &cid, 9, ENGINE_STORE_AWAIT_PUBCOMP, 0, &d2, &why), 0);
	/* out of order: a damaged store */
	CU_ASSERT_EQUAL(engine_restore_flight(E, &cid, 8, ENGINE_STORE_AWAIT_PUBACK, 10, &d1, &why), -1);
	CU_ASSERT_EQUAL(engine_restore_queued(E, &cid, 11, &d2, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_queued(E, &cid, 99, &d2, &why), -1);
	CU_ASSERT_EQUAL(engine_restore_qos2(E, &cid, 33, &why), 0);
	struct midge_str rt = {"r", 1};
	CU_ASSERT_EQUAL(engine_restore_retained(E, &cid, 12, &why), -1); /* another topic */
	CU_ASSERT_EQUAL(engine_restore_retained(E, &rt, 12, &why), 0);
	/* w: disconnected 50 s ago, will delay 30 s (due), expiry 100 s (not yet) */
	struct engine_store_session sw = {{"w", 1}, 100, 5, NOW - 50000, {NULL, 0}, 0};
	CU_ASSERT_EQUAL(engine_restore_session(E, &sw, REC_HANDLE[1] = strdup("w"), &why), 0);
	struct midge_str wid = {"w", 1};
	struct engine_restore_msg wm = {0};
	wm.topic = (const uint8_t *)"will";
	wm.topic_len = 4;
	wm.payload = (const uint8_t *)"bye";
	wm.payload_len = 3;
	CU_ASSERT_EQUAL(engine_restore_will(E, &wid, &wm, 30, &why), 0);
	/* old: expired while the broker was down */
	struct engine_store_session so = {{"old", 3}, 10, 4, NOW - 20000, {NULL, 0}, 0};
	CU_ASSERT_EQUAL(engine_restore_session(E, &so, REC_HANDLE[2] = strdup("old"), &why), 0);
	struct midge_str nobody = {"x", 1};
	CU_ASSERT_EQUAL(engine_restore_qos2(E, &nobody, 1, &why), -1);
	engine_store_attach(E, &store_recorder);
	CU_ASSERT_EQUAL(engine_restore_end(E, NOW), 0);
	store_expect("will w - 0; removed old; ");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_WILL, "will"), 1);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	/* resumed: DUP resend in send order, the PUBREL, then the queue with the next id */
	char want[512];
	snprintf(want, sizeof want, "20 02 01 00 3a 09 00 03 61 2f 62 00 07 68 69 62 02 00 09 %s",
		 pubhex(hx, sizeof hx, 0x34, "a/c", 10, NULL, "yo"));
	up4_kept(0, "s", want);
	/* the incoming QoS 2 id survived: a resend is acknowledged, not routed */
	exchange(0, pubhex(hx, sizeof hx, 0x3c, "a/x", 33, NULL, "z"), "50 02 00 21");
	exchange(0, "62 02 00 21", "70 02 00 21");
	/* the retained message */
	exchange(0, "82 06 00 05 00 01 72 00", "90 03 00 05 00 31 05 00 01 72 72 72");
	/* w expires 100 s after it ended */
	engine_tick(E, NOW + 49999);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 1);
	engine_tick(E, NOW + 50000);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_SESSION_EXPIRED, NULL), 2);
	stop();
}

/* The fake ACL of the restore test: "mine" is read only by user "u" on
 * listener 2; "ret" may no longer be published by user "p" (a reload, or
 * an acl_file changed over a restart). */
static int acl_owner(void *ctx, const struct midge_client *client, const uint8_t *topic,
		     size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	(void)ctx;
	bool u2 = client->username.p && client->username.len == 1 && client->username.p[0] == 'u' &&
		  client->listener == 2;
	bool p = client->username.p && client->username.len == 1 && client->username.p[0] == 'p';
	if (access == ENGINE_ACCESS_RECEIVE && len == 4 && memcmp(topic, "mine", 4) == 0 && !u2)
		return MQTT_RC_NOT_AUTHORIZED;
	if (access == ENGINE_ACCESS_PUBLISH && len == 3 && memcmp(topic, "ret", 3) == 0 && p)
		return MQTT_RC_NOT_AUTHORIZED;
	return 0;
}

/* Who things belong to survives a restart: a restored session is checked
 * as its user on its listener (not as an anonymous client) while it is
 * offline, and a restored retained message is checked against its
 * publisher by check_retain_source (the broker's own pass). The store
 * hears the owner with every save. */
static void t_store_restore_owner(void)
{
	char hx[256];
	const char *why = NULL;
	struct engine_auth auth = {.acl = acl_owner};
	struct engine_config cfg = config_default();
	cfg.check_retain_source = true;
	STORE_LOG[0] = '\0';
	REC_TICKET = 0;
	start(&cfg, &auth);
	CU_ASSERT_EQUAL(engine_restore_begin(E, NOW), 0);
	struct engine_restore_msg m = {0};
	m.id = 5; /* queued for s */
	m.topic = (const uint8_t *)"mine";
	m.topic_len = 4;
	m.payload = (const uint8_t *)"q";
	m.payload_len = 1;
	m.qos = 1;
	m.source.client = true;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 6; /* retained by user p */
	m.topic = (const uint8_t *)"ret";
	m.topic_len = 3;
	m.retain = true;
	m.source.user.p = "p";
	m.source.user.len = 1;
	m.source.listener = 1;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 8; /* retained by the broker: never checked */
	m.source.client = false;
	m.source.user.p = NULL;
	m.source.user.len = 0;
	m.topic = (const uint8_t *)"ret2";
	m.topic_len = 4;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 9; /* a user name that is not UTF-8: a damaged store */
	m.source.client = true;
	m.source.user.p = "\xff";
	m.source.user.len = 1;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), -1);
	struct engine_store_session ss = {{"s", 1}, UINT32_MAX, 4, NOW - 1000, {"u", 1}, 2};
	CU_ASSERT_EQUAL(engine_restore_session(E, &ss, REC_HANDLE[0] = strdup("s"), &why), 0);
	struct midge_str cid = {"s", 1}, filter = {"mine", 4}, r1 = {"ret", 3}, r2 = {"ret2", 4};
	CU_ASSERT_EQUAL(engine_restore_subscription(E, &cid, &filter, 1, 0, &why), 0);
	struct engine_store_delivery d1 = {1, false, false, 0, {0}};
	CU_ASSERT_EQUAL(engine_restore_queued(E, &cid, 5, &d1, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_retained(E, &r1, 6, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_retained(E, &r2, 8, &why), 0);
	engine_store_attach(E, &store_recorder);
	CU_ASSERT_EQUAL(engine_restore_end(E, NOW), 0);
	/* queued while s is offline: checked as u on listener 2, kept */
	up4(0, "pub");
	exchange(0, pubhex(hx, sizeof hx, 0x32, "mine", 3, NULL, "r"), "40 02 00 03");
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_ACL_DENIED, NULL), 0);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DROP, NULL), 0);
	/* p's retained message is withheld, the broker's goes out */
	up4(1, "sub");
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 1, "ret", 0, NULL), "90 03 00 01 00");
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NOT_AUTHORIZED);
	char want[256];
	snprintf(want, sizeof want, "90 03 00 02 00 %s",
		 pubhex(hx, sizeof hx, 0x31, "ret2", 0, NULL, "q"));
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 2, "ret2", 0, NULL), want);
	/* s comes back as u on listener 2: both messages, in order */
	open_conn(2);
	CU_ASSERT_EQUAL(engine_conn_set_listener(F[2].c, 2, 0, false, NULL), 0);
	CU_ASSERT_EQUAL(connect_full(2, 4, "s", 0x80, 60, NULL, "00 01 75"), 0);
	expect(2, "20 02 01 00 32 09 00 04 6d 69 6e 65 00 01 71 32 09 00 04 6d 69 6e 65 00 02 72");
	/* its owner went to the store with the session */
	CU_ASSERT(strstr(STORE_LOG, "saved s 4294967295 v4 by u@2; ") != NULL);
	stop();
}

/* $replay/SPEC/FILTER: the log (two overlapping logs, each message once),
 * then live with no gap and no duplicate; last:N, since:T; 3.1.1 and 5. */
static void t_replay(void)
{
	char hx[256], want[2048];
	STORE_LOG[0] = '\0';
	start(NULL, NULL);
	CU_ASSERT_EQUAL(engine_history_add(E, "t/#", 3, 0), 0);
	CU_ASSERT_EQUAL(engine_history_add(E, "t/x", 10, 0), 0);
	CU_ASSERT_EQUAL(engine_history_add(E, "t/x", 10, 0), -1);
	CU_ASSERT_EQUAL(engine_history_add(E, "$share/g/t", 10, 0), -1);
	engine_store_attach(E, &store_recorder);
	up4(0, "pub");
	const char *msgs[] = {"1", "2", "3", "4", "5"};
	for (int i = 0; i < 5; i++) {
		NOW += 1000;
		feed(0, pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, msgs[i]));
	}
	feed(0, pubhex(hx, sizeof hx, 0x30, "t/y", 0, NULL, "a"));
	CU_ASSERT_EQUAL(stats_now().history_count, 8);
	CU_ASSERT_EQUAL(stats_now().subscriptions_count, 0);
	CU_ASSERT(strstr(STORE_LOG, "history t/# 1 t/x; history t/x 2 t/x; ") != NULL);
	CU_ASSERT(strstr(STORE_LOG, "unhistory t/# 1; ") != NULL);
	up4(1, "sub");
	size_t k = (size_t)snprintf(want, sizeof want, "90 03 00 01 00");
	for (int i = 0; i < 5; i++)
		k += (size_t)snprintf(want + k, sizeof want - k, " %s",
				      pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, msgs[i]));
	snprintf(want + k, sizeof want - k, " %s", pubhex(hx, sizeof hx, 0x30, "t/y", 0, NULL, "a"));
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 1, "$replay/all/t/#", 0, NULL), want);
	/* live from here: one copy */
	feed(0, pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, "6"));
	expect(1, pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, "6"));
	/* the subscription is to t/#, unsubscribed as the replay filter */
	exchange(1, "a2 13 00 02 00 0f 24 72 65 70 6c 61 79 2f 61 6c 6c 2f 74 2f 23", "b0 02 00 02");
	feed(0, pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, "7"));
	expect(1, "");
	/* last:2 of t/x */
	snprintf(want, sizeof want, "90 03 00 03 00 %s %s",
		 pubhex(hx, sizeof hx, 0x30, "t/x", 0, NULL, "6"),
		 pubhex(hx + 128, sizeof hx - 128, 0x30, "t/x", 0, NULL, "7"));
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 3, "$replay/last:2/t/x", 0, NULL), want);
	/* since: the messages from the 4th second on; v5 with a subscription id */
	up5(2, "sub5", 0x02, NULL);
	char spec[64];
	snprintf(spec, sizeof spec, "$replay/since:%llu/t/x",
		 (unsigned long long)((NOW - 1000) / 1000));
	k = (size_t)snprintf(want, sizeof want, "90 04 00 01 00 00");
	const char *since[] = {"4", "5", "6", "7"};
	for (int i = 0; i < 4; i++)
		k += (size_t)snprintf(want + k, sizeof want - k, " %s",
				      pubhex(hx, sizeof hx, 0x30, "t/x", 0, "0b 05", since[i]));
	CU_ASSERT_STRING_EQUAL(sub_raw(2, 1, spec, 0, "0b 05"), want);
	/* malformed specifications: 0x8F, 0x80 in 3.1.1 */
	CU_ASSERT_STRING_EQUAL(sub_raw(2, 2, "$replay/last:0/t/x", 0, ""), "90 04 00 02 00 8f");
	CU_ASSERT_STRING_EQUAL(sub_raw(2, 3, "$replay/some/t/x", 0, ""), "90 04 00 03 00 8f");
	CU_ASSERT_STRING_EQUAL(sub_raw(2, 4, "$replay/all", 0, ""), "90 04 00 04 00 8f");
	CU_ASSERT_STRING_EQUAL(sub_raw(2, 5, "$share/g/$replay/all/t", 0, ""), "90 04 00 05 00 8f");
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 4, "$replay/since:x/t", 0, NULL), "90 03 00 04 80");
	stop();
}

/* Replayed messages pass the receiver's read ACL, as live ones do, and
 * honour no-local and QoS. */
static int acl_read_secret(void *ctx, const struct midge_client *client, const uint8_t *topic,
			   size_t len, enum engine_access access, uint8_t qos, bool retain)
{
	if (access == ENGINE_ACCESS_RECEIVE && len == 6 && memcmp(topic, "secret", 6) == 0)
		return MQTT_RC_NOT_AUTHORIZED;
	return 0;
}

static void t_replay_acl(void)
{
	char hx[256], want[512];
	struct engine_auth auth = {.acl = acl_read_secret};
	start(NULL, &auth);
	CU_ASSERT_EQUAL(engine_history_add(E, "#", 10, 0), 0);
	up5(0, "pub", 0x02, NULL);
	feed(0, pubhex(hx, sizeof hx, 0x30, "secret", 0, "", "s"));
	feed(0, pubhex(hx, sizeof hx, 0x32, "open", 1, "", "o"));
	out(0);
	up4(1, "sub");
	snprintf(want, sizeof want, "90 03 00 01 01 %s",
		 pubhex(hx, sizeof hx, 0x32, "open", 1, NULL, "o"));
	CU_ASSERT_STRING_EQUAL(sub_raw(1, 1, "$replay/all/#", 1, NULL), want);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_NOT_AUTHORIZED);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_DROP)->topic, "secret");
	/* no-local: the publisher's own messages are not replayed to it */
	CU_ASSERT_STRING_EQUAL(sub_raw(0, 1, "$replay/all/open", 0x04, ""), "90 04 00 01 00 00");
	stop();
}

static const struct test_case store_cases[] = {
	{"store: acknowledgements wait for durability, in order", t_store_hold_acks},
	{"MQTT-3.2.0-1 store: a CONNACK waits for its session to be durable", t_store_hold_connack},
	{"store: a publisher not read past its held acknowledgements", t_store_hold_input},
	{"store: held acknowledgements bounded for all connections", t_store_hold_global},
	{"store: failing store refuses what it cannot keep", t_store_failing},
	{"store: message references balance", t_store_references},
	{"store: restore sessions, windows, queues, wills, retained", t_store_restore},
	{"store: a restored session and retained message keep their owners", t_store_restore_owner},
	{"replay: $replay/ log then live, last, since, malformed", t_replay},
	{"replay: read ACL and no-local per replayed message", t_replay_acl},
	{NULL, NULL},
};


/* ------------------------------------------------------------ bridges (issue 19) */

static int READY;

static void b_ready(void *ctx)
{
	(void)ctx;
	READY++;
}

/* The next packet for the remote as "PUBLISH topic q1 pid dup payload" or
 * "PUBREL pid", or "-" when there is none now. */
static const char *b_next(struct engine_bridge *b)
{
	static char buf[256];
	struct engine_bridge_out o;
	if (!engine_bridge_next(b, NOW, &o))
		return "-";
	if (o.type == CODEC_PUBREL) {
		snprintf(buf, sizeof buf, "PUBREL %u", o.packet_id);
		return buf;
	}
	snprintf(buf, sizeof buf, "%.*s q%u %u%s%s %.*s", (int)o.topic_len, (const char *)o.topic, o.qos,
		 o.packet_id, o.dup ? " dup" : "", o.retain ? " r" : "", (int)o.payload_len,
		 (const char *)o.payload);
	return buf;
}

static void b_pub(uint8_t first, const char *topic, uint16_t pid, const char *payload)
{
	char hx[512];
	feed(0, pubhex(hx, sizeof hx, first, topic, pid, NULL, payload));
	out(0);
}

/* Queued while down, in order; the window bounds what is in flight; an
 * ack frees a slot; QoS is the lower of the message's and the filter's. */
static void t_bridge_queue_window(void)
{
	start(NULL, NULL);
	READY = 0;
	struct engine_bridge *b = engine_bridge_add(E, "cloud", "edge", b_ready, NULL);
	CU_ASSERT_FATAL(b != NULL);
	CU_ASSERT_PTR_NULL(engine_bridge_add(E, "cloud", "x", b_ready, NULL)); /* name taken */
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "a/#", 1), 0);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "a/b", 2), 0); /* overlapping: one copy, QoS 2 */
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "a/+/#/x", 1), -1);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "$share/g/a", 1), -1);
	up4(0, "pub");
	b_pub(0x32, "a/x", 1, "1");
	b_pub(0x34, "a/b", 2, "2");
	b_pub(0x30, "a/y", 0, "3");
	b_pub(0x34, "a/z", 3, "4");
	b_pub(0x32, "other", 4, "no");
	CU_ASSERT_EQUAL(READY, 4);
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 4);
	CU_ASSERT_STRING_EQUAL(b_next(b), "-"); /* down: nothing goes */
	engine_bridge_up(b, 2);
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/x q1 1 1");
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/b q2 2 2");
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/y q0 0 3"); /* QoS 0 needs no slot */
	CU_ASSERT_STRING_EQUAL(b_next(b), "-"); /* the window (2) is full */
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBACK, 1, 0), 0);
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/z q1 1 4"); /* QoS 2 sent, a/# grants 1 */
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 2);
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBACK, 1, 0), 0);
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBACK, 1, 0), 0); /* twice: ignored */
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBACK, 2, 0), 0); /* QoS 2: not a PUBACK */
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 1);
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBREC, 2, 0), 1);
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBCOMP, 2, 0), 0);
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 0);
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBREC, 77, 0), 1); /* [MQTT-4.3.3-4] unknown: PUBREL */
	CU_ASSERT_EQUAL(stats_now().inflight_count, 0);
	stop();
}

/* [MQTT-4.4.0-1] A reconnect sends the window again first, in the order
 * it first went (PUBLISH with DUP, PUBREL where PUBREC came), then the
 * queue; nothing is given up until acknowledged. */
static void t_bridge_resend(void)
{
	start(NULL, NULL);
	struct engine_bridge *b = engine_bridge_add(E, "c", "edge", b_ready, NULL);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "#", 2), 0);
	up4(0, "pub");
	engine_bridge_up(b, 10);
	b_pub(0x32, "t/1", 1, "a");
	b_pub(0x34, "t/2", 2, "b");
	b_pub(0x32, "t/3", 3, "c");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/1 q1 1 a");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/2 q2 2 b");
	CU_ASSERT_EQUAL(engine_bridge_ack(b, CODEC_PUBREC, 2, 0), 1);
	engine_bridge_down(b);
	b_pub(0x32, "t/4", 4, "d");
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 4);
	engine_bridge_up(b, 10);
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/1 q1 1 dup a");
	CU_ASSERT_STRING_EQUAL(b_next(b), "PUBREL 2");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/3 q1 3 c");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/4 q1 4 d");
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	/* down again before anything was acknowledged: all of it again */
	engine_bridge_down(b);
	engine_bridge_up(b, 10);
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/1 q1 1 dup a");
	CU_ASSERT_STRING_EQUAL(b_next(b), "PUBREL 2");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/3 q1 3 dup c");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/4 q1 4 dup d");
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	engine_bridge_ack(b, CODEC_PUBACK, 3, 0);
	engine_bridge_ack(b, CODEC_PUBACK, 1, 0);
	engine_bridge_ack(b, CODEC_PUBCOMP, 2, 0);
	engine_bridge_ack(b, CODEC_PUBACK, 4, 0);
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 0);
	/* freed ids are used again (the last freed first) */
	b_pub(0x32, "t/5", 5, "e");
	CU_ASSERT_STRING_EQUAL(b_next(b), "t/5 q1 4 e");
	stop();
}

/* What the remote sent reaches local subscribers but never goes back to
 * the remote through the bridge's own filters (no loops); retained as
 * published. */
static void t_bridge_no_local(void)
{
	char hx[256];
	start(NULL, NULL);
	READY = 0;
	struct engine_bridge *b = engine_bridge_add(E, "c", "edge", b_ready, NULL);
	struct engine_bridge *b2 = engine_bridge_add(E, "d", "edge2", b_ready, NULL);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "#", 1), 0);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b2, "#", 1), 0);
	up4(1, "sub");
	subscribe4(1, "in/#", 1);
	CU_ASSERT_EQUAL(engine_bridge_publish(b, (const uint8_t *)"in/x", 4, (const uint8_t *)"hi", 2,
					      NULL, 0, 1, true, NOW),
			0);
	CU_ASSERT_STRING_EQUAL(out(1), pubhex(hx, sizeof hx, 0x32, "in/x", 1, NULL, "hi"));
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 0); /* not back to its remote */
	CU_ASSERT_EQUAL(engine_bridge_pending(b2), 1); /* another bridge gets it */
	CU_ASSERT_EQUAL(READY, 1);
	engine_bridge_up(b2, 5);
	CU_ASSERT_STRING_EQUAL(b_next(b2), "in/x q1 1 r hi");
	/* retained locally */
	up4(2, "late");
	exchange(2, "82 09 00 05 00 04 69 6e 2f 78 00", "90 03 00 05 00 31 08 00 04 69 6e 2f 78 68 69");
	/* the broker's checks apply */
	CU_ASSERT_EQUAL(engine_bridge_publish(b, (const uint8_t *)"in/+", 4, (const uint8_t *)"", 0, NULL,
					      0, 0, false, NOW),
			MQTT_RC_TOPIC_NAME_INVALID);
	stop();
}

/* A CONNECT with Mosquitto's bridge bit (0x84): that client is treated as
 * Mosquitto treats a bridge: no echo of its own messages, retain as
 * published; a plain 3.1.1 client keeps [MQTT-3.3.1-9]. */
static void t_connect_bridge_bit(void)
{
	start(NULL, NULL);
	connect_expect(0, 0x84, "mb", 0x02, 60, NULL, NULL, 0, "20 02 00 00");
	subscribe4(0, "t/#", 0);
	up4(1, "plain");
	subscribe4(1, "t/#", 0);
	feed(0, "31 07 00 03 74 2f 61 68 69"); /* retained t/a from the bridge */
	CU_ASSERT_STRING_EQUAL(out(0), "");   /* not echoed */
	CU_ASSERT_STRING_EQUAL(out(1), "30 07 00 03 74 2f 61 68 69");
	feed(1, "31 07 00 03 74 2f 62 68 69"); /* retained t/b from the plain client */
	CU_ASSERT_STRING_EQUAL(out(0), "31 07 00 03 74 2f 62 68 69"); /* retain as published */
	CU_ASSERT_STRING_EQUAL(out(1), "30 07 00 03 74 2f 62 68 69");
	stop();
}

static char ANSWERS[256];

static void b_answer(void *ctx, uint8_t type, uint16_t pid, uint8_t rc)
{
	(void)ctx;
	size_t n = strlen(ANSWERS);
	snprintf(ANSWERS + n, sizeof ANSWERS - n, "%s%s %u %u", n ? "," : "",
		 type == CODEC_PUBACK ? "PUBACK" : type == CODEC_PUBREC ? "PUBREC" : "PUBCOMP", pid, rc);
}

/* [MQTT-4.6.0-2] A message from the remote is acknowledged to it only once
 * the store committed it (nothing acknowledged is lost), and answers keep
 * their order behind one that waits; a reconnect drops what answered the
 * old connection. */
static void t_bridge_answer_held(void)
{
	store_start();
	ANSWERS[0] = '\0';
	struct engine_bridge *b = engine_bridge_add(E, "c", "edge", b_ready, NULL);
	engine_bridge_set_answer(b, b_answer, NULL);
	up4_kept(1, "s", "20 02 00 00");
	subscribe4(1, "in/#", 1);
	engine_store_durable(E, 1, NOW);
	out(1);
	/* nothing for the store to wait for: at once */
	CU_ASSERT_EQUAL(engine_bridge_answer(b, CODEC_PUBCOMP, 9, 0), 0);
	CU_ASSERT_STRING_EQUAL(ANSWERS, "PUBCOMP 9 0");
	ANSWERS[0] = '\0';
	REC_TICKET = 4;
	CU_ASSERT_EQUAL(engine_bridge_publish(b, (const uint8_t *)"in/x", 4, (const uint8_t *)"hi", 2,
					      NULL, 0, 1, false, NOW),
			0);
	CU_ASSERT_EQUAL(engine_bridge_answer(b, CODEC_PUBACK, 1, 0), 0);
	CU_ASSERT_STRING_EQUAL(ANSWERS, ""); /* not committed yet */
	REC_TICKET = 0; /* a QoS 0 message stores nothing, but its turn is behind */
	CU_ASSERT_EQUAL(engine_bridge_answer(b, CODEC_PUBCOMP, 2, 0), 0);
	CU_ASSERT_STRING_EQUAL(ANSWERS, "");
	engine_store_durable(E, 3, NOW);
	CU_ASSERT_STRING_EQUAL(ANSWERS, "");
	engine_store_durable(E, 4, NOW);
	CU_ASSERT_STRING_EQUAL(ANSWERS, "PUBACK 1 0,PUBCOMP 2 0");
	/* held across a reconnect: dropped (the remote sends it again) */
	ANSWERS[0] = '\0';
	REC_TICKET = 6;
	CU_ASSERT_EQUAL(engine_bridge_answer(b, CODEC_PUBREC, 3, 0), 0);
	engine_bridge_down(b);
	engine_store_durable(E, 6, NOW);
	CU_ASSERT_STRING_EQUAL(ANSWERS, "");
	engine_bridge_set_answer(b, NULL, NULL);
	stop();
}

/* The queue is bounded by max_queued_messages / max_queued_bytes: what
 * does not fit is dropped with an event, the rest kept in order. */
static void t_bridge_bound(void)
{
	CFG = config_default();
	CFG.max_queued_messages = 3;
	start(&CFG, NULL);
	struct engine_bridge *b = engine_bridge_add(E, "c", "edge", b_ready, NULL);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "#", 1), 0);
	up4(0, "pub");
	for (int i = 1; i <= 5; i++)
		b_pub(0x32, "q", (uint16_t)i, i == 1 ? "1" : i == 2 ? "2" : i == 3 ? "3" : "x");
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 3);
	CU_ASSERT_EQUAL(count_ev(MIDGE_EV_DROP, "q"), 2);
	CU_ASSERT_EQUAL(last_ev(MIDGE_EV_DROP)->drop, MIDGE_DROP_QUEUE_FULL);
	CU_ASSERT_STRING_EQUAL(last_ev(MIDGE_EV_DROP)->cid, "edge");
	engine_bridge_up(b, 10);
	CU_ASSERT_STRING_EQUAL(b_next(b), "q q1 1 1");
	CU_ASSERT_STRING_EQUAL(b_next(b), "q q1 2 2");
	CU_ASSERT_STRING_EQUAL(b_next(b), "q q1 3 3");
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	stop();
}

/* With a store: the queue and window are a session "\0bridge:NAME"'s, and
 * a restart restores them (the window sent again first, then the queue). */
static void t_bridge_restore(void)
{
	const char *why = NULL;
	start(NULL, NULL);
	struct engine_bridge *b = engine_bridge_add(E, "c", "edge", b_ready, NULL);
	CU_ASSERT_EQUAL(engine_bridge_subscribe(b, "#", 2), 0);
	CU_ASSERT_EQUAL(engine_restore_begin(E, NOW), 0);
	struct engine_restore_msg m = {0};
	m.id = 10;
	m.topic = (const uint8_t *)"a/b";
	m.topic_len = 3;
	m.payload = (const uint8_t *)"hi";
	m.payload_len = 2;
	m.qos = 1;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	m.id = 11;
	m.topic = (const uint8_t *)"a/c";
	m.payload = (const uint8_t *)"yo";
	m.qos = 2;
	CU_ASSERT_EQUAL(engine_restore_message(E, &m, &why), 0);
	struct engine_store_session ss = {.client_id = {"\0bridge:c", 9}, .expiry = UINT32_MAX, .protocol = 4, .disconnected_at = NOW};
	CU_ASSERT_EQUAL(engine_restore_session(E, &ss, REC_HANDLE[0] = strdup("bc"), &why), 0);
	/* a bridge no longer configured: its records go at the end */
	struct engine_store_session sg = {.client_id = {"\0bridge:gone", 12}, .expiry = UINT32_MAX, .protocol = 4, .disconnected_at = NOW};
	CU_ASSERT_EQUAL(engine_restore_session(E, &sg, REC_HANDLE[1] = strdup("bg"), &why), 0);
	struct midge_str cid = {"\0bridge:c", 9}, gid = {"\0bridge:gone", 12};
	struct engine_store_delivery d1 = {1, false, false, 0, {0}}, d2 = {2, false, false, 0, {0}};
	CU_ASSERT_EQUAL(engine_restore_flight(E, &cid, 3, ENGINE_STORE_AWAIT_PUBACK, 10, &d1, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_flight(E, &cid, 3, ENGINE_STORE_AWAIT_PUBACK, 10, &d1, &why), -1);
	CU_ASSERT_EQUAL(engine_restore_queued(E, &cid, 11, &d2, &why), 0);
	CU_ASSERT_EQUAL(engine_restore_queued(E, &gid, 11, &d2, &why), 1);
	struct midge_str nobody = {"\0bridge:x", 9};
	CU_ASSERT_EQUAL(engine_restore_queued(E, &nobody, 11, &d2, &why), -1);
	STORE_LOG[0] = '\0';
	engine_store_attach(E, &store_recorder);
	CU_ASSERT_EQUAL(engine_restore_end(E, NOW), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(STORE_LOG, "removed"));
	CU_ASSERT_EQUAL(engine_bridge_pending(b), 2);
	engine_bridge_up(b, 10);
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/b q1 3 dup hi");
	CU_ASSERT_STRING_EQUAL(b_next(b), "a/c q2 2 yo"); /* a free id */
	CU_ASSERT_STRING_EQUAL(b_next(b), "-");
	stop();
}

static const struct test_case bridge_cases[] = {
	{"bridge: queue while down, window, acks, QoS of the filter", t_bridge_queue_window},
	{"[MQTT-4.4.0-1] bridge: resend on reconnect in send order, PUBREL", t_bridge_resend},
	{"bridge: no loops, messages from the remote reach local clients", t_bridge_no_local},
	{"[MQTT-4.6.0-2] bridge: answers to the remote wait for the store, in order", t_bridge_answer_held},
	{"[MQTT-3.3.1-9] a CONNECT with the bridge bit: no echo, retain as published", t_connect_bridge_bit},
	{"bridge: queue bounded by max_queued_messages", t_bridge_bound},
	{"bridge: queue and window restored from a store", t_bridge_restore},
	{NULL, NULL},
};

static const struct test_suite engine_suites[] = {
	{"engine_connect", connect_cases},
	{"engine_more", more_cases},
	{"engine_routing", routing_cases},
	{"engine_session", session_cases},
	{"engine_store", store_cases},
	{"engine_bridge", bridge_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(engine_suites)
