/*
 * test_http.c - the HTTP request-head parser (fed whole, byte by byte and
 * at every split), the WebSocket opening-handshake rules, the request
 * path as a file name, and the PROXY protocol header (versions 1 and 2).
 */
#include <stdio.h>
#include <string.h>

#include "codec/http.h"
#include "codec/proxy.h"
#include "tests/unit/runner.h"

#define UPGRADE_HEAD                                     \
	"GET /mqtt HTTP/1.1\r\n"                          \
	"Host: 127.0.0.1:8080\r\n"                        \
	"Upgrade: websocket\r\n"                          \
	"Connection: keep-alive, Upgrade\r\n"             \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
	"Sec-WebSocket-Version: 13\r\n"                   \
	"Sec-WebSocket-Protocol: mqtt\r\n"

/* Parses text whole; returns the feed result. */
static int parse(struct http_request *r, const char *text)
{
	http_request_init(r);
	return http_request_feed(r, (const uint8_t *)text, strlen(text));
}

static bool span_is(const char *buf, struct http_span s, const char *want)
{
	return s.len == strlen(want) && memcmp(buf + s.off, want, s.len) == 0;
}

static void test_request_whole(void)
{
	struct http_request r;
	const char *t = UPGRADE_HEAD "\r\nextra";
	CU_ASSERT_EQUAL_FATAL(parse(&r, t), HTTP_DONE);
	CU_ASSERT_TRUE(span_is(t, r.method, "GET"));
	CU_ASSERT_TRUE(span_is(t, r.target, "/mqtt"));
	CU_ASSERT_TRUE(span_is(t, r.path, "/mqtt"));
	CU_ASSERT_EQUAL(r.major, 1);
	CU_ASSERT_EQUAL(r.minor, 1);
	CU_ASSERT_EQUAL(r.n_fields, 6);
	CU_ASSERT_EQUAL(r.head_len, strlen(t) - 5);
	const struct http_field *f = http_request_field(&r, (const uint8_t *)t, "connection");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_TRUE(span_is(t, f->value, "keep-alive, Upgrade"));
	CU_ASSERT_TRUE(http_list_has((const uint8_t *)t + f->value.off, f->value.len, "upgrade"));
	CU_ASSERT_FALSE(http_list_has((const uint8_t *)t + f->value.off, f->value.len, "upgrad"));
}

/* The same head at every split point and byte by byte gives the same
 * result: offsets are kept, nothing is rescanned. */
static void test_request_splits(void)
{
	const char *t = UPGRADE_HEAD "Cookie: a=b; c=d \r\n\r\n";
	size_t n = strlen(t);
	struct http_request whole;
	CU_ASSERT_EQUAL_FATAL(parse(&whole, t), HTTP_DONE);
	for (size_t cut = 0; cut <= n; cut++) {
		struct http_request r;
		http_request_init(&r);
		int rc = http_request_feed(&r, (const uint8_t *)t, cut);
		CU_ASSERT_EQUAL(rc, cut == n ? HTTP_DONE : HTTP_MORE);
		rc = http_request_feed(&r, (const uint8_t *)t, n);
		CU_ASSERT_EQUAL(rc, HTTP_DONE);
		CU_ASSERT_EQUAL(r.head_len, whole.head_len);
		CU_ASSERT_EQUAL(r.n_fields, whole.n_fields);
		CU_ASSERT_EQUAL(memcmp(r.fields, whole.fields, sizeof(r.fields)), 0);
	}
	struct http_request r;
	http_request_init(&r);
	int rc = HTTP_MORE;
	for (size_t i = 1; i <= n && rc == HTTP_MORE; i++)
		rc = http_request_feed(&r, (const uint8_t *)t, i);
	CU_ASSERT_EQUAL(rc, HTTP_DONE);
	CU_ASSERT_EQUAL(r.head_len, n);
	const struct http_field *f = http_request_field(&r, (const uint8_t *)t, "Cookie");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_TRUE(span_is(t, f->value, "a=b; c=d"));
}

static void test_request_forms(void)
{
	struct http_request r;
	const char *t = "GET http://example.com:8080/a/b?x=1 HTTP/1.1\nHost: h\n\n";
	CU_ASSERT_EQUAL_FATAL(parse(&r, t), HTTP_DONE);
	CU_ASSERT_TRUE(span_is(t, r.path, "/a/b"));
	CU_ASSERT_TRUE(span_is(t, r.query, "x=1"));
	t = "GET /index.html?v=2 HTTP/1.0\r\n\r\n";
	CU_ASSERT_EQUAL(parse(&r, t), HTTP_DONE);
	CU_ASSERT_TRUE(span_is(t, r.path, "/index.html"));
	CU_ASSERT_EQUAL(r.minor, 0);
	t = "GET / HTTP/1.1\r\nEmpty:\r\nX:   \t \r\n\r\n";
	CU_ASSERT_EQUAL_FATAL(parse(&r, t), HTTP_DONE);
	CU_ASSERT_EQUAL(r.fields[0].value.len, 0);
	CU_ASSERT_EQUAL(r.fields[1].value.len, 0);
}

static void test_request_syntax_errors(void)
{
	static const char *const bad[] = {
		"GET  / HTTP/1.1\r\n\r\n",             /* two spaces */
		"GET / HTTP/1.1\r\nNo colon\r\n\r\n",   /* field without ':' */
		"GET / HTTP/1.1\r\n folded\r\n\r\n",    /* obsolete line folding */
		"GET / HTTP/1.1\r\nA: b\x01\r\n\r\n",   /* control character in a value */
		"GET / HTTP/1.1\r\nA b: c\r\n\r\n",     /* space in a name */
		"GET / HTTP/1.1\r\r\n",                 /* CR without LF */
		"GET /a b HTTP/1.1\r\n\r\n",            /* space in the target */
		"GET /%zz HTTP/1.1\r\n\r\n",            /* bad escape */
		"GET example.com:80 HTTP/1.1\r\n\r\n",  /* authority form */
		"GET / FTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00",                  /* a TLS ClientHello */
		"\x10\x0c\x00\x04MQTT",                  /* an MQTT CONNECT */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct http_request r;
		int rc = parse(&r, bad[i]);
		CU_ASSERT_EQUAL(rc, HTTP_ERR_SYNTAX);
		if (rc != HTTP_ERR_SYNTAX)
			fprintf(stderr, "not refused (%d): %s\n", rc, bad[i]);
		/* An error sticks. */
		CU_ASSERT_EQUAL(http_request_feed(&r, (const uint8_t *)"GET", 3), HTTP_ERR_SYNTAX);
	}
}

static void test_request_field_bound(void)
{
	char t[4096];
	size_t o = (size_t)snprintf(t, sizeof(t), "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_FIELDS; i++)
		o += (size_t)snprintf(t + o, sizeof(t) - o, "X-%d: v\r\n", i);
	snprintf(t + o, sizeof(t) - o, "\r\n");
	struct http_request r;
	CU_ASSERT_EQUAL(parse(&r, t), HTTP_DONE);
	snprintf(t + o, sizeof(t) - o, "One-more: v\r\n\r\n");
	CU_ASSERT_EQUAL(parse(&r, t), HTTP_ERR_FIELDS);
}

/* ---- the opening handshake ---------------------------------------------- */

static int decide(const char *head, const char *path, bool files, struct http_ws_answer *a)
{
	struct http_request r;
	char t[2048];
	snprintf(t, sizeof(t), "%s\r\n", head);
	CU_ASSERT_EQUAL_FATAL(parse(&r, t), HTTP_DONE);
	http_ws_decide(&r, (const uint8_t *)t, path, files, a);
	if (a->status == 101) {
		CU_ASSERT_TRUE(span_is(t, a->key, "dGhlIHNhbXBsZSBub25jZQ=="));
	}
	return a->status;
}

static void test_ws_upgrade(void)
{
	struct http_ws_answer a;
	CU_ASSERT_EQUAL(decide(UPGRADE_HEAD, NULL, false, &a), 101);
	CU_ASSERT_STRING_EQUAL(a.subprotocol, "mqtt");
	CU_ASSERT_EQUAL(decide(UPGRADE_HEAD, "/mqtt", false, &a), 101);
	CU_ASSERT_EQUAL(decide(UPGRADE_HEAD, "/other", false, &a), 404);
	/* The client's order among what midge speaks. */
	CU_ASSERT_EQUAL(decide("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n"
			       "Connection: upgrade\r\nSec-WebSocket-Version: 13\r\n"
			       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			       "Sec-WebSocket-Protocol: chat, mqttv3.1\r\n"
			       "Sec-WebSocket-Protocol: mqtt\r\n",
			       NULL, false, &a),
			101);
	CU_ASSERT_STRING_EQUAL(a.subprotocol, "mqttv3.1");
	/* No subprotocol offered: accepted, answered without one. */
	CU_ASSERT_EQUAL(decide("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
			       "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
			       NULL, false, &a),
			101);
	CU_ASSERT_PTR_NULL(a.subprotocol);
}

static void test_ws_refusals(void)
{
	struct http_ws_answer a;
	const char *base = "Host: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
	char t[1024];
	/* [MQTT-6.0.0-3]: subprotocols offered, none of them MQTT. */
	snprintf(t, sizeof(t), "GET / HTTP/1.1\r\n%sSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: MQTT, chat\r\n",
		 base);
	CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 400);
	/* Wrong or missing version: 426. */
	snprintf(t, sizeof(t), "GET / HTTP/1.1\r\n%sSec-WebSocket-Version: 8\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", base);
	CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 426);
	snprintf(t, sizeof(t), "GET / HTTP/1.1\r\n%sSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
		 base);
	CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 426);
	/* Missing, short, repeated or non-base64 key: 400. */
	static const char *const keys[] = {
		"",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\n",
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		snprintf(t, sizeof(t), "GET / HTTP/1.1\r\n%sSec-WebSocket-Version: 13\r\n%s", base,
			 keys[i]);
		CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 400);
	}
	/* No Host, HTTP/1.0, no Connection: Upgrade, POST. */
	CU_ASSERT_EQUAL(decide("GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
			       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
			       NULL, false, &a),
			400);
	snprintf(t, sizeof(t), "GET / HTTP/1.0\r\n%sSec-WebSocket-Version: 13\r\n"
		 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", base);
	CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 400);
	CU_ASSERT_EQUAL(decide("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
			       "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
			       NULL, false, &a),
			400);
	snprintf(t, sizeof(t), "POST / HTTP/1.1\r\n%s", base);
	CU_ASSERT_EQUAL(decide(t, NULL, false, &a), 405);
	/* Not an upgrade: 426 without http_dir, a file with it. */
	CU_ASSERT_EQUAL(decide("GET /index.html HTTP/1.1\r\nHost: h\r\n", NULL, false, &a), 426);
	CU_ASSERT_EQUAL(decide("GET /index.html HTTP/1.1\r\nHost: h\r\n", NULL, true, &a), 200);
	CU_ASSERT_FALSE(a.head);
	CU_ASSERT_EQUAL(decide("HEAD / HTTP/1.0\r\n", NULL, true, &a), 200);
	CU_ASSERT_TRUE(a.head);
	CU_ASSERT_EQUAL(decide("DELETE / HTTP/1.1\r\nHost: h\r\n", NULL, true, &a), 405);
}

static void test_path_file(void)
{
	char out[64];
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"/", ""}, {"/index.html", "index.html"}, {"/a//b/", "a/b/"},
		{"/a%20b.js", "a b.js"}, {"/dir/x.y", "dir/x.y"}, {"/a.b/c", "a.b/c"},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		int n = http_path_file((const uint8_t *)ok[i].in, strlen(ok[i].in), out, sizeof(out));
		CU_ASSERT_EQUAL(n, (int)strlen(ok[i].out));
		CU_ASSERT_STRING_EQUAL(out, ok[i].out);
	}
	static const char *const bad[] = {
		"/..", "/a/../b", "/%2e%2e/x", "/.hidden", "/a/./b", "/a%2fb", "/a%00b",
		"/a\\b", "/%4", "/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CU_ASSERT_EQUAL(http_path_file((const uint8_t *)bad[i], strlen(bad[i]), out, sizeof(out)),
				-1);
}

/* ---- PROXY --------------------------------------------------------------- */

static void test_proxy_v1(void)
{
	struct proxy_info pi;
	const char *t = "PROXY TCP4 192.0.2.7 10.0.0.1 56324 1883\r\n\x10";
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)t, strlen(t), 1, &pi), (int)strlen(t) - 1);
	CU_ASSERT_EQUAL(pi.family, PROXY_INET);
	CU_ASSERT_EQUAL(pi.port, 56324);
	CU_ASSERT_EQUAL(memcmp(pi.addr, "\xc0\x00\x02\x07", 4), 0);
	/* Every prefix is "more", never an error. */
	for (size_t i = 0; i < strlen(t) - 1; i++)
		CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)t, i, 1, &pi), PROXY_MORE);
	t = "PROXY TCP6 2001:db8::1 ::1 1 65535\r\n";
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)t, strlen(t), 1, &pi), (int)strlen(t));
	CU_ASSERT_EQUAL(pi.family, PROXY_INET6);
	CU_ASSERT_EQUAL(pi.port, 1);
	t = "PROXY UNKNOWN whatever\r\n";
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)t, strlen(t), 1, &pi), (int)strlen(t));
	CU_ASSERT_EQUAL(pi.family, PROXY_LOCAL);
	static const char *const bad[] = {
		"\x10\x0c\x00\x04MQTT", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)bad[i], strlen(bad[i]), 1, &pi), PROXY_ERR);
		CU_ASSERT_PTR_NOT_NULL(pi.why);
	}
	/* A v2 header on a v1 listener. */
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)"\r\n\r\n\0\r\nQUIT\n", 12, 1, &pi), PROXY_ERR);
}

static size_t v2_header(uint8_t *b, uint8_t cmd, uint8_t fam, const uint8_t *rest, size_t n)
{
	memcpy(b, "\r\n\r\n\0\r\nQUIT\n", 12);
	b[12] = (uint8_t)(0x20 | cmd);
	b[13] = fam;
	b[14] = (uint8_t)(n >> 8);
	b[15] = (uint8_t)n;
	if (n)
		memcpy(b + 16, rest, n);
	return 16 + n;
}

static void test_proxy_v2(void)
{
	struct proxy_info pi;
	uint8_t b[2048];
	/* IPv4 203.0.113.9:4242, an SSL TLV (verified certificate, CN "dev-7"). */
	const uint8_t v4[] = {203, 0, 113, 9, 10, 0, 0, 1, 0x10, 0x92, 0x07, 0x5b,
			      0x20, 0, 13, 0x07, 0, 0, 0, 0, 0x22, 0, 5, 'd', 'e', 'v', '-', '7'};
	size_t n = v2_header(b, 1, 0x11, v4, sizeof(v4));
	b[n] = 0x10;
	CU_ASSERT_EQUAL(proxy_parse(b, n + 1, 2, &pi), (int)n);
	CU_ASSERT_EQUAL(pi.family, PROXY_INET);
	CU_ASSERT_EQUAL(pi.port, 4242);
	CU_ASSERT_TRUE(pi.tls);
	CU_ASSERT_TRUE(pi.cert_verified);
	CU_ASSERT_EQUAL(pi.cn_len, 5);
	CU_ASSERT_EQUAL(memcmp(b + pi.cn_off, "dev-7", 5), 0);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL(proxy_parse(b, i, 2, &pi), PROXY_MORE);
	/* LOCAL: the connection's own address stays. */
	n = v2_header(b, 0, 0x00, NULL, 0);
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), (int)n);
	CU_ASSERT_EQUAL(pi.family, PROXY_LOCAL);
	/* IPv6 and UNIX. */
	uint8_t v6[36] = {0x20, 0x01, 0x0d, 0xb8};
	v6[15] = 1;
	v6[32] = 0x01;
	v6[33] = 0xbb;
	n = v2_header(b, 1, 0x21, v6, sizeof(v6));
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), (int)n);
	CU_ASSERT_EQUAL(pi.family, PROXY_INET6);
	CU_ASSERT_EQUAL(pi.port, 443);
	CU_ASSERT_FALSE(pi.tls);
	uint8_t un[216] = "/run/client.sock";
	n = v2_header(b, 1, 0x31, un, sizeof(un));
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), (int)n);
	CU_ASSERT_EQUAL(pi.family, PROXY_UNIX);
	CU_ASSERT_STRING_EQUAL(pi.path, "/run/client.sock");
	/* Malformed: version 1 in the v2 byte, a short address block, a TLV
	 * running past the header, an unknown family, an oversized header,
	 * a v1 line, an MQTT CONNECT. */
	n = v2_header(b, 1, 0x11, v4, sizeof(v4));
	b[12] = 0x11;
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), PROXY_ERR);
	n = v2_header(b, 1, 0x11, v4, 8);
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), PROXY_ERR);
	n = v2_header(b, 1, 0x11, v4, 20);
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), PROXY_ERR);
	n = v2_header(b, 1, 0x41, v4, 12);
	CU_ASSERT_EQUAL(proxy_parse(b, n, 2, &pi), PROXY_ERR);
	static const uint8_t zeros[1100];
	n = v2_header(b, 1, 0x11, zeros, sizeof(zeros));
	CU_ASSERT_EQUAL(proxy_parse(b, 16, 2, &pi), PROXY_ERR);
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)"PROXY TCP4", 10, 2, &pi), PROXY_ERR);
	CU_ASSERT_EQUAL(proxy_parse((const uint8_t *)"\x10\x0c", 2, 2, &pi), PROXY_ERR);
}

static const struct test_case http_cases[] = {
	{"request_whole", test_request_whole},
	{"request_splits", test_request_splits},
	{"request_forms", test_request_forms},
	{"request_syntax_errors", test_request_syntax_errors},
	{"request_field_bound", test_request_field_bound},
	{NULL, NULL},
};

static const struct test_case ws_cases[] = {
	{"MQTT-6.0.0-4_upgrade", test_ws_upgrade},
	{"MQTT-6.0.0-3_refusals", test_ws_refusals},
	{"path_file", test_path_file},
	{NULL, NULL},
};

static const struct test_case proxy_cases[] = {
	{"v1", test_proxy_v1},
	{"v2", test_proxy_v2},
	{NULL, NULL},
};

static const struct test_suite http_suites[] = {
	{"http", http_cases},
	{"websocket_handshake", ws_cases},
	{"proxy", proxy_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(http_suites)
