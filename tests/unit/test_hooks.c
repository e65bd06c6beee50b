/*
 * test_hooks.c - the callback registry, JSON rendering and the ZeroMQ
 * publisher, over real ZeroMQ sockets on 127.0.0.1 ports the kernel picks.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "codec/codec.h"
#include "hooks/hooks.h"
#include "hooks/hooks_info.h"
#include "hooks/render.h"
#include "midge.h"
#include "tests/unit/hooks_zsub.h"
#include "tests/unit/runner.h"

/* ---------------------------------------------------------------- helpers */


/* A minimal JSON validator (RFC 8259 grammar, no semantic checks): the
 * rendered objects must parse, whatever bytes went into them. */
static const char *js_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static const char *js_value(const char *p, const char *e, int depth);

static const char *js_string(const char *p, const char *e)
{
	if (p >= e || *p != '"')
		return NULL;
	p++;
	while (p < e) {
		unsigned char c = (unsigned char)*p;
		if (c == '"')
			return p + 1;
		if (c < 0x20)
			return NULL;
		if (c == '\\') {
			p++;
			if (p >= e)
				return NULL;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (p + i >= e || !strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 5;
				continue;
			}
			if (!strchr("\"\\/bfnrt", *p) || !*p)
				return NULL;
		}
		p++;
	}
	return NULL;
}

static const char *js_number(const char *p, const char *e)
{
	const char *s = p;
	if (p < e && *p == '-')
		p++;
	while (p < e && *p >= '0' && *p <= '9')
		p++;
	return p > s ? p : NULL;
}

static const char *js_value(const char *p, const char *e, int depth)
{
	if (depth > 32)
		return NULL;
	p = js_ws(p, e);
	if (p >= e)
		return NULL;
	if (*p == '"')
		return js_string(p, e);
	if (*p == '{' || *p == '[') {
		char close = *p == '{' ? '}' : ']';
		bool obj = *p == '{';
		p = js_ws(p + 1, e);
		if (p < e && *p == close)
			return p + 1;
		for (;;) {
			if (obj) {
				p = js_string(js_ws(p, e), e);
				if (!p)
					return NULL;
				p = js_ws(p, e);
				if (p >= e || *p != ':')
					return NULL;
				p++;
			}
			p = js_value(p, e, depth + 1);
			if (!p)
				return NULL;
			p = js_ws(p, e);
			if (p < e && *p == ',') {
				p++;
				continue;
			}
			if (p < e && *p == close)
				return p + 1;
			return NULL;
		}
	}
	if (e - p >= 4 && !memcmp(p, "true", 4))
		return p + 4;
	if (e - p >= 5 && !memcmp(p, "false", 5))
		return p + 5;
	if (e - p >= 4 && !memcmp(p, "null", 4))
		return p + 4;
	return js_number(p, e);
}

static bool json_valid(const char *p, size_t n)
{
	const char *e = p + n;
	const char *q = js_value(p, e, 0);
	return q && js_ws(q, e) == e;
}

/* Renders ev as a socket would (seq, dropped) into a static string. */
static const char *render(const struct midge_event *ev, const char *node, uint64_t seq,
			  uint64_t dropped)
{
	static struct hooks_buf b;
	static char out[1 << 17];
	if (hooks_render_body(&b, ev, node) != 0)
		return NULL;
	size_t off = hooks_render_head(&b, seq, dropped);
	size_t n = b.len - off;
	if (n >= sizeof out)
		return NULL;
	memcpy(out, b.p + off, n);
	out[n] = '\0';
	CU_ASSERT(json_valid(out, n));
	return out;
}

/* ------------------------------------------------------------- registry */

struct call_log {
	int calls[64];
	int n;
	const struct midge_event *last;
};

struct tag {
	struct call_log *log;
	int id;
};

static void cb_record(const struct midge_event *ev, void *user)
{
	struct tag *t = user;
	if (t->log->n < 64)
		t->log->calls[t->log->n++] = t->id;
	t->log->last = ev;
}

static void test_registry_order(void)
{
	struct hooks *h = hooks_new();
	struct call_log log = { .n = 0 };
	struct tag t1 = { &log, 1 }, t2 = { &log, 2 }, t3 = { &log, 3 }, t4 = { &log, 4 };
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_CONNECT, cb_record, &t1), 0);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_CONNECT, cb_record, &t2), 0);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_PING, cb_record, &t4), 0);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_CONNECT, cb_record, &t3), 0);
	struct midge_event ev = { .type = MIDGE_EV_CONNECT };
	hooks_emit(h, &ev, NULL);
	CU_ASSERT_EQUAL(log.n, 3);
	CU_ASSERT_EQUAL(log.calls[0], 1);
	CU_ASSERT_EQUAL(log.calls[1], 2);
	CU_ASSERT_EQUAL(log.calls[2], 3);
	CU_ASSERT_PTR_EQUAL(log.last, &ev);
	ev.type = MIDGE_EV_PING;
	hooks_emit(h, &ev, NULL);
	CU_ASSERT_EQUAL(log.n, 4);
	CU_ASSERT_EQUAL(log.calls[3], 4);
	ev.type = MIDGE_EV_DISCONNECT;
	hooks_emit(h, &ev, NULL);
	CU_ASSERT_EQUAL(log.n, 4);
	CU_ASSERT_EQUAL(hooks_sent(h), 0);
	hooks_free(h);
}

static void test_registry_many(void)
{
	struct hooks *h = hooks_new();
	struct call_log log = { .n = 0 };
	struct tag tags[40];
	for (int i = 0; i < 40; i++) {
		tags[i].log = &log;
		tags[i].id = i;
		CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_PUBLISH, cb_record, &tags[i]), 0);
	}
	struct midge_event ev = { .type = MIDGE_EV_PUBLISH };
	hooks_emit(h, &ev, NULL);
	CU_ASSERT_EQUAL(log.n, 40);
	for (int i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(log.calls[i], i);
	hooks_free(h);
}

static void test_registry_rejects(void)
{
	struct hooks *h = hooks_new();
	struct call_log log = { .n = 0 };
	struct tag t = { &log, 1 };
	CU_ASSERT_EQUAL(hooks_on(h, (enum midge_event_type)0, cb_record, &t), -1);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV__COUNT, cb_record, &t), -1);
	CU_ASSERT_EQUAL(hooks_on(h, MIDGE_EV_PING, NULL, &t), -1);
	CU_ASSERT_EQUAL(hooks_on(NULL, MIDGE_EV_PING, cb_record, &t), -1);
	struct midge_event ev = { .type = MIDGE_EV__COUNT };
	hooks_emit(h, &ev, NULL); /* unknown type: ignored */
	hooks_emit(h, NULL, NULL);
	CU_ASSERT_EQUAL(log.n, 0);
	hooks_free(h);
	hooks_free(NULL);
}

static void test_event_names(void)
{
	static const char *const want[] = {
		NULL, "client.connected", "client.refused", "client.disconnected", "client.ping",
		"client.subscribed", "client.unsubscribed", "message.published", "message.delivered",
		"message.acked", "message.dropped", "message.will", "retained.set", "retained.cleared",
		"session.created", "session.resumed", "session.taken_over", "session.expired",
		"session.discarded", "client.protocol_error", "acl.denied", "store.status",
	};
	CU_ASSERT_EQUAL(sizeof want / sizeof want[0], MIDGE_EV__COUNT);
	for (int t = 1; t < MIDGE_EV__COUNT; t++) {
		CU_ASSERT_PTR_NOT_NULL_FATAL(midge_event_name(t));
		CU_ASSERT_STRING_EQUAL(midge_event_name(t), want[t]);
	}
	CU_ASSERT_PTR_NULL(midge_event_name((enum midge_event_type)0));
	CU_ASSERT_PTR_NULL(midge_event_name(MIDGE_EV__COUNT));
	CU_ASSERT_PTR_NULL(midge_event_name((enum midge_event_type)-1));
}

/* ----------------------------------------------------------------- JSON */

/* A v5 PUBLISH property block with every field the renderer shows. */
static const uint8_t v5_props[] = {
	0x01, 0x01,                         /* payload format: UTF-8 */
	0x02, 0x00, 0x00, 0x00, 0x3c,       /* message expiry 60 */
	0x03, 0x00, 0x10, 'a', 'p', 'p', 'l', 'i', 'c', 'a', 't', 'i', 'o', 'n', '/', 'j', 's', 'o', 'n',
	0x08, 0x00, 0x05, 'r', 'e', 'p', 'l', 'y',
	0x09, 0x00, 0x03, 0x00, 0x01, 0xff, /* correlation data */
	0x26, 0x00, 0x01, 'a', 0x00, 0x01, '1',
	0x26, 0x00, 0x01, 'b', 0x00, 0x01, '2',
	0x26, 0x00, 0x01, 'a', 0x00, 0x01, '3',
};

static const struct midge_client client_v4 = {
	.client_id = { "c1", 2 }, .username = { "u1", 2 }, .peer_addr = "127.0.0.1",
	.peer_port = 50000, .protocol = 4, .tls = false,
};

static const struct midge_client client_v5 = {
	.client_id = { "pub", 3 }, .username = { NULL, 0 }, .peer_addr = "::1",
	.peer_port = 1234, .protocol = 5, .tls = true,
};

static void test_json_connected_exact(void)
{
	struct midge_event ev = { .type = MIDGE_EV_CONNECT, .time_ms = 1700000000123ull,
				  .client = &client_v4 };
	ev.u.connect.clean_start = true;
	ev.u.connect.keep_alive = 60;
	ev.u.connect.has_will = true;
	const char *j = render(&ev, "n1", 7, 2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(j,
		"{\"schema\":1,\"seq\":7,\"dropped\":2,\"event\":\"client.connected\","
		"\"ts\":1700000000123,\"node\":\"n1\",\"client_id\":\"c1\",\"username\":\"u1\","
		"\"peer_addr\":\"127.0.0.1\",\"peer_port\":50000,\"protocol\":4,\"tls\":false,"
		"\"clean_start\":true,\"session_present\":false,\"keep_alive\":60,"
		"\"session_expiry\":0,\"will\":true,\"rc\":0,\"rc_name\":\"accepted\",\"why\":null}");
}

static void test_json_refused_v5(void)
{
	struct midge_event ev = { .type = MIDGE_EV_CONNECT_REFUSED, .time_ms = 1, .client = &client_v5 };
	ev.u.connect.rc = MQTT_RC_NOT_AUTHORIZED;
	ev.u.connect.why = "acl says \"no\"";
	const char *j = render(&ev, NULL, 0, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	char want[1024];
	snprintf(want, sizeof want,
		 "{\"schema\":1,\"seq\":0,\"dropped\":0,\"event\":\"client.refused\",\"ts\":1,"
		 "\"node\":null,\"client_id\":\"pub\",\"username\":null,\"peer_addr\":\"::1\","
		 "\"peer_port\":1234,\"protocol\":5,\"tls\":true,\"clean_start\":false,"
		 "\"session_present\":false,\"keep_alive\":0,\"session_expiry\":0,\"will\":false,"
		 "\"rc\":135,\"rc_name\":\"%s\",\"why\":\"acl says \\\"no\\\"\"}",
		 codec_rc_name(MQTT_RC_NOT_AUTHORIZED));
	CU_ASSERT_STRING_EQUAL(j, want);
	/* A 3.1.1 refusal names the 3.1.1 CONNACK code. */
	ev.client = &client_v4;
	ev.u.connect.rc = MQTT_CONNACK_V3_BAD_CREDENTIALS;
	j = render(&ev, NULL, 0, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"rc\":4,\"rc_name\":\"bad user name or password\""));
}

static void test_json_subscribed_exact(void)
{
	struct midge_event ev = { .type = MIDGE_EV_SUBSCRIBE, .time_ms = 42, .client = &client_v4 };
	ev.u.subscribe.filter = S("sensors/+/temp");
	ev.u.subscribe.qos = 1;
	ev.u.subscribe.no_local = true;
	ev.u.subscribe.retain_handling = 2;
	ev.u.subscribe.sub_id = 9;
	ev.u.subscribe.rc = 1;
	ev.u.subscribe.packet_id = 3;
	const char *j = render(&ev, "n1", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(j,
		"{\"schema\":1,\"seq\":1,\"dropped\":0,\"event\":\"client.subscribed\",\"ts\":42,"
		"\"node\":\"n1\",\"client_id\":\"c1\",\"username\":\"u1\",\"peer_addr\":\"127.0.0.1\","
		"\"peer_port\":50000,\"protocol\":4,\"tls\":false,\"filter\":\"sensors/+/temp\","
		"\"qos\":1,\"no_local\":true,\"retain_as_published\":false,\"retain_handling\":2,"
		"\"sub_id\":9,\"rc\":1,\"rc_name\":\"granted qos 1\",\"packet_id\":3}");
	ev.type = MIDGE_EV_UNSUBSCRIBE;
	ev.u.subscribe.rc = 0;
	j = render(&ev, "n1", 2, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"client.unsubscribed\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"filter\":\"sensors/+/temp\",\"rc\":0,\"rc_name\":"));
	CU_ASSERT_PTR_NULL(strstr(j, "no_local"));
}

static void test_json_published_v5_exact(void)
{
	struct midge_message m = {
		.topic = S("sensors/kitchen"), .payload = "21.5", .payload_len = 4, .qos = 1,
		.packet_id = 10, .props = v5_props, .props_len = sizeof v5_props, .origin = S("pub"),
	};
	struct midge_event ev = { .type = MIDGE_EV_PUBLISH, .time_ms = 5, .client = &client_v5 };
	ev.u.message.msg = &m;
	const char *j = render(&ev, "n1", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(j,
		"{\"schema\":1,\"seq\":1,\"dropped\":0,\"event\":\"message.published\",\"ts\":5,"
		"\"node\":\"n1\",\"client_id\":\"pub\",\"username\":null,\"peer_addr\":\"::1\","
		"\"peer_port\":1234,\"protocol\":5,\"tls\":true,\"topic\":\"sensors/kitchen\","
		"\"qos\":1,\"retain\":false,\"dup\":false,\"packet_id\":10,\"origin\":\"pub\","
		"\"payload_len\":4,\"payload_format\":1,\"message_expiry\":60,"
		"\"content_type\":\"application/json\",\"response_topic\":\"reply\","
		"\"correlation_data\":\"AAH/\","
		"\"user_properties\":[[\"a\",\"1\"],[\"b\",\"2\"],[\"a\",\"3\"]],\"why\":null}");
}

static void test_json_message_events(void)
{
	struct midge_message m = { .topic = S("a/b"), .payload = "x", .payload_len = 1, .qos = 2 };
	struct midge_event ev = { .time_ms = 9, .client = &client_v4 };
	ev.u.message.msg = &m;
	ev.u.message.to = S("sub1");
	ev.u.message.qos = 1;
	ev.u.message.packet_id = 77;

	ev.type = MIDGE_EV_DELIVER;
	const char *j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"message.delivered\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"origin\":null,\"payload_len\":1,\"payload_format\":null,"
					 "\"message_expiry\":null,\"content_type\":null,"
					 "\"response_topic\":null,\"correlation_data\":null,"
					 "\"user_properties\":[],\"to\":\"sub1\",\"delivery_qos\":1,"
					 "\"delivery_packet_id\":77,\"why\":null}"));

	ev.type = MIDGE_EV_DROP;
	ev.u.message.drop = MIDGE_DROP_QUEUE_FULL;
	ev.u.message.why = "offline queue full";
	j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"delivery_packet_id\":77,\"drop_reason\":\"queue_full\","
					 "\"drop_code\":2,\"why\":\"offline queue full\"}"));

	ev.type = MIDGE_EV_ACKED;
	ev.u.message.why = NULL;
	j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"message.acked\""));
	CU_ASSERT_PTR_NULL(strstr(j, "drop_reason"));

	/* Publish, will and retained events carry no receiver. */
	enum midge_event_type plain[] = { MIDGE_EV_PUBLISH, MIDGE_EV_WILL, MIDGE_EV_RETAIN_SET,
					  MIDGE_EV_RETAIN_CLEAR };
	for (size_t i = 0; i < 4; i++) {
		ev.type = plain[i];
		j = render(&ev, "n", 1, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		CU_ASSERT_PTR_NULL(strstr(j, "\"to\""));
		CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"topic\":\"a/b\",\"qos\":2"));
		CU_ASSERT(hooks_event_has_message(plain[i]));
	}
	/* A broker-wide retained clear without a message still renders. */
	ev.client = NULL;
	ev.u.message.msg = NULL;
	j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"client_id\":null,\"username\":null,\"peer_addr\":null,"
					 "\"peer_port\":null,\"protocol\":null,\"tls\":null,"
					 "\"topic\":null"));
}

static void test_json_other_events(void)
{
	struct midge_event ev = { .time_ms = 3, .client = &client_v4 };
	ev.type = MIDGE_EV_DISCONNECT;
	ev.u.disconnect.rc = MQTT_RC_KEEP_ALIVE_TIMEOUT;
	ev.u.disconnect.will = true;
	ev.u.disconnect.why = "keepalive timeout";
	const char *j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	char want[512];
	snprintf(want, sizeof want,
		 "\"tls\":false,\"rc\":141,\"rc_name\":\"%s\",\"by_client\":false,\"will\":true,"
		 "\"why\":\"keepalive timeout\"}",
		 codec_rc_name(MQTT_RC_KEEP_ALIVE_TIMEOUT));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, want));

	ev.type = MIDGE_EV_PROTOCOL_ERROR;
	ev.u.disconnect.rc = MQTT_RC_MALFORMED;
	j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"client.protocol_error\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"rc\":129,"));

	ev.type = MIDGE_EV_PING;
	j = render(&ev, "n", 4, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"client.ping\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"tls\":false}"));

	enum midge_event_type sess[] = { MIDGE_EV_SESSION_CREATED, MIDGE_EV_SESSION_RESUMED,
					 MIDGE_EV_SESSION_TAKEOVER, MIDGE_EV_SESSION_EXPIRED,
					 MIDGE_EV_SESSION_DISCARDED };
	ev.u.session.expiry = 3600;
	ev.u.session.queued = 12;
	ev.u.session.why = NULL;
	for (size_t i = 0; i < 5; i++) {
		ev.type = sess[i];
		j = render(&ev, "n", 1, 0);
		CU_ASSERT_PTR_NOT_NULL_FATAL(j);
		CU_ASSERT_PTR_NOT_NULL(strstr(j, midge_event_name(sess[i])));
		CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"expiry\":3600,\"queued\":12,\"why\":null}"));
	}
	ev.type = MIDGE_EV__COUNT;
	struct hooks_buf b = { 0 };
	CU_ASSERT_EQUAL(hooks_render_body(&b, &ev, "n"), -1);
	hooks_buf_release(&b);
}

static void json_str(const char *in, size_t n, const char *want)
{
	struct hooks_buf b = { 0 };
	CU_ASSERT_EQUAL_FATAL(hooks_json_string(&b, in, n), 0);
	CU_ASSERT_EQUAL(b.len, strlen(want));
	CU_ASSERT(b.len == strlen(want) && memcmp(b.p, want, b.len) == 0);
	CU_ASSERT(json_valid(b.p, b.len));
	hooks_buf_release(&b);
}

static void test_json_escaping(void)
{
	json_str("", 0, "\"\"");
	json_str("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
	json_str("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
	json_str("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\"");
	json_str("\0x", 2, "\"\\u0000x\"");
	/* Well-formed UTF-8 passes through. */
	json_str("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Bytes that are not well-formed UTF-8 become \u00XX, one per byte. */
	json_str("\xff", 1, "\"\\u00ff\"");
	json_str("a\xe2\x82", 3, "\"a\\u00e2\\u0082\"");
	json_str("\xc0\xaf", 2, "\"\\u00c0\\u00af\"");         /* overlong '/' */
	json_str("\xed\xa0\x80", 3, "\"\\u00ed\\u00a0\\u0080\""); /* surrogate */
	json_str("\xf4\x90\x80\x80", 4, "\"\\u00f4\\u0090\\u0080\\u0080\""); /* > U+10FFFF */
	json_str("\xe2\x82\xac\xe2", 4, "\"\xe2\x82\xac\\u00e2\"");
}

static void test_json_escaping_all_bytes(void)
{
	/* Every byte value, and every pair, gives a valid JSON string. */
	char in[512];
	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	for (int i = 0; i < 256; i++)
		in[256 + i] = (char)(255 - i);
	struct hooks_buf b = { 0 };
	CU_ASSERT_EQUAL(hooks_json_string(&b, in, sizeof in), 0);
	CU_ASSERT(json_valid(b.p, b.len));
	for (int x = 0x80; x < 0x100; x++) {
		for (int y = 0; y < 0x100; y += 7) {
			char pair[2] = { (char)x, (char)y };
			b.len = 0;
			CU_ASSERT_EQUAL(hooks_json_string(&b, pair, 2), 0);
			if (!json_valid(b.p, b.len)) {
				CU_FAIL("pair gives invalid JSON");
				x = 0x100;
				break;
			}
		}
	}
	hooks_buf_release(&b);
}

static void test_json_base64(void)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					   "Zm9vYmFy" };
	struct hooks_buf b = { 0 };
	for (int i = 0; i < 7; i++) {
		b.len = 0;
		CU_ASSERT_EQUAL(hooks_base64(&b, (const uint8_t *)in[i], strlen(in[i])), 0);
		CU_ASSERT(b.len == strlen(out[i]) && (b.len == 0 || memcmp(b.p, out[i], b.len) == 0));
	}
	hooks_buf_release(&b);
}

static void test_json_large_topic(void)
{
	/* A topic far larger than the initial buffer, full of bytes that
	 * need escaping: the buffer grows and the JSON stays valid. */
	static char topic[60000];
	for (size_t i = 0; i < sizeof topic; i++)
		topic[i] = (char)(i % 3 == 0 ? '\n' : 'a' + i % 26);
	struct midge_message m = { .topic = { topic, sizeof topic } };
	struct midge_event ev = { .type = MIDGE_EV_PUBLISH, .client = &client_v4 };
	ev.u.message.msg = &m;
	const char *j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT(strlen(j) > sizeof topic);
}

static void test_user_property_iterator(void)
{
	struct midge_message m = { .props = v5_props, .props_len = sizeof v5_props };
	static const char *const want[][2] = { { "a", "1" }, { "b", "2" }, { "a", "3" } };
	size_t pos = 0;
	struct midge_str k, v;
	int n = 0;
	while (midge_message_user_property(&m, &pos, &k, &v) == 1 && n < 10) {
		CU_ASSERT_FATAL(n < 3);
		CU_ASSERT(k.len == 1 && k.p[0] == want[n][0][0]);
		CU_ASSERT(v.len == 1 && v.p[0] == want[n][1][0]);
		n++;
	}
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(midge_message_user_property(&m, &pos, &k, &v), 0);
	struct midge_message none = { .props = NULL, .props_len = 0 };
	pos = 0;
	CU_ASSERT_EQUAL(midge_message_user_property(&none, &pos, &k, &v), 0);
	/* A block that does not decode has no user properties. */
	static const uint8_t bad[] = { 0x26, 0x00, 0x09, 'a' };
	struct midge_message broken = { .props = bad, .props_len = sizeof bad };
	pos = 0;
	CU_ASSERT_EQUAL(midge_message_user_property(&broken, &pos, &k, &v), 0);
}

/* ---------------------------------------------------------------- ZeroMQ */

void *zctx;

/* Starts a hooks publisher on a free loopback port; a failure stops the
 * calling test (CUnit's fatal assertion), so the result is never NULL. */
static struct hooks *start_hooks(int hwm, const char *secret, const char *public)
{
	struct hooks *h = hooks_new();
	struct hooks_config cfg = { .endpoints = { "tcp://127.0.0.1:*" }, .n_endpoints = 1,
				    .sndhwm = hwm, .node = "test-node", .curve_secret = secret,
				    .curve_public = public };
	char err[256] = "";
	if (!h || hooks_zmq_start(h, &cfg, err, sizeof err) != 0) {
		fprintf(stderr, "hooks_zmq_start: %s\n", err);
		hooks_free(h);
		CU_FAIL_FATAL("hooks publisher did not start");
	}
	return h;
}

/* s holds exactly one message, of parts frames, whose first frame (the
 * event name and topic) is name. */
static void expect_only(void *s, int parts, const char *name)
{
	static struct frames f;
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), parts);
	CU_ASSERT_STRING_EQUAL(f.data[0], name);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 100), 0);
}

/* What the loop does after a pass, then a wait for the publisher's thread
 * to have read the records: the counters are then current. */
static void settle(struct hooks *h)
{
	hooks_flush(h);
	CU_ASSERT(hooks_wait_idle(h, 2000));
}

static void emit_client(struct hooks *h, enum midge_event_type t)
{
	struct midge_event ev = { .type = t, .time_ms = 1000, .client = &client_v4 };
	hooks_emit(h, &ev, NULL);
	settle(h);
}

static void emit_publish(struct hooks *h, const char *topic, const void *payload, size_t len)
{
	struct midge_message m = { .topic = S(topic), .payload = payload, .payload_len = len,
				   .origin = S("c1") };
	struct midge_event ev = { .type = MIDGE_EV_PUBLISH, .time_ms = 1001, .client = &client_v4 };
	ev.u.message.msg = &m;
	hooks_emit(h, &ev, NULL);
	settle(h);
}

static void test_zmq_framing(void)
{
	struct hooks *h = start_hooks(0, NULL, NULL);
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(hooks_endpoint(h, 0));
	CU_ASSERT_PTR_NULL(hooks_endpoint(h, 1));
	CU_ASSERT(strncmp(hooks_endpoint(h, 0), "tcp://127.0.0.1:", 16) == 0);
	void *s = sub_open(hooks_endpoint(h, 0), "");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	static struct frames f;

	emit_client(h, MIDGE_EV_CONNECT);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 2);
	CU_ASSERT_STRING_EQUAL(f.data[0], "client.connected");
	CU_ASSERT(json_valid(f.data[1], f.len[1]));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.data[1], "\"node\":\"test-node\""));

	emit_publish(h, "sensors/kitchen", "21.5", 4);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 3);
	CU_ASSERT_STRING_EQUAL(f.data[0], "message.published/sensors/kitchen");
	CU_ASSERT(json_valid(f.data[1], f.len[1]));
	CU_ASSERT_PTR_NOT_NULL(strstr(f.data[1], "\"topic\":\"sensors/kitchen\""));
	CU_ASSERT(f.len[2] == 4 && memcmp(f.data[2], "21.5", 4) == 0);

	/* A message event with an empty payload still has its third frame,
	 * and a payload with NUL bytes arrives intact. */
	emit_publish(h, "t", "", 0);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 3);
	CU_ASSERT_EQUAL(f.len[2], 0);
	emit_publish(h, "t", "a\0b", 3);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 3);
	CU_ASSERT(f.len[2] == 3 && memcmp(f.data[2], "a\0b", 3) == 0);

	/* Long names and payloads arrive intact, many times over while the
	 * render buffer is reused. */
	static char big[3000];
	static char topic[200];
	memset(topic, 't', sizeof topic - 1);
	for (int i = 0; i < 200; i++) {
		size_t len = i % 2 ? 1000 : sizeof big;
		for (size_t k = 0; k < len; k++)
			big[k] = (char)('a' + (i + k) % 26);
		emit_publish(h, topic, big, len);
		CU_ASSERT_EQUAL_FATAL(recv_msg(s, &f, 2000), 3);
		CU_ASSERT(f.len[0] == 18 + sizeof topic - 1 &&
			  memcmp(f.data[0] + 18, topic, sizeof topic - 1) == 0);
		CU_ASSERT(f.len[2] == len && memcmp(f.data[2], big, len) == 0);
		CU_ASSERT(json_valid(f.data[1], f.len[1]));
	}
	CU_ASSERT_EQUAL(hooks_sent(h), 204);
	CU_ASSERT_EQUAL(hooks_dropped(h), 0);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 204);
	zmq_close(s);
	hooks_free(h);
}

static void test_zmq_prefix_filter(void)
{
	struct hooks *h = start_hooks(0, NULL, NULL);
	static struct frames f;

	/* Nobody subscribed: nothing is rendered. */
	emit_client(h, MIDGE_EV_CONNECT);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 0);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 1);

	void *s = sub_open(hooks_endpoint(h, 0), "client.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	emit_publish(h, "a/b", "x", 1); /* no "message." subscriber */
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 0);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 2);
	emit_client(h, MIDGE_EV_PING);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 1);
	expect_only(s, 2, "client.ping");

	/* Unsubscribing the last prefix stops rendering again. */
	zmq_setsockopt(s, ZMQ_UNSUBSCRIBE, "client.", 7);
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 0));
	emit_client(h, MIDGE_EV_PING);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 1);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 3);

	/* Two subscribers of one prefix: it stays until both are gone, and a
	 * disconnect counts as an unsubscription. XPUB reports a prefix once,
	 * so each subscriber also subscribes to a marker of its own, after
	 * the shared prefix: when both markers are known, so is everything. */
	void *s2 = sub_open(hooks_endpoint(h, 0), "message.published/sensors/");
	zmq_setsockopt(s2, ZMQ_SUBSCRIBE, "zz2", 3);
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "message.published/sensors/", 26);
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "zz1", 3);
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 3));
	emit_publish(h, "sensors/kitchen", "1", 1);
	emit_publish(h, "other/kitchen", "2", 1);
	emit_publish(h, "sensors", "3", 1); /* "message.published/sensors" is shorter than the prefix */
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 2);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 5);
	expect_only(s2, 3, "message.published/sensors/kitchen");
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 3);
	zmq_close(s2);
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 2)); /* the shared prefix and zz1 */
	emit_publish(h, "sensors/kitchen", "1", 1);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 3);
	CU_ASSERT_EQUAL(recv_msg(s, &f, 2000), 3);
	zmq_close(s);
	CU_ASSERT(wait_prefixes(h, 0, 0));
	emit_publish(h, "sensors/kitchen", "1", 1);
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 3);
	CU_ASSERT_EQUAL(hooks_counts(h).skipped, 6);
	hooks_free(h);
}

static void test_zmq_sequence(void)
{
	struct hooks *h = start_hooks(0, NULL, NULL);
	static struct frames f;
	void *all = sub_open(hooks_endpoint(h, 0), "");
	void *cl = sub_open(hooks_endpoint(h, 0), "client.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 2));
	for (int i = 0; i < 5; i++) {
		if (i == 2)
			emit_publish(h, "x", "y", 1);
		else
			emit_client(h, MIDGE_EV_PING);
	}
	/* Everything-subscriber: 1..5 without a gap. */
	for (long long want = 1; want <= 5; want++) {
		CU_ASSERT_FATAL(recv_msg(all, &f, 2000) >= 2);
		CU_ASSERT_EQUAL(json_int(f.data[1], f.len[1], "seq"), want);
		CU_ASSERT_EQUAL(json_int(f.data[1], f.len[1], "dropped"), 0);
	}
	/* The "client." subscriber sees the same numbers, minus the message. */
	static const long long cl_want[] = { 1, 2, 4, 5 };
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_FATAL(recv_msg(cl, &f, 2000) == 2);
		CU_ASSERT_EQUAL(json_int(f.data[1], f.len[1], "seq"), cl_want[i]);
	}
	CU_ASSERT_EQUAL(recv_msg(cl, &f, 100), 0);
	zmq_close(all);
	zmq_close(cl);
	hooks_free(h);
}

static void test_zmq_two_endpoints(void)
{
	struct hooks *h = hooks_new();
	struct hooks_config cfg = { .endpoints = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*" },
				    .n_endpoints = 2, .node = "n2" };
	char err[256];
	CU_ASSERT_EQUAL_FATAL(hooks_zmq_start(h, &cfg, err, sizeof err), 0);
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 2);
	CU_ASSERT_STRING_NOT_EQUAL(hooks_endpoint(h, 0), hooks_endpoint(h, 1));
	static struct frames f;
	void *a = sub_open(hooks_endpoint(h, 0), "client.");
	void *b = sub_open(hooks_endpoint(h, 1), "message.");
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));
	CU_ASSERT_FATAL(wait_prefixes(h, 1, 1));
	emit_client(h, MIDGE_EV_CONNECT);
	emit_publish(h, "t", "p", 1);
	/* Rendered once per event however many sockets want it. */
	CU_ASSERT_EQUAL(hooks_counts(h).rendered, 2);
	CU_ASSERT_EQUAL(hooks_sent(h), 2);
	expect_only(a, 2, "client.connected");
	CU_ASSERT_EQUAL(recv_msg(b, &f, 2000), 3);
	CU_ASSERT_STRING_EQUAL(f.data[0], "message.published/t");
	CU_ASSERT_EQUAL(json_int(f.data[1], f.len[1], "seq"), 2);

	/* Restarting with "none" closes both; callbacks go on. */
	struct call_log log = { .n = 0 };
	struct tag t = { &log, 1 };
	hooks_on(h, MIDGE_EV_CONNECT, cb_record, &t);
	struct hooks_config off = { .endpoints = { "none" }, .n_endpoints = 1 };
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &off, err, sizeof err), 0);
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 0);
	emit_client(h, MIDGE_EV_CONNECT);
	CU_ASSERT_EQUAL(log.n, 1);
	CU_ASSERT_EQUAL(hooks_sent(h), 2);
	zmq_close(a);
	zmq_close(b);
	hooks_free(h);
}

static void test_zmq_bad_config(void)
{
	struct hooks *h = hooks_new();
	char err[256] = "";
	struct hooks_config bad = { .endpoints = { "nonsense://x" }, .n_endpoints = 1 };
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &bad, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "nonsense://x") != NULL);
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 0);

	/* A port in use: the second bind fails and nothing stays bound. */
	struct hooks *h1 = start_hooks(0, NULL, NULL);
	struct hooks_config dup = { .endpoints = { "tcp://127.0.0.1:*", hooks_endpoint(h1, 0) },
				    .n_endpoints = 2 };
	err[0] = '\0';
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &dup, err, sizeof err), -1);
	CU_ASSERT(err[0] != '\0');
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 0);

	char pub[41], sec[41], pub2[41], sec2[41];
	CU_ASSERT_EQUAL_FATAL(zmq_curve_keypair(pub, sec), 0);
	CU_ASSERT_EQUAL_FATAL(zmq_curve_keypair(pub2, sec2), 0);
	struct hooks_config mism = { .endpoints = { "tcp://127.0.0.1:*" }, .n_endpoints = 1,
				     .curve_secret = sec, .curve_public = pub2 };
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &mism, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "public") != NULL);
	struct hooks_config shortkey = { .endpoints = { "tcp://127.0.0.1:*" }, .n_endpoints = 1,
					 .curve_secret = "tooshort" };
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &shortkey, err, sizeof err), -1);
	struct hooks_config onlypub = { .endpoints = { "tcp://127.0.0.1:*" }, .n_endpoints = 1,
					.curve_public = pub };
	CU_ASSERT_EQUAL(hooks_zmq_start(h, &onlypub, err, sizeof err), -1);
	CU_ASSERT_EQUAL(hooks_endpoint_count(h), 0);
	hooks_free(h1);
	hooks_free(h);
}

/* A subscriber that never reads: the publisher's queue fills, sends fail
 * at once (never block), the drops are counted, and the sequence numbers
 * show the gap to whoever reads later. */
static void test_zmq_hwm_drops(void)
{
	struct hooks *h = start_hooks(4, NULL, NULL);
	void *s = zmq_socket(zctx, ZMQ_SUB);
	int small = 4, zero = 0, buf = 8192;
	zmq_setsockopt(s, ZMQ_RCVHWM, &small, sizeof small);
	zmq_setsockopt(s, ZMQ_RCVBUF, &buf, sizeof buf);
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0);
	zmq_connect(s, hooks_endpoint(h, 0));
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));

	static char payload[32768];
	memset(payload, 'p', sizeof payload);
	uint64_t emitted = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	double slowest = 0;
	while (hooks_dropped(h) < 50 && emitted < 20000) {
		struct timespec a, z;
		clock_gettime(CLOCK_MONOTONIC, &a);
		emit_publish(h, "big", payload, sizeof payload);
		clock_gettime(CLOCK_MONOTONIC, &z);
		double d = (double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9;
		if (d > slowest)
			slowest = d;
		emitted++;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CU_ASSERT(hooks_dropped(h) >= 50);
	CU_ASSERT_EQUAL(hooks_sent(h) + hooks_dropped(h), emitted);
	/* Never blocks: no single emit took anywhere near a second. */
	CU_ASSERT(slowest < 0.5);

	/* The reader comes back: what it gets has a gap, and the next event
	 * reports the drops and the next sequence number. */
	static struct frames f;
	long long prev = 0, gaps = 0, got = 0;
	while (recv_msg(s, &f, 300) == 3 && got < 100000) {
		long long seq = json_int(f.data[1], f.len[1], "seq");
		CU_ASSERT(seq > prev);
		if (seq != prev + 1)
			gaps++;
		prev = seq;
		got++;
	}
	CU_ASSERT(got > 0);
	CU_ASSERT(got < (long long)emitted);
	emit_client(h, MIDGE_EV_PING);
	CU_ASSERT_EQUAL_FATAL(recv_msg(s, &f, 2000), 2);
	long long seq = json_int(f.data[1], f.len[1], "seq");
	if (seq != prev + 1)
		gaps++;
	CU_ASSERT(gaps > 0);
	CU_ASSERT_EQUAL(seq, (long long)emitted + 1);
	CU_ASSERT_EQUAL(json_int(f.data[1], f.len[1], "dropped"), (long long)hooks_dropped(h));
	zmq_close(s);
	hooks_free(h);
}

static void test_zmq_curve(void)
{
	char spub[41], ssec[41], cpub[41], csec[41];
	CU_ASSERT_EQUAL_FATAL(zmq_curve_keypair(spub, ssec), 0);
	CU_ASSERT_EQUAL_FATAL(zmq_curve_keypair(cpub, csec), 0);
	struct hooks *h = start_hooks(0, ssec, spub);
	static struct frames f;

	/* Without keys the handshake fails: no subscription, no events. */
	void *plain = sub_open(hooks_endpoint(h, 0), "");
	sleep_ms(200);
	CU_ASSERT_EQUAL(hooks_prefix_count(h, 0), 0);

	void *sec = zmq_socket(zctx, ZMQ_SUB);
	int zero = 0;
	zmq_setsockopt(sec, ZMQ_LINGER, &zero, sizeof zero);
	CU_ASSERT_EQUAL(zmq_setsockopt(sec, ZMQ_CURVE_SERVERKEY, spub, 41), 0);
	CU_ASSERT_EQUAL(zmq_setsockopt(sec, ZMQ_CURVE_PUBLICKEY, cpub, 41), 0);
	CU_ASSERT_EQUAL(zmq_setsockopt(sec, ZMQ_CURVE_SECRETKEY, csec, 41), 0);
	zmq_setsockopt(sec, ZMQ_SUBSCRIBE, "", 0);
	zmq_connect(sec, hooks_endpoint(h, 0));
	CU_ASSERT_FATAL(wait_prefixes(h, 0, 1));

	emit_client(h, MIDGE_EV_CONNECT);
	CU_ASSERT_EQUAL(recv_msg(sec, &f, 2000), 2);
	CU_ASSERT_STRING_EQUAL(f.data[0], "client.connected");
	CU_ASSERT_EQUAL(recv_msg(plain, &f, 300), 0);
	zmq_close(plain);
	zmq_close(sec);
	hooks_free(h);
}

/* acl.denied: the refused topic and access; a hostile client id, user
 * name and topic come out escaped, never as raw control characters. */
static void test_json_acl_denied(void)
{
	struct midge_client cl = {{"c\n1", 3}, {"u\x1b[31m", 6}, "127.0.0.1", 5, 5, false, 1};
	struct midge_event ev = {0};
	ev.type = MIDGE_EV_ACL_DENIED;
	ev.time_ms = 7;
	ev.client = &cl;
	ev.u.acl.topic.p = "a/\r\nb";
	ev.u.acl.topic.len = 5;
	ev.u.acl.access = MIDGE_ACL_PUBLISH;
	ev.u.acl.why = "publish not authorized";
	const char *j = render(&ev, "n", 1, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"acl.denied\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"client_id\":\"c\\n1\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"username\":\"u\\u001b[31m\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"topic\":\"a/\\r\\nb\",\"access\":\"publish\""));
	for (const char *p = j; *p; p++)
		CU_ASSERT((unsigned char)*p >= 0x20);
}

static const struct test_case registry[] = {
	{ "callbacks in registration order", test_registry_order },
	{ "many callbacks per event", test_registry_many },
	{ "bad registrations refused", test_registry_rejects },
	{ "frozen event names", test_event_names },
	{ NULL, NULL },
};
static const struct test_case json[] = {
	{ "client.connected exact", test_json_connected_exact },
	{ "client.refused v5 and 3.1.1", test_json_refused_v5 },
	{ "client.subscribed exact", test_json_subscribed_exact },
	{ "message.published v5 properties exact", test_json_published_v5_exact },
	{ "message events fields", test_json_message_events },
	{ "disconnect, ping, session events", test_json_other_events },
	{ "string escaping", test_json_escaping },
	{ "acl.denied, hostile names escaped", test_json_acl_denied },
	{ "every byte escapes to valid JSON", test_json_escaping_all_bytes },
	{ "base64 RFC 4648 vectors", test_json_base64 },
	{ "large topic grows the buffer", test_json_large_topic },
	{ "user property iterator", test_user_property_iterator },
	{ NULL, NULL },
};
static const struct test_case zmq[] = {
	{ "multipart framing and topic suffix", test_zmq_framing },
	{ "prefix filtering skips rendering", test_zmq_prefix_filter },
	{ "sequence numbers per socket", test_zmq_sequence },
	{ "two endpoints, restart with none", test_zmq_two_endpoints },
	{ "bad endpoints and keys refused", test_zmq_bad_config },
	{ "HWM drops counted, never blocks", test_zmq_hwm_drops },
	{ "CurveZMQ server keys", test_zmq_curve },
	{ NULL, NULL },
};

static const struct test_suite hooks_suites[] = {
	{"hooks_registry", registry},
	{"hooks_json", json},
	{"hooks_zmq", zmq},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	zctx = zmq_ctx_new();
	int rc = test_runner_run(argc, argv, hooks_suites);
	zmq_ctx_term(zctx);
	return rc;
}
