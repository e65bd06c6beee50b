/*
 * test_zauth.c - the auth worker protocol (auth/zproto.c: the connect
 * request, answers and greetings, bounds and refusals), the rules an
 * answer carries (auth/rules.c: first match, actions, %c/%u, $ topics,
 * filters), the configuration keys (auth/zconf.c: the fail-closed
 * endpoint checks) and the worker socket's affinity (auth/zworker.c:
 * requests for one worker, with real ZeroMQ peers).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <unistd.h>
#include <zmq.h>

#include "auth/zconf.h"
#include "auth/zproto.h"
#include "auth/rules.h"
#include "auth/zworker.h"
#include "tests/unit/runner.h"

static int parse(const char *text, struct zproto_answer *a)
{
	char err[200];
	return zproto_parse(text, strlen(text), a, err, sizeof err);
}

static void test_request(void)
{
	struct zproto_connect q = {
		.client_id = {"dev-1", 5},
		.username = {"alice", 5},
		.password = {"\x00\xffpw", 4},
		.peer = "10.0.0.7",
		.peer_port = 4242,
		.listener = 2,
		.protocol = 5,
		.tls = true,
	};
	char *out;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(zproto_connect_request(&q, 77, &out, &len), 0);
	json_error_t je;
	json_t *o = json_loadb(out, len, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "version")), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "type")), "connect");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "id")), "77");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "client_id")), "dev-1");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "username")), "alice");
	/* binary passwords survive: base64 of 00 ff 70 77 */
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "password")), "AP9wdw==");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "peer")), "10.0.0.7");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "listener")), 2);
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "tls")));
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "tls_subject")));
	json_decref(o);
	zproto_wipe(out, len);
	/* absent user name and password are null, not "" */
	struct zproto_connect anon = {.client_id = {"c", 1}, .protocol = 4};
	CU_ASSERT_EQUAL_FATAL(zproto_connect_request(&anon, 1, &out, &len), 0);
	o = json_loadb(out, len, 0, &je);
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "username")));
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "password")));
	json_decref(o);
	zproto_wipe(out, len);
}

static void test_answers(void)
{
	struct zproto_answer a;
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"type\":\"ready\"}", &a), ZPROTO_READY);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"5\",\"result\":\"allow\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.allow);
	CU_ASSERT_EQUAL(a.id, 5);
	CU_ASSERT_PTR_NULL(a.rules);
	zproto_answer_clear(&a);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"18446744073709551615\",\"result\":\"allow\","
			      "\"username\":\"bob@corp\",\"session_expiry_max\":60,\"cache\":false,"
			      "\"acl\":[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a/#\"}]}",
			      &a),
			ZPROTO_ANSWER);
	CU_ASSERT_EQUAL(a.id, UINT64_MAX);
	CU_ASSERT_STRING_EQUAL(a.username, "bob@corp");
	CU_ASSERT_TRUE(a.has_expiry_max);
	CU_ASSERT_EQUAL(a.expiry_max, 60);
	CU_ASSERT_TRUE(a.no_cache);
	CU_ASSERT_EQUAL(rules_count(a.rules), 1);
	zproto_answer_clear(&a);
	/* deny: the worker's code when it is a refusal [MQTT-3.2.2-6], else 0x87 */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"1\",\"result\":\"deny\",\"reason_code\":134}",
			      &a),
			ZPROTO_ANSWER);
	CU_ASSERT_FALSE(a.allow);
	CU_ASSERT_EQUAL(a.reason_code, 0x86);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"1\",\"result\":\"deny\",\"reason_code\":0}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_EQUAL(a.reason_code, 0x87);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"1\",\"result\":\"deny\"}", &a), ZPROTO_ANSWER);
	CU_ASSERT_EQUAL(a.reason_code, 0x87);
}

/* "defer": the chain's next source decides (docs/auth.md); what else the
 * answer says is not read, and an older worker's answers keep parsing. */
static void test_defer(void)
{
	struct zproto_answer a;
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"5\",\"result\":\"defer\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.defer);
	CU_ASSERT_FALSE(a.allow);
	CU_ASSERT_FALSE(a.cont);
	CU_ASSERT_FALSE(a.no_cache);
	zproto_answer_clear(&a);
	/* allow's fields on a defer are ignored, not applied */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"6\",\"result\":\"defer\",\"cache\":false,"
			      "\"username\":\"root\",\"acl\":[{\"permission\":\"allow\","
			      "\"action\":\"all\",\"topic\":\"#\"}]}",
			      &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.defer && a.no_cache);
	CU_ASSERT_PTR_NULL(a.username);
	CU_ASSERT_PTR_NULL(a.rules);
	zproto_answer_clear(&a);
	/* an allow or deny is never a defer */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"7\",\"result\":\"allow\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_FALSE(a.defer);
	zproto_answer_clear(&a);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"7\",\"result\":\"Defer\"}", &a), -1);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"7\",\"result\":\"deferred\"}", &a), -1);
	CU_ASSERT_EQUAL(parse("{\"version\":2,\"id\":\"7\",\"result\":\"defer\"}", &a), -1);
}

/* MQTT 5 enhanced authentication: the `auth` request and the answers
 * that carry the method's data. */
static void test_enhanced(void)
{
	struct zproto_connect q = {.client_id = {"dev-1", 5}, .peer = "10.0.0.7", .protocol = 5};
	struct zproto_auth a = {.step = ZPROTO_STEP_REAUTH, .method = {"SCRAM-SHA-256", 13},
				.data = {"\x00\xffpw", 4}};
	char *out;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(zproto_auth_request(&q, &a, 9, &out, &len), 0);
	json_error_t je;
	json_t *o = json_loadb(out, len, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "type")), "auth");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "id")), "9");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "step")), "reauthenticate");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "method")), "SCRAM-SHA-256");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "data")), "AP9wdw==");
	CU_ASSERT_PTR_NULL(json_object_get(o, "password")); /* the method authenticates */
	json_decref(o);
	zproto_wipe(out, len);
	/* no Authentication Data: null; an empty one: "" */
	a.step = ZPROTO_STEP_CONNECT;
	a.data.p = NULL;
	CU_ASSERT_EQUAL_FATAL(zproto_auth_request(&q, &a, 10, &out, &len), 0);
	o = json_loadb(out, len, 0, &je);
	CU_ASSERT_TRUE(json_is_null(json_object_get(o, "data")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "step")), "connect");
	json_decref(o);
	zproto_wipe(out, len);

	struct zproto_answer r;
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"9\",\"result\":\"continue\","
			      "\"data\":\"AP9wdw==\"}", &r),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(r.cont);
	CU_ASSERT_FALSE(r.allow);
	CU_ASSERT_TRUE(r.has_data);
	CU_ASSERT_EQUAL(r.data_len, 4);
	CU_ASSERT_EQUAL(memcmp(r.data, "\x00\xffpw", 4), 0);
	zproto_answer_clear(&r);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"9\",\"result\":\"allow\",\"data\":\"\"}",
			      &r), ZPROTO_ANSWER);
	CU_ASSERT_TRUE(r.allow && r.has_data && r.data_len == 0);
	zproto_answer_clear(&r);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"9\",\"result\":\"continue\"}", &r),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(r.cont && !r.has_data && !r.data);
	zproto_answer_clear(&r);
	/* data that is not base64, or not a string, or over 65535 bytes */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"9\",\"result\":\"continue\","
			      "\"data\":\"no base64!\"}", &r), -1);
	CU_ASSERT_PTR_NULL(r.data);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"9\",\"result\":\"continue\","
			      "\"data\":5}", &r), -1);
	size_t n = 87400;
	char *big = malloc(n + 80);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	int k = snprintf(big, 80, "{\"version\":1,\"id\":\"9\",\"result\":\"continue\",\"data\":\"");
	memset(big + k, 'A', n); /* 87400 characters: 65550 bytes */
	memcpy(big + k + n, "\"}", 3);
	CU_ASSERT_EQUAL(parse(big, &r), -1);
	CU_ASSERT_PTR_NULL(r.data);
	free(big);
}

/* Per-message `acl` requests: the request's JSON, and "acl": "ask" in a
 * connect answer (any other string is a bad answer). */
static void test_acl_requests(void)
{
	struct zproto_connect q = {.client_id = {"dev-1", 5}, .username = {"eve", 3},
				   .password = {"pw", 2}, .protocol = 4};
	struct zproto_bytes topic = {"dev/1/temp", 10};
	char *out;
	size_t len;
	CU_ASSERT_EQUAL_FATAL(
		zproto_acl_request(&q, ZPROTO_ACL_PUBLISH, &topic, 2, true, 12, &out, &len), 0);
	json_error_t je;
	json_t *o = json_loadb(out, len, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "version")), 1);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "type")), "acl");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "id")), "12");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "client_id")), "dev-1");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "username")), "eve");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "action")), "publish");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "topic")), "dev/1/temp");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "qos")), 2);
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "retain")));
	CU_ASSERT_PTR_NULL(json_object_get(o, "password")); /* never sent again */
	json_decref(o);
	zproto_wipe(out, len);
	CU_ASSERT_EQUAL_FATAL(
		zproto_acl_request(&q, ZPROTO_ACL_SUBSCRIBE, &topic, 1, false, 13, &out, &len), 0);
	o = json_loadb(out, len, 0, &je);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "action")), "subscribe");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "qos")), 1);
	CU_ASSERT_TRUE(json_is_false(json_object_get(o, "retain")));
	json_decref(o);
	zproto_wipe(out, len);
	/* a delivery: "receive", the delivery's QoS and the flag the client gets */
	CU_ASSERT_EQUAL_FATAL(
		zproto_acl_request(&q, ZPROTO_ACL_RECEIVE, &topic, 0, true, 16, &out, &len), 0);
	o = json_loadb(out, len, 0, &je);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "action")), "receive");
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "qos")), 0);
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "retain")));
	json_decref(o);
	zproto_wipe(out, len);
	CU_ASSERT_EQUAL(zproto_acl_request(&q, (enum zproto_action)7, &topic, 0, false, 14, &out, &len),
			-1);
	CU_ASSERT_EQUAL(zproto_acl_request(&q, ZPROTO_ACL_PUBLISH, &topic, 3, false, 14, &out, &len),
			-1); /* QoS 3 does not exist [MQTT-3.3.1-4] */
	struct zproto_bytes bad = {"\xff", 1}; /* not UTF-8 */
	CU_ASSERT_EQUAL(zproto_acl_request(&q, ZPROTO_ACL_PUBLISH, &bad, 0, false, 15, &out, &len),
			-1);

	struct zproto_answer a;
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"ask\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.allow && a.acl_ask && !a.rules && !a.receive_ask);
	zproto_answer_clear(&a);
	/* deliveries asked too; "subscribe" is the default said aloud */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"ask\","
			      "\"receive\":\"ask\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.acl_ask && a.receive_ask);
	zproto_answer_clear(&a);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"ask\","
			      "\"receive\":\"subscribe\"}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(a.acl_ask && !a.receive_ask);
	zproto_answer_clear(&a);
	/* without "acl": "ask" nobody would be asked: a bad answer, as a
	 * value that is neither */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"receive\":\"ask\"}",
			      &a), -1);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"ask\","
			      "\"receive\":true}", &a), -1);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"ask\","
			      "\"receive\":\"always\"}", &a), -1);
	/* an `acl` answer that holds for every QoS and retain flag */
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"4\",\"result\":\"deny\",\"any_qos_retain\":true}",
			      &a),
			ZPROTO_ANSWER);
	CU_ASSERT_TRUE(!a.allow && a.any_qos_retain);
	zproto_answer_clear(&a);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"4\",\"result\":\"allow\"}", &a), ZPROTO_ANSWER);
	CU_ASSERT_FALSE(a.any_qos_retain); /* the default: per QoS and retain flag */
	zproto_answer_clear(&a);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"4\",\"result\":\"allow\",\"any_qos_retain\":1}",
			      &a),
			-1);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":\"always\"}",
			      &a), -1);
	CU_ASSERT_EQUAL(parse("{\"version\":1,\"id\":\"3\",\"result\":\"allow\",\"acl\":[]}", &a),
			ZPROTO_ANSWER);
	CU_ASSERT_FALSE(a.acl_ask);
	zproto_answer_clear(&a);
}

static void test_bad_answers(void)
{
	static const char *bad[] = {
		"",
		"[]",
		"{\"id\":\"1\",\"result\":\"allow\"}",                     /* no version */
		"{\"version\":2,\"id\":\"1\",\"result\":\"allow\"}",       /* another version */
		"{\"version\":1,\"id\":1,\"result\":\"allow\"}",           /* id not a string */
		"{\"version\":1,\"id\":\"-1\",\"result\":\"allow\"}",
		"{\"version\":1,\"id\":\"1x\",\"result\":\"allow\"}",
		"{\"version\":1,\"id\":\"99999999999999999999999\",\"result\":\"allow\"}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"maybe\"}",
		"{\"version\":1,\"id\":\"1\",\"id\":\"2\",\"result\":\"allow\"}", /* duplicate key */
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"username\":\"\"}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"username\":\"a\\u0000b\"}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"session_expiry_max\":-1}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"session_expiry_max\":4294967296}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"acl\":{}}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"acl\":[{\"permission\":\"allow\"}]}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"acl\":[{\"permission\":\"x\","
		"\"action\":\"all\",\"topic\":\"a\"}]}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"acl\":[{\"permission\":\"allow\","
		"\"action\":\"read\",\"topic\":\"a\"}]}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"acl\":[{\"permission\":\"allow\","
		"\"action\":\"all\",\"topic\":\"\"}]}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"allow\",\"cache\":1}",
		"{\"version\":1,\"id\":\"1\",\"result\":\"deny\",\"reason_code\":\"x\"}",
		NULL,
	};
	struct zproto_answer a;
	for (int i = 0; bad[i]; i++) {
		int rc = parse(bad[i], &a);
		if (rc >= 0)
			fprintf(stderr, "accepted: %s\n", bad[i]);
		CU_ASSERT_EQUAL(rc, -1);
		CU_ASSERT_PTR_NULL(a.username);
		CU_ASSERT_PTR_NULL(a.rules);
	}
	/* over the bound, whatever it holds */
	size_t n = ZPROTO_MAX_MSG + 1;
	char *big = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, ' ', n);
	CU_ASSERT_EQUAL(zproto_parse(big, n, &a, (char[80]){0}, 80), -1);
	free(big);
}

/* How a worker's rules are read (auth/zproto.c). */
static const struct rules_opts worker_opts = {.max = RULES_MAX_WORKER};

/* Rules from JSON text. */
static struct rules *rules(const char *text)
{
	json_error_t je;
	char err[200];
	json_t *arr = json_loads(text, 0, &je);
	CU_ASSERT_PTR_NOT_NULL_FATAL(arr);
	struct rules *r = rules_from_json(arr, &worker_opts, err, sizeof err);
	json_decref(arr);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	return r;
}

static bool may_qr(const struct rules *r, const char *cid, const char *user, const char *topic,
		   enum rules_access a, uint8_t qos, bool retain)
{
	struct rules_who who = {cid, strlen(cid), user, user ? strlen(user) : 0};
	return rules_check(r, &who, (const uint8_t *)topic, strlen(topic), a, qos, retain);
}

static bool may(const struct rules *r, const char *cid, const char *user, const char *topic,
		enum rules_access a)
{
	return may_qr(r, cid, user, topic, a, 0, false);
}

static void test_rules_first_match(void)
{
	struct rules *r = rules("[{\"permission\":\"deny\",\"action\":\"all\",\"topic\":\"a/secret\"},"
				 "{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"a/#\"},"
				 "{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"n/+\"}]");
	CU_ASSERT_FALSE(may(r, "c", "u", "a/secret", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", "u", "a/x", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", "u", "a", RULES_PUBLISH)); /* '#' covers its parent */
	CU_ASSERT_FALSE(may(r, "c", "u", "a/x", RULES_RECEIVE)); /* publish rules do not read */
	CU_ASSERT_TRUE(may(r, "c", "u", "n/1", RULES_RECEIVE));
	CU_ASSERT_FALSE(may(r, "c", "u", "n/1/2", RULES_RECEIVE));
	CU_ASSERT_FALSE(may(r, "c", "u", "n/1", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "c", "u", "zzz", RULES_PUBLISH)); /* nothing matching denies */
	rules_unref(r);
	r = rules("[]");
	CU_ASSERT_FALSE(may(r, "c", "u", "a", RULES_PUBLISH));
	rules_unref(r);
}

static void test_rules_filters(void)
{
	struct rules *r = rules("[{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"n/+\"},"
				 "{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"m/#\"}]");
	CU_ASSERT_TRUE(may(r, "c", NULL, "n/+", RULES_SUBSCRIBE));
	CU_ASSERT_TRUE(may(r, "c", NULL, "n/x", RULES_SUBSCRIBE));
	CU_ASSERT_FALSE(may(r, "c", NULL, "n/#", RULES_SUBSCRIBE));
	CU_ASSERT_FALSE(may(r, "c", NULL, "+/x", RULES_SUBSCRIBE));
	CU_ASSERT_TRUE(may(r, "c", NULL, "m/#", RULES_SUBSCRIBE));
	CU_ASSERT_TRUE(may(r, "c", NULL, "m/+/z/#", RULES_SUBSCRIBE));
	CU_ASSERT_TRUE(may(r, "c", NULL, "$share/g/m/a", RULES_SUBSCRIBE));
	CU_ASSERT_FALSE(may(r, "c", NULL, "$share/g", RULES_SUBSCRIBE));
	rules_unref(r);
}

static void test_rules_substitution(void)
{
	struct rules *r = rules("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"c/%c/#\"},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"u/%u\"}]");
	CU_ASSERT_TRUE(may(r, "dev1", "ann", "c/dev1/x", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "dev1", "ann", "c/dev2/x", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "dev1", "ann", "u/ann", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "dev1", NULL, "u/", RULES_PUBLISH)); /* no user: no %u */
	/* a name holding '/' or a wildcard is no single level */
	CU_ASSERT_FALSE(may(r, "a/b", "ann", "c/a/b/x", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "+", "ann", "c/+/x", RULES_SUBSCRIBE));
	rules_unref(r);
}

/* A rule's literal first level is compared before the rule is walked:
 * the shortcut must decide exactly as the walk does. */
static void test_rules_first_level(void)
{
	struct rules *r = rules("[{\"permission\":\"deny\",\"action\":\"all\",\"topic\":\"ab/x\"},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a/#\"},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"solo\"},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"/lead\"},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"%c/own\"}]");
	CU_ASSERT_FALSE(may(r, "c", NULL, "ab/x", RULES_PUBLISH)); /* not "a" by its first byte */
	CU_ASSERT_FALSE(may(r, "c", NULL, "ab/y", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", NULL, "a", RULES_PUBLISH));     /* a topic without '/' */
	CU_ASSERT_TRUE(may(r, "c", NULL, "a/b/c", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", NULL, "solo", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "c", NULL, "sol", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "c", NULL, "solo/x", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", NULL, "/lead", RULES_PUBLISH)); /* an empty first level */
	CU_ASSERT_FALSE(may(r, "c", NULL, "x/lead", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "dev", NULL, "dev/own", RULES_PUBLISH)); /* %c: not literal */
	CU_ASSERT_FALSE(may(r, "dev", NULL, "other/own", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "c", NULL, "+/x", RULES_SUBSCRIBE));
	CU_ASSERT_TRUE(may(r, "c", NULL, "$share/g/a/+", RULES_SUBSCRIBE));
	rules_unref(r);
}

static void test_rules_dollar(void)
{
	/* [MQTT-4.7.2-1]: a leading wildcard does not match a $ topic */
	struct rules *r = rules("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"#\"},"
				 "{\"permission\":\"allow\",\"action\":\"subscribe\","
				 "\"topic\":\"$SYS/#\"}]");
	CU_ASSERT_TRUE(may(r, "c", NULL, "a/b", RULES_PUBLISH));
	CU_ASSERT_FALSE(may(r, "c", NULL, "$SYS/x", RULES_PUBLISH));
	CU_ASSERT_TRUE(may(r, "c", NULL, "$SYS/x", RULES_RECEIVE));
	rules_unref(r);
}

/* EMQX's conditions: "qos" (a level or a list) and "retain" (true,
 * false, "all"); a rule whose condition does not hold is passed over. */
static void test_rules_qos_retain(void)
{
	struct rules *r = rules("[{\"permission\":\"deny\",\"action\":\"publish\",\"topic\":\"t/#\","
				 "\"qos\":2},"
				 "{\"permission\":\"deny\",\"action\":\"publish\",\"topic\":\"t/#\","
				 "\"retain\":true},"
				 "{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"t/#\","
				 "\"qos\":[0,1],\"retain\":false},"
				 "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t/#\","
				 "\"retain\":\"all\"}]");
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "t/a", RULES_PUBLISH, 0, false));
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "t/a", RULES_PUBLISH, 1, false));
	CU_ASSERT_FALSE(may_qr(r, "c", NULL, "t/a", RULES_PUBLISH, 2, false));
	CU_ASSERT_FALSE(may_qr(r, "c", NULL, "t/a", RULES_PUBLISH, 0, true));
	/* retain conditions are about publishes: a subscription and a
	 * delivery see the QoS one only */
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "t/+", RULES_SUBSCRIBE, 1, false));
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "t/a", RULES_RECEIVE, 1, true));
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "t/+", RULES_SUBSCRIBE, 2, false)); /* the 4th rule */
	rules_unref(r);
	r = rules("[{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"s\",\"qos\":[0]}]");
	CU_ASSERT_TRUE(may_qr(r, "c", NULL, "s", RULES_SUBSCRIBE, 0, false));
	CU_ASSERT_FALSE(may_qr(r, "c", NULL, "s", RULES_SUBSCRIBE, 1, false)); /* nothing else matches */
	CU_ASSERT_FALSE(may_qr(r, "c", NULL, "s", RULES_RECEIVE, 2, false));
	rules_unref(r);
	const char *bad[] = {
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":3}]",
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":[]}]",
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":\"1\"}]",
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"qos\":[0,-1]}]",
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"retain\":\"yes\"}]",
		"[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"t\",\"retain\":1}]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_error_t je;
		char err[200] = "";
		json_t *arr = json_loads(bad[i], 0, &je);
		CU_ASSERT_PTR_NULL(rules_from_json(arr, &worker_opts, err, sizeof err));
		CU_ASSERT_TRUE(strstr(err, "qos") || strstr(err, "retain"));
		json_decref(arr);
	}
}

static void test_rules_bounds(void)
{
	char err[200];
	json_t *arr = json_array();
	for (unsigned i = 0; i <= RULES_MAX_WORKER; i++)
		json_array_append_new(arr, json_pack("{s:s,s:s,s:s}", "permission", "allow", "action",
						     "all", "topic", "t"));
	CU_ASSERT_PTR_NULL(rules_from_json(arr, &worker_opts, err, sizeof err));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "at most"));
	json_array_remove(arr, 0);
	struct rules *r = rules_from_json(arr, &worker_opts, err, sizeof err);
	CU_ASSERT_EQUAL(rules_count(r), RULES_MAX_WORKER);
	rules_unref(r);
	json_decref(arr);
}

static int conf_err(const char *lines[][2], char *err, size_t errlen)
{
	struct zauth_conf z;
	char msg[300];
	int handled, rc = 0;
	zauth_conf_init(&z);
	for (int i = 0; lines[i][0] && rc == 0; i++) {
		rc = zauth_conf_set(&z, lines[i][0], lines[i][1], "f.conf:7", msg, sizeof msg,
				    &handled);
		if (rc < 0)
			snprintf(err, errlen, "%s", msg);
	}
	if (rc == 0)
		rc = zauth_conf_check(&z, err, errlen);
	zauth_conf_clear(&z);
	return rc;
}

static void test_conf(void)
{
	char err[400] = "";
	const char *ipc[][2] = {{"midge_auth_endpoint", "ipc:///run/x"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(ipc, err, sizeof err), 0);
	const char *lo[][2] = {{"midge_auth_endpoint", "tcp://127.0.0.1:5555"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(lo, err, sizeof err), 0);
	const char *lo6[][2] = {{"midge_auth_endpoint", "tcp://[::1]:5555"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(lo6, err, sizeof err), 0);
	const char *open[][2] = {{"midge_auth_endpoint", "tcp://*:5555"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(open, err, sizeof err), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "f.conf:7: midge_auth_endpoint tcp://*:5555"));
	const char *tricky[][2] = {{"midge_auth_endpoint", "tcp://127.0.0.1.evil.com:5555"},
				   {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(tricky, err, sizeof err), -1);
	const char *curve[][2] = {{"midge_auth_endpoint", "tcp://*:5555"},
				  {"midge_auth_curve_server_key", "s"},
				  {"midge_auth_curve_worker_keys", "w"},
				  {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(curve, err, sizeof err), 0);
	const char *half[][2] = {{"midge_auth_endpoint", "tcp://*:5555"},
				 {"midge_auth_curve_server_key", "s"},
				 {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(half, err, sizeof err), -1);
	const char *inproc[][2] = {{"midge_auth_endpoint", "inproc://x"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(inproc, err, sizeof err), -1);
	const char *t0[][2] = {{"midge_auth_timeout_ms", "0"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(t0, err, sizeof err), -1);
	const char *ot[][2] = {{"midge_auth_on_timeout", "maybe"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(ot, err, sizeof err), -1);
	const char *acl[][2] = {{"midge_auth_acl_cache_ttl", "0"},
				{"midge_auth_acl_cache_size", "5"},
				{"midge_auth_acl_cache_per_client", "2"},
				{"midge_auth_acl_pending_per_client", "1"},
				{NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(acl, err, sizeof err), 0);
	const char *acl0[][2] = {{"midge_auth_acl_pending_per_client", "0"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(acl0, err, sizeof err), -1);
	const char *acl1[][2] = {{"midge_auth_acl_cache_size", "0"}, {NULL, NULL}};
	CU_ASSERT_EQUAL(conf_err(acl1, err, sizeof err), -1);
}

/* A worker peer: a DEALER with routing identity id, connected and ready. */
static void *worker_peer(void *ctx, const char *endpoint, const char *id)
{
	void *d = zmq_socket(ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(d, ZMQ_ROUTING_ID, id, strlen(id));
	zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
	CU_ASSERT_EQUAL_FATAL(zmq_connect(d, endpoint), 0);
	zmq_send(d, "", 0, ZMQ_SNDMORE);
	const char *ready = "{\"version\": 1, \"type\": \"ready\"}";
	zmq_send(d, ready, strlen(ready), 0);
	return d;
}

/* The id of the request peer d got within ms, or 0. */
static unsigned long worker_got(void *d, int ms)
{
	zmq_pollitem_t it = {d, 0, ZMQ_POLLIN, 0};
	char buf[2048];
	if (zmq_poll(&it, 1, ms) <= 0)
		return 0;
	zmq_recv(d, buf, sizeof buf, 0); /* the empty delimiter */
	int n = zmq_recv(d, buf, sizeof buf - 1, 0);
	if (n < 0)
		return 0;
	buf[n < (int)sizeof buf - 1 ? n : (int)sizeof buf - 1] = '\0';
	const char *at = strstr(buf, "\"id\": \"");
	return at ? strtoul(at + 7, NULL, 10) : 0;
}

static void worker_answer(void *d, unsigned long id)
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "{\"version\": 1, \"id\": \"%lu\", \"result\": \"allow\"}",
			 id);
	zmq_send(d, "", 0, ZMQ_SNDMORE);
	zmq_send(d, buf, (size_t)n, 0);
}

static struct zworker_result *got_result;

static void keep_result(void *ctx, struct zworker_result *r)
{
	(void)ctx;
	r->next = got_result;
	got_result = r;
}

/* Waits up to ms for the result of request id; NULL if none came. */
static struct zworker_result *result_of(struct zworker *z, uint64_t id, int ms)
{
	for (int waited = 0; waited <= ms; waited += 10) {
		zworker_drain(z, keep_result, NULL);
		for (struct zworker_result **pp = &got_result; *pp; pp = &(*pp)->next)
			if ((*pp)->id == id) {
				struct zworker_result *r = *pp;
				*pp = r->next;
				return r;
			}
		usleep(10000);
	}
	return NULL;
}

/* A request's text (the worker thread frees it). */
static char *request_text(unsigned id)
{
	char buf[80];
	snprintf(buf, sizeof buf, "{\"version\": 1, \"type\": \"auth\", \"id\": \"%u\"}", id);
	return strdup(buf);
}

/* A request for one worker waits for it while it is busy (the other,
 * idle, does not get it), reaches it once it answered; a request for a
 * worker not known comes back ZWORKER_GONE at once. */
static void test_affinity(void)
{
	char endpoint[128], err[200];
	snprintf(endpoint, sizeof endpoint, "ipc:///tmp/midge-unit-zworker-%ld", (long)getpid());
	struct zworker_cfg cfg = {.endpoint = endpoint, .timeout_ms = 3000, .queue = 16};
	struct zworker *z = zworker_start(&cfg, err, sizeof err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	void *ctx = zmq_ctx_new();
	void *a = worker_peer(ctx, endpoint, "worker-a");
	void *b = worker_peer(ctx, endpoint, "worker-b");
	for (int i = 0; i < 200 && zworker_known(z) < 2; i++)
		usleep(10000);
	CU_ASSERT_EQUAL_FATAL(zworker_known(z), 2);

	/* request 1 to whoever is free: its answer names the worker */
	char *t = request_text(1);
	CU_ASSERT_EQUAL(zworker_submit(z, 1, t, strlen(t), NULL), 0);
	unsigned long on_a = worker_got(a, 2000), on_b = on_a ? 0 : worker_got(b, 2000);
	CU_ASSERT_TRUE_FATAL(on_a == 1 || on_b == 1);
	void *holder = on_a ? a : b, *other = on_a ? b : a;
	const char *holder_id = on_a ? "worker-a" : "worker-b";
	worker_answer(holder, 1);
	struct zworker_result *r = result_of(z, 1, 2000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(r->status, ZWORKER_ANSWER);
	CU_ASSERT_EQUAL(r->worker.len, strlen(holder_id));
	CU_ASSERT_EQUAL(memcmp(r->worker.ident, holder_id, r->worker.len), 0);
	struct zworker_route route = r->worker;
	zworker_result_free(r);

	/* the holder busy with request 2; request 3 is for it alone */
	t = request_text(2);
	CU_ASSERT_EQUAL(zworker_submit(z, 2, t, strlen(t), &route), 0);
	CU_ASSERT_EQUAL(worker_got(holder, 2000), 2);
	t = request_text(3);
	CU_ASSERT_EQUAL(zworker_submit(z, 3, t, strlen(t), &route), 0);
	CU_ASSERT_EQUAL(worker_got(other, 300), 0); /* idle, yet not given it */
	worker_answer(holder, 2);
	CU_ASSERT_EQUAL(worker_got(holder, 2000), 3);
	worker_answer(holder, 3);
	r = result_of(z, 3, 2000);
	CU_ASSERT_TRUE(r && r->status == ZWORKER_ANSWER);
	zworker_result_free(r);
	zworker_result_free(result_of(z, 2, 2000));

	/* a worker nobody knows */
	struct zworker_route nobody = {.len = 6};
	memcpy(nobody.ident, "nobody", 6);
	t = request_text(4);
	CU_ASSERT_EQUAL(zworker_submit(z, 4, t, strlen(t), &nobody), 0);
	r = result_of(z, 4, 2000);
	CU_ASSERT_TRUE(r && r->status == ZWORKER_GONE);
	zworker_result_free(r);

	zworker_stop(z);
	zmq_close(a);
	zmq_close(b);
	zmq_ctx_term(ctx);
	while (got_result) {
		r = got_result;
		got_result = r->next;
		zworker_result_free(r);
	}
}

static const struct test_case zauth_cases[] = {
	{"connect request", test_request},
	{"MQTT-3.2.2-6 answers", test_answers},
	{"bad answers", test_bad_answers},
	{"acl requests", test_acl_requests},
	{"defer answers", test_defer},
	{"MQTT-4.12.0-2 enhanced authentication", test_enhanced},
	{"rules first match", test_rules_first_match},
	{"rules filters", test_rules_filters},
	{"rules substitution", test_rules_substitution},
	{"rules literal first level", test_rules_first_level},
	{"MQTT-4.7.2-1 rules dollar topics", test_rules_dollar},
	{"rules qos and retain", test_rules_qos_retain},
	{"rules bounds", test_rules_bounds},
	{"configuration", test_conf},
	{"MQTT-4.12.0-2 worker affinity", test_affinity},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"zauth", zauth_cases},
	{NULL, NULL},
};

TEST_RUNNER_MAIN(suites)
