/*
 * chain.h - midge_auth_chain: the order in which authentication sources
 * are asked about a CONNECT. Each source answers allow, deny, or defers
 * (it has nothing to say: no such user in the password file, no token in
 * the field JWT reads); the first definite answer wins. When every source
 * defers, Mosquitto's rule applies: allow_anonymous decides (a named
 * client a password file does not know is refused).
 *
 * The table below is the one place a source is named. passwd and jwt run
 * on the hashing pool (transport/auth.c); zmq is answered by ZeroMQ auth
 * workers on the engine thread (transport/zauth.c): a CONNECT's walk
 * goes back and forth between the two, in the chain's order.
 */
#ifndef MIDGE_AUTH_CHAIN_H
#define MIDGE_AUTH_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_source {
	AUTH_SRC_PASSWD = 0, /* password_file (auth/passwd.c) */
	AUTH_SRC_JWT = 1,    /* midge_jwt_* (auth/jwt.c) */
	AUTH_SRC_ZMQ = 2,    /* midge_auth_endpoint: ZeroMQ auth workers */
	AUTH_SRC_COUNT
};

#define AUTH_CHAIN_MAX AUTH_SRC_COUNT

/* A source's answer inside the chain. */
enum auth_answer {
	AUTH_ALLOW = 0,
	AUTH_DENY = 1,
	AUTH_DEFER = 2,
};

struct auth_chain {
	uint8_t n;
	uint8_t src[AUTH_CHAIN_MAX]; /* enum auth_source, in order */
};

/* The source's configuration name ("passwd", "jwt", "zmq"). */
const char *auth_source_name(enum auth_source s);

/* Parses "passwd,jwt": 0, or -1 with err (an unknown name, one named
 * twice, an empty list). */
int auth_chain_parse(const char *text, struct auth_chain *out, char *err, size_t errlen);

/* Whether each source is configured (indexed by enum auth_source). */
struct auth_sources_present {
	bool on[AUTH_SRC_COUNT];
	const char *hint[AUTH_SRC_COUNT]; /* what configures it, for messages */
};

/*
 * The chain in effect: the configured one, checked against what is
 * configured (a named source that is not: -1 with err naming it and what
 * would configure it; zmq configured but not named: -1 too, since the
 * workers would still serve enhanced authentication but no CONNECT's
 * password), or, with none configured (have false), every configured
 * source in the table's order: passwd, jwt, zmq (the local sources
 * first, the workers for what they defer).
 */
int auth_chain_resolve(const struct auth_chain *configured, bool have,
		       const struct auth_sources_present *p, struct auth_chain *out, char *err,
		       size_t errlen);

#endif
