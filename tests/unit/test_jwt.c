/*
 * test_jwt.c - auth/rules.c (EMQX-format rules: parsing, %c/%u, first
 * match, topic and filter matching), auth/chain.c (midge_auth_chain) and
 * auth/jwt.c (claims checks on HS256 tokens made here with libjwt, the
 * header checks, JWKS parsing). RS/ES signatures, key files and the
 * broker's use of all this are in tests/integration/test_jwt.py.
 */
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/chain.h"
#include "auth/jwt.h"
#include "auth/rules.h"
#include "tests/unit/runner.h"

static const struct rules_who who_dev = {"dev1", 4, "alice", 5};

/* As auth/jwt.c reads an acl claim: strict, substituted for who. */
static struct rules *parse(const char *json, const struct rules_who *who)
{
	char err[200] = "";
	const struct rules_opts ro = {.max = RULES_MAX_TOKEN, .strict = true, .who = who};
	struct rules *r = rules_parse(json, strlen(json), &ro, err, sizeof err);
	if (!r)
		fprintf(stderr, "rules_parse: %s\n", err);
	return r;
}

static bool pub(const struct rules *r, const char *t)
{
	return rules_check(r, NULL, (const uint8_t *)t, strlen(t), RULES_PUBLISH, 0, false);
}

static bool sub(const struct rules *r, const char *t)
{
	return rules_check(r, NULL, (const uint8_t *)t, strlen(t), RULES_SUBSCRIBE, 0, false);
}

static bool tm(const char *f, const char *t)
{
	return rules_topic_matches((const uint8_t *)f, strlen(f), (const uint8_t *)t, strlen(t));
}

static bool cov(const char *a, const char *b)
{
	return rules_filter_covers((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b));
}

static void test_topic_match(void)
{
	CU_ASSERT(tm("a/b", "a/b"));
	CU_ASSERT(!tm("a/b", "a/c"));
	CU_ASSERT(tm("a/+", "a/b"));
	CU_ASSERT(!tm("a/+", "a/b/c"));
	CU_ASSERT(!tm("a/+", "a"));
	CU_ASSERT(tm("a/#", "a"));     /* [MQTT-4.7.1-2] the parent level too */
	CU_ASSERT(tm("a/#", "a/b/c"));
	CU_ASSERT(tm("#", "x/y"));
	CU_ASSERT(tm("+/+", "/x"));    /* empty levels are levels */
	CU_ASSERT(!tm("#", "$SYS/x")); /* [MQTT-4.7.2-1] */
	CU_ASSERT(!tm("+/x", "$SYS/x"));
	CU_ASSERT(tm("$SYS/#", "$SYS/x"));
	CU_ASSERT(!tm("a/b", "a/b/"));
}

static void test_filter_covers(void)
{
	CU_ASSERT(cov("a/#", "a/b/#"));
	CU_ASSERT(cov("a/#", "a/+"));
	CU_ASSERT(cov("a/+", "a/b"));
	CU_ASSERT(cov("a/+", "a/+"));
	CU_ASSERT(!cov("a/+", "a/#"));
	CU_ASSERT(!cov("a/b", "a/+"));
	CU_ASSERT(!cov("a/+", "a/b/c"));
	CU_ASSERT(cov("#", "a/#"));
	CU_ASSERT(!cov("#", "$SYS/#"));
	CU_ASSERT(cov("a/b/#", "a/b"));
}

static void test_rules_first_match(void)
{
	struct rules *r = parse("[{\"permission\":\"deny\",\"action\":\"publish\",\"topic\":\"dev/%c/secret\"},"
				"{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"dev/%c/#\"},"
				"{\"permission\":\"allow\",\"action\":\"subscribe\",\"topic\":\"news/+\"},"
				"{\"permission\":\"allow\",\"action\":\"publish\",\"topic\":\"u/%u\"}]",
				&who_dev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(rules_count(r), 4);
	CU_ASSERT(pub(r, "dev/dev1/a"));
	CU_ASSERT(!pub(r, "dev/dev1/secret")); /* the deny comes first */
	CU_ASSERT(sub(r, "dev/dev1/secret"));  /* the deny is publish only */
	CU_ASSERT(!pub(r, "dev/dev2/a"));
	CU_ASSERT(pub(r, "u/alice"));
	CU_ASSERT(!pub(r, "u/bob"));
	CU_ASSERT(sub(r, "news/x"));
	CU_ASSERT(sub(r, "$share/g/news/x"));  /* a shared subscription is its filter */
	CU_ASSERT(!sub(r, "news/#"));
	CU_ASSERT(!pub(r, "news/x"));
	CU_ASSERT(!pub(r, "other"));           /* nothing matches: denied */
	rules_unref(r);
}

static void test_rules_substitution(void)
{
	/* anonymous: a %u rule never matches */
	struct rules_who anon = {"c", 1, NULL, 0};
	struct rules *r = parse("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"u/%u/#\"},"
				"{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"c/%c\"}]",
				&anon);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(rules_count(r), 1);
	CU_ASSERT(pub(r, "c/c"));
	CU_ASSERT(!pub(r, "u//x"));
	rules_unref(r);
	/* a name with a wildcard or a slash never widens a rule */
	struct rules_who evil = {"+", 1, "a/b", 3};
	r = parse("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"c/%c\"},"
		  "{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"u/%u\"}]",
		  &evil);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(rules_count(r), 0);
	CU_ASSERT(!pub(r, "c/x"));
	rules_unref(r);
	/* %c inside a level is literal text, as in acl_file */
	r = parse("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"x%c\"}]", &who_dev);
	CU_ASSERT(pub(r, "x%c"));
	CU_ASSERT(!pub(r, "xdev1"));
	rules_unref(r);
}

/* EMQX's "qos" and "retain" conditions in an acl claim, as in a
 * worker's rules (one parser, auth/rules.c). */
static void test_rules_qos_retain(void)
{
	struct rules *r = parse("[{\"permission\":\"deny\",\"action\":\"publish\",\"topic\":\"dev/%c/#\","
				"\"qos\":2},"
				"{\"permission\":\"deny\",\"action\":\"publish\",\"topic\":\"dev/%c/#\","
				"\"retain\":true},"
				"{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"dev/%c/#\","
				"\"qos\":[0,1,2],\"retain\":\"all\"}]",
				&who_dev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	const uint8_t *t = (const uint8_t *)"dev/dev1/x";
	CU_ASSERT(rules_check(r, NULL, t, 10, RULES_PUBLISH, 0, false));
	CU_ASSERT(rules_check(r, NULL, t, 10, RULES_PUBLISH, 1, false));
	CU_ASSERT(!rules_check(r, NULL, t, 10, RULES_PUBLISH, 2, false));
	CU_ASSERT(!rules_check(r, NULL, t, 10, RULES_PUBLISH, 1, true));
	CU_ASSERT(rules_check(r, NULL, t, 10, RULES_SUBSCRIBE, 2, false));
	rules_unref(r);
}

static const char *parse_err(const char *json)
{
	static char err[200];
	err[0] = '\0';
	const struct rules_opts ro = {.max = RULES_MAX_TOKEN, .strict = true, .who = &who_dev};
	struct rules *r = rules_parse(json, strlen(json), &ro, err, sizeof err);
	rules_unref(r);
	return r ? "" : err;
}

static void test_rules_refused(void)
{
	CU_ASSERT(strstr(parse_err("{\"pub\":[\"a\"]}"), "not a JSON array") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\"}]"), "topic") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"maybe\",\"action\":\"all\",\"topic\":\"a\"}]"),
			 "permission") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"read\",\"topic\":\"a\"}]"),
			 "action") != NULL);
	/* a key midge does not apply refuses the token (EMQX's qos and retain
	 * are applied: test_rules_qos_retain) */
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a\","
				   "\"clientid\":\"x\"}]"),
			 "clientid") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a\","
				   "\"qos\":[3]}]"),
			 "qos") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a/#/b\"}]"),
			 "whole levels") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a+\"}]"),
			 "whole levels") != NULL);
	CU_ASSERT(strstr(parse_err("[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"\"}]"),
			 "empty") != NULL);
	CU_ASSERT(strstr(parse_err("[1]"), "not an object") != NULL);
	CU_ASSERT(strstr(parse_err("[,"), "not JSON") != NULL);
	/* the rule count bound */
	size_t cap = (RULES_MAX_TOKEN + 1) * 64 + 8, o = 0;
	char *big = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	big[o++] = '[';
	for (unsigned i = 0; i <= RULES_MAX_TOKEN; i++)
		o += (size_t)snprintf(big + o, cap - o, "%s{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"a\"}",
				      i ? "," : "");
	big[o++] = ']';
	big[o] = '\0';
	CU_ASSERT(strstr(parse_err(big), "at most") != NULL);
	free(big);
	/* an empty list: everything denied */
	struct rules *r = parse("[]", &who_dev);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT(!pub(r, "a"));
	rules_unref(r);
}

static void test_chain(void)
{
	struct auth_chain c, out;
	char err[200];
	CU_ASSERT_EQUAL(auth_chain_parse("jwt, passwd", &c, err, sizeof err), 0);
	CU_ASSERT_EQUAL(c.n, 2);
	CU_ASSERT_EQUAL(c.src[0], AUTH_SRC_JWT);
	CU_ASSERT_EQUAL(c.src[1], AUTH_SRC_PASSWD);
	CU_ASSERT_EQUAL(auth_chain_parse("passwd,ldap", &c, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "unknown source 'ldap'") != NULL);
	CU_ASSERT_EQUAL(auth_chain_parse("jwt,jwt", &c, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "twice") != NULL);
	CU_ASSERT_EQUAL(auth_chain_parse(" , ", &c, err, sizeof err), -1);
	struct auth_sources_present p = {.on = {true, true, false}, .hint = {"a", "b", "c"}};
	CU_ASSERT_EQUAL(auth_chain_resolve(NULL, false, &p, &out, err, sizeof err), 0);
	CU_ASSERT_EQUAL(out.n, 2); /* default: the configured ones, passwd first */
	CU_ASSERT_EQUAL(out.src[0], AUTH_SRC_PASSWD);
	CU_ASSERT_EQUAL(auth_chain_parse("zmq,jwt", &c, err, sizeof err), 0);
	CU_ASSERT_EQUAL(auth_chain_resolve(&c, true, &p, &out, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "zmq, which is not configured (c)") != NULL);
	/* the workers in any position, and by default after the local sources */
	p.on[AUTH_SRC_ZMQ] = true;
	CU_ASSERT_EQUAL(auth_chain_parse("zmq,passwd", &c, err, sizeof err), 0);
	CU_ASSERT_EQUAL(auth_chain_resolve(&c, true, &p, &out, err, sizeof err), 0);
	CU_ASSERT(out.n == 2 && out.src[0] == AUTH_SRC_ZMQ && out.src[1] == AUTH_SRC_PASSWD);
	CU_ASSERT_EQUAL(auth_chain_parse("passwd,zmq,jwt", &c, err, sizeof err), 0);
	CU_ASSERT_EQUAL(auth_chain_resolve(&c, true, &p, &out, err, sizeof err), 0);
	CU_ASSERT(out.n == 3 && out.src[1] == AUTH_SRC_ZMQ && out.src[2] == AUTH_SRC_JWT);
	CU_ASSERT_EQUAL(auth_chain_resolve(NULL, false, &p, &out, err, sizeof err), 0);
	CU_ASSERT(out.n == 3 && out.src[0] == AUTH_SRC_PASSWD && out.src[1] == AUTH_SRC_JWT &&
		  out.src[2] == AUTH_SRC_ZMQ);
	/* configured workers left out of a chain: refused, not silently unused */
	CU_ASSERT_EQUAL(auth_chain_parse("passwd,jwt", &c, err, sizeof err), 0);
	CU_ASSERT_EQUAL(auth_chain_resolve(&c, true, &p, &out, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "does not name zmq") != NULL);
	CU_ASSERT_EQUAL(auth_chain_parse("zmq,zmq", &c, err, sizeof err), -1);
}

/* ---- JWT on HS256 tokens -------------------------------------------------- */

static const char secret[] = "unit-test-secret-0123456789abcdef";
static char secret_path[64];

static struct jwt_verifier *verifier(const char *iss, const char *aud, uint32_t leeway)
{
	struct jwt_opts o = {.issuer = iss, .audience = aud, .leeway_s = leeway,
			     .key_file = secret_path};
	char err[300];
	struct jwt_verifier *v = jwt_verifier_load(&o, err, sizeof err);
	if (!v)
		fprintf(stderr, "jwt_verifier_load: %s\n", err);
	return v;
}

/* An HS256 token with the grants of json (libjwt signs it). */
static char *mint(const char *json, jwt_alg_t alg, const char *key)
{
	jwt_t *j = NULL;
	CU_ASSERT_EQUAL_FATAL(jwt_new(&j), 0);
	CU_ASSERT_EQUAL(jwt_add_grants_json(j, json), 0);
	jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0);
	char *t = jwt_encode_str(j);
	jwt_free(j);
	return t;
}

static int verify(const struct jwt_verifier *v, const char *tok, int64_t now, struct jwt_result *out)
{
	return jwt_verify(v, tok, strlen(tok), "dev1", 4, now, out);
}

static void test_jwt_claims(void)
{
	struct jwt_verifier *v = verifier("idp", "midge", 5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	struct jwt_result res;
	char *t = mint("{\"sub\":\"alice\",\"iss\":\"idp\",\"aud\":\"midge\",\"exp\":1000,\"nbf\":900,"
		       "\"acl\":[{\"permission\":\"allow\",\"action\":\"all\",\"topic\":\"u/%u\"}]}",
		       JWT_ALG_HS256, secret);
	CU_ASSERT_EQUAL(verify(v, t, 950, &res), JWT_ALLOW);
	CU_ASSERT_STRING_EQUAL(res.user, "alice");
	CU_ASSERT_EQUAL(res.exp, 1000);
	CU_ASSERT(pub(res.rules, "u/alice"));
	CU_ASSERT(!pub(res.rules, "u/dev1"));
	jwt_result_clear(&res);
	CU_ASSERT_EQUAL(verify(v, t, 1004, &res), JWT_ALLOW); /* leeway 5 */
	jwt_result_clear(&res);
	CU_ASSERT_EQUAL(verify(v, t, 1005, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "expired") != NULL);
	CU_ASSERT_EQUAL(verify(v, t, 894, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "not valid yet") != NULL);
	free(t);
	t = mint("{\"sub\":\"a\",\"iss\":\"other\",\"aud\":\"midge\"}", JWT_ALG_HS256, secret);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "issuer") != NULL);
	free(t);
	t = mint("{\"sub\":\"a\",\"iss\":\"idp\",\"aud\":[\"x\",\"y\"]}", JWT_ALG_HS256, secret);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "audience") != NULL);
	free(t);
	t = mint("{\"iss\":\"idp\",\"aud\":\"midge\"}", JWT_ALG_HS256, secret);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "\"sub\" claim") != NULL);
	free(t);
	t = mint("{\"sub\":\"a\",\"iss\":\"idp\",\"aud\":\"midge\",\"exp\":\"soon\"}", JWT_ALG_HS256, secret);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	free(t);
	t = mint("{\"sub\":\"a\",\"iss\":\"idp\",\"aud\":\"midge\",\"acl\":{\"pub\":[]}}", JWT_ALG_HS256,
		 secret);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "acl claim") != NULL);
	free(t);
	/* another secret, another alg, none */
	t = mint("{\"sub\":\"a\",\"iss\":\"idp\",\"aud\":\"midge\"}", JWT_ALG_HS256, "wrong-secret");
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "signature") != NULL);
	free(t);
	t = mint("{\"sub\":\"a\",\"iss\":\"idp\",\"aud\":\"midge\"}", JWT_ALG_NONE, NULL);
	CU_ASSERT_EQUAL(verify(v, t, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "alg none") != NULL);
	free(t);
	jwt_verifier_unref(v);
}

static void test_jwt_shape_and_algs(void)
{
	CU_ASSERT(jwt_token_shape("a.b.c", 5));
	CU_ASSERT(jwt_token_shape("aa.bb.", 6)); /* alg=none has no signature */
	CU_ASSERT(!jwt_token_shape("hunter2", 7));
	CU_ASSERT(!jwt_token_shape("a..c", 4));
	CU_ASSERT(!jwt_token_shape("a.b.c.d", 7));
	CU_ASSERT(!jwt_token_shape("a.b c.d", 7));
	unsigned bits;
	char err[200];
	CU_ASSERT_EQUAL(jwt_parse_algs("RS256, ES256", &bits, err, sizeof err), 0);
	CU_ASSERT_EQUAL(bits, JWT_RS256 | JWT_ES256);
	CU_ASSERT_EQUAL(jwt_parse_algs("none", &bits, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "refused") != NULL);
	CU_ASSERT_EQUAL(jwt_parse_algs("PS256", &bits, err, sizeof err), -1);
	/* a token longer than the bound is refused before anything else */
	size_t n = JWT_MAX_TOKEN + 10;
	char *big = malloc(n + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(big, 'a', n);
	big[1] = '.';
	big[3] = '.';
	big[n] = '\0';
	struct jwt_verifier *v = verifier(NULL, NULL, 0);
	struct jwt_result res;
	CU_ASSERT_EQUAL(verify(v, big, 1, &res), JWT_DENY);
	CU_ASSERT(strstr(res.why, "at most") != NULL);
	jwt_verifier_unref(v);
	free(big);
}

static void test_jwks(void)
{
	char err[300];
	/* RFC 7517 appendix A.1's public keys: one EC P-256, one RSA */
	const char *jwks =
	    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\","
	    "\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\",\"use\":\"sig\",\"kid\":\"1\"},"
	    "{\"kty\":\"RSA\",\"n\":\"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw\","
	    "\"e\":\"AQAB\",\"alg\":\"RS256\",\"kid\":\"2011-04-29\"},"
	    "{\"kty\":\"oct\",\"k\":\"c2VjcmV0\",\"kid\":\"h\"},"
	    "{\"kty\":\"OKP\",\"kid\":\"skipped\"}]}";
	CU_ASSERT_EQUAL(jwt_jwks_check(jwks, strlen(jwks), err, sizeof err), 3);
	CU_ASSERT_EQUAL(jwt_jwks_check("{}", 2, err, sizeof err), -1);
	CU_ASSERT(strstr(err, "keys") != NULL);
	const char *dup = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"YQ\",\"kid\":\"a\"},"
			  "{\"kty\":\"oct\",\"k\":\"Yg\",\"kid\":\"a\"}]}";
	CU_ASSERT_EQUAL(jwt_jwks_check(dup, strlen(dup), err, sizeof err), -1);
	CU_ASSERT(strstr(err, "twice") != NULL);
	const char *badcrv = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-192\",\"x\":\"AA\",\"y\":\"AA\"}]}";
	CU_ASSERT_EQUAL(jwt_jwks_check(badcrv, strlen(badcrv), err, sizeof err), -1);
	CU_ASSERT(strstr(err, "crv") != NULL);
	const char *badalg = "{\"keys\":[{\"kty\":\"oct\",\"k\":\"YQ\",\"alg\":\"RS256\"}]}";
	CU_ASSERT_EQUAL(jwt_jwks_check(badalg, strlen(badalg), err, sizeof err), -1);
	CU_ASSERT(strstr(err, "does not fit") != NULL);
	const char *badb64 = "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"*\",\"e\":\"AQAB\"}]}";
	CU_ASSERT_EQUAL(jwt_jwks_check(badb64, strlen(badb64), err, sizeof err), -1);
	/* a JWKS file loaded, and loaded again as a reload does: the file's
	 * text is not kept (LeakSanitizer watches the sanitizer build) */
	char path[64];
	snprintf(path, sizeof path, "/tmp/midge-unit-jwks-%ld.json", (long)getpid());
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(jwks, f);
	fclose(f);
	struct jwt_opts o = {.jwks_file = path};
	for (int i = 0; i < 3; i++) {
		struct jwt_verifier *v = jwt_verifier_load(&o, err, sizeof err);
		CU_ASSERT_PTR_NOT_NULL(v);
		char d[200];
		if (v)
			jwt_verifier_describe(v, d, sizeof d);
		CU_ASSERT(v && strstr(d, "3 keys") != NULL);
		jwt_verifier_unref(v);
	}
	unlink(path);
}

static const struct test_case rules_cases[] = {
	{"MQTT-4.7.1-2 MQTT-4.7.2-1 topic matching", test_topic_match},
	{"filter covers filter", test_filter_covers},
	{"first match wins, unmatched denied", test_rules_first_match},
	{"%c and %u substitution", test_rules_substitution},
	{"refused rule sets", test_rules_refused},
	{"qos and retain conditions", test_rules_qos_retain},
	{NULL, NULL},
};

static const struct test_case chain_cases[] = {
	{"parse and resolve", test_chain},
	{NULL, NULL},
};

static const struct test_case jwt_cases[] = {
	{"claims: exp nbf leeway iss aud sub acl, signature, alg none", test_jwt_claims},
	{"token shape, algorithm list, size bound", test_jwt_shape_and_algs},
	{"JWKS parsing", test_jwks},
	{NULL, NULL},
};

static const struct test_suite suites[] = {
	{"rules", rules_cases},
	{"chain", chain_cases},
	{"jwt", jwt_cases},
	{NULL, NULL},
};

int main(int argc, char **argv)
{
	snprintf(secret_path, sizeof secret_path, "/tmp/midge-test-jwt-%d.secret", (int)getpid());
	FILE *f = fopen(secret_path, "w");
	if (!f)
		return 1;
	fprintf(f, "%s\n", secret);
	fclose(f);
	int rc = test_runner_run(argc, argv, suites);
	unlink(secret_path);
	return rc;
}
