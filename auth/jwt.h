/*
 * jwt.h - JSON Web Tokens as an authentication source: the signature
 * checked by libjwt (GnuTLS flavour), the key from a PEM public key or an
 * HS secret (midge_jwt_key_file) or from a JWKS (midge_jwt_jwks_file,
 * chosen by `kid`; RSA and EC JWKs are turned into PEM with GnuTLS, libjwt
 * 1.10 reading no JWKS), then the claims midge checks itself: exp, nbf,
 * iat with a leeway, iss, aud, the user name claim and the `acl` claim
 * (auth/rules.h).
 *
 * Fail closed on the known JWT traps: alg=none is never accepted, a key
 * is bound to its family (an RSA or EC public key is never used as an HS
 * secret: "algorithm confusion"), the token's alg must be one of the
 * configured ones, and the header's alg is checked against the key
 * before libjwt sees the token.
 *
 * A verifier (options and keys) is built on the engine thread and then
 * read-only and reference-counted: the worker pool verifies tokens with
 * it while a reload builds the next one.
 */
#ifndef MIDGE_AUTH_JWT_H
#define MIDGE_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/rules.h"

#define JWT_MAX_TOKEN (16u * 1024u)  /* bytes of a token; longer ones are refused */
#define JWT_MAX_KEYFILE (1024u * 1024u) /* bytes of a key file or JWKS */
#define JWT_MAX_KEYS 64u             /* keys in a JWKS */

/* Algorithm bits for jwt_opts.algs (the HS, RS and ES families). */
enum jwt_alg_bit {
	JWT_HS256 = 1u << 0, JWT_HS384 = 1u << 1, JWT_HS512 = 1u << 2,
	JWT_RS256 = 1u << 3, JWT_RS384 = 1u << 4, JWT_RS512 = 1u << 5,
	JWT_ES256 = 1u << 6, JWT_ES384 = 1u << 7, JWT_ES512 = 1u << 8,
};
#define JWT_ALGS_ALL 0x1ffu

/* What the configuration says (strings are borrowed by jwt_verifier_load,
 * which copies them). */
struct jwt_opts {
	unsigned algs;              /* accepted algs; 0 = every one midge knows */
	uint32_t leeway_s;          /* clock skew allowed on exp, nbf, iat */
	const char *issuer;         /* NULL: iss not checked */
	const char *audience;       /* NULL: aud not checked */
	const char *username_claim; /* NULL: "sub" */
	const char *key_file;       /* exactly one of key_file and jwks_file */
	const char *jwks_file;
};

struct jwt_verifier;

/* Reads the key file or JWKS and keeps a copy of o (refcount 1). NULL
 * with "file: why" in err. */
struct jwt_verifier *jwt_verifier_load(const struct jwt_opts *o, char *err, size_t errlen);
struct jwt_verifier *jwt_verifier_ref(struct jwt_verifier *v);
/* Any thread; jwt_verifier_unref(NULL) does nothing. */
void jwt_verifier_unref(struct jwt_verifier *v);
/* Whether the key file changed on disk since v read it (its size,
 * modification time or inode): the caller builds a new verifier. */
bool jwt_verifier_stale(const struct jwt_verifier *v);
/* "key_file F (RS256 key)" / "jwks_file F (N keys)", for the log. */
void jwt_verifier_describe(const struct jwt_verifier *v, char *out, size_t outlen);
/* The options v was built with (for a rebuild after a file change). */
const struct jwt_opts *jwt_verifier_opts(const struct jwt_verifier *v);

/* Parses a midge_jwt_algorithms value ("RS256,ES256"): 0 with *bits, or
 * -1 naming the bad one in err (none is refused by name). */
int jwt_parse_algs(const char *list, unsigned *bits, char *err, size_t errlen);

/* Whether t[0..n) looks like a JWS compact token (three base64url parts):
 * a password that does not is not a token (the source defers). */
bool jwt_token_shape(const char *t, size_t n);

enum jwt_verdict {
	JWT_ALLOW = 0,
	JWT_DENY = -1,
};

/* What a valid token gives the connection. */
struct jwt_result {
	char *user;          /* the user name claim (malloc'ed, NUL-terminated) */
	size_t user_len;
	int64_t exp;         /* seconds since the epoch; 0: no exp claim */
	struct rules *rules; /* from the acl claim; NULL: none (acl_file applies) */
	char why[200];       /* a refusal's reason, for the log */
};

/*
 * Verifies token t[0..n) at time now (seconds since the epoch) for the
 * client who (%c/%u in the acl claim use the client id and the token's
 * user name). JWT_ALLOW with *out filled (free with jwt_result_clear), or
 * JWT_DENY with out->why. Thread-safe; does not keep t.
 */
int jwt_verify(const struct jwt_verifier *v, const char *t, size_t n, const char *cid,
	       size_t cid_len, int64_t now, struct jwt_result *out);
void jwt_result_clear(struct jwt_result *r);

/*
 * A JWKS's text, text[0..len): the number of usable keys (RSA, EC P-256,
 * P-384, P-521, oct), or -1 with err. Only for tests and the fuzzer; the
 * verifier loads files.
 */
int jwt_jwks_check(const char *text, size_t len, char *err, size_t errlen);

#endif
