/*
 * security.h - what a client is held to: the allow_anonymous rule, the
 * password database and the acl_file of its listener (per_listener_settings
 * true) or of the broker, as Mosquitto 2 decides them. A security set is
 * built from a whole configuration at once (start-up, SIGHUP), so a reload
 * swaps all of it or none of it.
 *
 * The password itself is checked off the engine thread (transport/auth.c
 * hands it to the worker pool): security_connect() decides everything else
 * and names the database to check against.
 */
#ifndef MIDGE_TRANSPORT_SECURITY_H
#define MIDGE_TRANSPORT_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "midge.h"
#include "transport/config.h"

#include "auth/chain.h"

struct acl;
struct passwd_db;
struct jwt_verifier;

/* One realm: the broker's, or one listener's. */
struct security {
	bool allow_anonymous;
	struct passwd_db *passwd; /* password_file; NULL: no password source */
	struct acl *acl;          /* acl_file; NULL: every topic allowed */
	char *password_file, *acl_file; /* the paths, for the log */
};

struct security_set {
	bool per_listener;
	struct security global;
	/* per listener number - 1 (midge_client.listener): &global, or own[i] */
	struct security own[CONF_MAX_LISTENERS];
	int n_listeners;
	bool have[CONF_MAX_LISTENERS]; /* own[i] belongs to a configured listener */
	char *clientid_prefixes;
	/* the sources beyond password files (docs/auth.md), broker-wide */
	struct auth_chain chain;  /* in effect: midge_auth_chain or the configured ones */
	struct jwt_verifier *jwt; /* midge_jwt_key_file/jwks_file; NULL: no JWT */
	bool jwt_from_username;   /* midge_jwt_from username */
	bool jwt_disconnect;      /* midge_jwt_disconnect_on_expiry */
};

/*
 * Builds the set c asks for, loading every password_file and acl_file.
 * order[i] is the configured listener that listener number i + 1 is now
 * (a reload matches bound listeners to the new file's by address and
 * port), n of them; NULL entries are listeners the file no longer has
 * (their clients get nothing: refused at CONNECT, every topic denied).
 * Returns NULL with "what: why" in err when a file cannot be read or
 * per_listener_settings has no listener to apply to.
 */
struct security_set *security_load(const struct conf *c, const struct conf_listener *const *order,
				   int n, char *err, size_t errlen);
/* security_free(NULL) does nothing. */
void security_free(struct security_set *s);

/* The realm of a client that came through listener number `listener`
 * (0: the embedding API's and the broker's own); NULL when per-listener
 * settings have none for it (refuse everything). */
const struct security *security_of(const struct security_set *s, uint16_t listener);

/* Whether cl's listener has a realm and its client id the
 * clientid_prefixes: what every source of authentication asks first. */
bool security_admits(const struct security_set *s, const struct midge_client *cl);

/*
 * What the chain must look at, off the engine thread: the sources of
 * the chain in order that have something to check for this CONNECT
 * (passwd: a user name and a password; jwt: a token-shaped password or
 * user name, per midge_jwt_from; zmq: every CONNECT), with what they
 * check against. The caller takes its own references.
 */
struct security_check {
	struct auth_chain chain;  /* only the sources with something to check */
	struct passwd_db *db;     /* the realm's password file, for passwd */
	struct jwt_verifier *jwt; /* for jwt */
	bool jwt_from_username;
};

/*
 * What engine_auth.connect answers: clientid_prefixes, then a client whose
 * user name a TLS handshake proved (identity_proven) is in (after the
 * workers, when the chain has zmq: only that source is kept), then the
 * chain (midge_auth_chain, docs/auth.md): when no source has anything to
 * check, Mosquitto 2's rule: no password source: allow_anonymous decides
 * for every client, named or not; a password file: anonymous clients by
 * allow_anonymous, named ones by their password. Returns 0,
 * MQTT_RC_NOT_AUTHORIZED, MQTT_RC_BAD_USERNAME_OR_PASSWORD (no password
 * given), or SECURITY_CHECK_PASSWORD with *check filled: the caller runs
 * the chain (passwd and jwt off the engine thread, zmq by the workers; a
 * wrong password or a refused token is MQTT_RC_BAD_USERNAME_OR_PASSWORD).
 */
#define SECURITY_CHECK_PASSWORD 0x100
int security_connect(const struct security_set *s, const struct midge_client *cl,
		     const struct midge_str *username, const struct midge_str *password,
		     bool identity_proven, struct security_check *check);

/*
 * When every source of the chain deferred (or none had anything to
 * check): a proven TLS identity is in; otherwise Mosquitto 2's rule
 * (above) with `named` saying whether the CONNECT had a user name.
 * Returns 0 or the refusal's reason code.
 */
int security_undecided(const struct security_set *s, const struct midge_client *cl, bool named,
		       bool identity_proven);

/*
 * After a reload: may a connected client stay (engine_recheck)? Mosquitto's
 * rule: its listener still has a realm, and an anonymous client (or any
 * client when the realm has no password source) still has
 * allow_anonymous. A named client's password is not asked again (midge
 * does not keep it): it applies from its next CONNECT.
 */
bool security_may_stay(const struct security_set *s, const struct midge_client *cl);

/* engine_auth.acl: the client's realm's acl_file (everything allowed
 * without one). Returns 0 or MQTT_RC_NOT_AUTHORIZED. */
int security_acl(const struct security_set *s, const struct midge_client *cl,
		 const uint8_t *topic, size_t len, enum engine_access access);

/* Whether any realm has an acl_file (else the engine need not ask). */
bool security_has_acl(const struct security_set *s);

/* "N realms, acl_file A (R rules, U users), password_file P" for the log. */
void security_describe(const struct security_set *s, char *out, size_t outlen);

#endif
