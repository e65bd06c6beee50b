/*
 * fuzz_jwt.c - the JSON midge reads for JWT authentication, on arbitrary
 * bytes. The first byte picks the reader (mod 3):
 *   0: the rest is an acl claim / rules array (auth/rules.c, EMQX
 *      format) for client "c1", user "u1"; when it parses, each line of
 *      a fixed list of topics is checked for publish and subscribe;
 *   1: the rest is a JWKS (auth/jwt.c: RSA and EC JWKs made into PEM by
 *      GnuTLS, oct secrets);
 *   2: the rest is a token, verified against an HS256 secret (header
 *      decoding, the alg and key checks, libjwt's signature check).
 * Must hold: no crash, leak or read past the input; a refusal has a
 * message; a parsed rule set is within RULES_MAX_TOKEN; every filter covers
 * itself and "#" covers every filter that does not start with $.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "auth/rules.h"
#include "fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


static const char *const topics[] = {"a", "a/b", "c1/x", "u1", "u1/y", "$SYS/x", "/", "a//b",
				     "dev/c1/secret", "x/y/z"};
static const char *const filters[] = {"#", "+", "a/#", "a/+", "+/+", "$SYS/#", "dev/+/secret",
				      "u1/#", "$share/g/a/#"};

static void fuzz_rules(const char *text, size_t n)
{
	struct rules_who who = {"c1", 2, "u1", 2};
	const struct rules_opts ro = {.max = RULES_MAX_TOKEN, .strict = true, .who = &who};
	char err[200] = "";
	struct rules *r = rules_parse(text, n, &ro, err, sizeof err);
	if (!r) {
		FUZZ_CHECK(err[0]);
		return;
	}
	FUZZ_CHECK(rules_count(r) <= RULES_MAX_TOKEN);
	for (size_t i = 0; i < sizeof topics / sizeof topics[0]; i++) {
		const uint8_t *t = (const uint8_t *)topics[i];
		size_t tl = strlen(topics[i]);
		for (uint8_t q = 0; q < 3; q++) {
			(void)rules_check(r, NULL, t, tl, RULES_PUBLISH, q, q == 1);
			(void)rules_check(r, NULL, t, tl, RULES_SUBSCRIBE, q, false);
		}
	}
	for (size_t j = 0; j < sizeof filters / sizeof filters[0]; j++) {
		const uint8_t *f = (const uint8_t *)filters[j];
		size_t fl = strlen(filters[j]);
		(void)rules_check(r, NULL, f, fl, RULES_SUBSCRIBE, 1, false);
		FUZZ_CHECK(rules_filter_covers(f, fl, f, fl));
		FUZZ_CHECK(f[0] == '$' || rules_filter_covers((const uint8_t *)"#", 1, f, fl));
	}
	rules_unref(r);
}

static struct jwt_verifier *fuzz_verifier(void)
{
	static struct jwt_verifier *v;
	if (v)
		return v;
	char path[64];
	snprintf(path, sizeof path, "/tmp/midge-fuzz-jwt-%d.secret", (int)getpid());
	FILE *f = fopen(path, "w");
	if (!f)
		abort();
	fputs("fuzz-secret\n", f);
	fclose(f);
	struct jwt_opts o = {.key_file = path, .audience = "midge"};
	char err[300];
	v = jwt_verifier_load(&o, err, sizeof err);
	unlink(path);
	if (!v)
		abort();
	return v; /* kept for the process: one per run, not a leak per input */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t n = size - 1;
	char err[300] = "";
	switch (data[0] % 3) {
	case 0:
		fuzz_rules(text, n);
		break;
	case 1:
		if (jwt_jwks_check(text, n, err, sizeof err) < 0)
			FUZZ_CHECK(err[0]);
		break;
	default: {
		struct jwt_result res;
		if (jwt_verify(fuzz_verifier(), text, n, "c1", 2, 1000, &res) == JWT_ALLOW)
			jwt_result_clear(&res);
		else
			FUZZ_CHECK(res.why[0]);
		break;
	}
	}
	return 0;
}
